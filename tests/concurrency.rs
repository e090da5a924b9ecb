//! Races (issue #8): concurrent `create` of one id, concurrent `start`/`kill`/`state`/`delete`
//! on one container, concurrent creators of different ids, 50 containers alive at once. No
//! half-written state.json is ever read, nothing panics, every error is a documented one, and
//! nothing is left behind.
//!
//! The tests of this file run one at a time (each is concurrent inside; they count fds).
mod common;
mod reliab_util;
use common::*;
use reliab_util::*;
use std::process::{Child, Stdio};

/// Spawns `rruntime --root <root> ARGS` with output to files; `finish` collects it.
struct Running {
    child: Child,
    args: Vec<String>,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

/// What a thread needs to run the binary against an Env's root (`Env` itself is not `Sync`).
#[derive(Clone)]
struct Rt {
    root: std::path::PathBuf,
    tmp: std::path::PathBuf,
}

impl Rt {
    fn of(env: &Env) -> Rt {
        Rt {
            root: env.root.clone(),
            tmp: env.tmp.clone(),
        }
    }

    fn spawn(&self, args: &[&str], mark: &str) -> Running {
        let n = unique("conc");
        let out = self.tmp.join(format!("{n}.o"));
        let err = self.tmp.join(format!("{n}.e"));
        let child = std::process::Command::new(rruntime())
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .env(MARK_VAR, mark)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn rruntime");
        Running {
            child,
            args: args.iter().map(|s| s.to_string()).collect(),
            out,
            err,
        }
    }
}

impl Running {
    /// Waits (bounded: a deadlock is a failure) and returns (success, stdout, stderr).
    fn finish(mut self) -> (bool, String, String) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(180);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("rruntime {:?} hung", self.args);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let o = std::fs::read_to_string(&self.out).unwrap_or_default();
        let e = std::fs::read_to_string(&self.err).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.err);
        (status.success(), o, e)
    }
}

/// A racer left running by a failed assertion is stopped, not left to create after cleanup.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The errors a command may report when it loses a race (runc's texts where callers match).
const DOCUMENTED: &[&str] = &[
    "does not exist",
    "already exists",
    "container not running",
    "cannot start a container that has stopped",
    "cannot start an already",
    "container init exited before start",
    "that is not stopped",
];

fn assert_documented(args: &[String], stderr: &str) {
    assert_one_line(&format!("{args:?}"), stderr);
    assert!(
        DOCUMENTED.iter().any(|d| stderr.contains(d)),
        "{args:?}: undocumented error {stderr:?}"
    );
}

