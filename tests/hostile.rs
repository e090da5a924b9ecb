//! Hostile input through the binary (issue #8): malformed configs, invalid ids, symlinked or
//! replaced state dirs, garbage state files, odd command lines. Each is refused with one clear
//! line on stderr (never a panic), a non-zero exit, and nothing left behind.
mod common;
mod reliab_util;
use common::*;
use reliab_util::*;
use serde_json::{json, Value};

/// Writes `config` (raw bytes) into a fresh bundle and runs `create`: it must fail cleanly and
/// leave nothing. Returns stderr.
fn create_fails(env: &Env, what: &str, config: &[u8]) -> String {
    let mark = marker();
    let b = env.bundle(&base_config(&["true"]));
    std::fs::write(b.dir.join("config.json"), config).unwrap();
    let id = env.id();
    let o = run_deadline(
        env,
        &["create", "--bundle", b.path(), &id],
        &[(MARK_VAR, &mark)],
        120,
    );
    assert_clean_error(what, &o);
    assert_eq!(status_of(env, &id), None, "{what}");
    assert_nothing_left(env, &id, Some(&b), &mark);
    o.stderr
}

/// A config from the base one with `edit` applied.
fn edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut c = base_config(&["true"]);
    edit(&mut c);
    serde_json::to_vec(&c).unwrap()
}

#[test]
fn malformed_configs() {
    require_root!();
    let env = Env::new();
    let good = serde_json::to_vec_pretty(&base_config(&["true"])).unwrap();
    let big = "x".repeat(1 << 20);
    let nested = format!(
        "{{\"ociVersion\":\"1.2.0\",\"root\":{{\"path\":\"rootfs\"}},\"annotations\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "config.json"),
        (
            "truncated JSON",
            good[..good.len() / 2].to_vec(),
            "config.json",
        ),
        ("not JSON", b"\x00\xff\xfe garbage".to_vec(), "config.json"),
        ("JSON array", b"[]".to_vec(), "config.json"),
        ("JSON null", b"null".to_vec(), "config.json"),
        ("nested 10k arrays", nested.into_bytes(), "config.json"),
        (
            "args is a string",
            edited(|c| c["process"]["args"] = json!("sh")),
            "config.json",
        ),
        (
            "root is a number",
            edited(|c| c["root"] = json!(7)),
            "config.json",
        ),
        (
            "namespaces is an object",
            edited(|c| c["linux"]["namespaces"] = json!({"type": "pid"})),
            "config.json",
        ),
        (
            // (An unknown capability *name* is skipped with a warning, as runc ≥ 1.2.)
            "capability not a string",
            edited(|c| c["process"]["capabilities"]["bounding"] = json!([7])),
            "config.json",
        ),
        (
            "negative uid",
            edited(|c| c["process"]["user"]["uid"] = json!(-1)),
            "config.json",
        ),
        (
            "uid over u32",
            edited(|c| c["process"]["user"]["uid"] = json!(1u64 << 40)),
            "config.json",
        ),
        (
            "memory limit over i64",
            edited(|c| c["linux"]["resources"]["memory"] = json!({"limit": u64::MAX})),
            "config.json",
        ),
        (
            "huge float",
            edited(|c| c["linux"]["resources"]["pids"] = json!({"limit": 1e300})),
            "config.json",
        ),
        (
            "unknown namespace type",
            edited(|c| c["linux"]["namespaces"] = json!([{"type": "bogus"}])),
            "config.json",
        ),
        (
            "unknown seccomp action",
            edited(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"})),
            "config.json",
        ),
        (
            "rlimit soft over hard",
            edited(|c| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
            }),
            "rlimits",
        ),
        (
            "unsupported ociVersion",
            edited(|c| c["ociVersion"] = json!("2.0.0")),
            "ociVersion",
        ),
        (
            "empty args",
            edited(|c| c["process"]["args"] = json!([])),
            "args",
        ),
        (
            "relative cwd",
            edited(|c| c["process"]["cwd"] = json!("relative/dir")),
            "cwd",
        ),
        (
            "missing rootfs",
            edited(|c| c["root"]["path"] = json!("/nonexistent/rootfs")),
            "rootfs",
        ),
        (
            "empty root path",
            edited(|c| c["root"]["path"] = json!("")),
            "root",
        ),
        (
            "rootfs is a file",
            edited(|c| c["root"]["path"] = json!("config.json")),
            "root",
        ),
        (
            "namespace path relative",
            edited(|c| c["linux"]["namespaces"][1] = json!({"type": "network", "path": "x"})),
            "not absolute",
        ),
        (
            "namespace path missing",
            edited(|c| {
                c["linux"]["namespaces"][1] =
                    json!({"type": "network", "path": "/nonexistent/ns/net"})
            }),
            "",
        ),
        (
            "duplicate namespace",
            edited(|c| c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "pid"}])),
            "duplicate",
        ),
        (
            "host sysctl",
            edited(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"})),
            "sysctl",
        ),
        (
            "empty mount destination",
            edited(|c| c["mounts"][0]["destination"] = json!("")),
            "destination",
        ),
        (
            "NUL in args",
            edited(|c| c["process"]["args"] = json!(["tr\u{0}ue"])),
            "",
        ),
        ("1 MiB hostname", edited(|c| c["hostname"] = json!(big)), ""),
        (
            "1 MiB args[0]",
            edited(|c| c["process"]["args"] = json!([big])),
            "",
        ),
        (
            "1 MiB mount destination",
            edited(|c| c["mounts"][0]["destination"] = json!(format!("/{big}"))),
            "",
        ),
    ];
    for (what, config, want) in cases {
        let err = create_fails(&env, what, &config);
        assert!(
            err.contains(want),
            "{what}: error does not name {want:?}: {err}"
        );
    }
}

