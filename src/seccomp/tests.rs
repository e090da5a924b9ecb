//! Compiler tests: generated programs are run in the interpreter and compared with a direct,
//! tree-free model of the profile semantics (see `profile`), over hand-picked and random cases.

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

use super::interp::SeccompData;
use super::profile::{RET_ENOSYS, SECCOMP_RET_ACTION_FULL};
use super::syscalls::{self, Arch, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use super::syscalls::{number, X32_SYSCALL_BIT};
use super::*;

const ALLOW: u32 = SECCOMP_RET_ALLOW;
const fn errno(e: u32) -> u32 {
    SECCOMP_RET_ERRNO | e
}

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("profile JSON")
}

fn run(f: &CompiledFilter, arch: Arch, name_or_nr: impl Into<Nr>, args: [u64; 6]) -> u32 {
    let nr = match name_or_nr.into() {
        Nr::Name(n) => number(arch, n).unwrap_or_else(|| panic!("{n} on {arch:?}")),
        Nr::Num(n) => n,
    };
    f.evaluate(&SeccompData::new(arch.audit_arch(), nr, args))
        .expect("program runs")
}

enum Nr {
    Name(&'static str),
    Num(u32),
}
impl From<&'static str> for Nr {
    fn from(s: &'static str) -> Nr {
        Nr::Name(s)
    }
}
impl From<u32> for Nr {
    fn from(n: u32) -> Nr {
        Nr::Num(n)
    }
}

fn fixture(name: &str) -> LinuxSeccomp {
    let path = format!(
        "{}/tests/fixtures/seccomp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

#[test]
fn default_only() {
    let f = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).unwrap();
    assert_eq!(run(&f, Arch::X86_64, "getpid", [0; 6]), ALLOW);
    // x86 is not in the filter: bad-arch action.
    assert_eq!(run(&f, Arch::X86, "getpid", [0; 6]), BAD_ARCH_ACTION);
    assert_eq!(run(&f, Arch::X32, "getpid", [0; 6]), BAD_ARCH_ACTION);
    assert!(!f.needs_listener());
    assert_eq!(f.program().last().map(|i| i.code), Some(0x06));
}

#[test]
fn actions_and_errno() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["gettid"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["mkdir"], "action": "SCMP_ACT_TRAP"},
            {"names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["chdir"], "action": "SCMP_ACT_TRACE"},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO"}
        ]
    })))
    .unwrap();
    let r = |n| run(&f, Arch::X86_64, n, [0; 6]);
    assert_eq!(r("read"), ALLOW);
    assert_eq!(r("write"), errno(38));
    assert_eq!(r("getpid"), SECCOMP_RET_KILL_THREAD);
    assert_eq!(r("getppid"), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(r("gettid"), SECCOMP_RET_KILL_THREAD);
    assert_eq!(r("mkdir"), SECCOMP_RET_TRAP);
    assert_eq!(r("rmdir"), SECCOMP_RET_TRACE | 7);
    assert_eq!(r("chdir"), SECCOMP_RET_TRACE | 1);
    assert_eq!(r("uname"), SECCOMP_RET_LOG);
    // Same as the default (ERRNO/EPERM): dropped, still EPERM.
    assert_eq!(r("close"), errno(1));
    assert_eq!(r("open"), errno(1));
}

#[test]
fn default_errno_ret() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(run(&f, Arch::X86_64, "write", [0; 6]), errno(38));
    assert_eq!(run(&f, Arch::X86_64, "read", [0; 6]), ALLOW);
}

