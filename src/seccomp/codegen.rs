//! Rule plan → classic BPF.
//!
//! Layout of the program:
//!
//! ```text
//!       ld  arch
//!       jeq AUDIT_ARCH_<native>, native        ; one test per architecture in the filter
//!       jeq AUDIT_ARCH_I386, x86
//!       ret BAD_ARCH_ACTION
//! native: ld nr
//!       jge X32_SYSCALL_BIT, x32               ; x86_64 only: x32 shares the audit arch
//!       <search tree over x86_64 numbers>
//! x32:  <search tree over x32 numbers> | ret BAD_ARCH_ACTION
//! x86:  ld nr
//!       <search tree over i386 numbers>
//! ```
//!
//! Each architecture's number space is cut into intervals with one outcome each (a return value
//! shared by a run of numbers, e.g. "ALLOW" for 0..=17, or the argument checks of one syscall),
//! and a balanced tree of `jge` tests finds the interval in O(log n) instructions. Syscalls with
//! argument rules get an inline block: the conditions of a rule are tested in turn (any failure
//! jumps to the next rule), a rule whose conditions all hold returns its action, and the block
//! ends with the default action. 64-bit arguments are compared as two 32-bit halves (the high half
//! decides unless it is equal); on x86 only the low half exists.

use seccompiler::sock_filter;

use super::bpf::{Asm, AsmError, Cmp, Label, To};
use super::profile::{ArchPlan, Cond, Op, Plan, Rule, BAD_ARCH_ACTION, RET_ENOSYS};
use super::syscalls::{Arch, X32_SYSCALL_BIT};

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    /// Argument checks for the rules `Plan::rules[r]` of the given entries range.
    Block {
        from: usize,
        to: usize,
    },
}

pub fn generate(plan: &Plan) -> Result<Vec<sock_filter>, AsmError> {
    let mut asm = Asm::with_capacity(1024);
    asm.load(OFF_ARCH);

    // Sections, one per audit arch (x86_64 and x32 share one).
    let has = |a: Arch| plan.archs.iter().find(|p| p.arch == a);
    let mut sections: Vec<(u32, Label)> = Vec::with_capacity(plan.archs.len());
    for p in &plan.archs {
        let audit = p.arch.audit_arch();
        if !sections.iter().any(|(a, _)| *a == audit) {
            let l = asm.label();
            asm.jump(Cmp::Eq, audit, l, To::Next);
            sections.push((audit, l));
        }
    }
    asm.ret(BAD_ARCH_ACTION);

    let mut done = Vec::with_capacity(sections.len());
    for p in &plan.archs {
        let audit = p.arch.audit_arch();
        if done.contains(&audit) {
            continue;
        }
        done.push(audit);
        let Some(&(_, label)) = sections.iter().find(|(a, _)| *a == audit) else {
            continue;
        };
        asm.bind(label);
        asm.load(OFF_NR);
        if audit == Arch::X86_64.audit_arch() {
            let x32 = asm.label();
            asm.jump(Cmp::Ge, X32_SYSCALL_BIT, x32, To::Next);
            match has(Arch::X86_64) {
                Some(p) => tree(&mut asm, plan, p, 0, X32_SYSCALL_BIT - 1),
                None => asm.ret(BAD_ARCH_ACTION),
            }
            asm.bind(x32);
            match has(Arch::X32) {
                Some(p) => tree(&mut asm, plan, p, X32_SYSCALL_BIT, u32::MAX),
                None => asm.ret(BAD_ARCH_ACTION),
            }
        } else {
            tree(&mut asm, plan, p, 0, u32::MAX);
        }
    }
    asm.finish()
}

/// Cuts `lo..=hi` into intervals of equal outcome, in order.
fn intervals(plan: &Plan, p: &ArchPlan, lo: u32, hi: u32) -> Vec<(u32, Outcome)> {
    let mut out: Vec<(u32, Outcome)> = Vec::with_capacity(p.entries.len() / 2 + 4);
    let mut push = |start: u64, o: Outcome| {
        if let Some((_, last)) = out.last() {
            if matches!((last, o), (Outcome::Ret(a), Outcome::Ret(b)) if *a == b) {
                return;
            }
        }
        out.push((start as u32, o));
    };
    let mut cur = u64::from(lo);
    let mut i = 0;
    let e = &p.entries;
    while i < e.len() {
        let nr = e[i].0;
        let mut j = i;
        while j < e.len() && e[j].0 == nr {
            j += 1;
        }
        if nr >= lo && nr <= hi {
            if u64::from(nr) > cur {
                push(cur, Outcome::Ret(plan.default));
            }
            push(u64::from(nr), outcome(plan, i, j, e));
            cur = u64::from(nr) + 1;
        }
        i = j;
    }
    if cur <= u64::from(hi) {
        match p.enosys_above {
            Some(max) if u64::from(max) < u64::from(hi) && u64::from(max) >= u64::from(lo) => {
                if cur <= u64::from(max) {
                    push(cur, Outcome::Ret(plan.default));
                }
                push(u64::from(max) + 1, Outcome::Ret(RET_ENOSYS));
            }
            _ => push(cur, Outcome::Ret(plan.default)),
        }
    }
    out
}