#[test]
fn odd_but_valid_configs_do_not_break_the_runtime() {
    // Values that are legal but extreme: the container works or fails cleanly, nothing leaks.
    require_root!();
    let env = Env::new();
    let big = "x".repeat(1 << 20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "huge hook timeout",
            edited(|c| {
                c["hooks"] = json!({"createRuntime": [{"path": "/bin/true", "timeout": i64::MAX}]})
            }),
        ),
        (
            "1 MiB annotation",
            edited(|c| c["annotations"] = json!({"big": big})),
        ),
        (
            "1 MiB env value",
            edited(|c| {
                c["process"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(format!("BIG={big}")))
            }),
        ),
        (
            "many mounts",
            edited(|c| {
                let m = c["mounts"].as_array_mut().unwrap();
                for i in 0..200 {
                    m.push(json!({"destination": format!("/tmp/m{i}"), "type": "tmpfs", "source": "tmpfs"}));
                }
            }),
        ),
        (
            "mount destination climbing out",
            edited(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": "/../../../../escape-me", "type": "tmpfs", "source": "tmpfs"}))
            }),
        ),
        (
            "unknown fields everywhere",
            edited(|c| {
                c["bogus"] = json!(1);
                c["process"]["bogus"] = json!({"x": [1, 2]});
                c["linux"]["bogus"] = json!(null);
            }),
        ),
        (
            "huge oomScoreAdj",
            edited(|c| c["process"]["oomScoreAdj"] = json!(i32::MAX)),
        ),
        (
            "cgroupsPath climbing out",
            edited(|c| c["linux"]["cgroupsPath"] = json!("../../../../rruntime-hostile-escape")),
        ),
    ];
    for (what, config) in cases {
        let mark = marker();
        let b = env.bundle(&base_config(&["true"]));
        std::fs::write(b.dir.join("config.json"), &config).unwrap();
        let id = env.id();
        let o = run_deadline(
            &env,
            &["create", "--bundle", b.path(), &id],
            &[(MARK_VAR, &mark)],
            120,
        );
        if o.ok() {
            let s = run_deadline(&env, &["start", &id], &[], 120);
            if !s.ok() {
                assert_one_line(&format!("{what}: start"), &s.stderr);
            }
            let d = run_deadline(&env, &["delete", "--force", &id], &[], 120);
            assert!(d.ok(), "{what}: delete --force: {}", d.stderr);
        } else {
            assert_clean_error(what, &o);
        }
        assert!(
            !std::path::Path::new("/escape-me").exists(),
            "{what}: a mount escaped the rootfs"
        );
        assert!(
            cgroups_of("rruntime-hostile-escape").is_empty() || what != "cgroupsPath climbing out",
            "{what}: cgroup left"
        );
        assert_nothing_left(&env, &id, Some(&b), &mark);
    }
}

#[test]
fn huge_config_file() {
    require_root!();
    let env = Env::new();
    // 32 MiB of whitespace around a valid config, then 32 MiB of a string: parsed or refused,
    // never a crash.
    let mut padded = vec![b' '; 32 << 20];
    padded.extend(serde_json::to_vec(&base_config(&["true"])).unwrap());
    let b = env.bundle(&base_config(&["true"]));
    std::fs::write(b.dir.join("config.json"), &padded).unwrap();
    let id = env.id();
    let o = run_deadline(&env, &["create", "--bundle", b.path(), &id], &[], 120);
    assert!(o.ok(), "padded config: {}", o.stderr);
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
    create_fails(
        &env,
        "32 MiB garbage",
        &[b"{\"ociVersion\": \"".as_slice(), &vec![b'a'; 32 << 20]].concat(),
    );
}

