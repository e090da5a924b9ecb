//! User namespaces with the runtime running as root: new ones with several mapping ranges,
//! joined ones (alone and together with other namespaces), exec into them.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const MAPPED: u32 = 100_000;
const MAPPED_HI: u32 = 300_000;

/// A config with a new user namespace: container ids 0–999 → host 100000…, 1000–65535 →
/// host 301000… (two ranges, the second not adjacent), and `/data` bound from `data`.
fn userns_config(args: &[&str], data: &Path) -> Value {
    let mut c = base_config(args);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let maps = json!([
        {"containerID": 0, "hostID": MAPPED, "size": 1000},
        {"containerID": 1000, "hostID": MAPPED_HI + 1000, "size": 64536}
    ]);
    c["linux"]["uidMappings"] = maps.clone();
    c["linux"]["gidMappings"] = maps;
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]
    }));
    c
}

/// The mount points a container whose root is not host root cannot create itself.
fn userns_bundle(env: &Env, c: &Value) -> Bundle {
    let b = env.bundle(c);
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    b
}

#[test]
fn new_userns_is_root_inside_and_mapped_outside() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, MAPPED, MAPPED);
    let script = "id -u > /data/id; id -g >> /data/id; cat /proc/self/uid_map > /data/uid_map; \
                  cat /proc/self/setgroups > /data/setgroups; \
                  touch /data/by-root; touch /data/by-1000 && chown 1000:1000 /data/by-1000; \
                  id -G > /data/groups";
    let mut c = userns_config(&["sh", "-c", script], &data);
    c["process"]["user"]["additionalGids"] = json!([1000]);
    let b = userns_bundle(&env, &c);
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(
        o.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(read(&data.join("id")), "0\n0\n");
    let map: Vec<Vec<String>> = read(&data.join("uid_map"))
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        map,
        vec![
            vec!["0".to_string(), MAPPED.to_string(), "1000".to_string()],
            vec![
                "1000".to_string(),
                (MAPPED_HI + 1000).to_string(),
                "64536".to_string()
            ],
        ]
    );
    // Root runtime: setgroups stays allowed, so additionalGids apply.
    assert_eq!(read(&data.join("setgroups")).trim(), "allow");
    assert!(read(&data.join("groups"))
        .split_whitespace()
        .any(|g| g == "1000"));
    // On the host the files belong to the mapped ranges.
    assert_eq!(owner(&data.join("by-root")), (MAPPED, MAPPED));
    assert_eq!(
        owner(&data.join("by-1000")),
        (MAPPED_HI + 1000, MAPPED_HI + 1000)
    );
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn userns_container_cannot_write_host_root_files() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, MAPPED, MAPPED);
    let host = scratch_dir(&env.tmp, 0, 0);
    std::fs::write(host.join("file"), "host\n").unwrap();
    let script =
        "echo x >> /host/file 2>/dev/null && echo wrote > /data/r || echo denied > /data/r; \
                  stat -c %u /host/file >> /data/r";
    let mut c = userns_config(&["sh", "-c", script], &data);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/host", "type": "bind", "source": host, "options": ["bind"]
    }));
    let b = userns_bundle(&env, &c);
    std::fs::create_dir_all(b.rootfs().join("host")).unwrap();
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Host root is not mapped: it shows as the overflow id and its files stay untouchable.
    assert_eq!(read(&data.join("r")), "denied\n65534\n");
    assert_eq!(read(&host.join("file")), "host\n");
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn exec_into_userns_container() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, MAPPED, MAPPED);
    let b = userns_bundle(&env, &userns_config(&["sleep", "1000"], &data));
    let id = env.id();
    env.create(&b, &id);
    env.ok(&["start", &id]);
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; head -n1 /proc/self/uid_map; touch /data/from-exec",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"));
    let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(first, ["0", &MAPPED.to_string(), "1000"]);
    assert_eq!(owner(&data.join("from-exec")), (MAPPED, MAPPED));
    env.ok(&["kill", &id, "KILL"]);
    wait_until(10, "container to stop", || env.status(&id) == "stopped");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

