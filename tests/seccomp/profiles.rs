//! Docker's and containerd's default profiles: a normal workload runs, privileged calls fail.

use oci_spec::runtime::LinuxSeccomp;
use rruntime::seccomp::{compile, CompiledFilter};

use crate::support::{errno_of, exit_code, in_child, Exec};

const BUSYBOX: &str = "/bin/busybox";

fn fixture(name: &str) -> CompiledFilter {
    let path = format!(
        "{}/tests/fixtures/seccomp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let p: LinuxSeccomp = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    compile(&p).unwrap()
}

fn need_busybox() {
    assert!(
        std::path::Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: apt-get install busybox-static"
    );
}

const FIXTURES: [&str; 2] = ["docker-default.json", "containerd-default.json"];

#[test]
fn busybox_runs() {
    need_busybox();
    for name in FIXTURES {
        let f = fixture(name);
        let prog = Exec::new(BUSYBOX, &["busybox", "true"]);
        assert_eq!(exit_code(in_child(&f, || prog.exec())), 0, "{name}");
    }
}

#[test]
fn busybox_shell_workload() {
    need_busybox();
    let script = "set -e; d=/tmp/rruntime-seccomp-$$; mkdir $d; echo hi > $d/f; \
                  cat $d/f | grep -q hi; ln -s f $d/l; ls -l $d >/dev/null; \
                  (sleep 0; echo sub) >/dev/null & wait; rm -r $d; \
                  test \"$(echo a b | wc -w)\" = 2";
    for name in FIXTURES {
        let f = fixture(name);
        let prog = Exec::new(BUSYBOX, &["busybox", "sh", "-c", script]);
        assert_eq!(exit_code(in_child(&f, || prog.exec())), 0, "{name}");
    }
}

#[test]
fn privileged_calls_fail() {
    for name in FIXTURES {
        let f = fixture(name);
        let ws = in_child(&f, || {
            // SAFETY: plain syscalls with valid (or NULL) pointers.
            unsafe {
                if errno_of(libc::unshare(libc::CLONE_NEWNS) as i64) != libc::EPERM {
                    return 1;
                }
                if errno_of(libc::unshare(libc::CLONE_NEWUSER) as i64) != libc::EPERM {
                    return 2;
                }
                let r = libc::mount(
                    c"none".as_ptr(),
                    c"/mnt".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                );
                if errno_of(r as i64) != libc::EPERM {
                    return 3;
                }
                if errno_of(libc::syscall(libc::SYS_umount2, c"/proc".as_ptr(), 0)) != libc::EPERM {
                    return 4;
                }
                // clone with a namespace flag: refused by the MASKED_EQ rule.
                let flags = (libc::CLONE_NEWNET | libc::SIGCHLD) as u64;
                if errno_of(libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)) != libc::EPERM {
                    return 5;
                }
                // clone3 answers ENOSYS so that libc falls back to clone.
                if errno_of(libc::syscall(libc::SYS_clone3, 0, 0)) != libc::ENOSYS {
                    return 6;
                }
                // A plain fork through clone is allowed.
                let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0, 0, 0);
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid < 0 {
                    return 7;
                }
                let mut status = 0;
                if libc::waitpid(pid as i32, &mut status, 0) != pid as i32 || status != 0 {
                    return 8;
                }
                // personality: the query is allowed, changing to PER_BSD is not.
                if libc::personality(0xffff_ffff) < 0 {
                    return 9;
                }
                if errno_of(libc::syscall(libc::SYS_personality, 6)) != libc::EPERM {
                    return 10;
                }
                // Syscalls newer than the profile get ENOSYS, omitted older ones EPERM.
                if errno_of(libc::syscall(500)) != libc::ENOSYS {
                    return 11;
                }
                if errno_of(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)) != libc::EPERM {
                    return 12;
                }
            }
            0
        });
        assert_eq!(exit_code(ws), 0, "{name}");
    }
}
