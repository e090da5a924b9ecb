//! The container process: args, env, HOME, cwd, user (uid, gid, additionalGids, umask),
//! sysctl, rlimits, oomScoreAdj, noNewPrivileges, the five capability sets, and which file
//! descriptors reach it (0–2 plus --preserve-fds).
mod common;
use caps::Capability;
use common::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::path::Path;

#[test]
fn args_are_passed_verbatim() {
    require_root!();
    let env = Env::new();
    let out = env.run_ok(&base_config(&[
        "sh",
        "-c",
        "printf '%s|' \"$0\" \"$@\"; echo",
        "zero",
        "a b",
        "c\"d",
        "",
        "$HOME",
        "*",
    ]));
    assert_eq!(out, "zero|a b|c\"d||$HOME|*|\n");
}

/// The environment is exactly process.env plus HOME (from the container's /etc/passwd).
#[test]
fn env_and_home() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["env"]);
    cfg["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b"]);
    let out = env.run_ok(&cfg);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["EMPTY=", "EQ=a=b", "FOO=bar baz", "HOME=/root", "PATH=/bin"]
    );
    // HOME of a non-root user from /etc/passwd; "/" for a uid without an entry; a HOME in
    // process.env wins.
    for (uid, env_home, want) in [
        (1000, None, "/home/user"),
        (4242, None, "/"),
        (0, Some("HOME=/custom"), "/custom"),
    ] {
        let mut cfg = base_config(&["sh", "-c", "echo $HOME"]);
        cfg["process"]["user"] = json!({"uid": uid, "gid": uid});
        if let Some(h) = env_home {
            cfg["process"]["env"].as_array_mut().unwrap().push(json!(h));
        }
        assert_eq!(env.run_ok(&cfg), format!("{want}\n"), "uid {uid}");
    }
    // The runtime's own environment does not leak into the container.
    let b = env.bundle(&base_config(&["env"]));
    let id = env.id();
    let mut c = env.cmd(&["run", "--bundle", b.path(), &id]);
    c.env("RRUNTIME_TEST_LEAK", "1");
    let o = env.output(c);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("PATH=/bin"), "{out}");
    assert!(!out.contains("RRUNTIME_TEST_LEAK"), "{out}");
    env.assert_no_leaks(&id, Some(&b));
}

/// issue 22 item 2: an empty `HOME` in process.env counts as missing: the user's home from the
/// container's /etc/passwd replaces it (one `HOME=` entry, non-empty).
#[test]
fn empty_home_is_replaced_from_passwd_issue_22_item_2() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["sh", "-c", "env | grep '^HOME='"]);
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    cfg["process"]["env"] = json!(["PATH=/bin", "HOME="]);
    assert_eq!(env.run_ok(&cfg), "HOME=/home/user\n");
}

/// issue 22 item 3: duplicate env keys are collapsed to one entry each, the last one wins
/// (`ONE=two` then `ONE=` gives `ONE=`), at the place of its last occurrence.
#[test]
fn duplicate_env_keys_last_wins_issue_22_item_3() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["env"]);
    cfg["process"]["env"] = json!(["ONE=two", "PATH=/bin", "TWO=a", "ONE=", "TWO=b", "HOME=/h"]);
    let out = env.run_ok(&cfg);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["PATH=/bin", "ONE=", "TWO=b", "HOME=/h"], "{out}");
    // An entry that is not NAME=VALUE is refused with runc's text.
    let mut cfg = base_config(&["true"]);
    cfg["process"]["env"] = json!(["PATH=/bin", "NOEQUALS"]);
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("invalid environment variable: missing '='"),
        "{err}"
    );
}

/// cwd is used (and created when missing); the process is inside the container's root.
#[test]
fn cwd() {
    require_root!();
    let env = Env::new();
    for (cwd, uid) in [("/tmp", 0), ("/work/deep/er", 0), ("/home/user", 1000)] {
        let mut cfg = base_config(&[
            "sh",
            "-c",
            "pwd; readlink /proc/self/cwd; ls /proc/self/cwd/ >/dev/null && echo listable",
        ]);
        cfg["process"]["cwd"] = json!(cwd);
        cfg["process"]["user"] = json!({"uid": uid, "gid": uid});
        assert_eq!(env.run_ok(&cfg), format!("{cwd}\n{cwd}\nlistable\n"));
    }
}

