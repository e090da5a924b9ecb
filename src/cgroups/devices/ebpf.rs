//! Compiles a folded device rule set ([`Emulator`]) into a BPF_PROG_TYPE_CGROUP_DEVICE program.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` with
//! the device type in the low and the access bits in the high 16 bits of `access_type`, and
//! returns 1 to allow, 0 to deny. Each exception becomes one block that jumps to the next block on
//! the first mismatch and otherwise returns the exception's verdict; the last block returns the
//! default.
//!
//! Access matching follows the kernel's v1 semantics in both modes: an allow-exception (default
//! deny) covers a request only if it grants *every* requested bit; a deny-exception (default
//! allow) blocks a request if it names *any* requested bit.

use super::{Emulator, Kind, ACC_ALL};

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (class | op | source).
pub(crate) const LDX_MEM_W: u8 = 0x61;
pub(crate) const ALU32_AND_K: u8 = 0x54;
pub(crate) const ALU32_RSH_K: u8 = 0x74;
pub(crate) const ALU32_MOV_X: u8 = 0xbc;
pub(crate) const ALU32_MOV_K: u8 = 0xb4;
pub(crate) const JNE_K: u8 = 0x55;
pub(crate) const JNE_X: u8 = 0x5d;
pub(crate) const JEQ_K: u8 = 0x15;
pub(crate) const EXIT: u8 = 0x95;

/// BPF_DEVCG_DEV_BLOCK / BPF_DEVCG_DEV_CHAR.
pub const DEV_BLOCK: i32 = 1;
pub const DEV_CHAR: i32 = 2;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// A jump to the end of the current block, patched once the block's length is known.
const PENDING: i16 = i16::MIN;

/// Generates the program for `emu`.
pub fn program(emu: &Emulator) -> Vec<Insn> {
    let mut p = vec![
        // r2 = type, r3 = access, r4 = major, r5 = minor
        ins(LDX_MEM_W, R2, R1, 0, 0),
        ins(ALU32_AND_K, R2, 0, 0, 0xffff),
        ins(LDX_MEM_W, R3, R1, 0, 0),
        ins(ALU32_RSH_K, R3, 0, 0, 16),
        ins(LDX_MEM_W, R4, R1, 4, 0),
        ins(LDX_MEM_W, R5, R1, 8, 0),
    ];
    let verdict = i32::from(!emu.default_allow);
    for (dev, access) in &emu.exceptions {
        let start = p.len();
        let ty = match dev.kind {
            Kind::Block => DEV_BLOCK,
            Kind::Char => DEV_CHAR,
            // The emulator never keeps `a` exceptions (they reset the set).
            Kind::All => continue,
        };
        p.push(ins(JNE_K, R2, 0, PENDING, ty));
        let access = access & ACC_ALL;
        if emu.default_allow {
            // Deny-exception: skip unless some requested bit is named.
            if access != ACC_ALL {
                p.push(ins(ALU32_MOV_X, R1, R3, 0, 0));
                p.push(ins(ALU32_AND_K, R1, 0, 0, i32::from(access)));
                p.push(ins(JEQ_K, R1, 0, PENDING, 0));
            }
        } else if access != ACC_ALL {
            // Allow-exception: skip unless every requested bit is granted.
            p.push(ins(ALU32_MOV_X, R1, R3, 0, 0));
            p.push(ins(ALU32_AND_K, R1, 0, 0, i32::from(access)));
            p.push(ins(JNE_X, R1, R3, PENDING, 0));
        }
        if let Some(m) = dev.major {
            p.push(ins(JNE_K, R4, 0, PENDING, m as i32));
        }
        if let Some(m) = dev.minor {
            p.push(ins(JNE_K, R5, 0, PENDING, m as i32));
        }
        p.push(ins(ALU32_MOV_K, R0, 0, 0, verdict));
        p.push(ins(EXIT, 0, 0, 0, 0));
        let end = p.len();
        for (i, insn) in p.iter_mut().enumerate().take(end).skip(start) {
            if insn.off == PENDING {
                // Jump target: the first instruction after this block.
                insn.off = (end - i - 1) as i16;
            }
        }
    }
    p.push(ins(ALU32_MOV_K, R0, 0, 0, i32::from(emu.default_allow)));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::super::{Dev, Rule, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use super::*;

    /// Runs the program on (type, access, major, minor) with a tiny interpreter of the opcodes
    /// we emit.
    fn run(p: &[Insn], ty: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(u32::from(access) << 16) | ty as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                JEQ_K => {
                    if r[dst] == i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                JNE_X => {
                    if r[dst] != r[src] {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        panic!("program did not terminate");
    }

    /// The reference semantics, straight from the folded state.
    fn allowed(e: &Emulator, kind: Kind, access: u8, major: u32, minor: u32) -> bool {
        let hit = |d: &Dev, a: u8| {
            d.kind == kind
                && d.major.map_or(true, |m| m == major)
                && d.minor.map_or(true, |m| m == minor)
                && if e.default_allow {
                    a & access != 0
                } else {
                    a & access == access
                }
        };
        let matched = e.exceptions.iter().any(|(d, a)| hit(d, *a));
        if e.default_allow {
            !matched
        } else {
            matched
        }
    }

    fn rule(allow: bool, kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn matches_reference_semantics() {
        let sets = vec![
            vec![],
            vec![rule(true, Kind::All, None, None, ACC_ALL)],
            vec![
                rule(true, Kind::Char, Some(1), Some(3), ACC_READ),
                rule(true, Kind::Char, None, None, ACC_MKNOD),
                rule(true, Kind::Char, Some(136), None, ACC_READ | ACC_WRITE),
                rule(true, Kind::Block, Some(8), Some(0), ACC_ALL),
            ],
            vec![
                rule(true, Kind::All, None, None, ACC_ALL),
                rule(false, Kind::Char, Some(1), Some(3), ACC_WRITE),
                rule(false, Kind::Block, None, None, ACC_ALL),
            ],
        ];
        let accesses = [
            ACC_READ,
            ACC_WRITE,
            ACC_MKNOD,
            ACC_READ | ACC_WRITE,
            ACC_ALL,
        ];
        for rules in sets {
            let e = Emulator::from_rules(&rules).unwrap();
            let p = program(&e);
            for (kind, ty) in [(Kind::Char, DEV_CHAR), (Kind::Block, DEV_BLOCK)] {
                for (ma, mi) in [(1, 3), (1, 5), (136, 7), (8, 0), (8, 1), (5, 2)] {
                    for &acc in &accesses {
                        let want = allowed(&e, kind, acc, ma, mi);
                        let got = run(&p, ty, acc, ma, mi) == 1;
                        assert_eq!(got, want, "{rules:?} {kind:?} {ma}:{mi} acc={acc}");
                    }
                }
            }
        }
    }

    #[test]
    fn deny_exception_blocks_partial_request() {
        // Allow all but writing /dev/null: O_RDWR must be refused too.
        let e = Emulator::from_rules(&[
            rule(true, Kind::All, None, None, ACC_ALL),
            rule(false, Kind::Char, Some(1), Some(3), ACC_WRITE),
        ])
        .unwrap();
        let p = program(&e);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
    }
}
