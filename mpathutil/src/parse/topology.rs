//! The topology text of `show topology`, `show map X topology` and `multipath -ll`.
//!
//! Two formats exist (`multipath-facts.md` §3.3–3.4), and one parser reads both, line by line,
//! recognising each line by its shape:
//!
//! ```text
//! create: 3600a0b8 dm-0 LIO-ORG,disk            map header (optional action)
//! size=1.0T features='0' hwhandler='1 alua' wp=rw  map properties (0.4.9+)
//! |-+- policy='service-time 0' prio=50 status=active   path group (0.4.9+)
//! | `- 1:0:1:1 sdc 8:32 active ready running      path (0.4.9+)
//! [size=100G][features=1 queue_if_no_path][hwhandler=1 alua][rw]   properties (0.4.x)
//! \_ round-robin 0 [prio=50][active]            path group (0.4.x)
//!  \_ 0:0:0:0 sda 8:0 [active][ready]           path (0.4.x)
//! ```

use super::{FEW, ParseError, is_empty_listing, strip_ansi};
use crate::model::{
    CheckerState, CompactString, DevState, GroupState, Hcil, Map, Path, PathDmState, PathGroup,
    Topology, WriteProt,
};
use std::borrow::Cow;

const SOURCE: &str = "topology";

/// Parses topology text into maps. An empty reply (`ok`) is an empty topology.
pub fn parse_topology(text: &str) -> Result<Topology, ParseError> {
    let mut topology = Topology::default();
    if is_empty_listing(text) {
        return Ok(topology);
    }
    // A map takes four lines at the least: room for every map at once, so the maps are
    // never moved while the list grows. Pages never written cost nothing.
    topology.maps.reserve(text.len() / 256);
    // multipathd colours names only on a terminal: look for escapes once, not per line.
    let coloured = memchr::memchr(0x1b, text.as_bytes()).is_some();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = if coloured {
            strip_ansi(raw)
        } else {
            Cow::Borrowed(raw)
        };
        let line = line.trim_ascii_end();
        let body = line.trim_ascii_start();
        if body.is_empty() {
            continue;
        }
        if body.starts_with("size=") {
            let map = current_map(&mut topology, number, line)?;
            parse_properties(map, body, number, line)?;
        } else if body.starts_with('[') {
            let map = current_map(&mut topology, number, line)?;
            parse_legacy_properties(map, body, number, line)?;
        } else if let Some(rest) = body.strip_prefix("\\_") {
            let map = current_map(&mut topology, number, line)?;
            parse_legacy_member(map, rest.trim_start(), number, line)?;
        } else if let Some(rest) = group_branch(body) {
            let map = current_map(&mut topology, number, line)?;
            map.groups.push(parse_group(rest, number, line)?);
        } else if let Some((hcil, rest)) = path_branch(body) {
            let map = current_map(&mut topology, number, line)?;
            let path = parse_path(hcil, rest, number, line)?;
            match map.groups.last_mut() {
                Some(group) => group.paths.push(path),
                None => {
                    return Err(ParseError::at_line(
                        SOURCE,
                        number,
                        "path before any group",
                        line,
                    ));
                }
            }
        } else {
            topology.maps.push(parse_header(body, number, line)?);
        }
    }
    Ok(topology)
}

fn current_map<'t>(
    topology: &'t mut Topology,
    number: usize,
    line: &str,
) -> Result<&'t mut Map, ParseError> {
    topology
        .maps
        .last_mut()
        .ok_or_else(|| ParseError::at_line(SOURCE, number, "line before any map header", line))
}

/// `|-+- rest` or `` `-+- rest ``.
fn group_branch(body: &str) -> Option<&str> {
    body.strip_prefix("|-+-")
        .or_else(|| body.strip_prefix("`-+-"))
        .map(str::trim_start)
}

/// `| |- rest`, ``| `- rest``, `|- rest`, `` `- rest``: tree glyphs, then an H:C:T:L
/// (`#:#:#:#` for a path without one), returned with what follows it.
fn path_branch(body: &str) -> Option<(Option<Hcil>, &str)> {
    let glyphs = body
        .bytes()
        .position(|b| !matches!(b, b'|' | b'`' | b' '))
        .unwrap_or(body.len());
    // The glyphs are ASCII, so the cut is on a character boundary.
    let rest = body.get(glyphs..)?;
    let rest = rest.strip_prefix("- ")?;
    let (first, after) = split_word(rest);
    match Hcil::parse(first) {
        Some(hcil) => Some((Some(hcil), after)),
        None => (first == "#:#:#:#").then_some((None, after)),
    }
}

