//! Resolving paths inside the container's rootfs without ever leaving it.
//!
//! Every mount destination and device path comes from config.json and is looked up in a rootfs
//! the container's image controls: a symlink such as `/evil -> /../../../tmp/x` must resolve
//! inside the rootfs (CVE-2021-30465 class). `openat2(RESOLVE_IN_ROOT)` makes the kernel treat the
//! rootfs fd as `/` for absolute symlinks and `..`, and `RESOLVE_NO_MAGICLINKS` refuses
//! `/proc/self/…` style jumps. Mounts then target `/proc/self/fd/N` of the resolved fd, so the
//! path is never looked up again by name.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Lexically cleans `p` as if it were absolute: removes `.`, resolves `..` (clamped at `/`).
/// Returns the components relative to `/` (empty for the root itself).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS).
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = clean(path);
    let c = if rel.as_os_str().is_empty() {
        CString::new(".").map_err(|_| Errno::EINVAL)?
    } else {
        CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?
    };
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | OFlag::O_CLOEXEC).bits() as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    openat2(root, &c, &how)
}

/// Opens (creating as needed, like `mkdir -p`) the directory `path` inside `root` and returns
/// an `O_PATH` fd to it. Symlinks met on the way are followed the way the kernel would with
/// `root` as `/` (a dangling one gets its target created inside the root); every directory is
/// created inside an already-resolved parent, so nothing is ever made outside the root.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &Path, mode: u32) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_in_root(root, path, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    // The common case: the parent resolves (or is made by this same function) and only the last
    // component is missing. It is created inside the resolved parent and opened without following
    // anything, so a symlink raced into its place is refused, not followed.
    let rel = clean(path);
    if let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) {
        let dir = mkdir_all_in_root(root, parent, mode)?;
        match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(mode)) {
            Ok(()) => match open_beneath(dir.as_fd(), name, flags) {
                Ok(fd) => return Ok(fd),
                // Replaced since: resolve it the slow way below.
                Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT | Errno::EXDEV) => {}
                Err(e) => return Err(e),
            },
            // The name exists although the path did not resolve: a dangling symlink (its target
            // gets created below, resolved inside the root) or a concurrent mkdir.
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    mkdir_all_slow(root, &rel, mode)
}

/// openat2(dir, name, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): `name` itself, never a symlink.
fn open_beneath(dir: BorrowedFd, name: &std::ffi::OsStr, flags: OFlag) -> nix::Result<OwnedFd> {
    let c = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).bits() as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    openat2(dir, &c, &how)
}

fn openat2(dir: BorrowedFd, path: &std::ffi::CStr, how: &libc::open_how) -> nix::Result<OwnedFd> {
    loop {
        // SAFETY: valid pointers for the duration of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as i32) });
        }
        match Errno::last() {
            Errno::EINTR | Errno::EAGAIN => continue,
            e => return Err(e),
        }
    }
}

/// Component by component from the root, each parent re-resolved from the root, symlinks
/// followed by hand (see [`mkdir_all_in_root`]).
fn mkdir_all_slow(root: BorrowedFd, rel: &Path, mode: u32) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(name) = todo.pop_front() {
        let parent = open_in_root(root, &resolved, flags)?;
        match nix::sys::stat::fstatat(
            &parent,
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                hops += 1;
                if hops > 40 {
                    return Err(Errno::ELOOP);
                }
                let target = nix::fcntl::readlinkat(&parent, name.as_os_str())?;
                let target = Path::new(&target);
                let joined = if target.is_absolute() {
                    target.to_path_buf()
                } else {
                    resolved.join(target)
                };
                let mut rest: std::collections::VecDeque<std::ffi::OsString> = clean(&joined)
                    .components()
                    .map(|c| c.as_os_str().to_owned())
                    .collect();
                rest.extend(todo.drain(..));
                todo = rest;
                resolved = PathBuf::new();
            }
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => resolved.push(&name),
            Ok(_) => return Err(Errno::ENOTDIR),
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    &parent,
                    name.as_os_str(),
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                resolved.push(&name);
            }
            Err(e) => return Err(e),
        }
    }
    open_in_root(root, &resolved, flags)
}

/// Makes sure a regular file exists at `path` inside `root` (parents created) and returns an
/// `O_PATH` fd to it; an existing non-directory is kept as is. A dangling symlink at `path`
/// (images ship `/etc/resolv.conf -> ../run/…`) gets its target created, resolved with `root`
/// as `/`, like runc does.
pub fn create_file_in_root(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    create_file_hops(root, path, 0)
}

fn create_file_hops(root: BorrowedFd, path: &Path, hops: u32) -> nix::Result<OwnedFd> {
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let rel = clean(path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().ok_or(Errno::EINVAL)?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    if let Ok(st) = nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            if hops >= 40 {
                return Err(Errno::ELOOP);
            }
            let target = PathBuf::from(nix::fcntl::readlinkat(&dir, name)?);
            let next = if target.is_absolute() {
                target
            } else {
                // Relative to the (already resolved) parent directory inside the root.
                let root_path = fd_path_of(root)?;
                let dir_path = fd_path_of(dir.as_fd())?;
                let inside = dir_path
                    .strip_prefix(&root_path)
                    .map_err(|_| Errno::EXDEV)?;
                inside.join(target)
            };
            return create_file_hops(root, &next, hops + 1);
        }
    }
    match nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_in_root(root, path, OFlag::O_PATH)
}

