//! Helpers of the reliability tests (faults, concurrency, soak, hostile input): counting the
//! caller's fds, finding a container's processes by a marker in their environment, spawning
//! `rruntime` paused at a fault point, and the "nothing left behind" check.
#![allow(dead_code)]

use crate::common::{bin, find_cgroup_dirs, unique, Bundle, Env};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that carries a test's marker into every process it starts: the runtime (and so
/// the container init before it execs, which is a clone of the runtime) and, through
/// `process.env`, the container's processes and hooks.
pub const MARK_VAR: &str = "RRUNTIME_TEST_MARK";

/// Serialises the tests of one test binary that count the caller's fds (a test running in
/// another thread would open and close fds meanwhile).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open fds of this (test) process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A fresh marker: `RRUNTIME_TEST_MARK=<unique>`.
pub fn marker() -> String {
    unique("mark")
}

/// The base config with the marker in `process.env`.
pub fn marked_config(args: &[&str], mark: &str) -> serde_json::Value {
    let mut c = crate::common::base_config(args);
    c["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(format!("{MARK_VAR}={mark}").into());
    c
}

/// Live (non-zombie) processes whose environment holds `MARK_VAR=mark`.
pub fn marked_pids(mark: &str) -> Vec<i32> {
    let needle = format!("{MARK_VAR}={mark}\0");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            continue;
        }
        if crate::common::alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Asserts nothing of container `id` is left (state dir, cgroups in every hierarchy, mounts
/// under the bundle) and that no process carrying `mark` survives (waiting, bounded, for
/// processes that are already being killed, e.g. by PDEATHSIG).
pub fn assert_nothing_left(env: &Env, id: &str, bundle: Option<&Bundle>, mark: &str) {
    let mut left = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        left = marked_pids(mark);
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left.is_empty(), "processes of {id} survive: {left:?}");
    env.assert_no_leaks(id, bundle);
}

/// Output of a command, with a deadline: a hang is a test failure, not a stuck suite.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `rruntime --root <root> ARGS` with `envs`, killing it and failing the test if it has not
/// finished after `secs`. Output goes through files (a container init inherits stdio).
pub fn run_deadline(env: &Env, args: &[&str], envs: &[(&str, &str)], secs: u64) -> Out {
    let n = unique("out");
    let (op, ep) = (
        env.tmp.join(format!("{n}.o")),
        env.tmp.join(format!("{n}.e")),
    );
    let mut c = env.cmd(args);
    c.envs(envs.iter().copied())
        .stdout(std::fs::File::create(&op).unwrap())
        .stderr(std::fs::File::create(&ep).unwrap());
    let mut child = c.spawn().expect("spawn rruntime");
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rruntime {args:?} did not finish within {secs}s (hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let o = Out {
        code: status.code(),
        stdout: std::fs::read_to_string(&op).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&std::fs::read(&ep).unwrap_or_default()).into_owned(),
    };
    let _ = std::fs::remove_file(op);
    let _ = std::fs::remove_file(ep);
    o
}

/// Asserts a failed command reported exactly one clear line on stderr and no panic.
pub fn assert_clean_error(what: &str, o: &Out) {
    assert!(!o.ok(), "{what}: unexpectedly succeeded: {}", o.stdout);
    assert_one_line(what, &o.stderr);
}

/// Asserts `stderr` is one `rruntime: …` line (no panic, no usage dump).
pub fn assert_one_line(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what}: panic: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want one error line, got {stderr:?}"
    );
    assert!(
        lines[0].starts_with("rruntime: ") && lines[0].len() > "rruntime: ".len(),
        "{what}: unclear error line {stderr:?}"
    );
}

