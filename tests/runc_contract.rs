//! runc's contract, edge by edge (issue 17, and issue 22 item 11): every test names its item
//! and checks what runc does — refusals with runc's words, no hang, nothing left behind.

mod common;
use common::probe::Place;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `c` with output through files and a bound: `None` when it did not finish in `secs`
/// (it is then killed), else (exit code, stdout, stderr).
fn bounded(env: &Env, mut c: Command, secs: u64) -> Option<(Option<i32>, String, String)> {
    let n = unique("out");
    let (op, ep) = (
        env.tmp.join(format!("{n}.o")),
        env.tmp.join(format!("{n}.e")),
    );
    c.stdout(std::fs::File::create(&op).unwrap())
        .stderr(std::fs::File::create(&ep).unwrap());
    let mut child = ChildGuard::new(c.spawn().unwrap());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.0.as_mut().unwrap().try_wait().unwrap() {
            child.0 = None;
            break Some(st);
        }
        if std::time::Instant::now() >= end {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(child);
    let st = status?;
    Some((
        st.code(),
        std::fs::read_to_string(&op).unwrap_or_default(),
        std::fs::read_to_string(&ep).unwrap_or_default(),
    ))
}

/// A cgroup made by the test (freezer or cgroup2), thawed and removed on drop.
struct TestCgroup {
    dir: PathBuf,
    v2: bool,
}

impl TestCgroup {
    fn freeze(&self) {
        if self.v2 {
            std::fs::write(self.dir.join("cgroup.freeze"), "1").unwrap();
        } else {
            std::fs::write(self.dir.join("freezer.state"), "FROZEN").unwrap();
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if self.v2 {
            let _ = std::fs::write(self.dir.join("cgroup.freeze"), "0");
        } else {
            let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        }
        // Whatever an old runtime left inside: killed, then the directory removed.
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = wait_until_quiet(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn wait_until_quiet(dir: &Path) -> bool {
    for _ in 0..200 {
        if std::fs::read_to_string(dir.join("cgroup.procs")).map_or(true, |s| s.trim().is_empty()) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

// issue 17 item 1
#[test]
fn item01_create_into_frozen_cgroup_is_refused_not_hung() {
    require_root!();
    let env = Env::new();
    let name = unique("rrt-frozen");
    let cg = match host().controller("freezer") {
        Some(Place::V1(freezer)) => TestCgroup {
            dir: freezer.join(&name),
            v2: false,
        },
        Some(Place::V2(root)) => TestCgroup {
            dir: root.join(&name),
            v2: true,
        },
        None => skip!("neither a v1 freezer nor a cgroup2 tree here"),
    };
    let _cleanup_others = RemoveCgroupsOnDrop(name.clone());
    std::fs::create_dir(&cg.dir).unwrap();
    cg.freeze();
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    let b = env.bundle(&cfg);
    for verb in [&["run", "-d"][..], &["create"][..]] {
        let id = env.id();
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(["--bundle", b.path(), &id]);
        let r = bounded(&env, env.cmd(&args), 20);
        let (code, _, err) = r.unwrap_or_else(|| panic!("{verb:?} into a frozen cgroup hung"));
        assert_ne!(code, Some(0), "{verb:?} succeeded into a frozen cgroup");
        assert_one_line_error(&err);
        assert!(
            err.contains("container's cgroup unexpectedly frozen"),
            "{err}"
        );
        assert!(!env.root.join(&id).exists(), "state of {id} left");
    }
    // Thawed, the same cgroup takes the container.
    drop(cg);
}

// issue 22 item 11 (replaces issue 17 item 12's warning: runc >= 1.2 refuses)
#[test]
fn issue22_item11_nonempty_container_cgroup_is_refused() {
    require_root!();
    let env = Env::new();
    let name = unique("rrt-shared");
    let _cleanup = RemoveCgroupsOnDrop(name.clone());
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    let b = env.bundle(&cfg);
    let first = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &first]);
    let second = env.id();
    let err = env.fails(&["create", "--bundle", b.path(), &second]);
    assert_one_line_error(&err);
    assert!(
        err.contains("container's cgroup is not empty: 1 process(es) found"),
        "{err}"
    );
    assert!(!env.root.join(&second).exists());
    // The first container is untouched by the refusal.
    assert_eq!(env.status(&first), "running");
    env.ok(&["delete", "--force", &first]);
    assert!(find_cgroup_dirs(&name).is_empty(), "cgroup left");
}

// issue 17 item 2
#[test]
fn item02_seccomp_notify_on_write_is_refused_not_hung() {
    require_root!();
    let env = Env::new();
    let sock = env.tmp.join("agent.sock");
    // An agent that accepts but never answers.
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for (names, refused) in [
        (json!(["write"]), "write"),
        (json!(["mkdir", "sendmsg"]), "sendmsg"),
    ] {
        let mut cfg = base_config(&["echo", "hello"]);
        cfg["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock.to_str().unwrap(),
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
        });
        let b = env.bundle(&cfg);
        let id = env.id();
        let r = bounded(&env, env.cmd(&["run", "--bundle", b.path(), &id]), 20);
        let (code, _, err) = r.expect("run with a NOTIFY rule on a syscall the init needs hung");
        assert_ne!(code, Some(0));
        assert_one_line_error(&err);
        assert!(
            err.contains(&format!(
                "SCMP_ACT_NOTIFY cannot be used for the {refused} syscall"
            )),
            "{err}"
        );
        env.assert_no_leaks(&id, Some(&b));
    }
    // As the default action it would cover write too.
    let mut cfg = base_config(&["true"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_NOTIFY",
        "listenerPath": sock.to_str().unwrap(),
    });
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("SCMP_ACT_NOTIFY cannot be used as default action"),
        "{err}"
    );
}

// issue 17 item 21
#[test]
fn item21_config_without_oci_version_is_refused() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    cfg.as_object_mut().unwrap().remove("ociVersion");
    let err = env.create_fails(&cfg);
    assert!(err.contains("ociVersion"), "{err}");
    cfg["ociVersion"] = json!("");
    let err = env.create_fails(&cfg);
    assert!(err.contains("ociVersion"), "{err}");
}

// issue 17 item 22
#[test]
fn item22_relative_hook_path_is_refused_at_create() {
    require_root!();
    let env = Env::new();
    // A relative name that would resolve (in PATH, or in the cwd) if it were looked up.
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let mut cfg = base_config(&["true"]);
        cfg["hooks"] = json!({ kind: [{"path": "true"}] });
        let err = env.create_fails(&cfg);
        assert!(
            err.contains(&format!("hooks.{kind}[0].path")) && err.contains("absolute"),
            "{kind}: {err}"
        );
    }
}

// issue 17 item 24
#[test]
fn item24_nul_in_argv_or_env_is_refused_naming_the_field() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["echo", "a\u{0}b", "c"]);
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("process.args[1]") && err.contains("NUL"),
        "{err}"
    );
    cfg["process"]["args"] = json!(["true"]);
    cfg["process"]["env"] = json!(["PATH=/bin", "X=1\u{0}2"]);
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("process.env[1]") && err.contains("NUL"),
        "{err}"
    );
    // exec --process checks the same.
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    let p = env.tmp.join("p.json");
    std::fs::write(
        &p,
        serde_json::to_vec(
            &json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["echo", "x\u{0}y"]}),
        )
        .unwrap(),
    )
    .unwrap();
    let err = env.fails(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_one_line_error(&err);
    assert!(err.contains("process.args[1]"), "{err}");
    env.finish(&id, &b);
}

