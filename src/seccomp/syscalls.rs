//! The architectures the compiler handles, and syscall name → number look-ups.
//!
//! The numbers live in one static table sorted by name (`syscall_table.rs`, generated from the
//! kernel's UAPI headers by `gen_syscall_table.py`), so a look-up is one binary search and never
//! allocates.

use super::syscall_table::SYSCALLS;

/// Marks "no such syscall on this architecture" in the table.
pub(super) const NONE: u16 = u16::MAX;

/// `__X32_SYSCALL_BIT`: x32 syscalls are x86_64's `AUDIT_ARCH_X86_64` with this bit in `nr`.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_*` values, as the kernel reports them in `seccomp_data.arch`.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
pub const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
pub const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// A syscall ABI the compiler has numbers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    /// i386, also 32-bit programs on an x86_64 kernel.
    X86,
    /// x32: x86_64's registers and `AUDIT_ARCH_X86_64`, `nr` carries [`X32_SYSCALL_BIT`].
    X32,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64];

    /// The architecture this binary runs on, if the compiler supports it.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The value of `seccomp_data.arch` for this ABI.
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
            Arch::X86 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// True when syscall arguments are 64 bits wide (both halves of `seccomp_data.args[i]`
    /// matter). On x86 (i386) the kernel zero-extends 32-bit registers, so only the low half is
    /// compared there, as libseccomp does for 32-bit ABIs.
    pub fn args_are_64bit(self) -> bool {
        !matches!(self, Arch::X86)
    }

    /// The OCI / libseccomp name.
    pub fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    /// A dense index (0..4), the column of the syscall table.
    pub fn index(self) -> usize {
        match self {
            Arch::X86_64 => 0,
            Arch::X86 => 1,
            Arch::X32 => 2,
            Arch::Aarch64 => 3,
        }
    }

    /// The architectures that can run on a kernel of this (native) architecture.
    pub fn runs_on(self, native: Arch) -> bool {
        match native {
            Arch::X86_64 => matches!(self, Arch::X86_64 | Arch::X86 | Arch::X32),
            other => self == other,
        }
    }
}

/// The numbers of one syscall name on every supported architecture.
#[derive(Debug, Clone, Copy)]
pub struct SyscallNrs(&'static [u16; 4]);

impl SyscallNrs {
    /// The value of `seccomp_data.nr` for this syscall on `arch` (x32 numbers include the x32
    /// bit), or `None` when the syscall does not exist there.
    pub fn on(self, arch: Arch) -> Option<u32> {
        let n = self.0[arch.index()];
        if n == NONE {
            return None;
        }
        let n = u32::from(n);
        Some(if arch == Arch::X32 {
            n | X32_SYSCALL_BIT
        } else {
            n
        })
    }
}

/// Looks a syscall name up in the table (one binary search).
pub fn lookup(name: &str) -> Option<SyscallNrs> {
    SYSCALLS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| SyscallNrs(&SYSCALLS[i].1))
}

/// The syscall number of `name` on `arch`.
pub fn number(arch: Arch, name: &str) -> Option<u32> {
    lookup(name).and_then(|nrs| nrs.on(arch))
}

/// The name of syscall `nr` on `arch` (a linear scan: for messages and tests, not hot paths).
pub fn name_of(arch: Arch, nr: u32) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|(_, nrs)| SyscallNrs(nrs).on(arch) == Some(nr))
        .map(|(n, _)| *n)
}

/// Every syscall name the table knows (on at least one architecture).
pub fn all_names() -> impl Iterator<Item = &'static str> {
    SYSCALLS.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in SYSCALLS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn numbers_are_unique_per_arch() {
        for arch in Arch::ALL {
            let mut seen = std::collections::HashMap::new();
            for (name, nrs) in SYSCALLS {
                if let Some(nr) = SyscallNrs(nrs).on(arch) {
                    if let Some(other) = seen.insert(nr, *name) {
                        panic!("{arch:?}: {name} and {other} both have number {nr}");
                    }
                }
            }
        }
    }

    #[test]
    fn known_numbers() {
        // Spot checks against the kernel's syscall tables.
        let cases: &[(&str, Arch, Option<u32>)] = &[
            ("read", Arch::X86_64, Some(0)),
            ("getpid", Arch::X86_64, Some(39)),
            ("getpid", Arch::X86, Some(20)),
            ("mkdir", Arch::X86, Some(39)),
            ("mkdir", Arch::Aarch64, None),
            ("mkdirat", Arch::Aarch64, Some(34)),
            ("socketcall", Arch::X86, Some(102)),
            ("socketcall", Arch::X86_64, None),
            ("personality", Arch::X86_64, Some(135)),
            ("personality", Arch::X86, Some(136)),
            ("rt_sigaction", Arch::X32, Some(512 | X32_SYSCALL_BIT)),
            ("read", Arch::X32, Some(X32_SYSCALL_BIT)),
            ("execve", Arch::X32, Some(520 | X32_SYSCALL_BIT)),
            ("clone3", Arch::X86, Some(435)),
            ("cachestat", Arch::X86_64, Some(451)),
            ("fchmodat2", Arch::X86, Some(452)),
            ("map_shadow_stack", Arch::X86_64, Some(453)),
            ("futex_wake", Arch::Aarch64, Some(454)),
            ("futex_wait", Arch::X86_64, Some(455)),
            ("futex_requeue", Arch::X86_64, Some(456)),
            ("statmount", Arch::X86_64, Some(457)),
            ("listmount", Arch::X86, Some(458)),
            ("lsm_get_self_attr", Arch::X86_64, Some(459)),
            ("lsm_set_self_attr", Arch::X86_64, Some(460)),
            ("lsm_list_modules", Arch::X86_64, Some(461)),
            ("mseal", Arch::X86_64, Some(462)),
            ("setxattrat", Arch::X86_64, Some(463)),
            ("getxattrat", Arch::X86, Some(464)),
            ("listxattrat", Arch::X86_64, Some(465)),
            ("removexattrat", Arch::X86_64, Some(466)),
            ("open_tree_attr", Arch::X86_64, Some(467)),
            ("open_tree_attr", Arch::X32, Some(467 | X32_SYSCALL_BIT)),
            ("uretprobe", Arch::X86_64, Some(335)),
            ("uretprobe", Arch::X86, None),
            ("no_such_syscall", Arch::X86_64, None),
        ];
        for (name, arch, nr) in cases {
            assert_eq!(number(*arch, name), *nr, "{name} on {arch:?}");
        }
    }

    #[test]
    fn native_matches_libc() {
        if Arch::native() == Some(Arch::X86_64) {
            assert_eq!(
                number(Arch::X86_64, "getpid"),
                Some(libc::SYS_getpid as u32)
            );
            assert_eq!(
                number(Arch::X86_64, "seccomp"),
                Some(libc::SYS_seccomp as u32)
            );
            assert_eq!(
                number(Arch::X86_64, "clone3"),
                Some(libc::SYS_clone3 as u32)
            );
            assert_eq!(name_of(Arch::X86_64, 83), Some("mkdir"));
        }
    }
}
