//! Every action and operator, enforced by the kernel.

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{errno_of, exit_code, in_child, killed_by, profile, try_mkdir};

fn getpid_with(args: [u64; 6]) -> i64 {
    // SAFETY: getpid ignores its arguments; the filter sees them.
    unsafe {
        libc::syscall(
            libc::SYS_getpid,
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            args[5],
        )
    }
}

#[test]
fn allow_control() {
    let f = profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOENT);
}

#[test]
fn errno_action() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::EPERM);

    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    }));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOSYS);
}

#[test]
fn default_errno_ret() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOSYS);
}

#[test]
fn kill_process() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let ws = in_child(&f, || errno_of(getpid_with([0; 6])) + 50);
    assert_eq!(killed_by(ws), Signal::SIGSYS);
}

#[test]
fn kill_and_kill_thread() {
    for act in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"] {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": act}]
        }));
        let ws = in_child(&f, || errno_of(getpid_with([0; 6])) + 50);
        assert_eq!(killed_by(ws), Signal::SIGSYS, "{act}");
    }
}

#[test]
fn trap() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_TRAP"}]
    }));
    assert_eq!(killed_by(in_child(&f, try_mkdir)), Signal::SIGSYS);
}

#[test]
fn trace_without_tracer_is_enosys() {
    // With no tracer attached the kernel fails a SECCOMP_RET_TRACE syscall with ENOSYS.
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]
    }));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOSYS);
}

#[test]
fn log_allows() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["mkdir", "exit_group"], "action": "SCMP_ACT_LOG"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::ENOENT);
    // A syscall of the default action is refused.
    let getppid = || errno_of(unsafe { libc::syscall(libc::SYS_getppid) });
    assert_eq!(exit_code(in_child(&f, getppid)), libc::EPERM);
}

#[test]
fn default_deny_allows_listed() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let ws = in_child(&f, || {
        let ok = getpid_with([0; 6]) > 0;
        let denied = errno_of(unsafe { libc::syscall(libc::SYS_getppid) });
        if ok && denied == libc::EPERM {
            0
        } else {
            1
        }
    });
    assert_eq!(exit_code(ws), 0);
}

/// Checks `(args, errno)` cases in one child: exits with 0, or with the 1-based index of the
/// first case whose errno differs.
fn check_getpid_cases(f: &rruntime::seccomp::CompiledFilter, cases: &[([u64; 6], i32)]) {
    let ws = in_child(f, || {
        for (i, (args, want)) in cases.iter().enumerate() {
            if errno_of(getpid_with(*args)) != *want {
                return i as i32 + 1;
            }
        }
        0
    });
    let code = exit_code(ws);
    assert_eq!(code, 0, "case {:?}", cases.get(code as usize - 1));
}

#[test]
fn operators_with_64bit_values() {
    let v: u64 = 0xdead_beef_0000_0005;
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
             "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 1, "value": v, "op": "SCMP_CMP_GT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12,
             "args": [{"index": 2, "value": v, "op": "SCMP_CMP_GE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 3, "value": v, "op": "SCMP_CMP_LT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14,
             "args": [{"index": 4, "value": v, "op": "SCMP_CMP_LE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 15,
             "args": [{"index": 5, "value": v, "op": "SCMP_CMP_NE"}]},
        ]
    }));
    // Base: every rule fails.
    let base = [0, v, v - 1, v, v + 1, v];
    let with = |i: usize, x: u64| {
        let mut a = base;
        a[i] = x;
        a
    };
    let cases = [
        (base, 0),
        (with(0, v), 10),
        (with(0, 5), 0),
        (with(0, 0xdead_beef), 0),
        (with(1, v + 1), 11),
        (with(1, 0xdead_bef0_0000_0000), 11),
        (with(1, 0xdead_beee_ffff_ffff), 0),
        (with(2, v), 12),
        (with(2, u64::MAX), 12),
        (with(2, 0xffff_ffff), 0),
        (with(3, v - 1), 13),
        (with(3, 0xffff_ffff), 13),
        (with(3, 0xdead_bef0_0000_0000), 0),
        (with(4, v), 14),
        (with(4, 6), 14),
        (with(4, v + (1 << 32)), 0),
        (with(5, 5), 15),
        (with(5, v ^ (1 << 63)), 15),
    ];
    check_getpid_cases(&f, &cases);
}

