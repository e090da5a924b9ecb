//! Mounting one `mounts[]` entry into the rootfs: bind/rbind with flag remounts, real
//! filesystems (tmpfs, proc, sysfs, devpts, mqueue, overlay, …), `cgroup` (per-hierarchy binds of
//! the container's own cgroup, or cgroup2), propagation and recursive attributes.

use super::mount_opts::{self, MountOpts};
use super::safe_path::{create_file_in_root, mkdir_all_in_root, open_in_root, proc_fd_path};
use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct MountCtx<'a> {
    /// O_PATH fd of the rootfs directory.
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    /// The container has its own user namespace (mknod and some mounts are not allowed).
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// `linux.mountLabel` when SELinux is enabled (added as `context=` to filesystem mounts).
    pub mount_label: Option<&'a str>,
    /// Where the container's cgroup lives on the host, for `cgroup` mounts.
    pub cgroup_mounts: &'a [crate::cgroups::CgroupMount],
    /// Asks the runtime (host root, in this mount namespace) for the source of `mounts[i]`:
    /// an O_PATH fd, or a detached idmapped tree for an idmapped entry. See [`super::sources`].
    pub request_source: &'a dyn Fn(usize) -> Result<OwnedFd>,
    /// The runtime runs as real root and can open what this process cannot (runc asks it only
    /// then: a rootless runtime's host side cannot reach more than the init).
    pub runtime_root: bool,
}

fn do_mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(src, target, fstype, flags, data)
}

fn cstr(p: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::config(format!("mount path {:?} contains a NUL byte", p)))
}

/// Flags that only matter for the initial mount, never for a bind remount.
fn remount_flags(o: &MountOpts) -> MsFlags {
    o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
}

/// Remounts a bind mount with `flags`, keeping flags the kernel locked (a bind of a nodev/nosuid
/// mount cannot drop them; in a user namespace that is EPERM unless they are repeated).
pub fn remount_bind(fd: &OwnedFd, flags: MsFlags) -> nix::Result<()> {
    let target = proc_fd_path(fd);
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match do_mount(None, &target, None, base | flags, None) {
        Err(Errno::EPERM) => {
            let st = nix::sys::statvfs::fstatvfs(fd)?;
            use nix::sys::statvfs::FsFlags;
            let mut locked = MsFlags::empty();
            for (f, m) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
                (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            ] {
                if st.flags().contains(f) {
                    locked |= m;
                }
            }
            do_mount(None, &target, None, base | flags | locked, None)
        }
        r => r,
    }
}

/// Flags the kernel locks on mounts a less privileged mount namespace inherits (MNT_LOCK_*).
const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME);
const ATIME: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME)
    .union(MsFlags::MS_NODIRATIME);
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The mount flags of the mount `fd` is on, from statfs (MS_STRICTATIME when neither noatime
/// nor relatime is set: the kernel has no flag for it).
fn mount_flags_of(fd: &OwnedFd) -> nix::Result<MsFlags> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::fstatvfs(fd)?;
    let mut f = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_SYNCHRONOUS, MsFlags::MS_SYNCHRONOUS),
        (FsFlags::ST_MANDLOCK, MsFlags::MS_MANDLOCK),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::from_bits_retain(0x2000), MS_NOSYMFOLLOW),
    ] {
        if st.flags().contains(s) {
            f |= m;
        }
    }
    if !f.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        f |= MsFlags::MS_STRICTATIME;
    }
    Ok(f)
}

