//! One file per subcommand. Each takes the parsed arguments and the global context and returns
//! the process exit code (errors are reported by `main`).

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use crate::cgroups::CgroupOptions;
use crate::cli::GlobalOpts;
use crate::error::{Error, Result};
use crate::state::{ContainerDir, Root, DEFAULT_ROOT};
use std::path::PathBuf;

/// What every command needs from the global flags.
pub struct Ctx {
    pub root_path: PathBuf,
    pub debug: bool,
    systemd_cgroup: bool,
    /// `--rootless` given as true/false; None: auto.
    rootless: Option<bool>,
    /// Worked out on first use: only commands that touch cgroups need it (auto reads
    /// /proc/self/uid_map).
    cgroup_opts: std::cell::OnceCell<CgroupOptions>,
}

/// `--rootless auto` (runc's rule): an unprivileged user is rootless, root of the initial user
/// namespace is not. Uid 0 of a user namespace (inside a rootless Podman, `unshare -r`) is
/// rootless with the cgroupfs driver (it cannot know what it may write); with the systemd
/// driver only when a session bus is there and its uid outside the namespace (the uid the
/// bus sees) is not 0 — root of a user namespace that runs a system manager as root (a
/// systemd-based unprivileged system container) uses the system manager, as runc does when the
/// session bus' owner is root or there is none.
fn auto_rootless(systemd: bool) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    if !crate::userns::in_user_namespace() {
        return false;
    }
    if !systemd {
        return true;
    }
    let bus = crate::cgroups::systemd::dbus::session_bus_address()
        .and_then(|a| crate::cgroups::systemd::dbus::unix_path_of(&a))
        .is_some_and(|p| p.starts_with('@') || std::path::Path::new(&p).exists());
    bus && crate::userns::outside_id("uid_map", 0).is_some_and(|u| u != 0)
}

impl Ctx {
    pub fn new(g: &GlobalOpts) -> Result<Ctx> {
        // runc's rule for the default state root: an unprivileged user, or uid 0 of a user
        // namespace such as rootless Podman's, keeps state under $XDG_RUNTIME_DIR.
        let xdg = g.root.is_none() && crate::userns::honour_xdg_runtime_dir();
        let rootless = match g.rootless.as_deref() {
            None | Some("auto") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(v) => {
                return Err(Error::config(format!(
                    "--rootless: invalid value {v:?} (want true, false or auto)"
                )))
            }
        };
        let root_path =
            match &g.root {
                Some(p) => p.clone(),
                None if xdg => match std::env::var_os("XDG_RUNTIME_DIR") {
                    Some(d) if !d.is_empty() => PathBuf::from(d).join("rruntime"),
                    _ if !nix::unistd::geteuid().is_root() => return Err(Error::config(
                        "rootless: XDG_RUNTIME_DIR is not set; set it (e.g. /run/user/$UID) or \
                         pass --root",
                    )),
                    // uid 0 of a user namespace without XDG_RUNTIME_DIR: the default (runc's
                    // too), which only works when that root may write it.
                    _ => PathBuf::from(DEFAULT_ROOT),
                },
                None => PathBuf::from(DEFAULT_ROOT),
            };
        Ok(Ctx {
            root_path,
            debug: g.debug,
            systemd_cgroup: g.systemd_cgroup,
            rootless,
            cgroup_opts: std::cell::OnceCell::new(),
        })
    }

    /// How cgroups are managed: `--systemd-cgroup`, and `--rootless` (runc's auto: an
    /// unprivileged user, or root of a user namespace such as inside a rootless container,
    /// cannot be expected to manage cgroups).
    pub fn cgroup_opts(&self) -> &CgroupOptions {
        self.cgroup_opts.get_or_init(|| CgroupOptions {
            systemd: self.systemd_cgroup,
            rootless: self
                .rootless
                .unwrap_or_else(|| auto_rootless(self.systemd_cgroup)),
        })
    }

    /// Opens the state root; commands that only read treat a missing root as "no containers".
    pub fn root(&self, create: bool) -> Result<Root> {
        Root::open(&self.root_path, create)
    }

    /// Opens and locks an existing container's directory (for commands that change it).
    pub fn container(&self, id: &str) -> Result<ContainerDir> {
        self.open(id, true)
    }

    /// Opens a container's directory for reading only (no lock needed, never blocks).
    pub fn container_ro(&self, id: &str) -> Result<ContainerDir> {
        self.open(id, false)
    }

    fn open(&self, id: &str, lock: bool) -> Result<ContainerDir> {
        crate::state::validate_id(id)?;
        let root = match self.root(false) {
            Ok(r) => r,
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(e) => return Err(e),
        };
        root.open_container(id, lock)
    }
}
