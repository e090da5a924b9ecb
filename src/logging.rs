//! The runtime's log: `--log FILE` (default stderr), `--log-format text|json` with logrus-shaped
//! lines (`{"level","msg","time"}`), `--debug`. Errors always reach stderr as one line too.
//!
//! The runtime is single-threaded; the logger is a process-wide value set once in `main`.

use crate::time::rfc3339;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
    started: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the process-wide logger. Opening the log file is best-effort: when it fails the
/// runtime still runs and logs to stderr.
pub fn init(path: Option<&Path>, json: bool, debug: bool) {
    let file = path.and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
            .ok()
    });
    let _ = LOGGER.set(Logger {
        file,
        json,
        debug,
        started: Instant::now(),
    });
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// The log file's fd, so a forked child can keep logging to it.
pub fn file_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    LOGGER
        .get()
        .and_then(|l| l.file.as_ref().map(|f| f.as_raw_fd()))
}

fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

fn line(level: Level, msg: &str, json: bool) -> String {
    let time = rfc3339(SystemTime::now());
    let mut s = String::with_capacity(msg.len() + 64);
    if json {
        s.push_str("{\"level\":\"");
        s.push_str(level.as_str());
        s.push_str("\",\"msg\":\"");
        json_escape(msg, &mut s);
        s.push_str("\",\"time\":\"");
        s.push_str(&time);
        s.push_str("\"}\n");
    } else {
        s.push_str("time=\"");
        s.push_str(&time);
        s.push_str("\" level=");
        s.push_str(level.as_str());
        s.push_str(" msg=\"");
        json_escape(msg, &mut s);
        s.push_str("\"\n");
    }
    s
}

pub fn log(level: Level, msg: &str) {
    let Some(l) = LOGGER.get() else {
        if level >= Level::Warn {
            eprintln!("rruntime: {msg}");
        }
        return;
    };
    if level == Level::Debug && !l.debug {
        return;
    }
    match &l.file {
        Some(f) => {
            let _ = (&*f).write_all(line(level, msg, l.json).as_bytes());
        }
        None => {
            // No log file: stderr is the log. Errors are printed by `error_line` instead.
            if level != Level::Error {
                let _ = std::io::stderr().write_all(line(level, msg, l.json).as_bytes());
            }
        }
    }
}

/// The final error of a command: one line on stderr, and a line in the log file.
pub fn error_line(msg: &str) {
    let msg = msg.replace('\n', " ");
    log(Level::Error, &msg);
    let _ = writeln!(std::io::stderr(), "rruntime: {msg}");
}

pub fn debug(msg: impl AsRef<str>) {
    if debug_enabled() {
        log(Level::Debug, msg.as_ref());
    }
}

pub fn warn(msg: impl AsRef<str>) {
    log(Level::Warn, msg.as_ref());
}

pub fn info(msg: impl AsRef<str>) {
    log(Level::Info, msg.as_ref());
}

/// Phase timing for `--debug`: logs how long it has been since the command started.
pub fn phase(name: &str) {
    if let Some(l) = LOGGER.get() {
        if l.debug {
            let us = l.started.elapsed().as_micros();
            log(Level::Debug, &format!("phase {name} done at {us}us"));
        }
    }
    fault_point(name);
}

/// Fault injection for the reliability tests: with `RRUNTIME_FAULT_PAUSE=<phase>` in the
/// environment, the process announces `rruntime: paused at <phase>` on stderr when it reaches
/// that phase and waits there until it is killed. Unset, it costs one cached lookup.
fn fault_point(name: &str) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    let f = FAULT.get_or_init(|| std::env::var("RRUNTIME_FAULT_PAUSE").ok());
    if f.as_deref() == Some(name) {
        let _ = writeln!(std::io::stderr(), "rruntime: paused at {name}");
        loop {
            // SAFETY: pause(2) just waits for a signal.
            unsafe { libc::pause() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_logrus_shaped() {
        let l = line(Level::Error, "bad \"x\"\n", true);
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "bad \"x\"\n");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_line_has_level_and_msg() {
        let l = line(Level::Warn, "w", false);
        assert!(l.contains("level=warning msg=\"w\""));
    }
}
