//! The runtime side of `create`: everything is validated first (including how the id maps will
//! be written and whether /etc/subuid allows them), then the state dir, fifo and cgroup are
//! made, the init is cloned (one clone
//! with all new namespaces when nothing has to be joined and there is no time namespace), and the
//! two sides follow a fixed sequence:
//!
//! ```text
//! runtime                                   init
//! clone ──────────────────────────────────▶ (two-step only: join namespaces,
//!   ◀── UserNsReady(pid) / MappingsDone ──▶  unshare user ns, unshare the rest,
//!                                            write time offsets, setresuid 0,
//!   ◀── InitPid(pid) ──────────────────────  fork into new PID/time ns)
//! write id maps, cgroup add, state.json
//! Go(host pid) ───────────────────────────▶ non-dumpable, cgroupns, mounts
//!   ◀── MountSourcePlease(i) ──────────────  (any number: a source the init cannot open,
//! open it in the init's mount ns (helper)     or an idmapped one; see rootfs::sources)
//! MountSource + fd ───────────────────────▶
//!   ◀── HooksRequest ──────────────────────
//! prestart + createRuntime hooks
//! HooksDone ──────────────────────────────▶ createContainer hooks, pivot_root, console,
//!                                           sysctl, paths, rlimits, caps, user
//!   ◀── Ready ─────────────────────────────  then blocks opening exec.fifo
//! pid file; exit (init is re-parented)
//! ```
//!
//! Every init first moves itself into its v1 cgroups (a `tasks` write each) and says
//! `Joined(ok)`. On v1/hybrid hosts without a user namespace the cgroup work is split around the
//! clone, so that the slowest parts of the two sides overlap:
//!
//! ```text
//! runtime                                   init
//! state.json, cgroup2 dir (hybrid)
//! clone (new PID ns only, into cgroup2) ──▶ unshare net, mount, uts, ipc (~1 ms)
//! v1 dirs + resources
//! CgroupsMade(missing) ───────────────────▶ join the v1 cgroups
//!   ◀── Joined(ok) ────────────────────────  cgroupns, mounts …
//! ```
//!
//! Id maps ([`crate::userns::MapPlan`]) are written by the runtime while the init waits: right
//! after the single clone (the init waits for `Go`), or between `UserNsReady` and `MappingsDone`.
//! Writing them directly needs the init's /proc files to belong to the runtime's user, so an
//! init in a new user namespace is dumpable exactly while an unprivileged runtime writes them;
//! newuidmap/newgidmap are run for ranges beyond the runtime's own id.
//!
//! Any failure kills the init and removes the cgroup and state dir: the host is left as if the
//! create had never been attempted.

use super::init::{self, InitConfig};
use super::sync::{self, Msg};
use crate::capabilities::{self, CapSets};
use crate::cgroups::{self, CgroupManager, CgroupOptions};
use crate::container::{OciState, Status};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::logging;
use crate::namespaces;
use crate::seccomp;
use crate::spec::Bundle;
use crate::state::{ContainerDir, Root, State};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

pub struct CreateOpts<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub root: &'a Root,
    /// Connected console socket.
    pub console: Option<OwnedFd>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// sd_notify requested: make the state dir's `notify` directory (see `crate::notify`).
    pub notify: bool,
    /// The caller starts the container as soon as this returns (`run` with nothing to set up
    /// in between: no terminal, no sd_notify socket). With a single clone (the init is our
    /// child) the exec fifo's read side is opened right after the clone, so the init's open of
    /// its write side does not block: it goes on to exec without waiting for the start
    /// handshake. Handed to `start_container` in [`Created::early_start`].
    pub start_now: bool,
    pub cgroup_opts: CgroupOptions,
}

/// A created container: its locked state dir and state. `direct_child` is true when the init
/// is a child of this process (the caller may wait for it).
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    pub direct_child: bool,
    /// `start_now`: what `start_container` needs, opened early.
    pub early_start: Option<EarlyStart>,
}

