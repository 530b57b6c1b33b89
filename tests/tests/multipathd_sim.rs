//! The multipathd simulator speaks multipathd's protocol: the real client talks to it, and
//! what it prints has multipath-tools 0.9's shape, errors included.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::client::{self, Config, Error, Multipathd};
use mpathutil::model::{CheckerState, PathDmState};
use mpathutil::parse::{parse_map_json, parse_maps_json, parse_table, parse_topology};
use mpathutil::{PathCounts, Topology};
use sm_testkit::fabric::{
    AluaState, ArraySpec, ControllerSpec, Fabric, LunSpec, Policy, PortSpec, StandbyTur, Transport,
};
use sm_testkit::multipathd_sim::{
    DaemonConfig, Faults, FindMultipaths, MultipathdSim, PeerPolicy, ReplyStyle,
    stock_sm_default_policy,
};
use sm_testkit::scenarios::{SEED_WWID, large_fabric, seed_fabric};
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

fn seed_sim(config: DaemonConfig) -> (MultipathdSim, sm_testkit::fabric::ArrayId) {
    let (fabric, array) = seed_fabric();
    (MultipathdSim::start(fabric, config).unwrap(), array)
}

fn client(sim: &MultipathdSim) -> Multipathd {
    Multipathd::connect(&Config::for_socket(sim.socket_name())).unwrap()
}

/// Sends raw bytes and reads one raw reply frame (or nothing).
fn raw_exchange(sim: &MultipathdSim, request: &[u8]) -> Option<String> {
    let name = sim.socket_name().strip_prefix('@').unwrap();
    let mut stream =
        UnixStream::connect_addr(&SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; usize::from_ne_bytes(header)];
    stream.read_exact(&mut body).ok()?;
    assert_eq!(body.pop(), Some(0), "replies end with a NUL");
    Some(String::from_utf8(body).unwrap())
}

#[test]
fn frames_carry_a_native_length_and_a_nul() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let reply = raw_exchange(&sim, &client::encode_request("show daemon")).unwrap();
    assert_eq!(reply, "pid 4242 idle\n");
    // A length over 512 is dropped without a reply, as multipathd does.
    let mut bad = 4096usize.to_ne_bytes().to_vec();
    bad.extend_from_slice(b"show maps\0");
    assert_eq!(raw_exchange(&sim, &bad), None);
}

#[test]
fn several_commands_share_one_connection() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    for _ in 0..5 {
        assert_eq!(daemon.list_maps().unwrap()[0].wwid, SEED_WWID);
        assert!(daemon.topology_text().unwrap().contains("Intel,Multi-Flex"));
    }
    assert_eq!(sim.connections(), 1);
}

#[test]
fn show_maps_is_a_padded_table() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let reply = client(&sim).send("show maps").unwrap();
    assert_eq!(
        reply,
        "name              sysfs uuid             \n22202000155fdb615 dm-0  22202000155fdb615\n"
    );
    let table = parse_table(&reply).unwrap();
    assert_eq!(table.column("sysfs"), ["dm-0"]);
}

#[test]
fn show_paths_default_and_formats() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    let reply = daemon.send("show paths").unwrap();
    let mut lines = reply.lines();
    assert_eq!(
        lines.next(),
        Some("hcil    dev dev_t pri dm_st  chk_st dev_st  next_check    ")
    );
    assert_eq!(
        lines.next(),
        Some("0:0:0:0 sda 8:0   50  active ready  running XX........ 1/5")
    );
    assert_eq!(
        lines.next(),
        Some("0:0:1:0 sdb 8:16  1   active ready  running XX........ 1/5")
    );
    let raw = daemon
        .send("show paths raw format \"%d %w %t %T %s %P %L\"")
        .unwrap();
    assert_eq!(
        raw.lines().next(),
        Some("sda 22202000155fdb615 active ready Intel,Multi-Flex scsi:sas 0x0000000000000000")
    );
    assert_eq!(daemon.send("show path sdb").unwrap(), "running\n");
}

#[test]
fn topology_text_and_json_describe_the_same_state() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    let text = daemon.topology_text().unwrap();
    assert_eq!(
        text,
        "create: 22202000155fdb615 dm-0 Intel,Multi-Flex\n\
         size=100G features='1 queue_if_no_path' hwhandler='1 alua' wp=rw\n\
         |-+- policy='round-robin 0' prio=50 status=active\n\
         | `- 0:0:0:0 sda 8:0  active ready running\n\
         `-+- policy='round-robin 0' prio=1 status=enabled\n\
         \u{20} `- 0:0:1:0 sdb 8:16 active ready running\n"
    );
    let json = daemon.send("show maps json").unwrap();
    let from_json = parse_maps_json(&json).unwrap();
    let from_text = parse_topology(&text).unwrap();
    assert_eq!(
        from_json.maps[0].groups.len(),
        from_text.maps[0].groups.len()
    );
    assert_eq!(
        PathCounts::of(&from_json.maps[0]),
        PathCounts::of(&from_text.maps[0])
    );
    assert_eq!(from_json.maps[0].failback.as_deref(), Some("immediate"));
    assert_eq!(from_json.maps[0].queueing.as_deref(), Some("on"));
    let one = daemon.send(&format!("show map {SEED_WWID} json")).unwrap();
    assert!(
        one.starts_with("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":{\n")
    );
    assert!(one.ends_with("      }]\n   }\n}\n"), "{one}");
    assert_eq!(parse_map_json(&one).unwrap().wwid, SEED_WWID);
}

#[test]
fn json_is_laid_out_as_multipathd_prints_it() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let json = client(&sim).send("show maps json").unwrap();
    assert!(json.starts_with("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": [{\n      \"name\" : \"22202000155fdb615\",\n"));
    assert!(json.contains("      \"q_timeouts\" : 0,\n      \"path_groups\": [{\n         \"selector\" : \"round-robin 0\",\n"));
    assert!(json.contains("         \"marginal_st\" : \"normal\",\n         \"group\" : 1,\n         \"paths\": [{\n            \"dev\" : \"sda\",\n"));
    assert!(json.contains("            \"marginal_st\" : \"normal\"\n         }]\n      },{\n"));
    assert!(json.ends_with("         }]\n      }]\n   }]\n}\n"));
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
}

#[test]
fn empty_listings_answer_ok() {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Virtio);
    let sim = MultipathdSim::start(fabric, DaemonConfig::default()).unwrap();
    let mut daemon = client(&sim);
    for cmd in ["show maps", "show topology", "show paths"] {
        assert_eq!(daemon.send(cmd).unwrap(), "ok\n", "{cmd}");
    }
    assert_eq!(
        daemon.send("show maps json").unwrap(),
        "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": []\n}\n"
    );
    assert_eq!(daemon.snapshot().unwrap(), Topology::default());
}

