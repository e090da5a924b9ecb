//! The v2 backend.
//!
//! * Against the real kernel: this host is hybrid, so the suite re-runs itself in a private mount
//!   namespace where /sys/fs/cgroup is replaced by a plain cgroup2 mount — a pure v2 host as far as
//!   detection is concerned. Only the controllers this cgroup2 hierarchy has can be exercised
//!   (here: hugetlb), plus everything that needs none: nesting, `cgroup.procs`, `pids()`,
//!   `cgroup.freeze`, `cgroup.kill`, CLONE_INTO_CGROUP and the eBPF device filter.
//! * memory/cpu/pids/io/cpuset/rdma/unified writes and statistics conversion run against a fake
//!   cgroupfs tree in a temporary directory (the manager takes its root from the layout).

mod cgroups_util;

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
};
use rruntime::cgroups::devices::bpf;
use rruntime::cgroups::{
    new_manager, new_manager_in, CgroupMode, CgroupOptions, CgroupPath, Layout,
};

use cgroups_util::*;

const INNER_ENV: &str = "RRUNTIME_CGROUPS_V2_INNER";

#[test]
fn cgroups_v2_real_cgroup2_in_private_mount_ns() {
    if std::env::var_os(INNER_ENV).is_some() || skip_unless_root("cgroups_v2 real") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "cgroups_v2_inner_suite",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(INNER_ENV, "1");
    // SAFETY: unshare is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the inner v2 suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner v2 suite failed:\n{stdout}\n{stderr}"
    );
}

/// Makes this (private) mount namespace look like a pure cgroup v2 host.
fn pure_v2_view() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make mounts private");
    if !Layout::detect().is_ok_and(|l| l.mode == CgroupMode::V2) {
        let _ = umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH);
        mount(
            Some("cgroup2"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount cgroup2 on /sys/fs/cgroup");
    }
    assert_eq!(Layout::detect().unwrap().mode, CgroupMode::V2);
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

fn open_null(fd: RawFd, _: usize) -> i32 {
    let errno = || unsafe { *libc::__errno_location() } as u8;
    let mut out = [0u8; 2];
    unsafe {
        let w = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        out[0] = if w >= 0 { 0 } else { errno() };
        let r = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        out[1] = if r >= 0 { 0 } else { errno() };
        libc::write(fd, out.as_ptr().cast(), 2);
    }
    0
}

fn count_forever(_: RawFd, addr: usize) -> i32 {
    let p = addr as *mut u64;
    loop {
        // SAFETY: a shared anonymous mapping made before fork.
        unsafe { std::ptr::write_volatile(p, std::ptr::read_volatile(p) + 1) };
    }
}

/// clone3(CLONE_INTO_CGROUP): the child starts in the cgroup and reports whether it may open
/// /dev/null for writing (exit code = errno, 0 = allowed).
fn clone_into(cgroup: RawFd) -> WaitStatus {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..Default::default()
    };
    // SAFETY: fork-like clone3; the child only makes raw syscalls and _exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
    if pid == 0 {
        unsafe {
            let w = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            let code = if w >= 0 { 0 } else { *libc::__errno_location() };
            libc::_exit(code);
        }
    }
    waitpid(Pid::from_raw(pid as i32), None).unwrap()
}

