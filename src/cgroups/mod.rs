//! Cgroup management behind one trait, with v1, v2 and hybrid hosts.
//!
//! The rest of the runtime only talks to [`CgroupManager`]: `create` builds a manager from the
//! container's config with [`new_manager`], the state file keeps its [`CgroupState`], and later
//! commands rebuild the manager from that with [`from_state`] (no host probing needed then).
//!
//! # How the runtime drives it
//!
//! * `create`: [`new_manager`]`(linux.cgroupsPath, id, &opts)` → `create(Some(&resources))`
//!   (resources with `devices` = [`devices::runc_rules`]`(spec rules, linux.devices paths)`) →
//!   [`join_plan`]`(&state)`: clone3 with `CLONE_INTO_CGROUP` into its cgroup2 directory
//!   ([`JoinPlan::open_v2_dir`]) and the new process writes itself into each v1 `tasks`
//!   ([`self_join`]); `add_task(init_pid)` only where that could not be done
//!   ([`JoinPlan::runtime_must_add`]) → persist `state()`. On v1/hybrid hosts `create` may run
//!   after the clone, once [`CgroupManager::create_clone_target`] made the cgroup2 directory.
//!   If a later step of `create` fails: `destroy_force()`.
//! * `exec`: `from_state` → the same [`join_plan`] for the new process.
//! * `delete`: `destroy()`; `delete --force`: `destroy_force()`.
//! * `kill --all`: `kill_all(sig)`. `pause`/`resume`: `freeze()`/`thaw()`; `state` shows
//!   `paused` when `is_frozen()` and `pause` left its mark in the state dir. `ps`: `pids()`. `update`: `apply(&resources)` (only what is
//!   set is written; devices only if given). `events`: `stats()` every interval, and poll
//!   `oom_events()` for `{"type":"oom"}`.
//! * rootfs without a cgroup namespace: [`CgroupManager::mounts`] (see [`mounts`]).
//!
//! # Host layouts
//!
//! [`detect::Layout`] reads /proc/self/mountinfo once. Pure v1 and hybrid hosts use the v1 backend
//! (`v1/`): every v1 hierarchy gets the container's directory (co-mounted ones like `cpu,cpuacct`
//! once), `name=systemd` is joined best-effort like runc, and on hybrid hosts the same path is also
//! created in the cgroup2 hierarchy so the container is tracked there too. Pure v2 hosts use the v2
//! backend (`v2/`), which enables the available controllers along the path in
//! `cgroup.subtree_control`.
//!
//! # The systemd driver
//!
//! `--systemd-cgroup` on pure v2: [`systemd`] builds the state (the unit and its directory) and
//! its manager starts a transient unit with the init's pid in [`CgroupManager::add_init`] (its
//! [`CgroupManager::init_join_plan`] says so), then writes the files through the v2 backend.
//! A state with [`CgroupState::systemd`] rebuilds that manager, whatever the flags.
//!
//! # Paths
//!
//! See [`path`]: absolute `linux.cgroupsPath` from each hierarchy root, relative from the runtime's
//! own cgroup (its parent on pure v2), default the container id (relative, as runc 1.1 does).
//! Every directory `create` makes is recorded in [`CgroupState::created`]; `destroy` removes exactly
//! those (deepest first, sub-cgroups the container made inside its own cgroup included), never a
//! directory that existed before.
//!
//! # Resources: what is written, skipped or refused
//!
//! "error" means `create`/`apply` fail with a message naming the resource; nothing is skipped
//! silently unless the table says so. Values a fresh cgroup already has (unlimited memory, swap,
//! pids, cpu quota) are not written on `create`.
//!
//! | `linux.resources` | v1 / hybrid | pure v2 |
//! |---|---|---|
//! | `memory.limit` | `memory.limit_in_bytes` (EBUSY → "unable to set memory limit … (current usage …)") | `memory.max` |
//! | `memory.swap` (memory+swap) | `memory.memsw.limit_in_bytes`, ordered against the limit; -1 without swap accounting: skipped; other values without it: error | `memory.swap.max` = swap − limit (runc's conversion and checks); -1/0 without swap: skipped |
//! | `memory.reservation` | `memory.soft_limit_in_bytes` | `memory.low` |
//! | `memory.kernel` | `memory.kmem.limit_in_bytes`; **skipped** when the kernel lacks or rejects it (ENOENT, EINVAL, EOPNOTSUPP: kmem limits are gone since Linux 5.16/6.x) | **skipped** (no v2 equivalent; runc ignores it too) |
//! | `memory.kernelTCP` | `memory.kmem.tcp.limit_in_bytes`; **skipped** when the file is missing | **skipped** (runc) |
//! | `memory.swappiness` | `memory.swappiness` (> 100: error) | **skipped** (no v2 knob; runc) |
//! | `memory.disableOOMKiller` | `memory.oom_control` | **skipped** (no v2 knob; runc) |
//! | `memory.useHierarchy` | `memory.use_hierarchy`; EINVAL (kernel forces hierarchy) **skipped** | **skipped** (always hierarchical) |
//! | `memory.checkBeforeUpdate` | on `apply`: refuse a limit ≤ current usage | same, with `memory.current` |
//! | `cpu.shares` | `cpu.shares` (outside 2…262144: error) | `cpu.weight` with the quadratic log formula of runc ≥ 1.3 / crun ≥ 1.23 |
//! | `cpu.quota`/`period`/`burst` | `cpu.cfs_quota_us`, `cpu.cfs_period_us`, `cpu.cfs_burst_us` (runc's EINVAL retry order) | `cpu.max` (`max` for quota ≤ 0), `cpu.max.burst` |
//! | `cpu.realtimeRuntime`/`Period` | `cpu.rt_runtime_us`/`cpu.rt_period_us`, before any task joins | **skipped** (v2 has no RT group knobs; runc ignores them) |
//! | `cpu.idle` | `cpu.idle` | `cpu.idle` |
//! | `cpu.cpus`/`mems` | `cpuset.cpus`/`cpuset.mems` (new nested dirs get the parent's values first) | `cpuset.cpus`/`cpuset.mems` |
//! | `pids.limit` | `pids.max` (> 0 value, < 0 `max`, 0 unset as in runc 1.1) | same |
//! | `blockIO.weight`/`leafWeight` | `blkio.weight` or `blkio.bfq.weight`; `blkio.leaf_weight`; neither file: error | `io.bfq.weight`, else `io.weight` converted (1 + (w−10)·9999/990); leafWeight **skipped** (no v2 knob) |
//! | `blockIO.weightDevice` | `blkio[.bfq].weight_device`, `blkio.leaf_weight_device` | `io.bfq.weight` per device if supported, else `io.weight` converted |
//! | `blockIO.throttle*` | `blkio.throttle.{read,write}_{bps,iops}_device` | `io.max` `rbps`/`wbps`/`riops`/`wiops` |
//! | `hugepageLimits` | `hugetlb.<size>.limit_in_bytes` (+ `.rsvd.` when present); **hybrid without a v1 hugetlb hierarchy: written in the cgroup2 hierarchy** (`hugetlb` enabled along the path) — runc fails here; no hugetlb anywhere: error | `hugetlb.<size>.max` (+ `.rsvd.max`) |
//! | `network.classID`/`priorities` | `net_cls.classid`, `net_prio.ifpriomap`; controller not mounted: error | **skipped** (no v2 controllers; runc ignores them) |
//! | `rdma` | `rdma.max`; controller not mounted: error | `rdma.max` |
//! | `devices` | `devices.deny`/`devices.allow`: a leading deny-all, then the folded list ([`devices`]); on `apply` only the difference to `devices.list` is written; no devices hierarchy: error (runc: fatal for security) | eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program attached with `BPF_CGROUP_DEVICE` (replacing the previous one on `apply`) |
//! | `devices` absent | `create`: runc's default allowlist ([`devices::runc_rules`]); `apply`: untouched | same |
//! | `unified` | pure v1: error (runc: "cannot use unified on cgroup v1"); **hybrid: written to the cgroup2 directory** | written as given (`/` in a key: error; missing controller named) |
//!
//! Any other controller that a requested resource needs but the host lacks is an error naming the
//! resource and the controller.

