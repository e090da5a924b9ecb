//! `process.capabilities`: the five sets, applied in the order the kernel allows.

use crate::error::{Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;
use std::str::FromStr;

/// The capability sets of a process, as the caps crate's types.
#[derive(Debug, Clone, Default)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: Option<&oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        // Names this build does not know were already skipped with a warning when the
        // config was read (`spec_compat`); skip any left the same way.
        match Capability::from_str(&name) {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => crate::logging::warn(format!(
                "ignoring unknown or unavailable capabilities: [{name}]"
            )),
        }
    }
    Ok(out)
}

/// The capability sets a container process gets: `process.capabilities` without those the
/// runtime itself lacks (removed with a warning). None when the process names none.
pub fn of_process(p: &oci_spec::runtime::Process) -> Result<Option<CapSets>> {
    let Some(c) = p.capabilities() else {
        return Ok(None);
    };
    let mut s = from_spec(c)?;
    let dropped = s.restrict_to_available();
    if !dropped.is_empty() {
        crate::logging::warn(format!(
            "capabilities not available to the runtime, dropped: {dropped:?}"
        ));
    }
    Ok(Some(s))
}

pub fn from_spec(c: &LinuxCapabilities) -> Result<CapSets> {
    Ok(CapSets {
        bounding: convert(c.bounding().as_ref())?,
        effective: convert(c.effective().as_ref())?,
        permitted: convert(c.permitted().as_ref())?,
        inheritable: convert(c.inheritable().as_ref())?,
        ambient: convert(c.ambient().as_ref())?,
    })
}

/// Parses a capability name as given to `exec --cap` (`CAP_X` or `X`, any case).
pub fn parse_name(name: &str) -> Result<Capability> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    Capability::from_str(&full).map_err(|_| Error::config(format!("unknown capability {name:?}")))
}

impl CapSets {
    /// Capabilities this runtime process itself cannot grant (missing from its own bounding
    /// set) are removed from every set, with a warning, instead of failing the container.
    pub fn restrict_to_available(&mut self) -> Vec<Capability> {
        let avail = caps::read(None, CapSet::Bounding).unwrap_or_else(|_| caps::all());
        let mut dropped = Vec::new();
        for set in [
            &mut self.bounding,
            &mut self.effective,
            &mut self.permitted,
            &mut self.inheritable,
            &mut self.ambient,
        ] {
            set.retain(|c| {
                let keep = avail.contains(c);
                if !keep && !dropped.contains(c) {
                    dropped.push(*c);
                }
                keep
            });
        }
        dropped
    }

    pub fn has_effective(&self, c: Capability) -> bool {
        self.effective.contains(&c)
    }
}

fn cerr(what: &str, e: caps::errors::CapsError) -> Error {
    Error::msg(format!("capabilities: {what}: {e}"))
}

/// Drops every capability not in the bounding set (needs CAP_SETPCAP, so done while the
/// process still has it). Every other capability is dropped without reading the set first
/// (dropping an absent one is a no-op): the set need not be the runtime's — a new user
/// namespace starts with a full one.
pub fn apply_bounding(c: &CapSets) -> Result<()> {
    for cap in caps::all().difference(&c.bounding) {
        // SAFETY: prctl with integer arguments.
        let r =
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong, 0, 0, 0) };
        // EINVAL: a capability this kernel does not know.
        if r != 0 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL {
            return Err(Error::msg(format!(
                "capabilities: drop bounding {cap}: {}",
                nix::errno::Errno::last()
            )));
        }
    }
    Ok(())
}

/// Sets inheritable, effective and permitted, then the ambient set. Called after the switch to
/// the container's uid (with PR_SET_KEEPCAPS, so permitted survived it).
pub fn apply_sets(c: &CapSets) -> Result<()> {
    // Order matters: inheritable may only grow within the current permitted set, and effective
    // must stay a subset of permitted at every step.
    caps::set(None, CapSet::Inheritable, &c.inheritable).map_err(|e| cerr("set inheritable", e))?;
    caps::set(None, CapSet::Effective, &c.effective).map_err(|e| cerr("set effective", e))?;
    caps::set(None, CapSet::Permitted, &c.permitted).map_err(|e| cerr("set permitted", e))?;
    // Ambient capabilities also need to be inheritable; like runc, raising them is best
    // effort (runc's own default config lists ambient caps without inheritable ones).
    // Warned about as runc ≥ 1.2 does (an ambient capability must also be inheritable and
    // permitted).
    let mut ambient: Vec<Capability> = c.ambient.iter().copied().collect();
    ambient.sort_by_key(|c| c.index());
    for cap in ambient {
        if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
            let why = match e.to_string() {
                s if s.contains("EPERM") || s.contains("permitted") => {
                    "operation not permitted".to_string()
                }
                s => s,
            };
            crate::logging::warn(format!("can't raise ambient capability {cap}: {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(parse_name("net_admin").unwrap(), Capability::CAP_NET_ADMIN);
        assert_eq!(parse_name("CAP_KILL").unwrap(), Capability::CAP_KILL);
        assert!(parse_name("CAP_NOPE").is_err());
    }

    #[test]
    fn from_spec_converts_all_sets() {
        let j = r#"{"bounding":["CAP_KILL","CAP_CHOWN"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"],"inheritable":[],"ambient":["CAP_KILL"]}"#;
        let lc: LinuxCapabilities = serde_json::from_str(j).unwrap();
        let s = from_spec(&lc).unwrap();
        assert_eq!(s.bounding.len(), 2);
        assert!(s.ambient.contains(&Capability::CAP_KILL));
        assert!(s.inheritable.is_empty());
    }
}
