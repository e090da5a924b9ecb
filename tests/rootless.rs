//! Rootless: the runtime run by an unprivileged user (created by the tests, removed after them),
//! with its state under $XDG_RUNTIME_DIR/rruntime, `spec --rootless` configs, newuidmap and
//! newgidmap for subordinate ranges, clear errors, and no cgroups where the user cannot have
//! them. Needs root (to create the user) and the `uidmap` package.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

/// `spec --rootless` as the user, then the edits a caller makes: no terminal, `args`, and a
/// read-only bind of a root-owned host directory at /host.
fn spec_rootless(env: &RootlessEnv, args: &[&str], host: &Path) -> (Bundle, Value) {
    let b = env.bundle(None);
    env.ok(&["spec", "--rootless", "--bundle", b.path()]);
    let mut c: Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/host", "type": "bind", "source": host, "options": ["rbind"]
    }));
    std::fs::create_dir_all(b.rootfs().join("host")).unwrap();
    b.write_config(&c);
    chown_r(&b.dir, env.user.uid, env.user.gid);
    (b, c)
}

/// A root-owned host directory with a world-readable file and a root-only one.
fn host_dir(env: &RootlessEnv) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch_dir(&env.tmp, 0, 0);
    std::fs::write(d.join("public"), "public\n").unwrap();
    std::fs::write(d.join("secret"), "secret\n").unwrap();
    std::fs::set_permissions(d.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    d
}

fn pid_of(env: &RootlessEnv, id: &str) -> i32 {
    env.state(id)["pid"].as_i64().unwrap() as i32
}

fn host_uid_of(pid: i32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn spec_rootless_runs_busybox_unprivileged() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let script = "id -u; cat /proc/self/uid_map; cat /host/public; \
                  cat /host/secret 2>/dev/null || echo no-read; \
                  echo x >> /host/public 2>/dev/null || echo no-write; \
                  touch /host/new 2>/dev/null || echo no-create; \
                  stat -c %u /host/public";
    let (b, _) = spec_rootless(&env, &["sh", "-c", script], &host);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &env.user.uid.to_string(), "1"], "{out}");
    assert_eq!(
        &lines[2..],
        ["public", "no-read", "no-write", "no-create", "65534"],
        "{out}"
    );
    assert_eq!(read(&host.join("public")), "public\n");
    assert!(!host.join("new").exists());
    // Unprivileged user, no cgroup to create: a warning, not a failure.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("rootless"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.assert_no_leaks(&id, None, &b);
}

/// The container's processes run as the user on the host; state lives in
/// $XDG_RUNTIME_DIR/rruntime; exec works; delete leaves nothing.
#[test]
fn lifecycle_and_exec_as_user() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let (b, _) = spec_rootless(&env, &["sleep", "1000"], &host);
    let id = env.id();
    env.ok(&["create", "--bundle", b.path(), &id]);
    assert!(env.state_root().join(&id).join("state.json").exists());
    assert_eq!(env.state(&id)["status"], "created");
    env.ok(&["start", &id]);
    let pid = pid_of(&env, &id);
    assert_eq!(host_uid_of(pid), env.user.uid);
    let out = env.ok(&["exec", &id, "sh", "-c", "id -u; cat /proc/1/cmdline"]);
    assert_eq!(out, format!("0\nsleep\u{0}1000\u{0}"));
    let list = env.ok(&["list", "-q"]);
    assert!(list.lines().any(|l| l == id), "{list}");
    env.ok(&["kill", &id, "KILL"]);
    wait_until(10, "container to stop", || {
        env.state(&id)["status"] == "stopped"
    });
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(pid), &b);
}

/// More than the user's own id: newuidmap/newgidmap map the delegated subordinate ranges.
#[test]
fn subordinate_ranges_through_newuidmap() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let data = scratch_dir(&env.tmp, env.user.uid, env.user.gid);
    let script = "cat /proc/self/uid_map /proc/self/gid_map; touch /data/by-root /data/by-1; \
                  chown 1:1 /data/by-1";
    let (b, mut c) = spec_rootless(&env, &["sh", "-c", script], &host);
    let (su, sg) = (env.user.subuid.0, env.user.subgid.0);
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": env.user.uid, "size": 1},
        {"containerID": 1, "hostID": su, "size": 1000}
    ]);
    c["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": env.user.gid, "size": 1},
        {"containerID": 1, "hostID": sg, "size": 1000}
    ]);
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]
    });
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": data, "options": ["rbind"]
    }));
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    b.write_config(&c);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let maps: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        maps,
        [
            vec!["0".to_string(), env.user.uid.to_string(), "1".into()],
            vec!["1".into(), su.to_string(), "1000".into()],
            vec!["0".into(), env.user.gid.to_string(), "1".into()],
            vec!["1".into(), sg.to_string(), "1000".into()],
        ]
        .iter()
        .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>())
        .collect::<Vec<_>>(),
        "{out}"
    );
    assert_eq!(owner(&data.join("by-root")), (env.user.uid, env.user.gid));
    assert_eq!(owner(&data.join("by-1")), (su, sg));
    env.assert_no_leaks(&id, None, &b);
}

#[test]
fn undelegated_ranges_are_a_clear_error() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let (b, mut c) = spec_rootless(&env, &["true"], &host);
    let far = 3_000_000_000u32;
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": env.user.uid, "size": 1},
        {"containerID": 1, "hostID": far, "size": 10}
    ]);
    b.write_config(&c);
    let id = env.id();
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(
        e.contains("/etc/subuid") && e.contains(&far.to_string()) && e.contains(TEST_USER),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    env.assert_no_leaks(&id, None, &b);
}

