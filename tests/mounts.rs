//! The container's filesystem: bind/rbind mounts and their options, tmpfs, proc, sysfs, devpts,
//! mqueue, cgroup, overlay, tmpcopyup, propagation, rootfsPropagation, root.readonly, default
//! and configured devices, /dev symlinks, maskedPaths, readonlyPaths, --no-pivot.
mod common;
use common::*;
use serde_json::json;

/// `echo ok-NAME` if the command succeeds, `fail-NAME` if not.
fn probe(name: &str, cmd: &str) -> String {
    format!("if {cmd} 2>/dev/null; then echo ok-{name}; else echo fail-{name}; fi; ")
}

fn host_data(env: &Env) -> std::path::PathBuf {
    let d = env.scratch("data");
    std::fs::write(d.join("f"), "hello\n").unwrap();
    std::fs::write(d.join("script"), "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("script"), std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::sys::stat::mknod(
        &d.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    d
}

/// ro, rw, noexec, nosuid, nodev on bind mounts: flags in mountinfo and their behaviour.
#[test]
fn bind_mount_options() {
    require_root!();
    let env = Env::new();
    let data = host_data(&env);
    let script = [
        "cat /ro/f;",
        &probe("ro-write", "touch /ro/x"),
        &probe("rw-write", "touch /rw/created"),
        &probe("noexec-exec", "/noexec/script"),
        &probe("rw-exec", "/rw/script"),
        &probe("nodev-open", "echo x > /nodev/null"),
        &probe("rw-dev-open", "echo x > /rw/null"),
        "echo '== mi'; cat /proc/self/mountinfo",
    ]
    .concat();
    let out = env.sh(&script, |c| {
        add_bind(c, &data, "/ro", &["rbind", "ro"]);
        add_bind(c, &data, "/rw", &["rbind", "rw"]);
        add_bind(c, &data, "/noexec", &["rbind", "noexec"]);
        add_bind(c, &data, "/nodev", &["bind", "nosuid", "nodev"]);
    });
    assert!(out.starts_with("hello\n"), "{out}");
    for want in [
        "fail-ro-write",
        "ok-rw-write",
        "fail-noexec-exec",
        "ok-rw-exec",
        "fail-nodev-open",
        "ok-rw-dev-open",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(
        data.join("created").exists(),
        "rw write did not reach the host"
    );
    assert!(!data.join("x").exists());
    let mi = &sections(&out)["mi"];
    assert!(mount_at(mi, "/ro").has_opt("ro"));
    assert!(mount_at(mi, "/rw").has_opt("rw"));
    assert!(mount_at(mi, "/noexec").has_opt("noexec"));
    let nd = mount_at(mi, "/nodev");
    assert!(nd.has_opt("nodev") && nd.has_opt("nosuid"), "{nd:?}");
    // The host's view is untouched.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(data.to_str().unwrap()));
}

/// bind does not take submounts along, rbind does; rro makes submounts read-only too.
#[test]
fn bind_rbind_and_rro() {
    require_root!();
    let env = Env::new();
    let tree = env.scratch("tree");
    std::fs::create_dir(tree.join("sub")).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &tree.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    std::fs::write(tree.join("sub/inner"), "inner\n").unwrap();
    let script = [
        &probe("bind-sub", "test -e /b/sub/inner")[..],
        &probe("rbind-sub", "test -e /rb/sub/inner"),
        &probe("rro-top-write", "touch /rro/x"),
        &probe("rro-sub-write", "touch /rro/sub/x"),
        &probe("ro-top-write", "touch /ro/x"),
    ]
    .concat();
    let out = env.sh(&script, |c| {
        add_bind(c, &tree, "/b", &["bind"]);
        add_bind(c, &tree, "/rb", &["rbind"]);
        add_bind(c, &tree, "/rro", &["rbind", "rro"]);
        add_bind(c, &tree, "/ro", &["rbind", "ro"]);
    });
    nix::mount::umount2(&tree.join("sub"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    for want in [
        "fail-bind-sub",
        "ok-rbind-sub",
        "fail-rro-top-write",
        "fail-rro-sub-write",
        "fail-ro-top-write",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
}

/// A bind-mounted file, a relative source (relative to the bundle) and a destination whose
/// parents do not exist yet.
#[test]
fn bind_file_relative_source_and_new_parents() {
    require_root!();
    let env = Env::new();
    let file = env.tmp.join("hostfile");
    std::fs::write(&file, "from-host\n").unwrap();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "cat /etc/hostfile /deep/new/dir/f; test -f /etc/hostfile && echo is-file",
    ]);
    add_bind(&mut cfg, &file, "/etc/hostfile", &["bind", "ro"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/deep/new/dir", "type": "bind", "source": "reldata", "options": ["rbind"]}),
    );
    let b = env.bundle(&cfg);
    std::fs::create_dir(b.dir.join("reldata")).unwrap();
    std::fs::write(b.dir.join("reldata/f"), "relative\n").unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from-host\nrelative\nis-file\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// tmpfs with size, mode, uid, gid and flags; a read-only tmpfs.
#[test]
fn tmpfs_options() {
    require_root!();
    let env = Env::new();
    let script = [
        "stat -c '%a %u %g' /t;",
        &probe("fill", "dd if=/dev/zero of=/t/big bs=1024 count=2048"),
        "rm -f /t/big;",
        &probe("small", "dd if=/dev/zero of=/t/small bs=1024 count=16"),
        &probe("tro-write", "touch /tro/x"),
        "echo '== mi'; cat /proc/self/mountinfo",
    ]
    .concat();
    let out = env.sh(&script, |c| {
        add_mount(
            c,
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770", "uid=1000", "gid=1000"]}),
        );
        add_mount(
            c,
            json!({"destination": "/tro", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}),
        );
    });
    assert!(out.starts_with("1770 1000 1000\n"), "{out}");
    assert!(out.contains("fail-fill"), "{out}");
    assert!(out.contains("ok-small"), "{out}");
    assert!(out.contains("fail-tro-write"), "{out}");
    let mi = &sections(&out)["mi"];
    let t = mount_at(mi, "/t");
    assert_eq!(t.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(t.has_opt(o), "{o}: {t:?}");
    }
    for o in ["size=1024k", "mode=1770", "uid=1000", "gid=1000"] {
        assert!(t.has_super(o), "{o}: {t:?}");
    }
    assert!(mount_at(mi, "/tro").has_opt("ro"));
}

/// proc, sysfs (read-only), devpts (newinstance, ptmxmode, mode, gid), mqueue, /dev/shm.
#[test]
fn special_filesystems() {
    require_root!();
    let env = Env::new();
    let script = [
        "cat /proc/1/cmdline | tr '\\0' ' '; echo;",
        &probe("sys-write", "touch /sys/kernel/x"),
        "stat -c '%F %t:%T' /dev/pts/ptmx;",
        "stat -c 'shm %a' /dev/shm;",
        "echo '== mi'; cat /proc/self/mountinfo",
    ]
    .concat();
    let out = env.sh(&script, |c| {
        add_mount(
            c,
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                   "options": ["nosuid", "noexec", "nodev"]}),
        );
    });
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("sh -c "),
        "pid 1 is not the container's sh: {out}"
    );
    assert!(out.contains("fail-sys-write"), "{out}");
    assert!(out.contains("character special file 5:2"), "{out}");
    let mi = &sections(&out)["mi"];
    assert_eq!(mount_at(mi, "/proc").fstype, "proc");
    let sys = mount_at(mi, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(sys.has_opt("ro") && sys.has_opt("nosuid"), "{sys:?}");
    let pts = mount_at(mi, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for o in ["ptmxmode=666", "mode=620", "gid=5"] {
        assert!(pts.has_super(o), "{o}: {pts:?}");
    }
    let mq = mount_at(mi, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    assert!(mq.has_opt("nodev") && mq.has_opt("noexec"), "{mq:?}");
    let shm = mount_at(mi, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(out.contains("shm 1777\n"), "{out}");
    assert_eq!(mount_at(mi, "/dev").fstype, "tmpfs");
}

/// The `cgroup` mount shows the container's own cgroup (read-only), in every hierarchy.
#[test]
fn cgroup_mount_content() {
    require_root!();
    let env = Env::new();
    let pure_v2 = host().is_v2();
    // v2: the memory limit shows in memory.max where the host has the memory controller.
    let v2_mem = host().has("memory");
    for cgroupns in [true, false] {
        let script = if pure_v2 {
            [
                "cat /sys/fs/cgroup/cgroup.procs; echo '== mem';",
                "cat /sys/fs/cgroup/memory.max; echo '== ls'; ls /sys/fs/cgroup;",
                &probe("cg-write", "mkdir /sys/fs/cgroup/x"),
                "echo '== mi'; cat /proc/self/mountinfo",
            ]
            .concat()
        } else {
            [
                "cat /sys/fs/cgroup/pids/cgroup.procs; echo '== mem';",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo '== ls'; ls /sys/fs/cgroup;",
                &probe("cg-write", "mkdir /sys/fs/cgroup/pids/x"),
                "echo '== mi'; cat /proc/self/mountinfo",
            ]
            .concat()
        };
        let out = env.sh(&script, |c| {
            add_mount(
                c,
                json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
            );
            c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
            if cgroupns {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "cgroup"}));
            }
        });
        let s = sections(&out);
        // The container's own cgroup: its init (pid 1) is in it.
        let procs: Vec<&str> = out.lines().take_while(|l| !l.starts_with("==")).collect();
        assert!(procs.contains(&"1"), "cgroupns={cgroupns}: {out}");
        let ls = &s["ls"];
        let mi = &s["mi"];
        // Read-only: nothing can be created in it.
        assert!(out.contains("fail-cg-write"), "{out}");
        if pure_v2 {
            assert!(ls.contains("cgroup.procs"), "{ls}");
            if v2_mem {
                assert_eq!(s["mem"].lines().next(), Some("67108864"), "{out}");
            }
            let m = mount_at(mi, "/sys/fs/cgroup");
            assert_eq!(m.fstype, "cgroup2", "{out}");
            assert!(m.has_opt("ro"), "{out}");
        } else {
            assert_eq!(s["mem"].lines().next(), Some("67108864"), "{out}");
            for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let name = h.file_name().to_string_lossy().into_owned();
                assert!(ls.lines().any(|l| l == name), "{name} missing: {ls}");
            }
            assert!(mount_at(mi, "/sys/fs/cgroup/pids").has_opt("ro"));
            assert_eq!(mount_at(mi, "/sys/fs/cgroup/memory").fstype, "cgroup");
        }
    }
}

/// Propagation options of a mount and linux.rootfsPropagation show in mountinfo.
#[test]
fn mount_propagation_options() {
    require_root!();
    let env = Env::new();
    let data = env.scratch("data");
    let out = env.sh("cat /proc/self/mountinfo", |c| {
        add_bind(c, &data, "/shared", &["rbind", "rshared"]);
        add_bind(c, &data, "/private", &["rbind", "rprivate"]);
        add_bind(c, &data, "/unbindable", &["rbind", "runbindable"]);
        add_bind(c, &data, "/slave", &["rbind", "rslave"]);
    });
    let m = mount_at(&out, "/shared");
    assert!(m.is_shared(), "{m:?}");
    let m = mount_at(&out, "/private");
    assert!(
        !m.is_shared() && !m.is_slave() && !m.is_unbindable(),
        "{m:?}"
    );
    let m = mount_at(&out, "/unbindable");
    assert!(m.is_unbindable(), "{m:?}");
    let m = mount_at(&out, "/slave");
    assert!(!m.is_shared(), "{m:?}");
}

#[test]
fn rootfs_propagation_values() {
    require_root!();
    let env = Env::new();
    for (prop, check) in [
        ("shared", "shared"),
        ("rshared", "shared"),
        ("private", "private"),
        ("rprivate", "private"),
        ("slave", "notshared"),
        ("rslave", "notshared"),
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
    ] {
        let mut cfg = base_config(&["cat", "/proc/self/mountinfo"]);
        cfg["linux"]["rootfsPropagation"] = json!(prop);
        let o = env.run(&cfg);
        assert_eq!(o.code, Some(0), "{prop}: {}", o.stderr);
        let root = mount_at(&o.stdout, "/");
        let ok = match check {
            "shared" => root.is_shared(),
            "private" => !root.is_shared() && !root.is_slave() && !root.is_unbindable(),
            "notshared" => !root.is_shared(),
            "unbindable" => root.is_unbindable(),
            _ => unreachable!(),
        };
        assert!(ok, "rootfsPropagation {prop}: {root:?}");
    }
}

/// root.readonly: the root is read-only (EROFS) while /dev, /proc, /tmp mounts stay usable.
#[test]
fn root_readonly() {
    require_root!();
    let env = Env::new();
    let script = [
        &probe("root-write", "touch /newfile")[..],
        "touch /x 2>&1 | grep -q 'Read-only file system' && echo erofs;",
        &probe("dev-write", "touch /dev/x"),
        &probe("shm-write", "touch /dev/shm/x"),
        "echo '== mi'; cat /proc/self/mountinfo",
    ]
    .concat();
    let out = env.sh(&script, |c| c["root"]["readonly"] = json!(true));
    for want in ["fail-root-write", "erofs", "ok-dev-write", "ok-shm-write"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(mount_at(&sections(&out)["mi"], "/").has_opt("ro"));
    // And read-write when not asked.
    let out = env.sh(&probe("root-write", "touch /newfile"), |_| {});
    assert!(out.contains("ok-root-write"), "{out}");
}

/// The default devices (node type, numbers, mode, owner), /dev/ptmx → pts/ptmx, the /dev
/// symlinks, and that the devices work.
#[test]
fn default_devices_and_symlinks() {
    require_root!();
    let env = Env::new();
    let script = [
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done;",
        "for l in ptmx fd stdin stdout stderr; do echo /dev/$l $(readlink /dev/$l); done;",
        "echo x > /dev/null && echo null-ok;",
        "echo zero $(head -c 4 /dev/zero | wc -c);",
        "echo urandom $(head -c 8 /dev/urandom | wc -c);",
        "echo random $(head -c 8 /dev/random | wc -c);",
        "echo x 2>/dev/null > /dev/full || echo full-enospc;",
        "ls /dev/fd/ > /dev/null && echo fd-ok;",
        // Last: the shell's own stdout offset would overwrite what another open file wrote.
        "echo via-stdout >> /dev/stdout;",
    ]
    .concat();
    let out = env.sh(&script, |_| {});
    for want in [
        "/dev/null character special file 1:3 666 0:0",
        "/dev/zero character special file 1:5 666 0:0",
        "/dev/full character special file 1:7 666 0:0",
        "/dev/random character special file 1:8 666 0:0",
        "/dev/urandom character special file 1:9 666 0:0",
        "/dev/tty character special file 5:0 666 0:0",
        "/dev/ptmx pts/ptmx",
        "/dev/fd /proc/self/fd",
        "/dev/stdin /proc/self/fd/0",
        "/dev/stdout /proc/self/fd/1",
        "/dev/stderr /proc/self/fd/2",
        "null-ok",
        "zero 4",
        "urandom 8",
        "random 8",
        "full-enospc",
        "via-stdout",
        "fd-ok",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} missing:\n{out}");
    }
}

/// linux.devices: char, block and fifo nodes with the configured numbers, mode and owner;
/// an allowed device can be used, one the device cgroup denies cannot be opened.
#[test]
fn configured_devices() {
    require_root!();
    let env = Env::new();
    let script = [
        "stat -c '%n %F %t:%T %a %u:%g' /dev/mydev /dev/sub/blk /dev/denied;",
        "stat -c '%n %F %a' /dev/myfifo;",
        "echo zero $(head -c 3 /dev/mydev | wc -c);",
        &probe("denied-open", "head -c 1 /dev/denied"),
    ]
    .concat();
    let out = env.sh(&script, |c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1000, "gid": 1000},
            {"path": "/dev/sub/blk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600},
            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
            {"path": "/dev/denied", "type": "c", "major": 1, "minor": 1, "fileMode": 0o666}
        ]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
        ]);
    });
    for want in [
        "/dev/mydev character special file 1:5 640 1000:1000",
        "/dev/sub/blk block special file 7:0 600 0:0",
        "/dev/denied character special file 1:1 666 0:0",
        "/dev/myfifo fifo 620",
        "zero 3",
        "fail-denied-open",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} missing:\n{out}");
    }
}

