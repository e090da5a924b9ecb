//! The systemd cgroup driver (`--systemd-cgroup`) against the real systemd: needs systemd as
//! PID 1 on pure cgroup v2 (the Debian 12 guest of `make test-vm`); SKIPs elsewhere.
//!
//! Every container here uses the cgroupsPath `system.slice:rrt:<id>`, i.e. the transient unit
//! `rrt-<id>.scope` at /sys/fs/cgroup/system.slice/rrt-<id>.scope.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// Skips unless systemd is PID 1 on a pure v2 host.
macro_rules! require_systemd {
    () => {
        require_root!();
        skip_unless!(host().systemd, "no systemd as PID 1");
        skip_unless!(host().is_v2(), "this test reads cgroup v2 files");
    };
}

/// Skips unless systemd is PID 1 (any cgroup layout: what the test reads is systemd's).
macro_rules! require_systemd_any {
    () => {
        require_root!();
        skip_unless!(host().systemd, "no systemd as PID 1");
    };
}

fn unit(id: &str) -> String {
    format!("rrt-{id}.scope")
}

fn unit_dir(id: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup/system.slice").join(unit(id))
}

/// `systemctl show UNIT -p P1,P2…` as a map.
fn show(unit: &str, props: &[&str]) -> std::collections::HashMap<String, String> {
    let o = Command::new("systemctl")
        .args(["show", unit, "-p", &props.join(",")])
        .stdin(Stdio::null())
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_state(unit: &str) -> String {
    show(unit, &["LoadState"])
        .remove("LoadState")
        .unwrap_or_default()
}

fn systemctl(args: &[&str]) {
    let st = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("systemctl");
    assert!(st.success(), "systemctl {args:?}: {st}");
}

/// Runs rruntime with `--systemd-cgroup`.
fn sd(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["--systemd-cgroup"];
    a.extend_from_slice(args);
    env.ok(&a)
}

fn config(id: &str, args: &[&str], resources: Value) -> Value {
    let mut cfg = base_config(args);
    cfg["linux"]["cgroupsPath"] = json!(format!("system.slice:rrt:{id}"));
    cfg["linux"]["resources"] = resources;
    cfg
}

fn file(id: &str, name: &str) -> String {
    read(&unit_dir(id).join(name)).trim().to_string()
}

/// The scope exists while the container lives, with the init in it, Delegate=yes and the
/// resources as properties and in the files; `update` changes both; a daemon-reload keeps the
/// limits; `delete` removes the unit.
#[test]
fn scope_properties_update_reload_delete() {
    require_systemd!();
    let env = Env::new();
    let id = env.id();
    let cfg = config(
        &id,
        &["sleep", "600"],
        json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        }),
    );
    let b = env.bundle(&cfg);
    sd(&env, &["create", "--bundle", b.path(), &id]);
    let pid = env.pid(&id);
    let u = unit(&id);
    let p = show(
        &u,
        &[
            "ActiveState",
            "Delegate",
            "Slice",
            "MemoryMax",
            "TasksMax",
            "CPUQuotaPerSecUSec",
            "CPUWeight",
            "DefaultDependencies",
        ],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Delegate"], "yes", "{p:?}");
    assert_eq!(p["Slice"], "system.slice", "{p:?}");
    assert_eq!(p["MemoryMax"], "67108864", "{p:?}");
    assert_eq!(p["TasksMax"], "20", "{p:?}");
    assert_eq!(p["CPUQuotaPerSecUSec"], "500ms", "{p:?}");
    assert_eq!(
        p["CPUWeight"],
        rruntime::cgroups::v2::shares_to_weight(512).to_string(),
        "{p:?}"
    );
    let procs = file(&id, "cgroup.procs");
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in the scope: {procs:?}"
    );
    assert_eq!(file(&id, "memory.max"), "67108864");
    assert_eq!(file(&id, "pids.max"), "20");
    assert_eq!(file(&id, "cpu.max"), "50000 100000");

    // update: properties and files.
    sd(
        &env,
        &["update", "--memory", "134217728", "--pids-limit", "30", &id],
    );
    let p = show(&u, &["MemoryMax", "TasksMax"]);
    assert_eq!(p["MemoryMax"], "134217728", "{p:?}");
    assert_eq!(p["TasksMax"], "30", "{p:?}");
    assert_eq!(file(&id, "memory.max"), "134217728");
    assert_eq!(file(&id, "pids.max"), "30");

    // systemd re-applies unit properties to the cgroup on daemon-reload: the limits hold.
    systemctl(&["daemon-reload"]);
    assert_eq!(file(&id, "memory.max"), "134217728");
    assert_eq!(file(&id, "pids.max"), "30");
    assert_eq!(file(&id, "cpu.max"), "50000 100000");

    // delete removes the unit and its cgroup.
    sd(&env, &["delete", "--force", &id]);
    wait_gone(pid);
    assert_eq!(load_state(&u), "not-found");
    assert!(!unit_dir(&id).exists());
    env.assert_no_leaks(&id, Some(&b));
}

