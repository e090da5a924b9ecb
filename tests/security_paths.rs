//! Security properties of the spawn path: mount destinations and device paths resolved inside
//! the rootfs (symlinks and `..` cannot lead onto the host, CVE-2021-30465 class), a
//! non-dumpable init until execve (CVE-2019-5736 class), a cwd that cannot point outside the
//! container through a leaked fd (CVE-2024-21626 class), private state directories.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Host paths the tests aim symlinks at; removed (and unmounted) on drop.
struct HostPaths(Vec<PathBuf>);
impl Drop for HostPaths {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn host_untouched(p: &std::path::Path) {
    assert!(!p.exists(), "{} was created on the host", p.display());
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(p.to_str().unwrap()),
        "a mount appeared at {} on the host",
        p.display()
    );
}

/// Absolute and relative symlinks in the rootfs pointing out of it, and `..` in destinations:
/// mounts, bind targets and device nodes land inside the rootfs, nothing on the host.
#[test]
fn symlinks_and_dotdot_stay_inside_the_rootfs() {
    require_root!();
    let env = Env::new();
    let names: Vec<String> = (0..5).map(|i| unique(&format!("rrt-escape{i}"))).collect();
    let host: Vec<PathBuf> = names
        .iter()
        .map(|n| PathBuf::from("/tmp").join(n))
        .collect();
    let _cleanup = HostPaths(host.clone());
    let file = env.tmp.join("hostfile");
    std::fs::write(&file, "bound\n").unwrap();
    let script = format!(
        "ls -d /tmp/{0}/inner /tmp/{1}/inner /tmp/{2} /tmp/{3} /tmp/{4}/dev0; cat /tmp/{3}; \
         echo '== mi'; cat /proc/self/mountinfo",
        names[0], names[1], names[2], names[3], names[4]
    );
    let mut cfg = base_config(&["sh", "-c", &script]);
    add_mount(
        &mut cfg,
        json!({"destination": "/evil-abs/inner", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/evil-rel/inner", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": format!("/../../../../../../tmp/{}", names[2]), "type": "tmpfs", "source": "tmpfs"}),
    );
    add_bind(&mut cfg, &file, "/evil-file", &["bind", "ro"]);
    cfg["linux"]["devices"] = json!([
        {"path": "/evil-dev/dev0", "type": "c", "major": 1, "minor": 3}
    ]);
    let b = env.bundle(&cfg);
    let r = b.rootfs();
    let up = "../".repeat(12);
    std::os::unix::fs::symlink(format!("/{up}tmp/{}", names[0]), r.join("evil-abs")).unwrap();
    std::os::unix::fs::symlink(format!("{up}tmp/{}", names[1]), r.join("evil-rel")).unwrap();
    std::os::unix::fs::symlink(format!("/{up}tmp/{}", names[3]), r.join("evil-file")).unwrap();
    std::os::unix::fs::symlink(format!("/{up}tmp/{}", names[4]), r.join("evil-dev")).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.assert_no_leaks(&id, Some(&b));
    for p in &host {
        host_untouched(p);
    }
    // Inside, they are where the symlinks lead within the rootfs.
    assert!(out.contains("bound\n"), "{out}");
    let mi = &sections(&out)["mi"];
    assert_eq!(
        mount_at(mi, &format!("/tmp/{}/inner", names[0])).fstype,
        "tmpfs"
    );
    assert_eq!(
        mount_at(mi, &format!("/tmp/{}/inner", names[1])).fstype,
        "tmpfs"
    );
    assert_eq!(mount_at(mi, &format!("/tmp/{}", names[2])).fstype, "tmpfs");
    assert!(r.join(format!("tmp/{}/dev0", names[4])).exists());
}

/// Runs `readlink /proc/<pid>/exe` without CAP_SYS_PTRACE (dropped from the bounding set
/// before exec, so root's recomputed capabilities lack it): succeeds only for a dumpable
/// process of the same uid.
fn exe_readable_without_ptrace(pid: i32) -> bool {
    let mut c = std::process::Command::new(BUSYBOX);
    c.args(["readlink", &format!("/proc/{pid}/exe")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_CAPBSET_DROP, 19 /* CAP_SYS_PTRACE */, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.status().unwrap().success()
}

/// The created init (still the runtime's image) is not dumpable: its /proc/<pid>/exe cannot be
/// opened without CAP_SYS_PTRACE; after execve the container process is a normal process.
#[test]
fn init_is_not_dumpable_until_exec() {
    require_root!();
    let env = Env::new();
    // Control: a plain dumpable root process is readable this way.
    // (Without CAP_SYS_PTRACE the target's capabilities must also be a subset of the
    // caller's, so the control drops it as well.)
    let mut c = std::process::Command::new("sleep");
    c.arg("1000");
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_CAPBSET_DROP, 19, 0, 0, 0);
            Ok(())
        });
    }
    let ctl = ChildGuard::new(c.spawn().unwrap());
    assert!(exe_readable_without_ptrace(ctl.pid()), "control failed");
    drop(ctl);
    let out = env.scratch("out");
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "echo r > /out/r.tmp && mv /out/r.tmp /out/ready; exec sleep 1000",
    ]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let pid = env.pid(&id);
    assert!(
        !exe_readable_without_ptrace(pid),
        "the created init is dumpable: its /proc/pid/exe (the runtime) is reachable"
    );
    env.ok(&["start", &id]);
    wait_file(&out.join("ready"), 20);
    assert!(exe_readable_without_ptrace(pid));
    env.finish(&id, &b);
}

/// cwd set to /proc/self/fd/N (a runtime fd leaked into the init would point at a host
/// directory): create fails, or the process's cwd is inside the container — never outside.
#[test]
fn cwd_through_proc_fd_cannot_escape() {
    require_root!();
    let env = Env::new();
    for n in 3..10 {
        let mut cfg = base_config(&[
            "sh",
            "-c",
            "readlink /proc/self/cwd; ls /proc/self/cwd/ | head -3",
        ]);
        cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let b = env.bundle(&cfg);
        let id = env.id();
        let o = env.rt(&["run", "--bundle", b.path(), &id]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_no_panic(&err);
        if o.status.success() {
            assert!(!out.contains("unreachable"), "fd {n}: cwd outside: {out}");
            assert!(!out.contains(env.root.to_str().unwrap()), "fd {n}: {out}");
        } else {
            assert_one_line_error(&err);
        }
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// The state root is private (0700); container directories are 0711.
#[test]
fn state_directories_are_private() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["true"]));
    let id = env.id();
    env.create(&b, &id);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&env.root), 0o700);
    assert_eq!(mode(&env.root.join(&id)), 0o711);
    assert_eq!(
        mode(&env.root.join(&id).join("state.json")) & 0o077,
        0,
        "state.json readable by others"
    );
    env.finish(&id, &b);
}
