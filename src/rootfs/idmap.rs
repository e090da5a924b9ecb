//! Idmapped bind mounts: `mounts[].uidMappings`/`gidMappings` and the `idmap`/`ridmap` options.
//!
//! The kernel idmaps a mount only for a caller with CAP_SYS_ADMIN over the user namespace of
//! the mounted filesystem (the host's, for host filesystems) and only while the mount is still
//! detached. So the runtime makes the detached copy of each such source, when the init asks for
//! it while mounting the entries in order (see [`super::sources`]): a helper process of the
//! runtime, in the host's user namespace but in the container's mount namespace — so that a
//! source under an earlier entry's mount is found — clones the source with
//! `open_tree(OPEN_TREE_CLONE [| AT_RECURSIVE for rbind])` and idmaps it with
//! `mount_setattr(MOUNT_ATTR_IDMAP [, AT_RECURSIVE for ridmap])`, using a user namespace that
//! carries the mount's maps (see [`crate::userns::mapping_userns`]; one per distinct mapping).
//! The init receives the detached tree over the sync channel and attaches it with `move_mount`
//! onto its mount point inside the rootfs (before pivot_root); the mount's other options are
//! applied there as for any bind mount.
//!
//! Without mount-level maps, `idmap`/`ridmap` use the container's user namespace: the maps of a
//! new one, or the joined one itself.

use super::mount_opts;
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// What a mount entry asks for: whether it is idmapped, and recursively. The options are only
/// parsed for an entry that names `idmap`/`ridmap` or has mappings (every create asks this of
/// every mount, twice).
fn idmap_request(m: &Mount) -> Option<mount_opts::MountOpts> {
    let opts = m.options().as_deref().unwrap_or_default();
    let has_maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
        || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
    if !has_maps && !opts.iter().any(|o| o == "idmap" || o == "ridmap") {
        return None;
    }
    Some(mount_opts::parse(opts)).filter(|o| o.idmap || has_maps)
}

fn what(m: &Mount) -> String {
    format!("mounts: {}", m.destination().display())
}

/// Checks the idmapped entries of `spec` (part of config validation).
pub fn validate(spec: &Spec) -> Result<()> {
    let userns = crate::spec::has_ns(spec, LinuxNamespaceType::User);
    for m in spec.mounts().iter().flatten() {
        let Some(o) = idmap_request(m) else { continue };
        let uid = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        let gid = m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if uid != gid {
            return Err(Error::config(format!(
                "{}: uidMappings and gidMappings must be given together",
                what(m)
            )));
        }
        if !(o.is_bind() || m.typ().as_deref() == Some("bind")) {
            return Err(Error::config(format!(
                "{}: idmapped mounts are supported for bind mounts only",
                what(m)
            )));
        }
        if !uid && !userns {
            return Err(Error::config(format!(
                "{}: idmap without uidMappings/gidMappings needs a user namespace to take the \
                 mapping from",
                what(m)
            )));
        }
    }
    Ok(())
}

/// True if any mount of `spec` is idmapped.
pub fn any(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| idmap_request(m).is_some())
}

/// Whether `mounts[]` entry `m` is idmapped.
pub fn is_idmapped(m: &Mount) -> bool {
    idmap_request(m).is_some()
}

/// The user namespaces carrying each distinct (uid, gid) mapping, made once.
#[derive(Default)]
struct UsernsCache<'a> {
    made: Vec<(&'a [LinuxIdMapping], &'a [LinuxIdMapping], OwnedFd)>,
}

impl<'a> UsernsCache<'a> {
    fn get(
        &mut self,
        uid: &'a [LinuxIdMapping],
        gid: &'a [LinuxIdMapping],
    ) -> Result<BorrowedFd<'_>> {
        let i = match self
            .made
            .iter()
            .position(|(u, g, _)| *u == uid && *g == gid)
        {
            Some(i) => i,
            None => {
                let fd = crate::userns::mapping_userns(uid, gid)?;
                self.made.push((uid, gid, fd));
                self.made.len() - 1
            }
        };
        Ok(self.made[i].2.as_fd())
    }
}

/// The maps an idmapped entry takes: its own, else (`None`) the container's user namespace.
fn own_maps(m: &Mount) -> Option<(&[LinuxIdMapping], &[LinuxIdMapping])> {
    let u = m.uid_mappings().as_deref().filter(|v| !v.is_empty())?;
    let g = m.gid_mappings().as_deref().filter(|v| !v.is_empty())?;
    Some((u, g))
}

/// Checks, before anything is made, that the idmapped entries can be made (runtime side): the
/// runtime must be root, and an entry without maps needs the container's.
pub fn check(spec: &Spec, plan: &Plan) -> Result<()> {
    if !any(spec) {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::config(
            "mounts: idmapped mounts need the runtime to run as root (the kernel requires \
             CAP_SYS_ADMIN over the source file system)",
        ));
    }
    let joined = plan.join.iter().any(|j| j.typ == LinuxNamespaceType::User);
    let linux = spec.linux().as_ref();
    let container_maps = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .is_some_and(|v| !v.is_empty())
        && linux
            .and_then(|l| l.gid_mappings().as_deref())
            .is_some_and(|v| !v.is_empty());
    for m in spec.mounts().iter().flatten() {
        if is_idmapped(m) && own_maps(m).is_none() && !joined && !container_maps {
            return Err(Error::config(format!(
                "{}: idmap without uidMappings/gidMappings needs linux.uidMappings and \
                 linux.gidMappings to take the mapping from",
                what(m)
            )));
        }
    }
    Ok(())
}

/// The user namespaces idmapped entries are mapped with (runtime side): an entry's own maps
/// (a namespace made for them, once per distinct mapping), the joined user namespace, or one
/// with the container's maps.
pub struct IdmapUserns<'a> {
    spec: &'a Spec,
    plan: &'a Plan,
    cache: UsernsCache<'a>,
}

