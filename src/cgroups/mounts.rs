//! What the rootfs code needs to give a container its `/sys/fs/cgroup`.
//!
//! Without a cgroup namespace (runc's behaviour for a `cgroup` mount): mount a tmpfs at
//! `/sys/fs/cgroup` (pure v2: nothing, bind the single directory there), then for every
//! [`CgroupMount`] bind-mount `host_dir` (the container's own cgroup) onto
//! `/sys/fs/cgroup/<mount_point_name>` (read-only unless the spec says otherwise), and create each
//! of `symlinks` as `/sys/fs/cgroup/<link> -> <mount_point_name>` (co-mounted controllers such as
//! `cpu,cpuacct` are also reachable as `cpu` and `cpuacct`).
//!
//! Inside a cgroup namespace (the init has already joined its cgroup and unshared): mount real
//! filesystems instead, `mount -t <fstype> -o <options> <fstype> /sys/fs/cgroup/<name>`; the
//! kernel then shows the container's cgroup as the root.
//!
//! On pure v2 the single entry has `mount_point_name` empty: it goes to `/sys/fs/cgroup` itself
//! (no tmpfs). On hybrid hosts the cgroup2 entry is named after its host mount point
//! (`unified`).

use std::path::PathBuf;

use super::{CgroupMode, CgroupState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: &'static str,
    /// The container's cgroup directory in this hierarchy on the host (bind source).
    pub host_dir: PathBuf,
    /// Mount data for a real mount: `cpu,cpuacct`, `name=systemd`, empty for cgroup2.
    pub options: String,
    /// The directory under /sys/fs/cgroup in the container (empty: /sys/fs/cgroup itself).
    pub mount_point_name: String,
    /// Extra names under /sys/fs/cgroup to symlink to `mount_point_name`.
    pub symlinks: Vec<String>,
}

/// The mounts for the container described by `st`.
pub(crate) fn for_state(st: &CgroupState) -> Vec<CgroupMount> {
    let mut out = Vec::with_capacity(st.hierarchies.len());
    for h in &st.hierarchies {
        let base = h
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if h.is_v2() {
            out.push(CgroupMount {
                fstype: "cgroup2",
                host_dir: h.dir.clone(),
                options: String::new(),
                mount_point_name: if st.mode == CgroupMode::V2 {
                    String::new()
                } else {
                    base
                },
                symlinks: Vec::new(),
            });
            continue;
        }
        let symlinks = if base.contains(',') {
            base.split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        out.push(CgroupMount {
            fstype: "cgroup",
            host_dir: h.dir.clone(),
            options: h.controllers.clone(),
            mount_point_name: base,
            symlinks,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Hierarchy;

    fn hybrid_state() -> CgroupState {
        CgroupState {
            path: "/c".into(),
            mode: CgroupMode::Hybrid,
            hierarchies: vec![
                Hierarchy {
                    controllers: "cpu,cpuacct".into(),
                    mount_point: "/sys/fs/cgroup/cpu,cpuacct".into(),
                    dir: "/sys/fs/cgroup/cpu,cpuacct/c".into(),
                    noprefix: false,
                },
                Hierarchy {
                    controllers: "name=systemd".into(),
                    mount_point: "/sys/fs/cgroup/systemd".into(),
                    dir: "/sys/fs/cgroup/systemd/c".into(),
                    noprefix: false,
                },
                Hierarchy {
                    controllers: String::new(),
                    mount_point: "/sys/fs/cgroup/unified".into(),
                    dir: "/sys/fs/cgroup/unified/c".into(),
                    noprefix: false,
                },
            ],
            created: vec![],
            systemd: None,
        }
    }

    #[test]
    fn hybrid_mounts() {
        let m = for_state(&hybrid_state());
        assert_eq!(m[0].mount_point_name, "cpu,cpuacct");
        assert_eq!(m[0].symlinks, vec!["cpu", "cpuacct"]);
        assert_eq!(m[1].options, "name=systemd");
        assert_eq!(m[1].mount_point_name, "systemd");
        assert_eq!(m[2].fstype, "cgroup2");
        assert_eq!(m[2].mount_point_name, "unified");
    }

    #[test]
    fn join_plan_without_a_hierarchy_that_could_not_be_made() {
        let j = crate::cgroups::join_plan(&hybrid_state());
        assert_eq!(j.v2_dir, Some(PathBuf::from("/sys/fs/cgroup/unified/c")));
        assert_eq!(j.v1_tasks.len(), 2);
        let w = j.without(&[PathBuf::from("/sys/fs/cgroup/systemd/c")]);
        assert_eq!(
            w.v1_tasks,
            vec![(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c/tasks"), false)]
        );
        assert_eq!(w.v2_dir, j.v2_dir);
        assert_eq!(j.without(&[]).v1_tasks, j.v1_tasks);
    }
}
