//! The container init: the child side of `create`, from the clone to the execve of
//! `process.args`. It runs in the cloned process (or in the grandchild, when an existing PID or
//! time namespace has to be entered) and talks to the runtime over the sync channel.

use super::setup;
use super::sync::{Channel, Msg};
use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces::Plan;
use crate::rootfs::{self, RootfsConfig};
use crate::seccomp::CompiledFilter;
use crate::tty;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;

/// Everything the init needs, prepared (and validated) by the runtime before cloning.
pub struct InitConfig<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    /// O_PATH fd of the container's state dir: the init opens exec.fifo through it.
    pub state_dir: RawFd,
    /// Connected console socket (terminal: true with --console-socket, or `run`'s own).
    pub console: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a CompiledFilter>,
    pub caps: Option<&'a CapSets>,
    /// Whether the init must first join namespaces / fork into new PID or time namespaces.
    pub two_step: bool,
    pub annotations_json: &'a str,
    /// Runtime fds the init must close at once: the state root and the locked container dir
    /// (an inherited copy would hold the container's lock for the init's whole life).
    pub close_now: [RawFd; 2],
    /// The cgroups the init moves itself into first thing.
    pub cgroup_join: &'a crate::cgroups::JoinPlan,
    /// Namespaces the init creates itself (unshare) right after the clone: the clone then only
    /// makes the PID namespace, and the runtime makes the v1 cgroup directories meanwhile
    /// (`late_cgroups`), instead of both waiting for a new network namespace in turn.
    pub unshare: CloneFlags,
    /// The runtime makes (some of) the cgroup directories after the clone: wait for
    /// `CgroupsMade` before joining them.
    pub late_cgroups: bool,
    /// The container's cgroup directories on the host (for `cgroup` mounts).
    pub cgroup_mounts: &'a [crate::cgroups::CgroupMount],
    /// The runtime is unprivileged: it can write the init's /proc files (id maps, setgroups)
    /// only while the init is dumpable.
    pub rootless: bool,
}

/// Entry point of the cloned child. Never returns.
/// `into_v2`: the clone placed the child into its cgroup2 directory (CLONE_INTO_CGROUP).
pub fn run(cfg: &InitConfig, chan: Channel, into_v2: bool) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main(cfg, &chan, into_v2)));
    let msg = match r {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e.to_string(),
        Err(_) => "container init panicked".to_string(),
    };
    let _ = chan.send(&Msg::Error(msg));
    // SAFETY: terminate the child without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

enum Never {}

