//! Namespaces: new ones (compared with the host's), none, joined by path (another container's,
//! an `ip netns` one), wrong-type paths, hostname/domainname, a container without a mount
//! namespace (mounts in the host namespace, cleaned up by delete), cgroup and user namespaces.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

const NS: [&str; 6] = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];

fn ns_script() -> String {
    "for n in pid net ipc uts mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done; echo pid1 $$"
        .to_string()
}

fn parse_ns(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn new_namespaces_differ_from_the_host() {
    require_root!();
    let env = Env::new();
    let out = env.sh(&format!("{}; ls /sys/class/net", ns_script()), |c| {
        set_namespaces(c, &["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    });
    let m = parse_ns(&out);
    for n in NS {
        assert_ne!(m[n], host_ns(n), "{n} namespace is the host's");
    }
    assert_eq!(m["pid1"], "1");
    // A new network namespace has only loopback.
    let devs: Vec<&str> = out.lines().filter(|l| !l.contains(' ')).collect();
    assert_eq!(devs, ["lo"], "{out}");
}

#[test]
fn without_namespaces_the_host_ones_are_used() {
    require_root!();
    let env = Env::new();
    let out = env.sh(&ns_script(), |c| {
        set_namespaces(c, &["mount"]);
        c.as_object_mut().unwrap().remove("hostname");
    });
    let m = parse_ns(&out);
    for n in ["pid", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(m[n], host_ns(n), "{n}");
    }
    assert_ne!(m["mnt"], host_ns("mnt"));
    assert_ne!(m["pid1"], "1");
}

#[test]
fn hostname_and_domainname() {
    require_root!();
    let env = Env::new();
    let host_before = nix::unistd::gethostname().unwrap();
    let out = env.sh("hostname; cat /proc/sys/kernel/domainname", |c| {
        c["hostname"] = json!("myhost");
        c["domainname"] = json!("example.org");
    });
    assert_eq!(out, "myhost\nexample.org\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

/// A second container joins the first one's namespaces by /proc/<pid>/ns paths: same
/// namespace inodes, same hostname, and the first container's processes are visible.
#[test]
fn join_another_containers_namespaces() {
    require_root!();
    let env = Env::new();
    let mut a_cfg = base_config(&["sleep", "1000"]);
    a_cfg["hostname"] = json!("alpha");
    let a = env.bundle(&a_cfg);
    let aid = env.id();
    env.create(&a, &aid);
    env.ok(&["start", &aid]);
    let apid = env.pid(&aid);

    let script = format!(
        "{}; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo",
        ns_script()
    );
    let mut cfg = base_config(&["sh", "-c", &script]);
    cfg.as_object_mut().unwrap().remove("hostname");
    cfg["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("/proc/{apid}/ns/pid")},
        {"type": "network", "path": format!("/proc/{apid}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{apid}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{apid}/ns/uts")},
        {"type": "mount"}
    ]);
    let out = env.run_ok(&cfg);
    let m = parse_ns(&out);
    for n in ["pid", "net", "ipc", "uts"] {
        assert_eq!(m[n], pid_ns(apid, n), "{n}: {out}");
    }
    assert_ne!(m["mnt"], pid_ns(apid, "mnt"));
    assert_ne!(
        m["pid1"], "1",
        "the joiner is not pid 1 of the joined namespace"
    );
    assert!(out.contains("alpha\n"), "{out}");
    assert!(
        out.contains("sleep 1000"),
        "pid 1 of the joined namespace: {out}"
    );
    // The first container is unaffected.
    assert_eq!(env.status(&aid), "running");
    env.finish(&aid, &a);
}

struct NetNs(String);
impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Joining a network namespace made with `ip netns add`: the container's namespace is the one
/// bound at /run/netns/NAME (same inode), and it survives the container.
#[test]
fn join_ip_netns() {
    require_root!();
    skip_unless!(
        std::process::Command::new("ip").arg("-V").output().is_ok(),
        "no ip(8) (iproute2 not installed)"
    );
    let env = Env::new();
    let name = unique("rrt-netns");
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = NetNs(name.clone());
    let path = format!("/run/netns/{name}");
    let ino = std::fs::metadata(&path).unwrap().ino();
    let mut cfg = base_config(&["readlink", "/proc/self/ns/net"]);
    cfg["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": path}
    ]);
    let out = env.run_ok(&cfg);
    assert_eq!(out.trim(), format!("net:[{ino}]"));
    assert!(std::path::Path::new(&path).exists());
}

/// A namespace path of the wrong type, a file that is no namespace, a missing path: create
/// fails naming the path, before anything is made.
#[test]
fn bad_namespace_paths() {
    require_root!();
    let env = Env::new();
    let me = std::process::id();
    let plain = env.tmp.join("plain-file");
    std::fs::write(&plain, "x").unwrap();
    for (typ, path, want) in [
        (
            "network",
            format!("/proc/{me}/ns/ipc"),
            "not a net namespace",
        ),
        ("pid", format!("/proc/{me}/ns/uts"), "not a pid namespace"),
        ("mount", format!("/proc/{me}/ns/net"), "not a mnt namespace"),
        (
            "uts",
            plain.to_str().unwrap().to_string(),
            "not a namespace file",
        ),
        ("ipc", "/no/such/ns".to_string(), "/no/such/ns"),
    ] {
        let mut cfg = base_config(&["true"]);
        let mut nss: Vec<serde_json::Value> = ["pid", "network", "ipc", "uts", "mount"]
            .iter()
            .filter(|t| **t != typ)
            .map(|t| json!({"type": t}))
            .collect();
        nss.push(json!({"type": typ, "path": path}));
        cfg["linux"]["namespaces"] = json!(nss);
        let err = env.create_fails(&cfg);
        assert!(err.contains(want), "{typ} {path}: {err}");
    }
}

/// Without a mount namespace (runtime-tools' linux_ns_itype case) the container's mounts are
/// made in the host's namespace under the rootfs; delete removes every one of them.
#[test]
fn no_mount_namespace_cleans_host_mounts() {
    require_root!();
    let env = Env::new();
    let out = env.scratch("out");
    let mut cfg = base_config(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt > /out/mnt; cat /proc/version | wc -c > /out/masked; ls /bin/busybox > /out/ls",
    ]);
    set_namespaces(&mut cfg, &["pid", "network", "ipc", "uts"]);
    cfg["linux"]["maskedPaths"] = json!(["/proc/version", "/sys/firmware"]);
    add_bind(&mut cfg, &out, "/out", &["rbind", "rw"]);
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
    let under: Vec<MountLine> = parse_mountinfo(&mi)
        .into_iter()
        .filter(|m| m.mount_point.starts_with(rootfs.to_str().unwrap()))
        .collect();
    for sub in ["proc", "dev", "dev/pts", "sys", "out"] {
        let p = rootfs.join(sub);
        assert!(
            under.iter().any(|m| m.mount_point == p.to_str().unwrap()),
            "{sub} not mounted on the host: {under:?}"
        );
    }
    env.ok(&["start", &id]);
    env.wait_stopped(&id);
    assert_eq!(read(&out.join("mnt")).trim(), host_ns("mnt"));
    assert_eq!(
        read(&out.join("masked")).trim(),
        "0",
        "maskedPaths without a mount ns"
    );
    assert_eq!(read(&out.join("ls")).trim(), "/bin/busybox");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
    // Also when the container is deleted while still created, and with --force while running.
    for started in [false, true] {
        let mut cfg = base_config(&["sleep", "1000"]);
        set_namespaces(&mut cfg, &["pid", "network", "ipc", "uts"]);
        let b = env.bundle(&cfg);
        let id = env.id();
        env.create(&b, &id);
        if started {
            env.ok(&["start", &id]);
        }
        env.ok(&["delete", "--force", &id]);
        env.assert_no_leaks(&id, Some(&b));
    }
}

/// With a cgroup namespace the container's cgroups are the roots of its view.
#[test]
fn cgroup_namespace() {
    require_root!();
    let env = Env::new();
    let out = env.sh("cat /proc/self/cgroup", |c| {
        set_namespaces(c, &["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    });
    assert!(!out.trim().is_empty(), "no /proc/self/cgroup output");
    for l in out.lines() {
        // name=systemd is joined best-effort and may sit outside the namespace root.
        if l.contains("name=systemd") {
            continue;
        }
        assert!(l.ends_with(":/"), "{l} in:\n{out}");
    }
    let b = env.bundle(&base_config(&["cat", "/proc/self/cgroup"]));
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.lines().any(|l| l.ends_with(&format!("/{id}"))),
        "without a cgroup namespace the path shows: {out}"
    );
    env.assert_no_leaks(&id, Some(&b));
}

/// A user namespace with uid/gid mappings: root inside is mapped to the host ids given.
#[test]
fn user_namespace_mappings() {
    require_root!();
    let env = Env::new();
    let out = env.sh(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user",
        |c| {
            set_namespaces(c, &["pid", "network", "ipc", "uts", "mount", "user"]);
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
    );
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], "0 100000 65536", "{out}");
    assert_eq!(lines[1], "0 100000 65536", "{out}");
    assert_eq!(lines[2], "0");
    assert_ne!(lines[3], host_ns("user"));
}

/// issue 22 item 7: an empty namespace path (`{"type": "mount", "path": ""}`) means a new
/// namespace, as if `path` were absent.
#[test]
fn empty_namespace_path_means_new_namespace_issue_22_item_7() {
    require_root!();
    let env = Env::new();
    let out = env.sh(&ns_script(), |c| {
        c["linux"]["namespaces"] = json!([
            {"type": "pid", "path": ""}, {"type": "network", "path": ""},
            {"type": "ipc", "path": ""}, {"type": "uts", "path": ""},
            {"type": "mount", "path": ""}, {"type": "cgroup", "path": ""}
        ]);
    });
    let m = parse_ns(&out);
    for n in NS {
        assert_ne!(m[n], host_ns(n), "{n} namespace is the host's");
    }
    assert_eq!(m["pid1"], "1");
}

/// A network namespace held by a sleeping process (no `ip netns` mount: it goes with the
/// process), standing in for the runtime's "host" namespace or a caller's pre-made one.
struct HeldNetNs {
    holder: ChildGuard,
}

impl HeldNetNs {
    fn new() -> HeldNetNs {
        let c = std::process::Command::new("unshare")
            .args(["--net", "sleep", "1000"])
            .spawn()
            .expect("unshare --net");
        let holder = ChildGuard::new(c);
        let pid = holder.pid();
        wait_until(10, "the netns holder to exec sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        });
        HeldNetNs { holder }
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.pid())
    }

    /// `cmd` with the network namespace at `path` entered before exec.
    fn enter(cmd: &mut std::process::Command, path: &str) {
        use std::os::unix::process::CommandExt;
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: setns on an fd the closure owns; async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                use std::os::fd::AsRawFd;
                if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// `ip ARGS…` in this namespace, asserted to succeed.
    fn ip(&self, args: &[&str]) -> String {
        ip_in(&self.path(), args)
    }
}

fn ip_in(ns_path: &str, args: &[&str]) -> String {
    let mut c = std::process::Command::new("ip");
    c.args(args);
    HeldNetNs::enter(&mut c, ns_path);
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "ip {args:?} in {ns_path}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ip -j addr show` in the namespace at `path`: the links by name.
fn links_in(ns_path: &str) -> std::collections::HashMap<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ip_in(ns_path, &["-j", "addr", "show"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (l["ifname"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

/// The addresses of a link from `ip -j`, as "addr/prefix scope".
fn addrs_of(link: &serde_json::Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}/{} {}",
                a["local"].as_str().unwrap_or_default(),
                a["prefixlen"],
                a["scope"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Asserts that `link` carries the test veth's attributes (set up by [`make_veth`]).
fn assert_test_link(link: &serde_json::Value, what: &str) {
    assert_eq!(link["mtu"], 1400, "{what}: mtu: {link}");
    assert_eq!(link["address"], "02:00:00:aa:bb:cc", "{what}: MAC: {link}");
    let flags: Vec<&str> = link["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(flags.contains(&"UP"), "{what}: not up: {link}");
    let a = addrs_of(link);
    assert!(
        a.contains(&"192.0.2.1/24 global".to_string()),
        "{what}: {a:?}"
    );
    assert!(
        a.contains(&"2001:db8::1/64 global".to_string()),
        "{what}: {a:?}"
    );
}

/// veth `name` (peer `<name>p`) in `ns`, with the attributes [`assert_test_link`] checks, plus
/// a link-scope address that must not follow it (runc moves global addresses only). The
/// addresses are documentation prefixes (RFC 5737, RFC 3849); the peer stays down, so nothing
/// is ever sent.
fn make_veth(ns: &HeldNetNs, name: &str) {
    let peer = format!("{name}p");
    ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
    ns.ip(&[
        "link",
        "set",
        name,
        "mtu",
        "1400",
        "address",
        "02:00:00:aa:bb:cc",
    ]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", name]);
    ns.ip(&["addr", "add", "192.0.2.9/32", "dev", name, "scope", "link"]);
    ns.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", name, "nodad"]);
    ns.ip(&["link", "set", name, "up"]);
}

/// issue 22 item 23: `linux.netDevices` moves the named devices of the runtime's network
/// namespace into the container's — renamed where the config says so — with their MTU, MAC
/// address and global addresses, up; `features` says so. When the container's own namespace
/// goes at `delete`, so do its devices (virtual ones are destroyed by the kernel, which is what
/// the veth peer left behind shows; a physical one is moved back to the initial namespace).
/// The runtime runs in a network namespace the test made, so no host interface is touched.
#[test]
fn net_devices_move_into_the_container_issue_22_item_23() {
    require_root!();
    skip_unless!(probe::veth_in_netns(), "veth pairs cannot be made here");
    let env = Env::new();
    let feats: serde_json::Value = serde_json::from_str(&env.ok(&["features"])).unwrap();
    assert_eq!(feats["linux"]["netDevices"]["enabled"], true, "{feats}");

    let host = HeldNetNs::new();
    make_veth(&host, "nd0");
    host.ip(&["link", "add", "nd1", "type", "veth", "peer", "name", "nd1p"]);
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["netDevices"] = json!({"nd0": {"name": "ctr0"}, "nd1": {}});
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut c = env.cmd(&["create", "--bundle", b.path(), &id]);
    HeldNetNs::enter(&mut c, &host.path());
    let o = env.output(c);
    assert!(
        o.status.success(),
        "create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ctr_ns = format!("/proc/{}/ns/net", env.pid(&id));

    let inside = links_in(&ctr_ns);
    let ctr0 = inside
        .get("ctr0")
        .unwrap_or_else(|| panic!("no ctr0 inside: {inside:?}"));
    assert_test_link(ctr0, "ctr0 in the container");
    assert!(
        !addrs_of(ctr0).iter().any(|a| a.starts_with("192.0.2.9/")),
        "a link-scope address followed the device: {ctr0}"
    );
    assert!(inside.contains_key("nd1"), "nd1 keeps its name: {inside:?}");
    assert!(!inside.contains_key("nd0"), "{inside:?}");
    let left = links_in(&host.path());
    assert!(
        !left.contains_key("nd0") && !left.contains_key("nd1"),
        "{left:?}"
    );
    assert!(left.contains_key("nd0p"), "{left:?}");

    // The container's own view (its sysfs is of its network namespace).
    env.ok(&["start", &id]);
    let seen = env.ok(&[
        "exec",
        &id,
        "cat",
        "/sys/class/net/ctr0/mtu",
        "/sys/class/net/ctr0/address",
    ]);
    assert_eq!(seen, "1400\n02:00:00:aa:bb:cc\n");

    env.ok(&["kill", &id, "KILL"]);
    env.wait_stopped(&id);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
    wait_until(
        20,
        "the moved veths to go with the container's namespace",
        || {
            let l = links_in(&host.path());
            !l.contains_key("nd0p") && !l.contains_key("nd1p")
        },
    );
}

/// issue 22 item 23: with a network namespace joined by path, the devices stay in it after
/// `delete` (its owner manages them, as with runc).
#[test]
fn net_devices_stay_in_a_joined_namespace_issue_22_item_23() {
    require_root!();
    skip_unless!(probe::veth_in_netns(), "veth pairs cannot be made here");
    let env = Env::new();
    let host = HeldNetNs::new();
    let target = HeldNetNs::new();
    make_veth(&host, "nd0");
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network", "path": target.path()},
        {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    cfg["linux"]["netDevices"] = json!({"nd0": {}});
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut c = env.cmd(&["create", "--bundle", b.path(), &id]);
    HeldNetNs::enter(&mut c, &host.path());
    let o = env.output(c);
    assert!(
        o.status.success(),
        "create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_test_link(
        &links_in(&target.path())["nd0"],
        "nd0 in the joined namespace",
    );
    env.finish(&id, &b);
    assert_test_link(&links_in(&target.path())["nd0"], "nd0 after delete");
    assert!(!links_in(&host.path()).contains_key("nd0"));
}

/// issue 22 item 23: a `create` that cannot move every device fails with one line and leaves
/// every device where it was, as it was: an unknown device, a name taken in the container
/// (also when another device was already moved: it is moved back), bad names, no network
/// namespace.
#[test]
fn net_device_failures_leave_devices_in_place_issue_22_item_23() {
    require_root!();
    skip_unless!(probe::veth_in_netns(), "veth pairs cannot be made here");
    let env = Env::new();
    let host = HeldNetNs::new();
    make_veth(&host, "nd0");
    host.ip(&["link", "add", "nd1", "type", "veth", "peer", "name", "nd1p"]);
    let cases: Vec<(serde_json::Value, Option<serde_json::Value>, &str)> = vec![
        (json!({"nd0": {}, "nd-missing": {}}), None, "nd-missing"),
        (json!({"nd0": {"name": "lo"}}), None, "lo"),
        // nd0 is moved first (name order), then nd1's name is taken: nd0 comes back.
        (json!({"nd0": {}, "nd1": {"name": "lo"}}), None, "lo"),
        (json!({"nd0": {}, "nd1": {"name": "nd0"}}), None, "nd0"),
        (
            json!({"a/b": {}}),
            None,
            "invalid network device name \"a/b\"",
        ),
        (
            json!({"nd0": {"name": "x234567890123456"}}),
            None,
            "invalid network device name",
        ),
        (
            json!({"nd0": {}}),
            Some(json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}])),
            "unable to move network devices without a NET namespace",
        ),
    ];
    for (devs, nss, want) in cases {
        let mut cfg = base_config(&["sleep", "1000"]);
        cfg["linux"]["netDevices"] = devs.clone();
        if let Some(n) = nss {
            cfg["linux"]["namespaces"] = n;
        }
        let b = env.bundle(&cfg);
        let id = env.id();
        let mut c = env.cmd(&["create", "--bundle", b.path(), &id]);
        HeldNetNs::enter(&mut c, &host.path());
        let o = env.output(c);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{devs}: create succeeded");
        assert_one_line_error(&err);
        assert!(err.contains(want), "{devs}: {err}");
        env.assert_no_leaks(&id, Some(&b));
        let l = links_in(&host.path());
        assert_test_link(&l["nd0"], &format!("nd0 after {devs}"));
        assert!(l.contains_key("nd1"), "{devs}: {l:?}");
    }
}
