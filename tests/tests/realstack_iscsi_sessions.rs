//! Issue 14, item 9 on the real stack (topology B): an SR over several targets
//! (`targetIQN=*`) plugged by the real driver through a xapi simulator in the guest, with
//! tgtd serving a second target next to the topology's own; a LUN of each activated by the
//! driver, their path counts published by the path agent; every LUN's path count and
//! `iscsi_sessions` read back from xapi through `xe`, and XenCenter's red-row rule applied to
//! them. Also: the SR is the one user of each target in `/run/sr-ref` (stock's file).
//!
//! XenCenter (`GeneralTabPage.AddMultipathLine`) paints a multipath row red when
//! `current < max` or, where the PBD has `iscsi_sessions`, `max < iscsi_sessions`; `current`
//! and `max` are the `[current, max]` of the LUN's `mpath-<SCSIid>` key. Which rows it shows
//! (one per running VM using the SR's LUNs, grouped) is left out here: no VM runs in the
//! guest; the rule is applied to every LUN in use, which is every row XenCenter could show.

use std::collections::BTreeMap;
use std::time::Duration;

use sm_testkit::realstack::guest_xapi::{self, xe};
use sm_testkit::realstack::{self, Daemon, Probe, Topology, report, wait_for};

const FIRST_IQN: &str = "iqn.2026-01.invalid.sm-rs:tgt-lun1";
const SECOND_IQN: &str = "iqn.2026-01.invalid.sm-rs:tgt-lun2";
const PORTALS: &str = "127.0.0.2,127.0.0.3";

