//! The `cgroup` mount type inside a container, from the host directories the cgroup manager
//! reports ([`crate::cgroups::CgroupMount`]):
//!
//! - pure cgroup v2: with a cgroup namespace a fresh `cgroup2` mount (it shows the namespace
//!   root); without one, a bind of the container's own cgroup directory;
//! - v1 or hybrid: a tmpfs at the destination holding, for every hierarchy (v1 controllers and a
//!   hybrid `unified` cgroup2), a bind of the container's own cgroup directory named like the
//!   host's mount point (`cpu`, `memory`, `unified`, …), plus symlinks for co-mounted
//!   controllers (`cpu` → `cpu,cpuacct`).

use super::mount_opts::MountOpts;
use super::mounts::{remount_bind, MountCtx};
use super::safe_path::{mkdir_all_in_root, open_in_root, proc_fd_path};
use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use std::path::Path;

pub fn mount_cgroup(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<()> {
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = mkdir_all_in_root(ctx.root, dest, 0o755).ctx(|| "create mount point")?;
    let mounts = ctx.cgroup_mounts;
    if let [only] = mounts {
        if only.mount_point_name.is_empty() {
            // Pure cgroup v2.
            if ctx.cgroupns {
                mount(
                    Some(c"cgroup2"),
                    proc_fd_path(&target).as_c_str(),
                    Some("cgroup2"),
                    flags,
                    None::<&str>,
                )
                .ctx(|| "mount cgroup2")?;
            } else {
                bind_dir(ctx, &only.host_dir, dest, flags)?;
            }
            return Ok(());
        }
    }
    mount(
        Some(c"tmpfs"),
        proc_fd_path(&target).as_c_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups")?;
    for m in mounts {
        bind_dir(ctx, &m.host_dir, &dest.join(&m.mount_point_name), flags)?;
        if !m.symlinks.is_empty() {
            let top = open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx(|| "reopen cgroup tmpfs")?;
            for l in &m.symlinks {
                let _ = nix::unistd::symlinkat(m.mount_point_name.as_str(), &top, l.as_str());
            }
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = open_in_root(ctx.root, dest, OFlag::O_PATH).ctx(|| "reopen cgroup tmpfs")?;
        remount_bind(
            &top,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )
        .ctx(|| "remount cgroup tmpfs read-only")?;
    }
    Ok(())
}

fn bind_dir(ctx: &MountCtx, host: &Path, dest: &Path, flags: MsFlags) -> Result<()> {
    let target =
        mkdir_all_in_root(ctx.root, dest, 0o755).ctx(|| format!("create {}", dest.display()))?;
    let src = std::ffi::CString::new(host.to_string_lossy().as_bytes())
        .map_err(|_| Error::msg("cgroup path contains NUL"))?;
    mount(
        Some(src.as_c_str()),
        proc_fd_path(&target).as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {}", host.display()))?;
    let top = open_in_root(ctx.root, dest, OFlag::O_PATH).ctx(|| "reopen cgroup mount")?;
    remount_bind(&top, flags - MsFlags::MS_REC).ctx(|| "remount cgroup bind")?;
    Ok(())
}
