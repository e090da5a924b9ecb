//! `features`: the runtime-spec features document, listing only what really works.

use crate::error::Result;
use crate::rootfs::mount_opts;
use serde_json::json;

pub fn document() -> serde_json::Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::cli::SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_opts::all_option_names(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            // rdma: `linux.resources.rdma` is written to `rdma.max` on v1 and v2 (src/cgroups/rdma.rs).
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": serde_json::to_value(crate::seccomp::features()).unwrap_or_default(),
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": crate::rootfs::idmap::kernel_supported()}},
            // linux.netDevices: moved with netlink at create (src/netdev.rs).
            "netDevices": {"enabled": true}
        },
        // Annotations that change what the runtime does (runtime-spec features): the systemd
        // driver's unit properties (prefix form, as runc lists it).
        "potentiallyUnsafeConfigAnnotations": [crate::cgroups::systemd::PROPERTY_PREFIX],
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": crate::criu::installed().to_string(),
            "io.github.rruntime.version": env!("CARGO_PKG_VERSION"),
            "io.github.rruntime.commit": env!("RRUNTIME_COMMIT")
        }
    })
}

pub fn run() -> Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&document()).unwrap_or_default()
    );
    Ok(0)
}