/// `[action: ]name[ (wwid)] dm-N|undef VENDOR,PRODUCT`
fn parse_header(body: &str, number: usize, line: &str) -> Result<Map, ParseError> {
    let (action, rest) = match body.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => (Some(head.to_string()), rest),
        _ => (None, body),
    };
    let rest = rest.trim_start();
    let (name, mut rest) = split_word(rest);
    if name.is_empty() {
        return Err(ParseError::at_line(
            SOURCE,
            number,
            "map header without a name",
            line,
        ));
    }
    let mut wwid = CompactString::from(name);
    let (next, after) = split_word(rest);
    if let Some(inner) = next.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
        wwid = inner.into();
        rest = after;
    }
    let (sysfs, vpr) = split_word(rest);
    let sysfs = match sysfs {
        "undef" => None,
        s if s
            .strip_prefix("dm-")
            .is_some_and(|n| n.parse::<u32>().is_ok()) =>
        {
            Some(s.into())
        }
        _ => {
            return Err(ParseError::at_line(
                SOURCE,
                number,
                "not a map header (no dm-N after the name)",
                line,
            ));
        }
    };
    let (vendor, product) = match vpr.split_once(',') {
        Some((v, p)) => (known(v), known(p)),
        None => (known(vpr), None),
    };
    Ok(Map {
        name: name.into(),
        wwid,
        sysfs,
        vendor,
        product,
        action: action.filter(|a| !a.is_empty()).map(CompactString::from),
        groups: Vec::with_capacity(FEW),
        ..Map::default()
    })
}

/// `size=… features='…' hwhandler='…' wp=…`
fn parse_properties(
    map: &mut Map,
    props: &str,
    number: usize,
    line: &str,
) -> Result<(), ParseError> {
    for pair in key_values(props) {
        let (key, value) =
            pair.ok_or_else(|| ParseError::at_line(SOURCE, number, "unbalanced quotes", line))?;
        match key {
            "size" => map.size = Some(value.into()),
            "features" => map.features = Some(value.into()),
            "hwhandler" => map.hwhandler = Some(value.into()),
            "wp" => map.write_prot = Some(WriteProt::from_word(value)),
            _ => {}
        }
    }
    Ok(())
}

/// `policy='…' prio=N status=…`
fn parse_group(rest: &str, number: usize, line: &str) -> Result<PathGroup, ParseError> {
    let mut group = PathGroup {
        paths: Vec::with_capacity(FEW),
        ..PathGroup::default()
    };
    for pair in key_values(rest) {
        let (key, value) =
            pair.ok_or_else(|| ParseError::at_line(SOURCE, number, "unbalanced quotes", line))?;
        match key {
            "policy" => group.selector = Some(value.into()),
            "prio" => {
                group.priority = Some(value.parse().map_err(|_| {
                    ParseError::at_line(SOURCE, number, "group priority is not a number", line)
                })?)
            }
            "status" => group.state = Some(GroupState::from_word(value)),
            _ => {}
        }
    }
    Ok(group)
}

/// `dev dev_t dm_st chk_st dev_st` after the H:C:T:L; `chk_st` may be two words
/// (`i/o pending`).
fn parse_path(
    hcil: Option<Hcil>,
    rest: &str,
    number: usize,
    line: &str,
) -> Result<Path, ParseError> {
    let too_few = || ParseError::at_line(SOURCE, number, "path line with too few fields", line);
    let (dev, rest) = split_word(rest);
    let (dev_t, rest) = split_word(rest);
    let (dm, rest) = split_word(rest);
    // What is left is `chk_st dev_st`, the checker state possibly two words.
    let rest = rest.trim_ascii_end();
    let split = rest
        .bytes()
        .rposition(|b| b.is_ascii_whitespace())
        .ok_or_else(too_few)?;
    let (checker, dev_state) = (rest[..split].trim_ascii_end(), &rest[split + 1..]);
    if dm.is_empty() || checker.is_empty() {
        return Err(too_few());
    }
    Ok(Path {
        hcil,
        dev: known_dev(dev),
        dev_t: (dev_t != "#:#").then(|| dev_t.into()),
        dm_state: Some(PathDmState::from_word(dm)),
        checker_state: Some(CheckerState::from_word(checker)),
        dev_state: Some(DevState::from_word(dev_state)),
        ..Path::default()
    })
}