impl<'a> IdmapUserns<'a> {
    pub fn new(spec: &'a Spec, plan: &'a Plan) -> Self {
        IdmapUserns {
            spec,
            plan,
            cache: UsernsCache::default(),
        }
    }

    pub fn for_mount(&mut self, m: &'a Mount) -> Result<BorrowedFd<'_>> {
        if let Some((u, g)) = own_maps(m) {
            return self.cache.get(u, g);
        }
        if let Some(j) = self
            .plan
            .join
            .iter()
            .find(|j| j.typ == LinuxNamespaceType::User)
        {
            return Ok(j.fd.as_fd());
        }
        let linux = self.spec.linux().as_ref();
        let u = linux
            .and_then(|l| l.uid_mappings().as_deref())
            .unwrap_or_default();
        let g = linux
            .and_then(|l| l.gid_mappings().as_deref())
            .unwrap_or_default();
        if u.is_empty() || g.is_empty() {
            return Err(Error::config(format!(
                "{}: idmap without uidMappings/gidMappings needs linux.uidMappings and \
                 linux.gidMappings to take the mapping from",
                what(m)
            )));
        }
        self.cache.get(u, g)
    }
}

/// A detached, idmapped copy of `src`, the source of entry `m`:
/// `open_tree(OPEN_TREE_CLONE [| AT_RECURSIVE for rbind])`, then
/// `mount_setattr(MOUNT_ATTR_IDMAP [, AT_RECURSIVE for ridmap])` with `userns`.
pub fn make_tree(m: &Mount, src: &Path, userns: BorrowedFd) -> Result<OwnedFd> {
    let o = idmap_request(m).unwrap_or_default();
    let rec_bind = o.flags.contains(nix::mount::MsFlags::MS_REC);
    let tree =
        open_tree(src, rec_bind).ctx(|| format!("{}: open_tree {}", what(m), src.display()))?;
    super::mounts::mount_setattr(&tree, o.idmap_recursive, MOUNT_ATTR_IDMAP, 0, Some(userns))
        .map_err(|e| match e {
            nix::errno::Errno::EINVAL => {
                // With submounts in the tree, name the one whose file system refuses.
                let (at, fs) = unsupported_mount(src, rec_bind && o.idmap_recursive, userns)
                    .unwrap_or_else(|| (src.to_path_buf(), String::new()));
                let fs = if fs.is_empty() {
                    fs
                } else {
                    format!(" ({fs})")
                };
                Error::config(format!(
                    "{}: cannot idmap {}: its file system{fs} does not support idmapped \
                     mounts (mount_setattr: EINVAL)",
                    what(m),
                    at.display()
                ))
            }
            e => Error::Sys {
                ctx: format!("{}: idmap {}: mount_setattr", what(m), src.display()),
                source: e,
            },
        })?;
    Ok(tree)
}

/// After a recursive idmap of `src` failed with EINVAL: the first mount of the tree (`src`
/// itself, then the mounts below it, top down) that cannot be idmapped on its own, with its
/// file system type from mountinfo. Each is tried on a detached, non-recursive clone that is
/// dropped again. `None` when none refuses alone (the EINVAL had another cause).
fn unsupported_mount(
    src: &Path,
    recursive: bool,
    userns: BorrowedFd,
) -> Option<(std::path::PathBuf, String)> {
    let top = std::fs::canonicalize(src).ok()?;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // (mount point, fs type) of every mount, in mount order.
    let mounts: Vec<(std::path::PathBuf, String)> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mp = crate::cgroups::detect::unescape_mountinfo(pre.split(' ').nth(4)?);
            Some((mp.into(), post.split(' ').next()?.to_string()))
        })
        .collect();
    let fs_of = |p: &Path| {
        mounts
            .iter()
            .filter(|(mp, _)| p.starts_with(mp))
            .max_by_key(|(mp, _)| mp.as_os_str().len())
            .map(|(_, fs)| fs.clone())
            .unwrap_or_default()
    };
    let mut cands = vec![top.clone()];
    if recursive {
        let mut below: Vec<_> = mounts
            .iter()
            .filter(|(mp, _)| mp != &top && mp.starts_with(&top))
            .map(|(mp, _)| mp.clone())
            .collect();
        below.sort_by_key(|p| p.as_os_str().len());
        below.dedup();
        cands.extend(below);
    }
    cands.into_iter().find_map(|p| {
        let tree = open_tree(&p, false).ok()?;
        let r = super::mounts::mount_setattr(&tree, false, MOUNT_ATTR_IDMAP, 0, Some(userns));
        (r == Err(nix::errno::Errno::EINVAL)).then(|| {
            let fs = fs_of(&p);
            (p, fs)
        })
    })
}

fn open_tree(src: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(src.as_os_str().as_bytes())
        .map_err(|_| nix::errno::Errno::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: valid C string, flags as documented for open_tree(2).
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if r < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: open_tree returned a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Attaches a detached tree onto `target` (an fd of the mount point): init side.
pub fn attach(tree: RawFd, target: &OwnedFd) -> nix::Result<()> {
    // SAFETY: both fds are open; empty paths with the EMPTY_PATH flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// Whether the kernel has mount_setattr(2) (Linux 5.12+), which idmapped mounts need: probed
/// with an invalid fd (EBADF when present, ENOSYS when not).
pub fn kernel_supported() -> bool {
    // SAFETY: the call fails on the fd check before reading the (null) attribute pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            std::ptr::null::<u8>(),
            32usize,
        )
    };
    !(r < 0 && nix::errno::Errno::last() == nix::errno::Errno::ENOSYS)
}
