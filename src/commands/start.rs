//! `start ID`: release a created container's init through the exec fifo, wait until it has
//! exec'd the user process, run the poststart hooks.

use super::Ctx;
use crate::container::{self, OciState, Status};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::{ContainerDir, State};
use std::os::fd::AsRawFd;

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    let dir = ctx.container(id)?;
    let st = container::load(&dir)?;
    match container::status(&dir, &st) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        Status::Running => {
            return Err(Error::State(
                "cannot start an already running container".into(),
            ))
        }
        s => {
            return Err(Error::State(format!(
                "cannot start a container in the {s} state"
            )))
        }
    }
    let notify = crate::notify::bind(&dir)?;
    start_container(&dir, &st, None)?;
    if let Some(n) = notify {
        // Release the container's lock while waiting for READY: kill/delete must still work.
        drop(dir);
        n.wait_and_relay(st.pid, st.pid_start)?;
    }
    Ok(0)
}

/// Opens the fifo (which lets the init go on), collects what it writes until it closes the fifo
/// at execve, and fails with the init's message if it wrote one. `early`: opened by `create`
/// already ([`crate::process::spawn::CreateOpts::start_now`]).
pub fn start_container(
    dir: &ContainerDir,
    st: &State,
    early: Option<crate::process::spawn::EarlyStart>,
) -> Result<()> {
    let (fifo, pidfd) = match early {
        Some(e) => (e.fifo, e.pidfd),
        None => {
            let pidfd = container::init_pidfd(st.pid, st.pid_start)
                .ok_or_else(|| Error::State("cannot start a container that has stopped".into()))?;
            (dir.open_fifo_reader()?, pidfd)
        }
    };
    let mut got: Vec<u8> = Vec::new();
    let mut removed = false;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = nix::errno::Errno::last();
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(e).ctx(|| "wait for container init");
        }
        if fds[0].revents != 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(&fifo, &mut buf) {
                Ok(0) if got.is_empty() => {
                    return Err(Error::msg("container init exited before start"));
                }
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if !removed {
                        dir.remove_fifo()?;
                        removed = true;
                    }
                    continue;
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "read exec fifo"),
            }
        }
        if fds[1].revents != 0 && fds[0].revents == 0 {
            // The init is gone and wrote nothing more.
            if got.is_empty() {
                return Err(Error::msg("container init exited before start"));
            }
            break;
        }
    }
    if !removed {
        dir.remove_fifo()?;
    }
    crate::logging::phase("start: released");
    if got.len() > 1 && got[1] == b'E' {
        return Err(Error::Msg(String::from_utf8_lossy(&got[2..]).into_owned()));
    }
    let hooks = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref());
    if hooks.is_some() {
        let s = serde_json::to_string(&OciState::new(st, Status::Running)).unwrap_or_default();
        hooks::run_all_warn("poststart", hooks, &s, Some(&st.bundle));
    }
    Ok(())
}
