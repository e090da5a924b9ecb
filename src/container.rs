//! The state machine: a container's status is derived from reality (is the init alive, is it
//! the same process, is the exec fifo still there, is the cgroup frozen), never just trusted
//! from the state file.

use crate::cgroups::{self, CgroupOptions};
use crate::error::{Error, Result};
use crate::state::{pid_start_time, ContainerDir, State};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True if `pid` is alive (not a zombie) and is the process that was recorded.
pub fn init_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Some(data) = crate::state::read_stat(pid) else {
        return false;
    };
    match crate::state::parse_stat(&data) {
        Some((state, st)) => st == start && state != b'Z' && state != b'X',
        None => false,
    }
}

/// A pidfd of the init while it is still the recorded process: opened first, then checked, so a
/// recycled pid cannot slip in between.
pub fn init_pidfd(pid: i32, start: u64) -> Option<std::os::fd::OwnedFd> {
    let fd = crate::process::pidfd_open(pid)?;
    init_alive(pid, start).then_some(fd)
}

/// Whether the container's cgroup is frozen now, by whomever.
pub fn cgroup_frozen(st: &State) -> bool {
    cgroups::from_state(&st.cgroup, &CgroupOptions::default())
        .and_then(|m| m.is_frozen())
        .unwrap_or(false)
}

/// Derives the status of a container from its state and the system.
pub fn status(dir: &ContainerDir, st: &State) -> Status {
    if st.pid == 0 {
        return match st.creator {
            Some((pid, start)) if init_alive(pid, start) => Status::Creating,
            _ => Status::Stopped,
        };
    }
    if !init_alive(st.pid, st.pid_start) {
        return Status::Stopped;
    }
    // A frozen cgroup is `paused` even before `start` (runc allows pausing a created
    // container and reports it as paused, checking the freezer before the exec fifo) — if the
    // freeze is the user's `pause`, not the moment `kill --all` freezes the cgroup.
    let frozen = dir.marked_paused() && cgroup_frozen(st);
    if frozen {
        Status::Paused
    } else if dir.fifo_exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The runtime-spec state object, as printed by `state` and passed to hooks.
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: String,
    pub rootfs: String,
    pub created: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
    pub owner: &'a str,
}

impl<'a> OciState<'a> {
    pub fn new(st: &'a State, status: Status) -> Self {
        OciState {
            oci_version: crate::cli::SPEC_VERSION,
            id: &st.id,
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status,
            bundle: st.bundle.to_string_lossy().into_owned(),
            rootfs: st.rootfs.to_string_lossy().into_owned(),
            created: &st.created,
            annotations: &st.annotations,
            owner: &st.owner,
        }
    }
}

/// Loads a container's state; a directory without state.json is a create in progress (or a
/// crashed one) and is reported as not existing to everything but `delete --force`.
pub fn load(dir: &ContainerDir) -> Result<State> {
    dir.load()?.ok_or_else(|| Error::NotExist(dir.id.clone()))
}

/// Re-reads the init's start time for a freshly created process.
pub fn start_time_of(pid: i32) -> Result<u64> {
    pid_start_time(pid)
        .ok_or_else(|| Error::msg(format!("container init (pid {pid}) exited early")))
}
