//! The systemd cgroup driver (`--systemd-cgroup`): pure cgroup v2 hosts, and v1/hybrid hosts the
//! way runc's legacy manager does it (v1 properties; the unit's directory in every hierarchy, the
//! ones systemd does not manage made by the v1 backend).
//!
//! `linux.cgroupsPath` is read as runc reads it: `slice:prefix:name` (exactly three parts, any
//! of them may be empty), or empty for the default (`system.slice`, or `user.slice` rootless;
//! prefix `runc`; the container id as name). The container's cgroup is a transient unit:
//! `<prefix>-<name>.scope` in the slice, or the slice `<name>` itself when the name ends in
//! `.slice`. A parent slice `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`.
//!
//! `create` clones the init first (not into a cgroup: the unit does not exist yet) and then
//! [`CgroupManager::add_init`] asks systemd for the unit with `StartTransientUnit`, the init's pid
//! in `PIDs`, `Delegate=yes`, `DefaultDependencies=no`, accounting on, and the resources as unit
//! properties the way runc maps them ([`properties`]); it waits for the job's `JobRemoved` signal
//! (bounded), then writes every resource to the cgroup files too (what has no property, and the
//! device filter) through the v2 backend. The init waits for `Go` before it unshares its cgroup
//! namespace, so that namespace is rooted at the unit's cgroup. Processes `exec`'d later are
//! cloned straight into the unit's cgroup (`CLONE_INTO_CGROUP`).
//!
//! `update` sets the properties with `SetUnitProperties` (so a `systemctl daemon-reload` keeps
//! them) and the files; `delete` stops the unit (`StopUnit`, bounded) and resets it if it failed.

pub mod dbus;
pub mod gvariant;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use self::dbus::{Conn, DbusError, Value};
use super::devices::{self, Emulator, Kind};
use super::error::{CgroupError, Result};
use super::oom::OomEvents;
use super::stats::Stats;
use super::{v2, CgroupManager, CgroupMode, CgroupOptions, CgroupState, Hierarchy, JoinPlan};

/// How long a call to systemd, and a unit's start or stop job, may take (runc waits 30 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// systemd's USEC_INFINITY / "infinity" for the u64 properties.
const INFINITY: u64 = u64::MAX;
const DEFAULT_PERIOD: u64 = 100_000;

const SD_DEST: &str = "org.freedesktop.systemd1";
const SD_PATH: &str = "/org/freedesktop/systemd1";
const SD_MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// What the state keeps of the unit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemdUnit {
    /// `docker-abc.scope`
    pub unit: String,
    /// The parent slice (`system.slice`).
    pub slice: String,
    /// The user's systemd instance (rootless), not the system one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

/// `cgroupsPath` parsed: the unit, its slice and where the slice lives in the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    pub slice: String,
    /// The slice's path from the manager's root cgroup: `/system.slice`.
    pub slice_path: String,
    pub unit: String,
}