// issue 17 item 3
#[test]
fn item03_no_pivot_leaves_no_full_host_proc_or_sysfs_to_mount_from() {
    require_root!();
    let env = Env::new();
    let script = "mkdir -p /tmp/p /tmp/s; \
        unshare -Urmnpf true && echo USERNS_OK; \
        unshare -Urmnpf sh -c 'mount -t proc proc /tmp/p && echo PROC_MOUNTED; \
        mount -t sysfs sysfs /tmp/s && echo SYSFS_MOUNTED'; true";
    let cfg = base_config(&["sh", "-c", script]);
    let b = env.bundle(&cfg);
    let id = env.id();
    let o = env.rt(&["run", "--no-pivot", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.assert_no_leaks(&id, Some(&b));
    if !out.contains("USERNS_OK") {
        skip!("nested user namespaces cannot be made in a container here: {out}");
    }
    assert!(
        !out.contains("PROC_MOUNTED"),
        "unmasked procfs mountable: {out}"
    );
    assert!(
        !out.contains("SYSFS_MOUNTED"),
        "unmasked sysfs mountable: {out}"
    );
    // The container itself still has its own proc and sysfs.
    let out = env.sh(
        "test -r /proc/self/status && test -d /sys/kernel && echo OWN",
        |_| {},
    );
    assert!(out.contains("OWN"), "{out}");
}

// issue 17 item 4
#[test]
fn item04_symlinked_proc_or_sys_in_rootfs_is_refused() {
    require_root!();
    let env = Env::new();
    for (dir, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let b = env.bundle(&base_config(&["true"]));
        let rootfs = b.rootfs();
        std::fs::remove_dir(rootfs.join(dir)).unwrap();
        std::fs::create_dir(rootfs.join("tmp/elsewhere")).unwrap();
        std::os::unix::fs::symlink("/tmp/elsewhere", rootfs.join(dir)).unwrap();
        let id = env.id();
        let err = env.fails(&["create", "--bundle", b.path(), &id]);
        assert_one_line_error(&err);
        assert!(
            err.contains(&format!(
                "filesystem \"{typ}\" must be mounted on ordinary directory"
            )),
            "{err}"
        );
        env.assert_no_leaks(&id, Some(&b));
    }
}

// issue 17 item 5
#[test]
fn item05_start_container_hooks_run_under_seccomp_and_no_new_privileges() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    });
    cfg["hooks"] = json!({"startContainer": [
        {"path": "/bin/mkdir", "args": ["mkdir", "/tmp/hook-made-this"]}
    ]});
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let err = env.fails(&["start", &id]);
    assert_one_line_error(&err);
    assert!(err.contains("startContainer"), "{err}");
    assert!(!b.rootfs().join("tmp/hook-made-this").exists());
    env.finish(&id, &b);
    // Without the filter the same hook runs, and sees no_new_privs set.
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "grep NoNewPrivs /proc/self/status > /tmp/nnp"]}
    ]});
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let nnp = std::fs::read_to_string(b.rootfs().join("tmp/nnp")).unwrap();
    assert!(nnp.contains('1'), "{nnp}");
    env.finish(&id, &b);
}