fn main(cfg: &InitConfig, chan: &Channel, into_v2: bool) -> Result<Never> {
    for fd in cfg.close_now {
        // SAFETY: these fds belong to the runtime's copy of its state; the init has no use for
        // them.
        unsafe { libc::close(fd) };
    }
    let plan = cfg.plan;
    // The time offsets file is opened now, while /proc/self is still ours (a non-dumpable
    // process's /proc files belong to root, and after setresuid in a user namespace not even
    // its root can open them); the write itself is checked against the opener's credentials.
    let timens_offsets = if plan.has_new(LinuxNamespaceType::Time) {
        Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/self/timens_offsets")
                .ctx(|| "linux.timeOffsets: open /proc/self/timens_offsets")?,
        )
    } else {
        None
    };
    // The init must not be ptrace-able or expose the runtime binary through /proc/<pid>/exe to
    // anything in the container until execve replaces it (CVE-2019-5736 class). One exception:
    // a single-clone init in a new user namespace stays dumpable until `Go`, so that the
    // runtime can write its id maps even unprivileged; nothing else lives in its namespaces
    // yet, and only the runtime's own user could attach to it.
    let late_nondumpable = !cfg.two_step && plan.has_new(LinuxNamespaceType::User);
    if !late_nondumpable {
        set_dumpable(false);
    }
    if !cfg.unshare.is_empty() {
        nix::sched::unshare(cfg.unshare).ctx(|| format!("unshare {:?}", cfg.unshare))?;
    }
    let mut late_join = None;
    let mut late_mounts = None;
    if cfg.late_cgroups {
        let missing = match chan.recv()? {
            Some(Msg::CgroupsMade(m)) => m,
            Some(Msg::Error(e)) => return Err(Error::Msg(e)),
            other => {
                return Err(Error::msg(format!(
                    "sync: expected CgroupsMade, got {other:?}"
                )))
            }
        };
        if !missing.is_empty() {
            late_join = Some(cfg.cgroup_join.without(&missing));
            late_mounts = Some(
                cfg.cgroup_mounts
                    .iter()
                    .filter(|c| !missing.contains(&c.host_dir))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    let cgroup_join = late_join.as_ref().unwrap_or(cfg.cgroup_join);
    let cgroup_mounts = late_mounts.as_deref().unwrap_or(cfg.cgroup_mounts);
    let joined = crate::cgroups::self_join(cgroup_join).is_ok();
    chan.send(&Msg::Joined(joined))?;
    crate::logging::phase("init: joined");
    if cfg.two_step {
        enter_namespaces(cfg, chan, timens_offsets)?;
    } else {
        // SAFETY: prctl with integer arguments.
        // (If the runtime died before this, the channel is closed and `recv` below fails.)
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    let userns = plan.has(LinuxNamespaceType::User);
    // The common case needs nothing more from the runtime before the rootfs is built: it is in
    // all its cgroups, no user namespace waits for id maps. The init then builds its rootfs
    // while the runtime records its pid, and waits for `Go` only before hooks run (they get
    // the pid) — two things at once instead of one after the other. Should the runtime die
    // meanwhile, PDEATHSIG kills the init, and its mounts go with its mount namespace.
    let early = !cfg.two_step && !userns && !cgroup_join.runtime_must_add(joined, into_v2);
    let wait_go = || -> Result<i32> {
        match chan.recv()? {
            Some(Msg::Go(pid)) => Ok(pid),
            Some(Msg::Error(e)) => Err(Error::Msg(e)),
            other => Err(Error::msg(format!("sync: expected Go, got {other:?}"))),
        }
    };
    let mut host_pid = None;
    if !early {
        host_pid = Some(wait_go()?);
    }
    if late_nondumpable {
        set_dumpable(false);
    }
    if userns {
        // Become root of the (new or joined) user namespace.
        become_root()?;
    }
    if plan.has_new(LinuxNamespaceType::Cgroup) {
        // After the runtime put us in our cgroup: that cgroup becomes the namespace root.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
    }
    nix::unistd::setsid().ctx(|| "setsid")?;
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(0) };

    let spec = cfg.spec;
    let process = spec.process().as_ref();
    if let Some(adj) = process.and_then(|p| p.oom_score_adj()) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: set {adj}"))?;
    }
    let mntns = plan.has(LinuxNamespaceType::Mount);
    // A `Go` that arrives while the init waits for a mount source (the runtime sends it
    // without waiting when the init builds its rootfs early) is kept for `wait_go` below.
    let early_go = std::cell::Cell::new(None);
    let request_source = |i: usize| -> Result<std::os::fd::OwnedFd> {
        chan.send(&Msg::MountSourcePlease(i))?;
        loop {
            match chan.recv_with_fd()? {
                Some((Msg::MountSource, Some(fd))) => return Ok(fd),
                Some((Msg::Go(pid), _)) => early_go.set(Some(pid)),
                Some((Msg::Error(e), _)) => return Err(Error::Msg(e)),
                other => {
                    return Err(Error::msg(format!(
                        "sync: expected MountSource, got {:?}",
                        other.map(|(m, _)| m)
                    )))
                }
            }
        }
    };
    let rc = RootfsConfig {
        spec,
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        mntns,
        // In a user namespace of its own or already in one (the runtime inside rootless
        // Podman's): no mknod, devices are bind-mounted, as runc does.
        userns: userns || crate::userns::in_user_namespace(),
        cgroupns: plan.has(LinuxNamespaceType::Cgroup),
        no_pivot: cfg.no_pivot,
        cgroup_mounts,
        request_source: &request_source,
        runtime_root: !cfg.rootless,
    };
    rootfs::prepare(&rc)?;
    if let Some(p) = process {
        // The working directory is created if the image lacks it, as runc does.
        let cwd = p.cwd();
        let root = rootfs::safe_path::open_root(cfg.rootfs).ctx(|| "open rootfs")?;
        rootfs::safe_path::mkdir_all_in_root(root.as_fd(), cwd, 0o755)
            .ctx(|| format!("create cwd {}", cwd.display()))?;
    }
    crate::logging::phase("init: mounts");
    let host_pid = match host_pid.or(early_go.get()) {
        Some(p) => p,
        None => wait_go()?,
    };
    // The runtime made exec.fifo before `Go`: hold it by an O_PATH fd from here on, so that
    // the state dir need not stay open while the init waits for `start`.
    let fifo_path = ExecFifo::open(cfg.state_dir)?;

    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if runtime_hooks {
        chan.send(&Msg::HooksRequest)?;
        chan.expect(&Msg::HooksDone)?;
    }
    if let Some(cc) = hooks.and_then(|h| h.create_container().as_ref()) {
        let st = hook_state(cfg, host_pid, "created");
        hooks::run_all("createContainer", Some(cc), &st, Some(cfg.rootfs))?;
    }

    rootfs::enter(&rc)?;
    crate::logging::phase("init: pivot_root");

    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    if terminal {
        setup_console(cfg)?;
    }
    rootfs::finalize(&rc)?;

    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: pointer and length of a live string.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Errno::last()).ctx(|| format!("set domainname {d}"));
        }
    }
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v).ctx(|| format!("linux.sysctl: set {k}={v}"))?;
        }
    }
    if let Some(l) = linux {
        for p in l.readonly_paths().iter().flatten() {
            rootfs::readonly_path(p)?;
        }
        rootfs::mask_paths(l.masked_paths().as_deref().unwrap_or_default())?;
    }
    rootfs::apply_rootfs_propagation(&rc)?;
    if let Some(l) = linux {
        if let Some(pers) = l.personality() {
            super::attrs::apply_personality(pers)?;
        }
        if let Some(mp) = l.memory_policy() {
            super::attrs::apply_memory_policy(mp)?;
        }
    }
    if !cfg.no_new_keyring {
        join_session_keyring(cfg.id)?;
    }

    let Some(p) = process else {
        // A config without process can be created; `start` then fails (runtime-spec).
        return wait_for_start_without_process(cfg, chan, fifo_path);
    };
    // In its cgroups by now: run on what their cpuset allows, not the caller's CPU mask.
    super::attrs::reset_affinity(0);
    setup::apply_process_attributes(p)?;
    let (args, env, exe) = setup::command_line(p)?;

    let cwd = p.cwd();
    nix::unistd::chdir(cwd).ctx(|| format!("chdir to cwd {:?}", cwd))?;
    check_cwd_inside()?;

    let privs = setup::Privileges {
        user: p.user(),
        caps: cfg.caps,
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        seccomp: cfg.seccomp,
    };
    privs.drop_privileges(|fd| chan.send_fd(&Msg::SeccompListener, fd.as_fd()))?;

    // Ready: from here on the runtime may exit; the init must survive it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    chan.send(&Msg::Ready)?;
    crate::logging::phase("init: ready");

    let mut fifo = fifo_path.wait_for_start(cfg)?;
    let r = (|| -> Result<Never> {
        fifo.write_all(b"0").ctx(|| "write exec fifo")?;
        // noNewPrivileges and seccomp hold for the startContainer hooks too (runc).
        privs.lock_down()?;
        if let Some(sc) = hooks.and_then(|h| h.start_container().as_ref()) {
            let st = hook_state(cfg, host_pid, "created");
            // A startContainer hook without an env of its own gets the container process's
            // (runc ≥ 1.2).
            let sc: Vec<_> = sc
                .iter()
                .cloned()
                .map(|mut h| {
                    if h.env().as_ref().map_or(true, |e| e.is_empty()) {
                        h.set_env(Some(env.clone()));
                    }
                    h
                })
                .collect();
            hooks::run_all("startContainer", Some(&sc), &st, None)?;
        }
        Err(privs.exec_locked(&exe, &args, &env, cfg.preserve_fds))
    })();
    // Tell `start` what went wrong: everything after the "0" is an error message.
    let msg = match r {
        Ok(never) => match never {},
        Err(e) => e.to_string(),
    };
    let _ = fifo.write_all(format!("E{msg}").as_bytes());
    // SAFETY: terminate without unwinding.
    unsafe { libc::_exit(127) }
}

