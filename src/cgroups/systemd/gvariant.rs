//! Values of `org.systemd.property.<Name>` annotations: the GVariant text format
//! (<https://docs.gtk.org/glib/gvariant-text-format.html>), as runc reads them, into D-Bus values.
//!
//! Supported: booleans (`true`, `false`), numbers (decimal, `0x` hex, leading-`0` octal;
//! a `.` or an exponent makes a double), strings in `'…'` or `"…"` with the usual escapes,
//! bytestrings `b'…'`, arrays `[…]`, tuples `(…)`, dictionaries `{k: v, …}`, variants `<…>`,
//! type annotations `@TYPE value` and the type keywords (`boolean`, `byte`, `int16`, `uint16`,
//! `int32`, `uint32`, `handle`, `int64`, `uint64`, `double`, `string`, `objectpath`,
//! `signature`). Without a type, an integer is an `int32` and a number with a fraction a
//! `double` (GVariant's rules); an array's element type is inferred from its elements, so an
//! empty array needs an annotation (`@as []`). Maybe types (`just`, `nothing`, `m…`) have no
//! D-Bus form and are refused.

use std::fmt::Write as _;

/// A typed D-Bus value of any signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Gv {
    Bool(bool),
    Byte(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    /// `h`: a unix fd index (meaningless here, but it is a type systemd could name)
    Handle(i32),
    Double(f64),
    Str(String),
    ObjPath(String),
    Sig(String),
    /// Element signature and elements.
    Array(String, Vec<Gv>),
    Struct(Vec<Gv>),
    DictEntry(Box<Gv>, Box<Gv>),
    Variant(Box<Gv>),
}

impl Gv {
    pub fn signature(&self) -> String {
        match self {
            Gv::Bool(_) => "b".into(),
            Gv::Byte(_) => "y".into(),
            Gv::I16(_) => "n".into(),
            Gv::U16(_) => "q".into(),
            Gv::I32(_) => "i".into(),
            Gv::U32(_) => "u".into(),
            Gv::I64(_) => "x".into(),
            Gv::U64(_) => "t".into(),
            Gv::Handle(_) => "h".into(),
            Gv::Double(_) => "d".into(),
            Gv::Str(_) => "s".into(),
            Gv::ObjPath(_) => "o".into(),
            Gv::Sig(_) => "g".into(),
            Gv::Array(e, _) => format!("a{e}"),
            Gv::Struct(m) => {
                let mut s = String::from("(");
                for v in m {
                    s.push_str(&v.signature());
                }
                s.push(')');
                s
            }
            Gv::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
            Gv::Variant(_) => "v".into(),
        }
    }

    /// The value as an unsigned number of seconds times 1 000 000 (runc's `…Sec` → `…USec`
    /// conversion); None when it is not a number.
    pub fn sec_to_usec(&self) -> Option<u64> {
        const M: u64 = 1_000_000;
        let n: u64 = match *self {
            Gv::Byte(v) => v as u64,
            Gv::I16(v) => u64::try_from(v).ok()?,
            Gv::U16(v) => v as u64,
            Gv::I32(v) => u64::try_from(v).ok()?,
            Gv::U32(v) => v as u64,
            Gv::I64(v) => u64::try_from(v).ok()?,
            Gv::U64(v) => v,
            Gv::Double(d) if d >= 0.0 && d.is_finite() => return Some((d * M as f64) as u64),
            _ => return None,
        };
        n.checked_mul(M)
    }
}

/// The syntax tree before types are assigned.
#[derive(Debug, Clone)]
enum Node {
    Num(String),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Array(Vec<Node>),
    Tuple(Vec<Node>),
    Dict(Vec<(Node, Node)>),
    Variant(Box<Node>),
    Typed(String, Box<Node>),
}

