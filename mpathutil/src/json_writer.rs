//! A streaming JSON writer for `status --json`.
//!
//! With 1024 maps the output is 2 MB, and through serde's per-field machinery writing it
//! cost half of the whole command (about 19 instructions per byte). Here a value is a
//! bounds-checked copy into a buffer that goes out in 64 KiB writes, and a string that
//! needs no escaping (nearly all of them) is copied whole. The layout is serde_json's, to
//! the byte, so the output did not change when the writer did: one line, or for a person
//! two-space indents and `"key": value`.

use std::io::{self, Write};

/// Buffered bytes above this go out at the next container boundary.
const FLUSH_AT: usize = 1 << 16;

pub struct JsonWriter<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    pretty: bool,
    depth: usize,
    /// Nothing has been written yet in the innermost open container.
    empty: bool,
}

impl<'w> JsonWriter<'w> {
    pub fn new(out: &'w mut dyn Write, pretty: bool) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            pretty,
            depth: 0,
            empty: true,
        }
    }

    #[inline]
    pub fn begin_object(&mut self) {
        self.open(b'{');
    }

    #[inline]
    pub fn end_object(&mut self) -> io::Result<()> {
        self.close(b'}')
    }

    #[inline]
    pub fn begin_array(&mut self) {
        self.open(b'[');
    }

    #[inline]
    pub fn end_array(&mut self) -> io::Result<()> {
        self.close(b']')
    }

    /// Starts the next element of an array.
    #[inline]
    pub fn element(&mut self) {
        self.separate();
    }

    /// Starts a member of an object; its value follows. Keys are our own field names,
    /// which need no escaping.
    #[inline]
    pub fn key(&mut self, key: &'static str) {
        debug_assert!(!needs_escape(key.as_bytes()));
        self.separate();
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf
            .extend_from_slice(if self.pretty { b"\": " } else { b"\":" });
    }

    /// Starts a member given as `,"key":` (what [`member!`] makes of a key): in compact
    /// output after the first member, which is nearly every member, that is the whole of
    /// what goes out, in one fixed-size copy.
    #[inline(always)]
    pub fn member(&mut self, member: &'static str) {
        if self.pretty || self.empty {
            return self.key(member_key(member));
        }
        self.buf.extend_from_slice(member.as_bytes());
    }

    #[inline(always)]
    pub fn string(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            return self.escaped_string(s);
        }
        self.buf.reserve(s.len() + 2);
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    #[cold]
    fn escaped_string(&mut self, s: &str) {
        self.buf.push(b'"');
        self.escaped(s);
        self.buf.push(b'"');
    }

    /// A string of numbers and separators, such as `1:0:0:2`, written without `fmt`.
    #[inline]
    pub fn joined_numbers(&mut self, numbers: &[u64], separator: u8) {
        self.buf.push(b'"');
        for (i, n) in numbers.iter().enumerate() {
            if i > 0 {
                self.buf.push(separator);
            }
            self.unsigned(*n);
        }
        self.buf.push(b'"');
    }

    /// A state word: one of ours is copied as it is (our words need no escaping); an
    /// unknown one is written as any string.
    #[inline(always)]
    pub fn opt_word(&mut self, word: Option<Result<&'static str, &str>>) {
        match word {
            Some(Ok(known)) => {
                debug_assert!(!needs_escape(known.as_bytes()));
                self.buf.reserve(known.len() + 2);
                self.buf.push(b'"');
                self.buf.extend_from_slice(known.as_bytes());
                self.buf.push(b'"');
            }
            Some(Err(unknown)) => self.string(unknown),
            None => self.null(),
        }
    }

    #[inline(always)]
    pub fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    #[inline]
    pub fn null(&mut self) {
        self.buf.extend_from_slice(b"null");
    }

    #[inline]
    pub fn bool(&mut self, b: bool) {
        self.buf
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    #[inline]
    pub fn int(&mut self, n: i64) {
        if n < 0 {
            self.buf.push(b'-');
        }
        self.unsigned(n.unsigned_abs());
    }

    #[inline]
    pub fn opt_int(&mut self, n: Option<i64>) {
        match n {
            Some(n) => self.int(n),
            None => self.null(),
        }
    }

    /// Ends the document with a newline and writes out what is left.
    pub fn finish(mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }

    #[inline]
    fn open(&mut self, bracket: u8) {
        self.buf.push(bracket);
        self.depth += 1;
        self.empty = true;
    }

    #[inline]
    fn close(&mut self, bracket: u8) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.pretty && !self.empty {
            self.newline();
        }
        self.buf.push(bracket);
        // The container just closed is a value written in its parent.
        self.empty = false;
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    #[inline(always)]
    fn separate(&mut self) {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        if self.pretty {
            self.newline();
        }
    }

    #[inline]
    fn newline(&mut self) {
        self.buf.push(b'\n');
        self.buf.resize(self.buf.len() + 2 * self.depth, b' ');
    }

    #[inline]
    fn unsigned(&mut self, n: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    fn escaped(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &b in s.as_bytes() {
            match b {
                b'"' => self.buf.extend_from_slice(b"\\\""),
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                0x08 => self.buf.extend_from_slice(b"\\b"),
                0x0c => self.buf.extend_from_slice(b"\\f"),
                0..=0x1f => self.buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
                _ => self.buf.push(b),
            }
        }
    }
}

/// Whether a string holds what JSON cannot carry raw: a control byte, `"` or `\\` — the
/// bytes that end the readers' unescaped strings. Bytes of multi-byte UTF-8 characters are
/// all above 0x7f, so a `&str` without these is copied as it is.
#[inline(always)]
fn needs_escape(s: &[u8]) -> bool {
    !crate::scan::plain(s)
}

/// The key of a member written `,"key":`.
fn member_key(member: &'static str) -> &'static str {
    debug_assert!(member.starts_with(",\"") && member.ends_with("\":"));
    member.get(2..member.len().saturating_sub(2)).unwrap_or("")
}

/// `,"key":` for [`JsonWriter::member`], made when compiling.
macro_rules! member {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}
pub(crate) use member;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[inline]
    fn document(pretty: bool, fill: impl FnOnce(&mut JsonWriter)) -> String {
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&mut out, pretty);
        fill(&mut w);
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[inline]
    fn sample(w: &mut JsonWriter) {
        w.begin_object();
        w.key("maps");
        w.begin_array();
        for i in 0..2 {
            w.element();
            w.begin_object();
            w.key("name");
            w.string(&format!("map{i}"));
            w.key("size");
            w.opt_string(None);
            w.key("queue_if_no_path");
            w.bool(i == 0);
            w.key("priority");
            w.opt_int(Some(-50));
            w.key("max");
            w.int(u32::MAX.into());
            w.key("paths");
            w.begin_array();
            w.end_array().unwrap();
            w.key("group");
            w.begin_object();
            w.end_object().unwrap();
            w.end_object().unwrap();
        }
        w.end_array().unwrap();
        w.end_object().unwrap();
    }

    #[test]
    #[inline]
    fn layout_is_serde_jsons_to_the_byte() {
        #[derive(serde::Serialize)]
        struct Map {
            name: String,
            size: Option<String>,
            queue_if_no_path: bool,
            priority: Option<i64>,
            max: u32,
            paths: Vec<u8>,
            group: std::collections::BTreeMap<String, u8>,
        }
        #[derive(serde::Serialize)]
        struct Status {
            maps: Vec<Map>,
        }
        let status = Status {
            maps: (0..2)
                .map(|i| Map {
                    name: format!("map{i}"),
                    size: None,
                    queue_if_no_path: i == 0,
                    priority: Some(-50),
                    max: u32::MAX,
                    paths: Vec::new(),
                    group: Default::default(),
                })
                .collect(),
        };
        assert_eq!(
            document(false, sample),
            serde_json::to_string(&status).unwrap() + "\n"
        );
        assert_eq!(
            document(true, sample),
            serde_json::to_string_pretty(&status).unwrap() + "\n"
        );
    }

    #[test]
    #[inline]
    fn large_documents_go_out_whole() {
        let text = document(false, |w| {
            w.begin_array();
            for i in 0..20_000 {
                w.element();
                w.begin_object();
                w.key("i");
                w.int(i);
                w.end_object().unwrap();
            }
            w.end_array().unwrap();
        });
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value.as_array().map(Vec::len), Some(20_000));
    }

    #[test]
    #[inline]
    fn every_byte_that_needs_escaping_is_found_at_every_offset() {
        for len in 0..20 {
            for at in 0..len {
                for b in (0..=0x7fu8).chain([0x80, 0xc3, 0xff]) {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), expected, "{bytes:?}");
                }
            }
        }
    }

    proptest! {
        // Whatever multipathd puts in a string (quotes, backslashes, control bytes, any
        // Unicode) comes back unchanged through a JSON reader, written as serde_json would.
        #[test]
        fn any_string_round_trips(s in any::<String>(), n in any::<i64>()) {
            for pretty in [false, true] {
                let text = document(pretty, |w| {
                    w.begin_object();
                    w.key("s");
                    w.string(&s);
                    w.key("n");
                    w.int(n);
                    w.end_object().unwrap();
                });
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(value["s"].as_str(), Some(s.as_str()));
                prop_assert_eq!(value["n"].as_i64(), Some(n));
                let k = serde_json::to_string(&s).unwrap();
                let expected = if pretty {
                    format!("{{\n  \"s\": {k},\n  \"n\": {n}\n}}\n")
                } else {
                    format!("{{\"s\":{k},\"n\":{n}}}\n")
                };
                prop_assert_eq!(text, expected);
            }
        }
    }
}
