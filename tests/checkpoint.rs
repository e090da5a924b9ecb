//! `checkpoint` / `restore` with CRIU: a busybox counter checkpointed and restored keeps
//! counting from its value (detached, with --leave-running, pre-dump + --parent-path, into a new
//! id, with bind mounts and hooks); the restored container is a normal container (state, exec,
//! kill, delete, a second checkpoint); failures leave no state dir, cgroup, mount or process.
//!
//! Cases that need CRIU to dump ask `criu check` once and SKIP where it fails (the development
//! host's kernel); they run in the Debian 12 guest (`make test-vm`). The argument checks that
//! refuse before CRIU runs need no CRIU.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// Why CRIU cannot checkpoint here (None: `criu check` says it can).
fn criu_unusable() -> Option<&'static str> {
    static R: OnceLock<Option<String>> = OnceLock::new();
    R.get_or_init(|| {
        match std::process::Command::new("criu")
            .arg("check")
            .stdin(Stdio::null())
            .output()
        {
            Err(e) => Some(format!("criu not runnable: {e}")),
            Ok(o) if o.status.success() => None,
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Some(format!("`criu check` fails here: {}", last.trim()))
            }
        }
    })
    .as_deref()
}

macro_rules! require_criu {
    () => {
        require_root!();
        if let Some(why) = criu_unusable() {
            skip!("{why}");
        }
    };
}

/// A counter appending 1, 2, 3, … to /count.log (in the rootfs) every 0.1 s.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i >> /count.log; sleep 0.1; done";

fn counter_config() -> Value {
    base_config(&["sh", "-c", COUNTER])
}