/// Parses `text` with no expected type (as runc does: `ParseVariant(v, Signature{})`).
pub fn parse(text: &str) -> Result<Gv, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let n = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected {:?} at offset {}", p.rest(), p.i));
    }
    typed(&n, None)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const KEYWORDS: &[(&str, &str)] = &[
    ("boolean", "b"),
    ("byte", "y"),
    ("int16", "n"),
    ("uint16", "q"),
    ("int32", "i"),
    ("uint32", "u"),
    ("handle", "h"),
    ("int64", "x"),
    ("uint64", "t"),
    ("double", "d"),
    ("string", "s"),
    ("objectpath", "o"),
    ("signature", "g"),
];

impl Parser<'_> {
    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.i..self.s.len().min(self.i + 20)]).into_owned()
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self) -> String {
        self.ws();
        let st = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_+-.".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[st..self.i]).into_owned()
    }

    fn value(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err("expected a value, found the end".into());
        };
        match c {
            b'@' => {
                self.i += 1;
                let st = self.i;
                let len = type_len(&self.s[st..])
                    .ok_or_else(|| format!("invalid type after '@' at offset {st}"))?;
                self.i += len;
                let t = String::from_utf8_lossy(&self.s[st..self.i]).into_owned();
                Ok(Node::Typed(t, Box::new(self.value()?)))
            }
            b'\'' | b'"' => Ok(Node::Str(self.string()?)),
            b'[' => {
                self.i += 1;
                Ok(Node::Array(self.list(b']')?))
            }
            b'(' => {
                self.i += 1;
                Ok(Node::Tuple(self.list(b')')?))
            }
            b'<' => {
                self.i += 1;
                let v = self.value()?;
                if !self.eat(b'>') {
                    return Err(format!("expected '>' at offset {}", self.i));
                }
                Ok(Node::Variant(Box::new(v)))
            }
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                if self.eat(b'}') {
                    return Ok(Node::Dict(entries));
                }
                loop {
                    let k = self.value()?;
                    if !self.eat(b':') {
                        return Err(format!("expected ':' at offset {}", self.i));
                    }
                    let v = self.value()?;
                    entries.push((k, v));
                    if self.eat(b'}') {
                        return Ok(Node::Dict(entries));
                    }
                    if !self.eat(b',') {
                        return Err(format!("expected ',' or '}}' at offset {}", self.i));
                    }
                }
            }
            b'b' if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                Ok(Node::Bytes(self.string()?.into_bytes()))
            }
            _ => {
                let st = self.i;
                let w = self.word();
                if w.is_empty() {
                    return Err(format!("unexpected {:?} at offset {st}", self.rest()));
                }
                match w.as_str() {
                    "true" => return Ok(Node::Bool(true)),
                    "false" => return Ok(Node::Bool(false)),
                    "just" | "nothing" => {
                        return Err("maybe values have no D-Bus type".into());
                    }
                    _ => {}
                }
                if let Some((_, t)) = KEYWORDS.iter().find(|(k, _)| *k == w) {
                    return Ok(Node::Typed(t.to_string(), Box::new(self.value()?)));
                }
                let b = w.as_bytes();
                if b[0].is_ascii_digit() || b[0] == b'-' || b[0] == b'+' || b[0] == b'.' {
                    return Ok(Node::Num(w));
                }
                Err(format!("unknown keyword {w:?}"))
            }
        }
    }

    fn list(&mut self, close: u8) -> Result<Vec<Node>, String> {
        let mut v = Vec::new();
        if self.eat(close) {
            return Ok(v);
        }
        loop {
            v.push(self.value()?);
            if self.eat(close) {
                return Ok(v);
            }
            if !self.eat(b',') {
                return Err(format!(
                    "expected ',' or '{}' at offset {}",
                    close as char, self.i
                ));
            }
            // A tuple of one is written `(x,)`.
            if self.eat(close) {
                return Ok(v);
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            if c == q {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            let simple = match e {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'b' => Some(8),
                b'f' => Some(12),
                b'v' => Some(11),
                b'a' => Some(7),
                b'u' | b'U' => None,
                other => Some(other),
            };
            if let Some(b) = simple {
                out.push(b);
                continue;
            }
            let n = if e == b'u' { 4 } else { 8 };
            let hex = self
                .s
                .get(self.i..self.i + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
                .ok_or_else(|| format!("invalid \\{} escape", e as char))?;
            self.i += n;
            let mut buf = [0; 4];
            out.extend_from_slice(hex.encode_utf8(&mut buf).as_bytes());
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }
}

/// Length of the single complete D-Bus type at the start of `b` (None: not one).
fn type_len(b: &[u8]) -> Option<usize> {
    match *b.first()? {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o'
        | b'g' | b'v' => Some(1),
        b'a' => Some(1 + type_len(&b[1..])?),
        b'(' => {
            let mut i = 1;
            while *b.get(i)? != b')' {
                i += type_len(&b[i..])?;
            }
            Some(i + 1)
        }
        b'{' => {
            let k = type_len(&b[1..])?;
            if !matches!(
                b[1],
                b'y' | b'b'
                    | b'n'
                    | b'q'
                    | b'i'
                    | b'u'
                    | b'x'
                    | b't'
                    | b'h'
                    | b'd'
                    | b's'
                    | b'o'
                    | b'g'
            ) {
                return None;
            }
            let v = type_len(&b[1 + k..])?;
            (*b.get(1 + k + v)? == b'}').then_some(k + v + 2)
        }
        _ => None,
    }
}

/// The members of a struct type `(…)`.
fn members(t: &str) -> Vec<&str> {
    let inner = &t[1..t.len() - 1];
    let mut out = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        let n = type_len(&inner.as_bytes()[i..]).unwrap_or(inner.len() - i);
        out.push(&inner[i..i + n]);
        i += n;
    }
    out
}

fn int<T: TryFrom<i128>>(s: &str, t: &str) -> Result<T, String> {
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i128::from_str_radix(h, 16)
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(&body[1..], 8)
    } else {
        body.parse::<i128>()
    }
    .map_err(|_| format!("{s:?} is not a number of type {t}"))?;
    T::try_from(if neg { -v } else { v }).map_err(|_| format!("{s} is out of range for type {t}"))
}

fn is_float(s: &str) -> bool {
    let hex = s.contains("0x") || s.contains("0X");
    !hex && (s.contains('.')
        || s.contains('e')
        || s.contains('E')
        || s.contains("inf")
        || s.contains("nan"))
}

/// Gives `n` a type: `want` when the context fixes one, else GVariant's inference.
fn typed(n: &Node, want: Option<&str>) -> Result<Gv, String> {
    let mismatch = |what: &str| {
        Err(format!(
            "{what} where a value of type {} is expected",
            want.unwrap_or("?")
        ))
    };
    match n {
        Node::Typed(t, inner) => {
            if let Some(w) = want {
                if w != t && w != "v" {
                    return Err(format!("type {t} where {w} is expected"));
                }
            }
            let v = typed(inner, Some(t))?;
            Ok(if want == Some("v") {
                Gv::Variant(Box::new(v))
            } else {
                v
            })
        }
        Node::Bool(b) => match want {
            None | Some("b") => Ok(Gv::Bool(*b)),
            Some("v") => Ok(Gv::Variant(Box::new(Gv::Bool(*b)))),
            _ => mismatch("a boolean"),
        },
        Node::Num(s) => {
            let t = want.unwrap_or(if is_float(s) { "d" } else { "i" });
            Ok(match t {
                "y" => Gv::Byte(int(s, t)?),
                "n" => Gv::I16(int(s, t)?),
                "q" => Gv::U16(int(s, t)?),
                "i" => Gv::I32(int(s, t)?),
                "u" => Gv::U32(int(s, t)?),
                "x" => Gv::I64(int(s, t)?),
                "t" => Gv::U64(int(s, t)?),
                "h" => Gv::Handle(int(s, t)?),
                "d" => Gv::Double(if is_float(s) {
                    s.parse().map_err(|_| format!("{s:?} is not a number"))?
                } else {
                    int::<i64>(s, t)? as f64
                }),
                "v" => Gv::Variant(Box::new(typed(n, None)?)),
                _ => return mismatch("a number"),
            })
        }
        Node::Str(s) => match want {
            None | Some("s") => Ok(Gv::Str(s.clone())),
            Some("o") => {
                if !s.starts_with('/') {
                    return Err(format!("{s:?} is not an object path"));
                }
                Ok(Gv::ObjPath(s.clone()))
            }
            Some("g") => {
                let mut i = 0;
                while i < s.len() {
                    i += type_len(&s.as_bytes()[i..])
                        .ok_or_else(|| format!("{s:?} is not a signature"))?;
                }
                Ok(Gv::Sig(s.clone()))
            }
            Some("ay") => Ok(Gv::Array("y".into(), s.bytes().map(Gv::Byte).collect())),
            Some("v") => Ok(Gv::Variant(Box::new(Gv::Str(s.clone())))),
            _ => mismatch("a string"),
        },
        Node::Bytes(b) => match want {
            None | Some("ay") => Ok(Gv::Array(
                "y".into(),
                b.iter().map(|x| Gv::Byte(*x)).collect(),
            )),
            _ => mismatch("a bytestring"),
        },
        Node::Variant(inner) => match want {
            None | Some("v") => Ok(Gv::Variant(Box::new(typed(inner, None)?))),
            _ => mismatch("a variant"),
        },
        Node::Array(items) => {
            let elem = match want {
                Some(w) if w.starts_with('a') => Some(&w[1..]),
                Some("v") => return Ok(Gv::Variant(Box::new(typed(n, None)?))),
                Some(_) => return mismatch("an array"),
                None => None,
            };
            let (elem, vals) = list_of(items.iter().collect(), elem)?;
            Ok(Gv::Array(elem, vals))
        }
        Node::Tuple(items) => match want {
            Some(w) if w.starts_with('(') => {
                let m = members(w);
                if m.len() != items.len() {
                    return Err(format!(
                        "a tuple of {} where type {w} is expected",
                        items.len()
                    ));
                }
                let v = items
                    .iter()
                    .zip(m)
                    .map(|(n, t)| typed(n, Some(t)))
                    .collect::<Result<_, _>>()?;
                Ok(Gv::Struct(v))
            }
            None => Ok(Gv::Struct(
                items
                    .iter()
                    .map(|n| typed(n, None))
                    .collect::<Result<_, _>>()?,
            )),
            Some("v") => Ok(Gv::Variant(Box::new(typed(n, None)?))),
            Some(_) => mismatch("a tuple"),
        },
        Node::Dict(entries) => {
            let (kt, vt) = match want {
                Some(w) if w.starts_with("a{") => {
                    let k = type_len(&w.as_bytes()[2..]).unwrap_or(1);
                    (Some(&w[2..2 + k]), Some(&w[2 + k..w.len() - 1]))
                }
                Some("v") => return Ok(Gv::Variant(Box::new(typed(n, None)?))),
                Some(_) => return mismatch("a dictionary"),
                None => (None, None),
            };
            let (kt, keys) = list_of(entries.iter().map(|e| &e.0).collect(), kt)?;
            let (vt, vals) = list_of(entries.iter().map(|e| &e.1).collect(), vt)?;
            let items = keys
                .into_iter()
                .zip(vals)
                .map(|(k, v)| Gv::DictEntry(Box::new(k), Box::new(v)))
                .collect();
            Ok(Gv::Array(format!("{{{kt}{vt}}}"), items))
        }
    }
}

/// Types a list of nodes to one element type: the given one, else the common inferred type
/// (integers and doubles mixed make doubles).
fn list_of(items: Vec<&Node>, elem: Option<&str>) -> Result<(String, Vec<Gv>), String> {
    if let Some(t) = elem {
        let v = items
            .iter()
            .map(|n| typed(n, Some(t)))
            .collect::<Result<_, _>>()?;
        return Ok((t.to_string(), v));
    }
    if items.is_empty() {
        return Err("cannot infer the type of an empty array (annotate it: @as [])".into());
    }
    let v: Vec<Gv> = items
        .iter()
        .map(|n| typed(n, None))
        .collect::<Result<_, _>>()?;
    let mut sigs: Vec<String> = v.iter().map(Gv::signature).collect();
    sigs.dedup();
    match sigs.as_slice() {
        [one] => Ok((one.clone(), v)),
        _ if sigs.iter().all(|s| s == "i" || s == "d") => list_of(items, Some("d")),
        _ => {
            let mut m = String::new();
            for s in &sigs {
                let _ = write!(m, "{s} ");
            }
            Err(format!(
                "array elements of different types ({})",
                m.trim_end()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keywords_and_annotations() {
        assert_eq!(parse("uint64 123456789"), Ok(Gv::U64(123456789)));
        assert_eq!(parse("@t 5"), Ok(Gv::U64(5)));
        assert_eq!(parse("456"), Ok(Gv::I32(456)));
        assert_eq!(parse("-3"), Ok(Gv::I32(-3)));
        assert_eq!(parse("0x10"), Ok(Gv::I32(16)));
        assert_eq!(parse("234.789"), Ok(Gv::Double(234.789)));
        assert_eq!(parse("byte 234"), Ok(Gv::Byte(234)));
        assert_eq!(parse("int16 -2"), Ok(Gv::I16(-2)));
        assert_eq!(parse("true"), Ok(Gv::Bool(true)));
        assert_eq!(parse("boolean false"), Ok(Gv::Bool(false)));
        assert_eq!(
            parse("'inactive-or-failed'"),
            Ok(Gv::Str("inactive-or-failed".into()))
        );
        assert_eq!(parse(r#""a\"b\u00e9""#), Ok(Gv::Str("a\"bé".into())));
        assert_eq!(parse("objectpath '/a/b'"), Ok(Gv::ObjPath("/a/b".into())));
        assert_eq!(parse("@g 'a(ss)'"), Ok(Gv::Sig("a(ss)".into())));
    }

    #[test]
    fn containers() {
        let v = parse("['a', 'b']").unwrap();
        assert_eq!(v.signature(), "as");
        assert_eq!(parse("@as []").unwrap(), Gv::Array("s".into(), vec![]));
        assert_eq!(parse("[1, 2.5]").unwrap().signature(), "ad");
        assert_eq!(
            parse("[('/dev/null', 'rwm')]").unwrap().signature(),
            "a(ss)"
        );
        assert_eq!(
            parse("@a(st) [('/dev/sda', 1000)]").unwrap().signature(),
            "a(st)"
        );
        assert_eq!(parse("{'a': 1, 'b': 2}").unwrap().signature(), "a{si}");
        assert_eq!(parse("<uint32 1>").unwrap().signature(), "v");
        assert_eq!(parse("('x',)").unwrap().signature(), "(s)");
        assert_eq!(
            parse("b'ab'").unwrap(),
            Gv::Array("y".into(), vec![Gv::Byte(97), Gv::Byte(98)])
        );
    }

    #[test]
    fn errors() {
        for bad in [
            "invalid-value",
            "",
            "[]",
            "['a', 1]",
            "'unterminated",
            "byte 300",
            "uint32 -1",
            "@q 'x'",
            "nothing",
            "1 2",
            "@z 1",
            "objectpath 'x'",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed as {:?}", parse(bad));
        }
    }

    #[test]
    fn seconds_to_microseconds() {
        assert_eq!(parse("456").unwrap().sec_to_usec(), Some(456_000_000));
        assert_eq!(parse("234.789").unwrap().sec_to_usec(), Some(234_789_000));
        assert_eq!(parse("byte 234").unwrap().sec_to_usec(), Some(234_000_000));
        assert_eq!(parse("false").unwrap().sec_to_usec(), None);
        assert_eq!(parse("'covfefe'").unwrap().sec_to_usec(), None);
    }
}
