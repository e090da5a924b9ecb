//! Bind-mount sources the runtime opens for the init (runc 1.4's mount-source requests).
//!
//! The init mounts `mounts[]` in order, in the container's mount namespace and — with a user
//! namespace — as that namespace's root. Two kinds of source it cannot open itself: one under a
//! directory only host root may enter (the container's root is an unprivileged user on the
//! host), and an idmapped one (only host root may idmap a host file system). For those it sends
//! `MountSourcePlease(index)` when it reaches the entry, so after the earlier entries are
//! mounted, and the runtime answers `MountSource` with an fd: an `O_PATH` fd of the source, or
//! a detached idmapped tree ([`super::idmap::make_tree`]). The runtime forks a short-lived
//! helper for each request that joins the init's mount namespace (staying in the host's user
//! namespace, with host root's credentials), so a source under an earlier entry's mount is
//! found where the init would find it; the runtime process itself never changes namespace and
//! starts no thread. A plain source is asked for only when the init cannot reach it and the
//! runtime is real root (a rootless runtime reaches no more than its init).

use super::idmap::{self, IdmapUserns};
use super::mount_opts;
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::process::sync::{self, Msg};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// How long a helper may take to open one source.
const HELPER_TIMEOUT_SECS: i64 = 60;

/// Runtime side: answers the init's mount-source requests.
pub struct SourceOpener<'a> {
    spec: &'a Spec,
    bundle: &'a Path,
    userns: IdmapUserns<'a>,
}

impl<'a> SourceOpener<'a> {
    pub fn new(spec: &'a Spec, bundle: &'a Path, plan: &'a Plan) -> Self {
        SourceOpener {
            spec,
            bundle,
            userns: IdmapUserns::new(spec, plan),
        }
    }

    /// The source of `mounts[index]`, opened in the mount namespace of `init_pid`.
    pub fn open(&mut self, init_pid: i32, index: usize) -> Result<OwnedFd> {
        let spec: &'a Spec = self.spec;
        let m = spec
            .mounts()
            .as_ref()
            .and_then(|ms| ms.get(index))
            .filter(|m| {
                m.typ().as_deref() == Some("bind")
                    || mount_opts::parse(m.options().as_deref().unwrap_or_default()).is_bind()
            })
            .ok_or_else(|| {
                Error::msg(format!(
                    "sync: mount source asked for mounts[{index}], which is not a bind mount"
                ))
            })?;
        let what = super::mounts::what(m);
        let src = super::mounts::source_path(self.bundle, m)
            .ok_or_else(|| Error::config(format!("{what}: bind mount has no source")))?;
        let userns = if idmap::is_idmapped(m) {
            Some(self.userns.for_mount(m)?)
        } else {
            None
        };
        let mntns = nix::fcntl::open(
            format!("/proc/{init_pid}/ns/mnt").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("{what}: open the container's mount namespace"))?;
        let (ours, theirs) = sync::pair()?;
        ours.set_recv_timeout(HELPER_TIMEOUT_SECS)?;
        // SAFETY: the runtime is single-threaded; the child only opens the source, sends it and
        // leaves with _exit.
        let (pid, _) =
            unsafe { crate::process::clone::clone_child(nix::sched::CloneFlags::empty(), None) }
                .ctx(|| format!("{what}: fork a mount source helper"))?;
        if pid == 0 {
            drop(ours);
            let r = (|| -> Result<OwnedFd> {
                nix::sched::setns(&mntns, nix::sched::CloneFlags::CLONE_NEWNS)
                    .ctx(|| format!("{what}: join the container's mount namespace"))?;
                match userns {
                    Some(u) => idmap::make_tree(m, &src, u),
                    None => nix::fcntl::open(&src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                        .ctx(|| format!("{what}: open source {}", src.display())),
                }
            })();
            let _ = match r {
                Ok(fd) => theirs.send_fd(&Msg::MountSource, fd.as_fd()),
                Err(e) => theirs.send(&Msg::Error(e.to_string())),
            };
            // SAFETY: leave without running the runtime's destructors.
            unsafe { libc::_exit(0) }
        }
        drop(theirs);
        drop(mntns);
        let r = ours.recv_with_fd();
        if r.is_err() {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let answer = r.map_err(|e| match e.errno() {
            Some(nix::errno::Errno::EAGAIN) => Error::msg(format!(
                "{what}: the mount source helper did not answer within {HELPER_TIMEOUT_SECS} s"
            )),
            _ => super::mounts::prefix(e, &format!("{what}: mount source helper")),
        })?;
        match answer {
            Some((Msg::MountSource, Some(fd))) => Ok(fd),
            Some((Msg::Error(e), _)) => Err(Error::Msg(e)),
            _ => Err(Error::msg(format!(
                "{what}: the mount source helper exited without an answer"
            ))),
        }
    }
}
