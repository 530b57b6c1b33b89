//! Real replies of the dom0's multipathd, device-mapper-multipath 0.4.9-136.xs8 (captured in
//! the real-stack VM: `fixtures/dom0-0.4.9-xs/README.md`), through every parser and the
//! client's classification: what sm-rs reads on an XCP-ng 8.3 / XenServer 8 host.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::client::{Error, classify};
use mpathutil::health::{Health, PathCounts};
use mpathutil::model::{CheckerState, DevState, Map, PathDmState, Topology};
use mpathutil::parse::{parse_map_json, parse_maps_json, parse_table, parse_topology};
use proptest::prelude::*;
use std::fs;

const WWID: &str = "350014055eed00001";

fn reply(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/dom0-0.4.9-xs/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The map of a state read both ways, JSON and topology text, which must agree.
fn both_ways(state: &str) -> (Map, Map) {
    let json = parse_maps_json(&reply(&format!("{state}.show-maps-json"))).unwrap();
    let text = parse_topology(&reply(&format!("{state}.show-topology"))).unwrap();
    let one_json = parse_map_json(&reply(&format!("{state}.show-map-json"))).unwrap();
    let one_text = parse_topology(&reply(&format!("{state}.show-map-topology"))).unwrap();
    assert_eq!(json.maps.len(), 1, "{state}");
    assert_eq!(
        json.maps[0], one_json,
        "{state}: show map X json is one of show maps json"
    );
    assert_eq!(
        text, one_text,
        "{state}: show map X topology is one of show topology"
    );
    let (json, text) = (json.maps[0].clone(), text.maps[0].clone());
    assert_eq!(json.wwid, WWID);
    assert_eq!(text.wwid, WWID);
    // Vendor and product come space-padded from sysfs: read as the words they are.
    for map in [&json, &text] {
        assert_eq!(map.vendor.as_deref(), Some("QEMU"), "{state}");
        assert_eq!(map.product.as_deref(), Some("QEMU HARDDISK"), "{state}");
        assert!(map.queue_if_no_path(), "{state}");
    }
    let describe = |m: &Map| -> Vec<_> {
        m.paths()
            .map(|p| {
                (
                    p.dev.clone(),
                    p.dm_state.clone(),
                    p.checker_state.clone(),
                    p.dev_state.clone(),
                )
            })
            .collect()
    };
    assert_eq!(describe(&json), describe(&text), "{state}: the two agree");
    assert_eq!(PathCounts::of(&json), PathCounts::of(&text), "{state}");
    (json, text)
}

#[test]
fn healthy_map() {
    let (json, text) = both_ways("healthy");
    assert_eq!(
        PathCounts::of(&json),
        PathCounts {
            active: 2,
            total: 2
        }
    );
    assert_eq!(Health::judge(2, 2), Health::Ok);
    assert_eq!(text.size.as_deref(), Some("128M"));
    // What 0.4.9 prints and 0.9 would have more of: no lun_hex, no marginal state.
    let path = json.paths().next().unwrap();
    assert_eq!(path.checker.as_deref(), Some("directio"));
    assert_eq!(
        (path.lun_hex.as_ref(), path.marginal.as_ref()),
        (None, None)
    );
    assert_eq!(path.host_wwnn, None, "[undef] is no value");
    assert_eq!(json.queueing.as_deref(), Some("10 chk"));
    assert_eq!(json.action.as_deref(), Some("create"));
}

#[test]
fn a_path_hot_unplugged() {
    let (json, _) = both_ways("degraded");
    assert_eq!(
        PathCounts::of(&json),
        PathCounts {
            active: 1,
            total: 1
        }
    );
}

#[test]
fn a_failed_path() {
    let (json, _) = both_ways("failed");
    assert_eq!(
        PathCounts::of(&json),
        PathCounts {
            active: 1,
            total: 2
        }
    );
    let sda = json
        .paths()
        .find(|p| p.dev.as_deref() == Some("sda"))
        .unwrap();
    assert_eq!(sda.dm_state, Some(PathDmState::Failed));
    assert_eq!(sda.checker_state, Some(CheckerState::Faulty));
    assert_eq!(sda.dev_state, Some(DevState::Running));
}

#[test]
fn no_map_reads_as_none_not_as_an_error() {
    for state in ["nomap", "removed"] {
        let json = parse_maps_json(&reply(&format!("{state}.show-maps-json"))).unwrap();
        assert_eq!(json, Topology::default(), "{state}");
        let text = parse_topology(&reply(&format!("{state}.show-topology"))).unwrap();
        assert_eq!(text, Topology::default(), "{state}");
        // One missing map is a bare `fail` both ways, which the client reads as "no map".
        for command in ["show-map-json", "show-map-topology"] {
            let r = reply(&format!("{state}.{command}"));
            assert!(
                matches!(classify("show map x json", &r), Err(Error::Failed { .. })),
                "{state}.{command}: {r:?}"
            );
        }
        let maps = parse_table(&reply(&format!("{state}.list-maps"))).unwrap();
        assert!(maps.rows.is_empty(), "{state}");
    }
}

#[test]
fn listings() {
    let maps = parse_table(&reply("healthy.list-maps")).unwrap();
    assert_eq!(maps.column("uuid"), vec![WWID]);
    assert_eq!(maps.column("sysfs"), vec!["dm-0"]);
    let paths = parse_table(&reply("healthy.show-paths")).unwrap();
    assert_eq!(paths.column("dev"), vec!["sda", "sdb"]);
    assert_eq!(paths.column("chk_st"), vec!["ready", "ready"]);
    assert_eq!(reply("any.show-daemon").trim(), "pid 196 running");
}

#[test]
fn how_it_says_yes_and_no() {
    // An unknown command, and `show map X raw format` which 0.4.9 lacks: the help text
    // with no `fail` line.
    for name in ["any.unknown-command", "healthy.show-map-raw"] {
        let r = reply(name);
        assert!(!r.starts_with("fail"), "{name}");
        assert!(
            matches!(
                classify("show map x raw format y", &r),
                Err(Error::UnknownCommand { .. })
            ),
            "{name}"
        );
    }
    // `add map` of a WWID without a table: `ok`, and nothing is built (the next replies).
    assert!(classify("add map x", &reply("nomap.add-map")).is_ok());
    assert!(classify("add path sda", &reply("nomap.add-path")).is_ok());
    // Removing: ok when closed; a bare `fail` when open and when missing alike.
    assert!(classify("remove map x", &reply("closed.remove-map")).is_ok());
    for name in [
        "open.remove-map",
        "open.del-map",
        "nomap.remove-map",
        "nomap.del-map",
    ] {
        assert!(
            matches!(
                classify("remove map x", &reply(name)),
                Err(Error::Failed { .. })
            ),
            "{name}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // As for 0.9.x: cut anywhere or spliced with garbage, a reply gives a value or an
    // error, never a panic.
    #[test]
    fn damaged_replies_never_panic(at in 0usize..3000, garbage in "\\PC{0,16}") {
        for name in ["healthy.show-maps-json", "failed.show-topology", "healthy.show-paths",
                     "healthy.show-map-json", "any.unknown-command"] {
            let text = reply(name);
            let mut cut = at.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            for damaged in [text[..cut].to_string(), format!("{}{garbage}{}", &text[..cut], &text[cut..])] {
                let _ = parse_maps_json(&damaged);
                let _ = parse_map_json(&damaged);
                let _ = parse_topology(&damaged);
                let _ = parse_table(&damaged);
                let _ = classify("show maps json", &damaged);
            }
        }
    }
}
