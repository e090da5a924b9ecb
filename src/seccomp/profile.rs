//! OCI `linux.seccomp` → a validated, per-architecture rule plan (no BPF yet).
//!
//! Semantics (those of runc with libseccomp, which Docker/containerd profiles are written for):
//! - actions map to `SECCOMP_RET_*`; `errnoRet`/`defaultErrnoRet` (default `EPERM`) is the data of
//!   `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` and an error on any other action (runtime-spec);
//! - a rule whose action equals the default action is dropped (runc does so, libseccomp refuses
//!   such rules);
//! - unknown syscall names are skipped (and reported), names that exist on some of the filter's
//!   architectures only apply there;
//! - the conditions of one rule are ANDed, several rules for one syscall are ORed; when a syscall
//!   has an unconditional rule, that rule decides (libseccomp lets it absorb conditional ones);
//!   otherwise the first rule, in profile order, whose conditions all hold decides;
//! - a rule that compares the same argument more than once is split into one rule per condition
//!   (runc's long-standing behaviour for such rules);
//! - like runc, when the default action denies (anything but ALLOW, LOG, TRACE, or ERRNO with
//!   ENOSYS), syscall numbers above the largest one the profile names on an architecture return
//!   `ENOSYS`, so that programs fall back from syscalls newer than the profile.

use std::ops::Range;

use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::syscalls::{self, Arch};
use super::SeccompError;

pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
pub const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;

pub const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
pub const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;
pub const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: u32 = 16;
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// What a filter does with a syscall of an architecture it was not compiled for. libseccomp's
/// default for `SCMP_FLTATR_ACT_BADARCH`, which runc keeps, is `SCMP_ACT_KILL` (the thread).
pub const BAD_ARCH_ACTION: u32 = SECCOMP_RET_KILL_THREAD;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;
/// Syscall arguments (`seccomp_data.args`).
pub const MAX_ARGS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

/// One argument comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// An action taken when all of `conds` hold (always, when there are none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: u32,
    pub conds: Range<usize>,
}

/// The syscalls of one architecture.
#[derive(Debug, Clone)]
pub struct ArchPlan {
    pub arch: Arch,
    /// `(seccomp_data.nr, index into Plan::rules)`, sorted by number, profile order within one.
    pub entries: Vec<(u32, usize)>,
    /// Numbers above this return ENOSYS instead of the default action.
    pub enosys_above: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub default: u32,
    pub rules: Vec<Rule>,
    pub conds: Vec<Cond>,
    /// The native architecture first.
    pub archs: Vec<ArchPlan>,
    /// `SECCOMP_FILTER_FLAG_*` requested by the profile.
    pub flags: u32,
    /// Some action (or the default) is SCMP_ACT_NOTIFY.
    pub listener: bool,
    pub skipped: Vec<String>,
    pub ignored_archs: Vec<String>,
}

/// `SECCOMP_RET_*` for an OCI action. `what` names the field for error messages.
pub fn action_value(
    act: LinuxSeccompAction,
    errno_ret: Option<u32>,
    what: &dyn Fn() -> String,
) -> Result<u32, SeccompError> {
    use LinuxSeccompAction::*;
    let with_data = |base: u32| -> Result<u32, SeccompError> {
        let data = errno_ret.unwrap_or(EPERM);
        if data > 0xffff {
            return Err(SeccompError::Invalid {
                what: what(),
                msg: format!("errnoRet {data} is out of range (0-65535)"),
            });
        }
        Ok(base | data)
    };
    if errno_ret.is_some() && !matches!(act, ScmpActErrno | ScmpActTrace) {
        return Err(SeccompError::Invalid {
            what: what(),
            msg: format!("errnoRet is set but {act} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
        });
    }
    Ok(match act {
        ScmpActKill | ScmpActKillThread => SECCOMP_RET_KILL_THREAD,
        ScmpActKillProcess => SECCOMP_RET_KILL_PROCESS,
        ScmpActTrap => SECCOMP_RET_TRAP,
        ScmpActErrno => with_data(SECCOMP_RET_ERRNO)?,
        ScmpActTrace => with_data(SECCOMP_RET_TRACE)?,
        ScmpActNotify => SECCOMP_RET_USER_NOTIF,
        ScmpActLog => SECCOMP_RET_LOG,
        ScmpActAllow => SECCOMP_RET_ALLOW,
    })
}

pub fn flag_value(f: LinuxSeccompFilterFlag) -> u32 {
    match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        }
    }
}