/// uid, gid, additionalGids and umask.
#[test]
fn user_groups_and_umask() {
    require_root!();
    let env = Env::new();
    let script = "grep -E '^(Uid|Gid|Groups):' /proc/self/status; umask; \
                  touch /tmp/f; mkdir /tmp/d; stat -c '%a %u:%g' /tmp/f /tmp/d";
    let tmp = json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]});
    let mut cfg = base_config(&["sh", "-c", script]);
    add_mount(&mut cfg, tmp.clone());
    cfg["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 100, 2000], "umask": 0o027});
    let out = env.run_ok(&cfg);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "Uid:\t1000\t1000\t1000\t1000",
            "Gid:\t1001\t1001\t1001\t1001",
            "Groups:\t5 100 2000",
            "0027",
            "640 1000:1001",
            "750 1000:1001",
        ],
        "{out}"
    );
    // Defaults: root, no supplementary groups, umask 0022.
    let mut cfg = base_config(&["sh", "-c", script]);
    add_mount(&mut cfg, tmp);
    let out = env.run_ok(&cfg);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "Uid:\t0\t0\t0\t0",
            "Gid:\t0\t0\t0\t0",
            "Groups:",
            "0022",
            "644 0:0",
            "755 0:0",
        ],
        "{out}"
    );
}

/// Namespaced sysctls are set inside the container only.
#[test]
fn sysctl() {
    require_root!();
    let env = Env::new();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let out = env.sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ping_group_range",
        |c| {
            c["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": "1",
                "kernel.shmmax": "123456789",
                "net.ipv4.ping_group_range": "0 2147483647"
            });
        },
    );
    assert_eq!(out, "1\n123456789\n0\t2147483647\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shm
    );
}

/// rlimits: lowered limits are in force inside; raising a hard limit above the runtime's
/// needs CAP_SYS_RESOURCE (missing on some hosts: then create fails cleanly).
#[test]
fn rlimits() {
    require_root!();
    let env = Env::new();
    let out = env.sh(
        "grep -E '^Max (open files|core file size|processes|locked memory)' /proc/self/limits; ulimit -n",
        |c| {
            c["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_NPROC", "soft": 500, "hard": 1000},
                {"type": "RLIMIT_MEMLOCK", "soft": 65536, "hard": 65536}
            ]);
        },
    );
    let norm: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "Max open files 100 200 files",
        "Max core file size 0 0 bytes",
        "Max processes 500 1000 processes",
        "Max locked memory 65536 65536 bytes",
        "100",
    ] {
        assert!(norm.iter().any(|l| l == want), "{want:?} missing:\n{out}");
    }
}

