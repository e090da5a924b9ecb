//! Low-level cgroupfs access: writing and reading control files, creating directories while
//! recording which ones we made, removing them again, and listing member processes.
//!
//! Control files are opened without `O_CREAT` (cgroupfs cannot create files; a missing file is a
//! missing feature and must show up as ENOENT) and with `O_TRUNC` so that the same code also works
//! against a fake tree of regular files in tests.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{CgroupError, Result};

/// Values longer than this are not repeated in error messages.
const MAX_VALUE_IN_ERROR: usize = 128;

fn write_error(path: &Path, value: &str, source: io::Error) -> CgroupError {
    let mut value = value.trim_end().to_string();
    if value.len() > MAX_VALUE_IN_ERROR {
        let mut cut = MAX_VALUE_IN_ERROR;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    CgroupError::Write {
        path: path.display().to_string(),
        value,
        source,
    }
}

fn open_for_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Writes `value` to the control file `dir/file` with one write(2).
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let mut f = open_for_write(&path).map_err(|e| write_error(&path, value, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| write_error(&path, value, e))
}

/// A control file opened once for several writes, each one a separate kernel command
/// (`devices.allow`, `io.max`, `blkio.throttle.*`, `net_prio.ifpriomap`, `rdma.max`).
pub(crate) struct Writer {
    path: PathBuf,
    file: File,
}

impl Writer {
    pub(crate) fn open(dir: &Path, file: &str) -> Result<Writer> {
        let path = dir.join(file);
        match open_for_write(&path) {
            Ok(file) => Ok(Writer { path, file }),
            Err(e) => Err(CgroupError::io(&path, e)),
        }
    }

    pub(crate) fn write(&mut self, value: &str) -> Result<()> {
        // One write(2) per command: cgroupfs parses each write on its own.
        match self.file.write(value.as_bytes()) {
            Ok(n) if n == value.len() => Ok(()),
            Ok(_) => Err(write_error(
                &self.path,
                value,
                io::Error::new(io::ErrorKind::WriteZero, "short write"),
            )),
            Err(e) => Err(write_error(&self.path, value, e)),
        }
    }
}

/// Reads the whole control file `dir/file`.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    read_path(&path)
}

pub(crate) fn read_path(path: &Path) -> Result<String> {
    // Proc and cgroup files report size 0: start with a page rather than std's 32-byte probe
    // (mountinfo would otherwise take eight reads).
    let mut s = String::with_capacity(4096);
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| CgroupError::io(path, e))?;
    Ok(s)
}

/// Reads `dir/file`, or `None` when it does not exist.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    match read(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a cgroup number; `max` (v2) is `u64::MAX`, negative v1 values are `u64::MAX` too.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    // Some v1 files print -1 for "unlimited".
    match s.parse::<i64>() {
        Ok(v) if v < 0 => Some(u64::MAX),
        _ => None,
    }
}

/// Reads a single-number control file.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(&s).ok_or_else(|| {
        CgroupError::msg(format!(
            "{}: unexpected content {:?}",
            dir.join(file).display(),
            s.trim()
        ))
    })
}

/// Reads a single-number control file, `None` when it does not exist.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_u64(dir, file) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Iterates `key value` lines (memory.stat, cpu.stat, memory.events, …).
pub(crate) fn key_values(s: &str) -> impl Iterator<Item = (&str, u64)> {
    s.lines().filter_map(|l| {
        let mut it = l.split_ascii_whitespace();
        let k = it.next()?;
        let v = parse_u64(it.next()?)?;
        Some((k, v))
    })
}

