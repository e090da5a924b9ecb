//! The container's filesystem view: mounts, devices, pivot_root, and the finishing touches
//! (masked and read-only paths, read-only root, propagation).
//!
//! Run by the container init, in this order: [`prepare`] (before the prestart/createRuntime
//! hooks), [`enter`] (after createContainer hooks), [`finalize`], and after the masked and
//! read-only paths [`apply_rootfs_propagation`].

pub mod cgroupfs;
mod copyup;
pub mod devices;
pub mod idmap;
pub mod mount_opts;
pub mod mounts;
pub mod safe_path;
pub mod sources;

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;
use std::os::fd::AsFd;
use std::path::Path;

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// The container has its own mount namespace (otherwise: chroot, no propagation changes).
    pub mntns: bool,
    pub userns: bool,
    pub cgroupns: bool,
    pub no_pivot: bool,
    pub cgroup_mounts: &'a [crate::cgroups::CgroupMount],
    /// Asks the runtime for the source of `mounts[i]` (see [`sources`]).
    pub request_source: &'a dyn Fn(usize) -> Result<std::os::fd::OwnedFd>,
    /// The runtime runs as real root (it can open sources the init cannot reach).
    pub runtime_root: bool,
}

fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// `linux.rootfsPropagation`, validated.
pub fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(p) => propagation_flag(p)
            .map(Some)
            .ok_or_else(|| Error::config(format!("linux.rootfsPropagation: unknown value {p:?}"))),
    }
}

/// True when config.json bind-mounts something at /dev (then devices are not created).
fn dev_is_bind(spec: &Spec) -> bool {
    spec.mounts().as_ref().is_some_and(|ms| {
        ms.iter().any(|m| {
            safe_path::clean(m.destination()) == Path::new("dev")
                && (m.typ().as_deref() == Some("bind")
                    || m.options()
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind")))
        })
    })
}

/// Mounts, devices and /dev symlinks, before pivot_root.
pub fn prepare(c: &RootfsConfig) -> Result<()> {
    if c.mntns {
        // Nothing the container mounts may propagate back to the host. `rootfsPropagation` is
        // applied to the container's own root after pivot_root (see `finalize`): applied here
        // it would make pivot_root fail (shared) or the rootfs bind impossible (unbindable).
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "set propagation of /")?;
        mount(
            Some(c.rootfs),
            c.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind rootfs {}", c.rootfs.display()))?;
    }
    let root =
        safe_path::open_root(c.rootfs).ctx(|| format!("open rootfs {}", c.rootfs.display()))?;
    let ctx = mounts::MountCtx {
        root: root.as_fd(),
        bundle: c.bundle,
        userns: c.userns,
        cgroupns: c.cgroupns,
        cgroup_mounts: c.cgroup_mounts,
        mount_label: c
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref())
            .filter(|l| !l.is_empty() && crate::process::lsm::Lsm::host().selinux_enabled()),
        request_source: c.request_source,
        runtime_root: c.runtime_root,
    };
    if let Some(ms) = c.spec.mounts() {
        for (i, m) in ms.iter().enumerate() {
            mounts::mount_entry(&ctx, i, m)?;
        }
    }
    if !dev_is_bind(c.spec) {
        for d in devices::default_devices() {
            devices::create(root.as_fd(), &d, c.userns)?;
        }
        devices::create_symlinks(root.as_fd())?;
    }
    if let Some(devs) = c.spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        for d in devs {
            devices::create(root.as_fd(), &devices::from_spec(d)?, c.userns)?;
        }
    }
    Ok(())
}

/// Switches the process's root to the rootfs: pivot_root, or MS_MOVE + chroot (`--no-pivot`),
/// or a plain chroot when the container shares the host's mount namespace.
pub fn enter(c: &RootfsConfig) -> Result<()> {
    if !c.mntns {
        nix::unistd::chdir(c.rootfs).ctx(|| "chdir rootfs")?;
        nix::unistd::chroot(".").ctx(|| "chroot")?;
    } else if c.no_pivot {
        hide_host_proc_sys(c.rootfs)?;
        nix::unistd::chdir(c.rootfs).ctx(|| "chdir rootfs")?;
        mount(
            Some(c.rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "move rootfs to /")?;
        nix::unistd::chroot(".").ctx(|| "chroot")?;
    } else {
        pivot(c.rootfs)?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    Ok(())
}

/// `--no-pivot`: the host's own proc and sysfs mounts stay in the container's mount namespace
/// under the moved rootfs, and a full (unmasked) one there lets a process in a nested user
/// namespace mount a fresh procfs or sysfs with nothing masked (the kernel allows that when a
/// full instance is already in the namespace, reachable or not). Each full proc/sysfs mount
/// outside the rootfs is detached, or covered by an empty read-only tmpfs where it cannot be.
fn hide_host_proc_sys(rootfs: &Path) -> Result<()> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let mut targets: Vec<String> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mut f = pre.split(' ');
            let root = f.nth(3)?;
            let mp = crate::cgroups::detect::unescape_mountinfo(f.next()?);
            let inside = Path::new(&mp).starts_with(rootfs);
            (matches!(fstype, "proc" | "sysfs") && root == "/" && !inside).then_some(mp)
        })
        .collect();
    // Deepest first: /proc/sys/fs/binfmt_misc's proc parent is handled after its children.
    targets.sort_by_key(|m| std::cmp::Reverse(m.len()));
    targets.dedup();
    for mp in targets {
        match umount2(mp.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    mp.as_str(),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("size=0,mode=000"),
                )
                .ctx(|| format!("--no-pivot: cover host {mp}"))?;
            }
            Err(e) => return Err(e).ctx(|| format!("--no-pivot: detach host {mp}")),
        }
    }
    Ok(())
}

