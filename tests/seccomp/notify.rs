//! SCMP_ACT_NOTIFY: the child's listener fd travels to the parent (and through the agent
//! socket), the parent answers the notification and the child sees the answer.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use oci_spec::runtime::State;
use rruntime::seccomp::{container_process_state, load, recv_fd, send_fd, send_listener};
use serde_json::json;

use crate::support::{exit_code, in_child, profile, try_mkdir};

const NOTIFY_MKDIR: &str = "mkdir";

fn notify_profile(flags: serde_json::Value) -> rruntime::seccomp::CompiledFilter {
    profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/unused/by/this/test",
        "flags": flags,
        "syscalls": [{"names": [NOTIFY_MKDIR], "action": "SCMP_ACT_NOTIFY"}]
    }))
}

/// Receives one notification on `listener` and answers it with `(val, error)`.
fn answer(listener: &OwnedFd, child: i32, val: i64, error: i32) {
    // SAFETY: zeroed plain-data structs of the sizes the ioctls expect.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut req,
        )
    };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(req.data.nr, libc::SYS_mkdir as i32);
    assert_eq!(req.data.arch, 0xc000_003e);
    assert_eq!(req.pid as i32, child);
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = req.id;
    resp.val = val;
    resp.error = error;
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &mut resp,
        )
    };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
}

/// Forks a child that loads `f`, sends its listener over a socketpair, then runs mkdir.
/// Returns the parent's end of the listener and the child's pid; `finish` waits.
fn spawn(f: &rruntime::seccomp::CompiledFilter) -> (OwnedFd, nix::unistd::Pid) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    // SAFETY: the child only makes syscalls and exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            // SAFETY: plain prctl.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let code = match load(f) {
                Ok(Some(listener)) => {
                    if send_fd(theirs.as_fd(), b"L", listener.as_fd()).is_err() {
                        101
                    } else {
                        drop(listener);
                        // mkdir blocks until the parent answers.
                        let e = try_mkdir();
                        if e == 0 {
                            100
                        } else {
                            e
                        }
                    }
                }
                Ok(None) => 102,
                Err(_) => 103,
            };
            // SAFETY: leaves the child.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            let mut buf = [0u8; 1];
            let (n, fd) = recv_fd(ours.as_fd(), &mut buf).unwrap();
            assert_eq!((n, &buf), (1, b"L"));
            (fd.expect("listener fd"), child)
        }
    }
}

fn wait(child: nix::unistd::Pid) -> i32 {
    exit_code(nix::sys::wait::waitpid(child, None).unwrap())
}

#[test]
fn notify_answer_with_error() {
    let f = notify_profile(json!([]));
    assert!(f.needs_listener());
    let (listener, child) = spawn(&f);
    answer(&listener, child.as_raw(), 0, -libc::EXDEV);
    assert_eq!(wait(child), libc::EXDEV);
}

#[test]
fn notify_answer_with_value() {
    let f = notify_profile(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]));
    let (listener, child) = spawn(&f);
    answer(&listener, child.as_raw(), 0, 0);
    assert_eq!(wait(child), 100, "mkdir returned the agent's 0");
}

#[test]
fn notify_with_tsync() {
    let f = notify_profile(json!(["SECCOMP_FILTER_FLAG_TSYNC"]));
    let (listener, child) = spawn(&f);
    answer(&listener, child.as_raw(), 0, -libc::EROFS);
    assert_eq!(wait(child), libc::EROFS);
}

#[test]
fn closing_the_listener_fails_the_syscall() {
    let f = notify_profile(json!([]));
    let (listener, child) = spawn(&f);
    drop(listener);
    assert_eq!(wait(child), libc::ENOSYS);
}

#[test]
fn listener_reaches_the_agent() {
    let f = notify_profile(json!([]));
    let dir = std::env::temp_dir().join(format!("rruntime-seccomp-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let agent = UnixListener::bind(&sock).unwrap();

    let (listener, child) = spawn(&f);
    let state: State = serde_json::from_value(json!({
        "ociVersion": "1.2.0", "id": "ctr", "status": "creating",
        "pid": child.as_raw(), "bundle": "/bundle"
    }))
    .unwrap();
    let msg = container_process_state(child.as_raw(), Some("agent-metadata"), &state);
    send_listener(&sock, listener.as_fd(), &msg).unwrap();
    drop(listener); // the runtime keeps no copy

    let (conn, _) = agent.accept().unwrap();
    let mut buf = vec![0u8; 8192];
    let (n, fd) = recv_fd(conn.as_fd(), &mut buf).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["metadata"], "agent-metadata");
    assert_eq!(v["pid"], child.as_raw());
    assert_eq!(v["state"]["id"], "ctr");
    let agent_fd = fd.expect("the agent gets the listener");
    answer(&agent_fd, child.as_raw(), 0, -libc::EACCES);
    assert_eq!(wait(child), libc::EACCES);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn notify_default_action_uses_in_child_helper() {
    // A NOTIFY profile loaded through the generic helper still loads (the fd is just dropped,
    // which makes the notified syscall fail with ENOSYS).
    let f = notify_profile(json!([]));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOSYS);
}
