//! `update [--resources FILE|-] [--memory …] ID`: change a live container's cgroup limits and
//! record them in its state.
//!
//! runc's contract:
//! * `--resources` reads one LinuxResources JSON document (from stdin with `-`); the single-value
//!   flags are then ignored. Otherwise each flag sets one value; memory sizes take go-units
//!   suffixes (`64m`, `1.5g`, `512KiB`, `100b`) or `-1` for unlimited.
//! * What can change is what runc changes: memory limit/reservation/swap (+ checkBeforeUpdate),
//!   cpu shares/quota/period/burst/realtime/cpus/mems/idle, blockIO weight, pids limit and the
//!   v2 `unified` map. A zero number (or an empty cpuset list) means "leave as is". Devices are
//!   never touched by `update` (runc skips them too); hugepage, network, rdma and the other blockIO
//!   fields of a full LinuxResources document are ignored, as runc ignores them.
//! * `--memory -1` without `--memory-swap` makes swap unlimited too.
//! * `--kernel-memory`/`--kernel-memory-tcp` are accepted and ignored with a warning.
//! * A stopped container is "container not running"; a failed update puts back the previous
//!   values (best-effort) before reporting the error.
//!
//! The new values are merged into the config kept in state.json (written atomically), so that
//! later commands see them.

use super::Ctx;
use crate::cgroups;
use crate::cgroups::unset::zero_is_none;
use crate::cli::UpdateArgs;
use crate::container::{self, Status};
use crate::error::{Context, Error, Result};
use crate::logging;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::io::Read;

pub fn run(ctx: &Ctx, a: &UpdateArgs) -> Result<i32> {
    // Unknown ids are reported before any value is looked at (as runc does).
    drop(ctx.container_ro(&a.id)?);
    let requested = match &a.resources {
        Some(src) => from_json(&read_resources(src)?)?,
        None => from_flags(a)?,
    };
    check_intel_rdt(a)?;
    let upd = updatable(&requested);

    let dir = ctx.container(&a.id)?;
    let mut st = container::load(&dir)?;
    if container::status(&dir, &st) == Status::Stopped {
        return Err(Error::NotRunning);
    }
    let mgr = cgroups::from_state(&st.cgroup, ctx.cgroup_opts())?;
    if let Err(e) = mgr.apply(&upd) {
        let mut old = stored_resources(&st)
            .map(|r| updatable(&r))
            .unwrap_or_default();
        if let Some(m) = old.memory_mut() {
            m.set_check_before_update(None);
        }
        if let Err(e2) = mgr.apply(&old) {
            logging::warn(format!(
                "update: setting back the previous resources failed ({e2}); the cgroup and the \
                 container's recorded config may now disagree"
            ));
        }
        return Err(e.into());
    }
    let linux = st.config.linux_mut().get_or_insert_with(Default::default);
    let res = linux.resources_mut().get_or_insert_with(Default::default);
    merge(res, &upd);
    dir.save(&st)?;
    Ok(0)
}

fn stored_resources(st: &crate::state::State) -> Option<LinuxResources> {
    st.config.linux().as_ref()?.resources().clone()
}

fn read_resources(src: &str) -> Result<String> {
    let mut s = String::new();
    if src == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .ctx(|| "read resources from stdin")?;
    } else {
        std::fs::File::open(src)
            .and_then(|mut f| f.read_to_string(&mut s))
            .ctx(|| format!("read resources from {src}"))?;
    }
    Ok(s)
}

/// The first JSON value of `text` as LinuxResources (trailing data is ignored, like Go's
/// json.Decoder).
pub fn from_json(text: &str) -> Result<LinuxResources> {
    // serde would take a struct from an array too; Go only from an object.
    let t = text.trim_start();
    if !(t.is_empty() || t.starts_with('{') || t.starts_with("null")) {
        return Err(Error::config(
            "invalid resources JSON: expected a LinuxResources object",
        ));
    }
    // `null` decodes to "nothing to change", as in Go.
    let mut it = serde_json::Deserializer::from_str(text).into_iter::<Option<serde_json::Value>>();
    match it.next() {
        Some(Ok(None)) => Ok(LinuxResources::default()),
        Some(Ok(Some(mut v))) => {
            crate::spec_compat::resources(&mut v);
            serde_json::from_value(v)
                .map_err(|e| Error::config(format!("invalid resources JSON: {e}")))
        }
        Some(Err(e)) => Err(Error::config(format!("invalid resources JSON: {e}"))),
        None => Err(Error::config(
            "invalid resources JSON: EOF (no value given)",
        )),
    }
}

