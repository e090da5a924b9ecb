//! The cgroup commands through the binary (`ps`, `pause`, `resume`, `update`, `events`,
//! `kill --all` on paused containers), and proof that the limits are enforced, not just written:
//! OOM kills at a memory limit (reported by `events`), a fork bomb stopped by a pids limit, a cpu
//! quota measured from cpuacct, cpuset pinning, device rules, the freezer, and `update` changing
//! what a running container may do.
//!
//! Containers run busybox. Most of them run a tiny command server: the init reads one shell
//! command line at a time from a fifo in a bind-mounted scratch dir (`/s`) and writes the
//! command's output and exit status back there, so a test can make the container do something
//! at a chosen moment (there is no `exec` on this branch) and wait for the real result.
//!
//! The last test re-runs a subset inside a private mount namespace whose /sys/fs/cgroup is a
//! plain cgroup2 mount (what a pure v2 host looks like to rruntime); see `v2_subset_inner`.
mod common;
use common::*;

use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: i64 = 1 << 20;

/// Reads commands from the fifo /s/cmd, runs each with `sh -c`, writes /s/out.N and /s/rc.N.
/// The fifo is held open read-write for the server's whole life: opening it never blocks, it
/// never reads EOF, and a line written while a command runs waits in the pipe. (busybox `read`
/// returns 1 when interrupted; the loop then simply reads again.)
const SERVER: &str = r#"exec 3<>/s/cmd; n=0; while :; do read -r c <&3 || continue; n=$((n+1)); sh -c "$c" >/s/out.$n 2>&1 3<&-; echo $? >/s/rc.$n; done"#;

/// A container of a test: its env, id, bundle and scratch dir (mounted at /s inside).
struct Ctr<'a> {
    env: &'a Env,
    id: String,
    bundle: Bundle,
    scratch: PathBuf,
    n: std::cell::Cell<u32>,
}

/// base_config running `script` with `sh -c`, the scratch dir at /s, and `resources` merged into
/// linux.resources (which keeps the base's device rules unless `resources` has its own).
fn config(script: &str, scratch: &Path, resources: Value) -> Value {
    let mut cfg = base_config(&["sh", "-c", script]);
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/s", "type": "bind", "source": scratch, "options": ["rbind", "rw"]
    }));
    if let Value::Object(m) = resources {
        for (k, v) in m {
            cfg["linux"]["resources"][k] = v;
        }
    }
    cfg
}