/// The exec fifo's read side and a pidfd of the init, both opened right after the clone: by
/// the time `start` runs, the init may have exec'd and even exited (a zombie until its parent,
/// this process, reaps it), which the pidfd still refers to.
pub struct EarlyStart {
    pub fifo: OwnedFd,
    pub pidfd: OwnedFd,
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    crate::userns::user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// Things prepared before the host is touched.
struct Prepared {
    plan: namespaces::Plan,
    /// How the id maps of a new user namespace get written (checked against /etc/subuid).
    maps: crate::userns::MapPlan,
    caps: Option<CapSets>,
    seccomp: Option<seccomp::CompiledFilter>,
    /// `linux.netDevices`, checked (names, namespace, devices present).
    net_devices: Vec<crate::netdev::Device>,
}

fn prepare(b: &Bundle) -> Result<Prepared> {
    let spec = &b.spec;
    let plan = namespaces::plan(spec)?;
    if !nix::unistd::geteuid().is_root() && !plan.has(LinuxNamespaceType::User) {
        return Err(Error::config(
            "linux.namespaces: a rootless container needs a user namespace (add {\"type\": \"user\"}; \
             `rruntime spec --rootless` writes such a config)",
        ));
    }
    let maps = if plan.has_new(LinuxNamespaceType::User) {
        crate::userns::MapPlan::new(spec, &crate::userns::Caller::current())?
    } else {
        crate::userns::MapPlan::default()
    };
    let caps = match spec.process() {
        Some(p) => capabilities::of_process(p)?,
        None => None,
    };
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    crate::rootfs::rootfs_propagation(spec)?;
    super::attrs::check_intel_rdt(spec)?;
    // (The idmapped trees themselves are made when the init asks for them.)
    crate::rootfs::idmap::check(spec, &plan)?;
    let wants_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty());
    let net_devices = if wants_devices {
        crate::netdev::plan(
            spec,
            plan.has(LinuxNamespaceType::Network),
            !nix::unistd::geteuid().is_root(),
        )?
    } else {
        Vec::new()
    };
    Ok(Prepared {
        plan,
        maps,
        caps,
        seccomp,
        net_devices,
    })
}

/// Creates the container; on success the init waits on the exec fifo.
pub fn create(o: CreateOpts) -> Result<Created> {
    let prep = prepare(o.bundle)?;
    logging::phase("parse+validate");
    let dir = o.root.create_container(o.id)?;
    let mut cg: Option<Box<dyn CgroupManager>> = None;
    let mut pids = Spawned::default();
    let mut early_start = None;
    let mut net_moved = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        create_inner(
            &o,
            &prep,
            &dir,
            &mut cg,
            &mut pids,
            &mut early_start,
            &mut net_moved,
        )
    }))
    .unwrap_or_else(|_| {
        Err(Error::msg(
            "internal error during create (panic); cleaned up",
        ))
    });
    match r {
        Ok((state, direct_child)) => Ok(Created {
            dir,
            state,
            direct_child,
            early_start,
        }),
        Err(e) => {
            // Devices go back while the container's network namespace still exists.
            if let Some(m) = net_moved {
                m.undo();
            }
            pids.kill_and_reap();
            if let Some(cg) = cg {
                if let Err(ce) = cg.destroy_force() {
                    logging::warn(format!("cleanup after failed create: {ce}"));
                }
            }
            if let Err(de) = dir.remove() {
                logging::warn(format!("cleanup after failed create: {de}"));
            }
            Err(e)
        }
    }
}

#[derive(Default)]
struct Spawned {
    /// Our direct child (the init, or the intermediate of a two-step spawn).
    child: Option<i32>,
    /// The init when it is not our child.
    init: Option<i32>,
}

impl Spawned {
    fn kill_and_reap(&self) {
        for pid in [self.init, self.child].into_iter().flatten() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(c) = self.child {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(c), None);
        }
    }
}

