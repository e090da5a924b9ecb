//! The cgroup module's error type: one line each, naming the file or the resource at fault.

use std::io;
use std::path::Path;

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A problem that is not a system call failure (bad value, unsupported request, …).
    #[error("cgroup: {0}")]
    Msg(String),
    /// A system call on `path` failed.
    #[error("cgroup: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Writing `value` to the cgroup file `path` failed.
    #[error("cgroup: write {value:?} to {path}: {source}")]
    Write {
        path: String,
        value: String,
        #[source]
        source: io::Error,
    },
    /// The configuration asks for something this host's cgroups cannot do.
    #[error("cgroup: {resource} requested but {reason}")]
    Unsupported { resource: String, reason: String },
}

impl CgroupError {
    pub(crate) fn msg(m: impl Into<String>) -> Self {
        CgroupError::Msg(m.into())
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        CgroupError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn unsupported(resource: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Unsupported {
            resource: resource.into(),
            reason: reason.into(),
        }
    }

    /// The errno behind this error, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. } | CgroupError::Write { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// True when the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }
}
