//! Handing the `SCMP_ACT_NOTIFY` listener fd around: between processes of the runtime
//! ([`send_fd`]/[`recv_fd`]) and to the seccomp agent at `linux.seccomp.listenerPath`
//! ([`send_listener`]).
//!
//! The agent protocol is the runtime-spec one (and runc's): connect a `SOCK_STREAM` unix socket
//! to `listenerPath`, send the JSON of a `ContainerProcessState` (`fds: ["seccompFd"]`) with the
//! listener as the single `SCM_RIGHTS` fd of the same message, close the connection.

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};
use oci_spec::runtime::{ContainerProcessState, State, SECCOMP_FD_NAME};

use super::SeccompError;

/// Sends `data` and `fd` (as the one `SCM_RIGHTS` fd) over the unix socket `sock`. The fd rides
/// on the first byte of `data`, which must not be empty; a short write is completed without it.
pub fn send_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    if data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an fd needs at least one byte of data",
        ));
    }
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = loop {
        match sendmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &[IoSlice::new(data)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut rest = &data[sent..];
    while !rest.is_empty() {
        match nix::sys::socket::send(sock.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives up to `buf.len()` bytes and at most one fd (close-on-exec) from the unix socket
/// `sock`. Extra fds, if a peer sends several, are closed.
pub fn recv_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut got: Option<OwnedFd> = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed these fds for us; nothing else owns them.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(fd);
                }
            }
        }
    }
    Ok((msg.bytes, got))
}

/// The message the runtime sends to the seccomp agent, as runc does: `ociVersion` is the
/// state's (or this crate's runtime-spec version if the state has none), `pid` the container
/// process as seen by the runtime, `metadata` is `linux.seccomp.listenerMetadata`.
pub fn container_process_state(
    pid: i32,
    metadata: Option<&str>,
    state: &State,
) -> ContainerProcessState {
    let mut s = ContainerProcessState::default();
    let version = if state.version().is_empty() {
        oci_spec::runtime::VERSION.to_string()
    } else {
        state.version().clone()
    };
    s.set_version(version);
    s.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    s.set_pid(pid);
    s.set_metadata(metadata.filter(|m| !m.is_empty()).map(str::to_string));
    s.set_state(state.clone());
    s
}

/// Connects to the agent at `listener_path` and sends it `process_state` with the listener fd,
/// then closes the connection.
pub fn send_listener(
    listener_path: &Path,
    listener: BorrowedFd<'_>,
    process_state: &ContainerProcessState,
) -> Result<(), SeccompError> {
    let err = |source: io::Error| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        source,
    };
    let payload = serde_json::to_vec(process_state).map_err(|e| err(e.into()))?;
    let mut conn = UnixStream::connect(listener_path).map_err(err)?;
    send_fd(conn.as_fd(), &payload, listener).map_err(err)?;
    conn.flush().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn fd_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        send_fd(a.as_fd(), b"hello", file.as_fd()).unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let mut f = std::fs::File::from(fd.expect("an fd"));
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert!(s.contains("Name:"));
        assert!(send_fd(a.as_fd(), b"", file.as_fd()).is_err());
    }

    #[test]
    fn listener_message() {
        let dir =
            std::env::temp_dir().join(format!("rruntime-seccomp-agent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("agent.sock");
        let agent = std::os::unix::net::UnixListener::bind(&sock).unwrap();

        let state: State = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42,
            "bundle": "/b", "annotations": {"a": "b"}
        }))
        .unwrap();
        let msg = container_process_state(42, Some("meta"), &state);
        let file = std::fs::File::open("/dev/null").unwrap();
        send_listener(&sock, file.as_fd(), &msg).unwrap();

        let (conn, _) = agent.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let (n, fd) = recv_fd(conn.as_fd(), &mut buf).unwrap();
        assert!(fd.is_some());
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["ociVersion"], "1.2.0");
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "meta");
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["status"], "creating");
        assert_eq!(v["state"]["annotations"]["a"], "b");
        // The runtime closes its end after one message.
        let mut rest = Vec::new();
        let mut conn = conn;
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = dir.join("missing.sock");
        let e = send_listener(&missing, file.as_fd(), &msg).unwrap_err();
        assert!(e.to_string().contains("missing.sock"), "{e}");
    }
}