/// `[size=100G][features=1 queue_if_no_path][hwhandler=1 alua][rw]`
fn parse_legacy_properties(
    map: &mut Map,
    body: &str,
    number: usize,
    line: &str,
) -> Result<(), ParseError> {
    for item in brackets(body)
        .ok_or_else(|| ParseError::at_line(SOURCE, number, "unbalanced brackets", line))?
    {
        match item.split_once('=') {
            Some(("size", v)) => map.size = Some(v.into()),
            Some(("features", v)) => map.features = Some(v.into()),
            Some(("hwhandler", v)) => map.hwhandler = Some(v.into()),
            Some(_) => {}
            None => map.write_prot = Some(WriteProt::from_word(item)),
        }
    }
    Ok(())
}

/// After `\_`: a group (`round-robin 0 [prio=50][active]`) or a path
/// (`0:0:0:0 sda 8:0 [active][ready]`).
fn parse_legacy_member(
    map: &mut Map,
    rest: &str,
    number: usize,
    line: &str,
) -> Result<(), ParseError> {
    let (first, after) = split_word(rest);
    if let Some(hcil) = Hcil::parse(first) {
        let (dev, after) = split_word(after);
        let (dev_t, after) = split_word(after);
        let states = brackets(after.trim())
            .ok_or_else(|| ParseError::at_line(SOURCE, number, "unbalanced brackets", line))?;
        let path = Path {
            hcil: Some(hcil),
            dev: known_dev(dev),
            dev_t: (!dev_t.is_empty() && dev_t != "#:#").then(|| dev_t.into()),
            dm_state: states.first().map(|w| PathDmState::from_word(w)),
            checker_state: states.get(1).map(|w| CheckerState::from_word(w)),
            ..Path::default()
        };
        return match map.groups.last_mut() {
            Some(group) => {
                group.paths.push(path);
                Ok(())
            }
            None => Err(ParseError::at_line(
                SOURCE,
                number,
                "path before any group",
                line,
            )),
        };
    }
    let (selector, states) = match rest.find('[') {
        Some(at) => (rest[..at].trim(), &rest[at..]),
        None => (rest.trim(), ""),
    };
    let mut group = PathGroup {
        selector: (!selector.is_empty()).then(|| selector.into()),
        paths: Vec::with_capacity(FEW),
        ..PathGroup::default()
    };
    for item in brackets(states)
        .ok_or_else(|| ParseError::at_line(SOURCE, number, "unbalanced brackets", line))?
    {
        match item.split_once('=') {
            Some(("prio", v)) => {
                group.priority = Some(v.parse().map_err(|_| {
                    ParseError::at_line(SOURCE, number, "group priority is not a number", line)
                })?)
            }
            Some(_) => {}
            None => group.state = Some(GroupState::from_word(item)),
        }
    }
    map.groups.push(group);
    Ok(())
}

/// `[a][b=c]` → `["a", "b=c"]`; `None` when brackets do not balance.
fn brackets(text: &str) -> Option<Vec<&str>> {
    let mut items = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        items.push(&inner[..close]);
        rest = inner[close + 1..].trim_start();
    }
    Some(items)
}

/// `key=value key='quoted value' …`, pair by pair; a `None` (then the end) where a pair
/// has no `=` or a quote is not closed.
fn key_values(text: &str) -> impl Iterator<Item = Option<(&str, &str)>> {
    let position = |s: &str, c: u8| s.bytes().position(|b| b == c);
    let mut rest = Some(text.trim_ascii_start());
    std::iter::from_fn(move || {
        let text = rest.take().filter(|r| !r.is_empty())?;
        let pair = (|| {
            let eq = position(text, b'=')?;
            let key = text[..eq].trim_ascii();
            let after = &text[eq + 1..];
            let (value, next) = if let Some(quoted) = after.strip_prefix('\'') {
                let close = position(quoted, b'\'')?;
                (&quoted[..close], &quoted[close + 1..])
            } else {
                let end = position(after, b' ').unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            rest = Some(next.trim_ascii_start());
            Some((key, value))
        })();
        Some(pair)
    })
}

/// The first word and the rest, both without leading whitespace (ASCII: the vocabulary is).
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_ascii_start();
    match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, rest)) => (word, rest.trim_ascii_start()),
        None => (text, ""),
    }
}