#[test]
fn unknown_commands_get_the_help_text() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    let reply = raw_exchange(&sim, &client::encode_request("show frobs")).unwrap();
    assert!(reply.starts_with("fail\nshow frobs: not found\nmultipath-tools v0.9.8 (02/15, 2024)\nCLI commands reference:\n"));
    assert!(matches!(
        daemon.send("show frobs"),
        Err(Error::UnknownCommand { .. })
    ));
    assert_eq!(
        raw_exchange(&sim, &client::encode_request("frob maps")).unwrap(),
        "fail\n"
    );
    assert!(
        raw_exchange(&sim, &client::encode_request("show map"))
            .unwrap()
            .starts_with("fail\nshow map: Missing argument\n")
    );
    // `sh` is ambiguous (show, shutdown) and not the last word: a bare `fail`.
    assert_eq!(
        raw_exchange(&sim, &client::encode_request("sh maps")).unwrap(),
        "fail\n"
    );
}

#[test]
fn an_open_map_is_not_removed_and_both_versions_say_so_their_way() {
    for style in [ReplyStyle::V0_9_8, ReplyStyle::V0_9_4] {
        let (sim, _) = seed_sim(DaemonConfig {
            style,
            ..DaemonConfig::default()
        });
        sim.with(|w| assert!(w.daemon.set_open(SEED_WWID, true)));
        let mut daemon = client(&sim);
        let err = daemon.remove_map(SEED_WWID).unwrap_err();
        match style {
            ReplyStyle::V0_9_8 => assert!(matches!(err, Error::MapInUse { .. }), "{err}"),
            _ => assert!(matches!(err, Error::Failed { .. }), "{err}"),
        }
        assert_eq!(daemon.list_maps().unwrap().len(), 1, "nothing changed");
        sim.with(|w| w.daemon.set_open(SEED_WWID, false));
        daemon.remove_map(SEED_WWID).unwrap();
        assert!(daemon.list_maps().unwrap().is_empty());
        let err = daemon.remove_map(SEED_WWID).unwrap_err();
        match style {
            ReplyStyle::V0_9_8 => assert!(matches!(err, Error::DeviceNotFound { .. }), "{err}"),
            _ => assert!(matches!(err, Error::Failed { .. }), "{err}"),
        }
    }
}

#[test]
fn add_map_creates_from_known_paths_and_refuses_unknown_or_blacklisted() {
    let (fabric, _) = seed_fabric();
    let config = DaemonConfig {
        find_multipaths: FindMultipaths::Strict,
        blacklist_wwids: ["3600blacklisted".to_string()].into(),
        ..DaemonConfig::default()
    };
    let sim = MultipathdSim::start(fabric, config).unwrap();
    let mut daemon = client(&sim);
    assert!(
        daemon.list_maps().unwrap().is_empty(),
        "strict: no map until asked"
    );
    let paths = daemon
        .send("show paths raw format \"%d %m %C %T\"")
        .unwrap();
    assert_eq!(
        paths,
        "sda [orphan] orphan undef\nsdb [orphan] orphan undef\n"
    );
    daemon.add_map(SEED_WWID).unwrap();
    assert_eq!(daemon.topology().unwrap().maps[0].paths().count(), 2);
    daemon.add_map(SEED_WWID).unwrap(); // again: still ok
    assert!(matches!(
        daemon.add_map("3600nosuchlun"),
        Err(Error::Failed { .. })
    ));
    assert!(matches!(
        daemon.add_map("3600blacklisted"),
        Err(Error::Blacklisted { .. })
    ));
}

#[test]
fn paths_can_be_failed_reinstated_removed_and_added() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    daemon.fail_path("sdb").unwrap();
    let map = &daemon.topology().unwrap().maps[0];
    let sdb = map
        .paths()
        .find(|p| p.dev.as_deref() == Some("sdb"))
        .unwrap();
    assert_eq!(sdb.dm_state, Some(PathDmState::Failed));
    assert_eq!(
        sdb.checker_state,
        Some(CheckerState::Faulty),
        "multipathd marks a path it failed down (as 0.9.4 does once the kernel reports it)"
    );
    daemon.reinstate_path("8:16").unwrap();
    assert_eq!(
        PathCounts::of(&daemon.topology().unwrap().maps[0]).active,
        2
    );
    daemon.remove_path("sdb").unwrap();
    assert_eq!(daemon.topology().unwrap().maps[0].paths().count(), 1);
    assert!(matches!(
        daemon.remove_path("sdb"),
        Err(Error::Failed { .. })
    ));
    daemon.add_path("sdb").unwrap();
    assert_eq!(daemon.topology().unwrap().maps[0].paths().count(), 2);
    assert!(matches!(daemon.fail_path("sdz"), Err(Error::Failed { .. })));
}