#[test]
fn limits_without_a_cgroup_are_an_error() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let (b, mut c) = spec_rootless(&env, &["true"], &host);
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    b.write_config(&c);
    let id = env.id();
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(e.contains("memory") && e.contains("rootless"), "{e}");
    env.assert_no_leaks(&id, None, &b);
}

#[test]
fn rootless_time_namespace() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let (b, mut c) = spec_rootless(&env, &["cat", "/proc/uptime"], &host);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864_000}});
    b.write_config(&c);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let up: f64 = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((up - 864_000.0 - host_up).abs() < 10.0, "{up} vs {host_up}");
    env.assert_no_leaks(&id, None, &b);
}

#[test]
fn rootless_recursive_read_only_and_no_idmap() {
    require_root!();
    let env = RootlessEnv::new();
    let host = host_dir(&env);
    let data = scratch_dir(&env.tmp, env.user.uid, env.user.gid);
    let script = "touch /ro/f 2>/dev/null && echo rw || echo ro";
    let (b, mut c) = spec_rootless(&env, &["sh", "-c", script], &host);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/ro", "type": "bind", "source": data, "options": ["rbind", "rro"]
    }));
    std::fs::create_dir_all(b.rootfs().join("ro")).unwrap();
    b.write_config(&c);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ro\n");
    assert!(!data.join("f").exists());
    // Idmapped mounts of host file systems need root: refused up front, in one line.
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/m", "type": "bind", "source": data, "options": ["bind", "idmap"]
    }));
    b.write_config(&c);
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(
        e.contains("idmapped mounts need the runtime to run as root"),
        "{e}"
    );
    env.assert_no_leaks(&id, None, &b);
}

#[test]
fn missing_xdg_runtime_dir_is_explained() {
    require_root!();
    let env = RootlessEnv::new();
    let o = std::process::Command::new("runuser")
        .args(["-u", env.user.name, "--", "env", "-i", "PATH=/usr/bin:/bin"])
        .arg(&env.bin)
        .arg("list")
        .current_dir(&env.tmp)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("XDG_RUNTIME_DIR"), "{e}");
}

/// A cgroup v2 subtree delegated to the user (owned by it, controllers enabled for its
/// children): the rootless runtime makes the container's cgroup there, applies its limits and
/// removes it on delete. The runtime runs in a leaf of the subtree, as a delegated user's
/// processes do (moving a process needs write access to the common ancestor's cgroup.procs).
#[test]
fn delegated_cgroup_v2_subtree_gets_the_limits() {
    require_root!();
    let h = host();
    skip_unless!(
        h.is_v2(),
        "cgroup delegation to a user is a cgroup v2 feature (runc has no rootless v1 cgroups)"
    );
    skip_unless!(
        ["memory", "pids"]
            .iter()
            .all(|c| h.v2_available.iter().any(|a| a == c)),
        "the cgroup2 root offers no memory and pids controllers"
    );
    let env = RootlessEnv::new();
    let root = h.unified.clone().unwrap();
    let deleg = root.join(unique("rruntime-deleg"));
    struct Cleanup(std::path::PathBuf);
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
    let _cleanup = Cleanup(deleg.clone());
    std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids").unwrap();
    std::fs::write(deleg.join("cgroup.subtree_control"), "+memory +pids").unwrap();
    let rt = deleg.join("rt");
    std::fs::create_dir(&rt).unwrap();
    env.user.own(&[
        deleg.clone(),
        deleg.join("cgroup.procs"),
        deleg.join("cgroup.threads"),
        deleg.join("cgroup.subtree_control"),
        rt.clone(),
        rt.join("cgroup.procs"),
    ]);
    let hostd = host_dir(&env);
    let (b, mut c) = spec_rootless(&env, &["sleep", "1000"], &hostd);
    let id = env.id();
    let rel = deleg
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    c["linux"]["cgroupsPath"] = json!(format!("/{rel}/{id}"));
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 10}});
    b.write_config(&c);
    // The runtime as the user, started in the delegated leaf `rt`.
    let run_in_rt = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        start_in_cgroup(&mut cmd, &rt);
        // Output through a file: the container's init inherits the runtime's stdio.
        let errf = env.tmp.join(unique("err"));
        let st = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .status()
            .unwrap();
        assert!(st.success(), "rootless {args:?}: {}", read(&errf));
    };
    run_in_rt(&["create", "--bundle", b.path(), &id]);
    run_in_rt(&["start", &id]);
    let cg = deleg.join(&id);
    let pid = pid_of(&env, &id);
    assert!(
        read(&cg.join("cgroup.procs"))
            .lines()
            .any(|l| l == pid.to_string()),
        "init {pid} not in {}",
        cg.display()
    );
    assert_eq!(read(&cg.join("memory.max")).trim(), "67108864");
    assert_eq!(read(&cg.join("pids.max")).trim(), "10");
    run_in_rt(&["update", "--pids-limit", "12", &id]);
    assert_eq!(read(&cg.join("pids.max")).trim(), "12");
    run_in_rt(&["kill", &id, "KILL"]);
    wait_until(30, "the container to stop", || {
        env.state(&id)["status"] == "stopped"
    });
    run_in_rt(&["delete", &id]);
    assert!(!cg.exists(), "{} left", cg.display());
    env.assert_no_leaks(&id, Some(pid), &b);
}
