//! `show maps json` and `show map X json` (`multipath-facts.md` §3.5).
//!
//! The format has said "major 0, minor 1" since 0.6.2 while keys were added, so every key is
//! optional and unknown keys are ignored. Integers are read leniently (a number or a string
//! of digits).
//!
//! Two readers give the same answer. The first knows this schema as multipathd lays it out
//! (one member per line) and nothing else, and reads it line by line in well under half
//! of serde_json's time on a reply that is a third indentation (1024 maps make 3 MB);
//! anything it does not expect — escapes, other whitespace, another tool's JSON — goes to
//! serde_json. Both build the model through the same setters, and a property test holds
//! them to the same result.

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

/// The text of a string value; `None` for a number.
fn text(value: Field<'_>) -> Option<&str> {
    match value {
        Field::Text(t) => Some(t),
        Field::Int(_) => None,
    }
}

/// The scalar members of one kind of object, each with how it is set from its value
/// (`None` when the value has the wrong type), in the order multipathd 0.9 prints them
/// (`libmultipath/print.c`). Makes `$set`, which sets one member found by its key, and
/// `$in_order`, which reads members as long as they come in this order, checking each
/// line against the one key it must have: no key is looked up, and each is compared as a
/// constant (1024 maps make 90 000 member lines). It stops at the first line that is not
/// the member expected there and says where, for the general loop to go on from.
macro_rules! members {
    ($ty:ty, $set:ident, $in_order:ident, |$o:ident, $v:ident| {
        $($key:literal => $action:expr,)+
    }) => {
        fn $set($o: &mut $ty, key: &str, $v: Field<'_>) -> Option<()> {
            match key {
                $($key => $action,)+
                _ => {}
            }
            Some(())
        }

        fn $in_order(r: &mut layout::Reader<'_>, $o: &mut $ty) -> Option<layout::After> {
            let mut after = layout::After::Members;
            $(
                if !r.at_key($key) {
                    return Some(after);
                }
                let $v = r.value()?;
                $action;
                if !r.scalar_end()? {
                    return Some(layout::After::Close);
                }
                after = layout::After::More;
            )+
            Some(after)
        }
    };
}

members!(Map, set_map, map_in_order, |m, value| {
    "name" => m.name = CompactString::from(text(value)?),
    "uuid" => m.wwid = CompactString::from(text(value)?),
    "sysfs" => m.sysfs = some(text(value)?).filter(|s| s != "undef"),
    "failback" => m.failback = some(text(value)?),
    "queueing" => m.queueing = some(text(value)?),
    "paths" => m.usable_paths_reported = int(value)?,
    "write_prot" => m.write_prot = word(text(value)?, WriteProt::from_word),
    "dm_st" => m.dm_state = word(text(value)?, MapDmState::from_word),
    "features" => m.features = some(text(value)?),
    "hwhandler" => m.hwhandler = some(text(value)?),
    "action" => m.action = some(text(value)?),
    "path_faults" => m.path_faults = int(value)?,
    "vend" => m.vendor = defined(text(value)?),
    "prod" => m.product = defined(text(value)?),
    "rev" => m.revision = defined(text(value)?),
    // Counters we do not keep, but which must be numbers.
    "switch_grp" => int::<i64>(value).map(drop)?,
    "map_loads" => int::<i64>(value).map(drop)?,
    "total_q_time" => int::<i64>(value).map(drop)?,
    "q_timeouts" => int::<i64>(value).map(drop)?,
});

/// A map without a name is called by its WWID.
fn finish_map(m: &mut Map) {
    if m.name.is_empty() {
        m.name = m.wwid.clone();
    }
}

members!(PathGroup, set_group, group_in_order, |g, value| {
    "selector" => g.selector = some(text(value)?),
    "pri" => g.priority = int(value)?,
    "dm_st" => g.state = word(text(value)?, GroupState::from_word),
    "marginal_st" => g.marginal = word(text(value)?, Marginal::from_word),
    // multipathd numbers the groups in order; we keep them in order.
    "group" => int::<i64>(value).map(drop)?,
});