// issue 17 item 6
#[test]
fn item06_hooks_get_only_stdio_and_a_failing_hooks_output_is_in_the_error() {
    require_root!();
    let env = Env::new();
    let marks = env.scratch("marks");
    let probe = format!(
        "if [ -e /proc/$$/fd/7 ]; then echo LEAK > {0}/$0; else echo CLEAN > {0}/$0; fi",
        marks.display()
    );
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({
        "prestart": [{"path": "/bin/sh", "args": ["prestart", "-c", probe]}],
        "createRuntime": [{"path": "/bin/sh", "args": ["createRuntime", "-c", probe]}],
        "poststart": [{"path": "/bin/sh", "args": ["poststart", "-c", probe]}],
        "poststop": [{"path": "/bin/sh", "args": ["poststop", "-c", probe]}]
    });
    let b = env.bundle(&cfg);
    let id = env.id();
    // The caller holds fd 7 open (not close-on-exec), as containerd or a shell may.
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "exec 7</etc/hostname; exec \"$0\" \"$@\""])
        .arg(bin())
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "run",
            "--bundle",
            b.path(),
            &id,
        ])
        .stdin(std::process::Stdio::null());
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.assert_no_leaks(&id, Some(&b));
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        let got = read(&marks.join(kind));
        assert_eq!(
            got.trim(),
            "CLEAN",
            "{kind} hook inherited the caller's fd 7"
        );
    }
    // A failing hook's stdout and stderr are in the error.
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c",
        "echo said-on-stdout; echo said-on-stderr >&2; exit 3"]}]});
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("exit status 3")
            && err.contains("said-on-stdout")
            && err.contains("said-on-stderr"),
        "{err}"
    );
}

