//! `linux.netDevices` (runtime-spec 1.2, runc 1.4): named network devices of the runtime's
//! network namespace are moved into the container's, optionally renamed, before any hook runs.
//!
//! runc's contract, followed here:
//! * the config must have a network namespace (new or by path), and the container must not be
//!   rootless; device names are checked as the kernel checks them;
//! * a device is moved with its MTU and MAC address (the kernel keeps both) and its permanent,
//!   global-scope addresses (the kernel drops addresses on a move: they are read before and
//!   added again after), then set up;
//! * nothing is done at `delete`: when a container's own network namespace is freed, the kernel
//!   moves physical devices back to the initial namespace and destroys virtual ones (veth,
//!   dummy…); a namespace joined by path keeps its devices (its owner manages them).
//!
//! Where runc leaves a half-done move to the kernel, rruntime undoes it: a failed `create`
//! (unknown device, a name already taken in the container, a failure after the move) moves every
//! device it moved back, under its own name, with its addresses and its up/down state.
//!
//! The netlink conversation is synchronous (netlink-packet-route messages over a netlink-sys
//! socket, no async runtime, no thread). Requests into the container's namespace go through a
//! socket opened there: the runtime enters the namespace for the `socket` call and leaves it
//! at once (a socket stays bound to the namespace it was made in).

use crate::error::{Error, Result};
use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NlaBuffer, NlasIterator, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressHeader, AddressHeaderFlags, AddressScope};
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

// rtnetlink attribute kinds (linux/if_link.h, linux/if_addr.h).
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;

/// One entry of `linux.netDevices`: the device's name in the runtime's namespace and the name
/// it gets in the container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub target: String,
}

/// The kernel's `dev_valid_name`: 1–15 bytes, not `.` or `..`, no `/`, `:` or white space.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0x0b)
}

/// Checks `linux.netDevices` before anything is made (runc's checks and texts), and that each
/// device exists in the runtime's network namespace. Devices in name order.
///
/// The entry points are `#[cold]` and called only for configs that list devices: the code
/// then sits away from the hot paths, and a `create` without devices faults in none of it.
#[cold]
pub fn plan(spec: &Spec, has_netns: bool, rootless: bool) -> Result<Vec<Device>> {
    let Some(devs) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|d| !d.is_empty())
    else {
        return Ok(Vec::new());
    };
    if !has_netns {
        return Err(Error::config(
            "unable to move network devices without a NET namespace",
        ));
    }
    if rootless {
        return Err(Error::config(
            "network devices are not supported for rootless containers",
        ));
    }
    let mut out: Vec<Device> = Vec::new();
    for (host, d) in devs {
        let target = d.name().clone().filter(|n| !n.is_empty());
        for n in std::iter::once(host).chain(target.as_ref()) {
            if !valid_name(n) {
                return Err(Error::config(format!("invalid network device name {n:?}")));
            }
        }
        out.push(Device {
            host: host.clone(),
            target: target.unwrap_or_else(|| host.clone()),
        });
    }
    out.sort_by(|a, b| a.host.cmp(&b.host));
    for (i, d) in out.iter().enumerate() {
        if !d.target.contains('%') && out[..i].iter().any(|o| o.target == d.target) {
            return Err(Error::config(format!(
                "linux.netDevices: more than one device would be named {:?} in the container",
                d.target
            )));
        }
    }
    let mut rt = Rtnl::new().map_err(|e| io_err("netlink socket", e))?;
    for d in &out {
        if let Err(e) = rt.link_by_name(&d.host) {
            return Err(Error::msg(format!(
                "move netDevice {}: link not found for interface {} on runtime namespace: {}",
                d.host,
                d.host,
                errtext(&e)
            )));
        }
    }
    Ok(out)
}

/// A device moved into the container, with what is needed to move it back.
struct MovedDev {
    host: String,
    /// Its index in the container's namespace.
    index: u32,
    addrs: Vec<Addr>,
    was_up: bool,
}

/// The devices moved into a container's namespace (see [`Moved::undo`]).
pub struct Moved {
    devs: Vec<MovedDev>,
    home_ns: OwnedFd,
    target: Rtnl,
}