/// Option names of `flags`, for errors.
fn flag_names(flags: MsFlags) -> String {
    let names = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MS_NOSYMFOLLOW, "nosymfollow"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

/// The flags a bind mount's options name, applied to the new mount `fd` as runc 1.4 does: a
/// bind remount with exactly the named flags (what is named clear is cleared, including flags
/// the source had; atime flags are kept unless one is named). When the kernel refuses that
/// (EPERM: flags locked because the mount came from a more privileged mount namespace, as in a
/// user namespace), the source's lockable flags are re-applied on top — unless the options
/// clear one of them, or name an atime flag other than the source's: that is an error, never a
/// silently different mount.
pub fn apply_bind_flags(fd: &OwnedFd, set: MsFlags, cleared: MsFlags) -> Result<()> {
    let target = proc_fd_path(fd);
    let flags = set | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let Err(first) = do_mount(None, &target, None, flags, None) else {
        return Ok(());
    };
    let src = mount_flags_of(fd).ctx(|| "statfs the bind mount")?;
    let locked = src & cleared & LOCKABLE;
    if !locked.is_empty() {
        return Err(Error::Sys {
            ctx: format!("cannot clear locked flags {}", flag_names(locked)),
            source: first,
        });
    }
    if set.intersects(ATIME) && set & ATIME != src & ATIME {
        return Err(Error::Sys {
            ctx: format!(
                "cannot change locked atime flags {}",
                flag_names(src & ATIME)
            ),
            source: first,
        });
    }
    do_mount(None, &target, None, flags | (src & LOCKABLE), None).map_err(|e| Error::Sys {
        ctx: format!(
            "remount with locked flags {} re-applied",
            flag_names(src & LOCKABLE)
        ),
        source: e,
    })
}

/// mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {set, clr, userns_fd}).
pub fn mount_setattr(
    fd: &OwnedFd,
    recursive: bool,
    set: u64,
    clr: u64,
    userns: Option<BorrowedFd>,
) -> nix::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: userns.map(|u| u.as_raw_fd() as u64).unwrap_or(0),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: valid fd, empty path string, attr struct sized as passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The recursive `r*` options: mount_setattr with AT_RECURSIVE on the whole subtree.
pub fn set_recursive_attrs(fd: &OwnedFd, set: u64, clr: u64) -> nix::Result<()> {
    mount_setattr(fd, true, set, clr, None)
}

/// runc's words before a failed mount's error, which callers match on.
pub fn what(m: &Mount) -> String {
    let typ = m.typ().as_deref().unwrap_or("");
    format!(
        "error mounting {:?} to rootfs at {:?}",
        m.source()
            .as_ref()
            .map_or_else(|| typ.to_string(), |s| s.to_string_lossy().into_owned()),
        m.destination().display().to_string()
    )
}

/// Mounts config entry number `index`.
pub fn mount_entry(ctx: &MountCtx, index: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let empty = Vec::new();
    // runc's wording, which callers match on (in `what` below).
    let mut opts = mount_opts::parse(m.options().as_ref().unwrap_or(&empty));
    if matches!(typ, "proc" | "sysfs" | "cgroup" | "cgroup2") {
        refuse_symlinked_target(ctx.root, dest, typ)?;
    }
    if !(opts.is_bind() || typ == "bind") && super::safe_path::clean(dest) == Path::new("dev") {
        // A read-only /dev is filled first (devices, /dev/pts, …) and made read-only by
        // `finalize`, as runc does.
        opts.flags -= MsFlags::MS_RDONLY;
    }
    let what = || what(m);

    if typ == "cgroup" {
        return super::cgroupfs::mount_cgroup(ctx, dest, &opts).map_err(|e| match e {
            Error::Sys { ctx: c, source } => Error::Sys {
                ctx: format!("{}: {c}", what()),
                source,
            },
            e => e,
        });
    }

    if opts.is_bind() || typ == "bind" {
        // Sources the runtime opens (runc 1.4): an idmapped one always (only host root can
        // idmap it), resolved now that the earlier mounts are done; any other when this process
        // cannot reach it (a user namespace's root under a directory only host root may enter).
        let idmapped = super::idmap::is_idmapped(m);
        let ask = idmapped
            || (ctx.runtime_root
                && source_path(ctx.bundle, m).is_some_and(|p| std::fs::metadata(p).is_err()));
        let source = if ask {
            Some((ctx.request_source)(index).map_err(|e| prefix(e, &what()))?)
        } else {
            None
        };
        bind_entry(ctx, m, &opts, source, idmapped).map_err(|e| prefix(e, &what()))?;
    } else {
        fs_entry(ctx, m, typ, &opts).map_err(|e| prefix(e, &what()))?;
    }
    after_mount(ctx, dest, &opts).map_err(|e| prefix(e, &what()))
}

/// proc, sysfs and the cgroup tree go on an ordinary directory: a symlink there (or any other
/// non-directory) is refused rather than followed to wherever it points (runc: "must be mounted
/// on ordinary directory").
fn refuse_symlinked_target(root: BorrowedFd, dest: &Path, typ: &str) -> Result<()> {
    let clean = super::safe_path::clean(dest);
    let (Some(parent), Some(name)) = (clean.parent(), clean.file_name()) else {
        return Ok(());
    };
    let dir = match open_in_root(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(d) => d,
        // A missing parent is made (as a directory) by the mount itself.
        Err(_) => return Ok(()),
    };
    match nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(Error::config(format!(
            "mount {}: filesystem {typ:?} must be mounted on ordinary directory",
            dest.display()
        ))),
        _ => Ok(()),
    }
}