#[test]
fn operators_64bit() {
    let hi = 0xdead_beef_0000_0000u64;
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
             "args": [{"index": 0, "value": hi | 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 1, "value": hi | 5, "op": "SCMP_CMP_GT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12,
             "args": [{"index": 2, "value": hi | 5, "op": "SCMP_CMP_GE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 3, "value": hi | 5, "op": "SCMP_CMP_LT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14,
             "args": [{"index": 4, "value": hi | 5, "op": "SCMP_CMP_LE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 15,
             "args": [{"index": 5, "value": hi | 5, "op": "SCMP_CMP_NE"}]},
        ]
    })))
    .unwrap();
    // Args that make every rule fail: a0 != v, a1 <= v, a2 < v, a3 >= v, a4 > v, a5 == v.
    let v = hi | 5;
    let base = [0, v, v - 1, v, v + 1, v];
    let r = |args| run(&f, Arch::X86_64, "getpid", args);
    assert_eq!(r(base), ALLOW);
    let with = |i: usize, x: u64| {
        let mut a = base;
        a[i] = x;
        a
    };
    assert_eq!(r(with(0, v)), errno(10));
    assert_eq!(r(with(0, 5)), ALLOW, "low half alone must not match");
    assert_eq!(r(with(1, v + 1)), errno(11));
    assert_eq!(r(with(1, hi + (1 << 32))), errno(11), "higher high half");
    assert_eq!(r(with(1, 6)), ALLOW, "bigger low half, smaller high half");
    assert_eq!(r(with(2, v)), errno(12));
    assert_eq!(r(with(2, u64::MAX)), errno(12));
    assert_eq!(r(with(3, v - 1)), errno(13));
    assert_eq!(
        r(with(3, 0xffff_ffff)),
        errno(13),
        "low half bigger, high half smaller"
    );
    assert_eq!(r(with(3, hi + (1 << 32))), ALLOW);
    assert_eq!(r(with(4, v)), errno(14));
    assert_eq!(r(with(4, 6)), errno(14));
    assert_eq!(r(with(5, 5)), errno(15), "same low half, other high half");
    assert_eq!(r(with(5, hi | 6)), errno(15));
}

#[test]
fn masked_eq_and_multiple_rules() {
    let f = fixture("docker-default.json");
    let f = compile(&f).unwrap();
    let clone = |flags: u64| run(&f, Arch::X86_64, "clone", [flags, 0, 0, 0, 0, 0]);
    assert_eq!(clone(0x0001_1200 | libc::SIGCHLD as u64), ALLOW); // a plain fork
    assert_eq!(clone(libc::CLONE_NEWNS as u64), errno(1));
    assert_eq!(clone(libc::CLONE_NEWUSER as u64 | 0x11), errno(1));
    assert_eq!(clone(1 << 40), ALLOW, "high half is not in the mask");
    let pers = |p: u64| run(&f, Arch::X86_64, "personality", [p, 0, 0, 0, 0, 0]);
    for ok in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(pers(ok), ALLOW, "personality({ok:#x})");
    }
    for bad in [1, 6, 0x20001, 0x1_0000_0000, 0xffff_ffff_ffff_ffff] {
        assert_eq!(pers(bad), errno(1), "personality({bad:#x})");
    }
    // x86 compares the low half only: the kernel zero-extends 32-bit registers.
    let p32 = |p: u64| run(&f, Arch::X86, "personality", [p, 0, 0, 0, 0, 0]);
    assert_eq!(p32(0xffff_ffff), ALLOW);
    assert_eq!(p32(6), errno(1));
    // socket: AF_VSOCK is refused.
    assert_eq!(run(&f, Arch::X86_64, "socket", [1, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        run(&f, Arch::X86_64, "socket", [40, 1, 0, 0, 0, 0]),
        errno(1)
    );
    assert_eq!(run(&f, Arch::X86_64, "clone3", [0; 6]), errno(38));
}

#[test]
fn and_within_rule_or_across_rules() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20, "args": [
                {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 0x80000, "valueTwo": 0x80000, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20, "args": [
                {"index": 1, "value": 100, "op": "SCMP_CMP_GE"}]}
        ]
    })))
    .unwrap();
    let r = |a: [u64; 3]| run(&f, Arch::X86_64, "dup3", [a[0], a[1], a[2], 0, 0, 0]);
    assert_eq!(r([3, 4, 0x80000]), errno(20));
    assert_eq!(r([3, 4, 0x80001]), errno(20));
    assert_eq!(r([3, 4, 0]), ALLOW, "second condition fails");
    assert_eq!(r([4, 4, 0x80000]), ALLOW, "first condition fails");
    assert_eq!(r([4, 100, 0]), errno(20), "second rule");
}