fn bad(flag: &str, why: impl std::fmt::Display) -> Error {
    Error::config(format!("invalid value for {flag}: {why}"))
}

fn parse_u64(flag: &str, v: &str) -> Result<u64> {
    v.parse()
        .map_err(|_| bad(flag, format!("{v:?} is not an unsigned integer")))
}

fn parse_i64(flag: &str, v: &str) -> Result<i64> {
    v.parse()
        .map_err(|_| bad(flag, format!("{v:?} is not an integer")))
}

/// A memory size flag: `-1` or a go-units RAM size.
fn parse_mem(flag: &str, v: &str) -> Result<i64> {
    if v == "-1" {
        return Ok(-1);
    }
    parse_ram(v).map_err(|e| bad(flag, e))
}

/// Integer flags runc declares as ints (urfave's wording for a bad one).
fn parse_int_flag(flag: &str, v: &str) -> Result<i64> {
    v.parse()
        .map_err(|_| Error::config(format!("invalid value {v:?} for flag -{flag}: parse error")))
}

/// go-units `RAMInBytes`: a non-negative decimal number, an optional space, and an optional
/// binary unit `b`, `k`, `m`, `g`, `t`, `p` (any case), optionally followed by `b` or `ib`.
pub fn parse_ram(s: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid());
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let num = num.trim_end_matches(' ');
    if num.is_empty()
        || !num
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Err(invalid());
    }
    let size: f64 = num.parse().map_err(|_| invalid())?;
    if size < 0.0 || !size.is_finite() {
        return Err(invalid());
    }
    let sfx = sfx.to_ascii_lowercase();
    let b = sfx.as_bytes();
    let bad_suffix = || format!("invalid suffix: '{sfx}'");
    let mul: f64 = match b {
        [] => 1.0,
        _ if b.len() > 3 => return Err(bad_suffix()),
        [b'b'] => 1.0,
        [b'b', ..] => return Err(bad_suffix()),
        [u, rest @ ..] => {
            let shift = match u {
                b'k' => 10,
                b'm' => 20,
                b'g' => 30,
                b't' => 40,
                b'p' => 50,
                _ => return Err(bad_suffix()),
            };
            if !(rest.is_empty() || rest == b"b" || rest == b"ib") {
                return Err(bad_suffix());
            }
            (1u64 << shift) as f64
        }
    };
    let v = size * mul;
    if v >= i64::MAX as f64 {
        return Err(format!("invalid size: '{s}' is too large"));
    }
    Ok(v as i64)
}

/// The single-value flags as a LinuxResources with only the given values set.
pub fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemory::default();
    let mut cpu = LinuxCpu::default();
    if let Some(v) = &a.blkio_weight {
        let w = parse_int_flag("blkio-weight", v)?;
        if w != 0 {
            let w = u16::try_from(w)
                .map_err(|_| bad("blkio-weight", format!("{w} is out of range")))?;
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
    }
    if let Some(v) = a.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = a.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
        cpu.set_mems(Some(v.clone()));
    }
    if let Some(v) = &a.cpu_idle {
        cpu.set_idle(Some(parse_i64("cpu-idle", v)?));
    }
    if let Some(v) = &a.cpu_burst {
        cpu.set_burst(Some(parse_u64("cpu-burst", v)?));
    }
    if let Some(v) = &a.cpu_period {
        cpu.set_period(Some(parse_u64("cpu-period", v)?));
    }
    if let Some(v) = &a.cpu_rt_period {
        cpu.set_realtime_period(Some(parse_u64("cpu-rt-period", v)?));
    }
    if let Some(v) = &a.cpu_share {
        cpu.set_shares(Some(parse_u64("cpu-share", v)?));
    }
    if let Some(v) = &a.cpu_quota {
        cpu.set_quota(Some(parse_i64("cpu-quota", v)?));
    }
    if let Some(v) = &a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(parse_i64("cpu-rt-runtime", v)?));
    }
    if let Some(v) = &a.memory {
        mem.set_limit(Some(parse_mem("memory", v)?));
    }
    if let Some(v) = &a.memory_swap {
        mem.set_swap(Some(parse_mem("memory-swap", v)?));
    }
    if let Some(v) = &a.memory_reservation {
        mem.set_reservation(Some(parse_mem("memory-reservation", v)?));
    }
    for (flag, v) in [
        ("kernel-memory", &a.kernel_memory),
        ("kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_empty()) {
            logging::warn(format!("Setting --{flag} is ignored and will be removed"));
        }
    }
    if let Some(v) = &a.pids_limit {
        let mut p = LinuxPids::default();
        // runc 1.4: 0 means pids.max 1 (0 stays "not set" inside rruntime).
        let l = parse_int_flag("pids-limit", v)?;
        p.set_limit(if l == 0 { 1 } else { l });
        r.set_pids(Some(p));
    }
    r.set_memory(Some(mem));
    r.set_cpu(Some(cpu));
    Ok(r)
}

