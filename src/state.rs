//! Persisted container state under `<root>/<id>/`: id validation, the per-container lock,
//! atomic state.json writes, and reading it back without following symlinks.
//!
//! Layout of a container directory (mode 0711):
//! - `state.json`: [`State`], replaced atomically (write to a temp name, rename);
//! - `exec.fifo`: present between `create` and `start` (mode 0622);
//! - the directory itself is the lock: `flock(LOCK_EX)` on its fd.

use crate::cgroups::CgroupState;
use crate::error::{Context, Error, Result};
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/run/rruntime";
pub const STATE_FILE: &str = "state.json";
pub const FIFO_FILE: &str = "exec.fifo";
/// Present while the container is paused by `pause` (see [`ContainerDir::mark_paused`]).
pub const PAUSED_FILE: &str = "paused";
/// The largest state.json read back (it holds the config, so it is not tiny; but a file of
/// gigabytes put there is not read into memory).
pub const MAX_STATE_SIZE: u64 = 64 << 20;

/// What rruntime keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init (0 before it exists).
    pub pid: i32,
    /// The init's start time (field 22 of /proc/<pid>/stat) to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time with nanoseconds.
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: CgroupState,
    /// The config as it was at `create` (later edits of config.json do not affect the container).
    pub config: Spec,
    /// Mounts made in the host's mount namespace (a container without a mount namespace);
    /// `delete` unmounts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<PathBuf>,
    #[serde(default)]
    pub rootless: bool,
    /// The `create` process (pid, start time) while the init does not exist yet: a state with
    /// pid 0 is `creating` while it lives and `stopped` once it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<(i32, u64)>,
}

