//! `kill [--all] ID [SIGNAL]`: signal the init (through a pidfd, so a recycled pid is never
//! hit) or every process in the container's cgroup.

use super::Ctx;
use crate::cgroups::{self};
use crate::container::{self, Status};
use crate::error::{Context, Error, Result};
use std::os::fd::AsRawFd;

/// Parses `9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3`.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::config(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        // 0 sends nothing and asks whether the process is alive (runc accepts it).
        return if (0..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    // RTMIN, RTMIN+N, RTMAX, RTMAX-N (N decimal digits), within SIGRTMIN…SIGRTMAX.
    let rt = |rest: &str, sign: char, base: i32, dir: i32| -> Result<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix(sign).ok_or_else(bad)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            digits.parse().map_err(|_| bad())?
        };
        let n = base + dir * off;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest, '+', libc::SIGRTMIN(), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest, '-', libc::SIGRTMAX(), -1);
    }
    let full = format!("SIG{name}");
    let sig: nix::sys::signal::Signal = full.parse().map_err(|_| bad())?;
    Ok(sig as i32)
}

/// Sends `sig` to the container's init, verifying it is still the same process.
pub fn signal_init(pid: i32, start: u64, sig: i32) -> Result<()> {
    let pidfd = container::init_pidfd(pid, start).ok_or(Error::NotRunning)?;
    // SAFETY: pidfd_send_signal on our pidfd with no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = nix::errno::Errno::last();
        if e == nix::errno::Errno::ESRCH {
            return Err(Error::NotRunning);
        }
        return Err(e).ctx(|| format!("send signal {sig}"));
    }
    Ok(())
}

/// Signals every process of the container's cgroup (and the init, should the cgroup not hold
/// it, e.g. rootless without cgroups).
pub fn signal_all(st: &crate::state::State, sig: i32, opts: &cgroups::CgroupOptions) -> Result<()> {
    let mgr = cgroups::from_state(&st.cgroup, opts)?;
    let in_cgroup = mgr.pids().map(|p| p.contains(&st.pid)).unwrap_or(false);
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => mgr.kill_all(s)?,
        Err(_) => {
            for p in mgr.pids()? {
                // SAFETY: plain kill with a realtime signal number.
                unsafe { libc::kill(p, sig) };
            }
        }
    }
    if !in_cgroup && container::init_alive(st.pid, st.pid_start) {
        let _ = signal_init(st.pid, st.pid_start, sig);
    }
    Ok(())
}

/// Whether the container has a PID namespace of its own (new, not joined by path).
fn private_pid_ns(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
            })
        })
}

pub fn run(ctx: &Ctx, a: &crate::cli::KillArgs) -> Result<i32> {
    let sig = parse_signal(a.signal.as_deref().unwrap_or("TERM"))?;
    let dir = ctx.container(&a.id)?;
    let st = container::load(&dir)?;
    let status = container::status(&dir, &st);
    if a.all {
        if status == Status::Stopped {
            // Processes of a stopped container may still linger (no PID namespace).
            let _ = signal_all(&st, sig, ctx.cgroup_opts());
            return Ok(0);
        }
        signal_all(&st, sig, ctx.cgroup_opts())?;
        if sig == libc::SIGKILL {
            // The managers thaw a frozen cgroup for SIGKILL: the pause is over.
            let _ = dir.mark_paused(false);
        }
        return Ok(0);
    }
    if sig == libc::SIGKILL && !private_pid_ns(&st.config) {
        // runc ≥ 1.2: without its own PID namespace, killing the init does not take the
        // other processes with it; SIGKILL goes to every process of the cgroup, also after
        // the init has exited (nothing left to kill is fine while the cgroup exists).
        let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
        if status == Status::Stopped && mgr.pids().is_err() {
            return Err(Error::NotRunning);
        }
        signal_all(&st, sig, ctx.cgroup_opts())?;
        let _ = dir.mark_paused(false);
        return Ok(0);
    }
    if status == Status::Stopped {
        return Err(Error::NotRunning);
    }
    signal_init(st.pid, st.pid_start, sig)?;
    if sig == libc::SIGKILL && status == Status::Paused {
        // A frozen (v1) task does not die before it is thawed: let the SIGKILL act.
        match cgroups::from_state(&st.cgroup, ctx.cgroup_opts()).and_then(|m| m.thaw()) {
            Ok(()) => {
                let _ = dir.mark_paused(false);
            }
            Err(e) => crate::logging::warn(format!("kill: thaw the paused container: {e}")),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert_eq!(parse_signal("RTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        assert_eq!(parse_signal("SIGRTMIN").unwrap(), libc::SIGRTMIN());
        for bad in [
            "65", "NOPE", "SIG", "", "-1", "RTMIN+99", "RTMIN-99", "RTMIN-1", "RTMAX+5", "RTMIN+",
            "RTMIN++1", "RTMIN+-1", "RTMAX--1",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