pub mod detect;
pub mod devices;
mod error;
mod fs;
mod hugetlb;
mod kill;
pub mod mounts;
pub mod oom;
pub mod path;
mod pids;
mod precheck;
mod rdma;
mod remove;
pub mod stats;
pub mod systemd;
pub mod unset;
mod v1;
pub mod v2;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use detect::{CgroupMode, Layout};
pub use error::{CgroupError, Result};
pub use mounts::CgroupMount;
pub use oom::{OomEvent, OomEvents};
pub use path::CgroupPath;
pub use precheck::check_new_container_cgroup;
pub use stats::Stats;

/// Options from the command line that shape cgroup handling.
#[derive(Debug, Clone, Default)]
pub struct CgroupOptions {
    /// `--systemd-cgroup` was given.
    pub systemd: bool,
    /// Rootless mode: failures to create cgroups are warnings, not errors.
    pub rootless: bool,
}

/// One hierarchy the container's cgroup lives in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers, comma-separated as the kernel lists them (`cpu,cpuacct`,
    /// `name=systemd`); empty for the cgroup2 hierarchy.
    pub controllers: String,
    /// Where the hierarchy is mounted on the host.
    pub mount_point: PathBuf,
    /// The container's cgroup directory in it.
    pub dir: PathBuf,
    /// v1 cpuset mounted with `noprefix`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noprefix: bool,
}

