//! `checkpoint ID`: dump a running container with CRIU (`criu swrk`), as runc does: the images
//! go to `--image-path` (default `./checkpoint`), the container is destroyed afterwards unless
//! `--leave-running` or `--pre-dump`. See docs/architecture.md ("Checkpoint and restore").

use super::Ctx;
use crate::cli::CheckpointArgs;
use crate::container::{self, Status};
use crate::criu::{self, rpc, Swrk};
use crate::error::{Context, Error, Result};
use crate::logging;
use crate::state::State;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Written in the image directory: the init's fds 0–2 as /proc/<pid>/fd shows them (restore
/// hands pipes among them back to CRIU as inherited fds).
pub const DESCRIPTORS: &str = "descriptors.json";
/// The CRIU configuration file runc points CRIU at unless `org.criu.config` says otherwise.
const DEFAULT_CONFIG_FILE: &str = "/etc/criu/runc.conf";

/// The image directory (made if missing) and the checked `--parent-path` (relative to it).
pub fn image_paths(
    image: Option<&Path>,
    parent: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let image = match image {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir()
            .ctx(|| "current directory")?
            .join("checkpoint"),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&image)
        .ctx(|| format!("create image directory {}", image.display()))?;
    let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok((image, None));
    };
    if parent.is_absolute() {
        return Err(Error::config("--parent-path must be relative"));
    }
    let real = image.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok((image, Some(parent.to_path_buf()))),
        Ok(_) => Err(Error::config(format!(
            "invalid --parent-path: stat {}: not a directory",
            real.display()
        ))),
        Err(e) => Err(Error::config(format!(
            "invalid --parent-path: stat {}: {e}",
            real.display()
        ))),
    }
}

/// `--empty-ns`: as runc, the network namespace is always restored empty; only `network` may be
/// named.
pub fn empty_ns(names: &[String]) -> Result<u32> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for n in names {
        match n.as_str() {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            _ => return Err(Error::config(format!("namespace {n:?} is not supported"))),
        }
    }
    Ok(mask)
}

/// Opens (making it, mode 0700) a directory whose fd CRIU gets.
pub fn open_dir(p: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).ctx(|| format!("create {}", p.display())),
    }
    std::fs::File::open(p).ctx(|| format!("open {}", p.display()))
}

/// The CRIU configuration file: the `org.criu.config` annotation (empty: none) or runc's default.
pub fn config_file(spec: &Spec) -> Option<String> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.criu.config"))
    {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some(DEFAULT_CONFIG_FILE.to_string()),
    }
}

/// Path of a namespace given by path in the config.
pub fn ns_path(spec: &Spec, t: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == t)?
        .path()
        .clone()
}

/// CRIU's key for an external namespace (`extRootNetNS`, `extRootPidNS`).
pub fn ns_key(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "extRootNetNS",
        _ => "extRootPidNS",
    }
}

/// The mount destination as CRIU sees it: resolved inside the rootfs as far as it exists (a
/// destination through a symlink is where the mount really is), the rest appended as given.
pub fn mount_dest(rootfs: &Path, dest: &Path) -> String {
    use crate::rootfs::safe_path;
    let rel = safe_path::clean(dest);
    let parts: Vec<_> = rel.components().collect();
    let root = safe_path::open_root(rootfs).ok();
    for keep in (1..=parts.len()).rev() {
        let Some(r) = root.as_ref() else { break };
        let prefix: PathBuf = parts[..keep].iter().collect();
        let Ok(f) = safe_path::open_in_root(
            std::os::fd::AsFd::as_fd(r),
            &prefix,
            nix::fcntl::OFlag::O_PATH,
        ) else {
            continue;
        };
        let Some(resolved) = safe_path::fd_path(&f)
            .ok()
            .and_then(|p| p.strip_prefix(rootfs).ok().map(Path::to_path_buf))
        else {
            break;
        };
        let mut out = Path::new("/").join(resolved);
        for c in &parts[keep..] {
            out.push(c);
        }
        return out.to_string_lossy().into_owned();
    }
    Path::new("/").join(rel).to_string_lossy().into_owned()
}

