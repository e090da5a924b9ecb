//! The security boundary, asserted inside real containers: seccomp profiles (errno, kill, log,
//! Docker's default, NOTIFY with a listener), non-dumpable init, fd and cwd hygiene, LSM
//! requests on a host without LSMs, personality, scheduler, I/O priority, memory policy.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

/// Runs `args` in a fresh container with `tweak` applied to the config; returns (exit code,
/// stdout, stderr) and checks nothing leaked.
fn run_with(args: &[&str], tweak: impl FnOnce(&mut Value)) -> (i32, String, String) {
    let env = Env::new();
    let mut cfg = base_config(args);
    tweak(&mut cfg);
    let b = env.bundle(&cfg);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    env.assert_no_leaks(&id, Some(&b));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn seccomp(profile: Value) -> impl FnOnce(&mut Value) {
    move |c| c["linux"]["seccomp"] = profile
}

#[test]
fn seccomp_errno_denies_mkdir_with_eperm() {
    require_root!();
    let (code, out, _) = run_with(
        &[
            "sh",
            "-c",
            "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touch-ok",
        ],
        seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        })),
    );
    assert_eq!(code, 0);
    assert!(out.contains("rc=1"), "{out}");
    assert!(out.contains("touch-ok"), "{out}");
}

#[test]
fn seccomp_errno_ret_is_used() {
    require_root!();
    let (_, out, _) = run_with(
        &["sh", "-c", "mkdir /tmp/x 2>&1; true"],
        seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]
        })),
    );
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn seccomp_kill_process_kills() {
    require_root!();
    let kill_mkdir = || {
        seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }))
    };
    // The subshell that calls mkdir dies of SIGSYS; the shell goes on and sees 128+31.
    let (code, out, _) = run_with(
        &["sh", "-c", "(mkdir /tmp/x); echo survived $?"],
        kill_mkdir(),
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("survived {}", 128 + libc::SIGSYS));
    // The container's own process killed: `run` exits 128+SIGSYS.
    let (code, _, _) = run_with(&["mkdir", "/tmp/y"], kill_mkdir());
    assert_eq!(code, 128 + libc::SIGSYS);
}

#[test]
fn seccomp_log_allows_and_logs() {
    require_root!();
    // A marker in the kernel log: only records after it count (the ring buffer drops old
    // lines, so counting all matching lines can stand still while new ones arrive).
    let mark = unique("seccomp-log-mark");
    std::fs::write("/dev/kmsg", format!("{mark}\n")).unwrap();
    let logged = || {
        let d = std::process::Command::new("dmesg").output().unwrap();
        let text = String::from_utf8_lossy(&d.stdout).into_owned();
        text.split(mark.as_str()).nth(1).is_some_and(|after| {
            after
                .lines()
                .any(|l| l.contains("type=1326") && l.contains("syscall=63"))
        })
    };
    // The kernel rate-limits the printk of audit records: a few tries, a second apart, are
    // allowed before the record must have appeared.
    for attempt in 0..6 {
        let (code, out, _) = run_with(
            &["uname", "-s"],
            seccomp(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_LOG"}]
            })),
        );
        assert_eq!(code, 0);
        assert_eq!(out.trim(), "Linux");
        if logged() {
            return;
        }
        if attempt < 5 {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    panic!("no seccomp LOG audit record for uname (syscall 63) in dmesg after {mark}");
}

#[test]
fn seccomp_arguments_are_compared() {
    require_root!();
    // personality(0xffffffff) (query) allowed, anything else denied: `setarch`-like calls fail.
    let (code, out, _) = run_with(
        &["sh", "-c", "echo hi; mkdir /tmp/a && echo mkdir-ok; chmod 0700 /tmp/a; echo chmod=$?; chmod 0755 /tmp/a; echo chmod=$?"],
        seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
                         {"names": ["fchmodat2"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 2, "value": 448, "op": "SCMP_CMP_EQ"}]}]
        })),
    );
    assert_eq!(code, 0);
    assert!(out.contains("mkdir-ok"), "{out}");
    let rcs: Vec<&str> = out.lines().filter(|l| l.starts_with("chmod=")).collect();
    assert_eq!(rcs, vec!["chmod=1", "chmod=0"], "{out}");
}

