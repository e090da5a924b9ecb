//! The v1/hybrid backend against this host's real hierarchies (root; CI runs these as root).
//! Each test makes its own uniquely named cgroup, checks a real effect on real processes, and ends
//! with a leak check; a guard cleans up if it panics.

mod cgroups_util;

use std::os::fd::{AsFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder,
};
use rruntime::cgroups::{
    new_manager, new_manager_in, CgroupManager, CgroupMode, CgroupOptions, CgroupPath, Layout,
    OomEvent,
};

use cgroups_util::*;

/// The host layout if the v1 backend applies here (v1 or hybrid) and we are root.
fn v1_layout(test: &str) -> Option<Layout> {
    if skip_unless_root(test) {
        return None;
    }
    if host().is_v2() {
        probe::report_skip("pure cgroup v2 host (no v1 hierarchy)");
        return None;
    }
    let l = Layout::detect().expect("detect layout");
    assert_ne!(l.mode, CgroupMode::V2, "the probe says v1 or hybrid");
    Some(l)
}

fn manager(path: &str) -> Box<dyn CgroupManager> {
    new_manager(Some(path), "unused", &CgroupOptions::default()).expect("new_manager")
}

fn dir_of(mgr: &dyn CgroupManager, controller: &str) -> Option<PathBuf> {
    mgr.state()
        .hierarchies
        .iter()
        .find(|h| h.controllers.split(',').any(|c| c == controller))
        .map(|h| h.dir.clone())
}

fn unified_dir(mgr: &dyn CgroupManager) -> Option<PathBuf> {
    mgr.state()
        .hierarchies
        .iter()
        .find(|h| h.is_v2())
        .map(|h| h.dir.clone())
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

#[test]
fn cgroups_v1_nested_create_destroy_keeps_preexisting() {
    let Some(layout) = v1_layout("cgroups_v1_nested_create_destroy_keeps_preexisting") else {
        return;
    };
    let top = unique_path("nest");
    // The memory hierarchy already has the top directory: it must be joined, not removed.
    let mem_mount = &layout
        .v1_mount("memory")
        .expect("memory hierarchy")
        .mount_point;
    let pre = mem_mount.join(top.trim_start_matches('/'));
    std::fs::create_dir(&pre).unwrap();
    let mut g = Guard::new(manager(&format!("{top}/a/b")));
    g.extra_dirs.push(pre.clone());
    g.mgr.create(None).unwrap();
    let st = g.mgr.state();
    assert_eq!(st.path, format!("{top}/a/b"));
    assert!(
        !st.created.contains(&pre),
        "pre-existing dir recorded as created"
    );
    for h in &st.hierarchies {
        assert!(h.dir.is_dir(), "{} not created", h.dir.display());
        assert!(h
            .dir
            .ends_with(format!("{}/a/b", top.trim_start_matches('/'))));
    }
    if layout.mode == CgroupMode::Hybrid {
        let u = unified_dir(g.mgr.as_ref()).expect("hybrid: unified dir tracked");
        assert!(u.starts_with(&layout.v2.as_ref().unwrap().mount_point));
        assert!(u.is_dir());
    }
    // A task joins every hierarchy (cpuset got cpus/mems copied down the new path: no ENOSPC).
    let mut child = Busybox::spawn("sleep 1000");
    g.mgr.add_task(child.pid()).unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).unwrap();
    for line in cg.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(path, format!("{top}/a/b"), "not joined everywhere: {cg}");
    }
    assert_eq!(g.mgr.pids().unwrap(), vec![child.pid()]);
    child.go();
    drop(child);
    g.mgr.destroy().unwrap();
    assert!(pre.is_dir(), "pre-existing parent was removed");
    // Every other hierarchy's top directory was ours and is gone.
    assert_no_leak(&st);
    g.finish();
}

#[test]
fn cgroups_v1_join_existing_is_not_removed() {
    let Some(_) = v1_layout("cgroups_v1_join_existing_is_not_removed") else {
        return;
    };
    let path = unique_path("join");
    let mut first = Guard::new(manager(&path));
    first.mgr.create(None).unwrap();
    // A second container joining the same cgroup creates nothing and removes nothing.
    let mut second = manager(&path);
    second.create(None).unwrap();
    assert!(second.state().created.is_empty());
    second.destroy().unwrap();
    for h in first.mgr.state().hierarchies {
        assert!(h.dir.is_dir());
    }
    first.finish();
}

