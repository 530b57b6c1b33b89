//! Real outputs parse into what they say: every `multipath -ll` block of the seed log
//! (`seeds/000_*`, multipath-tools 0.4.x on XenServer 6.0.2, an Intel Modular Server whose
//! storage controllers were pulled and pushed back) and every capture of the real-stack VM
//! (multipath-tools 0.9.4, `reference/realstack.md`).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::health::{Health, PathCounts};
use mpathutil::model::{CheckerState, DevState, Map, WriteProt};
use mpathutil::parse::{parse_maps_json, parse_table, parse_topology};
use std::fs;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn seed_block(name: &str, expected: &str, active: u32, total: u32) {
    let topology = parse_topology(&fixture(&format!("seed000/{name}.txt"))).unwrap();
    assert_eq!(topology.maps.len(), 1, "{name}");
    let map = &topology.maps[0];
    assert_eq!(map.wwid, "22202000155fdb615");
    assert_eq!(map.name, "22202000155fdb615");
    assert_eq!(map.sysfs.as_deref(), Some("dm-0"));
    assert_eq!(map.vendor.as_deref(), Some("Intel"));
    assert_eq!(map.product.as_deref(), Some("Multi-Flex"));
    assert_eq!(map.size.as_deref(), Some("100G"));
    assert!(map.queue_if_no_path());
    assert_eq!(map.hwhandler.as_deref(), Some("1 alua"));
    assert_eq!(map.write_prot, Some(WriteProt::Rw));
    assert!(
        map.groups
            .iter()
            .all(|g| g.selector.as_deref() == Some("round-robin 0"))
    );
    assert_eq!(map.describe(), expected, "{name}");
    assert_eq!(PathCounts::of(map), PathCounts { active, total }, "{name}");
}

#[test]
fn seed_0_initial() {
    seed_block(
        "0-initial",
        "50 active [0:0:0:0 sda 8:0 active ready] | 1 enabled [0:0:1:0 sdb 8:16 active ready]",
        2,
        2,
    );
}

#[test]
fn seed_1_scm2_pulled() {
    seed_block(
        "1-scm2-pulled",
        "50 active [0:0:0:0 sda 8:0 active ready]",
        1,
        1,
    );
}

#[test]
fn seed_2_scm2_back_with_a_new_target_id() {
    seed_block(
        "2-scm2-back",
        "50 active [0:0:0:0 sda 8:0 active ready] | 1 enabled [0:0:2:0 sdb 8:16 active ready]",
        2,
        2,
    );
}

#[test]
fn seed_3_scm2_pulled_again() {
    seed_block(
        "3-scm2-pulled-again",
        "50 active [0:0:0:0 sda 8:0 active ready]",
        1,
        1,
    );
}

#[test]
fn seed_4_scm2_back_again() {
    seed_block(
        "4-scm2-back-again",
        "50 active [0:0:0:0 sda 8:0 active ready] | 1 enabled [0:0:3:0 sdb 8:16 active ready]",
        2,
        2,
    );
}

#[test]
fn seed_5_scm1_pulled_standby_group_takes_over() {
    seed_block(
        "5-scm1-pulled",
        "1 active [0:0:3:0 sdb 8:16 active ready]",
        1,
        1,
    );
}

#[test]
fn seed_6_scm1_back() {
    seed_block(
        "6-scm1-back",
        "50 active [0:0:4:0 sda 8:0 active ready] | 1 enabled [0:0:3:0 sdb 8:16 active ready]",
        2,
        2,
    );
}

#[test]
fn seed_7_scm1_pulled_again() {
    seed_block(
        "7-scm1-pulled-again",
        "1 active [0:0:3:0 sdb 8:16 active ready]",
        1,
        1,
    );
}

#[test]
fn seed_8_scm1_back_again() {
    seed_block(
        "8-scm1-back-again",
        "50 active [0:0:5:0 sda 8:0 active ready] | 1 enabled [0:0:3:0 sdb 8:16 active ready]",
        2,
        2,
    );
}

#[test]
fn legacy_format_with_upstream_indentation_and_padding() {
    // 0.4.8 indents path lines one space and pads columns; `%t%T` run together.
    let text = "mpath0 (3600a0b800011a1ee0000e1c4480f3f38) dm-2 IBM,1815      FAStT\n\
                [size=20G][features=1 queue_if_no_path][hwhandler=1 rdac]\n\
                \\_ round-robin 0 [prio=6][active]\n \
                \\_ 1:0:0:1  sdc 8:32   [active][ready]\n\
                \\_ round-robin 0 [prio=0][enabled]\n \
                \\_ 2:0:1:1  sdf 8:80   [failed][faulty]\n";
    let map = &parse_topology(text).unwrap().maps[0];
    assert_eq!(map.name, "mpath0");
    assert_eq!(map.wwid, "3600a0b800011a1ee0000e1c4480f3f38");
    assert_eq!(map.product.as_deref(), Some("1815      FAStT"));
    assert_eq!(map.write_prot, None);
    assert_eq!(
        map.describe(),
        "6 active [1:0:0:1 sdc 8:32 active ready] | 0 enabled [2:0:1:1 sdf 8:80 failed faulty]"
    );
    assert_eq!(
        PathCounts::of(map),
        PathCounts {
            active: 1,
            total: 2
        }
    );
}

fn realstack(name: &str) -> Map {
    let mut topology = parse_topology(&fixture(&format!("realstack/{name}.topology"))).unwrap();
    assert_eq!(topology.maps.len(), 1, "{name}");
    topology.maps.remove(0)
}