#[test]
fn non_root_peers_may_only_look() {
    for (style, prefix) in [(ReplyStyle::V0_9_8, "fail\n"), (ReplyStyle::V0_9_4, "")] {
        let (sim, _) = seed_sim(DaemonConfig {
            style,
            peers: PeerPolicy::AllUnprivileged,
            ..DaemonConfig::default()
        });
        let mut daemon = client(&sim);
        assert!(daemon.topology().is_ok());
        assert!(matches!(
            daemon.remove_map(SEED_WWID),
            Err(Error::PermissionDenied { .. })
        ));
        let reply = raw_exchange(&sim, &client::encode_request("reconfigure")).unwrap();
        assert_eq!(reply, format!("{prefix}permission deny: need to be root\n"));
    }
}

#[test]
fn root_peers_are_recognised_by_their_credentials() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    // This process is root (CI) or the simulator's own user, which stands for root: either
    // way a peer the daemon lets change things. `non_root_peers_may_only_look` has the refusal.
    client(&sim).reconfigure().unwrap();
}

#[test]
fn timeouts_are_retried_until_the_daemon_answers() {
    for style in [ReplyStyle::V0_9_8, ReplyStyle::V0_9_4] {
        let (sim, _) = seed_sim(DaemonConfig {
            style,
            ..DaemonConfig::default()
        });
        sim.inject(Faults {
            timeouts: 2,
            ..Faults::default()
        });
        let mut daemon = client(&sim);
        assert_eq!(
            daemon.list_maps().unwrap().len(),
            1,
            "third attempt answers"
        );
        sim.inject(Faults {
            timeouts: 5,
            ..Faults::default()
        });
        assert!(matches!(
            daemon.list_maps(),
            Err(Error::Busy { attempts: 3, .. })
        ));
        // `show daemon` never waits for the lock.
        sim.inject(Faults {
            timeouts: 5,
            ..Faults::default()
        });
        assert!(daemon.daemon_state().is_ok());
    }
}

#[test]
fn a_stalled_reply_is_a_timeout_then_a_fresh_connection_works() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let config = Config {
        reply_timeout: Duration::from_millis(200),
        attempts: 1,
        ..Config::for_socket(sim.socket_name())
    };
    let mut daemon = Multipathd::connect(&config).unwrap();
    sim.inject(Faults {
        stall: Some((1, Duration::from_millis(600))),
        ..Faults::default()
    });
    assert!(matches!(daemon.list_maps(), Err(Error::Timeout { .. })));
    assert_eq!(daemon.list_maps().unwrap().len(), 1);
}

#[test]
fn pipelined_commands_are_answered_in_order_on_one_connection() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    let mut replies = daemon
        .pipeline(&["list maps", "show daemon", "show topology"])
        .unwrap();
    assert!(replies.next_reply().unwrap().contains(SEED_WWID));
    assert!(replies.next_reply().unwrap().starts_with("pid "));
    assert!(replies.next_reply().unwrap().contains("policy="));
    assert!(matches!(replies.next_reply(), Err(Error::Protocol { .. })));
    drop(replies);
    assert_eq!(sim.connections(), 1);
    assert_eq!(daemon.list_maps().unwrap().len(), 1);
}

#[test]
fn a_pipeline_left_half_read_does_not_leave_its_replies_to_the_next_command() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    let mut replies = daemon.pipeline(&["show topology", "list maps"]).unwrap();
    assert!(replies.next_reply().unwrap().contains("policy="));
    drop(replies);
    assert!(daemon.daemon_state().unwrap().starts_with("pid "));
    assert!(daemon.topology_text().unwrap().contains("policy="));
}

#[test]
fn a_busy_or_stalled_reply_in_a_pipeline_is_sent_again_alone() {
    for faults in [
        Faults {
            timeouts: 2,
            ..Faults::default()
        },
        Faults {
            stall: Some((1, Duration::from_millis(600))),
            ..Faults::default()
        },
    ] {
        let (sim, _) = seed_sim(DaemonConfig::default());
        let config = Config {
            reply_timeout: Duration::from_millis(300),
            ..Config::for_socket(sim.socket_name())
        };
        let mut daemon = Multipathd::connect(&config).unwrap();
        sim.inject(faults.clone());
        let topology = daemon.snapshot().unwrap();
        assert_eq!(topology.maps.len(), 1, "{faults:?}");
        assert!(
            topology.maps[0].failback.is_some(),
            "the JSON listing came: {faults:?}"
        );
        assert!(
            topology.maps[0].paths().all(|p| p.hcil.is_some()),
            "the topology text came too: {faults:?}"
        );
        let log = sim.commands();
        assert!(
            log.iter().filter(|c| *c == "show maps json").count() >= 2,
            "the first answer was not used: {log:?}"
        );
    }
}

#[test]
fn garbage_frames_are_protocol_errors() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    sim.inject(Faults {
        raw: Some((1, (1usize << 40).to_ne_bytes().to_vec())),
        ..Faults::default()
    });
    assert!(matches!(
        client(&sim).list_maps(),
        Err(Error::Protocol { .. })
    ));
}

#[test]
fn shutdown_leaves_nobody_listening() {
    let (sim, _) = seed_sim(DaemonConfig::default());
    client(&sim).send("shutdown").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.running() || Multipathd::connect(&Config::for_socket(sim.socket_name())).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening after shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(
        Multipathd::connect(&Config::for_socket(sim.socket_name())),
        Err(Error::NotRunning { .. })
    ));
}

