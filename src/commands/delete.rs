//! `delete [--force] ID`: stop what is left, remove the cgroup, run poststop hooks, remove the
//! state. `--force` of a missing container succeeds (callers retry deletes).

use super::Ctx;
use crate::cgroups;
use crate::container::{self, OciState, Status};
use crate::error::{Error, Result};
use crate::hooks;
use crate::logging;
use crate::state::{ContainerDir, State};
use std::os::fd::AsRawFd;

pub fn run(ctx: &Ctx, a: &crate::cli::DeleteArgs) -> Result<i32> {
    let dir = match ctx.container(&a.id) {
        Ok(d) => d,
        Err(Error::NotExist(_)) if a.force => return Ok(0),
        Err(e) => return Err(e),
    };
    let st = match dir.load() {
        Ok(Some(st)) => st,
        // A create that crashed before writing state: nothing else is known; remove it.
        Ok(None) | Err(Error::State(_)) if a.force => {
            dir.remove()?;
            return Ok(0);
        }
        Ok(None) => return Err(Error::NotExist(a.id.clone())),
        Err(e) => return Err(e),
    };
    let status = container::status(&dir, &st);
    match status {
        Status::Stopped | Status::Created => {}
        s if !a.force => {
            return Err(Error::State(format!(
                "cannot delete container {} that is not stopped: {s}",
                a.id
            )))
        }
        _ => {}
    }
    destroy(ctx, dir, &st, status)?;
    Ok(0)
}

/// Waits (bounded) until `pid` has exited.
fn wait_exit(pid: i32, start: u64) {
    let Some(pidfd) = container::init_pidfd(pid, start) else {
        return;
    };
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 10_000) };
}

/// Kills everything, removes the cgroup and host mounts, runs poststop hooks, removes the state.
pub fn destroy(ctx: &Ctx, dir: ContainerDir, st: &State, status: Status) -> Result<()> {
    if status != Status::Stopped {
        super::kill::signal_all(st, libc::SIGKILL, ctx.cgroup_opts())?;
        wait_exit(st.pid, st.pid_start);
    }
    logging::phase("delete: killed");
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    // Processes outside a PID namespace survive their init: destroy_force kills what is left.
    if let Err(e) = mgr.destroy_force() {
        if !st.rootless {
            return Err(e.into());
        }
        logging::warn(format!("delete: {e}"));
    }
    logging::phase("delete: cgroup");
    for m in st.host_mounts.iter().rev() {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    if !st.host_mounts.is_empty() {
        let _ = nix::mount::umount2(
            &st.rootfs.join("dev/console"),
            nix::mount::MntFlags::MNT_DETACH,
        );
    }
    let hooks = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().as_ref());
    if hooks.is_some() {
        let s = serde_json::to_string(&OciState::new(st, Status::Stopped)).unwrap_or_default();
        hooks::run_all_warn("poststop", hooks, &s, Some(&st.bundle));
    }
    logging::phase("delete: poststop");
    dir.remove()
}
