//! `events [--stats] [--interval 5s] ID`: the container's resource statistics and OOM
//! notifications as JSON lines in runc's schema: `{"type":"stats","id":…,"data":{…}}` (data is
//! runc's `types.Stats`, see [`crate::cgroups::stats`]) and `{"type":"oom","id":…}`.
//!
//! * `--stats`: one stats line, then exit.
//! * otherwise a stats line every interval (the first one after one interval, like Go's
//!   `time.Tick`) and an `oom` line whenever the cgroup hits an OOM, until the container's init
//!   exits or its cgroup is removed; then exit 0. Single-threaded: one `poll(2)` on a pidfd of
//!   the init and the manager's OOM notification fd, with the time left to the next tick as the
//!   timeout.
//! * `--interval` takes a Go duration (`5s`, `500ms`, `1m30s`, `1.5h`); it must be > 0.
//! * A stopped container is an error ("container with id … is not running", runc's text).
//!
//! Where the host cannot give OOM notifications (no memory controller for the container), runc
//! fails; rruntime warns once and keeps printing stats.

use super::Ctx;
use crate::cgroups::{self, OomEvent, OomEvents, Stats};
use crate::container::{self, Status};
use crate::error::{Error, Result};
use crate::logging;
use serde::Serialize;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// runc's `types.Event`.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Stats>,
}

/// Prints one event line; false when the reader went away (the stream is over).
fn emit(typ: &str, id: &str, data: Option<&Stats>) -> Result<bool> {
    let line = serde_json::to_string(&Event { typ, id, data })
        .map_err(|e| Error::msg(format!("encode {typ} event: {e}")))?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Io {
            ctx: "write event to stdout".into(),
            source: e,
        }),
    }
}

pub fn run(ctx: &Ctx, a: &crate::cli::EventsArgs) -> Result<i32> {
    let interval = parse_go_duration(&a.interval).map_err(|e| {
        Error::config(format!(
            "invalid value {:?} for flag -interval: {e}",
            a.interval
        ))
    })?;
    let dir = ctx.container_ro(&a.id)?;
    let st = container::load(&dir)?;
    if interval <= 0 {
        return Err(Error::config("duration interval must be greater than 0"));
    }
    if container::status(&dir, &st) == Status::Stopped {
        return Err(Error::State(format!(
            "container with id {} is not running",
            a.id
        )));
    }
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    let stats = || {
        mgr.stats()
            .map_err(|e| Error::msg(format!("unable to get container cgroup stats: {e}")))
    };
    if a.stats {
        let s = stats()?;
        let _ = emit("stats", &a.id, Some(&s))?;
        return Ok(0);
    }

    let Some(pidfd) = container::init_pidfd(st.pid, st.pid_start) else {
        return Ok(0);
    };
    let mut oom = match mgr.oom_events() {
        Ok(o) => Some(o),
        Err(e) => {
            logging::warn(format!("events: no OOM notifications for {}: {e}", a.id));
            None
        }
    };
    let period = Duration::from_nanos(interval as u64);
    // (period ≤ i64::MAX ns, about 292 years: far from what an Instant can hold.)
    let mut next = Instant::now() + period;
    loop {
        let now = Instant::now();
        let left = next.saturating_duration_since(now);
        let timeout = i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: oom.as_ref().map_or(-1, |o| o.as_fd().as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries (a negative fd is ignored by poll).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = nix::errno::Errno::last();
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(Error::Sys {
                ctx: "events: poll".into(),
                source: e,
            });
        }
        if fds[1].revents != 0 && !drain_oom(&mut oom, &a.id)? {
            return Ok(0);
        }
        if fds[0].revents != 0 {
            // The init exited: report an OOM that killed it before stopping.
            let _ = drain_oom(&mut oom, &a.id)?;
            return Ok(0);
        }
        if Instant::now() >= next {
            match stats() {
                Ok(s) => {
                    if !emit("stats", &a.id, Some(&s))? {
                        return Ok(0);
                    }
                }
                Err(e) => logging::warn(format!("events: {e}")),
            }
            // Like Go's ticker, ticks missed while busy are dropped (the phase is kept).
            // (This point is reached only once `next` has passed.)
            let now = Instant::now();
            let late = now.saturating_duration_since(next).as_nanos() % period.as_nanos();
            next = now + period.saturating_sub(Duration::from_nanos(late as u64));
        }
    }
}

