//! The host's multipath setting (handle default, `null`, unknown, a change at the next
//! plug), a pool of four hosts sharing one SR, and a hundred VDIs.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{ISCSI_TARGET, iscsi_fabric, large_fabric};

#[test]
fn the_handle_defaults_to_dmp() {
    let lab = seed_lab();
    lab.host_config(0, &[("multipathing", Some("true"))])
        .unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    assert_eq!(lab.pbd_other_config(0, &sr)["multipathed"], "true");
    let vdi = lab.claim(&sr, SEED).unwrap();
    assert_eq!(
        lab.attach(0, &vdi).unwrap()["params"],
        format!("/dev/disk/mpInuse/{SEED}")
    );
    lab.detach(0, &vdi).unwrap();
}

#[test]
fn the_null_handle_means_one_path() {
    let lab = seed_lab();
    lab.host_config(
        0,
        &[
            ("multipathing", Some("true")),
            ("multipathhandle", Some("null")),
        ],
    )
    .unwrap();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    assert!(!lab.pbd_other_config(0, &sr).contains_key("multipathed"));
    let vdi = lab.claim(&sr, SEED).unwrap();
    assert_eq!(
        lab.attach(0, &vdi).unwrap()["params"],
        format!("/dev/disk/by-id/scsi-{SEED}")
    );
    assert!(lab.host(0).sim.maps().is_empty());
    lab.detach(0, &vdi).unwrap();
}

#[test]
fn an_unknown_handle_is_an_error_that_names_it() {
    let lab = seed_lab();
    lab.host_config(
        0,
        &[
            ("multipathing", Some("true")),
            ("multipathhandle", Some("mpp")),
        ],
    )
    .unwrap();
    // SR.create plugs every PBD after sr_create; that plug fails, and says why.
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let pbd = lab.pbd(0, &sr);
    let db_attached = lab.xapi.db().pbds[pbd.as_str()].currently_attached;
    assert!(!db_attached);
    let e = lab.plug(0, &sr).unwrap_err();
    assert_eq!(e.code, "SR_BACKEND_FAILURE_431", "{e}");
    assert!(e.params[1].contains("'mpp'"), "{e}");
    assert!(e.params[1].contains("multipathhandle"), "{e}");
}

#[test]
fn a_changed_setting_takes_effect_at_the_next_plug() {
    let lab = seed_lab();
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    multipath_on(&lab, 0);
    // Plugged without multipathing: still so until re-plugged.
    assert_eq!(
        lab.attach(0, &vdi).unwrap()["params"],
        format!("/dev/disk/by-id/scsi-{SEED}")
    );
    lab.detach(0, &vdi).unwrap();
    lab.unplug(0, &sr).unwrap();
    lab.plug(0, &sr).unwrap();
    assert_eq!(
        lab.attach(0, &vdi).unwrap()["params"],
        format!("/dev/disk/mpInuse/{SEED}")
    );
    lab.detach(0, &vdi).unwrap();
}

#[test]
fn four_hosts_share_an_iscsi_sr() {
    let lab = lab_with(4, || iscsi_fabric(3).0, ReplyStyle::V0_9_8);
    for host in 0..4 {
        multipath_on(&lab, host);
    }
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "Shared",
            &[
                ("target", "127.0.0.101,127.0.0.102"),
                ("targetIQN", ISCSI_TARGET),
            ],
        )
        .unwrap();
    // Every host plugged with two sessions; the master introduced each LUN once.
    for host in 0..4 {
        assert_eq!(lab.host(host).sim.iscsi_sessions().len(), 2, "host {host}");
        let pbd = lab.pbd_other_config(host, &sr);
        assert_eq!(pbd["iscsi_sessions"], "2");
        assert_eq!(pbd["multipathed"], "true");
    }
    let vdis = lab.claim_all(&sr).unwrap();
    assert_eq!(vdis.len(), 3);
    let (vdi, _, scsiid) = vdis[0].clone();
    // A shared disk on hosts 1 and 2: maps there only, counts on their PBDs only.
    for host in [1, 2] {
        lab.attach(host, &vdi).unwrap();
        assert_eq!(lun_state(&lab, host, &scsiid), ATTACHED);
        assert_eq!(
            lab.pbd_other_config(host, &sr)[&format!("mpath-{scsiid}")],
            "[2, 2]"
        );
    }
    for host in [0, 3] {
        assert!(lab.host(host).sim.maps().is_empty(), "host {host}");
        assert!(
            !lab.pbd_other_config(host, &sr)
                .contains_key(&format!("mpath-{scsiid}"))
        );
    }
    // A scan on the master finds nothing new; host 3 unplugs while others use the SR.
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    assert_eq!(lab.vdis(&sr).len(), 3);
    lab.unplug(3, &sr).unwrap();
    assert!(lab.host(3).sim.iscsi_sessions().is_empty());
    assert_eq!(lun_state(&lab, 1, &scsiid), ATTACHED);
    for host in [1, 2] {
        lab.detach(host, &vdi).unwrap();
        assert_eq!(lun_state(&lab, host, &scsiid), RELEASED);
    }
    for host in 0..3 {
        lab.unplug(host, &sr).unwrap();
        assert!(lab.pbd_other_config(host, &sr).is_empty());
    }
}

#[test]
fn a_hundred_vdis_attach_and_detach() {
    let lab = lab_with(1, || large_fabric(100), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "FC", &[]).unwrap();
    let vdis = lab.claim_all(&sr).unwrap();
    assert_eq!(vdis.len(), 100);
    let host = lab.host(0).host_ref.clone();
    let all = |attach: bool| {
        lab.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in vdis.chunks(13) {
                let (xapi, host) = (lab.xapi.clone(), host.clone());
                let chunk: Vec<String> = chunk.iter().map(|(r, _, _)| r.clone()).collect();
                tasks.spawn(async move {
                    for vdi in chunk {
                        if attach {
                            xapi.attach_vdi(&host, &vdi, true).await.map(drop)?;
                        } else {
                            xapi.detach_vdi(&host, &vdi).await?;
                        }
                    }
                    Ok::<(), xenapi::Failure>(())
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
        })
    };
    all(true);
    assert_eq!(lab.host(0).sim.maps().len(), 100);
    let keys = lab.pbd_other_config(0, &sr);
    assert_eq!(keys.keys().filter(|k| k.starts_with("mpath-")).count(), 100);
    assert!(
        keys.iter()
            .filter(|(k, _)| k.starts_with("mpath-"))
            .all(|(_, v)| v == "[4, 4]")
    );
    all(false);
    assert!(lab.host(0).sim.maps().is_empty());
    assert!(lab.host(0).sim.wwids().is_empty());
    let keys = lab.pbd_other_config(0, &sr);
    assert!(keys.keys().all(|k| !k.starts_with("mpath-")), "{keys:?}");
    lab.unplug(0, &sr).unwrap();
}
