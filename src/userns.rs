//! User namespaces: the container's uid/gid maps, written by the runtime at the moment the
//! spawn protocol asks for them, and user namespaces made only to carry an idmapping (for
//! idmapped mounts).
//!
//! Who may write a map:
//! * the runtime running as root writes `uid_map`/`gid_map` itself, any ranges;
//! * an unprivileged runtime may write a map of exactly one id, its own, itself (for `gid_map`
//!   only after `setgroups` is set to `deny`, which the kernel requires);
//! * anything else needs the setuid helpers `newuidmap`/`newgidmap` (package `uidmap`), which
//!   check the ranges against `/etc/subuid` and `/etc/subgid`.
//!
//! [`MapPlan::new`] decides this and checks the subordinate id files before the host is
//! touched, so a missing entry is one clear error at `create`.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn format_map(m: &[LinuxIdMapping]) -> String {
    let mut s = String::new();
    for e in m {
        s.push_str(&format!(
            "{} {} {}\n",
            e.container_id(),
            e.host_id(),
            e.size()
        ));
    }
    s
}

/// The login name of `uid` from the host's /etc/passwd.
pub fn user_name(uid: u32) -> Option<String> {
    passwd_field(uid, 0)
}

/// Field `idx` (0 name … 5 home, 6 shell) of the first entry for `uid` in the /etc/passwd of
/// the current root (the host's, or the container's after pivot_root).
pub fn passwd_field(uid: u32, idx: usize) -> Option<String> {
    std::fs::read_to_string("/etc/passwd").ok().and_then(|s| {
        s.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > idx.max(2) && f[2].parse::<u32>().ok() == Some(uid))
                .then(|| f[idx].to_string())
        })
    })
}

/// True when this process is not in the initial user namespace (its uid map is not the
/// identity of all ids).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().ne(["0", "0", "4294967295"]))
}

/// The id that `id` of this process's user namespace is on the parent side of
/// `/proc/self/<file>` (`uid_map` or `gid_map`); the id itself outside a user namespace. None:
/// not mapped (or the map is unreadable).
pub fn outside_id(file: &str, id: u32) -> Option<u32> {
    let map = std::fs::read_to_string(format!("/proc/self/{file}")).ok()?;
    map_lookup(&map, id)
}

fn map_lookup(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [inside, outside, len] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (id >= inside && id - inside < len).then(|| (outside + id - inside) as u32)
    })
}

/// True when this process is root in the initial user namespace (or root of a user namespace
/// that maps it to the host's root), i.e. really privileged; false for an unprivileged user and
/// for uid 0 of a user namespace made by one (rootless Podman, `unshare -r`).
pub fn really_root() -> bool {
    let euid = nix::unistd::geteuid().as_raw();
    euid == 0 && (!in_user_namespace() || outside_id("uid_map", 0) == Some(0))
}

/// Whether the default state root is `$XDG_RUNTIME_DIR/rruntime` rather than /run/rruntime
/// (runc's rule): yes for an unprivileged user; no for root of the initial user namespace
/// (whose XDG_RUNTIME_DIR, /run/user/0, is not where runtimes keep state); for uid 0 of a user
/// namespace yes, unless `USER` says root, or Podman marked the namespace as its rootless one
/// (`_CONTAINERS_USERNS_CONFIGURED`, which wins over `USER`).
pub fn honour_xdg_runtime_dir() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    if !in_user_namespace() {
        return false;
    }
    if std::env::var_os("_CONTAINERS_USERNS_CONFIGURED").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::env::var("USER").map_or(true, |u| u != "root")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
    fn subid_file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Uid => "uid",
            Kind::Gid => "gid",
        }
    }
}

/// How one map gets written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Writer {
    /// The runtime writes /proc/<pid>/{uid,gid}_map itself.
    Direct,
    /// Through newuidmap/newgidmap at this path.
    Helper(PathBuf),
}

#[derive(Debug, Clone)]
struct OneMap {
    kind: Kind,
    ranges: Vec<LinuxIdMapping>,
    writer: Writer,
}

/// The container's id maps and how they are written; built (and checked) before anything is
/// created on the host.
#[derive(Debug, Clone, Default)]
pub struct MapPlan {
    maps: Vec<OneMap>,
    /// Write `deny` to /proc/<pid>/setgroups before `gid_map` (unprivileged direct write).
    deny_setgroups: bool,
}

/// Who the runtime is: its effective ids and whether it may write any map itself.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub privileged: bool,
}

