//! The basic lifecycle through the binary: create → state → start → kill → delete, run.
mod common;
use common::*;

#[test]
fn create_start_kill_delete() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["bundle"], b.path());
    env.ok(&["start", &id]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", &id, "KILL"]);
    wait_until(10, "container to stop", || env.status(&id) == "stopped");
    assert_eq!(env.state(&id)["pid"], 0);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn run_exit_status() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sh", "-c", "exit 7"]));
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert_eq!(o.status.code(), Some(7));
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn init_and_exec_are_in_the_container_cgroup_in_every_hierarchy() {
    require_root!();
    let env = Env::new();
    // No cgroup namespace: /proc/self/cgroup shows the host paths.
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "cat /proc/self/cgroup; sleep 1000",
    ]));
    let id = env.id();
    let out = env.tmp.join("init-cgroups");
    let st = env
        .cmd(&["run", "-d", "--bundle", b.path(), &id])
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    // As many lines as the host has hierarchies (pure v2: one, `0::/…`).
    let n = host().proc_cgroup_lines;
    wait_until(10, "init output", || read(&out).lines().count() >= n);
    let exec_out = env.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for text in [read(&out), exec_out] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), n, "{text}");
        for l in lines {
            assert!(
                l.ends_with(&format!("/{id}")),
                "not in the container's cgroup: {l}"
            );
        }
    }
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// The state JSON through the lifecycle: created (pid > 0, fifo-blocked init), running, and
/// stopped (pid 0); `created` is RFC 3339 with nanoseconds; bundle, rootfs, annotations, owner.
#[test]
fn state_fields_through_the_lifecycle() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "echo started > /out/s.tmp && mv /out/s.tmp /out/started; read x < /out/fifo",
    ]);
    cfg["annotations"] = serde_json::json!({"org.example.key": "value", "other": ""});
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    nix::unistd::mkfifo(
        &out.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let st = env.state(&id);
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(st["bundle"], b.path());
    assert_eq!(
        st["rootfs"],
        std::fs::canonicalize(b.rootfs()).unwrap().to_str().unwrap()
    );
    assert_eq!(st["annotations"]["org.example.key"], "value");
    assert_eq!(st["annotations"]["other"], "");
    assert_eq!(st["owner"], "root");
    let created = st["created"].as_str().unwrap();
    // 2026-11-23T10:33:28.123456789Z
    assert_eq!(created.len(), 30, "{created}");
    assert_eq!(&created[10..11], "T");
    assert_eq!(&created[19..20], ".");
    assert!(
        created[20..29].bytes().all(|c| c.is_ascii_digit()),
        "{created}"
    );
    assert!(created.ends_with('Z'));
    // Nothing of the user's process has run yet.
    assert!(!out.join("started").exists());

    env.ok(&["start", &id]);
    wait_file(&out.join("started"), 20);
    let st = env.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid, "the init keeps its pid across start");
    assert_eq!(st["created"], created, "created does not change");
    // The process is really the container's `sh`, in the container's pid namespace.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"sh\0-c\0"), "{cmdline:?}");
    assert_ne!(pid_ns(pid, "pid"), host_ns("pid"));

    // Let it finish (open the fifo for writing: its `read` returns).
    std::fs::write(out.join("fifo"), "bye\n").unwrap();
    env.wait_stopped(&id);
    let st = env.state(&id);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["pid"], 0);
    assert_eq!(st["bundle"], b.path());
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
    let err = env.fails(&["state", &id]);
    assert!(err.contains("does not exist"), "{err}");
}

