//! `exec`: run a new process inside a running container.
//!
//! The runtime enters the container's PID (and time) namespace for its children with
//! `setns(pidfd)`, clones once, and the child joins every other namespace of the container in a
//! single `setns(pidfd, flags)` (user namespace included, atomically), is put in the container's
//! cgroup by the runtime, applies the process and execs. Success is seen as EOF on the
//! close-on-exec sync socket; failures come back as one `Error` message.

use super::setup;
use super::sync::{self, Channel, Msg};
use crate::capabilities::{self, CapSets};
use crate::cgroups::{self, CgroupOptions};
use crate::container::{self, Status};
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::seccomp;
use crate::state::State;
use crate::tty;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub struct ExecOpts<'a> {
    pub state: &'a State,
    pub process: &'a Process,
    /// Connected console socket (terminal processes).
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    /// `--cgroup`: sub-cgroups of the container's, by controller (`""`: every hierarchy).
    pub sub_cgroup: Option<SubCgroups>,
    pub cgroup_opts: &'a CgroupOptions,
}

/// The child's CPU mask once it is in the container's cgroup.
enum Affinity {
    Set(Vec<u64>),
    Reset,
    Keep,
}

struct Child<'a> {
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    memory_policy: Option<&'a oci_spec::runtime::LinuxMemoryPolicy>,
    final_affinity: Affinity,
    process: &'a Process,
    pidfd: RawFd,
    join: CloneFlags,
    userns: bool,
    caps: Option<&'a CapSets>,
    seccomp: Option<&'a seccomp::CompiledFilter>,
    console: Option<RawFd>,
    preserve_fds: u32,
    /// The cgroups the child moves itself into first thing (empty with `--cgroup`).
    cgroups: &'a cgroups::JoinPlan,
}