/// Is this spec mount a bind mount?
pub fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

/// Device nodes CRIU must treat as external: the defaults and the spec's devices.
pub fn device_paths(spec: &Spec) -> Vec<String> {
    let mut v: Vec<String> = crate::rootfs::devices::default_devices()
        .into_iter()
        .map(|d| d.path)
        .collect();
    if let Some(ds) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        for d in ds {
            let p = d.path().to_string_lossy().into_owned();
            if !v.contains(&p) {
                v.push(p);
            }
        }
    }
    v
}

fn freeze_cgroup(st: &State) -> Option<String> {
    let hs = &st.cgroup.hierarchies;
    let h = match st.cgroup.mode {
        crate::cgroups::CgroupMode::V2 => hs.iter().find(|h| h.controllers.is_empty()),
        _ => hs
            .iter()
            .find(|h| h.controllers.split(',').any(|c| c == "freezer")),
    }?;
    Some(h.dir.to_string_lossy().into_owned())
}

pub fn run(ctx: &Ctx, a: &CheckpointArgs, criu_bin: &str) -> Result<i32> {
    let dir = ctx.container(&a.id)?;
    let st = container::load(&dir)?;
    let status = container::status(&dir, &st);
    if matches!(status, Status::Created | Status::Stopped | Status::Creating) {
        return Err(Error::State(format!(
            "Container cannot be checkpointed in {status} state"
        )));
    }
    let mode = criu::cg_mode(a.manage_cgroups_mode.as_deref())?;
    let empty = empty_ns(&a.empty_ns)?;
    let page_server = match a.page_server.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let bad = || Error::config("Use --page-server ADDRESS:PORT to specify page server");
            let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            if addr.is_empty() || port.is_empty() {
                return Err(bad());
            }
            let port: i32 = port
                .parse()
                .map_err(|_| Error::config("Invalid port number"))?;
            Some(rpc::PageServerInfo {
                address: Some(addr.to_string()),
                port: Some(port),
            })
        }
    };
    let (image, parent) = image_paths(a.image_path.as_deref(), a.parent_path.as_deref())?;
    criu::version(criu_bin)?;
    let images = open_dir(&image)?;
    let mut log_dir = image.clone();
    let work = match &a.work_path {
        Some(w) if !w.as_os_str().is_empty() => {
            log_dir = w.clone();
            Some(open_dir(w)?)
        }
        _ => None,
    };
    let spec = &st.config;
    let mut opts = rpc::Opts {
        images_dir_fd: images.as_raw_fd(),
        log_level: Some(4),
        log_file: Some("dump.log".into()),
        root: Some(st.rootfs.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(mode),
        notify_scripts: Some(true),
        pid: Some(st.pid),
        shell_job: Some(a.shell_job),
        leave_running: Some(a.leave_running),
        tcp_established: Some(a.tcp_established),
        tcp_skip_in_flight: Some(a.tcp_skip_in_flight),
        link_remap: Some(a.link_remap),
        ext_unix_sk: Some(a.ext_unix_sk),
        file_locks: Some(a.file_locks),
        empty_ns: Some(empty),
        orphan_pts_master: Some(true),
        auto_dedup: Some(a.auto_dedup),
        lazy_pages: Some(a.lazy_pages),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        config_file: config_file(spec),
        freeze_cgroup: freeze_cgroup(&st),
        ps: page_server,
        ..Default::default()
    };
    for t in [LinuxNamespaceType::Network, LinuxNamespaceType::Pid] {
        if let Some(p) = ns_path(spec, t) {
            use std::os::unix::fs::MetadataExt;
            let ino = std::fs::metadata(&p)
                .ctx(|| format!("stat namespace {}", p.display()))?
                .ino();
            let name = if t == LinuxNamespaceType::Network {
                "net"
            } else {
                "pid"
            };
            opts.external.push(format!("{name}[{ino}]:{}", ns_key(t)));
        }
    }
    if let Some(p) = &parent {
        opts.parent_img = Some(p.to_string_lossy().into_owned());
        opts.track_mem = Some(true);
    }
    if a.pre_dump {
        criu::check_features(
            criu_bin,
            rpc::Features {
                mem_track: Some(true),
                ..Default::default()
            },
        )?;
    }
    if a.lazy_pages {
        criu::check_features(
            criu_bin,
            rpc::Features {
                lazy_pages: Some(true),
                ..Default::default()
            },
        )?;
        if a.status_fd != -1 {
            // SAFETY: F_GETFL on a caller-given fd number.
            let fl = unsafe { libc::fcntl(a.status_fd, libc::F_GETFL) };
            if fl == -1 {
                return Err(Error::config(format!(
                    "invalid --status-fd argument {}: bad file descriptor",
                    a.status_fd
                )));
            }
            if fl & (libc::O_WRONLY | libc::O_RDWR) == 0 {
                return Err(Error::config(format!(
                    "invalid --status-fd argument {}: not writable",
                    a.status_fd
                )));
            }
        }
    }
    if !a.pre_dump {
        let rootfs = &st.rootfs;
        for m in spec.mounts().iter().flatten() {
            if is_bind(m) {
                let d = mount_dest(rootfs, m.destination());
                opts.ext_mnt.push(rpc::ExtMountMap {
                    key: d.clone(),
                    val: d,
                });
            }
        }
        let masked = spec
            .linux()
            .as_ref()
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default();
        for p in masked {
            let host = format!("/proc/{}/root/{}", st.pid, p.trim_start_matches('/'));
            match std::fs::metadata(&host) {
                Ok(m) if !m.is_dir() => opts.ext_mnt.push(rpc::ExtMountMap {
                    key: p.clone(),
                    val: "/dev/null".into(),
                }),
                _ => {}
            }
        }
        for d in device_paths(spec) {
            opts.ext_mnt.push(rpc::ExtMountMap {
                key: d.clone(),
                val: d,
            });
        }
        let fds: Vec<String> = (0..3)
            .map(|i| {
                std::fs::read_link(format!("/proc/{}/fd/{i}", st.pid))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "/dev/null".into())
            })
            .collect();
        let j = serde_json::to_vec(&fds).unwrap_or_default();
        std::fs::write(image.join(DESCRIPTORS), j)
            .ctx(|| format!("write {}", image.join(DESCRIPTORS).display()))?;
    }
    let req = rpc::Req {
        r#type: if a.pre_dump {
            rpc::req_type::PRE_DUMP
        } else {
            rpc::req_type::DUMP
        },
        opts: Some(opts),
        ..Default::default()
    };
    let swrk = Swrk::start(criu_bin, &[])?;
    let r = swrk.call(&req, |n| {
        logging::debug(format!("criu notify: {}", n.script));
        if n.script == "post-dump" {
            let _ = std::fs::File::create(dir.path.join("checkpoint"));
        }
        if n.script == "status-ready" && a.status_fd != -1 {
            // SAFETY: write one byte to and close the caller's fd.
            unsafe {
                libc::write(a.status_fd, [0u8].as_ptr().cast(), 1);
                libc::close(a.status_fd);
            }
        }
        Ok(())
    });
    let code = swrk.finish();
    if let Err(e) = r {
        let _ = std::fs::remove_file(dir.path.join("checkpoint"));
        for l in criu::log_errors(&log_dir.join("dump.log")) {
            logging::debug(l);
        }
        return Err(Error::msg(format!(
            "{e} (see {})",
            log_dir.join("dump.log").display()
        )));
    }
    if code != Some(0) && !a.pre_dump {
        return Err(Error::msg(format!(
            "criu failed: exit status {code:?} (see {})",
            log_dir.join("dump.log").display()
        )));
    }
    if !a.leave_running && !a.pre_dump {
        let status = container::status(&dir, &st);
        if let Err(e) = super::delete::destroy(ctx, dir, &st, status) {
            logging::warn(format!("checkpoint: destroy: {e}"));
        }
    } else {
        let _ = std::fs::remove_file(dir.path.join("checkpoint"));
    }
    Ok(0)
}