#[test]
fn alua_failover_regroups_and_standby_paths_are_ghosts() {
    let fabric = large_fabric(1);
    let sim = MultipathdSim::start(fabric, DaemonConfig::default()).unwrap();
    let mut daemon = client(&sim);
    let before = daemon.topology().unwrap().maps.remove(0);
    assert_eq!(
        before.groups.iter().map(|g| g.priority).collect::<Vec<_>>(),
        [Some(50), Some(10)]
    );
    sim.fabric(|f| {
        f.set_alua(sm_testkit::fabric::ArrayId(0), 1, AluaState::Standby);
        f.set_alua(
            sm_testkit::fabric::ArrayId(0),
            2,
            AluaState::ActiveOptimized,
        );
    });
    let after = daemon.topology().unwrap().maps.remove(0);
    assert_eq!(
        after.groups.iter().map(|g| g.priority).collect::<Vec<_>>(),
        [Some(50), Some(1)]
    );
    assert!(
        after.groups[1]
            .paths
            .iter()
            .all(|p| p.checker_state == Some(CheckerState::Ghost))
    );
    assert_eq!(
        PathCounts::of(&after),
        PathCounts {
            active: 4,
            total: 4
        }
    );
    // The paths that were the standby group's are now first.
    assert_eq!(before.groups[1].paths[0].dev, after.groups[0].paths[0].dev);
}

#[test]
fn a_failed_group_keeps_its_place_and_the_kernel_moves_on() {
    let (sim, array) = seed_sim(DaemonConfig::default());
    sim.fabric(|f| f.fail_port(array, "SCM1-P0"));
    let map = client(&sim).topology().unwrap().maps.remove(0);
    let groups: Vec<_> = map
        .groups
        .iter()
        .map(|g| {
            (
                g.priority.unwrap(),
                g.state.as_ref().unwrap().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [(0, "enabled".to_string()), (1, "active".to_string())]
    );
    assert_eq!(
        map.groups[0].paths[0].checker_state,
        Some(CheckerState::Faulty)
    );
    sim.fabric(|f| f.restore_port(array, "SCM1-P0"));
    let json = client(&sim).snapshot().unwrap();
    assert_eq!(json.maps[0].path_faults, Some(1));
    assert_eq!(
        json.maps[0].groups[0].state.as_ref().map(|s| s.as_str()),
        Some("active"),
        "failback immediate"
    );
}

#[test]
fn a_booting_controller_goes_transitioning_standby_active() {
    use sm_testkit::fabric::BootStage;
    let (sim, array) = seed_sim(DaemonConfig::default());
    sim.fabric(|f| f.pull_controller(array, "SCM1"));
    let mut seen = Vec::new();
    for stage in [BootStage::PortsUp, BootStage::Standby, BootStage::Active] {
        sim.fabric(|f| f.boot_controller(array, "SCM1", stage));
        let map = client(&sim).topology().unwrap().maps.remove(0);
        let scm1 = map
            .paths()
            .find(|p| p.hcil.map(|h| h.target) == Some(2))
            .unwrap()
            .clone();
        seen.push(scm1.checker_state.unwrap().as_str().to_string());
    }
    // The Multi-Flex answers TUR on a standby port, so standby reads `ready` here.
    assert_eq!(seen, ["i/o pending", "ready", "ready"]);
}

#[test]
fn user_friendly_names_show_the_wwid_beside_the_alias() {
    let (sim, _) = seed_sim(DaemonConfig {
        user_friendly_names: true,
        ..DaemonConfig::default()
    });
    let text = client(&sim).topology_text().unwrap();
    assert!(
        text.starts_with("create: mpatha (22202000155fdb615) dm-0 Intel,Multi-Flex\n"),
        "{text}"
    );
    // Before 0.9.9 multipathd finds maps by alias only: `add map <wwid>` makes it, then fails.
    assert!(client(&sim).add_map(SEED_WWID).is_err());
}

#[test]
fn status_and_wildcards_reports() {
    let (sim, array) = seed_sim(DaemonConfig::default());
    sim.fabric(|f| f.fail_port(array, "SCM2-P0"));
    let mut daemon = client(&sim);
    assert_eq!(
        daemon.send("show status").unwrap(),
        "path checker states:\ndown                1\nup                  1\n\npaths: 2\nbusy: False\n"
    );
    let wildcards = daemon.send("show wildcards").unwrap();
    assert!(wildcards.starts_with("multipath format wildcards:\n%n  name\n%w  uuid\n"));
    assert!(wildcards.contains("\npath format wildcards:\n%w  uuid\n%i  hcil\n"));
}

#[test]
fn a_thousand_maps_with_four_paths_each() {
    let sim = MultipathdSim::start(large_fabric(1024), DaemonConfig::default()).unwrap();
    let mut daemon = client(&sim);
    let snapshot = daemon.snapshot().unwrap();
    assert_eq!(snapshot.maps.len(), 1024);
    assert!(
        snapshot
            .maps
            .iter()
            .all(|m| m.paths().count() == 4 && m.size.as_deref() == Some("64G"))
    );
    assert!(
        snapshot
            .maps
            .iter()
            .flat_map(|m| m.paths())
            .all(|p| p.hcil.is_some())
    );
    let names: std::collections::BTreeSet<_> = snapshot
        .maps
        .iter()
        .flat_map(|m| m.paths())
        .filter_map(|p| p.dev.clone())
        .collect();
    assert_eq!(names.len(), 4096, "every path has its own disk");
    assert_eq!(daemon.topology().unwrap().maps.len(), 1024);
}

/// As multipathd 0.9.4's ev_remove_path: the last path of a map going away flushes the map,
/// unless the map is open (a VM's disk), which is then reloaded without paths.
#[test]
fn the_last_path_gone_flushes_an_unused_map_and_empties_an_open_one() {
    let (sim, array) = seed_sim(DaemonConfig::default());
    let mut daemon = client(&sim);
    sim.with(|w| w.daemon.set_open(SEED_WWID, true));
    sim.fabric(|f| {
        f.pull_controller(array, "SCM1");
        f.pull_controller(array, "SCM2");
    });
    let maps = daemon.topology().unwrap().maps;
    assert_eq!(maps.len(), 1, "an open map stays");
    assert_eq!(maps[0].paths().count(), 0);

    sim.with(|w| w.daemon.set_open(SEED_WWID, false));
    sim.fabric(|f| drop(f.push_controller(array, "SCM1")));
    sim.fabric(|f| f.pull_controller(array, "SCM1"));
    assert!(
        daemon.topology().unwrap().maps.is_empty(),
        "an unused map goes with its last path"
    );
    sim.fabric(|f| drop(f.push_controller(array, "SCM2")));
    assert_eq!(
        daemon.topology().unwrap().maps[0].paths().count(),
        1,
        "and comes back with a path"
    );
}

/// iSCSI paths show the session's local address as their host adapter; while a portal is cut
/// the session has no connection and multipathd prints `[undef]`.
#[test]
fn an_iscsi_path_whose_portal_is_cut_has_no_host_adapter() {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Iscsi);
    let port = |name: &str| {
        let mut p = PortSpec::new(name, 0);
        p.target_iqn = Some("iqn.2026-01.invalid:t".into());
        ControllerSpec {
            name: name.into(),
            ports: vec![p],
        }
    };
    let array = fabric.add_array(ArraySpec {
        vendor: "SMRS".into(),
        product: "TGT-LUN".into(),
        revision: "0001".into(),
        controllers: vec![port("portal1"), port("portal2")],
        tpgs: Vec::new(),
        standby_tur: StandbyTur::Ghost,
        policy: Policy::builtin(),
    });
    fabric.add_lun(
        array,
        LunSpec {
            lun: 1,
            wwid: "36000000000000000000000000000000a".into(),
            size_bytes: 1 << 30,
            serial: "x".into(),
        },
    );
    fabric.scan();
    let sim = MultipathdSim::start(fabric, DaemonConfig::default()).unwrap();
    let mut daemon = client(&sim);
    let adapters = |d: &mut Multipathd| d.send("show paths raw format \"%d %a %n\"").unwrap();
    assert_eq!(
        adapters(&mut daemon),
        "sda 192.0.2.10 iqn.2026-01.invalid:t\nsdb 192.0.2.10 iqn.2026-01.invalid:t\n"
    );
    sim.fabric(|f| f.fail_port(array, "portal2"));
    assert_eq!(
        adapters(&mut daemon),
        "sda 192.0.2.10 iqn.2026-01.invalid:t\nsdb [undef] iqn.2026-01.invalid:t\n"
    );
}

// ---- The dom0's multipathd 0.4.9-136.xs8 (`ReplyStyle::V0_4_9Xs`) ----

/// The dom0's daemon as stock sm configures it (`find_multipaths yes`), with its wwids file
/// in `dir`; no wait on a missing map unless a test asks for it.
fn dom0_config(dir: &tempfile::TempDir) -> DaemonConfig {
    DaemonConfig {
        wwids_file: Some(dir.path().join("wwids")),
        missing_map_delay: Duration::ZERO,
        ..DaemonConfig::dom0()
    }
}

fn list_wwid(dir: &tempfile::TempDir, wwid: &str) {
    std::fs::write(dir.path().join("wwids"), format!("/{wwid}/\n")).unwrap();
}

fn send_raw(sim: &MultipathdSim, command: &str) -> String {
    raw_exchange(sim, &client::encode_request(command)).unwrap()
}

#[test]
fn dom0_builds_no_map_for_two_paths_of_an_unlisted_wwid() {
    // XenServer's should_multipath patch: two paths with one WWID are not enough.
    let dir = tempfile::tempdir().unwrap();
    let (sim, _) = seed_sim(dom0_config(&dir));
    assert_eq!(
        send_raw(&sim, "show maps"),
        "",
        "an empty listing is an empty reply"
    );
    assert_eq!(
        send_raw(&sim, "show paths raw format \"%d %m %T\""),
        "sda [orphan] undef\nsdb [orphan] undef\n"
    );
    // `add path` of an unlisted WWID: ok, and still no map.
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    assert!(client(&sim).list_maps().unwrap().is_empty());
}

#[test]
fn dom0_add_path_builds_the_map_of_a_listed_wwid_with_all_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _) = seed_sim(dom0_config(&dir));
    list_wwid(&dir, SEED_WWID);
    // Listing the WWID alone changes nothing: the daemon reads the file on a path event.
    assert_eq!(send_raw(&sim, "show maps"), "");
    assert_eq!(send_raw(&sim, "add path sdb"), "ok\n");
    let mut daemon = client(&sim);
    let topology = daemon.topology().unwrap();
    assert_eq!(topology.maps.len(), 1);
    assert_eq!(topology.maps[0].wwid, SEED_WWID);
    assert_eq!(topology.maps[0].paths().count(), 2, "sda adopted too");
    // A path already in a map: ok at once, nothing changes.
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    assert_eq!(daemon.topology().unwrap(), topology);
    // /dev/ is stripped; a disk the kernel lacks fails; a blacklisted one says so.
    assert_eq!(send_raw(&sim, "add path /dev/sda"), "ok\n");
    assert_eq!(send_raw(&sim, "add path sdz"), "fail\n");
}

