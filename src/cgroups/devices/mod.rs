//! Device access rules: the OCI list as the devices cgroup reads it.
//!
//! The list is evaluated like cgroup v1 evaluates writes to `devices.allow`/`devices.deny`,
//! starting from "deny everything" (runc's semantics: a leading deny-all): a rule of type `a` resets
//! the whole set (allow: everything allowed, deny: nothing allowed); any other rule adds or removes
//! an exception. [`Emulator`] folds a list into that final state, which is then written to v1
//! (`v1/devices.rs`) or compiled into an eBPF program for v2 ([`ebpf`]).
//!
//! Removing access that a wildcard exception still grants ("allow `c *:* m`, then deny `c 1:3 m`")
//! cannot be expressed on v1 (the kernel silently ignores it); like runc we refuse such a list
//! instead of leaving the user with a false sense of security.

pub mod bpf;
pub mod ebpf;

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::error::{CgroupError, Result};

/// Access bits, numbered as the kernel's BPF_DEVCG_ACC_* so eBPF can use them directly.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device kinds the devices cgroup knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    All,
    Block,
    Char,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::All => 'a',
            Kind::Block => 'b',
            Kind::Char => 'c',
        }
    }
}

/// One parsed rule; `None` major/minor is the wildcard `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

/// The key of an exception: one device (class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dev {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

fn num(n: Option<u32>) -> String {
    n.map(|v| v.to_string()).unwrap_or_else(|| "*".into())
}

impl Dev {
    /// `c 1:3` style, as in devices.list.
    pub fn to_cgroup_string(self, access: u8) -> String {
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            access_string(access)
        )
    }
}

pub fn access_string(a: u8) -> String {
    let mut s = String::with_capacity(3);
    if a & ACC_READ != 0 {
        s.push('r');
    }
    if a & ACC_WRITE != 0 {
        s.push('w');
    }
    if a & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn parse_access(s: &str) -> Option<u8> {
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            // Seen in callers' updates ("rwa"); runc accepts it and it grants nothing.
            'a' => 0,
            _ => return None,
        };
    }
    (a != 0).then_some(a)
}

fn dev_number(n: Option<i64>, what: &str, i: usize) -> Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(v) if v < 0 => Ok(None),
        // eBPF compares with sign-extended 32-bit immediates; real numbers are far smaller
        // (12-bit majors, 20-bit minors).
        Some(v) if v <= i32::MAX as i64 => Ok(Some(v as u32)),
        Some(v) => Err(CgroupError::msg(format!(
            "linux.resources.devices[{i}]: invalid {what} number {v}"
        ))),
    }
}

impl Rule {
    /// Parses `linux.resources.devices[i]`.
    pub fn from_oci(d: &LinuxDeviceCgroup, i: usize) -> Result<Rule> {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::P => {
                return Err(CgroupError::msg(format!(
                    "linux.resources.devices[{i}]: type \"p\" (fifo) cannot be controlled by the devices cgroup"
                )))
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => {
                return Err(CgroupError::msg(format!(
                    "linux.resources.devices[{i}]: device access cannot be empty"
                )))
            }
            Some(s) => parse_access(s).ok_or_else(|| {
                CgroupError::msg(format!(
                    "linux.resources.devices[{i}]: invalid access {s:?} (only r, w and m are allowed)"
                ))
            })?,
        };
        Ok(Rule {
            allow: d.allow(),
            kind,
            major: dev_number(d.major(), "major", i)?,
            minor: dev_number(d.minor(), "minor", i)?,
            access,
        })
    }

    pub fn dev(&self) -> Dev {
        Dev {
            kind: self.kind,
            major: self.major,
            minor: self.minor,
        }
    }
}

/// The state a list of rules leaves the devices cgroup in: a default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// true: everything allowed except `exceptions` ("blacklist");
    /// false: nothing allowed except `exceptions` ("whitelist").
    pub default_allow: bool,
    /// Exceptions in first-seen order with their access bits.
    pub exceptions: Vec<(Dev, u8)>,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator::deny_all()
    }
}

