//! Topology A on the real stack: one LUN of a dual-controller array seen through two qemu
//! `scsi-hd` paths on two HBAs, as the SAS array of `seeds/000_*`.

use std::time::Duration;

use sm_testkit::realstack::scenario::agreeing;
use sm_testkit::realstack::{
    self, Map, MpathutilCheck, PullScsiPath, SCSI_PATHS, Snapshot, StockPathCount, Topology, Vm,
    both_paths_ready, report, scsi_lun_wwid, scsi_path_port, wait_for_snapshot, walk,
};

const SETTLE: Duration = Duration::from_secs(60);

/// The seed scenario: pull path 2 and push it back, twice; then path 1, twice; a background
/// O_DIRECT write/read-back loop runs on the map throughout.
#[test]
fn realstack_scsi_seed_scenario() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let mut vm = stack.boot(Topology::ScsiTwoHbas).expect("boot topology A");
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut check = MpathutilCheck::new(&mut vm, &mpathutil).expect("mpathutil check");
    let [path1, path2] = SCSI_PATHS;
    let pull2 = PullScsiPath {
        path: path2,
        other: path1,
    };
    let pull1 = PullScsiPath {
        path: path1,
        other: path2,
    };
    let started = std::time::Instant::now();
    let walked = walk(
        &mut vm,
        "A",
        &scsi_lun_wwid(),
        &[(&pull2, 2), (&pull1, 2)],
        &both_paths_ready,
        &mut |vm, state, _| check.check(vm, state),
    )
    .expect("seed scenario on topology A");
    assert_eq!(check.states, 9, "mpathutil checked in every state");
    report(
        "A: seed scenario (4 pulls, 4 pushes, I/O running)",
        started.elapsed(),
    );
    for step in &walked.steps {
        eprintln!("A: {:<22} {:?}  {}", step.state, step.count, step.map);
    }
    eprintln!("A: I/O {:?}", walked.io);

    let healthy = [2, 2];
    let degraded = [1, 2];
    let expected: Vec<[usize; 2]> = std::iter::once(healthy)
        .chain(std::iter::repeat_n([degraded, healthy], 4).flatten())
        .collect();
    assert_eq!(
        walked.counts(),
        expected,
        "[active, max] through the scenario"
    );
    assert_eq!(
        walked.io.failures(),
        0,
        "I/O errors: {:?}",
        walked.io.errors
    );
    assert!(
        walked.io.loops >= 90,
        "too little I/O to prove anything: {:?}",
        walked.io
    );
    for (i, sum) in walked.checksums.iter().enumerate() {
        assert_eq!(sum, &walked.written_checksum, "data changed by step {i}");
    }
    stop(vm);
}