/// runc has no Intel RDT support here to change; a schema given is refused as runc refuses it
/// on hosts without RDT.
fn check_intel_rdt(a: &UpdateArgs) -> Result<()> {
    if a.l3_cache_schema.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(Error::config(
            "Intel RDT/CAT: l3 cache schema is not enabled",
        ));
    }
    if a.mem_bw_schema.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(Error::config(
            "Intel RDT/MBA: memory bandwidth schema is not enabled",
        ));
    }
    Ok(())
}

/// What `update` changes out of `r`, in the manager's "only what is set is written" form: the
/// fields runc updates, zeros and empty lists dropped (they mean "unchanged").
pub fn updatable(r: &LinuxResources) -> LinuxResources {
    let mut out = LinuxResources::default();
    let mut ignored: Vec<&str> = Vec::new();
    if let Some(m) = r.memory() {
        let mut n = LinuxMemory::default();
        n.set_limit(zero_is_none(m.limit()));
        n.set_reservation(zero_is_none(m.reservation()));
        n.set_swap(zero_is_none(m.swap()));
        if n.limit() == Some(-1) && m.swap().is_none() {
            n.set_swap(Some(-1));
        }
        n.set_check_before_update(m.check_before_update());
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            ignored.push("memory.kernel/kernelTCP");
        }
        if m.swappiness().is_some() || m.disable_oom_killer().is_some() {
            ignored.push("memory.swappiness/disableOOMKiller");
        }
        if n.limit().is_some() || n.reservation().is_some() || n.swap().is_some() {
            out.set_memory(Some(n));
        }
    }
    if let Some(c) = r.cpu() {
        let mut n = LinuxCpu::default();
        n.set_shares(zero_is_none(c.shares()));
        n.set_quota(zero_is_none(c.quota()));
        n.set_period(zero_is_none(c.period()));
        n.set_burst(c.burst());
        n.set_realtime_runtime(zero_is_none(c.realtime_runtime()));
        n.set_realtime_period(zero_is_none(c.realtime_period()));
        n.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        n.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        n.set_idle(c.idle());
        if n != LinuxCpu::default() {
            out.set_cpu(Some(n));
        }
    }
    if let Some(b) = r.block_io() {
        // runc ≥ 1.2 updates the weight, the per-device weights and the four throttle lists
        // (an entry replaces the one of the same device; a rate of 0 removes the limit).
        fn nonempty<T: Clone>(v: &Option<Vec<T>>) -> Option<Vec<T>> {
            v.clone().filter(|v| !v.is_empty())
        }
        let mut n = LinuxBlockIo::default();
        n.set_weight(b.weight().filter(|&w| w != 0));
        n.set_weight_device(nonempty(b.weight_device()));
        n.set_throttle_read_bps_device(nonempty(b.throttle_read_bps_device()));
        n.set_throttle_write_bps_device(nonempty(b.throttle_write_bps_device()));
        n.set_throttle_read_iops_device(nonempty(b.throttle_read_iops_device()));
        n.set_throttle_write_iops_device(nonempty(b.throttle_write_iops_device()));
        if n != LinuxBlockIo::default() {
            out.set_block_io(Some(n));
        }
        if b.leaf_weight().is_some() {
            ignored.push("blockIO.leafWeight");
        }
    }
    if let Some(p) = r.pids().filter(|p| p.limit() != 0) {
        out.set_pids(Some(p));
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        out.set_unified(Some(u.clone()));
    }
    if r.devices().is_some() {
        ignored.push("devices");
    }
    if r.hugepage_limits().is_some() {
        ignored.push("hugepageLimits");
    }
    if r.network().is_some() {
        ignored.push("network");
    }
    if r.rdma().is_some() {
        ignored.push("rdma");
    }
    if !ignored.is_empty() {
        logging::debug(format!(
            "update: not updatable (ignored, as by runc): {}",
            ignored.join(", ")
        ));
    }
    out
}

