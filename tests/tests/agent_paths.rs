//! The path agent keeping `mpath-<SCSIid>` true on its own: a controller pulled and pushed
//! back with no sr-update, a consistent reconcile that calls xapi not at all, xapi away
//! during a change, the agent killed and restarted, multipathd unreadable mid-pass, and all
//! paths down (one problem message, one clear message).
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::{Faults, ReplyStyle};
use sm_testkit::scenarios::seed_fabric;
use xenapi::Ref;
use xenapi::refs::Sr;

struct Setup {
    lab: Lab,
    tap: XapiTap,
    agent: AgentProc,
    sr: Ref<Sr>,
    vdi: String,
}

const KEY: &str = "mpath-22202000155fdb615";

/// The seed array on one host, the agent running, the seed LUN attached (the driver kicks
/// the agent, which publishes `[2, 2]`).
fn setup(args: &[&str]) -> Setup {
    setup_in_order(args, false, ReplyStyle::V0_9_8)
}

/// `agent_first`: the agent runs before the SR exists (it finds the SR's PBD when a LUN of
/// it is first in use).
fn setup_in_order(args: &[&str], agent_first: bool, style: ReplyStyle) -> Setup {
    let lab = lab_with(1, || seed_fabric().0, style);
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let mut agent = None;
    if agent_first {
        agent = Some(AgentProc::start(&lab, 0, &tap, args));
    }
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let agent = agent.unwrap_or_else(|| AgentProc::start(&lab, 0, &tap, args));
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let s = Setup {
        lab,
        tap,
        agent,
        sr,
        vdi,
    };
    s.wait_key(Some("[2, 2]"));
    s
}

impl Setup {
    fn key(&self) -> Option<String> {
        self.lab.pbd_other_config(0, &self.sr).get(KEY).cloned()
    }

    fn wait_key(&self, value: Option<&str>) {
        wait_until(&format!("{KEY} = {value:?}"), || {
            self.key().as_deref() == value
        });
    }

    /// Writes of our key through the tap sent since `from`.
    fn key_writes(&self, from: std::time::Instant) -> Vec<String> {
        self.tap
            .calls_since(from)
            .iter()
            .filter(|c| c.is_write() && c.key() == Some(KEY))
            .map(|c| c.method.clone())
            .collect()
    }

    fn pull(&self, controller: &str) {
        let relay = self.agent.relay();
        let ((), sent) = relay.change(&self.lab.host(0).sim, |f| {
            f.pull_controller(seed_fabric().1, controller)
        });
        assert!(sent > 0, "the kernel had something to say");
    }

    fn push(&self, controller: &str) {
        let relay = self.agent.relay();
        let (_, sent) = relay.change(&self.lab.host(0).sim, |f| {
            f.push_controller(seed_fabric().1, controller)
        });
        assert!(sent > 0);
    }

    fn messages(&self, name: &str) -> Vec<String> {
        self.lab
            .xapi
            .db()
            .messages
            .values()
            .filter(|m| m.name == name)
            .map(|m| m.body.clone())
            .collect()
    }
}

#[test]
fn a_pulled_controller_shows_without_sr_update_and_comes_back() {
    pulled_and_pushed_back(ReplyStyle::V0_9_8);
}

#[test]
fn a_pulled_controller_shows_on_the_dom0_multipathd_too() {
    // 0.4.9-xs: its JSON and topology, empty listings, padded vendor strings.
    pulled_and_pushed_back(ReplyStyle::V0_4_9Xs);
}

fn pulled_and_pushed_back(style: ReplyStyle) {
    let s = setup_in_order(&[], false, style);
    // The driver let the agent publish: one writer.
    assert!(everything_shown(&s.lab).contains("the path agent publishes its count"));
    let driver_runs = s.lab.xapi.driver_calls().len();
    let from = std::time::Instant::now();
    s.pull("SCM2");
    s.wait_key(Some("[1, 2]"));
    // At most two calls for the changed key (remove, add), none for anything else.
    let writes = s.key_writes(from);
    assert!(!writes.is_empty() && writes.len() <= 2, "{writes:?}");
    let others: Vec<_> = s
        .tap
        .calls_since(from)
        .iter()
        .filter(|c| c.is_write() && c.key() != Some(KEY))
        .map(|c| format!("{} {:?}", c.method, c.params))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    let from = std::time::Instant::now();
    s.push("SCM2");
    s.wait_key(Some("[2, 2]"));
    assert!(s.key_writes(from).len() <= 2);
    // Nobody ran sr-update (no driver call at all).
    assert_eq!(s.lab.xapi.driver_calls().len(), driver_runs);
    // A line per transition, in SMlog form.
    let log = s.agent.log();
    assert!(log.contains("PATH HAS FAILED: path"), "{log}");
    assert!(log.contains("PATH HAS RECOVERED: path"), "{log}");
    assert!(log.contains("SM: ["), "{log}");
    // Released: the agent drops the key (the driver kicked it instead).
    s.lab.detach(0, &s.vdi).unwrap();
    s.wait_key(None);
}