impl Emulator {
    pub fn deny_all() -> Emulator {
        Emulator {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    /// Folds `rules` starting from deny-all.
    pub fn from_rules(rules: &[Rule]) -> Result<Emulator> {
        let mut e = Emulator::deny_all();
        for r in rules {
            e.apply(r)?;
        }
        Ok(e)
    }

    /// Parses OCI rules and folds them.
    pub fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Emulator> {
        let mut e = Emulator::deny_all();
        for (i, d) in rules.iter().enumerate() {
            e.apply(&Rule::from_oci(d, i)?)?;
        }
        Ok(e)
    }

    pub fn apply(&mut self, r: &Rule) -> Result<()> {
        if r.kind == Kind::All {
            // Type `a` resets everything, whatever numbers or access it carries (as v1 does).
            self.default_allow = r.allow;
            self.exceptions.clear();
            return Ok(());
        }
        if r.allow != self.default_allow {
            // An exception to the default: add (merging access).
            let dev = r.dev();
            match self.exceptions.iter_mut().find(|(d, _)| *d == dev) {
                Some((_, a)) => *a |= r.access,
                None => self.exceptions.push((dev, r.access)),
            }
            Ok(())
        } else {
            self.remove(r)
        }
    }

    fn remove(&mut self, r: &Rule) -> Result<()> {
        let dev = r.dev();
        for (d, a) in &self.exceptions {
            let partial = d.kind == dev.kind
                && *d != dev
                && (d.major.is_none() || d.major == dev.major)
                && (d.minor.is_none() || d.minor == dev.minor);
            if partial && a & r.access != 0 {
                return Err(CgroupError::msg(format!(
                    "device rule \"{}\" cannot be applied: it would punch a hole in the wildcard rule \"{}\", which the devices cgroup cannot express",
                    dev.to_cgroup_string(r.access),
                    d.to_cgroup_string(*a)
                )));
            }
        }
        if let Some(i) = self.exceptions.iter().position(|(d, _)| *d == dev) {
            self.exceptions[i].1 &= !r.access;
            if self.exceptions[i].1 == 0 {
                self.exceptions.remove(i);
            }
        }
        Ok(())
    }

    /// Parses a v1 `devices.list` (whitelist exceptions, or `a *:* rwm` for allow-all; v1 never
    /// lists the exceptions of an allow-all cgroup, so those come back empty).
    pub fn from_devices_list(s: &str) -> Result<Emulator> {
        let mut e = Emulator::deny_all();
        for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || CgroupError::msg(format!("devices.list: cannot parse {line:?}"));
            let mut it = line.split_ascii_whitespace();
            let (Some(t), Some(mm), Some(acc)) = (it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            let (ma, mi) = mm.split_once(':').ok_or_else(bad)?;
            let n = |s: &str| -> Result<Option<u32>> {
                if s == "*" {
                    Ok(None)
                } else {
                    s.parse().map(Some).map_err(|_| bad())
                }
            };
            let kind = match t {
                "a" => {
                    e.default_allow = true;
                    e.exceptions.clear();
                    continue;
                }
                "b" => Kind::Block,
                "c" => Kind::Char,
                _ => return Err(bad()),
            };
            let access = parse_access(acc).ok_or_else(bad)?;
            e.exceptions.push((
                Dev {
                    kind,
                    major: n(ma)?,
                    minor: n(mi)?,
                },
                access,
            ));
        }
        Ok(e)
    }

    /// Same default and same exceptions (order ignored).
    pub fn same_as(&self, other: &Emulator) -> bool {
        self.default_allow == other.default_allow
            && self.exceptions.len() == other.exceptions.len()
            && self
                .exceptions
                .iter()
                .all(|(d, a)| other.exceptions.iter().any(|(d2, a2)| d == d2 && a == a2))
    }
}

fn rule(
    kind: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(kind));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's default device allowlist (since runc 1.2: without tun/tap), each with the device path
/// it belongs to, if any.
pub fn default_allowed() -> Vec<(Option<&'static str>, LinuxDeviceCgroup)> {
    use LinuxDeviceType::{B, C};
    vec![
        (None, rule(C, None, None, "m")),
        (None, rule(B, None, None, "m")),
        (Some("/dev/null"), rule(C, Some(1), Some(3), "rwm")),
        (Some("/dev/random"), rule(C, Some(1), Some(8), "rwm")),
        (Some("/dev/full"), rule(C, Some(1), Some(7), "rwm")),
        (Some("/dev/tty"), rule(C, Some(5), Some(0), "rwm")),
        (Some("/dev/zero"), rule(C, Some(1), Some(5), "rwm")),
        (Some("/dev/urandom"), rule(C, Some(1), Some(9), "rwm")),
        (None, rule(C, Some(136), None, "rwm")),
        (None, rule(C, Some(5), Some(2), "rwm")),
    ]
}

/// The device rules runc puts in a container's cgroup: `linux.resources.devices` in order, then
/// the default allowlist, minus the defaults for device paths the spec defines itself in
/// `linux.devices` (pass their paths). The runtime should hand this list to `create`.
pub fn runc_rules<'a>(
    spec_rules: Option<&[LinuxDeviceCgroup]>,
    spec_device_paths: impl IntoIterator<Item = &'a Path>,
) -> Vec<LinuxDeviceCgroup> {
    let paths: Vec<&Path> = spec_device_paths.into_iter().collect();
    let mut out: Vec<LinuxDeviceCgroup> = spec_rules.map(<[_]>::to_vec).unwrap_or_default();
    for (path, r) in default_allowed() {
        if let Some(p) = path {
            if paths.iter().any(|sp| *sp == Path::new(p)) {
                continue;
            }
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(allow: bool, kind: Kind, major: Option<u32>, minor: Option<u32>, acc: &str) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access: parse_access(acc).unwrap(),
        }
    }

    #[test]
    fn fold_whitelist() {
        let e = Emulator::from_rules(&[
            r(false, Kind::All, None, None, "rwm"),
            r(true, Kind::Char, Some(1), Some(3), "r"),
            r(true, Kind::Char, Some(1), Some(3), "w"),
            r(true, Kind::Char, Some(1), Some(5), "rwm"),
            r(false, Kind::Char, Some(1), Some(5), "rwm"),
        ])
        .unwrap();
        assert!(!e.default_allow);
        assert_eq!(e.exceptions.len(), 1);
        assert_eq!(
            e.exceptions[0].0.to_cgroup_string(e.exceptions[0].1),
            "c 1:3 rw"
        );
    }

    #[test]
    fn allow_all_resets() {
        let e = Emulator::from_rules(&[
            r(true, Kind::Char, Some(1), Some(3), "r"),
            r(true, Kind::All, None, None, "rwm"),
            r(false, Kind::Block, Some(8), None, "w"),
        ])
        .unwrap();
        assert!(e.default_allow);
        assert_eq!(e.exceptions.len(), 1);
    }

    #[test]
    fn refuses_wildcard_holes() {
        let err = Emulator::from_rules(&[
            r(true, Kind::Char, None, None, "m"),
            r(false, Kind::Char, Some(1), Some(3), "m"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("punch a hole"), "{err}");
        // Disjoint access is fine.
        Emulator::from_rules(&[
            r(true, Kind::Char, None, None, "m"),
            r(false, Kind::Char, Some(1), Some(3), "r"),
        ])
        .unwrap();
    }

    #[test]
    fn devices_list_roundtrip() {
        let e = Emulator::from_devices_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n").unwrap();
        assert!(!e.default_allow);
        assert_eq!(e.exceptions.len(), 3);
        let all = Emulator::from_devices_list("a *:* rwm\n").unwrap();
        assert!(all.default_allow);
        let e2 = Emulator::from_rules(&[
            r(true, Kind::Block, None, None, "m"),
            r(true, Kind::Char, Some(136), None, "rw"),
            r(true, Kind::Char, Some(1), Some(3), "rwm"),
        ])
        .unwrap();
        assert!(e.same_as(&e2));
    }

    #[test]
    fn oci_parsing() {
        let mut d = LinuxDeviceCgroup::default();
        d.set_access(Some("rwx".into()));
        assert!(Rule::from_oci(&d, 0).is_err());
        d.set_access(Some(String::new()));
        assert!(Rule::from_oci(&d, 0).is_err());
        d.set_access(Some("rw".into()));
        d.set_typ(Some(LinuxDeviceType::P));
        assert!(Rule::from_oci(&d, 0).is_err());
        d.set_typ(Some(LinuxDeviceType::U));
        d.set_major(Some(-1));
        d.set_minor(Some(3));
        let rule = Rule::from_oci(&d, 0).unwrap();
        assert_eq!(rule.kind, Kind::Char);
        assert_eq!(rule.major, None);
        assert_eq!(rule.minor, Some(3));
    }

    #[test]
    fn runc_defaults_dedup() {
        let all = runc_rules(None, []);
        assert_eq!(all.len(), 10);
        let some = runc_rules(None, [Path::new("/dev/null")]);
        assert_eq!(some.len(), 9);
    }
}
