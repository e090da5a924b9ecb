//! Running a closure in a forked child under a filter.

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::LinuxSeccomp;
use rruntime::seccomp::{compile, load, CompiledFilter};

pub fn profile(v: serde_json::Value) -> CompiledFilter {
    let p: LinuxSeccomp = serde_json::from_value(v).expect("profile JSON");
    compile(&p).expect("compile")
}

/// Forks; the child sets no_new_privs, loads `filter`, runs `body` and exits with its result.
/// Exit codes 120..=122 mean the set-up in the child failed. Only async-signal-safe work
/// belongs in `body` (the test process has threads).
pub fn in_child(filter: &CompiledFilter, body: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child only makes syscalls and exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: plain prctl.
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return 120;
                }
                if load(filter).is_err() {
                    return 121;
                }
                body()
            }))
            .unwrap_or(122);
            // SAFETY: leaves the child without running the test harness's code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

/// The exit code, panicking on anything else.
#[track_caller]
pub fn exit_code(ws: WaitStatus) -> i32 {
    match ws {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child did not exit normally: {other:?}"),
    }
}

#[track_caller]
pub fn killed_by(ws: WaitStatus) -> Signal {
    match ws {
        WaitStatus::Signaled(_, sig, _) => sig,
        other => panic!("child was not killed by a signal: {other:?}"),
    }
}

/// errno of the last failed call, 0 when `ret` is not -1.
pub fn errno_of(ret: i64) -> i32 {
    if ret == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// `mkdir` on a path that cannot exist: ENOENT when allowed.
pub fn try_mkdir() -> i32 {
    // SAFETY: a valid C string.
    errno_of(unsafe { libc::mkdir(c"/nonexistent-rruntime/x".as_ptr(), 0o700) } as i64)
}

/// A program and its argv/envp, prepared before fork so the child does not allocate.
pub struct Exec {
    path: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

impl Exec {
    pub fn new(path: &str, args: &[&str]) -> Exec {
        let path = CString::new(path).unwrap();
        let args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Exec {
            path,
            _args: args,
            argv,
            envp: [std::ptr::null()],
        }
    }

    /// execve, retrying while another test's fork still holds the file open for writing
    /// (ETXTBSY). Returns the errno if it fails for good.
    pub fn exec(&self) -> i32 {
        for _ in 0..100 {
            // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
            unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
            let e = errno_of(-1);
            if e != libc::ETXTBSY {
                return e;
            }
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            // SAFETY: plain nanosleep.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
        libc::ETXTBSY
    }
}
