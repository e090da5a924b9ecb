//! OCI `linux.seccomp` → a classic-BPF program, and loading it.
//!
//! The profile is compiled in the runtime before the container's init is cloned (errors surface
//! at `create`, and the init only has to load ready-made bytes), then loaded by the init as late as
//! possible before `execve`.
//!
//! # Using it
//!
//! 1. Runtime, before the init is cloned: `let filter = compile(&seccomp)?;` (every validation
//!    error surfaces here). An init started by re-exec gets `filter.to_bytes()` over its pipe and
//!    rebuilds it with [`CompiledFilter::from_bytes`].
//! 2. Init, after mounts, before `execve` (the filter governs every syscall after it, so the
//!    profile must allow what the init still does, `execve` included):
//!    - `process.noNewPrivileges` true: `prctl(PR_SET_NO_NEW_PRIVS)`, drop capabilities and
//!      change user, then [`load`] as the very last step before `execve`;
//!    - otherwise: [`load`] while the init still holds `CAP_SYS_ADMIN`, i.e. before it drops
//!      capabilities and changes user (without either, the kernel answers EACCES).
//! 3. With `SCMP_ACT_NOTIFY`, [`load`] returns the listener: the init passes it to the runtime
//!    with [`send_fd`] on its sync socket and closes it (the syscalls it makes for that must not
//!    be ones the profile notifies, or it waits for an agent that has no fd yet). The runtime
//!    takes it with [`recv_fd`], calls [`send_listener`] with `linux.seccomp.listenerPath` and
//!    [`container_process_state`]`(pid, listenerMetadata, &state)`, and closes its copy.
//!
//! # Why our own BPF generator
//!
//! `seccompiler`'s filter builder targets one architecture per program and a fixed set of actions
//! (no `SECCOMP_RET_USER_NOTIF`), and it has no i386 or x32 tables, while OCI profiles list
//! x86_64, x86 and x32 together and need NOTIFY. So this module generates the program itself
//! (`codegen`, with the long-jump-aware assembler in `bpf`), keeping seccompiler's `sock_filter`
//! as the instruction type; no libseccomp, so the binary stays static. Semantics follow runc +
//! libseccomp (see `profile` for the details, e.g. rules equal to the default action are
//! dropped, unknown syscall names are skipped, and syscalls newer than the profile get ENOSYS
//! when the default action denies); architectures not in the filter meet libseccomp's default
//! bad-architecture action, `SCMP_ACT_KILL` (kill the thread).

mod bpf;
mod codegen;
mod features;
pub mod interp;
mod load;
mod notify;
mod profile;
mod syscall_table;
pub mod syscalls;

use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;
use seccompiler::sock_filter;

