//! Hugepage sizes: validating `hugepageLimits[].pageSize` (it becomes part of a file name) and
//! listing the host's sizes for statistics.

use super::error::{CgroupError, Result};

/// Checks a page size such as `2MB`, `1GB` or `64KB` (digits then KB/MB/GB).
pub(crate) fn check_page_size(s: &str) -> Result<()> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(CgroupError::msg(format!(
            "invalid hugepageLimits pageSize {s:?} (expected a size like 2MB or 1GB)"
        )));
    }
    Ok(())
}

/// The host's hugepage sizes in cgroup file notation (`2MB`, `1GB`), from
/// /sys/kernel/mm/hugepages/hugepages-<N>kB.
pub(crate) fn sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<(u64, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let kb: u64 = name
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, size_name(kb)))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

fn size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb % (1 << 20) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb % (1 << 10) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert!(check_page_size("2MB").is_ok());
        assert!(check_page_size("64KB").is_ok());
        assert!(check_page_size("../x").is_err());
        assert!(check_page_size("MB").is_err());
        assert!(check_page_size("2mb").is_err());
        assert_eq!(size_name(2048), "2MB");
        assert_eq!(size_name(1048576), "1GB");
        assert_eq!(size_name(64), "64KB");
    }
}