/// A map parameter as `xe … param-get` prints it: `k1: v1; k2: v2`.
fn xe_map(text: &str) -> BTreeMap<String, String> {
    text.split("; ")
        .filter_map(|kv| kv.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `[current, max]` as XenCenter's `PBD.ParsePathCounts` reads it (`\[(\d+)L?,\s(\d+)L?`).
fn path_counts(text: &str) -> Option<(i64, i64)> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (current, max) = inner.split_once(", ")?;
    Some((
        current.trim_end_matches('L').parse().ok()?,
        max.trim_end_matches('L').parse().ok()?,
    ))
}

/// XenCenter's rule for one row: red when a path is down or fewer paths than sessions.
fn red(current: i64, max: i64, iscsi_sessions: i64) -> bool {
    current < max || (iscsi_sessions != -1 && max < iscsi_sessions)
}

/// The HA path's call: activate a LUN of the plugged SR (no VM needed).
fn attach_call(sr_uuid: &str, scsiid: &str) -> String {
    guest_xapi::attach_from_config(
        sr_uuid,
        "5c6f0d2e-realstack-sessions-vdi",
        PORTALS,
        "*",
        scsiid,
    )
}

#[test]
fn realstack_a_healthy_sr_over_two_targets_is_not_red_in_xencenter() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let daemon = Daemon::Debian094;
    if !stack.has(daemon).expect("daemon") {
        return;
    }
    let driver = stack.guest_binary("sm-driver").expect("sm-driver is built");
    stack.guest_binary("xapi-sim").expect("xapi-sim is built");
    stack.guest_binary("xe").expect("xe is built");
    let agent = stack
        .guest_binary("sm-mpath-agent")
        .expect("sm-mpath-agent is built");
    let mut vm = stack
        .boot_on(Topology::IscsiTgt, daemon)
        .expect("boot topology B");
    // A second target on the same tgtd (both portals), one LUN; the driver plugs from
    // nothing.
    vm.sh(&format!(
        "truncate -s 128M /var/tmp/tgt-lun2.img && \
         tgtadm --lld iscsi --mode target --op new --tid 2 --targetname {SECOND_IQN} && \
         tgtadm --lld iscsi --mode logicalunit --op new --tid 2 --lun 1 --backing-store /var/tmp/tgt-lun2.img && \
         tgtadm --lld iscsi --mode logicalunit --op update --tid 2 --lun 1 \
             --params vendor_id=SMRS,product_id=TGT-LUN,scsi_id=SMRSTGT0002,scsi_sn=SMRSTGT0002 && \
         tgtadm --lld iscsi --mode target --op bind --tid 2 --initiator-address ALL && \
         iscsiadm -m node --logout >/dev/null 2>&1; iscsiadm -m node -o delete >/dev/null 2>&1; \
         multipath -F >/dev/null 2>&1; true"
    ))
    .expect("a second target");
    vm.sh(&format!(
        "mkdir -p /tmp/sm/bin && ln -sf {driver} /tmp/sm/LUNoISCSISR"
    ))
    .expect("the driver");
    guest_xapi::start(
        &mut vm,
        "/tmp/sm",
        Some("/tmp/sm/bin:/sbin:/usr/sbin:/bin:/usr/bin"),
    )
    .expect("xapi in the guest");

    let started = std::time::Instant::now();
    let sr = xe(
        &mut vm,
        &format!(
            "sr-create type=lunoiscsi shared=true name-label=wide device-config:target={PORTALS} \
             device-config:targetIQN=*"
        ),
    );
    report(
        "B: sr-create + plug, targetIQN=*, 2 targets x 2 portals",
        started.elapsed(),
    );
    let sessions = vm.sh("iscsiadm -m session 2>&1").expect("sessions");
    eprintln!("B: sessions:\n{sessions}");
    for iqn in [FIRST_IQN, SECOND_IQN] {
        for portal in ["127.0.0.2:3260", "127.0.0.3:3260"] {
            assert!(
                sessions
                    .lines()
                    .any(|l| l.contains(portal) && l.split_whitespace().any(|w| w == iqn)),
                "no session to {iqn} through {portal}: {sessions}"
            );
        }
    }
    // The SR counted as the user of both targets, as stock counts; sr_create's own check let
    // go of them.
    for iqn in [FIRST_IQN, SECOND_IQN] {
        let users = vm
            .sh(&format!("cat /run/sr-ref/{iqn}"))
            .expect("the target's users");
        assert_eq!(users.trim(), sr, "{iqn}: {users}");
    }
    xe(&mut vm, &format!("sr-scan uuid={sr}"));
    let vdis = xe(&mut vm, &format!("vdi-list sr-uuid={sr} --minimal"));
    let luns: Vec<String> = vdis
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| {
            xe(
                &mut vm,
                &format!("vdi-param-get uuid={v} param-name=location"),
            )
        })
        .collect();
    assert_eq!(luns.len(), 2, "a LUN per target: {luns:?}");
    // The path agent publishes the counts of the LUNs in use, as on a host.
    vm.sh(&format!(
        "setsid -f {agent} --foreground </dev/null >/tmp/agent.log 2>&1"
    ))
    .expect("agent");
    for scsiid in &luns {
        let out = vm
            .run_with_stdin(
                "x=$(cat); PATH=/tmp/sm/bin:$PATH SM_RS_LOG=stderr /tmp/sm/LUNoISCSISR \"$x\"",
                &attach_call(&sr, scsiid),
            )
            .expect("the driver runs");
        assert!(
            out.stdout.contains(&format!("/dev/disk/mpInuse/{scsiid}")),
            "vdi_attach_from_config {scsiid}: {out:?}"
        );
    }
    let pbd = xe(&mut vm, &format!("pbd-list sr-uuid={sr} --minimal"));
    let (other_config, _) = wait_for(
        "the path counts of both LUNs in xapi",
        Duration::from_secs(60),
        || {
            let other_config = xe_map(&xe(
                &mut vm,
                &format!("pbd-param-get uuid={pbd} param-name=other-config"),
            ));
            Ok(
                if luns
                    .iter()
                    .all(|l| other_config.contains_key(&format!("mpath-{l}")))
                {
                    Probe::Ready(other_config)
                } else {
                    Probe::Pending(format!("{other_config:?}"))
                },
            )
        },
    )
    .unwrap_or_else(|e| {
        let log = vm.sh("tail -30 /tmp/agent.log").unwrap_or_default();
        panic!("{e}\nagent log:\n{log}")
    });
    eprintln!("B: the PBD's other-config: {other_config:?}");
    let iscsi_sessions: i64 = other_config
        .get("iscsi_sessions")
        .map_or(-1, |v| v.parse().expect("a number"));
    assert_eq!(iscsi_sessions, 2, "each LUN's sessions: {other_config:?}");
    let mut rows = Vec::new();
    for scsiid in &luns {
        let counts = other_config
            .get(&format!("mpath-{scsiid}"))
            .and_then(|v| path_counts(v))
            .unwrap_or_else(|| panic!("no mpath-{scsiid}: {other_config:?}"));
        rows.push((scsiid.clone(), counts));
    }
    let total_sessions = sessions.lines().filter(|l| l.contains("tcp:")).count() as i64;
    let pid = vm.pid();
    report("VM stop", vm.stop().expect("stop"));
    assert!(!realstack::is_alive(pid));
    for (scsiid, (current, max)) in &rows {
        assert_eq!((*current, *max), (2, 2), "{scsiid}: every path is up");
        assert!(
            !red(*current, *max, iscsi_sessions),
            "{scsiid}: [{current}, {max}] with {iscsi_sessions} sessions is red"
        );
        // The rule is live: the total of the SR's sessions (what was published before) paints
        // the healthy row red.
        assert_eq!(total_sessions, 4);
        assert!(red(*current, *max, total_sessions), "{scsiid}");
    }
}