/// Starts the process; returns its host pid once it has exec'd.
pub fn exec(o: ExecOpts) -> Result<i32> {
    let st = o.state;
    crate::spec::validate_process(o.process)?;
    let caps = capabilities::of_process(o.process)?;
    let seccomp = match st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    let pidfd = container::init_pidfd(st.pid, st.pid_start).ok_or(Error::NotRunning)?;
    // Every namespace the container has (new at create or joined by path) is the init's.
    let mut join = CloneFlags::empty();
    let mut userns = false;
    for ns in st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        join |= namespaces::clone_flag(ns.typ());
        userns |= ns.typ() == LinuxNamespaceType::User;
    }
    let mut for_children =
        join & (CloneFlags::CLONE_NEWPID | CloneFlags::from_bits_retain(libc::CLONE_NEWTIME));
    // Entering a PID or time namespace for our children needs CAP_SYS_ADMIN in our own user
    // namespace too; an unprivileged runtime has it only inside the container's user namespace
    // (which it owns), so it enters that one first, in the same call. Its host credentials stay
    // what they were (same uid, no host capabilities to lose).
    if userns && !for_children.is_empty() && !nix::unistd::geteuid().is_root() {
        for_children |= CloneFlags::CLONE_NEWUSER;
    }
    if !for_children.is_empty() {
        nix::sched::setns(&pidfd, for_children).ctx(|| "join the container's PID namespace")?;
    }
    let mgr = cgroups::from_state(&st.cgroup, o.cgroup_opts)?;
    let (parent_ch, child_ch) = sync::pair()?;
    let cg_join = match o.sub_cgroup {
        Some(_) => cgroups::JoinPlan::default(),
        None => cgroups::join_plan(&st.cgroup),
    };
    // Checked before anything is started: every path inside the container's cgroup.
    let sub_dirs = match &o.sub_cgroup {
        Some(m) => Some(sub_cgroup_dirs(st, m)?),
        None => None,
    };
    let v2_fd = cg_join.open_v2_dir()?;
    // `process.execCPUAffinity` (of `--process`, else of the container's process): `initial`
    // is the mask the child has before it joins the container's cgroup (inherited from this
    // process at clone), `final` the one it gets once it is in; without either the child's
    // mask is reset to what the cgroup allows (runc ≥ 1.2).
    let aff = o
        .process
        .exec_cpu_affinity()
        .clone()
        .or_else(|| st.config.process().as_ref()?.exec_cpu_affinity().clone());
    let initial = aff
        .as_ref()
        .and_then(|a| a.initial().as_deref())
        .map(|s| super::attrs::parse_cpus(s, "Initial"))
        .transpose()?;
    let final_mask = aff
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
        .map(|s| super::attrs::parse_cpus(s, "Final"))
        .transpose()?;
    let own_mask = match &initial {
        Some(m) => {
            let saved = super::attrs::get_affinity();
            super::attrs::set_affinity(0, m)
                .map_err(|e| Error::msg(format!("error setting initial CPU affinity: {e}")))?;
            saved
        }
        None => None,
    };
    let linux = st.config.linux().as_ref();
    let child = Child {
        personality: linux.and_then(|l| l.personality().as_ref()),
        memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
        final_affinity: match (&initial, &final_mask) {
            (_, Some(m)) => Affinity::Set(m.clone()),
            (None, None) => Affinity::Reset,
            (Some(_), None) => Affinity::Keep,
        },
        process: o.process,
        pidfd: pidfd.as_raw_fd(),
        join: join - for_children,
        userns,
        caps: caps.as_ref(),
        seccomp: seccomp.as_ref(),
        console: o.console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds: o.preserve_fds,
        cgroups: &cg_join,
    };
    let rootless = o.cgroup_opts.rootless;
    // SAFETY: single-threaded; the child continues on a copy of this process.
    let cloned = unsafe {
        super::clone::clone_child(CloneFlags::empty(), v2_fd.as_ref().map(|f| f.as_fd()))
    };
    let v2_dir = cg_join
        .v2_dir
        .as_deref()
        .unwrap_or(std::path::Path::new(""));
    let (pid, into_v2) = match cloned {
        // The kernel refuses the move into the container's cgroup (an exec started outside the
        // delegated subtree: no write access to the common ancestor). Rootless: without it,
        // with a warning (runc ignores cgroup join errors when rootless, README's policy).
        Err(e @ (nix::errno::Errno::EACCES | nix::errno::Errno::EPERM)) if v2_fd.is_some() => {
            if !rootless {
                return Err(Error::msg(format!(
                    "fork into cgroup {}: {e}",
                    v2_dir.display()
                )));
            }
            crate::logging::warn(format!(
                "exec: cannot enter cgroup {} ({e}: started outside its delegated subtree?); \
                 the process runs without it",
                v2_dir.display()
            ));
            // SAFETY: as above.
            unsafe { super::clone::clone_child(CloneFlags::empty(), None) }.ctx(|| "fork")?
        }
        r => r.ctx(|| "fork")?,
    };
    if pid == 0 {
        drop(parent_ch);
        child_main(&child, child_ch);
    }
    if let Some(m) = own_mask {
        let _ = super::attrs::set_affinity(0, &m);
    }
    drop(child_ch);
    let r = (|| -> Result<()> {
        let joined = match parent_ch.recv()? {
            Some(Msg::Joined(ok)) => ok,
            Some(Msg::Error(e)) => return Err(Error::Msg(e)),
            other => return Err(Error::msg(format!("sync: unexpected {other:?}"))),
        };
        let added = match &sub_dirs {
            Some(dirs) => add_to_sub_cgroup(dirs, pid),
            None if cg_join.runtime_must_add(joined, into_v2) => {
                mgr.add_task(pid).map_err(Error::from)
            }
            None => Ok(()),
        };
        match added {
            Err(e) if rootless => crate::logging::warn(format!(
                "exec: the process runs outside the container's cgroup: {e}"
            )),
            r => r?,
        }
        parent_ch.send(&Msg::Go(pid))?;
        loop {
            match parent_ch.recv_with_fd()? {
                None => return Ok(()),
                Some((Msg::SeccompListener, Some(fd))) => {
                    super::spawn::forward_listener(fd, st, Status::Running)?;
                }
                Some((Msg::Error(e), _)) => return Err(Error::Msg(e)),
                Some((m, _)) => return Err(Error::msg(format!("sync: unexpected {m:?}"))),
            }
        }
    })();
    if let Err(e) = r {
        // SAFETY: killing and reaping our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    Ok(pid)
}