/// The outcome for one syscall with entries `e[from..to]`: an unconditional rule decides alone.
fn outcome(plan: &Plan, from: usize, to: usize, e: &[(u32, usize)]) -> Outcome {
    for &(_, r) in &e[from..to] {
        let rule: &Rule = &plan.rules[r];
        if rule.conds.is_empty() {
            return Outcome::Ret(rule.action);
        }
    }
    Outcome::Block { from, to }
}

fn tree(asm: &mut Asm, plan: &Plan, p: &ArchPlan, lo: u32, hi: u32) {
    let iv = intervals(plan, p, lo, hi);
    subtree(asm, plan, p, &iv);
}

fn subtree(asm: &mut Asm, plan: &Plan, p: &ArchPlan, iv: &[(u32, Outcome)]) {
    match iv {
        [] => asm.ret(plan.default),
        [(_, o)] => emit_outcome(asm, plan, p, *o),
        _ => {
            let mid = iv.len() / 2;
            let right = asm.label();
            asm.jump(Cmp::Ge, iv[mid].0, right, To::Next);
            subtree(asm, plan, p, &iv[..mid]);
            asm.bind(right);
            subtree(asm, plan, p, &iv[mid..]);
        }
    }
}

fn emit_outcome(asm: &mut Asm, plan: &Plan, p: &ArchPlan, o: Outcome) {
    match o {
        Outcome::Ret(v) => asm.ret(v),
        Outcome::Block { from, to } => {
            for &(_, r) in &p.entries[from..to] {
                let rule = &plan.rules[r];
                let next_rule = asm.label();
                for c in &plan.conds[rule.conds.clone()] {
                    if p.arch.args_are_64bit() {
                        cond64(asm, c, next_rule);
                    } else {
                        cond32(asm, c, next_rule);
                    }
                }
                asm.ret(rule.action);
                asm.bind(next_rule);
            }
            asm.ret(plan.default);
        }
    }
}

/// Offsets of the low and high halves of argument `i` (little-endian ABIs only).
fn arg_halves(i: u8) -> (u32, u32) {
    let lo = OFF_ARGS + 8 * u32::from(i);
    (lo, lo + 4)
}

/// Falls through when `c` holds on the 32-bit argument, jumps to `fail` otherwise.
fn cond32(asm: &mut Asm, c: &Cond, fail: Label) {
    let (lo, _) = arg_halves(c.index);
    let v = c.value as u32;
    asm.load(lo);
    match c.op {
        Op::Eq => asm.jump(Cmp::Eq, v, To::Next, fail),
        Op::Ne => asm.jump(Cmp::Eq, v, fail, To::Next),
        Op::Gt => asm.jump(Cmp::Gt, v, To::Next, fail),
        Op::Ge => asm.jump(Cmp::Ge, v, To::Next, fail),
        Op::Lt => asm.jump(Cmp::Ge, v, fail, To::Next),
        Op::Le => asm.jump(Cmp::Gt, v, fail, To::Next),
        Op::MaskedEq => {
            asm.and(v);
            asm.jump(Cmp::Eq, c.value_two as u32, To::Next, fail);
        }
    }
}

/// Falls through when `c` holds on the 64-bit argument, jumps to `fail` otherwise.
fn cond64(asm: &mut Asm, c: &Cond, fail: Label) {
    let (lo, hi) = arg_halves(c.index);
    let (vh, vl) = ((c.value >> 32) as u32, c.value as u32);
    let pass = asm.label();
    asm.load(hi);
    match c.op {
        Op::Eq => {
            asm.jump(Cmp::Eq, vh, To::Next, fail);
            asm.load(lo);
            asm.jump(Cmp::Eq, vl, To::Next, fail);
        }
        Op::Ne => {
            asm.jump(Cmp::Eq, vh, To::Next, pass);
            asm.load(lo);
            asm.jump(Cmp::Eq, vl, fail, To::Next);
        }
        Op::Gt | Op::Ge => {
            asm.jump(Cmp::Gt, vh, pass, To::Next);
            asm.jump(Cmp::Eq, vh, To::Next, fail);
            asm.load(lo);
            let cmp = if c.op == Op::Gt { Cmp::Gt } else { Cmp::Ge };
            asm.jump(cmp, vl, To::Next, fail);
        }
        Op::Lt | Op::Le => {
            // Lt = !Ge, Le = !Gt
            asm.jump(Cmp::Gt, vh, fail, To::Next);
            asm.jump(Cmp::Eq, vh, To::Next, pass);
            asm.load(lo);
            let cmp = if c.op == Op::Lt { Cmp::Ge } else { Cmp::Gt };
            asm.jump(cmp, vl, fail, To::Next);
        }
        Op::MaskedEq => {
            let (mh, ml) = (vh, vl);
            let (wh, wl) = ((c.value_two >> 32) as u32, c.value_two as u32);
            asm.and(mh);
            asm.jump(Cmp::Eq, wh, To::Next, fail);
            asm.load(lo);
            asm.and(ml);
            asm.jump(Cmp::Eq, wl, To::Next, fail);
        }
    }
    asm.bind(pass);
}
