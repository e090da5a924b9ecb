//! What the seccomp support can do, for the `features` command (runtime-spec `features.md`).

use oci_spec::runtime::{Arch as OciArch, LinuxSeccompAction, Seccomp};

use super::load::{flag_support, Support};
use super::profile::{
    SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
};
use super::syscalls::Arch;

/// Every action the compiler accepts.
pub const ACTIONS: [LinuxSeccompAction; 9] = [
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActNotify,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActTrap,
];

/// Every argument operator the compiler accepts.
pub const OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Every filter flag the compiler knows, with its `SECCOMP_FILTER_FLAG_*` value.
pub const KNOWN_FLAGS: [(&str, u32); 4] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    ("SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// The architectures the compiler has syscall tables for, as OCI names them.
pub fn archs() -> Vec<OciArch> {
    Arch::ALL
        .iter()
        .map(|a| match a {
            Arch::X86_64 => OciArch::ScmpArchX86_64,
            Arch::X86 => OciArch::ScmpArchX86,
            Arch::X32 => OciArch::ScmpArchX32,
            Arch::Aarch64 => OciArch::ScmpArchAarch64,
        })
        .collect()
}

/// The known flags the running kernel accepts (probed, nothing is loaded).
pub fn supported_flags() -> Vec<String> {
    KNOWN_FLAGS
        .iter()
        .filter(|(_, v)| flag_support(*v) == Support::Yes)
        .map(|(n, _)| n.to_string())
        .collect()
}

/// The `linux.seccomp` entry of `features`.
pub fn features() -> Seccomp {
    let mut s = Seccomp::default();
    s.set_enabled(Some(true));
    s.set_actions(Some(ACTIONS.to_vec()));
    s.set_operators(Some(OPERATORS.iter().map(|o| o.to_string()).collect()));
    s.set_archs(Some(archs()));
    s.set_known_flags(Some(
        KNOWN_FLAGS.iter().map(|(n, _)| n.to_string()).collect(),
    ));
    s.set_supported_flags(Some(supported_flags()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_json() {
        let v = serde_json::to_value(features()).unwrap();
        assert_eq!(v["enabled"], true);
        assert_eq!(v["actions"].as_array().unwrap().len(), 9);
        assert!(v["actions"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_ACT_NOTIFY".into()));
        assert_eq!(v["operators"].as_array().unwrap().len(), 7);
        assert!(v["archs"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_ARCH_X32".into()));
        assert_eq!(v["knownFlags"].as_array().unwrap().len(), 4);
        // Every flag here has been in Linux since 5.19; this test machine is newer.
        assert_eq!(v["supportedFlags"], v["knownFlags"]);
    }
}