#[test]
fn same_argument_twice_splits_the_rule() {
    // runc adds each condition as a rule of its own when a rule compares one argument twice.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap();
    let r = |p| run(&f, Arch::X86_64, "personality", [p, 0, 0, 0, 0, 0]);
    assert_eq!((r(0), r(8), r(1)), (ALLOW, ALLOW, errno(1)));
}

#[test]
fn unconditional_rule_wins() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6}
        ]
    })))
    .unwrap();
    assert_eq!(
        run(&f, Arch::X86_64, "getpid", [1, 0, 0, 0, 0, 0]),
        errno(6)
    );
    assert_eq!(run(&f, Arch::X86_64, "getpid", [0; 6]), errno(6));
}

#[test]
fn architectures_use_their_own_numbers() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["socketcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 39},
            {"names": ["rt_sigaction"], "action": "SCMP_ACT_ERRNO", "errnoRet": 40}
        ]
    })))
    .unwrap();
    assert_eq!(run(&f, Arch::X86_64, "mkdir", [0; 6]), errno(38)); // 83
    assert_eq!(run(&f, Arch::X86, "mkdir", [0; 6]), errno(38)); // 39
    assert_eq!(run(&f, Arch::X32, "mkdir", [0; 6]), errno(38)); // 83 | x32 bit
    assert_eq!(run(&f, Arch::X86_64, 39, [0; 6]), ALLOW, "getpid on x86_64");
    assert_eq!(run(&f, Arch::X86, 83, [0; 6]), ALLOW, "i386 83 is symlink");
    assert_eq!(run(&f, Arch::X86, "socketcall", [0; 6]), errno(39));
    assert_eq!(
        run(&f, Arch::X86_64, 102, [0; 6]),
        ALLOW,
        "x86_64 102 is getuid"
    );
    assert_eq!(run(&f, Arch::X32, "rt_sigaction", [0; 6]), errno(40)); // 512 | bit
    assert_eq!(run(&f, Arch::X32, 13 | X32_SYSCALL_BIT, [0; 6]), ALLOW);
    assert_eq!(run(&f, Arch::X86_64, "rt_sigaction", [0; 6]), errno(40)); // 13
    assert_eq!(run(&f, Arch::X86_64, 512, [0; 6]), ALLOW);
    assert!(f.skipped_syscalls().is_empty());
    // aarch64 is not in a filter built on x86_64.
    let d = SeccompData::new(AUDIT_ARCH_AARCH64, 34, [0; 6]);
    assert_eq!(f.evaluate(&d), Ok(BAD_ARCH_ACTION));
}

#[test]
fn x32_not_listed_is_bad_arch() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"]
    })))
    .unwrap();
    assert_eq!(
        run(&f, Arch::X86_64, "getpid", [0; 6]),
        ALLOW,
        "native is always in"
    );
    assert_eq!(run(&f, Arch::X86, "getpid", [0; 6]), ALLOW);
    assert_eq!(run(&f, Arch::X32, "getpid", [0; 6]), BAD_ARCH_ACTION);
    let d = SeccompData::new(AUDIT_ARCH_X86_64, u32::MAX, [0; 6]);
    assert_eq!(f.evaluate(&d), Ok(BAD_ARCH_ACTION));
}

#[test]
fn other_architectures_are_ignored_and_reported() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    })))
    .unwrap();
    assert_eq!(
        f.ignored_architectures(),
        ["SCMP_ARCH_ARM".to_string(), "SCMP_ARCH_AARCH64".to_string()]
    );
}

