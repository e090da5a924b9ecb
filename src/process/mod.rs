//! The spawn path: the runtime side (`spawn`), the container init (`init`), the channel
//! between them (`sync`) and what both init and exec apply before execve (`setup`).

pub mod attrs;
pub(crate) mod clone;
pub mod exec;
pub mod init;
pub mod lsm;
pub mod setup;
pub mod spawn;
pub mod sync;

use std::os::fd::{FromRawFd, OwnedFd};

/// A pidfd for `pid` (None when it does not exist). Refers to that very process for as long as
/// the fd is open, even once it is a zombie; whether `pid` is still the process meant is the
/// caller's check (see `crate::container::init_pidfd`).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a returned fd is owned by us.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r as i32) })
}
