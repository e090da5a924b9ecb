//! Test harness for the integration tests: they drive the built `rruntime` binary as root,
//! against busybox bundles built on the fly from the busybox-static package, each test with its
//! own `--root` state directory, and check after every test that nothing leaked.
#![allow(dead_code)]

pub mod probe;

#[allow(unused_imports)]
pub use probe::host;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The binary under test.
/// `RRUNTIME_TEST_BIN` (set by `make test` to the release binary) or the one cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("RRUNTIME_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rruntime")))
}

/// True when the tests can create containers here (root, busybox-static present).
pub fn can_run() -> bool {
    nix::unistd::geteuid().is_root() && Path::new(BUSYBOX).exists()
}

/// Skips the calling test (with a notice) when containers cannot run here.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::can_run() {
            $crate::skip!("needs root and {}", $crate::common::BUSYBOX);
        }
    };
}

/// A unique name for this test process and call: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Creates a busybox rootfs in `dir`.
pub fn make_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        if app != "busybox" && !app.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(app));
        }
    }
    for d in ["etc", "proc", "sys", "dev", "tmp", "root", "home/user"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\ntty:x:5:\n").unwrap();
}

/// The config tests start from: like `rruntime spec`, without a terminal, running `args`.
pub fn base_config(args: &[&str]) -> Value {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A test environment: a private state root and a scratch directory; on drop every container
/// still in the root is force-deleted and everything is removed.
pub struct Env {
    pub root: PathBuf,
    pub tmp: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Env {
    pub fn new() -> Env {
        let name = unique("rruntime-test");
        let root = PathBuf::from("/run").join(&name);
        let tmp = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&tmp).unwrap();
        Env {
            root,
            tmp,
            ids: Default::default(),
        }
    }

    /// A new bundle directory with a busybox rootfs and `config`.
    pub fn bundle(&self, config: &Value) -> Bundle {
        let dir = self.tmp.join(unique("bundle"));
        make_rootfs(&dir.join("rootfs"));
        let b = Bundle { dir };
        b.write_config(config);
        b
    }

    /// A fresh container id (recorded for cleanup).
    pub fn id(&self) -> String {
        let id = unique("c");
        self.track(&id);
        id
    }

    /// Records an id chosen by the test for cleanup.
    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// `rruntime --root <root> ARGS…`, stdin closed, output captured. Output goes through
    /// files, not pipes: a container's init inherits the runtime's stdio, and a pipe would stay
    /// open as long as the container lives.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.output(self.cmd(args))
    }

    /// Runs `c` with stdout and stderr captured through files (see [`Env::rt`]).
    pub fn output(&self, mut c: Command) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let (op, ep) = (
            self.tmp.join(format!("out-{n}")),
            self.tmp.join(format!("err-{n}")),
        );
        let status = c
            .stdout(std::fs::File::create(&op).unwrap())
            .stderr(std::fs::File::create(&ep).unwrap())
            .status()
            .expect("run rruntime");
        let o = Output {
            status,
            stdout: std::fs::read(&op).unwrap_or_default(),
            stderr: std::fs::read(&ep).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(op);
        let _ = std::fs::remove_file(ep);
        o
    }

    /// The command, for tests that need to customise it.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            o.status.success(),
            "rruntime {args:?} failed: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            !o.status.success(),
            "rruntime {args:?} unexpectedly succeeded; stdout: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `state ID` parsed.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `create --bundle B ID` and assert success.
    pub fn create(&self, b: &Bundle, id: &str) {
        self.ok(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
    }

    /// Asserts nothing of container `id` is left: no state dir, no cgroup directory named after
    /// it in any hierarchy (a cgroup with processes cannot be removed, so this also proves no
    /// process of it survives), no mount under `bundle`.
    pub fn assert_no_leaks(&self, id: &str, bundle: Option<&Bundle>) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} left in {}",
            self.root.display()
        );
        let cg = find_cgroup_dirs(id);
        assert!(cg.is_empty(), "cgroup dirs of {id} left: {cg:?}");
        if let Some(b) = bundle {
            let procs = processes_in(&b.dir);
            assert!(
                procs.is_empty(),
                "processes left in {}: {procs:?}",
                b.path()
            );
            let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let d = b.dir.to_string_lossy();
            let left: Vec<&str> = mi.lines().filter(|l| l.contains(d.as_ref())).collect();
            assert!(left.is_empty(), "mounts left under {d}: {left:?}");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = Command::new(bin())
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        // Unmount anything a failed test left under the scratch dir before removing it.
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let t = self.tmp.to_string_lossy().into_owned();
            let mut mps: Vec<String> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
                // `…-1` must not match the mounts of another test's `…-12`.
                .filter(|m| *m == t || m.starts_with(&format!("{t}/")))
                .collect();
            mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mps {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn write_config(&self, config: &Value) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }
}