/// The state JSON handed to hooks run by the init.
fn hook_state(cfg: &InitConfig, pid: i32, status: &str) -> String {
    format!(
        "{{\"ociVersion\":{},\"id\":{},\"status\":\"{status}\",\"pid\":{pid},\"bundle\":{},\"annotations\":{}}}",
        serde_json::Value::from(crate::cli::SPEC_VERSION),
        serde_json::Value::from(cfg.id),
        serde_json::Value::from(cfg.bundle.to_string_lossy().as_ref()),
        cfg.annotations_json
    )
}

fn set_dumpable(on: bool) {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) };
}

fn become_root() -> Result<()> {
    // SAFETY: plain syscalls.
    if unsafe { libc::setresgid(0, 0, 0) } != 0 || unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(Errno::last()).ctx(|| "become root in the user namespace");
    }
    Ok(())
}

/// Joins the namespaces given by path. With a user namespace among them, the others are tried
/// first (a privileged runtime may join namespaces owned by any user namespace, and some, like a
/// host-owned network namespace, only from outside the container's); those refused (EPERM) are
/// joined again once inside the user namespace, which is how an unprivileged runtime gets the
/// right to join them at all.
fn join_namespaces(plan: &Plan) -> Result<()> {
    let user = plan.join.iter().find(|j| j.typ == LinuxNamespaceType::User);
    let others = plan
        .join
        .iter()
        .filter(|j| j.typ != LinuxNamespaceType::User);
    let Some(user) = user else {
        for j in others {
            crate::namespaces::enter(j)?;
        }
        return Ok(());
    };
    let mut later = Vec::new();
    for j in others {
        match nix::sched::setns(&j.fd, crate::namespaces::clone_flag(j.typ)) {
            Ok(()) => {}
            Err(Errno::EPERM) => later.push(j),
            Err(_) => crate::namespaces::enter(j)?,
        }
    }
    crate::namespaces::enter(user)?;
    for j in later {
        crate::namespaces::enter(j)?;
    }
    Ok(())
}

