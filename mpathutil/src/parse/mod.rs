//! Parsers for what multipathd and the kernel print, into the model of [`crate::model`].
//!
//! Each parser is a pure function over text. Garbage gives a [`ParseError`] naming the
//! source, the line and a short excerpt; an unknown state word becomes an `Unknown` state.
//! Nothing here panics, whatever the input (property tests hold that).

mod json;
mod kernel;
mod table;
mod topology;

pub use json::{Document as JsonReply, parse_map_json, parse_maps_json};
pub use kernel::{KernelGroup, KernelPath, KernelStatus, parse_kernel_status};
pub use table::{Table, parse_table};
pub use topology::parse_topology;

use std::fmt;

/// Output that does not have the shape its source promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was being parsed, e.g. `show topology`.
    pub source: &'static str,
    /// 1-based line, where one applies.
    pub line: Option<usize>,
    pub detail: String,
}

impl ParseError {
    pub(crate) fn new(
        source: &'static str,
        line: Option<usize>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            source,
            line,
            detail: detail.into(),
        }
    }

    /// An error about one line, quoting a bounded excerpt of it.
    pub(crate) fn at_line(source: &'static str, line: usize, what: &str, text: &str) -> Self {
        Self::new(source, Some(line), format!("{what}: {:?}", excerpt(text)))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "cannot parse {} output, line {line}: {}",
                self.source, self.detail
            ),
            None => write!(f, "cannot parse {} output: {}", self.source, self.detail),
        }
    }
}

impl std::error::Error for ParseError {}

/// At most 80 characters of a line, so an error never carries a whole reply.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if text.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// Removes ANSI escape sequences (`ESC [ … letter`): multipathd bolds map names on a tty.
pub(crate) fn strip_ansi(line: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr(0x1b, line.as_bytes()).is_none() {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// A value that was printed and is not empty.
pub(crate) fn known(text: &str) -> Option<compact_str::CompactString> {
    (!text.is_empty()).then(|| text.into())
}

/// `[undef]`, `[unknown]` and `##` all mean "no value" in multipathd's printers.
pub(crate) fn defined(text: &str) -> Option<compact_str::CompactString> {
    (!matches!(text, "" | "[undef]" | "[unknown]" | "##")).then(|| text.into())
}

/// Room for this many groups per map and paths per group from the start. Two is the
/// common case (ALUA: an optimised and a non-optimised group; a path per controller or
/// HBA), where `Vec` would start at four: at 4096 paths the unused half is a megabyte and
/// a half of fresh pages, each a page fault.
pub(crate) const FEW: usize = 2;

/// The reply multipathd gives for an empty listing.
pub(crate) fn is_empty_listing(text: &str) -> bool {
    let t = text.trim();
    t.is_empty() || t == "ok"
}
