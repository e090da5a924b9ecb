//! `destroy`: removing exactly the directories `create` made.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::error::Result;
use super::fs;
use super::CgroupState;

/// A container's own directory (as opposed to an intermediate one `create` made above it).
pub(crate) fn is_leaf(st: &CgroupState, d: &Path) -> bool {
    st.hierarchies.iter().any(|h| h.dir == d)
}

/// `CgroupManager::destroy`: removes what `create` made, waiting (bounded) for it to empty.
pub(crate) fn destroy(st: &CgroupState) -> Result<()> {
    remove_created(&st.created, |d| is_leaf(st, d))
}

/// `CgroupManager::destroy_if_empty`. A cgroup the container joined but did not create is never
/// removed, so an rmdir cannot tell whether it is empty: false then.
pub(crate) fn destroy_if_empty(st: &CgroupState) -> bool {
    st.hierarchies.iter().all(|h| st.created.contains(&h.dir))
        && remove_created_if_empty(&st.created, |d| is_leaf(st, d))
}

/// Removes `created` deepest first. A container's own directory (`is_leaf`) goes with any
/// sub-cgroups made inside it, waiting up to [`fs::REMOVE_TIMEOUT`] for its processes to leave; an
/// intermediate directory only if nothing else uses it now. Errors do not stop the sweep; the
/// first one is returned.
pub(crate) fn remove_created(created: &[PathBuf], is_leaf: impl Fn(&Path) -> bool) -> Result<()> {
    let deadline = Instant::now() + fs::REMOVE_TIMEOUT;
    let mut first = None;
    for d in created.iter().rev() {
        let r = if is_leaf(d) {
            fs::remove_tree(d, deadline)
        } else {
            fs::remove_if_unused(d)
        };
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// One pass of `rmdir`s over `created` (deepest first) that stops at the first directory still in
/// use. An `rmdir` that succeeds proves the cgroup had no process (and none can join it any
/// more), so this is the cheap way to destroy a cgroup whose processes are gone: no freeze, no
/// listing. Returns whether everything went.
fn remove_created_if_empty(created: &[PathBuf], is_leaf: impl Fn(&Path) -> bool) -> bool {
    created.iter().rev().all(|d| {
        if is_leaf(d) {
            match std::fs::remove_dir(d) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            }
        } else {
            fs::remove_if_unused(d).is_ok()
        }
    })
}