/// Two-step spawn: join existing namespaces, create a user namespace (mapped by the runtime),
/// create the rest, write the time offsets, and fork into new PID/time namespaces. The
/// intermediate reports the init's host pid and exits; only the init returns from here.
///
/// Credentials stay the runtime's until the namespaces are made: the new namespaces are owned by
/// the new user namespace either way, and the time offsets are written with the rights the
/// opener of the offsets file had.
fn enter_namespaces(
    cfg: &InitConfig,
    chan: &Channel,
    timens_offsets: Option<std::fs::File>,
) -> Result<()> {
    let plan = cfg.plan;
    join_namespaces(plan)?;
    let mut flags = plan.new - CloneFlags::CLONE_NEWCGROUP;
    let newuser = flags.contains(CloneFlags::CLONE_NEWUSER);
    if newuser {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare user namespace")?;
        // An unprivileged runtime writes our maps (or runs newuidmap on us): our /proc files
        // must be ours meanwhile.
        if cfg.rootless {
            set_dumpable(true);
        }
        let r = chan
            .send(&Msg::UserNsReady(nix::unistd::getpid().as_raw()))
            .and_then(|()| chan.expect(&Msg::MappingsDone));
        if cfg.rootless {
            set_dumpable(false);
        }
        r?;
        flags -= CloneFlags::CLONE_NEWUSER;
    }
    if !flags.is_empty() {
        nix::sched::unshare(flags).ctx(|| format!("unshare namespaces {flags:?}"))?;
    }
    if let Some(f) = timens_offsets {
        write_time_offsets(cfg.spec, f)?;
    }
    if newuser {
        become_root()?;
    }
    let newtime = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    let need_fork = flags.contains(CloneFlags::CLONE_NEWPID)
        || flags.contains(newtime)
        || plan.joins(LinuxNamespaceType::Pid)
        || plan.joins(LinuxNamespaceType::Time);
    if !need_fork {
        chan.send(&Msg::InitPid(nix::unistd::getpid().as_raw()))?;
        return Ok(());
    }
    // SAFETY: single-threaded; the child continues with a copy of this state.
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()).ctx(|| "fork into the PID namespace"),
        0 => Ok(()),
        child => {
            let _ = chan.send(&Msg::InitPid(child));
            // SAFETY: the intermediate leaves without running destructors.
            unsafe { libc::_exit(0) }
        }
    }
}

