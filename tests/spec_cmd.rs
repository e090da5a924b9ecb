//! `rruntime spec`: the default config (valid, runnable), `--rootless`, `-b/--bundle DIR`, and
//! refusing to overwrite an existing config.json.
mod common;
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

fn spec_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("spec")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn load(dir: &std::path::Path) -> Value {
    let data = std::fs::read(dir.join("config.json")).unwrap();
    // It parses as an OCI runtime spec, not just as JSON.
    serde_json::from_slice::<oci_spec::runtime::Spec>(&data).expect("a valid OCI spec");
    serde_json::from_slice(&data).unwrap()
}

fn ns_types(v: &Value) -> Vec<String> {
    v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn default_spec_is_sane_and_runs() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("spec");
    let o = spec_in(&dir, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = load(&dir);
    assert_eq!(v["ociVersion"], "1.2.0");
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["process"]["cwd"], "/");
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    let ns = ns_types(&v);
    for n in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&n.to_string()), "{n}");
    }
    // (The cgroup namespace only on a pure cgroup2 host: runc_contract item15.)
    assert!(!ns.contains(&"user".to_string()));
    let dests: Vec<&str> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(dests.contains(&d), "{d}");
    }
    assert!(!v["linux"]["maskedPaths"].as_array().unwrap().is_empty());
    assert!(!v["linux"]["readonlyPaths"].as_array().unwrap().is_empty());

    // The generated config runs a busybox container as it is (minus the terminal).
    make_rootfs(&dir.join("rootfs"));
    let mut v = v;
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!([
        "sh",
        "-c",
        "hostname; touch / 2>/dev/null || echo ro-root; ls /sys/fs/cgroup | head -1"
    ]);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("rruntime\n"), "{out}");
    assert!(out.contains("ro-root\n"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    env.assert_no_leaks(&id, Some(&Bundle { dir }));
}

#[test]
fn bundle_flag_and_no_overwrite() {
    require_root!();
    let env = Env::new();
    let cwd = env.scratch("cwd");
    for (i, form) in ["-b", "--bundle", "--bundle="].iter().enumerate() {
        let dir = env.scratch(&format!("b{i}"));
        let d = dir.to_str().unwrap().to_string();
        let args: Vec<String> = if form.ends_with('=') {
            vec![format!("{form}{d}")]
        } else {
            vec![form.to_string(), d.clone()]
        };
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = spec_in(&cwd, &a);
        assert!(o.status.success(), "{form}");
        load(&dir);
        assert!(
            !cwd.join("config.json").exists(),
            "{form} wrote into the cwd"
        );
    }
    // An existing config.json is never overwritten.
    let dir = env.scratch("existing");
    std::fs::write(dir.join("config.json"), "precious").unwrap();
    let o = spec_in(&dir, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_one_line_error(&err);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        "precious"
    );
    // A bundle directory that does not exist.
    let o = spec_in(&cwd, &["-b", "/no/such/dir"]);
    assert!(!o.status.success());
    assert_one_line_error(&String::from_utf8_lossy(&o.stderr));
}

#[test]
fn rootless_spec() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("rootless");
    let o = spec_in(&dir, &["--rootless"]);
    assert!(o.status.success());
    let v = load(&dir);
    let ns = ns_types(&v);
    assert!(ns.contains(&"user".to_string()), "{ns:?}");
    assert!(!ns.contains(&"network".to_string()), "{ns:?}");
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    assert_eq!(
        v["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        v["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": gid, "size": 1}])
    );
    assert!(v["linux"].get("resources").is_none());
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(
        !text.contains("gid=5"),
        "gid= mount option in a rootless spec"
    );
    assert!(v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["type"] != "cgroup"));
}