#[test]
fn bad_bundles() {
    require_root!();
    let env = Env::new();
    let id = env.id();
    let missing = env.tmp.join("no-such-bundle");
    let o = run_deadline(
        &env,
        &["create", "--bundle", missing.to_str().unwrap(), &id],
        &[],
        60,
    );
    assert_clean_error("missing bundle", &o);
    // config.json is a directory, a FIFO (must not block), a dangling symlink.
    for kind in ["dir", "fifo", "dangling"] {
        let b = env.bundle(&base_config(&["true"]));
        let c = b.dir.join("config.json");
        std::fs::remove_file(&c).unwrap();
        match kind {
            "dir" => std::fs::create_dir(&c).unwrap(),
            "fifo" => {
                nix::unistd::mkfifo(&c, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
            }
            _ => std::os::unix::fs::symlink("/nonexistent/config.json", &c).unwrap(),
        }
        let o = run_deadline(&env, &["create", "--bundle", b.path(), &id], &[], 60);
        assert_clean_error(kind, &o);
        env.assert_no_leaks(&id, Some(&b));
    }
}

#[test]
fn invalid_ids_are_refused_everywhere() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["true"]));
    let long = "a".repeat(256);
    // (`-` is a valid id: letters, digits and `_+-.` are.)
    let ids = [
        "a/b",
        "..",
        ".",
        "../escape",
        "/abs",
        "x y",
        "é",
        "a\\b",
        "a\nb",
        &long,
    ];
    for id in ids {
        for args in [
            vec!["create", "--bundle", b.path(), id],
            vec!["run", "--bundle", b.path(), id],
            vec!["state", id],
            vec!["start", id],
            vec!["kill", id, "KILL"],
            vec!["delete", id],
            vec!["delete", "--force", id],
            vec!["exec", id, "true"],
        ] {
            let o = run_deadline(&env, &args, &[], 60);
            assert_clean_error(&format!("{args:?}"), &o);
            assert!(
                o.stderr.contains("invalid container id"),
                "{args:?}: {}",
                o.stderr
            );
        }
    }
    assert!(root_entries(&env).is_empty(), "{:?}", root_entries(&env));
    assert!(!env.root.parent().unwrap().join("escape").exists());
}

#[test]
fn empty_id_is_refused() {
    require_root!();
    let env = Env::new();
    for args in [
        vec!["state", ""],
        vec!["delete", "--force", ""],
        vec!["kill", "", "KILL"],
    ] {
        let o = run_deadline(&env, &args, &[], 60);
        assert_clean_error(&format!("{args:?}"), &o);
    }
}

/// A real, running container for the state-dir tests, with its marker.
fn running(env: &Env) -> (String, Bundle, String) {
    let mark = marker();
    let b = env.bundle(&marked_config(&["sleep", "1000"], &mark));
    let id = env.id();
    create_marked(env, &b, &id, &mark);
    env.ok(&["start", &id]);
    (id, b, mark)
}

