//! Fault injection (issue #8): the runtime SIGKILLed at every phase of `create` and `delete`,
//! the container init SIGKILLed, a full state directory, hooks that hang past their timeout, a
//! console socket that never accepts, the bundle removed under a running container. After each:
//! `state` tells the truth, `delete --force` succeeds, and nothing is left behind — state dir,
//! cgroups in every hierarchy, mounts, processes, fds of the caller.
//!
//! The tests of this file run one at a time (they count the test process's fds).
mod common;
mod reliab_util;
use common::*;
use reliab_util::*;
use std::os::fd::AsRawFd;

/// What `state` says while the runtime is paused at a phase of `create`, and after it was
/// killed there (`None`: the container does not exist).
struct CreatePhase {
    phase: &'static str,
    while_paused: Option<&'static str>,
    after_kill: Option<&'static str>,
}

const CREATE_PHASES: &[CreatePhase] = &[
    CreatePhase {
        phase: "parse+validate",
        while_paused: None,
        after_kill: None,
    },
    CreatePhase {
        phase: "state",
        while_paused: Some("creating"),
        after_kill: Some("stopped"),
    },
    CreatePhase {
        phase: "cgroup",
        while_paused: Some("creating"),
        after_kill: Some("stopped"),
    },
    CreatePhase {
        phase: "clone",
        while_paused: Some("creating"),
        after_kill: Some("stopped"),
    },
    // From here on the init exists and is recorded; it dies with the runtime (PDEATHSIG or
    // the sync socket's EOF) until it reports ready.
    CreatePhase {
        phase: "state+pid",
        while_paused: Some("created"),
        after_kill: Some("stopped"),
    },
    CreatePhase {
        phase: "init: mounts",
        while_paused: Some("created"),
        after_kill: Some("stopped"),
    },
    CreatePhase {
        phase: "init: pivot_root",
        while_paused: Some("created"),
        after_kill: Some("stopped"),
    },
    // The init is ready and outlives the runtime: a created container.
    CreatePhase {
        phase: "init ready",
        while_paused: Some("created"),
        after_kill: Some("created"),
    },
    CreatePhase {
        phase: "init: ready",
        while_paused: Some("created"),
        after_kill: Some("created"),
    },
];

