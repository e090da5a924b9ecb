//! `pause ID`: freeze every process of the container's cgroup (v1 freezer, v2 cgroup.freeze).
//! As in runc, a running or a created container can be paused; anything else is "container not
//! running". `state` then reports `paused`.

use super::Ctx;
use crate::cgroups;
use crate::container::{self, Status};
use crate::error::{Error, Result};

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    let dir = ctx.container(id)?;
    let st = container::load(&dir)?;
    match container::status(&dir, &st) {
        Status::Running | Status::Created => {}
        _ => return Err(Error::NotRunning),
    }
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    mgr.freeze()?;
    if let Err(e) = dir.mark_paused(true) {
        let _ = mgr.thaw();
        return Err(e);
    }
    Ok(0)
}
