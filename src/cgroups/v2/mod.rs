//! The cgroup v2 backend for pure v2 hosts.
//!
//! `create` makes the directory, enables every controller the hierarchy root offers in
//! `cgroup.subtree_control` of each ancestor (one write per level, as runc: statistics and a later
//! `update` need them even when `create` sets no limit), writes the resources and attaches the
//! device filter (eBPF). New processes are born in it (`CLONE_INTO_CGROUP` with
//! [`super::JoinPlan::open_v2_dir`]); `add_task` writes `cgroup.procs` where that cannot be done.

pub(crate) mod controllers;
mod cpu;
pub(crate) mod freezer;
pub(crate) mod hugetlb;
mod io;
mod memory;
pub(crate) mod stats;
pub(crate) mod unified;

pub use cpu::shares_to_weight;
pub use io::blkio_weight_to_io_weight;
pub(crate) use memory::swap_v2 as memory_swap_v2;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::devices::{bpf, ebpf, runc_rules, Emulator};
use super::error::{CgroupError, Result};
use super::hugetlb::check_page_size;
use super::kill::signal_pids;
use super::oom::OomEvents;
use super::remove::{self, remove_created};
use super::stats::Stats;
use super::{fs, pids, rdma};
use super::{CgroupManager, CgroupMode, CgroupOptions, CgroupState, Hierarchy};

pub(crate) struct Manager {
    st: CgroupState,
    opts: CgroupOptions,
}

impl Manager {
    pub(crate) fn new(st: CgroupState, opts: CgroupOptions) -> Manager {
        Manager { st, opts }
    }

    fn hier(&self) -> Result<&Hierarchy> {
        self.st
            .hierarchies
            .iter()
            .find(|h| h.is_v2())
            .ok_or_else(|| CgroupError::msg("no cgroup2 hierarchy recorded for this container"))
    }

    fn dir(&self) -> Result<&Path> {
        self.hier().map(|h| h.dir.as_path())
    }

    fn device_target(&self, r: &LinuxResources, creating: bool) -> Result<Option<Emulator>> {
        if self.opts.rootless {
            return Ok(None);
        }
        match r.devices() {
            Some(list) => Emulator::from_oci(list).map(Some),
            None if creating => Emulator::from_oci(&runc_rules(None, [])).map(Some),
            None => Ok(None),
        }
    }

    /// Checks what can be checked without touching the host.
    fn check(r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            memory::swap_v2(m.swap().unwrap_or(0), m.limit().unwrap_or(0))?;
        }
        for l in r.hugepage_limits().iter().flatten() {
            check_page_size(l.page_size())?;
        }
        Ok(())
    }

    /// Writes the resources in runc's order, the device filter, and `unified` last.
    fn set(&self, r: &LinuxResources, devices: Option<&Emulator>, fresh: bool) -> Result<()> {
        let r = &*crate::cgroups::unset::without_zeros(r);
        Self::check(r)?;
        let dir = self.dir()?;
        if let Some(p) = r.pids().as_ref().filter(|p| pids::is_set(p)) {
            pids::apply(dir, p, fresh)
                .map_err(|e| controllers::missing(dir, "pids", "linux.resources.pids", e))?;
        }
        if let Some(m) = r.memory().as_ref().filter(|m| memory::is_set(m)) {
            memory::apply(dir, m, fresh)?;
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| io::is_set(b)) {
            io::apply(dir, b)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::is_set(c) {
                cpu::apply(dir, c, fresh)?;
            }
            cpu::apply_cpuset(dir, c)?;
        }
        if let Some(t) = devices {
            bpf::install(dir, &ebpf::program(t), fresh)?;
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            hugetlb::apply(dir, h)?;
        }
        if let Some(rd) = r.rdma().as_ref().filter(|r| rdma::is_set(r)) {
            rdma::apply(dir, rd)
                .map_err(|e| controllers::missing(dir, "rdma", "linux.resources.rdma", e))?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            unified::apply(dir, u)?;
        }
        Ok(())
    }
}

