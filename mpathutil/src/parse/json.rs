//! `show maps json` and `show map X json` (`multipath-facts.md` §3.5), read with serde_json.
//!
//! The format has said "major 0, minor 1" since 0.6.2 while keys were added (0.4.9-xs has
//! no `marginal_st` and no `lun_hex`), so every key is optional and unknown keys are
//! ignored. Integers are read leniently: a number or a string of digits.
//!
//! The wire records below are the schema as multipathd prints it; [`Map`], [`PathGroup`]
//! and [`Path`] are what we make of it (`undef`, `-` and `##` mean "no value").

use super::{ParseError, defined, excerpt, known};
use crate::model::{
    CheckerState, DevState, GroupState, Map, MapDmState, Marginal, Path, PathDmState, PathGroup,
    Topology, WriteProt,
};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::borrow::Cow;

const SOURCE: &str = "show maps json";

/// A `show maps json` or `show map X json` reply as multipathd prints it, for a reader
/// other than [`parse_maps_json`] (a benchmark measures other JSON crates on it).
#[derive(Deserialize)]
pub struct Document<'a> {
    major_version: Option<Int>,
    #[serde(borrow, default)]
    maps: Option<Vec<JsonMap<'a>>>,
    #[serde(borrow, default)]
    map: Option<JsonMap<'a>>,
}

// Strings are `Cow` with `borrow`, the one form serde hands out borrowed: they point into
// the reply unless multipathd ever escapes one. A missing key reads as empty.

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonMap<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    uuid: Cow<'a, str>,
    #[serde(borrow)]
    sysfs: Cow<'a, str>,
    #[serde(borrow)]
    failback: Cow<'a, str>,
    #[serde(borrow)]
    queueing: Cow<'a, str>,
    paths: Option<Int>,
    #[serde(borrow)]
    write_prot: Cow<'a, str>,
    #[serde(borrow)]
    dm_st: Cow<'a, str>,
    #[serde(borrow)]
    features: Cow<'a, str>,
    #[serde(borrow)]
    hwhandler: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    path_faults: Option<Int>,
    #[serde(borrow)]
    vend: Cow<'a, str>,
    #[serde(borrow)]
    prod: Cow<'a, str>,
    #[serde(borrow)]
    rev: Cow<'a, str>,
    #[serde(borrow)]
    path_groups: Vec<JsonGroup<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonGroup<'a> {
    #[serde(borrow)]
    selector: Cow<'a, str>,
    pri: Option<Int>,
    #[serde(borrow)]
    dm_st: Cow<'a, str>,
    #[serde(borrow)]
    marginal_st: Cow<'a, str>,
    #[serde(borrow)]
    paths: Vec<JsonPath<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonPath<'a> {
    #[serde(borrow)]
    dev: Cow<'a, str>,
    #[serde(borrow)]
    dev_t: Cow<'a, str>,
    #[serde(borrow)]
    dm_st: Cow<'a, str>,
    #[serde(borrow)]
    dev_st: Cow<'a, str>,
    #[serde(borrow)]
    chk_st: Cow<'a, str>,
    #[serde(borrow)]
    checker: Cow<'a, str>,
    pri: Option<Int>,
    #[serde(borrow)]
    host_wwnn: Cow<'a, str>,
    #[serde(borrow)]
    target_wwnn: Cow<'a, str>,
    #[serde(borrow)]
    host_wwpn: Cow<'a, str>,
    #[serde(borrow)]
    target_wwpn: Cow<'a, str>,
    #[serde(borrow)]
    host_adapter: Cow<'a, str>,
    #[serde(borrow)]
    lun_hex: Cow<'a, str>,
    #[serde(borrow)]
    marginal_st: Cow<'a, str>,
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
    document(text)?.into_topology()
}

impl Document<'_> {
    /// The maps of a `show maps json` reply.
    pub fn into_topology(self) -> Result<Topology, ParseError> {
        let maps = self
            .maps
            .ok_or_else(|| ParseError::new(SOURCE, None, "no \"maps\" array in the reply"))?;
        Ok(Topology {
            maps: maps.into_iter().map(into_map).collect(),
        })
    }
}

/// Parses `show map X json`.
pub fn parse_map_json(text: &str) -> Result<Map, ParseError> {
    document(text)?
        .map
        .map(into_map)
        .ok_or_else(|| ParseError::new(SOURCE, None, "no \"map\" object in the reply"))
}

fn document(text: &str) -> Result<Document<'_>, ParseError> {
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

/// A state word, or `None` when none was printed.
fn word<T>(text: &str, from_word: fn(&str) -> T) -> Option<T> {
    (!text.is_empty()).then(|| from_word(text))
}