/// `linux.timeOffsets` into the new time namespace (before any process enters it).
fn write_time_offsets(spec: &Spec, mut file: std::fs::File) -> Result<()> {
    let Some(offs) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut s = String::new();
    for (clock, o) in offs {
        let name = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::config(format!(
                    "linux.timeOffsets: unknown clock {other:?}"
                )))
            }
        };
        s.push_str(&format!(
            "{name} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    if s.is_empty() {
        return Ok(());
    }
    // One write: the kernel applies all lines or none.
    file.write_all(s.as_bytes())
        .ctx(|| "linux.timeOffsets: write timens_offsets")
}

/// The process's pty: allocated from the container's devpts, master sent to the console
/// socket, slave made the controlling terminal, stdio and /dev/console.
fn setup_console(cfg: &InitConfig) -> Result<()> {
    let sock = cfg.console.ok_or_else(|| {
        Error::config("process.terminal is true but no --console-socket was given")
    })?;
    let pty = tty::open_pty()?;
    if let Some(cs) = cfg.spec.process().as_ref().and_then(|p| p.console_size()) {
        tty::set_winsize(pty.slave.as_fd(), cs.height() as u16, cs.width() as u16);
    }
    // SAFETY: the console socket fd is owned by the runtime and stays open in this process.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    tty::send_fd(sock, pty.master.as_raw_fd(), &pty.slave_path)?;
    drop(pty.master);
    // The process user owns its terminal.
    if let Some(p) = cfg.spec.process() {
        let _ = nix::unistd::fchown(
            &pty.slave,
            Some(nix::unistd::Uid::from_raw(p.user().uid())),
            None,
        );
    }
    let slave_c = std::ffi::CString::new(pty.slave_path.as_bytes()).unwrap_or_default();
    if let Ok(root) = rootfs::safe_path::open_root(Path::new("/")) {
        rootfs::mounts::bind_into(root.as_fd(), &slave_c, Path::new("/dev/console"))?;
    }
    tty::become_console(&pty.slave)?;
    Ok(())
}

/// After chdir: the cwd must be inside the container's root (a leaked host fd used as cwd,
/// e.g. `/proc/self/fd/N`, would show as unreachable: CVE-2024-21626 class).
fn check_cwd_inside() -> Result<()> {
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() && !p.to_string_lossy().starts_with("(unreachable)") => Ok(()),
        _ => Err(Error::msg(
            "process.cwd: current working directory is outside of the container root",
        )),
    }
}

fn join_session_keyring(id: &str) -> Result<()> {
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap_or_default();
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        let e = Errno::last();
        // Kernels without keyrings, or where the keyring quota is exhausted, run without one.
        if !matches!(
            e,
            Errno::ENOSYS | Errno::EDQUOT | Errno::EACCES | Errno::EPERM
        ) {
            return Err(e).ctx(|| "join session keyring");
        }
    }
    Ok(())
}

/// exec.fifo, held by an O_PATH fd (which opens nothing: no reader is woken).
struct ExecFifo {
    fd: std::os::fd::OwnedFd,
    /// Device and inode of the fifo, to recognise it through /proc/self/fd.
    id: (u64, u64),
}