/// Pids of processes whose root or working directory is inside `dir` (a container init that
/// survived before or without pivot_root/chroot shows this way).
pub fn processes_in(dir: &Path) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        for l in ["root", "cwd"] {
            if std::fs::read_link(e.path().join(l)).is_ok_and(|p| p.starts_with(dir)) {
                v.push(pid);
                break;
            }
        }
    }
    v
}

/// Cgroup directories named `id` anywhere under /sys/fs/cgroup.
pub fn find_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_dirs_where(|name| name == id)
}

/// Cgroup directories whose name satisfies `f`, anywhere under /sys/fs/cgroup: every
/// hierarchy, every depth (nested `cgroupsPath`s and systemd slices go deep). Entries are not
/// followed through symlinks, so the walk ends.
pub fn cgroup_dirs_where(f: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                if f(&e.file_name().to_string_lossy()) {
                    out.push(p.clone());
                }
                todo.push(p);
            }
        }
    }
    out
}

/// Whether process `pid` exists and has not exited (a zombie has).
pub fn alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| rruntime::state::parse_stat(&s))
        .is_some_and(|(st, _)| st != b'Z' && st != b'X')
}

/// Waits (bounded) until process `pid` is gone or a zombie.
pub fn wait_gone(pid: i32) {
    wait_until(60, &format!("process {pid} to exit"), || !alive(pid));
}

/// Waits until `f` holds, polling `/proc`-style state; panics after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// Reads a file a container wrote into a bind-mounted scratch dir.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Helpers for the topic test files (cli, errors, mounts, process, hooks, tty, namespaces, …).
// ---------------------------------------------------------------------------------------------

