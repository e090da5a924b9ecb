//! runc's "zero means unset": callers fill `linux.resources` with zeros for limits the user did
//! not ask for (Docker sends `"cpu": {"shares": 0}`, `"blockIO": {"weight": 0}`, `"memory":
//! {"limit": 0}`…). runc's libcontainer treats 0 as "not set" for these fields and writes
//! nothing; so do we, instead of failing (`cpu.shares 0`) or writing a limit of 0 bytes.
//! Fields where 0 is a real value (swappiness, cpu.idle, cpu.burst) are kept.

use oci_spec::runtime::{LinuxResources, LinuxWeightDeviceBuilder};
use std::borrow::Cow;

pub(crate) fn zero_is_none<T: Default + PartialEq + Copy>(v: Option<T>) -> Option<T> {
    v.filter(|x| *x != T::default())
}

/// `r` with runc's zero-valued "unset" fields removed (borrowed when there is none).
pub fn without_zeros(r: &LinuxResources) -> Cow<'_, LinuxResources> {
    let mut out = r.clone();
    if let Some(m) = out.memory_mut() {
        m.set_limit(zero_is_none(m.limit()));
        m.set_reservation(zero_is_none(m.reservation()));
        m.set_swap(zero_is_none(m.swap()));
        #[allow(deprecated)]
        {
            m.set_kernel(zero_is_none(m.kernel()));
        }
        m.set_kernel_tcp(zero_is_none(m.kernel_tcp()));
    }
    if let Some(c) = out.cpu_mut() {
        c.set_shares(zero_is_none(c.shares()));
        c.set_quota(zero_is_none(c.quota()));
        c.set_period(zero_is_none(c.period()));
        c.set_realtime_runtime(zero_is_none(c.realtime_runtime()));
        c.set_realtime_period(zero_is_none(c.realtime_period()));
    }
    if let Some(b) = out.block_io_mut() {
        b.set_weight(zero_is_none(b.weight()));
        b.set_leaf_weight(zero_is_none(b.leaf_weight()));
        if let Some(mut wd) = b.weight_device().clone() {
            for d in wd.iter_mut() {
                let mut b = LinuxWeightDeviceBuilder::default()
                    .major(d.major())
                    .minor(d.minor());
                if let Some(w) = zero_is_none(d.weight()) {
                    b = b.weight(w);
                }
                if let Some(w) = zero_is_none(d.leaf_weight()) {
                    b = b.leaf_weight(w);
                }
                *d = b.build().unwrap_or(*d);
            }
            b.set_weight_device(Some(wd));
        }
    }
    if out == *r {
        Cow::Borrowed(r)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_zeros_are_unset() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":0,"swap":0,"reservation":0,"swappiness":0,"disableOOMKiller":false},
                "cpu":{"shares":0,"quota":0,"period":0,"idle":0,"cpus":""},
                "blockIO":{"weight":0,"weightDevice":[{"major":8,"minor":0,"weight":0,"leafWeight":10}]},
                "pids":{"limit":0}}"#,
        )
        .unwrap();
        let n = without_zeros(&r);
        let m = n.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap(), m.reservation()), (None, None, None));
        assert_eq!(m.swappiness(), Some(0), "0 is a real swappiness");
        let c = n.cpu().as_ref().unwrap();
        assert_eq!((c.shares(), c.quota(), c.period()), (None, None, None));
        assert_eq!(c.idle(), Some(0), "0 is a real idle value");
        let b = n.block_io().as_ref().unwrap();
        assert_eq!(b.weight(), None);
        let wd = &b.weight_device().as_ref().unwrap()[0];
        assert_eq!((wd.weight(), wd.leaf_weight()), (None, Some(10)));
    }

    #[test]
    fn set_values_are_kept_and_borrowed() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":67108864},"cpu":{"shares":512}}"#).unwrap();
        assert!(matches!(without_zeros(&r), Cow::Borrowed(_)));
    }
}
