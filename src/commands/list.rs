//! `list [-q] [--format table|json]`.

use super::Ctx;
use crate::cli::{ListArgs, ListFormat};
use crate::container::{self, OciState};
use crate::error::Result;

pub fn run(ctx: &Ctx, a: &ListArgs) -> Result<i32> {
    let root = match ctx.root(false) {
        Ok(r) => Some(r),
        Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => None,
        Err(e) => return Err(e),
    };
    let mut rows = Vec::new();
    if let Some(root) = &root {
        for id in root.list_ids()? {
            let Ok(dir) = root.open_container(&id, false) else {
                continue;
            };
            let Ok(Some(st)) = dir.load() else { continue };
            let status = container::status(&dir, &st);
            rows.push((st, status));
        }
    }
    if a.quiet {
        for (st, _) in &rows {
            println!("{}", st.id);
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => {
            let v: Vec<OciState> = rows.iter().map(|(s, st)| OciState::new(s, *st)).collect();
            println!(
                "{}",
                serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
            );
        }
        ListFormat::Table => {
            let mut table = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for (st, status) in &rows {
                let o = OciState::new(st, *status);
                table.push([
                    o.id.to_string(),
                    o.pid.to_string(),
                    o.status.to_string(),
                    o.bundle.clone(),
                    o.created.to_string(),
                    o.owner.to_string(),
                ]);
            }
            let mut widths = [0usize; 6];
            for r in &table {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.len());
                }
            }
            for r in &table {
                let mut line = String::new();
                for (i, c) in r.iter().enumerate() {
                    if i + 1 == r.len() {
                        line.push_str(c);
                    } else {
                        line.push_str(&format!("{:<w$}", c, w = widths[i] + 3));
                    }
                }
                println!("{line}");
            }
        }
    }
    Ok(0)
}