#[test]
fn aarch64_native() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdirat", "mkdir", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let f = compile_for(&p, Arch::Aarch64).unwrap();
    let d = |nr| SeccompData::new(AUDIT_ARCH_AARCH64, nr, [0; 6]);
    assert_eq!(f.evaluate(&d(34)), Ok(ALLOW));
    assert_eq!(f.evaluate(&d(172)), Ok(ALLOW));
    assert_eq!(f.evaluate(&d(35)), Ok(errno(1)));
    assert_eq!(
        f.evaluate(&d(173)),
        Ok(RET_ENOSYS),
        "above the largest named number"
    );
    let x = SeccompData::new(AUDIT_ARCH_X86_64, 83, [0; 6]);
    assert_eq!(f.evaluate(&x), Ok(BAD_ARCH_ACTION));
    assert_eq!(f.ignored_architectures(), ["SCMP_ARCH_X86_64".to_string()]);
}

#[test]
fn unknown_names_are_skipped() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "no_such_call", "socketcall", "arm_fadvise64_64", "read"],
                      "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(
        f.skipped_syscalls(),
        ["no_such_call", "socketcall", "arm_fadvise64_64"]
    );
    assert_eq!(run(&f, Arch::X86_64, "read", [0; 6]), ALLOW);
}

#[test]
fn enosys_above_the_profile() {
    let deny = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "openat2", "write"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let f = compile(&deny).unwrap();
    // openat2 (437) is the largest named number.
    assert_eq!(run(&f, Arch::X86_64, "openat2", [0; 6]), ALLOW);
    assert_eq!(
        run(&f, Arch::X86_64, "clone3", [0; 6]),
        errno(1),
        "435: older, EPERM"
    );
    assert_eq!(run(&f, Arch::X86_64, 438, [0; 6]), RET_ENOSYS);
    assert_eq!(run(&f, Arch::X86_64, 0x3fff_ffff, [0; 6]), RET_ENOSYS);
    assert_eq!(run(&f, Arch::X86, 438, [0; 6]), RET_ENOSYS);
    assert_eq!(run(&f, Arch::X86, 436, [0; 6]), errno(1));
    assert_eq!(
        run(&f, Arch::X32, 438 | X32_SYSCALL_BIT, [0; 6]),
        RET_ENOSYS
    );
    assert_eq!(run(&f, Arch::X32, 436 | X32_SYSCALL_BIT, [0; 6]), errno(1));

    for permissive in [
        json!({"defaultAction": "SCMP_ACT_ALLOW"}),
        json!({"defaultAction": "SCMP_ACT_LOG"}),
        json!({"defaultAction": "SCMP_ACT_TRACE"}),
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}),
    ] {
        let mut p = permissive.clone();
        p["syscalls"] = json!([{"names": ["read"], "action": "SCMP_ACT_KILL"}]);
        let f = compile(&profile(p)).unwrap();
        let default = run(&f, Arch::X86_64, "write", [0; 6]);
        assert_eq!(run(&f, Arch::X86_64, 460, [0; 6]), default, "{permissive}");
    }
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [{"names": ["read", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(run(&f, Arch::X86_64, 1, [0; 6]), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(run(&f, Arch::X86_64, 39, [0; 6]), ALLOW);
    assert_eq!(run(&f, Arch::X86_64, 40, [0; 6]), RET_ENOSYS);
}

#[test]
fn notify() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert!(f.needs_listener());
    assert_eq!(
        run(&f, Arch::X86_64, "mkdir", [0; 6]),
        SECCOMP_RET_USER_NOTIF
    );
    assert_eq!(
        f.load_flags(),
        SECCOMP_FILTER_FLAG_TSYNC
            | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            | SECCOMP_FILTER_FLAG_NEW_LISTENER
            | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    );
    let g = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    assert!(!g.needs_listener());
    assert_eq!(
        g.load_flags(),
        SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
}

#[test]
fn validation_errors() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "seccomp: syscall \"mkdir\" (linux.seccomp.syscalls[0]): argument index 6 is out of range (0-5)",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
            "seccomp: syscall \"mkdir\" (linux.seccomp.syscalls[1]): errnoRet is set but SCMP_ACT_ALLOW takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}),
            "seccomp: defaultAction: errnoRet is set but SCMP_ACT_KILL takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
            "seccomp: defaultAction: errnoRet 70000 is out of range (0-65535)",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}),
            "seccomp: linux.seccomp.syscalls[0]: empty syscall name",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "seccomp: linux.seccomp.listenerPath: must be set when SCMP_ACT_NOTIFY is used",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
                {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "seccomp: syscall \"mkdir\" (linux.seccomp.syscalls[0]): SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "seccomp: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action",
        ),
    ];
    for (p, want) in cases {
        let e = compile(&profile(p)).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

/// A profile naming every syscall the table has on x86_64 (~400 with made-up ones), each with
/// an action of its own and every tenth with an argument rule, for x86_64, x86 and x32: every
/// part of the program is far longer than a conditional jump reaches, so long jumps must all
/// land right.
#[test]
fn long_program_with_400_syscalls() {
    let names: Vec<&str> = syscalls::all_names()
        .filter(|n| number(Arch::X86_64, n).is_some())
        .collect();
    assert!(names.len() >= 370, "{}", names.len());
    let ret = |i: usize| (i % 4000 + 1) as u32;
    let mut rules: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut r = json!({"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": ret(i)});
            if i % 10 == 0 {
                r["args"] = json!([{"index": i % 6, "value": i as u64 * 3, "op": "SCMP_CMP_EQ"}]);
            }
            r
        })
        .collect();
    rules.extend(
        (0..40).map(|i| json!({"names": [format!("made_up_{i}")], "action": "SCMP_ACT_LOG"})),
    );
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })))
    .unwrap();
    assert!(f.program().len() > 2000, "{}", f.program().len());
    assert_eq!(f.skipped_syscalls().len(), 40);
    let jumps = f.program().iter().filter(|i| i.code == 0x05).count();
    assert!(jumps > 0, "expected long jumps");
    for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
        for (i, n) in names.iter().enumerate() {
            let Some(nr) = number(arch, n) else { continue };
            let mut args = [7u64; 6];
            args[i % 6] = i as u64 * 3;
            assert_eq!(run(&f, arch, nr, args), errno(ret(i)), "{n} on {arch:?}");
            args[i % 6] += 1;
            let want = if i % 10 == 0 { ALLOW } else { errno(ret(i)) };
            assert_eq!(run(&f, arch, nr, args), want, "{n} on {arch:?}");
        }
    }
}