impl ExecFifo {
    fn open(state_dir: RawFd) -> Result<ExecFifo> {
        // SAFETY: the state dir fd is owned by the runtime and stays open in this process.
        let dir = unsafe { BorrowedFd::borrow_raw(state_dir) };
        let fd = nix::fcntl::openat(
            dir,
            crate::state::FIFO_FILE,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open exec fifo")?;
        let st = nix::sys::stat::fstat(&fd).ctx(|| "stat exec fifo")?;
        Ok(ExecFifo {
            fd,
            id: (st.st_dev, st.st_ino),
        })
    }

    /// Closes every fd but 0–2, the preserved ones and the fifo's, then opens exec.fifo for
    /// writing: blocks until `start` opens its read side. Between `create` and `start` the
    /// init so holds nothing of the runtime's or of its caller's (runc's contract): no state
    /// dir, cgroup dir, sync socket, console socket or inherited descriptor.
    ///
    /// The fifo is reopened through /proc/self/fd (checked to be the same inode). A container
    /// without a usable /proc keeps the state dir fd instead and opens the fifo through it.
    fn wait_for_start(self, cfg: &InitConfig) -> Result<std::fs::File> {
        let raw = self.fd.as_raw_fd();
        let proc_path = format!("/proc/self/fd/{raw}");
        let via_proc = nix::sys::stat::stat(proc_path.as_str())
            .is_ok_and(|st| (st.st_dev, st.st_ino) == self.id);
        let mut keep = vec![raw];
        if !via_proc {
            keep.push(cfg.state_dir);
        }
        close_fds_except(3 + cfg.preserve_fds as i32, &keep);
        let file = if via_proc {
            let fd = loop {
                match nix::fcntl::open(
                    proc_path.as_str(),
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Err(Errno::EINTR) => continue,
                    r => break r,
                }
            }
            .ctx(|| "open exec fifo")?;
            std::fs::File::from(fd)
        } else {
            open_exec_fifo(cfg.state_dir)?
        };
        let st = nix::sys::stat::fstat(&file).ctx(|| "stat exec fifo")?;
        if (st.st_dev, st.st_ino) != self.id {
            return Err(Error::msg("open exec fifo: not the container's exec fifo"));
        }
        Ok(file)
    }
}

/// Closes every fd from `first` upwards except those in `keep`.
fn close_fds_except(first: i32, keep: &[i32]) {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    for k in keep.into_iter().chain([i32::MAX]) {
        if k > lo {
            close_range(lo, k - 1);
        }
        lo = k.saturating_add(1);
    }
}

/// close_range(2), or one close per open fd where the kernel lacks it (before 5.9).
fn close_range(lo: i32, hi: i32) {
    // SAFETY: closing fd numbers this process owns and no longer uses.
    let r = unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32) };
    if r == 0 {
        return;
    }
    let open: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect(),
        Err(_) => {
            // SAFETY: sysconf has no side effects.
            let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 1 << 20) as i32;
            (lo..max.min(hi.saturating_add(1))).collect()
        }
    };
    for fd in open.into_iter().filter(|fd| (lo..=hi).contains(fd)) {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
}

/// Opens exec.fifo for writing through the state dir fd: blocks until `start` opens it.
fn open_exec_fifo(state_dir: RawFd) -> Result<std::fs::File> {
    // SAFETY: the state dir fd is owned by the runtime and stays open in this process.
    let dir = unsafe { BorrowedFd::borrow_raw(state_dir) };
    let fd = loop {
        match nix::fcntl::openat(
            dir,
            crate::state::FIFO_FILE,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::EINTR) => continue,
            r => break r,
        }
    }
    .ctx(|| "open exec fifo")?;
    Ok(std::fs::File::from(fd))
}

fn wait_for_start_without_process(
    cfg: &InitConfig,
    chan: &Channel,
    fifo_path: ExecFifo,
) -> Result<Never> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    chan.send(&Msg::Ready)?;
    let mut fifo = fifo_path.wait_for_start(cfg)?;
    let _ = fifo.write_all(b"0Eprocess: config.json has no process to start");
    // SAFETY: terminate without unwinding.
    unsafe { libc::_exit(127) }
}
