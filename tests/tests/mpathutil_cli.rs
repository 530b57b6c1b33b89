//! `mpathutil` as an administrator runs it, against the simulator: the stock `list` and
//! `status`, and ours: `status --json`, `status SCSIID`, `count`, `paths`; waiting for the
//! daemon; exit codes; the high-water mark that makes a pulled controller read `[1, 2]`.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::highwater::LEDGER_PATH;
use sm_testkit::bins;
use sm_testkit::multipathd_sim::{DaemonConfig, MultipathdSim, PeerPolicy};
use sm_testkit::scenarios::{SEED_WWID, large_fabric, seed_fabric};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(socket: &str, root: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(bins::path("mpathutil"))
        .args(args)
        .env_clear()
        .env("MULTIPATH_SOCKET_NAME", socket)
        .env("SM_RS_ROOT", root)
        .output()
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn seed() -> (
    MultipathdSim,
    sm_testkit::fabric::ArrayId,
    tempfile::TempDir,
) {
    let (fabric, array) = seed_fabric();
    (
        MultipathdSim::start(fabric, DaemonConfig::default()).unwrap(),
        array,
        tempfile::tempdir().unwrap(),
    )
}

#[test]
fn list_prints_one_map_name_per_line_like_stock() {
    let sim = MultipathdSim::start(large_fabric(3), DaemonConfig::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = run(sim.socket_name(), root.path(), &["list"]);
    assert_eq!(r.code, 0);
    let names: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(names.len(), 3);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("36006016015301d00") && !n.contains(' '))
    );
}

#[test]
fn status_prints_the_echoed_command_then_the_topology_like_stock() {
    let (sim, _, root) = seed();
    let r = run(sim.socket_name(), root.path(), &["status"]);
    assert_eq!(r.code, 0);
    let daemon_text =
        mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name()))
            .unwrap()
            .topology_text()
            .unwrap();
    assert_eq!(r.stdout, format!("show topology\n{daemon_text}"));

    let r = run(sim.socket_name(), root.path(), &["status", SEED_WWID]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .starts_with(&format!("show map {SEED_WWID} topology\n")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Intel,Multi-Flex"));

    let r = run(sim.socket_name(), root.path(), &["status", "3600nosuchmap"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "mpathutil: no multipath map 3600nosuchmap on this host\n"
    );
}

#[test]
fn an_empty_host_prints_what_stock_prints() {
    let mut fabric = sm_testkit::fabric::Fabric::new();
    fabric.add_host_port(sm_testkit::fabric::Transport::Sas);
    let sim = MultipathdSim::start(fabric, DaemonConfig::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    assert_eq!(run(sim.socket_name(), root.path(), &["list"]).stdout, "");
    assert_eq!(
        run(sim.socket_name(), root.path(), &["status"]).stdout,
        "show topology\nok\n"
    );
    assert_eq!(run(sim.socket_name(), root.path(), &["count"]).stdout, "");
    assert_eq!(
        run(sim.socket_name(), root.path(), &["status", "--json"]).stdout,
        "{\"maps\":[]}\n"
    );
}

#[test]
fn status_json_has_fields_groups_paths_and_counts() {
    let (sim, array, root) = seed();
    sim.fabric(|f| f.fail_port(array, "SCM2-P0"));
    let r = run(sim.socket_name(), root.path(), &["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let map = &json["maps"][0];
    for (key, want) in [
        ("name", serde_json::json!(SEED_WWID)),
        ("sysfs", "dm-0".into()),
        ("vendor", "Intel".into()),
        ("product", "Multi-Flex".into()),
        ("revision", "0308".into()),
        ("size", "100G".into()),
        ("features", "1 queue_if_no_path".into()),
        ("hwhandler", "1 alua".into()),
        ("write_prot", "rw".into()),
        ("dm_state", "active".into()),
        ("queueing", "on".into()),
        ("failback", "immediate".into()),
        ("active", 1.into()),
        ("total", 2.into()),
        ("max", 2.into()),
        ("health", "degraded".into()),
    ] {
        assert_eq!(map[key], want, "{key}");
    }
    let failed = &map["groups"][1]["paths"][0];
    assert_eq!(
        failed["group"],
        serde_json::Value::Null,
        "group numbers sit on groups"
    );
    assert_eq!(map["groups"][1]["group"], 2);
    assert_eq!(failed["hcil"], "0:0:1:0");
    assert_eq!(failed["dev"], "sdb");
    assert_eq!(failed["dm_state"], "failed");
    assert_eq!(failed["checker_state"], "faulty");
    assert_eq!(failed["dev_state"], "running");
    assert_eq!(failed["checker"], "tur");
    assert_eq!(failed["priority"], 1);
    assert_eq!(failed["verdict"], "failed");

    let one = run(
        sim.socket_name(),
        root.path(),
        &["status", "--json", SEED_WWID],
    );
    let one: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(one["maps"].as_array().unwrap().len(), 1);
    assert_eq!(one["maps"][0]["active"], 1);
}

#[test]
fn count_keeps_the_most_paths_ever_seen_until_the_map_goes() {
    let (sim, array, root) = seed();
    let count = |root: &Path| run(sim.socket_name(), root, &["count"]).stdout;
    assert_eq!(count(root.path()), format!("{SEED_WWID} [2, 2] ok\n"));
    sim.fabric(|f| f.pull_controller(array, "SCM2"));
    assert_eq!(count(root.path()), format!("{SEED_WWID} [1, 2] degraded\n"));
    let ledger =
        std::fs::read_to_string(root.path().join(LEDGER_PATH.trim_start_matches('/'))).unwrap();
    assert!(ledger.contains(&format!("\"{SEED_WWID}\":2")), "{ledger}");
    assert_eq!(
        run(sim.socket_name(), root.path(), &["count", SEED_WWID]).stdout,
        format!("{SEED_WWID} [1, 2] degraded\n")
    );

    // Every path gone while the LUN is in use: the map stays, down. (An unused map would be
    // flushed with its last path, as multipathd does.)
    sim.with(|w| w.daemon.set_open(SEED_WWID, true));
    sim.fabric(|f| f.pull_controller(array, "SCM1"));
    assert_eq!(count(root.path()), format!("{SEED_WWID} [0, 2] down\n"));

    // The map is released: the ledger forgets it, and a new map starts afresh.
    sim.fabric(|f| drop(f.push_controller(array, "SCM1")));
    sim.with(|w| w.daemon.set_open(SEED_WWID, false));
    mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name()))
        .unwrap()
        .remove_map(SEED_WWID)
        .unwrap();
    assert_eq!(count(root.path()), "");
    let ledger =
        std::fs::read_to_string(root.path().join(LEDGER_PATH.trim_start_matches('/'))).unwrap();
    assert!(!ledger.contains(SEED_WWID), "{ledger}");
    mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name()))
        .unwrap()
        .add_map(SEED_WWID)
        .unwrap();
    assert_eq!(count(root.path()), format!("{SEED_WWID} [1, 1] ok\n"));
}

#[test]
fn paths_lists_every_path_like_lspath() {
    let (sim, array, root) = seed();
    sim.fabric(|f| f.fail_port(array, "SCM2-P0"));
    let r = run(sim.socket_name(), root.path(), &["paths"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "active {SEED_WWID} 0:0:0:0 sda ready  50 1\n\
             failed {SEED_WWID} 0:0:1:0 sdb faulty 1  2\n"
        )
    );
}

#[test]
fn it_waits_for_multipathd_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let socket = format!("@sm-rs-late-daemon-{}", std::process::id());
    let child = {
        let socket = socket.clone();
        let root = root.path().to_path_buf();
        std::thread::spawn(move || run(&socket, &root, &["--wait", "20", "count"]))
    };
    std::thread::sleep(Duration::from_millis(700));
    let (fabric, _) = seed_fabric();
    let _sim = MultipathdSim::start_at(&socket, fabric, DaemonConfig::default()).unwrap();
    let r = child.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("waiting up to 20 s for multipathd"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, format!("{SEED_WWID} [2, 2] ok\n"));
}