fn fill_memory_script() -> &'static str {
    "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"
}

#[test]
fn cgroups_v1_memory_limit_oom_kills_and_notifies() {
    let Some(_) = v1_layout("cgroups_v1_memory_limit_oom_kills_and_notifies") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("oom")));
    let mem = LinuxMemoryBuilder::default()
        .limit(16i64 << 20)
        .swap(16i64 << 20)
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(mem)
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let mut oom = g.mgr.oom_events().unwrap();
    let mut child = Busybox::spawn(fill_memory_script());
    g.mgr.add_task(child.pid()).unwrap();
    child.go();
    let status = child.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "not OOM-killed: {status:?}"
    );
    let mut fds = [PollFd::new(oom.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(n, 1, "OOM event fd did not become readable");
    match oom.read().unwrap() {
        OomEvent::Oom(c) => assert!(c >= 1),
        e => panic!("expected an OOM event, got {e:?}"),
    }
    let st = g.mgr.stats().unwrap();
    assert_eq!(st.memory.usage.limit, 16 << 20);
    assert_eq!(
        st.memory.usage.max,
        16 << 20,
        "peak usage should have hit the limit"
    );
    g.finish();
}

fn fork_many(fd: RawFd, _: usize) -> i32 {
    // Fork 20 children that just pause; report how many forks succeeded and the errno of the
    // first failure.
    let mut ok: u8 = 0;
    let mut err: u8 = 0;
    for _ in 0..20 {
        // SAFETY: async-signal-safe calls only.
        let p = unsafe { libc::fork() };
        if p == 0 {
            unsafe {
                libc::pause();
                libc::_exit(0)
            };
        } else if p > 0 {
            ok += 1;
        } else if err == 0 {
            err = unsafe { *libc::__errno_location() } as u8;
        }
    }
    let out = [ok, err];
    // SAFETY: writing 2 bytes from the stack.
    unsafe { libc::write(fd, out.as_ptr().cast(), 2) };
    0
}

#[test]
fn cgroups_v1_pids_limit_stops_forks() {
    let Some(_) = v1_layout("cgroups_v1_pids_limit_stops_forks") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("pids")));
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let mut c = Forked::spawn(0, fork_many);
    g.mgr.add_task(c.pid).unwrap();
    c.go();
    let res = c.read_result(2);
    assert_eq!(res.len(), 2);
    // The forking child itself is one of the 10.
    assert_eq!(res[0], 9, "forks that succeeded");
    assert_eq!(i32::from(res[1]), libc::EAGAIN, "errno of the refused fork");
    assert_eq!(g.mgr.stats().unwrap().pids.limit, 10);
    assert_eq!(g.mgr.stats().unwrap().pids.current, 10);
    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    c.wait();
    assert!(wait_until(Duration::from_secs(5), || g
        .mgr
        .pids()
        .unwrap()
        .is_empty()));
    g.finish();
}

#[test]
fn cgroups_v1_cpu_quota_limits_usage() {
    let Some(_) = v1_layout("cgroups_v1_cpu_quota_limits_usage") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("cpu")));
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(20_000i64)
                .period(100_000u64)
                .shares(512u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let cpu = dir_of(g.mgr.as_ref(), "cpu").unwrap();
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "512");
    let mut child = Busybox::spawn("while :; do :; done");
    g.mgr.add_task(child.pid()).unwrap();
    child.go();
    let u0 = g.mgr.stats().unwrap().cpu.usage.total;
    let t0 = Instant::now();
    // The one bounded measuring window of these tests.
    std::thread::sleep(Duration::from_millis(1500));
    let u1 = g.mgr.stats().unwrap().cpu.usage.total;
    let ratio = (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(
        (0.1..=0.35).contains(&ratio),
        "cpu usage ratio {ratio:.3} outside 0.1..0.35 for a 20% quota"
    );
    // A loop that got its full 20% was throttled; on a saturated host it may have got less
    // than its quota without ever hitting it.
    if ratio >= 0.18 {
        assert!(g.mgr.stats().unwrap().cpu.throttling.throttled_periods > 0);
    }
    drop(child);
    g.finish();
}

