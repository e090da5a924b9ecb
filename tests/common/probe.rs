//! What the host the tests run on can express, asked once per test binary: the ONE place the
//! tests learn about cgroup v1 / v2 / hybrid, controllers, BFQ, swap, capabilities, LSMs,
//! systemd, the kernel, user namespaces, `fs.nr_open` and huge page sizes. Tests ask
//! [`host()`] and assert what this host should do; a case that cannot apply here says so with
//! [`skip!`] (`SKIP <test>: <reason>` on stderr, countable with `grep -c '^SKIP '`) and returns.
//!
//! Only std is used, so every test crate can include this file (`tests/common/mod.rs` does as
//! `common::probe`; the library-level crates include it by `#[path]`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only v1 hierarchies (no cgroup2 mount).
    V1,
    /// v1 controller hierarchies plus a cgroup2 mount (e.g. /sys/fs/cgroup/unified).
    Hybrid,
    /// Pure cgroup v2: one cgroup2 mount at /sys/fs/cgroup, no v1 controller hierarchy.
    V2,
}

/// Where one controller lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A v1 hierarchy mounted at this path (files are `<ctrl>.<name>`).
    V1(PathBuf),
    /// The cgroup2 hierarchy mounted at this path.
    V2(PathBuf),
}

impl Place {
    pub fn is_v2(&self) -> bool {
        matches!(self, Place::V2(_))
    }
    pub fn mount(&self) -> &Path {
        match self {
            Place::V1(p) | Place::V2(p) => p,
        }
    }
}

/// Everything the tests need to know about the host.
#[derive(Debug, Clone)]
pub struct Host {
    pub root: bool,
    pub cgroup_mode: CgroupMode,
    /// The cgroup2 mount point, when there is one.
    pub unified: Option<PathBuf>,
    /// v1 controller name → its hierarchy's mount point (co-mounted ones share it).
    pub v1: BTreeMap<String, PathBuf>,
    /// Controllers the cgroup2 root offers (`cgroup.controllers`).
    pub v2_available: Vec<String>,
    /// Controllers enabled for the root's children (`cgroup.subtree_control`).
    pub v2_enabled: Vec<String>,
    /// File names a fresh child cgroup of each hierarchy root gets (root only: the probe
    /// makes and removes one empty child per hierarchy). Key: hierarchy mount point.
    pub child_files: BTreeMap<PathBuf, Vec<String>>,
    /// BFQ's weight file exists in a child cgroup (`blkio.bfq.weight` / `io.bfq.weight`).
    pub bfq: bool,
    /// SwapTotal > 0 in /proc/meminfo.
    pub swap: bool,
    /// Swap accounting: `memory.swap.max` (v2) or `memory.memsw.limit_in_bytes` (v1).
    pub swap_accounting: bool,
    /// Capability numbers in this process's bounding set.
    pub cap_bounding: u64,
    pub apparmor: bool,
    pub selinux: bool,
    /// systemd is PID 1 (/run/systemd/system exists).
    pub systemd: bool,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
    /// Unprivileged user namespaces can be created (sysctls allow it).
    pub userns: bool,
    /// fs.nr_open: the largest RLIMIT_NOFILE the kernel accepts.
    pub nr_open: u64,
    /// Huge page sizes in bytes (from /sys/kernel/mm/hugepages).
    pub hugepage_sizes: Vec<u64>,
    /// Online CPUs (from sched_getaffinity of this process).
    pub cpus: usize,
    /// Lines of /proc/self/cgroup: one per v1 hierarchy (named ones too) plus `0::` where
    /// cgroup2 is mounted (pure v2: just that one).
    pub proc_cgroup_lines: usize,
}

/// The host, probed once.
pub fn host() -> &'static Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(probe)
}

impl Host {
    /// Where `ctrl` lives (`None`: the host has no such controller). On v2 the controller
    /// must be available at the root; use [`Host::v2_enabled`] for the children's view.
    pub fn controller(&self, ctrl: &str) -> Option<Place> {
        if let Some(p) = self.v1.get(ctrl) {
            return Some(Place::V1(p.clone()));
        }
        let u = self.unified.as_ref()?;
        // "freezer" and "devices" are not controllers on v2 but the kernel has the features
        // (cgroup.freeze and the BPF device program) in every non-root cgroup.
        let v2_builtin =
            matches!(ctrl, "freezer" | "devices") && self.cgroup_mode == CgroupMode::V2;
        (v2_builtin || self.v2_available.iter().any(|c| c == ctrl)).then(|| Place::V2(u.clone()))
    }

