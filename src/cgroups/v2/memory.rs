//! v2 memory controller: `memory.max`, `memory.swap.max` (swap only, unlike v1's memory+swap),
//! `memory.low`.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use super::controllers::write;
use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

pub(crate) fn is_set(m: &LinuxMemory) -> bool {
    m.limit().is_some() || m.reservation().is_some() || m.swap().is_some()
}

/// runc's conversion of the OCI memory+swap value to v2's swap-only limit (-1: max, 0: unset).
pub(crate) fn swap_v2(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 || memory == -1 {
        return Ok(swap);
    }
    if memory == 0 {
        return Err(CgroupError::msg(
            "unable to set swap limit without memory limit",
        ));
    }
    if memory < 0 {
        return Err(CgroupError::msg(format!("invalid memory value: {memory}")));
    }
    if swap < memory {
        return Err(CgroupError::msg(format!(
            "memory+swap limit ({swap}) should be >= memory limit ({memory})"
        )));
    }
    Ok(swap - memory)
}

fn value(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub(crate) fn apply(dir: &Path, m: &LinuxMemory, fresh: bool) -> Result<()> {
    const R: &str = "memory limits";
    if !fresh && m.check_before_update() == Some(true) {
        if let Ok(usage) = fs::read_u64(dir, "memory.current") {
            for (what, v) in [("memory+swap", m.swap()), ("memory", m.limit())] {
                if let Some(v) = v.filter(|&v| v > 0) {
                    if v as u64 <= usage {
                        return Err(CgroupError::msg(format!(
                            "rejecting {what} limit {v} <= usage {usage}"
                        )));
                    }
                }
            }
        }
    }
    let limit = m.limit().unwrap_or(0);
    let swap_in = m.swap().unwrap_or(0);
    let swap = swap_v2(swap_in, limit)?;
    // swap == 0 means "unset" unless memory and memory+swap were both given and equal
    // (no swap at all).
    let swap_str = match swap {
        0 if swap_in > 0 => Some("0".to_string()),
        0 => None,
        v => Some(value(v)),
    };
    if let Some(s) = swap_str.filter(|s| !(fresh && s == "max")) {
        match write(dir, "memory", R, "memory.swap.max", &s) {
            // No swap on this host: "max" and "0" are what it has anyway.
            Err(e) if e.is_not_found() && (s == "max" || s == "0") => {}
            r => r?,
        }
    }
    if limit != 0 && !(fresh && limit < 0) {
        write(dir, "memory", R, "memory.max", &value(limit))?;
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0 && !(fresh && r < 0)) {
        write(dir, "memory", R, "memory.low", &value(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_v2(300, 100).unwrap(), 200);
        assert_eq!(swap_v2(100, 100).unwrap(), 0);
        assert_eq!(swap_v2(300, -1).unwrap(), 300);
        assert!(swap_v2(50, 100).is_err());
        assert!(swap_v2(100, 0).is_err());
    }
}
