//! The kernel's dm status as the agent's second source: while multipathd is down or
//! answering `timeout`, the counts come from the multipath tables the kernel keeps (read
//! through `dmsetup status`, which the host simulator answers from the same maps), and no
//! key ever shows a number that was not true.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::{Faults, ReplyStyle};
use sm_testkit::scenarios::seed_fabric;
use std::time::Instant;
use xenapi::Ref;
use xenapi::refs::Sr;

const KEY: &str = "mpath-22202000155fdb615";

struct Setup {
    lab: Lab,
    tap: XapiTap,
    agent: AgentProc,
    sr: Ref<Sr>,
}

fn setup(style: ReplyStyle) -> Setup {
    let lab = lab_with(1, || seed_fabric().0, style);
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let s = Setup {
        lab,
        tap,
        agent,
        sr,
    };
    s.wait_key("[2, 2]");
    s
}

impl Setup {
    fn key(&self) -> Option<String> {
        self.lab.pbd_other_config(0, &self.sr).get(KEY).cloned()
    }

    fn wait_key(&self, value: &str) {
        wait_until(&format!("{KEY} = {value}"), || {
            self.key().as_deref() == Some(value)
        });
    }

    /// Every value the agent gave the key since `from`.
    fn values_written(&self, from: Instant) -> Vec<String> {
        self.tap
            .calls_since(from)
            .iter()
            .filter(|c| c.method.ends_with("add_to_other_config") && c.key() == Some(KEY))
            .filter_map(|c| c.params.get(2).and_then(|v| v.as_str()).map(str::to_string))
            .collect()
    }

    fn change(&self, f: impl FnOnce(&mut sm_testkit::fabric::Fabric)) -> usize {
        self.agent.relay().change(&self.lab.host(0).sim, f).1
    }
}

#[test]
fn the_kernel_status_line_the_simulator_prints_is_what_the_kernel_prints() {
    let s = setup(ReplyStyle::V0_9_8);
    let out = std::process::Command::new(s.lab.dir.join("bin/dmsetup"))
        .args(["status", "--target", "multipath"])
        .env("SM_RS_ROOT", s.lab.host(0).sim.root())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let maps = sm_plugin::host::dmstatus::parse_listing(&text).unwrap();
    let status = &maps[SEED];
    assert_eq!(
        (status.active_paths(), status.total_paths()),
        (2, 2),
        "{text}"
    );
    // The paths are named as the kernel names them, and each is one of the LUN's disks.
    let disks = sm_plugin::host::dmstatus::disks_by_dev_t(&mpathutil::HostRoot::new(
        s.lab.host(0).sim.root(),
    ));
    for path in status.groups.iter().flat_map(|g| &g.paths) {
        assert!(
            disks.contains_key(&path.dev_t),
            "{} in {disks:?}",
            path.dev_t
        );
    }
}

#[test]
fn multipathd_down_mid_storm_the_counts_come_from_the_kernel() {
    let s = setup(ReplyStyle::V0_9_8);
    let from = Instant::now();
    let sim = &s.lab.host(0).sim;
    let array = seed_fabric().1;
    // A storm begins; multipathd stops in the middle of it (a restart that has not come
    // back, a crash).
    assert!(s.change(|f| f.pull_controller(array, "SCM2")) > 0);
    s.change(|f| {
        f.push_controller(array, "SCM2");
    });
    let mut daemon =
        mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name())).unwrap();
    let _ = daemon.send("shutdown");
    wait_until("multipathd to stop", || !sim.multipathd().running());
    s.change(|f| f.pull_controller(array, "SCM2"));
    wait_until("a pass from the kernel's view", || {
        let h = s.agent.health();
        h["multipathd_readable"] == false && h["counters"]["kernel_reads"].as_u64() >= Some(1)
    });
    s.wait_key("[1, 2]");
    let status = s.agent.call("status").unwrap();
    assert_eq!(status["luns"][0]["active"], 1, "{status}");
    assert!(status["luns"][0]["unknown_because"].is_null(), "{status}");
    // The log names the kernel as the source, and the path by its device.
    let log = s.agent.log();
    assert!(log.contains("from the kernel's dm status"), "{log}");
    assert!(log.contains("PATH HAS FAILED"), "{log}");
    // Every value the key was given is one that was true at some point: never [0, 2].
    for v in s.values_written(from) {
        assert!(v == "[1, 2]" || v == "[2, 2]", "{v} was published");
    }
    // Consistent now: more passes write nothing.
    let quiet = Instant::now();
    s.agent.kick_passes(2);
    assert!(s.values_written(quiet).is_empty());
}

#[test]
fn multipathd_timing_out_mid_storm_never_publishes_a_false_number() {
    let s = setup(ReplyStyle::V0_9_8);
    let from = Instant::now();
    let sim = &s.lab.host(0).sim;
    let array = seed_fabric().1;
    for i in 0..20 {
        if i == 5 {
            // A reconfigure holds multipathd's lock from here on: every command answers
            // `timeout`.
            sim.multipathd().inject(Faults {
                timeouts: 1_000_000,
                ..Faults::default()
            });
        }
        s.change(|f| f.pull_controller(array, "SCM2"));
        s.change(|f| {
            f.push_controller(array, "SCM2");
        });
    }
    s.change(|f| f.pull_controller(array, "SCM2"));
    s.wait_key("[1, 2]");
    s.agent.kick_passes(2);
    assert_eq!(s.agent.health()["multipathd_readable"], false);
    assert_eq!(s.key().as_deref(), Some("[1, 2]"));
    for v in s.values_written(from) {
        assert!(v == "[1, 2]" || v == "[2, 2]", "{v} was published");
    }
    // multipathd answers again: the same truth, nothing rewritten.
    sim.multipathd().inject(Faults::default());
    let back = Instant::now();
    s.agent.kick_passes(2);
    assert_eq!(s.agent.health()["multipathd_readable"], true);
    assert_eq!(s.key().as_deref(), Some("[1, 2]"));
    assert!(s.values_written(back).is_empty());
}

#[test]
fn all_paths_down_while_multipathd_is_away_is_still_seen() {
    // The dom0's daemon: its lock blocks rather than answering `timeout`, so it is stopped.
    let s = setup(ReplyStyle::V0_4_9Xs);
    let sim = &s.lab.host(0).sim;
    let array = seed_fabric().1;
    let mut daemon =
        mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name())).unwrap();
    let _ = daemon.send("shutdown");
    wait_until("multipathd to stop", || !sim.multipathd().running());
    s.change(|f| {
        f.fail_port(array, "SCM1-P0");
        f.fail_port(array, "SCM2-P0");
    });
    s.wait_key("[0, 2]");
    wait_until("the problem message", || {
        s.lab
            .xapi
            .db()
            .messages
            .values()
            .any(|m| m.name == "MULTIPATH_ALL_PATHS_DOWN")
    });
}