fn create_inner(
    o: &CreateOpts,
    prep: &Prepared,
    dir: &ContainerDir,
    cg_slot: &mut Option<Box<dyn CgroupManager>>,
    spawned: &mut Spawned,
    early_start: &mut Option<EarlyStart>,
    net_moved: &mut Option<crate::netdev::Moved>,
) -> Result<(State, bool)> {
    let b = o.bundle;
    let spec = &b.spec;
    let linux = spec.linux().as_ref();
    if o.notify {
        let d = dir.path.join(crate::notify::STATE_SUBDIR);
        std::fs::create_dir(&d).ctx(|| format!("create {}", d.display()))?;
    }
    let state_dir = dir.open_path_fd()?;

    let cgroups_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let mut cg = cgroups::new_manager(cgroups_path.as_deref(), o.id, &o.cgroup_opts)?;
    if let Some(a) = spec.annotations() {
        cg.unit_properties_from(a)?;
    }
    // Before anything is made: a cgroup that holds processes or is frozen is refused (runc).
    cgroups::check_new_container_cgroup(&cg.state())?;
    // runc's device rules: the spec's, then the default allowlist (minus devices the spec
    // defines itself).
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let spec_devices: Vec<&Path> = linux
        .and_then(|l| l.devices().as_ref())
        .map(|d| d.iter().map(|d| d.path().as_path()).collect())
        .unwrap_or_default();
    resources.set_devices(Some(cgroups::devices::runc_rules(
        resources.devices().as_deref(),
        spec_devices,
    )));

    // Recorded before anything is created on the host: a runtime killed from here on leaves a
    // state.json from which `delete --force` removes what was made.
    let annotations = spec.annotations().clone().unwrap_or_default();
    let annotations_json = serde_json::to_string(&annotations).unwrap_or_else(|_| "{}".to_string());
    let me = nix::unistd::getpid().as_raw();
    let mut planned = cg.state();
    planned.created = cgroups::planned_dirs(&planned);
    let mut state = State {
        id: o.id.to_string(),
        pid: 0,
        pid_start: 0,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: crate::time::rfc3339_nanos(std::time::SystemTime::now()),
        owner: owner_name(),
        annotations,
        cgroup: planned,
        config: spec.clone(),
        host_mounts: if prep.plan.has(LinuxNamespaceType::Mount) {
            Vec::new()
        } else {
            host_mount_targets(b)
        },
        rootless: o.cgroup_opts.rootless,
        creator: crate::state::pid_start_time(me).map(|s| (me, s)),
    };
    dir.save(&state)?;
    logging::phase("state");

    let plan = &prep.plan;
    let newtime = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    let two_step = !plan.join.is_empty() || plan.new.contains(newtime);
    // The common case splits the work across the clone: the clone makes only the PID namespace
    // (and places the init into a hybrid host's cgroup2 directory), then the init creates its
    // other namespaces — a network namespace takes about a millisecond — while the runtime
    // makes the v1 cgroup directories.
    let late = !two_step && !plan.has_new(LinuxNamespaceType::User) && cg.create_clone_target();
    // From here a failure destroys the cgroup (the error path of `create`); a `create` that
    // fails has removed what it made itself.
    let cg = if late {
        cg_slot.insert(cg)
    } else {
        cg.create(Some(&resources))?;
        let cg = cg_slot.insert(cg);
        let made = cg.state();
        if o.cgroup_opts.rootless {
            // The planned hierarchies against those the rootless user could create.
            rootless_cgroup_check(&state.cgroup.hierarchies, &made.hierarchies, &resources)?;
        }
        state.cgroup = made;
        own_container_dirs(&mut state.cgroup, &o.cgroup_opts);
        logging::phase("cgroup");
        cg
    };
    // (Late: the planned hierarchies; a best-effort one that cannot be made is dropped from the
    // init's join plan and mounts with `CgroupsMade`.)
    let cgroup_mounts = cg.mounts();

    let (parent_ch, child_ch) = sync::pair()?;
    let join = cg.init_join_plan();
    let v2_fd = join.open_v2_dir()?;
    let cfg = InitConfig {
        id: o.id,
        spec,
        bundle: &b.dir,
        rootfs: &b.rootfs,
        plan,
        state_dir: state_dir.as_raw_fd(),
        console: o.console.as_ref().map(|c| c.as_raw_fd()),
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: o.preserve_fds,
        seccomp: prep.seccomp.as_ref(),
        caps: prep.caps.as_ref(),
        two_step,
        annotations_json: &annotations_json,
        cgroup_mounts: &cgroup_mounts,
        close_now: [o.root.fd().as_raw_fd(), dir.fd().as_raw_fd()],
        cgroup_join: &join,
        unshare: if late {
            plan.new - CloneFlags::CLONE_NEWCGROUP - CloneFlags::CLONE_NEWPID
        } else {
            CloneFlags::empty()
        },
        late_cgroups: late,
        rootless: !nix::unistd::geteuid().is_root(),
    };
    let clone_flags = if two_step {
        CloneFlags::empty()
    } else if late {
        plan.new & CloneFlags::CLONE_NEWPID
    } else {
        plan.new - CloneFlags::CLONE_NEWCGROUP
    };
    // SAFETY: single-threaded; the child only runs init::run and never returns.
    let (pid, into_v2) =
        unsafe { super::clone::clone_child(clone_flags, v2_fd.as_ref().map(|f| f.as_fd())) }
            .map_err(|e| Error::Sys {
                ctx: format!("clone with namespaces {clone_flags:?}"),
                source: e,
            })?;
    if pid == 0 {
        drop(parent_ch);
        init::run(&cfg, child_ch, into_v2);
    }
    drop(child_ch);
    spawned.child = Some(pid);
    // The exec fifo is made while the init sets itself up (it opens it last), but before its
    // pid is recorded: a recorded pid without the fifo reads as `running`.
    dir.make_fifo()?;
    if o.start_now && !two_step {
        // After the clone: the init must not hold a read side itself.
        *early_start = Some(EarlyStart {
            fifo: dir.open_fifo_reader()?,
            pidfd: super::pidfd_open(pid)
                .ok_or_else(|| Error::msg("pidfd_open of the container init failed"))?,
        });
    }
    logging::phase("clone");
    if late {
        cg.create(Some(&resources))?;
        let made = cg.state();
        let missing = state
            .cgroup
            .hierarchies
            .iter()
            .filter(|h| !made.hierarchies.iter().any(|m| m.dir == h.dir))
            .map(|h| h.dir.clone())
            .collect();
        state.cgroup = made;
        own_container_dirs(&mut state.cgroup, &o.cgroup_opts);
        parent_ch.send(&Msg::CgroupsMade(missing))?;
        logging::phase("cgroup");
    }
    // Records the init's pid (and start time) in state.json.
    let record_init = |state: &mut State, pid: i32| -> Result<()> {
        state.pid = pid;
        state.pid_start = crate::container::start_time_of(pid)?;
        state.creator = None;
        dir.save(state)
    };
    if !two_step {
        // The cloned child is the init: record its pid now, while it joins its cgroups and
        // (see init::main) builds its rootfs.
        record_init(&mut state, pid)?;
    }
    // The child moved itself into the v1 hierarchies (or says it could not).
    let joined = match parent_ch.recv()? {
        Some(Msg::Joined(ok)) => ok,
        Some(Msg::Error(e)) => return Err(Error::Msg(e)),
        Some(m) => return Err(Error::msg(format!("sync: unexpected {m:?}"))),
        None => {
            return Err(Error::msg(
                "container init exited before joining its cgroup",
            ))
        }
    };
    let need_add_task = join.runtime_must_add(joined, into_v2);

    let init_pid = if two_step {
        let init_pid = loop {
            match parent_ch.recv()? {
                Some(Msg::UserNsReady(p)) => {
                    prep.maps.write(p)?;
                    parent_ch.send(&Msg::MappingsDone)?;
                }
                Some(Msg::InitPid(p)) => break p,
                Some(Msg::Error(e)) => return Err(Error::Msg(e)),
                Some(m) => return Err(Error::msg(format!("sync: unexpected {m:?}"))),
                None => return Err(Error::msg("container init exited during namespace setup")),
            }
        };
        if init_pid != pid {
            spawned.init = Some(init_pid);
            // Reap the intermediate; the init is re-parented to our subreaper (or pid 1).
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            spawned.child = None;
        }
        init_pid
    } else {
        if plan.has_new(LinuxNamespaceType::User) {
            // The init waits for Go (and stays dumpable until then, so that an unprivileged
            // runtime may write its /proc files).
            prep.maps.write(pid)?;
        }
        pid
    };
    if need_add_task {
        // (The systemd driver starts its unit here, with the init's pid.)
        cg.add_init(init_pid)?;
    }
    if two_step {
        record_init(&mut state, init_pid)?;
    }
    logging::phase("state+pid");
    // The init is in its final network namespace (made or joined) by now, and no hook has
    // run yet (runc moves the devices at this point too).
    if !prep.net_devices.is_empty() {
        *net_moved = crate::netdev::move_into(&prep.net_devices, init_pid)?;
        logging::phase("netDevices");
    }
    if let Err(e) = parent_ch.send(&Msg::Go(init_pid)) {
        // An init that failed while building its rootfs has said why and exited.
        return Err(match parent_ch.recv() {
            Ok(Some(Msg::Error(m))) => Error::Msg(m),
            _ => e,
        });
    }

    let mut sources = crate::rootfs::sources::SourceOpener::new(spec, &b.dir, plan);
    loop {
        let (msg, fd) = match parent_ch.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::SeccompListener) => {
                let fd = fd.ok_or_else(|| Error::msg("sync: seccomp listener without fd"))?;
                forward_listener(fd, &state, Status::Creating)?;
            }
            Some(Msg::HooksRequest) => {
                // runtime-tools and crun give these hooks the state "created".
                let st = serde_json::to_string(&OciState::new(&state, Status::Created))
                    .unwrap_or_default();
                let h = spec.hooks().as_ref();
                #[allow(deprecated)]
                hooks::run_all(
                    "prestart",
                    h.and_then(|h| h.prestart().as_ref()),
                    &st,
                    Some(&b.dir),
                )?;
                hooks::run_all(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &st,
                    Some(&b.dir),
                )?;
                parent_ch.send(&Msg::HooksDone)?;
            }
            Some(Msg::MountSourcePlease(i)) => {
                let src = sources.open(init_pid, i)?;
                parent_ch.send_fd(&Msg::MountSource, src.as_fd())?;
            }
            Some(Msg::Ready) => break,
            Some(Msg::Error(e)) => return Err(Error::Msg(e)),
            Some(m) => return Err(Error::msg(format!("sync: unexpected {m:?}"))),
            None => return Err(Error::msg("container init exited before it was ready")),
        }
    }
    logging::phase("init ready");
    if let Some(p) = o.pid_file {
        crate::state::write_pid_file(p, init_pid)?;
    }
    Ok((state, spawned.init.is_none()))
}

