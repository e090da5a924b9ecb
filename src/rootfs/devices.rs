//! Device nodes and the standard /dev symlinks inside the rootfs.
//!
//! Outside a user namespace nodes are made with mknod; inside one (where mknod is not allowed)
//! the host's node is bind-mounted onto an empty file, as runc does.

use super::mounts::bind_into;
use super::safe_path::{clean, mkdir_all_in_root, open_in_root};
use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::OFlag;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// A device to create: path inside the container, kind, numbers, mode, owner.
#[derive(Debug, Clone)]
pub struct Dev {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn default_devices() -> Vec<Dev> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .iter()
    .map(|(p, ma, mi)| Dev {
        path: p.to_string(),
        kind: SFlag::S_IFCHR,
        major: *ma,
        minor: *mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Converts a `linux.devices` entry, validating its type.
pub fn from_spec(d: &LinuxDevice) -> Result<Dev> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::config(format!(
                "linux.devices: {}: type 'a' is not a device node type",
                d.path().display()
            )))
        }
    };
    Ok(Dev {
        path: d.path().to_string_lossy().into_owned(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates `dev` inside the rootfs. An existing node at the path is left alone.
pub fn create(root: BorrowedFd, dev: &Dev, userns: bool) -> Result<()> {
    let rel = clean(Path::new(&dev.path));
    if rel.as_os_str().is_empty() {
        return Err(Error::config(format!(
            "device path {:?} is invalid",
            dev.path
        )));
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::config(format!("device path {:?} is invalid", dev.path)))?;
    let dir =
        mkdir_all_in_root(root, parent, 0o755).ctx(|| format!("create parent of {}", dev.path))?;
    if userns {
        let host = std::ffi::CString::new(dev.path.as_bytes())
            .map_err(|_| Error::config("device path contains NUL"))?;
        return bind_into(root, &host, Path::new(&dev.path));
    }
    let rdev = makedev(dev.major, dev.minor);
    match mknodat(
        dir.as_fd(),
        name,
        dev.kind,
        Mode::from_bits_truncate(dev.mode),
        rdev,
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("mknod {}", dev.path)),
    }
    // mknod applies the umask; set the exact mode and owner.
    let fd = open_in_root(root, Path::new(&dev.path), OFlag::O_PATH)
        .ctx(|| format!("open {}", dev.path))?;
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        proc.as_str(),
        Mode::from_bits_truncate(dev.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| format!("chmod {}", dev.path))?;
    fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {}", dev.path))?;
    Ok(())
}

/// /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr, /dev/ptmx (→ pts/ptmx), /dev/core when the
/// host has /proc/kcore.
pub fn create_symlinks(root: BorrowedFd) -> Result<()> {
    let dev = mkdir_all_in_root(root, Path::new("/dev"), 0o755).ctx(|| "create /dev")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink /dev/{name}")),
        }
    }
    // /dev/ptmx must lead to the container's own devpts instance.
    match nix::unistd::unlinkat(dev.as_fd(), "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| "remove /dev/ptmx"),
    }
    nix::unistd::symlinkat("pts/ptmx", &dev, "ptmx").ctx(|| "symlink /dev/ptmx")?;
    Ok(())
}