/// The `/proc/self/fd/N` path naming an fd, for syscalls that only take paths (mount(2)).
pub fn proc_fd_path(fd: &OwnedFd) -> CString {
    // The string has no interior NUL by construction.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Opens `root` itself (a directory) as an fd usable with the functions above.
pub fn open_root(rootfs: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Host-absolute path of an fd (readlink of /proc/self/fd/N).
pub fn fd_path(fd: &OwnedFd) -> nix::Result<PathBuf> {
    fd_path_of(fd.as_fd())
}

fn fd_path_of(fd: BorrowedFd) -> nix::Result<PathBuf> {
    nix::fcntl::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str()).map(PathBuf::from)
}

/// The names in directory `dir` (read through a duplicate of the fd), without `.` and `..`.
pub fn dir_entries(dir: BorrowedFd) -> nix::Result<Vec<std::ffi::CString>> {
    let mut d = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    Ok(d.iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rruntime-safe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn clean_clamps_dotdot() {
        assert_eq!(clean(Path::new("/a/../../b/./c")), PathBuf::from("b/c"));
        assert_eq!(clean(Path::new("../../..")), PathBuf::from(""));
        assert_eq!(clean(Path::new("rel/x")), PathBuf::from("rel/x"));
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let base = tmpdir("sym");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink and a ..-symlink that point out of the root.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", root.join("rel")).unwrap();
        let rfd = open_root(&root).unwrap();
        for link in ["abs", "rel"] {
            let fd = mkdir_all_in_root(rfd.as_fd(), &Path::new("/").join(link).join("x"), 0o755)
                .unwrap();
            let p = fd_path(&fd).unwrap();
            assert!(p.starts_with(&root), "{link} resolved to {}", p.display());
        }
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "nothing created outside"
        );
        // /proc/self/root style magic links are refused.
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        let r = open_in_root(rfd.as_fd(), Path::new("/magic"), OFlag::O_PATH);
        assert!(r.is_err() || fd_path(&r.unwrap()).unwrap().starts_with(&root));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn mkdir_all_makes_each_missing_level_and_follows_a_dangling_last_link() {
        let base = tmpdir("mkdirall");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        let rfd = open_root(&root).unwrap();
        // Several missing levels under an existing one.
        let fd = mkdir_all_in_root(rfd.as_fd(), Path::new("/a/b/c/d"), 0o750).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), root.join("a/b/c/d"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        // (The process umask applies, as for mkdir(2).)
        assert_eq!(mode(&root.join("a/b/c/d")) & !0o022, 0o750 & !0o022);
        assert!(root.join("a/b/c").is_dir());
        // The last component is a dangling symlink: its target is made, inside the root.
        let outside = base.join("outside");
        std::os::unix::fs::symlink(&outside, root.join("a/last")).unwrap();
        let fd = mkdir_all_in_root(rfd.as_fd(), Path::new("/a/last"), 0o755).unwrap();
        let inside = root.join(outside.strip_prefix("/").unwrap());
        assert_eq!(fd_path(&fd).unwrap(), inside);
        assert!(!outside.exists(), "created outside the root");
        // A dangling relative link in the middle of the path.
        std::os::unix::fs::symlink("../x/y", root.join("a/mid")).unwrap();
        let fd = mkdir_all_in_root(rfd.as_fd(), Path::new("/a/mid/z"), 0o755).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), root.join("x/y/z"));
        // A regular file in the way is an error, not replaced.
        std::fs::write(root.join("a/file"), b"").unwrap();
        assert_eq!(
            mkdir_all_in_root(rfd.as_fd(), Path::new("/a/file/sub"), 0o755).unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(
            mkdir_all_in_root(rfd.as_fd(), Path::new("/a/file"), 0o755).unwrap_err(),
            Errno::ENOTDIR
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn create_file_through_dangling_symlinks_stays_inside() {
        let base = tmpdir("dangling");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let outside = base.join("outside-target");
        // Absolute (pointing out of the root) and relative dangling symlinks.
        std::os::unix::fs::symlink(&outside, root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../run/x/resolv.conf", root.join("etc/rel")).unwrap();
        let rfd = open_root(&root).unwrap();
        let fd = create_file_in_root(rfd.as_fd(), Path::new("/etc/abs")).unwrap();
        assert_eq!(
            fd_path(&fd).unwrap(),
            root.join(outside.strip_prefix("/").unwrap())
        );
        assert!(!outside.exists(), "created outside the root");
        let fd = create_file_in_root(rfd.as_fd(), Path::new("/etc/rel")).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), root.join("run/x/resolv.conf"));
        // A symlink loop is refused.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        assert!(create_file_in_root(rfd.as_fd(), Path::new("/loop1")).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn create_file_makes_parents() {
        let base = tmpdir("file");
        let rfd = open_root(&base).unwrap();
        let fd = create_file_in_root(rfd.as_fd(), Path::new("/etc/x/hosts")).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), base.join("etc/x/hosts"));
        assert!(base.join("etc/x/hosts").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