/// maskedPaths: a file reads empty (it is /dev/null), a directory is an empty read-only
/// tmpfs; paths that do not exist are skipped. readonlyPaths: reads work, writes fail.
#[test]
fn masked_and_readonly_paths() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        &[
            "echo version $(wc -c < /proc/version) $(stat -c %t:%T /proc/version);",
            "echo firmware $(ls -A /sys/firmware | wc -l);",
            "echo mdir $(ls -A /masked-dir | wc -l);",
            "echo mfile $(wc -c < /masked-file);",
            &probe("mdir-write", "touch /masked-dir/x"),
            "cat /ro-dir/f;",
            &probe("ro-dir-write", "touch /ro-dir/g"),
            &probe("proc-sys-write", "echo 1 > /proc/sys/kernel/ns_last_pid"),
            &probe("sysrq-write", "echo h > /proc/sysrq-trigger"),
            "echo '== mi'; cat /proc/self/mountinfo",
        ]
        .concat(),
    ]);
    cfg["linux"]["maskedPaths"] = json!([
        "/proc/version",
        "/sys/firmware",
        "/masked-dir",
        "/masked-file",
        "/does/not/exist"
    ]);
    cfg["linux"]["readonlyPaths"] =
        json!(["/proc/sys", "/proc/sysrq-trigger", "/ro-dir", "/not/there"]);
    let b = env.bundle(&cfg);
    let r = b.rootfs();
    std::fs::create_dir(r.join("masked-dir")).unwrap();
    std::fs::write(r.join("masked-dir/secret"), "s").unwrap();
    std::fs::write(r.join("masked-file"), "secret\n").unwrap();
    std::fs::create_dir(r.join("ro-dir")).unwrap();
    std::fs::write(r.join("ro-dir/f"), "readable\n").unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.assert_no_leaks(&id, Some(&b));
    for want in [
        "version 0 1:3",
        "firmware 0",
        "mdir 0",
        "mfile 0",
        "fail-mdir-write",
        "readable",
        "fail-ro-dir-write",
        "fail-proc-sys-write",
        "fail-sysrq-write",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} missing:\n{out}");
    }
    let mi = &sections(&out)["mi"];
    let md = mount_at(mi, "/masked-dir");
    assert!(md.fstype == "tmpfs" && md.has_opt("ro"), "{md:?}");
    assert!(mount_at(mi, "/proc/sys").has_opt("ro"));
    // Nothing in the image was changed.
    assert_eq!(
        std::fs::read_to_string(r.join("masked-file")).unwrap(),
        "secret\n"
    );
    assert!(r.join("masked-dir/secret").exists());
}

