//! OCI hooks: run with the container state on stdin, optional timeout, in the order listed.
//!
//! Failure semantics (runtime-spec 1.2): a failing prestart, createRuntime, createContainer or
//! startContainer hook fails the operation; a failing poststart or poststop hook is logged as a
//! warning and the remaining hooks still run.
//!
//! As with runc, a hook gets only fds 0–2 (never the caller's other open descriptors), runs in
//! the directory its kind calls for (`cwd`: the bundle, or the container's rootfs for
//! `createContainer`), and a failing hook's stdout and stderr are part of the error.

use crate::error::{Error, Result};
use crate::logging;
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `hooks` in order, stopping at the first failure. `cwd`: the hooks' working directory
/// (None: the caller's).
pub fn run_all(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state_json: &str,
    cwd: Option<&Path>,
) -> Result<()> {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        let t = std::time::Instant::now();
        run_one(h, state_json, cwd)
            .map_err(|e| Error::msg(format!("error running {kind} hook #{i}: {e}")))?;
        logging::debug(format!(
            "{kind} hook #{i} took {}us",
            t.elapsed().as_micros()
        ));
    }
    Ok(())
}

/// Runs every hook; failures are warnings.
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str, cwd: Option<&Path>) {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run_one(h, state_json, cwd) {
            logging::warn(format!("{kind} hook #{i} failed: {e}"));
        }
    }
}

/// An anonymous file for a hook's stdout or stderr: read back after the hook exits, so a hook
/// that leaves a child holding it open can never block the runtime (a pipe could).
fn capture_file(name: &std::ffi::CStr) -> Option<std::fs::File> {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .ok()
        .map(std::fs::File::from)
}

/// What a failing hook wrote, on one line and bounded.
fn captured(f: Option<std::fs::File>) -> String {
    use std::io::{Read, Seek};
    let Some(mut f) = f else {
        return String::new();
    };
    let mut buf = Vec::new();
    let _ = f.rewind();
    let _ = f.take(4096).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .trim()
        .replace(['\n', '\r'], " ")
}

fn run_one(h: &Hook, state_json: &str, cwd: Option<&Path>) -> std::result::Result<(), String> {
    let path = h.path();
    let mut cmd = Command::new(path);
    if let Some(d) = cwd.filter(|d| d.is_dir()) {
        cmd.current_dir(d);
    }
    let (out, err) = (capture_file(c"hook-stdout"), capture_file(c"hook-stderr"));
    for (f, stdout) in [(&out, true), (&err, false)] {
        if let Some(c) = f.as_ref().and_then(|f| f.try_clone().ok()) {
            if stdout {
                cmd.stdout(c);
            } else {
                cmd.stderr(c);
            }
        }
    }
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC is async-signal-safe; the runtime is
    // single-threaded where it runs hooks. Only 0–2 reach the hook.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    if let Some(args) = h.args() {
        if let Some((a0, rest)) = args.split_first() {
            cmd.arg0(a0);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    // Its own process group: a hook that times out is killed with everything it started.
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {}", path.display(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE ignored).
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = h.timeout().filter(|t| *t > 0);
    // A timeout too large to represent is no timeout (`Instant + Duration` would panic).
    let deadline = timeout.and_then(|secs| {
        std::time::Instant::now().checked_add(std::time::Duration::from_secs(secs as u64))
    });
    if let (Some(secs), Some(deadline)) = (timeout, deadline) {
        if let Some(pfd) = crate::process::pidfd_open(child.id() as i32) {
            let mut p = libc::pollfd {
                fd: pfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                // SAFETY: one valid pollfd.
                let r =
                    unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
                if r > 0 {
                    break;
                }
                if r == 0 || left.is_zero() {
                    // SAFETY: kill(2) of the hook's own process group (its pid).
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    return Err(format!("{}: timed out after {secs}s", path.display()));
                }
                if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                    break;
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{}: wait: {e}", path.display()))?;
    if status.success() {
        return Ok(());
    }
    let why = if let Some(sig) = status.signal() {
        format!("{}: killed by signal {sig}", path.display())
    } else {
        format!(
            "{}: exit status {}",
            path.display(),
            status.code().unwrap_or(-1)
        )
    };
    Err(format!(
        "{why}, stdout: {}, stderr: {}",
        captured(out),
        captured(err)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_on_stdin_and_args() {
        let out = std::env::temp_dir().join(format!("rruntime-hook-{}", std::process::id()));
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} ; echo \"$0 $X\" >> {}"],"env":["X=y"]}}"#,
            out.display(),
            out.display()
        ));
        run_all("test", Some(&vec![h]), "{\"id\":\"c\"}", None).unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "{\"id\":\"c\"}sh y\n");
        let _ = std::fs::remove_file(out);
    }

    #[test]
    fn failure_and_timeout() {
        let f = hook(r#"{"path":"/bin/sh","args":["sh","-c","exit 3"]}"#);
        let e = run_all("prestart", Some(&vec![f]), "{}", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit status 3"), "{e}");
        let slow = hook(r#"{"path":"/bin/sh","args":["sh","-c","exec sleep 30"],"timeout":1}"#);
        let t = std::time::Instant::now();
        let e = run_all("prestart", Some(&vec![slow]), "{}", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed().as_secs() < 10);
        // A hook that forks: what it started goes with it.
        let marker = format!("rruntime-hook-child-{}", std::process::id());
        let forks = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","sleep 1000 & echo $! > /tmp/{marker}; wait"],"timeout":1}}"#
        ));
        assert!(run_all("prestart", Some(&vec![forks]), "{}", None).is_err());
        let pid: i32 = std::fs::read_to_string(format!("/tmp/{marker}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(format!("/tmp/{marker}"));
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while crate::state::parse_stat(
            &std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default(),
        )
        .is_some_and(|(st, _)| st != b'Z')
        {
            assert!(std::time::Instant::now() < end, "the hook's child survived");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // A timeout too large for a deadline is no timeout, not a panic.
        let huge = hook(r#"{"path":"/bin/true","timeout":9223372036854775807}"#);
        run_all("prestart", Some(&vec![huge]), "{}", None).unwrap();
        let missing = hook(r#"{"path":"/nonexistent/hook"}"#);
        assert!(run_all("x", Some(&vec![missing]), "{}", None).is_err());
    }
}