pub(super) fn prefix(e: Error, what: &str) -> Error {
    match e {
        Error::Sys { ctx, source } => Error::Sys {
            ctx: format!("{what}: {ctx}"),
            source,
        },
        Error::Io { ctx, source } => Error::Io {
            ctx: format!("{what}: {ctx}"),
            source,
        },
        e => e,
    }
}

/// A mount's source on the host: absolute, or relative to the bundle.
pub(super) fn source_path(bundle: &Path, m: &Mount) -> Option<PathBuf> {
    m.source().as_ref().map(|s| {
        if s.is_absolute() {
            s.clone()
        } else {
            bundle.join(s)
        }
    })
}

/// A bind mount. `source`: the entry's source opened by the runtime (an O_PATH fd, or the
/// detached idmapped tree of an idmapped entry); else the init resolves the path itself.
fn bind_entry(
    ctx: &MountCtx,
    m: &Mount,
    opts: &MountOpts,
    source: Option<OwnedFd>,
    idmapped: bool,
) -> Result<()> {
    let dest = m.destination();
    let src = source_path(ctx.bundle, m).ok_or_else(|| {
        Error::config(format!(
            "mounts: bind mount {} has no source",
            dest.display()
        ))
    })?;
    let is_dir = match &source {
        Some(fd) => nix::sys::stat::fstat(fd)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .ctx(|| format!("source {}", src.display()))?,
        None => std::fs::metadata(&src)
            .ctx(|| format!("source {}", src.display()))?
            .is_dir(),
    };
    let target = if is_dir {
        mkdir_all_in_root(ctx.root, dest, 0o755)
    } else {
        create_file_in_root(ctx.root, dest)
    }
    .ctx(|| "create mount point")?;
    match source {
        Some(t) if idmapped => super::idmap::attach(t.as_raw_fd(), &target)
            .ctx(|| format!("attach idmapped {}", src.display()))?,
        _ => {
            let csrc = match &source {
                Some(fd) => proc_fd_path(fd),
                None => cstr(&src)?,
            };
            let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
            do_mount(Some(&csrc), &proc_fd_path(&target), None, flags, None)
                .ctx(|| format!("bind {}", src.display()))?;
        }
    }
    let extra = remount_flags(opts);
    let cleared = opts.cleared - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() || !cleared.is_empty() {
        let top = open_in_root(ctx.root, dest, OFlag::O_PATH).ctx(|| "reopen mount point")?;
        apply_bind_flags(&top, extra, cleared)
            .map_err(|e| prefix(e, "failed to set user-requested vfs flags on bind-mount"))?;
    }
    Ok(())
}

