//! User namespace id mappings, written by the runtime for the container's init.

use crate::error::{Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};

fn format_map(m: &[LinuxIdMapping]) -> String {
    let mut s = String::new();
    for e in m {
        s.push_str(&format!(
            "{} {} {}\n",
            e.container_id(),
            e.host_id(),
            e.size()
        ));
    }
    s
}

/// Writes uid_map and gid_map of `pid` from `linux.uidMappings`/`gidMappings`.
pub fn write_mappings(pid: i32, spec: &Spec) -> Result<()> {
    let Some(l) = spec.linux().as_ref() else {
        return Ok(());
    };
    if let Some(m) = l.uid_mappings().as_ref().filter(|m| !m.is_empty()) {
        std::fs::write(format!("/proc/{pid}/uid_map"), format_map(m))
            .ctx(|| "linux.uidMappings: write uid_map")?;
    }
    if let Some(m) = l.gid_mappings().as_ref().filter(|m| !m.is_empty()) {
        if !nix::unistd::geteuid().is_root() {
            // An unprivileged writer must deny setgroups before writing gid_map.
            let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
        }
        std::fs::write(format!("/proc/{pid}/gid_map"), format_map(m))
            .ctx(|| "linux.gidMappings: write gid_map")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_format() {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        )
        .unwrap();
        assert_eq!(format_map(&m), "0 1000 1\n1 100000 65536\n");
    }
}
