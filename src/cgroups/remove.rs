//! `destroy`: removing exactly the directories `create` made.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::error::Result;
use super::fs;

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
