//! `rdma.max` lines, identical on v1 and v2: `<device> hca_handle=<n> hca_object=<n>`.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::LinuxRdma;

use super::error::{CgroupError, Result};
use super::fs::Writer;

pub(crate) fn is_set(r: &HashMap<String, LinuxRdma>) -> bool {
    r.values()
        .any(|l| l.hca_handles().is_some() || l.hca_objects().is_some())
}

pub(crate) fn apply(dir: &Path, r: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut w: Option<Writer> = None;
    // Sorted for a deterministic order of writes.
    let mut devs: Vec<_> = r.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(CgroupError::msg(format!(
                "invalid rdma device name {dev:?}"
            )));
        }
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() == dev.len() {
            continue;
        }
        if w.is_none() {
            w = Some(Writer::open(dir, "rdma.max")?);
        }
        if let Some(w) = w.as_mut() {
            w.write(&line)?;
        }
    }
    Ok(())
}