#[test]
fn cgroups_v1_cpuset_pins_tasks() {
    let Some(_) = v1_layout("cgroups_v1_cpuset_pins_tasks") else {
        return;
    };
    let mut g = Guard::new(manager(&format!("{}/nested/leaf", unique_path("cpuset"))));
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let child = Busybox::spawn("sleep 1000");
    g.mgr.add_task(child.pid()).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid())).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    assert_eq!(allowed, "0");
    let cs = dir_of(g.mgr.as_ref(), "cpuset").unwrap();
    // The intermediate directory got the parent's cpus (non-empty).
    assert!(!read_trim(&cs.parent().unwrap().join("cpuset.cpus")).is_empty());
    assert_eq!(g.mgr.stats().unwrap().cpuset.cpus, vec![0]);
    drop(child);
    g.finish();
}

#[test]
fn cgroups_v1_cpuset_nested_without_config_accepts_tasks() {
    let Some(_) = v1_layout("cgroups_v1_cpuset_nested_without_config_accepts_tasks") else {
        return;
    };
    let mut g = Guard::new(manager(&format!("{}/x/y/z", unique_path("cpuset2"))));
    g.mgr.create(None).unwrap();
    let child = Busybox::spawn("sleep 1000");
    g.mgr
        .add_task(child.pid())
        .expect("add_task (ENOSPC means empty cpuset)");
    drop(child);
    g.finish();
}

fn try_devices(fd: RawFd, _: usize) -> i32 {
    // Report errno (0 = success) of: open /dev/null O_WRONLY, open O_RDONLY, mknod c 1:3.
    let errno = || unsafe { *libc::__errno_location() } as u8;
    let mut out = [0u8; 3];
    unsafe {
        let w = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        out[0] = if w >= 0 { 0 } else { errno() };
        let r = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        out[1] = if r >= 0 { 0 } else { errno() };
        let mut path = *b"/tmp/rruntime-test-mknod-XXXXXX\0";
        let d = libc::mkdtemp(path.as_mut_ptr().cast());
        if d.is_null() {
            out[2] = 255;
        } else {
            let mut node = [0u8; 64];
            let base = &path[..path.len() - 1];
            node[..base.len()].copy_from_slice(base);
            node[base.len()..base.len() + 4].copy_from_slice(b"/nod");
            let m = libc::mknod(
                node.as_ptr().cast(),
                libc::S_IFCHR | 0o600,
                libc::makedev(1, 3),
            );
            out[2] = if m == 0 { 0 } else { errno() };
            libc::unlink(node.as_ptr().cast());
            libc::rmdir(path.as_ptr().cast());
        }
        libc::write(fd, out.as_ptr().cast(), 3);
    }
    0
}

fn device_probe(mgr: &dyn CgroupManager) -> Vec<u8> {
    let mut c = Forked::spawn(0, try_devices);
    mgr.add_task(c.pid).unwrap();
    c.go();
    let res = c.read_result(3);
    assert!(matches!(c.wait(), WaitStatus::Exited(_, 0)));
    res
}

#[test]
fn cgroups_v1_devices_deny_and_update() {
    let Some(_) = v1_layout("cgroups_v1_devices_deny_and_update") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("dev")));
    let read_only = vec![
        dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
        dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "r"),
    ];
    let r = LinuxResourcesBuilder::default()
        .devices(read_only)
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let devdir = dir_of(g.mgr.as_ref(), "devices").unwrap();
    assert_eq!(read_trim(&devdir.join("devices.list")), "c 1:3 r");
    let res = device_probe(g.mgr.as_ref());
    assert_eq!(i32::from(res[0]), libc::EPERM, "write open of /dev/null");
    assert_eq!(res[1], 0, "read open of /dev/null");
    assert_eq!(i32::from(res[2]), libc::EPERM, "mknod");

    // update: read-write plus mknod, the difference only.
    let rw = vec![
        dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
        dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
    ];
    let r2 = LinuxResourcesBuilder::default()
        .devices(rw)
        .build()
        .unwrap();
    g.mgr.apply(&r2).unwrap();
    assert_eq!(read_trim(&devdir.join("devices.list")), "c 1:3 rwm");
    let res = device_probe(g.mgr.as_ref());
    assert_eq!(res, vec![0, 0, 0]);

    // update without devices leaves them alone.
    g.mgr.apply(&LinuxResources::default()).unwrap();
    assert_eq!(read_trim(&devdir.join("devices.list")), "c 1:3 rwm");
    g.finish();
}

