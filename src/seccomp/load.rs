//! Loading a compiled filter with `seccomp(2)`, and asking the kernel what it supports.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;
use seccompiler::sock_filter;

use super::profile::{
    SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
};
use super::{CompiledFilter, SeccompError};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;

/// `struct sock_fprog`
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// Loads the filter into the calling thread (with `SECCOMP_FILTER_FLAG_TSYNC` in the profile:
/// into every thread of the process). Returns the notify listener fd when the profile uses
/// `SCMP_ACT_NOTIFY`.
///
/// The caller must have set `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS)`) or hold
/// `CAP_SYS_ADMIN`; otherwise the kernel refuses with `EACCES`. Apart from building an error,
/// this function does not allocate, so it is safe in a child forked from a threaded process.
pub fn load(f: &CompiledFilter) -> Result<Option<OwnedFd>, SeccompError> {
    let prog = SockFprog {
        len: f.program.len() as libc::c_ushort,
        filter: f.program.as_ptr(),
    };
    let flags = f.load_flags();
    // SAFETY: `prog` points to `f.program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const SockFprog,
        )
    };
    if rc < 0 {
        return Err(load_error(Errno::last(), flags));
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) }));
    }
    if rc > 0 {
        // TSYNC without NEW_LISTENER: the id of a thread that could not be synchronized.
        return Err(SeccompError::Tsync(rc));
    }
    Ok(None)
}

fn load_error(errno: Errno, flags: u32) -> SeccompError {
    let msg = match errno {
        Errno::EACCES => "the process has neither no_new_privs set nor CAP_SYS_ADMIN".to_string(),
        Errno::EINVAL => format!("the kernel rejected the program or the flags {flags:#x}"),
        Errno::EBUSY => "another filter of this process already has a notify listener".into(),
        Errno::ESRCH if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 => {
            "another thread could not be synchronized (SECCOMP_FILTER_FLAG_TSYNC)".into()
        }
        Errno::ENOMEM => "out of memory, or the filters of this process are too long".into(),
        _ => "seccomp(SECCOMP_SET_MODE_FILTER) failed".into(),
    };
    SeccompError::Load { msg, errno }
}

impl CompiledFilter {
    /// The `flags` argument `load` passes to `seccomp(2)`.
    pub fn load_flags(&self) -> u32 {
        let mut flags = self.flags;
        if self.listener {
            flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
            if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 {
                // The kernel refuses TSYNC with NEW_LISTENER unless TSYNC failures are -ESRCH.
                flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
            }
        } else {
            // Meaningless without a listener, and refused by the kernel (EINVAL).
            flags &= !SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
        flags
    }
}

/// What the kernel says about a filter flag or an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    No,
    /// The question itself failed (e.g. the caller runs under a filter that denies seccomp(2)).
    Unknown,
}

/// Probes a `SECCOMP_FILTER_FLAG_*` without loading anything: the kernel checks the flags before
/// it reads the (NULL) program, so a known flag fails with EFAULT and an unknown one with EINVAL.
pub fn flag_support(flag: u32) -> Support {
    let mut flags = flag;
    if flag & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    // SAFETY: a NULL program is never dereferenced; the call fails before or at copying it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            std::ptr::null::<SockFprog>(),
        )
    };
    match (rc, Errno::last()) {
        (-1, Errno::EFAULT) => Support::Yes,
        (-1, Errno::EINVAL) => Support::No,
        _ => Support::Unknown,
    }
}

/// Asks the kernel whether it knows a `SECCOMP_RET_*` action (`SECCOMP_GET_ACTION_AVAIL`).
pub fn action_support(action: u32) -> Support {
    let act = action & super::profile::SECCOMP_RET_ACTION_FULL;
    // SAFETY: the kernel reads one u32 from `&act`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &act as *const u32,
        )
    };
    match (rc, Errno::last()) {
        (0, _) => Support::Yes,
        (_, Errno::EOPNOTSUPP) => Support::No,
        _ => Support::Unknown,
    }
}
