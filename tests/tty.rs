//! Terminals: `--console-socket` (the pty master arrives as exactly one fd over SCM_RIGHTS and
//! drives the container's terminal), `process.consoleSize`, and `run`'s own pty proxy.
mod common;
use common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;

/// Accepts the runtime's connection (already queued) and receives everything it sent: the
/// payload and every fd of every SCM_RIGHTS message.
fn receive_console(listener: &UnixListener) -> (String, Vec<OwnedFd>) {
    listener.set_nonblocking(true).unwrap();
    let (conn, _) = listener.accept().expect("the runtime did not connect");
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel installed these fds for us.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = msg.bytes;
    (String::from_utf8_lossy(&buf[..n]).into_owned(), fds)
}

fn is_pty_master(fd: &OwnedFd) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctl with a valid out pointer.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0 }
}

fn write_all(fd: &OwnedFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        off += nix::unistd::write(fd, &data[off..]).unwrap();
    }
}

/// create --console-socket: one fd (a pty master) in one message; the container's stdio is
/// the pty (with consoleSize), /dev/console is bound to it; what the test writes to the
/// master reaches the container's stdin and its output comes back.
#[test]
fn console_socket() {
    require_root!();
    let env = Env::new();
    let sock = env.tmp.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "tty; stty size; stat -c 'console %t' /dev/console; read l; echo got:$l; exit 0",
    ]);
    cfg["process"]["terminal"] = json!(true);
    cfg["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    let b = env.bundle(&cfg);
    let id = env.id();
    env.ok(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path(),
        &id,
    ]);
    let (_payload, fds) = receive_console(&listener);
    assert_eq!(fds.len(), 1, "want exactly one fd over SCM_RIGHTS");
    let master = &fds[0];
    assert!(is_pty_master(master), "the fd is not a pty master");
    env.ok(&["start", &id]);
    // tty, then consoleSize, then /dev/console: the pts major 136 (0x88).
    let got = read_until(master.as_fd(), "console 88", 20);
    assert!(got.contains("/dev/pts/0\n30 100\n"), "{got}");
    write_all(master, b"xyz\n");
    read_until(master.as_fd(), "got:xyz", 20);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// run -d with a console socket works (detached containers with a terminal need one).
#[test]
fn run_detached_with_console_socket() {
    require_root!();
    let env = Env::new();
    let sock = env.tmp.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut cfg = base_config(&["sh", "-c", "read l; echo echo:$l; sleep 1000"]);
    cfg["process"]["terminal"] = json!(true);
    let b = env.bundle(&cfg);
    let id = env.id();
    env.ok(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path(),
        &id,
    ]);
    let (_, fds) = receive_console(&listener);
    assert_eq!(fds.len(), 1);
    assert_eq!(env.status(&id), "running");
    write_all(&fds[0], b"hi\n");
    read_until(fds[0].as_fd(), "echo:hi", 20);
    env.finish(&id, &b);
}

/// Foreground run with terminal: true and no console socket proxies the pty itself: the
/// test's pty (run's stdio) reaches the container, the window size is copied, the exit status
/// comes back, and run restores the caller's terminal mode.
#[test]
fn run_proxies_the_terminal() {
    require_root!();
    let env = Env::new();
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let mut cfg = base_config(&["sh", "-c", "tty; stty size; read l; echo got:$l; exit 4"]);
    cfg["process"]["terminal"] = json!(true);
    let b = env.bundle(&cfg);
    let id = env.id();
    let slave = pty.slave;
    let before = nix::sys::termios::tcgetattr(&slave).unwrap();
    let mut c = env.cmd(&["run", "--bundle", b.path(), &id]);
    c.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut run = ChildGuard::new(c.spawn().unwrap());
    let got = read_until(pty.master.as_fd(), "40 120", 20);
    assert!(got.contains("/dev/pts/0"), "{got}");
    write_all(&pty.master, b"abc\n");
    read_until(pty.master.as_fd(), "got:abc", 20);
    assert_eq!(run.wait_timeout(20).code(), Some(4));
    let after = nix::sys::termios::tcgetattr(&slave).unwrap();
    assert_eq!(
        before.local_flags, after.local_flags,
        "terminal mode not restored"
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 1: every console the runtime makes has `ONLCR` cleared, so what the container
/// writes arrives byte for byte (`\n`, not `\r\n`): the init's console (create
/// --console-socket) and an `exec -t` console.
#[test]
fn console_output_has_no_onlcr_cr_issue_22_item_1() {
    require_root!();
    let env = Env::new();
    let sock = env.tmp.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut cfg = base_config(&["sh", "-c", "printf 'a\\nb\\ninit-done\\n'; sleep 1000"]);
    cfg["process"]["terminal"] = json!(true);
    let b = env.bundle(&cfg);
    let id = env.id();
    let s = sock.to_str().unwrap();
    env.ok(&["create", "--console-socket", s, "--bundle", b.path(), &id]);
    let (_, fds) = receive_console(&listener);
    env.ok(&["start", &id]);
    let got = read_until(fds[0].as_fd(), "init-done", 20);
    assert!(got.contains("a\nb\ninit-done\n"), "init console: {got:?}");
    assert!(
        !got.contains('\r'),
        "init console turned \\n into \\r\\n: {got:?}"
    );
    let sock2 = env.tmp.join("console2.sock");
    let listener2 = UnixListener::bind(&sock2).unwrap();
    let s2 = sock2.to_str().unwrap();
    env.ok(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        s2,
        &id,
        "sh",
        "-c",
        "printf 'c\\nd\\nexec-done\\n'; sleep 1000",
    ]);
    let (_, fds2) = receive_console(&listener2);
    let got = read_until(fds2[0].as_fd(), "exec-done", 20);
    assert!(got.contains("c\nd\nexec-done\n"), "exec console: {got:?}");
    assert!(
        !got.contains('\r'),
        "exec console turned \\n into \\r\\n: {got:?}"
    );
    env.finish(&id, &b);
}