#[test]
fn cgroups_v1_default_device_rules_on_create() {
    let Some(_) = v1_layout("cgroups_v1_default_device_rules_on_create") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("devdef")));
    g.mgr.create(None).unwrap();
    let devdir = dir_of(g.mgr.as_ref(), "devices").unwrap();
    let list = read_trim(&devdir.join("devices.list"));
    assert!(list.contains("c 1:3 rwm"), "{list}");
    assert!(list.contains("c *:* m"), "{list}");
    assert!(!list.contains("a *:*"), "{list}");
    g.finish();
}

fn count_forever(_: RawFd, addr: usize) -> i32 {
    let p = addr as *mut u64;
    loop {
        // SAFETY: addr is a shared anonymous mapping made before fork.
        unsafe { std::ptr::write_volatile(p, std::ptr::read_volatile(p) + 1) };
    }
}

#[test]
fn cgroups_v1_freeze_stops_and_thaw_resumes() {
    let Some(_) = v1_layout("cgroups_v1_freeze_stops_and_thaw_resumes") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("freeze")));
    g.mgr.create(None).unwrap();
    let counter = SharedCounter::new();
    let mut c = Forked::spawn(counter.addr(), count_forever);
    g.mgr.add_task(c.pid).unwrap();
    c.go();
    assert!(wait_until(Duration::from_secs(5), || counter.get() > 0));
    g.mgr.freeze().unwrap();
    assert!(g.mgr.is_frozen().unwrap());
    let v = counter.get();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counter.get(), v, "counter moved while frozen");
    g.mgr.thaw().unwrap();
    assert!(!g.mgr.is_frozen().unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || counter.get() > v),
        "no progress after thaw"
    );
    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    assert!(matches!(
        c.wait(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
    g.finish();
}

#[test]
fn cgroups_v1_update_memory_on_populated_cgroup() {
    let Some(_) = v1_layout("cgroups_v1_update_memory_on_populated_cgroup") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("upd")));
    g.mgr.create(None).unwrap();
    let mut child = Busybox::spawn(fill_memory_script());
    g.mgr.add_task(child.pid()).unwrap();
    let mem = dir_of(g.mgr.as_ref(), "memory").unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(32i64 << 20)
                .swap(32i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    assert_eq!(
        read_trim(&mem.join("memory.limit_in_bytes")),
        (32u64 << 20).to_string()
    );
    // Raising memory above the current memory+swap limit needs the other write order.
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(48i64 << 20)
                .swap(64i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    assert_eq!(
        read_trim(&mem.join("memory.limit_in_bytes")),
        (48u64 << 20).to_string()
    );
    assert_eq!(
        read_trim(&mem.join("memory.memsw.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    // Lower it again: the limit is enforced on the running task.
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(16i64 << 20)
                .swap(16i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    child.go();
    let status = child.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    g.finish();
}

#[test]
fn cgroups_v1_destroy_right_after_sigkill() {
    let Some(_) = v1_layout("cgroups_v1_destroy_right_after_sigkill") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("kill")));
    g.mgr.create(None).unwrap();
    let mut kids = Vec::new();
    for _ in 0..3 {
        let k = Busybox::spawn("sleep 1000");
        g.mgr.add_task(k.pid()).unwrap();
        kids.push(k);
    }
    for k in &kids {
        kill(Pid::from_raw(k.pid()), Signal::SIGKILL).unwrap();
    }
    // Not reaped yet: destroy must wait for the cgroup to empty (bounded) and succeed.
    let st = g.mgr.state();
    g.mgr.destroy().unwrap();
    assert_no_leak(&st);
    drop(kids);
    g.finish();
}

#[test]
fn cgroups_v1_kill_all_and_destroy_force() {
    let Some(_) = v1_layout("cgroups_v1_kill_all_and_destroy_force") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("killall")));
    g.mgr.create(None).unwrap();
    let mut sh = Busybox::spawn("sleep 1000 & sleep 1000 & wait");
    g.mgr.add_task(sh.pid()).unwrap();
    sh.go();
    assert!(wait_until(Duration::from_secs(5), || g
        .mgr
        .pids()
        .unwrap()
        .len()
        == 3));
    // A paused container stays paused when signalled with something else than SIGKILL.
    g.mgr.freeze().unwrap();
    g.mgr.kill_all(Signal::SIGCONT).unwrap();
    assert!(g.mgr.is_frozen().unwrap());
    let st = g.mgr.state();
    g.mgr.destroy_force().unwrap();
    assert_no_leak(&st);
    let status = sh.child.wait().unwrap();
    assert!(!status.success());
    g.finish();
}

#[test]
fn cgroups_v1_missing_controller_is_an_error_and_leaves_nothing() {
    let Some(layout) = v1_layout("cgroups_v1_missing_controller_is_an_error_and_leaves_nothing")
    else {
        return;
    };
    if layout.v1_mount("net_cls").is_some() {
        skip!("this host has net_cls: no missing v1 controller to ask for");
    }
    let path = unique_path("nonet");
    let mut mgr = manager(&path);
    let r = LinuxResourcesBuilder::default()
        .network(
            LinuxNetworkBuilder::default()
                .class_id(7u32)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = mgr.create(Some(&r)).unwrap_err().to_string();
    assert!(e.contains("net_cls") && e.contains("classID"), "{e}");
    for h in mgr.state().hierarchies {
        assert!(
            !h.dir.exists(),
            "{} created despite the error",
            h.dir.display()
        );
    }
}

#[test]
fn cgroups_v1_failed_write_rolls_back() {
    let Some(_) = v1_layout("cgroups_v1_failed_write_rolls_back") else {
        return;
    };
    let mut mgr = manager(&format!("{}/deep", unique_path("rollback")));
    let r = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("9999").build().unwrap())
        .build()
        .unwrap();
    let e = mgr.create(Some(&r)).unwrap_err().to_string();
    assert!(e.contains("cpuset.cpus"), "{e}");
    for h in mgr.state().hierarchies {
        assert!(!h.dir.exists(), "{} left behind", h.dir.display());
        assert!(!h.dir.parent().unwrap().exists(), "parent left behind");
    }
}

#[test]
fn cgroups_v1_hybrid_hugetlb_goes_to_cgroup2() {
    let Some(layout) = v1_layout("cgroups_v1_hybrid_hugetlb_goes_to_cgroup2") else {
        return;
    };
    let hugetlb_on_v2 = layout.mode == CgroupMode::Hybrid
        && layout.v1_mount("hugetlb").is_none()
        && std::fs::read_to_string(
            layout
                .v2
                .as_ref()
                .unwrap()
                .mount_point
                .join("cgroup.controllers"),
        )
        .map(|c| c.split_whitespace().any(|c| c == "hugetlb"))
        .unwrap_or(false);
    if !hugetlb_on_v2 || !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        skip!("not a hybrid host with hugetlb only on cgroup2 and 2MB pages");
    }
    let mut g = Guard::new(manager(&format!("{}/h", unique_path("huge"))));
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    g.mgr.create(Some(&r)).unwrap();
    let u = unified_dir(g.mgr.as_ref()).unwrap();
    assert_eq!(
        read_trim(&u.join("hugetlb.2MB.max")),
        (4u64 << 20).to_string()
    );
    let child = Busybox::spawn("sleep 1000");
    g.mgr.add_task(child.pid()).unwrap();
    assert!(g.mgr.stats().unwrap().hugetlb.contains_key("2MB"));
    drop(child);
    g.finish();
}

#[test]
fn cgroups_v1_relative_path_under_own_cgroup() {
    let Some(layout) = v1_layout("cgroups_v1_relative_path_under_own_cgroup") else {
        return;
    };
    let name = unique_path("rel").trim_start_matches('/').to_string();
    let path = CgroupPath::parse(Some(&name), "x", &CgroupOptions::default()).unwrap();
    let mut g = Guard::new(new_manager_in(&layout, &path, &CgroupOptions::default()).unwrap());
    g.mgr.create(None).unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_mem = own
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            c.split(',').any(|c| c == "memory").then(|| p.to_string())
        })
        .unwrap();
    let mem = dir_of(g.mgr.as_ref(), "memory").unwrap();
    let want = layout
        .v1_mount("memory")
        .unwrap()
        .mount_point
        .join(own_mem.trim_start_matches('/'))
        .join(&name);
    assert_eq!(mem, want);
    assert!(mem.is_dir());
    g.finish();
}

