//! `tmpcopyup`: a tmpfs mounted over a directory starts with a copy of what the directory held.

use crate::error::{Context, Result};
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstatat, mkdirat, mknodat, Mode, SFlag};
use nix::unistd::fchownat;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::safe_path::proc_fd_path;

/// Mounts a tmpfs on `target` (an O_PATH fd of the destination directory) and copies the
/// directory's previous content into it.
pub fn mount_tmpfs_copyup(
    root: BorrowedFd,
    dest: &std::path::Path,
    target: &OwnedFd,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let path = proc_fd_path(target);
    // A readable fd of the original directory, taken before it is covered.
    let old = nix::fcntl::open(
        path.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open directory for tmpcopyup")?;
    mount(Some(c"tmpfs"), path.as_c_str(), Some("tmpfs"), flags, data).ctx(|| "mount tmpfs")?;
    // /proc/self/fd/N still names the covered directory; a fresh walk lands on the new mount.
    let new = super::safe_path::open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .ctx(|| "open new tmpfs")?;
    copy_tree(old.as_fd(), new.as_fd()).ctx(|| "tmpcopyup copy")?;
    Ok(())
}

fn copy_tree(src: BorrowedFd, dst: BorrowedFd) -> nix::Result<()> {
    for n in super::safe_path::dir_entries(src)? {
        copy_entry(src, dst, &n)?;
    }
    Ok(())
}

fn copy_entry(src: BorrowedFd, dst: BorrowedFd, name: &CStr) -> nix::Result<()> {
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(dst, name, mode)?;
            let s = openat(
                src,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let d = openat(
                dst,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            copy_tree(s.as_fd(), d.as_fd())?;
        }
        SFlag::S_IFREG => {
            let s = openat(
                src,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let d = openat(
                dst,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                mode,
            )?;
            let mut sf = std::fs::File::from(s);
            let mut df = std::fs::File::from(d);
            std::io::copy(&mut sf, &mut df)
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        SFlag::S_IFLNK => {
            let t = nix::fcntl::readlinkat(src, name)?;
            nix::unistd::symlinkat(t.as_os_str(), dst, name)?;
        }
        _ => {
            mknodat(dst, name, kind, mode, st.st_rdev)?;
        }
    }
    let _ = fchownat(
        dst,
        name,
        Some(nix::unistd::Uid::from_raw(st.st_uid)),
        Some(nix::unistd::Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    Ok(())
}
