//! Process attributes beyond user and capabilities: `process.scheduler`, `process.ioPriority`,
//! `linux.personality`, `linux.memoryPolicy`, and writes into procfs that must really land in
//! procfs (a rootfs could plant a fake `/proc/...` file to swallow an LSM label).

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType,
    Scheduler,
};
use std::io::Write;
use std::path::Path;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Writes `data` to a file that must be on a procfs mount (checked with fstatfs after opening
/// it without following a final symlink).
pub fn write_procfs(path: &Path, data: &[u8]) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nofollow()
        .open(path)
        .ctx(|| format!("open {}", path.display()))?;
    let st = nix::sys::statfs::fstatfs(&f).ctx(|| format!("statfs {}", path.display()))?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        return Err(Error::msg(format!(
            "{} is not on procfs: refusing to write to it",
            path.display()
        )));
    }
    (&f).write_all(data)
        .ctx(|| format!("write {}", path.display()))
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

pub fn apply_personality(p: &LinuxPersonality) -> Result<()> {
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality with a constant.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(Errno::last()).ctx(|| "linux.personality");
    }
    Ok(())
}

/// `struct sched_attr` of sched_setattr(2).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag_bits(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// `process.scheduler` → sched_setattr(0, …).
pub fn apply_scheduler(s: &Scheduler) -> Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_number(*s.policy()),
        flags: s
            .flags()
            .iter()
            .flatten()
            .fold(0, |acc, f| acc | flag_bits(*f)),
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: sched_setattr with a valid, correctly sized struct.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        return Err(Errno::last()).ctx(|| format!("process.scheduler: policy {:?}", s.policy()));
    }
    Ok(())
}

/// `process.ioPriority` → ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level).
pub fn apply_io_priority(p: &LinuxIOPriority) -> Result<()> {
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::config(format!(
            "process.ioPriority: priority {level} is out of range 0-7"
        )));
    }
    const IOPRIO_WHO_PROCESS: i64 = 1;
    // SAFETY: ioprio_set with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | level,
        )
    };
    if r != 0 {
        return Err(Errno::last()).ctx(|| "process.ioPriority");
    }
    Ok(())
}

/// Parses a node list like `0-3,5` into a bitmask of `u64` words.
pub fn parse_nodes(s: &str) -> Result<Vec<u64>> {
    parse_bitmap(s, 4096, || {
        Error::config(format!("linux.memoryPolicy.nodes: invalid node list {s:?}"))
    })
}

/// Parses a CPU list like `0-3,7` (`process.execCPUAffinity`) into a bitmask of `u64` words.
pub fn parse_cpus(s: &str, field: &str) -> Result<Vec<u64>> {
    let mask = parse_bitmap(s, MAX_CPUS, || {
        Error::config(format!("bad CPUAffinity.{field}: invalid CPU list {s:?}"))
    })?;
    if mask.is_empty() {
        return Err(Error::config(format!(
            "bad CPUAffinity.{field}: empty CPU list"
        )));
    }
    Ok(mask)
}

/// CPUs a reset affinity allows (all possible ones: the kernel clamps it to its own count and
/// to the task's cpuset, and a CPU added to the cpuset later is not excluded).
const MAX_CPUS: usize = 64 * 1024;

/// sched_setaffinity(pid, mask); pid 0 is the calling thread.
pub fn set_affinity(pid: i32, mask: &[u64]) -> std::result::Result<(), Errno> {
    // SAFETY: the kernel reads `len` bytes from a buffer of that size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The calling thread's affinity mask.
pub fn get_affinity() -> Option<Vec<u64>> {
    let mut mask = vec![0u64; MAX_CPUS / 64];
    // SAFETY: the kernel writes at most `len` bytes into the buffer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            std::mem::size_of_val(mask.as_slice()),
            mask.as_mut_ptr(),
        )
    };
    (r > 0).then(|| {
        mask.truncate((r as usize).div_ceil(8));
        mask
    })
}

/// Lets `pid` run on every CPU its cgroup's cpuset allows, instead of the mask it inherited
/// from whoever started the runtime (`taskset -c 0 rruntime run …`), as runc ≥ 1.2 does.
/// Best effort, as in runc: a failure is a warning.
pub fn reset_affinity(pid: i32) {
    let all = vec![u64::MAX; MAX_CPUS / 64];
    if let Err(e) = set_affinity(pid, &all) {
        crate::logging::warn(format!(
            "resetting the CPU affinity of pid {pid} failed ({e}); the container process may \
             inherit the runtime's CPU affinity"
        ));
    }
}

fn parse_bitmap(s: &str, max: usize, bad: impl Fn() -> Error) -> Result<Vec<u64>> {
    let mut mask: Vec<u64> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<usize>().map_err(|_| bad())?,
                b.parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<usize>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if a > b || b >= max {
            return Err(bad());
        }
        for n in a..=b {
            if mask.len() <= n / 64 {
                mask.resize(n / 64 + 1, 0);
            }
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

/// `linux.memoryPolicy` → set_mempolicy(mode | flags, nodemask).
pub fn apply_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    let mode: i64 = match p.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let mut flags: i64 = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    let mask = parse_nodes(p.nodes().as_deref().unwrap_or(""))?;
    let (ptr, maxnode) = if mask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (mask.as_ptr(), mask.len() * 64 + 1)
    };
    // SAFETY: set_mempolicy with a mask buffer of `maxnode` bits.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode | flags, ptr, maxnode) };
    if r != 0 {
        return Err(Errno::last()).ctx(|| format!("linux.memoryPolicy: mode {:?}", p.mode()));
    }
    Ok(())
}

/// `linux.intelRdt` needs the resctrl filesystem; rruntime does not manage it yet, so a config
/// asking for it is refused with a clear reason instead of being silently ignored.
pub fn check_intel_rdt(spec: &oci_spec::runtime::Spec) -> Result<()> {
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.intel_rdt().as_ref())
        .is_none()
    {
        return Ok(());
    }
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.contains(" - resctrl ")))
        .unwrap_or(false);
    if !mounted {
        return Err(Error::config(
            "linux.intelRdt: the resctrl filesystem is not mounted on this host (Intel RDT unavailable)",
        ));
    }
    Err(Error::config(
        "linux.intelRdt: Intel RDT (resctrl) is not supported by rruntime yet",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists() {
        assert_eq!(parse_nodes("0").unwrap(), vec![1]);
        assert_eq!(parse_nodes("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(parse_nodes("64").unwrap(), vec![0, 1]);
        assert!(parse_nodes("").unwrap().is_empty());
        for bad in ["x", "3-1", "0-", "9999"] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn procfs_writes_are_checked() {
        let p = std::env::temp_dir().join(format!("rruntime-notproc-{}", std::process::id()));
        std::fs::write(&p, "").unwrap();
        let e = write_procfs(&p, b"x").unwrap_err().to_string();
        assert!(e.contains("not on procfs"), "{e}");
        let _ = std::fs::remove_file(&p);
        // A real procfs file is accepted.
        write_procfs(Path::new("/proc/self/comm"), b"attrs-test").unwrap();
    }

    #[test]
    fn io_priority_in_forked_child() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_IDLE","priority":0}"#).unwrap();
        // SAFETY: the child only makes syscalls and exits.
        match unsafe { libc::fork() } {
            0 => {
                let ok = apply_io_priority(&p).is_ok()
                    && unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) } == (3 << 13);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid => {
                let mut st = 0;
                unsafe { libc::waitpid(pid, &mut st, 0) };
                assert_eq!(libc::WEXITSTATUS(st), 0);
            }
        }
    }
}
