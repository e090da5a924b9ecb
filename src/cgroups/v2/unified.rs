//! `linux.resources.unified`: cgroup v2 files written as given, after everything else.

use std::collections::HashMap;
use std::path::Path;

use super::controllers::missing;
use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

pub(crate) fn apply(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            return Err(CgroupError::msg(format!(
                "unified resource {k:?} must be a file name (no slashes)"
            )));
        }
        let Some((controller, _)) = k.split_once('.') else {
            return Err(CgroupError::msg(format!(
                "unified resource {k:?} must be in the form CONTROLLER.PARAMETER"
            )));
        };
        let resource = format!("unified resource {k:?}");
        fs::write(dir, k, &map[k]).map_err(|e| {
            if controller == "cgroup" {
                e
            } else {
                missing(dir, controller, &resource, e)
            }
        })?;
    }
    Ok(())
}