/// `exec --cgroup` values by controller: `""` for a bare path (all hierarchies).
pub type SubCgroups = std::collections::BTreeMap<String, String>;

/// Parses `--cgroup [CONTROLLER[,CONTROLLER]:]PATH` (repeatable), as runc: one argument per
/// controller list, or one bare path for every hierarchy.
pub fn parse_sub_cgroups(args: &[String]) -> Result<Option<SubCgroups>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut m = SubCgroups::new();
    for a in args {
        match a.split_once(':') {
            Some((ctrls, path)) => {
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        return Err(Error::config(format!(
                            "exec --cgroup: invalid argument {a:?} (empty controller prefix)"
                        )));
                    }
                    if m.insert(c.to_string(), path.to_string()).is_some() {
                        return Err(Error::config(format!(
                            "exec --cgroup: controller {c} specified multiple times"
                        )));
                    }
                }
            }
            None if args.len() == 1 => {
                m.insert(String::new(), a.clone());
            }
            None => {
                return Err(Error::config(format!(
                    "exec --cgroup: invalid argument {a:?} (missing controller: prefix; a bare \
                     path must be the only --cgroup)"
                )))
            }
        }
    }
    Ok(Some(m))
}

/// `dir` joined with `sub` lexically (`..` resolved), refused when it leaves `dir`.
fn sub_dir(dir: &std::path::Path, sub: &str) -> Result<std::path::PathBuf> {
    use std::path::Component;
    let mut p = dir.to_path_buf();
    for c in std::path::Path::new(sub).components() {
        match c {
            Component::Normal(n) => p.push(n),
            Component::ParentDir => {
                p.pop();
            }
            _ => {}
        }
    }
    if !p.starts_with(dir) {
        return Err(Error::config(format!(
            "exec --cgroup: bad sub cgroup path: {sub}: {} is not a sub cgroup path of {}",
            p.display(),
            dir.display()
        )));
    }
    Ok(p)
}

/// The controllers of hierarchy `h`: the v1 mount's list, or cgroup2's `cgroup.controllers`.
fn hierarchy_controllers(h: &cgroups::Hierarchy) -> Vec<String> {
    if !h.controllers.is_empty() {
        return h.controllers.split(',').map(str::to_string).collect();
    }
    std::fs::read_to_string(h.mount_point.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Where `--cgroup` puts the process in each hierarchy of the container: a bare path in all of
/// them; `CONTROLLER:PATH` in the hierarchy of that controller (the container's own cgroup in
/// the others). On cgroup2 every controller shares one hierarchy, so the controllers named for
/// it must agree on one path.
fn sub_cgroup_dirs(st: &State, m: &SubCgroups) -> Result<Vec<std::path::PathBuf>> {
    let hs = &st.cgroup.hierarchies;
    if let Some(sub) = m.get("") {
        return hs.iter().map(|h| sub_dir(&h.dir, sub)).collect();
    }
    let ctrls: Vec<Vec<String>> = hs.iter().map(hierarchy_controllers).collect();
    if let Some(c) = m.keys().find(|c| !ctrls.iter().flatten().any(|k| k == *c)) {
        return Err(Error::config(format!(
            "exec --cgroup: unknown controller {c} (the container's cgroups have {})",
            ctrls.concat().join(" ")
        )));
    }
    let mut dirs = Vec::new();
    for (h, cs) in hs.iter().zip(&ctrls) {
        let named: Vec<(&String, &String)> = m.iter().filter(|(c, _)| cs.contains(c)).collect();
        let sub = match named.as_slice() {
            [] => "",
            [(_, p), rest @ ..] => {
                if let Some((c2, _)) = rest.iter().find(|(_, p2)| p2 != p) {
                    return Err(Error::config(format!(
                        "exec --cgroup: controllers {} and {c2} share one hierarchy and need one path",
                        named[0].0
                    )));
                }
                p.as_str()
            }
        };
        dirs.push(sub_dir(&h.dir, sub)?);
    }
    Ok(dirs)
}

/// `--cgroup`: the process goes into the checked sub-cgroup of every hierarchy (which must
/// exist: runc does not create it either).
fn add_to_sub_cgroup(dirs: &[std::path::PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        let p = d.join("cgroup.procs");
        std::fs::write(&p, pid.to_string()).ctx(|| format!("exec --cgroup: {}", p.display()))?;
    }
    Ok(())
}

fn child_main(c: &Child, chan: Channel) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child_setup(c, &chan)));
    let msg = match r {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => "exec returned".to_string(),
        Err(_) => "exec: child panicked".to_string(),
    };
    let _ = chan.send(&Msg::Error(msg));
    // SAFETY: leave the child without unwinding into the runtime's code.
    unsafe { libc::_exit(255) }
}

