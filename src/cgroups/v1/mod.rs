//! The cgroup v1 backend, also used on hybrid hosts (v1 controllers plus a cgroup2 mount).
//!
//! Every v1 hierarchy gets the container's directory; `name=systemd` is joined best-effort (as
//! runc does). On hybrid hosts the same path is created in the cgroup2 hierarchy and the container
//! joins it too, so it is tracked there (and `hugetlb`, which this kind of host may only have on
//! cgroup2, can be limited there).

pub(crate) mod blkio;
mod cpu;
pub(crate) mod cpuset;
mod devices;
mod freezer;
mod hugetlb;
mod memory;
mod net;
pub(crate) mod stats;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::devices::{runc_rules, Emulator};
use super::error::{CgroupError, Result};
use super::kill::signal_pids;
use super::oom::OomEvents;
use super::remove::{self, remove_created};
use super::stats::Stats;
use super::{fs, pids, rdma, v2};
use super::{CgroupManager, CgroupMode, CgroupOptions, CgroupState, Hierarchy};

pub(crate) struct Manager {
    st: CgroupState,
    opts: CgroupOptions,
    /// Rootless: hierarchies skipped at `create` because the user may not write them.
    denied: Vec<Hierarchy>,
}

/// A permission error: what a rootless runtime gets for a hierarchy it may not write.
fn is_permission(e: &CgroupError) -> bool {
    matches!(
        e.errno(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

impl Manager {
    pub(crate) fn new(st: CgroupState, opts: CgroupOptions) -> Manager {
        Manager {
            st,
            opts,
            denied: Vec::new(),
        }
    }

    fn hier(&self, controller: &str) -> Option<&Hierarchy> {
        self.st
            .hierarchies
            .iter()
            .find(|h| !h.is_v2() && h.has(controller))
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.hier(controller).map(|h| h.dir.as_path())
    }

    fn unified(&self) -> Option<&Hierarchy> {
        self.st.hierarchies.iter().find(|h| h.is_v2())
    }

    fn need(&self, controller: &str, resource: &str) -> Result<&Hierarchy> {
        self.hier(controller).ok_or_else(|| {
            if let Some(h) = self.denied.iter().find(|h| h.has(controller)) {
                return CgroupError::msg(format!(
                    "{resource}: cannot apply the limit: the rootless runtime may not create \
                     cgroup {} (permission denied)",
                    h.dir.display()
                ));
            }
            CgroupError::unsupported(
                resource,
                format!("the {controller} cgroup controller is not mounted on this host"),
            )
        })
    }

    /// Hugetlb limits go to the v1 hierarchy, or on hybrid hosts without one to cgroup2 when it
    /// has the controller. `Ok(None)`: the unified one.
    fn hugetlb_dir(&self) -> Result<Option<&Path>> {
        if let Some(d) = self.dir("hugetlb") {
            return Ok(Some(d));
        }
        if let Some(u) = self.unified() {
            if v2::controllers::available(&u.mount_point)
                .map(|c| c.iter().any(|c| c == "hugetlb"))
                .unwrap_or(false)
            {
                return Ok(None);
            }
        }
        Err(CgroupError::unsupported(
            "hugepageLimits",
            "this host has no hugetlb cgroup controller (neither a v1 hierarchy nor on cgroup2)",
        ))
    }

    /// The devices state to establish: the given rules, or on `create` runc's defaults.
    fn device_target(&self, r: &LinuxResources, creating: bool) -> Result<Option<Emulator>> {
        if self.opts.rootless {
            // Unprivileged: the devices cgroup cannot be written (runc skips it too).
            return Ok(None);
        }
        match r.devices() {
            Some(list) => Emulator::from_oci(list).map(Some),
            None if creating => Emulator::from_oci(&runc_rules(None, [])).map(Some),
            None => Ok(None),
        }
    }

    /// Fails before anything is created if a requested resource has no controller here.
    fn check(&self, r: &LinuxResources, devices: bool) -> Result<()> {
        if devices {
            self.need("devices", "device rules (linux.resources.devices)")?;
        }
        if r.memory().as_ref().is_some_and(memory::is_set) {
            self.need("memory", "linux.resources.memory")?;
        }
        if let Some(c) = r.cpu() {
            if cpu::is_set(c) {
                self.need("cpu", "linux.resources.cpu")?;
            }
            if cpu::is_set_cpuset(c) {
                self.need("cpuset", "linux.resources.cpu.cpus/mems")?;
            }
        }
        if r.pids().as_ref().is_some_and(pids::is_set) {
            self.need("pids", "linux.resources.pids")?;
        }
        if r.block_io().as_ref().is_some_and(blkio::is_set) {
            self.need("blkio", "linux.resources.blockIO")?;
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            self.hugetlb_dir()?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() {
                self.need("net_cls", "linux.resources.network.classID")?;
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                self.need("net_prio", "linux.resources.network.priorities")?;
            }
        }
        if r.rdma().as_ref().is_some_and(rdma::is_set) {
            self.need("rdma", "linux.resources.rdma")?;
        }
        // Also on a hybrid host: its controllers are in v1, and runc's v1 manager refuses
        // `unified` rather than writing the keys into the cgroup2 tree beside them.
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::msg(
                "invalid configuration: cannot use unified on cgroup v1",
            ));
        }
        Ok(())
    }

    /// Writes the resources. `fresh(dir)`: `dir` was created just now (holds kernel defaults).
    fn set(
        &self,
        r: &LinuxResources,
        devices_target: Option<&Emulator>,
        fresh: &dyn Fn(&Path) -> bool,
    ) -> Result<()> {
        let r = &*crate::cgroups::unset::without_zeros(r);
        self.check(r, devices_target.is_some())?;
        if let Some(c) = r.cpu().as_ref().filter(|c| cpu::is_set_cpuset(c)) {
            let h = self.need("cpuset", "linux.resources.cpu.cpus/mems")?;
            cpuset::apply(&h.dir, h.noprefix, c)?;
        }
        if let Some(t) = devices_target {
            let h = self.need("devices", "linux.resources.devices")?;
            devices::apply(&h.dir, t, fresh(&h.dir))?;
        }
        if let Some(m) = r.memory().as_ref().filter(|m| memory::is_set(m)) {
            let d = &self.need("memory", "linux.resources.memory")?.dir;
            memory::apply(d, m, fresh(d))?;
        }
        if let Some(c) = r.cpu().as_ref().filter(|c| cpu::is_set(c)) {
            let d = &self.need("cpu", "linux.resources.cpu")?.dir;
            cpu::apply(d, c, fresh(d))?;
        }
        if let Some(p) = r.pids().as_ref().filter(|p| pids::is_set(p)) {
            let d = &self.need("pids", "linux.resources.pids")?.dir;
            pids::apply(d, p, fresh(d))?;
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| blkio::is_set(b)) {
            blkio::apply(&self.need("blkio", "linux.resources.blockIO")?.dir, b)?;
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            match self.hugetlb_dir()? {
                Some(d) => hugetlb::apply(d, h)?,
                None => {
                    if let Some(u) = self.unified() {
                        v2::hugetlb::apply(&u.dir, h)?;
                    }
                }
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let d = &self.need("net_cls", "linux.resources.network.classID")?.dir;
                net::apply_classid(d, id)?;
            }
            if let Some(p) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
                let d = &self
                    .need("net_prio", "linux.resources.network.priorities")?
                    .dir;
                net::apply_priorities(d, p)?;
            }
        }
        if let Some(rd) = r.rdma().as_ref().filter(|r| rdma::is_set(r)) {
            rdma::apply(&self.need("rdma", "linux.resources.rdma")?.dir, rd)?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::msg(
                "invalid configuration: cannot use unified on cgroup v1",
            ));
        }
        Ok(())
    }

    /// Makes the directories, recording them in `created`; returns the indexes of best-effort
    /// hierarchies that could not be created.
    fn make_dirs(&self, r: &LinuxResources, created: &mut Vec<PathBuf>) -> Result<Vec<usize>> {
        let mut dropped = Vec::new();
        for (i, h) in self.st.hierarchies.iter().enumerate() {
            let before = created.len();
            if let Err(e) = fs::mkdir_all(&h.dir, &h.mount_point, created) {
                if h.best_effort() || (self.opts.rootless && is_permission(&e)) {
                    dropped.push(i);
                    continue;
                }
                return Err(e);
            }
            if h.has("cpuset") {
                cpuset::init_dirs(
                    &created[before..],
                    &h.dir,
                    &h.mount_point,
                    h.noprefix,
                    r.cpu().as_ref(),
                )?;
            }
        }
        Ok(dropped)
    }

    /// The hierarchy whose `cgroup.procs` lists the container's processes best.
    fn procs_dir(&self) -> Option<&Path> {
        ["freezer", "pids", "memory", "devices", "cpu"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| {
                self.st
                    .hierarchies
                    .iter()
                    .find(|h| !h.best_effort())
                    .map(|h| h.dir.as_path())
            })
    }
}

