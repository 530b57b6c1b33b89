//! `show maps json` and `show map X json` (`multipath-facts.md` §3.5).
//!
//! The format has said "major 0, minor 1" since 0.6.2 while keys were added, so every key is
//! optional and unknown keys are ignored. Integers are read leniently (a number or a string
//! of digits). Strings are borrowed while parsing: multipathd never escapes them, so serde
//! can point into the reply and only the model's fields are allocated.

use super::{ParseError, excerpt};
use crate::model::{
    CheckerState, DevState, GroupState, Map, MapDmState, Marginal, Path, PathDmState, PathGroup,
    Topology, WriteProt,
};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::borrow::Cow;

const SOURCE: &str = "show maps json";

#[derive(Deserialize)]
struct Document<'a> {
    major_version: Option<Int>,
    #[serde(borrow, default)]
    maps: Option<Vec<JsonMap<'a>>>,
    #[serde(borrow, default)]
    map: Option<JsonMap<'a>>,
}

#[derive(Deserialize)]
struct JsonMap<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sysfs: Option<Cow<'a, str>>,
    #[serde(borrow)]
    failback: Option<Cow<'a, str>>,
    #[serde(borrow)]
    queueing: Option<Cow<'a, str>>,
    paths: Option<Int>,
    #[serde(borrow)]
    write_prot: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dm_st: Option<Cow<'a, str>>,
    #[serde(borrow)]
    features: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hwhandler: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    path_faults: Option<Int>,
    #[serde(borrow)]
    vend: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prod: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rev: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    path_groups: Vec<JsonGroup<'a>>,
}

#[derive(Deserialize)]
struct JsonGroup<'a> {
    #[serde(borrow)]
    selector: Option<Cow<'a, str>>,
    pri: Option<Int>,
    #[serde(borrow)]
    dm_st: Option<Cow<'a, str>>,
    #[serde(borrow)]
    marginal_st: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    paths: Vec<JsonPath<'a>>,
}

#[derive(Deserialize)]
struct JsonPath<'a> {
    #[serde(borrow)]
    dev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dev_t: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dm_st: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dev_st: Option<Cow<'a, str>>,
    #[serde(borrow)]
    chk_st: Option<Cow<'a, str>>,
    #[serde(borrow)]
    checker: Option<Cow<'a, str>>,
    pri: Option<Int>,
    #[serde(borrow)]
    host_wwnn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target_wwnn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host_wwpn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target_wwpn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host_adapter: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lun_hex: Option<Cow<'a, str>>,
    #[serde(borrow)]
    marginal_st: Option<Cow<'a, str>>,
}

/// An integer given as a JSON number or as a string of digits.
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
    let doc = document(text)?;
    let maps = doc
        .maps
        .ok_or_else(|| ParseError::new(SOURCE, None, "no \"maps\" array in the reply"))?;
    Ok(Topology {
        maps: maps.into_iter().map(into_map).collect(),
    })
}

/// Parses `show map X json`.
pub fn parse_map_json(text: &str) -> Result<Map, ParseError> {
    let doc = document(text)?;
    let map = doc
        .map
        .ok_or_else(|| ParseError::new(SOURCE, None, "no \"map\" object in the reply"))?;
    Ok(into_map(map))
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

fn into_map(m: JsonMap<'_>) -> Map {
    let wwid = owned(m.uuid);
    Map {
        name: m.name.map(Cow::into_owned).unwrap_or_else(|| wwid.clone()),
        wwid,
        sysfs: m.sysfs.filter(|s| s != "undef").map(Cow::into_owned),
        vendor: defined(m.vend),
        product: defined(m.prod),
        revision: defined(m.rev),
        size: None,
        features: m.features.map(Cow::into_owned),
        hwhandler: m.hwhandler.map(Cow::into_owned),
        write_prot: m.write_prot.map(|w| WriteProt::from_word(&w)),
        dm_state: m.dm_st.map(|w| MapDmState::from_word(&w)),
        queueing: m.queueing.map(Cow::into_owned),
        failback: m.failback.map(Cow::into_owned),
        action: m.action.filter(|a| !a.is_empty()).map(Cow::into_owned),
        usable_paths_reported: m.paths.and_then(|Int(n)| u32::try_from(n).ok()),
        path_faults: m.path_faults.and_then(|Int(n)| u64::try_from(n).ok()),
        groups: m.path_groups.into_iter().map(into_group).collect(),
    }
}

fn into_group(g: JsonGroup<'_>) -> PathGroup {
    PathGroup {
        selector: g.selector.map(Cow::into_owned),
        priority: g.pri.and_then(|Int(n)| i32::try_from(n).ok()),
        state: g.dm_st.map(|w| GroupState::from_word(&w)),
        marginal: g.marginal_st.map(|w| Marginal::from_word(&w)),
        paths: g.paths.into_iter().map(into_path).collect(),
    }
}

fn into_path(p: JsonPath<'_>) -> Path {
    Path {
        hcil: None,
        dev: p
            .dev
            .filter(|d| d != "-" && !d.is_empty())
            .map(Cow::into_owned),
        dev_t: p.dev_t.filter(|d| d != "#:#").map(Cow::into_owned),
        dm_state: p.dm_st.map(|w| PathDmState::from_word(&w)),
        checker_state: p.chk_st.map(|w| CheckerState::from_word(&w)),
        dev_state: p.dev_st.map(|w| DevState::from_word(&w)),
        checker: p.checker.map(Cow::into_owned),
        priority: p.pri.and_then(|Int(n)| i32::try_from(n).ok()),
        host_wwnn: defined(p.host_wwnn),
        target_wwnn: defined(p.target_wwnn),
        host_wwpn: defined(p.host_wwpn),
        target_wwpn: defined(p.target_wwpn),
        host_adapter: defined(p.host_adapter),
        lun_hex: p.lun_hex.map(Cow::into_owned),
        marginal: p.marginal_st.map(|w| Marginal::from_word(&w)),
    }
}

fn owned(value: Option<Cow<'_, str>>) -> String {
    value.map(Cow::into_owned).unwrap_or_default()
}

/// `[undef]`, `[unknown]` and `##` all mean "no value" in multipathd's printers.
fn defined(value: Option<Cow<'_, str>>) -> Option<String> {
    value
        .filter(|v| !matches!(v.as_ref(), "" | "[undef]" | "[unknown]" | "##"))
        .map(Cow::into_owned)
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