/// tmpcopyup: a tmpfs over a directory starts with the directory's content; writes stay in
/// the tmpfs.
#[test]
fn tmpcopyup() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "head -1 /etc/passwd; ls /etc/sub; echo new > /etc/newfile && cat /etc/newfile; \
         echo '== mi'; cat /proc/self/mountinfo",
    ]);
    add_mount(
        &mut cfg,
        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]}),
    );
    let b = env.bundle(&cfg);
    std::fs::create_dir(b.rootfs().join("etc/sub")).unwrap();
    std::fs::write(b.rootfs().join("etc/sub/nested"), "n").unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with("root:x:0:0:root:/root:/bin/sh\nnested\nnew\n"),
        "{out}"
    );
    assert_eq!(mount_at(&sections(&out)["mi"], "/etc").fstype, "tmpfs");
    assert!(
        !b.rootfs().join("etc/newfile").exists(),
        "write reached the image"
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// An overlay mount from host directories.
#[test]
fn overlay_mount() {
    require_root!();
    let env = Env::new();
    let base = env.scratch("ovl");
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir(base.join(d)).unwrap();
    }
    std::fs::write(base.join("lower/from-lower"), "lower\n").unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        base.join("lower").display(),
        base.join("upper").display(),
        base.join("work").display()
    );
    let out = env.sh(
        "cat /ov/from-lower; echo new > /ov/created; echo '== mi'; cat /proc/self/mountinfo",
        |c| {
            add_mount(
                c,
                json!({"destination": "/ov", "type": "overlay", "source": "overlay", "options": [opts]}),
            )
        },
    );
    assert!(out.starts_with("lower\n"), "{out}");
    assert_eq!(mount_at(&sections(&out)["mi"], "/ov").fstype, "overlay");
    assert_eq!(read(&base.join("upper/created")), "new\n");
    assert!(!base.join("lower/created").exists());
}