/// Records the applied values `u` (from [`updatable`]) in the container's stored resources.
pub fn merge(res: &mut LinuxResources, u: &LinuxResources) {
    // Each value given in `u` replaces the stored one; the others stay.
    if let Some(m) = u.memory() {
        let t = res.memory_mut().get_or_insert_with(Default::default);
        t.set_limit(m.limit().or(t.limit()));
        t.set_reservation(m.reservation().or(t.reservation()));
        t.set_swap(m.swap().or(t.swap()));
        t.set_check_before_update(m.check_before_update().or(t.check_before_update()));
    }
    if let Some(c) = u.cpu() {
        let t = res.cpu_mut().get_or_insert_with(Default::default);
        t.set_shares(c.shares().or(t.shares()));
        t.set_quota(c.quota().or(t.quota()));
        t.set_period(c.period().or(t.period()));
        t.set_burst(c.burst().or(t.burst()));
        t.set_realtime_runtime(c.realtime_runtime().or(t.realtime_runtime()));
        t.set_realtime_period(c.realtime_period().or(t.realtime_period()));
        t.set_cpus(c.cpus().clone().or_else(|| t.cpus().clone()));
        t.set_mems(c.mems().clone().or_else(|| t.mems().clone()));
        t.set_idle(c.idle().or(t.idle()));
    }
    if let Some(b) = u.block_io() {
        let t = res.block_io_mut().get_or_insert_with(Default::default);
        t.set_weight(b.weight().or(t.weight()));
        t.set_weight_device(upsert(t.weight_device(), b.weight_device(), |d| {
            (d.major(), d.minor())
        }));
        let key = |d: &oci_spec::runtime::LinuxThrottleDevice| (d.major(), d.minor());
        t.set_throttle_read_bps_device(upsert(
            t.throttle_read_bps_device(),
            b.throttle_read_bps_device(),
            key,
        ));
        t.set_throttle_write_bps_device(upsert(
            t.throttle_write_bps_device(),
            b.throttle_write_bps_device(),
            key,
        ));
        t.set_throttle_read_iops_device(upsert(
            t.throttle_read_iops_device(),
            b.throttle_read_iops_device(),
            key,
        ));
        t.set_throttle_write_iops_device(upsert(
            t.throttle_write_iops_device(),
            b.throttle_write_iops_device(),
            key,
        ));
    }
    if let Some(p) = u.pids() {
        res.set_pids(Some(*p));
    }
    if let Some(un) = u.unified() {
        res.unified_mut()
            .get_or_insert_with(Default::default)
            .extend(un.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// `old` with each entry of `new` replacing the one with the same key (or appended).
fn upsert<T: Clone, K: PartialEq>(
    old: &Option<Vec<T>>,
    new: &Option<Vec<T>>,
    key: impl Fn(&T) -> K,
) -> Option<Vec<T>> {
    let Some(new) = new else {
        return old.clone();
    };
    let mut list = old.clone().unwrap_or_default();
    for d in new {
        list.retain(|o| key(o) != key(d));
        list.push(d.clone());
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes_like_go_units() {
        let ok = [
            ("100", 100),
            ("100b", 100),
            ("100B", 100),
            ("1k", 1024),
            ("1K", 1024),
            ("1kb", 1024),
            ("1KiB", 1024),
            ("16m", 16 << 20),
            ("16M", 16 << 20),
            ("16MB", 16 << 20),
            ("16 m", 16 << 20),
            ("1.5g", 3 << 29),
            ("2G", 2 << 30),
            ("1t", 1 << 40),
            ("1p", 1 << 50),
            ("0", 0),
            ("32 ", 32),
        ];
        for (s, want) in ok {
            assert_eq!(parse_ram(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "m",
            "abc",
            "-5",
            "-1m",
            "1x",
            "1mm",
            "1kbb",
            "1bb",
            "1mib2",
            "1 2m",
            "1e400",
            "9999999999p",
            "1.2.3m",
            "ïm",
            "1ïb",
        ] {
            assert!(parse_ram(s).is_err(), "{s} should be refused");
        }
    }

    fn args(f: impl FnOnce(&mut UpdateArgs)) -> UpdateArgs {
        let mut a = UpdateArgs {
            id: "c".into(),
            ..Default::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn flags_to_resources() {
        let r = updatable(
            &from_flags(&args(|a| {
                a.memory = Some("16m".into());
                a.cpu_quota = Some("20000".into());
                a.cpu_period = Some("100000".into());
                a.cpuset_cpus = Some("0".into());
                a.pids_limit = Some("10".into());
                a.blkio_weight = Some("500".into());
            }))
            .unwrap(),
        );
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(16 << 20));
        assert_eq!(m.swap(), None);
        let c = r.cpu().as_ref().unwrap();
        assert_eq!((c.quota(), c.period()), (Some(20000), Some(100000)));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().unwrap().limit(), 10);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(500));
    }

    #[test]
    fn unlimited_memory_means_unlimited_swap() {
        let r = updatable(&from_flags(&args(|a| a.memory = Some("-1".into()))).unwrap());
        assert_eq!(r.memory().unwrap().swap(), Some(-1));
        let r = updatable(
            &from_flags(&args(|a| {
                a.memory = Some("-1".into());
                a.memory_swap = Some("1g".into());
            }))
            .unwrap(),
        );
        assert_eq!(r.memory().unwrap().swap(), Some(1 << 30));
    }

    #[test]
    fn nothing_given_changes_nothing() {
        let r = updatable(&from_flags(&args(|_| {})).unwrap());
        assert_eq!(r, LinuxResources::default());
    }

    #[test]
    fn pids_limit_zero_is_one_as_runc_1_4() {
        let r = updatable(&from_flags(&args(|a| a.pids_limit = Some("0".into()))).unwrap());
        assert_eq!(r.pids().unwrap().limit(), 1);
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for f in [
            (|a: &mut UpdateArgs| a.memory = Some("lots".into())) as fn(&mut UpdateArgs),
            |a| a.memory_swap = Some("1q".into()),
            |a| a.cpu_share = Some("-2".into()),
            |a| a.cpu_quota = Some("1.5".into()),
            |a| a.cpu_period = Some("".into()),
            |a| a.pids_limit = Some("ten".into()),
            |a| a.blkio_weight = Some("70000".into()),
            |a| a.cpu_idle = Some("x".into()),
        ] {
            let e = from_flags(&args(f)).unwrap_err().to_string();
            assert!(e.starts_with("invalid value"), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn json_documents() {
        let r = updatable(
            &from_json(
                r#"{"memory":{"limit":33554432,"swap":0,"kernel":5},"cpu":{"shares":0,"cpus":""},
                    "pids":{"limit":20},"devices":[{"allow":true,"access":"rwm"}],
                    "hugepageLimits":[{"pageSize":"2MB","limit":0}]} trailing"#,
            )
            .unwrap(),
        );
        assert_eq!(r.memory().unwrap().limit(), Some(32 << 20));
        assert_eq!(r.memory().unwrap().swap(), None);
        assert!(r.cpu().is_none());
        assert!(r.devices().is_none() && r.hugepage_limits().is_none());
        assert_eq!(r.pids().unwrap().limit(), 20);
        for bad in ["", "   ", "{", "[]", "{\"memory\":{\"limit\":\"x\"}}", "x"] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
        // Go decodes null into the zero value: nothing to change.
        assert_eq!(from_json("null").unwrap(), LinuxResources::default());
    }

    #[test]
    fn merge_keeps_what_was_not_updated() {
        let mut res = from_json(
            r#"{"memory":{"limit":1048576,"swappiness":10},"cpu":{"shares":512,"cpus":"0-1"},
                "pids":{"limit":5},"unified":{"a.b":"1"}}"#,
        )
        .unwrap();
        let u = updatable(
            &from_json(
                r#"{"memory":{"limit":2097152},"cpu":{"quota":1000},"unified":{"c.d":"2"}}"#,
            )
            .unwrap(),
        );
        merge(&mut res, &u);
        let m = res.memory().unwrap();
        assert_eq!((m.limit(), m.swappiness()), (Some(2 << 20), Some(10)));
        let c = res.cpu().as_ref().unwrap();
        assert_eq!((c.shares(), c.quota()), (Some(512), Some(1000)));
        assert_eq!(c.cpus().as_deref(), Some("0-1"));
        assert_eq!(res.pids().unwrap().limit(), 5);
        assert_eq!(res.unified().as_ref().unwrap().len(), 2);
    }
}
