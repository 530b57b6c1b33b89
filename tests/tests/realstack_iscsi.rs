//! Topology B on the real stack: software iSCSI as on a XenServer host. tgtd serves one LUN on
//! two portals, open-iscsi is logged in through both, and a portal is cut (its traffic
//! blackholed) and restored.

use std::time::Instant;

use sm_testkit::realstack::{
    self, CheckFn, CutPortal, MpathutilCheck, SimMirror, Snapshot, Topology, Vm, both_paths_ready,
    report, tgt_portal_port, walk,
};

/// The seed scenario on iSCSI: cut portal 2 and restore it, twice; then portal 1, twice; with
/// the O_DIRECT I/O loop running on the map.
#[test]
fn realstack_iscsi_portal_cut_and_restore() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let mut vm = stack.boot(Topology::IscsiTgt).expect("boot topology B");
    let map_name = vm
        .sh("multipathd show maps raw format '%n'")
        .expect("map name")
        .trim()
        .to_string();
    eprintln!("B: map {map_name}");
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut check = MpathutilCheck::new(&mut vm, &mpathutil).expect("mpathutil check");
    let mut mirror = SimMirror::for_topology(Topology::IscsiTgt).expect("simulator");

    let mut cut_seen = Vec::new();
    let started = Instant::now();
    let walked = walk(
        &mut vm,
        "B",
        &map_name,
        &[(&CutPortal { portal: 2 }, 2), (&CutPortal { portal: 1 }, 2)],
        &both_paths_ready,
        &mut [
            &mut check,
            &mut mirror,
            &mut CheckFn(|vm: &mut Vm, state: &str, snapshot: &Snapshot| {
                // while a portal is cut its session is down, but its disk stays: a failed path
                if state.starts_with("cut") {
                    let sessions = vm.sh("iscsiadm -m session -P 1")?;
                    cut_seen.push((state.to_string(), snapshot.disks.len(), sessions));
                }
                Ok(())
            }),
        ],
    )
    .expect("seed scenario on topology B");
    report(
        "B: seed scenario (4 portal cuts and restores, I/O running)",
        started.elapsed(),
    );
    for step in &walked.steps {
        eprintln!("B: {:<26} {:?}  {}", step.state, step.count, step.map);
    }
    eprintln!("B: I/O {:?}", walked.io);

    let expected: Vec<[usize; 2]> = std::iter::once([2, 2])
        .chain(std::iter::repeat_n([[1, 2], [2, 2]], 4).flatten())
        .collect();
    assert_eq!(
        walked.counts(),
        expected,
        "[active, max] through the scenario"
    );
    for (state, disks, sessions) in &cut_seen {
        assert_eq!(*disks, 2, "{state}: the cut portal's disk must stay");
        assert!(
            sessions.contains("TRANSPORT WAIT")
                || sessions.contains("FREE")
                || sessions.contains("FAILED"),
            "{state}: a session should be down:\n{sessions}"
        );
    }
    walked.assert_data_intact(90);
    // both portals are in use again
    let snapshot = Snapshot::take(&mut vm).expect("snapshot");
    for portal in [1, 2] {
        assert!(
            snapshot.disk_on(&tgt_portal_port(portal)).is_some(),
            "portal {portal}"
        );
    }
    let pid = vm.pid();
    report("VM stop", vm.stop().expect("stop"));
    assert!(!realstack::is_alive(pid));
}
