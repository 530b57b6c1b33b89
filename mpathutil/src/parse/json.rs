//! `show maps json` and `show map X json` (`multipath-facts.md` §3.5).
//!
//! The format has said "major 0, minor 1" since 0.6.2 while keys were added, so every key is
//! optional and unknown keys are ignored. Integers are read leniently (a number or a string
//! of digits).
//!
//! Two readers give the same answer. multipathd prints its JSON from fixed formats, one
//! `"key" : value` per line, so the first reads that layout line by line, which is several
//! times faster than a JSON tokenizer on a reply that is half indentation (1024 maps make
//! 3 MB). Anything laid out otherwise — reformatted, escaped, from another tool — goes to
//! serde_json. Both build the model through the same conversions.

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

fn into_map(m: JsonMap<'_>) -> Map {
    let wwid = CompactString::from(m.uuid.as_ref());
    Map {
        name: if m.name.is_empty() {
            wwid.clone()
        } else {
            CompactString::from(m.name.as_ref())
        },
        wwid,
        sysfs: some(m.sysfs).filter(|s| s != "undef"),
        vendor: defined(m.vend),
        product: defined(m.prod),
        revision: defined(m.rev),
        size: None,
        features: some(m.features),
        hwhandler: some(m.hwhandler),
        write_prot: word(&m.write_prot, WriteProt::from_word),
        dm_state: word(&m.dm_st, MapDmState::from_word),
        queueing: some(m.queueing),
        failback: some(m.failback),
        action: some(m.action),
        usable_paths_reported: m.paths.and_then(|Int(n)| u32::try_from(n).ok()),
        path_faults: m.path_faults.and_then(|Int(n)| u64::try_from(n).ok()),
        groups: m.path_groups,
    }
}

fn into_group(g: JsonGroup<'_>) -> PathGroup {
    PathGroup {
        selector: some(g.selector),
        priority: g.pri.and_then(|Int(n)| i32::try_from(n).ok()),
        state: word(&g.dm_st, GroupState::from_word),
        marginal: word(&g.marginal_st, Marginal::from_word),
        paths: g.paths,
    }
}

fn into_path(p: JsonPath<'_>) -> Path {
    Path {
        hcil: None,
        dev: some(p.dev).filter(|d| d != "-"),
        dev_t: some(p.dev_t).filter(|d| d != "#:#"),
        dm_state: word(&p.dm_st, PathDmState::from_word),
        checker_state: word(&p.chk_st, CheckerState::from_word),
        dev_state: word(&p.dev_st, DevState::from_word),
        checker: some(p.checker),
        priority: p.pri.and_then(|Int(n)| i32::try_from(n).ok()),
        host_wwnn: defined(p.host_wwnn),
        target_wwnn: defined(p.target_wwnn),
        host_wwpn: defined(p.host_wwpn),
        target_wwpn: defined(p.target_wwpn),
        host_adapter: defined(p.host_adapter),
        lun_hex: some(p.lun_hex),
        marginal: word(&p.marginal_st, Marginal::from_word),
    }
}

/// A string that was there and not empty.
fn some(value: Cow<'_, str>) -> Option<CompactString> {
    (!value.is_empty()).then(|| CompactString::from(value.as_ref()))
}

fn word<T>(value: &str, from_word: fn(&str) -> T) -> Option<T> {
    (!value.is_empty()).then(|| from_word(value))
}

/// `[undef]`, `[unknown]` and `##` all mean "no value" in multipathd's printers.
fn defined(value: Cow<'_, str>) -> Option<CompactString> {
    (!matches!(value.as_ref(), "" | "[undef]" | "[unknown]" | "##"))
        .then(|| CompactString::from(value.as_ref()))
}

/// What the layout reader found: the `maps` array or the single `map`.
struct Layout {
    maps: Option<Vec<Map>>,
    map: Option<Map>,
}

mod layout {
    //! multipathd's own JSON layout (`PRINT_JSON_*` in `libmultipath/print.c`), read line
    //! by line. Any line not in that layout returns `None` and the caller falls back.