/// Creates `dir` and any missing ancestors below `stop` (a mount point, never created), appending
/// each directory actually created by this call to `created`, parents first. Returns true when
/// `dir` itself was created here (false: it already existed and is joined).
pub(crate) fn mkdir_all(dir: &Path, stop: &Path, created: &mut Vec<PathBuf>) -> Result<bool> {
    // Fast path: the parent usually exists.
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o755);
    let before = created.len();
    let mut missing: Vec<&Path> = Vec::new();
    let mut cur = dir;
    loop {
        match builder.create(cur) {
            Ok(()) => {
                created.push(cur.to_path_buf());
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !cur.is_dir() {
                    return Err(CgroupError::io(
                        cur,
                        io::Error::from_raw_os_error(libc::ENOTDIR),
                    ));
                }
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = match cur.parent() {
                    Some(p) if p.starts_with(stop) && p != cur => p,
                    _ => return Err(CgroupError::io(cur, e)),
                };
                missing.push(cur);
                cur = parent;
            }
            Err(e) => return Err(CgroupError::io(cur, e)),
        }
    }
    // Create the missing descendants, parents first.
    while let Some(d) = missing.pop() {
        match builder.create(d) {
            Ok(()) => created.push(d.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io(d, e)),
        }
    }
    Ok(created[before..].last().map(|p| p == dir).unwrap_or(false))
}

/// The pids in `dir/cgroup.procs`.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let s = read(dir, "cgroup.procs")?;
    Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Every pid in `dir` and its descendants (depth first). A sub-cgroup vanishing while we walk is
/// not an error.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    match read_procs(dir) {
        Ok(p) => out.extend(p),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    for sub in subdirs(dir)? {
        procs_recursive(&sub, out)?;
    }
    Ok(())
}

/// The sub-cgroups (child directories) of `dir`.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::io(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| CgroupError::io(dir, e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// How long `destroy` waits for a cgroup to empty (processes that were just SIGKILLed take a
/// moment to leave) before giving up.
pub(crate) const REMOVE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Removes the cgroup `dir` and every sub-cgroup inside it (deepest first), retrying EBUSY with a
/// short backoff until `deadline`. A directory that is already gone is fine.
pub(crate) fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    // The common case is a leaf cgroup: try rmdir first and list the directory (an expensive
    // readdir of every control file) only when the kernel says it is busy, which is also what it
    // says when child cgroups exist.
    let mut delay = Duration::from_micros(500);
    let mut children_removed = false;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if !children_removed
                    && matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) =>
            {
                children_removed = true;
                for sub in subdirs(dir)? {
                    remove_tree(&sub, deadline)?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(CgroupError::msg(format!(
                        "remove {}: still busy after {} ms (processes left in the cgroup)",
                        dir.display(),
                        REMOVE_TIMEOUT.as_millis()
                    )));
                }
                std::thread::sleep(delay.min(deadline - now));
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(CgroupError::io(dir, e)),
        }
    }
}

/// Removes an intermediate directory we created. One that is busy or not empty now serves another
/// container (created later under the same parent), so it is left alone.
pub(crate) fn remove_if_unused(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) =>
        {
            Ok(())
        }
        Err(e) => Err(CgroupError::io(dir, e)),
    }
}

/// Whether `path` exists (a cheap access(2)).
pub(crate) fn exists(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = Vec::with_capacity(path.as_os_str().len() + 1);
    buf.extend_from_slice(path.as_os_str().as_bytes());
    buf.push(0);
    // SAFETY: buf is NUL-terminated and lives across the call.
    unsafe { libc::access(buf.as_ptr().cast(), libc::F_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_numbers() {
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64("42\n"), Some(42));
        assert_eq!(parse_u64("-1"), Some(u64::MAX));
        assert_eq!(parse_u64("x"), None);
    }

    #[test]
    fn key_value_lines() {
        let kv: Vec<_> = key_values("a 1\nb max\nbad\nc x\n").collect();
        assert_eq!(kv, vec![("a", 1), ("b", u64::MAX)]);
    }

    #[test]
    fn mkdir_all_records_created() {
        let base = std::env::temp_dir().join(format!("rr-cg-mkdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("exists")).unwrap();
        let mut created = Vec::new();
        let leaf = base.join("exists/a/b");
        assert!(mkdir_all(&leaf, &base, &mut created).unwrap());
        assert_eq!(created, vec![base.join("exists/a"), leaf.clone()]);
        let mut again = Vec::new();
        assert!(!mkdir_all(&leaf, &base, &mut again).unwrap());
        assert!(again.is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
