//! pids controller: `pids.max`, the same file on v1 and v2.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use super::error::Result;
use super::fs;

/// runc 1.1: a limit of 0 means "not set".
pub(crate) fn is_set(p: &LinuxPids) -> bool {
    p.limit() != 0
}

pub(crate) fn apply(dir: &Path, p: &LinuxPids, fresh: bool) -> Result<()> {
    match p.limit() {
        0 => Ok(()),
        l if l < 0 => {
            if fresh {
                Ok(())
            } else {
                fs::write(dir, "pids.max", "max")
            }
        }
        l => fs::write(dir, "pids.max", &l.to_string()),
    }
}

/// `pids.current` / `pids.max` (unlimited reported as 0, like runc); `None` without the files.
pub(crate) fn stats(dir: &Path) -> Result<Option<super::stats::Pids>> {
    let Some(current) = fs::read_u64_opt(dir, "pids.current")? else {
        return Ok(None);
    };
    let limit = fs::read_u64_opt(dir, "pids.max")?.unwrap_or(0);
    Ok(Some(super::stats::Pids {
        current,
        limit: if limit == u64::MAX { 0 } else { limit },
    }))
}
