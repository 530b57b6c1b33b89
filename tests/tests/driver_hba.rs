//! The HBA SR type end to end through the xapi simulator: the seed array (two controllers
//! on a SAS HBA), multipathing on and off, lazy maps, path counts, refusals.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;

#[test]
fn plug_attach_pull_push_detach_unplug_with_multipathing() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed LUNs", &[]).unwrap();
    // SR.create plugs every PBD; the master scanned the LUNs into VDIs.
    let vdi = lab.claim(&sr, SEED).expect("the seed LUN claimed");
    let pbd = lab.pbd_other_config(0, &sr);
    assert_eq!(pbd.get("multipathed").map(String::as_str), Some("true"));
    assert!(!pbd.contains_key(&format!("mpath-{SEED}")));
    assert_eq!(
        lab.xapi.db().srs[sr.as_str()].sm_config["multipathable"],
        "true"
    );
    // Lazy: plugged, but no map for an unused LUN.
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
    assert!(lab.host(0).sim.maps().is_empty());

    let answer = lab.attach(0, &vdi).unwrap();
    assert_eq!(answer["params"], format!("/dev/disk/mpInuse/{SEED}"));
    assert_eq!(answer["params_nbd"], "");
    assert_eq!(lun_state(&lab, 0, SEED), ATTACHED);
    assert_eq!(
        lab.pbd_other_config(0, &sr)[&format!("mpath-{SEED}")],
        "[2, 2]"
    );

    // A controller pulled: the next reading says one of two.
    lab.host(0).sim.fabric(|f| {
        let array = sm_testkit::fabric::ArrayId(0);
        f.pull_controller(array, "SCM2")
    });
    lab.detach(0, &vdi).unwrap();
    assert_eq!(lun_state(&lab, 0, SEED), RELEASED);
    assert!(
        !lab.pbd_other_config(0, &sr)
            .contains_key(&format!("mpath-{SEED}"))
    );

    lab.unplug(0, &sr).unwrap();
    let pbd = lab.pbd_other_config(0, &sr);
    assert!(!pbd.contains_key("multipathed"), "{pbd:?}");
}

#[test]
fn without_multipathing_the_lun_is_used_through_one_path() {
    let lab = seed_lab();
    let sr = lab.create_sr("lunohba", "Seed LUNs", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    assert!(!lab.pbd_other_config(0, &sr).contains_key("multipathed"));
    let answer = lab.attach(0, &vdi).unwrap();
    assert_eq!(answer["params"], format!("/dev/disk/by-id/scsi-{SEED}"));
    assert!(lab.host(0).sim.maps().is_empty());
    assert!(lab.host(0).sim.wwids().is_empty());
    lab.detach(0, &vdi).unwrap();
    lab.unplug(0, &sr).unwrap();
}