/// Result of a foreground `run`: exit code, stdout, stderr.
pub struct RunOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    /// A fresh scratch directory under the test's temp dir (mode 0777 so non-root container
    /// users can write to it when it is bind-mounted).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let d = self.tmp.join(unique(name));
        std::fs::create_dir_all(&d).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        d
    }

    /// `run --bundle <new bundle of cfg> <new id>` in the foreground; checks that nothing is
    /// left afterwards (run deletes the container unless --keep).
    pub fn run(&self, cfg: &Value) -> RunOut {
        let b = self.bundle(cfg);
        let id = self.id();
        let o = self.rt(&["run", "--bundle", b.path(), &id]);
        let out = RunOut {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert_no_panic(&out.stderr);
        self.assert_no_leaks(&id, Some(&b));
        out
    }

    /// Like [`Env::run`], asserting exit status 0; returns stdout.
    pub fn run_ok(&self, cfg: &Value) -> String {
        let o = self.run(cfg);
        assert_eq!(
            o.code,
            Some(0),
            "container failed: stdout: {}\nstderr: {}",
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// `sh -c SCRIPT` in a container made from `base_config` (tweaked by `f`), asserting
    /// success; returns stdout.
    pub fn sh(&self, script: &str, f: impl FnOnce(&mut Value)) -> String {
        let mut cfg = base_config(&["sh", "-c", script]);
        f(&mut cfg);
        self.run_ok(&cfg)
    }

    /// `create` that must fail: returns the (single-line, panic-free) error and checks that the
    /// failed create left nothing behind.
    pub fn create_fails(&self, cfg: &Value) -> String {
        let b = self.bundle(cfg);
        let id = self.id();
        let err = self.fails(&["create", "--bundle", b.path(), &id]);
        assert_one_line_error(&err);
        self.assert_no_leaks(&id, Some(&b));
        err
    }

    /// The host pid of a container's init (from `state`).
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap() as i32
    }

    /// Waits (bounded) until the container is stopped.
    pub fn wait_stopped(&self, id: &str) {
        wait_until(20, "container to stop", || self.status(id) == "stopped");
    }

    /// delete (force) + leak check.
    pub fn finish(&self, id: &str, b: &Bundle) {
        self.ok(&["delete", "--force", id]);
        self.assert_no_leaks(id, Some(b));
    }
}

/// Adds `{"destination": dest, "type": "bind", "source": src, "options": opts}` to `cfg`.
pub fn add_bind(cfg: &mut Value, src: &Path, dest: &str, opts: &[&str]) {
    add_mount(
        cfg,
        json!({"destination": dest, "type": "bind", "source": src, "options": opts}),
    );
}

pub fn add_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().unwrap().push(m);
}

/// Sets `linux.namespaces` to the given types (new namespaces).
pub fn set_namespaces(cfg: &mut Value, types: &[&str]) {
    cfg["linux"]["namespaces"] = Value::Array(types.iter().map(|t| json!({"type": t})).collect());
}

/// A runtime error must be one line on stderr (`rruntime: …`), never a panic.
pub fn assert_one_line_error(stderr: &str) {
    assert_no_panic(stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "want exactly one error line, got: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("rruntime: "),
        "error line not prefixed: {stderr:?}"
    );
}

pub fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "the runtime panicked: {stderr}"
    );
}

