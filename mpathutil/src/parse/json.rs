//! `show maps json` and `show map X json` (`multipath-facts.md` §3.5).
//!
//! The format has said "major 0, minor 1" since 0.6.2 while keys were added, so every key is
//! optional and unknown keys are ignored. Integers are read leniently (a number or a string
//! of digits).
//!
//! Two readers give the same answer. The first knows this schema and nothing else and reads
//! it in one pass over the bytes, several times faster than serde_json on a reply that is
//! half indentation (1024 maps make 3 MB); anything it does not expect — escapes, other
//! shapes, another tool's JSON — goes to serde_json. Both build the model through the same
//! setters, and a property test holds them to the same result.

use super::{ParseError, excerpt};
use crate::model::{
    CheckerState, CompactString, DevState, GroupState, Map, MapDmState, Marginal, Path,
    PathDmState, PathGroup, Topology, WriteProt,
};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::borrow::Cow;

const SOURCE: &str = "show maps json";

#[derive(Deserialize)]
struct Document {
    major_version: Option<Int>,
    #[serde(default, deserialize_with = "maps")]
    maps: Option<Vec<Map>>,
    #[serde(default, deserialize_with = "one_map")]
    map: Option<Map>,
}

// Strings are `Cow` fields with `borrow`, the one form serde hands out borrowed: they point
// into the reply unless multipathd ever escapes one. A missing key reads as empty.

#[derive(Deserialize, Default)]
struct JsonMap<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    uuid: Cow<'a, str>,
    #[serde(borrow, default)]
    sysfs: Cow<'a, str>,
    #[serde(borrow, default)]
    failback: Cow<'a, str>,
    #[serde(borrow, default)]
    queueing: Cow<'a, str>,
    paths: Option<Int>,
    #[serde(borrow, default)]
    write_prot: Cow<'a, str>,
    #[serde(borrow, default)]
    dm_st: Cow<'a, str>,
    #[serde(borrow, default)]
    features: Cow<'a, str>,
    #[serde(borrow, default)]
    hwhandler: Cow<'a, str>,
    #[serde(borrow, default)]
    action: Cow<'a, str>,
    path_faults: Option<Int>,
    #[serde(borrow, default)]
    vend: Cow<'a, str>,
    #[serde(borrow, default)]
    prod: Cow<'a, str>,
    #[serde(borrow, default)]
    rev: Cow<'a, str>,
    #[serde(default, deserialize_with = "groups")]
    path_groups: Vec<PathGroup>,
}

#[derive(Deserialize, Default)]
struct JsonGroup<'a> {
    #[serde(borrow, default)]
    selector: Cow<'a, str>,
    pri: Option<Int>,
    #[serde(borrow, default)]
    dm_st: Cow<'a, str>,
    #[serde(borrow, default)]
    marginal_st: Cow<'a, str>,
    #[serde(default, deserialize_with = "paths")]
    paths: Vec<Path>,
}

#[derive(Deserialize, Default)]
struct JsonPath<'a> {
    #[serde(borrow, default)]
    dev: Cow<'a, str>,
    #[serde(borrow, default)]
    dev_t: Cow<'a, str>,
    #[serde(borrow, default)]
    dm_st: Cow<'a, str>,
    #[serde(borrow, default)]
    dev_st: Cow<'a, str>,
    #[serde(borrow, default)]
    chk_st: Cow<'a, str>,
    #[serde(borrow, default)]
    checker: Cow<'a, str>,
    pri: Option<Int>,
    #[serde(borrow, default)]
    host_wwnn: Cow<'a, str>,
    #[serde(borrow, default)]
    target_wwnn: Cow<'a, str>,
    #[serde(borrow, default)]
    host_wwpn: Cow<'a, str>,
    #[serde(borrow, default)]
    target_wwpn: Cow<'a, str>,
    #[serde(borrow, default)]
    host_adapter: Cow<'a, str>,
    #[serde(borrow, default)]
    lun_hex: Cow<'a, str>,
    #[serde(borrow, default)]
    marginal_st: Cow<'a, str>,
}