impl UnitSpec {
    /// runc's reading of `cgroupsPath` for the systemd driver.
    pub fn parse(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<UnitSpec> {
        let (parent, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
            None => ("", "runc", id),
            Some(p) => {
                let parts: Vec<&str> = p.split(':').collect();
                if parts.len() != 3 {
                    return Err(CgroupError::msg(format!(
                        "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"
                    )));
                }
                (parts[0], parts[1], parts[2])
            }
        };
        let slice = match parent {
            "" if rootless => "user.slice",
            "" => "system.slice",
            s => s,
        };
        let slice_path = expand_slice(slice)?;
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else {
            format!("{prefix}-{name}.scope")
        };
        if unit.contains('/') || unit == ".." || unit.contains('\0') {
            return Err(CgroupError::msg(format!(
                "invalid systemd unit name {unit:?} (from cgroupsPath)"
            )));
        }
        Ok(UnitSpec {
            slice: slice.to_string(),
            slice_path,
            unit,
        })
    }

    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` → `/` (systemd's naming of the
/// slice hierarchy). Empty components (`a--b.slice`, `-a.slice`) and `/` are invalid.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || CgroupError::msg(format!("invalid slice name: {slice}"));
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for c in base.split('-') {
        if c.is_empty() {
            return Err(bad());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(c);
        path.push_str(".slice");
        prefix.push_str(c);
        prefix.push('-');
    }
    Ok(path)
}

/// A cpu or memory-node list (`0-3,7`) as systemd's bitmask bytes (`AllowedCPUs`): byte i holds
/// bits i·8 … i·8+7.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>> {
    let bad = || CgroupError::msg(format!("invalid cpu or memory-node list {list:?}"));
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        for i in a..=b {
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    if bytes.is_empty() {
        return Err(bad());
    }
    Ok(bytes)
}

fn u64_or_infinity(v: i64) -> u64 {
    if v < 0 {
        INFINITY
    } else {
        v as u64
    }
}

/// `CPUQuotaPerSecUSec` (and `CPUQuotaPeriodUSec`) as runc computes them: systemd keeps whole
/// percent of a CPU, so the quota is rounded up to 10 ms per second; the returned quota is the
/// one to write to `cpu.max` so that file and property agree.
fn cpu_quota(props: &mut Vec<(String, Value)>, quota: i64, period: u64) -> i64 {
    let mut quota = quota;
    if period != 0 {
        props.push(("CPUQuotaPeriodUSec".into(), Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = INFINITY;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if per_sec % 10_000 != 0 {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
                quota = (per_sec.saturating_mul(period) / 1_000_000) as i64;
            }
        }
        props.push(("CPUQuotaPerSecUSec".into(), Value::U64(per_sec)));
    }
    quota
}

/// The device rules as `DevicePolicy`/`DeviceAllow` (runc's mapping): strict allow-listing, one
/// entry per allowed device or class. systemd cannot express a deny-list except "allow all";
/// the eBPF filter the v2 backend attaches as well enforces the exact rules in every case.
/// The CPU properties v1 and v2 units share (runc maps them alike): the quota with its period
/// (systemd >= 242 takes the period), rounded as systemd rounds it — `r` gets the rounded quota
/// for the files — and AllowedCPUs/AllowedMemoryNodes (systemd >= 244).
fn cpu_quota_and_sets(
    p: &mut Vec<(String, Value)>,
    r: &mut LinuxResources,
    c: &oci_spec::runtime::LinuxCpu,
    version: u32,
) -> Result<()> {
    let period = if version >= 242 {
        c.period().unwrap_or(0)
    } else {
        0
    };
    let quota = c.quota().unwrap_or(0);
    let q = cpu_quota(p, quota, period);
    if q != quota {
        let mut c2 = c.clone();
        c2.set_quota(Some(q));
        r.set_cpu(Some(c2));
    }
    if version >= 244 {
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            p.push(("AllowedCPUs".into(), Value::Bytes(range_to_bits(cpus)?)));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            p.push((
                "AllowedMemoryNodes".into(),
                Value::Bytes(range_to_bits(mems)?),
            ));
        }
    }
    Ok(())
}

fn device_properties(emu: &Emulator) -> Vec<(String, Value)> {
    if emu.default_allow {
        if emu.exceptions.is_empty() {
            return vec![
                ("DevicePolicy".into(), Value::Str("auto".into())),
                ("DeviceAllow".into(), Value::StrPairs(Vec::new())),
            ];
        }
        return vec![
            ("DeviceAllow".into(), Value::StrPairs(Vec::new())),
            ("DevicePolicy".into(), Value::Str("strict".into())),
        ];
    }
    let mut allow = Vec::new();
    for (d, acc) in &emu.exceptions {
        let class = match d.kind {
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::All => continue,
        };
        let path = match (d.major, d.minor) {
            (None, None) => format!("{class}-*"),
            // systemd has no "any major, this minor" rule; the eBPF filter has it.
            (None, Some(_)) => continue,
            (Some(ma), None) => format!("{class}-{ma}"),
            (Some(ma), Some(mi)) => format!("/dev/{class}/{ma}:{mi}"),
        };
        allow.push((path, devices::access_string(*acc)));
    }
    vec![
        ("DeviceAllow".into(), Value::StrPairs(Vec::new())),
        ("DevicePolicy".into(), Value::Str("strict".into())),
        ("DeviceAllow".into(), Value::StrPairs(allow)),
    ]
}

/// The unit properties for `r` (runc's v2 mapping plus the io ones), and the resources to write
/// to the files afterwards (the cpu quota rounded as the property is). `version`: systemd's
/// version, for properties older systemds lack. `rootless`: no device rules.
pub fn properties(
    r: &LinuxResources,
    version: u32,
    rootless: bool,
) -> Result<(Vec<(String, Value)>, LinuxResources)> {
    let mut r = super::unset::without_zeros(r).into_owned();
    let mut p: Vec<(String, Value)> = Vec::new();
    if !rootless {
        if let Some(list) = r.devices() {
            p.extend(device_properties(&Emulator::from_oci(list)?));
        }
    }
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            p.push(("MemoryMax".into(), Value::U64(u64_or_infinity(l))));
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            p.push(("MemoryLow".into(), Value::U64(u64_or_infinity(l))));
        }
        let swap = v2::memory_swap_v2(m.swap().unwrap_or(0), m.limit().unwrap_or(0))?;
        if swap != 0 {
            p.push(("MemorySwapMax".into(), Value::U64(u64_or_infinity(swap))));
        }
    }
    if let Some(c) = r.cpu().clone() {
        let idle = c.idle() == Some(1) && version >= 252;
        if idle {
            p.push(("CPUWeight".into(), Value::U64(0)));
        } else if let Some(s) = c.shares().filter(|s| *s != 0) {
            p.push(("CPUWeight".into(), Value::U64(v2::shares_to_weight(s))));
        }
        cpu_quota_and_sets(&mut p, &mut r, &c, version)?;
    }
    if let Some(pids) = r.pids() {
        let l = pids.limit();
        if l != 0 {
            p.push(("TasksMax".into(), Value::U64(u64_or_infinity(l))));
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            p.push((
                "IOWeight".into(),
                Value::U64(v2::blkio_weight_to_io_weight(w)),
            ));
        }
        let dev = |ma: i64, mi: i64| format!("/dev/block/{ma}:{mi}");
        let mut wd = Vec::new();
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight().filter(|w| *w != 0) {
                wd.push((dev(d.major(), d.minor()), v2::blkio_weight_to_io_weight(w)));
            }
        }
        if !wd.is_empty() {
            p.push(("IODeviceWeight".into(), Value::StrU64s(wd)));
        }
        for (name, list) in [
            ("IOReadBandwidthMax", b.throttle_read_bps_device()),
            ("IOWriteBandwidthMax", b.throttle_write_bps_device()),
            ("IOReadIOPSMax", b.throttle_read_iops_device()),
            ("IOWriteIOPSMax", b.throttle_write_iops_device()),
        ] {
            let v: Vec<(String, u64)> = list
                .iter()
                .flatten()
                .map(|d| (dev(d.major(), d.minor()), d.rate()))
                .collect();
            if !v.is_empty() {
                p.push((name.into(), Value::StrU64s(v)));
            }
        }
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for k in keys {
            let v = u[k].trim();
            let num = |v: &str| -> Result<u64> {
                if v == "max" {
                    return Ok(INFINITY);
                }
                v.parse().map_err(|_| {
                    CgroupError::msg(format!(
                        "linux.resources.unified: {k:?} value {v:?} is not a number"
                    ))
                })
            };
            match k.as_str() {
                "memory.high" => p.push(("MemoryHigh".into(), Value::U64(num(v)?))),
                "memory.low" => p.push(("MemoryLow".into(), Value::U64(num(v)?))),
                "memory.min" => p.push(("MemoryMin".into(), Value::U64(num(v)?))),
                "memory.max" => p.push(("MemoryMax".into(), Value::U64(num(v)?))),
                "memory.swap.max" => p.push(("MemorySwapMax".into(), Value::U64(num(v)?))),
                "pids.max" => p.push(("TasksMax".into(), Value::U64(num(v)?.max(1)))),
                "cpu.weight"
                    if !(u.get("cpu.idle").map(|s| s.trim()) == Some("1") && version >= 252) =>
                {
                    p.push(("CPUWeight".into(), Value::U64(num(v)?)))
                }
                "cpu.idle" if v == "1" && version >= 252 => {
                    p.push(("CPUWeight".into(), Value::U64(0)))
                }
                "cpu.max" => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.is_empty() || f.len() > 2 {
                        return Err(CgroupError::msg(format!(
                            "linux.resources.unified: \"cpu.max\" value {v:?} is invalid"
                        )));
                    }
                    let quota = if f[0] == "max" { 0 } else { num(f[0])? as i64 };
                    let period = match f.get(1) {
                        Some(s) => num(s)?,
                        None => DEFAULT_PERIOD,
                    };
                    cpu_quota(&mut p, quota, if version >= 242 { period } else { 0 });
                }
                "cpuset.cpus" if version >= 244 => {
                    p.push(("AllowedCPUs".into(), Value::Bytes(range_to_bits(v)?)))
                }
                "cpuset.mems" if version >= 244 => {
                    p.push(("AllowedMemoryNodes".into(), Value::Bytes(range_to_bits(v)?)))
                }
                // Everything else is written to its file only.
                _ => {}
            }
        }
    }
    Ok((p, r))
}

/// The resources as unit properties on a cgroup v1 or hybrid host (runc's legacy mapping:
/// MemoryLimit, CPUShares, the CPU quota, BlockIOWeight, TasksMax, AllowedCPUs/MemoryNodes on
/// systemd >= 244, the device policy); everything is written to the v1 files as well.
pub fn properties_v1(
    r: &LinuxResources,
    version: u32,
) -> Result<(Vec<(String, Value)>, LinuxResources)> {
    let mut r = super::unset::without_zeros(r).into_owned();
    let mut p: Vec<(String, Value)> = Vec::new();
    if let Some(list) = r.devices() {
        p.extend(device_properties(&Emulator::from_oci(list)?));
    }
    if let Some(l) = r
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|l| *l != 0)
    {
        p.push(("MemoryLimit".into(), Value::U64(u64_or_infinity(l))));
    }
    if let Some(c) = r.cpu().clone() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            p.push(("CPUShares".into(), Value::U64(s)));
        }
        cpu_quota_and_sets(&mut p, &mut r, &c, version)?;
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        p.push(("BlockIOWeight".into(), Value::U64(w as u64)));
    }
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
        p.push(("TasksMax".into(), Value::U64(u64_or_infinity(l))));
    }
    Ok((p, r))
}

/// The annotation prefix whose keys name extra unit properties (runc's auxiliary properties).
pub const PROPERTY_PREFIX: &str = "org.systemd.property.";

/// The unit properties the `org.systemd.property.<Name>` annotations ask for, as runc reads
/// them: `<Name>` of at least three ASCII letters, the value in the GVariant text format; a
/// name ending in a lowercase letter and `Sec` (`TimeoutStopSec`) becomes `…USec` with the
/// number of seconds in microseconds. Sorted by name; they go after the runtime's own
/// properties, so they can override them.
pub fn annotation_properties<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Vec<(String, Value)>> {
    let mut list: Vec<(&String, &String)> = annotations
        .into_iter()
        .filter(|(k, _)| k.starts_with(PROPERTY_PREFIX))
        .collect();
    list.sort();
    let mut out = Vec::new();
    for (k, v) in list {
        let mut name = k[PROPERTY_PREFIX.len()..].to_string();
        let bad_name = if name.len() < 3 {
            Some("too short")
        } else if !name.bytes().all(|c| c.is_ascii_alphabetic()) {
            Some("contains non-alphabetic character")
        } else {
            None
        };
        if let Some(why) = bad_name {
            return Err(CgroupError::msg(format!(
                "annotation {k} name incorrect: {why}"
            )));
        }
        let parse_err =
            |why: String| CgroupError::msg(format!("annotation {k}={v} value parse error: {why}"));
        let mut value = gvariant::parse(v).map_err(parse_err)?;
        if let Some(stem) = name.strip_suffix("Sec") {
            if stem.ends_with(|c: char| c.is_ascii_lowercase()) {
                let usec = value
                    .sec_to_usec()
                    .ok_or_else(|| parse_err("not a number".into()))?;
                name = format!("{stem}USec");
                value = gvariant::Gv::U64(usec);
            }
        }
        out.push((name, Value::Any(value)));
    }
    Ok(out)
}

fn dbus_err(what: &str, e: DbusError) -> CgroupError {
    CgroupError::msg(format!("systemd: {what}: {e}"))
}

/// A connection to the system (or the user's) systemd: the bus socket as runc and crun use it;
/// when there is no bus daemon, root falls back to systemd's private socket (same protocol, no
/// bus in between).
pub(crate) fn connect(user: bool) -> Result<Conn> {
    let (addr, private) = if user {
        let addr = dbus::session_bus_address().ok_or_else(|| {
            CgroupError::msg(
                "systemd user instance: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set",
            )
        })?;
        let private = std::env::var("XDG_RUNTIME_DIR")
            .ok()
            .map(|d| format!("{d}/systemd/private"));
        (addr, private)
    } else {
        (
            dbus::system_bus_address(),
            Some("/run/systemd/private".to_string()),
        )
    };
    let path = dbus::unix_path_of(&addr)
        .ok_or_else(|| CgroupError::msg(format!("D-Bus address {addr:?} has no unix socket")))?;
    // The user's bus runs outside a rootless user namespace (Podman's): it sees uid 0 of that
    // namespace as the user's own uid, which is what EXTERNAL must claim (runc claims the
    // bus' OwnerUID for the same reason). The system bus is in this process's namespace.
    let euid = nix::unistd::geteuid().as_raw();
    let uid = if user {
        crate::userns::outside_id("uid_map", euid).unwrap_or(euid)
    } else {
        euid
    };
    match Conn::connect(&path, uid, true, CALL_TIMEOUT) {
        Ok(c) => Ok(c),
        Err(e) => match private.filter(|p| Path::new(p).exists()) {
            Some(p) => Conn::connect(&p, uid, false, CALL_TIMEOUT).map_err(|e2| {
                dbus_err(
                    "connect",
                    DbusError {
                        name: String::new(),
                        message: format!("{e}; {e2}"),
                    },
                )
            }),
            None => Err(dbus_err("connect", e)),
        },
    }
}

/// Asks for `JobRemoved` signals (a bus delivers them only to subscribers with a match rule).
fn subscribe(c: &mut Conn) -> std::result::Result<(), DbusError> {
    // On the private socket there is no bus: AddMatch fails and is not needed.
    let _ = c.call(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "AddMatch",
        &[Value::Str(
            "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved',path='/org/freedesktop/systemd1'".into(),
        )],
    );
    c.call(Some(SD_DEST), SD_PATH, SD_MANAGER, "Subscribe", &[])
        .map(|_| ())
}

fn manager_call(
    c: &mut Conn,
    member: &str,
    args: &[Value],
) -> std::result::Result<dbus::Message, DbusError> {
    c.call(Some(SD_DEST), SD_PATH, SD_MANAGER, member, args)
}

/// A string property of the manager (`Version`, `ControlGroup`).
fn manager_property(c: &mut Conn, name: &str) -> std::result::Result<String, DbusError> {
    let m = c.call(
        Some(SD_DEST),
        SD_PATH,
        "org.freedesktop.DBus.Properties",
        "Get",
        &[Value::Str(SD_MANAGER.into()), Value::Str(name.into())],
    )?;
    let mut r = m.reader();
    let bad = || DbusError {
        name: String::new(),
        message: format!("unexpected reply to Get({name})"),
    };
    if m.signature != "v" || r.sig().map_err(|_| bad())? != "s" {
        return Err(bad());
    }
    r.str().map_err(|_| bad())
}

/// The leading number of systemd's version string (`252.30-1~deb12u2` → 252).
pub fn parse_version(v: &str) -> u32 {
    let v = v.trim_start_matches(['"', 'v']);
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse().unwrap_or(0)
}

/// Waits for the `JobRemoved` signal of `job`; its result (`done`, `failed`, `timeout`, …).
fn wait_job(c: &mut Conn, job: &str) -> std::result::Result<String, DbusError> {
    c.set_timeout(CALL_TIMEOUT);
    let m = c.wait_signal("JobRemoved", |m| {
        let mut r = m.reader();
        m.signature == "uoss" && r.u32().is_ok() && r.str().ok().as_deref() == Some(job)
    })?;
    let mut r = m.reader();
    let _ = r.u32();
    let _ = r.str();
    let _ = r.str();
    Ok(r.str().unwrap_or_default())
}

fn reset_failed(c: &mut Conn, unit: &str) {
    let _ = manager_call(c, "ResetFailedUnit", &[Value::Str(unit.into())]);
}

/// Starts the transient unit and waits for its job; on failure nothing is left behind.
fn start_unit(c: &mut Conn, unit: &str, props: Vec<(String, Value)>) -> Result<()> {
    subscribe(c).map_err(|e| dbus_err("subscribe", e))?;
    let args = [
        Value::Str(unit.into()),
        Value::Str("replace".into()),
        Value::Props(props),
        Value::AuxUnits,
    ];
    let reply = match manager_call(c, "StartTransientUnit", &args) {
        Err(e) if e.is("org.freedesktop.systemd1.UnitExists") => {
            // A failed leftover of the same name: let systemd drop it, and try once more.
            reset_failed(c, unit);
            manager_call(c, "StartTransientUnit", &args)
        }
        r => r,
    }
    .map_err(|e| dbus_err(&format!("start unit {unit}"), e))?;
    let job = reply.first_str().unwrap_or_default();
    match wait_job(c, &job) {
        Ok(r) if r == "done" => Ok(()),
        Ok(r) => {
            stop_unit(c, unit);
            Err(CgroupError::msg(format!(
                "systemd: error creating unit {unit}: job {r}"
            )))
        }
        Err(e) => {
            stop_unit(c, unit);
            Err(dbus_err(&format!("waiting for unit {unit} to start"), e))
        }
    }
}

/// Stops the unit (bounded) and resets it if it failed; a unit that does not exist is fine.
fn stop_unit(c: &mut Conn, unit: &str) -> bool {
    c.set_timeout(CALL_TIMEOUT);
    let _ = subscribe(c);
    let ok = match manager_call(
        c,
        "StopUnit",
        &[Value::Str(unit.into()), Value::Str("replace".into())],
    ) {
        Ok(m) => {
            let job = m.first_str().unwrap_or_default();
            wait_job(c, &job).is_ok()
        }
        Err(e) => e.is("org.freedesktop.systemd1.NoSuchUnit"),
    };
    reset_failed(c, unit);
    ok
}

/// The files' backend: v2 on a pure cgroup v2 host, v1 on a v1 or hybrid one.
enum Inner {
    V2(v2::Manager),
    V1(super::v1::Manager),
}

impl Inner {
    fn m(&self) -> &dyn CgroupManager {
        match self {
            Inner::V2(m) => m,
            Inner::V1(m) => m,
        }
    }
}

/// The driver: the unit over D-Bus, the files through the v2 backend.
pub(crate) struct Manager {
    st: CgroupState,
    inner: Inner,
    opts: CgroupOptions,
    /// `create`'s resources, applied when the unit is started with the init's pid.
    pending: Option<LinuxResources>,
    /// The `org.systemd.property.*` annotations' properties, for the unit's start.
    extra: Vec<(String, Value)>,
}

impl Manager {
    pub(crate) fn new(st: CgroupState, opts: CgroupOptions) -> Manager {
        Manager {
            inner: if st.mode == CgroupMode::V2 {
                Inner::V2(v2::Manager::new(st.clone(), opts.clone()))
            } else {
                Inner::V1(super::v1::Manager::new(st.clone(), opts.clone()))
            },
            st,
            opts,
            pending: None,
            extra: Vec::new(),
        }
    }

    fn unit(&self) -> Result<&SystemdUnit> {
        self.st
            .systemd
            .as_ref()
            .ok_or_else(|| CgroupError::msg("no systemd unit recorded for this container"))
    }

    fn properties(
        &self,
        r: &LinuxResources,
        version: u32,
    ) -> Result<(Vec<(String, Value)>, LinuxResources)> {
        if self.st.mode == CgroupMode::V2 {
            properties(r, version, self.opts.rootless)
        } else {
            properties_v1(r, version)
        }
    }

    fn dir(&self) -> Option<&Path> {
        self.st.hierarchies.first().map(|h| h.dir.as_path())
    }

    /// systemd's version when `r` sets something whose property depends on it (one round
    /// trip saved otherwise).
    fn version(c: &mut Conn, r: &LinuxResources) -> u32 {
        let cpu = r.cpu().as_ref().is_some_and(|c| {
            c.idle().is_some() || c.period().is_some() || c.cpus().is_some() || c.mems().is_some()
        });
        let unified = r
            .unified()
            .as_ref()
            .is_some_and(|u| u.keys().any(|k| k.starts_with("cpu")));
        if !cpu && !unified {
            return u32::MAX;
        }
        manager_property(c, "Version")
            .map(|v| parse_version(&v))
            .unwrap_or(0)
    }
}

/// Builds the driver's state for a new container: the unit and its cgroup directory.
pub(crate) fn new_state(
    cgroups_path: Option<&str>,
    id: &str,
    opts: &CgroupOptions,
    layout: &super::Layout,
) -> Result<CgroupState> {
    let spec = UnitSpec::parse(cgroups_path, id, opts.rootless)?;
    // Rootless (an unprivileged user, or uid 0 of a user namespace that is not the host's
    // root): the user's own manager on the session bus.
    let user = opts.rootless && !crate::userns::really_root();
    if !user && !Path::new("/run/systemd/system").is_dir() {
        // sd_booted(3), as runc checks it.
        return Err(CgroupError::unsupported(
            "the systemd cgroup driver (--systemd-cgroup)",
            "systemd is not running on this host (no /run/systemd/system)",
        ));
    }
    let v2 = match (&layout.v2, layout.mode) {
        (Some(u), CgroupMode::V2) => u,
        (_, CgroupMode::V1 | CgroupMode::Hybrid) => {
            // runc's legacy manager: the unit's directory in every hierarchy.
            if user {
                return Err(CgroupError::unsupported(
                    "the rootless systemd cgroup driver",
                    "cannot use rootless systemd cgroups manager on cgroup v1",
                ));
            }
            let abs = format!("{}/{}", spec.slice_path.trim_end_matches('/'), spec.unit);
            let mut st = super::resolve(layout, &super::CgroupPath::Absolute(abs), None)?;
            st.path = format!("{}:{}", spec.slice, spec.unit);
            st.systemd = Some(SystemdUnit {
                unit: spec.unit,
                slice: spec.slice,
                user,
            });
            return Ok(st);
        }
        _ => {
            return Err(CgroupError::unsupported(
                "the systemd cgroup driver",
                "no cgroup2 mount found on this host",
            ))
        }
    };
    // Rootless: the user manager's own cgroup is the root of its slices.
    let base = if user {
        let mut c = connect(true)?;
        manager_property(&mut c, "ControlGroup")
            .map_err(|e| dbus_err("user manager's ControlGroup", e))?
    } else {
        String::new()
    };
    let mut rel = PathBuf::from(base.trim_start_matches('/'));
    rel.push(spec.slice_path.trim_start_matches('/'));
    rel.push(&spec.unit);
    let dir = v2.mount_point.join(rel);
    Ok(CgroupState {
        path: format!("{}:{}", spec.slice, spec.unit),
        mode: CgroupMode::V2,
        hierarchies: vec![Hierarchy {
            controllers: String::new(),
            mount_point: v2.mount_point.clone(),
            dir,
            noprefix: false,
        }],
        created: Vec::new(),
        systemd: Some(SystemdUnit {
            unit: spec.unit,
            slice: spec.slice,
            user,
        }),
    })
}

impl CgroupManager for Manager {
    /// Nothing is made yet: the unit needs the init's pid ([`CgroupManager::add_init`]). The
    /// resources are checked now, before anything is cloned.
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let r = resources.cloned().unwrap_or_default();
        self.properties(&r, u32::MAX)?;
        self.pending = Some(r);
        Ok(())
    }

    fn unit_properties_from(
        &mut self,
        annotations: &std::collections::HashMap<String, String>,
    ) -> Result<()> {
        self.extra = annotation_properties(annotations)?;
        Ok(())
    }

    fn init_join_plan(&self) -> JoinPlan {
        JoinPlan {
            runtime_adds: true,
            ..Default::default()
        }
    }

    fn add_init(&mut self, pid: i32) -> Result<()> {
        let u = self.unit()?.clone();
        let r = self.pending.take().unwrap_or_default();
        let mut c = connect(u.user)?;
        let version = Self::version(&mut c, &r);
        let (res_props, files) = self.properties(&r, version)?;
        let mut props: Vec<(String, Value)> = vec![(
            "Description".into(),
            Value::Str(format!("libcontainer container {}", u.unit)),
        )];
        let slice = u.unit.ends_with(".slice");
        if slice {
            props.push(("Wants".into(), Value::Strs(vec![u.slice.clone()])));
        } else {
            props.push(("Slice".into(), Value::Str(u.slice.clone())));
            props.push(("Delegate".into(), Value::Bool(true)));
            props.push(("PIDs".into(), Value::U32s(vec![pid as u32])));
        }
        let io = if self.st.mode == CgroupMode::V2 {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        };
        for a in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
            props.push((a.into(), Value::Bool(true)));
        }
        props.push(("DefaultDependencies".into(), Value::Bool(false)));
        props.extend(res_props);
        props.extend(std::mem::take(&mut self.extra));
        start_unit(&mut c, &u.unit, props)?;
        let res = match &mut self.inner {
            Inner::V2(m) => (|| {
                if slice {
                    // A slice holds no processes of its own in systemd's model; put the init
                    // in its cgroup directly.
                    m.add_task(pid)?;
                }
                m.adopt(&files)
            })(),
            // v1/hybrid (runc's legacy manager): systemd made the unit's directory in the
            // hierarchies it manages; the others (cpuset, freezer, net_cls, …, and the init's
            // place in each) are the runtime's, then every resource goes to the files.
            Inner::V1(m) => m.create(Some(&files)).and_then(|()| m.add_task(pid)),
        };
        if let Err(e) = res {
            if self.st.mode == CgroupMode::V2 {
                stop_unit(&mut c, &u.unit);
            } else {
                let _ = self.destroy();
            }
            return Err(e);
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        self.inner.m().add_task(pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let u = self.unit()?;
        let mut c = connect(u.user)?;
        let version = Self::version(&mut c, resources);
        let (props, files) = self.properties(resources, version)?;
        if !props.is_empty() {
            manager_call(
                &mut c,
                "SetUnitProperties",
                &[
                    Value::Str(u.unit.clone()),
                    Value::Bool(true),
                    Value::Props(props),
                ],
            )
            .map_err(|e| dbus_err(&format!("set properties of {}", u.unit), e))?;
        }
        self.inner.m().apply(&files)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.inner.m().pids()
    }

    fn freeze(&self) -> Result<()> {
        self.inner.m().freeze()
    }

    fn thaw(&self) -> Result<()> {
        self.inner.m().thaw()
    }

    fn is_frozen(&self) -> Result<bool> {
        self.inner.m().is_frozen()
    }

    fn destroy(&self) -> Result<()> {
        let u = self.unit()?;
        let mut c = connect(u.user)?;
        if !stop_unit(&mut c, &u.unit) {
            return Err(CgroupError::msg(format!(
                "systemd: unit {} did not stop in time",
                u.unit
            )));
        }
        if self.st.mode != CgroupMode::V2 {
            // v1/hybrid: the unit's directory in the hierarchies systemd does not manage
            // (cpuset, freezer, net_cls, …), and sub-cgroups anywhere, are the runtime's to
            // remove (runc removes every path).
            let deadline = std::time::Instant::now() + super::fs::REMOVE_TIMEOUT;
            let mut first = None;
            for h in self.st.hierarchies.iter().filter(|h| h.dir.exists()) {
                if let Err(e) = super::fs::remove_tree(&h.dir, deadline) {
                    first.get_or_insert(e);
                }
            }
            return first.map_or(Ok(()), Err);
        }
        // Sub-cgroups the container made inside its own are not systemd's to remove.
        if let Some(d) = self.dir().filter(|d| d.exists()) {
            super::fs::remove_tree(d, std::time::Instant::now() + Duration::from_secs(1))?;
        }
        Ok(())
    }

    fn destroy_force(&self) -> Result<()> {
        if self.dir().is_some_and(|d| d.exists()) {
            // StopUnit would SIGTERM first and wait; the container is to die now.
            let _ = self.inner.m().kill_all(Signal::SIGKILL);
        }
        self.destroy()
    }

    fn state(&self) -> CgroupState {
        self.st.clone()
    }

    fn kill_all(&self, sig: Signal) -> Result<()> {
        self.inner.m().kill_all(sig)
    }

    fn stats(&self) -> Result<Stats> {
        self.inner.m().stats()
    }

    fn oom_events(&self) -> Result<OomEvents> {
        self.inner.m().oom_events()
    }

    fn mode(&self) -> CgroupMode {
        self.st.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runc's rules for `org.systemd.property.<Name>` annotations.
    #[test]
    fn annotations_become_properties_like_runc() {
        use super::gvariant::Gv;
        let one = |k: &str, v: &str| {
            let a: std::collections::HashMap<String, String> =
                [(k.to_string(), v.to_string())].into();
            annotation_properties(&a)
        };
        let ok = |k: &str, v: &str, name: &str, want: Gv| {
            let p = one(&format!("{PROPERTY_PREFIX}{k}"), v).unwrap();
            assert_eq!(p, vec![(name.to_string(), Value::Any(want))], "{k}={v}");
        };
        ok(
            "TimeoutStopUSec",
            "uint64 123456789",
            "TimeoutStopUSec",
            Gv::U64(123456789),
        );
        ok(
            "TimeoutStopSec",
            "456",
            "TimeoutStopUSec",
            Gv::U64(456_000_000),
        );
        for t in [
            "byte", "int16", "uint16", "int32", "uint32", "int64", "uint64",
        ] {
            ok(
                "TimeoutStopSec",
                &format!("{t} 234"),
                "TimeoutStopUSec",
                Gv::U64(234_000_000),
            );
        }
        ok(
            "TimeoutStopSec",
            "234.789",
            "TimeoutStopUSec",
            Gv::U64(234_789_000),
        );
        // Not `<lowercase>Sec`: no conversion.
        ok("FOOSec", "123", "FOOSec", Gv::I32(123));
        ok("Sec", "123", "Sec", Gv::I32(123));
        ok(
            "CollectMode",
            "'inactive-or-failed'",
            "CollectMode",
            Gv::Str("inactive-or-failed".into()),
        );
        assert_eq!(one("some.other.annotation", "0").unwrap(), vec![]);
        let err = |k: &str, v: &str| {
            let e = one(&format!("{PROPERTY_PREFIX}{k}"), v)
                .unwrap_err()
                .to_string();
            e.strip_prefix("cgroup: ").unwrap_or(&e).to_string()
        };
        assert_eq!(
            err("Xo", "1"),
            "annotation org.systemd.property.Xo name incorrect: too short"
        );
        assert_eq!(
            err("Number1", "1"),
            "annotation org.systemd.property.Number1 name incorrect: contains non-alphabetic character"
        );
        assert!(err("ValidName", "invalid-value").starts_with(
            "annotation org.systemd.property.ValidName=invalid-value value parse error: "
        ));
        for v in ["false", "'covfefe'"] {
            assert_eq!(
                err("TimeoutStopSec", v),
                format!("annotation org.systemd.property.TimeoutStopSec={v} value parse error: not a number")
            );
        }
    }

    fn spec(p: Option<&str>) -> Result<UnitSpec> {
        UnitSpec::parse(p, "ctr", false)
    }

    #[test]
    fn cgroups_path_forms() {
        let s = spec(Some("system.slice:docker:abc")).unwrap();
        assert_eq!(s.unit, "docker-abc.scope");
        assert_eq!(s.slice, "system.slice");
        assert_eq!(s.slice_path, "/system.slice");
        let s = spec(None).unwrap();
        assert_eq!(
            (s.slice.as_str(), s.unit.as_str()),
            ("system.slice", "runc-ctr.scope")
        );
        let s = spec(Some("")).unwrap();
        assert_eq!(s.unit, "runc-ctr.scope");
        let s = UnitSpec::parse(None, "c", true).unwrap();
        assert_eq!(s.slice, "user.slice");
        // Empty parts: the default slice, an empty prefix or name are taken as given (runc).
        let s = spec(Some("::n")).unwrap();
        assert_eq!(
            (s.slice.as_str(), s.unit.as_str()),
            ("system.slice", "-n.scope")
        );
        let s = spec(Some("kubepods-burstable-pod12.slice:cri-containerd:abc")).unwrap();
        assert_eq!(
            s.slice_path,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice"
        );
        assert_eq!(s.unit, "cri-containerd-abc.scope");
        // A name ending in .slice is a slice unit.
        let s = spec(Some("system.slice:x:my-pod.slice")).unwrap();
        assert_eq!(s.unit, "my-pod.slice");
        assert!(s.is_slice());
        for bad in [
            "a:b",
            "a:b:c:d",
            "/abs/path",
            "nodot:p:n",
            "system.slice:p:a/b",
        ] {
            assert!(spec(Some(bad)).is_err(), "{bad}");
        }
        let e = spec(Some("a:b")).unwrap_err().to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
    }

    #[test]
    fn slices_expand() {
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert_eq!(expand_slice("test.slice").unwrap(), "/test.slice");
        for bad in [
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
            "a",
            "a/b.slice",
            "a.scope",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_lists_to_bits() {
        assert_eq!(range_to_bits("0").unwrap(), vec![1]);
        assert_eq!(range_to_bits("0-3,7").unwrap(), vec![0x8f]);
        assert_eq!(range_to_bits("1,9").unwrap(), vec![0x02, 0x02]);
        assert_eq!(range_to_bits(" 8-9 ").unwrap(), vec![0, 3]);
        for bad in ["", "a", "3-1", "1-", "99999999"] {
            assert!(range_to_bits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("252.30-1~deb12u2"), 252);
        assert_eq!(parse_version("\"v245.4-1.fc32\""), 245);
        assert_eq!(parse_version("junk"), 0);
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get<'a>(p: &'a [(String, Value)], k: &str) -> Vec<&'a Value> {
        p.iter().filter(|(n, _)| n == k).map(|(_, v)| v).collect()
    }

    #[test]
    fn resources_map_like_runc() {
        let r = res(
            r#"{"memory":{"limit":33554432,"reservation":1048576,"swap":67108864},
            "cpu":{"shares":1024,"quota":12345,"period":100000,"cpus":"0-1","mems":"0"},
            "pids":{"limit":20},
            "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]},
            "unified":{"memory.high":"30000000","pids.max":"max"}}"#,
        );
        let (p, files) = properties(&r, 252, false).unwrap();
        assert_eq!(get(&p, "MemoryMax"), [&Value::U64(33554432)]);
        assert_eq!(get(&p, "MemoryLow"), [&Value::U64(1048576)]);
        // swap is memory+swap in OCI, swap only in systemd/v2.
        assert_eq!(get(&p, "MemorySwapMax"), [&Value::U64(33554432)]);
        assert_eq!(get(&p, "CPUWeight"), [&Value::U64(100)]);
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), [&Value::U64(100000)]);
        // 12345 µs per 100 ms = 123450 µs/s, rounded up to whole percent: 130000, and the file
        // gets the same quota back.
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), [&Value::U64(130000)]);
        assert_eq!(files.cpu().as_ref().unwrap().quota(), Some(13000));
        assert_eq!(get(&p, "AllowedCPUs"), [&Value::Bytes(vec![3])]);
        assert_eq!(get(&p, "AllowedMemoryNodes"), [&Value::Bytes(vec![1])]);
        assert_eq!(
            get(&p, "TasksMax"),
            [&Value::U64(20), &Value::U64(INFINITY)]
        );
        assert_eq!(get(&p, "IOWeight"), [&Value::U64(4950)]);
        assert_eq!(
            get(&p, "IOReadBandwidthMax"),
            [&Value::StrU64s(vec![("/dev/block/8:0".into(), 1000)])]
        );
        assert_eq!(get(&p, "MemoryHigh"), [&Value::U64(30000000)]);
        // Older systemd: no period, no AllowedCPUs.
        let (p, _) = properties(&r, 240, false).unwrap();
        assert!(get(&p, "CPUQuotaPeriodUSec").is_empty());
        assert!(get(&p, "AllowedCPUs").is_empty());
        // Unlimited values are "infinity".
        let (p, _) = properties(
            &res(r#"{"memory":{"limit":-1},"pids":{"limit":-1},"cpu":{"quota":-1}}"#),
            252,
            false,
        )
        .unwrap();
        assert_eq!(get(&p, "MemoryMax"), [&Value::U64(INFINITY)]);
        assert_eq!(get(&p, "TasksMax"), [&Value::U64(INFINITY)]);
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), [&Value::U64(INFINITY)]);
        // Nothing set: no property.
        let (p, _) = properties(&LinuxResources::default(), 252, false).unwrap();
        assert!(p.is_empty(), "{p:?}");
        // Bad values are refused before anything is started.
        assert!(properties(&res(r#"{"cpu":{"cpus":"x"}}"#), 252, false).is_err());
        assert!(properties(&res(r#"{"unified":{"memory.max":"lots"}}"#), 252, false).is_err());
    }

    #[test]
    fn devices_map_like_runc() {
        let r = res(r#"{"devices":[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
            {"allow":true,"type":"c","major":136,"access":"rw"},
            {"allow":true,"type":"b","access":"m"}]}"#);
        let (p, _) = properties(&r, 252, false).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), [&Value::Str("strict".into())]);
        let allow = get(&p, "DeviceAllow");
        // The list is cleared first, then set.
        assert_eq!(allow[0], &Value::StrPairs(vec![]));
        assert_eq!(
            allow[1],
            &Value::StrPairs(vec![
                ("/dev/char/1:3".into(), "rwm".into()),
                ("char-136".into(), "rw".into()),
                ("block-*".into(), "m".into()),
            ])
        );
        let (p, _) = properties(
            &res(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#),
            252,
            false,
        )
        .unwrap();
        assert_eq!(get(&p, "DevicePolicy"), [&Value::Str("auto".into())]);
        // Rootless: no device rules at all.
        let (p, _) = properties(&r, 252, true).unwrap();
        assert!(p.is_empty());
    }
}
