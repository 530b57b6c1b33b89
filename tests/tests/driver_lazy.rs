//! Lazy activation under pressure: refusals that change nothing, a kill at every step of
//! attach and detach repaired by the next call, concurrent calls on one LUN and on many, and
//! the HA statefile path (a generated config attached without xapi).
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_plugin::host::lock;
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::{Faults, ReplyStyle};
use sm_testkit::scenarios::{large_fabric, seed_fabric};
use std::fs::OpenOptions;
use std::time::{Duration, Instant};
use xenapi::Ref;
use xenapi::refs::Sr;

fn seed_sr(lab: &Lab) -> (Ref<Sr>, String) {
    multipath_on(lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    (sr, vdi)
}

fn refusal_changes_nothing(style: ReplyStyle) {
    let lab = lab_with(1, || seed_fabric().0, style);
    let (sr, vdi) = seed_sr(&lab);
    lab.attach(0, &vdi).unwrap();
    let key = format!("mpath-{SEED}");
    assert!(lab.host(0).sim.set_open(SEED, true));
    let before = lab.pbd_other_config(0, &sr);
    let refused = lab.detach(0, &vdi).unwrap_err();
    assert_eq!(refused.code, "VDI_IN_USE", "{refused}");
    assert_eq!(lun_state(&lab, 0, SEED), ATTACHED);
    assert_eq!(lab.pbd_other_config(0, &sr), before);
    assert!(before.contains_key(&key));
    // The driver says why, with the SCSIid, in its log.
    let said = everything_shown(&lab);
    assert!(
        said.contains(&format!("the multipath map of LUN {SEED} is open")),
        "{said}"
    );
    // The SR cannot be unplugged meanwhile (xapi's own check, then the driver's).
    let call = lab.sm_call(0, &sr, "sr_detach", &[], None);
    let (code, _) = lab
        .run_driver(0, "lunohba", &call.to_xml())
        .response
        .unwrap_err();
    assert_eq!(code, 16);
    assert_eq!(lun_state(&lab, 0, SEED), ATTACHED);
    // Closed, the map goes.
    lab.host(0).sim.set_open(SEED, false);
    lab.detach(0, &vdi).unwrap();
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
    assert!(!lab.pbd_other_config(0, &sr).contains_key(&key));
    lab.unplug(0, &sr).unwrap();
}

#[test]
fn an_open_map_is_refused_and_nothing_changes() {
    refusal_changes_nothing(ReplyStyle::V0_9_8);
}

#[test]
fn an_open_map_is_refused_by_a_094_daemon_too() {
    // multipathd 0.9.4 answers a bare `fail` for an open map: the driver looks again.
    refusal_changes_nothing(ReplyStyle::V0_9_4);
}

#[test]
fn an_open_map_is_refused_by_the_dom0_daemon_too() {
    // 0.4.9-xs answers a bare `fail` for an open map, as 0.9.4 does.
    refusal_changes_nothing(ReplyStyle::V0_4_9Xs);
}

#[test]
fn lazy_activation_on_the_dom0_multipathd() {
    // The dom0's 0.4.9-xs: `add map` only adopts a table that exists (answering `ok` after
    // 4.8 s here, as there), `find_multipaths strict` means nothing, XenServer's patch
    // builds maps only for listed WWIDs, `show map X raw format` does not exist.
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_4_9Xs);
    let (sr, vdi) = seed_sr(&lab);
    let sim = &lab.host(0).sim;
    assert!(
        sim.maps().is_empty(),
        "both paths are there, the LUN is not in use: no map"
    );
    let key = format!("mpath-{SEED}");
    lab.attach(0, &vdi).unwrap();
    assert_eq!(lun_state(&lab, 0, SEED), ATTACHED);
    assert_eq!(
        lab.pbd_other_config(0, &sr).get(&key).map(String::as_str),
        Some("[2, 2]")
    );
    let sent = sim.multipathd().commands();
    assert!(
        !sent.iter().any(|c| c.starts_with("add map")),
        "the map came from add path; add map would have cost 4.8 s for nothing: {sent:?}"
    );
    // sr_update reads the counts of the LUN in use.
    let update = lab.sm_call(0, &sr, "sr_update", &[], None);
    let run = lab.run_driver(0, "lunohba", &update.to_xml());
    assert!(run.response.is_ok(), "{:?}", run.response);
    lab.detach(0, &vdi).unwrap();
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
    assert!(!sim.wwids().contains(&SEED.to_string()));
    assert!(!lab.pbd_other_config(0, &sr).contains_key(&key));
    // A detach of a LUN already released asks for no `remove map` (0.4.9 takes 4.8 s to
    // fail on a missing map).
    let before = sim.multipathd().commands().len();
    let call = lab.sm_call(0, &sr, "vdi_detach", &[], Some(&vdi));
    assert!(
        lab.run_driver(0, "lunohba", &call.to_xml())
            .response
            .is_ok()
    );
    let sent = sim.multipathd().commands();
    assert!(
        !sent[before..].iter().any(|c| c.starts_with("remove map")),
        "{sent:?}"
    );
    lab.unplug(0, &sr).unwrap();
}