/// --no-pivot (MS_MOVE + chroot) gives the same view of the rootfs.
#[test]
fn no_pivot() {
    require_root!();
    let env = Env::new();
    let cfg = base_config(&[
        "sh",
        "-c",
        "head -1 /etc/passwd; ls /; echo '== mi'; cat /proc/self/mountinfo",
    ]);
    let b = env.bundle(&cfg);
    std::fs::write(b.rootfs().join("marker"), "").unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--no-pivot", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("root:x:0:0:root:/root:/bin/sh\n"), "{out}");
    assert!(out.lines().any(|l| l == "marker"), "{out}");
    assert_eq!(mount_at(&sections(&out)["mi"], "/proc").fstype, "proc");
    env.assert_no_leaks(&id, Some(&b));
    // create --no-pivot too.
    let id = env.id();
    env.ok(&["create", "--no-pivot", "--bundle", b.path(), &id]);
    env.ok(&["start", &id]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 20: a tmpfs without `mode=` takes the mode of the directory it covers in the
/// rootfs, setgid bit included (runc ≥ 1.1.9); a `mode=` option still wins.
#[test]
fn tmpfs_takes_the_mount_point_mode_issue_22_item_20() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["sh", "-c", "stat -c '%a' /t /u /new"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/u", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/new", "type": "tmpfs", "source": "tmpfs"}),
    );
    let b = env.bundle(&cfg);
    use std::os::unix::fs::PermissionsExt;
    for d in ["t", "u"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
        std::fs::set_permissions(b.rootfs().join(d), std::fs::Permissions::from_mode(0o2710))
            .unwrap();
    }
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // /new did not exist: the kernel's default (1777).
    assert_eq!(out, "2710\n700\n1777\n");
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 21: `maskedPaths` duplicates are masked once, and all masked directories
/// share one read-only tmpfs (one superblock; runc 1.4.3).
#[test]
fn masked_dirs_share_one_tmpfs_and_duplicates_mask_once_issue_22_item_21() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["cat", "/proc/self/mountinfo"]);
    cfg["linux"]["maskedPaths"] = json!(["/m1", "/m2", "/m1", "/m3/", "/f", "/f"]);
    let b = env.bundle(&cfg);
    for d in ["m1", "m2", "m3"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
    }
    std::fs::write(b.rootfs().join("f"), "secret").unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let mi = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let at = |mp: &str| -> Vec<Vec<String>> {
        mi.lines()
            .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|f| f.get(4).map(String::as_str) == Some(mp))
            .collect()
    };
    for mp in ["/m1", "/m2", "/m3", "/f"] {
        assert_eq!(at(mp).len(), 1, "{mp} masked {} times:\n{mi}", at(mp).len());
    }
    let dev = |mp: &str| at(mp)[0][2].clone();
    assert_eq!(dev("/m1"), dev("/m2"), "{mi}");
    assert_eq!(dev("/m1"), dev("/m3"), "{mi}");
    assert!(at("/m2")[0][5].starts_with("ro"), "{mi}");
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 18: a bind mount's source may lie inside the rootfs, under a mount made
/// earlier in the list; it is resolved after the earlier mounts are done (runc), for a plain
/// bind and for an idmapped one.
#[test]
fn bind_source_under_an_earlier_mount_issue_22_item_18() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, 0, 0);
    std::fs::create_dir(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/hello"), "from data\n").unwrap();
    nix::unistd::chown(
        &data.join("sub/hello"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "cat /b/hello; stat -c '%u %g' /b/hello /c/hello",
    ]);
    let b = env.bundle(&cfg);
    // `rootfs/a/sub` exists only once /a is mounted (the rootfs' own /a is empty).
    let under = b.rootfs().join("a/sub");
    add_bind(&mut cfg, &data, "/a", &["bind"]);
    add_bind(&mut cfg, &under, "/b", &["bind", "ro"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/c", "type": "bind", "source": under, "options": ["bind", "idmap"],
               "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
               "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]}),
    );
    b.write_config(&cfg);
    std::fs::create_dir(b.rootfs().join("a")).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The idmapped mount shows on-disk 1000 as 0.
    assert_eq!(out, "from data\n1000 1000\n0 0\n");
    env.assert_no_leaks(&id, Some(&b));
}

/// A tmpfs mounted by the test (with `flags`) at a fresh directory; unmounted on drop.
struct TestTmpfs(std::path::PathBuf);

impl TestTmpfs {
    fn new(env: &Env, flags: nix::mount::MsFlags) -> TestTmpfs {
        let d = env.scratch("flags-src");
        nix::mount::mount(
            Some("tmpfs"),
            &d,
            Some("tmpfs"),
            flags,
            Some("mode=755,size=1m"),
        )
        .unwrap();
        TestTmpfs(d)
    }
}

impl Drop for TestTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// issue 22 item 19: the flags a bind mount's options name are applied, also when they clear
/// a flag the source has (`dev`, `suid`, `exec`, `symfollow`, the atime family); without
/// options the source's flags are kept; and a change the kernel refuses (a locked flag in a
/// user namespace) is an error, never silently kept (runc 1.4).
#[test]
fn bind_flags_that_clear_source_flags_are_applied_issue_22_item_19() {
    require_root!();
    use nix::mount::MsFlags;
    let env = Env::new();
    let nosymfollow = MsFlags::from_bits_retain(256);
    let src = TestTmpfs::new(
        &env,
        MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NOATIME
            | nosymfollow,
    );
    let mut cfg = base_config(&["cat", "/proc/self/mountinfo"]);
    let cases: &[(&str, &[&str])] = &[
        ("/keep", &["bind"]),
        ("/dev-on", &["bind", "dev"]),
        ("/suid-on", &["bind", "suid"]),
        ("/exec-on", &["bind", "exec"]),
        ("/symfollow-on", &["bind", "symfollow"]),
        ("/strictatime", &["bind", "strictatime"]),
        ("/rdev", &["rbind", "dev", "ro"]),
    ];
    for (dest, opts) in cases {
        add_bind(&mut cfg, &src.0, dest, opts);
    }
    let b = env.bundle(&cfg);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let mi = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.assert_no_leaks(&id, Some(&b));
    let keep = mount_at(&mi, "/keep");
    for f in ["nodev", "noexec", "nosuid", "noatime", "nosymfollow"] {
        assert!(keep.has_opt(f), "/keep lost {f}: {:?}", keep.opts);
    }
    for (mp, cleared) in [
        ("/dev-on", "nodev"),
        ("/suid-on", "nosuid"),
        ("/exec-on", "noexec"),
        ("/symfollow-on", "nosymfollow"),
        ("/strictatime", "noatime"),
        ("/rdev", "nodev"),
    ] {
        let m = mount_at(&mi, mp);
        assert!(!m.has_opt(cleared), "{mp} kept {cleared}: {:?}", m.opts);
    }
    assert!(mount_at(&mi, "/rdev").has_opt("ro"), "{mi}");
    assert!(!mount_at(&mi, "/strictatime").has_opt("relatime"), "{mi}");

    // In a user namespace the source's flags are locked: clearing one is refused with an error
    // (today's fallback re-applied it silently); naming nothing that clears works.
    let userns = |cfg: &mut serde_json::Value| {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let m = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        cfg["linux"]["uidMappings"] = m.clone();
        cfg["linux"]["gidMappings"] = m;
    };
    let ro = TestTmpfs::new(&env, MsFlags::MS_RDONLY);
    for (source, opts) in [(&src.0, &["bind", "dev"][..]), (&ro.0, &["bind", "rw"][..])] {
        let mut cfg = base_config(&["true"]);
        userns(&mut cfg);
        add_bind(&mut cfg, source, "/m", opts);
        let b = env.bundle(&cfg);
        std::fs::create_dir(b.rootfs().join("m")).unwrap();
        let id = env.id();
        let err = env.fails(&["create", "--bundle", b.path(), &id]);
        assert_one_line_error(&err);
        assert!(
            err.contains("error mounting") && err.contains("locked"),
            "{opts:?}: {err}"
        );
        env.assert_no_leaks(&id, Some(&b));
    }
    let mut cfg = base_config(&["cat", "/proc/self/mountinfo"]);
    userns(&mut cfg);
    add_bind(&mut cfg, &src.0, "/m", &["bind", "nodev", "ro"]);
    let b = env.bundle(&cfg);
    std::fs::create_dir(b.rootfs().join("m")).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let mi = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = mount_at(&mi, "/m");
    for f in ["ro", "nodev", "noexec", "nosuid", "noatime"] {
        assert!(
            m.has_opt(f),
            "/m in a user namespace lacks {f}: {:?}",
            m.opts
        );
    }
    env.assert_no_leaks(&id, Some(&b));
}