#[test]
fn dom0_add_path_answers_blacklisted_for_a_blacklisted_name_or_wwid() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _) = seed_sim(DaemonConfig {
        blacklist_devnodes: vec!["sdb".into()],
        ..dom0_config(&dir)
    });
    assert_eq!(send_raw(&sim, "add path sdb"), "blacklisted\n");
    let (sim, _) = seed_sim(DaemonConfig {
        blacklist_wwids: [SEED_WWID.to_string()].into(),
        ..dom0_config(&dir)
    });
    assert_eq!(send_raw(&sim, "add path sda"), "blacklisted\n");
}

#[test]
fn dom0_add_map_only_adopts_and_answers_ok_after_the_dm_wait() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(300);
    let (sim, _) = seed_sim(DaemonConfig {
        missing_map_delay: delay,
        ..dom0_config(&dir)
    });
    list_wwid(&dir, SEED_WWID);
    // No table: `ok`, after dm_mapname's retries, and nothing is built.
    let started = std::time::Instant::now();
    assert_eq!(send_raw(&sim, &format!("add map {SEED_WWID}")), "ok\n");
    assert!(started.elapsed() >= delay);
    assert!(
        client(&sim).list_maps().unwrap().is_empty(),
        "add map builds nothing"
    );
    // A client that waits less than the daemon does gets no answer.
    let impatient = Config {
        reply_timeout: delay / 3,
        attempts: 1,
        ..Config::for_socket(sim.socket_name())
    };
    let err = Multipathd::connect(&impatient)
        .unwrap()
        .send(&format!("add map {SEED_WWID}"))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // A map the daemon has: ok at once. A blacklisted WWID: `blacklisted`.
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    assert_eq!(send_raw(&sim, &format!("add map {SEED_WWID}")), "ok\n");
    let (sim, _) = seed_sim(DaemonConfig {
        blacklist_wwids: ["3600blacklisted".to_string()].into(),
        ..dom0_config(&dir)
    });
    assert_eq!(send_raw(&sim, "add map 3600blacklisted"), "blacklisted\n");
}

