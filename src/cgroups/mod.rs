//! Cgroup management behind one trait, with v1, v2 and hybrid hosts.
//!
//! The rest of the runtime only talks to [`CgroupManager`]: `create` builds a manager from the
//! container's config, the state file keeps its [`CgroupState`], and later commands rebuild the
//! manager from that with [`from_state`].

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: {0}")]
    Msg(String),
    #[error("cgroup: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Options from the command line that shape cgroup handling.
#[derive(Debug, Clone, Default)]
pub struct CgroupOptions {
    /// `--systemd-cgroup` was given.
    pub systemd: bool,
    /// Rootless mode: failures to create cgroups are warnings, not errors.
    pub rootless: bool,
}

/// What `create` persists in the container's state so that later commands find the cgroup again
/// and remove only what rruntime itself created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupState {
    /// The cgroup path inside each hierarchy, e.g. `/rruntime/ID`.
    pub path: String,
}

/// One container's cgroup(s), whatever the host's cgroup layout.
pub trait CgroupManager {
    /// Creates the cgroup directories (recording which ones it created) and applies `resources`.
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()>;
    /// Moves `pid` into the cgroup(s).
    fn add_task(&self, pid: i32) -> Result<()>;
    /// Applies resources to an existing cgroup (`update`).
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Every pid in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    /// Removes the directories this container created, waiting (bounded) for them to empty.
    fn destroy(&self) -> Result<()>;
    /// What to persist in state.json.
    fn state(&self) -> CgroupState;
}

/// Builds the manager for a new container from `linux.cgroupsPath` (None: the default path).
pub fn new_manager(
    cgroups_path: Option<&str>,
    id: &str,
    _opts: &CgroupOptions,
) -> Result<Box<dyn CgroupManager>> {
    let path = match cgroups_path {
        Some(p) => p.to_string(),
        None => format!("/rruntime/{id}"),
    };
    Ok(Box::new(Noop {
        st: CgroupState { path },
    }))
}

/// Rebuilds the manager of an existing container.
pub fn from_state(st: &CgroupState, _opts: &CgroupOptions) -> Result<Box<dyn CgroupManager>> {
    Ok(Box::new(Noop { st: st.clone() }))
}

/// Placeholder backend until the v1/v2 backends land.
struct Noop {
    st: CgroupState,
}

impl CgroupManager for Noop {
    fn create(&mut self, _r: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }
    fn add_task(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    fn apply(&self, _r: &LinuxResources) -> Result<()> {
        Ok(())
    }
    fn pids(&self) -> Result<Vec<i32>> {
        Ok(vec![])
    }
    fn freeze(&self) -> Result<()> {
        Err(CgroupError::Msg("freezer not implemented".into()))
    }
    fn thaw(&self) -> Result<()> {
        Err(CgroupError::Msg("freezer not implemented".into()))
    }
    fn is_frozen(&self) -> Result<bool> {
        Ok(false)
    }
    fn destroy(&self) -> Result<()> {
        Ok(())
    }
    fn state(&self) -> CgroupState {
        self.st.clone()
    }
}
