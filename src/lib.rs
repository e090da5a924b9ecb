//! rruntime: an OCI runtime-spec container runtime with runc's command-line contract.
//!
//! The binary (`src/main.rs`) parses the command line and dispatches to `commands`; everything
//! else is this library: config loading (`spec`), persisted state (`state`), the state machine
//! (`container`), the spawn path (`process`), the filesystem view (`rootfs`), `cgroups`,
//! `seccomp`, `capabilities`, `hooks`, `namespaces`, `tty`, `logging`.

pub mod activation;
pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod container;
pub mod criu;
pub mod error;
pub mod hooks;
pub mod logging;
pub mod namespaces;
pub mod netdev;
pub mod notify;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod spec_compat;
pub mod state;
pub mod time;
pub mod tty;
pub mod userns;

pub use error::{Error, Result};