fn int<T: TryFrom<i64>>(value: Option<Int>) -> Option<T> {
    value.and_then(|Int(n)| T::try_from(n).ok())
}

fn into_map(m: JsonMap<'_>) -> Map {
    let wwid = known(&m.uuid).unwrap_or_default();
    Map {
        // A map without a name is called by its WWID.
        name: known(&m.name).unwrap_or_else(|| wwid.clone()),
        wwid,
        sysfs: known(&m.sysfs).filter(|s| s != "undef"),
        // 0.4.9 prints vendor and product space-padded, as sysfs has them.
        vendor: defined(m.vend.trim()),
        product: defined(m.prod.trim()),
        revision: defined(m.rev.trim()),
        size: None,
        features: known(&m.features),
        hwhandler: known(&m.hwhandler),
        write_prot: word(&m.write_prot, WriteProt::from_word),
        dm_state: word(&m.dm_st, MapDmState::from_word),
        queueing: known(&m.queueing),
        failback: known(&m.failback),
        action: known(&m.action),
        usable_paths_reported: int(m.paths),
        path_faults: int(m.path_faults),
        groups: m.path_groups.into_iter().map(into_group).collect(),
    }
}

fn into_group(g: JsonGroup<'_>) -> PathGroup {
    PathGroup {
        selector: known(&g.selector),
        priority: int(g.pri),
        state: word(&g.dm_st, GroupState::from_word),
        marginal: word(&g.marginal_st, Marginal::from_word),
        paths: g.paths.into_iter().map(into_path).collect(),
    }
}

fn into_path(p: JsonPath<'_>) -> Path {
    Path {
        hcil: None,
        dev: known(&p.dev).filter(|d| d != "-"),
        dev_t: known(&p.dev_t).filter(|d| d != "#:#"),
        dm_state: word(&p.dm_st, PathDmState::from_word),
        checker_state: word(&p.chk_st, CheckerState::from_word),
        dev_state: word(&p.dev_st, DevState::from_word),
        checker: known(&p.checker),
        priority: int(p.pri),
        host_wwnn: defined(&p.host_wwnn),
        target_wwnn: defined(&p.target_wwnn),
        host_wwpn: defined(&p.host_wwpn),
        target_wwpn: defined(&p.target_wwpn),
        host_adapter: defined(&p.host_adapter),
        lun_hex: known(&p.lun_hex),
        marginal: word(&p.marginal_st, Marginal::from_word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unknown_keys_and_digit_strings() {
        let text = r#"{"major_version": 0, "minor_version": 1, "maps": [
            {"uuid": "3600a", "paths": "2", "novel": {"nested": [1, 2]},
             "path_groups": [{"pri": 50, "paths": [{"dev": "sdb", "pri": "10", "chk_st": "ready"}]}]}
        ]}"#;
        let topology = parse_maps_json(text).unwrap();
        let map = &topology.maps[0];
        assert_eq!(
            map.name, "3600a",
            "a map without a name is called by its WWID"
        );
        assert_eq!(map.usable_paths_reported, Some(2));
        assert_eq!(map.groups[0].priority, Some(50));
        let path = &map.groups[0].paths[0];
        assert_eq!(path.priority, Some(10));
        assert_eq!(path.checker_state, Some(CheckerState::Ready));
        assert_eq!(path.marginal, None, "0.4.9-xs prints no marginal_st");
        assert_eq!(path.lun_hex, None, "0.4.9-xs prints no lun_hex");
    }

    #[test]
    fn wrong_version_type_or_shape_is_an_error() {
        assert!(parse_maps_json(r#"{"major_version": 1, "maps": []}"#).is_err());
        assert!(parse_maps_json(r#"{"maps": [{"paths": "two"}]}"#).is_err());
        assert!(parse_maps_json(r#"{"map": {}}"#).is_err());
        assert!(parse_map_json(r#"{"maps": []}"#).is_err());
        let err = parse_maps_json("{\n\"maps\": [\n{\"uuid\": 3}]}").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
    }

    #[test]
    fn undefined_values_are_none() {
        let text = r###"{"map": {"uuid": "x", "sysfs": "undef", "vend": "##",
            "path_groups": [{"paths": [{"dev": "-", "dev_t": "#:#", "host_wwnn": "[undef]"}]}]}}"###;
        let map = parse_map_json(text).unwrap();
        assert_eq!(map.sysfs, None);
        assert_eq!(map.vendor, None);
        let path = &map.groups[0].paths[0];
        assert_eq!((path.dev.as_ref(), path.dev_t.as_ref()), (None, None));
        assert_eq!(path.host_wwnn, None);
    }
}