fn ns_link(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A second container joins the first one's user namespace by path, together with a network
/// namespace owned by the host (it must be joined before entering the user namespace, which
/// cannot join it from inside) and new mount/PID/UTS/IPC namespaces (owned by the joined one).
#[test]
fn join_userns_by_path_with_other_namespaces() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, MAPPED, MAPPED);
    let b1 = userns_bundle(&env, &userns_config(&["sleep", "1000"], &data));
    let first = env.id();
    env.create(&b1, &first);
    env.ok(&["start", &first]);
    let pid1 = env.state(&first)["pid"].as_i64().unwrap().to_string();

    let script = "id -u > /data/b-id; cat /proc/self/uid_map > /data/b-map; \
                  readlink /proc/self/ns/net > /data/b-net; readlink /proc/self/ns/user > /data/b-user; \
                  touch /data/by-second";
    let mut c = base_config(&["sh", "-c", script]);
    c["linux"]["namespaces"] = json!([
        {"type": "user", "path": format!("/proc/{pid1}/ns/user")},
        {"type": "network", "path": "/proc/self/ns/net"},
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    // (sysfs cannot be mounted without a network namespace of the container's own: the host's
    // /sys is bound instead.)
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": data, "options": ["rbind"]
    }));
    let b2 = userns_bundle(&env, &c);
    let second = env.id();
    let o = env.rt(&["run", "--bundle", b2.path(), &second]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&data.join("b-id")), "0\n");
    assert_eq!(
        read(&data.join("b-map")),
        std::fs::read_to_string(format!("/proc/{pid1}/uid_map")).unwrap()
    );
    assert_eq!(read(&data.join("b-user")).trim(), ns_link(&pid1, "user"));
    assert_eq!(read(&data.join("b-net")).trim(), ns_link("self", "net"));
    assert_eq!(owner(&data.join("by-second")), (MAPPED, MAPPED));
    env.assert_no_leaks(&second, Some(&b2));

    env.ok(&["delete", "--force", &first]);
    env.assert_no_leaks(&first, Some(&b1));
}

#[test]
fn mappings_without_user_namespace_rejected() {
    require_root!();
    let env = Env::new();
    let mut c = base_config(&["true"]);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": MAPPED, "size": 1}]);
    let b = env.bundle(&c);
    let id = env.id();
    let e = env.fails(&["create", "--bundle", b.path(), &id]);
    assert!(e.contains("user namespace"), "{e}");
    env.assert_no_leaks(&id, Some(&b));
}

/// A new user namespace starts with a full bounding set, whatever the runtime's own (this host's
/// lacks CAP_SYS_RESOURCE, a new namespace has it): everything outside the configured bounding
/// set must still be dropped inside, for the init and for `exec`.
#[test]
fn userns_bounding_set_is_exactly_the_configured_one() {
    require_root!();
    let env = Env::new();
    let data = scratch_dir(&env.tmp, MAPPED, MAPPED);
    let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
    let mut c = userns_config(
        &[
            "sh",
            "-c",
            "grep CapBnd /proc/self/status > /data/bnd.tmp && mv /data/bnd.tmp /data/bnd; sleep 1000",
        ],
        &data,
    );
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
    let b = userns_bundle(&env, &c);
    let id = env.id();
    env.ok(&["run", "-d", "--bundle", b.path(), &id]);
    // CAP_CHOWN is 0, CAP_KILL 5.
    let want = format!("{:016x}", (1u64 << 5) | 1);
    let bnd = |s: String| s.split_whitespace().nth(1).unwrap_or_default().to_string();
    assert_eq!(bnd(wait_file(&data.join("bnd"), 20)), want);
    let o = env.rt(&["exec", &id, "grep", "CapBnd", "/proc/self/status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(bnd(String::from_utf8_lossy(&o.stdout).into_owned()), want);
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}