impl<'a> Ctr<'a> {
    /// Creates (not starts) a container running `script`.
    fn create(env: &'a Env, script: &str, resources: Value) -> Ctr<'a> {
        let c = Ctr::prepare(env, script, resources);
        env.create(&c.bundle, &c.id);
        c
    }

    /// Creates and starts it.
    fn run(env: &'a Env, script: &str, resources: Value) -> Ctr<'a> {
        let c = Ctr::create(env, script, resources);
        env.ok(&["start", &c.id]);
        c
    }

    /// Writes the bundle only.
    fn prepare(env: &'a Env, script: &str, resources: Value) -> Ctr<'a> {
        let scratch = env.tmp.join(unique("scratch"));
        std::fs::create_dir_all(&scratch).unwrap();
        nix::unistd::mkfifo(
            &scratch.join("cmd"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let bundle = env.bundle(&config(script, &scratch, resources));
        std::fs::create_dir_all(bundle.rootfs().join("s")).unwrap();
        Ctr {
            env,
            id: env.id(),
            bundle,
            scratch,
            n: Default::default(),
        }
    }

    fn s(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    fn pid(&self) -> i32 {
        self.env.state(&self.id)["pid"].as_i64().unwrap() as i32
    }

    /// The container's directory in the hierarchy holding `controller` (the cgroup2 one for ""
    /// or when the host serves `controller` from cgroup2), from its state.json.
    fn cgroup(&self, controller: &str) -> PathBuf {
        let st: Value = serde_json::from_slice(
            &std::fs::read(self.env.root.join(&self.id).join("state.json")).unwrap(),
        )
        .unwrap();
        let controller = if host().on_v2(controller) {
            ""
        } else {
            controller
        };
        for h in st["cgroup"]["hierarchies"].as_array().unwrap() {
            let ctrls = h["controllers"].as_str().unwrap();
            if (controller.is_empty() && ctrls.is_empty())
                || (!controller.is_empty() && ctrls.split(',').any(|c| c == controller))
            {
                return PathBuf::from(h["dir"].as_str().unwrap());
            }
        }
        panic!("no {controller:?} hierarchy in the state of {}", self.id);
    }

    fn cg_read(&self, controller: &str, file: &str) -> String {
        std::fs::read_to_string(self.cgroup(controller).join(file))
            .unwrap_or_else(|e| panic!("read {controller}/{file}: {e}"))
            .trim()
            .to_string()
    }

    /// `key value` from a flat-keyed cgroup file.
    fn cg_key(&self, controller: &str, file: &str, key: &str) -> u64 {
        let text = self.cg_read(controller, file);
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {key} in {file}: {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The memory limit the kernel enforces: `memory.max` on v2, `memory.limit_in_bytes` on v1
    /// (None: unlimited, v2's "max" or v1's page-rounded huge number).
    fn memory_limit(&self) -> Option<u64> {
        let v = if host().on_v2("memory") {
            self.cg_read("memory", "memory.max")
        } else {
            self.cg_read("memory", "memory.limit_in_bytes")
        };
        match v.as_str() {
            "max" => None,
            n => Some(n.parse::<u64>().unwrap()).filter(|&n| n < 1 << 60),
        }
    }

    /// OOM kills counted in the cgroup (v2 `memory.events`, v1 `memory.oom_control`).
    fn oom_kills(&self) -> u64 {
        if host().on_v2("memory") {
            self.cg_key("memory", "memory.events", "oom_kill")
        } else {
            self.cg_key("memory", "memory.oom_control", "oom_kill")
        }
    }

    /// Times the cgroup hit its memory limit (v2 `memory.events` max, v1 `memory.failcnt`).
    fn memory_limit_hits(&self) -> u64 {
        if host().on_v2("memory") {
            self.cg_key("memory", "memory.events", "max")
        } else {
            self.cg_read("memory", "memory.failcnt").parse().unwrap()
        }
    }

    /// CPU time used so far, in ns (v2 `cpu.stat` usage_usec, v1 `cpuacct.usage`).
    fn cpu_usage_ns(&self) -> u64 {
        if host().on_v2("cpu") {
            self.cg_key("cpu", "cpu.stat", "usage_usec") * 1000
        } else {
            self.cg_read("cpuacct", "cpuacct.usage").parse().unwrap()
        }
    }

    /// (quota, period) in µs, quota None for unlimited (v2 `cpu.max`, v1 `cpu.cfs_*_us`).
    fn cpu_quota(&self) -> (Option<i64>, u64) {
        if host().on_v2("cpu") {
            let v = self.cg_read("cpu", "cpu.max");
            let (q, p) = v.split_once(' ').unwrap();
            (q.parse().ok(), p.parse().unwrap())
        } else {
            let q: i64 = self.cg_read("cpu", "cpu.cfs_quota_us").parse().unwrap();
            (
                (q >= 0).then_some(q),
                self.cg_read("cpu", "cpu.cfs_period_us").parse().unwrap(),
            )
        }
    }

    /// Frozen as the kernel reports it (v2 `cgroup.events` frozen, v1 `freezer.state`).
    fn frozen(&self) -> bool {
        if host().on_v2("freezer") {
            self.cg_key("", "cgroup.events", "frozen") == 1
        } else {
            match self.cg_read("freezer", "freezer.state").as_str() {
                "FROZEN" => true,
                "THAWED" => false,
                other => panic!("freezer.state {other}"),
            }
        }
    }

    /// Runs `cmd` through the command server; returns (exit status, output).
    fn sh(&self, cmd: &str) -> (i32, String) {
        let n = self.n.get() + 1;
        self.n.set(n);
        let fifo = self.s("cmd");
        // Opening the write end without blocking fails (ENXIO) until the server has it open.
        let mut f = None;
        wait_until(20, "the command server to be up", || {
            f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .ok();
            f.is_some()
        });
        f.unwrap().write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let rc = self.s(&format!("rc.{n}"));
        wait_until(30, &format!("command {cmd:?} to finish"), || {
            read(&rc).ends_with('\n')
        });
        let code = read(&rc).trim().parse().unwrap();
        (code, read(&self.s(&format!("out.{n}"))))
    }

    /// `ps --format json` as a list.
    fn ps_json(&self) -> Vec<i32> {
        let out = self.env.ok(&["ps", "--format", "json", &self.id]);
        serde_json::from_str::<Option<Vec<i32>>>(out.trim())
            .unwrap_or_else(|e| panic!("ps json {out:?}: {e}"))
            .unwrap_or_default()
    }

    fn kill_and_delete(&self) {
        self.env.ok(&["kill", &self.id, "KILL"]);
        wait_until(30, "the container to stop", || {
            self.env.status(&self.id) == "stopped"
        });
        self.env.ok(&["delete", &self.id]);
        self.env.assert_no_leaks(&self.id, Some(&self.bundle));
    }
}

/// A background rruntime process (e.g. `events`), killed if the test fails before it ends.
struct Bg {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Bg {
    fn spawn(env: &Env, args: &[&str]) -> Bg {
        let out = env.tmp.join(unique("bg-out"));
        let err = env.tmp.join(unique("bg-err"));
        let child = env
            .cmd(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Bg {
            child: Some(child),
            out,
            err,
        }
    }

    fn lines(&self) -> Vec<String> {
        read(&self.out).lines().map(str::to_string).collect()
    }

    /// Waits (bounded) for the process to exit by itself; returns its exit code.
    fn wait(&mut self, secs: u64) -> i32 {
        let child = self.child.as_mut().unwrap();
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "background rruntime did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Asserts a failed command gave exactly one line on stderr containing `want`, no panic.
fn one_line_error(env: &Env, args: &[&str], want: &str) {
    let err = env.fails(args);
    assert_one_line_error(&err);
    assert!(
        err.contains(want),
        "{args:?}: {err:?} does not mention {want:?}"
    );
}

/// `{"memory": mem}`, plus `swap` = `limit` where the host has swap: memory+swap no larger
/// than memory, so going over the limit means the OOM killer and not swapping.
fn no_swap(mut mem: Value) -> Value {
    if host().swap {
        mem["swap"] = mem["limit"].clone();
    }
    json!({ "memory": mem })
}

/// The host can keep a container from swapping (no swap at all, or swap accounting).
fn can_deny_swap() -> bool {
    !host().swap || host().swap_accounting
}

#[test]
fn memory_limit_oom_kills_and_events_reports_it() {
    require_root!();
    skip_unless!(
        can_deny_swap(),
        "the host has swap but no swap accounting: a memory limit does not mean an OOM kill"
    );
    let env = Env::new();
    let c = Ctr::run(&env, SERVER, no_swap(json!({"limit": 16 * MIB})));
    assert_eq!(c.memory_limit(), Some(16 * MIB as u64));

    let mut ev = Bg::spawn(&env, &["events", "--interval", "100ms", &c.id]);
    // The first stats line: the OOM notification is registered before the stream starts.
    wait_until(30, "a first stats line", || !ev.lines().is_empty());

    // Well below the limit: fine.
    assert_eq!(c.sh("dd if=/dev/zero of=/dev/null bs=4M count=1").0, 0);
    // 64 MiB in one buffer against 16 MiB (and no swap: memorySwap equals the limit): the
    // kernel OOM-kills dd.
    let (rc, out) = c.sh("dd if=/dev/zero of=/dev/null bs=64M count=1");
    assert_eq!(rc, 128 + libc::SIGKILL, "dd was not OOM-killed: {out}");
    assert!(c.oom_kills() >= 1, "no oom_kill counted");
    assert!(c.memory_limit_hits() > 0);

    let want = json!({"type": "oom", "id": c.id});
    wait_until(30, "an oom event", || {
        ev.lines()
            .iter()
            .any(|l| serde_json::from_str::<Value>(l).ok().as_ref() == Some(&want))
    });
    for l in ev.lines() {
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert!(v["type"] == "stats" || v["type"] == "oom", "{l}");
        assert_eq!(v["id"], c.id.as_str());
        if v["type"] == "stats" {
            assert_eq!(v["data"]["memory"]["usage"]["limit"], 16 * MIB);
        }
    }
    // The container (its init) survived; the stream ends when it stops.
    assert_eq!(env.status(&c.id), "running");
    c.kill_and_delete();
    assert_eq!(ev.wait(30), 0, "events: {}", read(&ev.err));
}

#[test]
fn pids_limit_stops_a_fork_bomb_at_ten() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(&env, SERVER, json!({"pids": {"limit": 10}}));
    assert_eq!(c.cg_read("pids", "pids.max"), "10");
    let sleepers = || {
        c.ps_json()
            .into_iter()
            .filter(|&p| cmdline(p) == "sleep 1000")
            .count()
    };
    // The bomb: a shell forking sleepers until it cannot (busybox sh then gives up).
    let bomb = "while :; do sleep 1000 & done";
    let (rc, out) = c.sh(bomb);
    assert_ne!(rc, 0);
    assert!(out.contains("can't fork"), "{out}");
    // At the failed fork: the init, the bomb's shell and 8 children = 10 tasks; the shell is
    // gone now. (The last children may still be between fork and exec of sleep.)
    assert_eq!(c.cg_read("pids", "pids.current"), "9");
    assert_eq!(c.ps_json().len(), 9);
    wait_until(30, "8 sleepers", || sleepers() == 8);
    let denied: u64 = c
        .cg_read("pids", "pids.events")
        .strip_prefix("max ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(denied >= 1);
    let st: Value = serde_json::from_str(env.ok(&["events", "--stats", &c.id]).trim()).unwrap();
    assert_eq!(st["data"]["pids"]["limit"], 10);
    assert_eq!(st["data"]["pids"]["current"], 9);

    // Raised by update: the same bomb now ends at 12 tasks.
    env.ok(&["update", "--pids-limit", "12", &c.id]);
    assert_eq!(c.cg_read("pids", "pids.max"), "12");
    assert_ne!(c.sh(bomb).0, 0);
    assert_eq!(c.cg_read("pids", "pids.current"), "11");
    wait_until(30, "10 sleepers", || sleepers() == 10);
    c.kill_and_delete();
}

/// The container's directory holding `file` (its v1 controller's, or the cgroup2 one).
fn cg_file(c: &Ctr, file: &str) -> PathBuf {
    let st: Value =
        serde_json::from_slice(&std::fs::read(c.env.root.join(&c.id).join("state.json")).unwrap())
            .unwrap();
    st["cgroup"]["hierarchies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| PathBuf::from(h["dir"].as_str().unwrap()).join(file))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no {file} for {}", c.id))
}

/// issue 22 item 12: `pids.limit: 0` in config.json, and `update --pids-limit 0` or an
/// `update -r` document with `"pids": {"limit": 0}`, give `pids.max` 1 (runc 1.4), not "max";
/// a `pids` object without `limit` changes nothing.
#[test]
fn pids_limit_zero_means_one_issue_22_item_12() {
    require_root!();
    let env = Env::new();
    let c = Ctr::create(&env, "sleep 1000", json!({"pids": {"limit": 0}}));
    let max = cg_file(&c, "pids.max");
    assert_eq!(read(&max).trim(), "1", "config limit 0");
    env.ok(&["update", "--pids-limit", "5", &c.id]);
    assert_eq!(read(&max).trim(), "5");
    env.ok(&["update", "--pids-limit", "0", &c.id]);
    assert_eq!(read(&max).trim(), "1", "update --pids-limit 0");
    env.ok(&["update", "--pids-limit", "5", &c.id]);
    let f = env.tmp.join(unique("res.json"));
    std::fs::write(&f, r#"{"pids":{}}"#).unwrap();
    env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
    assert_eq!(read(&max).trim(), "5", "pids without limit");
    std::fs::write(&f, r#"{"pids":{"limit":0}}"#).unwrap();
    env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
    assert_eq!(read(&max).trim(), "1", "update -r with limit 0");
    c.kill_and_delete();
}

/// A block device of this host (major, minor): a real disk, else any (loop, ram).
fn some_block_device() -> Option<(u64, u64)> {
    let mut devs: Vec<(bool, u64, u64)> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let (a, b) = dev.trim().split_once(':')?;
            let virt = name.starts_with("loop") || name.starts_with("ram");
            Some((virt, a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    devs.sort();
    devs.first().map(|&(_, a, b)| (a, b))
}

/// issue 22 item 13: `update -r` with `blockIO.throttle*Device` entries writes them:
/// `blkio.throttle.*_device` on v1, `io.max` on v2; a later entry for the same device
/// replaces the rate.
#[test]
fn update_writes_blkio_throttles_issue_22_item_13() {
    require_root!();
    let Some((maj, min)) = some_block_device() else {
        skip!("no block device on this host");
    };
    let env = Env::new();
    let c = Ctr::create(&env, "sleep 1000", json!({}));
    let f = env.tmp.join(unique("res.json"));
    let dev = |rate: u64| json!([{"major": maj, "minor": min, "rate": rate}]);
    std::fs::write(
        &f,
        json!({"blockIO": {
            "throttleReadBpsDevice": dev(1048576), "throttleWriteBpsDevice": dev(2097152),
            "throttleReadIOPSDevice": dev(100), "throttleWriteIOPSDevice": dev(200)}})
        .to_string(),
    )
    .unwrap();
    env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
    let d = format!("{maj}:{min}");
    let v1 = [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
    ];
    let st: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&c.id).join("state.json")).unwrap())
            .unwrap();
    let dirs: Vec<PathBuf> = st["cgroup"]["hierarchies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| PathBuf::from(h["dir"].as_str().unwrap()))
        .collect();
    if let Some(blkio) = dirs.iter().find(|d| d.join(v1[0]).exists()) {
        for (file, want) in [
            ("blkio.throttle.read_bps_device", "1048576"),
            ("blkio.throttle.write_bps_device", "2097152"),
            ("blkio.throttle.read_iops_device", "100"),
            ("blkio.throttle.write_iops_device", "200"),
        ] {
            let got = read(&blkio.join(file));
            assert!(got.contains(&format!("{d} {want}")), "{file}: {got:?}");
        }
        std::fs::write(
            &f,
            json!({"blockIO": {"throttleReadBpsDevice": dev(4096)}}).to_string(),
        )
        .unwrap();
        env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
        let got = read(&blkio.join("blkio.throttle.read_bps_device"));
        assert!(got.contains(&format!("{d} 4096")), "{got:?}");
    } else if let Some(io) = dirs.iter().find(|d| d.join("io.max").exists()) {
        let got = read(&io.join("io.max"));
        assert!(
            got.contains(&format!(
                "{d} rbps=1048576 wbps=2097152 riops=100 wiops=200"
            )),
            "io.max: {got:?}"
        );
    } else {
        // (Written past libtest's capture, as `skip!` does, so the line is counted.)
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP update_writes_blkio_throttles_issue_22_item_13: neither blkio.throttle.* nor \
             io.max in the container's cgroup"
        );
    }
    c.kill_and_delete();
}

/// CPU time (ns) the cgroup used during `wall`.
fn cpu_used(c: &Ctr, wall: Duration) -> f64 {
    let usage = || c.cpu_usage_ns();
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(wall);
    let (u1, t1) = (usage(), Instant::now());
    (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64
}

#[test]
fn cpu_quota_keeps_a_busy_loop_near_twenty_percent() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(
        &env,
        "while :; do :; done",
        json!({"cpu": {"quota": 20000, "period": 100000}}),
    );
    assert_eq!(c.cpu_quota(), (Some(20000), 100000));
    // Once the loop runs into the quota, measure over 1.5 s.
    wait_until(30, "the quota to throttle the loop", || {
        !c.cg_read("cpu", "cpu.stat").contains("nr_throttled 0")
    });
    let share = cpu_used(&c, Duration::from_millis(1500));
    eprintln!("busy loop with a 0.2 CPU quota used {:.3} of a core", share);
    // At most the quota (with a margin for accounting granularity); at least enough to show
    // the loop really ran (the machine may be busy with other work).
    assert!((0.05..=0.30).contains(&share), "cpu share {share}");
    let throttled = || {
        c.cg_read("cpu", "cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(throttled() > 0);

    // update --cpu-quota -1 lifts the cap: no more throttling, clearly more than 0.2 CPU.
    env.ok(&["update", "--cpu-quota", "-1", &c.id]);
    assert_eq!(c.cpu_quota(), (None, 100000));
    let before = throttled();
    let share = cpu_used(&c, Duration::from_millis(1000));
    eprintln!("without the quota: {share:.3} of a core");
    // (How much more it gets depends on the load of the machine; no more throttling does not.)
    assert_eq!(throttled(), before);
    c.kill_and_delete();
}

/// The CPU a task last ran on (field 39 of /proc/<pid>/stat).
fn last_cpu(pid: i32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(36).unwrap().parse().unwrap()
}

#[test]
fn cpuset_pins_the_process_and_update_moves_it() {
    require_root!();
    skip_unless!(host().cpus >= 2, "needs 2 CPUs");
    skip_unless!(host().has("cpuset"), "no cpuset controller");
    let env = Env::new();
    let c = Ctr::run(
        &env,
        "grep Cpus_allowed_list /proc/self/status > /s/cpus; while :; do :; done",
        json!({"cpu": {"cpus": "1"}}),
    );
    wait_until(30, "the init to report its cpus", || {
        read(&c.s("cpus")).ends_with('\n')
    });
    assert_eq!(read(&c.s("cpus")).split_whitespace().last(), Some("1"));
    let pid = c.pid();
    for _ in 0..5 {
        assert_eq!(last_cpu(pid), 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["update", "--cpuset-cpus", "0", &c.id]);
    assert_eq!(c.cg_read("cpuset", "cpuset.cpus"), "0");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Cpus_allowed_list:") && l.ends_with("\t0")),
        "{status}"
    );
    wait_until(15, "the loop to move to CPU 0", || last_cpu(pid) == 0);
    c.kill_and_delete();
}

#[test]
fn device_rules_are_enforced() {
    require_root!();
    let env = Env::new();
    // runc's semantics: the spec's rules first, then the default allowlist (which lets every
    // device node be created and /dev/null & co. be used). b 7:0 is denied by the leading
    // deny-all, b 7:1 allowed for reading by the spec.
    let c = Ctr::run(
        &env,
        SERVER,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "minor": 1, "access": "r"}
        ]}),
    );
    // v1 shows the rules in devices.list; v2 has an eBPF program and no file (the behaviour
    // below is what counts on both).
    if !host().on_v2("devices") {
        let list = c.cg_read("devices", "devices.list");
        assert!(!list.contains("a *:* rwm"), "{list}");
    }
    assert_eq!(c.sh("mknod /tmp/l0 b 7 0 && mknod /tmp/l1 b 7 1").0, 0);
    let (rc, out) = c.sh("head -c 1 /tmp/l0");
    assert_ne!(rc, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    // Allowed for reading: the open gets past the cgroup (the loop device itself may be
    // unbound or missing: any error but EPERM).
    let (_, out) = c.sh("head -c 1 /tmp/l1");
    assert!(!out.contains("Operation not permitted"), "{out}");
    let (rc, out) = c.sh("echo x > /tmp/l1");
    assert_ne!(rc, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    // A character device outside the allowlist (/dev/kmsg, 1:11) cannot be opened either,
    // while the default ones can.
    let (rc, out) = c.sh("mknod /tmp/kmsg c 1 11 && echo hi > /tmp/kmsg");
    assert_ne!(rc, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(
        c.sh("echo x > /dev/null && head -c 1 /dev/zero >/dev/null")
            .0,
        0
    );
    c.kill_and_delete();
}

fn counter(c: &Ctr) -> Option<u64> {
    read(&c.s("cnt")).trim().parse().ok()
}

#[test]
fn pause_freezes_and_resume_continues() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(
        &env,
        "i=0; while :; do i=$((i+1)); echo $i > /s/cnt; done",
        json!({}),
    );
    wait_until(30, "the counter to run", || {
        counter(&c).is_some_and(|v| v > 10)
    });
    env.ok(&["pause", &c.id]);
    assert_eq!(env.status(&c.id), "paused");
    assert!(c.frozen());
    // Frozen: the file does not change across a bounded wait.
    let frozen = read(&c.s("cnt"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(&c.s("cnt")), frozen);
    let cpu0 = c.cpu_usage_ns();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cpu_usage_ns(), cpu0, "a frozen task used CPU");
    // ps works on a paused container; pausing again is refused like runc.
    assert!(c.ps_json().contains(&c.pid()));
    one_line_error(&env, &["pause", &c.id], "container not running");
    assert_eq!(env.status(&c.id), "paused");

    env.ok(&["resume", &c.id]);
    assert_eq!(env.status(&c.id), "running");
    assert!(!c.frozen());
    let base = frozen.trim().parse::<u64>().unwrap_or(0);
    wait_until(30, "the counter to go on", || {
        counter(&c).is_some_and(|v| v > base + 10)
    });
    one_line_error(&env, &["resume", &c.id], "container not paused");
    c.kill_and_delete();
}

#[test]
fn created_container_can_be_paused_like_runc() {
    require_root!();
    let env = Env::new();
    let c = Ctr::create(&env, "echo started > /s/started; sleep 1000", json!({}));
    assert_eq!(env.status(&c.id), "created");
    env.ok(&["pause", &c.id]);
    assert_eq!(env.status(&c.id), "paused");
    one_line_error(
        &env,
        &["start", &c.id],
        "cannot start a container in the paused state",
    );
    env.ok(&["resume", &c.id]);
    assert_eq!(env.status(&c.id), "created");
    env.ok(&["start", &c.id]);
    wait_until(30, "the process to start", || {
        read(&c.s("started")) == "started\n"
    });
    c.kill_and_delete();
}

#[test]
fn kill_reaches_paused_containers() {
    require_root!();
    let env = Env::new();
    // SIGKILL to the init of a paused container: it must not stay stuck in the freezer.
    let a = Ctr::run(&env, "sleep 1000 & sleep 1000", json!({}));
    env.ok(&["pause", &a.id]);
    env.ok(&["kill", &a.id, "KILL"]);
    wait_until(30, "the paused container to die", || {
        env.status(&a.id) == "stopped"
    });
    env.ok(&["delete", &a.id]);
    env.assert_no_leaks(&a.id, Some(&a.bundle));

    // kill --all: every process, paused or not.
    let b = Ctr::run(&env, "sleep 1000 & sleep 1000 & sleep 1000", json!({}));
    wait_until(30, "3 processes", || b.ps_json().len() == 3);
    let pids = b.ps_json();
    env.ok(&["pause", &b.id]);
    // A non-fatal signal is held while paused (the container stays paused).
    env.ok(&["kill", "--all", &b.id, "STOP"]);
    assert_eq!(env.status(&b.id), "paused");
    env.ok(&["kill", "--all", &b.id, "KILL"]);
    wait_until(30, "the paused container to die", || {
        env.status(&b.id) == "stopped"
    });
    for p in pids {
        wait_until(15, "every process to be gone", || {
            !Path::new(&format!("/proc/{p}")).exists()
        });
    }
    env.ok(&["delete", &b.id]);
    env.assert_no_leaks(&b.id, Some(&b.bundle));

    // delete --force of a paused container.
    let d = Ctr::run(&env, "sleep 1000", json!({}));
    env.ok(&["pause", &d.id]);
    env.ok(&["delete", "--force", &d.id]);
    env.assert_no_leaks(&d.id, Some(&d.bundle));
}

#[test]
fn update_memory_takes_effect() {
    require_root!();
    skip_unless!(
        can_deny_swap(),
        "the host has swap but no swap accounting: a memory limit does not mean an OOM kill"
    );
    let env = Env::new();
    let c = Ctr::run(&env, SERVER, no_swap(json!({"limit": 64 * MIB})));
    // `update --memory V`, with `--memory-swap V` too where the host has swap.
    let update = |v: &str| {
        let mut a = vec!["update", "--memory", v];
        if host().swap {
            a.extend(["--memory-swap", v]);
        }
        a.push(&c.id);
        env.ok(&a);
    };
    let alloc32 = "dd if=/dev/zero of=/dev/null bs=32M count=1";
    assert_eq!(c.sh(alloc32).0, 0);

    update("16m");
    assert_eq!(c.memory_limit(), Some(16 * MIB as u64));
    assert_eq!(
        c.sh(alloc32).0,
        128 + libc::SIGKILL,
        "32 MiB allowed under 16 MiB"
    );

    update("48M");
    assert_eq!(c.memory_limit(), Some(48 * MIB as u64));
    assert_eq!(c.sh(alloc32).0, 0);

    // Recorded in the state, other resources untouched.
    let st: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&c.id).join("state.json")).unwrap())
            .unwrap();
    let res = &st["config"]["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 48 * MIB);
    assert_eq!(res["devices"][0]["allow"], false);

    // A limit below the current usage: v1 refuses it (EBUSY; one line, the old one stays).
    if !host().on_v2("memory") {
        one_line_error(&env, &["update", "--memory", "4k", &c.id], "memory limit");
        assert_eq!(c.memory_limit(), Some(48 * MIB as u64));
    }

    // -1: unlimited memory (and swap).
    update("-1");
    assert_eq!(c.memory_limit(), None);
    assert_eq!(c.sh("dd if=/dev/zero of=/dev/null bs=80M count=1").0, 0);
    if !host().on_v2("memory") {
        c.kill_and_delete();
        return;
    }
    // v2 takes a limit below the usage (like runc, which just writes memory.max): the kernel
    // reclaims, then OOM-kills what does not fit, here the container's init.
    update("4k");
    assert_eq!(c.memory_limit(), Some(4096));
    wait_until(30, "the OOM-killed container to stop", || {
        env.status(&c.id) == "stopped"
    });
    assert!(c.oom_kills() >= 1, "no oom_kill counted");
    env.ok(&["delete", &c.id]);
    env.assert_no_leaks(&c.id, Some(&c.bundle));
}

#[test]
fn update_resources_json_from_stdin_and_file() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(&env, "sleep 1000", json!({"memory": {"limit": 64 * MIB}}));
    let doc = json!({
        "memory": {"limit": 32 * MIB, "reservation": 16 * MIB},
        "cpu": {"quota": 30000, "period": 100000, "shares": 512},
        "pids": {"limit": 7},
        // Present in full documents (CRI sends them): never applied by update, like runc.
        "devices": [{"allow": true, "access": "rwm"}]
    });
    let mut child = env
        .cmd(&["update", "--resources", "-", &c.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(c.memory_limit(), Some(32 * MIB as u64));
    if host().on_v2("memory") {
        assert_eq!(c.cg_read("memory", "memory.low"), (16 * MIB).to_string());
    } else {
        assert_eq!(
            c.cg_read("memory", "memory.soft_limit_in_bytes"),
            (16 * MIB).to_string()
        );
    }
    assert_eq!(c.cpu_quota(), (Some(30000), 100000));
    if host().on_v2("cpu") {
        // runc's (and crun's) conversion of shares 512 to a v2 weight.
        assert_eq!(c.cg_read("cpu", "cpu.weight"), "59");
    } else {
        assert_eq!(c.cg_read("cpu", "cpu.shares"), "512");
    }
    assert_eq!(c.cg_read("pids", "pids.max"), "7");
    // Devices are never changed by update: the container still cannot create-and-use /dev/kmsg
    // (v1 also lists the rules; v2 has no such file).
    if !host().on_v2("devices") {
        let list = c.cg_read("devices", "devices.list");
        assert!(
            !list.contains("a *:* rwm"),
            "devices were changed by update: {list}"
        );
    }

    // From a file; zeros mean "unchanged".
    let f = env.tmp.join(unique("res.json"));
    std::fs::write(&f, r#"{"memory":{"limit":0},"pids":{},"cpu":{"quota":-1}}"#).unwrap();
    env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
    assert_eq!(c.memory_limit(), Some(32 * MIB as u64));
    assert_eq!(c.cg_read("pids", "pids.max"), "7");
    assert_eq!(c.cpu_quota(), (None, 100000));

    // Bad documents: one line, nothing changed.
    std::fs::write(&f, r#"{"memory":{"limit":"lots"}}"#).unwrap();
    one_line_error(
        &env,
        &["update", "-r", f.to_str().unwrap(), &c.id],
        "invalid resources JSON",
    );
    one_line_error(
        &env,
        &["update", "-r", "/nonexistent/r.json", &c.id],
        "/nonexistent/r.json",
    );
    // stdin closed (the harness gives /dev/null): empty document.
    one_line_error(
        &env,
        &["update", "-r", "-", &c.id],
        "invalid resources JSON",
    );
    assert_eq!(c.memory_limit(), Some(32 * MIB as u64));
    c.kill_and_delete();
}

/// The file a blockIO weight lands in on this host, and the value 300 becomes there: BFQ's
/// weight file where BFQ is loaded (v1 `blkio.bfq.weight`, v2 `io.bfq.weight`: the value
/// itself), else v1's CFQ `blkio.weight` or v2's `io.weight` (runc's conversion to [1, 10000]).
fn blkio_weight_file() -> Option<(&'static str, &'static str)> {
    let h = host();
    let v2 = h.on_v2("blkio") || h.on_v2("io");
    let ctrl = if v2 { "io" } else { "blkio" };
    let candidates: [(&str, &str); 2] = if v2 {
        [("io.bfq.weight", "300"), ("io.weight", "2930")]
    } else {
        [("blkio.bfq.weight", "300"), ("blkio.weight", "300")]
    };
    candidates.into_iter().find(|(f, _)| h.child_has(ctrl, f))
}

#[test]
fn blkio_weight_is_applied_or_refused_in_one_line() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(&env, "sleep 1000", json!({}));
    let v2 = host().on_v2("io");
    match blkio_weight_file() {
        Some((file, want)) => {
            env.ok(&["update", "--blkio-weight", "300", &c.id]);
            let got = c.cg_read(if v2 { "io" } else { "blkio" }, file);
            // io.bfq.weight and io.weight read "default N" (plus per-device lines).
            let got = got
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("default ")
                .to_string();
            assert_eq!(got, want, "{file}");
        }
        None => {
            // No I/O scheduler that takes weights (e.g. mq-deadline without BFQ): refused with
            // one line, like runc, and the container goes on.
            one_line_error(&env, &["update", "--blkio-weight", "300", &c.id], "weight");
            assert_eq!(env.status(&c.id), "running");
        }
    }
    c.kill_and_delete();
}

/// A nested `cgroupsPath` (parents made and removed by the runtime), hugetlb limits and, on
/// cgroup v2, the `unified` map and the delegation of controllers down the parents'
/// `cgroup.subtree_control` (systemd does not enable hugetlb at the root, so the runtime must).
#[test]
fn nested_cgroups_path_hugetlb_and_unified() {
    require_root!();
    let h = host();
    let env = Env::new();
    let top = unique("rruntime-nested");
    let hugetlb = h.has("hugetlb") && h.has_hugepage(2 << 20);
    let mut res = json!({"pids": {"limit": 20}});
    if hugetlb {
        res["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 * MIB}]);
    }
    let unified = h.is_v2() && h.has("memory");
    if unified {
        res["unified"] = json!({"memory.high": (48 * MIB).to_string()});
    }
    let c = Ctr::prepare(&env, "sleep 1000", res);
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(c.bundle.dir.join("config.json")).unwrap()).unwrap();
    cfg["linux"]["cgroupsPath"] = json!(format!("/{top}/a/{}", c.id));
    c.bundle.write_config(&cfg);
    env.create(&c.bundle, &c.id);
    env.ok(&["start", &c.id]);
    let pids_dir = c.cgroup("pids");
    assert!(
        pids_dir.ends_with(format!("{top}/a/{}", c.id)),
        "{}",
        pids_dir.display()
    );
    assert_eq!(c.cg_read("pids", "pids.max"), "20");
    if hugetlb {
        assert_eq!(
            c.cg_read("hugetlb", "hugetlb.2MB.max").trim(),
            (4 * MIB).to_string()
        );
        let st: Value = serde_json::from_str(env.ok(&["events", "--stats", &c.id]).trim()).unwrap();
        assert!(st["data"]["hugetlb"].get("2MB").is_some(), "{st}");
    }
    if h.on_v2("pids") {
        // Every parent delegates what the container's cgroup uses.
        let mut d = pids_dir.clone();
        while d.pop() && d.starts_with(h.unified.as_ref().unwrap()) {
            let sc = read(&d.join("cgroup.subtree_control"));
            for ctrl in ["pids"]
                .into_iter()
                .chain(hugetlb.then_some("hugetlb"))
                .chain(unified.then_some("memory"))
            {
                assert!(
                    sc.split_whitespace().any(|x| x == ctrl),
                    "{} does not delegate {ctrl}: {sc:?}",
                    d.display()
                );
            }
            if d == *h.unified.as_ref().unwrap() {
                break;
            }
        }
    }
    if unified {
        assert_eq!(c.cg_read("memory", "memory.high"), (48 * MIB).to_string());
        // update takes unified keys too (runc's update has no flag for them, but a
        // --resources document carries them).
        let f = env.tmp.join(unique("res.json"));
        std::fs::write(
            &f,
            json!({"unified": {"memory.high": (40 * MIB).to_string()}}).to_string(),
        )
        .unwrap();
        env.ok(&["update", "-r", f.to_str().unwrap(), &c.id]);
        assert_eq!(c.cg_read("memory", "memory.high"), (40 * MIB).to_string());
    }
    c.kill_and_delete();
    // The parents the runtime made are gone too.
    assert!(
        find_cgroup_dirs(&top).is_empty(),
        "{:?}",
        find_cgroup_dirs(&top)
    );
}

#[test]
fn ps_json_and_table() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(&env, "sleep 1000 & exec sleep 2000", json!({}));
    let init = c.pid();
    wait_until(30, "the background process", || c.ps_json().len() == 2);
    let pids = c.ps_json();
    assert!(pids.contains(&init), "{pids:?} lacks the init {init}");
    let other = *pids.iter().find(|&&p| p != init).unwrap();
    wait_until(30, "both processes to exec sleep", || {
        cmdline(init) == "sleep 2000" && cmdline(other) == "sleep 1000"
    });
    let raw = env.ok(&["ps", "-f", "json", &c.id]);
    assert!(
        raw.starts_with('[') && raw.ends_with("]\n") && !raw.contains(' '),
        "{raw:?}"
    );

    // Table: ps -ef filtered to the container, header kept.
    let table = env.ok(&["ps", &c.id]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].split_whitespace().any(|t| t == "PID"), "{table}");
    assert!(lines.iter().any(|l| l.ends_with("sleep 2000")), "{table}");
    assert!(lines.iter().any(|l| l.ends_with("sleep 1000")), "{table}");
    // ps arguments after the id go to ps, dashes included.
    let table = env.ok(&["ps", &c.id, "-o", "pid,args"]);
    let mut rows: Vec<&str> = table.lines().skip(1).map(str::trim).collect();
    rows.sort();
    let mut want = vec![format!("{init} sleep 2000"), format!("{other} sleep 1000")];
    want.sort();
    assert_eq!(rows, want, "{table}");
    assert_eq!(env.ok(&["ps", &c.id, "-f", "-e"]).lines().count(), 3);
    one_line_error(
        &env,
        &["ps", &c.id, "-o", "comm"],
        "couldn't find PID field in ps output",
    );
    one_line_error(
        &env,
        &["ps", "--format", "xml", &c.id],
        "invalid format option",
    );
    one_line_error(&env, &["ps", &c.id, "--no-such-ps-option"], "ps");

    // Stopped: nothing left, not an error (runc prints Go's encoding of an empty list).
    env.ok(&["kill", &c.id, "KILL"]);
    wait_until(30, "the container to stop", || {
        env.status(&c.id) == "stopped"
    });
    assert_eq!(env.ok(&["ps", "--format", "json", &c.id]), "null\n");
    assert_eq!(env.ok(&["ps", &c.id]).lines().count(), 1);
    env.ok(&["delete", &c.id]);
    env.assert_no_leaks(&c.id, Some(&c.bundle));
}

#[test]
fn events_stats_schema_and_stream() {
    require_root!();
    let env = Env::new();
    let c = Ctr::run(
        &env,
        "sleep 1000 & while :; do :; done",
        json!({"memory": {"limit": 32 * MIB}, "pids": {"limit": 20}, "cpu": {"quota": 10000, "period": 100000}}),
    );
    wait_until(30, "two processes", || c.ps_json().len() == 2);
    wait_until(30, "the quota to throttle the loop", || {
        !c.cg_read("cpu", "cpu.stat").contains("nr_throttled 0")
    });
    let out = env.ok(&["events", "--stats", &c.id]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let ev: Value = serde_json::from_str(out.trim()).unwrap();
    let keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["data", "id", "type"]);
    assert!(
        out.starts_with(&format!(r#"{{"type":"stats","id":"{}","data":{{"#, c.id)),
        "{out}"
    );
    let d = &ev["data"];
    for k in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ] {
        assert!(d.get(k).is_some(), "data.{k} missing: {d}");
    }
    let cpu = &d["cpu"]["usage"];
    assert!(cpu["total"].as_u64().unwrap() > 0);
    assert!(cpu["kernel"].is_u64() && cpu["user"].is_u64());
    if !host().on_v2("cpu") {
        // cpuacct.usage_percpu; cgroup v2 has no per-CPU usage.
        assert!(!cpu["percpu"].as_array().unwrap().is_empty());
    }
    assert!(d["cpu"]["throttling"]["periods"].as_u64().unwrap() > 0);
    assert!(d["cpu"]["throttling"]["throttledPeriods"].as_u64().unwrap() > 0);
    let mem = &d["memory"];
    assert_eq!(mem["usage"]["limit"], 32 * MIB);
    assert!(mem["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(mem["usage"]["failcnt"].is_u64());
    for k in ["swap", "kernel", "kernelTCP"] {
        assert!(mem[k]["limit"].is_u64(), "memory.{k}: {mem}");
    }
    // memory.stat as the kernel names it: v1 rss/total_rss, v2 anon.
    let rss = if host().on_v2("memory") {
        &mem["raw"]["anon"]
    } else if mem["raw"]["total_rss"].is_u64() {
        &mem["raw"]["total_rss"]
    } else {
        &mem["raw"]["rss"]
    };
    assert!(rss.is_u64(), "{mem}");
    assert_eq!(d["pids"], json!({"current": 2, "limit": 20}));
    assert!(!d["cpuset"]["cpus"].as_array().unwrap().is_empty());
    assert!(d["cpuset"]["mems"].is_array());
    assert!(d["hugetlb"].is_object());
    assert_eq!(d["network_interfaces"], Value::Null);

    // The stream: a stats line per interval until the container stops, then exit 0.
    let mut ev = Bg::spawn(&env, &["events", "--interval=200ms", &c.id]);
    wait_until(30, "two stats lines", || ev.lines().len() >= 2);
    for l in ev.lines() {
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["data"]["pids"]["limit"], 20);
    }
    env.ok(&["kill", &c.id, "KILL"]);
    assert_eq!(ev.wait(30), 0, "{}", read(&ev.err));
    assert!(read(&ev.err).is_empty(), "{}", read(&ev.err));
    env.ok(&["delete", &c.id]);
    env.assert_no_leaks(&c.id, Some(&c.bundle));
}

#[test]
fn error_paths_are_one_clear_line() {
    require_root!();
    let env = Env::new();
    for args in [
        &["ps", "nope"][..],
        &["ps", "--format", "json", "nope"],
        &["pause", "nope"],
        &["resume", "nope"],
        &["events", "nope"],
        &["events", "--stats", "nope"],
        &["update", "--memory", "1m", "nope"],
        &["update", "--memory", "bad", "nope"],
    ] {
        one_line_error(&env, args, "container \"nope\" does not exist");
    }
    one_line_error(&env, &["pause", "../x"], "invalid container id");

    // A stopped container.
    let c = Ctr::run(&env, "true", json!({}));
    wait_until(30, "the container to stop", || {
        env.status(&c.id) == "stopped"
    });
    one_line_error(&env, &["pause", &c.id], "container not running");
    one_line_error(&env, &["resume", &c.id], "container not paused");
    one_line_error(
        &env,
        &["update", "--memory", "32m", &c.id],
        "container not running",
    );
    one_line_error(
        &env,
        &["events", &c.id],
        &format!("container with id {} is not running", c.id),
    );
    one_line_error(&env, &["events", "--stats", &c.id], "is not running");

    // Bad values, checked on a live container.
    let r = Ctr::run(&env, "sleep 1000", json!({}));
    for (args, want) in [
        (
            &["update", "--memory", "12x"][..],
            "invalid value for memory: invalid suffix: 'x'",
        ),
        (
            &["update", "--memory", "-2"],
            "invalid value for memory: invalid size: '-2'",
        ),
        (
            &["update", "--memory-swap", "lots"],
            "invalid value for memory-swap",
        ),
        (
            &["update", "--memory-reservation", "1.2.3m"],
            "invalid value for memory-reservation",
        ),
        (
            &["update", "--cpu-quota", "abc"],
            "invalid value for cpu-quota",
        ),
        (
            &["update", "--cpu-period", "-5"],
            "invalid value for cpu-period",
        ),
        (
            &["update", "--pids-limit", "ten"],
            "invalid value \"ten\" for flag -pids-limit",
        ),
        (
            &["update", "--blkio-weight", "99999"],
            "invalid value for blkio-weight",
        ),
        (&["update", "--cpuset-cpus", "7-3"], "cpuset.cpus"),
        (&["update", "--l3-cache-schema", "L3:0=f"], "Intel RDT/CAT"),
        (&["events", "--interval", "5"], "missing unit in duration"),
        (
            &["events", "--interval", "0s"],
            "duration interval must be greater than 0",
        ),
        (
            &["events", "--interval", "-1s"],
            "duration interval must be greater than 0",
        ),
        (
            &["events", "--interval", "fast"],
            "invalid value \"fast\" for flag -interval",
        ),
    ] {
        let mut a = args.to_vec();
        a.push(&r.id);
        one_line_error(&env, &a, want);
    }
    // cpu shares below v1's minimum of 2: v1 refuses them (runc reads the kernel's clamped
    // value back and fails the same way); v2 maps every value up to 2 to cpu.weight 1.
    if host().on_v2("cpu") {
        env.ok(&["update", "--cpu-share", "1", &r.id]);
        assert_eq!(r.cg_read("cpu", "cpu.weight"), "1");
    } else if host().has("cpu") {
        one_line_error(&env, &["update", "--cpu-share", "1", &r.id], "cpu-shares");
    }
    // Nothing was changed by the failures; kernel-memory is accepted (and ignored) like runc.
    let out = env.rt(&["update", "--kernel-memory", "10m", &r.id]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignored"));
    assert_eq!(env.status(&r.id), "running");
    r.kill_and_delete();
    env.ok(&["delete", &c.id]);
    env.assert_no_leaks(&c.id, Some(&c.bundle));
}

// ---- the same commands against a pure cgroup v2 view ----

const V2_INNER: &str = "RRUNTIME_CGROUPS_CLI_V2_INNER";

/// Re-runs `v2_subset_inner` in a private mount namespace where a cgroup2 hierarchy is mounted
/// at /sys/fs/cgroup, so the rruntime binary started from there sees a pure v2 host.
#[test]
fn v2_subset_in_private_mount_ns() {
    require_root!();
    if std::env::var_os(V2_INNER).is_some() {
        return;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "v2_subset_inner",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(V2_INNER, "1");
    // SAFETY: unshare is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the inner v2 subset");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner v2 subset failed:\n{stdout}\n{stderr}"
    );
}

fn pure_v2_view() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make mounts private");
    let _ = umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH);
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount cgroup2 on /sys/fs/cgroup");
}

#[test]
#[ignore = "run by its outer test in a private mount namespace"]
fn v2_subset_inner() {
    if std::env::var_os(V2_INNER).is_none() {
        skip!("only inside the private mount namespace v2_subset_in_private_mount_ns makes");
    }
    pure_v2_view();
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    eprintln!("cgroup2 controllers here: {:?}", controllers.trim());
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let env = Env::new();

    // A pids limit needs the pids controller in cgroup2: where it is missing, create fails with
    // one line naming it and leaves nothing behind.
    if !has("pids") {
        let p = Ctr::prepare(&env, "sleep 1000", json!({"pids": {"limit": 10}}));
        let err = env.fails(&["create", "--bundle", p.bundle.path(), &p.id]);
        assert_one_line_error(&err);
        assert!(err.contains("pids"), "{err}");
        env.assert_no_leaks(&p.id, Some(&p.bundle));
    }

    let hugetlb = has("hugetlb") && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    let mut res = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "b", "major": 7, "minor": 1, "access": "r"}
    ]});
    if hugetlb {
        res["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 * MIB}]);
    }
    let c = Ctr::run(&env, SERVER, res);
    let dir = c.cgroup("");
    assert!(dir.starts_with("/sys/fs/cgroup"), "{}", dir.display());
    let st: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&c.id).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(st["cgroup"]["mode"], "v2");
    if hugetlb {
        assert_eq!(
            read(&dir.join("hugetlb.2MB.max")).trim(),
            (4 * MIB).to_string()
        );
    }

    // ps: cgroup.procs of the v2 directory.
    assert_eq!(c.sh("sleep 1000 &").0, 0);
    wait_until(30, "two processes", || c.ps_json().len() == 2);
    assert!(c.ps_json().contains(&c.pid()));
    assert_eq!(env.ok(&["ps", &c.id]).lines().count(), 3);

    // Device rules (eBPF program): denied block device, allowed one, /dev/null.
    assert_eq!(c.sh("mknod /tmp/l0 b 7 0 && mknod /tmp/l1 b 7 1").0, 0);
    let (rc, out) = c.sh("head -c 1 /tmp/l0");
    assert!(rc != 0 && out.contains("Operation not permitted"), "{out}");
    let (_, out) = c.sh("head -c 1 /tmp/l1");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert_eq!(c.sh("echo x > /dev/null").0, 0);

    // pause/resume through cgroup.freeze (no controller needed).
    env.ok(&["pause", &c.id]);
    assert_eq!(env.status(&c.id), "paused");
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    one_line_error(&env, &["pause", &c.id], "container not running");
    env.ok(&["resume", &c.id]);
    assert_eq!(env.status(&c.id), "running");
    assert!(read(&dir.join("cgroup.events")).contains("frozen 0"));
    assert_eq!(c.sh("true").0, 0);

    // events --stats works with what this hierarchy has.
    let out = env.ok(&["events", "--stats", &c.id]);
    let ev: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], c.id.as_str());
    if hugetlb {
        assert!(ev["data"]["hugetlb"].get("2MB").is_some(), "{out}");
    }

    // The stream: without a memory controller there are no OOM notifications; rruntime says
    // so once and streams stats until the container stops.
    let mut ev = Bg::spawn(&env, &["events", "--interval", "100ms", &c.id]);
    wait_until(30, "two stats lines", || ev.lines().len() >= 2);
    if !has("memory") {
        assert!(
            read(&ev.err).contains("no OOM notifications"),
            "{}",
            read(&ev.err)
        );
    }

    // update of a resource whose controller this cgroup2 lacks: one line naming it.
    if !has("pids") {
        one_line_error(&env, &["update", "--pids-limit", "5", &c.id], "pids");
    }
    if !has("memory") {
        one_line_error(&env, &["update", "--memory", "16m", &c.id], "memory");
    }
    assert_eq!(env.status(&c.id), "running");

    // kill --all of a paused container (cgroup.kill), then delete.
    env.ok(&["pause", &c.id]);
    env.ok(&["kill", "--all", &c.id, "KILL"]);
    wait_until(30, "the container to stop", || {
        env.status(&c.id) == "stopped"
    });
    assert_eq!(ev.wait(30), 0, "events: {}", read(&ev.err));
    env.ok(&["delete", &c.id]);
    env.assert_no_leaks(&c.id, Some(&c.bundle));
}