/// The usual life of a container under the driver: start, exec (joins the unit's cgroup), ps,
/// pause/resume, events --stats, kill --all, delete.
#[test]
fn lifecycle_commands_work_with_the_driver() {
    require_systemd!();
    let env = Env::new();
    let id = env.id();
    let cfg = config(&id, &["sleep", "600"], json!({"pids": {"limit": 50}}));
    let b = env.bundle(&cfg);
    sd(&env, &["create", "--bundle", b.path(), &id]);
    sd(&env, &["start", &id]);
    let pid = env.pid(&id);
    // exec: the new process is in the unit's cgroup (base_config has no cgroup namespace).
    let out = sd(&env, &["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(
        out.trim(),
        format!("0::/system.slice/{}", unit(&id)),
        "exec'd process outside the unit"
    );
    let ps = sd(&env, &["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_str(&ps).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    sd(&env, &["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    assert_eq!(file(&id, "cgroup.freeze"), "1");
    sd(&env, &["resume", &id]);
    assert_eq!(env.status(&id), "running");
    let ev = sd(&env, &["events", "--stats", &id]);
    let ev: Value = serde_json::from_str(ev.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["limit"], 50, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    sd(&env, &["kill", "--all", &id, "KILL"]);
    env.wait_stopped(&id);
    sd(&env, &["delete", &id]);
    assert_eq!(load_state(&unit(&id)), "not-found");
    assert!(!unit_dir(&id).exists());
    env.assert_no_leaks(&id, Some(&b));
}

/// A small MemoryMax is enforced: the container is OOM-killed (SIGKILL, 137).
#[test]
fn oom_kill_at_small_memory_max() {
    require_systemd!();
    let env = Env::new();
    let id = env.id();
    let cfg = config(
        &id,
        &[
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    let b = env.bundle(&cfg);
    let o = env.rt(&["--systemd-cgroup", "run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("survived"), "no OOM kill: {out}");
    assert_eq!(load_state(&unit(&id)), "not-found");
    env.assert_no_leaks(&id, Some(&b));
}

/// TasksMax is enforced: forks beyond it fail.
#[test]
fn fork_fails_at_tasks_max() {
    require_systemd!();
    let env = Env::new();
    let id = env.id();
    let cfg = config(
        &id,
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done 2>&1; echo done",
        ],
        json!({"pids": {"limit": 4}}),
    );
    let b = env.bundle(&cfg);
    let o = env.rt(&["--systemd-cgroup", "run", "--bundle", b.path(), &id]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("can't fork"), "forks were not limited: {out}");
    env.assert_no_leaks(&id, Some(&b));
    assert_eq!(load_state(&unit(&id)), "not-found");
}

/// A create SIGKILLed before and after the unit exists leaves nothing `delete -f` cannot clean.
#[test]
fn sigkilled_create_is_cleaned_by_delete_force() {
    require_systemd!();
    for phase in ["clone", "state+pid", "init ready"] {
        let env = Env::new();
        let id = env.id();
        let cfg = config(
            &id,
            &["sleep", "600"],
            json!({"memory": {"limit": 67108864}}),
        );
        let b = env.bundle(&cfg);
        let mut c = env.cmd(&["--systemd-cgroup", "create", "--bundle", b.path(), &id]);
        c.env("RRUNTIME_FAULT_PAUSE", phase)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::new(c.spawn().unwrap());
        let err = child.0.as_mut().unwrap().stderr.take().unwrap();
        {
            use std::os::fd::AsFd;
            read_until(err.as_fd(), &format!("paused at {phase}"), 60);
        }
        if phase != "clone" {
            // The unit exists with the init in it. (Once the runtime dies, the init dies by
            // PDEATHSIG and systemd may drop the empty scope on its own.)
            assert_eq!(load_state(&unit(&id)), "loaded", "{phase}: no unit");
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        child.wait_timeout(20);
        env.ok(&["delete", "--force", &id]);
        assert_eq!(load_state(&unit(&id)), "not-found", "{phase}");
        assert!(!unit_dir(&id).exists(), "{phase}");
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// A cgroupsPath that is not `slice:prefix:name` is refused, and nothing is left.
#[test]
fn bad_cgroups_path_is_refused() {
    require_systemd_any!();
    let env = Env::new();
    let id = env.id();
    let mut cfg = base_config(&["true"]);
    cfg["linux"]["cgroupsPath"] = json!("/not/systemd");
    let b = env.bundle(&cfg);
    let err = env.fails(&["--systemd-cgroup", "create", "--bundle", b.path(), &id]);
    assert_one_line_error(&err);
    assert!(err.contains("slice:prefix:name"), "{err}");
    env.assert_no_leaks(&id, Some(&b));
}

/// `org.systemd.property.<Name>` annotations become unit properties, as with runc: values in
/// the GVariant text form, `…Sec` converted to `…USec`, and set after the runtime's own (so
/// they override them, here the Description).
#[test]
fn annotations_set_unit_properties() {
    require_systemd_any!();
    let env = Env::new();
    let id = env.id();
    let mut cfg = config(&id, &["sleep", "600"], json!({}));
    cfg["annotations"] = json!({
        "org.systemd.property.TimeoutStopSec": "int32 7",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.Description": "\"rrt annotated\"",
        "org.systemd.property.SendSIGHUP": "true",
        "com.example.other": "not a property",
    });
    let b = env.bundle(&cfg);
    sd(&env, &["create", "--bundle", b.path(), &id]);
    let pid = env.pid(&id);
    let u = unit(&id);
    let p = show(
        &u,
        &[
            "ActiveState",
            "TimeoutStopUSec",
            "CollectMode",
            "Description",
            "SendSIGHUP",
            "Delegate",
        ],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["TimeoutStopUSec"], "7s", "{p:?}");
    assert_eq!(p["CollectMode"], "inactive-or-failed", "{p:?}");
    assert_eq!(p["Description"], "rrt annotated", "{p:?}");
    assert_eq!(p["SendSIGHUP"], "yes", "{p:?}");
    assert_eq!(p["Delegate"], "yes", "{p:?}");
    sd(&env, &["delete", "--force", &id]);
    wait_gone(pid);
    assert_eq!(load_state(&u), "not-found");
    env.assert_no_leaks(&id, Some(&b));
}

/// A malformed annotation is refused before anything is made (runc's messages); a property
/// systemd itself rejects fails the create with systemd's reason, and nothing is left either.
#[test]
fn bad_annotations_are_refused() {
    require_systemd_any!();
    for (k, v, want) in [
        (
            "org.systemd.property.Xo",
            "1",
            "annotation org.systemd.property.Xo name incorrect: too short",
        ),
        (
            "org.systemd.property.Number1",
            "1",
            "name incorrect: contains non-alphabetic character",
        ),
        (
            "org.systemd.property.CollectMode",
            "inactive",
            "annotation org.systemd.property.CollectMode=inactive value parse error",
        ),
        (
            "org.systemd.property.TimeoutStopSec",
            "'soon'",
            "value parse error: not a number",
        ),
        (
            "org.systemd.property.NoSuchProperty",
            "uint64 1",
            "NoSuchProperty",
        ),
    ] {
        let env = Env::new();
        let id = env.id();
        let mut cfg = config(&id, &["sleep", "600"], json!({}));
        cfg["annotations"] = json!({ k: v });
        let b = env.bundle(&cfg);
        let err = env.fails(&["--systemd-cgroup", "create", "--bundle", b.path(), &id]);
        assert_one_line_error(&err);
        assert!(err.contains(want), "{k}={v}: {err}");
        assert_eq!(load_state(&unit(&id)), "not-found", "{k}={v}");
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// A systemd host with cgroup v1 controllers (hybrid or legacy; the guest booted with
/// VM_CGROUP=hybrid): the unit is made with runc's v1 properties (MemoryLimit, CPUShares,
/// TasksMax), the init is in the unit's directory in every hierarchy, the files hold the limits,
/// exec joins, pause freezes the v1 freezer, update sets property and file, a daemon-reload keeps
/// them, delete removes the unit and its directory in every hierarchy.
#[test]
fn v1_hosts_scope_in_every_hierarchy() {
    require_root!();
    skip_unless!(host().systemd, "no systemd as PID 1");
    skip_unless!(
        !host().is_v2(),
        "a v1/hybrid host (the v2 case is the tests above)"
    );
    let env = Env::new();
    let id = env.id();
    let cfg = config(
        &id,
        &["sleep", "600"],
        json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        }),
    );
    let b = env.bundle(&cfg);
    sd(&env, &["create", "--bundle", b.path(), &id]);
    let pid = env.pid(&id);
    let u = unit(&id);
    let p = show(
        &u,
        &[
            "ActiveState",
            "Delegate",
            "Slice",
            "MemoryLimit",
            "TasksMax",
            "CPUShares",
        ],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Delegate"], "yes", "{p:?}");
    assert_eq!(p["Slice"], "system.slice", "{p:?}");
    assert_eq!(p["MemoryLimit"], "67108864", "{p:?}");
    assert_eq!(p["TasksMax"], "20", "{p:?}");
    assert_eq!(p["CPUShares"], "512", "{p:?}");
    // Every hierarchy (v1 controllers, name=systemd, the hybrid cgroup2): the unit's path.
    let cg = read(&PathBuf::from(format!("/proc/{pid}/cgroup")));
    let want = format!("/system.slice/{u}");
    for l in cg.lines() {
        assert!(
            l.ends_with(&format!(":{want}")),
            "init not in {want} everywhere: {cg}"
        );
    }
    let v1 = |ctrl: &str, f: &str| {
        let dir = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == ctrl))
                    && p.join(&want[1..]).is_dir()
            })
            .unwrap_or_else(|| panic!("no {ctrl} hierarchy with {want}"));
        read(&dir.join(&want[1..]).join(f)).trim().to_string()
    };
    assert_eq!(v1("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(v1("pids", "pids.max"), "20");
    assert_eq!(v1("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(v1("cpu", "cpu.shares"), "512");

    sd(&env, &["start", &id]);
    let out = sd(&env, &["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(out.lines().count() > 1, "{out}");
    let ps = sd(&env, &["ps", &id]);
    assert!(ps.contains(&pid.to_string()), "{ps}");
    sd(&env, &["pause", &id]);
    assert_eq!(v1("freezer", "freezer.state"), "FROZEN");
    sd(&env, &["resume", &id]);
    assert_eq!(v1("freezer", "freezer.state"), "THAWED");

    sd(
        &env,
        &["update", "--memory", "134217728", "--pids-limit", "30", &id],
    );
    let p = show(&u, &["MemoryLimit", "TasksMax"]);
    assert_eq!(p["MemoryLimit"], "134217728", "{p:?}");
    assert_eq!(p["TasksMax"], "30", "{p:?}");
    systemctl(&["daemon-reload"]);
    assert_eq!(v1("memory", "memory.limit_in_bytes"), "134217728");
    assert_eq!(v1("pids", "pids.max"), "30");

    sd(&env, &["delete", "--force", &id]);
    wait_gone(pid);
    assert_eq!(load_state(&u), "not-found");
    let left = cgroup_dirs_where(|n| n == u);
    assert!(left.is_empty(), "unit directories left: {left:?}");
    env.assert_no_leaks(&id, Some(&b));
}
