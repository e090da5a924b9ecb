//! Host cgroup layout: which hierarchies are mounted where (one pass over /proc/self/mountinfo),
//! and which cgroup this process is in (/proc/self/cgroup, read only when a relative cgroupsPath
//! needs it).
//!
//! Nothing here assumes /sys/fs/cgroup: co-mounted controllers (`cpu,cpuacct`,
//! `net_cls,net_prio`), named hierarchies (`name=systemd`), a cgroup2 mount anywhere, and mounts
//! of a sub-tree (in a container) are all taken from what the kernel reports.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};
use super::fs;

/// How the host's cgroups are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    #[default]
    V1,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified) that tracks processes
    /// and may hold controllers no v1 hierarchy has (e.g. hugetlb).
    Hybrid,
    /// One cgroup2 hierarchy with every controller.
    V2,
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Controllers of the hierarchy in kernel order, e.g. `["cpu", "cpuacct"]` or
    /// `["name=systemd"]`.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The cgroup shown at the mount point (`/` unless only a sub-tree is mounted).
    pub root: String,
    /// Mounted with `noprefix` (cpuset files lack their `cpuset.` prefix).
    pub noprefix: bool,
}

/// The mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

/// The host's cgroup mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub mode: CgroupMode,
    pub v1: Vec<V1Mount>,
    pub v2: Option<V2Mount>,
}

/// v1 controllers the kernel knows (anything else in a cgroup mount's options is an option).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// Decodes the octal escapes (`\040` for a space, …) mountinfo uses in paths.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
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

/// The fields of one mountinfo line that matter here.
struct MountLine<'a> {
    root: &'a str,
    mount_point: &'a str,
    fstype: &'a str,
    super_opts: &'a str,
}

fn parse_mount_line(line: &str) -> Option<MountLine<'_>> {
    let mut it = line.split(' ');
    let _id = it.next()?;
    let _parent = it.next()?;
    let _dev = it.next()?;
    let root = it.next()?;
    let mount_point = it.next()?;
    let _opts = it.next()?;
    // Optional fields up to the "-" separator.
    for f in it.by_ref() {
        if f == "-" {
            break;
        }
    }
    let fstype = it.next()?;
    let _source = it.next()?;
    let super_opts = it.next().unwrap_or("");
    Some(MountLine {
        root,
        mount_point,
        fstype,
        super_opts,
    })
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let s = fs::read_path(Path::new("/proc/self/mountinfo"))?;
        Layout::from_mountinfo(&s)
    }

    /// A pure cgroup v2 layout rooted at `mount_point` (tests use fake trees this way).
    pub fn v2_at(mount_point: impl Into<PathBuf>) -> Layout {
        Layout {
            mode: CgroupMode::V2,
            v1: Vec::new(),
            v2: Some(V2Mount {
                mount_point: mount_point.into(),
                root: "/".into(),
            }),
        }
    }

    /// Builds the layout from mountinfo text.
    pub fn from_mountinfo(mountinfo: &str) -> Result<Layout> {
        let mut v1: Vec<V1Mount> = Vec::new();
        let mut v2: Vec<V2Mount> = Vec::new();
        for line in mountinfo.lines() {
            let Some(m) = parse_mount_line(line) else {
                continue;
            };
            match m.fstype {
                "cgroup2" => v2.push(V2Mount {
                    mount_point: PathBuf::from(unescape_mountinfo(m.mount_point)),
                    root: unescape_mountinfo(m.root),
                }),
                "cgroup" => {
                    let mut controllers = Vec::new();
                    let mut noprefix = false;
                    for o in m.super_opts.split(',') {
                        if o.starts_with("name=") || V1_CONTROLLERS.contains(&o) {
                            controllers.push(o.to_string());
                        } else if o == "noprefix" {
                            noprefix = true;
                        }
                    }
                    if controllers.is_empty() {
                        continue;
                    }
                    // The same hierarchy mounted twice (bind mounts): keep the first.
                    if v1.iter().any(|h| same_set(&h.controllers, &controllers)) {
                        continue;
                    }
                    v1.push(V1Mount {
                        controllers,
                        mount_point: PathBuf::from(unescape_mountinfo(m.mount_point)),
                        root: unescape_mountinfo(m.root),
                        noprefix,
                    });
                }
                _ => {}
            }
        }
        // Several cgroup2 mounts are the same hierarchy; prefer the conventional places.
        let v2 = v2
            .iter()
            .position(|m| {
                m.mount_point == Path::new("/sys/fs/cgroup")
                    || m.mount_point == Path::new("/sys/fs/cgroup/unified")
            })
            .map(|i| v2[i].clone())
            .or_else(|| v2.first().cloned());
        let has_v1_controller = v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let mode = match (has_v1_controller, v2.is_some()) {
            (true, true) => CgroupMode::Hybrid,
            (true, false) => CgroupMode::V1,
            (false, true) => CgroupMode::V2,
            (false, false) => {
                return Err(CgroupError::msg(
                    "no cgroup controllers are mounted (no cgroup or cgroup2 entry with controllers in /proc/self/mountinfo)",
                ))
            }
        };
        if mode == CgroupMode::V2 {
            // Named v1 hierarchies next to a v2 host are not ours to manage.
            v1.clear();
        }
        Ok(Layout { mode, v1, v2 })
    }

    /// The v1 hierarchy holding `controller` (`"name=systemd"` for named ones).
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// This process's cgroups, from /proc/self/cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnCgroups {
    v1: Vec<(Vec<String>, String)>,
    v2: Option<String>,
}

