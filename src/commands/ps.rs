//! `ps [--format table|json] ID [PS-ARGS…]`: the container's processes, as host pids.
//!
//! * json: the pids of the container's cgroup as one JSON array line; with no process at all
//!   `null`, exactly what runc prints (Go encodes an empty pid list as `null`).
//! * table: the host's ps(1) is run with PS-ARGS (default `-ef`); its header line is kept and
//!   every other line is printed only if the value in the `PID` column is one of the container's
//!   pids. ps output without a `PID` column is an error, as in runc.
//!
//! A stopped container is not an error (runc lists whatever is left in its cgroup: usually
//! nothing).

use super::Ctx;
use crate::cgroups;
use crate::cli::PsArgs;
use crate::container;
use crate::error::{Context, Error, Result};
use std::io::Write;

pub fn run(ctx: &Ctx, a: &PsArgs) -> Result<i32> {
    let dir = ctx.container_ro(a.id())?;
    let st = container::load(&dir)?;
    let pids = container_pids(ctx, &st)?;
    let mut out = std::io::stdout().lock();
    match a.format.as_str() {
        "json" => {
            let line = if pids.is_empty() {
                "null".to_string()
            } else {
                serde_json::to_string(&pids).map_err(|e| Error::msg(format!("encode pids: {e}")))?
            };
            writeln!(out, "{line}").ctx(|| "write to stdout")?;
            return Ok(0);
        }
        "table" => {}
        _ => return Err(Error::config("invalid format option")),
    }
    let ps_args: Vec<String> = if a.ps_args().is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args().to_vec()
    };
    let output = std::process::Command::new("ps")
        .args(&ps_args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::msg(format!("run ps: {e}")))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        return Err(Error::msg(format!(
            "ps {}: {}: {}",
            ps_args.join(" "),
            output.status,
            one_line(&text)
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    for line in filter_table(&text, &pids)? {
        writeln!(out, "{line}").ctx(|| "write to stdout")?;
    }
    Ok(0)
}

/// Every pid in the container's cgroup; none once the cgroup is gone with the init.
fn container_pids(ctx: &Ctx, st: &crate::state::State) -> Result<Vec<i32>> {
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    match mgr.pids() {
        Ok(p) => Ok(p),
        Err(e) if e.is_not_found() && !container::init_alive(st.pid, st.pid_start) => Ok(vec![]),
        Err(e) => Err(Error::msg(format!("unable to get all container pids: {e}"))),
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The header of ps(1) output and the lines whose PID column holds one of `pids`.
pub fn filter_table<'a>(text: &'a str, pids: &[i32]) -> Result<Vec<&'a str>> {
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let idx = header
        .split_whitespace()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::msg("couldn't find PID field in ps output"))?;
    let mut out = vec![header];
    for line in lines.filter(|l| !l.is_empty()) {
        let field = line.split_whitespace().nth(idx).unwrap_or_default();
        let pid: i32 = field.parse().map_err(|_| {
            Error::msg(format!(
                "unable to parse pid: {field:?} in ps line {line:?}"
            ))
        })?;
        if pids.contains(&pid) {
            out.push(line);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         420       1  0 10:01 ?        00:00:00 sleep 1000
root         421     420  0 10:01 ?        00:00:00 sh -c x y
";

    #[test]
    fn keeps_header_and_container_lines() {
        let got = filter_table(PS, &[420, 421, 999]).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[0].starts_with("UID"));
        assert!(got[1].contains("sleep 1000"));
        assert!(got[2].ends_with("sh -c x y"));
        assert_eq!(filter_table(PS, &[]).unwrap().len(), 1);
    }

    #[test]
    fn pid_column_anywhere() {
        let t = "S   PID CMD\nR  77 x\nS 78 y\n";
        assert_eq!(
            filter_table(t, &[78]).unwrap(),
            vec!["S   PID CMD", "S 78 y"]
        );
    }

    #[test]
    fn errors_not_panics() {
        assert!(filter_table("USER COMMAND\nroot x\n", &[1])
            .unwrap_err()
            .to_string()
            .contains("couldn't find PID field"));
        assert!(filter_table("PID CMD\nabc x\n", &[1]).is_err());
        assert!(filter_table("A B PID\nshort\n", &[1]).is_err());
        assert!(filter_table("", &[1]).is_err());
    }
}
