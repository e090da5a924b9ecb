//! A classic-BPF interpreter for seccomp programs: runs a compiled filter against a
//! `seccomp_data` the way the kernel would, for tests and for debugging a profile without
//! loading it.
//!
//! It accepts the instructions seccomp accepts that this compiler emits (and a few more): word
//! loads from `seccomp_data`, `and`/`or` with a constant, `ja`, the conditional jumps with a
//! constant, and `ret k`/`ret a`. Anything else is an error rather than a guess.

use seccompiler::sock_filter;

use super::bpf::{BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP};
use super::bpf::{BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

const BPF_OR: u16 = 0x40;
const BPF_A: u16 = 0x10;

/// The input of a seccomp filter (`struct seccomp_data`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    pub fn new(arch: u32, nr: u32, args: [u64; 6]) -> Self {
        SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte offset `off`, in the host's byte order, like the kernel's loads.
    fn word(&self, off: u32) -> Option<u32> {
        if off % 4 != 0 {
            return None;
        }
        let w = match off {
            0 => self.nr,
            4 => self.arch,
            8..=63 => {
                let i = (off as usize - 8) / 8;
                let v = if i == 0 {
                    self.instruction_pointer
                } else {
                    self.args[i - 1]
                };
                let (first, second) = if cfg!(target_endian = "little") {
                    (v as u32, (v >> 32) as u32)
                } else {
                    ((v >> 32) as u32, v as u32)
                };
                if off % 8 == 0 {
                    first
                } else {
                    second
                }
            }
            _ => return None,
        };
        Some(w)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    #[error("instruction {pc}: unsupported opcode {code:#06x}")]
    Opcode { pc: usize, code: u16 },
    #[error("instruction {pc}: load from invalid offset {off}")]
    Load { pc: usize, off: u32 },
    #[error("instruction {pc}: jump beyond the end of the program")]
    Jump { pc: usize },
    #[error("the program ran off its end without returning")]
    NoReturn,
}

/// Runs `prog` on `data` and returns the filter's verdict (`SECCOMP_RET_*` | data).
pub fn evaluate(prog: &[sock_filter], data: &SeccompData) -> Result<u32, InterpError> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(ins) = prog.get(pc) {
        let next = pc + 1;
        let k = ins.k;
        match ins.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                a = data.word(k).ok_or(InterpError::Load { pc, off: k })?;
                pc = next;
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {
                a &= k;
                pc = next;
            }
            c if c == BPF_ALU | BPF_OR | BPF_K => {
                a |= k;
                pc = next;
            }
            c if c == BPF_RET | BPF_K => return Ok(k),
            c if c == BPF_RET | BPF_A => return Ok(a),
            c if c == BPF_JMP | BPF_JA => {
                let to = next.saturating_add(k as usize);
                if to > prog.len() {
                    return Err(InterpError::Jump { pc });
                }
                pc = to;
            }
            c if c & 0x07 == BPF_JMP && c & 0x08 == BPF_K => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => a == k,
                    BPF_JGT => a > k,
                    BPF_JGE => a >= k,
                    BPF_JSET => a & k != 0,
                    _ => return Err(InterpError::Opcode { pc, code: c }),
                };
                let to = next + usize::from(if taken { ins.jt } else { ins.jf });
                if to > prog.len() {
                    return Err(InterpError::Jump { pc });
                }
                pc = to;
            }
            code => return Err(InterpError::Opcode { pc, code }),
        }
    }
    Err(InterpError::NoReturn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    #[test]
    fn loads_and_jumps() {
        let prog = [
            i(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0),
            i(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 39),
            i(BPF_RET | BPF_K, 0, 0, 1),
            i(BPF_LD | BPF_W | BPF_ABS, 0, 0, 20), // args[0] high half
            i(BPF_JMP | BPF_JGT | BPF_K, 1, 0, 5),
            i(BPF_RET | BPF_K, 0, 0, 2),
            i(BPF_RET | BPF_K, 0, 0, 3),
        ];
        let d = |nr, a0| SeccompData::new(0, nr, [a0, 0, 0, 0, 0, 0]);
        assert_eq!(evaluate(&prog, &d(39, 0)), Ok(1));
        assert_eq!(evaluate(&prog, &d(1, 5 << 32)), Ok(2));
        assert_eq!(evaluate(&prog, &d(1, 6 << 32)), Ok(3));
    }

    #[test]
    fn rejects_bad_programs() {
        let d = SeccompData::default();
        assert_eq!(
            evaluate(&[i(BPF_LD | BPF_W | BPF_ABS, 0, 0, 2)], &d),
            Err(InterpError::Load { pc: 0, off: 2 })
        );
        assert_eq!(
            evaluate(&[i(BPF_LD | BPF_W | BPF_ABS, 0, 0, 64)], &d),
            Err(InterpError::Load { pc: 0, off: 64 })
        );
        assert_eq!(
            evaluate(&[i(BPF_JMP | BPF_JA, 0, 0, 5)], &d),
            Err(InterpError::Jump { pc: 0 })
        );
        assert_eq!(
            evaluate(&[i(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0)], &d),
            Err(InterpError::NoReturn)
        );
        assert!(matches!(
            evaluate(&[i(0x07, 0, 0, 0)], &d),
            Err(InterpError::Opcode { .. })
        ));
    }
}