/// Reads what the OOM fd has and prints an `oom` line for an OOM; false when the stream is over
/// (the reader went away, or the cgroup was removed and nothing more can happen).
fn drain_oom(oom: &mut Option<OomEvents>, id: &str) -> Result<bool> {
    let Some(o) = oom.as_mut() else {
        return Ok(true);
    };
    match o.read() {
        Ok(OomEvent::Oom(_)) => emit("oom", id, None),
        Ok(OomEvent::None) => Ok(true),
        Ok(OomEvent::Gone) => Ok(false),
        Err(e) => {
            logging::warn(format!("events: OOM notifications stopped: {e}"));
            *oom = None;
            Ok(true)
        }
    }
}

/// Go's `time.ParseDuration`: an optional sign, then one or more `<number><unit>` with units
/// ns, us (µs, μs), ms, s, m, h and decimal fractions (`1.5h`, `1h30m`, `.5s`); a bare `0` is
/// zero. Returns nanoseconds.
pub fn parse_go_duration(s: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut b = s.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = b.split_first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            b = rest;
        }
    }
    if b == b"0" {
        return Ok(0);
    }
    if b.is_empty() {
        return Err(invalid());
    }
    const MAX: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !b.is_empty() {
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u128 = 0;
        for &c in &b[..int_len] {
            whole = whole * 10 + u128::from(c - b'0');
            if whole > MAX {
                return Err(invalid());
            }
        }
        b = &b[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0u128, 1u128, 0usize);
        if b.first() == Some(&b'.') {
            b = &b[1..];
            frac_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
            for &c in &b[..frac_len] {
                // Digits past nanosecond-of-an-hour precision cannot matter.
                if scale < 10u128.pow(20) {
                    frac = frac * 10 + u128::from(c - b'0');
                    scale *= 10;
                }
            }
            b = &b[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = b
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        let (unit, rest) = b.split_at(unit_len);
        b = rest;
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let per: u128 = match unit {
            b"ns" => 1,
            b"us" => 1_000,
            u if u == "µs".as_bytes() || u == "μs".as_bytes() => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60 * 1_000_000_000,
            b"h" => 3_600 * 1_000_000_000,
            u => {
                return Err(format!(
                    "time: unknown unit {:?} in duration {s:?}",
                    String::from_utf8_lossy(u)
                ))
            }
        };
        total += whole * per + frac * per / scale;
        if total > MAX {
            return Err(invalid());
        }
    }
    if neg {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total == MAX {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let s = 1_000_000_000i64;
        for (t, want) in [
            ("5s", 5 * s),
            ("500ms", s / 2),
            ("1m", 60 * s),
            ("1m30s", 90 * s),
            ("1.5h", 5400 * s),
            (".5s", s / 2),
            ("1.s", s),
            ("10us", 10_000),
            ("10µs", 10_000),
            ("10μs", 10_000),
            ("7ns", 7),
            ("0", 0),
            ("+0", 0),
            ("-1s", -s),
            ("2h45m0.5s", 9900 * s + s / 2),
        ] {
            assert_eq!(parse_go_duration(t), Ok(want), "{t}");
        }
        for t in [
            "",
            "5",
            "s",
            ".s",
            "1x",
            "1.2.3s",
            "-",
            "1s2",
            "3000000h",
            "99999999999999999999s",
            "ñs",
            "5 s",
        ] {
            assert!(parse_go_duration(t).is_err(), "{t}");
        }
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
    }

    #[test]
    fn event_lines() {
        let st = Stats::default();
        let l = serde_json::to_string(&Event {
            typ: "stats",
            id: "c1",
            data: Some(&st),
        })
        .unwrap();
        assert!(l.starts_with(r#"{"type":"stats","id":"c1","data":{"cpu":"#));
        let l = serde_json::to_string(&Event {
            typ: "oom",
            id: "c1",
            data: None,
        })
        .unwrap();
        assert_eq!(l, r#"{"type":"oom","id":"c1"}"#);
    }
}
