//! The multipathd commands sm-rs sends, typed.
//!
//! Map arguments are map names; with `user_friendly_names no` (as on XenServer) the name is
//! the WWID, which every multipathd version accepts (a WWID that is not also the name is
//! only understood from 0.9.9 on).

use crate::client::{Error, Multipathd};
use crate::model::{Map, MapDmState, Marginal, Topology};
use crate::parse::{self, ParseError, defined, known};
use std::collections::HashMap;

/// The fields the topology text leaves out, in raw listings. They are separated by the
/// ASCII unit separator, which no multipathd value contains (vendor and revision strings
/// may contain spaces). A wildcard an older multipathd does not know prints nothing, so
/// its field is empty and the others keep their places.
/// Maps: WWID, failback, queueing, usable paths, path faults, revision, dm state.
const MAP_FIELDS: &str = "\"%w\u{1f}%F\u{1f}%Q\u{1f}%N\u{1f}%0\u{1f}%e\u{1f}%t\"";
/// Paths: device, checker, priority, host WWNN, target WWNN (iSCSI: IQN), host WWPN,
/// target WWPN, host adapter, LUN hex, marginal state.
const PATH_FIELDS: &str =
    "\"%d\u{1f}%c\u{1f}%p\u{1f}%N\u{1f}%n\u{1f}%R\u{1f}%r\u{1f}%a\u{1f}%L\u{1f}%M\"";

/// The lines of a raw listing, found by their first field. Tried in order first: the maps
/// listing comes in the order of the topology (both walk multipathd's map vector), so
/// each map's line is the next one. At the first line out of place, every line is
/// indexed by its key, and looked up from then on. Only lines are kept: a row split into
/// its fields is ten times the size, and at 4096 paths the index alone would be a
/// megabyte of fresh pages, each a page fault.
struct Rows<'t> {
    text: &'t str,
    /// Lines not yet taken in order.
    rest: &'t str,
    index: Option<RowIndex<'t>>,
    expected: usize,
}

impl<'t> Rows<'t> {
    fn new(text: &'t str, expected: usize) -> Self {
        Self {
            text,
            rest: text,
            index: None,
            expected,
        }
    }

    /// The line whose first field is `key`.
    fn get(&mut self, key: &str) -> Option<&'t str> {
        if self.index.is_none()
            && let Some(line) = parse::lines(self.rest).next()
            && line
                .strip_prefix(key)
                .is_some_and(|after| after.is_empty() || after.as_bytes().first() == Some(&0x1f))
        {
            // The line is followed by a newline or is the last.
            self.rest = self.rest.get(line.len() + 1..).unwrap_or_default();
            return Some(line);
        }
        let (text, expected) = (self.text, self.expected);
        self.index
            .get_or_insert_with(|| lines_by_key(text, expected))
            .get(key)
            .copied()
    }
}

/// Every line of a raw listing by its first field.
fn lines_by_key(text: &str, expected: usize) -> RowIndex<'_> {
    let mut index = RowIndex::default();
    index.reserve(expected);
    for line in parse::lines(text) {
        let key = match memchr::memchr(0x1f, line.as_bytes()) {
            // The separator is ASCII, so the cut is on a character boundary.
            Some(end) => line.get(..end).unwrap_or_default(),
            None => line,
        };
        index.insert(key, line);
    }
    index
}

/// A raw line's `N` fields, or `None` when it has another number of them. Separators are
/// found sixteen bytes at a time (a path's line is 130 bytes and ten fields; a search per
/// field cost more than the line).
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut slot = 0;
    let mut start = 0;
    let mut cut = |end: usize, start: &mut usize| -> Option<()> {
        // The separator is ASCII, so the cuts are on character boundaries.
        *out.get_mut(slot)? = line.get(*start..end)?;
        slot += 1;
        *start = end + 1;
        Some(())
    };
    let bytes = line.as_bytes();
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = bytes.get(at..).and_then(|b| b.first_chunk::<16>()) {
        let mut found = crate::scan::sse2::equal(block, 0x1f);
        while found != 0 {
            cut(at + found.trailing_zeros() as usize, &mut start)?;
            found &= found - 1;
        }
        at += 16;
    }
    for (i, b) in bytes.iter().enumerate().skip(at) {
        if *b == 0x1f {
            cut(i, &mut start)?;
        }
    }
    let last = line.get(start..)?;
    *out.get_mut(slot)? = last;
    (slot + 1 == N).then_some(out)
}

/// Hashes the short ASCII keys the raw rows are found by (device names, WWIDs) with
/// FNV-1a: the standard hasher's DoS resistance is not needed for the daemon's own names,
/// and at 5000 keys per snapshot it cost more than the lookups.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type RowIndex<'a> = HashMap<&'a str, &'a str, std::hash::BuildHasherDefault<Fnv>>;

