//! Test harness for the integration tests: they drive the built `rruntime` binary as root,
//! against busybox bundles built on the fly from the busybox-static package, each test with its
//! own `--root` state directory, and check after every test that nothing leaked.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rruntime"))
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
            eprintln!("skipped: needs root and {}", $crate::common::BUSYBOX);
            return;
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
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `rruntime --root <root> ARGS…`, stdin closed, output captured. Output goes through
    /// files, not pipes: a container's init inherits the runtime's stdio, and a pipe would stay
    /// open as long as the container lives.
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
                .filter(|m| m.starts_with(&t))
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

/// Cgroup directories named `id` anywhere under /sys/fs/cgroup (depth-limited walk).
pub fn find_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 6 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if e.file_name().to_string_lossy() == id {
                    out.push(p.clone());
                }
                walk(&p, id, depth + 1, out);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut out);
    out
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
        *refs += 1;
        TestUser {
            name: TEST_USER,
            uid: id_of("-u").expect("test user uid"),
            gid: id_of("-g").expect("test user gid"),
            subuid: subids("/etc/subuid").expect("test user subuid range"),
            subgid: subids("/etc/subgid").expect("test user subgid range"),
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let mut refs = USER_REFS.lock().unwrap_or_else(|e| e.into_inner());
        *refs -= 1;
        if *refs == 0 {
            // userdel also drops the user's /etc/subuid and /etc/subgid lines.
            let _ = Command::new("userdel")
                .arg(TEST_USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
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
