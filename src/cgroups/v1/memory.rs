//! v1 memory controller.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub(crate) fn is_set(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some()
}

fn errno(e: &CgroupError) -> i32 {
    e.errno().unwrap_or(0)
}

fn set_limit(dir: &Path, v: i64) -> Result<()> {
    match fs::write(dir, LIMIT, &v.to_string()) {
        Err(e) if errno(&e) == libc::EBUSY => {
            let usage = fs::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            let peak = fs::read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(0);
            Err(CgroupError::msg(format!(
                "unable to set memory limit to {v} (current usage: {usage}, peak usage: {peak})"
            )))
        }
        r => r,
    }
}

fn set_swap(dir: &Path, v: i64) -> Result<()> {
    match fs::write(dir, MEMSW, &v.to_string()) {
        // No swap accounting: "unlimited" is what we have anyway.
        Err(e) if e.is_not_found() && v == -1 => Ok(()),
        Err(e) if e.is_not_found() => Err(CgroupError::unsupported(
            "memory.swap",
            format!("swap accounting is disabled on this host ({MEMSW} is missing)"),
        )),
        r => r,
    }
}

/// Memory and memory+swap limits, in an order the kernel accepts (memsw must stay ≥ limit).
fn set_limits(dir: &Path, limit: Option<i64>, swap: Option<i64>, fresh: bool) -> Result<()> {
    // Unlimited memory with swap unset means unlimited swap too (runc).
    let swap = match (limit, swap) {
        (Some(-1), None) => Some(-1),
        (_, s) => s,
    };
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(CgroupError::msg(format!(
                "memory+swap limit ({s}) should be >= memory limit ({l})"
            )));
        }
    }
    // A fresh cgroup is unlimited already.
    let limit = limit.filter(|&v| !(fresh && v == -1));
    let swap = swap.filter(|&v| !(fresh && v == -1));
    match (limit, swap) {
        (None, None) => Ok(()),
        (Some(l), None) => set_limit(dir, l),
        (None, Some(s)) => set_swap(dir, s),
        (Some(l), Some(s)) if s == -1 => {
            set_swap(dir, s)?;
            set_limit(dir, l)
        }
        (Some(l), Some(s)) => match set_limit(dir, l) {
            Ok(()) => set_swap(dir, s),
            // The new limit is above the current memsw limit: raise memsw first.
            Err(e) if errno(&e) == libc::EINVAL => {
                set_swap(dir, s)?;
                set_limit(dir, l)
            }
            Err(e) => Err(e),
        },
    }
}

pub(crate) fn apply(dir: &Path, m: &LinuxMemory, fresh: bool) -> Result<()> {
    if !fresh && m.check_before_update() == Some(true) {
        let usage = fs::read_u64(dir, "memory.usage_in_bytes")?;
        for (what, v) in [("memory", m.limit()), ("memory+swap", m.swap())] {
            if let Some(v) = v.filter(|&v| v > 0) {
                if v as u64 <= usage {
                    return Err(CgroupError::msg(format!(
                        "rejecting {what} limit {v} <= usage {usage}"
                    )));
                }
            }
        }
    }
    set_limits(dir, m.limit(), m.swap(), fresh)?;
    if let Some(v) = m.reservation() {
        if !(fresh && v == -1) {
            fs::write(dir, "memory.soft_limit_in_bytes", &v.to_string())?;
        }
    }
    if let Some(v) = m.kernel() {
        // Kernel memory limits are deprecated (5.4) and gone (no-op or rejected) on new
        // kernels; runc ignores them entirely. Written where the kernel still takes them.
        match fs::write(dir, "memory.kmem.limit_in_bytes", &v.to_string()) {
            Err(e)
                if e.is_not_found()
                    || matches!(errno(&e), libc::EINVAL | libc::EOPNOTSUPP | libc::EBUSY) => {}
            r => r?,
        }
    }
    if let Some(v) = m.kernel_tcp() {
        match fs::write(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string()) {
            Err(e) if e.is_not_found() || errno(&e) == libc::EOPNOTSUPP => {}
            r => r?,
        }
    }
    if let Some(v) = m.swappiness() {
        if v > 100 {
            return Err(CgroupError::msg(format!(
                "invalid memory swappiness value: {v} (valid range is 0-100)"
            )));
        }
        fs::write(dir, "memory.swappiness", &v.to_string())?;
    }
    match m.disable_oom_killer() {
        Some(true) => fs::write(dir, "memory.oom_control", "1")?,
        Some(false) if !fresh => fs::write(dir, "memory.oom_control", "0")?,
        _ => {}
    }
    if let Some(h) = m.use_hierarchy() {
        match fs::write(dir, "memory.use_hierarchy", if h { "1" } else { "0" }) {
            // Modern kernels are always hierarchical and refuse 0.
            Err(e) if errno(&e) == libc::EINVAL => {}
            r => r?,
        }
    }
    Ok(())
}
