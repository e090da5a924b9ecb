//! v1 hugetlb controller.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::error::Result;
use crate::cgroups::fs;
use crate::cgroups::hugetlb::check_page_size;

pub(crate) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    let mut rsvd = true;
    for l in limits {
        check_page_size(l.page_size())?;
        let v = l.limit().to_string();
        let size = l.page_size();
        fs::write(dir, &format!("hugetlb.{size}.limit_in_bytes"), &v)?;
        // Reservation limits (5.7+) too, so that reserved-but-unfaulted pages count.
        if rsvd {
            match fs::write(dir, &format!("hugetlb.{size}.rsvd.limit_in_bytes"), &v) {
                Err(e) if e.is_not_found() => rsvd = false,
                r => r?,
            }
        }
    }
    Ok(())
}