/// `--pid-file` holds the init's pid: digits only, no newline, equal to state's pid; a
/// relative path is taken relative to the caller's working directory.
#[test]
fn pid_file_digits_only() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    let pf = env.tmp.join("init.pid");
    env.ok(&[
        "create",
        "--bundle",
        b.path(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
    ]);
    let s = std::fs::read_to_string(&pf).unwrap();
    assert!(
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()),
        "{s:?}"
    );
    assert_eq!(
        s.parse::<i64>().unwrap(),
        env.state(&id)["pid"].as_i64().unwrap()
    );
    // No temp file left next to it.
    let names: Vec<String> = std::fs::read_dir(&env.tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("init.pid"))
        .collect();
    assert_eq!(names, vec!["init.pid".to_string()]);
    env.finish(&id, &b);

    let id = env.id();
    let mut c = env.cmd(&["create", "--bundle", b.path(), "--pid-file", "rel.pid", &id]);
    c.current_dir(&env.tmp);
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = std::fs::read_to_string(env.tmp.join("rel.pid")).unwrap();
    assert_eq!(s, env.state(&id)["pid"].to_string());
    env.finish(&id, &b);
}

/// `--bundle` defaults to the current directory; a relative bundle path is made absolute.
#[test]
fn bundle_default_and_relative() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["true"]));
    let id = env.id();
    let mut c = env.cmd(&["create", &id]);
    c.current_dir(&b.dir);
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.state(&id)["bundle"], b.path());
    env.finish(&id, &b);
    let id = env.id();
    let name = b.dir.file_name().unwrap().to_str().unwrap();
    let mut c = env.cmd(&["create", "-b", name, &id]);
    c.current_dir(&env.tmp);
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.state(&id)["bundle"], b.path());
    env.finish(&id, &b);
}

/// Editing config.json after create changes nothing for the container (the config is kept
/// in the state).
#[test]
fn config_edits_after_create_have_no_effect() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sh", "-c", "echo original"]));
    let id = env.id();
    let log = env.tmp.join("out");
    let o = env
        .cmd(&["create", "--bundle", b.path(), &id])
        .stdout(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(o.success());
    b.write_config(&base_config(&["sh", "-c", "echo edited"]));
    env.ok(&["start", &id]);
    env.wait_stopped(&id);
    assert_eq!(read(&log), "original\n");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// A container that exits by itself after start is "stopped" and can be deleted without
/// --force; start of a stopped or running container fails.
#[test]
fn start_errors_by_state() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let err = env.fails(&["start", &id]);
    assert_one_line_error(&err);
    assert!(err.contains("running"), "{err}");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    let err = env.fails(&["start", &id]);
    assert_one_line_error(&err);
    assert!(err.contains("stopped"), "{err}");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));

    // A created container whose init was killed is stopped, and cannot be started.
    let id = env.id();
    env.create(&b, &id);
    let pid = env.pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    env.wait_stopped(&id);
    let err = env.fails(&["start", &id]);
    assert_one_line_error(&err);
    assert!(err.contains("stopped"), "{err}");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// A container script that records the signals it receives: `sigs` gets one line per signal.
fn trap_config(out: &std::path::Path) -> serde_json::Value {
    let script = "for s in USR1 USR2 TERM HUP; do trap \"echo $s >> /out/sigs\" $s; done; \
                  echo r > /out/r.tmp && mv /out/r.tmp /out/ready; \
                  while :; do sleep 1000 & wait $!; done";
    let mut cfg = base_config(&["sh", "-c", script]);
    add_bind(&mut cfg, out, "/out", &["rbind", "rw"]);
    cfg
}

fn wait_sig(out: &std::path::Path, sig: &str, n: usize) {
    wait_until(20, &format!("signal {sig} to arrive"), || {
        read(&out.join("sigs"))
            .lines()
            .filter(|l| *l == sig)
            .count()
            >= n
    });
}