#[test]
fn same_id_created_by_eight_processes() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for _round in 0..3 {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        let rt = Rt::of(&env);
        let racers: Vec<Running> = (0..8)
            .map(|_| rt.spawn(&["create", "--bundle", b.path(), &id], &mark))
            .collect();
        let mut winners = 0;
        for r in racers {
            let args = r.args.clone();
            let (ok, _, err) = r.finish();
            if ok {
                winners += 1;
            } else {
                assert_one_line(&format!("{args:?}"), &err);
                assert!(err.contains("already exists"), "loser: {err}");
            }
        }
        assert_eq!(winners, 1, "exactly one create must win");
        // The winner's container is whole: created, startable, with one init.
        assert_eq!(status_of(&env, &id).as_deref(), Some("created"));
        env.ok(&["start", &id]);
        assert_eq!(status_of(&env, &id).as_deref(), Some("running"));
        assert_eq!(marked_pids(&mark).len(), 1, "one container process");
        env.ok(&["delete", "--force", &id]);
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn lifecycle_commands_racing_on_one_container() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    for round in 0..6 {
        let mark = marker();
        let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
        let id = env.id();
        env.create(&b, &id);
        if round % 2 == 1 {
            env.ok(&["start", &id]);
        }
        // A reader of state.json itself, racing with the writers: every read is whole.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Stops the reader however this round ends (a failed assertion included).
        struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop_reader = StopOnDrop(stop.clone());
        let reader = {
            let stop = stop.clone();
            let path = env.root.join(&id).join("state.json");
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(data) = std::fs::read(&path) {
                        rruntime::state::parse_state(&data)
                            .unwrap_or_else(|e| panic!("half-written state.json ({e}): {data:?}"));
                        reads += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                reads
            })
        };
        let mut cmds: Vec<Vec<&str>> = Vec::new();
        for i in 0..4 {
            cmds.push(vec!["state", &id]);
            cmds.push(vec!["start", &id]);
            cmds.push(vec!["kill", &id, "USR1"]);
            if i == round % 4 {
                cmds.push(vec!["delete", &id]);
            }
        }
        cmds.push(vec!["kill", "--all", &id, "USR1"]);
        cmds.push(vec!["list", "--format", "json"]);
        cmds.push(vec!["delete", "--force", &id]);
        // Rotate so a different command leads each round.
        let n = cmds.len();
        cmds.rotate_left(round * 3 % n);
        let rt = Rt::of(&env);
        let running: Vec<Running> = cmds.iter().map(|a| rt.spawn(a, &mark)).collect();
        for r in running {
            let args = r.args.clone();
            let (ok, out, err) = r.finish();
            if ok {
                if args[0] == "state" {
                    let v: serde_json::Value = serde_json::from_str(&out)
                        .unwrap_or_else(|e| panic!("state output ({e}): {out}"));
                    let s = v["status"].as_str().unwrap();
                    assert!(["created", "running", "stopped"].contains(&s), "status {s}");
                }
                if args[0] == "list" {
                    let _: serde_json::Value = serde_json::from_str(&out)
                        .unwrap_or_else(|e| panic!("list output ({e}): {out}"));
                }
                assert!(!err.contains("panicked"), "{args:?}: {err}");
            } else {
                assert!(
                    args[..2] != ["delete", "--force"],
                    "delete --force failed: {err}"
                );
                assert_documented(&args, &err);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("state.json reader");
        // delete --force was among them: whatever the order, the container is gone.
        assert_eq!(status_of(&env, &id), None, "round {round}");
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn eight_concurrent_creators_of_different_ids() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    let mark = marker();
    let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
    let ids: Vec<Vec<String>> = (0..8).map(|_| (0..3).map(|_| env.id()).collect()).collect();
    let rt = Rt::of(&env);
    std::thread::scope(|s| {
        for mine in &ids {
            let (rt, b, mark) = (&rt, b.path(), &mark);
            s.spawn(move || {
                for id in mine {
                    let (ok, _, err) = rt.spawn(&["create", "--bundle", b, id], mark).finish();
                    assert!(ok, "create {id}: {err}");
                    let (ok, _, err) = rt.spawn(&["start", id], mark).finish();
                    assert!(ok, "start {id}: {err}");
                    let (ok, _, err) = rt.spawn(&["delete", "--force", id], mark).finish();
                    assert!(ok, "delete {id}: {err}");
                }
            });
        }
    });
    for id in ids.iter().flatten() {
        assert_nothing_left(&env, id, Some(&b), &mark);
    }
    assert!(root_entries(&env).is_empty(), "{:?}", root_entries(&env));
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}

#[test]
fn fifty_containers_alive_at_once() {
    require_root!();
    let _serial = serial();
    let env = Env::new();
    let fds = fd_count();
    let mark = marker();
    let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
    let ids: Vec<String> = (0..50).map(|_| env.id()).collect();
    let rt = Rt::of(&env);
    let bp = b.path().to_string();
    let each = |f: &(dyn Fn(&str) + Sync)| {
        std::thread::scope(|s| {
            for chunk in ids.chunks(13) {
                s.spawn(move || chunk.iter().for_each(|id| f(id)));
            }
        })
    };
    each(&|id| {
        let (ok, _, err) = rt.spawn(&["create", "--bundle", &bp, id], &mark).finish();
        assert!(ok, "create {id}: {err}");
        let (ok, _, err) = rt.spawn(&["start", id], &mark).finish();
        assert!(ok, "start {id}: {err}");
    });
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    let running = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "running")
        .count();
    assert_eq!(running, 50, "{list}");
    assert_eq!(marked_pids(&mark).len(), 50);
    each(&|id| {
        let (ok, _, err) = rt.spawn(&["delete", "--force", id], &mark).finish();
        assert!(ok, "delete {id}: {err}");
    });
    for id in &ids {
        assert_nothing_left(&env, id, Some(&b), &mark);
    }
    assert!(root_entries(&env).is_empty(), "{:?}", root_entries(&env));
    assert_eq!(fd_count(), fds, "fds of the caller leaked");
}