#[test]
#[ignore = "run by its outer test in a private mount namespace"]
fn cgroups_v2_inner_suite() {
    if std::env::var_os(INNER_ENV).is_none() {
        // Only meaningful inside the private mount namespace set up by the test above.
        skip!("only inside the private mount namespace its outer test makes");
    }
    pure_v2_view();
    let root = PathBuf::from("/sys/fs/cgroup");
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
    let has_hugetlb = controllers.split_whitespace().any(|c| c == "hugetlb")
        && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();

    let top = unique_path("v2");
    let mut b = LinuxResourcesBuilder::default().devices(vec![
        dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
        dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "r"),
    ]);
    if has_hugetlb {
        b = b.hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()]);
    }
    let r = b.build().unwrap();
    let mut g = Guard::new(
        new_manager(Some(&format!("{top}/a/b")), "x", &CgroupOptions::default()).unwrap(),
    );
    assert!(g.mgr.is_v2());
    g.mgr.create(Some(&r)).unwrap();
    let st = g.mgr.state();
    let leaf = root.join(format!("{}/a/b", top.trim_start_matches('/')));
    assert_eq!(st.hierarchies.len(), 1);
    assert_eq!(st.hierarchies[0].dir, leaf);
    assert_eq!(st.created.len(), 3, "{:?}", st.created);
    if has_hugetlb {
        for d in [root.clone(), st.created[0].clone(), st.created[1].clone()] {
            let sc = read_trim(&d.join("cgroup.subtree_control"));
            assert!(sc.contains("hugetlb"), "{}: {sc:?}", d.display());
        }
        assert_eq!(
            read_trim(&leaf.join("hugetlb.2MB.max")),
            (4u64 << 20).to_string()
        );
        assert!(g.mgr.stats().unwrap().hugetlb.contains_key("2MB"));
    }

    // The eBPF device filter: read allowed, write denied.
    let mut c = Forked::spawn(0, open_null);
    g.mgr.add_task(c.pid).unwrap();
    assert_eq!(g.mgr.pids().unwrap(), vec![c.pid]);
    assert_eq!(g.mgr.stats().unwrap().pids.current, 1);
    c.go();
    let res = c.read_result(2);
    assert_eq!(i32::from(res[0]), libc::EPERM, "write open of /dev/null");
    assert_eq!(res[1], 0, "read open of /dev/null");
    c.wait();

    // CLONE_INTO_CGROUP: born inside, so the filter applies from the first instruction.
    let cfd = g.mgr.cgroup_fd().unwrap().expect("v2 gives a cgroup fd");
    match clone_into(cfd.as_raw_fd()) {
        WaitStatus::Exited(_, code) => assert_eq!(code, libc::EPERM, "clone3 child could write"),
        other => panic!("clone3 child: {other:?}"),
    }

    // update: the program is replaced (still exactly one attached), write now allowed.
    let rw = LinuxResourcesBuilder::default()
        .devices(vec![
            dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
            dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "rw"),
        ])
        .build()
        .unwrap();
    g.mgr.apply(&rw).unwrap();
    let cgfd = bpf::open_cgroup(&leaf).unwrap();
    assert_eq!(bpf::query(&cgfd, &leaf).unwrap().len(), 1);
    match clone_into(cfd.as_raw_fd()) {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("write still denied after update: {other:?}"),
    }

    // Freeze via cgroup.freeze.
    let counter = SharedCounter::new();
    let mut c = Forked::spawn(counter.addr(), count_forever);
    g.mgr.add_task(c.pid).unwrap();
    c.go();
    assert!(wait_until(Duration::from_secs(5), || counter.get() > 0));
    g.mgr.freeze().unwrap();
    assert!(g.mgr.is_frozen().unwrap());
    assert!(read_trim(&leaf.join("cgroup.events")).contains("frozen 1"));
    let v = counter.get();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counter.get(), v, "counter moved while frozen");
    g.mgr.thaw().unwrap();
    assert!(wait_until(Duration::from_secs(5), || counter.get() > v));

    // kill --all through cgroup.kill.
    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    assert!(matches!(
        c.wait(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));

    // No memory controller on this cgroup2: OOM events are refused with a reason.
    if !controllers.split_whitespace().any(|c| c == "memory") {
        let e = g
            .mgr
            .oom_events()
            .err()
            .expect("no memory controller")
            .to_string();
        assert!(e.contains("memory.events"), "{e}");
    }
    let mounts = g.mgr.mounts();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].fstype, "cgroup2");
    assert_eq!(mounts[0].mount_point_name, "");
    g.finish();
    assert!(!root.join(top.trim_start_matches('/')).exists());
}

// ---- fake cgroupfs trees -------------------------------------------------------------------

struct FakeTree {
    root: PathBuf,
}

