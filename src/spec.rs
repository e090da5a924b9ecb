//! Loading and validating a bundle's `config.json`. Everything checkable is checked here, before
//! the host is touched, and every error names the offending field.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A loaded bundle: the parsed config and the absolute paths the runtime works with.
pub struct Bundle {
    pub spec: Spec,
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
}

/// Reads `<bundle>/config.json`, parses and validates it.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle)
        .map_err(|e| Error::config(format!("bundle {}: {}", bundle.display(), io_reason(&e))))?;
    let data = read_config(&dir.join("config.json")).map_err(|e| {
        Error::config(format!(
            "config.json in bundle {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let spec = parse_config(&data)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("config.json: root: the rootfs path is required"))?;
    let rp = root.path();
    if rp.as_os_str().is_empty() {
        return Err(Error::config("root.path: the rootfs path is empty"));
    }
    let rootfs_raw = if rp.is_absolute() {
        rp.clone()
    } else {
        dir.join(rp)
    };
    let rootfs = std::fs::canonicalize(&rootfs_raw).map_err(|e| {
        Error::config(format!(
            "root.path: rootfs {}: {}",
            rootfs_raw.display(),
            io_reason(&e)
        ))
    })?;
    if !rootfs.is_dir() {
        return Err(Error::config(format!(
            "root.path: rootfs {} is not a directory",
            rootfs.display()
        )));
    }
    validate(&spec)?;
    Ok(Bundle { spec, dir, rootfs })
}

/// Reads config.json, which must be a regular file: a FIFO put there must not block `create`.
fn read_config(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    Ok(data)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// Parses config.json bytes into the OCI type, with a clear message on malformed input.
/// runc's readings that oci-spec's types lack are applied first (`spec_compat`).
pub fn parse_config(data: &[u8]) -> Result<Spec> {
    let bad =
        |e: serde_json::Error| Error::config(format!("config.json: invalid configuration: {e}"));
    let mut v: serde_json::Value = serde_json::from_slice(data).map_err(bad)?;
    if crate::spec_compat::config(&mut v)? {
        serde_json::from_value::<Spec>(v).map_err(bad)
    } else {
        // Typed from the bytes, so that an error names its line and column.
        serde_json::from_slice::<Spec>(data).map_err(bad)
    }
}

/// Parses an OCI Process JSON (for `exec --process`).
/// A process without `user` runs as 0:0, as with runc.
pub fn parse_process(data: &[u8]) -> Result<Process> {
    let bad = |e: serde_json::Error| Error::config(format!("process.json: invalid process: {e}"));
    let mut v: serde_json::Value = serde_json::from_slice(data).map_err(bad)?;
    // runc runs an `exec --process` without a `user` as 0:0.
    if let Some(o) = v.as_object_mut() {
        o.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    crate::spec_compat::process(&mut v);
    serde_json::from_value::<Process>(v).map_err(bad)
}

/// True if the namespace list contains `t` (new or joined).
pub fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// `ociVersion` (REQUIRED by the runtime-spec): SemVer 2.0.0 with major version 1 (the
/// runtime-spec keeps compatibility within a major version).
fn validate_oci_version(v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::config(
            "ociVersion: the field is required (the runtime-spec version the bundle complies with)",
        ));
    }
    let bad = |why: &str| Err(Error::config(format!("ociVersion: {v:?} {why}")));
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return bad("is not a SemVer version (MAJOR.MINOR.PATCH)");
    }
    let rest = &v[core.len()..];
    if rest.starts_with('-') || rest.starts_with('+') {
        let ok = rest[1..]
            .split(['.', '+', '-'])
            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok {
            return bad("is not a SemVer version");
        }
    }
    if parts[0] != "1" {
        return bad("is not supported (this runtime implements runtime-spec 1.x)");
    }
    Ok(())
}

/// Validates what parsing alone cannot: namespace rules, sysctls, mounts, process fields.
pub fn validate(spec: &Spec) -> Result<()> {
    validate_oci_version(spec.version())?;
    let linux = spec.linux().as_ref();
    let mut seen = HashSet::new();
    if let Some(nss) = linux.and_then(|l| l.namespaces().as_ref()) {
        for ns in nss {
            if !seen.insert(ns.typ() as i64) {
                return Err(Error::config(format!(
                    "linux.namespaces: duplicate namespace type {}",
                    ns.typ()
                )));
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(Error::config(format!(
                        "linux.namespaces: {} path {} is not absolute",
                        ns.typ(),
                        p.display()
                    )));
                }
            }
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(Error::config(
            "hostname: unable to set hostname without a private UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(Error::config(
            "domainname: unable to set domainname without a private UTS namespace",
        ));
    }
    if let Some(l) = linux {
        let has_user = has_ns(spec, LinuxNamespaceType::User);
        let maps = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !has_user {
            return Err(Error::config(
                "linux.uidMappings/gidMappings: user namespace mappings require a user namespace",
            ));
        }
        let new_user = l.namespaces().iter().flatten().any(|n| {
            n.typ() == LinuxNamespaceType::User
                && n.path().as_ref().map_or(true, |p| p.as_os_str().is_empty())
        });
        if new_user {
            for (field, m) in [
                ("linux.uidMappings", l.uid_mappings()),
                ("linux.gidMappings", l.gid_mappings()),
            ] {
                let m = m.as_deref().unwrap_or_default();
                if m.is_empty() {
                    return Err(Error::config(format!(
                        "{field}: a new user namespace needs mappings (nothing would be mapped)"
                    )));
                }
                if m.iter().any(|r| r.size() == 0) {
                    return Err(Error::config(format!("{field}: a mapping has size 0")));
                }
            }
        }
        if let Some(sysctl) = l.sysctl() {
            for key in sysctl.keys() {
                validate_sysctl(spec, key)?;
            }
        }
        if has_ns(spec, LinuxNamespaceType::Time) {
            // Offsets are applied when the time namespace is new.
            for (clock, o) in l.time_offsets().iter().flatten() {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(Error::config(format!(
                        "linux.timeOffsets: unknown clock {clock:?} (only monotonic and \
                         boottime can be offset)"
                    )));
                }
                if o.nanosecs().unwrap_or(0) >= 1_000_000_000 {
                    return Err(Error::config(format!(
                        "linux.timeOffsets: {clock}: nanosecs must be below 1000000000"
                    )));
                }
            }
        } else if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(Error::config(
                "linux.timeOffsets: time offsets require a time namespace",
            ));
        }
    }
    if let Some(mounts) = spec.mounts() {
        for m in mounts {
            if m.destination().as_os_str().is_empty() {
                return Err(Error::config("mounts: a mount has an empty destination"));
            }
        }
    }
    crate::rootfs::idmap::validate(spec)?;
    validate_hooks(spec)?;
    if let Some(p) = spec.process() {
        validate_process(p)?;
        let deadline = p
            .scheduler()
            .as_ref()
            .is_some_and(|s| *s.policy() == oci_spec::runtime::LinuxSchedulerPolicy::SchedDeadline);
        let cpuset = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.cpus().as_deref())
            .is_some_and(|c| !c.trim().is_empty());
        if deadline && cpuset {
            // The kernel refuses SCHED_DEADLINE in a restricted cpuset (EPERM); say why.
            return Err(Error::config(
                "process scheduler can't be used together with AllowedCPUs",
            ));
        }
    }
    Ok(())
}