fn pivot(rootfs: &Path) -> Result<()> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = nix::fcntl::open("/", flags, Mode::empty()).ctx(|| "open /")?;
    let new = nix::fcntl::open(rootfs, flags, Mode::empty()).ctx(|| "open rootfs")?;
    nix::unistd::fchdir(&new).ctx(|| "fchdir rootfs")?;
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root")?;
    // The old root is now stacked under "."; detach it without propagating the unmount.
    nix::unistd::fchdir(&old).ctx(|| "fchdir old root")?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
    Ok(())
}

/// After pivot: read-only /dev if asked, read-only root (the propagation comes last, in
/// [`apply_rootfs_propagation`]).
pub fn finalize(c: &RootfsConfig) -> Result<()> {
    if !c.mntns {
        return Ok(());
    }
    let dev_ro = c.spec.mounts().as_ref().is_some_and(|ms| {
        ms.iter().any(|m| {
            safe_path::clean(m.destination()) == Path::new("dev")
                && m.options()
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|x| x == "ro"))
        })
    });
    if dev_ro {
        remount_ro("/dev")?;
    }
    if c.spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        remount_ro("/")?;
    }
    Ok(())
}

/// `linux.rootfsPropagation` on the new root, last of all: an unbindable tree would make the
/// binds of readonlyPaths and maskedPaths fail (EINVAL).
pub fn apply_rootfs_propagation(c: &RootfsConfig) -> Result<()> {
    if !c.mntns {
        return Ok(());
    }
    if let Some(p) = rootfs_propagation(c.spec)? {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>).ctx(|| "set rootfs propagation")?;
    }
    Ok(())
}

fn remount_ro(path: &str) -> Result<()> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {path}"))?;
    mounts::remount_bind(&fd, MsFlags::MS_RDONLY).ctx(|| format!("remount {path} read-only"))
}

/// `linux.maskedPaths`: a directory gets an empty read-only tmpfs, anything else /dev/null.
/// `linux.maskedPaths`, as runc 1.4.3: each path once (duplicates, also lexically equal ones,
/// are skipped), files covered by /dev/null, and every directory by the same read-only tmpfs:
/// the first gets a fresh one, the others a bind mount of it (fewer superblocks and mounts
/// per container); should such a bind fail, each directory gets its own tmpfs.
pub fn mask_paths(paths: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut shared: Option<std::os::fd::OwnedFd> = None;
    let mut bind_failed = false;
    for path in paths {
        if !seen.insert(safe_path::clean(Path::new(path))) {
            continue;
        }
        let is_dir = match nix::sys::stat::stat(path.as_str()) {
            Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).ctx(|| format!("mask {path}")),
        };
        if !is_dir {
            mask_path(path)?;
            continue;
        }
        if let Some(fd) = shared.as_ref().filter(|_| !bind_failed) {
            use std::os::fd::AsRawFd;
            let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
            match mount(
                Some(src.as_str()),
                path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ) {
                Ok(()) => continue,
                Err(e) => {
                    crate::logging::warn(format!(
                        "maskPaths: shared tmpfs bind-mount failed ({e}), falling back to \
                         per-directory tmpfs"
                    ));
                    bind_failed = true;
                }
            }
        }
        mask_path(path)?;
        if shared.is_none() && !bind_failed {
            // The tmpfs just mounted, as the source of the next directories' binds.
            shared = nix::fcntl::open(
                path.as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .ok();
        }
    }
    Ok(())
}

pub fn mask_path(path: &str) -> Result<()> {
    let st = match nix::sys::stat::stat(path) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("mask {path}")),
    };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let r = if is_dir {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    r.ctx(|| format!("mask {path}"))
}

/// `linux.readonlyPaths`: bind the path onto itself and make that read-only.
pub fn readonly_path(path: &str) -> Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("make {path} read-only")),
    }
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {path}"))?;
    mounts::remount_bind(&fd, MsFlags::MS_RDONLY | MsFlags::MS_REC)
        .ctx(|| format!("make {path} read-only"))
}