impl Hierarchy {
    /// A named v1 hierarchy (`name=systemd`): joined and made best-effort, never required.
    pub fn best_effort(&self) -> bool {
        self.controllers.starts_with("name=")
    }

    /// The cgroup2 hierarchy?
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }

    /// Holds `controller` (v1)?
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }
}

/// What `create` persists in the container's state so that later commands find the cgroup again
/// and remove only what rruntime itself created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupState {
    /// The cleaned cgroup path inside each hierarchy: `/a/b` (absolute) or `a/b` (relative).
    pub path: String,
    #[serde(default)]
    pub mode: CgroupMode,
    /// The container's directory in every hierarchy it joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hierarchies: Vec<Hierarchy>,
    /// Directories `create` made, parents first; `destroy` removes exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<PathBuf>,
    /// The systemd driver's unit (`--systemd-cgroup`): systemd made the directory and removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::SystemdUnit>,
}

/// How a new process of the container gets into its cgroups without the kernel's global
/// migration lock: a v1 `cgroup.procs` write takes `cgroup_threadgroup_rwsem` for writing, which
/// waits for an RCU grace period (8–26 ms measured on this project's hosts), while a
/// single-threaded process writing `0` (itself) into a v1 `tasks` file skips that lock, and
/// `clone3(CLONE_INTO_CGROUP)` places a child into a cgroup2 directory at birth.
#[derive(Debug, Clone, Default)]
pub struct JoinPlan {
    /// The cgroup2 directory to clone into (hybrid `unified` or pure v2).
    pub v2_dir: Option<PathBuf>,
    /// v1 `tasks` files the new process writes `0` into, with "best effort" (name=… hierarchies).
    pub v1_tasks: Vec<(PathBuf, bool)>,
    /// The runtime puts the new process into its cgroup after the clone
    /// ([`CgroupManager::add_init`]): the systemd driver's unit is made with the init's pid.
    pub runtime_adds: bool,
}

impl JoinPlan {
    /// The cgroup2 directory opened for `clone3(CLONE_INTO_CGROUP)`, when there is one.
    pub fn open_v2_dir(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        use std::os::unix::fs::OpenOptionsExt;
        self.v2_dir
            .as_ref()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY)
                    .open(d)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|e| CgroupError::io(d, e))
            })
            .transpose()
    }

    /// Whether the runtime must still add the new process to its cgroups: the process could not
    /// move itself into every v1 hierarchy (`joined`, from [`self_join`]) or the clone did not
    /// place it into the cgroup2 directory (`into_v2`).
    pub fn runtime_must_add(&self, joined: bool, into_v2: bool) -> bool {
        self.runtime_adds || !joined || (self.v2_dir.is_some() && !into_v2)
    }

    /// The plan without the v1 hierarchies whose container directory is one of `dirs` (those
    /// that could not be made).
    pub fn without(&self, dirs: &[PathBuf]) -> JoinPlan {
        let mut p = self.clone();
        p.v1_tasks
            .retain(|(t, _)| !dirs.iter().any(|d| t.parent() == Some(d.as_path())));
        p
    }
}

pub fn join_plan(st: &CgroupState) -> JoinPlan {
    let mut p = JoinPlan::default();
    for h in &st.hierarchies {
        if h.is_v2() {
            p.v2_dir = Some(h.dir.clone());
        } else {
            p.v1_tasks.push((h.dir.join("tasks"), h.best_effort()));
        }
    }
    p
}

/// Run by the new (single-threaded) process itself: moves it into every v1 hierarchy.
pub fn self_join(p: &JoinPlan) -> std::io::Result<()> {
    for (tasks, best_effort) in &p.v1_tasks {
        match std::fs::write(tasks, b"0") {
            Err(_) if *best_effort => {}
            r => r?,
        }
    }
    Ok(())
}

