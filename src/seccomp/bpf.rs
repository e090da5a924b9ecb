//! A tiny classic-BPF assembler with symbolic forward labels.
//!
//! Conditional jumps in classic BPF have 8-bit offsets (at most 255 instructions forward), only
//! `BPF_JA` has a 32-bit one. The code generator writes jumps to labels and never thinks about
//! distance; [`Asm::finish`] lays the program out and, for every conditional branch whose target
//! is too far, routes that branch through a `ja` placed right after the jump (a trampoline).
//! Inserting trampolines moves code and can push other branches out of range, so layout repeats
//! until nothing changes (branches only ever gain trampolines, so this terminates, in practice
//! after two or three rounds).

use seccompiler::sock_filter;

// Instruction classes and fields (linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_W: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_AND: u16 = 0x50;
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40; // for the interpreter
pub const BPF_K: u16 = 0x00;

/// The kernel's limit on the length of a classic BPF program (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// A jump target, bound to the instruction that follows [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(u32);

/// Where a conditional branch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// The next instruction (fall through).
    Next,
    Label(Label),
}

impl From<Label> for To {
    fn from(l: Label) -> To {
        To::Label(l)
    }
}

/// A comparison of the accumulator with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Stmt { code: u16, k: u32 },
    Jump { code: u16, k: u32, jt: To, jf: To },
    Bind(Label),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    #[error("label {0} is used but never bound")]
    Unbound(u32),
    #[error("label {0} is bound after the last instruction")]
    BoundAtEnd(u32),
    #[error("jump at instruction {0} goes backwards")]
    Backwards(usize),
    #[error("the program has {0} instructions, more than the kernel's limit of {BPF_MAXINSNS}")]
    TooLong(usize),
    #[error("the program is empty or does not end with a return")]
    NoFinalReturn,
}

/// Builds a program out of statements, jumps and labels.
#[derive(Debug, Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: u32,
}

impl Asm {
    pub fn with_capacity(n: usize) -> Self {
        Asm {
            items: Vec::with_capacity(n),
            labels: 0,
        }
    }

    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Binds `l` to the next instruction emitted.
    pub fn bind(&mut self, l: Label) {
        self.items.push(Item::Bind(l));
    }

    /// `A = *(u32 *)(data + off)`
    pub fn load(&mut self, off: u32) {
        self.items.push(Item::Stmt {
            code: BPF_LD | BPF_W | BPF_ABS,
            k: off,
        });
    }

    /// `A &= k`
    pub fn and(&mut self, k: u32) {
        self.items.push(Item::Stmt {
            code: BPF_ALU | BPF_AND | BPF_K,
            k,
        });
    }

    /// `return k`
    pub fn ret(&mut self, k: u32) {
        self.items.push(Item::Stmt {
            code: BPF_RET | BPF_K,
            k,
        });
    }

    /// `if A <cmp> k goto jt else goto jf`
    pub fn jump(&mut self, cmp: Cmp, k: u32, jt: impl Into<To>, jf: impl Into<To>) {
        let op = match cmp {
            Cmp::Eq => BPF_JEQ,
            Cmp::Gt => BPF_JGT,
            Cmp::Ge => BPF_JGE,
        };
        self.items.push(Item::Jump {
            code: BPF_JMP | op | BPF_K,
            k,
            jt: jt.into(),
            jf: jf.into(),
        });
    }

