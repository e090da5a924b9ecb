//! v1 cpuset controller. A new v1 cpuset cgroup starts with empty `cpus` and `mems`, and no task
//! can join it (ENOSPC) until both are set, so every directory `create` makes here first gets its
//! parent's values (unless the config sets the leaf's own).

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::error::Result;
use crate::cgroups::fs;

/// `cpuset.<name>`, or just `<name>` on a hierarchy mounted with `noprefix`.
pub(crate) fn file(noprefix: bool, name: &str) -> String {
    if noprefix {
        name.to_string()
    } else {
        format!("cpuset.{name}")
    }
}

fn wanted(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

pub(crate) fn apply(dir: &Path, noprefix: bool, c: &LinuxCpu) -> Result<()> {
    if let Some(v) = wanted(c.cpus()) {
        fs::write(dir, &file(noprefix, "cpus"), v)?;
    }
    if let Some(v) = wanted(c.mems()) {
        fs::write(dir, &file(noprefix, "mems"), v)?;
    }
    Ok(())
}

/// Gives the directories just created in the cpuset hierarchy (parents first) their parent's
/// `cpus`/`mems`; a joined leaf that has none gets them too.
pub(crate) fn init_dirs(
    created: &[PathBuf],
    leaf: &Path,
    noprefix: bool,
    cfg: Option<&LinuxCpu>,
) -> Result<()> {
    let cpus_f = file(noprefix, "cpus");
    let mems_f = file(noprefix, "mems");
    let leaf_cpus = cfg.and_then(|c| wanted(c.cpus())).is_some();
    let leaf_mems = cfg.and_then(|c| wanted(c.mems())).is_some();
    let Some(first) = created.first() else {
        // Joined an existing cgroup: copy only if it is empty.
        let Some(parent) = leaf.parent() else {
            return Ok(());
        };
        for (f, set) in [(&cpus_f, leaf_cpus), (&mems_f, leaf_mems)] {
            if !set && fs::read(leaf, f)?.trim().is_empty() {
                let v = fs::read(parent, f)?;
                fs::write(leaf, f, v.trim())?;
            }
        }
        return Ok(());
    };
    let Some(parent) = first.parent() else {
        return Ok(());
    };
    let cpus = fs::read(parent, &cpus_f)?;
    let mems = fs::read(parent, &mems_f)?;
    for d in created {
        let is_leaf = d == leaf;
        if !(is_leaf && leaf_cpus) {
            fs::write(d, &cpus_f, cpus.trim())?;
        }
        if !(is_leaf && leaf_mems) {
            fs::write(d, &mems_f, mems.trim())?;
        }
    }
    Ok(())
}