#[test]
fn a_consistent_reconcile_calls_xapi_not_at_all() {
    let s = setup(&["--reconcile=50ms"]);
    let from = std::time::Instant::now();
    s.agent.wait_passes(5);
    let calls: Vec<_> = s
        .tap
        .calls_since(from)
        .iter()
        .map(|c| c.method.clone())
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
    // Kicks that find nothing changed write nothing either.
    s.agent.kick_passes(2);
    assert!(s.tap.calls_since(from).is_empty());
}

#[test]
fn xapi_away_during_a_change_gets_it_once_when_back() {
    let s = setup(&[]);
    let from = std::time::Instant::now();
    s.tap.set_down(true);
    s.pull("SCM2");
    wait_until("the agent to find xapi away", || {
        let h = s.agent.health();
        h["xapi_reachable"] == false && h["pending_writes"].as_u64() >= Some(1)
    });
    // Still down: a few more passes and storms fold into the same pending write.
    s.push("SCM2");
    s.pull("SCM2");
    s.agent.kick_passes(2);
    assert_eq!(s.key().as_deref(), Some("[2, 2]"));
    s.tap.set_down(false);
    let back = std::time::Instant::now();
    s.wait_key(Some("[1, 2]"));
    // A figure, not a check: the goal is 2 s.
    eprintln!(
        "right {:.0} ms after xapi came back",
        back.elapsed().as_secs_f64() * 1e3
    );
    let writes = s.key_writes(from);
    assert!(writes.len() <= 2, "written once (remove, add): {writes:?}");
    wait_until("nothing pending", || {
        s.agent.health()["pending_writes"].as_u64() == Some(0)
    });
}