impl OwnCgroups {
    pub fn read() -> Result<OwnCgroups> {
        let s = fs::read_path(Path::new("/proc/self/cgroup"))?;
        Ok(OwnCgroups::parse(&s))
    }

    pub fn parse(s: &str) -> OwnCgroups {
        let mut own = OwnCgroups::default();
        for line in s.lines() {
            let mut it = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if ctrls.is_empty() {
                own.v2 = Some(path.to_string());
            } else {
                own.v1.push((
                    ctrls.split(',').map(str::to_string).collect(),
                    path.to_string(),
                ));
            }
        }
        own
    }

    /// Our cgroup in the v1 hierarchy with these controllers.
    pub fn v1_path(&self, controllers: &[String]) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| same_set(c, controllers))
            .map(|(_, p)| p.as_str())
    }

    /// Our cgroup in the cgroup2 hierarchy.
    pub fn v2_path(&self) -> Option<&str> {
        self.v2.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout() {
        let l = Layout::from_mountinfo(HYBRID).unwrap();
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(l.v1.len(), 4);
        assert_eq!(
            l.v1_mount("cpuacct").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(
            l.v1_mount("name=systemd").unwrap().controllers,
            vec!["name=systemd"]
        );
        assert_eq!(
            l.v2.unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn comounted_and_escaped() {
        let mi = "\
1 0 0:1 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
2 0 0:2 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
3 0 0:3 / /weird\\040place rw - cgroup cgroup rw,cpuset,noprefix
4 0 0:1 / /again rw - cgroup cgroup rw,cpu,cpuacct
";
        let l = Layout::from_mountinfo(mi).unwrap();
        assert_eq!(l.mode, CgroupMode::V1);
        assert_eq!(l.v1.len(), 3);
        let cpu = l.v1_mount("cpu").unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cpu.root, "/docker/abc");
        let cs = l.v1_mount("cpuset").unwrap();
        assert_eq!(cs.mount_point, Path::new("/weird place"));
        assert!(cs.noprefix);
    }

    #[test]
    fn pure_v2_ignores_named_v1() {
        let mi = "\
1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate
2 0 0:2 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
        let l = Layout::from_mountinfo(mi).unwrap();
        assert_eq!(l.mode, CgroupMode::V2);
        assert!(l.v1.is_empty());
    }

    #[test]
    fn nothing_mounted() {
        assert!(Layout::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n").is_err());
    }

    #[test]
    fn own_cgroups() {
        let own = OwnCgroups::parse("4:memory:/a/b\n2:cpu,cpuacct:/c\n1:name=systemd:/s\n0::/u\n");
        assert_eq!(own.v1_path(&["memory".into()]), Some("/a/b"));
        assert_eq!(own.v1_path(&["cpuacct".into(), "cpu".into()]), Some("/c"));
        assert_eq!(own.v1_path(&["name=systemd".into()]), Some("/s"));
        assert_eq!(own.v2_path(), Some("/u"));
    }
}