/// The counter's values so far.
fn counts(b: &Bundle) -> Vec<u64> {
    std::fs::read_to_string(b.rootfs().join("count.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn last(b: &Bundle) -> u64 {
    counts(b).last().copied().unwrap_or(0)
}

/// Waits until the counter has gone beyond `n`.
fn wait_count_above(b: &Bundle, n: u64) {
    wait_until(120, &format!("counter to pass {n}"), || last(b) > n);
}

/// The log is 1, 2, …, n without a gap or a restart (a restored counter continued, it did not
/// start again from 1).
fn assert_contiguous(b: &Bundle) {
    let c = counts(b);
    for (i, v) in c.iter().enumerate() {
        assert_eq!(*v, i as u64 + 1, "counter log not contiguous: {c:?}");
    }
}

/// Stdio for a runtime whose container keeps it: pipes, as containerd's shim and conmon give
/// (CRIU cannot dump an fd of a host file such as /dev/null, which is outside the container's
/// mounts). The test keeps the other ends open for as long as it lives.
struct Pipes {
    keep: std::cell::RefCell<Vec<OwnedFd>>,
}

impl Pipes {
    fn new() -> Pipes {
        Pipes {
            keep: Default::default(),
        }
    }

    /// Runs rruntime `args` with fresh pipes for stdin, stdout and stderr; returns whether it
    /// succeeded and what it wrote (read without waiting for a container holding the pipe).
    fn rt(&self, env: &Env, args: &[&str]) -> (Option<i32>, String) {
        let (in_r, in_w) = nix::unistd::pipe().unwrap();
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let st = env
            .cmd(args)
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w.try_clone().unwrap()))
            .stderr(Stdio::from(out_w))
            .status()
            .unwrap();
        let fl = nix::fcntl::fcntl(&out_r, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        nix::fcntl::fcntl(
            &out_r,
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )
        .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(&out_r, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        self.keep.borrow_mut().extend([in_w, out_r]);
        (st.code(), String::from_utf8_lossy(&out).into_owned())
    }

    fn ok(&self, env: &Env, args: &[&str]) {
        let (code, out) = self.rt(env, args);
        assert_eq!(code, Some(0), "rruntime {args:?} failed: {out}");
    }
}

/// `run -d` with pipes for stdio.
fn run_detached(env: &Env, io: &Pipes, b: &Bundle, id: &str) {
    io.ok(env, &["run", "-d", "--bundle", b.path(), id]);
}

/// A counter container (counter_config) started detached with `io` as its stdio.
fn counting(env: &Env, io: &Pipes) -> (Bundle, String) {
    let b = env.bundle(&counter_config());
    let id = env.id();
    run_detached(env, io, &b, &id);
    (b, id)
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn checkpoint(env: &Env, id: &str, image: &Path, extra: &[&str]) {
    let mut a = vec!["checkpoint", "--image-path", p(image)];
    a.extend_from_slice(extra);
    a.push(id);
    env.ok(&a);
}

fn restore(env: &Env, io: &Pipes, b: &Bundle, id: &str, image: &Path, extra: &[&str]) {
    let mut a = vec!["restore", "-d", "-b", b.path(), "--image-path", p(image)];
    a.extend_from_slice(extra);
    a.push(id);
    io.ok(env, &a);
}

fn gone(env: &Env, id: &str) -> bool {
    !env.root.join(id).exists()
}

#[test]
fn checkpoint_restore_counter_continues() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let (b, id) = counting(&env, &io);
    wait_count_above(&b, 3);
    let image = env.tmp.join("image");
    let work = env.tmp.join("work");
    checkpoint(&env, &id, &image, &["--work-path", p(&work)]);
    // As runc: the checkpointed container is gone (its id is free for the restore).
    assert!(gone(&env, &id), "state dir left after checkpoint");
    assert!(
        find_cgroup_dirs(&id).is_empty(),
        "cgroup left after checkpoint"
    );
    assert!(
        processes_in(&b.dir).is_empty(),
        "counter still running after checkpoint"
    );
    assert!(work.join("dump.log").exists(), "no dump.log in --work-path");
    assert!(image.join("descriptors.json").exists());
    let stopped_at = last(&b);
    assert!(stopped_at >= 4);

    let pid_file = env.tmp.join("restored.pid");
    restore(
        &env,
        &io,
        &b,
        &id,
        &image,
        &["--work-path", p(&work), "--pid-file", p(&pid_file)],
    );
    let st = env.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(read(&pid_file).trim(), pid.to_string());
    assert!(work.join("restore.log").exists());
    wait_count_above(&b, stopped_at + 3);
    assert_contiguous(&b);

    // A normal container afterwards: exec, kill, delete.
    let out = env.ok(&["exec", &id, "sh", "-c", "echo in-$(hostname)"]);
    assert_eq!(out.trim(), "in-test");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn checkpoint_leave_running_then_restore_into_new_id() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let (b, id) = counting(&env, &io);
    wait_count_above(&b, 3);
    let image = env.tmp.join("image");
    checkpoint(&env, &id, &image, &["--leave-running"]);
    assert_eq!(env.status(&id), "running");
    let at = last(&b);
    wait_count_above(&b, at + 2);
    env.finish(&id, &b);

    // Restored under another id: the counter goes on from the checkpoint's value.
    std::fs::write(b.rootfs().join("count.log"), "").unwrap();
    let id2 = env.id();
    restore(&env, &io, &b, &id2, &image, &[]);
    assert_eq!(env.status(&id2), "running");
    wait_until(120, "restored counter to write", || !counts(&b).is_empty());
    let first = counts(&b)[0];
    assert!(
        first > 3 && first <= at + 2,
        "restored counter started at {first}, checkpointed at about {at}"
    );
    // And a second checkpoint of the restored container works.
    let image2 = env.tmp.join("image2");
    checkpoint(&env, &id2, &image2, &[]);
    assert!(gone(&env, &id2));
    restore(&env, &io, &b, &id2, &image2, &[]);
    let before = last(&b);
    wait_count_above(&b, before + 2);
    env.finish(&id2, &b);
}

#[test]
fn pre_dump_then_dump_with_parent_path() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let (b, id) = counting(&env, &io);
    wait_count_above(&b, 3);
    let image = env.tmp.join("images");
    std::fs::create_dir_all(&image).unwrap();
    checkpoint(&env, &id, &image.join("pre"), &["--pre-dump"]);
    assert_eq!(
        env.status(&id),
        "running",
        "pre-dump must leave the container running"
    );
    checkpoint(
        &env,
        &id,
        &image.join("final"),
        &["--parent-path", "../pre"],
    );
    assert!(gone(&env, &id));
    let at = last(&b);
    restore(&env, &io, &b, &id, &image.join("final"), &[]);
    wait_count_above(&b, at + 3);
    assert_contiguous(&b);
    env.finish(&id, &b);
}

#[test]
fn bind_mount_survives_restore() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let outer = env.scratch("outer");
    std::fs::write(outer.join("marker"), "outer").unwrap();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i >> /data/count.log; sleep 0.1; done",
    ]);
    add_bind(&mut cfg, &outer, "/data", &["rbind"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    run_detached(&env, &io, &b, &id);
    let log = outer.join("count.log");
    let n = |l: &Path| -> u64 {
        read(l)
            .lines()
            .rev()
            .find_map(|x| x.parse().ok())
            .unwrap_or(0)
    };
    wait_until(120, "counter", || n(&log) > 3);
    let image = env.tmp.join("image");
    checkpoint(&env, &id, &image, &[]);
    let at = n(&log);
    restore(&env, &io, &b, &id, &image, &[]);
    wait_until(
        120,
        "restored counter writing through the bind mount",
        || n(&log) > at + 2,
    );
    let out = env.ok(&["exec", &id, "cat", "/data/marker"]);
    assert_eq!(out.trim(), "outer");
    env.finish(&id, &b);
}

#[test]
fn restore_runs_prestart_and_create_runtime_hooks() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let out = env.scratch("hooks");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}.json", out.display())]});
    let mut cfg = counter_config();
    cfg["hooks"] =
        json!({"prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")]});
    let b = env.bundle(&cfg);
    let id = env.id();
    run_detached(&env, &io, &b, &id);
    wait_count_above(&b, 2);
    let image = env.tmp.join("image");
    checkpoint(&env, &id, &image, &[]);
    std::fs::remove_file(out.join("prestart.json")).unwrap();
    std::fs::remove_file(out.join("createRuntime.json")).unwrap();
    restore(&env, &io, &b, &id, &image, &[]);
    let pid = env.pid(&id);
    for h in ["prestart", "createRuntime"] {
        let s: Value = serde_json::from_str(&read(&out.join(format!("{h}.json"))))
            .unwrap_or_else(|e| panic!("{h} hook did not run on restore: {e}"));
        assert_eq!(s["id"], id.as_str());
        assert_eq!(s["pid"].as_i64().unwrap(), pid as i64, "{h}: {s}");
    }
    env.finish(&id, &b);
}