fn op_of(op: LinuxSeccompOperator) -> Op {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}

/// The architectures a filter covers on `native`: native first, then those listed, in a fixed
/// order. Listed architectures that cannot run on this kernel or that the compiler has no
/// numbers for are returned in the second list.
fn filter_archs(native: Arch, listed: Option<&Vec<OciArch>>) -> (Vec<Arch>, Vec<String>) {
    let mut want = [false; 4];
    let mut ignored = Vec::new();
    for a in listed.into_iter().flatten() {
        let arch = match a {
            OciArch::ScmpArchNative => Some(native),
            OciArch::ScmpArchX86_64 => Some(Arch::X86_64),
            OciArch::ScmpArchX86 => Some(Arch::X86),
            OciArch::ScmpArchX32 => Some(Arch::X32),
            OciArch::ScmpArchAarch64 => Some(Arch::Aarch64),
            _ => None,
        };
        match arch {
            Some(arch) if arch.runs_on(native) => want[arch.index()] = true,
            _ => {
                let name = a.to_string();
                if !ignored.contains(&name) {
                    ignored.push(name);
                }
            }
        }
    }
    let mut archs = vec![native];
    archs.extend(
        Arch::ALL
            .iter()
            .zip(want)
            .filter(|(a, w)| *w && **a != native)
            .map(|(a, _)| *a),
    );
    (archs, ignored)
}

/// Syscalls a NOTIFY rule may not cover (as runc refuses `write`): the container's init makes
/// them itself between loading the filter and execve — before the agent can even hold the
/// listener (`sendmsg` hands it over, `sendto` reports ready) or while `start`/`run` waits
/// (`write` of the exec fifo) — so an agent that does not answer would hang the runtime.
const NOTIFY_REFUSED: &[&str] = &["write", "sendmsg", "sendto"];