#[test]
fn a_killed_agent_converges_on_restart_without_rewriting() {
    let mut s = setup(&[]);
    s.agent.kill();
    // Changed while nobody watched: the uevents are lost.
    let relay = s.agent.relay();
    let ((), sent) = relay.change(&s.lab.host(0).sim, |f| {
        f.pull_controller(seed_fabric().1, "SCM2")
    });
    assert_eq!(sent, 0, "nobody listens");
    let from = std::time::Instant::now();
    s.agent.restart();
    s.wait_key(Some("[1, 2]"));
    let writes: Vec<_> = s
        .tap
        .calls_since(from)
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {:?}", c.method, c.params))
        .collect();
    assert!(writes.len() <= 2, "only the changed key: {writes:?}");
    // Killed and restarted with nothing changed: no write at all.
    s.agent.kill();
    let from = std::time::Instant::now();
    s.agent.restart();
    s.agent.kick_passes(2);
    let writes: Vec<_> = s
        .tap
        .calls_since(from)
        .iter()
        .filter(|c| c.is_write())
        .map(|c| c.method.clone())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn an_unreadable_multipathd_never_publishes_a_number() {
    let s = setup(&[]);
    // Nor can the kernel's dm status be read (no dmsetup): no source at all.
    std::fs::remove_file(s.lab.dir.join("bin/dmsetup")).unwrap();
    let from = std::time::Instant::now();
    let sim = &s.lab.host(0).sim;
    // Every command answers `timeout` (a reconfigure holding the lock) from now on.
    let relay = s.agent.relay();
    let before = sm_testkit::agent_lab::uevents::KernelView::read(sim);
    sim.fabric(|f| f.pull_controller(seed_fabric().1, "SCM2"));
    let after = sm_testkit::agent_lab::uevents::KernelView::read(sim);
    sim.multipathd().inject(Faults {
        timeouts: 100_000,
        ..Faults::default()
    });
    for e in relay.events_between(&before, &after) {
        relay.send(&e);
    }
    wait_until("the agent to find multipathd unreadable", || {
        s.agent.health()["multipathd_readable"] == false
    });
    s.agent.kick_passes(2);
    assert_eq!(
        s.key().as_deref(),
        Some("[2, 2]"),
        "the last true value stays"
    );
    assert!(s.key_writes(from).is_empty());
    let status = s.agent.call("status").unwrap();
    assert!(
        status["luns"][0]["unknown_because"]
            .as_str()
            .is_some_and(|w| w.contains("multipathd")),
        "{status}"
    );
    // multipathd answers again: the truth.
    sim.multipathd().inject(Faults::default());
    s.agent.call("kick").unwrap();
    s.wait_key(Some("[1, 2]"));
}

#[test]
fn all_paths_down_is_one_problem_and_one_clear_message() {
    let s = setup(&[]);
    let relay = s.agent.relay();
    let sim = &s.lab.host(0).sim;
    let array = seed_fabric().1;
    relay.change(sim, |f| {
        f.fail_port(array, "SCM1-P0");
        f.fail_port(array, "SCM2-P0");
    });
    s.wait_key(Some("[0, 2]"));
    wait_until("the problem message", || {
        !s.messages("MULTIPATH_ALL_PATHS_DOWN").is_empty()
    });
    // More events during the episode: no second message.
    relay.change(sim, |f| f.fail_port(array, "SCM1-P0"));
    s.agent.kick_passes(2);
    let problems = s.messages("MULTIPATH_ALL_PATHS_DOWN");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let body = &problems[0];
    let host = s.lab.host(0);
    for needed in [SEED, host.uuid.as_str(), "since", "Seed"] {
        assert!(body.contains(needed), "{needed} not in {body}");
    }
    let status = s.agent.call("status").unwrap();
    assert!(
        status["luns"][0]["all_paths_down_since"].is_string(),
        "{status}"
    );
    relay.change(sim, |f| f.restore_port(array, "SCM2-P0"));
    s.wait_key(Some("[1, 2]"));
    relay.change(sim, |f| f.restore_port(array, "SCM1-P0"));
    s.wait_key(Some("[2, 2]"));
    wait_until("the clear message", || {
        !s.messages("MULTIPATH_PATHS_RESTORED").is_empty()
    });
    s.agent.kick_passes(2);
    assert_eq!(s.messages("MULTIPATH_ALL_PATHS_DOWN").len(), 1);
    assert_eq!(s.messages("MULTIPATH_PATHS_RESTORED").len(), 1);
}

#[test]
fn sigterm_drains_and_the_driver_publishes_when_no_agent_runs() {
    let mut s = setup(&[]);
    let status = s.agent.stop().unwrap();
    assert!(status.success(), "{status}\n{}", s.agent.log());
    assert!(!s.agent.socket().exists());
    // No agent: the driver writes the counts itself, as before.
    s.lab.detach(0, &s.vdi).unwrap();
    assert_eq!(s.key(), None);
    s.lab.attach(0, &s.vdi).unwrap();
    assert_eq!(s.key().as_deref(), Some("[2, 2]"));
}

#[test]
fn an_sr_created_after_the_agent_started_is_found() {
    let s = setup_in_order(&[], true, ReplyStyle::V0_9_8);
    s.pull("SCM2");
    s.wait_key(Some("[1, 2]"));
}

#[test]
fn a_key_no_lun_in_use_backs_is_removed() {
    let mut s = setup(&[]);
    // Left by a crash: a LUN released while nobody removed its key.
    let stale = "mpath-3600a0b8000000000000000000000dead";
    let pbd = s.lab.pbd(0, &s.sr);
    s.lab
        .block_on(xenapi::api::pbd::add_to_other_config(
            &s.lab.session,
            &pbd,
            stale,
            "[2, 2]",
        ))
        .unwrap();
    // Found at the next full read of this host's PBDs: a restart here.
    s.agent.kill();
    s.agent.restart();
    wait_until("the stale key to go", || {
        !s.lab.pbd_other_config(0, &s.sr).contains_key(stale)
    });
    assert_eq!(s.key().as_deref(), Some("[2, 2]"));
}

#[test]
fn sigterm_drains_pending_writes_until_its_deadline() {
    let mut s = setup(&["--drain=3s"]);
    s.tap.set_down(true);
    s.pull("SCM2");
    wait_until("a pending write", || {
        s.agent.health()["pending_writes"].as_u64() >= Some(1)
    });
    // Stopped while xapi is away; xapi answers again during the drain.
    let tap = &s.tap;
    let status = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            tap.set_down(false);
        });
        s.agent.stop()
    });
    assert!(status.unwrap().success());
    assert_eq!(s.key().as_deref(), Some("[1, 2]"), "{}", s.agent.log());
    // xapi away for good (from before the start: the agent writes to the PBDs it read
    // last time): it gives up at the deadline and says what it leaves.
    s.tap.set_down(true);
    s.agent.restart();
    s.push("SCM2");
    wait_until("a pending write", || {
        s.agent.health()["pending_writes"].as_u64() >= Some(1)
    });
    s.agent.stop().unwrap();
    let log = s.agent.log();
    assert!(log.contains("stopping with 1 writes"), "{log}");
}