// issue 17 item 7
#[test]
fn item07_hooks_run_in_the_bundle_and_create_container_in_the_rootfs() {
    require_root!();
    let env = Env::new();
    let marks = env.scratch("cwd");
    let m = marks.display();
    // Only the bundle has config.json; only the rootfs has bin/busybox.
    let in_bundle = |k: &str| format!("test -f config.json && touch {m}/{k}");
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", in_bundle("prestart")]}],
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", in_bundle("createRuntime")]}],
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "test -f bin/busybox"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", in_bundle("poststart")]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", in_bundle("poststop")]}]
    });
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut c = env.cmd(&["run", "--bundle", b.path(), &id]);
    c.current_dir("/");
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.assert_no_leaks(&id, Some(&b));
    for k in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert!(
            marks.join(k).exists(),
            "{k} hook did not run in the bundle directory"
        );
    }
}

// issue 17 item 9
#[test]
fn item09_read_only_dev_is_filled_then_made_read_only() {
    require_root!();
    let env = Env::new();
    let out = env.sh(
        "test -c /dev/null && test -d /dev/pts && test -e /dev/ptmx && echo FILLED; \
         touch /dev/new 2>/dev/null; echo touch=$?",
        |c| {
            c["mounts"][1]["options"] =
                json!(["ro", "nosuid", "strictatime", "mode=755", "size=65536k"]);
        },
    );
    assert!(out.contains("FILLED"), "{out}");
    assert!(out.contains("touch=1"), "/dev is writable: {out}");
}

// issue 17 item 23
#[test]
fn item23_cgroups_path_through_a_file_fails_leaving_nothing() {
    require_root!();
    let env = Env::new();
    let name = unique("rrt-notdir");
    let _cleanup = RemoveCgroupsOnDrop(name.clone());
    // Through a control file of the hierarchies' root, of a new cgroup, and of cgroup2 only.
    for path in [
        format!("/cgroup.procs/{name}"),
        format!("/{name}/cgroup.procs/x"),
        format!("/memory.pressure/{name}"),
        format!("/{name}/cpu.stat/x"),
    ] {
        let mut cfg = base_config(&["true"]);
        cfg["linux"]["cgroupsPath"] = json!(path);
        let err = env.create_fails(&cfg);
        assert!(err.contains("cgroup"), "{path}: {err}");
        let left = find_cgroup_dirs(&name);
        assert!(left.is_empty(), "{path}: left {left:?}");
    }
}

// issue 17 item 13
#[test]
fn item13_kill_signal_0_probes_a_live_container() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    env.ok(&["kill", &id, "0"]);
    env.ok(&["kill", "--all", &id, "0"]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    // On a stopped container it says so.
    let err = env.fails(&["kill", &id, "0"]);
    assert_one_line_error(&err);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

// issue 17 item 14
#[test]
fn item14_exec_process_without_user_runs_as_root_and_rwa_device_rules_are_accepted() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    let p = env.tmp.join("p.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&json!({"cwd": "/", "args": ["id"], "env": ["PATH=/bin"]})).unwrap(),
    )
    .unwrap();
    let out = env.ok(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert!(out.contains("uid=0") && out.contains("gid=0"), "{out}");
    // A device update with access "rwa", as callers send it.
    let r = env.tmp.join("r.json");
    std::fs::write(
        &r,
        serde_json::to_vec(&json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwa"}
        ]}))
        .unwrap(),
    )
    .unwrap();
    env.ok(&["update", "-r", r.to_str().unwrap(), &id]);
    env.finish(&id, &b);
}