/// Moves `devices` into the network namespace of process `pid`. On failure every device moved
/// so far is moved back, and the one that failed is as it was.
#[cold]
pub fn move_into(devices: &[Device], pid: i32) -> Result<Option<Moved>> {
    if devices.is_empty() {
        return Ok(None);
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let open_ns = |p: &str| -> Result<OwnedFd> {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::Sys {
            ctx: format!("open {p}"),
            source: e,
        })
    };
    let home_ns = open_ns("/proc/self/ns/net")?;
    let target_ns = open_ns(&ns_path)?;
    let mut home = Rtnl::new().map_err(|e| io_err("netlink socket", e))?;
    let target = Rtnl::new_in(&target_ns, &home_ns)?;
    let mut moved = Moved {
        devs: Vec::new(),
        home_ns,
        target,
    };
    for d in devices {
        if let Err(e) = moved.move_one(&mut home, d, &target_ns) {
            moved.undo();
            return Err(Error::msg(format!(
                "move netDevice {} to namespace {ns_path}: {e}",
                d.host
            )));
        }
    }
    Ok(Some(moved))
}

impl Moved {
    fn move_one(&mut self, home: &mut Rtnl, d: &Device, target_ns: &OwnedFd) -> Result<(), String> {
        let link = home.link_by_name(&d.host).map_err(|e| {
            format!(
                "link not found for interface {} on runtime namespace: {}",
                d.host,
                errtext(&e)
            )
        })?;
        let index = link.header.index;
        let was_up = link.header.flags.contains(LinkFlags::Up);
        // Read before the device goes down: IPv6 addresses do not survive that.
        let addrs: Vec<Addr> = home
            .addresses(index)
            .map_err(|e| format!("fail to get ip addresses: {}", errtext(&e)))?
            .into_iter()
            .filter(Addr::permanent_global)
            .collect();
        if !d.target.contains('%') && self.target.link_by_name(&d.target).is_ok() {
            return Err(format!(
                "a network device named {} already exists in the container's network namespace",
                d.target
            ));
        }
        let before = if d.target.contains('%') {
            self.target.link_indexes().map_err(|e| errtext(&e))?
        } else {
            Vec::new()
        };
        let restore_home = |home: &mut Rtnl| {
            for a in &addrs {
                let _ = home.add_address(a, index);
            }
            if was_up {
                let _ = home.set_up(index, true);
            }
        };
        if let Err(e) = home.set_up(index, false) {
            return Err(format!("fail to set link down: {}", errtext(&e)));
        }
        if let Err(e) = home.move_link(index, &d.target, target_ns.as_raw_fd()) {
            restore_home(home);
            return Err(format!(
                "fail to move network device {}: {}",
                d.host,
                errtext(&e)
            ));
        }
        // Where it landed: by name, or (a `%d` template) the one new index.
        let found = if d.target.contains('%') {
            self.target.link_indexes().ok().and_then(|after| {
                let new: Vec<u32> = after.into_iter().filter(|i| !before.contains(i)).collect();
                (new.len() == 1).then(|| new[0])
            })
        } else {
            self.target
                .link_by_name(&d.target)
                .ok()
                .map(|l| l.header.index)
        };
        let Some(new_index) = found else {
            // Moved but not found: nothing more can be done about it from here.
            return Err(format!(
                "link not found for interface {} in the container's network namespace",
                d.target
            ));
        };
        self.devs.push(MovedDev {
            host: d.host.clone(),
            index: new_index,
            addrs,
            was_up,
        });
        let dev = self.devs.last().expect("just pushed");
        for a in &dev.addrs {
            self.target
                .add_address(a, new_index)
                .map_err(|e| format!("fail to set up address: {}", errtext(&e)))?;
        }
        self.target
            .set_up(new_index, true)
            .map_err(|e| format!("fail to set up interface {}: {}", d.target, errtext(&e)))?;
        Ok(())
    }

