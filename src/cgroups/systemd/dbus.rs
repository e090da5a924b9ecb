//! A minimal, blocking, single-threaded D-Bus client: exactly what the systemd cgroup driver
//! needs (see docs/architecture.md, "The D-Bus client", for why this is not a crate).
//!
//! * Transport: a unix stream socket (`unix:path=` / `unix:abstract=` addresses), SASL
//!   `EXTERNAL` authentication with the caller's uid, no fd passing.
//! * Messages: little-endian marshalling of the few signatures the driver sends (strings,
//!   booleans, integers, byte and integer arrays, `a(sv)` property lists with variants of those
//!   and of `a(ss)`/`a(st)`, and any type for `org.systemd.property.*` annotation values);
//!   un-marshalling of headers in either byte order and of the bodies it
//!   reads back (`s`, `o`, `v` of `s`, and the `JobRemoved` signal `uoss`).
//! * Every read waits with `poll` against one deadline: a systemd that never answers is an error
//!   after the timeout, never a hang.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub use super::gvariant::Gv;

/// A D-Bus error: the transport, a malformed message, an error reply, or a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbusError {
    /// The D-Bus error name (`org.freedesktop.systemd1.NoSuchUnit`), empty for local errors.
    pub name: String,
    pub message: String,
}

impl DbusError {
    fn local(m: impl Into<String>) -> DbusError {
        DbusError {
            name: String::new(),
            message: m.into(),
        }
    }

    /// An error reply with this D-Bus error name?
    pub fn is(&self, name: &str) -> bool {
        self.name == name
    }
}

impl std::fmt::Display for DbusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.name, self.message)
        }
    }
}

pub type Result<T> = std::result::Result<T, DbusError>;

