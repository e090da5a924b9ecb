//! v2 cpu and cpuset controllers: `cpu.weight` (from v1 shares), `cpu.max`, `cpu.max.burst`,
//! `cpu.idle`, `cpuset.cpus`/`cpuset.mems`.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use super::controllers::write;
use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

pub(crate) fn is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.idle().is_some()
        || c.burst().is_some()
}

/// v1 shares [2, 262144] (default 1024) to v2 weight [1, 10000] (default 100): the quadratic
/// function of log2(shares) that maps 2 → 1, 1024 → 100 and 262144 → 10000 (runc ≥ 1.3,
/// crun ≥ 1.23), rounded up. 0 stays 0 (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

pub(crate) fn apply(dir: &Path, c: &LinuxCpu, fresh: bool) -> Result<()> {
    const R: &str = "cpu limits";
    if let Some(i) = c.idle() {
        write(dir, "cpu", R, "cpu.idle", &i.to_string())?;
    }
    if let Some(s) = c.shares() {
        let w = shares_to_weight(s);
        if w != 0 {
            write(dir, "cpu", R, "cpu.weight", &w.to_string())?;
        }
    }
    let quota = c.quota().map(|q| {
        if q > 0 {
            q.to_string()
        } else {
            "max".to_string()
        }
    });
    // Burst first; if it does not fit the current quota, again after cpu.max.
    let mut burst_retry = None;
    if let Some(b) = c.burst() {
        let b = b.to_string();
        match write(dir, "cpu", R, "cpu.max.burst", &b) {
            Err(e) if e.errno() == Some(libc::EINVAL) && quota.is_some() => burst_retry = Some(b),
            r => r?,
        }
    }
    let max = match (quota, c.period()) {
        (Some(q), Some(p)) => Some(format!("{q} {p}")),
        // The kernel keeps the period when only the quota is written.
        (Some(q), None) if !(fresh && q == "max") => Some(q),
        (Some(_), None) => None,
        (None, Some(p)) => {
            // Keep the current quota.
            let q = if fresh {
                "max".to_string()
            } else {
                let cur = fs::read(dir, "cpu.max")?;
                cur.split_ascii_whitespace()
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| CgroupError::msg(format!("{}: empty cpu.max", dir.display())))?
            };
            Some(format!("{q} {p}"))
        }
        (None, None) => None,
    };
    if let Some(m) = max {
        write(dir, "cpu", R, "cpu.max", &m)?;
    }
    if let Some(b) = burst_retry {
        write(dir, "cpu", R, "cpu.max.burst", &b)?;
    }
    Ok(())
}

pub(crate) fn apply_cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    const R: &str = "cpu.cpus/cpu.mems";
    if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset", R, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset", R, "cpuset.mems", v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 59);
        assert!(shares_to_weight(100) < shares_to_weight(200));
    }
}
