//! v1 cpu controller (CFS bandwidth, shares, idle, real-time budget).

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

pub(crate) fn is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
        || c.burst().is_some()
}

pub(crate) fn is_set_cpuset(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

fn is_einval(e: &CgroupError) -> bool {
    e.errno() == Some(libc::EINVAL)
}

/// The kernel clamps shares silently; refuse values it would change (runc reads back instead).
pub(crate) fn check_shares(s: u64) -> Result<()> {
    const MIN: u64 = 2;
    const MAX: u64 = 262_144;
    if s < MIN {
        return Err(CgroupError::msg(format!(
            "cpu.shares {s}: the minimum allowed cpu-shares is {MIN}"
        )));
    }
    if s > MAX {
        return Err(CgroupError::msg(format!(
            "cpu.shares {s}: the maximum allowed cpu-shares is {MAX}"
        )));
    }
    Ok(())
}

/// Writes `first`; if the kernel refuses it with EINVAL and `then` is going to be written, the
/// pair is written the other way round (periods vs. quotas must fit the parent at every step).
fn pair(dir: &Path, first: Option<(&str, String)>, then: Option<(&str, String)>) -> Result<()> {
    let mut retry = None;
    if let Some((f, v)) = &first {
        match fs::write(dir, f, v) {
            Err(e) if is_einval(&e) && then.is_some() => retry = Some((*f, v.clone())),
            r => r?,
        }
    }
    if let Some((f, v)) = &then {
        fs::write(dir, f, v)?;
    }
    if let Some((f, v)) = retry {
        fs::write(dir, f, &v)?;
    }
    Ok(())
}

/// Real-time budget: must be in place before a SCHED_RR/FIFO task joins.
fn set_rt(dir: &Path, c: &LinuxCpu) -> Result<()> {
    pair(
        dir,
        c.realtime_period()
            .map(|v| ("cpu.rt_period_us", v.to_string())),
        c.realtime_runtime()
            .map(|v| ("cpu.rt_runtime_us", v.to_string())),
    )
}

pub(crate) fn apply(dir: &Path, c: &LinuxCpu, fresh: bool) -> Result<()> {
    if let Some(s) = c.shares() {
        check_shares(s)?;
        fs::write(dir, "cpu.shares", &s.to_string())?;
    }
    // Period and burst first; one the kernel refuses (EINVAL: it does not fit the current quota)
    // is written again after the quota, as runc does.
    let quota = c.quota().filter(|&q| !(fresh && q < 0));
    let mut retry: Vec<(&str, String)> = Vec::new();
    let firsts = [
        c.period().map(|p| ("cpu.cfs_period_us", p.to_string())),
        c.burst().map(|b| ("cpu.cfs_burst_us", b.to_string())),
    ];
    for (f, v) in firsts.into_iter().flatten() {
        match fs::write(dir, f, &v) {
            Err(e) if is_einval(&e) && quota.is_some() => retry.push((f, v)),
            // Kernels before 5.14 have no burst; runc ignores it there.
            Err(e) if e.is_not_found() && f == "cpu.cfs_burst_us" => {}
            r => r?,
        }
    }
    if let Some(q) = quota {
        fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
        for (f, v) in retry {
            fs::write(dir, f, &v)?;
        }
    }
    if let Some(i) = c.idle() {
        fs::write(dir, "cpu.idle", &i.to_string())?;
    }
    set_rt(dir, c)
}
