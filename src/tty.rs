//! Terminals: the container's pty (allocated inside the container from its own devpts), the
//! console socket hand-off (one `sendmsg` with exactly one SCM_RIGHTS fd), and the proxy `run`
//! and foreground `exec` use when there is no console socket.

use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::sys::socket::{
    connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::Mode;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// How long `create` waits for a console socket whose listener's backlog is full.
pub const CONSOLE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to a console socket (`--console-socket`).
///
/// A blocking connect(2) to a listener whose backlog is full (one that never calls accept)
/// would wait forever; the socket is connected non-blocking instead, retrying for
/// [`CONSOLE_CONNECT_TIMEOUT`] before failing (runc fails at once with EAGAIN). A listener that
/// has a free backlog slot but never accepts is fine: the pty master is queued on the
/// connection.
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    use nix::errno::Errno;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ctx(|| "console socket")?;
    let addr = UnixAddr::new(path).ctx(|| format!("console socket {}", path.display()))?;
    let deadline = std::time::Instant::now() + CONSOLE_CONNECT_TIMEOUT;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) | Err(Errno::EISCONN) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EALREADY)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EALREADY) => {
                return Err(Error::msg(format!(
                    "connect console socket {}: the listener is not accepting connections \
                     (gave up after {}s)",
                    path.display(),
                    CONSOLE_CONNECT_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(e).ctx(|| format!("connect console socket {}", path.display())),
        }
    }
    let fl = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).ctx(|| "console socket")?;
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) - OFlag::O_NONBLOCK),
    )
    .ctx(|| "console socket")?;
    Ok(fd)
}

/// Sends `fd` with `name` as payload in one message with one SCM_RIGHTS fd.
pub fn send_fd(sock: BorrowedFd, fd: RawFd, name: &str) -> Result<()> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send fd over console socket")?;
    Ok(())
}

/// `--pidfd-socket` (runc ≥ 1.2): sends a pidfd of `pid` over the connected socket, in one
/// message with one SCM_RIGHTS fd and runc's payload (`standard` for an init, `setns` for an
/// exec'd process).
pub fn send_pidfd(sock: BorrowedFd, pid: i32, kind: &str) -> Result<()> {
    let pidfd = crate::process::pidfd_open(pid).ok_or_else(|| {
        Error::msg(format!(
            "failed to pidfd_open: {}",
            nix::errno::Errno::last()
        ))
    })?;
    send_fd(sock, pidfd.as_raw_fd(), kind)
        .map_err(|e| Error::msg(format!("failed to send pidfd on socket: {e}")))
}

/// Receives one fd sent by [`send_fd`].
pub fn recv_fd(sock: BorrowedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive console fd")?;
    for c in msg.cmsgs().ctx(|| "receive console fd")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::msg("console socket: no file descriptor received"))
}

/// A pty allocated from the container's /dev/ptmx (after pivot_root).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub slave_path: String,
}

pub fn open_pty() -> Result<Pty> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev/ptmx")?;
    // Unlock the slave, learn its number, open it.
    let mut unlock: libc::c_int = 0;
    // SAFETY: ioctls on the master fd with valid pointers.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } < 0 {
        return Err(nix::errno::Errno::last()).ctx(|| "unlock pty");
    }
    let mut n: libc::c_uint = 0;
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } < 0 {
        return Err(nix::errno::Errno::last()).ctx(|| "get pty number");
    }
    let slave_path = format!("/dev/pts/{n}");
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {slave_path}"))?;
    clear_onlcr(slave.as_fd())?;
    Ok(Pty {
        master,
        slave,
        slave_path,
    })
}

/// Clears `ONLCR` (on by default on a new pty), as runc does on every console it makes: what
/// the container writes reaches the reader byte for byte, `\n` not turned into `\r\n`.
fn clear_onlcr(fd: BorrowedFd) -> Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    let mut t = tcgetattr(fd).ctx(|| "get pty attributes")?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(fd, SetArg::TCSANOW, &t).ctx(|| "clear ONLCR on the pty")?;
    Ok(())
}

pub fn set_winsize(fd: BorrowedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid fd and struct.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

pub fn get_winsize(fd: BorrowedFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and struct.
    (unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0)
        .then_some((ws.ws_row, ws.ws_col))
}

/// Makes `slave` the controlling terminal and stdio of the calling process (a session leader).
pub fn become_console(slave: &OwnedFd) -> Result<()> {
    // SAFETY: ioctl on an owned fd.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(nix::errno::Errno::last()).ctx(|| "set controlling terminal");
    }
    for target in 0..3 {
        // SAFETY: dup2 onto stdio numbers.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(nix::errno::Errno::last()).ctx(|| "dup pty onto stdio");
        }
    }
    Ok(())
}

/// Raw mode for the caller's terminal while proxying; restores on drop.
pub struct RawMode {
    fd: RawFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd (stdin) outlives this guard.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copies what is readable from `from` to `to`; returns false on EOF/error of `from`.
pub fn pump(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 16384];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                    Err(_) => return true,
                }
            }
            true
        }
        Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

/// stdin as a borrowed fd.
pub fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

pub fn stdout() -> BorrowedFd<'static> {
    // SAFETY: fd 1 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(1) }
}