pub fn plan(seccomp: &LinuxSeccomp, native: Arch) -> Result<Plan, SeccompError> {
    let default = action_value(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        &|| "defaultAction".to_string(),
    )?;
    if default == SECCOMP_RET_USER_NOTIF {
        return Err(SeccompError::Invalid {
            what: "linux.seccomp.defaultAction".into(),
            msg: "SCMP_ACT_NOTIFY cannot be used as default action".into(),
        });
    }
    let (arch_list, ignored_archs) = filter_archs(native, seccomp.architectures().as_ref());
    let mut archs: Vec<ArchPlan> = arch_list
        .iter()
        .map(|&arch| ArchPlan {
            arch,
            entries: Vec::with_capacity(512),
            enosys_above: None,
        })
        .collect();
    let mut max_named: Vec<Option<u32>> = vec![None; archs.len()];
    let mut rules: Vec<Rule> = Vec::new();
    let mut conds: Vec<Cond> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut listener = default == SECCOMP_RET_USER_NOTIF;

    for (i, sc) in seccomp.syscalls().iter().flatten().enumerate() {
        let names = sc.names();
        let first = names.first().map(String::as_str).unwrap_or("");
        let what = || format!("syscall {first:?} (linux.seccomp.syscalls[{i}])");
        let action = action_value(sc.action(), sc.errno_ret(), &what)?;
        let keep = action != default;

        // Conditions, validated even when the rule is dropped.
        let first_rule = rules.len();
        let args = sc.args().as_deref().unwrap_or(&[]);
        let mut seen = [0u8; MAX_ARGS];
        let cond_start = conds.len();
        for arg in args {
            let index = arg.index();
            if index >= MAX_ARGS {
                return Err(SeccompError::Invalid {
                    what: what(),
                    msg: format!("argument index {index} is out of range (0-5)"),
                });
            }
            seen[index] = seen[index].saturating_add(1);
            conds.push(Cond {
                index: index as u8,
                op: op_of(arg.op()),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            });
        }
        let cond_end = conds.len();
        if !keep {
            conds.truncate(cond_start);
        } else if seen.iter().any(|&n| n > 1) {
            for c in cond_start..cond_end {
                rules.push(Rule {
                    action,
                    conds: c..c + 1,
                });
            }
        } else {
            rules.push(Rule {
                action,
                conds: cond_start..cond_end,
            });
        }
        if keep && action == SECCOMP_RET_USER_NOTIF {
            listener = true;
            if let Some(n) = names.iter().find(|n| NOTIFY_REFUSED.contains(&n.as_str())) {
                return Err(SeccompError::Invalid {
                    what: what(),
                    msg: format!("SCMP_ACT_NOTIFY cannot be used for the {n} syscall"),
                });
            }
        }

        for name in names {
            if name.is_empty() {
                return Err(SeccompError::Invalid {
                    what: format!("linux.seccomp.syscalls[{i}]"),
                    msg: "empty syscall name".into(),
                });
            }
            let mut found = false;
            if let Some(nrs) = syscalls::lookup(name) {
                for (a, plan) in archs.iter_mut().enumerate() {
                    if let Some(nr) = nrs.on(plan.arch) {
                        found = true;
                        max_named[a] = Some(max_named[a].map_or(nr, |m| m.max(nr)));
                        plan.entries
                            .extend((first_rule..rules.len()).map(|r| (nr, r)));
                    }
                }
            }
            if !found && !skipped.iter().any(|s| s == name) {
                skipped.push(name.clone());
            }
        }
    }

    let permissive = matches!(
        default & SECCOMP_RET_ACTION_FULL,
        SECCOMP_RET_ALLOW | SECCOMP_RET_LOG | SECCOMP_RET_TRACE
    ) || default == SECCOMP_RET_ERRNO | ENOSYS;
    for (plan, max) in archs.iter_mut().zip(max_named) {
        plan.entries.sort_by_key(|e| e.0); // stable: profile order within a number
        if !permissive {
            plan.enosys_above = max;
        }
    }

    let has_path = seccomp
        .listener_path()
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty());
    if listener && !has_path {
        return Err(SeccompError::Invalid {
            what: "linux.seccomp.listenerPath".into(),
            msg: "must be set when SCMP_ACT_NOTIFY is used".into(),
        });
    }
    let flags = seccomp
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | flag_value(*f));

    Ok(Plan {
        default,
        rules,
        conds,
        archs,
        flags,
        listener,
        skipped,
        ignored_archs,
    })
}

/// The OCI name of a `SECCOMP_RET_*` value's action.
pub fn action_name(v: u32) -> &'static str {
    match v & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS",
        SECCOMP_RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD",
        SECCOMP_RET_TRAP => "SCMP_ACT_TRAP",
        SECCOMP_RET_ERRNO => "SCMP_ACT_ERRNO",
        SECCOMP_RET_USER_NOTIF => "SCMP_ACT_NOTIFY",
        SECCOMP_RET_TRACE => "SCMP_ACT_TRACE",
        SECCOMP_RET_LOG => "SCMP_ACT_LOG",
        SECCOMP_RET_ALLOW => "SCMP_ACT_ALLOW",
        _ => "an unknown action",
    }
}

/// `ERRNO(ENOSYS)`, what newer-than-the-profile syscalls get.
pub const RET_ENOSYS: u32 = SECCOMP_RET_ERRNO | ENOSYS;