#[test]
fn dom0_remove_map_fails_at_once_when_open_and_after_the_dm_wait_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(200);
    let (sim, _) = seed_sim(DaemonConfig {
        missing_map_delay: delay,
        ..dom0_config(&dir)
    });
    list_wwid(&dir, SEED_WWID);
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    sim.with(|w| assert!(w.daemon.set_open(SEED_WWID, true)));
    // Open: a bare fail (no reason on 0.4.9), the map kept.
    assert_eq!(send_raw(&sim, &format!("remove map {SEED_WWID}")), "fail\n");
    let mut daemon = client(&sim);
    assert!(matches!(
        daemon.remove_map(SEED_WWID),
        Err(Error::Failed { .. })
    ));
    assert_eq!(daemon.list_maps().unwrap().len(), 1, "nothing changed");
    // Closed: ok, the map gone, the WWID still listed.
    sim.with(|w| w.daemon.set_open(SEED_WWID, false));
    assert_eq!(send_raw(&sim, &format!("del map {SEED_WWID}")), "ok\n");
    assert!(daemon.list_maps().unwrap().is_empty());
    let wwids = std::fs::read_to_string(dir.path().join("wwids")).unwrap();
    assert!(wwids.contains(&format!("/{SEED_WWID}/")));
    // Missing: fail, after the wait. `dm-N` is no dm name: the same.
    let started = std::time::Instant::now();
    assert_eq!(send_raw(&sim, &format!("remove map {SEED_WWID}")), "fail\n");
    assert!(started.elapsed() >= delay);
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    assert_eq!(send_raw(&sim, "remove map dm-0"), "fail\n");
    assert_eq!(daemon.list_maps().unwrap().len(), 1);
}

#[test]
fn dom0_answers_the_help_text_without_fail_to_what_it_cannot_run() {
    let (sim, _) = seed_sim(DaemonConfig {
        style: ReplyStyle::V0_4_9Xs,
        ..DaemonConfig::default()
    });
    let help = send_raw(&sim, "show frobs");
    assert!(help.starts_with(
        "multipath-tools v0.4.9 (05/33, 2016)\nCLI commands reference:\n list|show paths\n"
    ));
    // The table has no `show map X format`, `show path X`, `del maps`, `show config local`.
    for cmd in [
        &format!("show map {SEED_WWID} raw format \"%n %N\""),
        &format!("show map {SEED_WWID} format \"%n\""),
        "show path sda",
        "del maps",
        "show config local",
        "frob maps",
        "sh maps",
        "show map",
        "show maps maps",
        "",
        "   ",
    ] {
        assert_eq!(send_raw(&sim, cmd), help, "{cmd:?}");
    }
    assert!(matches!(
        client(&sim).send(&format!("show map {SEED_WWID} raw format \"%n\"")),
        Err(Error::UnknownCommand { .. })
    ));
    // Keywords in table order with their aliases and parameters, whatever the command's
    // order; the same set of words in another order is the same command.
    for line in [
        " list|show maps|multipaths raw format $format\n",
        " list|show map|multipath $map json\n",
        " remove|del map|multipath $map\n",
        " switch|switchgroup map|multipath $map group $group\n",
        " map|multipath $map getprstatus\n",
        " map|multipath $map setprkey key $key\n",
        " forcequeueing daemon\n",
    ] {
        assert!(help.contains(line), "{line:?} in\n{help}");
    }
    assert!(!help.contains("local") && !help.contains("marginal"));
    assert_eq!(help.lines().count(), 2 + 48);
    assert!(send_raw(&sim, "json maps show").starts_with("{\n   \"major_version\": 0,"));
    // Quoted words keep their spaces; a quote is a word of its own.
    assert_eq!(
        send_raw(&sim, "show maps raw format \"%n  %N\""),
        format!("{SEED_WWID}  2\n")
    );
}

#[test]
fn dom0_small_replies() {
    let (sim, _) = seed_sim(DaemonConfig {
        style: ReplyStyle::V0_4_9Xs,
        peers: PeerPolicy::AllUnprivileged,
        ..DaemonConfig::default()
    });
    assert_eq!(send_raw(&sim, "show daemon"), "pid 4242 running\n");
    assert_eq!(
        send_raw(&sim, "reconfigure"),
        "permission deny: need to be root"
    );
    // Checked on the raw text: an abbreviated `show` is refused too.
    assert_eq!(
        send_raw(&sim, "sho maps"),
        "permission deny: need to be root"
    );
    assert!(send_raw(&sim, "list maps").starts_with("name"));
    // A zero-length request is logged and skipped; the connection stays.
    let name = sim.socket_name().strip_prefix('@').unwrap();
    let mut stream =
        UnixStream::connect_addr(&SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    stream.write_all(&0usize.to_ne_bytes()).unwrap();
    stream
        .write_all(&client::encode_request("show daemon"))
        .unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; usize::from_ne_bytes(header)];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(body, b"pid 4242 running\n\0");
}

