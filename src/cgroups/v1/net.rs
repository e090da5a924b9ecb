//! v1 net_cls and net_prio controllers.

use std::path::Path;

use oci_spec::runtime::LinuxInterfacePriority;

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs::{self, Writer};

pub(crate) fn apply_classid(dir: &Path, class_id: u32) -> Result<()> {
    fs::write(dir, "net_cls.classid", &class_id.to_string())
}

pub(crate) fn apply_priorities(dir: &Path, prios: &[LinuxInterfacePriority]) -> Result<()> {
    let mut w = Writer::open(dir, "net_prio.ifpriomap")?;
    for p in prios {
        if p.name().is_empty() || p.name().contains(char::is_whitespace) {
            return Err(CgroupError::msg(format!(
                "invalid network priority interface name {:?}",
                p.name()
            )));
        }
        w.write(&format!("{} {}", p.name(), p.priority()))?;
    }
    Ok(())
}
