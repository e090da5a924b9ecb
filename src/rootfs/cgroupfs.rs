//! The `cgroup` mount type inside a container.
//!
//! - cgroup v2 only (unified host): with a cgroup namespace a fresh `cgroup2` mount (it shows the
//!   namespace root); without one, a bind of the container's own cgroup directory.
//! - v1 or hybrid host: a tmpfs at the destination holding, for every cgroup hierarchy mounted on
//!   the host (v1 controllers and a hybrid `unified` cgroup2), a bind of the container's own
//!   cgroup directory in that hierarchy, named like the host's mount point (`cpu`, `memory`,
//!   `unified`, …), plus symlinks for co-mounted controllers (`cpu` → `cpu,cpuacct`).
//!
//! The init is already in its cgroups when this runs, so /proc/self/cgroup names them.

use super::mount_opts::MountOpts;
use super::mounts::{remount_bind, MountCtx};
use super::safe_path::{mkdir_all_in_root, open_in_root, proc_fd_path};
use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use std::path::{Path, PathBuf};

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// The mount's root inside the hierarchy (field 4 of mountinfo).
    pub root: String,
    pub v2: bool,
    /// v1: the controllers/name options (e.g. `cpu,cpuacct`, `name=systemd`).
    pub controllers: Vec<String>,
}

/// Unescapes mountinfo's octal escapes (`\040` for space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text for cgroup hierarchies.
pub fn parse_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut v = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || p.len() < 3 {
            continue;
        }
        let (fstype, super_opts) = (p[0], p[2]);
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                    ) && !o.starts_with("release_agent")
                        && *o != "xattr"
                        && *o != "clone_children"
                        && *o != "noprefix"
                        && *o != "cpuset_v2_mode"
                })
                .map(str::to_string)
                .collect()
        };
        v.push(Hierarchy {
            mount_point: PathBuf::from(unescape(f[4])),
            root: unescape(f[3]),
            v2,
            controllers,
        });
    }
    v
}

/// Parses /proc/self/cgroup: (hierarchy id 0 → v2 path, or controllers → path).
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let c = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            Some((c, path.to_string()))
        })
        .collect()
}

/// The host directory of our own cgroup in hierarchy `h`.
pub fn own_dir(h: &Hierarchy, proc_cgroup: &[(Vec<String>, String)]) -> Option<PathBuf> {
    let path = proc_cgroup.iter().find_map(|(c, p)| {
        let matches = if h.v2 {
            c.is_empty()
        } else {
            !c.is_empty() && h.controllers.iter().all(|x| c.contains(x))
        };
        matches.then_some(p.as_str())
    })?;
    // Paths are relative to the hierarchy root; the mount may show a subtree of it.
    let root = h.root.trim_end_matches('/');
    let rel = if root.is_empty() {
        path
    } else {
        path.strip_prefix(root)?
    };
    Some(h.mount_point.join(rel.trim_start_matches('/')))
}

pub fn mount_cgroup(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let proc_cg = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    let proc_cg = parse_proc_cgroup(&proc_cg);
    let all = parse_hierarchies(&mountinfo);
    // Only the host's canonical hierarchies (not bind mounts elsewhere).
    let mut hs: Vec<Hierarchy> = Vec::new();
    for h in all {
        if !hs.iter().any(|x| x.mount_point == h.mount_point) {
            hs.push(h);
        }
    }
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = mkdir_all_in_root(ctx.root, dest, 0o755).ctx(|| "create mount point")?;
    let unified_only = hs.iter().all(|h| h.v2) && !hs.is_empty();
    if unified_only {
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
            let h = &hs[0];
            let dir = own_dir(h, &proc_cg)
                .ok_or_else(|| Error::msg("cgroup mount: cannot find the container's cgroup"))?;
            bind_dir(ctx, &dir, dest, flags)?;
        }
        return Ok(());
    }
    mount(
        Some(c"tmpfs"),
        proc_fd_path(&target).as_c_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups")?;
    for h in &hs {
        let Some(name) = h.mount_point.file_name() else {
            continue;
        };
        let Some(dir) = own_dir(h, &proc_cg) else {
            continue;
        };
        let sub = dest.join(name);
        bind_dir(ctx, &dir, &sub, flags)?;
        // Co-mounted controllers: `cpu` and `cpuacct` → `cpu,cpuacct`.
        let name_s = name.to_string_lossy();
        if name_s.contains(',') {
            let topfd = open_in_root(ctx.root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx(|| "reopen cgroup tmpfs")?;
            for c in name_s.split(',') {
                let _ = nix::unistd::symlinkat(name, &topfd, c);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
50 31 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
60 31 0:41 / /mnt/with\\040space rw - ext4 /dev/x rw\n";

    #[test]
    fn hierarchies() {
        let h = parse_hierarchies(MI);
        assert_eq!(h.len(), 5);
        assert_eq!(h[0].controllers, vec!["cpu"]);
        assert_eq!(h[2].controllers, vec!["name=systemd"]);
        assert!(h[3].v2);
        assert_eq!(h[4].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn own_dirs() {
        let pc = parse_proc_cgroup("5:memory:/a/b\n3:cpu,cpuacct:/a/b\n1:name=systemd:/s\n0::/u\n");
        let h = parse_hierarchies(MI);
        assert_eq!(
            own_dir(&h[1], &pc).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            own_dir(&h[2], &pc).unwrap(),
            PathBuf::from("/sys/fs/cgroup/systemd/s")
        );
        assert_eq!(
            own_dir(&h[3], &pc).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified/u")
        );
        assert_eq!(
            own_dir(&h[4], &pc).unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/b")
        );
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("plain"), "plain");
    }
}