/// Valid ids: 1–255 characters of `[A-Za-z0-9_+.-]`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let err = |why| Err(Error::InvalidId(id.to_string(), why));
    if id.is_empty() {
        return err("empty");
    }
    if id.len() > 255 {
        return err("longer than 255 characters");
    }
    if id == "." || id == ".." {
        return err("reserved name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return err("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

/// The state root directory (`--root`), opened without following symlinks.
pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
}

fn open_dir_nofollow(dirfd: Option<BorrowedFd>, path: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    match dirfd {
        Some(d) => openat(d, path, flags, Mode::empty()),
        None => nix::fcntl::open(path, flags, Mode::empty()),
    }
}

impl Root {
    /// Opens the root, creating it (mode 0700) if `create` and it is missing.
    pub fn open(path: &Path, create: bool) -> Result<Root> {
        match open_dir_nofollow(None, path) {
            Ok(fd) => Ok(Root {
                path: path.to_path_buf(),
                fd,
            }),
            Err(nix::errno::Errno::ENOENT) if create => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(path)
                    .ctx(|| format!("create state root {}", path.display()))?;
                let _ = nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    path,
                    Mode::from_bits_truncate(0o700),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                );
                let fd = open_dir_nofollow(None, path)
                    .ctx(|| format!("open state root {}", path.display()))?;
                Ok(Root {
                    path: path.to_path_buf(),
                    fd,
                })
            }
            Err(e) => Err(e).ctx(|| format!("open state root {}", path.display())),
        }
    }

    /// Creates `<root>/<id>` exclusively and returns it locked. Exactly one concurrent
    /// `create` of the same id wins; the others get "already exists".
    pub fn create_container(&self, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        match mkdirat(self.fd.as_fd(), id, Mode::from_bits_truncate(0o711)) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => return Err(Error::AlreadyExists(id.to_string())),
            Err(e) => return Err(e).ctx(|| format!("create state dir for {id}")),
        }
        let fd = open_dir_nofollow(Some(self.fd.as_fd()), Path::new(id))
            .ctx(|| format!("open state dir for {id}"))?;
        // mkdirat applied the umask; state dirs must be searchable by the container's user
        // (the init opens exec.fifo through this directory after dropping privileges).
        nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(0o711))
            .ctx(|| format!("chmod state dir for {id}"))?;
        lock(&fd, id)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path: self.path.join(id),
            fd,
        })
    }

    /// Opens an existing container's directory; with `lock`, waits for its exclusive lock.
    /// Readers need no lock: state.json is only ever replaced atomically.
    pub fn open_container(&self, id: &str, lock_it: bool) -> Result<ContainerDir> {
        validate_id(id)?;
        let fd = match open_dir_nofollow(Some(self.fd.as_fd()), Path::new(id)) {
            Ok(fd) => fd,
            // O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR or ELOOP: tell it apart from a
            // plain file (not a container) to refuse clearly.
            Err(nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP)
                if nix::sys::stat::fstatat(self.fd.as_fd(), id, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK) =>
            {
                return Err(Error::State(format!(
                    "state dir of container {id} is a symlink; refusing to follow it"
                )))
            }
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("open state dir for {id}")),
        };
        if lock_it {
            lock(&fd, id)?;
        }
        // Deleted by a concurrent `delete` while we waited for the lock?
        let st = fstat(fd.as_fd()).ctx(|| format!("stat state dir for {id}"))?;
        if st.st_nlink == 0 {
            return Err(Error::NotExist(id.to_string()));
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path: self.path.join(id),
            fd,
        })
    }

    /// Ids of all containers (directory names that are valid ids), sorted.
    pub fn list_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = std::fs::read_dir(&self.path)
            .ctx(|| format!("read state root {}", self.path.display()))?;
        for e in rd.flatten() {
            if let Some(name) = e.file_name().to_str() {
                if validate_id(name).is_ok() && e.file_type().is_ok_and(|t| t.is_dir()) {
                    ids.push(name.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn lock(fd: &OwnedFd, id: &str) -> Result<()> {
    loop {
        // SAFETY: flock on a valid fd we own.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EINTR {
            return Err(e).ctx(|| format!("lock state dir for {id}"));
        }
    }
}

/// A container's locked state directory. The lock is released when this is dropped.
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    fd: OwnedFd,
}

impl ContainerDir {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes state.json atomically (temp file + rename); readers never see a partial file.
    pub fn save(&self, st: &State) -> Result<()> {
        let data = serde_json::to_vec(st).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        let tmp = "state.json.tmp";
        let f = openat(
            self.fd.as_fd(),
            tmp,
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .ctx(|| format!("write state of {}", self.id))?;
        let mut file = std::fs::File::from(f);
        file.write_all(&data)
            .ctx(|| format!("write state of {}", self.id))?;
        drop(file);
        renameat(self.fd.as_fd(), tmp, self.fd.as_fd(), STATE_FILE)
            .ctx(|| format!("write state of {}", self.id))?;
        Ok(())
    }

    /// Reads state.json. `Ok(None)` when it does not exist yet (a create in progress, or one
    /// that crashed before writing it). A state.json that cannot be a state rruntime wrote (a
    /// symlink, not a regular file, larger than [`MAX_STATE_SIZE`], not a State) is
    /// `Error::State`, which `delete --force` clears.
    pub fn load(&self) -> Result<Option<State>> {
        let corrupt = |why: String| {
            Error::State(crate::error::one_line(format!(
                "state of container {} {why}",
                self.id
            )))
        };
        // O_NONBLOCK: a FIFO put in its place must not block the reader.
        let fd = match openat(
            self.fd.as_fd(),
            STATE_FILE,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(nix::errno::Errno::ELOOP) => {
                return Err(corrupt("is a symlink; refusing to follow it".into()))
            }
            Err(e) => return Err(e).ctx(|| format!("read state of {}", self.id)),
        };
        let st = fstat(fd.as_fd()).ctx(|| format!("read state of {}", self.id))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(corrupt("is not a regular file".into()));
        }
        if st.st_size as u64 > MAX_STATE_SIZE {
            return Err(corrupt(format!(
                "is corrupt: {} bytes, more than the {MAX_STATE_SIZE} allowed",
                st.st_size
            )));
        }
        // Sized from fstat (plus one byte to see EOF): one read instead of a doubling series.
        let mut data = Vec::with_capacity(st.st_size as usize + 1);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::from(fd), MAX_STATE_SIZE + 1),
            &mut data,
        )
        .ctx(|| format!("read state of {}", self.id))?;
        parse_state(&data)
            .map(Some)
            .map_err(|e| corrupt(format!("is corrupt: {e}")))
    }

    /// Records that the user paused the container (`pause`), or clears it (`resume`, SIGKILL).
    /// `state` reports `paused` only for a frozen cgroup with this mark: `kill --all` and
    /// `delete --force` freeze the cgroup for a moment too, and a concurrent `state` must not
    /// call that a pause.
    pub fn mark_paused(&self, paused: bool) -> Result<()> {
        if paused {
            openat(
                self.fd.as_fd(),
                PAUSED_FILE,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            )
            .map(drop)
            .ctx(|| format!("mark {} paused", self.id))
        } else {
            match nix::unistd::unlinkat(
                self.fd.as_fd(),
                PAUSED_FILE,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
                Err(e) => Err(e).ctx(|| format!("clear the paused mark of {}", self.id)),
            }
        }
    }

    /// True while the user's pause is recorded (see [`ContainerDir::mark_paused`]).
    pub fn marked_paused(&self) -> bool {
        nix::sys::stat::fstatat(self.fd.as_fd(), PAUSED_FILE, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// True while `exec.fifo` exists (between create and start).
    pub fn fifo_exists(&self) -> bool {
        nix::sys::stat::fstatat(self.fd.as_fd(), FIFO_FILE, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// The exec fifo's read side, non-blocking: opening it lets the init's blocked open of the
    /// write side return.
    pub fn open_fifo_reader(&self) -> Result<OwnedFd> {
        openat(
            self.fd.as_fd(),
            FIFO_FILE,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open exec fifo")
    }

    pub fn remove_fifo(&self) -> Result<()> {
        match nix::unistd::unlinkat(
            self.fd.as_fd(),
            FIFO_FILE,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove exec fifo of {}", self.id)),
        }
    }

    /// Creates the exec fifo (mode 0622, like runc, so a non-root init can open it).
    pub fn make_fifo(&self) -> Result<()> {
        nix::unistd::mkfifoat(self.fd.as_fd(), FIFO_FILE, Mode::from_bits_truncate(0o622))
            .ctx(|| format!("create exec fifo for {}", self.id))?;
        // mkfifoat applies the umask. The fifo was just made in our own locked directory, which
        // only its owner can write, so nothing can have replaced it: a plain fchmodat (the
        // no-follow variant is emulated by libc with four syscalls).
        nix::sys::stat::fchmodat(
            self.fd.as_fd(),
            FIFO_FILE,
            Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(|| format!("chmod exec fifo for {}", self.id))?;
        Ok(())
    }

    /// Removes the directory and everything in it (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        // Entries are files rruntime made, and the sd_notify directory with its socket (see
        // `crate::notify`); removed through the dir fd, one level of subdirectories deep.
        clear_dir(self.fd.as_fd(), 1);
        match std::fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove state dir {}", self.path.display())),
        }
    }

    /// Opens the state dir as O_PATH for a child process (the init opens exec.fifo through it).
    pub fn open_path_fd(&self) -> Result<OwnedFd> {
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            ".",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open state dir")?;
        Ok(fd)
    }
}

/// Unlinks every entry of `dir`; a subdirectory is emptied the same way (down to `depth` more
/// levels) and removed. Errors are left to the final `rmdir` of the caller to report.
fn clear_dir(dir: BorrowedFd, depth: u32) {
    let Ok(names) = crate::rootfs::safe_path::dir_entries(dir) else {
        return;
    };
    for n in names {
        let r = nix::unistd::unlinkat(dir, n.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        if r == Err(nix::errno::Errno::EISDIR) {
            if depth > 0 {
                if let Ok(sub) = openat(
                    dir,
                    n.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    clear_dir(sub.as_fd(), depth - 1);
                }
            }
            let _ = nix::unistd::unlinkat(dir, n.as_c_str(), nix::unistd::UnlinkatFlags::RemoveDir);
        }
    }
}

/// Parses state.json; the error is one line.
pub fn parse_state(data: &[u8]) -> std::result::Result<State, String> {
    serde_json::from_slice(data).map_err(|e| crate::error::one_line(e.to_string()))
}

/// Writes a pid file the way callers expect: digits only, no newline, atomically.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ctx(|| "getcwd")?.join(path)
    };
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let name = abs
        .file_name()
        .ok_or_else(|| Error::config(format!("pid file {}: not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &abs).ctx(|| format!("write pid file {}", abs.display()))?;
    Ok(())
}

/// Start time of a process (clock ticks since boot), or None when it does not exist.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    parse_stat(&read_stat(pid)?).map(|(_, start)| start)
}

/// Reads /proc/<pid>/stat in one read (procfs reports size 0, and std's growing reads would take
/// six), or None when the process does not exist.
pub fn read_stat(pid: i32) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::with_capacity(1024);
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read_to_end(&mut data))
        .ok()?;
    Some(data)
}

/// Parses /proc/<pid>/stat: (state char, start time).
pub fn parse_stat(data: &[u8]) -> Option<(u8, u64)> {
    // comm may contain spaces and parentheses: fields start after the LAST ')'.
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(data.get(close + 2..)?).ok()?;
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?.bytes().next()?;
    // After state (field 3), starttime is field 22: skip 18 more fields.
    let start = it.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// SAFETY helper for fds inherited by number (tests, children).
///
/// # Safety
/// `fd` must be an open descriptor owned by the caller.
pub unsafe fn owned_from_raw(fd: i32) -> OwnedFd {
    OwnedFd::from_raw_fd(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_x+y", &"x".repeat(255)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "a b",
            &"x".repeat(256),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stat_parsing_handles_odd_comm() {
        let s = b"42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(s), Some((b'S', 98765)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) R 1 2"), None);
    }

    #[test]
    fn own_start_time_readable() {
        assert!(pid_start_time(std::process::id() as i32).is_some());
        assert!(pid_start_time(i32::MAX).is_none());
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_panic() {
        for d in [&b""[..], b"{", b"null", b"{\"id\":1}", &[0xff, 0xfe]] {
            assert!(parse_state(d).is_err());
        }
    }

    #[test]
    fn root_lifecycle_and_lock() {
        let dir = std::env::temp_dir().join(format!("rruntime-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::open(&dir, true).unwrap();
        let c = root.create_container("c1").unwrap();
        assert!(matches!(
            root.create_container("c1"),
            Err(Error::AlreadyExists(_))
        ));
        assert!(c.load().unwrap().is_none());
        c.make_fifo().unwrap();
        assert!(c.fifo_exists());
        c.remove_fifo().unwrap();
        assert!(!c.fifo_exists());
        assert_eq!(root.list_ids().unwrap(), vec!["c1"]);
        c.remove().unwrap();
        assert!(matches!(
            root.open_container("c1", true),
            Err(Error::NotExist(_))
        ));
        // A symlinked container dir is not followed.
        std::os::unix::fs::symlink("/tmp", dir.join("evil")).unwrap();
        let e = root
            .open_container("evil", false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
        // A plain file is not a container.
        std::fs::write(dir.join("afile"), b"").unwrap();
        assert!(matches!(
            root.open_container("afile", false),
            Err(Error::NotExist(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
