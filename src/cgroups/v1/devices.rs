//! v1 devices controller: `devices.allow` / `devices.deny`.
//!
//! A fresh cgroup gets the folded rule set written in full: the reset line (`a` to
//! `devices.deny` for a deny-by-default set, to `devices.allow` otherwise), then one line per
//! exception. On `apply` the current `devices.list` is compared first: an unchanged set writes
//! nothing, and between two deny-by-default sets only the difference is written, so a running
//! container never loses access to a device it keeps (and no `a` reset is needed, which the kernel
//! refuses once the cgroup has children).

use std::path::Path;

use crate::cgroups::devices::{Dev, Emulator};
use crate::cgroups::error::Result;
use crate::cgroups::fs::{self, Writer};

fn write_full(dir: &Path, target: &Emulator) -> Result<()> {
    let (reset, exceptions) = if target.default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    fs::write(dir, reset, "a")?;
    if !target.exceptions.is_empty() {
        let mut w = Writer::open(dir, exceptions)?;
        for (d, a) in &target.exceptions {
            w.write(&d.to_cgroup_string(*a))?;
        }
    }
    Ok(())
}

fn access_of(e: &Emulator, d: &Dev) -> u8 {
    e.exceptions
        .iter()
        .find(|(x, _)| x == d)
        .map(|(_, a)| *a)
        .unwrap_or(0)
}

pub(crate) fn apply(dir: &Path, target: &Emulator, fresh: bool) -> Result<()> {
    if fresh {
        return write_full(dir, target);
    }
    let current = Emulator::from_devices_list(&fs::read(dir, "devices.list")?)?;
    if current.same_as(target) {
        return Ok(());
    }
    if current.default_allow || target.default_allow {
        // Allow-all cgroups do not list their exceptions: rewrite everything.
        return write_full(dir, target);
    }
    // Both deny by default: remove what goes away, then add what is new.
    let mut deny: Option<Writer> = None;
    for (d, a) in &current.exceptions {
        let gone = a & !access_of(target, d);
        if gone != 0 {
            if deny.is_none() {
                deny = Some(Writer::open(dir, "devices.deny")?);
            }
            if let Some(w) = deny.as_mut() {
                w.write(&d.to_cgroup_string(gone))?;
            }
        }
    }
    let mut allow: Option<Writer> = None;
    for (d, a) in &target.exceptions {
        let new = a & !access_of(&current, d);
        if new != 0 {
            if allow.is_none() {
                allow = Some(Writer::open(dir, "devices.allow")?);
            }
            if let Some(w) = allow.as_mut() {
                w.write(&d.to_cgroup_string(new))?;
            }
        }
    }
    Ok(())
}