#[test]
fn create_killed_at_every_phase() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for p in CREATE_PHASES {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        let paused = Paused::spawn(&env, &["create", "--bundle", b.path(), &id], p.phase, &mark);
        assert_eq!(
            status_of(&env, &id).as_deref(),
            p.while_paused,
            "state while paused at {}",
            p.phase
        );
        let stderr = paused.kill();
        assert!(!stderr.contains("panicked"), "{}: {stderr}", p.phase);
        match p.after_kill {
            Some(s) => wait_status(&env, &id, s),
            None => assert_eq!(status_of(&env, &id), None, "{}", p.phase),
        }
        if p.phase == "init ready" {
            // Killed after the init reported ready (before the pid file): a usable container.
            env.ok(&["start", &id]);
            assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
        }
        let o = run_deadline(&env, &["delete", "--force", &id], &[], 120);
        assert!(o.ok(), "{}: delete --force: {}", p.phase, o.stderr);
        assert_eq!(status_of(&env, &id), None, "{}", p.phase);
        assert_nothing_left(&env, &id, Some(&b), &mark);
        // A fresh create of the same id works: nothing stale blocks it.
        env.create(&b, &id);
        env.ok(&["delete", "--force", &id]);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn create_killed_with_hooks_and_no_pid_namespace() {
    // A container sharing the host's PID namespace, with a prestart hook: the runtime killed
    // while the init waits, after the cgroup exists.
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for phase in ["cgroup", "state+pid", "init: pivot_root"] {
        let mark = marker();
        let mut cfg = marked_config(&["sleep", "1000"], &mark);
        cfg["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "uts"}]);
        cfg["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/true"}]});
        let b = env.bundle(&cfg);
        let id = env.id();
        let paused = Paused::spawn(&env, &["create", "--bundle", b.path(), &id], phase, &mark);
        paused.kill();
        wait_status(&env, &id, "stopped");
        env.ok(&["delete", "--force", &id]);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn init_killed_created_and_running() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for start in [false, true] {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        create_marked(&env, &b, &id, &mark);
        if start {
            env.ok(&["start", &id]);
            assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
        } else {
            assert_eq!(status_of(&env, &id).as_deref(), Some("created"));
        }
        let pid = init_pid(&env, &id);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        wait_status(&env, &id, "stopped");
        assert_eq!(env.state(&id)["pid"], 0);
        // A stopped container: start and kill refuse clearly, a plain delete works.
        assert_clean_error("start", &run_deadline(&env, &["start", &id], &[], 60));
        let k = run_deadline(&env, &["kill", &id, "KILL"], &[], 60);
        assert_clean_error("kill", &k);
        assert!(k.stderr.contains("container not running"), "{}", k.stderr);
        let o = run_deadline(&env, &["delete", &id], &[], 120);
        assert!(o.ok(), "delete: {}", o.stderr);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn delete_killed_at_every_phase() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for phase in ["delete: killed", "delete: cgroup", "delete: poststop"] {
        let mark = marker();
        let mut cfg = marked_config(&["sleep", "1000"], &mark);
        cfg["hooks"] = serde_json::json!({"poststop": [{"path": "/bin/true"}]});
        let b = env.bundle(&cfg);
        let id = env.id();
        create_marked(&env, &b, &id, &mark);
        env.ok(&["start", &id]);
        let paused = Paused::spawn(&env, &["delete", "--force", &id], phase, &mark);
        let stderr = paused.kill();
        assert!(!stderr.contains("panicked"), "{phase}: {stderr}");
        // The init was killed before the first phase: the container is stopped, and a plain
        // delete finishes the job.
        wait_status(&env, &id, "stopped");
        let o = run_deadline(&env, &["delete", &id], &[], 120);
        assert!(o.ok(), "{phase}: delete: {}", o.stderr);
        assert_eq!(status_of(&env, &id), None);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn start_killed_after_release() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    let mark = marker();
    let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
    let id = env.id();
    create_marked(&env, &b, &id, &mark);
    let paused = Paused::spawn(&env, &["start", &id], "start: released", &mark);
    paused.kill();
    assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
    env.ok(&["delete", "--force", &id]);
    assert_nothing_left(&env, &id, Some(&b), &mark);
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

/// A tiny tmpfs used as the state root; unmounted on drop.
struct TinyFs {
    path: std::path::PathBuf,
}

impl TinyFs {
    fn mount(path: &std::path::Path, opts: &str) -> TinyFs {
        std::fs::create_dir_all(path).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(opts),
        )
        .expect("mount tmpfs");
        TinyFs {
            path: path.to_path_buf(),
        }
    }

    /// Fills it: one big file until ENOSPC, then empty files until ENOSPC (inodes).
    fn fill(&self, inodes: bool) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("fill")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        drop(f);
        if inodes {
            for i in 0.. {
                if std::fs::File::create(self.path.join(format!("f{i}"))).is_err() {
                    break;
                }
            }
        }
    }

    fn empty(&self) {
        for e in std::fs::read_dir(&self.path).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        // Env's own removal of the state root fails while this is mounted on it.
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[test]
fn full_state_directory() {
    require_root!();
    let _serial = serial();
    // Declared before `env`, dropped after it: on a failure Env's `delete --force` still finds
    // the state on the tiny file system.
    let fs;
    let env = Env::new();
    let fds = fd_count();
    // env.root is the state root; make it a 64 KiB tmpfs with few inodes.
    fs = TinyFs::mount(&env.root, "size=64k,nr_inodes=64,mode=0700");
    for inodes in [false, true] {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        fs.fill(inodes);
        let o = run_deadline(
            &env,
            &["create", "--bundle", b.path(), &id],
            &[(MARK_VAR, &mark)],
            120,
        );
        assert_clean_error("create on a full state dir", &o);
        assert!(
            o.stderr.contains("No space left on device"),
            "unclear error: {}",
            o.stderr
        );
        assert_eq!(status_of(&env, &id), None);
        assert_nothing_left(&env, &id, Some(&b), &mark);
        let left: Vec<String> = root_entries(&env)
            .into_iter()
            .filter(|e| e != "fill" && !e.starts_with('f'))
            .collect();
        assert!(left.is_empty(), "left in the state root: {left:?}");
        // With space again, the same id can be created.
        fs.empty();
        let o = run_deadline(
            &env,
            &["create", "--bundle", b.path(), &id],
            &[(MARK_VAR, &mark)],
            120,
        );
        assert!(o.ok(), "create after freeing space: {}", o.stderr);
        env.ok(&["delete", "--force", &id]);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    drop(fs);
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn hooks_hanging_past_their_timeout() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    // The hook forks a child that would outlive it: both must be gone after the timeout.
    let hang = |mark: &str| {
        serde_json::json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", "sleep 1000 & sleep 1000; true"],
            "env": [format!("{MARK_VAR}={mark}")],
            "timeout": 1
        }])
    };
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mark = marker();
        let mut cfg = marked_config(&["sleep", "1000"], &mark);
        cfg["hooks"] = serde_json::json!({ kind: hang(&mark) });
        let b = env.bundle(&cfg);
        let id = env.id();
        let o = run_deadline(
            &env,
            &["create", "--bundle", b.path(), &id],
            &[(MARK_VAR, &mark)],
            120,
        );
        assert_clean_error(kind, &o);
        assert!(o.stderr.contains("timed out"), "{kind}: {}", o.stderr);
        assert_eq!(status_of(&env, &id), None);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    // poststart and poststop failures are warnings: start and delete complete, and the hung
    // hooks are killed.
    for kind in ["poststart", "poststop"] {
        let mark = marker();
        let mut cfg = marked_config(&["sleep", "1000"], &mark);
        cfg["hooks"] = serde_json::json!({ kind: hang(&mark) });
        let b = env.bundle(&cfg);
        let id = env.id();
        let o = run_deadline(
            &env,
            &["create", "--bundle", b.path(), &id],
            &[(MARK_VAR, &mark)],
            120,
        );
        assert!(o.ok(), "{kind}: create: {}", o.stderr);
        let o = run_deadline(&env, &["start", &id], &[], 120);
        assert!(o.ok(), "{kind}: start: {}", o.stderr);
        assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
        let o = run_deadline(&env, &["delete", "--force", &id], &[], 120);
        assert!(o.ok(), "{kind}: delete: {}", o.stderr);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

fn listener(path: &std::path::Path, backlog: i32) -> std::os::fd::OwnedFd {
    use nix::sys::socket::*;
    let s = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(s.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    listen(&s, Backlog::new(backlog).unwrap()).unwrap();
    s
}

#[test]
fn console_socket_that_never_accepts() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    let cfg = |mark: &str| {
        let mut c = marked_config(&["sleep", "1000"], mark);
        c["process"]["terminal"] = true.into();
        c
    };

    // A listener that never calls accept but has room in its backlog: the pty master waits
    // on the pending connection and create succeeds.
    let mark = marker();
    let b = env.bundle(&cfg(&mark));
    let id = env.id();
    let sock = env.tmp.join(unique("console.sock"));
    let l = listener(&sock, 16);
    let o = run_deadline(
        &env,
        &[
            "create",
            "--bundle",
            b.path(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ],
        &[(MARK_VAR, &mark)],
        120,
    );
    assert!(o.ok(), "create: {}", o.stderr);
    assert_eq!(status_of(&env, &id).as_deref(), Some("created"));
    env.ok(&["delete", "--force", &id]);
    drop(l);
    assert_nothing_left(&env, &id, Some(&b), &mark);

    // A listener whose backlog is full: create must fail (bounded), not hang in connect.
    let mark = marker();
    let b = env.bundle(&cfg(&mark));
    let id = env.id();
    let sock = env.tmp.join(unique("console.sock"));
    let l = listener(&sock, 0);
    let mut fillers = Vec::new();
    {
        use nix::sys::socket::*;
        for _ in 0..64 {
            let c = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .unwrap();
            if connect(c.as_raw_fd(), &UnixAddr::new(&sock).unwrap()).is_err() {
                break;
            }
            fillers.push(c);
        }
    }
    let o = run_deadline(
        &env,
        &[
            "create",
            "--bundle",
            b.path(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ],
        &[(MARK_VAR, &mark)],
        120,
    );
    assert_clean_error("create with a full console socket", &o);
    assert!(o.stderr.contains("console socket"), "{}", o.stderr);
    assert_eq!(status_of(&env, &id), None);
    assert_nothing_left(&env, &id, Some(&b), &mark);
    drop(fillers);
    drop(l);

    // A socket path nobody listens on.
    let gone = env.tmp.join(unique("nobody.sock"));
    drop(listener(&gone, 1));
    let o = run_deadline(
        &env,
        &[
            "create",
            "--bundle",
            b.path(),
            "--console-socket",
            gone.to_str().unwrap(),
            &id,
        ],
        &[(MARK_VAR, &mark)],
        120,
    );
    assert_clean_error("create with a dead console socket", &o);
    assert_nothing_left(&env, &id, Some(&b), &mark);
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn bundle_removed_while_running() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for graceful in [true, false] {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        create_marked(&env, &b, &id, &mark);
        env.ok(&["start", &id]);
        std::fs::remove_dir_all(&b.dir).expect("rm -rf bundle");
        assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
        let st = env.state(&id);
        assert_eq!(st["bundle"], b.path());
        if graceful {
            env.ok(&["kill", &id, "KILL"]);
            wait_status(&env, &id, "stopped");
            env.ok(&["delete", &id]);
        } else {
            env.ok(&["delete", "--force", &id]);
        }
        assert_eq!(status_of(&env, &id), None);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}
