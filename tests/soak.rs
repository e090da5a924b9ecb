//! Load (issue #8): many sequential container lifecycles — alternately create/start/wait/
//! delete and `run` — checking that nothing accumulates: state dirs, fds of the caller, cgroup
//! directories, mounts, processes. The time per container is printed (mean of the first and
//! the last hundred, or tenth for short runs) but never asserted.
//!
//! `soak_short` (100 lifecycles) runs in `make test`; `soak_1000` is ignored there and run by
//! `make soak` (`SOAK_N` overrides the count).
mod common;
mod reliab_util;
use common::*;
use reliab_util::*;
use std::time::{Duration, Instant};

fn lifecycle(env: &Env, b: &Bundle, id: &str, mark: &str, run: bool) {
    if run {
        let o = run_deadline(
            env,
            &["run", "--bundle", b.path(), id],
            &[(MARK_VAR, mark)],
            120,
        );
        assert!(o.ok(), "run {id}: {}", o.stderr);
        return;
    }
    create_marked(env, b, id, mark);
    let pid = init_pid(env, id);
    let o = run_deadline(env, &["start", id], &[], 120);
    assert!(o.ok(), "start {id}: {}", o.stderr);
    wait_gone(pid);
    let o = run_deadline(env, &["delete", id], &[], 120);
    assert!(o.ok(), "delete {id}: {}", o.stderr);
}

fn soak(n: usize) {
    let _serial = serial();
    let env = Env::new();
    let mark = marker();
    let b = env.bundle(&marked_config(&["true"], &mark));
    // Ids share a prefix so leftovers can be counted in every cgroup hierarchy.
    let prefix = unique("soak");
    let fds = fd_count();
    let mut times = Vec::with_capacity(n);
    let check_every = (n / 10).max(1);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let _cleanup = DeleteOnPanic(&env, &id);
        let t = Instant::now();
        lifecycle(&env, &b, &id, &mark, i % 2 == 1);
        times.push(t.elapsed());
        if (i + 1) % check_every == 0 || i + 1 == n {
            assert!(
                root_entries(&env).is_empty(),
                "after {} lifecycles, left in the state root: {:?}",
                i + 1,
                root_entries(&env)
            );
            assert_eq!(fd_count(), fds, "after {} lifecycles: fds grew", i + 1);
            assert_eq!(
                cgroup_dirs_with_prefix(&prefix),
                0,
                "after {} lifecycles: cgroup dirs left",
                i + 1
            );
            let m = mounts_under(&b.dir);
            assert!(
                m.is_empty(),
                "after {} lifecycles: mounts left {m:?}",
                i + 1
            );
            assert_eq!(marked_pids(&mark), Vec::<i32>::new(), "processes left");
        }
    }
    let k = if n >= 200 { 100 } else { (n / 10).max(1) };
    let mean = |s: &[Duration]| s.iter().sum::<Duration>() / s.len() as u32;
    let (first, last) = (mean(&times[..k]), mean(&times[n - k..]));
    eprintln!(
        "soak: {n} lifecycles; mean time per container: first {k} {:.2} ms, last {k} {:.2} ms (ratio {:.2})",
        first.as_secs_f64() * 1e3,
        last.as_secs_f64() * 1e3,
        last.as_secs_f64() / first.as_secs_f64()
    );
}

#[test]
fn soak_short() {
    require_root!();
    soak(100);
}

#[test]
#[ignore = "long: run by `make soak`"]
fn soak_1000() {
    require_root!();
    let n = std::env::var("SOAK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    soak(n);
}