impl Caller {
    pub fn current() -> Caller {
        let uid = nix::unistd::geteuid().as_raw();
        Caller {
            uid,
            gid: nix::unistd::getegid().as_raw(),
            privileged: uid == 0,
        }
    }
}

/// Where a helper binary lives: $PATH, then the usual directories.
fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The ranges /etc/subuid (or subgid) delegates to `name`/`id`: (start, count).
fn parse_subids(content: &str, name: Option<&str>, id: u32) -> Vec<(u64, u64)> {
    let ids = id.to_string();
    content
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if Some(who) != name && who != ids {
                return None;
            }
            Some((start.trim().parse().ok()?, count.trim().parse().ok()?))
        })
        .collect()
}

/// True when [start, start+count) lies within the union of `ranges`.
fn covered(ranges: &[(u64, u64)], start: u64, count: u64) -> bool {
    let mut pos = start;
    let end = start + count;
    while pos < end {
        match ranges.iter().find(|(s, c)| *s <= pos && pos < s + c) {
            Some((s, c)) => pos = s + c,
            None => return false,
        }
    }
    true
}

fn plan_one(kind: Kind, ranges: &[LinuxIdMapping], me: &Caller) -> Result<OneMap> {
    let own = match kind {
        Kind::Uid => me.uid,
        Kind::Gid => me.gid,
    };
    let only_own = ranges.len() == 1 && ranges[0].size() == 1 && ranges[0].host_id() == own;
    let writer = if me.privileged || only_own {
        Writer::Direct
    } else {
        let helper = find_helper(kind.helper()).ok_or_else(|| {
            Error::config(format!(
                "{}: mapping {}s other than your own ({own}) needs {} (package uidmap), which is \
                 not installed",
                kind.field(),
                kind.noun(),
                kind.helper()
            ))
        })?;
        check_subids(kind, ranges, own, me)?;
        Writer::Helper(helper)
    };
    Ok(OneMap {
        kind,
        ranges: ranges.to_vec(),
        writer,
    })
}

/// The ranges an unprivileged user maps must be delegated to them in /etc/subuid (subgid);
/// the user's own id alone needs no entry.
/// Both files are keyed by the user (login name or uid), also for gids.
fn check_subids(kind: Kind, ranges: &[LinuxIdMapping], own: u32, me: &Caller) -> Result<()> {
    let name = user_name(me.uid);
    let who = match &name {
        Some(n) => format!("user {n} (uid {})", me.uid),
        None => format!("uid {}", me.uid),
    };
    let file = kind.subid_file();
    let content = std::fs::read_to_string(file).unwrap_or_default();
    let delegated = parse_subids(&content, name.as_deref(), me.uid);
    for r in ranges {
        if r.size() == 1 && r.host_id() == own {
            continue;
        }
        let (start, count) = (r.host_id() as u64, r.size() as u64);
        if delegated.is_empty() {
            return Err(Error::config(format!(
                "{}: {who} has no entry in {file}, so host {}s {}-{} cannot be mapped \
                 (add a line like \"{}:100000:65536\")",
                kind.field(),
                kind.noun(),
                start,
                start + count.max(1) - 1,
                name.as_deref().unwrap_or("USER"),
            )));
        }
        if !covered(&delegated, start, count) {
            return Err(Error::config(format!(
                "{}: host {}s {}-{} are not delegated to {who} in {file}",
                kind.field(),
                kind.noun(),
                start,
                start + count.max(1) - 1
            )));
        }
    }
    Ok(())
}

impl MapPlan {
    /// The maps of `linux.uidMappings`/`gidMappings` and how `me` will write them.
    pub fn new(spec: &Spec, me: &Caller) -> Result<MapPlan> {
        let Some(l) = spec.linux().as_ref() else {
            return Ok(MapPlan::default());
        };
        let mut maps = Vec::new();
        if let Some(m) = l.uid_mappings().as_ref().filter(|m| !m.is_empty()) {
            maps.push(plan_one(Kind::Uid, m, me)?);
        }
        let mut deny_setgroups = false;
        if let Some(m) = l.gid_mappings().as_ref().filter(|m| !m.is_empty()) {
            let one = plan_one(Kind::Gid, m, me)?;
            deny_setgroups = !me.privileged && one.writer == Writer::Direct;
            maps.push(one);
        }
        Ok(MapPlan {
            maps,
            deny_setgroups,
        })
    }

