//! `state ID`: the runtime-spec state JSON, derived from reality.

use super::Ctx;
use crate::container::{self, OciState};
use crate::error::Result;

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    let dir = ctx.container_ro(id)?;
    let st = container::load(&dir)?;
    let status = container::status(&dir, &st);
    let out = serde_json::to_string_pretty(&OciState::new(&st, status))
        .map_err(|e| crate::Error::msg(format!("encode state: {e}")))?;
    println!("{out}");
    Ok(0)
}