/// Reads a JSON array element by element, turning each into its model type at once, so no
/// array of intermediate records is ever built.
fn each<'de, D, J, T>(d: D, into: fn(J) -> T) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    J: Deserialize<'de>,
{
    struct Visitor<J, T>(fn(J) -> T);
    impl<'de, J: Deserialize<'de>, T> de::Visitor<'de> for Visitor<J, T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(item) = seq.next_element::<J>()? {
                out.push((self.0)(item));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Visitor(into))
}

fn maps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Map>>, D::Error> {
    each(d, into_map).map(Some)
}

fn one_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Map>, D::Error> {
    JsonMap::deserialize(d).map(|m| Some(into_map(m)))
}

fn groups<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathGroup>, D::Error> {
    each(d, into_group)
}

fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Path>, D::Error> {
    each(d, into_path)
}

/// An integer given as a JSON number or as a string of digits.
#[derive(Clone, Copy)]
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a string of digits")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::custom(format!("not an integer: {v:?}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Parses `show maps json`. An empty listing (`ok`) is an empty topology.
pub fn parse_maps_json(text: &str) -> Result<Topology, ParseError> {
    if super::is_empty_listing(text) {
        return Ok(Topology::default());
    }
    if let Some(Layout {
        maps: Some(maps), ..
    }) = layout::read(text)
    {
        return Ok(Topology { maps });
    }
    let maps = document(text)?
        .maps
        .ok_or_else(|| ParseError::new(SOURCE, None, "no \"maps\" array in the reply"))?;
    Ok(Topology { maps })
}

/// Parses `show map X json`.
pub fn parse_map_json(text: &str) -> Result<Map, ParseError> {
    if let Some(Layout { map: Some(map), .. }) = layout::read(text) {
        return Ok(map);
    }
    document(text)?
        .map
        .ok_or_else(|| ParseError::new(SOURCE, None, "no \"map\" object in the reply"))
}

fn document(text: &str) -> Result<Document, ParseError> {
    let doc: Document = serde_json::from_str(text).map_err(|e| {
        let line = e.line();
        let quoted = text
            .lines()
            .nth(line.saturating_sub(1))
            .map(excerpt)
            .unwrap_or_default();
        ParseError::new(SOURCE, Some(line), format!("{e} (at {quoted:?})"))
    })?;
    match doc.major_version {
        Some(Int(0)) | None => Ok(doc),
        Some(Int(other)) => Err(ParseError::new(
            SOURCE,
            None,
            format!("JSON major_version {other} is not supported (expected 0)"),
        )),
    }
}

// Both readers hand every `"key" : value` to these setters, so they build the same model.

/// A value as the readers found it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field<'a> {
    Text(&'a str),
    Int(i64),
}

use super::{defined, known as some};

fn word<T>(text: &str, from_word: fn(&str) -> T) -> Option<T> {
    (!text.is_empty()).then(|| from_word(text))
}

/// An integer from a number, or leniently from a string of digits; `None` if neither.
fn int<T: TryFrom<i64>>(value: Field<'_>) -> Option<Option<T>> {
    let n = match value {
        Field::Int(n) => n,
        Field::Text(t) => t.trim().parse().ok()?,
    };
    Some(T::try_from(n).ok())
}

/// Sets one field of a map; `None` when the value has the wrong type for the key.
fn set_map(m: &mut Map, key: &str, value: Field<'_>) -> Option<()> {
    let text = || match value {
        Field::Text(t) => Some(t),
        Field::Int(_) => None,
    };
    match key {
        "paths" => m.usable_paths_reported = int(value)?,
        "path_faults" => m.path_faults = int(value)?,
        "switch_grp" | "map_loads" | "total_q_time" | "q_timeouts" => {
            int::<i64>(value)?;
        }
        "name" => m.name = CompactString::from(text()?),
        "uuid" => m.wwid = CompactString::from(text()?),
        "sysfs" => m.sysfs = some(text()?).filter(|s| s != "undef"),
        "failback" => m.failback = some(text()?),
        "queueing" => m.queueing = some(text()?),
        "write_prot" => m.write_prot = word(text()?, WriteProt::from_word),
        "dm_st" => m.dm_state = word(text()?, MapDmState::from_word),
        "features" => m.features = some(text()?),
        "hwhandler" => m.hwhandler = some(text()?),
        "action" => m.action = some(text()?),
        "vend" => m.vendor = defined(text()?),
        "prod" => m.product = defined(text()?),
        "rev" => m.revision = defined(text()?),
        _ => {}
    }
    Some(())
}