    /// Moves every device back to the runtime's namespace under its own name, with its
    /// addresses and up/down state (best effort: a failure is a warning).
    #[cold]
    pub fn undo(mut self) {
        let mut home = match Rtnl::new() {
            Ok(h) => h,
            Err(e) => {
                crate::logging::warn(format!("netDevices: cannot move devices back: {e}"));
                return;
            }
        };
        for d in std::mem::take(&mut self.devs).into_iter().rev() {
            let _ = self.target.set_up(d.index, false);
            if let Err(e) = self
                .target
                .move_link(d.index, &d.host, self.home_ns.as_raw_fd())
            {
                crate::logging::warn(format!(
                    "netDevices: cannot move {} back to the runtime's namespace: {}",
                    d.host,
                    errtext(&e)
                ));
                continue;
            }
            let Ok(link) = home.link_by_name(&d.host) else {
                continue;
            };
            let index = link.header.index;
            for a in &d.addrs {
                let _ = home.add_address(a, index);
            }
            if d.was_up {
                let _ = home.set_up(index, true);
            }
        }
    }
}

fn errtext(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => crate::error::strerror(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn io_err(ctx: &str, e: io::Error) -> Error {
    Error::Io {
        ctx: ctx.to_string(),
        source: e,
    }
}

/// A link as the kernel reports it: what moving it needs.
struct Link {
    header: LinkHeader,
}

/// An address as read from a link: its header and the attributes that re-create it.
#[derive(Debug, Clone)]
struct Addr {
    header: AddressHeader,
    /// IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, as read.
    nlas: Vec<DefaultNla>,
    /// IFA_FLAGS (the full flags word; the header has only the low 8 bits).
    flags: Option<u32>,
}

impl Addr {
    /// runc moves permanent addresses of global scope only (RFC 3549 2.3.3.2).
    fn permanent_global(&self) -> bool {
        self.header.scope == AddressScope::Universe
            && (self.header.flags.contains(AddressHeaderFlags::Permanent)
                || self.flags.is_some_and(|f| f & IFA_F_PERMANENT != 0))
    }

    fn parse(body: &[u8]) -> io::Result<Addr> {
        let header = AddressHeader::parse(body).map_err(bad_data)?;
        let mut nlas = Vec::new();
        let mut flags = None;
        for nla in NlasIterator::new(body.get(8..).unwrap_or_default()) {
            let nla: NlaBuffer<&[u8]> = nla.map_err(bad_data)?;
            match nla.kind() {
                IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST => {
                    nlas.push(DefaultNla::new(nla.kind(), nla.value().to_vec()))
                }
                IFA_FLAGS if nla.value().len() == 4 => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(nla.value());
                    flags = Some(u32::from_ne_bytes(b));
                }
                _ => {}
            }
        }
        Ok(Addr {
            header,
            nlas,
            flags,
        })
    }
}

fn bad_data(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}"))
}

/// An rtnetlink message as raw bytes: a request built from netlink-packet-route's headers and
/// plain attributes, or an answer whose header is parsed on demand. (The crate's typed
/// `RouteNetlinkMessage` would link its parsers for every kind of route message into the
/// binary; only links and addresses are needed here.)
#[derive(Debug)]
struct Raw {
    kind: u16,
    body: Vec<u8>,
}

impl Raw {
    fn new(kind: u16, header: &dyn Emitable, nlas: &[DefaultNla]) -> Raw {
        let hl = header.buffer_len();
        let mut body = vec![0u8; hl + nlas.buffer_len()];
        header.emit(&mut body[..hl]);
        nlas.emit(&mut body[hl..]);
        Raw { kind, body }
    }
}

impl NetlinkSerializable for Raw {
    fn message_type(&self) -> u16 {
        self.kind
    }
    fn buffer_len(&self) -> usize {
        self.body.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.body);
    }
}

impl NetlinkDeserializable for Raw {
    type Error = DecodeError;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(Raw {
            kind: header.message_type,
            body: payload.to_vec(),
        })
    }
}

