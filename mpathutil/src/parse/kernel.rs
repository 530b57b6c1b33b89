//! The kernel's multipath status line (`dmsetup status`, `multipath-facts.md` §5.2).
//!
//! ```text
//! [name: ]0 209715200 multipath 2 0 1 0 2 1 A 0 1 2 8:0 A 0 0 1 E 0 1 2 8:16 A 0 0 1
//! ```
//!
//! Every section is count-prefixed, and per-path info arguments depend on the selector, so
//! the line is walked by its counts (never pattern-matched) and must be consumed exactly.

use super::ParseError;

const SOURCE: &str = "kernel status";

/// The multipath target's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelStatus {
    /// 1 while I/O is queued internally (e.g. during path-group initialisation).
    pub queue_io: u32,
    pub pg_init_count: u32,
    /// The current (or next) group, 1-based; 0 when there are none.
    pub current_group: u32,
    pub groups: Vec<KernelGroup>,
}

impl KernelStatus {
    /// Paths the kernel can send I/O to (`A`).
    pub fn active_paths(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.paths)
            .filter(|p| p.active)
            .count()
    }

    pub fn total_paths(&self) -> usize {
        self.groups.iter().map(|g| g.paths.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelGroup {
    /// `A` active (current), `E` enabled, `D` disabled (bypassed).
    pub state: char,
    pub paths: Vec<KernelPath>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPath {
    /// `major:minor`.
    pub dev_t: String,
    /// `A` (true) or `F`.
    pub active: bool,
    pub fail_count: u32,
}

/// Parses one status line, with or without the `name: start length multipath` prefix.
pub fn parse_kernel_status(line: &str) -> Result<KernelStatus, ParseError> {
    let body = line.trim();
    let body = match body.split_once(": ") {
        Some((name, rest)) if !name.contains(' ') => rest,
        _ => body,
    };
    let words: Vec<&str> = body.split_whitespace().collect();
    let words = match words.iter().position(|w| *w == "multipath") {
        Some(at) => &words[at + 1..],
        None => &words[..],
    };
    let mut cursor = Cursor { words, at: 0 };

    let feature_count = cursor.count("feature count")?;
    let queue_io = if feature_count >= 1 {
        cursor.number("queue_io")?
    } else {
        0
    };
    let pg_init_count = if feature_count >= 2 {
        cursor.number("pg_init_count")?
    } else {
        0
    };
    cursor.skip(feature_count.saturating_sub(2), "feature words")?;
    let handler_words = cursor.count("hardware handler count")?;
    cursor.skip(handler_words, "hardware handler words")?;
    let group_count = cursor.count("group count")?;
    let current_group = cursor.number("current group")?;

    let mut groups = Vec::with_capacity(group_count.min(64));
    for _ in 0..group_count {
        let state = match cursor.word("group state")? {
            "A" => 'A',
            "E" => 'E',
            "D" => 'D',
            other => return Err(cursor.error(format!("group state {other:?} is not A, E or D"))),
        };
        let selector_args = cursor.count("selector status count")?;
        cursor.skip(selector_args, "selector status words")?;
        let path_count = cursor.count("path count")?;
        let info_args = cursor.count("path info count")?;
        let mut paths = Vec::with_capacity(path_count.min(256));
        for _ in 0..path_count {
            let dev_t = cursor.word("path device")?;
            if !is_dev_t(dev_t) {
                return Err(cursor.error(format!("{dev_t:?} is not major:minor")));
            }
            let active = match cursor.word("path state")? {
                "A" => true,
                "F" => false,
                other => return Err(cursor.error(format!("path state {other:?} is not A or F"))),
            };
            let fail_count = cursor.number("fail count")?;
            cursor.skip(info_args, "path info words")?;
            paths.push(KernelPath {
                dev_t: dev_t.to_string(),
                active,
                fail_count,
            });
        }
        groups.push(KernelGroup { state, paths });
    }
    if cursor.at != cursor.words.len() {
        return Err(cursor.error(format!(
            "{} words left over",
            cursor.words.len() - cursor.at
        )));
    }
    Ok(KernelStatus {
        queue_io,
        pg_init_count,
        current_group,
        groups,
    })
}

fn is_dev_t(word: &str) -> bool {
    word.split_once(':').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

struct Cursor<'w, 'a> {
    words: &'w [&'a str],
    at: usize,
}

impl<'a> Cursor<'_, 'a> {
    fn word(&mut self, what: &str) -> Result<&'a str, ParseError> {
        let word = self.words.get(self.at).copied().ok_or_else(|| {
            ParseError::new(
                SOURCE,
                None,
                format!("line ends where the {what} should be"),
            )
        })?;
        self.at += 1;
        Ok(word)
    }

    fn number(&mut self, what: &str) -> Result<u32, ParseError> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.error(format!("{what} {word:?} is not a number")))
    }

    /// A count, bounded by what is left so hostile input cannot make us reserve memory.
    fn count(&mut self, what: &str) -> Result<usize, ParseError> {
        let n = self.number(what)? as usize;
        if n > self.words.len() {
            return Err(self.error(format!("{what} {n} exceeds the line")));
        }
        Ok(n)
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), ParseError> {
        if self.at + n > self.words.len() {
            return Err(ParseError::new(
                SOURCE,
                None,
                format!("line ends inside the {what}"),
            ));
        }
        self.at += n;
        Ok(())
    }

    fn error(&self, detail: String) -> ParseError {
        ParseError::new(SOURCE, None, format!("word {}: {detail}", self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_time_two_groups() {
        let s = parse_kernel_status(
            "2 0 1 0 2 1 A 0 3 2 65:32 A 0 0 1 67:64 A 0 0 1 69:96 A 0 0 1 \
             E 0 3 2 8:16 A 0 0 1 66:48 A 0 0 1 68:80 A 0 0 1",
        )
        .unwrap();
        assert_eq!(s.pg_init_count, 1);
        assert_eq!(s.current_group, 1);
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups[1].state, 'E');
        assert_eq!(s.active_paths(), 6);
    }

    #[test]
    fn queue_length_with_name_prefix_and_failed_path() {
        let s = parse_kernel_status(
            "360014053d0b83eff3d347c48509fc426: 0 104857600 multipath 2 0 1 0 3 2 \
             E 0 1 1 67:16 F 4 0 E 0 1 1 65:240 A 84 0 E 0 1 1 66:64 A 39 0",
        )
        .unwrap();
        assert_eq!(s.current_group, 2);
        assert_eq!(s.total_paths(), 3);
        assert_eq!(s.active_paths(), 2);
        assert_eq!(s.groups[0].paths[0].fail_count, 4);
        assert!(!s.groups[0].paths[0].active);
    }

    #[test]
    fn leftovers_and_truncation_are_errors() {
        assert!(parse_kernel_status("2 0 1 0 0 0 extra").is_err());
        assert!(parse_kernel_status("2 0 1 0 1 1 A 0 1 1 8:0").is_err());
        assert!(parse_kernel_status("2 0 1 0 1 1 A 0 1 0 8:0 X 0").is_err());
        assert!(parse_kernel_status("999999999999").is_err());
        assert!(parse_kernel_status("").is_err());
    }
}