    /// Lays the program out, adding trampolines for far branches, and encodes it.
    pub fn finish(self) -> Result<Vec<sock_filter>, AsmError> {
        let n_labels = self.labels as usize;
        // Bit 0: the true branch goes through a trampoline; bit 1: the false branch does.
        let mut tramp = vec![0u8; self.items.len()];
        let mut pos = vec![0usize; self.items.len()];
        let mut label_pos = vec![usize::MAX; n_labels];
        let total = loop {
            let mut p = 0usize;
            for (i, item) in self.items.iter().enumerate() {
                pos[i] = p;
                match item {
                    Item::Bind(l) => label_pos[l.0 as usize] = p,
                    Item::Stmt { .. } => p += 1,
                    Item::Jump { .. } => p += 1 + tramp[i].count_ones() as usize,
                }
            }
            let mut changed = false;
            for (i, item) in self.items.iter().enumerate() {
                if let Item::Jump { jt, jf, .. } = item {
                    for (bit, to) in [(1u8, jt), (2u8, jf)] {
                        if tramp[i] & bit != 0 {
                            continue;
                        }
                        let target = target_of(*to, i, &pos, &tramp, &label_pos)?;
                        if target - (pos[i] + 1) > u8::MAX as usize {
                            tramp[i] |= bit;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break p;
            }
        };
        if total > BPF_MAXINSNS {
            return Err(AsmError::TooLong(total));
        }
        if let Some(l) = label_pos
            .iter()
            .position(|&p| p >= total && p != usize::MAX)
        {
            return Err(AsmError::BoundAtEnd(l as u32));
        }

        let mut out = Vec::with_capacity(total);
        for (i, item) in self.items.iter().enumerate() {
            match *item {
                Item::Bind(_) => {}
                Item::Stmt { code, k } => out.push(insn(code, 0, 0, k)),
                Item::Jump { code, k, jt, jf } => {
                    let base = pos[i] + 1;
                    let t_target = target_of(jt, i, &pos, &tramp, &label_pos)?;
                    let f_target = target_of(jf, i, &pos, &tramp, &label_pos)?;
                    let t_tramp = tramp[i] & 1 != 0;
                    let f_tramp = tramp[i] & 2 != 0;
                    let t_off = if t_tramp { 0 } else { t_target - base };
                    let f_off = if f_tramp {
                        usize::from(t_tramp)
                    } else {
                        f_target - base
                    };
                    // Both fit by construction of the layout loop.
                    out.push(insn(code, t_off as u8, f_off as u8, k));
                    let mut slot = base;
                    for (used, target) in [(t_tramp, t_target), (f_tramp, f_target)] {
                        if used {
                            let k = forward(target, slot + 1, i)?;
                            out.push(insn(BPF_JMP | BPF_JA, 0, 0, k as u32));
                            slot += 1;
                        }
                    }
                }
            }
        }
        match out.last() {
            Some(last) if last.code == BPF_RET | BPF_K => Ok(out),
            _ => Err(AsmError::NoFinalReturn),
        }
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn resolve(l: Label, label_pos: &[usize]) -> Result<usize, AsmError> {
    match label_pos.get(l.0 as usize) {
        Some(&p) if p != usize::MAX => Ok(p),
        _ => Err(AsmError::Unbound(l.0)),
    }
}

/// The distance from `from` (the instruction after the jump) to `target`.
fn forward(target: usize, from: usize, item: usize) -> Result<usize, AsmError> {
    target.checked_sub(from).ok_or(AsmError::Backwards(item))
}

/// The position a branch of jump `i` lands on (past its own trampolines for `To::Next`).
fn target_of(
    to: To,
    i: usize,
    pos: &[usize],
    tramp: &[u8],
    label_pos: &[usize],
) -> Result<usize, AsmError> {
    let target = match to {
        To::Next => pos[i] + 1 + tramp[i].count_ones() as usize,
        To::Label(l) => resolve(l, label_pos)?,
    };
    if target < pos[i] + 1 {
        return Err(AsmError::Backwards(i));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jumps_are_direct() {
        let mut a = Asm::default();
        let l = a.label();
        a.load(0);
        a.jump(Cmp::Eq, 7, l, To::Next);
        a.ret(1);
        a.bind(l);
        a.ret(2);
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!((p[1].jt, p[1].jf), (1, 0));
    }

    #[test]
    fn far_jumps_get_trampolines() {
        let mut a = Asm::default();
        let far = a.label();
        a.load(0);
        a.jump(Cmp::Eq, 1, far, To::Next);
        for i in 0..300 {
            a.ret(i);
        }
        a.bind(far);
        a.ret(999);
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 2 + 1 + 300 + 1);
        // jt goes to the trampoline right after the jump; jf skips it.
        assert_eq!((p[1].jt, p[1].jf), (0, 1));
        assert_eq!(p[2].code, BPF_JMP | BPF_JA);
        assert_eq!(3 + p[2].k as usize, p.len() - 1);
        assert_eq!(p[p.len() - 1].k, 999);
    }

    #[test]
    fn both_branches_far() {
        let mut a = Asm::default();
        let (t, f) = (a.label(), a.label());
        a.load(0);
        a.jump(Cmp::Gt, 1, t, f);
        for i in 0..300 {
            a.ret(i);
        }
        a.bind(t);
        for i in 0..300 {
            a.ret(i);
        }
        a.bind(f);
        a.ret(7);
        let p = a.finish().unwrap();
        assert_eq!((p[1].jt, p[1].jf), (0, 1));
        assert_eq!(3 + p[2].k as usize, 4 + 300);
        assert_eq!(4 + p[3].k as usize, 4 + 600);
    }

    #[test]
    fn cascading_relaxation() {
        // Many jumps whose targets sit just within range until earlier ones grow.
        let mut a = Asm::default();
        let end = a.label();
        a.load(0);
        for i in 0..40 {
            a.jump(Cmp::Eq, i, end, To::Next);
        }
        for i in 0..215 {
            a.ret(i);
        }
        a.bind(end);
        a.ret(1234);
        let p = a.finish().unwrap();
        let end_pos = p.len() - 1;
        // Follow each jump's true branch and check it reaches `end`.
        let mut pc = 1;
        let mut seen = 0;
        while seen < 40 {
            let j = &p[pc];
            assert_eq!(j.code & 0x07, BPF_JMP);
            let mut t = pc + 1 + j.jt as usize;
            if p[t].code == BPF_JMP | BPF_JA {
                t = t + 1 + p[t].k as usize;
            }
            assert_eq!(t, end_pos);
            pc = pc + 1 + j.jf as usize;
            seen += 1;
        }
    }

    #[test]
    fn errors() {
        let mut a = Asm::default();
        let l = a.label();
        a.jump(Cmp::Eq, 0, l, To::Next);
        a.ret(0);
        assert_eq!(a.finish(), Err(AsmError::Unbound(0)));

        let mut a = Asm::default();
        let l = a.label();
        a.bind(l);
        a.ret(0);
        a.jump(Cmp::Eq, 0, To::Next, l);
        a.ret(0);
        assert_eq!(a.finish(), Err(AsmError::Backwards(2)));

        let mut a = Asm::default();
        let l = a.label();
        a.jump(Cmp::Eq, 0, To::Next, l);
        a.ret(0);
        a.bind(l);
        assert_eq!(a.finish(), Err(AsmError::BoundAtEnd(0)));

        let mut a = Asm::default();
        for _ in 0..=BPF_MAXINSNS {
            a.ret(0);
        }
        assert_eq!(a.finish(), Err(AsmError::TooLong(BPF_MAXINSNS + 1)));

        let mut a = Asm::default();
        a.load(0);
        assert_eq!(a.finish(), Err(AsmError::NoFinalReturn));
    }
}
