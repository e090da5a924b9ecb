//! OCI `linux.seccomp` → a classic-BPF program, and loading it.
//!
//! The profile is compiled in the runtime before the container's init is cloned (errors surface
//! at `create`, and the init only has to load ready-made bytes), then loaded by the init as late as
//! possible before `execve`.

use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Msg(String),
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    _priv: (),
}

impl CompiledFilter {
    /// True when the profile uses SCMP_ACT_NOTIFY: loading returns a listener fd.
    pub fn needs_listener(&self) -> bool {
        false
    }
}

pub fn compile(_seccomp: &LinuxSeccomp) -> Result<CompiledFilter, SeccompError> {
    Err(SeccompError::Msg("seccomp is not supported yet".into()))
}

/// Loads the filter into the calling thread (process). Returns the notify listener fd when
/// the profile has SCMP_ACT_NOTIFY rules.
pub fn load(_f: &CompiledFilter) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
    Err(SeccompError::Msg("seccomp is not supported yet".into()))
}