/// A map without a name is called by its WWID.
fn finish_map(mut m: Map) -> Map {
    if m.name.is_empty() {
        m.name = m.wwid.clone();
    }
    m
}

fn set_group(g: &mut PathGroup, key: &str, value: Field<'_>) -> Option<()> {
    let text = || match value {
        Field::Text(t) => Some(t),
        Field::Int(_) => None,
    };
    match key {
        "pri" => g.priority = int(value)?,
        "group" => {
            int::<i64>(value)?;
        }
        "selector" => g.selector = some(text()?),
        "dm_st" => g.state = word(text()?, GroupState::from_word),
        "marginal_st" => g.marginal = word(text()?, Marginal::from_word),
        _ => {}
    }
    Some(())
}

fn set_path(p: &mut Path, key: &str, value: Field<'_>) -> Option<()> {
    let text = || match value {
        Field::Text(t) => Some(t),
        Field::Int(_) => None,
    };
    match key {
        "pri" => p.priority = int(value)?,
        "dev" => p.dev = some(text()?).filter(|d| d != "-"),
        "dev_t" => p.dev_t = some(text()?).filter(|d| d != "#:#"),
        "dm_st" => p.dm_state = word(text()?, PathDmState::from_word),
        "dev_st" => p.dev_state = word(text()?, DevState::from_word),
        "chk_st" => p.checker_state = word(text()?, CheckerState::from_word),
        "checker" => p.checker = some(text()?),
        "host_wwnn" => p.host_wwnn = defined(text()?),
        "target_wwnn" => p.target_wwnn = defined(text()?),
        "host_wwpn" => p.host_wwpn = defined(text()?),
        "target_wwpn" => p.target_wwpn = defined(text()?),
        "host_adapter" => p.host_adapter = defined(text()?),
        "lun_hex" => p.lun_hex = some(text()?),
        "marginal_st" => p.marginal = word(text()?, Marginal::from_word),
        _ => {}
    }
    Some(())
}

fn into_map(m: JsonMap<'_>) -> Map {
    let mut map = Map {
        groups: m.path_groups,
        ..Map::default()
    };
    for (key, text) in [
        ("name", &m.name),
        ("uuid", &m.uuid),
        ("sysfs", &m.sysfs),
        ("failback", &m.failback),
        ("queueing", &m.queueing),
        ("write_prot", &m.write_prot),
        ("dm_st", &m.dm_st),
        ("features", &m.features),
        ("hwhandler", &m.hwhandler),
        ("action", &m.action),
        ("vend", &m.vend),
        ("prod", &m.prod),
        ("rev", &m.rev),
    ] {
        set_map(&mut map, key, Field::Text(text));
    }
    for (key, n) in [("paths", m.paths), ("path_faults", m.path_faults)] {
        if let Some(Int(n)) = n {
            set_map(&mut map, key, Field::Int(n));
        }
    }
    finish_map(map)
}

fn into_group(g: JsonGroup<'_>) -> PathGroup {
    let mut group = PathGroup {
        paths: g.paths,
        ..PathGroup::default()
    };
    for (key, text) in [
        ("selector", &g.selector),
        ("dm_st", &g.dm_st),
        ("marginal_st", &g.marginal_st),
    ] {
        set_group(&mut group, key, Field::Text(text));
    }
    if let Some(Int(n)) = g.pri {
        set_group(&mut group, "pri", Field::Int(n));
    }
    group
}

