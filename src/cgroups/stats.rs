//! Container statistics in the JSON shape of runc's `types.Stats` (the `data` of a
//! `{"type":"stats","id":…,"data":…}` line of `runc events`), field names and omission rules
//! included: Go's `omitempty` drops zero numbers and empty lists/maps but never a nested struct.
//!
//! v1 values are reported as read; v2 values are converted the way runc does (µs → ns, `max` →
//! u64::MAX for memory limits and 0 for the pids limit, swap reported as memory+swap).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Not a cgroup matter; always empty here.
    pub intel_rdt: IntelRdt,
    /// Not a cgroup matter: the runtime fills it from the container's network namespace if it
    /// wants to; `null` otherwise, as in runc without interfaces.
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServicedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioQueueRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioWaitTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioMergedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "sectorsRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(default)]
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    #[serde(default)]
    pub mem_hardwall: u64,
    #[serde(default)]
    pub mem_exclusive: u64,
    #[serde(default)]
    pub memory_migrate: u64,
    #[serde(default)]
    pub memory_spread_page: u64,
    #[serde(default)]
    pub memory_spread_slab: u64,
    #[serde(default)]
    pub memory_pressure: u64,
    #[serde(default)]
    pub sched_load_balance: u64,
    #[serde(default)]
    pub sched_relax_domain_level: i64,
}

/// Bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    #[serde(default)]
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// runc's `types.NetworkInterface` (Go field names, no JSON tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses a cpuset list (`0-3,5`) into cpu/node numbers; bad parts are skipped.
pub(crate) fn parse_cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    if a <= b {
                        out.extend(a..=b);
                    }
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_runc() {
        let mut s = Stats::default();
        s.cpu.throttling.throttled_periods = 3;
        s.memory.kernel_tcp.limit = 5;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 3);
        assert!(v["cpu"]["throttling"].get("periods").is_none());
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("total").is_none());
        assert_eq!(v["memory"]["kernelTCP"]["limit"], 5);
        assert_eq!(v["memory"]["usage"]["failcnt"], 0);
        assert!(v["memory"].get("raw").is_none());
        assert_eq!(v["hugetlb"], serde_json::json!({}));
        assert_eq!(v["blkio"], serde_json::json!({}));
        assert_eq!(v["network_interfaces"], serde_json::Value::Null);
        assert_eq!(v["cpuset"]["sched_relax_domain_level"], 0);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(""), Vec::<u16>::new());
    }
}
