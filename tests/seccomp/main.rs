//! Behavioural seccomp tests: filters are loaded for real in forked children (which set
//! no_new_privs, so no privilege is needed) and the kernel's answers are checked. The profile
//! tests exec /bin/busybox (Debian: busybox-static); the x86 tests need a kernel that runs i386
//! programs (CONFIG_IA32_EMULATION) but no 32-bit toolchain.

mod enforce;
mod notify;
mod profiles;
mod support;
mod x86;
