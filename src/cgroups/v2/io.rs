//! v2 io controller: weights (BFQ's `io.bfq.weight` when present, else `io.weight` with runc's
//! linear conversion from the v1 range) and `io.max` throttling.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::controllers::{missing, write};
use crate::cgroups::error::Result;
use crate::cgroups::fs::{self, Writer};

pub(crate) use crate::cgroups::v1::blkio::is_set;

const R: &str = "blockIO limits";

/// v1 blkio weight [10, 1000] to v2 io.weight [1, 10000]: 1 + (w − 10) · 9999 / 990.
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    let w = u64::from(w.max(10));
    1 + (w - 10) * 9999 / 990
}

fn throttle(
    w: &mut Option<Writer>,
    dir: &Path,
    key: &str,
    devs: &Option<Vec<LinuxThrottleDevice>>,
) -> Result<()> {
    for d in devs.iter().flatten() {
        if w.is_none() {
            *w = Some(Writer::open(dir, "io.max").map_err(|e| missing(dir, "io", R, e))?);
        }
        if let Some(w) = w.as_mut() {
            w.write(&format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()))?;
        }
    }
    Ok(())
}

pub(crate) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let devices = b.weight_device().as_deref().unwrap_or(&[]);
    let want_bfq = b.weight().is_some() || devices.iter().any(|d| d.weight().is_some());
    // io.bfq.weight reads "default N" (plus per-device lines) on kernels that take per-device
    // BFQ weights (5.4+), a bare number before.
    let bfq = if want_bfq {
        fs::read_opt(dir, "io.bfq.weight")?
    } else {
        None
    };
    if let Some(w) = b.weight() {
        match &bfq {
            Some(_) => fs::write(dir, "io.bfq.weight", &w.to_string())?,
            None => write(
                dir,
                "io",
                R,
                "io.weight",
                &blkio_weight_to_io_weight(w).to_string(),
            )?,
        }
    }
    let bfq_per_device = bfq
        .as_deref()
        .is_some_and(|s| s.trim().parse::<u64>().is_err());
    for d in devices {
        if let Some(w) = d.weight() {
            if bfq_per_device {
                fs::write(
                    dir,
                    "io.bfq.weight",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            } else {
                write(
                    dir,
                    "io",
                    R,
                    "io.weight",
                    &format!(
                        "{}:{} {}",
                        d.major(),
                        d.minor(),
                        blkio_weight_to_io_weight(w)
                    ),
                )?;
            }
        }
        // leafWeight has no v2 counterpart (skipped, as runc does).
    }
    let mut w = None;
    throttle(&mut w, dir, "rbps", b.throttle_read_bps_device())?;
    throttle(&mut w, dir, "wbps", b.throttle_write_bps_device())?;
    throttle(&mut w, dir, "riops", b.throttle_read_iops_device())?;
    throttle(&mut w, dir, "wiops", b.throttle_write_iops_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }
}
