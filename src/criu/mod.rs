//! Talking to CRIU: `criu swrk 3` started with one end of a `SOCK_SEQPACKET` socketpair on its
//! fd 3, protobuf requests and answers over it ([`rpc`]), notifications (`post-dump`,
//! `setup-namespaces`, `post-restore`, `orphan-pts-master`, …) answered one by one.
//!
//! The runtime stays single-threaded: CRIU is a forked child; extra fds it must inherit (an
//! external network namespace) are placed at 4, 5, … before the exec.

pub mod rpc;

use crate::error::{Context, Error, Result};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use prost::Message;
use std::ffi::CString;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The oldest CRIU rruntime talks to (the VERSION request appeared in 3.0).
pub const MIN_VERSION: i32 = 30000;

/// A running `criu swrk`.
pub struct Swrk {
    sock: OwnedFd,
    pub pid: i32,
    reaped: bool,
}

/// What a notification handler gets: the script name, its pid, and an fd sent with it.
pub struct Notification {
    pub script: String,
    pub pid: i32,
    pub fd: Option<OwnedFd>,
}

impl Swrk {
    /// Starts `criu swrk 3`; `extra` fds become the child's 4, 5, …
    pub fn start(criu: &str, extra: &[RawFd]) -> Result<Swrk> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ctx(|| "socketpair for criu")?;
        let prog = CString::new(criu).map_err(|_| Error::config("--criu: NUL in path"))?;
        let argv = [prog.clone(), c"swrk".to_owned(), c"3".to_owned()];
        let mut argp: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argp.push(std::ptr::null());
        let theirs_raw = theirs.as_raw_fd();
        let extra: Vec<RawFd> = extra.to_vec();
        // SAFETY: the runtime is single-threaded; the child only dup2s and execs.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(nix::errno::Errno::last()).ctx(|| "fork criu");
        }
        if pid == 0 {
            // SAFETY: in the child; async-signal-safe calls only, then exec or _exit.
            unsafe {
                // Move every fd to pass out of the way first so that the targets cannot clash.
                let mut high = Vec::with_capacity(extra.len() + 1);
                for fd in std::iter::once(theirs_raw).chain(extra.iter().copied()) {
                    let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                    if h < 0 {
                        libc::_exit(127);
                    }
                    high.push(h);
                }
                for (i, h) in high.iter().enumerate() {
                    if libc::dup2(*h, 3 + i as i32) < 0 {
                        libc::_exit(127);
                    }
                }
                libc::execvp(argp[0], argp.as_ptr());
                libc::_exit(127);
            }
        }
        drop(theirs);
        Ok(Swrk {
            sock: ours,
            pid,
            reaped: false,
        })
    }

    pub fn send(&self, req: &rpc::Req) -> Result<()> {
        let data = req.encode_to_vec();
        // SAFETY: writes a buffer to a socket we own.
        let n = unsafe {
            libc::send(
                self.sock.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(nix::errno::Errno::last()).ctx(|| "send request to criu");
        }
        Ok(())
    }

    /// Receives one answer (and an fd passed with it).
    pub fn recv(&self) -> Result<(rpc::Resp, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 10 * 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r,
                }
            }
            .ctx(|| "read from criu")?;
            let mut fd = None;
            if let Ok(cms) = msg.cmsgs() {
                for c in cms {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: a fresh fd received with SCM_RIGHTS.
                            let o = unsafe { OwnedFd::from_raw_fd(f) };
                            if fd.is_none() {
                                fd = Some(o);
                            }
                        }
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Err(Error::msg(
                "criu exited unexpectedly (no answer on its RPC socket)",
            ));
        }
        let resp = rpc::Resp::decode(&buf[..n])
            .map_err(|e| Error::msg(format!("bad answer from criu: {e}")))?;
        Ok((resp, fd))
    }

    /// Sends `req` and serves notifications with `notify` until the final answer.
    pub fn call(
        &self,
        req: &rpc::Req,
        mut notify: impl FnMut(Notification) -> Result<()>,
    ) -> Result<rpc::Resp> {
        self.send(req)?;
        loop {
            let (resp, fd) = self.recv()?;
            if !resp.success {
                let mut m = format!(
                    "criu failed: type {} errno {}",
                    rpc::req_type::name(resp.r#type),
                    resp.cr_errno.unwrap_or(0)
                );
                if let Some(e) = resp.cr_errmsg.as_deref().filter(|e| !e.is_empty()) {
                    m.push_str(": ");
                    m.push_str(e.trim());
                }
                return Err(Error::msg(m));
            }
            if resp.r#type != rpc::req_type::NOTIFY {
                return Ok(resp);
            }
            let n = resp.notify.clone().unwrap_or_default();
            notify(Notification {
                script: n.script.unwrap_or_default(),
                pid: n.pid.unwrap_or(0),
                fd,
            })?;
            self.send(&rpc::Req {
                r#type: rpc::req_type::NOTIFY,
                notify_success: Some(true),
                ..Default::default()
            })?;
        }
    }

    /// Closes the socket and reaps CRIU; returns its exit status (None: killed by a signal).
    pub fn finish(mut self) -> Option<i32> {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        self.reap()
    }

    fn reap(&mut self) -> Option<i32> {
        if self.reaped {
            return Some(0);
        }
        self.reaped = true;
        loop {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => return Some(c),
                _ => return None,
            }
        }
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        if !self.reaped {
            let _ =
                nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            // CRIU exits when its socket closes; a bounded wait would need a pidfd: kill it.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.reap();
        }
    }
}