/// The container's own cgroup directory belongs to the container even when the caller made it
/// before `create` (pods and callers pre-create it): `delete` removes it, as runc does. Parents
/// that already existed stay. (The systemd driver's units are systemd's to remove.)
fn own_container_dirs(st: &mut cgroups::CgroupState, opts: &CgroupOptions) {
    if opts.systemd {
        return;
    }
    for h in &st.hierarchies {
        if !st.created.contains(&h.dir) {
            st.created.push(h.dir.clone());
        }
    }
}

/// Rootless: hierarchies the user may not write are skipped (runc's `--rootless auto`), with a
/// warning; but limits the config asks for must not be dropped silently.
fn rootless_cgroup_check(
    wanted: &[cgroups::Hierarchy],
    got: &[cgroups::Hierarchy],
    resources: &oci_spec::runtime::LinuxResources,
) -> Result<()> {
    // (Named v1 hierarchies such as name=systemd are joined best-effort anyway.)
    let skipped: Vec<String> = wanted
        .iter()
        .filter(|w| !w.controllers.starts_with("name=") && !got.iter().any(|g| g.dir == w.dir))
        .map(|w| w.dir.display().to_string())
        .collect();
    if skipped.is_empty() {
        return Ok(());
    }
    let limits = requested_limits(resources);
    if !limits.is_empty() {
        return Err(Error::config(format!(
            "linux.resources: cannot apply {} limits: the rootless runtime may not create \
             cgroup {} (permission denied)",
            limits.join(", "),
            skipped[0]
        )));
    }
    let more = match skipped.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    logging::warn(format!(
        "rootless: no permission to create cgroup {}{more}; running without it",
        skipped[0]
    ));
    Ok(())
}

