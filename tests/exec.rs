//! `exec` through the binary: `--process` and positional args, runc's flags, detach and pid
//! file, exit status propagation, 255 for runtime errors, stopped containers, `--preserve-fds`,
//! and a terminal handed over `--console-socket`.
mod common;
use common::*;
use serde_json::json;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// A running `sleep` container (created and started) in its own environment.
fn running(env: &Env, config: serde_json::Value) -> (Bundle, String) {
    let b = env.bundle(&config);
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    (b, id)
}

fn sleeper() -> serde_json::Value {
    base_config(&["sleep", "1000"])
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn init_pid(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

#[test]
fn positional_args_output_and_exit_status() {
    require_root!();
    let env = Env::new();
    let (b, id) = running(&env, sleeper());
    let o = env.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo out-$((6*7)); echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", err(&o));
    assert_eq!(out(&o), "out-42\n");
    assert_eq!(err(&o), "err\n");
    // Arguments with dashes after the id belong to the command.
    let o = env.rt(&["exec", &id, "ls", "-d", "/proc/1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "/proc/1\n");
    // The process joined the container: its pid 1 is the container's sleep.
    let o = env.ok(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert_eq!(o, "sleep\x001000\x00");
    // Killed by a signal: 128+N.
    let o = env.rt(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    env.ok(&["kill", &id, "KILL"]);
    wait_until(10, "stopped", || env.status(&id) == "stopped");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn process_json() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let p = env.tmp.join("process.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
            "args": ["sh", "-c", "echo \"$FOO $(pwd) $(id -u) $(id -G)\"; exit 4"],
            "env": ["PATH=/bin", "FOO=from-process-json"],
            "cwd": "/tmp",
            "noNewPrivileges": true
        }))
        .unwrap(),
    )
    .unwrap();
    let o = env.rt(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(4), "stderr: {}", err(&o));
    assert_eq!(out(&o), "from-process-json /tmp 1000 1000 5\n");
    // A process file that is not JSON: runtime error, 255.
    std::fs::write(&p, "{not json").unwrap();
    let o = env.rt(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(255));
    assert!(!err(&o).is_empty());
}

#[test]
fn env_cwd_user_and_groups() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let o = env.ok(&[
        "exec",
        "-e",
        "A=1",
        "--env",
        "B=two",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        "-g",
        "5",
        "--additional-gids",
        "6",
        &id,
        "sh",
        "-c",
        "echo \"$A $B $(pwd) $(id -u):$(id -g) $(id -G)\"",
    ]);
    assert_eq!(o, "1 two /tmp 1000:1000 1000 5 6\n");
    // The container's environment is kept and -e overrides it.
    let o = env.ok(&[
        "exec",
        "-e",
        "TERM=dumb",
        &id,
        "sh",
        "-c",
        "echo $PATH $TERM",
    ]);
    assert_eq!(o, "/bin dumb\n");
    // A user name from the container's /etc/passwd, with its primary group.
    let o = env.ok(&[
        "exec",
        "-u",
        "user",
        &id,
        "sh",
        "-c",
        "echo $(id -u):$(id -g) $HOME",
    ]);
    assert_eq!(o, "1000:1000 /home/user\n");
    // Only a uid: gid stays the container's (0).
    let o = env.ok(&[
        "exec",
        "-u",
        "1000",
        &id,
        "sh",
        "-c",
        "echo $(id -u):$(id -g)",
    ]);
    assert_eq!(o, "1000:0\n");
    let e = env.rt(&["exec", "-u", "nosuchuser", &id, "true"]);
    assert_eq!(e.status.code(), Some(255));
    assert!(err(&e).contains("nosuchuser"), "{}", err(&e));
    // A cwd that does not exist in the container: the exec fails.
    let e = env.rt(&["exec", "--cwd", "/does/not/exist", &id, "true"]);
    assert_eq!(e.status.code(), Some(255));
}

/// The effective capability mask of the exec'd process, from /proc/self/status.
fn cap_eff(env: &Env, args: &[&str]) -> u64 {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["grep", "CapEff", "/proc/self/status"]);
    let o = env.ok(&a);
    u64::from_str_radix(o.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn cap_and_no_new_privs() {
    require_root!();
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["process"]["noNewPrivileges"] = json!(false);
    let (_b, id) = running(&env, cfg);
    const SYS_ADMIN: u64 = 1 << 21;
    const CHOWN: u64 = 1 << 0;
    let plain = cap_eff(&env, &[&id]);
    assert_eq!(
        plain & SYS_ADMIN,
        0,
        "the container's set has no CAP_SYS_ADMIN"
    );
    assert_ne!(plain & CHOWN, 0);
    let with = cap_eff(&env, &["--cap", "CAP_SYS_ADMIN", &id]);
    assert_eq!(with, plain | SYS_ADMIN);
    // A capability name without the CAP_ prefix, and a bad one.
    let with = cap_eff(&env, &["-c", "NET_ADMIN", &id]);
    assert_ne!(with & (1 << 12), 0);
    let e = env.rt(&["exec", "--cap", "CAP_NOPE", &id, "true"]);
    assert_eq!(e.status.code(), Some(255));
    // no_new_privs: off in this container, on with --no-new-privs.
    let o = env.ok(&["exec", &id, "grep", "NoNewPrivs", "/proc/self/status"]);
    assert!(o.ends_with("0\n"), "{o}");
    let o = env.ok(&[
        "exec",
        "--no-new-privs",
        &id,
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(o.ends_with("1\n"), "{o}");
}

#[test]
fn detach_writes_pid_file_of_the_started_process() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let pf = env.tmp.join("exec.pid");
    let pfs = pf.to_str().unwrap();
    let o = env.rt(&["exec", "-d", "--pid-file", pfs, &id, "sleep", "555"]);
    assert!(o.status.success(), "{}", err(&o));
    let text = std::fs::read_to_string(&pf).unwrap();
    assert!(
        text.chars().all(|c| c.is_ascii_digit()),
        "pid file {text:?}"
    );
    let pid: i32 = text.parse().unwrap();
    // The pid is the exec'd command itself, already running it, in the container's namespaces
    // and cgroup.
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x00555\x00");
    let init = init_pid(&env, &id);
    for ns in ["pid", "mnt", "net", "ipc", "uts"] {
        let a = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let b = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        assert_eq!(a, b, "{ns} namespace");
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    // SAFETY: killing the process we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_gone(pid);
}

#[test]
fn missing_binary_fails_without_pid_file() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let pf = env.tmp.join("missing.pid");
    let pfs = pf.to_str().unwrap();
    for cmd in ["/no/such/binary", "no-such-command"] {
        let o = env.rt(&["exec", "-d", "--pid-file", pfs, &id, cmd]);
        assert!(!o.status.success());
        assert!(!pf.exists(), "pid file written for a failed exec of {cmd}");
        assert!(err(&o).contains(cmd), "{}", err(&o));
        // Foreground: a runtime error, 255.
        let o = env.rt(&["exec", &id, cmd]);
        assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    }
    // The container is unaffected.
    assert_eq!(env.status(&id), "running");
}

#[test]
fn error_paths() {
    require_root!();
    let env = Env::new();
    // Missing container: 255 and runc's "does not exist".
    let o = env.rt(&["exec", "nosuchcontainer", "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(err(&o).contains("does not exist"), "{}", err(&o));
    // Stopped container: runc's message.
    let (_b, id) = running(&env, base_config(&["sh", "-c", "exit 0"]));
    wait_until(10, "container to stop", || env.status(&id) == "stopped");
    let o = env.rt(&["exec", &id, "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        err(&o).contains("cannot exec in a stopped container"),
        "{}",
        err(&o)
    );
    // No command and no --process.
    let (_b2, id2) = running(&env, sleeper());
    let o = env.rt(&["exec", &id2]);
    assert!(!o.status.success());
    // A tty without a console socket cannot be detached.
    let o = env.rt(&["exec", "-t", "-d", &id2, "true"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("console-socket"), "{}", err(&o));
}

#[test]
fn foreground_exec_forwards_signals() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let outp = env.tmp.join("sig.out");
    let mut child = ChildGuard::new(
        env.cmd(&[
            "exec",
            &id,
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::fs::File::create(&outp).unwrap())
        .spawn()
        .unwrap(),
    );
    wait_until(10, "exec'd shell ready", || read(&outp).contains("ready"));
    // SAFETY: signalling the runtime process we spawned.
    unsafe { libc::kill(child.pid(), libc::SIGTERM) };
    let status = child.wait_timeout(20);
    assert_eq!(status.code(), Some(9));
    assert!(read(&outp).contains("got-term"));
}

/// Freezes (or thaws) the cgroup of `pid` directly, as `pause`/`resume` would.
fn set_frozen(pid: i64, frozen: bool) {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in cg.lines() {
        let f: Vec<&str> = l.splitn(3, ':').collect();
        if f[1].split(',').any(|c| c == "freezer") {
            let p = format!("/sys/fs/cgroup/freezer{}/freezer.state", f[2]);
            std::fs::write(p, if frozen { "FROZEN" } else { "THAWED" }).unwrap();
            return;
        }
    }
    let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    for mnt in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let p = format!("{mnt}{path}/cgroup.freeze");
        if Path::new(&p).exists() {
            std::fs::write(p, if frozen { "1" } else { "0" }).unwrap();
            return;
        }
    }
    panic!("no freezer for pid {pid}");
}

#[test]
fn paused_container_refuses_exec() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let pid = init_pid(&env, &id);
    let refused = |o: &std::process::Output| {
        assert_eq!(o.status.code(), Some(255));
        assert!(
            err(o).contains("cannot exec in a paused container (use --ignore-paused to override)"),
            "{}",
            err(o)
        );
    };
    env.ok(&["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    refused(&env.rt(&["exec", &id, "true"]));
    env.ok(&["resume", &id]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["exec", &id, "true"]);
    // Frozen behind the runtime's back: not a `pause` (state says running), but an exec would
    // freeze too, so it is refused as well.
    set_frozen(pid, true);
    let o = env.rt(&["exec", &id, "true"]);
    let status = env.status(&id);
    set_frozen(pid, false);
    refused(&o);
    assert_eq!(status, "running");
    env.ok(&["exec", &id, "true"]);
}

#[test]
fn preserve_fds() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let f = env.tmp.join("fd3");
    std::fs::write(&f, "through fd 3\n").unwrap();
    let run = |preserve: bool| {
        let file = std::fs::File::open(&f).unwrap();
        let mut args = vec!["exec"];
        if preserve {
            args.extend_from_slice(&["--preserve-fds", "1"]);
        }
        args.extend_from_slice(&[&id, "sh", "-c", "cat <&3"]);
        let mut c = env.cmd(&args);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
        fds_in_child(&mut c, &[(raw, 3)]);
        c.output().unwrap()
    };
    let o = run(true);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "through fd 3\n");
    // Without --preserve-fds the runtime's fd 3 does not reach the process.
    let o = run(false);
    assert!(
        !o.status.success(),
        "fd 3 leaked into the container: {}",
        out(&o)
    );
}

#[test]
fn tty_over_console_socket() {
    require_root!();
    let env = Env::new();
    let (_b, id) = running(&env, sleeper());
    let sock = env.tmp.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let pf = env.tmp.join("tty.pid");
    let o = env.rt(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo tty-ok; read line; echo got-$line",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let (conn, _) = listener.accept().unwrap();
    let master = rruntime::tty::recv_fd(conn.as_fd()).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    wait_until(10, "tty output", || {
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } > 0 {
            if let Ok(n) = nix::unistd::read(&master, &mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        seen.contains("tty-ok")
    });
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    nix::unistd::write(&master, b"hello\n").unwrap();
    wait_until(10, "echo of the input", || {
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } > 0 {
            if let Ok(n) = nix::unistd::read(&master, &mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        seen.contains("got-hello")
    });
    let pid: i32 = std::fs::read_to_string(&pf).unwrap().parse().unwrap();
    wait_gone(pid);
    assert!(Path::new(&sock).exists());
}

/// `exec --cgroup SUB`: the process runs in SUB below the container's cgroup, in every
/// hierarchy the host has (pure v2: the one); a SUB that does not exist is one clear error.
/// `delete` removes the sub-cgroup with the container's (runc removes them recursively).
#[test]
fn exec_into_a_sub_cgroup() {
    require_root!();
    let env = Env::new();
    let (b, id) = running(&env, sleeper());
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&id).join("state.json")).unwrap())
            .unwrap();
    let dirs: Vec<std::path::PathBuf> = st["cgroup"]["hierarchies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["dir"].as_str().unwrap().into())
        .collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        std::fs::create_dir(d.join("sub")).unwrap();
        // A new v1 cpuset cgroup starts with no cpus and mems and takes no task until it has
        // some (as with runc, whoever makes the sub-cgroup sets them).
        if !d.join("cgroup.controllers").exists() {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(d.join(f)) {
                    std::fs::write(d.join("sub").join(f), v.trim()).unwrap();
                }
            }
        }
    }
    let o = env.rt(&["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"]);
    assert!(o.status.success(), "{}", err(&o));
    let lines: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), host().proc_cgroup_lines, "{lines:?}");
    for l in &lines {
        assert!(
            l.ends_with(&format!("/{id}/sub")),
            "not in the sub-cgroup: {l}"
        );
    }
    let o = env.rt(&["exec", "--cgroup", "nope", &id, "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert_one_line_error(&err(&o));
    assert!(err(&o).contains("nope"), "{}", err(&o));
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 4: `exec` applies the container's `personality` (and `memoryPolicy`) to the
/// new process too, not only to the init.
#[test]
fn exec_gets_the_containers_personality_issue_22_item_4() {
    require_root!();
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["linux"]["personality"] = json!({"domain": "LINUX32"});
    cfg["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let (b, id) = running(&env, cfg);
    assert_eq!(env.ok(&["exec", &id, "uname", "-m"]), "i686\n");
    let o = env.ok(&[
        "exec",
        &id,
        "grep",
        "-m1",
        "-o",
        "bind:0",
        "/proc/self/numa_maps",
    ]);
    assert_eq!(o, "bind:0\n");
    env.finish(&id, &b);
}

/// The CPUs this host has online (`0-1`), or None when there is only one.
fn online_cpus() -> Option<String> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let s = s.trim().to_string();
    (s != "0").then_some(s)
}

fn allowed_list(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `cmd` pinned to CPU 0 (what `taskset -c 0 rruntime …` does).
fn pinned_to_cpu0(mut c: std::process::Command) -> std::process::Command {
    // SAFETY: sched_setaffinity is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// issue 22 item 17: the container's processes do not inherit the caller's CPU mask: with the
/// runtime pinned to CPU 0, the init and an exec'd process may still run on every CPU.
#[test]
fn caller_cpu_mask_is_not_inherited_issue_22_item_17() {
    require_root!();
    let Some(online) = online_cpus() else {
        skip!("one CPU online: a mask cannot be narrower than all CPUs");
    };
    let env = Env::new();
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status; true",
    ]));
    let id = env.id();
    let o = env.output(pinned_to_cpu0(env.cmd(&["run", "--bundle", b.path(), &id])));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(allowed_list(&out(&o)), online, "init");
    env.assert_no_leaks(&id, Some(&b));

    let (b, id) = running(&env, sleeper());
    let o = env.output(pinned_to_cpu0(env.cmd(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ])));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(allowed_list(&out(&o)), online, "exec");
    env.finish(&id, &b);
}

/// issue 22 item 16: `process.execCPUAffinity.final` is the exec'd process's mask once it is
/// in the container's cgroup (from config.json's process, and from `exec --process`, which
/// wins); `initial` alone leaves the process on the initial CPUs.
#[test]
fn exec_cpu_affinity_is_applied_issue_22_item_16() {
    require_root!();
    if online_cpus().is_none() {
        skip!("one CPU online: affinity cannot be observed");
    }
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    let (b, id) = running(&env, cfg);
    let o = env.ok(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_eq!(allowed_list(&o), "1", "config's final");
    let mut p = base_config(&["grep", "Cpus_allowed_list", "/proc/self/status"])["process"].clone();
    p["execCPUAffinity"] = json!({"initial": "1"});
    let pf = env.tmp.join("process.json");
    std::fs::write(&pf, p.to_string()).unwrap();
    let o = env.ok(&["exec", "--process", pf.to_str().unwrap(), &id]);
    if host().kernel_at_least(6, 2) {
        assert_eq!(allowed_list(&o), "1", "--process initial only");
    } else {
        // Before Linux 6.2 a task that joins a cpuset cgroup gets the cpuset's CPUs
        // (cpuset_attach); 6.2 keeps the mask the task asked for with sched_setaffinity.
        // (Written past libtest's capture, as `skip!` does, so the line is counted.)
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP exec_cpu_affinity_is_applied_issue_22_item_16 (initial only): kernel {}.{} < 6.2 \
             resets the affinity when the process joins its cpuset cgroup",
            host().kernel.0,
            host().kernel.1
        );
    }
    p["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    std::fs::write(&pf, p.to_string()).unwrap();
    let o = env.ok(&["exec", "--process", pf.to_str().unwrap(), &id]);
    assert_eq!(allowed_list(&o), "0", "--process final");
    env.finish(&id, &b);
}

/// Accepts the runtime's connection on `l` and receives (payload, fds) of one message.
fn recv_one(l: &std::os::unix::net::UnixListener) -> (String, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    l.set_nonblocking(true).unwrap();
    let (conn, _) = l.accept().expect("the runtime did not connect");
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel installed these fds for us.
            fds.extend(
                v.into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    (String::from_utf8_lossy(&buf[..n]).into_owned(), fds)
}

/// The pid a pidfd refers to (`Pid:` in its fdinfo).
fn pidfd_pid(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("not a pidfd")
        .trim()
        .parse()
        .unwrap()
}

/// issue 22 item 22: `--pidfd-socket PATH` on `create` and `exec` (runc ≥ 1.2): one message
/// with one SCM_RIGHTS fd, a pidfd of the init (payload `standard`) or of the exec'd process
/// (`setns`); a socket nobody listens on fails the command and leaves nothing behind.
#[test]
fn pidfd_socket_sends_a_pidfd_issue_22_item_22() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&sleeper());
    let id = env.id();
    let sock = env.tmp.join("pidfd.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let s = sock.to_str().unwrap();
    env.ok(&["create", "--pidfd-socket", s, "--bundle", b.path(), &id]);
    let (payload, fds) = recv_one(&l);
    assert_eq!(fds.len(), 1);
    assert_eq!(payload, "standard");
    assert_eq!(pidfd_pid(&fds[0]) as i64, init_pid(&env, &id));
    env.ok(&["start", &id]);
    let pf = env.tmp.join("exec.pid");
    env.ok(&[
        "exec",
        "-d",
        "--pidfd-socket",
        s,
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let (payload, fds) = recv_one(&l);
    assert_eq!(payload, "setns");
    let pid: i32 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&fds[0]), pid);
    // Through the pidfd the caller can signal the process.
    // SAFETY: pidfd_send_signal on a pidfd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fds[0]),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0);
    wait_gone(pid);
    env.finish(&id, &b);
    // Nobody listening: create fails, nothing left.
    let gone = env.tmp.join("nobody.sock");
    let id2 = env.id();
    let err = env.fails(&[
        "create",
        "--pidfd-socket",
        gone.to_str().unwrap(),
        "--bundle",
        b.path(),
        &id2,
    ]);
    assert_one_line_error(&err);
    env.assert_no_leaks(&id2, Some(&b));
}
