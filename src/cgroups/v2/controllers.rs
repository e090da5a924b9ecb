//! Enabling controllers along a cgroup v2 path (`cgroup.subtree_control` of every ancestor), and
//! errors that name a controller a resource needs but the cgroup lacks.

use std::path::Path;

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

/// The controllers available in `dir` (its `cgroup.controllers`).
pub(crate) fn available(dir: &Path) -> Result<Vec<String>> {
    Ok(fs::read(dir, "cgroup.controllers")?
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect())
}

/// Writes `+c` for each controller into `cgroup.subtree_control` of `root` and of every directory
/// between it and `dir` (excluding `dir` itself): one write per level, falling back to one write
/// per controller where the combined one is refused. With `strict`, a controller that cannot be
/// enabled is an error; otherwise it is left to the resource writes to complain (like runc: the
/// runtime may sit in a cgroup that cannot delegate everything).
pub(crate) fn enable(root: &Path, dir: &Path, controllers: &[String], strict: bool) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(CgroupError::msg(format!(
            "{} is not inside the cgroup2 mount {}",
            dir.display(),
            root.display()
        )));
    };
    let all: String = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut level = root.to_path_buf();
    let mut comps = rel.components().peekable();
    loop {
        if let Err(e) = fs::write(&level, "cgroup.subtree_control", &all) {
            if controllers.len() == 1 {
                if strict {
                    return Err(e);
                }
            } else {
                for c in controllers {
                    let r = fs::write(&level, "cgroup.subtree_control", &format!("+{c}"));
                    if strict {
                        r?;
                    }
                }
            }
        }
        match comps.next() {
            Some(c) if comps.peek().is_some() => level.push(c),
            _ => break,
        }
    }
    Ok(())
}

/// Maps ENOENT on a controller's file to an error naming the missing controller.
pub(crate) fn missing(dir: &Path, controller: &str, resource: &str, e: CgroupError) -> CgroupError {
    if !e.is_not_found() {
        return e;
    }
    match available(dir) {
        Ok(av) if !av.iter().any(|c| c == controller) => CgroupError::unsupported(
            resource,
            format!(
                "the cgroup v2 controller {controller:?} is not available in {}",
                dir.display()
            ),
        ),
        _ => e,
    }
}

/// Writes a controller file, naming the controller if it is not enabled.
pub(crate) fn write(
    dir: &Path,
    controller: &str,
    resource: &str,
    file: &str,
    value: &str,
) -> Result<()> {
    fs::write(dir, file, value).map_err(|e| missing(dir, controller, resource, e))
}
