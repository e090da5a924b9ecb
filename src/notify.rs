//! sd_notify proxying, as runc does when it runs under systemd (`Type=notify` units).
//!
//! When the runtime's environment has `NOTIFY_SOCKET` (the host's socket):
//! * `create`/`run` add a read-only bind mount of `<root>/<id>/notify` at `/run/notify` and
//!   `NOTIFY_SOCKET=/run/notify/notify.sock` to the process environment, and create that
//!   directory;
//! * `start` (and `run`) bind a datagram socket at `<root>/<id>/notify/notify.sock` before the
//!   process runs, wait until the container sends `READY=…` (or its init exits), and then
//!   send the host `READY=…`, `MAINPID=<init pid>` and `BARRIER=1` (sd_notify_barrier: a pipe
//!   whose write end the host closes, waited for at most 30 s).
//!
//! `start` and `run --detach` block until READY; a foreground `run` relays from a helper
//! process while it waits for the container.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{
    sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use oci_spec::runtime::{MountBuilder, Spec};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directory in the container where the socket appears.
pub const CONTAINER_DIR: &str = "/run/notify";
const SOCKET_NAME: &str = "notify.sock";
/// Name of the directory in the container's state dir.
pub const STATE_SUBDIR: &str = "notify";

/// The host socket from the runtime's environment, if sd_notify is requested.
pub fn host_socket() -> Option<PathBuf> {
    std::env::var_os("NOTIFY_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The socket directory of container `id` under the state root.
pub fn socket_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id).join(STATE_SUBDIR)
}

/// Adds the bind mount of `dir` at /run/notify and the container-side NOTIFY_SOCKET.
pub fn setup_spec(spec: &mut Spec, dir: &Path) -> Result<()> {
    let m = MountBuilder::default()
        .destination(CONTAINER_DIR)
        .source(dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(|e| Error::msg(format!("notify socket mount: {e}")))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("NOTIFY_SOCKET={CONTAINER_DIR}/{SOCKET_NAME}"));
        p.set_env(Some(env));
    }
    Ok(())
}

/// The container's end: a datagram socket bound in the state dir, world-writable so a
/// non-root container process can send to it.
pub struct Listener {
    sock: UnixDatagram,
    host: PathBuf,
}

/// Binds `notify/notify.sock` in a container's state dir (replacing a stale one) when sd_notify
/// is requested and `create` prepared the directory.
pub fn bind(c: &crate::state::ContainerDir) -> Result<Option<Listener>> {
    let Some(host) = host_socket() else {
        return Ok(None);
    };
    let dir = c.path.join(STATE_SUBDIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join(SOCKET_NAME);
    let _ = std::fs::remove_file(&path);
    let sock =
        UnixDatagram::bind(&path).ctx(|| format!("bind notify socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .ctx(|| format!("chmod notify socket {}", path.display()))?;
    Ok(Some(Listener { sock, host }))
}

impl Listener {
    /// Waits for `READY=…` from the container while `pid` lives, then tells the host. Returns
    /// without notifying when the init exits first.
    pub fn wait_and_relay(self, pid: i32, start: u64) -> Result<()> {
        let _ = self.sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 4096];
        let ready = loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = &buf[..n];
                    if msg.starts_with(b"READY=") {
                        let line = msg.split(|&b| b == b'\n').next().unwrap_or(msg);
                        break line.to_vec();
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).ctx(|| "read notify socket"),
            }
            if !crate::container::init_alive(pid, start) {
                return Ok(());
            }
        };
        notify_host(&self.host, &ready, pid)
    }
}

/// Sends `READY=…`, `MAINPID=pid` and a barrier to the host socket.
fn notify_host(host: &Path, ready: &[u8], pid: i32) -> Result<()> {
    let c = UnixDatagram::unbound().ctx(|| "notify socket")?;
    let hostc = host.display().to_string();
    let send = |m: &[u8]| c.send_to(m, host).ctx(|| format!("notify {hostc}"));
    let mut r = ready.to_vec();
    r.push(b'\n');
    send(&r)?;
    send(format!("MAINPID={pid}\n").as_bytes())?;
    barrier(host)
}

/// sd_notify_barrier: `BARRIER=1` with the write end of a pipe; the host closes its copy once
/// it has processed everything before it. Bounded at 30 s like runc.
fn barrier(host: &Path) -> Result<()> {
    let (r, w) = nix::unistd::pipe().ctx(|| "pipe for notify barrier")?;
    let s: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "notify socket")?;
    let addr = UnixAddr::new(host).ctx(|| "notify socket address")?;
    let fds = [w.as_raw_fd()];
    sendmsg(
        s.as_raw_fd(),
        &[IoSlice::new(b"BARRIER=1")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        Some(&addr),
    )
    .ctx(|| "send notify barrier")?;
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            crate::logging::warn("timeout after waiting 30s for the notify barrier; ignored");
            return Ok(());
        }
        let mut p = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            let mut b = [0u8; 1];
            return match nix::unistd::read(&r, &mut b) {
                Ok(0) => Ok(()),
                Ok(_) => Err(Error::msg("unexpected read from the notify barrier pipe")),
                Err(e) => Err(e).ctx(|| "read notify barrier"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_gets_mount_and_env() {
        let mut spec = Spec::default();
        setup_spec(&mut spec, Path::new("/run/rr/c1/notify")).unwrap();
        let m = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new("/run/notify"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/run/rr/c1/notify")));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert!(env.contains(&"NOTIFY_SOCKET=/run/notify/notify.sock".to_string()));
    }
}
