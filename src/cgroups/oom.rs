//! OOM notifications for `events`.
//!
//! * v1: an eventfd registered in `cgroup.event_control` for `memory.oom_control`. The kernel
//!   signals it on every OOM in the cgroup and once more when the cgroup is removed.
//! * v2: an inotify watch on `memory.events` (the kernel reports modifications); an OOM is an
//!   increase of its `oom_kill` counter.
//!
//! Either way the caller polls [`OomEvents`]'s fd for readability (non-blocking, close-on-exec)
//! and then calls [`OomEvents::read`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};
use super::fs;

/// What happened since the last [`OomEvents::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// Nothing new (a spurious wake-up, or another memory.events change).
    None,
    /// This many OOM kills (v2) or OOM notifications (v1) happened.
    Oom(u64),
    /// The cgroup is gone; stop watching.
    Gone,
}

enum Kind {
    V1 { event_control: PathBuf },
    V2 { dir: PathBuf, last: u64 },
}

/// A pollable source of OOM events for one container.
pub struct OomEvents {
    fd: OwnedFd,
    kind: Kind,
}

impl AsFd for OomEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn cstr(p: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| CgroupError::msg(format!("{}: path contains NUL", p.display())))
}

fn oom_kills(dir: &Path) -> Result<Option<u64>> {
    Ok(fs::read_opt(dir, "memory.events")?.map(|s| {
        fs::key_values(&s)
            .find(|(k, _)| *k == "oom_kill")
            .map(|(_, v)| v)
            .unwrap_or(0)
    }))
}

impl OomEvents {
    /// Registers for OOM notifications of the v1 memory cgroup `dir`.
    pub fn v1(dir: &Path) -> Result<OomEvents> {
        // SAFETY: plain syscall; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(CgroupError::io(dir, io::Error::last_os_error()));
        }
        // SAFETY: efd is a new fd we own.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let oom_control = dir.join("memory.oom_control");
        let cfd =
            std::fs::File::open(&oom_control).map_err(|e| CgroupError::io(&oom_control, e))?;
        fs::write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), cfd.as_raw_fd()),
        )?;
        Ok(OomEvents {
            fd: efd,
            kind: Kind::V1 {
                event_control: dir.join("cgroup.event_control"),
            },
        })
    }

    /// Watches `memory.events` of the cgroup v2 directory `dir`.
    pub fn v2(dir: &Path) -> Result<OomEvents> {
        let events = dir.join("memory.events");
        let last = oom_kills(dir)?.ok_or_else(|| {
            CgroupError::unsupported(
                "OOM notifications",
                format!(
                    "{} is missing (memory controller not enabled)",
                    events.display()
                ),
            )
        })?;
        // SAFETY: plain syscall; the result is checked.
        let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if ifd < 0 {
            return Err(CgroupError::io(&events, io::Error::last_os_error()));
        }
        // SAFETY: ifd is a new fd we own.
        let ifd = unsafe { OwnedFd::from_raw_fd(ifd) };
        let p = cstr(&events)?;
        // SAFETY: p is a valid C string; ifd is open.
        let wd = unsafe { libc::inotify_add_watch(ifd.as_raw_fd(), p.as_ptr(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(CgroupError::io(&events, io::Error::last_os_error()));
        }
        Ok(OomEvents {
            fd: ifd,
            kind: Kind::V2 {
                dir: dir.to_path_buf(),
                last,
            },
        })
    }

    /// Consumes what woke the fd up and says what happened. Never blocks.
    pub fn read(&mut self) -> Result<OomEvent> {
        let mut buf = [0u8; 4096];
        // SAFETY: buf is writable for its length; the fd is ours.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let woke = if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EAGAIN) {
                return Err(CgroupError::msg(format!("read OOM event fd: {e}")));
            }
            false
        } else {
            true
        };
        match &mut self.kind {
            Kind::V1 { event_control } => {
                if !fs::exists(event_control) {
                    return Ok(OomEvent::Gone);
                }
                if woke && n == 8 {
                    let count = u64::from_ne_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    return Ok(OomEvent::Oom(count));
                }
                Ok(OomEvent::None)
            }
            Kind::V2 { dir, last } => match oom_kills(dir) {
                Ok(Some(now)) if now > *last => {
                    let d = now - *last;
                    *last = now;
                    Ok(OomEvent::Oom(d))
                }
                Ok(Some(_)) => Ok(OomEvent::None),
                Ok(None) => Ok(OomEvent::Gone),
                Err(e) => Err(e),
            },
        }
    }
}
