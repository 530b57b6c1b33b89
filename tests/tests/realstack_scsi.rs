//! Topology A on the real stack: one LUN of a dual-controller array seen through two qemu
//! `scsi-hd` paths on two HBAs, as the SAS array of `seeds/000_*`.

use std::time::Duration;

use sm_testkit::realstack::scenario::settled;
use sm_testkit::realstack::{
    self, Daemon, Map, MpathutilCheck, PullScsiPath, SCSI_PATHS, ScsiPath, SimMirror, Snapshot,
    StockPathCount, Topology, Vm, both_paths_ready, report, scsi_lun_wwid, scsi_path_port,
    wait_for_snapshot, walk,
};

const SETTLE: Duration = Duration::from_secs(60);

/// The seed scenario: pull path 2 and push it back, twice; then path 1, twice; a background
/// O_DIRECT write/read-back loop runs on the map throughout.
#[test]
fn realstack_scsi_seed_scenario() {
    seed_scenario(Daemon::Debian094);
}

/// The same on the dom0's multipathd with stock sm's multipath.conf, the map made as stock
/// XenServer makes it.
#[test]
fn realstack_scsi_seed_scenario_dom0_049xs() {
    seed_scenario(Daemon::Dom0Xs);
}

fn seed_scenario(daemon: Daemon) {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    if !stack.has(daemon).expect("daemon") {
        return;
    }
    let mut vm = stack
        .boot_on(Topology::ScsiTwoHbas, daemon)
        .expect("boot topology A");
    vm.make_maps_stock_way().expect("make the map");
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut check = MpathutilCheck::new(&mut vm, &mpathutil).expect("mpathutil check");
    let mut mirror = SimMirror::for_topology_on(Topology::ScsiTwoHbas, daemon).expect("simulator");
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
        &mut [&mut check, &mut mirror],
    )
    .expect("seed scenario on topology A");
    assert_eq!(check.states, 9, "mpathutil checked in every state");
    assert_eq!(mirror.states, 9, "the simulator compared in every state");
    report(
        &format!("A: seed scenario on {daemon} (4 pulls, 4 pushes, I/O running)"),
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
    walked.assert_data_intact(90);
    stop(vm);
}

/// The states a path can be in, one after another in one VM: healthy, one path deleted, a
/// path failed by multipathd, a disk offline, all paths gone (map in use, and map unused). In
/// each, multipathd's two views must agree and show exactly that state, `mpathutil` must say
/// what multipathd says, and the multipathd simulator, given the same changes, must print
/// what the real daemon prints.
#[test]
fn realstack_scsi_path_states() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let vm = stack.boot(Topology::ScsiTwoHbas).expect("boot topology A");
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut bench = Bench::new(vm, &mpathutil);
    let [path1, path2] = SCSI_PATHS;
    let wwid = scsi_lun_wwid();
    let device = format!("/dev/mapper/{wwid}");
    let mut count = StockPathCount::default();

    let s = bench.settle("healthy", both_paths_ready);
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
    let written = realstack::fill(&mut bench.vm, &device).expect("write the data area");

    // one path deleted (its HBA's disk hot-unplugged) and back
    bench.pull(path2);
    let s = bench.settle("path2 deleted", |s| {
        s.disk_on(&scsi_path_port(path2)).is_none()
            && one_map(s, |m| m.listed() == 1 && m.usable() == 1)
    });
    assert_eq!(count.observe(&s.topology[0]), [1, 2]);
    assert_eq!(s.single_map().map(|m| m.paths), Some(1));
    bench.push(path2);
    bench.settle("path2 back", both_paths_ready);

    // a path failed by multipathd (device-mapper level only), then reinstated
    let s = bench.settle("healthy", both_paths_ready);
    let dev1 = s
        .disk_on(&scsi_path_port(path1))
        .expect("path1 disk")
        .dev
        .clone();
    bench.multipathd("fail", path1, &dev1);
    let s = bench.settle("path1 failed by multipathd", |s| {
        one_map(s, |m| {
            m.path(&dev1).is_some_and(|p| p.dm_st == "failed") && m.usable() == 1
        })
    });
    let failed = s
        .single_map()
        .and_then(|m| m.path(&dev1))
        .expect("path1 listed");
    assert_eq!(failed.dev_st, "running");
    // the stock count looks at the checker state only
    let expected = if failed.chk_st == "ready" {
        [2, 2]
    } else {
        [1, 2]
    };
    assert_eq!(count.observe(&s.topology[0]), expected);
    bench.multipathd("reinstate", path1, &dev1);
    bench.settle("path1 reinstated", both_paths_ready);

    // a disk offline: the path fails, the disk stays
    bench.offline(path1, &dev1, true);
    let s = bench.settle("path1 offline", |s| {
        one_map(s, |m| {
            m.path(&dev1).is_some_and(|p| {
                p.dm_st == "failed" && p.chk_st == "faulty" && p.dev_st == "offline"
            })
        })
    });
    assert_eq!(count.observe(&s.topology[0]), [1, 2]);
    bench.offline(path1, &dev1, false);
    bench.settle("path1 running again", both_paths_ready);

    // all paths gone while the LUN is in use (a holder keeps the map open, as tapdisk does on
    // a XenServer host): the map stays, empty, until the paths return
    bench.hold(&wwid, true);
    bench.pull(path1);
    bench.pull(path2);
    let s = bench.settle("all paths gone, map in use", |s| {
        s.disks.is_empty() && one_map(s, |m| m.listed() == 0 && m.paths == 0)
    });
    assert!(s.single_map().is_some_and(|m| m.path_groups.is_empty()));
    assert_eq!(count.observe(&s.topology[0]), [0, 2]);
    // one controller after the other: two disks hot-plugged at once reach multipathd in
    // either order, and the order decides the map's group order
    bench.push(path1);
    bench.settle("path1 back, path2 still gone", |s| {
        one_map(s, |m| m.listed() == 1 && m.usable() == 1)
    });
    bench.push(path2);
    bench.settle("both paths back", both_paths_ready);
    let after = realstack::checksum(&mut bench.vm, &device).expect("read the data area");
    assert_eq!(after, written, "data survived the outage");

    // all paths gone while nobody uses the LUN: multipathd flushes the map with its last
    // path, and builds it anew when a path returns
    bench.hold(&wwid, false);
    bench.pull(path1);
    // (settled before the last path goes: udev reading the reloaded map holds it open for a
    // moment, and a map that is open when its last path goes stays)
    bench.settle("path1 gone, map unused", |s| {
        one_map(s, |m| m.listed() == 1 && m.usable() == 1)
    });
    bench.pull(path2);
    bench.settle("all paths gone, map unused", |s| {
        s.disks.is_empty() && s.maps.maps.is_empty()
    });
    bench.push(path2);
    bench.settle("path2 back, map rebuilt", |s| {
        one_map(s, |m| m.listed() == 1 && m.usable() == 1)
    });
    bench.push(path1);
    bench.settle("both paths back, map rebuilt", both_paths_ready);
    let after = realstack::checksum(&mut bench.vm, &device).expect("read the data area");
    assert_eq!(after, written, "data survived the map's removal");
    assert_eq!(
        bench.check.states, bench.states,
        "mpathutil checked in every state"
    );
    assert_eq!(
        bench.mirror.states, bench.states,
        "the simulator compared in every state"
    );
    assert_eq!(bench.states, 15);
    stop(bench.vm);
}