impl CgroupManager for Manager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let empty = LinuxResources::default();
        let r = resources.unwrap_or(&empty);
        let target = self.device_target(r, true)?;
        self.check(r, target.is_some())?;
        let hugetlb_unified = r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            && self.hugetlb_dir()?.is_none();
        // What create_clone_target made already stays for the caller to remove (the init is
        // in it): only this call's directories are removed on failure.
        let mut created = std::mem::take(&mut self.st.created);
        let before = created.len();
        let res = self.make_dirs(r, &mut created).and_then(|dropped| {
            for i in dropped.into_iter().rev() {
                let h = self.st.hierarchies.remove(i);
                if !h.best_effort() {
                    self.denied.push(h);
                }
            }
            if hugetlb_unified {
                if let Some(u) = self.unified() {
                    v2::controllers::enable(&u.mount_point, &u.dir, &["hugetlb".into()], true)?;
                }
            }
            self.set(r, target.as_ref(), &|d| created.iter().any(|c| c == d))
        });
        match res {
            Ok(()) => {
                self.st.created = created;
                Ok(())
            }
            Err(e) => {
                let _ = remove_created(&created[before..], |d| remove::is_leaf(&self.st, d));
                created.truncate(before);
                self.st.created = created;
                Err(e)
            }
        }
    }

    fn create_clone_target(&mut self) -> bool {
        if self.opts.rootless {
            return false;
        }
        let Some(u) = self.unified().cloned() else {
            return true;
        };
        let mut created = Vec::new();
        match fs::mkdir_all(&u.dir, &u.mount_point, &mut created) {
            Ok(_) => {
                self.st.created = created;
                true
            }
            Err(_) => {
                let _ = remove_created(&created, |_| false);
                false
            }
        }
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for h in &self.st.hierarchies {
            match fs::write(&h.dir, "cgroup.procs", &pid) {
                Err(_) if h.best_effort() => {}
                r => r?,
            }
        }
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let target = self.device_target(resources, false)?;
        self.set(resources, target.as_ref(), &|_| false)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            fs::procs_recursive(d, &mut out)?;
        }
        Ok(out)
    }

    fn freeze(&self) -> Result<()> {
        match (self.dir("freezer"), self.unified()) {
            (Some(d), _) => freezer::freeze(d),
            (None, Some(u)) => v2::freezer::freeze(&u.dir),
            _ => Err(CgroupError::unsupported(
                "freezing",
                "the freezer cgroup controller is not mounted on this host",
            )),
        }
    }

    fn thaw(&self) -> Result<()> {
        match (self.dir("freezer"), self.unified()) {
            (Some(d), _) => freezer::thaw(d),
            (None, Some(u)) => v2::freezer::thaw(&u.dir),
            _ => Err(CgroupError::unsupported(
                "thawing",
                "the freezer cgroup controller is not mounted on this host",
            )),
        }
    }

    fn is_frozen(&self) -> Result<bool> {
        match (self.dir("freezer"), self.unified()) {
            (Some(d), _) => freezer::is_frozen(d),
            (None, Some(u)) => v2::freezer::is_frozen(&u.dir),
            _ => Ok(false),
        }
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
        if sig == Signal::SIGKILL {
            // Hybrid: the cgroup2 directory tracks the same processes and can kill them all at
            // once; the v1 sweep below catches anything that was not there.
            if let Some(u) = self.unified() {
                match fs::write(&u.dir, "cgroup.kill", "1") {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
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
        let mut st = Stats {
            cpu: stats::cpu(self.dir("cpu"), self.dir("cpuacct"))?,
            ..Default::default()
        };
        if let Some(h) = self.hier("cpuset") {
            st.cpuset = stats::cpuset(&h.dir, h.noprefix)?;
        }
        if let Some(d) = self.dir("memory") {
            st.memory = stats::memory(d)?;
        }
        match self.dir("pids").map(pids::stats).transpose()?.flatten() {
            Some(p) => st.pids = p,
            None => st.pids.current = self.pids()?.len() as u64,
        }
        if let Some(d) = self.dir("blkio") {
            st.blkio = stats::blkio(d)?;
        }
        match (self.dir("hugetlb"), self.unified()) {
            (Some(d), _) => stats::hugetlb_v1(d, &mut st)?,
            (None, Some(u)) => v2::stats::hugetlb_v2(&u.dir, &mut st)?,
            _ => {}
        }
        Ok(st)
    }

    fn oom_events(&self) -> Result<OomEvents> {
        match self.dir("memory") {
            Some(d) => OomEvents::v1(d),
            None => Err(CgroupError::unsupported(
                "OOM notifications",
                "the memory cgroup controller is not mounted on this host",
            )),
        }
    }

    fn mode(&self) -> CgroupMode {
        self.st.mode
    }

    fn cgroup_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
}
