//! Property tests over everything that parses outside input (issue #8): config.json parsing and
//! validation (and the checks `create` makes before touching the host), the state file reader,
//! container ids, signals, mount options and the command line. Whatever the input: no panic,
//! and every rejection is one clear line.
use proptest::prelude::*;
use proptest::test_runner::Config;
use rruntime::cli::{normalize_args, Cli};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// A valid config, the starting point of the mutations.
fn base_config() -> Value {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE"
    ]);
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0, "additionalGids": [1, 2]},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
            "oomScoreAdj": 0
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "h",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 5}]},
        "annotations": {"a": "b"},
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
                "memory": {"limit": 1048576, "swap": 2097152},
                "cpu": {"shares": 1024, "quota": 10000, "period": 100000, "cpus": "0-1"},
                "pids": {"limit": 100},
                "blockIO": {"weight": 100}
            },
            "cgroupsPath": "/a/b",
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
            "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "rootfsPropagation": "rprivate"
        }
    })
}

/// Strings that tend to break parsers and path handling.
fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "",
            "/",
            ".",
            "..",
            "../../etc",
            "/../../x",
            "a\0b",
            "\0",
            "\n",
            "CAP_NOPE",
            "-1",
            "18446744073709551616",
            "1e999",
            "NaN",
            "rw,ro",
            "SCMP_ACT_NOPE",
            "RLIMIT_NOPE",
            "pid",
            "bogus",
            "\u{202e}",
            "🦀",
            "%s%n",
            "a=b=c",
        ])
        .prop_map(str::to_string),
        (0usize..70_000).prop_map(|n| "a".repeat(n)),
    ]
}

fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            0i64,
            -1,
            i64::MIN,
            i64::MAX,
            i32::MAX as i64,
            i32::MIN as i64,
            u32::MAX as i64,
            65536,
        ])
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        odd_number(),
        odd_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(odd_string(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    ReplaceLeaf,
    Remove,
    Duplicate,
}

fn mutation() -> impl Strategy<Value = (prop::sample::Index, Mutation, Value)> {
    (
        any::<prop::sample::Index>(),
        prop_oneof![
            json_value().prop_map(Mutation::Replace),
            Just(Mutation::ReplaceLeaf),
            Just(Mutation::Remove),
            Just(Mutation::Duplicate),
        ],
        prop_oneof![odd_number(), odd_string().prop_map(Value::from)],
    )
}

fn mutate(v: &mut Value, (idx, m, leaf): &(prop::sample::Index, Mutation, Value)) {
    let mut ps = Vec::new();
    pointers(v, String::new(), &mut ps);
    let p = idx.get(&ps).clone();
    if p.is_empty() {
        if let Mutation::Replace(x) = m {
            *v = x.clone();
        }
        return;
    }
    let (parent, key) = p.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    let Some(par) = v.pointer_mut(parent) else {
        return;
    };
    match (m, par) {
        (Mutation::Replace(x), par) => {
            if let Some(t) =
                par.pointer_mut(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            {
                *t = x.clone();
            }
        }
        (Mutation::ReplaceLeaf, par) => {
            if let Some(t) =
                par.pointer_mut(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            {
                if !t.is_object() && !t.is_array() {
                    *t = leaf.clone();
                }
            }
        }
        (Mutation::Remove, Value::Object(o)) => {
            o.remove(&key);
        }
        (Mutation::Remove, Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        (Mutation::Duplicate, Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if let Some(x) = a.get(i).cloned() {
                    a.push(x);
                }
            }
        }
        _ => {}
    }
}

fn one_line(what: &str, e: &str) {
    assert!(!e.is_empty(), "{what}: empty error");
    assert!(!e.contains('\n'), "{what}: multi-line error {e:?}");
}

/// Everything `create` checks before it touches the host, on a parsed config.
fn check_config(data: &[u8]) {
    match rruntime::spec::parse_config(data) {
        Err(e) => {
            let e = e.to_string();
            one_line("parse_config", &e);
            assert!(e.starts_with("config.json: "), "{e}");
        }
        Ok(spec) => {
            if let Err(e) = rruntime::spec::validate(&spec) {
                one_line("validate", &e.to_string());
            }
            if let Err(e) = rruntime::namespaces::plan(&spec) {
                one_line("namespaces::plan", &e.to_string());
            }
            if let Some(c) = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref())
            {
                if let Err(e) = rruntime::capabilities::from_spec(c) {
                    one_line("capabilities", &e.to_string());
                }
            }
            if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                if let Err(e) = rruntime::seccomp::compile(s) {
                    one_line("seccomp", &e.to_string());
                }
            }
            for m in spec.mounts().iter().flatten() {
                let o = rruntime::rootfs::mount_opts::parse(m.options().as_deref().unwrap_or(&[]));
                let _ = o.data_string();
            }
            // The config is stored in state.json: it must serialise back.
            serde_json::to_vec(&spec).expect("a parsed config serialises");
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn config_from_random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        check_config(&data);
    }

    #[test]
    fn config_from_random_json(v in json_value()) {
        check_config(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn config_mutated(ms in prop::collection::vec(mutation(), 1..5)) {
        let mut v = base_config();
        for m in &ms {
            mutate(&mut v, m);
        }
        check_config(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn config_truncated(cut in any::<prop::sample::Index>()) {
        let data = serde_json::to_vec_pretty(&base_config()).unwrap();
        check_config(&data[..cut.index(data.len())]);
    }

    #[test]
    fn state_from_random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = rruntime::state::parse_state(&data) {
            one_line("parse_state", &e.to_string());
        }
    }

    #[test]
    fn state_mutated(ms in prop::collection::vec(mutation(), 1..5), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut v = valid_state();
        for m in &ms {
            mutate(&mut v, m);
        }
        let mut data = serde_json::to_vec(&v).unwrap();
        if truncate {
            data.truncate(cut.index(data.len()));
        }
        match rruntime::state::parse_state(&data) {
            Err(e) => one_line("parse_state", &e.to_string()),
            Ok(st) => {
                // What the commands derive from a state: status and the OCI state JSON.
                let _ = rruntime::container::init_alive(st.pid, st.pid_start);
                let s = rruntime::container::OciState::new(&st, rruntime::container::Status::Stopped);
                serde_json::to_string(&s).expect("state serialises");
            }
        }
    }

    #[test]
    fn ids(id in odd_string()) {
        let r = rruntime::state::validate_id(&id);
        let valid = !id.is_empty()
            && id.len() <= 255
            && id != "."
            && id != ".."
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
        prop_assert_eq!(r.is_ok(), valid, "{:?}", id);
        if let Err(e) = r {
            one_line("validate_id", &e.to_string());
        }
        if id.contains('/') || id.contains('\0') || id == ".." || id.len() > 255 {
            prop_assert!(!valid);
        }
    }

    #[test]
    fn signals(s in prop_oneof![
        odd_string(),
        any::<i64>().prop_map(|n| n.to_string()),
        (prop::sample::select(vec!["", "SIG", "sig", "RTMIN", "RTMAX", "SIGRTMIN", "rtmax"]),
         prop::sample::select(vec!["", "+", "-", "+1", "-1", "+99", "-99", "+-1", "1"]))
            .prop_map(|(a, b)| format!("{a}{b}")),
        prop::sample::select(vec!["KILL", "TERM", "HUP", "sigusr1", "9", "0", "65", "64"]).prop_map(str::to_string),
    ]) {
        match rruntime::commands::kill::parse_signal(&s) {
            Ok(n) => prop_assert!((0..=64).contains(&n), "{:?} -> {}", s, n),
            Err(e) => one_line("parse_signal", &e.to_string()),
        }
    }

    #[test]
    fn mount_options(opts in prop::collection::vec(prop_oneof![
        odd_string(),
        prop::sample::select(rruntime::rootfs::mount_opts::all_option_names()).prop_map(str::to_string),
    ], 0..12)) {
        let o = rruntime::rootfs::mount_opts::parse(&opts);
        // Known options are never passed to the filesystem as data.
        let known = rruntime::rootfs::mount_opts::all_option_names();
        for d in &o.data {
            prop_assert!(!known.contains(&d.as_str()), "{:?} ended up in data", d);
        }
    }

    #[test]
    fn command_lines(args in prop::collection::vec(cli_token(), 0..8)) {
        let mut argv: Vec<OsString> = vec!["rruntime".into()];
        argv.extend(args);
        let norm = normalize_args(argv.clone());
        prop_assert_eq!(norm.len(), argv.len());
        use clap::Parser;
        if let Err(e) = Cli::try_parse_from(norm) {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("");
            // Without arguments clap shows the help (on stderr, exit 1): not a rejection.
            let help = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            prop_assert!(
                first.starts_with("error:") || !e.use_stderr() || help,
                "unclear usage error {:?}", text
            );
        }
    }
}

/// Tokens command lines are made of: real subcommands and flags (both dash styles), values,
/// odd strings and bytes that are not UTF-8.
fn cli_token() -> impl Strategy<Value = OsString> {
    prop_oneof![
        prop::sample::select(vec![
            "create",
            "start",
            "run",
            "state",
            "kill",
            "delete",
            "list",
            "spec",
            "exec",
            "ps",
            "pause",
            "resume",
            "events",
            "update",
            "features",
            "checkpoint",
            "restore",
            "--root",
            "-root",
            "--root=/x",
            "-root=/x",
            "--log",
            "--log-format",
            "json",
            "xml",
            "--debug",
            "--systemd-cgroup",
            "--rootless",
            "--bundle",
            "-b",
            "--pid-file",
            "--console-socket",
            "--preserve-fds",
            "-1",
            "4294967296",
            "--force",
            "-f",
            "--all",
            "-a",
            "-d",
            "--detach",
            "-no-subreaper",
            "--",
            "-",
            "id",
            "KILL",
            "--format",
            "-q",
            "-t",
            "--help",
            "-h",
            "--version",
            "-v",
            "=",
            "--=",
            "-=",
        ])
        .prop_map(OsString::from),
        odd_string().prop_map(OsString::from),
        prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..8)
            .prop_map(OsString::from_vec),
    ]
}

fn valid_state() -> Value {
    let spec = rruntime::spec::parse_config(&serde_json::to_vec(&base_config()).unwrap())
        .expect("base config parses");
    let st = rruntime::state::State {
        id: "c1".into(),
        pid: 1,
        pid_start: 42,
        bundle: "/b".into(),
        rootfs: "/b/rootfs".into(),
        created: "2024-01-01T00:00:00.000000000Z".into(),
        owner: "root".into(),
        annotations: Default::default(),
        cgroup: Default::default(),
        config: spec,
        host_mounts: vec!["/b/rootfs/proc".into()],
        rootless: false,
        creator: Some((2, 3)),
    };
    serde_json::to_value(&st).unwrap()
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    for depth in [100, 1_000, 10_000, 100_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let doc = format!(
                "{{\"ociVersion\":\"1.2.0\",\"annotations\":{}1{}}}",
                open.repeat(depth),
                close.repeat(depth)
            );
            check_config(doc.as_bytes());
            if let Err(e) = rruntime::state::parse_state(doc.as_bytes()) {
                one_line("parse_state", &e.to_string());
            }
        }
    }
}

#[test]
fn base_config_is_valid() {
    // The mutations start from a config that passes everything.
    let spec = rruntime::spec::parse_config(&serde_json::to_vec(&base_config()).unwrap()).unwrap();
    rruntime::spec::validate(&spec).unwrap();
    rruntime::state::parse_state(&serde_json::to_vec(&valid_state()).unwrap()).unwrap();
}

#[test]
fn clap_definitions_are_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