#[test]
fn docker_default_profile_runs_busybox() {
    require_root!();
    let prof: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/seccomp/docker-default.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (code, out, err) = run_with(
        &["sh", "-c", "echo ok; mkdir /tmp/d && ls / >/dev/null && echo fs-ok; unshare -n true; echo unshare=$?"],
        seccomp(prof),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok") && out.contains("fs-ok"), "{out}");
    assert!(out.contains("unshare=1"), "unshare must be denied: {out}");
}

#[test]
fn seccomp_notify_reaches_listener_and_its_answer_the_process() {
    require_root!();
    let env = Env::new();
    let sock = env.tmp.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut cfg = base_config(&["sh", "-c", "mkdir /tmp/n 2>&1; echo rc=$?"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let b = env.bundle(&cfg);
    let id = env.id();
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, fd) =
            rruntime::seccomp::recv_fd(std::os::fd::AsFd::as_fd(&conn), &mut buf).unwrap();
        let state: Value = serde_json::from_slice(&buf[..n]).unwrap();
        let fd = fd.expect("listener fd");
        // Answer the one mkdir with ENOSPC.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut req,
            )
        };
        assert_eq!(rc, 0);
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        resp.error = -libc::ENOSPC;
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &mut resp,
            )
        };
        assert_eq!(rc, 0);
        state
    });
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let state = agent.join().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("No space left on device"), "{out}");
    assert_eq!(state["metadata"], "test-metadata");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["state"]["id"], id);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn init_is_not_dumpable_until_exec() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    use std::os::unix::fs::MetadataExt;
    // A non-dumpable process's /proc entries belong to root, although it runs as uid 1000.
    // (Of a file in /proc/<pid>: the directory itself always shows the effective uid, and
    // /proc/<pid>/exe would be followed to the root-owned binary.)
    let before = std::fs::metadata(format!("/proc/{pid}/status")).map(|m| m.uid());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("1000")),
        "{status}"
    );
    assert_eq!(before.unwrap(), 0, "init must be non-dumpable before start");
    env.ok(&["start", &id]);
    wait_until(10, "exec of sleep", || {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().contains("busybox"))
            .unwrap_or(false)
    });
    let after = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    assert_eq!(after, 1000, "after execve the process is dumpable again");
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn only_stdio_fds_reach_the_container() {
    require_root!();
    let (code, out, _) = run_with(&["sh", "-c", "ls /proc/1/fd; true"], |_| {});
    assert_eq!(code, 0);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert!(
        fds.iter().all(|f| ["0", "1", "2", "10"].contains(f)),
        "unexpected fds in the container init: {fds:?}"
    );
}

#[test]
fn cwd_through_proc_fd_is_refused() {
    require_root!();
    for n in 3..=9 {
        let env = Env::new();
        let mut cfg = base_config(&["pwd"]);
        cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let b = env.bundle(&cfg);
        let id = env.id();
        let o = env.rt(&["run", "--bundle", b.path(), &id]);
        let out = String::from_utf8_lossy(&o.stdout);
        // Either refused, or (never) a cwd that is inside the container.
        assert!(
            !o.status.success() || out.trim().starts_with('/') && !out.contains("rruntime"),
            "cwd /proc/self/fd/{n} gave {out}"
        );
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// AppArmor requested where it is not enabled: one clear error. (The runtime checks from
/// inside the container, against its own fresh sysfs, so an AppArmor host cannot be made to
/// look otherwise from outside.)
#[test]
fn apparmor_profile_without_apparmor_is_a_clear_error() {
    require_root!();
    skip_unless!(
        !host().apparmor,
        "AppArmor is enabled here (apparmor_profile_is_applied covers this host)"
    );
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    cfg["process"]["apparmorProfile"] = json!("docker-default");
    let b = env.bundle(&cfg);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("AppArmor is not enabled"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    env.assert_no_leaks(&id, Some(&b));
}

/// With AppArmor: the profile is what the container's process runs under, and a profile the
/// kernel does not know is one clear error (the kernel refuses the `exec` request).
#[test]
fn apparmor_profile_is_applied() {
    require_root!();
    skip_unless!(host().apparmor, "AppArmor is not enabled on this host");
    let (code, out, err) = run_with(&["cat", "/proc/self/attr/current"], |c| {
        c["process"]["apparmorProfile"] = json!("unconfined")
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "unconfined");
    let (code, _, err) = run_with(&["true"], |c| {
        c["process"]["apparmorProfile"] = json!("rruntime-test-no-such-profile")
    });
    assert_ne!(code, 0);
    assert!(err.contains("rruntime-test-no-such-profile"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn selinux_label_without_selinux_is_ignored() {
    require_root!();
    skip_unless!(
        !host().selinux,
        "SELinux is enabled here: labels would need a loaded policy"
    );
    let (code, out, _) = run_with(&["echo", "ran"], |c| {
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    });
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "ran");
}

#[test]
fn intel_rdt_without_resctrl_is_a_clear_error() {
    require_root!();
    let (code, _, err) = run_with(&["true"], |c| {
        c["linux"]["intelRdt"] = json!({"closID": "x", "l3CacheSchema": "L3:0=ff"})
    });
    assert_ne!(code, 0);
    assert!(err.contains("linux.intelRdt"), "{err}");
}

#[test]
fn personality_linux32() {
    require_root!();
    let (code, out, _) = run_with(&["uname", "-m"], |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"})
    });
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "i686");
}

#[test]
fn scheduler_and_io_priority() {
    require_root!();
    let (code, out, err) = run_with(
        &["sh", "-c", "cut -d' ' -f41 /proc/self/stat; ionice -p $$"],
        |c| {
            c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
            c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        },
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("3"),
        "SCHED_BATCH is policy 3: {out}"
    );
    assert!(out.contains("idle"), "{out}");
}

#[test]
fn memory_policy_bind() {
    require_root!();
    let (code, out, err) = run_with(
        &["sh", "-c", "grep -m1 -o 'bind:0' /proc/self/numa_maps"],
        |c| {
            c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
        },
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "bind:0");
}

#[test]
fn mount_symlink_escape_stays_inside_rootfs() {
    require_root!();
    let env = Env::new();
    let outside = env.tmp.join("outside-target");
    let mut cfg = base_config(&["sh", "-c", "echo inside > /evil/proof; true"]);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}));
    let b = env.bundle(&cfg);
    // /evil -> /../../../<outside>: must resolve inside the rootfs.
    let rel = format!("/../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&rel, b.rootfs().join("evil")).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !outside.exists(),
        "a mount point was created outside the rootfs"
    );
    env.assert_no_leaks(&id, Some(&b));
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(outside.to_str().unwrap()),
        "host mount table touched"
    );
}

