//! RFC 3339 timestamps (UTC) without a date-time dependency: state's `created`, log lines.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

fn format(secs: i64, nanos: Option<u32>) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (h, mi, se) = (s / 3600, (s % 3600) / 60, s % 60);
    match nanos {
        Some(n) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{n:09}Z"),
        None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z"),
    }
}

/// `2026-11-23T10:33:28.123456789Z`, as runc writes `created`.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let (s, n) = split(t);
    format(s, Some(n))
}

/// `2026-11-23T10:33:28Z`, as logrus writes `time`.
pub fn rfc3339(t: SystemTime) -> String {
    format(split(t).0, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(t(1_795_430_008)), "2026-11-23T10:33:28Z");
        assert_eq!(
            rfc3339_nanos(t(4_102_444_799) + Duration::from_nanos(5)),
            "2099-12-31T23:59:59.000000005Z"
        );
    }
}