/// Where a call is stopped before it is killed.
#[derive(Clone, Copy, Debug)]
enum Block {
    /// Another call holds the LUN's lock.
    LunLock,
    /// multipath holds the wwids file's lock.
    WwidsLock,
    /// multipathd did the command but its reply is late.
    Reply(&'static str),
    /// udev has not made the map's node yet.
    Udev,
    /// xapi does not answer.
    Xapi,
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` on the seed LUN, stops it at `block`, kills it, and returns the state.
fn kill_during(lab: &Lab, sr: &Ref<Sr>, vdi: &str, command: &str, block: Block) -> LunState {
    let sim = &lab.host(0).sim;
    let root = mpathutil::HostRoot::new(sim.root());
    let args: &[&str] = if command == "vdi_attach" {
        &["true"]
    } else {
        &[]
    };
    let call = lab.sm_call(0, sr, command, args, Some(vdi));
    let record = sim.root().join("run/sm-rs/in-use").join(SEED);
    let sent_before = sim.multipathd().commands().len();
    let mut lun_lock = None;
    let mut wwids_lock = None;
    let mut xapi_lock = None;
    match block {
        Block::LunLock => {
            lun_lock = Some(lock::acquire(&root, SEED, Duration::from_secs(1)).unwrap())
        }
        Block::WwidsLock => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(sim.root().join("etc/multipath/wwids"))
                .unwrap();
            rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::LockExclusive).unwrap();
            wwids_lock = Some(file);
        }
        Block::Reply(prefix) => sim.multipathd().inject(Faults {
            stall_command: Some((prefix.to_string(), Duration::from_secs(60))),
            ..Faults::default()
        }),
        Block::Udev => sim.hold_udev(true),
        Block::Xapi => {}
    }
    let mut child = if matches!(block, Block::Xapi) {
        let child = lab.spawn_driver(0, "lunohba", &call.to_xml()).unwrap();
        // The LUN's part is done when its record says so; xapi is held from then on.
        if command == "vdi_attach" {
            wait_until("the attach to be recorded", || {
                std::fs::read_to_string(&record).is_ok_and(|r| r.contains("\"attached\""))
            });
        } else {
            wait_until("the release", || !record.exists());
        }
        xapi_lock = Some(lab.xapi.db());
        child
    } else {
        lab.spawn_driver(0, "lunohba", &call.to_xml()).unwrap()
    };
    match block {
        Block::LunLock => std::thread::sleep(Duration::from_millis(300)),
        Block::WwidsLock if command == "vdi_attach" => wait_until("the record", || record.exists()),
        // Not `lun_state`: reading the wwids file here would drop our POSIX lock on it.
        Block::WwidsLock => wait_until("the link to go", || {
            std::fs::symlink_metadata(sim.root().join("dev/disk/mpInuse").join(SEED)).is_err()
        }),
        Block::Reply(prefix) => wait_until(prefix, || {
            sim.multipathd().commands()[sent_before..]
                .iter()
                .any(|c| c.starts_with(prefix))
        }),
        Block::Udev => wait_until("the map", || sim.maps().iter().any(|m| m == SEED)),
        Block::Xapi => std::thread::sleep(Duration::from_millis(100)),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(xapi_lock);
    drop(lun_lock);
    drop(wwids_lock);
    let state = lun_state(lab, 0, SEED);
    sim.multipathd().inject(Faults::default());
    sim.hold_udev(false);
    state
}

#[test]
fn a_kill_at_every_step_of_attach_is_repaired_by_the_next_call() {
    let lab = seed_lab();
    let (sr, vdi) = seed_sr(&lab);
    let key = format!("mpath-{SEED}");
    let cases = [
        (Block::LunLock, RELEASED),
        (
            Block::WwidsLock,
            LunState {
                record: true,
                ..RELEASED
            },
        ),
        (
            Block::Reply("add path"),
            LunState {
                link: false,
                ..ATTACHED
            },
        ),
        (
            Block::Udev,
            LunState {
                node: false,
                link: false,
                ..ATTACHED
            },
        ),
        (Block::Xapi, ATTACHED),
    ];
    for (block, expected) in cases {
        for then in ["vdi_attach", "vdi_detach"] {
            let state = kill_during(&lab, &sr, &vdi, "vdi_attach", block);
            assert_eq!(state, expected, "killed at {block:?}");
            if then == "vdi_attach" {
                lab.attach(0, &vdi)
                    .unwrap_or_else(|f| panic!("after {block:?}: {f}"));
                assert_eq!(lun_state(&lab, 0, SEED), ATTACHED, "after {block:?}");
                assert_eq!(lab.pbd_other_config(0, &sr)[&key], "[2, 2]");
                lab.detach(0, &vdi).unwrap();
            } else {
                let call = lab.sm_call(0, &sr, "vdi_detach", &[], Some(&vdi));
                let run = lab.run_driver(0, "lunohba", &call.to_xml());
                assert!(run.response.is_ok(), "after {block:?}: {run:?}");
            }
            assert_eq!(
                lun_state(&lab, 0, SEED),
                RELEASED,
                "after {block:?}, {then}"
            );
            assert!(!lab.pbd_other_config(0, &sr).contains_key(&key));
        }
    }
    lab.unplug(0, &sr).unwrap();
}

#[test]
fn a_kill_at_every_step_of_detach_is_repaired_by_the_next_call() {
    let lab = seed_lab();
    let (sr, vdi) = seed_sr(&lab);
    let cases = [
        (Block::LunLock, ATTACHED),
        (
            Block::WwidsLock,
            LunState {
                link: false,
                ..ATTACHED
            },
        ),
        (
            Block::Reply("remove map"),
            LunState {
                record: true,
                ..RELEASED
            },
        ),
        (Block::Xapi, RELEASED),
    ];
    for (block, expected) in cases {
        for then in ["vdi_detach", "vdi_attach"] {
            lab.attach(0, &vdi).unwrap();
            let state = kill_during(&lab, &sr, &vdi, "vdi_detach", block);
            assert_eq!(state, expected, "killed at {block:?}");
            if then == "vdi_detach" {
                lab.detach(0, &vdi)
                    .unwrap_or_else(|f| panic!("after {block:?}: {f}"));
                assert_eq!(lun_state(&lab, 0, SEED), RELEASED, "after {block:?}");
            } else {
                let call = lab.sm_call(0, &sr, "vdi_attach", &["true"], Some(&vdi));
                let run = lab.run_driver(0, "lunohba", &call.to_xml());
                assert!(run.response.is_ok(), "after {block:?}: {run:?}");
                assert_eq!(lun_state(&lab, 0, SEED), ATTACHED, "after {block:?}");
                lab.detach(0, &vdi).unwrap();
            }
        }
    }
}

#[test]
fn sixteen_concurrent_calls_on_one_lun_leave_it_whole() {
    let lab = seed_lab();
    let (sr, vdi) = seed_sr(&lab);
    let key = format!("mpath-{SEED}");
    for round in 0..3 {
        let children: Vec<_> = (0..16)
            .map(|i| {
                let (command, args): (&str, &[&str]) = if (i + round) % 2 == 0 {
                    ("vdi_attach", &["true"])
                } else {
                    ("vdi_detach", &[])
                };
                let call = lab.sm_call(0, &sr, command, args, Some(&vdi));
                (
                    command,
                    lab.spawn_driver(0, "lunohba", &call.to_xml()).unwrap(),
                )
            })
            .collect();
        for (command, child) in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success());
            assert!(!stdout.contains("<fault>"), "{command}: {stdout}");
        }
        let state = lun_state(&lab, 0, SEED);
        let keyed = lab.pbd_other_config(0, &sr).contains_key(&key);
        assert!(
            (state == ATTACHED && keyed) || (state == RELEASED && !keyed),
            "round {round}: torn state {state:?}, key {keyed}"
        );
    }
    let call = lab.sm_call(0, &sr, "vdi_detach", &[], Some(&vdi));
    assert!(
        lab.run_driver(0, "lunohba", &call.to_xml())
            .response
            .is_ok()
    );
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
}

#[test]
fn sixteen_concurrent_attaches_and_detaches_on_sixteen_luns() {
    let lab = lab_with(1, || large_fabric(16), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "FC", &[]).unwrap();
    let vdis = lab.claim_all(&sr).unwrap();
    assert_eq!(vdis.len(), 16);
    let host = lab.host(0).host_ref.clone();
    let run_all = |attach: bool| {
        lab.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (vdi, _, _) in &vdis {
                let (xapi, host, vdi) = (lab.xapi.clone(), host.clone(), vdi.clone());
                tasks.spawn(async move {
                    if attach {
                        xapi.attach_vdi(&host, &vdi, true).await.map(drop)
                    } else {
                        xapi.detach_vdi(&host, &vdi).await
                    }
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
        })
    };
    run_all(true);
    let keys = lab.pbd_other_config(0, &sr);
    for (_, _, scsiid) in &vdis {
        assert_eq!(lun_state(&lab, 0, scsiid), ATTACHED, "{scsiid}");
        assert_eq!(keys[&format!("mpath-{scsiid}")], "[4, 4]");
    }
    run_all(false);
    for (_, _, scsiid) in &vdis {
        assert_eq!(lun_state(&lab, 0, scsiid), RELEASED, "{scsiid}");
    }
    let keys = lab.pbd_other_config(0, &sr);
    assert!(keys.keys().all(|k| !k.starts_with("mpath-")), "{keys:?}");
    lab.unplug(0, &sr).unwrap();
}

#[test]
fn a_generated_config_attaches_without_xapi_with_its_own_multipath_setting() {
    let lab = seed_lab();
    let (sr, vdi) = seed_sr(&lab);
    let call = lab.sm_call(0, &sr, "vdi_generate_config", &[], Some(&vdi));
    let run = lab.run_driver(0, "lunohba", &call.to_xml());
    let config = match run.response {
        Ok(xenapi::Value::String(s)) => s,
        other => panic!("{other:?}"),
    };
    assert!(
        config.contains("<methodName>vdi_attach_from_config</methodName>"),
        "{config}"
    );
    assert!(config.contains("<name>multipathing</name>"), "{config}");
    assert!(!config.contains("session_ref"), "{config}");
    // The host's setting changes afterwards: the config keeps the one it was made with.
    lab.host_config(0, &[("multipathing", Some("false"))])
        .unwrap();
    lab.unplug(0, &sr).unwrap();
    // At boot, before xapi: static-vdis runs the generated call as it is.
    let run = lab.run_driver(0, "lunohba", &config);
    let attached = run
        .response
        .unwrap_or_else(|f| panic!("{f:?} {}", run.stderr));
    let params = attached.as_struct().unwrap()["params"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(params, format!("/dev/disk/mpInuse/{SEED}"));
    assert_eq!(lun_state(&lab, 0, SEED), ATTACHED);
    let detach = config.replace("vdi_attach_from_config", "vdi_detach_from_config");
    assert!(lab.run_driver(0, "lunohba", &detach).response.is_ok());
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
}

#[test]
fn an_unplug_undoes_an_attach_a_kill_left_half_done() {
    let lab = seed_lab();
    let (sr, vdi) = seed_sr(&lab);
    let state = kill_during(&lab, &sr, &vdi, "vdi_attach", Block::Reply("add path"));
    assert!(state.record && state.map, "{state:?}");
    // xapi was told the attach failed, so nothing uses the LUN: the unplug cleans it up.
    lab.unplug(0, &sr).unwrap();
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
    assert!(lab.host(0).sim.maps().is_empty());
}
