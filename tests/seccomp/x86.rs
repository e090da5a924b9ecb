//! 32-bit x86 programs under a filter: the i386 syscall numbers are the ones checked, and an
//! architecture left out of the filter is killed.
//!
//! The program is a hand-made static ELF32 (no toolchain needed): it makes one `int 0x80`
//! syscall and exits with the errno it got (0 on success).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{exit_code, in_child, killed_by, profile, Exec};

const LOAD_ADDR: u32 = 0x0804_8000;
const I386_GETPID: u32 = 20;
const I386_MKDIR: u32 = 39; // getpid's number on x86_64

/// A static i386 ELF executable that runs `syscall(nr, a0, a1, a2)` and exits with its errno.
fn elf32(nr: u32, args: [u32; 3]) -> Vec<u8> {
    let mut code = Vec::new();
    code.push(0xb8); // mov eax, nr
    code.extend_from_slice(&nr.to_le_bytes());
    for (op, a) in [0xbb, 0xb9, 0xba].into_iter().zip(args) {
        code.push(op); // mov ebx/ecx/edx, imm32
        code.extend_from_slice(&a.to_le_bytes());
    }
    code.extend_from_slice(&[
        0xcd, 0x80, // int 0x80
        0x31, 0xdb, // xor ebx, ebx
        0x85, 0xc0, // test eax, eax
        0x79, 0x04, // jns +4
        0x89, 0xc3, // mov ebx, eax
        0xf7, 0xdb, // neg ebx
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (exit)
        0xcd, 0x80, // int 0x80
    ]);
    let (ehsize, phsize) = (52u32, 32u32);
    let total = ehsize + phsize + code.len() as u32;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&3u16.to_le_bytes()); // EM_386
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&(LOAD_ADDR + ehsize + phsize).to_le_bytes()); // entry
    f.extend_from_slice(&ehsize.to_le_bytes()); // phoff
    f.extend_from_slice(&0u32.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&(ehsize as u16).to_le_bytes());
    f.extend_from_slice(&(phsize as u16).to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    for v in [1, 0, LOAD_ADDR, LOAD_ADDR, total, total, 5, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes()); // PT_LOAD, R+X
    }
    f.extend_from_slice(&code);
    f
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Writes the program to a fresh executable file (closed before anyone forks on our behalf).
fn write_prog(nr: u32, args: [u32; 3]) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("rruntime-seccomp-i386-{}-{n}", std::process::id()));
    std::fs::write(&path, elf32(nr, args)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run32(
    f: &rruntime::seccomp::CompiledFilter,
    nr: u32,
    args: [u32; 3],
) -> nix::sys::wait::WaitStatus {
    let path = write_prog(nr, args);
    let exec = Exec::new(path.to_str().unwrap(), &["prog32"]);
    let ws = in_child(f, || exec.exec() + 200);
    std::fs::remove_file(&path).unwrap();
    if ws == nix::sys::wait::WaitStatus::Exited(ws.pid().unwrap(), 200 + libc::ENOEXEC) {
        panic!("this kernel cannot run i386 programs (CONFIG_IA32_EMULATION is needed)");
    }
    ws
}

#[test]
fn i386_numbers_are_used() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    }));
    // Unfiltered control: getpid works, mkdir(NULL) faults.
    let open =
        profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"]}));
    assert_eq!(exit_code(run32(&open, I386_GETPID, [0; 3])), 0);
    assert_eq!(exit_code(run32(&open, I386_MKDIR, [0; 3])), libc::EFAULT);
    // getpid is i386 20, not 39: 20 is refused, 39 (mkdir) still runs and faults.
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0; 3])), libc::ENOSYS);
    assert_eq!(exit_code(run32(&f, I386_MKDIR, [0; 3])), libc::EFAULT);
}

#[test]
fn i386_arguments_are_compared() {
    let f = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7, "args": [
            {"index": 1, "value": 0xffff_ff00u32, "op": "SCMP_CMP_GE"},
            {"index": 2, "value": 0xf0, "valueTwo": 0x30, "op": "SCMP_CMP_MASKED_EQ"}]}]
    }));
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0, 0xffff_ff00, 0x3f])), 7);
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0, 0xffff_fffe, 0x31])), 7);
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0, 0xffff_feff, 0x3f])), 0);
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0, 0xffff_ff00, 0x4f])), 0);
}

#[test]
fn i386_not_in_filter_is_killed() {
    let f = profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(killed_by(run32(&f, I386_GETPID, [0; 3])), Signal::SIGSYS);
}

#[test]
fn docker_profile_on_i386() {
    let path = format!(
        "{}/tests/fixtures/seccomp/docker-default.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let p = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let f = rruntime::seccomp::compile(&p).unwrap();
    assert_eq!(exit_code(run32(&f, I386_GETPID, [0; 3])), 0);
    const I386_UNSHARE: u32 = 310;
    const I386_CLONE3: u32 = 435;
    assert_eq!(
        exit_code(run32(&f, I386_UNSHARE, [0x2_0000, 0, 0])),
        libc::EPERM
    );
    assert_eq!(exit_code(run32(&f, I386_CLONE3, [0, 0, 0])), libc::ENOSYS);
}