/// kill: numbers, names with and without SIG, lower case, default TERM; KILL stops it.
#[test]
fn kill_signal_forms() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let b = env.bundle(&trap_config(&out));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    wait_file(&out.join("ready"), 20);
    env.ok(&["kill", &id, &libc::SIGUSR1.to_string()]);
    wait_sig(&out, "USR1", 1);
    env.ok(&["kill", &id, "USR2"]);
    wait_sig(&out, "USR2", 1);
    env.ok(&["kill", &id, "SIGUSR1"]);
    wait_sig(&out, "USR1", 2);
    env.ok(&["kill", &id, "sighup"]);
    wait_sig(&out, "HUP", 1);
    env.ok(&["kill", &id]);
    wait_sig(&out, "TERM", 1);
    assert_eq!(env.status(&id), "running");
    for bad in ["NOPE", "SIGNOPE", "65", "RTMIN+99", ""] {
        let err = env.fails(&["kill", &id, bad]);
        assert_one_line_error(&err);
        assert!(err.contains("signal"), "{bad}: {err}");
    }
    // A negative number is a usage error (clap), not a signal.
    assert_no_panic(&env.fails(&["kill", &id, "-9"]));
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", &id, "SIGKILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));

    // "KILL" and "9" each stop a container too.
    for sig in ["KILL", "9"] {
        let id = env.id();
        let b = env.bundle(&base_config(&["sleep", "1000"]));
        env.create(&b, &id);
        env.ok(&["start", &id]);
        env.ok(&["kill", &id, sig]);
        env.wait_stopped(&id);
        env.ok(&["delete", &id]);
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// kill without --all signals only the init; --all (and -a) signals every process of the
/// container.
#[test]
fn kill_all_reaches_every_process() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    // `wait` returns early when a trapped signal arrives; three of them cover both TERMs.
    let script = "trap 'echo TERM >> /out/sigs' TERM; sleep 1000 & sleep 1000 & \
                  echo r > /out/r.tmp && mv /out/r.tmp /out/ready; \
                  wait; wait; wait; exec sleep 1000";
    let mut cfg = base_config(&["sh", "-c", script]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    wait_file(&out.join("ready"), 20);
    wait_until(20, "3 processes", || cgroup_pids(&id).len() == 3);
    let init = env.pid(&id);
    let children: Vec<i32> = cgroup_pids(&id)
        .into_iter()
        .filter(|p| *p != init)
        .collect();
    env.ok(&["kill", &id, "TERM"]);
    wait_sig(&out, "TERM", 1);
    assert!(
        children.iter().all(|p| alive(*p)),
        "kill without --all hit the children"
    );
    env.ok(&["kill", "--all", &id, "TERM"]);
    wait_sig(&out, "TERM", 2);
    wait_until(20, "children to die", || {
        children.iter().all(|p| !alive(*p))
    });
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", "-a", &id, "KILL"]);
    env.wait_stopped(&id);
    wait_until(20, "cgroup to empty", || cgroup_pids(&id).is_empty());
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// kill of a stopped container fails with "container not running"; `kill --all` of a
/// stopped container exits 0; kill of a created container delivers the signal.
#[test]
fn kill_stopped_and_created() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["true"]));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    env.wait_stopped(&id);
    let err = env.fails(&["kill", &id, "KILL"]);
    assert_one_line_error(&err);
    assert!(err.contains("container not running"), "{err}");
    let err = env.fails(&["kill", &id]);
    assert!(err.contains("container not running"), "{err}");
    env.ok(&["kill", "--all", &id, "KILL"]);
    env.ok(&["kill", "-a", &id]);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));

    let id = env.id();
    env.create(&b, &id);
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// delete: of a created container (its init is killed), refused for a running one without
/// --force (the container survives), `--force`/`-f` of a running one, `--force` of a missing
/// id exits 0, plain delete of a missing id fails.
#[test]
fn delete_cases() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    let pid = env.pid(&id);
    // (state, start time) from /proc/<pid>/stat: a recycled pid has another start time.
    let stat = |pid: i32| {
        let s = read(std::path::Path::new(&format!("/proc/{pid}/stat")));
        let after = s
            .rsplit_once(") ")
            .map(|(_, a)| a.to_string())
            .unwrap_or_default();
        let f: Vec<String> = after.split(' ').map(str::to_string).collect();
        (f.first().cloned(), f.get(19).cloned())
    };
    let (_, started) = stat(pid);
    assert!(started.is_some());
    env.ok(&["delete", &id]);
    let (state, start_now) = stat(pid);
    assert!(
        start_now != started || state.as_deref() == Some("Z"),
        "init of the deleted container survives"
    );
    env.assert_no_leaks(&id, Some(&b));

    for force in ["--force", "-f"] {
        let id = env.id();
        env.create(&b, &id);
        env.ok(&["start", &id]);
        let err = env.fails(&["delete", &id]);
        assert_one_line_error(&err);
        assert!(err.contains("running"), "{err}");
        assert_eq!(env.status(&id), "running", "refused delete had an effect");
        env.ok(&["delete", force, &id]);
        env.assert_no_leaks(&id, Some(&b));
    }

    env.ok(&["delete", "--force", "no-such-container"]);
    let err = env.fails(&["delete", "no-such-container"]);
    assert_one_line_error(&err);
    assert!(err.contains("does not exist"), "{err}");
}

