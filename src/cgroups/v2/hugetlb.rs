//! v2 hugetlb controller: `hugetlb.<size>.max` and, where the kernel has them,
//! `hugetlb.<size>.rsvd.max` (also used for hybrid hosts whose only hugetlb is on cgroup2).

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use super::controllers::write;
use crate::cgroups::error::Result;
use crate::cgroups::fs;
use crate::cgroups::hugetlb::check_page_size;

pub(crate) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    const R: &str = "hugepageLimits";
    let mut rsvd = true;
    for l in limits {
        check_page_size(l.page_size())?;
        let size = l.page_size();
        let v = if l.limit() < 0 {
            "max".to_string()
        } else {
            l.limit().to_string()
        };
        write(dir, "hugetlb", R, &format!("hugetlb.{size}.max"), &v)?;
        if rsvd {
            match fs::write(dir, &format!("hugetlb.{size}.rsvd.max"), &v) {
                Err(e) if e.is_not_found() => rsvd = false,
                r => r?,
            }
        }
    }
    Ok(())
}