/// multipath prints `##` for a vendor or product it does not know.
fn known(text: &str) -> Option<CompactString> {
    let t = text.trim();
    (!t.is_empty() && t != "##").then(|| t.into())
}

fn known_dev(text: &str) -> Option<CompactString> {
    (!text.is_empty() && text != "-").then(|| text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUAWEI: &str = "create: mpatha (368caaaaaaaaae2069fb9e3e1000001c4) dm-6 HUAWEI,XSG1
size=1.0T features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
|-+- policy='round-robin 0' prio=50 status=active
| |- 1:0:1:1 sdc 8:32  active ready running
| `- 2:0:7:1 sdq 65:0  active ready running
`-+- policy='round-robin 0' prio=10 status=enabled
  |- 1:0:0:1 sdb 8:16  active ready running
  `- 2:0:6:1 sdp 8:240 active ready running
";

    #[test]
    fn current_format_with_alias_and_action() {
        let t = parse_topology(HUAWEI).unwrap();
        assert_eq!(t.maps.len(), 1);
        let m = &t.maps[0];
        assert_eq!(m.name, "mpatha");
        assert_eq!(m.wwid, "368caaaaaaaaae2069fb9e3e1000001c4");
        assert_eq!(m.action.as_deref(), Some("create"));
        assert_eq!(m.sysfs.as_deref(), Some("dm-6"));
        assert_eq!(m.vendor.as_deref(), Some("HUAWEI"));
        assert_eq!(m.product.as_deref(), Some("XSG1"));
        assert_eq!(m.size.as_deref(), Some("1.0T"));
        assert!(m.queue_if_no_path());
        assert_eq!(m.hwhandler.as_deref(), Some("1 alua"));
        assert_eq!(m.write_prot, Some(WriteProt::Rw));
        assert_eq!(m.groups.len(), 2);
        assert_eq!(m.groups[0].priority, Some(50));
        assert_eq!(m.groups[0].state, Some(GroupState::Active));
        assert_eq!(m.groups[1].selector.as_deref(), Some("round-robin 0"));
        assert_eq!(m.groups[1].paths[1].dev.as_deref(), Some("sdp"));
        assert_eq!(m.groups[1].paths[1].dev_t.as_deref(), Some("8:240"));
        assert_eq!(
            m.groups[1].paths[1].hcil,
            Some(Hcil {
                host: 2,
                channel: 0,
                target: 6,
                lun: 1
            })
        );
        assert_eq!(m.paths().count(), 4);
    }

    #[test]
    fn two_word_checker_state_and_orphan_markers() {
        let text = "3600 dm-0 LIO-ORG,disk
size=1.0G features='0' hwhandler='1 alua' wp=rw
`-+- policy='service-time 0' prio=0 status=enabled
  |- 1:0:0:1 sdb 8:16 active i/o pending running
  `- #:#:#:# -   #:#  failed faulty      unknown
";
        let t = parse_topology(text).unwrap();
        let paths: Vec<_> = t.maps[0].paths().collect();
        assert_eq!(paths[0].checker_state, Some(CheckerState::IoPending));
        assert_eq!(paths[1].hcil, None);
        assert_eq!(paths[1].dev, None);
        assert_eq!(paths[1].dev_state, Some(DevState::Orphan));
    }

    #[test]
    fn empty_reply_is_an_empty_topology() {
        assert_eq!(parse_topology("ok\n").unwrap(), Topology::default());
        assert_eq!(parse_topology("").unwrap(), Topology::default());
    }

    #[test]
    fn map_without_paths_and_unknown_vendor() {
        let t = parse_topology(
            "35001405aabbccdd1 dm-0 ##,##\nsize=256M features='0' hwhandler='0' wp=rw\n",
        )
        .unwrap();
        assert_eq!(t.maps[0].vendor, None);
        assert!(t.maps[0].groups.is_empty());
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let err = parse_topology("hello world\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = parse_topology("size=1G features='0\n").unwrap_err();
        assert!(err.detail.contains("before any map"));
        let err = parse_topology("3600 dm-0 A,B\nsize=1G features='0\n").unwrap_err();
        assert!(err.detail.contains("unbalanced"), "{err}");
    }

    #[test]
    fn ansi_bold_names_are_stripped() {
        let t = parse_topology("\u{1b}[1mmpatha (3600) dm-1 A,B\u{1b}[0m\n").unwrap();
        assert_eq!(t.maps[0].name, "mpatha");
        assert_eq!(t.maps[0].wwid, "3600");
    }
}
