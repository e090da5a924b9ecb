//! Linux security modules: the AppArmor profile and SELinux label the next execve switches to.
//!
//! AppArmor requested on a host without it is an error (the container would silently run
//! unconfined); an SELinux label on a host without SELinux is ignored with a warning, as runc
//! does. The attr files are written only after checking they really are on procfs.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where the LSM interfaces live: the real ones, or a fake tree in tests.
pub struct Lsm {
    /// `/proc/self/attr`.
    pub attr_dir: PathBuf,
    /// `/sys/module/apparmor/parameters/enabled`.
    pub apparmor_param: PathBuf,
    /// `/sys/fs/selinux`.
    pub selinux_fs: PathBuf,
    /// Refuse to write attr files that are not on procfs (always, except for fake trees).
    pub require_procfs: bool,
}

impl Lsm {
    pub fn host() -> Lsm {
        Lsm {
            attr_dir: PathBuf::from("/proc/self/attr"),
            apparmor_param: PathBuf::from("/sys/module/apparmor/parameters/enabled"),
            selinux_fs: PathBuf::from("/sys/fs/selinux"),
            require_procfs: true,
        }
    }

    pub fn apparmor_enabled(&self) -> bool {
        std::fs::read_to_string(&self.apparmor_param).is_ok_and(|s| s.trim() == "Y")
    }

    pub fn selinux_enabled(&self) -> bool {
        self.selinux_fs.join("enforce").exists()
    }

    fn write(&self, path: &Path, data: &[u8]) -> Result<()> {
        if self.require_procfs {
            super::attrs::write_procfs(path, data)
        } else {
            std::fs::write(path, data)
                .map_err(|e| Error::msg(format!("write {}: {e}", path.display())))
        }
    }

    /// `process.apparmorProfile`: `exec <profile>` into attr/apparmor/exec (attr/exec on
    /// kernels without the per-LSM directory).
    pub fn apply_apparmor(&self, profile: &str) -> Result<()> {
        if profile.is_empty() {
            return Ok(());
        }
        if !self.apparmor_enabled() {
            return Err(Error::config(format!(
                "process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"
            )));
        }
        let data = format!("exec {profile}");
        let per_lsm = self.attr_dir.join("apparmor/exec");
        let r = if per_lsm.exists() {
            self.write(&per_lsm, data.as_bytes())
        } else {
            self.write(&self.attr_dir.join("exec"), data.as_bytes())
        };
        r.map_err(|e| Error::msg(format!("apply AppArmor profile {profile}: {e}")))
    }

    /// `process.selinuxLabel` into attr/exec; ignored with a warning without SELinux.
    pub fn apply_selinux(&self, label: &str) -> Result<()> {
        if label.is_empty() {
            return Ok(());
        }
        if !self.selinux_enabled() {
            crate::logging::warn(format!(
                "process.selinuxLabel {label:?} ignored: SELinux is not enabled"
            ));
            return Ok(());
        }
        self.write(&self.attr_dir.join("exec"), label.as_bytes())
            .map_err(|e| Error::msg(format!("apply SELinux label {label}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(name: &str, apparmor: Option<&str>, selinux: bool, per_lsm: bool) -> Lsm {
        let d = std::env::temp_dir().join(format!("rruntime-lsm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("attr/apparmor")).unwrap();
        if !per_lsm {
            std::fs::remove_dir(d.join("attr/apparmor")).unwrap();
        }
        std::fs::create_dir_all(d.join("selinuxfs")).unwrap();
        if selinux {
            std::fs::write(d.join("selinuxfs/enforce"), "1").unwrap();
        }
        if let Some(v) = apparmor {
            std::fs::write(d.join("apparmor-enabled"), v).unwrap();
        }
        if per_lsm {
            std::fs::write(d.join("attr/apparmor/exec"), "").unwrap();
        }
        std::fs::write(d.join("attr/exec"), "").unwrap();
        Lsm {
            attr_dir: d.join("attr"),
            apparmor_param: d.join("apparmor-enabled"),
            selinux_fs: d.join("selinuxfs"),
            require_procfs: false,
        }
    }

    #[test]
    fn apparmor_writes_exec_profile() {
        let l = fake("aa", Some("Y\n"), false, true);
        l.apply_apparmor("docker-default").unwrap();
        let got = std::fs::read_to_string(l.attr_dir.join("apparmor/exec")).unwrap();
        assert_eq!(got, "exec docker-default");
        let l = fake("aa-old", Some("Y"), false, false);
        l.apply_apparmor("p").unwrap();
        assert_eq!(
            std::fs::read_to_string(l.attr_dir.join("exec")).unwrap(),
            "exec p"
        );
    }

    #[test]
    fn apparmor_absent_is_an_error() {
        for v in [None, Some("N")] {
            let l = fake("aa-off", v, false, true);
            let e = l.apply_apparmor("p").unwrap_err().to_string();
            assert!(e.contains("AppArmor is not enabled"), "{e}");
        }
        // No profile requested: nothing to do.
        fake("aa-none", None, false, true)
            .apply_apparmor("")
            .unwrap();
    }

    #[test]
    fn selinux_label_written_or_ignored() {
        let on = fake("se-on", None, true, true);
        on.apply_selinux("system_u:system_r:container_t:s0")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(on.attr_dir.join("exec")).unwrap(),
            "system_u:system_r:container_t:s0"
        );
        let off = fake("se-off", None, false, true);
        off.apply_selinux("x").unwrap();
        assert_eq!(
            std::fs::read_to_string(off.attr_dir.join("exec")).unwrap(),
            ""
        );
    }

    #[test]
    fn real_host_refuses_non_procfs_attr_files() {
        let mut l = fake("se-proc", None, true, true);
        l.require_procfs = true;
        let e = l.apply_selinux("x").unwrap_err().to_string();
        assert!(e.contains("not on procfs"), "{e}");
    }
}
