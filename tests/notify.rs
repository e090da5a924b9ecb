//! What the runtime's environment passes through: `NOTIFY_SOCKET` (sd_notify proxied from the
//! container to the host, `start` waiting for READY=1 as runc does) and `LISTEN_FDS` (socket
//! activation fds handed to the init).
mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// `rruntime ARGS…` with extra environment variables (output through files, [`Env::output`]).
fn rt_env(env: &Env, args: &[&str], vars: &[(&str, &std::path::Path)]) -> std::process::Output {
    let mut c = env.cmd(args);
    c.envs(vars.iter().copied());
    env.output(c)
}

#[test]
fn notify_socket_ready_is_relayed_by_start() {
    require_root!();
    let env = Env::new();
    let host = env.tmp.join("host-notify.sock");
    let listener = UnixDatagram::bind(&host).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    let o = rt_env(
        &env,
        &["create", "--bundle", b.path(), &id],
        &[("NOTIFY_SOCKET", &host)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // `start` blocks until the container says READY (here: the test, speaking for it).
    let mut start = ChildGuard::new(
        env.cmd(&["start", &id])
            .env("NOTIFY_SOCKET", &host)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let inner = env.root.join(&id).join("notify/notify.sock");
    wait_until(10, "the container's notify socket", || inner.exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        start.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "start returned before READY"
    );
    // The container sees the socket at /run/notify/notify.sock, named by NOTIFY_SOCKET.
    let seen = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $NOTIFY_SOCKET; test -S /run/notify/notify.sock && echo socket",
    ]);
    assert_eq!(seen, "/run/notify/notify.sock\nsocket\n");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"STATUS=starting", &inner)
        .unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"READY=1", &inner)
        .unwrap();
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    for _ in 0..3 {
        // recv without a control buffer: the barrier's pipe fd is discarded (closed), which
        // is what releases `start`.
        let n = listener.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        got,
        vec![
            "READY=1\n".to_string(),
            format!("MAINPID={pid}\n"),
            "BARRIER=1".to_string()
        ]
    );
    let status = start.wait_timeout(20);
    assert!(status.success());
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn notify_socket_start_returns_when_init_exits() {
    require_root!();
    let env = Env::new();
    let host = env.tmp.join("host-notify.sock");
    let _listener = UnixDatagram::bind(&host).unwrap();
    let b = env.bundle(&base_config(&["sleep", "1"]));
    let id = env.id();
    let o = rt_env(
        &env,
        &["run", "--detach", "--bundle", b.path(), &id],
        &[("NOTIFY_SOCKET", &host)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.status(&id), "stopped");
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn listen_fds_reach_the_init() {
    require_root!();
    let env = Env::new();
    let f = env.tmp.join("activation");
    std::fs::write(&f, "socket-activated\n").unwrap();
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID; cat <&3",
    ]));
    let id = env.id();
    let out = env.tmp.join("out");
    let file = std::fs::File::open(&f).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    // LISTEN_PID must be the runtime's own pid: a shell sets it to its $$ and execs the runtime.
    let mut c = std::process::Command::new("/bin/sh");
    c.args(["-c", "LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(bin())
        .arg("--root")
        .arg(&env.root)
        .args(["run", "--bundle", b.path(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap());
    fds_in_child(&mut c, &[(raw, 3)]);
    let status = c.status().unwrap();
    assert!(status.success());
    assert_eq!(read(&out), "1 1\nsocket-activated\n");
    env.assert_no_leaks(&id, Some(&b));
    // Not for us (LISTEN_PID of another process): nothing is passed.
    let id2 = env.id();
    let one = std::path::Path::new("1");
    let o = rt_env(
        &env,
        &["run", "--bundle", b.path(), &id2],
        &[("LISTEN_FDS", one), ("LISTEN_PID", one)],
    );
    assert!(
        !o.status.success(),
        "fd 3 reached the container without activation"
    );
}
