//! `linux.namespaces`: which namespaces are new (clone/unshare flags) and which are joined by
//! path (opened and type-checked by the runtime before anything is spawned).

use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/<pid>/ns/<name> entry name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join: its type and an open fd (type already verified).
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// What the spawn path must do about namespaces.
pub struct Plan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, user namespace first.
    pub join: Vec<Join>,
}

impl Plan {
    pub fn has_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(clone_flag(t))
    }
    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|j| j.typ == t)
    }
    /// The container has its own namespace of this type (new or joined).
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.has_new(t) || self.joins(t)
    }
}

/// Opens a namespace file and checks it is a namespace of type `t` (NS_GET_NSTYPE).
pub fn open_ns(path: &std::path::Path, t: LinuxNamespaceType) -> Result<OwnedFd> {
    let fd =
        nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| {
            format!(
                "linux.namespaces: open {} namespace {}",
                proc_name(t),
                path.display()
            )
        })?;
    // SAFETY: ioctl on an fd we own, no argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE as _) };
    if r < 0 {
        return Err(Error::config(format!(
            "linux.namespaces: {} is not a namespace file",
            path.display()
        )));
    }
    if r != clone_flag(t).bits() {
        return Err(Error::config(format!(
            "linux.namespaces: {} is not a {} namespace",
            path.display(),
            proc_name(t)
        )));
    }
    Ok(fd)
}

pub fn plan(spec: &Spec) -> Result<Plan> {
    let mut new = CloneFlags::empty();
    let mut join = Vec::new();
    if let Some(nss) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
        for ns in nss {
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => join.push(Join {
                    typ: ns.typ(),
                    fd: open_ns(p, ns.typ())?,
                    path: p.clone(),
                }),
                _ => new |= clone_flag(ns.typ()),
            }
        }
    }
    // The user namespace is joined first: the others are owned by it.
    join.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
    Ok(Plan { new, join })
}

/// setns into one joined namespace.
pub fn enter(j: &Join) -> Result<()> {
    nix::sched::setns(&j.fd, clone_flag(j.typ))
        .ctx(|| format!("join {} namespace {}", proc_name(j.typ), j.path.display()))
}