/// The namespace link of this (host) process, e.g. `net:[4026531840]`.
pub fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The namespace link of process `pid`.
pub fn pid_ns(pid: i32, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Waits (bounded) until the container wrote `path` and returns its content. Containers write
/// such marker files with `echo … > f.tmp && mv f.tmp f` so the file appears complete.
pub fn wait_file(path: &Path, secs: u64) -> String {
    wait_until(secs, &format!("{} to appear", path.display()), || {
        path.exists()
    });
    read(path)
}

/// Pids listed in the container's cgroup (any hierarchy holding a directory named `id`).
pub fn cgroup_pids(id: &str) -> Vec<i32> {
    for d in find_cgroup_dirs(id) {
        if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
            return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// A field of /proc/<pid>/status (`"CapEff"` → `"0000000000000000"`).
pub fn proc_status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// Removes the cgroup directories named `id` on drop: for a test that leaves the runtime unable
/// to (e.g. a corrupt state file), so that a failing assertion does not leave them behind.
pub struct RemoveCgroupsOnDrop(pub String);

impl Drop for RemoveCgroupsOnDrop {
    fn drop(&mut self) {
        for d in find_cgroup_dirs(&self.0) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A process a test knows by host pid only (e.g. one a container left behind), SIGKILLed on
/// drop so that a failing assertion does not leave it running. Held through a pidfd opened
/// now, so a pid recycled later is never hit.
pub struct KillOnDrop(Option<std::os::fd::OwnedFd>);

impl KillOnDrop {
    pub fn new(pid: i32) -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; a returned fd is ours.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        KillOnDrop((r >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(r as i32) }))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(fd) = &self.0 {
            // SAFETY: plain syscall on our pidfd.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }
}

/// A child process killed (and reaped) on drop: holders of namespaces, foreground `run`s.
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    pub fn new(c: std::process::Child) -> Self {
        ChildGuard(Some(c))
    }
    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }
    /// Waits (bounded) for the child's exit and returns its status.
    pub fn wait_timeout(&mut self, secs: u64) -> std::process::ExitStatus {
        let c = self.0.as_mut().unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                self.0 = None;
                return st;
            }
            assert!(std::time::Instant::now() < end, "child did not exit");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads from `fd` until `want` appears in what was read (or panics after `secs`); returns
/// everything read.
pub fn read_until(fd: std::os::fd::BorrowedFd, want: &str, secs: u64) -> String {
    use std::os::fd::AsRawFd;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut got = Vec::new();
    loop {
        if String::from_utf8_lossy(&got).contains(want) {
            return String::from_utf8_lossy(&got).into_owned();
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {want:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => panic!(
                "EOF waiting for {want:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
            // A pty master reports EIO once the slave side is closed.
            Err(e) => panic!(
                "read: {e} waiting for {want:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// True when the test process has `cap` in its effective set.
pub fn have_cap(cap: caps::Capability) -> bool {
    caps::has_cap(None, caps::CapSet::Effective, cap).unwrap_or(false)
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct MountLine {
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,…`).
    pub opts: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, `unbindable`).
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Superblock options (`rw,size=1024k,mode=755`).
    pub super_opts: Vec<String>,
}

impl MountLine {
    pub fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    pub fn has_super(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|x| x.starts_with("shared:"))
    }
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|x| x.starts_with("master:"))
    }
    pub fn is_unbindable(&self) -> bool {
        self.optional.iter().any(|x| x == "unbindable")
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    let mut v = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < sep + 4 || sep < 6 {
            continue;
        }
        let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        v.push(MountLine {
            root: f[3].to_string(),
            mount_point: f[4].replace("\\040", " "),
            opts: split(f[5]),
            optional: f[6..sep].iter().map(|s| s.to_string()).collect(),
            fstype: f[sep + 1].to_string(),
            source: f[sep + 2].to_string(),
            super_opts: split(f[sep + 3]),
        });
    }
    v
}

/// The top-most mount at `mp` in a mountinfo text (panics if there is none).
pub fn mount_at(text: &str, mp: &str) -> MountLine {
    parse_mountinfo(text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mp)
        .unwrap_or_else(|| panic!("no mount at {mp} in:\n{text}"))
}

/// Splits a container's output into sections: lines `== name` start a section.
pub fn sections(out: &str) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    let mut cur = String::new();
    for l in out.lines() {
        if let Some(name) = l.strip_prefix("== ") {
            cur = name.to_string();
            m.insert(cur.clone(), String::new());
        } else if let Some(s) = m.get_mut(&cur) {
            s.push_str(l);
            s.push('\n');
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Unprivileged runs: a test user created (and removed) by the tests themselves.

/// The unprivileged user the rootless tests run the runtime as.
pub const TEST_USER: &str = "rruntime-test-user";

static USER_REFS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// The test user while a test needs it: created on first use (idempotently, with subordinate
/// id ranges in /etc/subuid and /etc/subgid), removed when the last test of this binary that
/// holds one is done. Declare it before the environment that runs containers as the user, so
/// those are deleted first.
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    /// First delegated subordinate uid and gid, and the count of each.
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
}

fn id_of(flag: &str) -> Option<u32> {
    let o = Command::new("id").args([flag, TEST_USER]).output().ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

fn subids(file: &str) -> Option<(u32, u32)> {
    let c = std::fs::read_to_string(file).ok()?;
    c.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && f[0] == TEST_USER)
            .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
    })
}

/// A free subordinate range: past every range already delegated.
fn free_subid_start() -> u32 {
    let mut end = 100_000u64;
    for file in ["/etc/subuid", "/etc/subgid"] {
        for l in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = l.split(':').collect();
            if let (Some(s), Some(c)) = (
                f.get(1).and_then(|s| s.parse::<u64>().ok()),
                f.get(2).and_then(|s| s.parse::<u64>().ok()),
            ) {
                end = end.max(s + c);
            }
        }
    }
    end.div_ceil(65536) as u32 * 65536
}

impl TestUser {
    pub fn acquire() -> TestUser {
        let mut refs = USER_REFS.lock().unwrap_or_else(|e| e.into_inner());
        // The first holder removes the user again if setting it up fails half-way.
        let undo = UndoUser(*refs == 0);
        if id_of("-u").is_none() {
            let st = Command::new("useradd")
                .args(["-M", "-s", "/usr/sbin/nologin", TEST_USER])
                .status()
                .expect("run useradd");
            assert!(st.success(), "useradd {TEST_USER} failed");
        }
        if subids("/etc/subuid").is_none() || subids("/etc/subgid").is_none() {
            let s = free_subid_start();
            let range = format!("{s}-{}", s + 65535);
            let st = Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range, TEST_USER])
                .status()
                .expect("run usermod");
            assert!(st.success(), "usermod --add-subuids for {TEST_USER} failed");
        }
        let user = TestUser {
            name: TEST_USER,
            uid: id_of("-u").expect("test user uid"),
            gid: id_of("-g").expect("test user gid"),
            subuid: subids("/etc/subuid").expect("test user subuid range"),
            subgid: subids("/etc/subgid").expect("test user subgid range"),
        };
        std::mem::forget(undo);
        *refs += 1;
        user
    }
}

fn userdel() {
    // userdel also drops the user's /etc/subuid and /etc/subgid lines.
    let _ = Command::new("userdel")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes the test user when `TestUser::acquire` fails before it hands the user out.
struct UndoUser(bool);

impl Drop for UndoUser {
    fn drop(&mut self) {
        if self.0 {
            userdel();
        }
    }
}

impl TestUser {
    /// chown each path to this user (a cgroup subtree delegated to it, a scratch file).
    pub fn own(&self, paths: &[PathBuf]) {
        for p in paths {
            nix::unistd::chown(
                p,
                Some(nix::unistd::Uid::from_raw(self.uid)),
                Some(nix::unistd::Gid::from_raw(self.gid)),
            )
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let mut refs = USER_REFS.lock().unwrap_or_else(|e| e.into_inner());
        *refs -= 1;
        if *refs == 0 {
            userdel();
        }
    }
}

/// Like [`Env`], but the runtime runs as the test user, with no `--root`: its state goes to
/// `$XDG_RUNTIME_DIR/rruntime` (a private directory of the user made here). The binary is
/// copied into the scratch dir so the user can run it wherever the build lives.
pub struct RootlessEnv {
    pub user: TestUser,
    pub tmp: PathBuf,
    pub xdg: PathBuf,
    pub bin: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

/// Makes `cmd` move itself into the cgroup2 directory `dir` (a `cgroup.procs` write) between
/// fork and exec, so the runtime starts inside it (e.g. a subtree delegated to a user).
pub fn start_in_cgroup(cmd: &mut Command, dir: &Path) {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    // SAFETY: open/write/close are async-signal-safe; the path was made before fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
}

pub fn chown_r(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

impl RootlessEnv {
    pub fn new() -> RootlessEnv {
        use std::os::unix::fs::PermissionsExt;
        let user = TestUser::acquire();
        let tmp = std::env::temp_dir().join(unique("rruntime-rootless"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let xdg = tmp.join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown_r(&xdg, user.uid, user.gid);
        let b = tmp.join("rruntime");
        std::fs::copy(bin(), &b).unwrap();
        std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o755)).unwrap();
        RootlessEnv {
            user,
            tmp,
            xdg,
            bin: b,
            ids: Default::default(),
        }
    }

    /// The user's state root.
    pub fn state_root(&self) -> PathBuf {
        self.xdg.join("rruntime")
    }

    /// A bundle owned by the test user, with a busybox rootfs and `config` (None: no
    /// config.json, e.g. for `spec --rootless`).
    pub fn bundle(&self, config: Option<&Value>) -> Bundle {
        let dir = self.tmp.join(unique("bundle"));
        make_rootfs(&dir.join("rootfs"));
        let b = Bundle { dir };
        if let Some(c) = config {
            b.write_config(c);
        }
        chown_r(&b.dir, self.user.uid, self.user.gid);
        b
    }

    pub fn id(&self) -> String {
        let id = unique("rl");
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `runuser -u USER -- env -i PATH=… XDG_RUNTIME_DIR=… rruntime ARGS…`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", self.user.name, "--", "env", "-i"])
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .arg(&self.bin)
            .args(args)
            .current_dir(&self.tmp)
            .stdin(Stdio::null());
        c
    }

    /// Runs, output captured through files (see [`Env::rt`]).
    pub fn rt(&self, args: &[&str]) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let (op, ep) = (
            self.tmp.join(format!("out-{n}")),
            self.tmp.join(format!("err-{n}")),
        );
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&op).unwrap())
            .stderr(std::fs::File::create(&ep).unwrap())
            .status()
            .expect("run rruntime as the test user");
        let o = Output {
            status,
            stdout: std::fs::read(&op).unwrap_or_default(),
            stderr: std::fs::read(&ep).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(op);
        let _ = std::fs::remove_file(ep);
        o
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            o.status.success(),
            "rootless rruntime {args:?} failed: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            !o.status.success(),
            "rootless rruntime {args:?} unexpectedly succeeded; stdout: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// Nothing of `id` is left: no state dir under $XDG_RUNTIME_DIR/rruntime, no cgroup, no
    /// process (`pid` when known), no mount under the bundle.
    pub fn assert_no_leaks(&self, id: &str, pid: Option<i32>, bundle: &Bundle) {
        assert!(
            !self.state_root().join(id).exists(),
            "state dir of {id} left in {}",
            self.state_root().display()
        );
        let cg = find_cgroup_dirs(id);
        assert!(cg.is_empty(), "cgroup dirs of {id} left: {cg:?}");
        if let Some(p) = pid {
            wait_until(10, "the container's init to be gone", || {
                !Path::new(&format!("/proc/{p}")).exists()
                    || std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .is_ok_and(|s| s.contains(") Z "))
            });
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = bundle.dir.to_string_lossy();
        let left: Vec<&str> = mi.lines().filter(|l| l.contains(d.as_ref())).collect();
        assert!(left.is_empty(), "mounts left under {d}: {left:?}");
    }
}

impl Drop for RootlessEnv {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .cmd(&["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Owner uid and gid of a host file.
pub fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// In the child `cmd` starts, fd `to` is a copy of the parent's fd `from` (not close-on-exec),
/// for each pair. Safe whatever numbers the parent's fds have: each is first copied above 100
/// (close-on-exec), so a parent fd that already is one of the targets, or `dup2` of an fd onto
/// itself (which would keep close-on-exec), cannot spoil the result. The parent's fds must stay
/// open until the child is spawned.
pub fn fds_in_child(cmd: &mut Command, pairs: &[(i32, i32)]) {
    use std::os::unix::process::CommandExt;
    const MAX: usize = 8;
    assert!(pairs.len() <= MAX, "fds_in_child: at most {MAX} fds");
    let n = pairs.len();
    let mut p = [(-1, -1); MAX];
    p[..n].copy_from_slice(pairs);
    // SAFETY: only async-signal-safe calls (fcntl, dup2) and no allocation between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [-1; MAX];
            for i in 0..n {
                high[i] = libc::fcntl(p[i].0, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..n {
                if libc::dup2(high[i], p[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A scratch directory for bind mounts, owned by `uid:gid`, mode 0755.
pub fn scratch_dir(base: &Path, uid: u32, gid: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = base.join(unique("data"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(
        &d,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    d
}