impl FakeTree {
    /// A root with `controllers` and a pre-existing container directory `ctr` with the given
    /// (empty) control files.
    fn new(tag: &str, controllers: &str, files: &[&str]) -> FakeTree {
        let root =
            std::env::temp_dir().join(format!("rruntime-fake-cg-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("ctr")).unwrap();
        fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        fs::write(root.join("ctr/cgroup.controllers"), controllers).unwrap();
        for f in files {
            fs::write(root.join("ctr").join(f), "").unwrap();
        }
        FakeTree { root }
    }

    fn read(&self, f: &str) -> String {
        fs::read_to_string(self.root.join("ctr").join(f)).unwrap()
    }

    fn write(&self, f: &str, v: &str) {
        fs::write(self.root.join("ctr").join(f), v).unwrap()
    }

    fn manager(&self) -> Box<dyn rruntime::cgroups::CgroupManager> {
        new_manager_in(
            &Layout::v2_at(&self.root),
            &CgroupPath::Absolute("/ctr".into()),
            &CgroupOptions::default(),
        )
        .unwrap()
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[test]
fn cgroups_v2_fake_tree_writes_converted_values() {
    let t = FakeTree::new(
        "writes",
        "cpuset cpu io memory hugetlb pids rdma",
        &[
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "memory.high",
            "cpu.weight",
            "cpu.max",
            "cpu.max.burst",
            "cpu.idle",
            "cpuset.cpus",
            "cpuset.mems",
            "pids.max",
            "io.weight",
            "io.max",
            "hugetlb.1GB.max",
            "rdma.max",
        ],
    );
    let mgr = t.manager();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64 << 20)
                .swap(300i64 << 20)
                .reservation(50i64 << 20)
                .swappiness(10u64)
                .kernel(1i64 << 20)
                .disable_oom_killer(true)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(20_000i64)
                .period(100_000u64)
                .burst(5_000u64)
                .idle(0i64)
                .realtime_runtime(1000i64)
                .cpus("0-1")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .leaf_weight(300u16)
                .weight_device(vec![LinuxWeightDeviceBuilder::default()
                    .major(8)
                    .minor(0)
                    .weight(1000u16)
                    .build()
                    .unwrap()])
                .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                    .major(8)
                    .minor(0)
                    .rate(1048576u64)
                    .build()
                    .unwrap()])
                .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                    .major(8)
                    .minor(16)
                    .rate(100u64)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("1GB")
            .limit(1i64 << 30)
            .build()
            .unwrap()])
        .unified(HashMap::from([(
            "memory.high".to_string(),
            "12345".to_string(),
        )]))
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("memory.max"), (100u64 << 20).to_string());
    assert_eq!(t.read("memory.swap.max"), (200u64 << 20).to_string());
    assert_eq!(t.read("memory.low"), (50u64 << 20).to_string());
    assert_eq!(t.read("memory.high"), "12345");
    assert_eq!(t.read("cpu.weight"), "100");
    assert_eq!(t.read("cpu.max"), "20000 100000");
    assert_eq!(t.read("cpu.max.burst"), "5000");
    assert_eq!(t.read("cpu.idle"), "0");
    assert_eq!(t.read("cpuset.cpus"), "0-1");
    assert_eq!(t.read("cpuset.mems"), "0");
    assert_eq!(t.read("pids.max"), "42");
    // No io.bfq.weight here: converted io.weight, the per-device value last.
    assert_eq!(t.read("io.weight"), "8:0 10000");
    let io_max = t.read("io.max");
    assert!(io_max.contains("8:0 rbps=1048576"), "{io_max}");
    assert!(io_max.contains("8:16 wiops=100"), "{io_max}");
    assert_eq!(t.read("hugetlb.1GB.max"), (1u64 << 30).to_string());

    // Only the quota: the kernel keeps the period, so only the quota is written.
    let r = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().quota(-1i64).build().unwrap())
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("cpu.max"), "max");
    // Only the period: the current quota is kept.
    t.write("cpu.max", "30000 100000\n");
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .period(50_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("cpu.max"), "30000 50000");
    // memory == memory+swap: no swap at all.
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .swap(64i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("memory.swap.max"), "0");
    // Unlimited memory also lifts swap.
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("memory.max"), "max");
    assert_eq!(t.read("memory.swap.max"), "max");
}