fn into_path(p: JsonPath<'_>) -> Path {
    let mut path = Path::default();
    for (key, text) in [
        ("dev", &p.dev),
        ("dev_t", &p.dev_t),
        ("dm_st", &p.dm_st),
        ("dev_st", &p.dev_st),
        ("chk_st", &p.chk_st),
        ("checker", &p.checker),
        ("host_wwnn", &p.host_wwnn),
        ("target_wwnn", &p.target_wwnn),
        ("host_wwpn", &p.host_wwpn),
        ("target_wwpn", &p.target_wwpn),
        ("host_adapter", &p.host_adapter),
        ("lun_hex", &p.lun_hex),
        ("marginal_st", &p.marginal_st),
    ] {
        set_path(&mut path, key, Field::Text(text));
    }
    if let Some(Int(n)) = p.pri {
        set_path(&mut path, "pri", Field::Int(n));
    }
    path
}

/// What the layout reader found: the `maps` array or the single `map`.
struct Layout {
    maps: Option<Vec<Map>>,
    map: Option<Map>,
}

mod layout {
    //! A reader for the JSON multipathd prints, straight into the model: recursive descent
    //! over bytes, for this schema only. It returns `None` — and the caller falls back to
    //! serde_json — for anything else: escapes (multipathd never writes them, so a
    //! backslash means someone else's JSON), values of unexpected types, trailing text.

    use super::{Field, Layout, finish_map, set_group, set_map, set_path};
    use crate::model::{Map, Path, PathGroup};

