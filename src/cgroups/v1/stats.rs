//! Statistics from v1 hierarchies, in runc's `events` schema.

use std::path::Path;

use crate::cgroups::error::Result;
use crate::cgroups::fs;
use crate::cgroups::hugetlb;
use crate::cgroups::stats::{
    parse_cpu_list, BlkioEntry, Cpu, CpuSet, Hugetlb, Memory, MemoryEntry, Stats,
};

fn numbers(s: &str) -> Vec<u64> {
    s.split_ascii_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

pub(crate) fn cpu(cpu_dir: Option<&Path>, acct_dir: Option<&Path>) -> Result<Cpu> {
    let mut c = Cpu::default();
    if let Some(d) = cpu_dir {
        if let Some(s) = fs::read_opt(d, "cpu.stat")? {
            for (k, v) in fs::key_values(&s) {
                match k {
                    "nr_periods" => c.throttling.periods = v,
                    "nr_throttled" => c.throttling.throttled_periods = v,
                    "throttled_time" => c.throttling.throttled_time = v,
                    _ => {}
                }
            }
        }
    }
    if let Some(d) = acct_dir {
        c.usage.total = fs::read_u64_opt(d, "cpuacct.usage")?.unwrap_or(0);
        c.usage.percpu = numbers(&fs::read_opt(d, "cpuacct.usage_percpu")?.unwrap_or_default());
        c.usage.percpu_kernel =
            numbers(&fs::read_opt(d, "cpuacct.usage_percpu_sys")?.unwrap_or_default());
        c.usage.percpu_user =
            numbers(&fs::read_opt(d, "cpuacct.usage_percpu_user")?.unwrap_or_default());
        match (
            fs::read_u64_opt(d, "cpuacct.usage_sys")?,
            fs::read_u64_opt(d, "cpuacct.usage_user")?,
        ) {
            (Some(sys), Some(user)) => {
                c.usage.kernel = sys;
                c.usage.user = user;
            }
            _ => {
                // Older kernels: clock ticks in cpuacct.stat.
                // SAFETY: sysconf has no memory-safety preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
                let hz = if hz > 0 { hz as u64 } else { 100 };
                if let Some(s) = fs::read_opt(d, "cpuacct.stat")? {
                    for (k, v) in fs::key_values(&s) {
                        let ns = v.saturating_mul(1_000_000_000) / hz;
                        match k {
                            "user" => c.usage.user = ns,
                            "system" => c.usage.kernel = ns,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Ok(c)
}

pub(crate) fn cpuset(dir: &Path, noprefix: bool) -> Result<CpuSet> {
    let f = |n: &str| crate::cgroups::v1::cpuset::file(noprefix, n);
    let num = |n: &str| -> Result<u64> { Ok(fs::read_u64_opt(dir, &f(n))?.unwrap_or(0)) };
    Ok(CpuSet {
        cpus: parse_cpu_list(&fs::read_opt(dir, &f("cpus"))?.unwrap_or_default()),
        cpu_exclusive: num("cpu_exclusive")?,
        mems: parse_cpu_list(&fs::read_opt(dir, &f("mems"))?.unwrap_or_default()),
        mem_hardwall: num("mem_hardwall")?,
        mem_exclusive: num("mem_exclusive")?,
        memory_migrate: num("memory_migrate")?,
        memory_spread_page: num("memory_spread_page")?,
        memory_spread_slab: num("memory_spread_slab")?,
        memory_pressure: num("memory_pressure")?,
        sched_load_balance: num("sched_load_balance")?,
        sched_relax_domain_level: fs::read_opt(dir, &f("sched_relax_domain_level"))?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    })
}

fn memory_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let get = |s: &str| -> Result<u64> {
        Ok(fs::read_u64_opt(dir, &format!("{prefix}.{s}"))?.unwrap_or(0))
    };
    Ok(MemoryEntry {
        limit: get("limit_in_bytes")?,
        usage: get("usage_in_bytes")?,
        max: get("max_usage_in_bytes")?,
        failcnt: get("failcnt")?,
    })
}

pub(crate) fn memory(dir: &Path) -> Result<Memory> {
    let mut m = Memory::default();
    if let Some(s) = fs::read_opt(dir, "memory.stat")? {
        m.raw = fs::key_values(&s)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    }
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = memory_entry(dir, "memory")?;
    m.swap = memory_entry(dir, "memory.memsw")?;
    m.kernel = memory_entry(dir, "memory.kmem")?;
    m.kernel_tcp = memory_entry(dir, "memory.kmem.tcp")?;
    Ok(m)
}

/// Parses a v1 blkio file: `maj:min [Op] value` lines, `Total n` skipped.
pub(crate) fn blkio_entries(s: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split([' ', ':']).filter(|x| !x.is_empty()).collect();
        let (major, minor, op, value) = match f.as_slice() {
            [ma, mi, v] => (ma, mi, "", v),
            [ma, mi, op, v] => (ma, mi, *op, v),
            _ => continue,
        };
        let (Ok(major), Ok(minor), Ok(value)) = (major.parse(), minor.parse(), value.parse())
        else {
            continue;
        };
        out.push(BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        });
    }
    out
}

pub(crate) fn blkio(dir: &Path) -> Result<crate::cgroups::stats::Blkio> {
    let mut b = crate::cgroups::stats::Blkio::default();
    let read = |f: &str| -> Result<Option<Vec<BlkioEntry>>> {
        Ok(fs::read_opt(dir, f)?.map(|s| blkio_entries(&s)))
    };
    // CFQ files when present, else BFQ's, else the throttling layer's counters.
    if let Some(v) = read("blkio.io_service_bytes_recursive")? {
        b.io_service_bytes_recursive = v;
        b.io_serviced_recursive = read("blkio.io_serviced_recursive")?.unwrap_or_default();
        b.io_queued_recursive = read("blkio.io_queued_recursive")?.unwrap_or_default();
        b.io_service_time_recursive = read("blkio.io_service_time_recursive")?.unwrap_or_default();
        b.io_wait_time_recursive = read("blkio.io_wait_time_recursive")?.unwrap_or_default();
        b.io_merged_recursive = read("blkio.io_merged_recursive")?.unwrap_or_default();
        b.io_time_recursive = read("blkio.time_recursive")?.unwrap_or_default();
        b.sectors_recursive = read("blkio.sectors_recursive")?.unwrap_or_default();
    } else if let Some(v) = read("blkio.bfq.io_service_bytes_recursive")? {
        b.io_service_bytes_recursive = v;
        b.io_serviced_recursive = read("blkio.bfq.io_serviced_recursive")?.unwrap_or_default();
    } else {
        b.io_service_bytes_recursive =
            read("blkio.throttle.io_service_bytes_recursive")?.unwrap_or_default();
        b.io_serviced_recursive = read("blkio.throttle.io_serviced_recursive")?.unwrap_or_default();
    }
    Ok(b)
}

pub(crate) fn hugetlb_v1(dir: &Path, out: &mut Stats) -> Result<()> {
    for size in hugetlb::sizes() {
        let get = |s: &str| -> Result<u64> {
            Ok(fs::read_u64_opt(dir, &format!("hugetlb.{size}.{s}"))?.unwrap_or(0))
        };
        let h = Hugetlb {
            usage: get("usage_in_bytes")?,
            max: get("max_usage_in_bytes")?,
            failcnt: get("failcnt")?,
        };
        out.hugetlb.insert(size, h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines() {
        let e = blkio_entries("8:0 Read 10\n8:0 Write 20\nTotal 30\n8:16 7\n");
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].op, "Write");
        assert_eq!(e[1].value, 20);
        assert_eq!(e[2].minor, 16);
        assert_eq!(e[2].op, "");
    }
}
