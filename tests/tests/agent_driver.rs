//! The driver's side of the agent's work: one writer of the counts (`sr_attach` and
//! `sr_update` kick the agent where it answers, and write the counts themselves only where
//! it does not), and `sr_attach` after a crash releasing this SR's LUNs the wwids file still
//! lists though nothing uses them.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::seed_fabric;
use xenapi::Ref;
use xenapi::refs::Sr;

const KEY: &str = "mpath-22202000155fdb615";

fn key(lab: &Lab, sr: &Ref<Sr>, k: &str) -> Option<String> {
    lab.pbd_other_config(0, sr).get(k).cloned()
}

fn sr_update(lab: &Lab, sr: &Ref<Sr>) {
    lab.block_on(lab.session.call("SR.update", vec![sr.as_str().into()]))
        .unwrap();
}

fn add_key(lab: &Lab, sr: &Ref<Sr>, k: &str, v: &str) {
    let pbd = lab.pbd(0, sr);
    lab.block_on(xenapi::api::pbd::add_to_other_config(
        &lab.session,
        &pbd,
        k,
        v,
    ))
    .unwrap();
}

#[test]
fn sr_update_kicks_a_running_agent_and_writes_itself_when_none_runs() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let mut agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    wait_until("[2, 2]", || {
        key(&lab, &sr, KEY).as_deref() == Some("[2, 2]")
    });
    // The agent cannot reach xapi: whatever changes now on the PBD is the driver's doing.
    tap.set_down(true);
    let relay = agent.relay();
    relay.change(&lab.host(0).sim, |f| {
        f.pull_controller(seed_fabric().1, "SCM2")
    });
    wait_until("a pending write", || {
        agent.health()["pending_writes"].as_u64() >= Some(1)
    });
    let kicks = agent.counter("kicks");
    sr_update(&lab, &sr);
    assert!(agent.counter("kicks") > kicks, "sr_update kicked the agent");
    assert_eq!(
        key(&lab, &sr, KEY).as_deref(),
        Some("[2, 2]"),
        "the driver left the count to the agent"
    );
    assert!(
        everything_shown(&lab).contains("the path agent publishes its count"),
        "{}",
        everything_shown(&lab)
    );
    tap.set_down(false);
    wait_until("the agent's [1, 2]", || {
        key(&lab, &sr, KEY).as_deref() == Some("[1, 2]")
    });
    // No agent: nobody follows the paths, and sr_update writes the count itself.
    agent.kill();
    lab.host(0)
        .sim
        .fabric(|f| f.push_controller(seed_fabric().1, "SCM2"));
    assert_eq!(key(&lab, &sr, KEY).as_deref(), Some("[1, 2]"));
    sr_update(&lab, &sr);
    assert_eq!(key(&lab, &sr, KEY).as_deref(), Some("[2, 2]"));
}

/// Another writer (a script, a stock tool) overwrote the key while the agent believes its
/// own value is on the PBD: `xe sr-update` is the administrator's way to ask for the truth
/// now, so the agent re-reads the PBDs in that pass instead of at its periodic resync.
#[test]
fn sr_update_has_the_agent_put_right_a_key_someone_else_changed() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    wait_until("[2, 2]", || {
        key(&lab, &sr, KEY).as_deref() == Some("[2, 2]")
    });
    let pbd = lab.pbd(0, &sr);
    lab.block_on(xenapi::api::pbd::remove_from_other_config(
        &lab.session,
        &pbd,
        KEY,
    ))
    .unwrap();
    add_key(&lab, &sr, KEY, "[0, 2]");
    let resyncs = agent.counter("resyncs");
    sr_update(&lab, &sr);
    wait_until("the agent's resync", || agent.counter("resyncs") > resyncs);
    wait_until("the true [2, 2] again", || {
        key(&lab, &sr, KEY).as_deref() == Some("[2, 2]")
    });
}