members!(Path, set_path, path_in_order, |p, value| {
    "dev" => p.dev = some(text(value)?).filter(|d| d != "-"),
    "dev_t" => p.dev_t = some(text(value)?).filter(|d| d != "#:#"),
    "dm_st" => p.dm_state = word(text(value)?, PathDmState::from_word),
    "dev_st" => p.dev_state = word(text(value)?, DevState::from_word),
    "chk_st" => p.checker_state = word(text(value)?, CheckerState::from_word),
    "checker" => p.checker = some(text(value)?),
    "pri" => p.priority = int(value)?,
    "host_wwnn" => p.host_wwnn = defined(text(value)?),
    "target_wwnn" => p.target_wwnn = defined(text(value)?),
    "host_wwpn" => p.host_wwpn = defined(text(value)?),
    "target_wwpn" => p.target_wwpn = defined(text(value)?),
    "host_adapter" => p.host_adapter = defined(text(value)?),
    "lun_hex" => p.lun_hex = some(text(value)?),
    "marginal_st" => p.marginal = word(text(value)?, Marginal::from_word),
});

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
    finish_map(&mut map);
    map
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
    //! A reader for `show maps json` as multipathd lays it out, straight into the model.
    //! multipathd prints its JSON with printf templates: one member, or one closing brace,
    //! per line (`"name" : "…",`, `"paths": [{`, `},{`, `}]`), never an escape. So this
    //! reader goes line by line and reads each line against those few shapes, which costs a
    //! fraction of reading the same bytes as free-form JSON (a reply of 1024 maps is 3 MB,
    //! a third of it indentation). Any other shape — other whitespace, escapes, values of
    //! unexpected types, trailing text — returns `None` and the caller reads the text with
    //! serde_json instead, so what is accepted here is always valid JSON that serde_json
    //! reads the same way (a property test holds the two to it).

    use super::super::FEW;
    use super::{
        Field, Layout, finish_map, group_in_order, map_in_order, path_in_order, set_group, set_map,
        set_path,
    };
    use crate::model::{Map, Path, PathGroup};
    use crate::scan;

    pub(super) fn read(text: &str) -> Option<Layout> {
        let mut r = Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
        };
        r.indent();
        if !r.eat(b'{') {
            return None;
        }
        r.end_line()?;
        let mut found = Layout {
            maps: None,
            map: None,
        };
        let tail = r.members(|r, key, value| match (key, value) {
            ("major_version", Value::Scalar(n)) => (n == Field::Int(0)).then_some(false),
            ("minor_version", Value::Scalar(_)) => Some(false),
            ("maps", Value::Objects) => {
                // A map takes three kilobytes here: room for all of them at once.
                let maps = found
                    .maps
                    .get_or_insert_with(|| Vec::with_capacity(r.text.len() / 2048));
                r.objects_into(maps, Reader::map)
            }
            ("maps", Value::Empty) => {
                found.maps.get_or_insert_with(Vec::new);
                Some(false)
            }
            ("map", Value::Object) => {
                let mut map = Map::default();
                let tail = r.map(&mut map)?;
                found.map = Some(map);
                tail.more_members()
            }
            _ => None,
        })?;
        if tail != Tail::End {
            return None;
        }
        if let Some(maps) = found.maps.as_mut() {
            for map in maps {
                finish_map(map);
            }
        }
        if let Some(map) = found.map.as_mut() {
            finish_map(map);
        }
        let rest = r.bytes.get(r.at..).unwrap_or_default();
        rest.iter().all(u8::is_ascii_whitespace).then_some(found)
    }

    /// What follows a member's key.
    #[derive(Clone, Copy, PartialEq)]
    enum Value<'a> {
        /// A string or an integer, on the member's line.
        Scalar(Field<'a>),
        /// `[{`: objects follow, one or more.
        Objects,
        /// `[]`.
        Empty,
        /// `{`: one object follows.
        Object,
    }

    /// Where the members read in order stopped.
    pub(super) enum After {
        /// At the object's closing line: the last member had no comma.
        Close,
        /// At the first member, which is not the one expected first.
        Members,
        /// After a comma: more members follow.
        More,
    }

    /// What follows an object's closing brace on its line.
    #[derive(Clone, Copy, PartialEq, Debug)]
    pub(super) enum Tail {
        /// `}`: the end of the object, the last member of its parent.
        End,
        /// `},`: the end of the object; its parent has more members.
        EndMore,
        /// `},{`: the next object of the array.
        NextObject,
        /// `}]`: the end of the array, the last member of its parent.
        EndArray,
        /// `}],`: the end of the array; its parent has more members.
        EndArrayMore,
    }

    impl Tail {
        /// After an object member: whether its parent has more members.
        fn more_members(self) -> Option<bool> {
            match self {
                Tail::End => Some(false),
                Tail::EndMore => Some(true),
                _ => None,
            }
        }
    }

    pub(super) struct Reader<'a> {
        text: &'a str,
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        #[inline(always)]
        fn indent(&mut self) {
            if let Some(rest) = self.bytes.get(self.at..) {
                self.at += scan::leading_spaces(rest);
            }
        }

        #[inline(always)]
        fn eat(&mut self, byte: u8) -> bool {
            let hit = self.bytes.get(self.at) == Some(&byte);
            self.at += usize::from(hit);
            hit
        }

        /// The end of a line: a newline, or the end of the text.
        #[inline(always)]
        fn end_line(&mut self) -> Option<()> {
            match self.bytes.get(self.at) {
                Some(b'\n') => {
                    self.at += 1;
                    Some(())
                }
                None => Some(()),
                Some(_) => None,
            }
        }

        /// A string without escapes.
        #[inline(always)]
        fn string(&mut self) -> Option<&'a str> {
            if !self.eat(b'"') {
                return None;
            }
            let start = self.at;
            let end = start + scan::string_end(self.bytes.get(start..)?)?;
            if self.bytes.get(end) != Some(&b'"') {
                return None;
            }
            self.at = end + 1;
            // The cuts lie next to an ASCII quote, so on character boundaries.
            let (head, _) = self.text.split_at_checked(end)?;
            head.split_at_checked(start).map(|(_, string)| string)
        }

        /// An integer, as JSON writes one (no `+`, no leading zero).
        #[inline(always)]
        fn int(&mut self) -> Option<i64> {
            let negative = self.eat(b'-');
            let digits = self.at;
            // Summed as read: eighteen digits cannot overflow, and more are refused
            // here (serde_json reads those).
            let mut n: i64 = 0;
            while let Some(d) = self.bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
                n = n * 10 + i64::from(d - b'0');
                self.at += 1;
                if self.at - digits > 18 {
                    return None;
                }
            }
            let count = self.at - digits;
            if count == 0 || (count > 1 && self.bytes.get(digits) == Some(&b'0')) {
                return None;
            }
            Some(if negative { -n } else { n })
        }

        /// The end of a scalar member's line: whether a comma says more members follow.
        #[inline(always)]
        pub(super) fn scalar_end(&mut self) -> Option<bool> {
            // `,` and the newline: one comparison for the common case.
            if self.bytes.get(self.at..self.at + 2) == Some(b",\n") {
                self.at += 2;
                return Some(true);
            }
            let more = self.eat(b',');
            self.end_line()?;
            Some(more)
        }

        /// The rest of a closing line, after its `}`.
        #[inline(always)]
        fn tail(&mut self) -> Option<Tail> {
            let tail = if self.eat(b',') {
                if self.eat(b'{') {
                    Tail::NextObject
                } else {
                    Tail::EndMore
                }
            } else if self.eat(b']') {
                if self.eat(b',') {
                    Tail::EndArrayMore
                } else {
                    Tail::EndArray
                }
            } else {
                Tail::End
            };
            self.end_line()?;
            Some(tail)
        }

        /// An object's members, up to and including its closing line, whose tail is
        /// returned. `member` reads a value: a container it reads whole, saying whether
        /// its parent has more members (for a scalar, the line says so).
        #[inline(always)]
        fn members(
            &mut self,
            member: impl FnMut(&mut Self, &'a str, Value<'a>) -> Option<bool>,
        ) -> Option<Tail> {
            self.indent();
            if self.eat(b'}') {
                return self.tail();
            }
            self.more_members(member)
        }

        /// Members after a comma: one at least, up to and including the closing line.
        #[inline(always)]
        fn more_members(
            &mut self,
            mut member: impl FnMut(&mut Self, &'a str, Value<'a>) -> Option<bool>,
        ) -> Option<Tail> {
            self.indent();
            loop {
                let key = self.string()?;
                // `" : "` is how nearly every member reads: one comparison for it.
                if self.bytes.get(self.at..self.at + 3) == Some(b" : ") {
                    self.at += 3;
                } else {
                    self.eat(b' ');
                    if !self.eat(b':') {
                        return None;
                    }
                    self.eat(b' ');
                }
                let more = match self.bytes.get(self.at)? {
                    b'[' => {
                        self.at += 1;
                        if self.eat(b'{') {
                            self.end_line()?;
                            member(self, key, Value::Objects)?
                        } else if self.eat(b']') {
                            member(self, key, Value::Empty)?;
                            let more = self.eat(b',');
                            self.end_line()?;
                            more
                        } else {
                            return None;
                        }
                    }
                    b'{' => {
                        self.at += 1;
                        self.end_line()?;
                        member(self, key, Value::Object)?
                    }
                    b'"' => {
                        let text = self.string()?;
                        member(self, key, Value::Scalar(Field::Text(text)))?;
                        self.scalar_end()?
                    }
                    _ => {
                        let n = self.int()?;
                        member(self, key, Value::Scalar(Field::Int(n)))?;
                        self.scalar_end()?
                    }
                };
                self.indent();
                if !more {
                    return if self.eat(b'}') { self.tail() } else { None };
                }
            }
        }

        /// The objects of an array whose `[{` was read: `},{` between them, `}]` after the
        /// last. Returns whether the array's parent has more members.
        #[inline(always)]
        fn objects(&mut self, mut object: impl FnMut(&mut Self) -> Option<Tail>) -> Option<bool> {
            loop {
                match object(self)? {
                    Tail::NextObject => {}
                    Tail::EndArray => return Some(false),
                    Tail::EndArrayMore => return Some(true),
                    Tail::End | Tail::EndMore => return None,
                }
            }
        }

        /// The objects of an array into `list`, each read by `read` where it will stay
        /// rather than built aside and moved; room for [`FEW`] at first.
        fn objects_into<T: Default>(
            &mut self,
            list: &mut Vec<T>,
            mut read: impl FnMut(&mut Self, &mut T) -> Option<Tail>,
        ) -> Option<bool> {
            list.reserve_exact(FEW);
            self.objects(|r| {
                list.push(T::default());
                read(r, list.last_mut()?)
            })
        }

        fn map(&mut self, map: &mut Map) -> Option<Tail> {
            let after = map_in_order(self, map)?;
            self.parent(
                after,
                map,
                set_map,
                "path_groups",
                |m| &mut m.groups,
                Self::group,
            )
        }

        fn group(&mut self, group: &mut PathGroup) -> Option<Tail> {
            let after = group_in_order(self, group)?;
            self.parent(
                after,
                group,
                set_group,
                "paths",
                |g| &mut g.paths,
                Self::path,
            )
        }

        /// The rest of an object with scalar members and one array of child objects
        /// under `array` (a map's groups, a group's paths), read into `children`.
        #[inline(always)]
        fn parent<T, C: Default>(
            &mut self,
            after: After,
            object: &mut T,
            set: impl Fn(&mut T, &str, Field<'a>) -> Option<()>,
            array: &str,
            children: impl Fn(&mut T) -> &mut Vec<C>,
            mut child: impl FnMut(&mut Self, &mut C) -> Option<Tail>,
        ) -> Option<Tail> {
            self.rest(after, |r, key, value| match value {
                Value::Objects if key == array => r.objects_into(children(object), &mut child),
                Value::Empty if key == array => Some(false),
                Value::Scalar(value) => set(object, key, value).map(|()| false),
                _ => None,
            })
        }

        fn path(&mut self, path: &mut Path) -> Option<Tail> {
            let after = path_in_order(self, path)?;
            self.rest(after, |_, key, value| match value {
                Value::Scalar(value) => set_path(path, key, value).map(|()| false),
                _ => None,
            })
        }

        /// The members left after those read in order, up to and including the closing
        /// line.
        #[inline(always)]
        fn rest(
            &mut self,
            after: After,
            member: impl FnMut(&mut Self, &'a str, Value<'a>) -> Option<bool>,
        ) -> Option<Tail> {
            match after {
                After::Close => self.close(),
                After::Members => self.members(member),
                After::More => self.more_members(member),
            }
        }

        /// Whether the next line is a member with the key `key` (`"key" : `), which it
        /// then steps over; otherwise nothing is read. Inlined where `key` is a literal,
        /// so the key is compared as a constant.
        #[inline(always)]
        pub(super) fn at_key(&mut self, key: &'static str) -> bool {
            self.indent();
            let Some(line) = self.bytes.get(self.at..) else {
                return false;
            };
            let after = 1 + key.len();
            let hit = line.first() == Some(&b'"')
                && line.get(1..after) == Some(key.as_bytes())
                && line.get(after..after + 4) == Some(b"\" : ");
            if hit {
                self.at += after + 4;
            }
            hit
        }

        /// A scalar value: a string or an integer.
        #[inline(always)]
        pub(super) fn value(&mut self) -> Option<Field<'a>> {
            Some(if self.bytes.get(self.at) == Some(&b'"') {
                Field::Text(self.string()?)
            } else {
                Field::Int(self.int()?)
            })
        }

        /// An object's closing line after its last member.
        pub(super) fn close(&mut self) -> Option<Tail> {
            self.indent();
            if self.eat(b'}') { self.tail() } else { None }
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
    fn other_layouts_go_to_serde_with_the_same_result() {
        let compact: String = CAPTURE.lines().map(str::trim).collect();
        assert!(layout::read(&compact).is_none());
        assert_eq!(
            parse_maps_json(&compact).unwrap(),
            parse_maps_json(CAPTURE).unwrap()
        );
        let (fast, slow) = both(r#"{"major_version": 0, "maps": []}"#);
        assert_eq!((fast, slow.map(|m| m.len())), (None, Some(0)));
    }

    #[test]
    fn the_fast_reader_takes_empty_lists_and_the_single_map_form() {
        let none = "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": []\n}\n";
        assert_eq!(both(none), (Some(vec![]), Some(vec![])));
        let bare = CAPTURE.replace(
            &CAPTURE[CAPTURE.find("\"paths\": [{").unwrap()
                ..CAPTURE.find("}]\n      },{").unwrap() + 2],
            "\"paths\": []",
        );
        let (fast, slow) = both(&bare);
        assert!(
            fast.as_ref()
                .is_some_and(|m| m[0].groups[0].paths.is_empty()),
            "{bare}"
        );
        assert_eq!(fast, slow);
        let one = CAPTURE
            .replace("\"maps\": [{", "\"map\":{")
            .replace("\n   }]\n}", "\n   }\n}");
        let map = layout::read(&one)
            .and_then(|l| l.map)
            .expect("the single map form");
        assert_eq!(Some(map), document(&one).unwrap().map);
    }

    #[test]
    fn members_in_another_order_or_other_members_are_read_all_the_same() {
        let swapped = CAPTURE.replacen(
            "\"dev\" : \"sdb\",\n            \"dev_t\" : \"8:16\",",
            "\"dev_t\" : \"8:16\",\n            \"dev\" : \"sdb\",",
            1,
        );
        let extra = CAPTURE.replacen(
            "\"checker\" : \"tur\",",
            "\"checker\" : \"tur\",\n            \"new_in_0_10\" : 7,",
            1,
        );
        let group_extra = CAPTURE.replacen(
            "\"group\" : 1,",
            "\"group\" : 1,\n         \"new\" : \"x\",",
            1,
        );
        let map_swapped = CAPTURE.replacen(
            "\"failback\" : \"-\",\n      \"queueing\" : \"-\",",
            "\"queueing\" : \"-\",\n      \"failback\" : \"-\",",
            1,
        );
        for text in [swapped, extra, group_extra, map_swapped] {
            assert_ne!(text, CAPTURE);
            let (fast, slow) = both(&text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, slow);
            assert_eq!(fast, both(CAPTURE).0);
        }
    }

    #[test]
    fn the_fast_reader_declines_what_it_does_not_know() {
        let declined = |text: String| assert!(layout::read(&text).is_none(), "{text}");
        declined(CAPTURE.replace("\"paths\" : 2", "\"paths\" : [1]"));
        declined(CAPTURE.replace("\"sysfs\" : \"dm-0\"", "\"sysfs\" : {}"));
        declined(CAPTURE.replace("\"tur\"", "\"t\\u0075r\""));
        declined(CAPTURE.replace("\"major_version\": 0", "\"major_version\": 1"));
        declined(CAPTURE.replace("\"normal\"\n", "\"normal\",\n"));
        // A trailing comma after a member the in-order reading does not know.
        declined(CAPTURE.replace("\"normal\"\n", "\"normal\",\n\"new\" : 1,\n"));
        declined(CAPTURE.replace("\"rw\",", "\"rw\""));
        declined(CAPTURE.replace("\n", "\r\n"));
        declined(CAPTURE[..CAPTURE.len() - 3].to_string());
        declined(format!("{CAPTURE}trailing"));
    }

    proptest::proptest! {
        #[test]
        fn both_readers_agree_on_damaged_text(
            at in 0usize..2400,
            garbage in "[ -~\n\t\u{1}]{0,8}",
        ) {
            let mut text = CAPTURE.to_string();
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            text.insert_str(at, &garbage);
            // What the fast reader takes, serde_json takes too, the same way: it never
            // reads anything that is not JSON.
            let (fast, slow) = both(&text);
            if fast.is_some() {
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