#[test]
fn it_gives_up_after_the_wait_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let r = run(
        &format!("@sm-rs-no-daemon-{}", std::process::id()),
        root.path(),
        &["--wait", "1", "list"],
    );
    assert_eq!(r.code, 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        r.stderr
            .contains("Unable to contact Multipathd daemon: multipathd is not running"),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_every_subcommand_has_help() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["frobnicate"],
        &["status", "--bogus"],
        &["list", "extra"],
    ] {
        let r = run("@unused", root.path(), args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(
            r.stderr.contains("Usage: mpathutil"),
            "{args:?}: {}",
            r.stderr
        );
    }
    for sub in ["list", "status", "count", "paths"] {
        let r = run("@unused", root.path(), &[sub, "--help"]);
        assert_eq!(r.code, 0);
        assert!(
            r.stdout.contains(&format!("Usage: mpathutil {sub}")),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn an_unprivileged_user_can_still_look() {
    let (fabric, _) = seed_fabric();
    let config = DaemonConfig {
        peers: PeerPolicy::AllUnprivileged,
        ..DaemonConfig::default()
    };
    let sim = MultipathdSim::start(fabric, config).unwrap();
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["list"][..],
        &["status"],
        &["status", "--json"],
        &["count"],
        &["paths"],
    ] {
        let r = run(sim.socket_name(), root.path(), args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn an_unwritable_ledger_costs_only_the_history() {
    let (sim, array, _) = seed();
    sim.fabric(|f| f.pull_controller(array, "SCM2"));
    let r = run(
        sim.socket_name(),
        Path::new("/proc/sm-rs-cannot-write-here"),
        &["count"],
    );
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, format!("{SEED_WWID} [1, 1] ok\n"));
    assert!(
        r.stderr
            .contains("warning: cannot keep path high-water marks"),
        "{}",
        r.stderr
    );
}