#[test]
fn cgroups_v1_default_path_is_the_id_under_own_cgroup() {
    let Some(_) = v1_layout("cgroups_v1_default_path_is_the_id_under_own_cgroup") else {
        return;
    };
    let id = unique_path("id").trim_start_matches('/').to_string();
    let mgr = new_manager(None, &id, &CgroupOptions::default()).unwrap();
    assert_eq!(mgr.state().path, id);
}

#[test]
fn cgroups_v1_state_roundtrip_and_mounts() {
    let Some(layout) = v1_layout("cgroups_v1_state_roundtrip_and_mounts") else {
        return;
    };
    let mut g = Guard::new(manager(&unique_path("state")));
    g.mgr.create(None).unwrap();
    let st = g.mgr.state();
    let json = serde_json::to_string(&st).unwrap();
    let back: rruntime::cgroups::CgroupState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    let again = rruntime::cgroups::from_state(&back, &CgroupOptions::default()).unwrap();
    assert_eq!(again.pids().unwrap(), Vec::<i32>::new());
    let mounts = g.mgr.mounts();
    assert_eq!(mounts.len(), st.hierarchies.len());
    let mem = mounts.iter().find(|m| m.options == "memory").unwrap();
    assert_eq!(mem.fstype, "cgroup");
    assert_eq!(mem.mount_point_name, "memory");
    assert!(mem.host_dir.is_dir());
    if layout.mode == CgroupMode::Hybrid {
        assert!(mounts
            .iter()
            .any(|m| m.fstype == "cgroup2" && m.mount_point_name == "unified"));
    }
    assert!(g.mgr.cgroup_fd().unwrap().is_none());
    let stats = serde_json::to_value(g.mgr.stats().unwrap()).unwrap();
    for k in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(stats.get(k).is_some(), "stats lack {k}: {stats}");
    }
    drop(again);
    g.finish();
}