/// The `linux.resources` sections that set something, other than device rules (those are
/// never applied rootless).
fn requested_limits(r: &oci_spec::runtime::LinuxResources) -> Vec<String> {
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(r) else {
        return Vec::new();
    };
    let set = |v: &serde_json::Value| match v {
        serde_json::Value::Null => false,
        serde_json::Value::Object(o) => o.values().any(|x| !x.is_null()),
        serde_json::Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    m.iter()
        .filter(|(k, v)| k.as_str() != "devices" && set(v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Without a mount namespace the init mounts into the host's namespace; remember the
/// targets so `delete` can unmount them.
fn host_mount_targets(b: &Bundle) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for m in b.spec.mounts().iter().flatten() {
        v.push(
            b.rootfs
                .join(crate::rootfs::safe_path::clean(m.destination())),
        );
    }
    if let Some(l) = b.spec.linux() {
        for p in l
            .masked_paths()
            .iter()
            .flatten()
            .chain(l.readonly_paths().iter().flatten())
        {
            v.push(b.rootfs.join(crate::rootfs::safe_path::clean(Path::new(p))));
        }
    }
    v
}

/// Hands a seccomp NOTIFY listener to the agent at `linux.seccomp.listenerPath`, with the
/// container process state runc sends.
pub fn forward_listener(fd: OwnedFd, st: &State, status: Status) -> Result<()> {
    use std::os::fd::AsFd;
    let Some(sc) = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    else {
        return Ok(());
    };
    let Some(path) = sc.listener_path() else {
        return Ok(());
    };
    let oci: oci_spec::runtime::State =
        serde_json::from_value(serde_json::to_value(OciState::new(st, status)).unwrap_or_default())
            .map_err(|e| Error::msg(format!("seccomp agent state: {e}")))?;
    let ps = seccomp::container_process_state(st.pid, sc.listener_metadata().as_deref(), &oci);
    seccomp::send_listener(path, fd.as_fd(), &ps)?;
    Ok(())
}