fn one_map(s: &Snapshot, check: impl Fn(&Map) -> bool) -> bool {
    s.single_map().is_some_and(check)
}

/// The VM and its simulated twin, changed together, compared at every settled state.
struct Bench {
    vm: Vm,
    check: MpathutilCheck,
    mirror: SimMirror,
    /// States settled in.
    states: usize,
}

impl Bench {
    fn new(mut vm: Vm, mpathutil: &str) -> Bench {
        let check = MpathutilCheck::new(&mut vm, mpathutil).expect("mpathutil check");
        let mirror = SimMirror::for_topology(Topology::ScsiTwoHbas).expect("simulator");
        Bench {
            vm,
            check,
            mirror,
            states: 0,
        }
    }

    fn pull(&mut self, path: ScsiPath) {
        self.vm.pull_scsi_path(path).expect("QMP device_del");
        self.mirror.change(|f, a| f.pull_controller(a, path.id));
    }

    fn push(&mut self, path: ScsiPath) {
        self.vm.push_scsi_path(path).expect("QMP device_add");
        self.mirror
            .change(|f, a| drop(f.push_controller(a, path.id)));
    }

    /// `multipathd fail|reinstate path` on the real disk `dev` and its simulated twin.
    fn multipathd(&mut self, verb: &str, path: ScsiPath, dev: &str) {
        self.vm
            .multipathd_path(verb, dev)
            .expect("multipathd path command");
        self.mirror
            .command(&format!("{verb} path {{path}}"), path.id)
            .expect("simulator path command");
    }

    fn offline(&mut self, path: ScsiPath, dev: &str, offline: bool) {
        let state = if offline { "offline" } else { "running" };
        self.vm.set_disk_state(dev, state).expect("disk state");
        self.mirror
            .set_offline(path.id, offline)
            .expect("simulated disk state");
    }

    /// Holds the map open (or lets it go), as a VM's disk would.
    fn hold(&mut self, wwid: &str, open: bool) {
        const PID: &str = "/run/smrs-holder.pid";
        let command = if open {
            format!(
                "setsid -f bash -c 'echo $$ > {PID}; exec 3</dev/mapper/{wwid}; exec sleep 100000' \
                 </dev/null >/dev/null 2>&1; while [ ! -s {PID} ]; do sleep 0.1; done"
            )
        } else {
            // and wait until the holder is gone, its descriptor with it
            format!(
                "pid=$(cat {PID}); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done"
            )
        };
        self.vm.sh(&command).expect("holder");
        self.mirror.set_open(wwid, open);
    }

    /// Waits for a state and for the guest to settle in it (`scenario::settled`), runs the
    /// comparisons, and reports how long the state took to appear.
    fn settle(&mut self, state: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let what = format!("A: {state}");
        let (_, took) =
            wait_for_snapshot(&mut self.vm, &what, SETTLE, &done).expect("state reached");
        report(&format!("{what} until multipathd shows it"), took);
        let snapshot = settled(&mut self.vm, &what, &done).expect("state settled");
        self.states += 1;
        eprintln!("A: {state}:\n{}", snapshot.topology_text.trim_end());
        self.check
            .check(&mut self.vm, state, &snapshot)
            .expect("mpathutil agrees with multipathd");
        self.mirror
            .compare(&snapshot, state)
            .expect("the simulator prints what multipathd prints");
        snapshot
    }
}

fn stop(vm: Vm) {
    let pid = vm.pid();
    report("VM stop", vm.stop().expect("stop"));
    assert!(!realstack::is_alive(pid), "qemu {pid} left behind");
}