#[test]
fn cgroups_v1_cpuset_fills_an_empty_preexisting_parent() {
    let Some(layout) = v1_layout("cgroups_v1_cpuset_fills_an_empty_preexisting_parent") else {
        return;
    };
    let Some(cs) = layout.v1_mount("cpuset") else {
        skip!("no v1 cpuset hierarchy");
    };
    let top = unique_path("cpusetpre");
    // Another runtime made this directory but has not set cpus/mems yet.
    let pre = cs.mount_point.join(top.trim_start_matches('/'));
    std::fs::create_dir(&pre).unwrap();
    assert_eq!(read_trim(&pre.join("cpuset.cpus")), "");
    let mut g = Guard::new(manager(&format!("{top}/c")));
    g.extra_dirs.push(pre.clone());
    g.mgr.create(None).unwrap();
    let child = Busybox::spawn("sleep 1000");
    g.mgr
        .add_task(child.pid())
        .expect("add_task into a nested cpuset");
    assert!(!read_trim(&pre.join("cpuset.cpus")).is_empty());
    drop(child);
    g.mgr.destroy().unwrap();
    assert!(pre.is_dir());
    g.finish();
}

// ---- a fake pure-v1 tree: controllers this host lacks, exact file contents ----------------

struct FakeV1 {
    root: PathBuf,
}

