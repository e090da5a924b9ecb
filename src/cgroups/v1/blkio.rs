//! v1 blkio controller: weights (CFQ's `blkio.weight*` or BFQ's `blkio.bfq.weight*`) and
//! throttling.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs::{self, Writer};

pub(crate) fn is_set(b: &LinuxBlockIo) -> bool {
    let nonempty = |v: &Option<Vec<LinuxThrottleDevice>>| v.as_ref().is_some_and(|v| !v.is_empty());
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || nonempty(b.throttle_read_bps_device())
        || nonempty(b.throttle_write_bps_device())
        || nonempty(b.throttle_read_iops_device())
        || nonempty(b.throttle_write_iops_device())
}

/// Writes to `blkio.<name>`, falling back to `blkio.bfq.<name>` (kernels without CFQ).
fn write_weight(dir: &Path, name: &str, value: &str) -> Result<()> {
    match fs::write(dir, &format!("blkio.{name}"), value) {
        Err(e) if e.is_not_found() => match fs::write(dir, &format!("blkio.bfq.{name}"), value) {
            Err(e) if e.is_not_found() => Err(CgroupError::unsupported(
                format!("blockIO {name}"),
                format!(
                    "this host has neither blkio.{name} nor blkio.bfq.{name} (no CFQ/BFQ I/O scheduler)"
                ),
            )),
            r => r,
        },
        r => r,
    }
}

fn throttle(dir: &Path, file: &str, devs: &Option<Vec<LinuxThrottleDevice>>) -> Result<()> {
    let Some(devs) = devs.as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let mut w = Writer::open(dir, file)?;
    for d in devs {
        w.write(&format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
    }
    Ok(())
}

pub(crate) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight() {
        write_weight(dir, "weight", &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        fs::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write_weight(
                dir,
                "weight_device",
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            fs::write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
    }
    throttle(
        dir,
        "blkio.throttle.read_bps_device",
        b.throttle_read_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_bps_device",
        b.throttle_write_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.read_iops_device",
        b.throttle_read_iops_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_iops_device",
        b.throttle_write_iops_device(),
    )
}
