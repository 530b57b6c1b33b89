//! Topology C on the real stack: an ALUA array (the kernel's LIO target) with controller A
//! active/optimized and controller B standby; a failover swaps them and fails back.

use std::time::{Duration, Instant};

use sm_testkit::realstack::{
    self, AluaFailover, CheckFn, Controller, Daemon, Map, MpathutilCheck, SimMirror, Snapshot,
    Topology, Vm, a_active_b_standby, report, walk,
};

/// The path group multipathd has active, and its paths' devices.
fn active_group_devs(map: &Map) -> Vec<String> {
    map.path_groups
        .iter()
        .filter(|g| g.dm_st == "active")
        .flat_map(|g| g.paths.iter().map(|p| p.dev.clone()))
        .collect()
}

fn dev_on(snapshot: &Snapshot, controller: Controller) -> String {
    snapshot
        .disk_on(controller.port())
        .map(|d| d.dev.clone())
        .unwrap_or_default()
}

/// Controller failover and failback, twice, with I/O running: the standby path shows as ghost
/// in the lower-priority group, I/O moves to the other controller, nothing is lost.
#[test]
fn realstack_alua_failover_and_failback() {
    failover_and_failback(Daemon::Debian094);
}

/// The same on the dom0's multipathd with stock sm's multipath.conf, whose LIO-ORG entry is
/// `multibus` with `queue-length 0` and `prio alua exclusive_pref_bit`: one group holds both
/// paths (the LUN's WWID listed as on a host where it is in use; one failover and failback).
///
/// Ignored: it does not reach the healthy state this test expects. Measured: the standby
/// path sits in the one multibus group, I/O is sent to it, the kernel fails it, the tur
/// checker then finds it "in standby state" (ghost) and reinstates it, and the next I/O fails
/// it again: it shows `failed faulty` most of the time (prio 1, the optimized path 50), so the
/// stock count of a healthy array is [1, 2]. Stock sm's configuration, not ours.
///
/// What stock XCP-ng reports there is the same: its `get_path_count` takes a path whose
/// checker state is `faulty` as down and `ghost` as up, so its key flaps between [1, 2] and
/// [2, 2] with each fail and reinstate (rewritten on each mpathcount kick). [1, 2] is true:
/// under multibus the host does send I/O down the standby path and it fails. Our drop-in
/// does not carry an LIO-ORG entry: multipath.conf is host-wide, a conf.d entry wins over
/// stock's, and overriding it would regroup the paths of every stock SR on an LIO target
/// without a field report of ours behind it. An administrator with standby port groups on
/// LIO sets multipath-tools' own LIO-ORG entry (group_by_prio, prio alua, failback
/// immediate, hardware_handler "1 alua") in custom.conf, which is read last and wins; then
/// the standby path is a ghost in its own group and the count is [2, 2]. (Measured on
/// 0.4.9-xs by hand: stock's entry left the standby path `failed faulty` through 8 looks over
/// 24 s, `mpathutil count` [1, 2] degraded; that custom.conf entry and a `reconfigure` gave
/// two groups, prio 50 `active ready` and prio 1 `active ghost`, [2, 2] ok throughout.)
#[test]
#[ignore = "0.4.9-xs with stock sm's LIO-ORG entry fails the standby path: see the doc comment"]
fn realstack_alua_failover_and_failback_dom0_049xs() {
    failover_and_failback(Daemon::Dom0Xs);
}