/// A hard NOFILE above the caller's own: allowed with CAP_SYS_RESOURCE, refused with a
/// `process.rlimits` error without it. The runtime is started with a hard limit of 4096 so
/// the request (8192) stays below fs.nr_open, the kernel's ceiling for everyone, on any host.
#[test]
fn rlimit_nofile_above_the_callers_hard_limit() {
    use std::os::unix::process::CommandExt;
    require_root!();
    let env = Env::new();
    let raise = 8192u64;
    assert!(raise <= host().nr_open, "fs.nr_open {}", host().nr_open);
    let mut cfg = base_config(&["sh", "-c", "ulimit -Hn"]);
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": raise}]);
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut cmd = env.cmd(&["run", "--bundle", b.path(), &id]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = env.output(cmd);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    // CAP_SYS_RESOURCE: capability 24.
    if host().cap_in_bounding(24) && have_cap(Capability::CAP_SYS_RESOURCE) {
        assert!(o.status.success(), "{stderr}");
        assert_eq!(stdout, format!("{raise}\n"));
    } else {
        assert!(!o.status.success());
        assert!(stderr.contains("process.rlimits"), "{stderr}");
        assert_one_line_error(&stderr);
    }
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn oom_score_adj() {
    require_root!();
    let env = Env::new();
    for adj in [500, 1000, 0] {
        let out = env.sh("cat /proc/self/oom_score_adj", |c| {
            c["process"]["oomScoreAdj"] = json!(adj)
        });
        assert_eq!(out, format!("{adj}\n"));
    }
    // Lowering below the runtime's needs CAP_SYS_RESOURCE.
    let mut cfg = base_config(&["cat", "/proc/self/oom_score_adj"]);
    cfg["process"]["oomScoreAdj"] = json!(-200);
    if have_cap(Capability::CAP_SYS_RESOURCE) {
        assert_eq!(env.run_ok(&cfg), "-200\n");
    } else {
        let err = env.create_fails(&cfg);
        assert!(err.contains("oomScoreAdj"), "{err}");
    }
}

#[test]
fn no_new_privileges() {
    require_root!();
    let env = Env::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let out = env.sh("grep NoNewPrivs /proc/self/status", |c| {
            c["process"]["noNewPrivileges"] = json!(nnp)
        });
        assert_eq!(
            out,
            format!("NoNewPrivs:\t{want}\n"),
            "noNewPrivileges {nnp}"
        );
    }
}

fn mask(caps: &[Capability]) -> String {
    format!(
        "{:016x}",
        caps.iter().fold(0u64, |m, c| m | (1u64 << c.index()))
    )
}

fn names(caps: &[Capability]) -> serde_json::Value {
    json!(caps.iter().map(|c| c.to_string()).collect::<Vec<_>>())
}

/// The five capability sets, read back from /proc/self/status after execve. The kernel
/// recomputes permitted/effective at execve: a non-root process keeps exactly its ambient set;
/// root with no_new_privs keeps its configured permitted set (∩ bounding ∪ inheritable).
#[test]
fn capability_sets() {
    require_root!();
    let env = Env::new();
    use Capability::*;
    let bounding = [
        CAP_CHOWN,
        CAP_DAC_OVERRIDE,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_SETUID,
        CAP_SETGID,
        CAP_NET_RAW,
    ];
    let permitted = [CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE];
    let effective = [CAP_KILL, CAP_NET_BIND_SERVICE];
    let inheritable = [CAP_KILL, CAP_NET_BIND_SERVICE];
    let ambient = [CAP_NET_BIND_SERVICE];
    for uid in [1000, 0] {
        let out = env.sh("grep ^Cap /proc/self/status", |c| {
            c["process"]["user"] = json!({"uid": uid, "gid": uid});
            c["process"]["noNewPrivileges"] = json!(true);
            c["process"]["capabilities"] = json!({
                "bounding": names(&bounding),
                "permitted": names(&permitted),
                "effective": names(&effective),
                "inheritable": names(&inheritable),
                "ambient": names(&ambient),
            });
        });
        let (prm, eff) = if uid == 0 {
            (mask(&permitted), mask(&permitted))
        } else {
            (mask(&ambient), mask(&ambient))
        };
        assert_eq!(
            proc_status_field(&out, "CapBnd"),
            mask(&bounding),
            "uid {uid}"
        );
        assert_eq!(
            proc_status_field(&out, "CapInh"),
            mask(&inheritable),
            "uid {uid}"
        );
        assert_eq!(
            proc_status_field(&out, "CapAmb"),
            mask(&ambient),
            "uid {uid}"
        );
        assert_eq!(proc_status_field(&out, "CapPrm"), prm, "uid {uid}");
        assert_eq!(proc_status_field(&out, "CapEff"), eff, "uid {uid}");
    }
    // Behaviour: without CAP_CHOWN root cannot chown; without CAP_NET_RAW no raw sockets.
    let out = env.sh(
        "touch /tmp/f; chown 1000 /tmp/f 2>/dev/null && echo chown-ok || echo chown-denied",
        |c| {
            let caps = json!(["CAP_KILL"]);
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
        },
    );
    assert_eq!(out, "chown-denied\n");
    // An empty capabilities object: nothing at all.
    let out = env.sh("grep ^Cap /proc/self/status", |c| {
        c["process"]["capabilities"] = json!({});
    });
    for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(proc_status_field(&out, f), "0000000000000000", "{f}");
    }
}