#[test]
fn restore_foreground_exits_with_container_status() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo $i >> /count.log; sleep 0.1; done; exit 7",
    ]));
    let id = env.id();
    run_detached(&env, &io, &b, &id);
    wait_count_above(&b, 3);
    let image = env.tmp.join("image");
    checkpoint(&env, &id, &image, &[]);
    // go-runc's single-dash spelling of --no-subreaper.
    let st = env
        .cmd(&[
            "restore",
            "-no-subreaper",
            "-b",
            b.path(),
            "--image-path",
            p(&image),
            &id,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        st.code(),
        Some(7),
        "restore must exit with the container's status"
    );
    assert_eq!(last(&b), 30);
    assert_contiguous(&b);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn corrupt_image_leaves_nothing() {
    require_criu!();
    let env = Env::new();
    let io = Pipes::new();
    let (b, id) = counting(&env, &io);
    wait_count_above(&b, 2);
    let image = env.tmp.join("image");
    checkpoint(&env, &id, &image, &[]);
    // Truncate every image file CRIU wrote.
    for e in std::fs::read_dir(&image).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".img") {
            std::fs::write(e.path(), b"junk").unwrap();
        }
    }
    let (code, err) = io.rt(
        &env,
        &[
            "restore",
            "-d",
            "-b",
            b.path(),
            "--image-path",
            p(&image),
            &id,
        ],
    );
    assert_ne!(code, Some(0), "restore of a corrupt image succeeded");
    assert!(err.contains("criu failed"), "{err}");
    assert_no_panic(&err);
    env.assert_no_leaks(&id, Some(&b));
}