/// Foreground run exits with the container's status, and 128+N when its init dies of signal N.
#[test]
fn run_exit_codes() {
    require_root!();
    let env = Env::new();
    assert_eq!(env.run(&base_config(&["true"])).code, Some(0));
    assert_eq!(
        env.run(&base_config(&["sh", "-c", "exit 42"])).code,
        Some(42)
    );
    // Without a PID namespace the shell is not a namespace init and dies of its own signal.
    let mut cfg = base_config(&["sh", "-c", "kill -TERM $$; sleep 10"]);
    set_namespaces(&mut cfg, &["network", "ipc", "uts", "mount"]);
    assert_eq!(env.run(&cfg).code, Some(128 + libc::SIGTERM));
    let mut cfg = base_config(&["sh", "-c", "kill -USR1 $$; sleep 10"]);
    set_namespaces(&mut cfg, &["network", "ipc", "uts", "mount"]);
    assert_eq!(env.run(&cfg).code, Some(128 + libc::SIGUSR1));

    // SIGKILL from outside: 137.
    let out = env.scratch("out");
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "echo r > /out/r.tmp && mv /out/r.tmp /out/ready; exec sleep 1000",
    ]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut run = ChildGuard::new(
        env.cmd(&["run", "--bundle", b.path(), &id])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_file(&out.join("ready"), 20);
    env.ok(&["kill", &id, "KILL"]);
    assert_eq!(run.wait_timeout(20).code(), Some(137));
    env.assert_no_leaks(&id, Some(&b));
}

