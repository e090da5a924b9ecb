//! Parsing `mounts[].options` into mount(2) flags, propagation changes, recursive
//! mount_setattr(2) attributes and the filesystem data string.

use nix::mount::MsFlags;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOpts {
    /// Flags for the mount itself (MS_BIND, MS_REC for rbind, MS_RDONLY, …).
    pub flags: MsFlags,
    /// Flags an option names to be clear (`rw`, `dev`, `suid`, `exec`, `symfollow`, `atime`,
    /// …): a bind mount is remounted to clear them even when no flag is set (runc 1.4).
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (the `r*` options) applied with mount_setattr(AT_RECURSIVE).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Options that are not flags: passed to the filesystem as data.
    pub data: Vec<String>,
    /// `tmpcopyup`: copy the destination's original content into a new tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap`.
    pub idmap: bool,
    pub idmap_recursive: bool,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            attr_set: 0,
            attr_clr: 0,
            data: Vec::new(),
            tmpcopyup: false,
            idmap: false,
            idmap_recursive: false,
        }
    }
}

impl MountOpts {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

/// (name, clear?, flag)
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("nosymfollow", false, MsFlags::from_bits_retain(256)),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("symfollow", true, MsFlags::from_bits_retain(256)),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// (name, clear?, attribute) for recursive mount_setattr options.
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// The recursive options rruntime implements (reported by `features`).
pub fn recursive_option_names() -> impl Iterator<Item = &'static str> {
    REC_ATTRS.iter().map(|(n, _, _)| *n).chain([
        "rrelatime",
        "rnorelatime",
        "rnoatime",
        "ratime",
        "rstrictatime",
        "rnostrictatime",
    ])
}

/// Every option name understood as a flag (for `features`).
pub fn all_option_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
    v.extend(PROPAGATION.iter().map(|(n, _)| *n));
    v.extend(recursive_option_names());
    v.extend(["tmpcopyup", "idmap", "ridmap"]);
    v.sort_unstable();
    v
}

pub fn parse(options: &[String]) -> MountOpts {
    let mut o = MountOpts::default();
    for opt in options {
        let opt = opt.as_str();
        if let Some((_, clear, f)) = FLAGS.iter().find(|(n, _, _)| *n == opt) {
            if *clear {
                o.flags.remove(*f);
                o.cleared.insert(*f);
            } else {
                o.flags.insert(*f);
                o.cleared.remove(*f);
            }
            continue;
        }
        if let Some((_, f)) = PROPAGATION.iter().find(|(n, _)| *n == opt) {
            o.propagation.push(*f);
            continue;
        }
        if let Some((_, clear, a)) = REC_ATTRS.iter().find(|(n, _, _)| *n == opt) {
            if *clear {
                o.attr_clr |= a;
                o.attr_set &= !a;
            } else {
                o.attr_set |= a;
                o.attr_clr &= !a;
            }
            continue;
        }
        match opt {
            "rrelatime" | "rnorelatime" | "rnoatime" | "ratime" | "rstrictatime"
            | "rnostrictatime" => {
                o.attr_clr |= MOUNT_ATTR__ATIME;
                o.attr_set &= !MOUNT_ATTR__ATIME;
                o.attr_set |= match opt {
                    "rnoatime" => MOUNT_ATTR_NOATIME,
                    "rstrictatime" => MOUNT_ATTR_STRICTATIME,
                    _ => MOUNT_ATTR_RELATIME,
                };
            }
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" => o.idmap = true,
            "ridmap" => {
                o.idmap = true;
                o.idmap_recursive = true;
            }
            _ => o.data.push(opt.to_string()),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOpts {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string(), "mode=755,size=65536k");
    }

    #[test]
    fn later_option_wins() {
        assert!(p(&["ro", "rw"]).flags.is_empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn clearing_options_are_recorded() {
        let o = p(&["bind", "dev", "symfollow", "nosuid"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_NOSUID);
        assert_eq!(
            o.cleared,
            MsFlags::MS_NODEV | MsFlags::from_bits_retain(256)
        );
        // The last word wins either way.
        let o = p(&["dev", "nodev", "ro", "rw"]);
        assert_eq!(o.flags, MsFlags::MS_NODEV);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY);
    }

    #[test]
    fn rbind_and_propagation() {
        let o = p(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn recursive_attrs() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.attr_clr, MOUNT_ATTR__ATIME);
        assert!(o.data.is_empty());
    }
}