#[test]
fn cgroups_v2_fake_tree_bfq_weights() {
    let t = FakeTree::new("bfq", "io", &["io.bfq.weight", "io.weight"]);
    t.write("io.bfq.weight", "default 100\n");
    let mgr = t.manager();
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .weight_device(vec![LinuxWeightDeviceBuilder::default()
                    .major(8)
                    .minor(0)
                    .weight(700u16)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(t.read("io.bfq.weight"), "8:0 700");
    assert_eq!(t.read("io.weight"), "");
}

#[test]
fn cgroups_v2_fake_tree_errors_name_the_problem() {
    let t = FakeTree::new("errors", "cpu memory", &["memory.max"]);
    let mgr = t.manager();
    let io = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                    .major(8)
                    .minor(0)
                    .rate(1u64)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = mgr.apply(&io).unwrap_err().to_string();
    assert!(e.contains("\"io\" is not available"), "{e}");
    let pids = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(3).build().unwrap())
        .build()
        .unwrap();
    let e = mgr.apply(&pids).unwrap_err().to_string();
    assert!(e.contains("\"pids\" is not available"), "{e}");
    let swap = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64)
                .swap(50i64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = mgr.apply(&swap).unwrap_err().to_string();
    assert!(e.contains("memory+swap limit"), "{e}");
    let bad = LinuxResourcesBuilder::default()
        .unified(HashMap::from([("../x".to_string(), "1".to_string())]))
        .build()
        .unwrap();
    let e = mgr.apply(&bad).unwrap_err().to_string();
    assert!(e.contains("no slashes"), "{e}");
    let bad = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("../2MB")
            .limit(1i64)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let e = mgr.apply(&bad).unwrap_err().to_string();
    assert!(e.contains("pageSize"), "{e}");
}

#[test]
fn cgroups_v2_fake_tree_stats_conversion() {
    let t = FakeTree::new("stats", "cpu memory pids io", &[]);
    t.write(
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 3\nthrottled_usec 7\n",
    );
    t.write("memory.current", "1000\n");
    t.write("memory.max", "4000\n");
    t.write("memory.peak", "2000\n");
    t.write("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n");
    t.write("memory.stat", "anon 600\nfile 400\n");
    t.write("memory.swap.current", "10\n");
    t.write("memory.swap.max", "max\n");
    t.write("pids.current", "3\n");
    t.write("pids.max", "max\n");
    t.write(
        "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    let s = t.manager().stats().unwrap();
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.user, 1_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 3);
    assert_eq!(s.cpu.throttling.throttled_time, 7000);
    assert_eq!(s.memory.usage.usage, 1000);
    assert_eq!(s.memory.usage.limit, 4000);
    assert_eq!(s.memory.usage.max, 2000);
    assert_eq!(s.memory.usage.failcnt, 5);
    assert_eq!(s.memory.cache, 400);
    assert_eq!(s.memory.swap.usage, 1010);
    assert_eq!(s.memory.swap.limit, u64::MAX);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 3);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 3);
    assert_eq!(v["memory"]["raw"]["anon"], 600);
}

#[test]
fn cgroups_v2_fake_tree_create_enables_controllers_and_destroy_removes_only_new_dirs() {
    let t = FakeTree::new("create", "cpu memory pids", &[]);
    let layout = Layout::v2_at(&t.root);
    // Rootless: no device filter (a temp dir cannot take eBPF programs).
    let opts = CgroupOptions {
        rootless: true,
        ..Default::default()
    };
    let mut mgr = new_manager_in(&layout, &CgroupPath::Absolute("/ctr/a/b".into()), &opts).unwrap();
    mgr.create(Some(&LinuxResources::default())).unwrap();
    let st = mgr.state();
    assert_eq!(
        st.created,
        vec![t.root.join("ctr/a"), t.root.join("ctr/a/b")]
    );
    assert_eq!(
        fs::read_to_string(t.root.join("cgroup.subtree_control")).unwrap(),
        "+cpu +memory +pids"
    );
    mgr.destroy().unwrap();
    assert!(!t.root.join("ctr/a").exists());
    assert!(
        t.root.join("ctr").is_dir(),
        "pre-existing directory removed"
    );
}
