//! OCI hooks: each kind runs at its moment, in its namespace, with the state on stdin;
//! `timeout`; failure semantics (prestart/createRuntime/createContainer/startContainer fail the
//! operation and leave nothing behind; poststart/poststop failures are warnings and the other
//! hooks still run).
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

/// A hook run by the host's /bin/sh that records its stdin, mount and network namespace and
/// its name (appended to `order`) in `dir`.
fn record_hook(dir: &Path, name: &str) -> Value {
    let d = dir.display();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "cat > {d}/{name}.json; readlink /proc/self/ns/mnt > {d}/{name}.mnt; \
             readlink /proc/self/ns/net > {d}/{name}.net; echo {name} >> {d}/order")],
        "env": ["PATH=/usr/bin:/bin"]
    })
}

/// startContainer runs in the container after pivot_root: paths are the container's, and it
/// writes to the bind-mounted /out.
fn record_hook_in_container(name: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "cat > /out/{name}.json; readlink /proc/self/ns/mnt > /out/{name}.mnt; \
             readlink /proc/self/ns/net > /out/{name}.net; echo {name} >> /out/order")],
        "env": ["PATH=/bin"]
    })
}

fn failing_hook(code: i32) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("exit {code}")]})
}

fn hook_state(dir: &Path, name: &str) -> Value {
    let s = read(&dir.join(format!("{name}.json")));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{name} state {s:?}: {e}"))
}

fn order(dir: &Path) -> Vec<String> {
    read(&dir.join("order"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// All six kinds, in order, each at the right moment, with the state on stdin and in the
/// right mount and network namespace.
#[test]
fn all_hooks_timing_state_and_namespaces() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("hooks");
    let mut cfg = base_config(&["sh", "-c", "echo process >> /out/order"]);
    add_bind(&mut cfg, &dir, "/out", &["rbind", "rw"]);
    cfg["annotations"] = json!({"hook.test": "yes"});
    cfg["hooks"] = json!({
        "prestart": [record_hook(&dir, "prestart")],
        "createRuntime": [record_hook(&dir, "createRuntime")],
        "createContainer": [record_hook(&dir, "createContainer")],
        "startContainer": [record_hook_in_container("startContainer")],
        "poststart": [record_hook(&dir, "poststart")],
        "poststop": [record_hook(&dir, "poststop")]
    });
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let pid = env.pid(&id);
    assert_eq!(
        order(&dir),
        ["prestart", "createRuntime", "createContainer"]
    );
    let (host_mnt, host_net) = (host_ns("mnt"), host_ns("net"));
    let (ctr_mnt, ctr_net) = (pid_ns(pid, "mnt"), pid_ns(pid, "net"));
    assert_ne!(host_mnt, ctr_mnt);
    for (name, mnt, net) in [
        ("prestart", &host_mnt, &host_net),
        ("createRuntime", &host_mnt, &host_net),
        ("createContainer", &ctr_mnt, &ctr_net),
    ] {
        assert_eq!(
            read(&dir.join(format!("{name}.mnt"))).trim(),
            mnt,
            "{name} mnt"
        );
        assert_eq!(
            read(&dir.join(format!("{name}.net"))).trim(),
            net,
            "{name} net"
        );
        let st = hook_state(&dir, name);
        assert_eq!(st["id"], id.as_str(), "{name}");
        assert_eq!(st["pid"], pid, "{name}");
        assert_eq!(st["bundle"], b.path(), "{name}");
        assert_eq!(st["ociVersion"], "1.2.0", "{name}");
        assert_eq!(st["annotations"]["hook.test"], "yes", "{name}");
        let status = st["status"].as_str().unwrap();
        assert!(
            status == "creating" || status == "created",
            "{name}: {status}"
        );
    }

    env.ok(&["start", &id]);
    // poststart has run when start returns; startContainer ran before the process.
    let o = order(&dir);
    assert!(o.contains(&"poststart".to_string()), "{o:?}");
    env.wait_stopped(&id);
    let o = order(&dir);
    let pos = |n: &str| {
        o.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n}: {o:?}"))
    };
    assert!(pos("createContainer") < pos("startContainer"));
    assert!(pos("startContainer") < pos("process"), "{o:?}");
    assert!(pos("startContainer") < pos("poststart"), "{o:?}");
    assert!(!o.contains(&"poststop".to_string()));
    assert_eq!(read(&dir.join("startContainer.mnt")).trim(), ctr_mnt);
    assert_eq!(read(&dir.join("startContainer.net")).trim(), ctr_net);
    let st = hook_state(&dir, "startContainer");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["pid"], pid);
    assert_eq!(st["status"], "created");
    assert_eq!(read(&dir.join("poststart.mnt")).trim(), host_mnt);
    let st = hook_state(&dir, "poststart");
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["bundle"], b.path());

    env.ok(&["delete", &id]);
    assert_eq!(order(&dir).last().unwrap(), "poststop");
    let st = hook_state(&dir, "poststop");
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(read(&dir.join("poststop.mnt")).trim(), host_mnt);
    env.assert_no_leaks(&id, Some(&b));
}

