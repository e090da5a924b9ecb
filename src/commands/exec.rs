//! `exec`: run a process in a running container, from `--process process.json` or from the
//! command line (the container's own process settings with runc's overrides).

use super::Ctx;
use crate::cli::ExecArgs;
use crate::container::{self, Status};
use crate::error::{Context, Error, Result};
use crate::process::exec::{self, ExecOpts};
use crate::spec;
use crate::state::State;
use crate::tty;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::{Capabilities, Capability, Process};
use std::os::fd::{AsFd, OwnedFd};

/// `uid[:gid]`, numeric or a name from the container's /etc/passwd and /etc/group.
fn parse_user(s: &str, st: &State) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let lookup = |file: &str, name: &str, field: usize| -> Option<u32> {
        let text = std::fs::read_to_string(st.rootfs.join(file)).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(field)?.parse().ok())
                .flatten()
        })
    };
    let uid = u
        .parse()
        .ok()
        .or_else(|| lookup("etc/passwd", u, 2))
        .ok_or_else(|| Error::config(format!("exec --user: unknown user {u:?}")))?;
    let gid = match g {
        Some(g) => Some(
            g.parse()
                .ok()
                .or_else(|| lookup("etc/group", g, 2))
                .ok_or_else(|| Error::config(format!("exec --user: unknown group {g:?}")))?,
        ),
        None if u.parse::<u32>().is_err() => lookup("etc/passwd", u, 3),
        None => None,
    };
    Ok((uid, gid))
}

fn add_cap(set: &mut Option<Capabilities>, c: Capability) {
    set.get_or_insert_with(Default::default).insert(c);
}

/// The process to run: `--process` as given, or the container's process with the command line
/// and runc's exec flags applied.
pub fn build_process(a: &ExecArgs, st: &State) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).ctx(|| format!("read process {}", path.display()))?;
        return spec::parse_process(&data);
    }
    if a.command.is_empty() {
        return Err(Error::config(
            "exec: no command given (args must not be empty)",
        ));
    }
    let mut p = st.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.into());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u, st)?;
        p.user_mut().set_uid(uid);
        if let Some(g) = gid {
            p.user_mut().set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            // Validates the name; oci-spec's parser accepts CAP_X or X.
            crate::capabilities::parse_name(name)?;
            let c: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
                .map_err(|_| Error::config(format!("exec --cap: unknown capability {name:?}")))?;
            let mut b = caps.bounding().clone();
            add_cap(&mut b, c);
            caps.set_bounding(b);
            let mut e = caps.effective().clone();
            add_cap(&mut e, c);
            caps.set_effective(e);
            let mut pm = caps.permitted().clone();
            add_cap(&mut pm, c);
            caps.set_permitted(pm);
            let mut am = caps.ambient().clone();
            add_cap(&mut am, c);
            caps.set_ambient(am);
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(aa) = &a.apparmor {
        p.set_apparmor_profile(Some(aa.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

pub fn run(ctx: &Ctx, a: &ExecArgs) -> Result<i32> {
    let dir = ctx.container_ro(&a.id)?;
    let st = container::load(&dir)?;
    let status = match container::status(&dir, &st) {
        // Frozen by someone else than `pause`: the new process would freeze too.
        Status::Running | Status::Created if container::cgroup_frozen(&st) => Status::Paused,
        s => s,
    };
    match status {
        Status::Stopped => return Err(Error::State("cannot exec in a stopped container".into())),
        Status::Paused if !a.ignore_paused => {
            return Err(Error::State(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        _ => {}
    }
    drop(dir);
    let process = build_process(a, &st)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && a.detach && a.console_socket.is_none() {
        return Err(Error::config(
            "cannot allocate a tty when detaching without --console-socket",
        ));
    }
    let sub_cgroup = crate::process::exec::parse_sub_cgroups(&a.cgroup)?;
    let set = super::run::forwarded_set();
    let sfd = if a.detach {
        None
    } else {
        set.thread_block().ctx(|| "block signals")?;
        Some(
            SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .ctx(|| "signalfd")?,
        )
    };
    let (ours, console): (Option<OwnedFd>, Option<OwnedFd>) = match &a.console_socket {
        Some(p) if terminal => (None, Some(tty::connect_console_socket(p)?)),
        None if terminal => {
            let (x, y) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .ctx(|| "socketpair for the console")?;
            (Some(x), Some(y))
        }
        _ => (None, None),
    };
    let pidfd_sock = a
        .pidfd_socket
        .as_deref()
        .map(tty::connect_console_socket)
        .transpose()?;
    let pid = exec::exec(ExecOpts {
        state: &st,
        process: &process,
        console,
        preserve_fds: a.preserve_fds,
        sub_cgroup,
        cgroup_opts: ctx.cgroup_opts(),
    })?;
    if let Some(sock) = &pidfd_sock {
        if let Err(e) = tty::send_pidfd(sock.as_fd(), pid, "setns") {
            // SAFETY: kill(2) of our own child, which the caller will never hear of.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            return Err(e);
        }
    }
    if let Some(p) = &a.pid_file {
        crate::state::write_pid_file(p, pid)?;
    }
    let Some(sfd) = sfd else { return Ok(0) };
    let master = match &ours {
        Some(s) => Some(tty::recv_fd(s.as_fd())?),
        None => None,
    };
    Ok(super::run::wait_loop(pid, &sfd, master.as_ref()))
}