    pub fn has(&self, ctrl: &str) -> bool {
        self.controller(ctrl).is_some()
    }

    /// True when `ctrl` is served by cgroup v2 on this host.
    pub fn on_v2(&self, ctrl: &str) -> bool {
        self.controller(ctrl).is_some_and(|p| p.is_v2())
    }

    pub fn is_v2(&self) -> bool {
        self.cgroup_mode == CgroupMode::V2
    }

    /// A fresh child of `ctrl`'s hierarchy root has a file named `file` (root only).
    pub fn child_has(&self, ctrl: &str, file: &str) -> bool {
        self.controller(ctrl)
            .and_then(|p| self.child_files.get(p.mount()))
            .is_some_and(|v| v.iter().any(|f| f == file))
    }

    /// Capability number `cap` (e.g. 24 for CAP_SYS_RESOURCE) is in the bounding set.
    pub fn cap_in_bounding(&self, cap: u32) -> bool {
        cap < 64 && self.cap_bounding & (1u64 << cap) != 0
    }

    pub fn kernel_at_least(&self, major: u32, minor: u32) -> bool {
        self.kernel >= (major, minor)
    }

    pub fn has_hugepage(&self, bytes: u64) -> bool {
        self.hugepage_sizes.contains(&bytes)
    }

    /// The hugetlb file-name size part the kernel uses for `bytes` ("2MB", "1GB", "64KB").
    pub fn hugepage_name(bytes: u64) -> String {
        const K: u64 = 1024;
        if bytes >= K * K * K && bytes % (K * K * K) == 0 {
            format!("{}GB", bytes / (K * K * K))
        } else if bytes >= K * K && bytes % (K * K) == 0 {
            format!("{}MB", bytes / (K * K))
        } else {
            format!("{}KB", bytes / K)
        }
    }

    /// A one-line summary (printed by tests that want to show where they ran).
    pub fn summary(&self) -> String {
        format!(
            "cgroups {:?} (v1: {:?}; v2 available {:?}, enabled {:?}), bfq {}, swap {} (accounting {}), \
             CapBnd {:#x}, apparmor {}, selinux {}, systemd {}, kernel {}.{}, userns {}, nr_open {}, \
             hugepages {:?}, cpus {}",
            self.cgroup_mode,
            self.v1.keys().collect::<Vec<_>>(),
            self.v2_available,
            self.v2_enabled,
            self.bfq,
            self.swap,
            self.swap_accounting,
            self.cap_bounding,
            self.apparmor,
            self.selinux,
            self.systemd,
            self.kernel.0,
            self.kernel.1,
            self.userns,
            self.nr_open,
            self.hugepage_sizes,
            self.cpus,
        )
    }
}

/// Prints `SKIP <test>: <reason>` on stderr (libtest names each test's thread after the
/// test). Written to the stderr handle, not with `eprintln!`, which libtest captures and hides
/// for passing tests: the line shows in every run. For helpers that cannot return from the
/// test themselves: the caller returns after.
pub fn report_skip(reason: &str) {
    use std::io::Write;
    let t = std::thread::current();
    let line = format!("SKIP {}: {reason}\n", t.name().unwrap_or("<unnamed test>"));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `skip!("reason {}", x)`: prints `SKIP <test>: <reason>` and returns from the test.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)+) => {{
        use std::io::Write as _;
        let line = format!(
            "SKIP {}: {}\n",
            std::thread::current().name().unwrap_or("<unnamed test>"),
            format_args!($($arg)+)
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    }};
}