/// An `rruntime` process stopped at a fault point (`RRUNTIME_FAULT_PAUSE`).
pub struct Paused {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Paused {
    /// Spawns `rruntime --root <root> ARGS` that pauses at `phase`, and returns once it (or the
    /// container init it made) announced the pause on stderr. Panics if the process exits before
    /// or does not get there within a generous deadline.
    pub fn spawn(env: &Env, args: &[&str], phase: &str, mark: &str) -> Paused {
        let stderr_path = env.tmp.join(format!("{}.paused", unique("err")));
        let child = env
            .cmd(args)
            .env("RRUNTIME_FAULT_PAUSE", phase)
            .env(MARK_VAR, mark)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn rruntime");
        let mut p = Paused { child, stderr_path };
        let want = format!("rruntime: paused at {phase}\n");
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let got = p.stderr();
            if got.contains(&want) {
                return p;
            }
            // The runtime may exit (successfully) when the pause is in the container init.
            if let Some(s) = p.child.try_wait().unwrap() {
                if !s.success() {
                    panic!("rruntime {args:?} exited ({s}) before pausing at {phase}: {got}");
                }
            }
            assert!(
                Instant::now() < end,
                "rruntime {args:?} never paused at {phase}: {got}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILLs the runtime process and reaps it.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let s = self.stderr();
        let _ = std::fs::remove_file(&self.stderr_path);
        s
    }
}

/// A failing test must not leave a runtime paused at its fault point.
impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Force-deletes container `id` if the test panics while this guard lives (for ids that are not
/// tracked by `Env`, e.g. the soak's thousand).
pub struct DeleteOnPanic<'a>(pub &'a Env, pub &'a str);

impl Drop for DeleteOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.rt(&["delete", "--force", self.1]);
        }
    }
}

/// The `status` field of `state ID`, or `None` when the container does not exist; asserts the
/// command never fails otherwise (no panic, no garbage).
pub fn status_of(env: &Env, id: &str) -> Option<String> {
    let o = run_deadline(env, &["state", id], &[], 60);
    if o.ok() {
        let v: serde_json::Value = serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("state {id}: bad JSON ({e}): {}", o.stdout));
        return Some(v["status"].as_str().expect("status").to_string());
    }
    assert_one_line(&format!("state {id}"), &o.stderr);
    assert!(
        o.stderr.contains("does not exist"),
        "state {id}: unexpected error {}",
        o.stderr
    );
    None
}

/// Waits (bounded) until `state ID` reports `want`.
pub fn wait_status(env: &Env, id: &str, want: &str) {
    let mut last = None;
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        last = status_of(env, id);
        if last.as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{id}: status stayed {last:?}, want {want}");
}

/// The init's pid from `state ID`.
pub fn init_pid(env: &Env, id: &str) -> i32 {
    env.state(id)["pid"].as_i64().expect("pid") as i32
}

/// Cgroup directories whose name starts with `prefix` (for the soak's growth checks).
pub fn cgroup_dirs_with_prefix(prefix: &str) -> usize {
    crate::common::cgroup_dirs_where(|n| n.starts_with(prefix)).len()
}

/// Mounts whose mount point or source mentions `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&p))
        .map(str::to_string)
        .collect()
}

/// Entries left in the state root.
pub fn root_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(&env.root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `rruntime` with the marker in its environment, for commands that start processes.
pub fn marked_cmd(env: &Env, args: &[&str], mark: &str) -> Command {
    let mut c = env.cmd(args);
    c.env(MARK_VAR, mark);
    c
}

/// Path of the binary (re-exported for tests that build their own commands).
pub fn rruntime() -> PathBuf {
    bin()
}

/// Cgroup dirs of `id` (re-exported).
pub fn cgroups_of(id: &str) -> Vec<PathBuf> {
    find_cgroup_dirs(id)
}

/// `create` of `id` from bundle `b`, with the marker in the runtime's environment; asserts that
/// it succeeded.
pub fn create_marked(env: &Env, b: &Bundle, id: &str, mark: &str) {
    let o = run_deadline(
        env,
        &["create", "--bundle", b.path(), id],
        &[(MARK_VAR, mark)],
        120,
    );
    assert!(o.ok(), "create {id}: {}", o.stderr);
}