#[test]
fn masked_eq_and_rules_or_args_and() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // (a0 & 0xff00000000ff) == 0x120000000034 AND a1 == 7
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20, "args": [
                {"index": 0, "value": 0xff00_0000_00ffu64, "valueTwo": 0x1200_0000_0034u64,
                 "op": "SCMP_CMP_MASKED_EQ"},
                {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
            // OR a2 == 1, OR a2 == 2 (two rules, same action)
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20, "args": [
                {"index": 2, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20, "args": [
                {"index": 2, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let cases = [
        ([0x1200_ab00_0034, 7, 0, 0, 0, 0], 20),
        ([0x12ff_ffff_ff34, 7, 0, 0, 0, 0], 20),
        ([0x1300_0000_0034, 7, 0, 0, 0, 0], 0),
        ([0x1200_0000_0035, 7, 0, 0, 0, 0], 0),
        ([0x1200_0000_0034, 8, 0, 0, 0, 0], 0),
        ([0, 0, 1, 0, 0, 0], 20),
        ([0, 0, 2, 0, 0, 0], 20),
        ([0, 0, 3, 0, 0, 0], 0),
        ([0, 0, 1 << 32 | 1, 0, 0, 0], 0),
    ];
    check_getpid_cases(&f, &cases);
}

#[test]
fn personality_allow_list() {
    // Docker's form: several ALLOW rules for one syscall under a denying default.
    let rules: Vec<_> = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
        .iter()
        .map(|v| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .chain([json!({"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"})])
        .collect();
    let f = profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}));
    let ws = in_child(&f, || {
        let p = |v: u64| errno_of(unsafe { libc::syscall(libc::SYS_personality, v) });
        if p(0xffff_ffff) != 0 {
            return 1;
        }
        if p(0) != 0 || p(0xffff_ffff) != 0 {
            return 2;
        }
        if p(6) != libc::EPERM {
            return 3;
        }
        // The kernel reads an unsigned int, but the filter sees all 64 bits.
        if p(0x1_ffff_ffff) != libc::EPERM {
            return 4;
        }
        0
    });
    assert_eq!(exit_code(ws), 0);
}

#[test]
fn unknown_names_do_not_break_loading() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "not_a_syscall", "socketcall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    // socketcall exists on x86 only, which this filter does not cover.
    assert_eq!(f.skipped_syscalls(), ["not_a_syscall", "socketcall"]);
    assert_eq!(exit_code(in_child(&f, try_mkdir)), libc::EPERM);
}

#[test]
fn load_without_no_new_privs_or_cap_is_eacces() {
    // A child that drops CAP_SYS_ADMIN and does not set no_new_privs cannot load a filter.
    let f = profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    // SAFETY: the child only makes syscalls and exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = (|| {
                // Drop CAP_SYS_ADMIN from the effective set (capset(2) v3).
                let mut hdr = libc_cap_header();
                let mut data = [[0u32; 3]; 2];
                // SAFETY: valid header and data arrays for capget/capset.
                unsafe {
                    if libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) != 0 {
                        return 1;
                    }
                    data[0][0] &= !(1 << CAP_SYS_ADMIN);
                    if libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) != 0 {
                        return 2;
                    }
                }
                match rruntime::seccomp::load(&f) {
                    Err(e)
                        if e.to_string().contains("no_new_privs")
                            && e.to_string().contains("EACCES") =>
                    {
                        0
                    }
                    _ => 3,
                }
            })();
            // SAFETY: leaves the child.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let ws = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(exit_code(ws), 0);
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;

fn libc_cap_header() -> [u32; 2] {
    [0x2008_0522, 0] // _LINUX_CAPABILITY_VERSION_3, this process
}