#[test]
fn exec_child_is_not_dumpable_inside_the_container() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    // An exec paused right after it joined the container's namespaces: still rruntime's code.
    let errf = env.tmp.join("paused-exec.err");
    // (Killed on drop if an assertion fails; the paused child dies with the container.)
    let paused = ChildGuard::new(
        env.cmd(&["exec", &id, "true"])
            .env("RRUNTIME_FAULT_PAUSE", "exec: joined")
            .stderr(std::fs::File::create(&errf).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until(20, "exec child to pause", || {
        read(&errf).contains("paused at")
    });
    // From inside the container, the paused process (pid 2 there: init is 1) must not expose
    // the runtime binary through /proc/<pid>/exe.
    let o = env.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n = 1 ] || [ $n = $$ ] && continue; \
         grep -q rruntime $p/cmdline 2>/dev/null || continue; \
         cat $p/exe >/dev/null 2>&1 && echo OPENED $n || echo DENIED $n; done",
    ]);
    drop(paused);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("DENIED"),
        "the paused exec process was not found: {out}"
    );
    assert!(
        !out.contains("OPENED"),
        "runtime binary reachable via /proc/<pid>/exe: {out}"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 5: `process.scheduler.flags` take the runtime-spec's names: a config with
/// `SCHED_FLAG_RESET_ON_FORK` (oci-spec 0.10 spells it `SCHED_RESET_ON_FORK`) runs, and the
/// flag really works: the init keeps nice -5, its children start at 0.
#[test]
fn scheduler_flags_by_runtime_spec_names_issue_22_item_5() {
    require_root!();
    let (code, out, err) = run_with(
        &[
            "sh",
            "-c",
            // (not the last command: sh would exec it in place of itself)
            "cut -d' ' -f19 /proc/$$/stat; cut -d' ' -f19 /proc/self/stat; true",
        ],
        |c| {
            c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": -5,
                "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
        },
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "-5\n0\n", "nice of the init, then of its child");
    // The other renamed flag is accepted too (the config is not refused as invalid).
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    cfg["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE", "runtime": 1000000,
        "deadline": 2000000, "period": 2000000, "flags": ["SCHED_FLAG_DL_OVERRUN"]});
    cfg["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    // SCHED_DEADLINE with a restricted cpuset is refused up front with runc's text.
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("process scheduler can't be used together with AllowedCPUs"),
        "{err}"
    );
}

/// issue 22 item 6: invalid `linux.memoryPolicy` configs get runc's one-line errors.
#[test]
fn memory_policy_errors_use_runc_texts_issue_22_item_6() {
    require_root!();
    let env = Env::new();
    for (mp, want) in [
        (
            json!({"mode": "MPOL_NOPE"}),
            "invalid memory policy mode \"MPOL_NOPE\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}),
            "invalid memory policy flag \"MPOL_F_NOPE\"",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            "memory policy mode requires 0 nodes but got 1",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE"}),
            "memory policy mode requires at least one node but got 0",
        ),
    ] {
        let mut cfg = base_config(&["true"]);
        cfg["linux"]["memoryPolicy"] = mp;
        let err = env.create_fails(&cfg);
        assert!(err.contains(want), "want {want:?}: {err}");
        assert!(!err.contains("unknown variant"), "serde's text: {err}");
    }
}

/// issue 22 item 8: capability names this runtime does not know (a config for a newer kernel)
/// are skipped with runc's warning, the known ones still apply; an ambient capability that is
/// not inheritable is warned about.
#[test]
fn unknown_capabilities_are_skipped_with_a_warning_issue_22_item_8() {
    require_root!();
    let (code, out, err) = run_with(&["sh", "-c", "grep CapEff /proc/self/status"], |c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_KILL", "CAP_FROM_THE_FUTURE"]);
        }
        c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
        c["process"]["noNewPrivileges"] = json!(false);
    });
    assert_eq!(code, 0, "refused: {err}");
    // CAP_KILL is bit 5.
    assert_eq!(out.trim(), "CapEff:\t0000000000000020", "{out}");
    assert!(
        err.contains("ignoring unknown or unavailable capabilities: [CAP_FROM_THE_FUTURE]"),
        "{err}"
    );
    assert!(
        err.contains("can't raise ambient capability CAP_KILL"),
        "{err}"
    );
}