/// Runs `rruntime create` with extra open fds 3, 4, 5 (files in `dir`), `--preserve-fds n`
/// when given.
fn create_with_fds(env: &Env, b: &Bundle, id: &str, dir: &Path, preserve: Option<&str>) {
    let files: Vec<std::fs::File> = (3..=5)
        .map(|n| std::fs::File::create(dir.join(format!("fd{n}"))).unwrap())
        .collect();
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let mut args = vec!["create", "--bundle", b.path()];
    if let Some(n) = preserve {
        args.extend(["--preserve-fds", n]);
    }
    args.push(id);
    let mut c = env.cmd(&args);
    let pairs: Vec<(i32, i32)> = raw.iter().zip(3..).map(|(&f, t)| (f, t)).collect();
    fds_in_child(&mut c, &pairs);
    let o = env.output(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(files);
}

fn fds_of(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort();
    v
}

/// Only fds 0–2 reach the container's process, plus exactly the --preserve-fds ones.
#[test]
fn fds_and_preserve_fds() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let script = "echo three >&3; echo four >&4; (echo five >&5) 2>/dev/null || echo no-five >&4; \
                  echo r > /out/r.tmp && mv /out/r.tmp /out/ready; exec sleep 1000";
    let mut cfg = base_config(&["sh", "-c", script]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);

    let id = env.id();
    let dir = env.scratch("fds");
    create_with_fds(&env, &b, &id, &dir, Some("2"));
    env.ok(&["start", &id]);
    wait_file(&out.join("ready"), 20);
    let pid = env.pid(&id);
    assert_eq!(fds_of(pid), [0, 1, 2, 3, 4]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap(),
        dir.join("fd3")
    );
    assert_eq!(read(&dir.join("fd3")), "three\n");
    assert_eq!(read(&dir.join("fd4")), "four\nno-five\n");
    assert_eq!(read(&dir.join("fd5")), "");
    env.finish(&id, &b);

    // Without --preserve-fds: only 0, 1, 2 (the sleep) even though the runtime had 3–5 open.
    std::fs::remove_file(out.join("ready")).unwrap();
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "echo r > /out/r.tmp && mv /out/r.tmp /out/ready; exec sleep 1000",
    ]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    b.write_config(&cfg);
    let id = env.id();
    let dir = env.scratch("fds");
    create_with_fds(&env, &b, &id, &dir, None);
    // Before start too: the waiting init holds nothing of the runtime's beyond its own.
    env.ok(&["start", &id]);
    wait_file(&out.join("ready"), 20);
    let pid = env.pid(&id);
    assert_eq!(fds_of(pid), [0, 1, 2]);
    env.finish(&id, &b);
}

/// `run --preserve-fds` passes fds through run as well.
#[test]
fn run_preserve_fds() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "echo via-fd3 >&3; ls /proc/self/fd",
    ]));
    let id = env.id();
    let f = std::fs::File::create(env.tmp.join("fd3")).unwrap();
    let raw = f.as_raw_fd();
    let mut c = env.cmd(&["run", "--preserve-fds=1", "--bundle", b.path(), &id]);
    fds_in_child(&mut c, &[(raw, 3)]);
    let o = env.output(c);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(read(&env.tmp.join("fd3")), "via-fd3\n");
    // ls itself opens the directory as fd 3 after... the preserved fd 3 is already there, so
    // its directory fd is 4.
    let fds: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4"]);
    env.assert_no_leaks(&id, Some(&b));
}

/// Each container joins a new session keyring named after it; with --no-new-keyring it keeps
/// the caller's.
#[test]
fn session_keyring_and_no_new_keyring() {
    require_root!();
    skip_unless!(
        Path::new("/proc/keys").exists(),
        "no /proc/keys (kernel without keyrings)"
    );
    let env = Env::new();
    let mut cfg = base_config(&["cat", "/proc/keys"]);
    cfg["linux"]["maskedPaths"] = json!([]);
    let b = env.bundle(&cfg);
    for flag in [None, Some("--no-new-keyring")] {
        let id = env.id();
        let mut args = vec!["run"];
        args.extend(flag);
        args.extend(["--bundle", b.path(), &id]);
        let o = env.rt(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let keys = String::from_utf8_lossy(&o.stdout).into_owned();
        let own = keys
            .lines()
            .any(|l| l.contains("keyring") && l.contains(&format!("_ses.{id}")));
        assert_eq!(own, flag.is_none(), "{flag:?}: {keys}");
        env.assert_no_leaks(&id, Some(&b));
    }
}
