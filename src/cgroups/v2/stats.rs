//! Statistics from a cgroup v2 directory, converted to runc's `events` schema the way runc does.

use std::path::Path;

use crate::cgroups::error::Result;
use crate::cgroups::fs;
use crate::cgroups::hugetlb;
use crate::cgroups::stats::{parse_cpu_list, BlkioEntry, Hugetlb, MemoryEntry, Pids, Stats};

pub(crate) fn collect(dir: &Path) -> Result<Stats> {
    let mut st = Stats::default();
    if let Some(s) = fs::read_opt(dir, "cpu.stat")? {
        for (k, v) in fs::key_values(&s) {
            match k {
                "usage_usec" => st.cpu.usage.total = v.saturating_mul(1000),
                "user_usec" => st.cpu.usage.user = v.saturating_mul(1000),
                "system_usec" => st.cpu.usage.kernel = v.saturating_mul(1000),
                "nr_periods" => st.cpu.throttling.periods = v,
                "nr_throttled" => st.cpu.throttling.throttled_periods = v,
                "throttled_usec" => st.cpu.throttling.throttled_time = v.saturating_mul(1000),
                _ => {}
            }
        }
    }
    if let Some(s) = fs::read_opt(dir, "cpuset.cpus.effective")? {
        st.cpuset.cpus = parse_cpu_list(&s);
    }
    if let Some(s) = fs::read_opt(dir, "cpuset.mems.effective")? {
        st.cpuset.mems = parse_cpu_list(&s);
    }
    memory(dir, &mut st)?;
    st.pids = match crate::cgroups::pids::stats(dir)? {
        Some(p) => p,
        None => Pids {
            current: fs::read_procs(dir).map(|p| p.len() as u64).unwrap_or(0),
            limit: 0,
        },
    };
    if let Some(s) = fs::read_opt(dir, "io.stat")? {
        io(&s, &mut st);
    }
    hugetlb_v2(dir, &mut st)?;
    Ok(st)
}

fn memory(dir: &Path, st: &mut Stats) -> Result<()> {
    let Some(current) = fs::read_u64_opt(dir, "memory.current")? else {
        return Ok(());
    };
    if let Some(s) = fs::read_opt(dir, "memory.stat")? {
        st.memory.raw = fs::key_values(&s)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    }
    st.memory.cache = st.memory.raw.get("file").copied().unwrap_or(0);
    let failcnt = fs::read_opt(dir, "memory.events")?
        .and_then(|s| {
            fs::key_values(&s)
                .find(|(k, _)| *k == "max")
                .map(|(_, v)| v)
        })
        .unwrap_or(0);
    st.memory.usage = MemoryEntry {
        limit: fs::read_u64_opt(dir, "memory.max")?.unwrap_or(u64::MAX),
        usage: current,
        max: fs::read_u64_opt(dir, "memory.peak")?.unwrap_or(0),
        failcnt,
    };
    // v1 compatibility: swap is reported as memory+swap, without a peak.
    if let Some(swap) = fs::read_u64_opt(dir, "memory.swap.current")? {
        let limit = fs::read_u64_opt(dir, "memory.swap.max")?.unwrap_or(u64::MAX);
        st.memory.swap = MemoryEntry {
            limit: if limit == u64::MAX || st.memory.usage.limit == u64::MAX {
                u64::MAX
            } else {
                limit + st.memory.usage.limit
            },
            usage: swap + current,
            max: 0,
            failcnt: 0,
        };
    }
    Ok(())
}

fn io(s: &str, st: &mut Stats) {
    for line in s.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut st.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut st.blkio.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut st.blkio.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut st.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut st.blkio.io_serviced_recursive, "Write"),
                "dios" => (&mut st.blkio.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
}

/// Hugetlb usage from a cgroup2 directory (pure v2, or hybrid hosts with hugetlb on cgroup2).
pub(crate) fn hugetlb_v2(dir: &Path, st: &mut Stats) -> Result<()> {
    for size in hugetlb::sizes() {
        let Some(usage) = fs::read_u64_opt(dir, &format!("hugetlb.{size}.current"))? else {
            continue;
        };
        let failcnt = fs::read_opt(dir, &format!("hugetlb.{size}.events"))?
            .and_then(|s| {
                fs::key_values(&s)
                    .find(|(k, _)| *k == "max")
                    .map(|(_, v)| v)
            })
            .unwrap_or(0);
        st.hugetlb.insert(
            size,
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat() {
        let mut st = Stats::default();
        io(
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            &mut st,
        );
        assert_eq!(st.blkio.io_service_bytes_recursive.len(), 3);
        assert_eq!(st.blkio.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(st.blkio.io_serviced_recursive[0].value, 1);
    }
}