fn failover_and_failback(daemon: Daemon) {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    if !stack.has(daemon).expect("daemon") {
        return;
    }
    let mut vm = stack
        .boot_on(Topology::LioAlua, daemon)
        .expect("boot topology C");
    let map_name = vm
        .sh("multipathd show maps raw format '%n'")
        .expect("map name")
        .trim()
        .to_string();

    if daemon == Daemon::Dom0Xs {
        // what 0.4.9 makes of the standby port, for the message if the walk does not start
        let _ = realstack::wait_for_snapshot(&mut vm, "C: A ready", Duration::from_secs(60), |s| {
            s.single_map().is_some_and(|m| m.usable() >= 1)
        });
        std::thread::sleep(Duration::from_secs(12));
        let paths = vm
            .sh("multipathd show paths format '%d %c %T %t %p %o'; grep -E 'sd[ab]' /run/smrs-syslog.log | grep -v kernel: | tail -n 20")
            .unwrap_or_default();
        eprintln!("C on {daemon}: paths and log:\n{paths}");
    }
    let mpathutil = stack.guest_binary("mpathutil").expect("mpathutil is built");
    let mut check = MpathutilCheck::new(&mut vm, &mpathutil).expect("mpathutil check");
    let mut mirror = SimMirror::for_topology_on(Topology::LioAlua, daemon).expect("simulator");
    let rounds = if daemon == Daemon::Dom0Xs { 1 } else { 2 };
    let mut seen = Vec::new();
    let started = Instant::now();
    let walked = walk(
        &mut vm,
        "C",
        &map_name,
        &[(&AluaFailover, rounds)],
        &a_active_b_standby,
        &mut [
            &mut check,
            &mut mirror,
            &mut CheckFn(|vm: &mut Vm, state: &str, snapshot: &Snapshot| {
                let map = snapshot.single_map().expect("one map").clone();
                let access = vm.sh("for d in /sys/class/scsi_device/*/device; do \
                 echo \"$(ls $d/block) $(cat $d/dh_state) $(cat $d/access_state)\"; done")?;
                seen.push((
                    state.to_string(),
                    map,
                    dev_on(snapshot, Controller::A),
                    dev_on(snapshot, Controller::B),
                    access,
                ));
                Ok(())
            }),
        ],
    )
    .expect("ALUA failover on topology C");
    report(
        &format!("C: {rounds} ALUA failovers and failbacks on {daemon}, I/O running"),
        started.elapsed(),
    );
    for step in &walked.steps {
        eprintln!("C: {:<30} {:?}  {}", step.state, step.count, step.map);
    }
    eprintln!("C: I/O {:?}", walked.io);

    for (state, map, a, b, access) in &seen {
        eprintln!("C: {state}: access states\n{access}");
        assert_eq!(map.hwhandler, "1 alua", "{state}");
        assert!(
            map.features.contains("queue_if_no_path"),
            "{state}: {}",
            map.features
        );
        let (active, standby) = if state.starts_with("ALUA failover") {
            (b, a)
        } else {
            (a, b)
        };
        match daemon {
            Daemon::Debian094 => {
                assert_eq!(
                    map.path_groups.len(),
                    2,
                    "{state}: one group per ALUA state"
                );
                assert_eq!(
                    active_group_devs(map),
                    vec![active.clone()],
                    "{state}: I/O on the optimized path"
                );
            }
            Daemon::Dom0Xs => {
                assert_eq!(map.path_groups.len(), 1, "{state}: multibus");
                assert_eq!(map.path_groups[0].selector, "queue-length 0", "{state}");
            }
        }
        let ghost = map.path(standby).expect("standby path listed");
        assert_eq!(
            (ghost.dm_st.as_str(), ghost.chk_st.as_str()),
            ("active", "ghost"),
            "{state}"
        );
        let optimized = map.path(active).expect("active path listed");
        assert!(
            optimized.pri > ghost.pri,
            "{state}: alua priorities {optimized:?} vs {ghost:?}"
        );
        assert!(
            access.contains(&format!("{active} alua active/optimized")),
            "{state}:\n{access}"
        );
        assert!(
            access.contains(&format!("{standby} alua standby")),
            "{state}:\n{access}"
        );
    }
    // the stock count takes a ghost for an up path: a standby controller is not a fault
    assert!(
        walked.counts().iter().all(|c| *c == [2, 2]),
        "{:?}",
        walked.counts()
    );
    walked.assert_data_intact(20 * rounds as u64);
    let pid = vm.pid();
    report("VM stop", vm.stop().expect("stop"));
    assert!(!realstack::is_alive(pid));
}