#[test]
fn dom0_wildcards_and_padding() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _) = seed_sim(dom0_config(&dir));
    list_wwid(&dir, SEED_WWID);
    send_raw(&sim, "add path sda");
    // %L, %M, %I, %G, %g are unknown: nothing, not even padding.
    assert_eq!(
        send_raw(&sim, "show paths raw format \"%d|%L|%M|%I|%G|%g|%P|%s|\""),
        "sda||||||scsi:sas|Intel   ,Multi-Flex      |\n\
         sdb||||||scsi:sas|Intel   ,Multi-Flex      |\n"
    );
    assert_eq!(
        send_raw(&sim, "show maps raw format \"%n|%s|%v|%p|%e|%G|%g|%Q|%F\""),
        format!(
            "{SEED_WWID}|Intel   ,Multi-Flex      |Intel   |Multi-Flex      |0308|||on|immediate\n"
        )
    );
    let wildcards = send_raw(&sim, "show wildcards");
    assert!(wildcards.ends_with("%0  failures\n%P  protocol\n\npathgroup format wildcards:\n%s  selector\n%p  pri\n%t  dm_st\n"));
    for gone in ["%L", "%M", "%I", "%G", "%g"] {
        assert!(!wildcards.contains(gone), "{gone}");
    }
    // The topology's header carries the padded vendor and product.
    let topology = send_raw(&sim, "show topology");
    assert_eq!(
        topology.lines().next(),
        Some(format!("create: {SEED_WWID} dm-0 Intel   ,Multi-Flex      ").as_str())
    );
}