/// Adds the raw listings' fields to maps read from the topology text.
fn complete(maps: &mut [Map], map_fields: &str, path_fields: &str) {
    let mut map_rows = Rows::new(map_fields, maps.len());
    let mut path_rows = Rows::new(path_fields, maps.iter().map(|m| m.paths().count()).sum());
    for map in maps {
        if let Some(f) = map_rows.get(map.wwid.as_str()).and_then(fields::<7>) {
            map.failback = known(f[1]);
            map.queueing = known(f[2]);
            map.usable_paths_reported = f[3].parse().ok();
            map.path_faults = f[4].parse().ok();
            map.revision = defined(f[5]);
            map.dm_state = (!f[6].is_empty()).then(|| MapDmState::from_word(f[6]));
        }
        for group in &mut map.groups {
            for path in &mut group.paths {
                let row = path.dev.as_deref().and_then(|dev| path_rows.get(dev));
                let Some(f) = row.and_then(|l| fields::<10>(l)) else {
                    continue;
                };
                path.checker = known(f[1]);
                path.priority = f[2].parse().ok();
                path.host_wwnn = defined(f[3]);
                path.target_wwnn = defined(f[4]);
                path.host_wwpn = defined(f[5]);
                path.target_wwpn = defined(f[6]);
                path.host_adapter = defined(f[7]);
                path.lun_hex = known(f[8]);
                path.marginal = (!f[9].is_empty()).then(|| Marginal::from_word(f[9]));
            }
        }
    }
}

impl Multipathd {
    /// `show daemon`: `pid <pid> <state>`; answered without the daemon's big lock, so it
    /// tells whether the daemon is up even while it reconfigures.
    pub fn daemon_state(&mut self) -> Result<String, Error> {
        Ok(self.send("show daemon")?.trim().to_string())
    }

    /// `list maps`: the names of all maps.
    pub fn list_maps(&mut self) -> Result<Vec<MapName>, Error> {
        let command = "list maps";
        let table = parse_with(command, &self.send(command)?, parse::parse_table)?;
        let names = table.column("name");
        let uuids = table.column("uuid");
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| MapName {
                name: name.to_string(),
                wwid: uuids
                    .get(i)
                    .map_or_else(|| name.to_string(), |u| u.to_string()),
            })
            .collect())
    }

    /// `show topology`, verbatim.
    pub fn topology_text(&mut self) -> Result<String, Error> {
        self.send("show topology")
    }

    /// `show map <map> topology`, verbatim.
    pub fn map_topology_text(&mut self, map: &str) -> Result<String, Error> {
        self.send(&format!("show map {} topology", quote(map)))
    }

    /// Every map, from the topology text (what stock mpathcount reads; fast).
    pub fn topology(&mut self) -> Result<Topology, Error> {
        let command = "show topology";
        parse_with(command, &self.send(command)?, parse::parse_topology)
    }

    /// Every map with every field multipathd knows. Read from `show topology` and two raw
    /// listings of the fields the topology leaves out, rather than from `show maps json`:
    /// the same facts in a seventh of the bytes (1024 maps: 0.6 MB against 3.2 MB), so the
    /// daemon holds its lock for less time and we parse less.
    pub fn snapshot(&mut self) -> Result<Topology, Error> {
        let maps_command = format!("show maps raw format {MAP_FIELDS}");
        Ok(Topology {
            maps: self.maps_with_fields("show topology", &maps_command)?,
        })
    }

    /// One map as [`Multipathd::snapshot`] sees it; `None` when multipathd has no such map.
    pub fn map_snapshot(&mut self, map: &str) -> Result<Option<Map>, Error> {
        let topology_command = format!("show map {} topology", quote(map));
        let maps_command = format!("show map {} raw format {MAP_FIELDS}", quote(map));
        match self.maps_with_fields(&topology_command, &maps_command) {
            Ok(maps) => Ok(maps.into_iter().next()),
            Err(Error::Failed { .. } | Error::DeviceNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The maps of a topology listing, completed from a raw maps listing and the raw paths
    /// listing. Sent together: we parse the topology while multipathd lists the rest.
    fn maps_with_fields(
        &mut self,
        topology_command: &str,
        maps_command: &str,
    ) -> Result<Vec<Map>, Error> {
        let paths_command = format!("show paths raw format {PATH_FIELDS}");
        let mut replies = self.pipeline(&[topology_command, maps_command, &paths_command])?;
        let text = replies.next_reply()?;
        let mut maps = parse_with(topology_command, &text, parse::parse_topology)?.maps;
        let fields = replies.next_reply()?;
        let paths = replies.next_reply()?;
        complete(&mut maps, &fields, &paths);
        Ok(maps)
    }

    /// `add map <wwid>`: assemble the map from the paths multipathd knows.
    pub fn add_map(&mut self, map: &str) -> Result<(), Error> {
        self.send(&format!("add map {}", quote(map))).map(drop)
    }

    /// `remove map <map>`: flush it. An open map is refused with [`Error::MapInUse`]
    /// (0.9.8+; older daemons only say `fail`).
    pub fn remove_map(&mut self, map: &str) -> Result<(), Error> {
        self.send(&format!("remove map {}", quote(map))).map(drop)
    }

    /// `add path <dev>`: start monitoring a path device.
    pub fn add_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("add path {}", quote(dev))).map(drop)
    }

    /// `remove path <dev>`: stop monitoring a path device.
    pub fn remove_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("remove path {}", quote(dev))).map(drop)
    }

    /// `fail path <dev>`: fail it in the kernel and keep the checker from reinstating it.
    pub fn fail_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("fail path {}", quote(dev))).map(drop)
    }

    /// `reinstate path <dev>`.
    pub fn reinstate_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("reinstate path {}", quote(dev)))
            .map(drop)
    }

    /// `reconfigure`: re-read the configuration (asynchronous since 0.6.1).
    pub fn reconfigure(&mut self) -> Result<(), Error> {
        self.send("reconfigure").map(drop)
    }
}