#[test]
fn symlinked_state_dir_is_not_followed() {
    require_root!();
    let env = Env::new();
    let (victim, b, mark) = running(&env);
    let pid = init_pid(&env, &victim);
    // <root>/evil -> a copy of the victim's state dir elsewhere, and <root>/evil2 -> the
    // victim's own state dir.
    let outside = env.tmp.join("outside-state");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(
        env.root.join(&victim).join("state.json"),
        outside.join("state.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, env.root.join("evil")).unwrap();
    std::os::unix::fs::symlink(env.root.join(&victim), env.root.join("evil2")).unwrap();
    for id in ["evil", "evil2"] {
        for args in [
            vec!["state", id],
            vec!["start", id],
            vec!["kill", id, "KILL"],
            vec!["kill", "--all", id, "KILL"],
            vec!["delete", id],
            vec!["delete", "--force", id],
            vec!["exec", id, "true"],
        ] {
            let o = run_deadline(&env, &args, &[], 60);
            assert_clean_error(&format!("{args:?}"), &o);
            assert!(o.stderr.contains("symlink"), "{args:?}: {}", o.stderr);
        }
    }
    // Nothing was followed: the victim lives, both state files are intact.
    assert_eq!(status_of(&env, &victim).as_deref(), Some("running"));
    assert_eq!(init_pid(&env, &victim), pid);
    assert!(outside.join("state.json").exists());
    // `list` skips them.
    let list: Value = serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    std::fs::remove_file(env.root.join("evil")).unwrap();
    std::fs::remove_file(env.root.join("evil2")).unwrap();
    env.ok(&["delete", "--force", &victim]);
    assert_nothing_left(&env, &victim, Some(&b), &mark);
}

#[test]
fn replaced_state_files() {
    require_root!();
    let env = Env::new();
    let (victim, b, mark) = running(&env);
    let real = std::fs::read(env.root.join(&victim).join("state.json")).unwrap();
    type Corrupt<'a> = Box<dyn Fn(&std::path::Path) + 'a>;
    let cases: Vec<(&str, Corrupt)> = vec![
        (
            "garbage",
            Box::new(|p| std::fs::write(p, b"\x00\x01garbage").unwrap()),
        ),
        ("empty", Box::new(|p| std::fs::write(p, b"").unwrap())),
        (
            "truncated",
            Box::new(|p| std::fs::write(p, &real[..real.len() / 2]).unwrap()),
        ),
        (
            "wrong types",
            Box::new(|p| std::fs::write(p, br#"{"id":1,"pid":"x"}"#).unwrap()),
        ),
        (
            "huge",
            Box::new(|p| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(100 << 20).unwrap();
            }),
        ),
        (
            "fifo",
            Box::new(|p| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
            }),
        ),
        ("directory", Box::new(|p| std::fs::create_dir(p).unwrap())),
        (
            "symlink to the victim's state",
            Box::new(|p| {
                std::os::unix::fs::symlink(env.root.join(&victim).join("state.json"), p).unwrap()
            }),
        ),
    ];
    for (what, make) in cases {
        // A fake container directory holding the hostile state.json.
        let id = env.id();
        let dir = env.root.join(&id);
        std::fs::create_dir(&dir).unwrap();
        make(&dir.join("state.json"));
        for args in [
            vec!["state", id.as_str()],
            vec!["start", &id],
            vec!["kill", &id, "KILL"],
            vec!["delete", &id],
            vec!["exec", &id, "true"],
        ] {
            let o = run_deadline(&env, &args, &[], 60);
            assert_clean_error(&format!("{what}: {args:?}"), &o);
            assert!(o.stderr.contains(&id), "{what}: {args:?}: {}", o.stderr);
        }
        // `list` is not derailed by it.
        env.ok(&["list"]);
        // delete --force clears what cannot be read, without following anything.
        let o = run_deadline(&env, &["delete", "--force", &id], &[], 60);
        assert!(o.ok(), "{what}: delete --force: {}", o.stderr);
        assert!(!dir.exists(), "{what}: state dir left");
        assert_eq!(
            status_of(&env, &victim).as_deref(),
            Some("running"),
            "{what}"
        );
    }
    // A regular file or a dangling symlink where a container dir should be: "does not exist".
    std::fs::write(env.root.join("afile"), b"x").unwrap();
    std::os::unix::fs::symlink("/nonexistent", env.root.join("dangling")).unwrap();
    let o = run_deadline(&env, &["state", "afile"], &[], 60);
    assert_clean_error("file as state dir", &o);
    let o = run_deadline(&env, &["state", "dangling"], &[], 60);
    assert_clean_error("dangling symlink as state dir", &o);
    std::fs::remove_file(env.root.join("afile")).unwrap();
    std::fs::remove_file(env.root.join("dangling")).unwrap();
    env.ok(&["delete", "--force", &victim]);
    assert_nothing_left(&env, &victim, Some(&b), &mark);
}

#[test]
fn odd_command_lines() {
    require_root!();
    let env = Env::new();
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    // Non-UTF-8 arguments: usage errors, never a panic.
    for args in [
        vec![bad],
        vec![std::ffi::OsStr::new("state"), bad],
        vec![
            std::ffi::OsStr::new("--log-format"),
            bad,
            std::ffi::OsStr::new("list"),
        ],
    ] {
        let o = std::process::Command::new(rruntime())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert!(e.starts_with("error:"), "{args:?}: {e}");
    }
    // A non-UTF-8 --root is a valid path.
    let mut root = env.root.as_os_str().to_owned();
    root.push(bad);
    let o = std::process::Command::new(rruntime())
        .arg("--root")
        .arg(&root)
        .args(["state", "x"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("does not exist"), "{e}");
    // Usage errors exit non-zero without a panic; runtime errors are one line.
    for args in [
        vec!["bogus-command"],
        vec!["--bogus-flag", "list"],
        vec!["state"],
        vec!["--log-format", "xml", "list"],
        vec!["create", "--preserve-fds", "-1", "x"],
        vec!["create", "--preserve-fds", "99999999999", "x"],
    ] {
        let o = run_deadline(&env, &args, &[], 60);
        assert!(!o.ok(), "{args:?}");
        assert!(!o.stderr.contains("panicked"), "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("error:"), "{args:?}: {}", o.stderr);
    }
    for args in [
        vec!["--rootless", "maybe", "list"],
        vec!["kill", "x", "NOPE"],
        vec!["kill", "x", "99"],
        vec!["kill", "x", "RTMIN+999"],
        vec!["create", "--preserve-fds", "4000000000", "x"],
    ] {
        let o = run_deadline(&env, &args, &[], 60);
        assert_clean_error(&format!("{args:?}"), &o);
    }
    assert!(root_entries(&env).is_empty());
}