#[test]
fn too_long_is_an_error() {
    let rules: Vec<serde_json::Value> = syscalls::all_names()
        .filter(|n| number(Arch::X86_64, n).is_some())
        .map(|n| {
            let args: Vec<_> = (0..6)
                .map(|i| json!({"index": i, "value": i, "op": "SCMP_CMP_LE"}))
                .collect();
            json!({"names": [n], "action": "SCMP_ACT_ERRNO", "args": args})
        })
        .collect();
    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("more than the kernel's limit of 4096"),
        "{e}"
    );
}

#[test]
fn fixtures_compile_small() {
    for name in ["docker-default.json", "containerd-default.json"] {
        let p = fixture(name);
        let f = compile(&p).unwrap();
        assert!(
            f.program().len() < 1200,
            "{name}: {} instructions",
            f.program().len()
        );
        // Syscalls of other architectures only (e.g. arm_*); none of the x86 ones.
        for s in f.skipped_syscalls() {
            assert!(
                syscalls::lookup(s).is_none(),
                "{name}: {s} is known but skipped"
            );
        }
        eprintln!("{name}: {} instructions", f.program().len());
    }
}

#[test]
fn serialization_round_trip() {
    let f = compile(&fixture("docker-default.json")).unwrap();
    let g = CompiledFilter::from_bytes(&f.to_bytes()).unwrap();
    assert_eq!(g.program(), f.program());
    assert_eq!(g.flags(), f.flags());
    assert_eq!(g.needs_listener(), f.needs_listener());
    let b = f.to_bytes();
    assert!(CompiledFilter::from_bytes(&b[..b.len() - 1]).is_err());
    assert!(CompiledFilter::from_bytes(b"nope").is_err());
    assert!(CompiledFilter::from_bytes(&[]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Random profiles against a direct model of the semantics.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len())]
    }
}