    /// Writes the maps of process `pid`, which has just made its user namespace.
    pub fn write(&self, pid: i32) -> Result<()> {
        for m in &self.maps {
            match &m.writer {
                Writer::Direct => {
                    if m.kind == Kind::Gid && self.deny_setgroups {
                        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                            .ctx(|| format!("{}: write setgroups \"deny\"", m.kind.field()))?;
                    }
                    std::fs::write(
                        format!("/proc/{pid}/{}", m.kind.file()),
                        format_map(&m.ranges),
                    )
                    .ctx(|| format!("{}: write {}", m.kind.field(), m.kind.file()))?;
                }
                Writer::Helper(h) => run_helper(h, m, pid)?,
            }
        }
        Ok(())
    }
}

fn run_helper(helper: &Path, m: &OneMap, pid: i32) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for r in &m.ranges {
        cmd.args([
            r.container_id().to_string(),
            r.host_id().to_string(),
            r.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .ctx(|| format!("{}: run {}", m.kind.field(), helper.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    Err(Error::msg(format!(
        "{}: {} failed ({}): {line}",
        m.kind.field(),
        m.kind.helper(),
        out.status
    )))
}

/// A user namespace that only carries `uid`/`gid` maps, for `mount_setattr(MOUNT_ATTR_IDMAP)`:
/// a short-lived child is cloned into a new user namespace, its maps are written, its
/// `/proc/<pid>/ns/user` is opened, and the child is let go. The fd keeps the namespace alive.
pub fn mapping_userns(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    // SAFETY: single-threaded; the child only calls async-signal-safe functions before _exit.
    let (pid, _) =
        unsafe { crate::process::clone::clone_child(nix::sched::CloneFlags::CLONE_NEWUSER, None) }
            .ctx(|| "clone a user namespace for an idmapping")?;
    if pid == 0 {
        // Child: wait until the runtime closes its end (or dies), then leave.
        // SAFETY: plain syscalls on fds this process owns.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::close(wr.as_raw_fd());
            let mut b = 0u8;
            libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0)
        }
    }
    drop(rd);
    let r = (|| -> Result<OwnedFd> {
        std::fs::write(format!("/proc/{pid}/uid_map"), format_map(uid))
            .ctx(|| "write uid_map of an idmapping user namespace")?;
        std::fs::write(format!("/proc/{pid}/gid_map"), format_map(gid))
            .ctx(|| "write gid_map of an idmapping user namespace")?;
        let fd = nix::fcntl::open(
            format!("/proc/{pid}/ns/user").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| "open an idmapping user namespace")?;
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) })
    })();
    drop(wr);
    if r.is_err() {
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(j: &str) -> Vec<LinuxIdMapping> {
        serde_json::from_str(j).unwrap()
    }

    #[test]
    fn outside_ids_from_a_map() {
        let m = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(map_lookup(m, 0), Some(1000));
        assert_eq!(map_lookup(m, 1), Some(100000));
        assert_eq!(map_lookup(m, 65536), Some(165535));
        assert_eq!(map_lookup(m, 65537), None);
        assert_eq!(map_lookup("0 0 4294967295\n", 4242), Some(4242));
        assert_eq!(map_lookup("", 0), None);
    }

    #[test]
    fn map_format() {
        let m = maps(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        );
        assert_eq!(format_map(&m), "0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn subid_parsing_and_coverage() {
        let c =
            "# comment\nalice:100000:65536\n1001:300000:10\nbob:200000:65536\nalice:165536:10\n";
        let a = parse_subids(c, Some("alice"), 1000);
        assert_eq!(a, vec![(100000, 65536), (165536, 10)]);
        assert!(covered(&a, 100000, 65536));
        assert!(covered(&a, 160000, 5546)); // spans both adjacent entries
        assert!(!covered(&a, 99999, 2));
        assert!(!covered(&a, 165540, 10));
        let by_uid = parse_subids(c, Some("carol"), 1001);
        assert_eq!(by_uid, vec![(300000, 10)]);
        assert!(parse_subids(c, None, 42).is_empty());
    }

    #[test]
    fn own_id_is_written_directly() {
        let me = Caller {
            uid: 1000,
            gid: 1000,
            privileged: false,
        };
        let m = plan_one(
            Kind::Uid,
            &maps(r#"[{"containerID":0,"hostID":1000,"size":1}]"#),
            &me,
        )
        .unwrap();
        assert_eq!(m.writer, Writer::Direct);
        let root = Caller {
            uid: 0,
            gid: 0,
            privileged: true,
        };
        let m = plan_one(
            Kind::Uid,
            &maps(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#),
            &root,
        )
        .unwrap();
        assert_eq!(m.writer, Writer::Direct);
    }
}