/// Hook paths must be absolute (runtime-spec: "`path` … MUST be absolute"): a relative one is
/// refused at `create`, never looked up in the runtime's `PATH` or cwd.
#[allow(deprecated)]
fn validate_hooks(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    for (kind, list) in [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ] {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(Error::config(format!(
                    "hooks.{kind}[{i}].path: {:?} is not an absolute path",
                    hook.path()
                )));
            }
        }
    }
    Ok(())
}

/// A NUL byte cannot reach execve: an entry holding one is refused by name (dropping it would
/// shift argv, or lose a variable).
fn refuse_nul(field: &str, list: Option<&Vec<String>>) -> Result<()> {
    for (i, s) in list.into_iter().flatten().enumerate() {
        if s.contains('\0') {
            return Err(Error::config(format!("{field}[{i}]: contains a NUL byte")));
        }
    }
    Ok(())
}

/// Checks a Process (from config.json or `exec`).
pub fn validate_process(p: &Process) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(Error::config("process.args: args must not be empty")),
    }
    refuse_nul("process.args", p.args().as_ref())?;
    refuse_nul("process.env", p.env().as_ref())?;
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        return Err(Error::config(format!(
            "process.cwd: {:?} is not an absolute path",
            cwd
        )));
    }
    if let Some(rl) = p.rlimits() {
        for r in rl {
            if r.soft() > r.hard() {
                return Err(Error::config(format!(
                    "process.rlimits: {:?} soft limit {} is greater than hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                )));
            }
        }
    }
    Ok(())
}

const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Only namespaced sysctls may be set, and only when the container has that namespace.
fn validate_sysctl(spec: &Spec, key: &str) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.starts_with('/') {
        return Err(Error::config(format!("linux.sysctl: invalid key {key:?}")));
    }
    let need = |t: LinuxNamespaceType, what: &str| -> Result<()> {
        if has_ns(spec, t) {
            Ok(())
        } else {
            Err(Error::config(format!(
                "linux.sysctl: {key:?} requires a private {what} namespace"
            )))
        }
    };
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return need(LinuxNamespaceType::Ipc, "IPC");
    }
    if key.starts_with("net.") {
        return need(LinuxNamespaceType::Network, "network");
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return need(LinuxNamespaceType::Uts, "UTS");
    }
    if key == "kernel.ns_last_pid" {
        return need(LinuxNamespaceType::Pid, "PID");
    }
    Err(Error::config(format!(
        "linux.sysctl: {key:?} is not allowed in a container (not namespaced)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Spec> {
        let s = parse_config(json.as_bytes())?;
        validate(&s)?;
        Ok(s)
    }

    const BASE: &str = r#""ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"}"#;

    #[test]
    fn versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.2.0", "1.1.0-rc.1+x"] {
            assert!(validate_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in ["2.0.0", "0.9.0", "1.0", "abc", "1.0.x"] {
            assert!(validate_oci_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        let e = spec("{not json").unwrap_err().to_string();
        assert!(e.starts_with("config.json: invalid configuration"), "{e}");
    }

    #[test]
    fn oci_version_rules() {
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.2.0",
            "1.1.0+dev",
            "1.0.0-rc.1+build.5",
        ] {
            assert!(validate_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "invalid", "1.0", "2.0.0", "0.9.0", "1.0.x", "01.0.0", "1.0.0-", "1..0", "",
        ] {
            assert!(validate_oci_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_capability_skipped() {
        // runc ≥ 1.2: skipped with a warning, the known ones kept.
        let j = r#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_NOPE","CAP_KILL"]}}}"#;
        let s = spec(j).unwrap();
        let b = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(b.bounding().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn hostname_needs_uts() {
        let j = format!(r#"{{{BASE},"hostname":"h"}}"#);
        assert!(spec(&j).unwrap_err().to_string().contains("UTS"));
        let j = format!(r#"{{{BASE},"hostname":"h","linux":{{"namespaces":[{{"type":"uts"}}]}}}}"#);
        assert!(spec(&j).is_ok());
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let j =
            format!(r#"{{{BASE},"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"pid"}}]}}}}"#);
        assert!(spec(&j).unwrap_err().to_string().contains("duplicate"));
    }

    #[test]
    fn sysctl_rules() {
        let ok = format!(
            r#"{{{BASE},"linux":{{"namespaces":[{{"type":"network"}}],"sysctl":{{"net.ipv4.ip_forward":"1"}}}}}}"#
        );
        assert!(spec(&ok).is_ok());
        let bad = format!(r#"{{{BASE},"linux":{{"sysctl":{{"net.ipv4.ip_forward":"1"}}}}}}"#);
        assert!(spec(&bad).unwrap_err().to_string().contains("network"));
        let host = format!(
            r#"{{{BASE},"linux":{{"namespaces":[{{"type":"ipc"}}],"sysctl":{{"vm.swappiness":"1"}}}}}}"#
        );
        assert!(spec(&host).unwrap_err().to_string().contains("not allowed"));
    }

    #[test]
    fn process_checks() {
        let j = r#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"user":{"uid":0,"gid":0},"args":[],"cwd":"/"}}"#;
        assert!(spec(j).unwrap_err().to_string().contains("args"));
        let j = r#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"user":{"uid":0,"gid":0},"args":["a"],"cwd":"rel"}}"#;
        assert!(spec(j).unwrap_err().to_string().contains("cwd"));
    }

    #[test]
    fn time_offsets_checked() {
        let ns = r#""namespaces":[{"type":"time"}]"#;
        let ok = format!(
            r#"{{{BASE},"linux":{{{ns},"timeOffsets":{{"boottime":{{"secs":5}},"monotonic":{{"secs":-2,"nanosecs":3}}}}}}}}"#
        );
        assert!(spec(&ok).is_ok());
        let bad =
            format!(r#"{{{BASE},"linux":{{{ns},"timeOffsets":{{"realtime":{{"secs":5}}}}}}}}"#);
        assert!(spec(&bad).unwrap_err().to_string().contains("realtime"));
        let bad = format!(
            r#"{{{BASE},"linux":{{{ns},"timeOffsets":{{"boottime":{{"nanosecs":1000000000}}}}}}}}"#
        );
        assert!(spec(&bad).unwrap_err().to_string().contains("nanosecs"));
        let no_ns = format!(r#"{{{BASE},"linux":{{"timeOffsets":{{"boottime":{{"secs":5}}}}}}}}"#);
        assert!(spec(&no_ns)
            .unwrap_err()
            .to_string()
            .contains("time namespace"));
    }

    #[test]
    fn idmapped_mounts_checked() {
        let m = |extra: &str| {
            format!(
                r#"{{{BASE},"mounts":[{{"destination":"/m","source":"/tmp","type":"bind",{extra}}}]}}"#
            )
        };
        let maps = r#""uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#;
        assert!(spec(&m(&format!(r#""options":["bind","idmap"],{maps}"#))).is_ok());
        let half = r#""options":["bind"],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#;
        assert!(spec(&m(half)).unwrap_err().to_string().contains("together"));
        let e = spec(&m(r#""options":["rbind","ridmap"]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("user namespace"), "{e}");
        let tmpfs = format!(
            r#"{{{BASE},"mounts":[{{"destination":"/m","source":"tmpfs","type":"tmpfs","options":["idmap"],{maps}}}]}}"#
        );
        assert!(spec(&tmpfs)
            .unwrap_err()
            .to_string()
            .contains("bind mounts only"));
    }

    #[test]
    fn new_userns_needs_mappings() {
        let ns = r#""namespaces":[{"type":"user"}]"#;
        let e = spec(&format!(r#"{{{BASE},"linux":{{{ns}}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("linux.uidMappings"), "{e}");
        let m = r#"[{"containerID":0,"hostID":1000,"size":1}]"#;
        let ok = format!(r#"{{{BASE},"linux":{{{ns},"uidMappings":{m},"gidMappings":{m}}}}}"#);
        assert!(spec(&ok).is_ok());
        let joined = r#""namespaces":[{"type":"user","path":"/proc/1/ns/user"}]"#;
        assert!(spec(&format!(r#"{{{BASE},"linux":{{{joined}}}}}"#)).is_ok());
    }

    #[test]
    fn mappings_need_userns() {
        let j = format!(
            r#"{{{BASE},"linux":{{"uidMappings":[{{"containerID":0,"hostID":1000,"size":1}}]}}}}"#
        );
        assert!(spec(&j).unwrap_err().to_string().contains("user namespace"));
    }
}