impl FakeV1 {
    const HIERARCHIES: &'static [(&'static str, &'static [&'static str])] = &[
        (
            "memory",
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.kmem.tcp.limit_in_bytes",
                "memory.swappiness",
                "memory.oom_control",
                "memory.use_hierarchy",
            ],
        ),
        (
            "cpu,cpuacct",
            &[
                "cpu.shares",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us",
                "cpu.rt_runtime_us",
                "cpu.rt_period_us",
                "cpu.idle",
            ],
        ),
        (
            "blkio",
            &[
                "blkio.bfq.weight",
                "blkio.bfq.weight_device",
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
            ],
        ),
        ("hugetlb", &["hugetlb.2MB.limit_in_bytes"]),
        (
            "net_cls,net_prio",
            &["net_cls.classid", "net_prio.ifpriomap"],
        ),
        ("rdma", &["rdma.max"]),
        (
            "devices",
            &["devices.allow", "devices.deny", "devices.list"],
        ),
    ];

    fn new(tag: &str) -> FakeV1 {
        let root =
            std::env::temp_dir().join(format!("rruntime-fake-v1-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (h, files) in Self::HIERARCHIES {
            let d = root.join(h).join("ctr");
            std::fs::create_dir_all(&d).unwrap();
            for f in *files {
                std::fs::write(d.join(f), "").unwrap();
            }
        }
        std::fs::write(root.join("devices/ctr/devices.list"), "a *:* rwm\n").unwrap();
        FakeV1 { root }
    }

    fn layout(&self) -> Layout {
        Layout {
            mode: CgroupMode::V1,
            v1: Self::HIERARCHIES
                .iter()
                .map(|(h, _)| rruntime::cgroups::detect::V1Mount {
                    controllers: h.split(',').map(str::to_string).collect(),
                    mount_point: self.root.join(h),
                    root: "/".into(),
                    noprefix: false,
                })
                .collect(),
            v2: None,
        }
    }

    fn manager(&self) -> Box<dyn CgroupManager> {
        new_manager_in(
            &self.layout(),
            &CgroupPath::Absolute("/ctr".into()),
            &CgroupOptions::default(),
        )
        .unwrap()
    }

    fn read(&self, h: &str, f: &str) -> String {
        std::fs::read_to_string(self.root.join(h).join("ctr").join(f)).unwrap()
    }
}