/// Hooks of one kind run in the listed order; args, env (only the hook's own) are passed.
#[test]
fn hook_order_args_and_env() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("hooks");
    let d = dir.display().to_string();
    let mut cfg = base_config(&["true"]);
    let hooks: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"path": "/bin/sh",
                   "args": ["sh", "-c", format!("echo $0 $1 $FOO >> {d}/order; env >> {d}/env{i}"), format!("h{i}"), "arg1"],
                   "env": ["FOO=bar", "PATH=/usr/bin:/bin"]})
        })
        .collect();
    cfg["hooks"] = json!({"createRuntime": hooks});
    let b = env.bundle(&cfg);
    let id = env.id();
    let mut c = env.cmd(&["create", "--bundle", b.path(), &id]);
    c.env("RRUNTIME_TEST_LEAK", "1");
    assert!(env.output(c).status.success());
    assert_eq!(order(&dir), ["h1 arg1 bar", "h2 arg1 bar", "h3 arg1 bar"]);
    let e = read(&dir.join("env1"));
    assert!(e.contains("FOO=bar"), "{e}");
    assert!(
        !e.contains("RRUNTIME_TEST_LEAK"),
        "runtime env leaked into hook: {e}"
    );
    env.finish(&id, &b);
}

/// A failing prestart, createRuntime or createContainer hook fails create (naming the hook)
/// and leaves nothing behind; later hooks do not run.
#[test]
fn failing_create_hooks_fail_create() {
    require_root!();
    let env = Env::new();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let dir = env.scratch("hooks");
        let mut cfg = base_config(&["true"]);
        cfg["hooks"] = json!({
            kind: [failing_hook(3), record_hook(&dir, "after")],
            "poststop": [record_hook(&dir, "poststop")]
        });
        let err = env.create_fails(&cfg);
        assert!(
            err.contains(kind) && err.contains("exit status 3"),
            "{kind}: {err}"
        );
        assert!(
            !dir.join("after.json").exists() && order(&dir).is_empty(),
            "{kind}"
        );
    }
    // A hook binary that does not exist.
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({"prestart": [{"path": "/no/such/hook"}]});
    let err = env.create_fails(&cfg);
    assert!(err.contains("/no/such/hook"), "{err}");
}

/// A hook exceeding its timeout is killed and create fails quickly, leaving nothing.
#[test]
fn hook_timeout() {
    require_root!();
    let env = Env::new();
    for kind in ["prestart", "createContainer"] {
        let dir = env.scratch("hooks");
        // The hook's sleep is found by a marker in its environment: a createContainer hook runs
        // in the container's PID namespace, where `$$` is not a host pid.
        let mark = format!("RR_HOOK_MARK={}", unique("hook"));
        let mut cfg = base_config(&["true"]);
        cfg["hooks"] = json!({kind: [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {}/hookpid; exec env {mark} sleep 60", dir.display())],
            "timeout": 1
        }]});
        let t = std::time::Instant::now();
        let err = env.create_fails(&cfg);
        assert!(t.elapsed().as_secs() < 15, "{kind}: took {:?}", t.elapsed());
        assert!(
            err.contains(kind) && err.contains("timed out"),
            "{kind}: {err}"
        );
        // The hook ran (and got as far as its sleep: the timeout is 1 s).
        read(&dir.join("hookpid"));
        let alive: Vec<_> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
            })
            .map(|e| e.file_name())
            .collect();
        assert!(
            alive.is_empty(),
            "{kind}: the timed-out hook still runs: {alive:?}"
        );
    }
}

