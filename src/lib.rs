//! rruntime: an OCI runtime-spec container runtime with runc's command-line contract.

pub mod cgroups;
pub mod error;
pub mod seccomp;

pub use error::{Error, Result};