impl Drop for FakeV1 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn cgroups_v1_fake_tree_writes_every_controller() {
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxInterfacePriorityBuilder, LinuxRdmaBuilder,
        LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };
    let t = FakeV1::new("all");
    let mgr = t.manager();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64 << 20)
                .swap(200i64 << 20)
                .reservation(50i64 << 20)
                .kernel(1i64 << 20)
                .kernel_tcp(2i64 << 20)
                .swappiness(10u64)
                .disable_oom_killer(true)
                .use_hierarchy(true)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(20_000i64)
                .period(100_000u64)
                .realtime_runtime(950_000i64)
                .realtime_period(1_000_000u64)
                .idle(1i64)
                .build()
                .unwrap(),
        )
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(300u16)
                .weight_device(vec![LinuxWeightDeviceBuilder::default()
                    .major(8)
                    .minor(0)
                    .weight(400u16)
                    .build()
                    .unwrap()])
                .throttle_read_bps_device(vec![
                    LinuxThrottleDeviceBuilder::default()
                        .major(8)
                        .minor(0)
                        .rate(1000u64)
                        .build()
                        .unwrap(),
                    LinuxThrottleDeviceBuilder::default()
                        .major(8)
                        .minor(16)
                        .rate(2000u64)
                        .build()
                        .unwrap(),
                ])
                .build()
                .unwrap(),
        )
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .network(
            LinuxNetworkBuilder::default()
                .class_id(0x100001u32)
                .priorities(vec![LinuxInterfacePriorityBuilder::default()
                    .name("eth0")
                    .priority(5u32)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .rdma(std::collections::HashMap::from([(
            "mlx5_0".to_string(),
            LinuxRdmaBuilder::default()
                .hca_handles(3u32)
                .hca_objects(100u32)
                .build()
                .unwrap(),
        )]))
        .devices(vec![
            dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
            dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            dev_rule(true, LinuxDeviceType::C, None, None, "m"),
        ])
        .build()
        .unwrap();
    mgr.apply(&r).unwrap();
    assert_eq!(
        t.read("memory", "memory.limit_in_bytes"),
        (100u64 << 20).to_string()
    );
    assert_eq!(
        t.read("memory", "memory.memsw.limit_in_bytes"),
        (200u64 << 20).to_string()
    );
    assert_eq!(
        t.read("memory", "memory.soft_limit_in_bytes"),
        (50u64 << 20).to_string()
    );
    assert_eq!(
        t.read("memory", "memory.kmem.tcp.limit_in_bytes"),
        (2u64 << 20).to_string()
    );
    assert_eq!(t.read("memory", "memory.swappiness"), "10");
    assert_eq!(t.read("memory", "memory.oom_control"), "1");
    assert_eq!(t.read("memory", "memory.use_hierarchy"), "1");
    assert_eq!(t.read("cpu,cpuacct", "cpu.shares"), "512");
    assert_eq!(t.read("cpu,cpuacct", "cpu.cfs_quota_us"), "20000");
    assert_eq!(t.read("cpu,cpuacct", "cpu.cfs_period_us"), "100000");
    assert_eq!(t.read("cpu,cpuacct", "cpu.rt_runtime_us"), "950000");
    assert_eq!(t.read("cpu,cpuacct", "cpu.rt_period_us"), "1000000");
    assert_eq!(t.read("cpu,cpuacct", "cpu.idle"), "1");
    // No blkio.weight (CFQ): BFQ's files.
    assert_eq!(t.read("blkio", "blkio.bfq.weight"), "300");
    assert_eq!(t.read("blkio", "blkio.bfq.weight_device"), "8:0 400");
    // One open, one write(2) per device.
    assert_eq!(
        t.read("blkio", "blkio.throttle.read_bps_device"),
        "8:0 10008:16 2000"
    );
    assert_eq!(
        t.read("hugetlb", "hugetlb.2MB.limit_in_bytes"),
        (4u64 << 20).to_string()
    );
    assert_eq!(t.read("net_cls,net_prio", "net_cls.classid"), "1048577");
    assert_eq!(t.read("net_cls,net_prio", "net_prio.ifpriomap"), "eth0 5");
    assert_eq!(
        t.read("rdma", "rdma.max"),
        "mlx5_0 hca_handle=3 hca_object=100"
    );
    // From allow-all: reset with deny-all, then the folded exceptions.
    assert_eq!(t.read("devices", "devices.deny"), "a");
    assert_eq!(t.read("devices", "devices.allow"), "c 1:3 rwmc *:* m");
}

#[test]
fn cgroups_v1_fake_tree_rejections() {
    let t = FakeV1::new("reject");
    let mgr = t.manager();
    let unified = LinuxResourcesBuilder::default()
        .unified(std::collections::HashMap::from([(
            "memory.high".to_string(),
            "1".to_string(),
        )]))
        .build()
        .unwrap();
    let e = mgr.apply(&unified).unwrap_err().to_string();
    assert!(e.contains("cannot use unified on cgroup v1"), "{e}");
    let shares = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().shares(1u64).build().unwrap())
        .build()
        .unwrap();
    let e = mgr.apply(&shares).unwrap_err().to_string();
    assert!(e.contains("minimum allowed cpu-shares is 2"), "{e}");
    let swappiness = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .swappiness(101u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = mgr.apply(&swappiness).unwrap_err().to_string();
    assert!(e.contains("swappiness"), "{e}");
    let pids = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .build()
        .unwrap();
    let e = mgr.apply(&pids).unwrap_err().to_string();
    assert!(e.contains("pids cgroup controller is not mounted"), "{e}");
    let hole = LinuxResourcesBuilder::default()
        .devices(vec![
            dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
            dev_rule(true, LinuxDeviceType::C, None, None, "m"),
            dev_rule(false, LinuxDeviceType::C, Some(1), Some(3), "m"),
        ])
        .build()
        .unwrap();
    let e = mgr.apply(&hole).unwrap_err().to_string();
    assert!(e.contains("punch a hole"), "{e}");
    // Unchanged device rules write nothing.
    std::fs::write(t.root.join("devices/ctr/devices.list"), "c 1:3 rwm\n").unwrap();
    let same = LinuxResourcesBuilder::default()
        .devices(vec![
            dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
            dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        ])
        .build()
        .unwrap();
    mgr.apply(&same).unwrap();
    assert_eq!(t.read("devices", "devices.allow"), "");
    assert_eq!(t.read("devices", "devices.deny"), "");
    // A narrower set only removes the difference.
    let narrower = LinuxResourcesBuilder::default()
        .devices(vec![
            dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
            dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "r"),
        ])
        .build()
        .unwrap();
    mgr.apply(&narrower).unwrap();
    assert_eq!(t.read("devices", "devices.deny"), "c 1:3 wm");
    assert_eq!(t.read("devices", "devices.allow"), "");
}