#[test]
fn sr_attach_leaves_stale_counts_to_a_running_agent_and_drops_them_when_none_runs() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let mut agent = AgentProc::start(&lab, 0, &tap, &[]);
    let stale = "mpath-3600a0b8000000000000000000000dead";
    // The agent is cut off from xapi, so the key stays unless the driver removes it.
    tap.set_down(true);
    // (The unplug drops every count itself: nothing is in use once it succeeds.)
    lab.unplug(0, &sr).unwrap();
    add_key(&lab, &sr, stale, "[2, 2]");
    let kicks = agent.counter("kicks");
    lab.plug(0, &sr).unwrap();
    assert!(agent.counter("kicks") > kicks, "sr_attach kicked the agent");
    let oc = lab.pbd_other_config(0, &sr);
    assert_eq!(oc.get(stale).map(String::as_str), Some("[2, 2]"), "{oc:?}");
    assert_eq!(oc.get("multipathed").map(String::as_str), Some("true"));
    // The agent, back in touch, removes it (a full read after xapi returns).
    tap.set_down(false);
    wait_until("the agent to drop the stale key", || {
        key(&lab, &sr, stale).is_none()
    });
    // No agent: the plug drops it itself.
    agent.kill();
    lab.unplug(0, &sr).unwrap();
    add_key(&lab, &sr, stale, "[2, 2]");
    lab.plug(0, &sr).unwrap();
    assert_eq!(key(&lab, &sr, stale), None);
    assert_eq!(key(&lab, &sr, "multipathed").as_deref(), Some("true"));
}

/// The host crashes and boots again: `/run` (the in-use registry, the plug state, the
/// links) is empty, xapi has the PBD unplugged and the VDI detached, but the wwids file
/// still lists the LUN and multipathd built its map at boot.
fn crash_and_boot(lab: &Lab, sr: &Ref<Sr>) {
    let root = lab.host(0).sim.root().to_path_buf();
    for dir in ["run/sm-rs", "dev/disk/mpInuse"] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
    let host = lab.host(0).host_ref.clone();
    lab.xapi.modify(|db| {
        for pbd in db.pbds.values_mut() {
            if pbd.sr == sr.as_str() && pbd.host == host {
                pbd.currently_attached = false;
            }
        }
        db.attachments
            .retain(|k, _| !k.ends_with(&format!("/{host}")));
        let dom0 = db.control_domain(&host).map(str::to_owned);
        db.vbds.retain(|_, b| Some(&b.vm) != dom0.as_ref());
    });
}

#[test]
fn sr_attach_after_a_crash_releases_what_the_wwids_file_still_lists() {
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_4_9Xs);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let sim = &lab.host(0).sim;
    assert!(sim.wwids().contains(&SEED.to_string()));
    // A WWID not of this SR (another SR's LUN, a boot disk): never ours to touch.
    let wwids_file = sim.root().join("etc/multipath/wwids");
    let foreign = "3600508b1001c4b5d6e7f8a9b0c1d2e3f";
    let mut text = std::fs::read_to_string(&wwids_file).unwrap();
    text.push_str(&format!("/{foreign}/\n"));
    std::fs::write(&wwids_file, text).unwrap();

    // First crash: something holds the map open at boot (dom0 mounted it): left alone.
    crash_and_boot(&lab, &sr);
    assert!(sim.set_open(SEED, true));
    lab.plug(0, &sr).unwrap();
    assert!(sim.wwids().contains(&SEED.to_string()));
    assert!(sim.maps().contains(&SEED.to_string()));
    assert!(
        everything_shown(&lab).contains("leftover listing kept"),
        "{}",
        everything_shown(&lab)
    );
    sim.set_open(SEED, false);

    // Second crash, nothing holds it: the plug releases it as vdi_detach would.
    crash_and_boot(&lab, &sr);
    lab.plug(0, &sr).unwrap();
    assert!(
        !sim.wwids().contains(&SEED.to_string()),
        "{:?}",
        sim.wwids()
    );
    assert!(!sim.maps().contains(&SEED.to_string()), "{:?}", sim.maps());
    assert!(sim.wwids().contains(&foreign.to_string()));
    // And the LUN attaches again as usual.
    lab.attach(0, &vdi).unwrap();
    assert!(sim.maps().contains(&SEED.to_string()));

    // A LUN in use is never released by a plug (xapi plugs again after its restart).
    let pbd = lab.pbd(0, &sr);
    lab.xapi.modify(|db| {
        db.pbds.get_mut(pbd.as_str()).unwrap().currently_attached = false;
    });
    lab.plug(0, &sr).unwrap();
    assert!(sim.maps().contains(&SEED.to_string()));
    assert!(sim.wwids().contains(&SEED.to_string()));
}