fn fs_entry(ctx: &MountCtx, m: &Mount, typ: &str, opts: &MountOpts) -> Result<()> {
    let dest = m.destination();
    // A tmpfs over an existing directory takes that directory's mode (setuid/setgid/sticky
    // bits included) unless the options name one (runc ≥ 1.1.9).
    let inherited_mode = (typ == "tmpfs")
        .then(|| open_in_root(ctx.root, dest, OFlag::O_PATH).ok())
        .flatten()
        .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
        .map(|st| st.st_mode & 0o7777);
    let target = mkdir_all_in_root(ctx.root, dest, 0o755).ctx(|| "create mount point")?;
    let src = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let csrc = std::ffi::CString::new(src.as_bytes())
        .map_err(|_| Error::config("mounts: source contains a NUL byte"))?;
    let mut data = opts.data_string();
    if let Some(mode) = inherited_mode {
        // First, so that a `mode=` of the options (later in the list) wins.
        data = if data.is_empty() {
            format!("mode={mode:04o}")
        } else {
            format!("mode={mode:04o},{data}")
        };
    }
    if let Some(label) = ctx
        .mount_label
        .filter(|_| !matches!(typ, "proc" | "sysfs" | "cgroup" | "cgroup2"))
    {
        if !data.is_empty() {
            data.push(',');
        }
        data.push_str(&format!("context=\"{label}\""));
    }
    let data = (!data.is_empty()).then_some(data.as_str());
    let fstype = (!typ.is_empty()).then_some(typ);
    if opts.tmpcopyup && typ == "tmpfs" {
        return super::copyup::mount_tmpfs_copyup(ctx.root, dest, &target, opts.flags, data);
    }
    match do_mount(
        Some(&csrc),
        &proc_fd_path(&target),
        fstype,
        opts.flags,
        data,
    ) {
        Ok(()) => Ok(()),
        // Inside a user namespace without its own network namespace sysfs cannot be mounted,
        // and mqueue cannot be without an owned IPC namespace: bind the host's instead.
        Err(Errno::EPERM) if ctx.userns && (typ == "sysfs" || typ == "mqueue") => {
            let host = if typ == "sysfs" {
                c"/sys"
            } else {
                c"/dev/mqueue"
            };
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            do_mount(Some(host), &proc_fd_path(&target), None, flags, None)
                .ctx(|| format!("bind host {} instead", host.to_string_lossy()))?;
            let extra =
                remount_flags(opts) | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let top = open_in_root(ctx.root, dest, OFlag::O_PATH).ctx(|| "reopen mount point")?;
            remount_bind(&top, extra).ctx(|| "remount")?;
            Ok(())
        }
        Err(e) => Err(e).ctx(|| format!("mount {src}")),
    }
}

fn after_mount(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<()> {
    if opts.propagation.is_empty() && opts.attr_set == 0 && opts.attr_clr == 0 {
        return Ok(());
    }
    let top = open_in_root(ctx.root, dest, OFlag::O_PATH).ctx(|| "reopen mount point")?;
    for p in &opts.propagation {
        do_mount(None, &proc_fd_path(&top), None, *p, None).ctx(|| "set propagation")?;
    }
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        set_recursive_attrs(&top, opts.attr_set, opts.attr_clr)
            .ctx(|| "mount_setattr (recursive options)")?;
    }
    Ok(())
}

/// Bind-mounts a host path onto a path in the rootfs (used for devices in a user namespace and
/// for /dev/console).
pub fn bind_into(root: BorrowedFd, src: &CStr, dest: &Path) -> Result<()> {
    let target = create_file_in_root(root, dest).ctx(|| format!("create {}", dest.display()))?;
    do_mount(
        Some(src),
        &proc_fd_path(&target),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .ctx(|| format!("bind {} on {}", src.to_string_lossy(), dest.display()))
}
