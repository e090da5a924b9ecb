//! The few bpf(2) commands the v2 device filter needs, through libc (no C dependencies):
//! load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to a cgroup directory with
//! BPF_F_ALLOW_MULTI, and replace the programs an earlier `create`/`update` attached.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::ebpf::Insn;
use crate::cgroups::error::{CgroupError, Result};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr points to a properly initialised, correctly sized bpf_attr prefix that lives
    // across the call; the kernel zero-extends shorter attrs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd to us.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads the device program; on a verifier rejection the error carries the verifier's log.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    const LICENSE: &CStr = c"Apache-2.0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..10].copy_from_slice(b"rr_devices");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::EACCES) =>
        {
            // Load again with the verifier log to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let again = bpf(BPF_PROG_LOAD, &mut attr);
            if let Ok(fd) = again {
                return Ok(owned(fd));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(CgroupError::msg(format!(
                "load device eBPF program: {e}: {last}"
            )))
        }
        Err(e) => Err(CgroupError::msg(format!("load device eBPF program: {e}"))),
    }
}

/// Opens a cgroup directory for the bpf(2) commands.
pub fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map(|f: File| f.into())
        .map_err(|e| CgroupError::io(dir, e))
}

/// The ids of the device programs attached to the cgroup itself.
pub fn query(cgroup: &OwnedFd, dir: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 65536 => {
                let n = (attr.prog_cnt as usize).max(ids.len() * 2);
                ids = vec![0; n];
            }
            Err(e) => {
                return Err(CgroupError::msg(format!(
                    "query device programs of {}: {e}",
                    dir.display()
                )))
            }
        }
    }
}

/// Attaches `prog` to the cgroup (BPF_F_ALLOW_MULTI: the programs of every level must allow).
pub fn attach(cgroup: &OwnedFd, prog: &OwnedFd, dir: &Path) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ()).map_err(|e| {
        CgroupError::msg(format!(
            "attach device eBPF program to {}: {e}",
            dir.display()
        ))
    })
}

/// Detaches the program with this id from the cgroup; one already gone is fine.
pub fn detach(cgroup: &OwnedFd, id: u32, dir: &Path) -> Result<()> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
        Ok(fd) => owned(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(CgroupError::msg(format!(
                "open device eBPF program {id} of {}: {e}",
                dir.display()
            )))
        }
    };
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(CgroupError::msg(format!(
            "detach device eBPF program {id} from {}: {e}",
            dir.display()
        ))),
    }
}

/// Installs `insns` as the cgroup's device filter. On a fresh cgroup that is one load and one
/// attach; otherwise the new program is attached first and the old ones are detached after, so
/// the cgroup is never unfiltered in between.
pub fn install(dir: &Path, insns: &[Insn], fresh: bool) -> Result<()> {
    let prog = load(insns)?;
    let cg = open_cgroup(dir)?;
    let old = if fresh { Vec::new() } else { query(&cg, dir)? };
    attach(&cg, &prog, dir)?;
    for id in old {
        detach(&cg, id, dir)?;
    }
    Ok(())
}
