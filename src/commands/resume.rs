//! `resume ID`: thaw a paused container; any other state is "container not paused" (runc).

use super::Ctx;
use crate::cgroups;
use crate::container::{self, Status};
use crate::error::{Error, Result};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    let dir = ctx.container(id)?;
    let st = container::load(&dir)?;
    if container::status(&dir, &st) != Status::Paused {
        return Err(Error::State("container not paused".into()));
    }
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    mgr.thaw()?;
    dir.mark_paused(false)?;
    Ok(0)
}