    pub(super) fn read(text: &str) -> Option<Layout> {
        let mut s = Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
        };
        let mut found = Layout {
            maps: None,
            map: None,
        };
        s.object(|s, key| match key {
            "major_version" => (s.field()? == Field::Int(0)).then_some(()),
            "minor_version" => s.field().map(drop),
            "maps" => {
                // A map takes half a kilobyte at the least: room for all of them at once,
                // so the list is never moved while it grows.
                let maps = found
                    .maps
                    .get_or_insert_with(|| Vec::with_capacity(text.len() / 512));
                s.array(|s| s.map().map(|m| maps.push(m)))
            }
            "map" => s.map().map(|m| found.map = Some(m)),
            _ => None,
        })?;
        s.blank();
        (s.at == s.bytes.len()).then_some(found)
    }

    struct Scanner<'a> {
        text: &'a str,
        bytes: &'a [u8],
        at: usize,
    }

    const SPACES: u64 = u64::from_ne_bytes(*b"        ");
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// Eight bytes from `at`, if there are eight.
    #[inline(always)]
    fn word(bytes: &[u8], at: usize) -> Option<u64> {
        bytes
            .get(at..)?
            .first_chunk::<8>()
            .map(|chunk| u64::from_le_bytes(*chunk))
    }

    /// The high bit set in each byte of `w` equal to `c`, exact up to the first one.
    fn bytes_equal(w: u64, c: u8) -> u64 {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGHS
    }

    /// The first `"` or `\` from `at`, eight bytes at a time: strings are most of the text.
    #[inline(always)]
    fn quote_or_backslash(bytes: &[u8], mut at: usize) -> Option<usize> {
        while let Some(w) = word(bytes, at) {
            let found = bytes_equal(w, b'"') | bytes_equal(w, b'\\');
            if found != 0 {
                return Some(at + (found.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        bytes
            .get(at..)?
            .iter()
            .position(|b| *b == b'"' || *b == b'\\')
            .map(|n| at + n)
    }

    impl<'a> Scanner<'a> {
        /// Skips whitespace. Indentation is half of multipathd's JSON: runs of spaces are
        /// crossed eight bytes at a time (the first non-space byte of a word is the first
        /// non-zero byte of the word XOR eight spaces).
        #[inline(always)]
        fn blank(&mut self) {
            while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                match word(self.bytes, self.at) {
                    Some(w) if w == SPACES => self.at += 8,
                    Some(w) => {
                        let spaces = ((w ^ SPACES).trailing_zeros() / 8) as usize;
                        self.at += spaces.max(1);
                    }
                    None => self.at += 1,
                }
            }
        }

        /// The next non-blank byte, consumed if it is `want`.
        #[inline(always)]
        fn eat(&mut self, want: u8) -> bool {
            self.blank();
            let hit = self.bytes.get(self.at) == Some(&want);
            if hit {
                self.at += 1;
            }
            hit
        }

        /// The next non-blank byte, consumed.
        #[inline(always)]
        fn next_after_blank(&mut self) -> Option<u8> {
            self.blank();
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            Some(byte)
        }

        /// `{ "key": value, … }`; `member` reads each value.
        fn object(
            &mut self,
            mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
        ) -> Option<()> {
            if !self.eat(b'{') {
                return None;
            }
            if self.eat(b'}') {
                return Some(());
            }
            loop {
                self.blank();
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                self.blank();
                member(self, key)?;
                match self.next_after_blank()? {
                    b'}' => return Some(()),
                    b',' => {}
                    _ => return None,
                }
            }
        }

        /// `[ element, … ]`.
        fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
            if !self.eat(b'[') {
                return None;
            }
            if self.eat(b']') {
                return Some(());
            }
            loop {
                element(self)?;
                match self.next_after_blank()? {
                    b']' => return Some(()),
                    b',' => {}
                    _ => return None,
                }
            }
        }

        /// A string without escapes.
        #[inline(always)]
        fn string(&mut self) -> Option<&'a str> {
            if self.bytes.get(self.at) != Some(&b'"') {
                return None;
            }
            let start = self.at + 1;
            let end = quote_or_backslash(self.bytes, start)?;
            if self.bytes[end] != b'"' {
                return None;
            }
            self.at = end + 1;
            // Both cuts sit next to an ASCII quote, so on character boundaries.
            self.text.get(start..end)
        }

        /// A string or an integer.
        #[inline(always)]
        fn field(&mut self) -> Option<Field<'a>> {
            if self.bytes.get(self.at) == Some(&b'"') {
                return self.string().map(Field::Text);
            }
            let start = self.at;
            if self.bytes.get(self.at) == Some(&b'-') {
                self.at += 1;
            }
            while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                self.at += 1;
            }
            self.text.get(start..self.at)?.parse().ok().map(Field::Int)
        }

        fn map(&mut self) -> Option<Map> {
            let mut map = Map::default();
            self.object(|s, key| match key {
                "path_groups" => s.array(|s| s.group().map(|g| map.groups.push(g))),
                _ => set_map(&mut map, key, s.field()?),
            })?;
            Some(finish_map(map))
        }

        fn group(&mut self) -> Option<PathGroup> {
            let mut group = PathGroup::default();
            self.object(|s, key| match key {
                "paths" => s.array(|s| s.path().map(|p| group.paths.push(p))),
                _ => set_group(&mut group, key, s.field()?),
            })?;
            Some(group)
        }

        fn path(&mut self) -> Option<Path> {
            let mut path = Path::default();
            self.object(|s, key| set_path(&mut path, key, s.field()?))?;
            Some(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_ints_missing_keys_and_unknown_keys() {
        let t = parse_maps_json(
            r#"{"major_version": 0, "minor_version": 1, "maps": [{
                "name": "m", "uuid": "3600", "paths": "2", "brand_new_key": [1, 2],
                "path_groups": [{"pri": -1, "paths": [{"dev": "sda", "pri": "50"}]}]
            }]}"#,
        )
        .unwrap();
        let m = &t.maps[0];
        assert_eq!(m.usable_paths_reported, Some(2));
        assert_eq!(m.groups[0].priority, Some(-1));
        assert_eq!(m.groups[0].paths[0].priority, Some(50));
        assert_eq!(m.groups[0].paths[0].checker_state, None);
    }

    const CAPTURE: &str = include_str!("../../tests/fixtures/realstack/a-initial.maps.json");
    const ISCSI: &str = include_str!("../../tests/fixtures/iscsi-one-map.maps.json");

    /// Both readers on one text: the layout reader must take multipathd's own output, and
    /// agree with serde_json whenever both read it.
    fn both(text: &str) -> (Option<Vec<Map>>, Option<Vec<Map>>) {
        let fast = layout::read(text).and_then(|l| l.maps);
        let slow = document(text).ok().and_then(|d| d.maps);
        (fast, slow)
    }

    /// The capture with its map repeated `n` times under different names.
    fn many(n: usize) -> String {
        let start = CAPTURE.find("[{").unwrap() + 1;
        let end = CAPTURE.rfind("}]").unwrap() + 1;
        let object = &CAPTURE[start..end];
        let maps: Vec<String> = (0..n)
            .map(|i| object.replace("35001405aabbccdd1", &format!("3500140500000{i:04}")))
            .collect();
        format!("{}{}{}", &CAPTURE[..start], maps.join(","), &CAPTURE[end..])
    }

    #[test]
    fn the_fast_reader_takes_multipathd_output_and_agrees_with_serde() {
        for text in [CAPTURE.to_string(), ISCSI.to_string(), many(5)] {
            let (fast, slow) = both(&text);
            assert!(
                fast.is_some(),
                "the layout reader refused multipathd's own layout"
            );
            assert_eq!(fast, slow);
        }
        let many = many(3);
        let (fast, _) = both(&many);
        assert_eq!(fast.unwrap().len(), 3);
    }

    #[test]
    fn the_fast_reader_takes_any_whitespace() {
        let compact: String = CAPTURE.lines().map(str::trim).collect();
        let (fast, slow) = both(&compact);
        assert!(fast.is_some());
        assert_eq!(fast, slow);
        assert_eq!(
            layout::read(r#"{"major_version": 0, "maps": []}"#)
                .unwrap()
                .maps,
            Some(vec![])
        );
    }

    #[test]
    fn the_fast_reader_declines_what_it_does_not_know() {
        let declined = |text: String| assert!(layout::read(&text).is_none(), "{text}");
        declined(CAPTURE.replace("\"paths\" : 2", "\"paths\" : [1]"));
        declined(CAPTURE.replace("\"sysfs\" : \"dm-0\"", "\"sysfs\" : {}"));
        declined(CAPTURE.replace("\"tur\"", "\"t\\u0075r\""));
        declined(CAPTURE.replace("\"major_version\": 0", "\"major_version\": 1"));
        declined(CAPTURE[..CAPTURE.len() - 3].to_string());
        declined(format!("{CAPTURE}trailing"));
    }

    proptest::proptest! {
        #[test]
        fn both_readers_agree_on_damaged_text(at in 0usize..2400, garbage in "[ -~\n]{0,8}") {
            let mut text = CAPTURE.to_string();
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            text.insert_str(at, &garbage);
            if let (Some(fast), Some(slow)) = both(&text) {
                proptest::prop_assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn escaped_strings_are_read_too() {
        let t = parse_maps_json(
            r#"{"maps": [{"uuid": "3600", "prod": "LOGICAL \"VOL\"", "path_groups": []}]}"#,
        )
        .unwrap();
        assert_eq!(t.maps[0].product.as_deref(), Some("LOGICAL \"VOL\""));
        assert_eq!(t.maps[0].name, "3600", "no name: the WWID");
    }

    #[test]
    fn single_map_form() {
        let m = parse_map_json(
            r#"{"major_version": 0, "minor_version": 1, "map":{"name" : "a", "uuid" : "b", "path_groups": []}}"#,
        )
        .unwrap();
        assert_eq!((m.name.as_str(), m.wwid.as_str()), ("a", "b"));
    }

    #[test]
    fn future_major_version_and_garbage_are_errors() {
        let err = parse_maps_json(r#"{"major_version": 1, "maps": []}"#).unwrap_err();
        assert!(err.detail.contains("major_version 1"));
        let err = parse_maps_json("{\n\"maps\": [\n{\"name\": \"a\" \"uuid\": 1}]}").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(parse_maps_json(r#"{"major_version": 0}"#).is_err());
        assert_eq!(parse_maps_json("ok\n").unwrap(), Topology::default());
    }
}