impl Manager {
    /// The systemd driver: the unit's directory exists (systemd made it and applied the unit
    /// properties); enable the controllers along the path as `create` does and write every
    /// resource and the device filter, next to systemd's own (so `fresh`: nothing is detached).
    pub(crate) fn adopt(&self, r: &LinuxResources) -> Result<()> {
        let target = self.device_target(r, true)?;
        let h = self.hier()?;
        let avail = controllers::available(&h.mount_point).unwrap_or_default();
        controllers::enable(&h.mount_point, &h.dir, &avail, false)?;
        self.set(r, target.as_ref(), true)
    }
}

impl CgroupManager for Manager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let empty = LinuxResources::default();
        let r = resources.unwrap_or(&empty);
        let target = self.device_target(r, true)?;
        Self::check(r)?;
        let h = self.hier()?.clone();
        let mut created = Vec::new();
        let res = fs::mkdir_all(&h.dir, &h.mount_point, &mut created).and_then(|fresh| {
            // Best effort: the runtime may sit where not everything can be delegated; a resource
            // whose controller is missing fails below, naming it.
            let avail = controllers::available(&h.mount_point).unwrap_or_default();
            controllers::enable(&h.mount_point, &h.dir, &avail, false)?;
            self.set(r, target.as_ref(), fresh)
        });
        match res {
            Ok(()) => {
                self.st.created = created;
                Ok(())
            }
            Err(e) => {
                if self.opts.rootless && created.is_empty() && e.errno() == Some(libc::EACCES) {
                    // Rootless without a delegated cgroup: run without one (runc).
                    self.st.hierarchies.clear();
                    return Ok(());
                }
                let _ = remove_created(&created, |d| remove::is_leaf(&self.st, d));
                Err(e)
            }
        }
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        match self.st.hierarchies.first() {
            Some(h) => fs::write(&h.dir, "cgroup.procs", &pid.to_string()),
            None => Ok(()),
        }
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let target = self.device_target(resources, false)?;
        self.set(resources, target.as_ref(), false)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if self.st.hierarchies.is_empty() {
            // Rootless without a cgroup.
            return Ok(out);
        }
        fs::procs_recursive(self.dir()?, &mut out)?;
        Ok(out)
    }

    fn freeze(&self) -> Result<()> {
        freezer::freeze(self.dir()?)
    }

    fn thaw(&self) -> Result<()> {
        freezer::thaw(self.dir()?)
    }

    fn is_frozen(&self) -> Result<bool> {
        freezer::is_frozen(self.dir()?)
    }

    fn destroy(&self) -> Result<()> {
        remove::destroy(&self.st)
    }

    fn destroy_if_empty(&self) -> bool {
        remove::destroy_if_empty(&self.st)
    }

    fn state(&self) -> CgroupState {
        self.st.clone()
    }

    fn kill_all(&self, sig: Signal) -> Result<()> {
        if self.st.hierarchies.is_empty() {
            // Rootless without a cgroup: the caller signals the init itself.
            return Ok(());
        }
        let dir = self.dir()?;
        if sig == Signal::SIGKILL {
            // Linux 5.14+: the kernel kills the whole subtree, forks included.
            match fs::write(dir, "cgroup.kill", "1") {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let frozen = was_frozen || self.freeze().is_ok();
        let r = self.pids().and_then(|p| signal_pids(&p, sig));
        if frozen && (!was_frozen || sig == Signal::SIGKILL) {
            self.thaw()?;
        }
        r
    }

    fn stats(&self) -> Result<Stats> {
        stats::collect(self.dir()?)
    }

    fn oom_events(&self) -> Result<OomEvents> {
        OomEvents::v2(self.dir()?)
    }

    fn mode(&self) -> CgroupMode {
        CgroupMode::V2
    }

    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        super::join_plan(&self.st).open_v2_dir()
    }
}