/// The states a path can be in, one after another in one VM: healthy, one path deleted, a
/// path failed by multipathd, a disk offline, all paths gone (map in use, and map unused). In
/// each, multipathd's two views must agree and show exactly that state.
#[test]
fn realstack_scsi_path_states() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let mut vm = stack.boot(Topology::ScsiTwoHbas).expect("boot topology A");
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut check = MpathutilCheck::new(&mut vm, &mpathutil).expect("mpathutil check");
    let [path1, path2] = SCSI_PATHS;
    let wwid = scsi_lun_wwid();
    let device = format!("/dev/mapper/{wwid}");
    let mut count = StockPathCount::default();

    let s = settle(&mut vm, &mut check, "healthy", both_paths_ready);
    let map = s.single_map().expect("one map");
    assert_eq!(map.name, wwid);
    assert_eq!(
        (map.vend.as_str(), map.prod.as_str()),
        ("QEMU", "QEMU HARDDISK")
    );
    assert_eq!((map.features.as_str(), map.hwhandler.as_str()), ("0", "0"));
    assert_eq!(
        map.path_groups.len(),
        2,
        "failover policy: one path per group"
    );
    assert_eq!(map.paths, 2);
    assert_eq!(count.observe(&s.topology[0]), [2, 2]);
    let written = realstack::fill(&mut vm, &device).expect("write the data area");

    // one path deleted (its HBA's disk hot-unplugged) and back
    vm.pull_scsi_path(path2).expect("pull path2");
    let s = settle(&mut vm, &mut check, "path2 deleted", |s| {
        s.disk_on(&scsi_path_port(path2)).is_none()
            && one_map(s, |m| m.listed() == 1 && m.usable() == 1)
    });
    assert_eq!(count.observe(&s.topology[0]), [1, 2]);
    assert_eq!(s.single_map().map(|m| m.paths), Some(1));
    vm.push_scsi_path(path2).expect("push path2");
    settle(&mut vm, &mut check, "path2 back", both_paths_ready);

    // a path failed by multipathd (device-mapper level only), then reinstated
    let s = settle(&mut vm, &mut check, "healthy", both_paths_ready);
    let dev1 = s
        .disk_on(&scsi_path_port(path1))
        .expect("path1 disk")
        .dev
        .clone();
    vm.multipathd_path("fail", &dev1)
        .expect("multipathd fail path");
    let s = settle(&mut vm, &mut check, "path1 failed by multipathd", |s| {
        one_map(s, |m| {
            m.path(&dev1).is_some_and(|p| p.dm_st == "failed") && m.usable() == 1
        })
    });
    let failed = s
        .single_map()
        .and_then(|m| m.path(&dev1))
        .expect("path1 listed");
    eprintln!("A: failed by multipathd: {failed:?}");
    assert_eq!(failed.dev_st, "running");
    // the stock count looks at the checker state only: a healthy disk counts as up
    let expected = if failed.chk_st == "ready" {
        [2, 2]
    } else {
        [1, 2]
    };
    assert_eq!(count.observe(&s.topology[0]), expected);
    vm.multipathd_path("reinstate", &dev1)
        .expect("multipathd reinstate path");
    settle(&mut vm, &mut check, "path1 reinstated", both_paths_ready);

    // a disk offline: the path fails, the disk stays
    vm.set_disk_state(&dev1, "offline").expect("offline");
    let s = settle(&mut vm, &mut check, "path1 offline", |s| {
        one_map(s, |m| {
            m.path(&dev1).is_some_and(|p| {
                p.dm_st == "failed" && p.chk_st == "faulty" && p.dev_st == "offline"
            })
        })
    });
    assert_eq!(count.observe(&s.topology[0]), [1, 2]);
    vm.set_disk_state(&dev1, "running").expect("running");
    settle(&mut vm, &mut check, "path1 running again", both_paths_ready);

    // all paths gone while the LUN is in use (a holder keeps the map open, as tapdisk does on
    // a XenServer host): the map stays, empty, until the paths return
    vm.sh(&format!(
        "setsid -f bash -c 'exec 3<{device}; exec sleep 100000' </dev/null >/dev/null 2>&1"
    ))
    .expect("hold the map open");
    vm.pull_scsi_path(path1).expect("pull path1");
    vm.pull_scsi_path(path2).expect("pull path2");
    let s = settle(&mut vm, &mut check, "all paths gone, map in use", |s| {
        s.disks.is_empty() && one_map(s, |m| m.listed() == 0 && m.paths == 0)
    });
    assert!(s.single_map().is_some_and(|m| m.path_groups.is_empty()));
    assert_eq!(count.observe(&s.topology[0]), [0, 2]);
    vm.push_scsi_path(path1).expect("push path1");
    vm.push_scsi_path(path2).expect("push path2");
    settle(&mut vm, &mut check, "both paths back", both_paths_ready);
    let after = realstack::checksum(&mut vm, &device).expect("read the data area");
    assert_eq!(after, written, "data survived the outage");

    // all paths gone while nobody uses the LUN: multipathd flushes the map with its last
    // path, and builds it anew when a path returns
    vm.sh("pkill -f 'sleep 100000'").expect("release the map");
    vm.pull_scsi_path(path1).expect("pull path1");
    vm.pull_scsi_path(path2).expect("pull path2");
    settle(&mut vm, &mut check, "all paths gone, map unused", |s| {
        s.disks.is_empty() && s.maps.maps.is_empty()
    });
    vm.push_scsi_path(path2).expect("push path2");
    vm.push_scsi_path(path1).expect("push path1");
    settle(
        &mut vm,
        &mut check,
        "both paths back, map rebuilt",
        both_paths_ready,
    );
    let after = realstack::checksum(&mut vm, &device).expect("read the data area");
    assert_eq!(after, written, "data survived the map's removal");
    stop(vm);
}

fn one_map(s: &Snapshot, check: impl Fn(&Map) -> bool) -> bool {
    s.single_map().is_some_and(check)
}

/// Waits for a state, checks that multipathd's JSON and topology views agree on it, and
/// reports how long it took to appear.
fn settle(
    vm: &mut Vm,
    check: &mut MpathutilCheck,
    state: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let (snapshot, took) =
        wait_for_snapshot(vm, &format!("A: {state}"), SETTLE, done).expect("state reached");
    report(&format!("A: {state} until multipathd shows it"), took);
    let snapshot = agreeing(vm, snapshot).expect("multipathd's views agree");
    eprintln!("A: {state}:\n{}", snapshot.topology_text.trim_end());
    check
        .check(vm, state)
        .expect("mpathutil agrees with multipathd");
    snapshot
}

fn stop(vm: Vm) {
    let pid = vm.pid();
    report("VM stop", vm.stop().expect("stop"));
    assert!(!realstack::is_alive(pid), "qemu {pid} left behind");
}