/// stdout and stderr of a foreground run are the container's, separately.
#[test]
fn run_passes_stdio() {
    require_root!();
    let env = Env::new();
    let o = env.run(&base_config(&[
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    assert_eq!(o.code, Some(3));
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");
    // stdin is passed too.
    let b = env.bundle(&base_config(&["sh", "-c", "read l; echo got:$l"]));
    let id = env.id();
    let input = env.tmp.join("in");
    std::fs::write(&input, "hello\n").unwrap();
    let mut c = env.cmd(&["run", "--bundle", b.path(), &id]);
    c.stdin(std::fs::File::open(&input).unwrap());
    let o = env.output(c);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got:hello\n");
    env.assert_no_leaks(&id, Some(&b));
}

/// The foreground run forwards signals to the container's init: its traps fire, and a
/// trapped TERM that exits gives run that exit status.
#[test]
fn run_forwards_signals() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let script = "trap 'echo USR1 >> /out/sigs' USR1; trap 'echo HUP >> /out/sigs' HUP; \
                  trap 'echo TERM >> /out/sigs; exit 3' TERM; \
                  echo r > /out/r.tmp && mv /out/r.tmp /out/ready; \
                  while :; do sleep 1000 & wait $!; done";
    let mut cfg = base_config(&["sh", "-c", script]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut run = ChildGuard::new(
        env.cmd(&["run", "--bundle", b.path(), &id])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_file(&out.join("ready"), 20);
    let rp = nix::unistd::Pid::from_raw(run.pid());
    nix::sys::signal::kill(rp, nix::sys::signal::SIGUSR1).unwrap();
    wait_sig(&out, "USR1", 1);
    nix::sys::signal::kill(rp, nix::sys::signal::SIGHUP).unwrap();
    wait_sig(&out, "HUP", 1);
    nix::sys::signal::kill(rp, nix::sys::signal::SIGTERM).unwrap();
    assert_eq!(run.wait_timeout(20).code(), Some(3));
    assert_eq!(read(&out.join("sigs")), "USR1\nHUP\nTERM\n");
    env.assert_no_leaks(&id, Some(&b));
}

/// run -d returns at once with the container running; it is deleted only by delete.
#[test]
fn run_detached() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    for flag in ["-d", "--detach"] {
        let id = env.id();
        let pf = env.tmp.join(format!("{id}.pid"));
        env.ok(&[
            "run",
            flag,
            "--bundle",
            b.path(),
            "--pid-file",
            pf.to_str().unwrap(),
            &id,
        ]);
        let st = env.state(&id);
        assert_eq!(st["status"], "running");
        assert_eq!(read(&pf), st["pid"].to_string());
        env.ok(&["kill", &id, "KILL"]);
        env.wait_stopped(&id);
        assert!(
            env.root.join(&id).exists(),
            "detached container deleted itself"
        );
        env.ok(&["delete", &id]);
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// run --keep leaves the stopped container for state and delete.
#[test]
fn run_keep() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sh", "-c", "exit 5"]));
    let id = env.id();
    let o = env.rt(&["run", "--keep", "--bundle", b.path(), &id]);
    assert_eq!(o.status.code(), Some(5));
    let st = env.state(&id);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["pid"], 0);
    assert!(
        !find_cgroup_dirs(&id).is_empty(),
        "--keep removed the cgroup"
    );
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// As a subreaper, run adopts a container init that is not its child (two-step spawn when a
/// namespace is joined) and reports its exit status; with --no-subreaper (and go-runc's
/// `-no-subreaper`) the init is not re-parented to run, which still returns once it exited.
#[test]
fn run_subreaper_and_no_subreaper() {
    require_root!();
    let env = Env::new();
    for flag in [None, Some("--no-subreaper"), Some("-no-subreaper")] {
        let out = env.scratch("out");
        let mut cfg = base_config(&[
            "sh",
            "-c",
            "echo r > /out/r.tmp && mv /out/r.tmp /out/ready; read x < /out/fifo; exit 9",
        ]);
        add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
        // Joining the host's IPC namespace by path forces the two-step spawn.
        cfg["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "network"}, {"type": "uts"}, {"type": "mount"},
            {"type": "ipc", "path": format!("/proc/{}/ns/ipc", std::process::id())}
        ]);
        nix::unistd::mkfifo(
            &out.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        let b = env.bundle(&cfg);
        let id = env.id();
        let mut args = vec!["run"];
        args.extend(flag);
        args.extend(["--bundle", b.path(), &id]);
        let mut run = ChildGuard::new(
            env.cmd(&args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_file(&out.join("ready"), 20);
        let pid = env.pid(&id);
        let ppid: i32 = proc_status_field(
            &read(std::path::Path::new(&format!("/proc/{pid}/status"))),
            "PPid",
        )
        .parse()
        .unwrap();
        std::fs::write(out.join("fifo"), "go\n").unwrap();
        let run_pid = run.pid();
        let st = run.wait_timeout(20);
        match flag {
            None => {
                assert_eq!(ppid, run_pid, "init not adopted by run");
                assert_eq!(st.code(), Some(9));
            }
            Some(f) => {
                assert_ne!(ppid, run_pid, "{f}: init adopted by run");
                assert!(st.code().is_some(), "{f}: {st}");
            }
        }
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// list: empty, `-q`, `--format json` / `-f json`, and the table.
#[test]
fn list_formats() {
    require_root!();
    let env = Env::new();
    // No state root yet: nothing listed, no error.
    assert_eq!(env.ok(&["list", "-q"]), "");
    let table = env.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 1);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    assert!(v.as_array().map_or(true, |a| a.is_empty()), "{v}");

    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let (a, c) = (env.id(), env.id());
    env.create(&b, &a);
    env.create(&b, &c);
    env.ok(&["start", &c]);
    let q = env.ok(&["list", "-q"]);
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(q.lines().collect::<Vec<_>>(), want);
    for args in [
        &["list", "--format", "json"][..],
        &["list", "-f", "json"][..],
        &["list", "--format=json"][..],
    ] {
        let v: serde_json::Value = serde_json::from_str(&env.ok(args)).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        let get = |id: &str| arr.iter().find(|x| x["id"] == id).unwrap().clone();
        assert_eq!(get(&a)["status"], "created");
        assert_eq!(get(&c)["status"], "running");
        assert_eq!(get(&c)["bundle"], b.path());
        assert!(get(&c)["pid"].as_i64().unwrap() > 0);
        assert_eq!(get(&c)["owner"], "root");
    }
    let table = env.ok(&["list", "--format", "table"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let hdr: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(hdr, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]);
    let row = lines.iter().find(|l| l.starts_with(&c)).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "running");
    assert_eq!(cols[3], b.path());
    assert_eq!(cols[5], "root");
    env.ok(&["delete", "-f", &a]);
    env.ok(&["delete", "-f", &c]);
    env.assert_no_leaks(&a, Some(&b));
    env.assert_no_leaks(&c, Some(&b));
    assert_eq!(env.ok(&["list", "-q"]), "");
}

/// A config without a PID namespace whose init starts a background `sleep 1000` and writes its
/// pid to `/out/bg` (`out`, returned, is bound there), then runs `then` (shell text).
fn no_pidns_with_background_sleep(
    env: &Env,
    then: &str,
) -> (serde_json::Value, std::path::PathBuf) {
    let out = env.scratch("out");
    let script = format!(
        "sleep 1000 >/dev/null 2>&1 & echo $! > /out/bg.tmp && mv /out/bg.tmp /out/bg{then}"
    );
    let mut cfg = base_config(&["sh", "-c", &script]);
    set_namespaces(&mut cfg, &["network", "ipc", "uts", "mount"]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    (cfg, out)
}

/// Without a PID namespace the init's children outlive it: `delete` of the stopped container and
/// `run` (which deletes) kill them and remove the cgroup, although the container is already
/// `stopped` (the cgroup is only found busy when it is removed).
#[test]
fn delete_kills_what_outlived_an_init_without_pid_namespace() {
    require_root!();
    let env = Env::new();
    let (cfg, out) = no_pidns_with_background_sleep(&env, "");

    // create / start / (init exits) / delete
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let bg: i32 = wait_file(&out.join("bg"), 20).trim().parse().unwrap();
    let _kill = KillOnDrop::new(bg);
    env.wait_stopped(&id);
    assert!(alive(bg), "the background sleep ({bg}) outlives the init");
    assert_eq!(cgroup_pids(&id), vec![bg]);
    env.ok(&["delete", &id]);
    wait_until(10, "the background sleep to die", || !alive(bg));
    env.assert_no_leaks(&id, Some(&b));

    // run
    std::fs::remove_file(out.join("bg")).unwrap();
    env.run(&cfg);
    let bg: i32 = read(&out.join("bg")).trim().parse().unwrap();
    let _kill = KillOnDrop::new(bg);
    wait_until(10, "the background sleep to die", || !alive(bg));
}

/// issue 22 item 14: `kill KILL` of a container without its own PID namespace signals every
/// process of its cgroup (an exec'd one and one the init left in the background), not only
/// the init; and the same once the init has exited.
#[test]
fn kill_sigkill_without_pid_namespace_kills_the_cgroup_issue_22_item_14() {
    require_root!();
    let env = Env::new();
    let (cfg, out) = no_pidns_with_background_sleep(&env, "; exec sleep 1000");
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let bg: i32 = wait_file(&out.join("bg"), 20).trim().parse().unwrap();
    let _kill = KillOnDrop::new(bg);
    let pf = env.tmp.join("exec.pid");
    env.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let ex: i32 = wait_file(&pf, 20).trim().parse().unwrap();
    let _kill2 = KillOnDrop::new(ex);
    env.ok(&["kill", &id, "KILL"]);
    wait_until(20, "the background sleep to die", || !alive(bg));
    wait_until(20, "the exec'd sleep to die", || !alive(ex));
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));

    // The init has exited, a background process is left: `kill KILL` still reaches it.
    std::fs::remove_file(out.join("bg")).unwrap();
    let mut cfg2 = cfg.clone();
    cfg2["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "sleep 1000 >/dev/null 2>&1 & echo $! > /out/bg.tmp && mv /out/bg.tmp /out/bg"
    ]);
    let b = env.bundle(&cfg2);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let bg: i32 = wait_file(&out.join("bg"), 20).trim().parse().unwrap();
    let _kill3 = KillOnDrop::new(bg);
    env.wait_stopped(&id);
    assert!(alive(bg));
    env.ok(&["kill", &id, "KILL"]);
    wait_until(20, "the leftover sleep to die", || !alive(bg));
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// `run` lets the init go on to exec without a start handshake when nothing has to happen in
/// between: the container's process may have run and exited before the runtime's own start step,
/// which must still report success and run the poststart hooks. The runtime is held between
/// create and start by making the temporary file of its --pid-file a FIFO: it blocks writing
/// the pid until the test reads it, after the container's process has exited.
#[test]
fn run_succeeds_when_the_process_exits_before_start() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "echo done > /out/done.tmp && mv /out/done.tmp /out/done",
    ]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let hooks = env.scratch("hooks");
    cfg["hooks"] = serde_json::json!({"poststart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {}/poststart", hooks.display())]
    }]});
    let b = env.bundle(&cfg);
    let id = env.id();
    let pid_file = env.tmp.join("pid");
    let hold = env.tmp.join(".pid.tmp");
    nix::unistd::mkfifo(&hold, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut run = ChildGuard::new(
        env.cmd(&[
            "run",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            b.path(),
            &id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let mut errpipe = run.0.as_mut().unwrap().stderr.take().unwrap();
    wait_file(&out.join("done"), 20);
    // The init has exited (a zombie: `state` says stopped) while `run` has not started it yet.
    wait_until(20, "the container's process to exit", || {
        env.status(&id) == "stopped"
    });
    // Release the runtime: it writes the pid, starts (the process is gone already) and deletes.
    let pid: i32 = std::fs::read_to_string(&hold).unwrap().parse().unwrap();
    let st = run.wait_timeout(30);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut errpipe, &mut err).unwrap();
    assert_eq!(st.code(), Some(0), "{err}");
    let state = read(&hooks.join("poststart"));
    assert!(state.contains(&format!("\"pid\":{pid}")), "{state}");
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 15: between `create` and `start` the init holds fds 0–2, the exec fifo and the
/// preserved fds, nothing else: not a descriptor the caller had open beyond 2 (and not
/// close-on-exec), the state dir, the cgroup dir, /dev/null or the runtime's sync socket.
#[test]
fn created_init_holds_only_stdio_fifo_and_preserved_fds_issue_22_item_15() {
    use std::os::fd::AsRawFd;
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    let preserved = env.tmp.join("preserved");
    let secret = env.tmp.join("caller-secret");
    std::fs::write(&preserved, "p").unwrap();
    std::fs::write(&secret, "s").unwrap();
    let fp = std::fs::File::open(&preserved).unwrap();
    let fs = std::fs::File::open(&secret).unwrap();
    let mut c = env.cmd(&["create", "--preserve-fds", "1", "--bundle", b.path(), &id]);
    fds_in_child(&mut c, &[(fp.as_raw_fd(), 3), (fs.as_raw_fd(), 7)]);
    let o = env.output(c);
    assert!(
        o.status.success(),
        "create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pid = env.pid(&id);
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let n: i32 = e.file_name().to_str().unwrap().parse().unwrap();
            let t = std::fs::read_link(e.path()).unwrap_or_default();
            (n, t.to_string_lossy().into_owned())
        })
        .filter(|(n, _)| *n > 2)
        .collect();
    fds.sort();
    let fifo = env.root.join(&id).join("exec.fifo");
    let want = vec![
        (3, preserved.to_string_lossy().into_owned()),
        (
            fds.iter()
                .find(|(_, t)| *t == fifo.to_string_lossy())
                .map_or(-1, |f| f.0),
            fifo.to_string_lossy().into_owned(),
        ),
    ];
    assert_eq!(fds, want, "the created init's fds beyond 2");
    env.ok(&["start", &id]);
    env.finish(&id, &b);
}