fn child_setup(c: &Child, chan: &Channel) -> Result<()> {
    // Not ptrace-able and no /proc/<pid>/exe for the container until execve (CVE-2019-5736).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // (No parent-death signal: it would survive execve and kill a detached process when the
    // runtime exits. A runtime dying before `Go` closes the channel, and `recv` fails.)
    chan.send(&Msg::Joined(cgroups::self_join(c.cgroups).is_ok()))?;
    match chan.recv()? {
        Some(Msg::Go(_)) => {}
        Some(Msg::Error(e)) => return Err(Error::Msg(e)),
        other => return Err(Error::msg(format!("sync: expected Go, got {other:?}"))),
    }
    // SAFETY: the pidfd stays open in this process.
    let pidfd = unsafe { BorrowedFd::borrow_raw(c.pidfd) };
    if !c.join.is_empty() {
        nix::sched::setns(pidfd, c.join).ctx(|| "join the container's namespaces")?;
    }
    if c.userns {
        // SAFETY: plain syscalls.
        if unsafe { libc::setresgid(0, 0, 0) } != 0 || unsafe { libc::setresuid(0, 0, 0) } != 0 {
            return Err(nix::errno::Errno::last()).ctx(|| "become root in the user namespace");
        }
    }
    crate::logging::phase("exec: joined");
    // In the container's cgroup now.
    match &c.final_affinity {
        Affinity::Set(m) => super::attrs::set_affinity(0, m)
            .map_err(|e| Error::msg(format!("error setting final CPU affinity: {e}")))?,
        Affinity::Reset => super::attrs::reset_affinity(0),
        Affinity::Keep => {}
    }
    // The container's personality and memory policy hold for its every process (runc ≥ 1.2).
    if let Some(pers) = c.personality {
        super::attrs::apply_personality(pers)?;
    }
    if let Some(mp) = c.memory_policy {
        super::attrs::apply_memory_policy(mp)?;
    }
    let p = c.process;
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: set {adj}"))?;
    }
    let cwd = p.cwd();
    nix::unistd::chdir(cwd).ctx(|| format!("chdir to cwd {:?}", cwd))?;
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() && !d.to_string_lossy().starts_with("(unreachable)") => {}
        _ => {
            return Err(Error::msg(
                "process.cwd: current working directory is outside of the container root",
            ))
        }
    }
    if p.terminal().unwrap_or(false) {
        let sock = c
            .console
            .ok_or_else(|| Error::config("terminal is true but no --console-socket was given"))?;
        nix::unistd::setsid().ctx(|| "setsid")?;
        let pty = tty::open_pty()?;
        if let Some(cs) = p.console_size() {
            tty::set_winsize(pty.slave.as_fd(), cs.height() as u16, cs.width() as u16);
        }
        // SAFETY: the console socket fd stays open in this process.
        let sock = unsafe { BorrowedFd::borrow_raw(sock) };
        tty::send_fd(sock, pty.master.as_raw_fd(), &pty.slave_path)?;
        drop(pty.master);
        let _ = nix::unistd::fchown(
            &pty.slave,
            Some(nix::unistd::Uid::from_raw(p.user().uid())),
            None,
        );
        tty::become_console(&pty.slave)?;
    }
    setup::apply_process_attributes(p)?;
    let (args, env, exe) = setup::command_line(p)?;
    let privs = setup::Privileges {
        user: p.user(),
        caps: c.caps,
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        seccomp: c.seccomp,
    };
    privs.drop_privileges(|fd| chan.send_fd(&Msg::SeccompListener, fd.as_fd()))?;
    Err(privs.exec(&exe, &args, &env, c.preserve_fds))
}