#[test]
fn realstack_a_initial() {
    let map = realstack("a-initial");
    assert_eq!(
        map.product.as_deref(),
        Some("QEMU HARDDISK"),
        "vendor strings keep their spaces"
    );
    assert_eq!(map.size.as_deref(), Some("256M"));
    assert_eq!(map.features.as_deref(), Some("0"));
    assert!(!map.queue_if_no_path());
    assert_eq!(
        map.describe(),
        "1 active [0:0:0:0 sdb 8:16 active ready] | 1 enabled [1:0:0:0 sda 8:0 active ready]"
    );
    assert!(map.paths().all(|p| p.dev_state == Some(DevState::Running)));
}

#[test]
fn realstack_a_show_topology_has_the_create_prefix() {
    let topology = parse_topology(&fixture("realstack/a-initial.show-topology")).unwrap();
    let map = &topology.maps[0];
    assert_eq!(map.action.as_deref(), Some("create"));
    assert_eq!(map.name, "35001405aabbccdd1");
    assert_eq!(map.describe(), realstack("a-initial").describe());
}

#[test]
fn realstack_a_one_path_deleted() {
    let map = realstack("a-path-deleted");
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 1,
            total: 1
        }
    );
    assert_eq!(Health::judge(1, 2), Health::Degraded);
}

#[test]
fn realstack_a_path_failed_by_multipathd_is_not_active() {
    let map = realstack("a-path-failed");
    assert_eq!(
        map.describe(),
        "1 enabled [0:0:0:0 sdb 8:16 failed ready] | 1 active [1:0:0:0 sda 8:0 active ready]"
    );
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 1,
            total: 2
        }
    );
}

#[test]
fn realstack_a_device_offline() {
    let map = realstack("a-device-offline");
    let offline = map.paths().next().unwrap();
    assert_eq!(offline.dev_state, Some(DevState::Offline));
    assert_eq!(offline.checker_state, Some(CheckerState::Faulty));
    assert_eq!(map.groups[0].priority, Some(0));
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 1,
            total: 2
        }
    );
}

/// Captured with I/O running on the map: an open map stays, empty (an unused one is flushed).
#[test]
fn realstack_a_all_paths_gone_keeps_an_open_map() {
    let map = realstack("a-all-paths-gone");
    assert_eq!(map.vendor, None);
    assert_eq!(map.product, None);
    assert!(map.groups.is_empty());
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 0,
            total: 0
        }
    );
    assert_eq!(Health::judge(0, 2), Health::Down);
}

#[test]
fn realstack_b_portal_cut() {
    let map = realstack("b-portal-cut");
    assert_eq!(
        map.describe(),
        "1 active [1:0:0:1 sdb 8:16 active ready] | 0 enabled [0:0:0:1 sda 8:0 failed faulty]"
    );
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 1,
            total: 2
        }
    );
}

#[test]
fn realstack_c_alua() {
    let map = realstack("c-initial");
    assert!(map.queue_if_no_path());
    assert_eq!(map.hwhandler.as_deref(), Some("1 alua"));
    assert_eq!(map.groups[1].priority, Some(10));
    let map = realstack("c-alua-switched");
    let standby = &map.groups[1].paths[0];
    assert_eq!(standby.checker_state, Some(CheckerState::Ghost));
    assert_eq!(
        PathCounts::of(&map),
        PathCounts {
            active: 2,
            total: 2
        },
        "ghost counts as usable"
    );
}

#[test]
fn realstack_a_maps_json() {
    let topology = parse_maps_json(&fixture("realstack/a-initial.maps.json")).unwrap();
    let map = &topology.maps[0];
    assert_eq!(map.wwid, "35001405aabbccdd1");
    assert_eq!(map.revision.as_deref(), Some("2.5+"));
    assert_eq!(map.action.as_deref(), Some("create"));
    assert_eq!(map.usable_paths_reported, Some(2));
    assert_eq!(map.queueing.as_deref(), Some("-"));
    let path = &map.groups[0].paths[0];
    assert_eq!(path.checker.as_deref(), Some("tur"));
    assert_eq!(path.priority, Some(1));
    assert_eq!(path.host_wwnn, None, "[undef] is no value");
    assert_eq!(path.lun_hex.as_deref(), Some("0x0000000000000000"));
    // JSON and topology text agree on what matters for counting.
    let text = realstack("a-initial");
    assert_eq!(PathCounts::of(map), PathCounts::of(&text));
    assert_eq!(
        map.paths().map(|p| p.dev.clone()).collect::<Vec<_>>(),
        text.paths().map(|p| p.dev.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn iscsi_json_from_the_format_strings() {
    let topology = parse_maps_json(&fixture("iscsi-one-map.maps.json")).unwrap();
    let path = &topology.maps[0].groups[0].paths[0];
    assert_eq!(
        path.target_wwnn.as_deref(),
        Some("iqn.2003-01.org.example:t1")
    );
    assert_eq!(path.host_adapter.as_deref(), Some("192.0.2.10"));
    assert_eq!(topology.maps[0].queueing.as_deref(), Some("5 chk"));
    assert_eq!(
        topology.maps[0].action, None,
        "an empty action is no action"
    );
}

#[test]
fn realstack_paths_table_with_trailing_padding() {
    let table = parse_table(&fixture("realstack/a-initial.paths-format")).unwrap();
    assert_eq!(
        table.columns,
        ["dev", "uuid", "dm_st", "chk_st", "vend/prod/rev"]
    );
    assert_eq!(table.column("dev"), ["sdb", "sda"]);
    assert_eq!(table.cell(1, "vend/prod/rev"), Some("QEMU,QEMU HARDDISK"));
}
