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

/// The `cpus`/`mems` of `dir`; an empty one (a directory another runtime is still setting up,
/// or one made without values) first gets its own parent's, up to the mount point.
fn ensure_filled(dir: &Path, stop: &Path, cpus_f: &str, mems_f: &str) -> Result<(String, String)> {
    let cpus = fs::read(dir, cpus_f)?.trim().to_string();
    let mems = fs::read(dir, mems_f)?.trim().to_string();
    if (!cpus.is_empty() && !mems.is_empty()) || dir == stop {
        return Ok((cpus, mems));
    }
    let Some(parent) = dir.parent().filter(|p| p.starts_with(stop)) else {
        return Ok((cpus, mems));
    };
    let (pc, pm) = ensure_filled(parent, stop, cpus_f, mems_f)?;
    let cpus = if cpus.is_empty() {
        fs::write(dir, cpus_f, &pc)?;
        pc
    } else {
        cpus
    };
    let mems = if mems.is_empty() {
        fs::write(dir, mems_f, &pm)?;
        pm
    } else {
        mems
    };
    Ok((cpus, mems))
}

/// Gives the directories just created in the cpuset hierarchy mounted at `stop` (parents first)
/// their parent's `cpus`/`mems` (the leaf keeps what the config sets); a joined leaf that has
/// none gets them too.
pub(crate) fn init_dirs(
    created: &[PathBuf],
    leaf: &Path,
    stop: &Path,
    noprefix: bool,
    cfg: Option<&LinuxCpu>,
) -> Result<()> {
    let cpus_f = file(noprefix, "cpus");
    let mems_f = file(noprefix, "mems");
    let leaf_cpus = cfg.and_then(|c| wanted(c.cpus())).is_some();
    let leaf_mems = cfg.and_then(|c| wanted(c.mems())).is_some();
    let first = created.first().map(PathBuf::as_path).unwrap_or(leaf);
    let Some(parent) = first.parent() else {
        return Ok(());
    };
    if created.is_empty() {
        // Joined an existing cgroup: fill only what is empty.
        let cpus = fs::read(leaf, &cpus_f)?;
        let mems = fs::read(leaf, &mems_f)?;
        let need_cpus = !leaf_cpus && cpus.trim().is_empty();
        let need_mems = !leaf_mems && mems.trim().is_empty();
        if need_cpus || need_mems {
            let (pc, pm) = ensure_filled(parent, stop, &cpus_f, &mems_f)?;
            if need_cpus {
                fs::write(leaf, &cpus_f, &pc)?;
            }
            if need_mems {
                fs::write(leaf, &mems_f, &pm)?;
            }
        }
        return Ok(());
    }
    let (cpus, mems) = ensure_filled(parent, stop, &cpus_f, &mems_f)?;
    for d in created {
        let is_leaf = d == leaf;
        if !(is_leaf && leaf_cpus) {
            fs::write(d, &cpus_f, &cpus)?;
        }
        if !(is_leaf && leaf_mems) {
            fs::write(d, &mems_f, &mems)?;
        }
    }
    Ok(())
}