/// The directories `create` will make for the container described by `st` (those missing now,
/// parents first). Recorded before `create` so that a runtime killed in the middle of it leaves
/// a state `delete --force` can clean.
pub fn planned_dirs(st: &CgroupState) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if st.systemd.is_some() {
        // systemd makes (and removes) the unit's directory.
        return out;
    }
    for h in &st.hierarchies {
        let mut missing = Vec::new();
        let mut d = h.dir.as_path();
        while d.starts_with(&h.mount_point) && d != h.mount_point && !d.exists() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        for m in missing.into_iter().rev() {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// One container's cgroup(s), whatever the host's cgroup layout.
pub trait CgroupManager {
    /// Creates the cgroup directories (recording which ones it created) and applies `resources`
    /// (`None` applies runc's default device allowlist only). On failure everything it created
    /// is removed again.
    /// The systemd driver: the unit properties the spec's `org.systemd.property.<Name>`
    /// annotations ask for (checked now, sent when the unit is started). Other drivers ignore
    /// them, as runc does.
    fn unit_properties_from(
        &mut self,
        _annotations: &std::collections::HashMap<String, String>,
    ) -> Result<()> {
        Ok(())
    }
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()>;
    /// v1 and hybrid hosts: makes what the init must be cloned into now — the cgroup2
    /// directory of a hybrid host (for `CLONE_INTO_CGROUP`), nothing on pure v1 — so that
    /// [`create`](Self::create), called after the clone, makes the v1 directories while the
    /// init creates its namespaces. Recorded like `create`'s own directories. False (nothing
    /// done) where this split does not apply: pure v2, rootless, or the directory could not be
    /// made (then `create` before the clone reports why).
    fn create_clone_target(&mut self) -> bool {
        false
    }
    /// Moves `pid` into the cgroup(s) (container init on v1/hybrid, every `exec`'d process).
    fn add_task(&self, pid: i32) -> Result<()>;
    /// How the container's init gets into its cgroup (`create`).
    fn init_join_plan(&self) -> JoinPlan {
        join_plan(&self.state())
    }
    /// Puts the container's init into its cgroup when the clone could not
    /// ([`JoinPlan::runtime_must_add`]); the systemd driver starts its unit here.
    fn add_init(&mut self, pid: i32) -> Result<()> {
        self.add_task(pid)
    }
    /// Applies resources to an existing cgroup (`update`).
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Every pid in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    /// Removes the directories this container created, waiting (bounded, ~1 s) for them to empty.
    fn destroy(&self) -> Result<()>;
    /// What to persist in state.json.
    fn state(&self) -> CgroupState;

    /// Removes the directories this container created if no process is left in them (one
    /// `rmdir` each, no waiting); false as soon as one is still in use.
    fn destroy_if_empty(&self) -> bool {
        false
    }
    /// SIGKILLs whatever is still in the cgroup, then [`destroy`](Self::destroy)s it
    /// (`delete --force`, or cleaning up after a failed `create`). The common case, a container
    /// whose processes are gone already (a PID namespace dies with its init), costs one `rmdir`
    /// per directory: the kill (freeze, list, signal, thaw) only runs when one is busy.
    fn destroy_force(&self) -> Result<()> {
        if self.destroy_if_empty() {
            return Ok(());
        }
        self.kill_all(Signal::SIGKILL)?;
        self.destroy()
    }
    /// Sends `signal` to every process in the cgroup (`kill --all`). SIGKILL on v2 uses
    /// `cgroup.kill`; otherwise the cgroup is frozen while the pids are listed and signalled so
    /// no new process escapes, then thawed (a paused container stays paused unless SIGKILLed).
    fn kill_all(&self, signal: Signal) -> Result<()> {
        kill::signal_pids(&self.pids()?, signal)
    }
    /// Statistics for `events` in runc's schema.
    fn stats(&self) -> Result<Stats> {
        Err(CgroupError::unsupported(
            "statistics",
            "this cgroup manager has none",
        ))
    }
    /// A pollable source of OOM events for `events` (see [`OomEvents`]).
    fn oom_events(&self) -> Result<OomEvents> {
        Err(CgroupError::unsupported(
            "OOM notifications",
            "this cgroup manager has none",
        ))
    }
    /// The host layout this manager drives.
    fn mode(&self) -> CgroupMode {
        self.state().mode
    }
    /// Pure cgroup v2?
    fn is_v2(&self) -> bool {
        self.mode() == CgroupMode::V2
    }
    /// On pure v2: an `O_DIRECTORY` fd of the container's cgroup for clone3's
    /// `CLONE_INTO_CGROUP`; `None` on v1/hybrid (use `add_task` there).
    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
    /// What the rootfs code mounts at /sys/fs/cgroup inside the container (see [`mounts`]).
    fn mounts(&self) -> Vec<CgroupMount> {
        mounts::for_state(&self.state())
    }
}

/// Builds the manager for a new container from `linux.cgroupsPath` (None: the default path),
/// probing the host layout.
pub fn new_manager(
    cgroups_path: Option<&str>,
    id: &str,
    opts: &CgroupOptions,
) -> Result<Box<dyn CgroupManager>> {
    if opts.systemd {
        let layout = Layout::detect()?;
        let st = systemd::new_state(cgroups_path, id, opts, &layout)?;
        return Ok(Box::new(systemd::Manager::new(st, opts.clone())));
    }
    let path = CgroupPath::parse(cgroups_path, id, opts)?;
    let layout = Layout::detect()?;
    new_manager_in(&layout, &path, opts)
}

/// Builds the manager for a given layout (tests use fake trees this way).
pub fn new_manager_in(
    layout: &Layout,
    path: &CgroupPath,
    opts: &CgroupOptions,
) -> Result<Box<dyn CgroupManager>> {
    let own = if path.is_relative() {
        Some(detect::OwnCgroups::read()?)
    } else {
        None
    };
    let st = resolve(layout, path, own.as_ref())?;
    Ok(from_resolved(st, opts))
}

/// Rebuilds the manager of an existing container.
pub fn from_state(st: &CgroupState, opts: &CgroupOptions) -> Result<Box<dyn CgroupManager>> {
    if st.hierarchies.is_empty() && !opts.rootless {
        // A state from before directories were recorded: resolve the path again. (Rootless
        // containers that could not create a cgroup have none on purpose.)
        let path = if st.path.starts_with('/') {
            CgroupPath::Absolute(path::clean(&st.path))
        } else {
            CgroupPath::parse(Some(&st.path), "", &CgroupOptions::default())?
        };
        let layout = Layout::detect()?;
        return new_manager_in(&layout, &path, opts);
    }
    Ok(from_resolved(st.clone(), opts))
}

fn from_resolved(st: CgroupState, opts: &CgroupOptions) -> Box<dyn CgroupManager> {
    if st.systemd.is_some() {
        return Box::new(systemd::Manager::new(st, opts.clone()));
    }
    match st.mode {
        CgroupMode::V2 => Box::new(v2::Manager::new(st, opts.clone())),
        CgroupMode::V1 | CgroupMode::Hybrid => Box::new(v1::Manager::new(st, opts.clone())),
    }
}

/// Where the container's cgroup goes in every hierarchy of `layout`.
pub fn resolve(
    layout: &Layout,
    path: &CgroupPath,
    own: Option<&detect::OwnCgroups>,
) -> Result<CgroupState> {
    let mut hierarchies = Vec::new();
    for m in &layout.v1 {
        // Named hierarchies other than name=systemd are someone else's business (runc joins
        // only name=systemd).
        if m.controllers.iter().any(|c| c.starts_with("name="))
            && !m.controllers.iter().any(|c| c == "name=systemd")
        {
            continue;
        }
        let own_path = own.and_then(|o| o.v1_path(&m.controllers));
        let dir = path.host_dir(&m.mount_point, &m.root, own_path, false)?;
        hierarchies.push(Hierarchy {
            controllers: m.controllers.join(","),
            mount_point: m.mount_point.clone(),
            dir,
            noprefix: m.noprefix,
        });
    }
    if let Some(u) = &layout.v2 {
        let own_path = own.and_then(|o| o.v2_path());
        let own_parent = layout.mode == CgroupMode::V2;
        let dir = path.host_dir(&u.mount_point, &u.root, own_path, own_parent)?;
        hierarchies.push(Hierarchy {
            controllers: String::new(),
            mount_point: u.mount_point.clone(),
            dir,
            noprefix: false,
        });
    }
    Ok(CgroupState {
        path: path.as_str().to_string(),
        mode: layout.mode,
        hierarchies,
        created: Vec::new(),
        systemd: None,
    })
}
