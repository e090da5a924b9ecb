//! The library's error type. Every message is one line a caller can show as-is; the texts that
//! containerd, conmon and CRI-O match on ("does not exist", "container not running", …) are kept
//! identical to runc's.

use std::fmt::Display;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    #[error("container not running")]
    NotRunning,
    #[error("container is paused")]
    Paused,
    #[error("invalid container id {0:?}: {1}")]
    InvalidId(String, &'static str),
    /// A config.json (or process.json) problem, naming the field.
    #[error("{0}")]
    Config(String),
    /// An operation not allowed in the container's current state.
    #[error("{0}")]
    State(String),
    #[error("{ctx}: {source}")]
    Sys {
        ctx: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{ctx}: {source}")]
    Io {
        ctx: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// A failure reported by the container's init or a hook, already worded.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(one_line(m.into()))
    }
    pub fn config(m: impl Into<String>) -> Self {
        Error::Config(one_line(m.into()))
    }
    /// The errno behind this error, if it came from a system call.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Sys { source, .. } => Some(*source),
            Error::Io { source, .. } => source.raw_os_error().map(nix::errno::Errno::from_raw),
            _ => None,
        }
    }
}

/// An errno's text as Go (and so runc) words it: "no such file or directory", lower case, no
/// `ENOENT:` prefix — callers such as Docker match on these words.
pub fn strerror(e: nix::errno::Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => d.to_string(),
    }
}

/// Makes a message one line: control characters that came from outside input (a newline in
/// an unknown enum value of config.json, in a path…) are escaped (`\n`).
pub fn one_line(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Adds a context line to errno- and io-results: `mount(…).ctx(|| format!("mount {dest}"))?`.
pub trait Context<T> {
    fn ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Sys {
            ctx: f().to_string(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            ctx: f().to_string(),
            source,
        })
    }
}