const POOL: &[&str] = &[
    "read",
    "write",
    "getpid",
    "mkdir",
    "personality",
    "socketcall",
    "rt_sigaction",
    "clone3",
    "openat2",
    "listns",
    "fcntl64",
    "newfstatat",
    "uretprobe",
    "execve",
    "no_such",
    "_llseek",
];
const ACTS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_NOTIFY",
];
const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

fn interesting(r: &mut Rng) -> u64 {
    let v = [
        0,
        1,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0xffff_ffff_0000_0005,
        u64::MAX,
        0x8000_0000,
        0x7fff_ffff_ffff_ffff,
    ];
    match r.below(3) {
        0 => *r.pick(&v),
        1 => r.next(),
        _ => r.next() & 0xff,
    }
}

fn random_action(r: &mut Rng) -> serde_json::Value {
    let act = *r.pick(ACTS);
    let mut a = json!({ "action": act });
    if matches!(act, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") && r.below(2) == 0 {
        a["errnoRet"] = json!(r.below(3) + 1);
    }
    a
}

fn random_profile(r: &mut Rng) -> serde_json::Value {
    // NOTIFY is refused as the default action (it would cover `write`).
    let d = loop {
        let d = random_action(r);
        if d["action"] != "SCMP_ACT_NOTIFY" {
            break d;
        }
    };
    let mut p = json!({"defaultAction": d["action"], "listenerPath": "/x"});
    if let Some(e) = d.get("errnoRet") {
        p["defaultErrnoRet"] = e.clone();
    }
    let arch_choices = [
        json!([]),
        json!(["SCMP_ARCH_X86"]),
        json!(["SCMP_ARCH_X32"]),
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ];
    p["architectures"] = r.pick(&arch_choices).clone();
    let mut syscalls = Vec::new();
    for _ in 0..r.below(12) {
        let mut e = random_action(r);
        let mut names: Vec<&str> = (0..r.below(3) + 1).map(|_| *r.pick(POOL)).collect();
        if e["action"] == "SCMP_ACT_NOTIFY" {
            // A NOTIFY rule may not cover `write` (refused like runc does).
            names.retain(|n| *n != "write");
            if names.is_empty() {
                names.push("mkdir");
            }
        }
        e["names"] = json!(names);
        let args: Vec<serde_json::Value> = (0..r.below(4))
            .map(|_| {
                json!({"index": r.below(3), "op": *r.pick(OPS),
                       "value": interesting(r), "valueTwo": interesting(r)})
            })
            .collect();
        if !args.is_empty() {
            e["args"] = json!(args);
        }
        syscalls.push(e);
    }
    p["syscalls"] = json!(syscalls);
    p
}

