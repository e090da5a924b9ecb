//! Idmapped bind mounts (`uidMappings`/`gidMappings` on a mount, `idmap`, `ridmap`) and the
//! recursive `r*` mount options, as root.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A host directory with a file owned by 1000:1000 and one owned by root.
fn source(env: &Env) -> PathBuf {
    let d = scratch_dir(&env.tmp, 0, 0);
    std::fs::write(d.join("by-1000"), "x").unwrap();
    nix::unistd::chown(
        &d.join("by-1000"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    std::fs::write(d.join("by-root"), "x").unwrap();
    d
}

/// `mapping` of one id: on-disk `from` shows as host id `to` through the mount.
fn one(from: u32, to: u32) -> Value {
    json!([{"containerID": from, "hostID": to, "size": 1}])
}

fn add_userns(c: &mut Value, host: u32) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let m = json!([{"containerID": 0, "hostID": host, "size": 65536}]);
    c["linux"]["uidMappings"] = m.clone();
    c["linux"]["gidMappings"] = m;
}

fn run_ok(env: &Env, b: &Bundle, id: &str) -> String {
    let o = env.rt(&["run", "--bundle", b.path(), id]);
    assert!(
        o.status.success(),
        "run failed: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A tmpfs mounted inside `dir` at `dir/nested` (unmounted by `Env`'s cleanup, or the test).
fn nested_tmpfs(dir: &Path) -> PathBuf {
    let n = dir.join("nested");
    std::fs::create_dir_all(&n).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &n,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=755"),
    )
    .unwrap();
    n
}

/// Another directory of the same file system bound at `dir/nested`: a submount that can be
/// idmapped wherever `dir` can (tmpfs takes idmapped mounts only from kernel 6.3 on).
fn nested_bind(env: &Env, dir: &Path) -> PathBuf {
    let other = scratch_dir(&env.tmp, 0, 0);
    let n = dir.join("nested");
    std::fs::create_dir_all(&n).unwrap();
    nix::mount::mount(
        Some(&other),
        &n,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    n
}

fn umount(p: &Path) {
    let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
}

#[test]
fn idmapped_bind_shows_1000_as_root() {
    require_root!();
    let env = Env::new();
    let src = source(&env);
    // The user's directory: root writes into it through the mount as its owner.
    nix::unistd::chown(
        &src,
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    let script =
        "stat -c '%n %u %g' /m/by-1000 /m/by-root; echo hi > /m/new; stat -c '%n %u %g' /m/new";
    let mut c = base_config(&["sh", "-c", script]);
    add_mount(
        &mut c,
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"],
               "uidMappings": one(1000, 0), "gidMappings": one(1000, 0)}),
    );
    let b = env.bundle(&c);
    let id = env.id();
    let out = run_ok(&env, &b, &id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/m/by-1000 0 0", "{out}");
    // Host root is not in the mount's mapping: it shows as the overflow id.
    assert_eq!(lines[1], "/m/by-root 65534 65534", "{out}");
    assert_eq!(lines[2], "/m/new 0 0", "{out}");
    // What root wrote through the mount belongs to 1000 on the host.
    assert_eq!(owner(&src.join("new")), (1000, 1000));
    env.assert_no_leaks(&id, Some(&b));
}

/// The Kubernetes shape: a user namespace container; `idmap` without mount-level maps takes the
/// container's, so host root's files are root's inside and what container root writes is host
/// root's; a mount with its own maps shows host 1000 as root.
#[test]
fn idmap_in_user_namespace() {
    require_root!();
    let env = Env::new();
    let src = source(&env);
    let script = "stat -c '%n %u' /own/by-root /own/by-1000 /k/by-1000; touch /own/from-ct; \
                  stat -c '%n %u' /own/from-ct";
    let mut c = base_config(&["sh", "-c", script]);
    add_userns(&mut c, 200_000);
    add_mount(
        &mut c,
        json!({"destination": "/own", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
    );
    add_mount(
        &mut c,
        json!({"destination": "/k", "type": "bind", "source": src, "options": ["bind", "idmap", "ro"],
               "uidMappings": one(1000, 200_000), "gidMappings": one(1000, 200_000)}),
    );
    let b = env.bundle(&c);
    for d in ["own", "k"] {
        std::fs::create_dir_all(b.rootfs().join(d)).unwrap();
    }
    let id = env.id();
    let out = run_ok(&env, &b, &id);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/own/by-root 0",
            "/own/by-1000 1000",
            "/k/by-1000 0",
            "/own/from-ct 0"
        ],
        "{out}"
    );
    assert_eq!(owner(&src.join("from-ct")), (0, 0));
    env.assert_no_leaks(&id, Some(&b));
}

/// `ridmap` idmaps the submounts of an rbind too; `idmap` only the top.
#[test]
fn ridmap_covers_submounts() {
    require_root!();
    let env = Env::new();
    let src = source(&env);
    let nested = nested_bind(&env, &src);
    std::fs::write(nested.join("inner"), "x").unwrap();
    nix::unistd::chown(
        &nested.join("inner"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    let script = "stat -c '%n %u' /r/nested/inner /i/nested/inner /i/by-1000";
    let mut c = base_config(&["sh", "-c", script]);
    for (dest, opt) in [("/r", "ridmap"), ("/i", "idmap")] {
        add_mount(
            &mut c,
            json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", opt],
                   "uidMappings": one(1000, 0), "gidMappings": one(1000, 0)}),
        );
    }
    let b = env.bundle(&c);
    let id = env.id();
    let out = run_ok(&env, &b, &id);
    umount(&nested);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["/r/nested/inner 0", "/i/nested/inner 1000", "/i/by-1000 0"],
        "{out}"
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// `rro` makes the submounts of an rbind read-only too (plain `ro` only the top).
#[test]
fn rro_makes_nested_mounts_read_only() {
    require_root!();
    for userns in [false, true] {
        let env = Env::new();
        let src = source(&env);
        let nested = nested_tmpfs(&src);
        let script = "for f in /rro/top /rro/nested/f /ro/top /ro/nested/f; do \
                      touch $f 2>/dev/null && echo \"$f rw\" || echo \"$f ro\"; done";
        let mut c = base_config(&["sh", "-c", script]);
        if userns {
            add_userns(&mut c, 0);
        }
        add_mount(
            &mut c,
            json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "rro"]}),
        );
        add_mount(
            &mut c,
            json!({"destination": "/ro", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
        );
        let b = env.bundle(&c);
        let id = env.id();
        let out = run_ok(&env, &b, &id);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "/rro/top ro",
                "/rro/nested/f ro",
                "/ro/top ro",
                "/ro/nested/f rw"
            ],
            "userns={userns}: {out}"
        );
        // The host's view is untouched.
        std::fs::write(nested.join("host"), "x").unwrap();
        umount(&nested);
        env.assert_no_leaks(&id, Some(&b));
    }
}

#[test]
fn features_report_idmap() {
    require_root!();
    let env = Env::new();
    let f: Value = serde_json::from_str(&env.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for o in ["idmap", "ridmap", "rro", "rnosuid", "rnoexec", "rrelatime"] {
        assert!(opts.contains(&o), "{o} missing from {opts:?}");
    }
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&json!("user")) && ns.contains(&json!("time")));
}

#[test]
fn idmap_errors_are_clear() {
    require_root!();
    let env = Env::new();
    let src = source(&env);
    // idmap without maps and without a user namespace to take them from.
    let mut c = base_config(&["true"]);
    add_mount(
        &mut c,
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"]}),
    );
    let b = env.bundle(&c);
    let id = env.id();
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(
        e.contains("mounts: /m") && e.contains("user namespace"),
        "{e}"
    );
    // A source that does not exist.
    let mut c = base_config(&["true"]);
    add_mount(
        &mut c,
        json!({"destination": "/m", "type": "bind", "source": env.tmp.join("nope"),
               "options": ["bind"], "uidMappings": one(0, 1000), "gidMappings": one(0, 1000)}),
    );
    b.write_config(&c);
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(e.contains("mounts: /m") && e.contains("open_tree"), "{e}");
    env.assert_no_leaks(&id, Some(&b));
}
