//! Helpers shared by the cgroup integration tests: unique cgroup names, forked children that
//! wait for a "go" byte before doing their (async-signal-safe) work, busybox children, a guard
//! that cleans up even when a test panics, and the leak check every test ends with.
#![allow(dead_code)]

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use rruntime::cgroups::{CgroupManager, CgroupState};

#[path = "../common/probe.rs"]
pub mod probe;
pub use probe::host;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `/rruntime-test-<pid>-<n>-<tag>`: unique across parallel tests and test processes.
pub fn unique_path(tag: &str) -> String {
    format!(
        "/rruntime-test-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips (returns true) unless the tests can touch real cgroups.
pub fn skip_unless_root(what: &str) -> bool {
    if !is_root() {
        probe::report_skip(&format!("{what}: needs root"));
        return true;
    }
    false
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds are new and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A forked child that blocks until [`Forked::go`], then runs a plain function (libc calls only:
/// the test process has other threads) and `_exit`s with its return value. It may report bytes
/// on the result pipe (the fd passed to it) and gets one `usize` argument.
pub struct Forked {
    pub pid: i32,
    go: Option<OwnedFd>,
    result: OwnedFd,
    reaped: bool,
}

impl Forked {
    /// Forks; the child waits for `go`, then runs `f(result_fd, arg)`.
    pub fn spawn(arg: usize, f: fn(RawFd, usize) -> i32) -> Forked {
        let (go_r, go_w) = pipe();
        let (res_r, res_w) = pipe();
        // SAFETY: the child only calls async-signal-safe libc functions and `f`, which must do
        // the same, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: reading one byte into a stack variable.
            let n = unsafe { libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
            let code = if n == 1 {
                f(res_w.as_raw_fd(), arg)
            } else {
                120
            };
            // SAFETY: terminate the child without running any Rust cleanup.
            unsafe { libc::_exit(code) };
        }
        drop(go_r);
        drop(res_w);
        Forked {
            pid,
            go: Some(go_w),
            result: res_r,
            reaped: false,
        }
    }

    /// Lets the child run.
    pub fn go(&mut self) {
        if let Some(fd) = self.go.take() {
            let b = 1u8;
            // SAFETY: writing one byte from a stack variable.
            let n = unsafe { libc::write(fd.as_raw_fd(), (&b as *const u8).cast(), 1) };
            assert_eq!(n, 1);
        }
    }

    /// Reads exactly `n` bytes the child reported (blocks until it wrote them or exited).
    pub fn read_result(&self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            // SAFETY: buf has room for n - got more bytes.
            let r = unsafe {
                libc::read(
                    self.result.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    n - got,
                )
            };
            if r <= 0 {
                break;
            }
            got += r as usize;
        }
        buf.truncate(got);
        buf
    }

    pub fn wait(&mut self) -> WaitStatus {
        let st = waitpid(Pid::from_raw(self.pid), None).expect("waitpid");
        self.reaped = true;
        st
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(self.pid), None);
        }
    }
}

/// A busybox shell child that waits for a line on stdin before running `script`.
pub struct Busybox {
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Busybox {
    pub fn spawn(script: &str) -> Busybox {
        let mut child = Command::new("busybox")
            .args(["sh", "-c", &format!("read _go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox (install busybox-static)");
        let stdin = child.stdin.take();
        Busybox { child, stdin }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn go(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            s.write_all(b"go\n").expect("write to busybox stdin");
        }
    }
}

impl Drop for Busybox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Owns a manager for the length of a test: on drop (also when the test panics) it kills what is
/// left in the cgroup, thaws it and removes what the manager created.
pub struct Guard {
    pub mgr: Box<dyn CgroupManager>,
    /// Extra directories the test itself made (removed last, deepest first).
    pub extra_dirs: Vec<PathBuf>,
}

impl Guard {
    pub fn new(mgr: Box<dyn CgroupManager>) -> Guard {
        Guard {
            mgr,
            extra_dirs: Vec::new(),
        }
    }

    /// The normal end of a test: destroy, then check nothing leaked.
    pub fn finish(mut self) {
        let st = self.mgr.state();
        self.mgr.destroy().expect("destroy");
        assert_no_leak(&st);
        for d in self.extra_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        let _ = self.mgr.kill_all(Signal::SIGKILL);
        let _ = self.mgr.destroy();
        for d in self.mgr.state().created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        for d in self.extra_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// Every directory the manager created is gone.
pub fn assert_no_leak(st: &CgroupState) {
    for d in &st.created {
        assert!(!d.exists(), "leaked cgroup directory {}", d.display());
    }
}

/// Polls `cond` every few ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A shared anonymous page for a counter a forked child increments.
pub struct SharedCounter {
    ptr: *mut u64,
}

// SAFETY: the page is only accessed through volatile reads/writes of one u64.
unsafe impl Send for SharedCounter {}
unsafe impl Sync for SharedCounter {}

impl SharedCounter {
    pub fn new() -> SharedCounter {
        // SAFETY: anonymous shared mapping of one page; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        SharedCounter { ptr: p.cast() }
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub fn get(&self) -> u64 {
        // SAFETY: the mapping lives as long as self.
        unsafe { std::ptr::read_volatile(self.ptr) }
    }
}

impl Drop for SharedCounter {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), 4096) };
    }
}