/// The semantics of `profile`, written out directly.
fn model(p: &LinuxSeccomp, d: &SeccompData) -> u32 {
    let act = |a, e| profile::action_value(a, e, &String::new).unwrap();
    let default = act(p.default_action(), p.default_errno_ret());
    let listed = p.architectures().clone().unwrap_or_default();
    let has = |a: oci_spec::runtime::Arch| listed.contains(&a);
    let arch = match d.arch {
        AUDIT_ARCH_X86_64 if d.nr & X32_SYSCALL_BIT == 0 => Arch::X86_64,
        AUDIT_ARCH_X86_64 if has(oci_spec::runtime::Arch::ScmpArchX32) => Arch::X32,
        AUDIT_ARCH_I386 if has(oci_spec::runtime::Arch::ScmpArchX86) => Arch::X86,
        _ => return BAD_ARCH_ACTION,
    };
    let mut max: Option<u32> = None;
    let mut unconditional = None;
    let mut conditional = None;
    for sc in p.syscalls().iter().flatten() {
        let a = act(sc.action(), sc.errno_ret());
        for n in sc.names() {
            let Some(nr) = number(arch, n) else { continue };
            max = Some(max.map_or(nr, |m| m.max(nr)));
            if nr != d.nr || a == default {
                continue;
            }
            let args = sc.args().clone().unwrap_or_default();
            if args.is_empty() {
                unconditional.get_or_insert(a);
                continue;
            }
            let holds = |c: &oci_spec::runtime::LinuxSeccompArg| {
                let mut x = d.args[c.index()];
                let (mut v, mut v2) = (c.value(), c.value_two().unwrap_or(0));
                if arch == Arch::X86 {
                    x &= 0xffff_ffff;
                    v &= 0xffff_ffff;
                    v2 &= 0xffff_ffff;
                }
                use oci_spec::runtime::LinuxSeccompOperator::*;
                match c.op() {
                    ScmpCmpNe => x != v,
                    ScmpCmpLt => x < v,
                    ScmpCmpLe => x <= v,
                    ScmpCmpEq => x == v,
                    ScmpCmpGe => x >= v,
                    ScmpCmpGt => x > v,
                    ScmpCmpMaskedEq => x & v == v2,
                }
            };
            let mut idx = [0; 6];
            args.iter().for_each(|c| idx[c.index()] += 1);
            let matched = if idx.iter().any(|&n| n > 1) {
                args.iter().any(holds)
            } else {
                args.iter().all(holds)
            };
            if matched && conditional.is_none() {
                conditional = Some(a);
            }
        }
    }
    if let Some(a) = unconditional.or(conditional) {
        return a;
    }
    let permissive = matches!(
        default & SECCOMP_RET_ACTION_FULL,
        SECCOMP_RET_ALLOW | SECCOMP_RET_LOG | SECCOMP_RET_TRACE
    ) || default == RET_ENOSYS;
    match max {
        Some(m) if !permissive && d.nr > m => RET_ENOSYS,
        _ => default,
    }
}

#[test]
fn random_profiles_match_the_model() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..400 {
        let json = random_profile(&mut r);
        let p = profile(json.clone());
        let f = compile_for(&p, Arch::X86_64).unwrap_or_else(|e| panic!("{e}: {json}"));
        // Numbers worth trying: every pool syscall on every arch, neighbours, and extremes.
        let mut nrs: Vec<(u32, u32)> = Vec::new();
        for a in [Arch::X86_64, Arch::X86, Arch::X32] {
            for n in POOL {
                if let Some(nr) = number(a, n) {
                    for d in [nr.wrapping_sub(1), nr, nr + 1] {
                        nrs.push((a.audit_arch(), d));
                    }
                }
            }
        }
        for extreme in [
            0,
            X32_SYSCALL_BIT - 1,
            X32_SYSCALL_BIT,
            u32::MAX,
            470,
            471,
            548,
        ] {
            nrs.push((AUDIT_ARCH_X86_64, extreme));
            nrs.push((AUDIT_ARCH_I386, extreme));
        }
        nrs.push((AUDIT_ARCH_AARCH64, 1));
        let values: Vec<u64> = json["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["args"].as_array().cloned().unwrap_or_default())
            .flat_map(|a| [a["value"].as_u64(), a["valueTwo"].as_u64()])
            .flatten()
            .collect();
        let arg = |r: &mut Rng| {
            if values.is_empty() || r.below(3) == 0 {
                return interesting(r);
            }
            let v = *r.pick(&values);
            match r.below(5) {
                0 => v.wrapping_add(1),
                1 => v.wrapping_sub(1),
                2 => v ^ (1 << 32),
                3 => v & 0xffff_ffff,
                _ => v,
            }
        };
        for (arch, nr) in nrs {
            for _ in 0..4 {
                let args = [0; 6].map(|_: u64| arg(&mut r));
                let d = SeccompData::new(arch, nr, args);
                let got = f.evaluate(&d).unwrap();
                let want = model(&p, &d);
                assert_eq!(
                    got, want,
                    "round {round}: arch {arch:#x} nr {nr:#x} args {args:x?}\nprofile {json}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100_000);
}
