//! `run`: create + start, then (unless `--detach`) wait for the container, forwarding signals
//! and proxying its terminal, and exit with its status (128+N for a signal), deleting it unless
//! `--keep`.

use super::Ctx;
use crate::cli::RunArgs;
use crate::container::Status;
use crate::error::{Context, Error, Result};
use crate::notify::Listener;
use crate::process::spawn::Created;
use crate::tty;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Signals the runtime forwards (everything asynchronous; faults stay deliverable).
pub fn forwarded_set() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGTRAP,
        Signal::SIGSYS,
        Signal::SIGKILL,
        Signal::SIGSTOP,
    ] {
        set.remove(s);
    }
    set
}

pub fn run(ctx: &Ctx, a: &RunArgs) -> Result<i32> {
    let bundle = super::create::load(ctx, &a.create)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // Nothing to do between create and start without a terminal (the console's size) or an
    // sd_notify socket (bound before the process starts): let the init go on at once.
    let start_now = !terminal && crate::notify::host_socket().is_none();
    if a.detach {
        if terminal && a.create.console_socket.is_none() {
            return Err(Error::config(
                "cannot allocate a tty when detaching without --console-socket",
            ));
        }
        let c = super::create::create_container(ctx, &a.create, &bundle, None, start_now)?;
        let (c, notify) = start(ctx, c)?;
        if let Some(n) = notify {
            drop(c.dir);
            n.wait_and_relay(c.state.pid, c.state.pid_start)?;
        }
        return Ok(0);
    }

    // Foreground: block the forwarded signals before the init exists so none is lost.
    let set = forwarded_set();
    set.thread_block().ctx(|| "block signals")?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd")?;
    if !a.no_subreaper {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let (ours, theirs): (Option<OwnedFd>, Option<OwnedFd>) =
        if terminal && a.create.console_socket.is_none() {
            let (x, y) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .ctx(|| "socketpair for the console")?;
            (Some(x), Some(y))
        } else {
            (None, None)
        };
    let c = super::create::create_container(ctx, &a.create, &bundle, theirs, start_now)?;
    let master = match &ours {
        Some(s) => match tty::recv_fd(s.as_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = super::delete::destroy(ctx, c.dir, &c.state, Status::Created);
                return Err(e);
            }
        },
        None => None,
    };
    // The pty gets the caller's window size before the process starts: a process that asks
    // for it at once (`stty size`, shells) must not see 0x0.
    if let Some(m) = &master {
        if let Some((r, c)) = tty::get_winsize(tty::stdin()) {
            tty::set_winsize(m.as_fd(), r, c);
        }
    }
    let (c, notify) = start(ctx, c)?;
    if let Some(n) = notify {
        relay_in_helper(n, c.state.pid, c.state.pid_start);
    }
    let id = c.state.id.clone();
    let pid = c.state.pid;
    // Release the lock while the container runs: `kill`, `pause`, `exec` must work meanwhile.
    drop(c.dir);
    let code = wait_loop(pid, &sfd, master.as_ref());
    let _ = SigSet::empty().thread_set_mask();
    let _ = set.thread_unblock();
    if !a.keep {
        match ctx.container(&id) {
            Ok(dir) => {
                if let Ok(Some(st)) = dir.load() {
                    let status = crate::container::status(&dir, &st);
                    super::delete::destroy(ctx, dir, &st, status)?;
                }
            }
            Err(Error::NotExist(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(code)
}

/// Starts a created container, with its sd_notify listener bound first when `NOTIFY_SOCKET`
/// asks for one (the caller destroys the container on failure).
/// Binds the sd_notify listener and starts the created container; on failure the container is
/// destroyed (`run` leaves nothing behind).
fn start(ctx: &Ctx, mut c: Created) -> Result<(Created, Option<Listener>)> {
    let r = crate::notify::bind(&c.dir).and_then(|n| {
        super::start::start_container(&c.dir, &c.state, c.early_start.take())?;
        Ok(n)
    });
    match r {
        Ok(n) => Ok((c, n)),
        Err(e) => {
            let _ = super::delete::destroy(ctx, c.dir, &c.state, Status::Created);
            Err(e)
        }
    }
}

/// Foreground `run`: a helper process relays READY while this one waits for the container
/// (it is reaped by `wait_loop` like any other child).
fn relay_in_helper(n: Listener, pid: i32, start: u64) {
    // SAFETY: single-threaded; the helper only relays and exits without unwinding.
    match unsafe { libc::fork() } {
        0 => {
            let code = match n.wait_and_relay(pid, start) {
                Ok(()) => 0,
                Err(e) => {
                    crate::logging::warn(format!("sd_notify: {e}"));
                    1
                }
            };
            // SAFETY: leave the helper without running the runtime's destructors.
            unsafe { libc::_exit(code) }
        }
        -1 => crate::logging::warn("sd_notify: cannot fork the relay; READY is not forwarded"),
        _ => {}
    }
}

fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Waits for `pid` (our child, or re-parented to us as subreaper), forwarding signals and
/// proxying the terminal. Returns the exit code.
pub fn wait_loop(pid: i32, sfd: &SignalFd, master: Option<&OwnedFd>) -> i32 {
    let stdin = tty::stdin();
    let _raw = master.and_then(|_| tty::RawMode::enter(stdin));
    if let Some(m) = master {
        if let Some((r, c)) = tty::get_winsize(stdin) {
            tty::set_winsize(m.as_fd(), r, c);
        }
    }
    let pidfd = crate::process::pidfd_open(pid);
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut code: Option<i32> = None;
    loop {
        if let Some(c) = code {
            if let Some(m) = master.filter(|_| master_open) {
                drain(m.as_fd());
            }
            return c;
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let mi = fds.len();
        if let Some(m) = master.filter(|_| master_open) {
            fds.push(libc::pollfd {
                fd: m.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let si = fds.len();
        if stdin_open {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: valid pollfd array.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    code = reap(pid).or(code);
                } else if sig == libc::SIGWINCH {
                    if let Some(m) = master {
                        if let Some((r, c)) = tty::get_winsize(stdin) {
                            tty::set_winsize(m.as_fd(), r, c);
                        }
                    }
                } else {
                    // SAFETY: forwarding a signal to the container's init.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
        if pidfd.is_some() && fds[1].revents != 0 && code.is_none() {
            // Exited; reap it if it is ours, else report success as the status is unknowable.
            code = Some(reap(pid).unwrap_or(0));
        }
        if let Some(m) = master.filter(|_| master_open) {
            if fds[mi].revents & libc::POLLIN != 0 {
                master_open = tty::pump(m.as_fd(), tty::stdout());
            } else if fds[mi].revents != 0 {
                master_open = false;
            }
        }
        if stdin_open && fds.len() > si && fds[si].revents != 0 {
            if let Some(m) = master {
                stdin_open = tty::pump(stdin, m.as_fd());
            }
        }
    }
}

/// Reaps exited children; returns the init's exit code once it is among them.
fn reap(pid: i32) -> Option<i32> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(ws) => {
                if ws.pid().map(|p| p.as_raw()) == Some(pid) {
                    found = exit_code(ws);
                }
            }
        }
    }
}

/// Copies what the pty still holds after the process exited.
fn drain(m: BorrowedFd) {
    let fl = nix::fcntl::fcntl(m, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0);
    let _ = nix::fcntl::fcntl(
        m,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    );
    while tty::pump(m, tty::stdout()) {
        let mut p = libc::pollfd {
            fd: m.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
            break;
        }
    }
}