/// A NETLINK_ROUTE socket and the request/response loop.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// A socket in network namespace `ns` (the runtime returns to `home` at once).
    fn new_in(ns: &OwnedFd, home: &OwnedFd) -> Result<Rtnl> {
        nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Sys {
            ctx: "enter the container's network namespace".into(),
            source: e,
        })?;
        let r = Rtnl::new();
        nix::sched::setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Sys {
            ctx: "return to the runtime's network namespace".into(),
            source: e,
        })?;
        r.map_err(|e| io_err("netlink socket in the container's network namespace", e))
    }

    /// Sends one request; returns the messages of the answer (a dump's, or a get's one).
    fn request(&mut self, msg: Raw, flags: u16) -> io::Result<Vec<Raw>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let m: NetlinkMessage<Raw> =
                    NetlinkMessage::deserialize(&data[off..]).map_err(bad_data)?;
                let len = m.header.length as usize;
                if m.header.sequence_number == seq {
                    match m.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(_) => Err(e.to_io()),
                            }
                        }
                        NetlinkPayload::InnerMessage(i) => {
                            out.push(i);
                            if !dump && flags & NLM_F_ACK == 0 {
                                return Ok(out);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    fn links(&mut self, name: Option<&str>) -> io::Result<Vec<Link>> {
        let nlas: Vec<DefaultNla> = name
            .map(|n| DefaultNla::new(IFLA_IFNAME, nul_terminated(n)))
            .into_iter()
            .collect();
        let msg = Raw::new(libc::RTM_GETLINK, &LinkHeader::default(), &nlas);
        let flags = if name.is_some() { 0 } else { NLM_F_DUMP };
        self.request(msg, flags)?
            .into_iter()
            .filter(|m| m.kind == libc::RTM_NEWLINK)
            .map(|m| {
                Ok(Link {
                    header: LinkHeader::parse(&m.body).map_err(bad_data)?,
                })
            })
            .collect()
    }

    fn link_by_name(&mut self, name: &str) -> io::Result<Link> {
        self.links(Some(name))?
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }

    fn link_indexes(&mut self) -> io::Result<Vec<u32>> {
        Ok(self
            .links(None)?
            .into_iter()
            .map(|l| l.header.index)
            .collect())
    }

    fn addresses(&mut self, index: u32) -> io::Result<Vec<Addr>> {
        let msg = Raw::new(libc::RTM_GETADDR, &AddressHeader::default(), &[]);
        self.request(msg, NLM_F_DUMP)?
            .into_iter()
            .filter(|m| m.kind == libc::RTM_NEWADDR)
            .map(|m| Addr::parse(&m.body))
            .filter(|a| a.as_ref().map_or(true, |a| a.header.index == index))
            .collect()
    }

    fn set_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        let h = LinkHeader {
            index,
            flags: if up {
                LinkFlags::Up
            } else {
                LinkFlags::empty()
            },
            change_mask: LinkFlags::Up,
            ..Default::default()
        };
        self.request(Raw::new(libc::RTM_SETLINK, &h, &[]), NLM_F_ACK)
            .map(drop)
    }

    /// Moves link `index` into the namespace `ns_fd`, named `name` there (one request).
    fn move_link(&mut self, index: u32, name: &str, ns_fd: i32) -> io::Result<()> {
        let h = LinkHeader {
            index,
            ..Default::default()
        };
        let nlas = [
            DefaultNla::new(IFLA_IFNAME, nul_terminated(name)),
            DefaultNla::new(IFLA_NET_NS_FD, (ns_fd as u32).to_ne_bytes().to_vec()),
        ];
        self.request(Raw::new(libc::RTM_SETLINK, &h, &nlas), NLM_F_ACK)
            .map(drop)
    }

    /// Adds address `a` (as read from another link) to link `index`.
    fn add_address(&mut self, a: &Addr, index: u32) -> io::Result<()> {
        let mut h = a.header.clone();
        h.index = index;
        h.flags = AddressHeaderFlags::empty();
        match self.request(
            Raw::new(libc::RTM_NEWADDR, &h, &a.nlas),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_as_the_kernel_checks_them() {
        for ok in ["eth0", "a", "ctr_dummy0", "eth%d", "123456789012345"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "1234567890123456",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
