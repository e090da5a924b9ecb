//! What `create` checks about the container's cgroup before it makes anything (as runc does):
//! a cgroup that already holds processes is refused (runc ≥ 1.2), and so is one that is frozen —
//! an init placed there would stop in the freezer and `create`/`run -d` would never return.

use super::error::{CgroupError, Result};
use super::fs;
use super::CgroupState;
use std::collections::BTreeSet;
use std::path::Path;

/// Refuses a container cgroup that is not empty or is frozen (in any of its hierarchies; a
/// directory that does not exist yet inherits the freezer state of its nearest existing
/// ancestor, so that one is asked).
pub fn check_new_container_cgroup(st: &CgroupState) -> Result<()> {
    let mut pids = BTreeSet::new();
    for h in &st.hierarchies {
        let mut found = Vec::new();
        fs::procs_recursive(&h.dir, &mut found)?;
        pids.extend(found);
    }
    if !pids.is_empty() {
        return Err(CgroupError::msg(format!(
            "container's cgroup is not empty: {} process(es) found",
            pids.len()
        )));
    }
    for h in &st.hierarchies {
        let freezer = if h.is_v2() { true } else { h.has("freezer") };
        if freezer && frozen(&h.dir, &h.mount_point, h.is_v2()) {
            return Err(CgroupError::msg("container's cgroup unexpectedly frozen"));
        }
    }
    Ok(())
}

/// The freezer state of `dir`, or of its nearest existing ancestor below the hierarchy's root
/// (the root cgroup cannot be frozen).
fn frozen(dir: &Path, mount_point: &Path, v2: bool) -> bool {
    let mut d = Some(dir);
    while let Some(cur) = d {
        if cur == mount_point || !cur.starts_with(mount_point) {
            return false;
        }
        if cur.is_dir() {
            return if v2 {
                // `frozen 1` in cgroup.events also covers a frozen ancestor.
                std::fs::read_to_string(cur.join("cgroup.events"))
                    .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
                    || std::fs::read_to_string(cur.join("cgroup.freeze"))
                        .is_ok_and(|s| s.trim() == "1")
            } else {
                std::fs::read_to_string(cur.join("freezer.state"))
                    .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
            };
        }
        d = cur.parent();
    }
    false
}