// issue 17 item 15
#[test]
fn item15_spec_has_a_cgroup_namespace_only_on_a_cgroup2_host() {
    let env = Env::new();
    let dir = env.scratch("spec");
    let o = Command::new(bin())
        .args(["spec", "-b", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let has = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    assert_eq!(
        has,
        host().is_v2(),
        "cgroup namespace in the default spec on a {} host",
        if host().is_v2() {
            "cgroup2"
        } else {
            "v1/hybrid"
        }
    );
}

// issue 17 item 16
#[test]
fn item16_unified_keys_refused_when_controllers_are_in_v1() {
    require_root!();
    if host().is_v2() {
        skip!("a pure cgroup2 host takes unified keys");
    }
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    // A core cgroup2 key that the hybrid host's cgroup2 tree would take.
    cfg["linux"]["resources"]["unified"] = json!({"cgroup.max.descendants": "10"});
    let err = env.create_fails(&cfg);
    assert!(err.contains("cannot use unified on cgroup v1"), "{err}");
}

/// Every cgroup (v1 and cgroup2) mount point of this host.
fn cgroup_mount_points() -> Vec<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = pre.split(' ').nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mp))
        })
        .collect()
}

// issue 17 item 11
#[test]
fn item11_delete_removes_a_container_cgroup_that_existed_before_create() {
    require_root!();
    let env = Env::new();
    let name = unique("rrt-precreated");
    let _cleanup = RemoveCgroupsOnDrop(name.clone());
    // The caller made the container's cgroup in every hierarchy first.
    for mp in cgroup_mount_points() {
        let _ = std::fs::create_dir(mp.join(&name));
    }
    assert!(!find_cgroup_dirs(&name).is_empty());
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    let b = env.bundle(&cfg);
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    env.ok(&["delete", "--force", &id]);
    let left = find_cgroup_dirs(&name);
    assert!(
        left.is_empty(),
        "pre-created container cgroup left: {left:?}"
    );
    env.assert_no_leaks(&id, Some(&b));
}

// issue 17 item 20
#[test]
fn item20_features_reports_rdma_and_an_rdma_limit_lands_in_rdma_max() {
    let o = Command::new(bin()).arg("features").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["linux"]["cgroup"]["rdma"],
        json!(true),
        "features must report the rdma limits the runtime applies"
    );
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["sleep", "1000"]);
    let dev = std::fs::read_dir("/sys/class/infiniband")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    if !host().has("rdma") {
        // What is claimed there: a limit is refused with an error naming the controller.
        cfg["linux"]["resources"]["rdma"] = json!({"mlx5_0": {"hcaHandles": 3}});
        let err = env.create_fails(&cfg);
        assert!(err.contains("rdma"), "{err}");
        skip!("no rdma controller on this host: only the refusal is checked");
    }
    let Some(dev) = dev else {
        skip!("no RDMA device in /sys/class/infiniband: rdma.max takes no limit");
    };
    cfg["linux"]["resources"]["rdma"] = json!({ dev.clone(): {"hcaHandles": 3, "hcaObjects": 7} });
    let b = env.bundle(&cfg);
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    let max: Vec<String> = find_cgroup_dirs(&id)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("rdma.max")).ok())
        .collect();
    assert!(
        max.iter()
            .any(|m| m.lines().any(|l| l.starts_with(&format!("{dev} "))
                && l.contains("hca_handle=3")
                && l.contains("hca_object=7"))),
        "rdma.max of {id}: {max:?}"
    );
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