/// `skip_unless!(cond, "reason")`: skips when `cond` is false.
#[macro_export]
macro_rules! skip_unless {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::skip!($($arg)+);
        }
    };
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn probe() -> Host {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { geteuid() } == 0;
    let mut v1 = BTreeMap::new();
    let mut unified = None;
    for l in read("/proc/self/mountinfo").lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(fstype), Some(mp), Some(sopts)) = (f.get(sep + 1), f.get(4), f.get(sep + 3))
        else {
            continue;
        };
        match *fstype {
            "cgroup2" if unified.is_none() || *mp == "/sys/fs/cgroup" => {
                unified = Some(PathBuf::from(mp))
            }
            "cgroup" => {
                // Super options: the controllers, plus flags and `name=` (named hierarchies
                // such as name=systemd carry no controller).
                for o in sopts.split(',') {
                    if matches!(o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children")
                        || o.contains('=')
                    {
                        continue;
                    }
                    v1.entry(o.to_string()).or_insert_with(|| PathBuf::from(mp));
                }
            }
            _ => {}
        }
    }
    let cgroup_mode = match (&unified, v1.is_empty()) {
        (Some(_), true) => CgroupMode::V2,
        (Some(_), false) => CgroupMode::Hybrid,
        (None, _) => CgroupMode::V1,
    };
    let (v2_available, v2_enabled) = match &unified {
        Some(u) => (
            words(&read(u.join("cgroup.controllers"))),
            words(&read(u.join("cgroup.subtree_control"))),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // A child of every hierarchy root shows the files a container's cgroup gets there (many,
    // like io.bfq.weight or memory.swap.max, never show on the root itself).
    let mut child_files = BTreeMap::new();
    if root {
        let mut mounts: Vec<PathBuf> = v1.values().cloned().collect();
        mounts.extend(unified.iter().cloned());
        mounts.sort();
        mounts.dedup();
        for m in mounts {
            let d = m.join(format!("rruntime-probe-{}", std::process::id()));
            if std::fs::create_dir(&d).is_ok() {
                let mut names: Vec<String> = std::fs::read_dir(&d)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                let _ = std::fs::remove_dir(&d);
                child_files.insert(m, names);
            }
        }
    }
    let any_child = |f: &str| child_files.values().any(|v| v.iter().any(|x| x == f));
    let bfq = any_child("blkio.bfq.weight") || any_child("io.bfq.weight");
    let swap_accounting = any_child("memory.swap.max") || any_child("memory.memsw.limit_in_bytes");
    let meminfo = read("/proc/meminfo");
    let swap = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .is_some_and(|kb| kb > 0);
    let status = read("/proc/self/status");
    let cap_bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let apparmor = read("/sys/module/apparmor/parameters/enabled").trim() == "Y"
        && Path::new("/sys/kernel/security/apparmor").exists();
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let systemd = Path::new("/run/systemd/system").is_dir();
    let rel = read("/proc/sys/kernel/osrelease");
    let mut it = rel
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let kernel = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    let num = |p: &str| read(p).trim().parse::<u64>().ok();
    let userns = num("/proc/sys/user/max_user_namespaces").unwrap_or(0) > 0
        && num("/proc/sys/kernel/unprivileged_userns_clone").unwrap_or(1) == 1
        && num("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").unwrap_or(0) == 0;
    let nr_open = num("/proc/sys/fs/nr_open").unwrap_or(1 << 20);
    let mut hugepage_sizes: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let kb = n.strip_prefix("hugepages-")?.strip_suffix("kB")?;
                    Some(kb.parse::<u64>().ok()? * 1024)
                })
                .collect()
        })
        .unwrap_or_default();
    hugepage_sizes.sort();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let proc_cgroup_lines = read("/proc/self/cgroup")
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    Host {
        proc_cgroup_lines,
        root,
        cgroup_mode,
        unified,
        v1,
        v2_available,
        v2_enabled,
        child_files,
        bfq,
        swap,
        swap_accounting,
        cap_bounding,
        apparmor,
        selinux,
        systemd,
        kernel,
        userns,
        nr_open,
        hugepage_sizes,
        cpus,
    }
}

extern "C" {
    fn geteuid() -> u32;
}

/// Whether a veth pair can be made inside a new network namespace (the `veth` module is
/// loaded or loadable): the netDevices tests move such devices, never the host's own.
pub fn veth_in_netns() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        std::process::Command::new("unshare")
            .args([
                "--net", "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}
