//! v2 freezer: write `cgroup.freeze`, then wait (poll on `cgroup.events`, bounded) until the
//! kernel reports `frozen 1` / `frozen 0`.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::fs;

const TIMEOUT: Duration = Duration::from_secs(2);

fn frozen_in(events: &str) -> Option<bool> {
    events
        .lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

fn wait(dir: &Path, want: bool) -> Result<bool> {
    let path = dir.join("cgroup.events");
    let f = File::open(&path).map_err(|e| CgroupError::io(&path, e))?;
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; 512];
    loop {
        let n = f
            .read_at(&mut buf, 0)
            .map_err(|e| CgroupError::io(&path, e))?;
        let s = String::from_utf8_lossy(&buf[..n]);
        match frozen_in(&s) {
            Some(v) if v == want => return Ok(true),
            Some(_) => {}
            // Kernels before 5.2 have no v2 freezer.
            None => {
                return Err(CgroupError::unsupported(
                    "freezing",
                    format!("{} has no \"frozen\" key (kernel too old)", path.display()),
                ))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        // cgroup.events signals changes with POLLPRI; wake up now and then regardless.
        let slice = (deadline - now).min(Duration::from_millis(20));
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
        let ms = u16::try_from(slice.as_millis()).unwrap_or(u16::MAX);
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}

pub(crate) fn freeze(dir: &Path) -> Result<()> {
    fs::write(dir, "cgroup.freeze", "1")?;
    if wait(dir, true)? {
        return Ok(());
    }
    let _ = fs::write(dir, "cgroup.freeze", "0");
    Err(CgroupError::msg(format!(
        "unable to freeze {}: not frozen after {} ms",
        dir.display(),
        TIMEOUT.as_millis()
    )))
}

pub(crate) fn thaw(dir: &Path) -> Result<()> {
    fs::write(dir, "cgroup.freeze", "0")?;
    if wait(dir, false)? {
        return Ok(());
    }
    Err(CgroupError::msg(format!(
        "unable to thaw {}: still frozen after {} ms",
        dir.display(),
        TIMEOUT.as_millis()
    )))
}

pub(crate) fn is_frozen(dir: &Path) -> Result<bool> {
    match fs::read_opt(dir, "cgroup.freeze")? {
        Some(s) => Ok(s.trim() == "1"),
        None => Ok(false),
    }
}
