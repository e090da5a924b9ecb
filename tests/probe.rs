//! The host probe (tests/common/probe.rs) against the host itself: what it reports must hold
//! here (every file it says a controller has, every mode it reports), and it prints its summary
//! so a test log shows where the suite ran (`--nocapture`).
mod common;

use common::host;
use common::probe::{CgroupMode, Host, Place};
use std::path::Path;

#[test]
fn probe_summary_is_consistent_with_the_host() {
    let h = host();
    eprintln!("host: {}", h.summary());
    match h.cgroup_mode {
        CgroupMode::V2 => {
            let u = h.unified.as_ref().expect("v2 has a cgroup2 mount");
            assert_eq!(u, Path::new("/sys/fs/cgroup"));
            assert!(h.v1.is_empty());
            assert!(u.join("cgroup.controllers").exists());
            // The lines of /proc/self/cgroup: only `0::/…`.
            let c = std::fs::read_to_string("/proc/self/cgroup").unwrap();
            assert!(c.lines().all(|l| l.starts_with("0::")), "{c}");
        }
        CgroupMode::Hybrid | CgroupMode::V1 => {
            assert!(!h.v1.is_empty());
            for (ctrl, mp) in &h.v1 {
                assert!(mp.is_dir(), "{ctrl} at {}", mp.display());
                let c = std::fs::read_to_string("/proc/self/cgroup").unwrap();
                assert!(
                    c.lines().any(|l| l
                        .split(':')
                        .nth(1)
                        .is_some_and(|cs| cs.split(',').any(|x| x == ctrl))),
                    "{ctrl} not in /proc/self/cgroup:\n{c}"
                );
            }
        }
    }
    // Every v2-enabled controller is also available.
    for c in &h.v2_enabled {
        assert!(h.v2_available.contains(c), "{c}");
    }
    for ctrl in ["memory", "pids", "cpu"] {
        if let Some(p) = h.controller(ctrl) {
            let want = match (&p, ctrl) {
                (Place::V1(_), "memory") => "memory.limit_in_bytes",
                (Place::V1(_), "pids") | (Place::V2(_), "pids") => "pids.max",
                (Place::V1(_), _) => "cpu.shares",
                (Place::V2(_), "memory") => "memory.max",
                (Place::V2(_), _) => "cpu.max",
            };
            if h.root && (!p.is_v2() || h.v2_enabled.iter().any(|c| c == ctrl)) {
                assert!(
                    h.child_has(ctrl, want),
                    "{ctrl}: no {want} in a child cgroup"
                );
            }
        }
    }
    assert!(h.nr_open >= 1024);
    assert!(h.kernel.0 >= 3);
    for s in &h.hugepage_sizes {
        assert!(Path::new(&format!(
            "/sys/kernel/mm/hugepages/hugepages-{}kB",
            s / 1024
        ))
        .is_dir());
    }
    assert_eq!(Host::hugepage_name(2 << 20), "2MB");
    assert_eq!(Host::hugepage_name(1 << 30), "1GB");
    assert_eq!(Host::hugepage_name(64 << 10), "64KB");
}