/// Whether a `criu` binary is on PATH (what `features` reports as checkpoint support; whether
/// this kernel lets it dump is only known when it tries).
pub fn installed() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
        .to_string_lossy()
        .split(':')
        .any(|d| {
            std::fs::metadata(std::path::Path::new(d).join("criu"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Asks CRIU its version (major*10000 + minor*100 + sublevel); fails with a clear line when
/// CRIU is missing or older than [`MIN_VERSION`].
pub fn version(criu: &str) -> Result<i32> {
    let fail = |why: String| Error::msg(format!("CRIU version check failed: {why}"));
    let s = Swrk::start(criu, &[]).map_err(|e| fail(e.to_string()))?;
    let r = s.call(
        &rpc::Req {
            r#type: rpc::req_type::VERSION,
            ..Default::default()
        },
        |_| Ok(()),
    );
    let code = s.finish();
    let resp = match r {
        Ok(r) => r,
        Err(_) if code == Some(127) => {
            return Err(fail(format!(
                "cannot run {criu:?} (not installed? see --criu)"
            )))
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    let v = resp
        .version
        .ok_or_else(|| fail("criu did not report its version".into()))?;
    let n = v.major_number * 10000 + v.minor_number * 100 + v.sublevel.unwrap_or(0);
    if n < MIN_VERSION {
        return Err(Error::msg(format!(
            "CRIU version {n} must be {MIN_VERSION} or higher"
        )));
    }
    Ok(n)
}

/// Asks CRIU whether it has `features` (memory tracking for pre-dump, lazy pages).
pub fn check_features(criu: &str, want: rpc::Features) -> Result<()> {
    let s = Swrk::start(criu, &[])?;
    let r = s.call(
        &rpc::Req {
            r#type: rpc::req_type::FEATURE_CHECK,
            features: Some(want.clone()),
            ..Default::default()
        },
        |_| Ok(()),
    );
    s.finish();
    let got = r
        .map_err(|e| Error::msg(format!("CRIU feature check failed: {e}")))?
        .features
        .unwrap_or_default();
    let mut missing = Vec::new();
    if want.mem_track == Some(true) && got.mem_track != Some(true) {
        missing.push("MemTrack");
    }
    if want.lazy_pages == Some(true) && got.lazy_pages != Some(true) {
        missing.push("LazyPages");
    }
    if !missing.is_empty() {
        return Err(Error::msg(format!(
            "criu is missing features: {}",
            missing.join(" ")
        )));
    }
    Ok(())
}

/// `--manage-cgroups-mode` as CRIU's enum.
pub fn cg_mode(s: Option<&str>) -> Result<i32> {
    Ok(match s.unwrap_or("") {
        "" => rpc::cg_mode::DEFAULT,
        "soft" => rpc::cg_mode::SOFT,
        "full" => rpc::cg_mode::FULL,
        "strict" => rpc::cg_mode::STRICT,
        "ignore" => rpc::cg_mode::IGNORE,
        _ => return Err(Error::config("invalid manage-cgroups-mode value")),
    })
}

/// The lines of a CRIU log that report errors, to point the user at (last few only).
pub fn log_errors(path: &std::path::Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("Error"))
        .map(|l| l.to_string())
        .collect();
    lines[lines.len().saturating_sub(5)..].to_vec()
}
