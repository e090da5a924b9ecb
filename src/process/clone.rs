//! Cloning the container's processes: `clone3` with `CLONE_INTO_CGROUP` when a cgroup2
//! directory is given (the child is born in its cgroup), plain `clone` otherwise.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, BorrowedFd};

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks a child with `flags` (new namespaces). Returns the child's pid in the parent, 0 in the
/// child, and whether the child was placed into `cgroup`.
///
/// # Safety
/// Like fork: the calling process must be single-threaded; the child continues on a copy of
/// this process's memory and stack.
pub unsafe fn clone_child(
    flags: CloneFlags,
    cgroup: Option<BorrowedFd>,
) -> nix::Result<(i32, bool)> {
    if let Some(cg) = cgroup {
        let args = CloneArgs {
            flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg.as_raw_fd() as u64,
            ..Default::default()
        };
        let r = libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        );
        if r >= 0 {
            return Ok((r as i32, true));
        }
        match Errno::last() {
            // Old kernel, or a cgroup the kernel will not clone into: fall back.
            Errno::ENOSYS | Errno::EINVAL | Errno::E2BIG | Errno::EOPNOTSUPP | Errno::EBUSY => {}
            e => return Err(e),
        }
    }
    let r = libc::syscall(
        libc::SYS_clone,
        (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    );
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok((r as i32, false))
    }
}