#[test]
fn dom0_json_has_no_marginal_state_or_lun_hex_yet_says_0_1() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _) = seed_sim(dom0_config(&dir));
    list_wwid(&dir, SEED_WWID);
    send_raw(&sim, "add path sda");
    let json = send_raw(&sim, "show maps json");
    assert!(json.starts_with("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": [{\n      \"name\" : \""));
    assert!(!json.contains("marginal_st") && !json.contains("lun_hex"));
    assert!(json.contains(
        "\"dm_st\" : \"active\",\n         \"group\" : 1,\n         \"paths\": [{\n            \"dev\" : \"sda\","
    ));
    // Each path ends with host_adapter.
    for block in json.split("\"host_adapter\" : ").skip(1) {
        let rest = block.split_once('\n').unwrap().1;
        assert!(rest.starts_with("         }"), "{json}");
    }
    let maps = parse_maps_json(&json).unwrap();
    assert_eq!(maps.maps.len(), 1);
    let one = send_raw(&sim, &format!("show map {SEED_WWID} json"));
    assert!(one.starts_with("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":{"));
    assert_eq!(parse_map_json(&one).unwrap().wwid, SEED_WWID);
    assert_eq!(send_raw(&sim, "show map 3600nosuch json"), "fail\n");
    // With no map: the frame with no maps, not `ok`.
    send_raw(&sim, &format!("del map {SEED_WWID}"));
    assert_eq!(
        send_raw(&sim, "show maps json"),
        "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": []\n}\n"
    );
}

/// The real-stack VM's topology A as a fabric: one QEMU LUN behind two virtio-scsi HBAs,
/// under stock sm's multipath.conf on 0.4.9-xs (no device entry for QEMU: the built-in
/// defaults — failover, service-time, const prio, checker directio — with sm's `failback 10`
/// and `no_path_retry 10`).
fn dom0_vm_fabric() -> (Fabric, sm_testkit::fabric::ArrayId) {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Virtio);
    let array = fabric.add_array(ArraySpec {
        vendor: "QEMU".into(),
        product: "QEMU HARDDISK".into(),
        revision: "2.5+".into(),
        controllers: ["path1", "path2"]
            .iter()
            .map(|name| ControllerSpec {
                name: (*name).into(),
                ports: vec![PortSpec::new(name, 0)],
            })
            .collect(),
        tpgs: Vec::new(),
        standby_tur: StandbyTur::Ghost,
        policy: stock_sm_default_policy(),
    });
    fabric.add_lun(
        array,
        LunSpec {
            lun: 0,
            wwid: DOM0_VM_WWID.into(),
            size_bytes: 128 << 20,
            serial: "SMRSSCSI0001".into(),
        },
    );
    fabric.scan();
    (fabric, array)
}

const DOM0_VM_WWID: &str = "350014055eed00001";

/// What differs by numbering or by time, not behaviour: the second path's H:C:T:L (two HBAs
/// in the VM, one host port with two targets here, the next target after a hot-plug) and
/// the checker's countdown.
fn dom0_normalise(text: &str) -> String {
    let text = text
        .replace("1:0:0:0", "0:0:1:0")
        .replace("0:0:2:0", "0:0:1:0");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    // A next_check bar: ten of X or '.', a space, tick/interval.
    while let Some(at) = rest.find(['X', '.']) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let bar = tail.len() >= 11
            && tail.as_bytes()[..10]
                .iter()
                .all(|b| *b == b'X' || *b == b'.')
            && tail.as_bytes()[10] == b' ';
        let end = if bar {
            let digits = tail[11..]
                .find(|c: char| !(c.is_ascii_digit() || c == '/'))
                .unwrap_or(tail.len() - 11);
            out.push_str("<next_check>");
            out.push_str(&" ".repeat(11 + digits - "<next_check>".len()));
            11 + digits
        } else {
            out.push_str(&tail[..1]);
            1
        };
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn dom0_replays_the_real_daemons_captured_replies() {
    // The real daemon's replies (mpathutil's fixtures, see their README).
    let captured = |name: &str| -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mpathutil/tests/fixtures/dom0-0.4.9-xs");
        std::fs::read_to_string(dir.join(name)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let (fabric, array) = dom0_vm_fabric();
    let sim = MultipathdSim::start(
        fabric,
        DaemonConfig {
            pid: 196,
            ..dom0_config(&dir)
        },
    )
    .unwrap();
    let map_fields = "\"%w\u{1f}%F\u{1f}%Q\u{1f}%N\u{1f}%0\u{1f}%e\u{1f}%t\"";
    let path_fields =
        "\"%d\u{1f}%c\u{1f}%p\u{1f}%N\u{1f}%n\u{1f}%R\u{1f}%r\u{1f}%a\u{1f}%L\u{1f}%M\"";
    let show = |state: &str, slug: &str, command: &str| {
        let name = format!("{state}.{slug}");
        assert_eq!(
            dom0_normalise(&send_raw(&sim, command)),
            dom0_normalise(&captured(&name)),
            "{name}: {command}"
        );
    };
    let shows = |state: &str, json: bool| {
        show(state, "show-paths", "show paths");
        show(
            state,
            "show-paths-raw",
            &format!("show paths raw format {path_fields}"),
        );
        if json {
            show(state, "show-maps-json", "show maps json");
            show(state, "show-topology", "show topology");
        }
    };
    let map_shows = |state: &str| {
        show(
            state,
            "show-maps-raw",
            &format!("show maps raw format {map_fields}"),
        );
    };

    show("any", "unknown-command", "show no-such-thing");
    show("any", "show-daemon", "show daemon");
    show("any", "show-wildcards", "show wildcards");
    assert_eq!(
        send_raw(&sim, &format!("show map {DOM0_VM_WWID} raw format \"%w\"")),
        captured("any.unknown-command")
    );

    // nomap: both paths, WWID not listed.
    shows("nomap", true);
    for cmd in ["list maps", "show maps", "show topology"] {
        assert_eq!(send_raw(&sim, cmd), "", "{cmd}");
    }
    assert_eq!(
        send_raw(&sim, &format!("show maps raw format {map_fields}")),
        ""
    );
    for cmd in ["json", "topology"] {
        assert_eq!(
            send_raw(&sim, &format!("show map {DOM0_VM_WWID} {cmd}")),
            "fail\n"
        );
    }
    assert_eq!(send_raw(&sim, &format!("add map {DOM0_VM_WWID}")), "ok\n");
    assert_eq!(
        send_raw(&sim, &format!("remove map {DOM0_VM_WWID}")),
        "fail\n"
    );
    assert_eq!(send_raw(&sim, &format!("del map {DOM0_VM_WWID}")), "fail\n");

    // healthy: the WWID listed, then `add path sda`.
    list_wwid(&dir, DOM0_VM_WWID);
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    shows("healthy", true);
    map_shows("healthy");
    show("healthy", "show-maps", "show maps");
    show("healthy", "show-maps", "list maps");
    show(
        "healthy",
        "show-map-json",
        &format!("show map {DOM0_VM_WWID} json"),
    );
    show(
        "healthy",
        "show-map-topology",
        &format!("show map {DOM0_VM_WWID} topology"),
    );
    assert_eq!(send_raw(&sim, &format!("add map {DOM0_VM_WWID}")), "ok\n");
    assert_eq!(send_raw(&sim, "reconfigure"), "ok\n");

    // degraded: path 2 hot-unplugged.
    sim.fabric(|f| f.pull_controller(array, "path2"));
    shows("degraded", true);
    map_shows("degraded");

    // failed: path 2 back, then `fail path sda`.
    sim.fabric(|f| drop(f.push_controller(array, "path2")));
    assert_eq!(send_raw(&sim, "fail path sda"), "ok\n");
    shows("failed", true);
    map_shows("failed");
    show(
        "failed",
        "show-map-json",
        &format!("show map {DOM0_VM_WWID} json"),
    );
    assert_eq!(send_raw(&sim, "reinstate path sda"), "ok\n");

    // open, then closed and removed.
    sim.with(|w| assert!(w.daemon.set_open(DOM0_VM_WWID, true)));
    assert_eq!(
        send_raw(&sim, &format!("remove map {DOM0_VM_WWID}")),
        "fail\n"
    );
    assert_eq!(send_raw(&sim, &format!("del map {DOM0_VM_WWID}")), "fail\n");
    sim.with(|w| assert!(w.daemon.set_open(DOM0_VM_WWID, false)));
    assert_eq!(
        send_raw(&sim, &format!("remove map {DOM0_VM_WWID}")),
        "ok\n"
    );
    shows("removed", false);
    assert_eq!(
        send_raw(&sim, "show maps json"),
        captured("nomap.show-maps-json")
    );
}

#[test]
fn dom0_queueing_counts_down_and_a_deferred_failback_is_shown_done() {
    let dir = tempfile::tempdir().unwrap();
    let (fabric, _) = dom0_vm_fabric();
    let sim = MultipathdSim::start(fabric, dom0_config(&dir)).unwrap();
    list_wwid(&dir, DOM0_VM_WWID);
    assert_eq!(send_raw(&sim, "add path sda"), "ok\n");
    let status = || send_raw(&sim, "show maps raw format \"%F|%Q|%N|%1\"");
    assert_eq!(status(), "-|10 chk|2|0\n");
    // sda failed: the kernel goes on with sdb's group; sda back: the daemon fails back to
    // sda's group (`failback 10`: after ten seconds; at once here) and counts the switch.
    send_raw(&sim, "fail path sda");
    assert!(send_raw(&sim, "show topology").contains("prio=0 status=enabled\n| `- 0:0:0:0 sda"));
    send_raw(&sim, "reinstate path sda");
    assert_eq!(status(), "-|10 chk|2|1\n");
    let topology = send_raw(&sim, "show topology");
    assert!(
        topology.contains("|-+- policy='service-time 0' prio=1 status=active\n| `- 0:0:0:0 sda"),
        "{topology}"
    );
    // Both paths failed: the map queues for no_path_retry checks of 5 s, counting down.
    send_raw(&sim, "fail path sda");
    send_raw(&sim, "fail path sdb");
    assert_eq!(status(), "-|50 sec|0|1\n");
}
