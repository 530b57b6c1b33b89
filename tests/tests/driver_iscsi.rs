//! The iSCSI SR type end to end: discovery, logins per the multipath setting, timeouts,
//! CHAP (and never a secret shown), probe lists on stderr, refcounted logout.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{ISCSI_PORTALS, ISCSI_TARGET, iscsi_fabric};

const TARGET: &str = "127.0.0.101,127.0.0.102";

fn iscsi_lab(hosts: usize, luns: usize) -> Lab {
    lab_with(hosts, move || iscsi_fabric(luns).0, ReplyStyle::V0_9_8)
}

fn lun(i: usize) -> String {
    format!("36001405{i:025x}")
}

#[test]
fn multipathed_plug_logs_in_to_every_portal_with_the_short_timeout() {
    let lab = iscsi_lab(1, 3);
    multipath_on(&lab, 0);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "LIO",
            &[("target", TARGET), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap();
    let sim = &lab.host(0).sim;
    let mut sessions = sim.iscsi_sessions();
    sessions.sort();
    assert_eq!(
        sessions,
        ISCSI_PORTALS.map(|p| (ISCSI_TARGET.to_string(), p.to_string()))
    );
    let runs = sim.programs_run();
    assert!(
        runs.iter()
            .any(|r| r.ends_with("--op update -n node.session.timeo.replacement_timeout -v 15")),
        "{runs:#?}"
    );
    let pbd = lab.pbd_other_config(0, &sr);
    assert_eq!(pbd["iscsi_sessions"], "2");
    assert_eq!(pbd["multipathed"], "true");
    assert_eq!(lab.vdis(&sr).len(), 3);
    // Lazy: three LUNs, two paths each, no map until one is used.
    assert!(sim.maps().is_empty());
    let vdi = lab.claim(&sr, &lun(1)).unwrap();
    let answer = lab.attach(0, &vdi).unwrap();
    assert_eq!(answer["params"], format!("/dev/disk/mpInuse/{}", lun(1)));
    assert_eq!(sim.maps(), vec![lun(1)]);
    assert_eq!(
        lab.pbd_other_config(0, &sr)[&format!("mpath-{}", lun(1))],
        "[2, 2]"
    );
    // xapi refuses an unplug while a VBD is plugged; the driver refuses on its own too
    // (16, SR_DEVICE_IN_USE), and nothing changes.
    let refused = lab.unplug(0, &sr).unwrap_err();
    assert_eq!(refused.code, "VDI_IN_USE", "{refused}");
    let call = lab.sm_call(0, &sr, "sr_detach", &[], None);
    let run = lab.run_driver(0, "lunoiscsi", &call.to_xml());
    let (code, text) = run.response.unwrap_err();
    assert_eq!(code, 16, "{text}");
    assert!(text.contains(&lun(1)), "{text}");
    assert_eq!(sim.iscsi_sessions().len(), 2);
    assert_eq!(lun_state(&lab, 0, &lun(1)), ATTACHED);
    lab.detach(0, &vdi).unwrap();
    lab.unplug(0, &sr).unwrap();
    assert!(sim.iscsi_sessions().is_empty());
    let pbd = lab.pbd_other_config(0, &sr);
    assert!(pbd.is_empty(), "{pbd:?}");
}

#[test]
fn without_multipathing_one_portal_and_the_long_timeout() {
    let lab = iscsi_lab(1, 1);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "LIO",
            &[("target", TARGET), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap();
    let sim = &lab.host(0).sim;
    assert_eq!(
        sim.iscsi_sessions(),
        vec![(ISCSI_TARGET.to_string(), ISCSI_PORTALS[0].to_string())]
    );
    let runs = sim.programs_run();
    assert!(
        runs.iter()
            .any(|r| r.ends_with("-n node.session.timeo.replacement_timeout -v 144")),
        "{runs:#?}"
    );
    assert_eq!(lab.pbd_other_config(0, &sr)["iscsi_sessions"], "1");
    let vdi = lab.claim(&sr, &lun(0)).unwrap();
    let answer = lab.attach(0, &vdi).unwrap();
    assert_eq!(answer["params"], format!("/dev/disk/by-id/scsi-{}", lun(0)));
    assert!(sim.maps().is_empty());
    lab.detach(0, &vdi).unwrap();
    lab.unplug(0, &sr).unwrap();
}

#[test]
fn probe_lists_targets_then_luns_on_stderr() {
    let lab = iscsi_lab(1, 2);
    let no_iqn = lab
        .probe("lunoiscsi", &[("target", "127.0.0.101")])
        .unwrap_err();
    assert_eq!(no_iqn.code, "SR_BACKEND_FAILURE_96", "{no_iqn}");
    let stderr = &no_iqn.params[2];
    assert!(stderr.contains("<iscsi-target-iqns>"), "{stderr}");
    assert!(
        stderr.contains(&format!("<TargetIQN>{ISCSI_TARGET}</TargetIQN>")),
        "{stderr}"
    );
    assert!(
        stderr.contains("<IPAddress>127.0.0.102</IPAddress>"),
        "{stderr}"
    );
    let no_lun = lab
        .probe(
            "lunoiscsi",
            &[("target", "127.0.0.101"), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap_err();
    assert_eq!(no_lun.code, "SR_BACKEND_FAILURE_107", "{no_lun}");
    assert!(
        no_lun.params[2].contains(&format!("<SCSIid>{}</SCSIid>", lun(1))),
        "{no_lun}"
    );
    // The probe logged in for itself and out again.
    assert!(lab.host(0).sim.iscsi_sessions().is_empty());
    let unreachable = lab
        .probe("lunoiscsi", &[("target", "192.0.2.250")])
        .unwrap_err();
    assert_eq!(unreachable.code, "SR_BACKEND_FAILURE_141", "{unreachable}");
    assert!(
        unreachable.params[1].contains("192.0.2.250:3260"),
        "{unreachable}"
    );
}

#[test]
fn chap_is_used_and_never_shown() {
    const SECRET: &str = "Xy7-not-for-any-log-9q";
    let lab = iscsi_lab(1, 1);
    multipath_on(&lab, 0);
    lab.host(0).sim.require_chap(ISCSI_TARGET, "alice", SECRET);
    let dconf = |secret: &'static str| {
        vec![
            ("target", TARGET),
            ("targetIQN", ISCSI_TARGET),
            ("chapuser", "alice"),
            ("chappassword", secret),
        ]
    };
    let wrong = lab
        .create_sr("lunoiscsi", "LIO", &dconf("wrong-password-123"))
        .unwrap_err();
    assert_eq!(wrong.code, "SR_BACKEND_FAILURE_68", "{wrong}");
    assert!(wrong.params[1].contains("authorization failure"), "{wrong}");
    assert!(!wrong.to_string().contains("wrong-password-123"), "{wrong}");
    let sr = lab.create_sr("lunoiscsi", "LIO", &dconf(SECRET)).unwrap();
    assert_eq!(lab.host(0).sim.iscsi_sessions().len(), 2);
    let vdi = lab.claim(&sr, &lun(0)).unwrap();
    lab.attach(0, &vdi).unwrap();
    lab.detach(0, &vdi).unwrap();
    lab.unplug(0, &sr).unwrap();
    // The secret reached iscsiadm (the login worked) and nothing a person reads.
    let shown = everything_shown(&lab);
    assert!(shown.contains("SM: ["), "the driver logged nothing?");
    assert!(
        shown.contains("******"),
        "the CHAP argument is shown masked"
    );
    for secret in [SECRET, "wrong-password-123"] {
        assert!(!shown.contains(secret), "a CHAP secret was shown");
    }
}

#[test]
fn one_sr_per_target_and_the_logout_when_it_lets_go() {
    let lab = iscsi_lab(1, 2);
    let first = lun(0);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "A",
            &[
                ("target", TARGET),
                ("targetIQN", ISCSI_TARGET),
                ("SCSIid", &first),
            ],
        )
        .unwrap();
    // The SCSIid filter: one LUN of two becomes a VDI.
    assert_eq!(lab.vdis(&sr).len(), 1);
    let dup = lab
        .create_sr(
            "lunoiscsi",
            "B",
            &[("target", TARGET), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap_err();
    assert_eq!(dup.code, "SR_DEVICE_IN_USE", "{dup}");
    assert!(!lab.host(0).sim.iscsi_sessions().is_empty());
    lab.unplug(0, &sr).unwrap();
    assert!(lab.host(0).sim.iscsi_sessions().is_empty());
}