pub use bpf::{AsmError, BPF_MAXINSNS};
pub use features::{features, supported_flags, ACTIONS, KNOWN_FLAGS, OPERATORS};
pub use load::{action_support, flag_support, load, Support};
pub use notify::{container_process_state, recv_fd, send_fd, send_listener};
pub use profile::{
    BAD_ARCH_ACTION, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
};
pub use seccompiler::sock_filter as SockFilter;
pub use syscalls::Arch;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Msg(String),
    /// A profile field is invalid; `what` names it (e.g. `syscall "mkdir" (…syscalls[3])`).
    #[error("seccomp: {what}: {msg}")]
    Invalid { what: String, msg: String },
    /// The profile needs something the running kernel does not have.
    #[error("seccomp: {0} is not supported by the running kernel")]
    Unsupported(String),
    #[error("seccomp: this architecture ({0}) is not supported")]
    UnsupportedNative(&'static str),
    /// The profile does not make a valid program (in practice: too long).
    #[error("seccomp: {0}")]
    Program(#[from] AsmError),
    #[error("seccomp: loading the filter: {msg} ({errno})")]
    Load {
        msg: String,
        errno: nix::errno::Errno,
    },
    #[error("seccomp: loading the filter: thread {0} could not be synchronized (SECCOMP_FILTER_FLAG_TSYNC)")]
    Tsync(i64),
    #[error("seccomp: sending the notify listener to {path:?}: {source}")]
    Listener {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp: invalid serialized filter: {0}")]
    Decode(&'static str),
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    program: Vec<sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` from the profile (see [`CompiledFilter::load_flags`]).
    flags: u32,
    listener: bool,
    skipped: Vec<String>,
    ignored_archs: Vec<String>,
}

impl CompiledFilter {
    /// True when the profile uses SCMP_ACT_NOTIFY: loading returns a listener fd.
    pub fn needs_listener(&self) -> bool {
        self.listener
    }

    /// The BPF program.
    pub fn program(&self) -> &[sock_filter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` the profile asked for.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Syscall names of the profile that none of the filter's architectures has (runc skips
    /// them too, logging at debug level).
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }

    /// Architectures listed in the profile that the filter does not cover: they cannot run on
    /// this kernel or have no syscall table here. Their syscalls meet [`BAD_ARCH_ACTION`].
    pub fn ignored_architectures(&self) -> &[String] {
        &self.ignored_archs
    }

    /// Runs the program on one syscall, as the kernel would (see [`interp`]).
    pub fn evaluate(&self, data: &interp::SeccompData) -> Result<u32, interp::InterpError> {
        interp::evaluate(&self.program, data)
    }

    /// A compact encoding of what [`load`] needs, for handing the filter to an init that was
    /// started with `exec` rather than `fork`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 8 * self.program.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.push(u8::from(self.listener));
        out.push(0);
        out.extend_from_slice(&(self.program.len() as u16).to_le_bytes());
        for i in &self.program {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
        out
    }

    /// Decodes [`CompiledFilter::to_bytes`] (skipped-name reports are not carried).
    pub fn from_bytes(b: &[u8]) -> Result<Self, SeccompError> {
        let rest = b
            .strip_prefix(MAGIC)
            .ok_or(SeccompError::Decode("bad magic"))?;
        if rest.len() < 8 {
            return Err(SeccompError::Decode("truncated header"));
        }
        let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let listener = match rest[4] {
            0 => false,
            1 => true,
            _ => return Err(SeccompError::Decode("bad listener byte")),
        };
        let n = usize::from(u16::from_le_bytes([rest[6], rest[7]]));
        let body = &rest[8..];
        if n == 0 || n > BPF_MAXINSNS || body.len() != 8 * n {
            return Err(SeccompError::Decode("bad program length"));
        }
        let program = body
            .chunks_exact(8)
            .map(|c| sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(CompiledFilter {
            program,
            flags,
            listener,
            skipped: Vec::new(),
            ignored_archs: Vec::new(),
        })
    }
}

const MAGIC: &[u8; 4] = b"RRsc";

/// Validates `linux.seccomp` and compiles it for the architecture this binary runs on.
///
/// Besides the profile itself, this checks that the running kernel has every action and flag
/// the profile uses (when the kernel can be asked), so that `load` in the init only fails for
/// reasons of the init's own state (privileges, threads).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<CompiledFilter, SeccompError> {
    let native = Arch::native().ok_or(SeccompError::UnsupportedNative(std::env::consts::ARCH))?;
    compile_for(seccomp, native)
}

/// [`compile`] for a given native architecture (x86_64 or aarch64), without asking the kernel
/// about actions and flags.
pub fn compile_for(seccomp: &LinuxSeccomp, native: Arch) -> Result<CompiledFilter, SeccompError> {
    let plan = profile::plan(seccomp, native)?;
    if Some(native) == Arch::native() {
        check_kernel(&plan)?;
    }
    let program = codegen::generate(&plan)?;
    Ok(CompiledFilter {
        program,
        flags: plan.flags,
        listener: plan.listener,
        skipped: plan.skipped,
        ignored_archs: plan.ignored_archs,
    })
}

fn check_kernel(plan: &profile::Plan) -> Result<(), SeccompError> {
    for (name, flag) in KNOWN_FLAGS {
        if plan.flags & flag != 0 && flag_support(flag) == Support::No {
            return Err(SeccompError::Unsupported(format!("filter flag {name}")));
        }
    }
    let mut checked = [0u32; 8];
    let mut n = 0;
    let actions = std::iter::once(plan.default).chain(plan.rules.iter().map(|r| r.action));
    for a in actions {
        let act = a & profile::SECCOMP_RET_ACTION_FULL;
        if checked[..n].contains(&act) {
            continue;
        }
        if action_support(act) == Support::No {
            return Err(SeccompError::Unsupported(format!(
                "action {}",
                profile::action_name(act)
            )));
        }
        if n < checked.len() {
            checked[n] = act;
            n += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