/// A map's name and WWID as `list maps` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapName {
    pub name: String,
    pub wwid: String,
}

fn parse_with<T>(
    command: &str,
    reply: &str,
    parser: fn(&str) -> Result<T, ParseError>,
) -> Result<T, Error> {
    parser(reply).map_err(|source| Error::Parse {
        command: command.to_string(),
        source,
    })
}

/// Quotes an argument that multipathd's tokenizer would otherwise split or cut
/// (spaces, `#`, `!`, braces, quotes); `""` is its escaped quote.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || "\"#!{}".contains(c)) {
        return arg.to_string();
    }
    format!("\"{}\"", arg.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::{Rows, fields, lines_by_key, quote};

    #[test]
    fn raw_lines_are_found_by_their_first_field_and_split_when_whole() {
        let text = "a\u{1f}b\u{1f}c\nshort\u{1f}row\n\nx\u{1f}\u{1f}z\r\nl\u{1f}a\u{1f}st";
        let index = lines_by_key(text, 4);
        let row = |key: &str| index.get(key).and_then(|l| fields::<3>(l));
        assert_eq!(row("a"), Some(["a", "b", "c"]));
        assert_eq!(
            row("x"),
            Some(["x", "", "z"]),
            "a CR before the newline is dropped"
        );
        assert_eq!(
            row("l"),
            Some(["l", "a", "st"]),
            "the last line needs no newline"
        );
        assert_eq!(row("short"), None, "two fields where three are due");
        assert_eq!(row("nobody"), None);
        assert_eq!(fields::<1>("ok"), Some(["ok"]));
        assert_eq!(fields::<2>("a\u{1f}b\u{1f}c"), None);
    }

    #[test]
    fn rows_are_taken_in_order_until_one_is_out_of_place() {
        let text = "m1\u{1f}x\nm2\u{1f}y\r\nm10\u{1f}z\nm3\u{1f}w";
        let mut rows = Rows::new(text, 4);
        assert_eq!(rows.get("m1"), Some("m1\u{1f}x"));
        assert_eq!(rows.get("m2"), Some("m2\u{1f}y"));
        assert!(rows.index.is_none(), "in order so far: nothing indexed");
        // `m1` is a prefix of the next line's key, which is not its key.
        assert_eq!(rows.get("m1"), Some("m1\u{1f}x"));
        assert!(rows.index.is_some());
        assert_eq!(rows.get("m3"), Some("m3\u{1f}w"));
        assert_eq!(rows.get("m10"), Some("m10\u{1f}z"));
        assert_eq!(rows.get("m4"), None);
        let mut rows = Rows::new("only", 1);
        assert_eq!(rows.get("only"), Some("only"));
        assert_eq!(
            rows.get("only"),
            Some("only"),
            "found again through the index"
        );
        assert_eq!(Rows::new("", 0).get("any"), None);
    }

    proptest::proptest! {
        #[test]
        fn fields_split_as_str_split_does(
            parts in proptest::collection::vec("[a-z0-9 :\\[\\]é]{0,20}", 0..14),
        ) {
            let line = parts.join("\u{1f}");
            let split: Vec<&str> = line.split('\u{1f}').collect();
            let want: Option<[&str; 10]> = split.clone().try_into().ok();
            proptest::prop_assert_eq!(fields::<10>(&line), want);
            let want: Option<[&str; 3]> = split.try_into().ok();
            proptest::prop_assert_eq!(fields::<3>(&line), want);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("3600a0b8"), "3600a0b8");
        assert_eq!(quote("%d %i"), "\"%d %i\"");
        assert_eq!(quote("a#b"), "\"a#b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote(""), "\"\"");
    }
}
