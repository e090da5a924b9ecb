//! Signalling every process of a cgroup (`kill --all`, `delete --force`).
//!
//! The managers freeze the cgroup around listing and signalling so no process can fork its way
//! out in between (frozen tasks get the signal once thawed); a container that was paused before
//! stays paused unless the signal is SIGKILL.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::error::{CgroupError, Result};

/// Sends `sig` to each pid; processes that already exited are fine.
pub(crate) fn signal_pids(pids: &[i32], sig: Signal) -> Result<()> {
    for &p in pids {
        match kill(Pid::from_raw(p), sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(CgroupError::msg(format!("send {sig} to process {p}: {e}"))),
        }
    }
    Ok(())
}
