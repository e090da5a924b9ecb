//! The parent ⇄ child channel of the spawn path: a `SOCK_SEQPACKET` socketpair carrying one
//! typed message per packet, in a fixed order (see `spawn.rs` for the sequence).

use crate::error::{Context, Error, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    // child → parent
    /// The new process moved itself into the v1 cgroup hierarchies (false: the runtime must).
    Joined(bool),
    /// A child that unshared a user namespace itself asks for its id mappings.
    UserNsReady(i32),
    /// The intermediate process reports the host pid of the container init.
    InitPid(i32),
    /// Mounts are prepared: run the prestart and createRuntime hooks now.
    HooksRequest,
    /// The init is set up and is about to wait on the exec fifo.
    Ready,
    /// The seccomp notify listener fd travels with this message (SCM_RIGHTS).
    SeccompListener,
    /// Something failed; the text is the error to report.
    Error(String),
    /// The init asks the runtime to open the source of `mounts[i]` (see
    /// `crate::rootfs::sources`).
    MountSourcePlease(usize),
    // parent → child
    /// The cgroup directories made after the clone exist; carries the directories of
    /// best-effort hierarchies that could not be made (not to be joined or mounted).
    CgroupsMade(Vec<std::path::PathBuf>),
    /// Id mappings are written.
    MappingsDone,
    /// The init is in its cgroup (and mapped): go on. Carries the init's host pid.
    Go(i32),
    /// prestart/createRuntime hooks ran.
    HooksDone,
    /// The source asked for with `MountSourcePlease` travels with this message (SCM_RIGHTS).
    MountSource,
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| Error::msg(format!("encode sync: {e}")))?;
        loop {
            // SAFETY: plain send on an owned socket.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = nix::errno::Errno::last();
            if e != nix::errno::Errno::EINTR {
                return Err(e).ctx(|| "sync: send");
            }
        }
    }

    /// Sends a message carrying one fd.
    pub fn send_fd(&self, m: &Msg, fd: std::os::fd::BorrowedFd) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| Error::msg(format!("encode sync: {e}")))?;
        let iov = [std::io::IoSlice::new(&data)];
        let fds = [fd.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(|| "sync: send fd")?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` on EOF (the peer exited or closed its end).
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// Receives one message and the fd that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        // Messages are small; an error text longer than this is cut by the kernel (MSG_TRUNC).
        let mut buf = vec![0u8; 8192];
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let msg = match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                // ECONNRESET: the peer exited with one of our messages unread (an init that
                // failed before reading `Go`). The kernel reports that once, ahead of what the
                // peer sent before exiting (its `Error`): read on to get it, then EOF.
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => continue,
                Err(e) => return Err(e).ctx(|| "sync: recv"),
            };
            let n = msg.bytes;
            let mut fd = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: the kernel installed this fd for us; extra ones are closed.
                            let owned = unsafe { OwnedFd::from_raw_fd(f) };
                            if fd.is_none() {
                                fd = Some(owned);
                            }
                        }
                    }
                }
            }
            if n == 0 {
                return Ok(None);
            }
            let m = serde_json::from_slice(&buf[..n])
                .map_err(|e| Error::msg(format!("sync: bad message: {e}")))?;
            return Ok(Some((m, fd)));
        }
    }

    /// Receives and requires a specific message; errors carry the peer's `Error` text.
    pub fn expect(&self, want: &Msg) -> Result<()> {
        match self.recv()? {
            Some(ref m) if m == want => Ok(()),
            Some(Msg::Error(e)) => Err(Error::Msg(e)),
            Some(m) => Err(Error::msg(format!("sync: expected {want:?}, got {m:?}"))),
            None => Err(Error::msg(format!("sync: peer exited before {want:?}"))),
        }
    }

    /// Bounds every later receive: a peer silent for `secs` makes `recv` fail with EAGAIN.
    pub fn set_recv_timeout(&self, secs: i64) -> Result<()> {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
        setsockopt(
            &self.fd,
            ReceiveTimeout,
            &nix::sys::time::TimeVal::new(secs, 0),
        )
        .ctx(|| "sync: set receive timeout")
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_exits_with_unread_messages_still_delivers_what_it_sent() {
        let (parent, child) = pair().unwrap();
        // The parent's `Go` is never read: the child fails and exits first.
        parent.send(&Msg::Go(1)).unwrap();
        child
            .send(&Msg::Error("mount /data: no such file".into()))
            .unwrap();
        drop(child);
        assert_eq!(
            parent.recv().unwrap(),
            Some(Msg::Error("mount /data: no such file".into()))
        );
        assert_eq!(parent.recv().unwrap(), None);
    }
}