/// A failing startContainer hook fails start; the process never runs; delete cleans up.
#[test]
fn failing_start_container_hook() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("hooks");
    let mut cfg = base_config(&["sh", "-c", "echo process >> /out/order"]);
    add_bind(&mut cfg, &dir, "/out", &["rbind", "rw"]);
    cfg["hooks"] = json!({"startContainer": [failing_hook(5)]});
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let err = env.fails(&["start", &id]);
    assert_one_line_error(&err);
    assert!(err.contains("startContainer"), "{err}");
    env.wait_stopped(&id);
    assert!(order(&dir).is_empty(), "the process ran: {:?}", order(&dir));
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

/// Failing poststart and poststop hooks are warnings: the command succeeds and the remaining
/// hooks still run.
#[test]
fn failing_post_hooks_are_warnings() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("hooks");
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["hooks"] = json!({
        "poststart": [failing_hook(1), record_hook(&dir, "poststart2")],
        "poststop": [failing_hook(2), record_hook(&dir, "poststop2")]
    });
    let b = env.bundle(&cfg);
    let id = env.id();
    env.create(&b, &id);
    let log = env.tmp.join("log.json");
    let lp = log.to_str().unwrap();
    env.ok(&["--log", lp, "--log-format", "json", "start", &id]);
    assert_eq!(order(&dir), ["poststart2"]);
    assert_eq!(env.status(&id), "running");
    env.ok(&[
        "--log",
        lp,
        "--log-format",
        "json",
        "delete",
        "--force",
        &id,
    ]);
    assert_eq!(order(&dir), ["poststart2", "poststop2"]);
    env.assert_no_leaks(&id, Some(&b));
    let warnings: Vec<Value> = read(&log)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["level"] == "warning")
        .collect();
    for kind in ["poststart", "poststop"] {
        assert!(
            warnings
                .iter()
                .any(|w| w["msg"].as_str().unwrap().contains(kind)),
            "no warning for {kind}: {warnings:?}"
        );
    }
    // run: the same with the whole lifecycle in one command.
    let mut cfg = base_config(&["true"]);
    let dir = env.scratch("hooks");
    cfg["hooks"] = json!({
        "poststart": [failing_hook(1)],
        "poststop": [failing_hook(2), record_hook(&dir, "poststop2")]
    });
    assert_eq!(env.run(&cfg).code, Some(0));
    assert_eq!(order(&dir), ["poststop2"]);
}

/// issue 22 item 9: a startContainer hook without an `env` of its own runs with the container
/// process's environment (runc ≥ 1.2); one with its own env keeps it.
#[test]
fn start_container_hook_gets_the_process_env_issue_22_item_9() {
    require_root!();
    let env = Env::new();
    let dir = env.scratch("hooks");
    let mut cfg = base_config(&["true"]);
    cfg["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
    add_bind(&mut cfg, &dir, "/out", &["rbind", "rw"]);
    cfg["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "env > /out/no-env"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "env > /out/own-env"], "env": ["OWN=1"]}
    ]});
    env.run_ok(&cfg);
    let no_env = read(&dir.join("no-env"));
    assert!(no_env.contains("FROM_PROCESS=yes"), "{no_env}");
    assert!(no_env.contains("PATH=/bin"), "{no_env}");
    let own = read(&dir.join("own-env"));
    assert!(
        own.contains("OWN=1") && !own.contains("FROM_PROCESS"),
        "{own}"
    );
}

/// issue 22 item 10 (hooks, mounts): a failing hook reads `error running <kind> hook #<n>: …`,
/// a refused mount `error mounting "<src>" to rootfs at "<dst>": …` (runc's texts).
#[test]
fn hook_and_mount_error_texts_match_runc_issue_22_item_10() {
    require_root!();
    let env = Env::new();
    let mut cfg = base_config(&["true"]);
    cfg["hooks"] = json!({"createRuntime": [
        {"path": "/bin/true"}, failing_hook(3)
    ]});
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("error running createRuntime hook #1: "),
        "{err}"
    );
    let mut cfg = base_config(&["true"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/x", "type": "nosuchfs", "source": "nothing"}),
    );
    let err = env.create_fails(&cfg);
    assert!(
        err.contains("error mounting \"nothing\" to rootfs at \"/x\": "),
        "{err}"
    );
}