/// A value the driver sends, with its D-Bus type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    ObjPath(String),
    Bool(bool),
    U32(u32),
    U64(u64),
    /// `ay`
    Bytes(Vec<u8>),
    /// `au`
    U32s(Vec<u32>),
    /// `as`
    Strs(Vec<String>),
    /// `a(ss)`
    StrPairs(Vec<(String, String)>),
    /// `a(st)`
    StrU64s(Vec<(String, u64)>),
    /// `a(sv)`
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))` (StartTransientUnit's auxiliary units; only ever empty here)
    AuxUnits,
    /// Any type: an `org.systemd.property.*` annotation's value.
    Any(Gv),
}

impl Value {
    pub fn signature(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Value::Str(_) => "s",
            Value::ObjPath(_) => "o",
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::Bytes(_) => "ay",
            Value::U32s(_) => "au",
            Value::Strs(_) => "as",
            Value::StrPairs(_) => "a(ss)",
            Value::StrU64s(_) => "a(st)",
            Value::Props(_) => "a(sv)",
            Value::AuxUnits => "a(sa(sv))",
            Value::Any(g) => return Cow::Owned(g.signature()),
        })
    }
}

/// Little-endian marshalling into a message buffer (alignment relative to its start).
#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, a: usize) {
        while self.buf.len() % a != 0 {
            self.buf.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array: length placeholder, padding to the element alignment, elements, length.
    fn array(&mut self, elem_align: usize, f: impl FnOnce(&mut Writer)) {
        self.pad(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.pad(elem_align);
        let start = self.buf.len();
        f(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) | Value::ObjPath(s) => self.str(s),
            Value::Bool(b) => self.u32(*b as u32),
            Value::U32(x) => self.u32(*x),
            Value::U64(x) => self.u64(*x),
            Value::Bytes(b) => self.array(1, |w| w.buf.extend_from_slice(b)),
            Value::U32s(l) => self.array(4, |w| l.iter().for_each(|x| w.u32(*x))),
            Value::Strs(l) => self.array(4, |w| l.iter().for_each(|s| w.str(s))),
            Value::StrPairs(l) => self.array(8, |w| {
                for (a, b) in l {
                    w.pad(8);
                    w.str(a);
                    w.str(b);
                }
            }),
            Value::StrU64s(l) => self.array(8, |w| {
                for (a, b) in l {
                    w.pad(8);
                    w.str(a);
                    w.u64(*b);
                }
            }),
            Value::Props(l) => self.array(8, |w| {
                for (name, v) in l {
                    w.pad(8);
                    w.str(name);
                    w.sig(&v.signature());
                    w.value(v);
                }
            }),
            Value::AuxUnits => self.array(8, |_| {}),
            Value::Any(g) => self.gv(g),
        }
    }
    fn gv(&mut self, g: &Gv) {
        match g {
            Gv::Bool(b) => self.u32(*b as u32),
            Gv::Byte(x) => self.u8(*x),
            Gv::I16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Gv::U16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Gv::I32(x) | Gv::Handle(x) => self.u32(*x as u32),
            Gv::U32(x) => self.u32(*x),
            Gv::I64(x) => self.u64(*x as u64),
            Gv::U64(x) => self.u64(*x),
            Gv::Double(x) => self.u64(x.to_bits()),
            Gv::Str(s) | Gv::ObjPath(s) => self.str(s),
            Gv::Sig(s) => self.sig(s),
            Gv::Array(elem, items) => self.array(type_align(elem.as_bytes()[0]), |w| {
                items.iter().for_each(|i| w.gv(i))
            }),
            Gv::Struct(m) => {
                self.pad(8);
                m.iter().for_each(|i| self.gv(i));
            }
            Gv::DictEntry(k, v) => {
                self.pad(8);
                self.gv(k);
                self.gv(v);
            }
            Gv::Variant(v) => {
                self.sig(&v.signature());
                self.gv(v);
            }
        }
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// Marshals a method call.
pub(crate) fn method_call(
    serial: u32,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Writer::default();
    let mut sig = String::new();
    for a in args {
        // Body alignment is relative to the body start, which is 8-aligned in the message.
        body.value(a);
        sig.push_str(&a.signature());
    }
    let mut m = Writer::default();
    m.u8(b'l');
    m.u8(METHOD_CALL);
    m.u8(0);
    m.u8(1);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.array(8, |w| {
        let field = |w: &mut Writer, code: u8, sig: &str, f: &dyn Fn(&mut Writer)| {
            w.pad(8);
            w.u8(code);
            w.sig(sig);
            f(w);
        };
        field(w, 1, "o", &|w| w.str(path));
        field(w, 2, "s", &|w| w.str(iface));
        field(w, 3, "s", &|w| w.str(member));
        if let Some(d) = dest {
            field(w, 6, "s", &|w| w.str(d));
        }
        if !sig.is_empty() {
            field(w, 8, "g", &|w| w.sig(&sig));
        }
    });
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// A received message, as far as the driver cares.
#[derive(Debug, Default, Clone)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub member: String,
    pub error_name: String,
    pub signature: String,
    pub big_endian: bool,
    pub body: Vec<u8>,
}

/// Reads marshalled data in either byte order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    be: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], be: bool) -> Reader<'a> {
        Reader { buf, pos: 0, be }
    }
    fn bad() -> DbusError {
        DbusError::local("malformed D-Bus message")
    }
    fn align(&mut self, a: usize) -> Result<()> {
        let p = self.pos.div_ceil(a) * a;
        if p > self.buf.len() {
            return Err(Self::bad());
        }
        self.pos = p;
        Ok(())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(Self::bad)?;
        let s = self.buf.get(self.pos..end).ok_or_else(Self::bad)?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| Self::bad())?;
        Ok(if self.be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    pub fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| Self::bad())
    }
    pub fn sig(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| Self::bad())
    }
    /// Skips one complete value of the single complete type at the start of `sig`, returning
    /// the rest of the signature.
    fn skip<'s>(&mut self, sig: &'s str) -> Result<&'s str> {
        let c = sig.as_bytes().first().copied().ok_or_else(Self::bad)?;
        let rest = &sig[1..];
        match c {
            b'y' => {
                self.take(1)?;
            }
            b'n' | b'q' => {
                self.align(2)?;
                self.take(2)?;
            }
            b'b' | b'i' | b'u' | b'h' => {
                self.u32()?;
            }
            b'x' | b't' | b'd' => {
                self.align(8)?;
                self.take(8)?;
            }
            b's' | b'o' => {
                self.str()?;
            }
            b'g' => {
                self.sig()?;
            }
            b'v' => {
                let s = self.sig()?;
                let r = self.skip(&s)?;
                if !r.is_empty() {
                    return Err(Self::bad());
                }
            }
            b'a' => {
                let n = self.u32()? as usize;
                let elem_end = single_type_len(rest).ok_or_else(Self::bad)?;
                let elem = &rest[..elem_end];
                self.align(type_align(elem.as_bytes()[0]))?;
                let end = self.pos.checked_add(n).ok_or_else(Self::bad)?;
                if end > self.buf.len() {
                    return Err(Self::bad());
                }
                self.pos = end;
                return Ok(&rest[elem_end..]);
            }
            b'(' | b'{' => {
                self.align(8)?;
                let close = if c == b'(' { ')' } else { '}' };
                let mut inner = rest;
                while !inner.starts_with(close) {
                    inner = self.skip(inner)?;
                }
                return Ok(&inner[1..]);
            }
            _ => return Err(Self::bad()),
        }
        Ok(rest)
    }
}

fn type_align(c: u8) -> usize {
    match c {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Length of the single complete type at the start of `sig`.
fn single_type_len(sig: &str) -> Option<usize> {
    let b = sig.as_bytes();
    match *b.first()? {
        b'a' => Some(1 + single_type_len(&sig[1..])?),
        b'(' | b'{' => {
            let mut depth = 0;
            for (i, c) in b.iter().enumerate() {
                match c {
                    b'(' | b'{' => depth += 1,
                    b')' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => Some(1),
    }
}

/// Parses one complete message from the start of `buf`: Ok(None) when more bytes are needed,
/// else the message and its total length.
pub(crate) fn parse_message(buf: &[u8]) -> Result<Option<(Message, usize)>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let be = match buf[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err(DbusError::local("D-Bus message with a bad byte-order mark")),
    };
    let mut r = Reader::new(buf, be);
    r.pos = 4;
    let body_len = r.u32()? as usize;
    r.u32()?; // serial
    let fields_len = r.u32()? as usize;
    let header_end = (16 + fields_len).div_ceil(8) * 8;
    let total = header_end
        .checked_add(body_len)
        .filter(|t| *t <= 128 << 20)
        .ok_or_else(|| DbusError::local("D-Bus message too large"))?;
    if buf.len() < total {
        return Ok(None);
    }
    let mut m = Message {
        kind: buf[1],
        big_endian: be,
        ..Default::default()
    };
    let mut fr = Reader::new(&buf[..16 + fields_len], be);
    fr.pos = 16;
    while fr.pos < 16 + fields_len {
        fr.align(8)?;
        let code = fr.u8()?;
        let sig = fr.sig()?;
        match (code, sig.as_str()) {
            (3, "s") => m.member = fr.str()?,
            (4, "s") => m.error_name = fr.str()?,
            (5, "u") => m.reply_serial = Some(fr.u32()?),
            (8, "g") => m.signature = fr.sig()?,
            (_, s) => {
                let rest = fr.skip(s)?;
                if !rest.is_empty() {
                    return Err(Reader::bad());
                }
            }
        }
    }
    m.body = buf[header_end..total].to_vec();
    Ok(Some((m, total)))
}

impl Message {
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.body, self.big_endian)
    }
    /// The first argument when it is a string (error messages, `s`/`o` replies).
    pub fn first_str(&self) -> Option<String> {
        match self.signature.as_bytes().first() {
            Some(b's') | Some(b'o') => self.reader().str().ok(),
            _ => None,
        }
    }
}

/// A connection to a bus (or to systemd's private socket, which speaks the same protocol
/// without a bus daemon in between).
pub struct Conn {
    sock: UnixStream,
    serial: u32,
    inbuf: Vec<u8>,
    /// Signals received while waiting for a reply, kept for [`Conn::wait_signal`].
    pending: Vec<Message>,
    deadline: Instant,
}

/// The system bus address: `DBUS_SYSTEM_BUS_ADDRESS` or the well-known socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
}

/// The session bus address (rootless): `DBUS_SESSION_BUS_ADDRESS`, else
/// `$XDG_RUNTIME_DIR/bus` (what systemd's user instance provides).
pub fn session_bus_address() -> Option<String> {
    if let Ok(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        return Some(a);
    }
    std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .map(|d| format!("unix:path={d}/bus"))
}

/// The socket path of the first `unix:` entry of a D-Bus address (`;`-separated entries,
/// `key=value` pairs; `%xx` escapes decoded). `@` prefixes an abstract name.
pub fn unix_path_of(address: &str) -> Option<String> {
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let (k, v) = kv.split_once('=')?;
            let v = unescape(v)?;
            match k {
                "path" => return Some(v),
                "abstract" => return Some(format!("@{v}")),
                _ => {}
            }
        }
    }
    None
}

fn unescape(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn connect_unix(path: &str) -> std::io::Result<UnixStream> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        UnixStream::connect_addr(&addr)
    } else {
        UnixStream::connect(path)
    }
}

impl Conn {
    /// Connects to the unix socket `path` and authenticates (EXTERNAL) as `uid`: the uid the
    /// server sees this process as (SO_PEERCRED is translated into the server's user
    /// namespace). `bus`: a bus daemon is on the other side (say `Hello`); false for systemd's
    /// private socket. Every later wait ends at `now + timeout` (see [`Conn::set_timeout`]).
    pub fn connect(path: &str, uid: u32, bus: bool, timeout: Duration) -> Result<Conn> {
        let sock = connect_unix(path)
            .map_err(|e| DbusError::local(format!("connect to D-Bus socket {path}: {e}")))?;
        let mut c = Conn {
            sock,
            serial: 0,
            inbuf: Vec::new(),
            pending: Vec::new(),
            deadline: Instant::now() + timeout,
        };
        c.auth(uid)
            .map_err(|e| DbusError::local(format!("D-Bus authentication on {path}: {e}")))?;
        if bus {
            c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(c)
    }

    /// A new deadline for the waits that follow.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
    }

    /// EXTERNAL authentication, pipelined as sd-bus does it: `AUTH` and `BEGIN` in one write
    /// (one round trip less); a server that refuses closes or answers `REJECTED`.
    fn auth(&mut self, uid: u32) -> Result<()> {
        let uid = uid.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::local(format!(
                "server refused EXTERNAL authentication: {:?}",
                line.trim_end()
            )));
        }
        Ok(())
    }

    fn write_all(&mut self, b: &[u8]) -> Result<()> {
        // Messages are small; a send buffer never fills here, and a peer that stops reading
        // makes the socket's send time out.
        let left = self.deadline.saturating_duration_since(Instant::now());
        let _ = self
            .sock
            .set_write_timeout(Some(left.max(Duration::from_millis(1))));
        self.sock
            .write_all(b)
            .map_err(|e| DbusError::local(format!("D-Bus write: {e}")))
    }

    /// Reads more bytes into `inbuf`, waiting until the deadline.
    fn fill(&mut self) -> Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::local("timed out waiting for systemd over D-Bus"));
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => continue,
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(DbusError::local(format!("D-Bus poll: {e}"))),
            }
        }
        let mut b = [0u8; 8192];
        let n = loop {
            match self.sock.read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        }
        .map_err(|e| DbusError::local(format!("D-Bus read: {e}")))?;
        if n == 0 {
            return Err(DbusError::local("D-Bus connection closed by the peer"));
        }
        self.inbuf.extend_from_slice(&b[..n]);
        Ok(())
    }

    fn read_line(&mut self) -> Result<String> {
        loop {
            if let Some(i) = self.inbuf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.inbuf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.inbuf.len() > 4096 {
                return Err(DbusError::local("overlong D-Bus authentication line"));
            }
            self.fill()?;
        }
    }

    fn next_message(&mut self) -> Result<Message> {
        loop {
            if let Some((m, n)) = parse_message(&self.inbuf)? {
                self.inbuf.drain(..n);
                return Ok(m);
            }
            self.fill()?;
        }
    }

    /// Calls a method and waits for its reply (signals that arrive meanwhile are kept).
    pub fn call(
        &mut self,
        dest: Option<&str>,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Message> {
        self.serial += 1;
        let serial = self.serial;
        let msg = method_call(serial, dest, path, iface, member, args);
        self.write_all(&msg)?;
        loop {
            let m = self.next_message()?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    return Err(DbusError {
                        name: m.error_name.clone(),
                        message: m.first_str().unwrap_or_default(),
                    })
                }
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal named `member` for which `pred` holds (already received ones first).
    pub fn wait_signal(
        &mut self,
        member: &str,
        mut pred: impl FnMut(&Message) -> bool,
    ) -> Result<Message> {
        if let Some(i) = self
            .pending
            .iter()
            .position(|m| m.member == member && pred(m))
        {
            return Ok(self.pending.remove(i));
        }
        self.pending.clear();
        loop {
            let m = self.next_message()?;
            if m.kind == SIGNAL && m.member == member && pred(&m) {
                return Ok(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotation values of any type marshal exactly as the driver's own typed values do.
    #[test]
    fn any_values_marshal_like_the_typed_ones() {
        let g = |t: &str| Value::Any(super::super::gvariant::parse(t).unwrap());
        let bytes = |v: Value| {
            let mut w = Writer::default();
            w.u8(1); // misalign, so that padding shows
            w.value(&Value::Props(vec![("P".into(), v)]));
            w.buf
        };
        let pairs = vec![
            ("char-*".to_string(), "m".to_string()),
            ("/dev/null".into(), "rwm".into()),
        ];
        for (any, typed) in [
            (g("uint64 123"), Value::U64(123)),
            (g("uint32 7"), Value::U32(7)),
            (g("true"), Value::Bool(true)),
            (
                g("'inactive-or-failed'"),
                Value::Str("inactive-or-failed".into()),
            ),
            (g("['a', 'bc']"), Value::Strs(vec!["a".into(), "bc".into()])),
            (g("@au [1, 2]"), Value::U32s(vec![1, 2])),
            (
                g("[('char-*', 'm'), ('/dev/null', 'rwm')]"),
                Value::StrPairs(pairs),
            ),
            (
                g("@a(st) [('/dev/sda', 5)]"),
                Value::StrU64s(vec![("/dev/sda".into(), 5)]),
            ),
            (g("b'ab'"), Value::Bytes(vec![97, 98])),
        ] {
            assert_eq!(any.signature(), typed.signature());
            assert_eq!(bytes(any), bytes(typed));
        }
    }

    #[test]
    fn marshals_a_call_that_parses_back() {
        let args = [
            Value::Str("a.scope".into()),
            Value::Str("fail".into()),
            Value::Props(vec![
                ("Delegate".into(), Value::Bool(true)),
                ("PIDs".into(), Value::U32s(vec![42])),
                ("MemoryMax".into(), Value::U64(1 << 20)),
                ("AllowedCPUs".into(), Value::Bytes(vec![3])),
                (
                    "DeviceAllow".into(),
                    Value::StrPairs(vec![("char-*".into(), "m".into())]),
                ),
            ]),
            Value::AuxUnits,
        ];
        let m = method_call(7, Some("d"), "/p", "i.f", "StartTransientUnit", &args);
        let (msg, n) = parse_message(&m).unwrap().unwrap();
        assert_eq!(n, m.len());
        assert_eq!(msg.kind, METHOD_CALL);
        assert_eq!(msg.member, "StartTransientUnit");
        assert_eq!(msg.signature, "ssa(sv)a(sa(sv))");
        let mut r = msg.reader();
        assert_eq!(r.str().unwrap(), "a.scope");
        assert_eq!(r.str().unwrap(), "fail");
        // The property array skips as one value and leaves exactly the aux array.
        let rest = r.skip("a(sv)a(sa(sv))").unwrap();
        let rest = r.skip(rest).unwrap();
        assert_eq!(rest, "");
        assert_eq!(r.pos, msg.body.len());
        // A truncated message needs more bytes.
        assert!(parse_message(&m[..m.len() - 1]).unwrap().is_none());
    }

    #[test]
    fn exact_bytes_of_a_simple_call() {
        let m = method_call(1, None, "/", "a", "b", &[Value::U32(5)]);
        // Header: l, call, flags, version, body 4 bytes, serial 1.
        assert_eq!(&m[..12], b"l\x01\x00\x01\x04\0\0\0\x01\0\0\0");
        assert_eq!(&m[m.len() - 4..], &5u32.to_le_bytes());
        assert_eq!(m.len() % 8, 4);
    }

    #[test]
    fn parses_a_big_endian_signal() {
        // JobRemoved(uoss) from a big-endian peer.
        let mut body = Vec::new();
        body.extend_from_slice(&9u32.to_be_bytes());
        let push_str = |b: &mut Vec<u8>, s: &str| {
            while b.len() % 4 != 0 {
                b.push(0);
            }
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        };
        push_str(&mut body, "/j/9");
        push_str(&mut body, "x.scope");
        push_str(&mut body, "done");
        let mut f = Vec::new();
        // field 3 (member) "s"
        f.extend_from_slice(&[3, 1, b's', 0]);
        f.extend_from_slice(&10u32.to_be_bytes());
        f.extend_from_slice(b"JobRemoved\0");
        while f.len() % 8 != 0 {
            f.push(0);
        }
        f.extend_from_slice(&[8, 1, b'g', 0, 4]);
        f.extend_from_slice(b"uoss\0");
        let mut m = vec![b'B', SIGNAL, 0, 1];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(&3u32.to_be_bytes());
        m.extend_from_slice(&(f.len() as u32).to_be_bytes());
        m.extend_from_slice(&f);
        while m.len() % 8 != 0 {
            m.push(0);
        }
        m.extend_from_slice(&body);
        let (msg, _) = parse_message(&m).unwrap().unwrap();
        assert_eq!(msg.member, "JobRemoved");
        let mut r = msg.reader();
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.str().unwrap(), "/j/9");
        assert_eq!(r.str().unwrap(), "x.scope");
        assert_eq!(r.str().unwrap(), "done");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_message(b"x\x01\x00\x01aaaaaaaaaaaaaaaaaaaa").is_err());
        let mut m = method_call(1, None, "/", "a", "b", &[]);
        m[12] = 0xff; // fields length beyond the buffer: wait for more bytes
        assert!(parse_message(&m).unwrap().is_none());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            unix_path_of("unix:path=/run/dbus/system_bus_socket").as_deref(),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            unix_path_of("tcp:host=x;unix:abstract=/tmp/dbus-x%2cy,guid=1").as_deref(),
            Some("@/tmp/dbus-x,y")
        );
        assert_eq!(unix_path_of("tcp:host=x"), None);
    }

    /// Against a real bus daemon when the host has one (`dbus-daemon`); the systemd calls
    /// themselves are covered by tests/systemd.rs in a guest with systemd.
    #[test]
    fn talks_to_a_real_bus_daemon() {
        use std::io::BufRead;
        let dir = std::env::temp_dir().join(format!("rruntime-dbus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bus");
        let child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address"])
            .arg(format!("--address=unix:path={}", sock.display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            println!("SKIP no dbus-daemon on this host");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        // The address is printed once the daemon listens (EOF if it failed).
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let r = (|| -> Result<()> {
            let mut c = Conn::connect(
                sock.to_str().unwrap(),
                nix::unistd::geteuid().as_raw(),
                true,
                Duration::from_secs(10),
            )?;
            let m = c.call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetId",
                &[],
            )?;
            assert_eq!(m.first_str().unwrap().len(), 32);
            let e = c
                .call(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "NoSuchMethod",
                    &[Value::Str("x".into())],
                )
                .unwrap_err();
            assert!(e.name.contains("UnknownMethod"), "{e}");
            // Nothing answers for a name nobody owns: the error, not a hang.
            let e = c
                .call(Some("org.example.Nobody"), "/", "org.example.I", "M", &[])
                .unwrap_err();
            assert!(e.name.contains("ServiceUnknown"), "{e}");
            // A signal that never comes ends at the deadline.
            c.set_timeout(Duration::from_millis(200));
            let e = c.wait_signal("JobRemoved", |_| true).unwrap_err();
            assert!(e.message.contains("timed out"), "{e}");
            Ok(())
        })();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        r.unwrap();
    }
}
