//! `restore ID`: bring a checkpointed container back with CRIU, as runc does. A new container
//! `ID` is made from the bundle (state dir, cgroup), the rootfs is bind-mounted on
//! `<state dir>/criu-root` (CRIU wants a mount point as root), CRIU restores the process tree as
//! this process's child (`rst_sibling`) into the container's cgroup, running the prestart and
//! createRuntime hooks when it has made the namespaces (`setup-namespaces`) and handing back the
//! pid (`post-restore`). Then the container is like any other: detached (`-d`) the runtime
//! exits; otherwise it waits for the init like `run`, exits with its status and deletes it.

use super::checkpoint::{self, DESCRIPTORS};
use super::Ctx;
use crate::cgroups::{self, CgroupManager};
use crate::cli::RestoreArgs;
use crate::container::{OciState, Status};
use crate::criu::{self, rpc, Swrk};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::logging;
use crate::state::{ContainerDir, State};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

pub fn run(ctx: &Ctx, a: &RestoreArgs, criu_bin: &str) -> Result<i32> {
    crate::state::validate_id(&a.id)?;
    let bundle_dir = a.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let bundle = crate::spec::load_bundle(&bundle_dir)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && a.console_socket.is_none() {
        return Err(Error::config(
            "cannot restore a container with a terminal without --console-socket",
        ));
    }
    let mode = criu::cg_mode(a.manage_cgroups_mode.as_deref())?;
    let empty = checkpoint::empty_ns(&a.empty_ns)?;
    let (image, _) = checkpoint::image_paths(a.image_path.as_deref(), None)?;
    let version = criu::version(criu_bin)?;
    if (a.lsm_profile.is_some() || a.lsm_mount_context.is_some()) && version < 31600 {
        return Err(Error::config(if a.lsm_profile.is_some() {
            "--lsm-profile requires at least CRIU 3.16"
        } else {
            "--lsm-mount-context requires at least CRIU 3.16"
        }));
    }
    let fds_json = std::fs::read(image.join(DESCRIPTORS))
        .ctx(|| format!("read {}", image.join(DESCRIPTORS).display()))?;
    let descriptors: Vec<String> = serde_json::from_slice(&fds_json)
        .map_err(|e| Error::config(format!("{}: {e}", image.join(DESCRIPTORS).display())))?;
    let console = a
        .console_socket
        .as_deref()
        .map(crate::tty::connect_console_socket)
        .transpose()?;
    let images = checkpoint::open_dir(&image)?;

    // Foreground: block the forwarded signals before the init exists so none is lost.
    let sfd = if a.detach {
        None
    } else {
        let set = super::run::forwarded_set();
        set.thread_block().ctx(|| "block signals")?;
        let sfd = nix::sys::signalfd::SignalFd::with_flags(
            &set,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )
        .ctx(|| "signalfd")?;
        if !a.no_subreaper {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        Some(sfd)
    };

    let root = ctx.root(true)?;
    let dir = root.create_container(&a.id)?;
    let mut cg: Option<Box<dyn CgroupManager>> = None;
    let mut restored: Option<i32> = None;
    let mut mounted: Vec<PathBuf> = Vec::new();
    let r = restore_inner(
        ctx,
        a,
        criu_bin,
        &bundle,
        &dir,
        &images,
        &image,
        mode,
        empty,
        &descriptors,
        console.as_ref(),
        &mut cg,
        &mut restored,
        &mut mounted,
    );
    for m in mounted.iter().rev() {
        let _ = umount2(m, MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(dir.path.join("criu-root"));
    let st = match r {
        Ok(st) => st,
        Err(e) => {
            if let Some(p) = restored {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
            }
            if let Some(cg) = cg {
                if let Err(ce) = cg.destroy_force() {
                    logging::warn(format!("cleanup after failed restore: {ce}"));
                }
            }
            if let Err(de) = dir.remove() {
                logging::warn(format!("cleanup after failed restore: {de}"));
            }
            return Err(e);
        }
    };
    let Some(sfd) = sfd else {
        return Ok(0);
    };
    let id = st.id.clone();
    drop(dir);
    let code = super::run::wait_loop(st.pid, &sfd, None);
    match ctx.container(&id) {
        Ok(dir) => {
            if let Ok(Some(st)) = dir.load() {
                let status = crate::container::status(&dir, &st);
                super::delete::destroy(ctx, dir, &st, status)?;
            }
        }
        Err(Error::NotExist(_)) => {}
        Err(e) => return Err(e),
    }
    Ok(code)
}

/// Mount points of the config's mounts, made in the rootfs as `create` would (CRIU mounts
/// over them); bind mounts are mounted for the time of the restore so that mount points of
/// mounts nested in them can be made.
fn prepare_mounts(
    spec: &oci_spec::runtime::Spec,
    rootfs: &Path,
    mounted: &mut Vec<PathBuf>,
) -> Result<()> {
    use crate::rootfs::safe_path;
    let mounts: Vec<_> = spec.mounts().iter().flatten().collect();
    let on_tmpfs = |d: &Path| {
        mounts.iter().any(|m| {
            m.typ().as_deref() == Some("tmpfs")
                && d.starts_with(m.destination())
                && d != m.destination().as_path()
        })
    };
    for m in &mounts {
        if m.typ().as_deref() == Some("cgroup") || m.typ().as_deref() == Some("cgroup2") {
            continue;
        }
        if on_tmpfs(m.destination()) {
            continue;
        }
        let root_fd = safe_path::open_root(rootfs).ctx(|| format!("open {}", rootfs.display()))?;
        let is_bind = checkpoint::is_bind(m);
        let src_is_dir = match m.source() {
            Some(s) if is_bind => std::fs::metadata(s).map(|x| x.is_dir()).unwrap_or(true),
            _ => true,
        };
        let fd = if src_is_dir {
            safe_path::mkdir_all_in_root(root_fd.as_fd(), m.destination(), 0o755)
        } else {
            safe_path::create_file_in_root(root_fd.as_fd(), m.destination())
        }
        .ctx(|| {
            format!(
                "create criu restore mountpoint for {} mount",
                m.destination().display()
            )
        })?;
        if is_bind {
            if let Some(src) = m.source() {
                let target = safe_path::fd_path(&fd)
                    .ctx(|| format!("resolve {}", m.destination().display()))?;
                mount(
                    Some(src.as_path()),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(|| format!("bind {} for restore", src.display()))?;
                mounted.push(target);
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn restore_inner(
    ctx: &Ctx,
    a: &RestoreArgs,
    criu_bin: &str,
    b: &crate::spec::Bundle,
    dir: &ContainerDir,
    images: &std::fs::File,
    image: &Path,
    mode: i32,
    empty: u32,
    descriptors: &[String],
    console: Option<&OwnedFd>,
    cg_slot: &mut Option<Box<dyn CgroupManager>>,
    restored: &mut Option<i32>,
    mounted: &mut Vec<PathBuf>,
) -> Result<State> {
    let spec = &b.spec;
    let linux = spec.linux().as_ref();
    let opts_cg = ctx.cgroup_opts().clone();
    let cgroups_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let mut cg = cgroups::new_manager(cgroups_path.as_deref(), &a.id, &opts_cg)?;
    cgroups::check_new_container_cgroup(&cg.state())?;
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
    let me = nix::unistd::getpid().as_raw();
    let owner = {
        let uid = nix::unistd::geteuid().as_raw();
        crate::userns::user_name(uid).unwrap_or_else(|| uid.to_string())
    };
    let mut state = State {
        id: a.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: crate::time::rfc3339_nanos(std::time::SystemTime::now()),
        owner,
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: cg.state(),
        config: spec.clone(),
        host_mounts: Vec::new(),
        rootless: opts_cg.rootless,
        creator: crate::state::pid_start_time(me).map(|s| (me, s)),
    };
    dir.save(&state)?;
    cg.create(Some(&resources))?;
    let cg = cg_slot.insert(cg);
    state.cgroup = cg.state();
    dir.save(&state)?;

    // CRIU wants its root to be a mount point whose parent is not overmounted.
    let croot = dir.path.join("criu-root");
    std::fs::create_dir(&croot).ctx(|| format!("create {}", croot.display()))?;
    let croot = std::fs::canonicalize(&croot).ctx(|| "resolve criu-root")?;
    mount(
        Some(b.rootfs.as_path()),
        &croot,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", b.rootfs.display(), croot.display()))?;
    mounted.push(croot.clone());
    // The temporary binds go before CRIU runs (as runc): their unmount would otherwise
    // propagate into the restored mounts.
    let mut temp = Vec::new();
    let r = prepare_mounts(spec, &b.rootfs, &mut temp);
    for m in temp.iter().rev() {
        let _ = umount2(m, MntFlags::MNT_DETACH);
    }
    r?;

    let mut log_dir = image.to_path_buf();
    let work = match &a.work_path {
        Some(w) if !w.as_os_str().is_empty() => {
            log_dir = w.clone();
            Some(checkpoint::open_dir(w)?)
        }
        _ => None,
    };
    let mut opts = rpc::Opts {
        images_dir_fd: images.as_raw_fd(),
        evasive_devices: Some(true),
        log_level: Some(4),
        log_file: Some("restore.log".into()),
        rst_sibling: Some(true),
        root: Some(croot.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(mode),
        notify_scripts: Some(true),
        shell_job: Some(a.shell_job),
        ext_unix_sk: Some(a.ext_unix_sk),
        tcp_established: Some(a.tcp_established),
        file_locks: Some(a.file_locks),
        empty_ns: Some(empty),
        orphan_pts_master: Some(true),
        auto_dedup: Some(a.auto_dedup),
        lazy_pages: Some(a.lazy_pages),
        lsm_profile: a.lsm_profile.clone(),
        lsm_mount_context: a.lsm_mount_context.clone(),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        config_file: checkpoint::config_file(spec),
        ..Default::default()
    };
    // Namespaces given by path: network and PID are external to the image (handed to CRIU as
    // inherited fds under the keys used at dump); the others are joined.
    let mut extra: Vec<OwnedFd> = Vec::new();
    for n in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let Some(p) = n.path() else { continue };
        match n.typ() {
            LinuxNamespaceType::Network | LinuxNamespaceType::Pid => {
                let f = std::fs::File::open(p).map_err(|_| {
                    Error::config(format!(
                        "Requested network namespace {} does not exist",
                        p.display()
                    ))
                })?;
                opts.inherit_fd.push(rpc::InheritFd {
                    key: checkpoint::ns_key(n.typ()).into(),
                    fd: 4 + extra.len() as i32,
                });
                extra.push(f.into());
            }
            LinuxNamespaceType::Cgroup => {
                return Err(Error::config(format!(
                    "Do not know how to handle namespace {:?}",
                    n.typ()
                )))
            }
            t => {
                let name = match t {
                    LinuxNamespaceType::Mount => "mnt",
                    LinuxNamespaceType::Ipc => "ipc",
                    LinuxNamespaceType::Uts => "uts",
                    LinuxNamespaceType::User => "user",
                    LinuxNamespaceType::Time => "time",
                    _ => continue,
                };
                opts.join_ns.push(rpc::JoinNamespace {
                    ns: name.into(),
                    ns_file: p.to_string_lossy().into_owned(),
                });
            }
        }
    }
    for m in spec.mounts().iter().flatten() {
        if checkpoint::is_bind(m) {
            opts.ext_mnt.push(rpc::ExtMountMap {
                key: checkpoint::mount_dest(&b.rootfs, m.destination()),
                val: m
                    .source()
                    .as_ref()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            });
        }
    }
    if linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty())
    {
        opts.ext_mnt.push(rpc::ExtMountMap {
            key: "/dev/null".into(),
            val: "/dev/null".into(),
        });
    }
    for d in checkpoint::device_paths(spec) {
        opts.ext_mnt.push(rpc::ExtMountMap {
            key: d.clone(),
            val: d,
        });
    }
    for (i, s) in descriptors.iter().enumerate() {
        if s.contains("pipe:") {
            opts.inherit_fd.push(rpc::InheritFd {
                key: s.clone(),
                fd: i as i32,
            });
        }
    }
    let extra_raw: Vec<RawFd> = extra.iter().map(|f| f.as_raw_fd()).collect();
    let swrk = Swrk::start(criu_bin, &extra_raw)?;
    drop(extra);
    // CRIU restores into the cgroup it is in: put it into the container's, and tell it so.
    cg.add_task(swrk.pid)?;
    for line in std::fs::read_to_string(format!("/proc/{}/cgroup", swrk.pid))
        .ctx(|| "read criu's cgroups")?
        .lines()
    {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
        if let (Some(c), Some(p)) = (ctrl, path) {
            opts.cg_root.push(rpc::CgroupRoot {
                ctrl: Some(c.to_string()),
                path: p.to_string(),
            });
        }
    }
    let req = rpc::Req {
        r#type: rpc::req_type::RESTORE,
        opts: Some(opts),
        ..Default::default()
    };
    let hooks = spec.hooks().as_ref();
    let r = swrk.call(&req, |n| {
        logging::debug(format!("criu notify: {} pid {}", n.script, n.pid));
        match n.script.as_str() {
            "setup-namespaces" => {
                let has =
                    |h: Option<&Vec<oci_spec::runtime::Hook>>| h.is_some_and(|v| !v.is_empty());
                #[allow(deprecated)]
                let pre = hooks.and_then(|h| h.prestart().as_ref());
                let cr = hooks.and_then(|h| h.create_runtime().as_ref());
                if has(pre) || has(cr) {
                    let mut s = state.clone();
                    s.pid = n.pid;
                    let j = serde_json::to_string(&OciState::new(&s, Status::Creating))
                        .unwrap_or_default();
                    hooks::run_all("prestart", pre, &j, Some(&b.dir))?;
                    hooks::run_all("createRuntime", cr, &j, Some(&b.dir))?;
                }
            }
            "post-restore" => {
                *restored = Some(n.pid);
                state.pid = n.pid;
                state.pid_start = crate::container::start_time_of(n.pid)?;
                state.creator = None;
                state.created = crate::time::rfc3339_nanos(std::time::SystemTime::now());
                dir.save(&state)?;
                if let Some(p) = &a.pid_file {
                    crate::state::write_pid_file(p, n.pid)?;
                }
            }
            "orphan-pts-master" => {
                let (Some(m), Some(sock)) = (n.fd.as_ref(), console) else {
                    return Err(Error::msg(
                        "criu sent a terminal but there is no --console-socket",
                    ));
                };
                crate::tty::send_fd(sock.as_fd(), m.as_raw_fd(), "/dev/ptmx")?;
            }
            _ => {}
        }
        Ok(())
    });
    let code = swrk.finish();
    if let Err(e) = r {
        for l in criu::log_errors(&log_dir.join("restore.log")) {
            logging::debug(l);
        }
        return Err(Error::msg(format!(
            "{e} (see {})",
            log_dir.join("restore.log").display()
        )));
    }
    if code != Some(0) {
        return Err(Error::msg(format!(
            "criu failed: exit status {code:?} (see {})",
            log_dir.join("restore.log").display()
        )));
    }
    if state.pid == 0 {
        return Err(Error::msg(
            "criu restored nothing (no post-restore notification)",
        ));
    }
    Ok(state)
}
