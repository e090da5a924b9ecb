//! The basic lifecycle through the binary: create → state → start → kill → delete, run.
mod common;
use common::*;

#[test]
fn create_start_kill_delete() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sleep", "1000"]));
    let id = env.id();
    env.create(&b, &id);
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["bundle"], b.path());
    env.ok(&["start", &id]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", &id, "KILL"]);
    wait_until(10, "container to stop", || env.status(&id) == "stopped");
    assert_eq!(env.state(&id)["pid"], 0);
    env.ok(&["delete", &id]);
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn run_exit_status() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&base_config(&["sh", "-c", "exit 7"]));
    let id = env.id();
    let o = env.rt(&["run", "--bundle", b.path(), &id]);
    assert_eq!(o.status.code(), Some(7));
    env.assert_no_leaks(&id, Some(&b));
}

#[test]
fn init_and_exec_are_in_the_container_cgroup_in_every_hierarchy() {
    require_root!();
    let env = Env::new();
    // No cgroup namespace: /proc/self/cgroup shows the host paths.
    let b = env.bundle(&base_config(&[
        "sh",
        "-c",
        "cat /proc/self/cgroup; sleep 1000",
    ]));
    let id = env.id();
    let out = env.tmp.join("init-cgroups");
    let st = env
        .cmd(&["run", "-d", "--bundle", b.path(), &id])
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(10, "init output", || read(&out).lines().count() >= 2);
    let exec_out = env.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for text in [read(&out), exec_out] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines.len() >= 2, "{text}");
        for l in lines {
            assert!(
                l.ends_with(&format!("/{id}")),
                "not in the container's cgroup: {l}"
            );
        }
    }
    env.ok(&["delete", "--force", &id]);
    env.assert_no_leaks(&id, Some(&b));
}
