//! Time namespaces: `linux.timeOffsets` shift the container's boottime (seen in /proc/uptime)
//! and monotonic clocks, alone, together with a new user namespace, and for `exec`.
mod common;
use common::*;
use serde_json::{json, Value};

const BOOT_OFFSET: i64 = 10 * 86_400;
const MONO_OFFSET: i64 = 3 * 86_400;

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn timens_config(args: &[&str]) -> Value {
    let mut c = base_config(args);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": BOOT_OFFSET, "nanosecs": 0},
        "monotonic": {"secs": MONO_OFFSET, "nanosecs": 500}
    });
    c
}

/// Parses the container's `cat /proc/uptime; cat /proc/self/timens_offsets` output and checks
/// the uptime against the host's, taken around the run.
fn check_shifted(out: &str, before: f64, after: f64) {
    let mut lines = out.lines();
    let up: f64 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no uptime in {out:?}"));
    let shift = up - BOOT_OFFSET as f64;
    assert!(
        shift >= before - 1.0 && shift <= after + 1.0,
        "uptime inside {up} is not the host's ({before}…{after}) + {BOOT_OFFSET}"
    );
    let offsets: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert!(
        offsets.contains(&vec![
            "monotonic".into(),
            MONO_OFFSET.to_string(),
            "500".into()
        ]),
        "{offsets:?}"
    );
    assert!(
        offsets.contains(&vec![
            "boottime".into(),
            BOOT_OFFSET.to_string(),
            "0".into()
        ]),
        "{offsets:?}"
    );
}

const SHOW: &[&str] = &[
    "sh",
    "-c",
    "cat /proc/uptime; cat /proc/self/timens_offsets",
];

#[test]
fn boottime_offset_shifts_uptime() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&timens_config(SHOW));
    let id = env.id();
    let before = host_uptime();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let after = host_uptime();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_shifted(&String::from_utf8_lossy(&o.stdout), before, after);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn time_namespace_with_new_user_namespace() {
    require_root!();
    let env = Env::new();
    let mut c = timens_config(SHOW);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let b = env.bundle(&c);
    let id = env.id();
    let before = host_uptime();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let after = host_uptime();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_shifted(&String::from_utf8_lossy(&o.stdout), before, after);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn exec_joins_the_time_namespace() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&timens_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let before = host_uptime();
    let out = env.ok(&["exec", &id, SHOW[0], SHOW[1], SHOW[2]]);
    let after = host_uptime();
    check_shifted(&out, before, after);
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn offsets_need_a_time_namespace() {
    require_root!();
    let env = Env::new();
    let mut c = base_config(&["true"]);
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
    let b = env.bundle(&c);
    let id = env.id();
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(e.contains("time namespace"), "{e}");
    let mut c = timens_config(&["true"]);
    c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    b.write_config(&c);
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(
        e.contains("linux.timeOffsets") && e.contains("realtime"),
        "{e}"
    );
    env.assert_no_leaks(&id, Some(&b));
}
