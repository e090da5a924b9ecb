//! Where runc reads a config.json (or an `exec --process` / `update -r` document) differently
//! from oci-spec 0.10's types. These fix-ups run on the JSON before it is typed:
//!
//! * `process.scheduler.flags`: the runtime-spec spells `SCHED_FLAG_RESET_ON_FORK` and
//!   `SCHED_FLAG_DL_OVERRUN`; oci-spec 0.10's enum only accepts `SCHED_RESET_ON_FORK` and
//!   `SCHED_FLAG_D_L_OVERRUN`. The spec's names are translated (the crate's keep working).
//! * `linux.memoryPolicy`: unknown modes and flags get runc's one-line errors, not serde's.
//! * `process.capabilities`: names neither oci-spec nor this kernel's list knows (a config
//!   written for a newer kernel) are skipped with runc's warning, not a refused config.
//! * `linux.namespaces[].path: ""` means a new namespace, as if `path` were absent.
//! * `linux.resources.pids.limit: 0` (explicit) means `pids.max` 1, as runc 1.4 (systemd cannot
//!   set 0 tasks, and runc keeps its two drivers alike); oci-spec's `limit` defaults to 0 when
//!   absent, which rruntime reads as "not set", so an explicit 0 becomes 1 here.

use crate::error::{Error, Result};
use serde_json::Value;

/// The spec's scheduler flag names oci-spec 0.10 spells differently, and its spelling.
const SCHED_FLAG_NAMES: &[(&str, &str)] = &[
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

const MPOL_MODES: &[&str] = &[
    "MPOL_DEFAULT",
    "MPOL_PREFERRED",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];

const MPOL_FLAGS: &[&str] = &[
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

/// Fixes up a whole config.json document. Returns whether anything changed.
pub fn config(v: &mut Value) -> Result<bool> {
    let mut changed = false;
    if let Some(p) = v.get_mut("process") {
        changed |= process(p);
    }
    if let Some(l) = v.get_mut("linux").and_then(Value::as_object_mut) {
        if let Some(mp) = l.get("memoryPolicy") {
            memory_policy(mp)?;
        }
        if let Some(nss) = l.get_mut("namespaces").and_then(Value::as_array_mut) {
            for ns in nss.iter_mut().filter_map(Value::as_object_mut) {
                if ns.get("path").is_some_and(|p| p.as_str() == Some("")) {
                    ns.remove("path");
                    changed = true;
                }
            }
        }
        if let Some(r) = l.get_mut("resources") {
            changed |= resources(r);
        }
    }
    Ok(changed)
}

/// Fixes up a Process document (config.json's `process` or `exec --process`).
pub fn process(p: &mut Value) -> bool {
    let mut changed = false;
    if let Some(flags) = p
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    {
        for f in flags.iter_mut() {
            if let Some((_, crate_name)) = SCHED_FLAG_NAMES
                .iter()
                .find(|(spec, _)| f.as_str() == Some(spec))
            {
                *f = Value::from(*crate_name);
                changed = true;
            }
        }
    }
    if let Some(caps) = p.get_mut("capabilities").and_then(Value::as_object_mut) {
        let mut unknown = std::collections::BTreeSet::new();
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            let Some(list) = caps.get_mut(set).and_then(Value::as_array_mut) else {
                continue;
            };
            let before = list.len();
            // (A non-string is left for serde to refuse.)
            list.retain(|c| match c.as_str() {
                Some(name) if !known_capability(name) => {
                    unknown.insert(name.to_string());
                    false
                }
                _ => true,
            });
            changed |= list.len() != before;
        }
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.into_iter().collect();
            crate::logging::warn(format!(
                "ignoring unknown or unavailable capabilities: [{}]",
                names.join(" ")
            ));
        }
    }
    changed
}

/// A name both oci-spec and the caps crate know.
fn known_capability(name: &str) -> bool {
    use std::str::FromStr;
    serde_json::from_value::<oci_spec::runtime::Capability>(Value::from(name)).is_ok()
        && caps::Capability::from_str(name).is_ok()
}

/// Fixes up a LinuxResources document (config's `linux.resources`, `update -r`).
pub fn resources(r: &mut Value) -> bool {
    match r.pointer_mut("/pids/limit") {
        Some(l) if l.as_i64() == Some(0) => {
            *l = Value::from(1);
            true
        }
        _ => false,
    }
}

/// runc's checks of `linux.memoryPolicy`, with its texts.
fn memory_policy(mp: &Value) -> Result<()> {
    let mode = mp.get("mode").and_then(Value::as_str).unwrap_or_default();
    if !MPOL_MODES.contains(&mode) {
        return Err(Error::config(format!(
            "invalid memory policy mode {mode:?}"
        )));
    }
    for f in mp
        .get("flags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = f.as_str().unwrap_or_default();
        if !MPOL_FLAGS.contains(&name) {
            return Err(Error::config(format!(
                "invalid memory policy flag {name:?}"
            )));
        }
    }
    let nodes = mp.get("nodes").and_then(Value::as_str).unwrap_or_default();
    let count: u32 = crate::process::attrs::parse_nodes(nodes)
        .map_err(|e| Error::config(format!("invalid memory policy nodes {nodes:?}: {e}")))?
        .iter()
        .map(|w| w.count_ones())
        .sum();
    match mode {
        "MPOL_DEFAULT" | "MPOL_LOCAL" if count != 0 => Err(Error::config(format!(
            "memory policy mode requires 0 nodes but got {count}"
        ))),
        "MPOL_BIND" | "MPOL_INTERLEAVE" | "MPOL_PREFERRED_MANY" | "MPOL_WEIGHTED_INTERLEAVE"
            if count == 0 =>
        {
            Err(Error::config(
                "memory policy mode requires at least one node but got 0",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduler_flags_by_the_spec_names() {
        let mut p = json!({"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}});
        assert!(process(&mut p));
        let s: oci_spec::runtime::Scheduler =
            serde_json::from_value(p["scheduler"].clone()).unwrap();
        assert_eq!(s.flags().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn memory_policy_texts() {
        let e = |v: Value| memory_policy(&v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"mode": "MPOL_X"})),
            "invalid memory policy mode \"MPOL_X\""
        );
        assert_eq!(
            e(json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_X"]})),
            "invalid memory policy flag \"MPOL_F_X\""
        );
        assert_eq!(
            e(json!({"mode": "MPOL_DEFAULT", "nodes": "0-1"})),
            "memory policy mode requires 0 nodes but got 2"
        );
        assert_eq!(
            e(json!({"mode": "MPOL_BIND"})),
            "memory policy mode requires at least one node but got 0"
        );
        assert!(memory_policy(&json!({"mode": "MPOL_PREFERRED"})).is_ok());
    }

    #[test]
    fn explicit_pids_zero_is_one() {
        let mut r = json!({"pids": {"limit": 0}});
        assert!(resources(&mut r));
        assert_eq!(r["pids"]["limit"], 1);
        let mut r = json!({"pids": {}});
        assert!(!resources(&mut r));
    }
}
