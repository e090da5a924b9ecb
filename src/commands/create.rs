//! `create`: set the container up; its init waits for `start`.

use super::Ctx;
use crate::cli::CreateArgs;
use crate::error::Result;
use crate::process::spawn::{self, CreateOpts, Created};
use crate::spec;
use crate::tty;
use std::path::PathBuf;

/// Shared by `create` and `run`: load the bundle and create the container. `console` overrides
/// `--console-socket` (used by `run` for its own pty proxy).
pub fn create_container(
    ctx: &Ctx,
    a: &CreateArgs,
    bundle: &spec::Bundle,
    console: Option<std::os::fd::OwnedFd>,
    start_now: bool,
) -> Result<Created> {
    let console = match (console, &a.console_socket) {
        (Some(c), _) => Some(c),
        (None, Some(p)) => Some(tty::connect_console_socket(p)?),
        (None, None) => None,
    };
    let pidfd_sock = a
        .pidfd_socket
        .as_deref()
        .map(tty::connect_console_socket)
        .transpose()?;
    let root = ctx.root(true)?;
    let created = spawn::create(CreateOpts {
        id: &a.id,
        bundle,
        root: &root,
        console,
        pid_file: a.pid_file.as_deref(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds + crate::activation::listen_fds(),
        notify: crate::notify::host_socket().is_some(),
        start_now,
        cgroup_opts: ctx.cgroup_opts().clone(),
    })?;
    if let Some(sock) = &pidfd_sock {
        use std::os::fd::AsFd;
        if let Err(e) = tty::send_pidfd(sock.as_fd(), created.state.pid, "standard") {
            // Leave nothing behind, as for any failed create.
            let Created { dir, state, .. } = created;
            let _ = super::delete::destroy(ctx, dir, &state, crate::container::Status::Created);
            return Err(e);
        }
    }
    Ok(created)
}

/// Validates the id and loads the bundle named by `--bundle` (default: the current directory),
/// with what the runtime's environment adds to it: the sd_notify socket (`NOTIFY_SOCKET`) and
/// socket activation (`LISTEN_FDS`).
pub fn load(ctx: &Ctx, a: &CreateArgs) -> Result<spec::Bundle> {
    crate::state::validate_id(&a.id)?;
    let bundle_dir = a.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut b = spec::load_bundle(&bundle_dir)?;
    if crate::notify::host_socket().is_some() {
        let dir = crate::notify::socket_dir(&ctx.root_path, &a.id);
        crate::notify::setup_spec(&mut b.spec, &dir)?;
    }
    crate::activation::setup_spec(&mut b.spec, crate::activation::listen_fds());
    Ok(b)
}

pub fn run(ctx: &Ctx, a: &CreateArgs) -> Result<i32> {
    let bundle = load(ctx, a)?;
    create_container(ctx, a, &bundle, None, false)?;
    Ok(0)
}