    use super::{Int, JsonGroup, JsonMap, JsonPath, Layout, into_group, into_map, into_path};
    use std::borrow::Cow;

    enum Open<'a> {
        /// `single`: the object of `show map X json`.
        Map(JsonMap<'a>, bool),
        Group(JsonGroup<'a>),
        Path(JsonPath<'a>),
    }

    /// A value on a `"key" : value` line.
    enum Value<'a> {
        Text(&'a str),
        Number(i64),
        /// `[{`: an array whose first object opens here.
        ArrayOpen,
        /// `[]`
        EmptyArray,
        /// `{`
        ObjectOpen,
    }

    pub(super) fn read(text: &str) -> Option<Layout> {
        // Half of every line is indentation: `str::trim` would cost more than the rest.
        let mut lines =
            super::super::lines(text).map(|l| super::super::skip_indent(l).trim_ascii_end());
        if lines.next()? != "{" {
            return None;
        }
        let mut stack: Vec<Open> = Vec::new();
        let mut found = Layout {
            maps: None,
            map: None,
        };
        let mut closed_root = false;
        for line in lines {
            if closed_root {
                if line.is_empty() {
                    continue;
                }
                return None;
            }
            match line {
                "}" if stack.is_empty() => closed_root = true,
                "}" | "}]" => close(&mut stack, &mut found)?,
                "},{" => {
                    let sibling = match stack.last()? {
                        Open::Map(_, single) => Open::Map(JsonMap::default(), *single),
                        Open::Group(_) => Open::Group(JsonGroup::default()),
                        Open::Path(_) => Open::Path(JsonPath::default()),
                    };
                    close(&mut stack, &mut found)?;
                    stack.push(sibling);
                }
                _ => {
                    let (key, value) = key_value(line)?;
                    set(&mut stack, &mut found, key, value)?;
                }
            }
        }
        closed_root.then_some(found)
    }

    /// `"key" : value` or `"key": value`, with an optional trailing comma.
    fn key_value(line: &str) -> Option<(&str, Value<'_>)> {
        let rest = line.strip_prefix('"')?;
        let end = rest.bytes().position(|b| b == b'"')?;
        let key = &rest[..end];
        let rest = rest[end + 1..]
            .trim_ascii_start()
            .strip_prefix(':')?
            .trim_ascii_start();
        let rest = rest.strip_suffix(',').unwrap_or(rest);
        let value = match rest {
            "[{" => Value::ArrayOpen,
            "[]" => Value::EmptyArray,
            "{" => Value::ObjectOpen,
            _ => match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                // multipathd does not escape: a backslash may mean anything, let serde decide.
                Some(text) if !text.bytes().any(|b| b == b'\\') => Value::Text(text),
                Some(_) => return None,
                None => Value::Number(rest.parse().ok()?),
            },
        };
        Some((key, value))
    }

    fn set<'a>(
        stack: &mut Vec<Open<'a>>,
        found: &mut Layout,
        key: &str,
        value: Value<'a>,
    ) -> Option<()> {
        let text = |value: &Value<'a>| match value {
            Value::Text(t) => Some(Cow::Borrowed(*t)),
            _ => None,
        };
        let int = |value: &Value<'a>| match value {
            Value::Number(n) => Some(Int(*n)),
            Value::Text(t) => t.trim().parse().ok().map(Int),
            _ => None,
        };
        match (stack.last_mut(), &value) {
            (None, Value::ArrayOpen) if key == "maps" => {
                stack.push(Open::Map(JsonMap::default(), false))
            }
            (None, Value::EmptyArray) if key == "maps" => found.maps = Some(Vec::new()),
            (None, Value::ObjectOpen) if key == "map" => {
                stack.push(Open::Map(JsonMap::default(), true))
            }
            (None, Value::Number(0)) if key == "major_version" => {}
            (None, Value::Number(_)) if key == "minor_version" => {}
            (None, _) => return None,
            (Some(Open::Map(..)), Value::ArrayOpen) if key == "path_groups" => {
                stack.push(Open::Group(JsonGroup::default()))
            }
            (Some(Open::Group(_)), Value::ArrayOpen) if key == "paths" => {
                stack.push(Open::Path(JsonPath::default()))
            }
            (Some(_), Value::EmptyArray) if key == "path_groups" || key == "paths" => {}
            (Some(_), Value::ArrayOpen | Value::EmptyArray | Value::ObjectOpen) => return None,
            (Some(Open::Map(m, _)), _) => match key {
                "paths" => m.paths = Some(int(&value)?),
                "path_faults" => m.path_faults = Some(int(&value)?),
                "switch_grp" | "map_loads" | "total_q_time" | "q_timeouts" => {}
                _ => {
                    let v = text(&value)?;
                    match key {
                        "name" => m.name = v,
                        "uuid" => m.uuid = v,
                        "sysfs" => m.sysfs = v,
                        "failback" => m.failback = v,
                        "queueing" => m.queueing = v,
                        "write_prot" => m.write_prot = v,
                        "dm_st" => m.dm_st = v,
                        "features" => m.features = v,
                        "hwhandler" => m.hwhandler = v,
                        "action" => m.action = v,
                        "vend" => m.vend = v,
                        "prod" => m.prod = v,
                        "rev" => m.rev = v,
                        _ => {}
                    }
                }
            },
            (Some(Open::Group(g)), _) => match key {
                "pri" => g.pri = Some(int(&value)?),
                "group" => {}
                "selector" => g.selector = text(&value)?,
                "dm_st" => g.dm_st = text(&value)?,
                "marginal_st" => g.marginal_st = text(&value)?,
                _ => {}
            },
            (Some(Open::Path(p)), _) => match key {
                "pri" => p.pri = Some(int(&value)?),
                _ => {
                    let v = text(&value)?;
                    match key {
                        "dev" => p.dev = v,
                        "dev_t" => p.dev_t = v,
                        "dm_st" => p.dm_st = v,
                        "dev_st" => p.dev_st = v,
                        "chk_st" => p.chk_st = v,
                        "checker" => p.checker = v,
                        "host_wwnn" => p.host_wwnn = v,
                        "target_wwnn" => p.target_wwnn = v,
                        "host_wwpn" => p.host_wwpn = v,
                        "target_wwpn" => p.target_wwpn = v,
                        "host_adapter" => p.host_adapter = v,
                        "lun_hex" => p.lun_hex = v,
                        "marginal_st" => p.marginal_st = v,
                        _ => {}
                    }
                }
            },
        }
        Some(())
    }

    /// Closes the innermost object and hands it to its parent.
    fn close(stack: &mut Vec<Open>, found: &mut Layout) -> Option<()> {
        match stack.pop()? {
            Open::Path(p) => match stack.last_mut()? {
                Open::Group(g) => g.paths.push(into_path(p)),
                _ => return None,
            },
            Open::Group(g) => match stack.last_mut()? {
                Open::Map(m, _) => m.path_groups.push(into_group(g)),
                _ => return None,
            },
            Open::Map(m, single) => {
                if !stack.is_empty() {
                    return None;
                }
                if single {
                    found.map = Some(into_map(m));
                } else {
                    found.maps.get_or_insert_with(Vec::new).push(into_map(m));
                }
            }
        }
        Some(())
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
    fn the_layout_reader_takes_multipathd_output_and_agrees_with_serde() {
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
    fn the_layout_reader_declines_what_it_does_not_know() {
        assert!(
            layout::read(r#"{"major_version": 0, "maps": []}"#).is_none(),
            "one line"
        );
        assert!(layout::read(&CAPTURE.replace("\"paths\" : 2", "\"paths\" : [1]")).is_none());
        assert!(
            layout::read(&CAPTURE.replace("\"tur\"", "\"t\\u0075r\"")).is_none(),
            "escapes"
        );
        assert!(
            layout::read(&CAPTURE.replace("\"major_version\": 0", "\"major_version\": 1"))
                .is_none()
        );
        assert!(
            layout::read(&CAPTURE[..CAPTURE.len() - 3]).is_none(),
            "truncated"
        );
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
