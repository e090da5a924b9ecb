//! Applying an OCI `process` to the calling process: what the container init and `exec` both
//! do just before execve (user, rlimits, environment, executable lookup, fds, signals).

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, User};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: valid struct pointer.
        if unsafe { libc::setrlimit(rlimit_resource(l.typ()), &r) } != 0 {
            return Err(Errno::last()).ctx(|| {
                format!(
                    "process.rlimits: set {:?} to soft {} hard {}",
                    l.typ(),
                    l.soft(),
                    l.hard()
                )
            });
        }
    }
    Ok(())
}

/// The per-process attributes applied before privileges are dropped, the same for the init and
/// for `exec`: rlimits, scheduler, I/O priority, AppArmor profile and SELinux label.
pub fn apply_process_attributes(p: &oci_spec::runtime::Process) -> Result<()> {
    if let Some(rl) = p.rlimits() {
        apply_rlimits(rl)?;
    }
    if let Some(s) = p.scheduler() {
        super::attrs::apply_scheduler(s)?;
    }
    if let Some(io) = p.io_priority() {
        super::attrs::apply_io_priority(io)?;
    }
    if p.apparmor_profile().is_some() || p.selinux_label().is_some() {
        let lsm = super::lsm::Lsm::host();
        if let Some(profile) = p.apparmor_profile() {
            lsm.apply_apparmor(profile)?;
        }
        if let Some(label) = p.selinux_label() {
            lsm.apply_selinux(label)?;
        }
    }
    Ok(())
}

/// The process's argv, its environment (HOME added from the container's /etc/passwd when
/// missing) and the executable `args[0]` resolves to.
pub fn command_line(p: &oci_spec::runtime::Process) -> Result<(Vec<String>, Vec<String>, CString)> {
    let args: Vec<String> = p.args().clone().unwrap_or_default();
    let env = prepare_env(p.env().as_deref().unwrap_or_default(), p.user().uid())?;
    let exe = lookup_exec(&args[0], &env)?;
    Ok((args, env, exe))
}

/// The environment the process gets, as runc ≥ 1.2 makes it: every entry must be `NAME=VALUE`
/// with a non-empty name and no NUL; one entry per name, the last one wins (in the order of
/// the last occurrences); an empty `HOME` is dropped, and a missing one is added from the
/// user's entry in the container's /etc/passwd (else `/`).
pub fn prepare_env(env: &[String], uid: u32) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(env.len() + 1);
    let mut home = false;
    for kv in env.iter().rev() {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::config("invalid environment variable: missing '='"));
        };
        if k.is_empty() {
            return Err(Error::config(
                "invalid environment variable: name cannot be empty",
            ));
        }
        if !seen.insert(k) {
            continue;
        }
        if kv.contains('\0') {
            return Err(Error::config(format!(
                "invalid environment variable {k:?}: contains nul byte (\\x00)"
            )));
        }
        if k == "HOME" {
            if v.is_empty() {
                continue;
            }
            home = true;
        }
        out.push(kv.clone());
    }
    out.reverse();
    if !home {
        out.push(format!("HOME={}", home_of(uid)));
    }
    Ok(out)
}

/// True if `env` (NAME=VALUE list) sets `name`.
pub fn env_has(env: &[String], name: &str) -> bool {
    env.iter()
        .any(|e| e.split_once('=').is_some_and(|(k, _)| k == name))
}

pub fn env_get<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|e| {
        e.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

/// The home directory of `uid` from the container's /etc/passwd (read after pivot_root), or "/".
pub fn home_of(uid: u32) -> String {
    crate::userns::passwd_field(uid, 5)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Finds the executable like execvp would, in the container's filesystem and PATH, so a missing
/// binary is an error at `create` (not a silent exit after `start`).
pub fn lookup_exec(arg0: &str, env: &[String]) -> Result<CString> {
    let is_exec = |p: &Path| -> bool {
        let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: valid C string.
        let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 };
        ok && std::fs::metadata(p).is_ok_and(|m| m.is_file())
    };
    if arg0.contains('/') {
        let p = Path::new(arg0);
        if is_exec(p) {
            return CString::new(arg0).map_err(|_| Error::config("process.args[0] contains NUL"));
        }
        // Go's exec.LookPath wording, as runc reports it.
        let why = match std::fs::metadata(p) {
            Err(e) => format!(
                "stat {arg0}: {}",
                crate::error::strerror(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            ),
            Ok(m) if m.is_dir() => "is a directory".to_string(),
            Ok(_) => "permission denied".to_string(),
        };
        return Err(Error::msg(format!("exec: {arg0:?}: {why}")));
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_exec(&cand) {
            return CString::new(cand.as_os_str().as_bytes())
                .map_err(|_| Error::config("process.args[0] contains NUL"));
        }
    }
    Err(Error::msg(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// setgroups/setgid/setuid to the process user, keeping the permitted capabilities so the
/// configured sets can be applied afterwards.
pub fn switch_user(user: &User, can_setgroups: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    if can_setgroups {
        let gids: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
        // SAFETY: pointer and length of a live Vec.
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            return Err(Errno::last()).ctx(|| "setgroups");
        }
    }
    let (uid, gid) = (user.uid(), user.gid());
    // SAFETY: plain syscalls.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(Errno::last()).ctx(|| format!("setgid {gid}"));
    }
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(Errno::last()).ctx(|| format!("setuid {uid}"));
    }
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

/// In a user namespace whose setgroups is "deny", setgroups(2) is not allowed.
pub fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Errno::last()).ctx(|| "set no_new_privs");
    }
    Ok(())
}