// ----- refused before CRIU runs: no CRIU needed ----------------------------------------------

#[test]
fn bad_parent_path_refused_before_criu() {
    require_root!();
    let env = Env::new();
    let io = Pipes::new();
    let (b, id) = counting(&env, &io);
    let image = env.tmp.join("image");
    let e = env.fails(&[
        "checkpoint",
        "--image-path",
        p(&image),
        "--parent-path",
        "/abs",
        &id,
    ]);
    assert_one_line_error(&e);
    assert!(e.contains("--parent-path must be relative"), "{e}");
    let e = env.fails(&[
        "checkpoint",
        "--image-path",
        p(&image),
        "--parent-path",
        "../nope",
        &id,
    ]);
    assert_one_line_error(&e);
    assert!(e.contains("invalid --parent-path"), "{e}");
    std::fs::write(env.tmp.join("afile"), "").unwrap();
    let e = env.fails(&[
        "checkpoint",
        "--image-path",
        p(&image),
        "--parent-path",
        "../afile",
        &id,
    ]);
    assert!(e.contains("not a directory"), "{e}");
    let e = env.fails(&["checkpoint", "--manage-cgroups-mode", "bogus", &id]);
    assert!(e.contains("invalid manage-cgroups-mode value"), "{e}");
    assert_eq!(env.status(&id), "running");
    env.finish(&id, &b);
}

#[test]
fn checkpoint_refuses_created_container_and_missing_criu() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&counter_config());
    let id = env.id();
    env.create(&b, &id);
    let image = env.tmp.join("image");
    let e = env.fails(&["checkpoint", "--image-path", p(&image), &id]);
    assert_one_line_error(&e);
    assert!(e.contains("cannot be checkpointed in created state"), "{e}");
    env.ok(&["start", &id]);
    let e = env.fails(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        p(&image),
        &id,
    ]);
    assert_one_line_error(&e);
    assert!(e.contains("CRIU version check failed"), "{e}");
    assert_eq!(env.status(&id), "running");
    env.finish(&id, &b);
}

#[test]
fn restore_failures_leave_nothing() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&counter_config());
    let id = env.id();
    // No images at all.
    let empty: PathBuf = env.tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = env.fails(&[
        "restore",
        "-d",
        "-b",
        b.path(),
        "--image-path",
        p(&empty),
        &id,
    ]);
    assert_one_line_error(&e);
    env.assert_no_leaks(&id, Some(&b));
    // No CRIU.
    std::fs::write(empty.join("descriptors.json"), "[]").unwrap();
    let e = env.fails(&[
        "--criu",
        "/nonexistent/criu",
        "restore",
        "-d",
        "-b",
        b.path(),
        "--image-path",
        p(&empty),
        &id,
    ]);
    assert_one_line_error(&e);
    assert!(e.contains("CRIU version check failed"), "{e}");
    env.assert_no_leaks(&id, Some(&b));
    if criu_unusable().is_none() {
        // CRIU runs but finds no images: the new container is removed again.
        let e = env.fails(&[
            "restore",
            "-d",
            "-b",
            b.path(),
            "--image-path",
            p(&empty),
            &id,
        ]);
        assert_one_line_error(&e);
        assert!(e.contains("criu failed"), "{e}");
        env.assert_no_leaks(&id, Some(&b));
    }
}
