//! `linux.cgroupsPath` as runc's cgroupfs driver reads it, and where that puts the container's
//! cgroup in each hierarchy.
//!
//! * An absolute path is taken from the root of every hierarchy (its mount point).
//! * A relative path is taken from the runtime's own cgroup: on v1 (and the hybrid cgroup2
//!   mount) the cgroup this process is in for that hierarchy; on a pure v2 host its *parent*,
//!   because the runtime's own cgroup has processes and so cannot enable controllers for a child.
//! * No path: the container id, relative (runc 1.1 sets `Name = id` with an empty `Path`, which is
//!   resolved exactly like the relative path `id`).
//!
//! Paths are cleaned lexically first (runc's `CleanPath`): `.` and `..` are resolved, a relative
//! path can never climb above its base, an absolute one never above the hierarchy root.
//! `slice:prefix:name` is the systemd driver's form; without `--systemd-cgroup` it is rejected
//! (runc would silently create a directory of that name); the systemd driver reads it (see
//! [`super::systemd`]).

use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};
use super::CgroupOptions;

/// The container's cgroup path inside each hierarchy, cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    /// From the hierarchy root; always starts with `/`.
    Absolute(String),
    /// From the runtime's own cgroup; never empty, never starts with `/` or `..`.
    Relative(String),
}

impl CgroupPath {
    /// Interprets `linux.cgroupsPath` (None or empty: the default, the container id).
    pub fn parse(cgroups_path: Option<&str>, id: &str, opts: &CgroupOptions) -> Result<CgroupPath> {
        let given = cgroups_path.filter(|p| !p.is_empty());
        if opts.systemd {
            // The systemd driver reads its own form (`super::systemd::UnitSpec`).
            return Err(CgroupError::msg(
                "internal: a systemd cgroupsPath is parsed by the systemd driver",
            ));
        }
        let raw = match given {
            Some(p) if is_systemd_form(p) => {
                return Err(CgroupError::msg(format!(
                    "systemd cgroupsPath requires --systemd-cgroup: {p:?}"
                )))
            }
            Some(p) => p,
            None => id,
        };
        let cleaned = clean(raw);
        if raw.starts_with('/') {
            if cleaned == "/" {
                return Err(CgroupError::msg(format!(
                    "cgroupsPath {raw:?} names the root cgroup; a container needs its own cgroup"
                )));
            }
            Ok(CgroupPath::Absolute(cleaned))
        } else {
            let rel = cleaned.trim_start_matches('/').to_string();
            if rel.is_empty() {
                return Err(CgroupError::msg(format!(
                    "cgroupsPath {raw:?} is empty after cleaning"
                )));
            }
            Ok(CgroupPath::Relative(rel))
        }
    }

    /// The path as recorded in the state (`/a/b` or `a/b`).
    pub fn as_str(&self) -> &str {
        match self {
            CgroupPath::Absolute(s) | CgroupPath::Relative(s) => s,
        }
    }

    pub fn is_relative(&self) -> bool {
        matches!(self, CgroupPath::Relative(_))
    }

    /// The container's directory in a hierarchy mounted at `mount_point` showing cgroup
    /// `mount_root`, given our own cgroup `own` there (needed for relative paths only).
    /// `own_parent`: start from the parent of our own cgroup (pure v2).
    pub fn host_dir(
        &self,
        mount_point: &Path,
        mount_root: &str,
        own: Option<&str>,
        own_parent: bool,
    ) -> Result<PathBuf> {
        match self {
            CgroupPath::Absolute(p) => Ok(mount_point.join(p.trim_start_matches('/'))),
            CgroupPath::Relative(p) => {
                let own = own.ok_or_else(|| {
                    CgroupError::msg(format!(
                        "relative cgroupsPath {p:?}: this process's cgroup for {} is not in /proc/self/cgroup",
                        mount_point.display()
                    ))
                })?;
                let own = clean(own);
                let mut base = if own_parent {
                    match own.rfind('/') {
                        Some(0) | None => "/".to_string(),
                        Some(i) => own[..i].to_string(),
                    }
                } else {
                    own
                };
                // /proc/self/cgroup paths are relative to the cgroup namespace root; the mount
                // shows `mount_root` at its mount point.
                let root = clean(mount_root);
                if root != "/" {
                    if base == root {
                        base = "/".into();
                    } else if let Some(rest) = base.strip_prefix(&root) {
                        if rest.starts_with('/') {
                            base = rest.to_string();
                        }
                    }
                }
                Ok(mount_point.join(base.trim_start_matches('/')).join(p))
            }
        }
    }
}

/// `slice:prefix:name` (what `--systemd-cgroup` callers pass), e.g. `system.slice:docker:abc`.
fn is_systemd_form(p: &str) -> bool {
    !p.contains('/') && p.split(':').count() == 3
}

/// Lexical cleaning as Go's `filepath.Clean` on a path rooted at `/`: the result always starts
/// with `/`, has no `.`, `..` or empty components, and never climbs above `/`.
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for c in &parts {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: Option<&str>) -> Result<CgroupPath> {
        CgroupPath::parse(p, "ctr", &CgroupOptions::default())
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("/a/../../b//c/."), "/b/c");
        assert_eq!(clean("../../x"), "/x");
        assert_eq!(clean(""), "/");
    }

    #[test]
    fn parse_forms() {
        assert_eq!(parse(None).unwrap(), CgroupPath::Relative("ctr".into()));
        assert_eq!(parse(Some("")).unwrap(), CgroupPath::Relative("ctr".into()));
        assert_eq!(
            parse(Some("/a/../b")).unwrap(),
            CgroupPath::Absolute("/b".into())
        );
        assert_eq!(
            parse(Some("../../x/y")).unwrap(),
            CgroupPath::Relative("x/y".into())
        );
        assert!(parse(Some("/")).is_err());
        assert!(parse(Some("..")).is_err());
        let e = parse(Some("system.slice:docker:abc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("requires --systemd-cgroup"), "{e}");
    }

    #[test]
    fn host_dirs() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        let abs = CgroupPath::Absolute("/x/y".into());
        assert_eq!(abs.host_dir(mp, "/", None, false).unwrap(), mp.join("x/y"));
        let rel = CgroupPath::Relative("c".into());
        assert_eq!(
            rel.host_dir(mp, "/", Some("/user/1"), false).unwrap(),
            mp.join("user/1/c")
        );
        assert_eq!(
            rel.host_dir(mp, "/", Some("/user/1"), true).unwrap(),
            mp.join("user/c")
        );
        assert_eq!(
            rel.host_dir(mp, "/", Some("/"), true).unwrap(),
            mp.join("c")
        );
        // A sub-tree mount (container without cgroupns).
        assert_eq!(
            rel.host_dir(mp, "/docker/abc", Some("/docker/abc"), false)
                .unwrap(),
            mp.join("c")
        );
        assert!(rel.host_dir(mp, "/", None, false).is_err());
    }
}