// issue 17 item 19
#[test]
fn item19_ridmap_names_the_submount_that_cannot_be_idmapped() {
    require_root!();
    // The top is a tmpfs (idmappable from 6.3 on) so that only the submount refuses.
    skip_unless!(
        host().kernel_at_least(6, 3),
        "tmpfs takes idmapped mounts only from Linux 6.3 on"
    );
    let env = Env::new();
    let top = env.scratch("idmap-top");
    std::fs::create_dir_all(&top).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &top,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=755"),
    )
    .unwrap();
    let sub = top.join("sub");
    std::fs::create_dir(&sub).unwrap();
    // procfs cannot be idmapped on any kernel.
    let mounted = nix::mount::mount(
        Some("proc"),
        &sub,
        Some("proc"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    let umount = || {
        let _ = nix::mount::umount2(&sub, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&top, nix::mount::MntFlags::MNT_DETACH);
    };
    if let Err(e) = mounted {
        umount();
        skip!("cannot mount a procfs for the submount: {e}");
    }
    let mut cfg = base_config(&["true"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/m", "type": "bind", "source": top,
               "options": ["rbind", "ridmap"],
               "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
               "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
    );
    let b = env.bundle(&cfg);
    let id = env.id();
    let err = env.rt(&["create", "--bundle", b.path(), &id]);
    umount();
    assert!(!err.status.success());
    let err = String::from_utf8_lossy(&err.stderr).into_owned();
    assert_one_line_error(&err);
    assert!(
        err.contains(&format!("cannot idmap {}:", sub.display())) && err.contains("proc"),
        "the error must name the submount {} and its file system: {err}",
        sub.display()
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// The container's cgroup hierarchies from its state: (controllers as /proc/self/cgroup lists
/// them, `""` for cgroup2; the controllers one can name; the container's directory).
fn container_hierarchies(env: &Env, id: &str) -> Vec<(String, Vec<String>, PathBuf)> {
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root.join(id).join("state.json")).unwrap())
            .unwrap();
    st["cgroup"]["hierarchies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let ctrls = h["controllers"].as_str().unwrap_or("").to_string();
            let mp = PathBuf::from(h["mount_point"].as_str().unwrap());
            let named: Vec<String> = if ctrls.is_empty() {
                read(&mp.join("cgroup.controllers"))
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            } else {
                ctrls
                    .split(',')
                    .filter(|c| !c.starts_with("name="))
                    .map(str::to_string)
                    .collect()
            };
            (ctrls, named, PathBuf::from(h["dir"].as_str().unwrap()))
        })
        .collect()
}

// issue 17 item 10
#[test]
fn item10_exec_cgroup_per_controller_and_refusals() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    // Outside the container's cgroup: refused, nothing run.
    for bad in ["..", "../..", "sub/../../x"] {
        let e = env.fails(&["exec", "--cgroup", bad, &id, "true"]);
        assert_one_line_error(&e);
        assert!(
            e.contains("bad sub cgroup path") && e.contains("is not a sub cgroup path"),
            "--cgroup {bad}: {e}"
        );
    }
    let e = env.fails(&["exec", "--cgroup", "whaaat:/", &id, "true"]);
    assert_one_line_error(&e);
    assert!(e.contains("unknown controller whaaat"), "{e}");
    let e = env.fails(&["exec", "--cgroup", "a", "--cgroup", "b", &id, "true"]);
    assert!(e.contains("controller"), "{e}");
    // One --cgroup per controller: each goes into its own hierarchy's sub-cgroup.
    let hs = container_hierarchies(&env, &id);
    let picks: Vec<(usize, String, String)> = hs
        .iter()
        .enumerate()
        .filter_map(|(i, (_, named, _))| named.first().map(|c| (i, c.clone())))
        .take(2)
        .enumerate()
        .map(|(n, (i, c))| (i, c, format!("s{n}")))
        .collect();
    if picks.is_empty() {
        env.ok(&["delete", "--force", &id]);
        skip!("the container's cgroups name no controller");
    }
    for (i, _, sub) in &picks {
        let d = &hs[*i].2;
        std::fs::create_dir(d.join(sub)).unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if hs[*i].0.is_empty() {
                break;
            }
            if let Ok(v) = std::fs::read_to_string(d.join(f)) {
                std::fs::write(d.join(sub).join(f), v.trim()).unwrap();
            }
        }
    }
    let mut args: Vec<String> = vec!["exec".into()];
    for (_, c, sub) in &picks {
        args.push("--cgroup".into());
        args.push(format!("{c}:{sub}"));
    }
    args.extend([id.clone(), "cat".into(), "/proc/self/cgroup".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.ok(&args);
    for (i, (ctrls, _, _)) in hs.iter().enumerate() {
        let want = match picks.iter().find(|p| p.0 == i) {
            Some((_, _, sub)) => format!("/{id}/{sub}"),
            None => format!("/{id}"),
        };
        let line = out
            .lines()
            .find(|l| l.split(':').nth(1) == Some(ctrls.as_str()))
            .unwrap_or_else(|| panic!("no line for {ctrls:?} in {out}"));
        assert!(line.ends_with(&want), "{ctrls:?}: want {want}: {out}");
    }
    for (i, _, sub) in &picks {
        // The exec'ed process is gone; the sub-cgroups are the test's to remove.
        let d = hs[*i].2.join(sub);
        wait_until(10, "exec'ed process leaves", || {
            read(&d.join("cgroup.procs")).trim().is_empty()
        });
        std::fs::remove_dir(&d).unwrap();
    }
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

// issue 17 item 18
#[test]
fn item18_rootless_exec_from_outside_the_delegated_cgroup_warns_and_runs() {
    require_root!();
    let Some(root) = host().unified.clone() else {
        skip!("no cgroup2 hierarchy to delegate to the user");
    };
    let deleg = root.join(unique("rruntime-deleg"));
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Ok(rd) = std::fs::read_dir(&self.0) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    std::fs::create_dir(&deleg).unwrap();
    // Dropped after `env`, which deletes the container first.
    let _cleanup = Cleanup(deleg.clone());
    let env = RootlessEnv::new();
    let rt = deleg.join("rt");
    std::fs::create_dir(&rt).unwrap();
    env.user.own(&[
        deleg.clone(),
        deleg.join("cgroup.procs"),
        deleg.join("cgroup.subtree_control"),
        rt.clone(),
        rt.join("cgroup.procs"),
    ]);
    let b = env.bundle(None);
    let o = env
        .cmd(&["spec", "--rootless", "--bundle", b.path()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    let id = env.id();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sleep", "1000"]);
    let rel = deleg
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    c["linux"]["cgroupsPath"] = json!(format!("/{rel}/{id}"));
    b.write_config(&c);
    chown_r(&b.dir, env.user.uid, env.user.gid);
    // create as the user from inside the delegated subtree (its leaf `rt`).
    let mut cmd = env.cmd(&["run", "-d", "--bundle", b.path(), &id]);
    start_in_cgroup(&mut cmd, &rt);
    let errf = env.tmp.join(unique("err"));
    let st = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "rootless run: {}", read(&errf));
    let cg = deleg.join(&id);
    let in_cg = !read(&cg.join("cgroup.procs")).trim().is_empty();
    if !in_cg {
        let _ = env.rt(&["delete", "--force", &id]);
        skip!("the rootless container did not get the delegated cgroup2 directory here");
    }
    // exec from this test's cgroup, outside the delegated subtree.
    let o = env.rt(&["exec", &id, "echo", "ran"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "exec failed: {err}");
    assert_eq!(out.trim(), "ran");
    assert!(
        err.contains(&format!("cannot enter cgroup {}", cg.display())),
        "the warning must name the cgroup: {err}"
    );
    let o = env.rt(&["delete", "--force", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

// issue 17 item 8
#[test]
fn item08_userns_bind_sources_only_host_root_can_reach() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    // Reachable by host root only: the container's root (host 100000) cannot search `private`.
    let private = env.tmp.join(unique("private"));
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(private.join("data/sub")).unwrap();
    std::fs::write(private.join("data/sub/f"), "in sub\n").unwrap();
    std::fs::write(private.join("file"), "a file\n").unwrap();
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let m = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["uidMappings"] = m.clone();
    cfg["linux"]["gidMappings"] = m;
    let b = env.bundle(&cfg);
    add_bind(&mut cfg, &private.join("data"), "/data", &["rbind", "ro"]);
    add_bind(&mut cfg, &private.join("file"), "/file", &["bind"]);
    // And one under the earlier mount (issue 22 item 18): resolved after /data is mounted.
    add_bind(&mut cfg, &b.rootfs().join("data/sub"), "/sub", &["bind"]);
    b.write_config(&cfg);
    for d in ["data", "sub"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
    }
    std::fs::write(b.rootfs().join("file"), "").unwrap();
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    let out = env.ok(&["exec", &id, "cat", "/data/sub/f", "/file", "/sub/f"]);
    assert_eq!(out, "in sub\na file\nin sub\n");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// Item 17: rootless Podman runs the runtime as uid 0 of a user namespace the user made, with
/// XDG_RUNTIME_DIR set. That uid 0 is not really root: the state root is
/// `$XDG_RUNTIME_DIR/rruntime` (runc: `$XDG_RUNTIME_DIR/runc`), not /run/rruntime (EACCES for
/// the user), and create/start/exec/delete work there with the devices bind-mounted (no mknod
/// in a user namespace) and cgroups per the rootless policy. USER=root keeps runc's default
/// root; Podman's `_CONTAINERS_USERNS_CONFIGURED` overrides that.
#[test]
fn item17_uid0_of_an_unprivileged_user_namespace_is_rootless_with_state_under_xdg_runtime_dir() {
    require_root!();
    skip_unless!(
        host().userns,
        "unprivileged user namespaces are disabled here"
    );
    let env = RootlessEnv::new();
    let mut c = base_config(&["sleep", "1000"]);
    // As Podman writes it for a rootless container sharing its user namespace: no user
    // namespace of its own, no gid=5 for devpts (not mapped), /sys bound from the host.
    c["mounts"][2]["options"] = json!([
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620"
    ]);
    c["linux"]["namespaces"] =
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    c["mounts"][4] = json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
    let b = env.bundle(Some(&c));
    let id = env.id();
    // One user namespace for every command (as Podman's pause process keeps one): `unshare -r`
    // maps uid 0 to the user; the script prints what the test checks.
    let script = r#"
set -u
echo "uid_map: $(cat /proc/self/uid_map)"
"$RR" create --bundle "$B" "$ID" || exit 10
[ -d "$XDG_RUNTIME_DIR/rruntime/$ID" ] && echo STATE_UNDER_XDG
"$RR" start "$ID" || exit 11
"$RR" state "$ID" | tr -d '\n '; echo
"$RR" exec "$ID" sh -c 'echo exec-ran; ls /dev/null'
USER=root "$RR" list -q 2>&1 | grep -qx "$ID" && echo ROOT_USER_SEES_IT
USER=root _CONTAINERS_USERNS_CONFIGURED=1 "$RR" list -q | grep -qx "$ID" && echo PODMAN_ENV_SEES_IT
"$RR" delete --force "$ID" || exit 12
[ -e "$XDG_RUNTIME_DIR/rruntime/$ID" ] || echo STATE_GONE
"#;
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", env.user.name, "--", "env", "-i"])
        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .arg(format!("XDG_RUNTIME_DIR={}", env.xdg.display()))
        .arg(format!("USER={}", env.user.name))
        .arg(format!("RR={}", env.bin.display()))
        .arg(format!("B={}", b.path()))
        .arg(format!("ID={id}"))
        .args(["unshare", "-r", "sh", "-c", script])
        .current_dir(&env.tmp)
        .stdin(std::process::Stdio::null());
    let dummy = Env::new();
    let Some((code, out, err)) = bounded(&dummy, cmd, 60) else {
        let _ = env.rt(&["delete", "--force", &id]);
        panic!("the rootless runtime in a user namespace did not finish in 60 s");
    };
    let uid = env.user.uid;
    assert!(
        out.lines().any(|l| l
            .split_whitespace()
            .eq(["uid_map:", "0", &uid.to_string(), "1"])),
        "not in a user namespace mapping 0 to {uid}: {out}"
    );
    assert_eq!(
        code,
        Some(0),
        "a step failed (exit 10 create, 11 start, 12 delete)\nstdout: {out}\nstderr: {err}"
    );
    assert_no_panic(&err);
    assert!(
        out.contains("STATE_UNDER_XDG"),
        "state dir not in $XDG_RUNTIME_DIR/rruntime: {out}\n{err}"
    );
    assert!(
        out.contains(r#""status":"running""#),
        "not running after start: {out}"
    );
    assert!(
        out.contains("exec-ran") && out.contains("/dev/null"),
        "exec: {out}\n{err}"
    );
    assert!(
        !out.contains("ROOT_USER_SEES_IT"),
        "USER=root must keep /run/rruntime (runc's rule): {out}"
    );
    assert!(
        out.contains("PODMAN_ENV_SEES_IT"),
        "_CONTAINERS_USERNS_CONFIGURED must select $XDG_RUNTIME_DIR: {out}"
    );
    assert!(
        out.contains("STATE_GONE"),
        "state dir left after delete: {out}"
    );
    assert!(
        !err.contains("/run/rruntime"),
        "the runtime looked at /run/rruntime: {err}"
    );
    env.assert_no_leaks(&id, None, &b);
}