/// Every signal back to its default disposition and an empty mask: the container's process
/// must not inherit what the runtime ignored or blocked.
pub fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting dispositions; no handlers run afterwards in this process image.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// Marks every fd from `first` upwards close-on-exec: only 0–2 and the preserved fds reach the
/// container's process.
pub fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "list fds")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on a (possibly already closed) fd number.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Clears close-on-exec on the preserved fds 3 … 3+n-1.
pub fn keep_fds(n: u32) {
    for fd in 3..3 + n as i32 {
        // SAFETY: fcntl on an fd number the caller passed on purpose.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
}

/// execve; returns only on failure.
pub fn exec(path: &CString, args: &[String], env: &[String]) -> Error {
    let cargs: Vec<CString> = args
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let cenv: Vec<CString> = env
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    match nix::unistd::execve(path, &cargs, &cenv) {
        // runc's (Go's) wording, which callers match on: Docker maps "no such file or
        // directory" to exit 127 and "permission denied" to 126.
        Err(e) => Error::msg(format!(
            "exec {}: {}",
            path.to_string_lossy(),
            crate::error::strerror(e)
        )),
        Ok(_) => unreachable_ok(),
    }
}

fn unreachable_ok() -> Error {
    Error::msg("execve returned success")
}

/// The last steps every container process goes through (the init after `start`, and `exec`):
/// capabilities, user, no_new_privs, seccomp, fds, signals, execve.
pub struct Privileges<'a> {
    pub user: &'a User,
    pub caps: Option<&'a crate::capabilities::CapSets>,
    pub no_new_privs: bool,
    pub seccomp: Option<&'a crate::seccomp::CompiledFilter>,
}

impl Privileges<'_> {
    /// Seccomp goes in as late as possible: right before execve when the process may still
    /// load it there (no_new_privs, or it keeps CAP_SYS_ADMIN), otherwise before privileges are
    /// dropped. A NOTIFY profile loads early so its listener can still reach the runtime.
    fn seccomp_late(&self) -> bool {
        if self.seccomp.is_some_and(|f| f.needs_listener()) {
            return false;
        }
        // Capabilities not configured: the process keeps root's, which only uid 0 has.
        let keeps_admin = match self.caps {
            Some(c) => c.has_effective(caps::Capability::CAP_SYS_ADMIN),
            None => self.user.uid() == 0,
        };
        self.no_new_privs || keeps_admin
    }

    /// Early seccomp (handing a NOTIFY listener to `listener`), bounding set, uid/gid/groups,
    /// capability sets, umask.
    pub fn drop_privileges(
        &self,
        listener: impl FnOnce(std::os::fd::OwnedFd) -> Result<()>,
    ) -> Result<()> {
        if let Some(f) = self.seccomp.filter(|_| !self.seccomp_late()) {
            if self.no_new_privs {
                set_no_new_privs()?;
            }
            if let Some(fd) = crate::seccomp::load(f)? {
                listener(fd)?;
            }
        }
        if let Some(c) = self.caps {
            crate::capabilities::apply_bounding(c)?;
        }
        switch_user(self.user, setgroups_allowed())?;
        if let Some(c) = self.caps {
            crate::capabilities::apply_sets(c)?;
        }
        // SAFETY: umask has no failure mode.
        unsafe { libc::umask(self.user.umask().unwrap_or(0o022) as libc::mode_t) };
        Ok(())
    }

    /// no_new_privs, late seccomp, default signals, close-on-exec for everything but 0–2 and
    /// the preserved fds, execve. Returns only on failure.
    pub fn exec(&self, exe: &CString, args: &[String], env: &[String], preserve_fds: u32) -> Error {
        match self.lock_down() {
            Ok(()) => self.exec_locked(exe, args, env, preserve_fds),
            Err(e) => e,
        }
    }

    /// no_new_privs and the late seccomp filter.
    pub fn lock_down(&self) -> Result<()> {
        if self.no_new_privs {
            set_no_new_privs()?;
        }
        if let Some(f) = self.seccomp.filter(|_| self.seccomp_late()) {
            crate::seccomp::load(f)?;
        }
        Ok(())
    }

    /// [`Privileges::exec`] after [`Privileges::lock_down`]: default signals, close-on-exec
    /// for everything but 0–2 and the preserved fds, execve. Returns only on failure.
    pub fn exec_locked(
        &self,
        exe: &CString,
        args: &[String],
        env: &[String],
        preserve_fds: u32,
    ) -> Error {
        let r = (|| -> Result<()> {
            reset_signals();
            cloexec_from(3)?;
            keep_fds(preserve_fds);
            Ok(())
        })();
        match r {
            Ok(()) => exec(exe, args, env),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_helpers() {
        let e = vec!["PATH=/bin".to_string(), "A=1".into(), "A=2".into()];
        assert!(env_has(&e, "A"));
        assert!(!env_has(&e, "PAT"));
        assert_eq!(env_get(&e, "A"), Some("2"));
    }

    #[test]
    fn lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(lookup_exec("sh", &env).is_ok());
        let e = lookup_exec("definitely-not-a-binary", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in $PATH"), "{e}");
        assert!(lookup_exec("/nonexistent/x", &env).is_err());
    }
}
