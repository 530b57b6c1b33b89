//! An SR of ours on a host it shares: with a stock SR on the same iSCSI target or fabric,
//! with dom0's own use of a LUN, with local RAID volumes, with other hosts that see LUNs the
//! master does not, after a crash; and identified as the host's udev identifies disks.
//! Last, stock sm's own `sr_health_check` runs against the simulator with our SR plugged
//! (`stock_sm_…`, needs a checkout of xcp-ng/sm in `SM_RS_STOCK_SM`).
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::fabric::{
    AluaState, ArraySpec, ControllerSpec, Fabric, LunSpec, NoPathRetry, Policy, PortSpec,
    StandbyTur, Transport,
};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{ISCSI_TARGET, iscsi_fabric, large_fabric};
use sm_testkit::xapi_sim::{SmRow, SrSpec, VdiSpec};
use std::path::PathBuf;
use xenapi::Ref;
use xenapi::refs::Sr;

/// The iSCSI fabric's LUN `i`.
fn lun(i: usize) -> String {
    format!("36001405{i:025x}")
}

/// The local RAID volume of [`with_local_raid`].
const RAID_VOLUME: &str = "3600605b00a1b2c3d4e5f60718293a4b5";

/// A `megaraid_sas` controller with one RAID volume (the disk of a local SR), added to a
/// host's fabric and scanned.
fn with_local_raid(mut fabric: Fabric) -> Fabric {
    let (_, array) = fabric.add_local_raid(ArraySpec {
        vendor: "AVAGO".into(),
        product: "MR9361-8i".into(),
        revision: "4.68".into(),
        controllers: vec![ControllerSpec {
            name: "RAID".into(),
            ports: vec![PortSpec::new("VD", 0)],
        }],
        tpgs: Vec::new(),
        standby_tur: StandbyTur::Ready,
        policy: Policy::builtin(),
    });
    fabric.add_lun(
        array,
        LunSpec {
            lun: 0,
            wwid: RAID_VOLUME.into(),
            size_bytes: 900 << 30,
            serial: "00a1b2c3d4e5f607".into(),
        },
    );
    fabric.scan();
    fabric
}

fn iscsi_dconf() -> Vec<(&'static str, &'static str)> {
    vec![
        ("target", "127.0.0.101,127.0.0.102"),
        ("targetIQN", ISCSI_TARGET),
    ]
}

/// A stock SR (a type the simulator does not run) with its PBDs plugged, as stock sm left
/// them; its SM record registered as xapi registers stock drivers.
fn stock_sr(lab: &Lab, sr_type: &str, label: &str, dconf: &[(&str, &str)]) -> String {
    let mut spec = SrSpec::shared(sr_type, label);
    for (k, v) in dconf {
        spec = spec.device_config(k, v);
    }
    let handle = lab.xapi.add_sr(spec);
    lab.xapi.modify(|db| {
        for pbd in &handle.pbds {
            if let Some(p) = db.pbds.get_mut(pbd) {
                p.currently_attached = true;
            }
        }
    });
    handle.sr
}

fn locations(lab: &Lab, sr: &Ref<Sr>) -> Vec<String> {
    lab.vdis(sr).into_iter().map(|(_, _, l)| l).collect()
}

fn managed(lab: &Lab, vdi: &str) -> bool {
    lab.xapi.db().vdis[vdi].managed
}

/// What the driver answered last (its fault string, for the reason).
fn last_answer(lab: &Lab) -> String {
    lab.xapi
        .driver_calls()
        .last()
        .map(|c| c.stdout.clone())
        .unwrap_or_default()
}

/// A VDI of our SR for a LUN that is not the SR's, as an older driver (or a hand-made
/// `db_introduce`) would have left it: managed, so xapi would let a VM have it.
fn planted_vdi(lab: &Lab, sr: &Ref<Sr>, scsiid: &str) -> String {
    lab.xapi.add_vdi(
        sr.as_str(),
        VdiSpec {
            name_label: "planted".into(),
            location: scsiid.into(),
            virtual_size: 1 << 30,
            sm_config: [("SCSIid".to_string(), scsiid.to_string())].into(),
        },
    )
}

#[test]
fn a_stock_lvmoiscsi_srs_lun_on_the_same_target_is_never_listed_claimed_or_attached() {
    let lab = lab_with(1, || with_local_raid(iscsi_fabric(3).0), ReplyStyle::V0_9_8);
    // The stock SR on LUN 0 of the same target, its volume group active in dom0.
    let stock = stock_sr(
        &lab,
        "lvmoiscsi",
        "Stock LVM over iSCSI",
        &[
            ("target", "127.0.0.101"),
            ("targetIQN", ISCSI_TARGET),
            ("SCSIid", &lun(0)),
        ],
    );
    let sr = lab.create_sr("lunoiscsi", "LUNs", &iscsi_dconf()).unwrap();
    lab.host(0)
        .sim
        .hold(&lun(0), "VG_XenStorage--mgt", "LVM-vg-of-the-stock-sr");
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    // Listed: the target's other LUNs, unclaimed; never LUN 0 nor the local volume.
    assert_eq!(locations(&lab, &sr), [lun(1), lun(2)]);
    for (vdi, _, _) in lab.vdis(&sr) {
        assert!(!managed(&lab, &vdi), "a LUN is listed unclaimed");
        let e = lab.attach(0, &vdi).unwrap_err();
        assert_eq!(e.code, "VDI_NOT_MANAGED", "{e}");
    }
    // The probe's LUN list leaves it out too.
    let probe = lab.probe("lunoiscsi", &iscsi_dconf()).unwrap_err();
    let listed = &probe.params[2];
    assert!(
        listed.contains(&lun(1)) && listed.contains(&lun(2)),
        "{probe}"
    );
    assert!(!listed.contains(&lun(0)), "{probe}");
    // Claiming it is refused, naming the SR that has it: `xe vdi-create` says so; xapi's
    // VDI.introduce reports any refusal as an internal error, the reason is in the SMlog.
    let e = lab.claim(&sr, &lun(0)).unwrap_err();
    assert_eq!(e.code, "INTERNAL_ERROR", "{e}");
    let stock_uuid = lab.xapi.db().srs[stock.as_str()].uuid.clone();
    assert!(
        last_answer(&lab).contains(&stock_uuid),
        "{}",
        last_answer(&lab)
    );
    let e = lab
        .create_vdi(&sr, "theirs", 1 << 30, Some(&lun(0)))
        .unwrap_err();
    assert_eq!(e.code, "SR_DEVICE_IN_USE", "{e}");
    assert!(
        last_answer(&lab).contains(&stock_uuid),
        "{}",
        last_answer(&lab)
    );
    assert!(locations(&lab, &sr).iter().all(|l| *l != lun(0)));
    // A VDI of it left by an older driver cannot be attached: nothing reaches the LUN.
    let planted = planted_vdi(&lab, &sr, &lun(0));
    let e = lab.attach(0, &planted).unwrap_err();
    assert_eq!(e.code, "SR_DEVICE_IN_USE", "{e}");
    assert!(
        last_answer(&lab).contains("device-config:SCSIid"),
        "{}",
        last_answer(&lab)
    );
    assert!(lab.host(0).sim.maps().is_empty());
    assert!(lab.host(0).sim.wwids().is_empty());
    // A claimed LUN of ours works as before.
    let vdi = lab.claim(&sr, &lun(1)).unwrap();
    assert!(managed(&lab, &vdi));
    assert!(lab.attach(0, &vdi).is_ok());
    lab.detach(0, &vdi).unwrap();
}

#[test]
fn vdi_create_claims_the_named_lun_or_the_smallest_that_fits() {
    let lab = lab_with(1, || iscsi_fabric(3).0, ReplyStyle::V0_9_8);
    let sr = lab.create_sr("lunoiscsi", "LUNs", &iscsi_dconf()).unwrap();
    stock_sr(
        &lab,
        "lvmoiscsi",
        "Stock",
        &[("targetIQN", ISCSI_TARGET), ("SCSIid", &lun(0))],
    );
    // The named LUN, with the name given; nothing else changes hands.
    let db_vdi = lab
        .create_vdi(&sr, "DB data", 1 << 30, Some(&lun(2)))
        .unwrap();
    {
        let db = lab.xapi.db();
        let row = &db.vdis[&db_vdi];
        assert_eq!(row.location, lun(2));
        assert!(row.managed);
        assert_eq!(row.name_label, "DB data");
    }
    // Claimed once only.
    let e = lab
        .create_vdi(&sr, "again", 1 << 30, Some(&lun(2)))
        .unwrap_err();
    assert_eq!(e.code, "VDI_IN_USE", "{e}");
    // Another SR's LUN is refused, named or not: the only free LUN left is LUN 1.
    let e = lab
        .create_vdi(&sr, "theirs", 1 << 30, Some(&lun(0)))
        .unwrap_err();
    assert_eq!(e.code, "SR_DEVICE_IN_USE", "{e}");
    let e = lab.create_vdi(&sr, "too big", 17 << 30, None).unwrap_err();
    assert_eq!(e.code, "SR_BACKEND_FAILURE_44", "{e}");
    let any = lab.create_vdi(&sr, "scratch", 1 << 30, None).unwrap();
    assert_eq!(lab.xapi.db().vdis[&any].location, lun(1));
    let e = lab.create_vdi(&sr, "none left", 1 << 30, None).unwrap_err();
    assert_eq!(e.code, "SR_BACKEND_FAILURE_44", "{e}");
    assert!(lab.attach(0, &any).is_ok());
    lab.detach(0, &any).unwrap();
}

#[test]
fn a_local_raid_volume_is_never_listed_claimed_or_attached() {
    let lab = lab_with(1, || with_local_raid(large_fabric(2)), ReplyStyle::V0_9_8);
    let sr = lab.create_sr("lunohba", "FC LUNs", &[]).unwrap();
    let fc: Vec<String> = (0..2)
        .map(|i| format!("36006016015301d00{i:016x}"))
        .collect();
    assert_eq!(locations(&lab, &sr), fc);
    let e = lab
        .create_vdi(&sr, "local", 1 << 30, Some(RAID_VOLUME))
        .unwrap_err();
    assert_eq!(e.code, "SR_BACKEND_FAILURE_19", "{e}");
    assert!(e.params[1].contains("disk of this server"), "{e}");
    let planted = planted_vdi(&lab, &sr, RAID_VOLUME);
    let e = lab.attach(0, &planted).unwrap_err();
    assert_eq!(e.code, "SR_BACKEND_FAILURE_19", "{e}");
    // Nor does a stock LVMoHBA SR's FC LUN appear, once that SR names it.
    stock_sr(
        &lab,
        "lvmohba",
        "Stock LVM over FC",
        &[("SCSIid", fc[0].as_str())],
    );
    let e = lab
        .create_vdi(&sr, "theirs", 1 << 30, Some(&fc[0]))
        .unwrap_err();
    assert_eq!(e.code, "SR_DEVICE_IN_USE", "{e}");
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    // Its unclaimed VDI here is forgotten at once: the LUN is the other SR's.
    assert_eq!(locations(&lab, &sr), [fc[1].clone(), RAID_VOLUME.into()]);
}

#[test]
fn a_lun_dom0_holds_open_is_left_out_and_refused_until_released() {
    let lab = lab_with(1, || large_fabric(2), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let fc: Vec<String> = (0..2)
        .map(|i| format!("36006016015301d00{i:016x}"))
        .collect();
    // dom0 uses LUN 0 for itself (an md array, a hand-made volume group): no SR says so.
    let holder = lab.host(0).sim.hold(&fc[0], "md-local", "LVM-dom0-vg");
    let sr = lab.create_sr("lunohba", "FC LUNs", &[]).unwrap();
    assert_eq!(locations(&lab, &sr), [fc[1].clone()]);
    let e = lab
        .create_vdi(&sr, "dom0's", 1 << 30, Some(&fc[0]))
        .unwrap_err();
    assert_eq!(e.code, "VDI_IN_USE", "{e}");
    let planted = planted_vdi(&lab, &sr, &fc[0]);
    let e = lab.attach(0, &planted).unwrap_err();
    assert_eq!(e.code, "VDI_IN_USE", "{e}");
    assert!(
        last_answer(&lab).contains(&format!("dom0 holds it open ({holder})")),
        "{}",
        last_answer(&lab)
    );
    assert!(lab.host(0).sim.maps().is_empty(), "no map was made");
    // Released, the LUN is the SR's again.
    lab.host(0).sim.release(&holder);
    assert!(lab.attach(0, &planted).is_ok());
    lab.detach(0, &planted).unwrap();
    let vdi = lab.claim(&sr, &fc[0]).unwrap();
    assert_eq!(vdi, planted);
}

#[test]
fn a_vdi_in_use_on_another_host_survives_scans_on_a_master_that_cannot_see_it() {
    let lab = lab_with(2, || iscsi_fabric(3).0, ReplyStyle::V0_9_8);
    let sr = lab.create_sr("lunoiscsi", "LUNs", &iscsi_dconf()).unwrap();
    let vdi = lab.claim(&sr, &lun(2)).unwrap();
    lab.attach(1, &vdi).unwrap();
    let uuid = lab.xapi.db().vdis[&vdi].uuid.clone();
    // The array stops presenting LUN 2 to the master (masking), host 1 still has it.
    lab.host(0).sim.fabric(|f| {
        let id = f.lun_by_wwid(&lun(2)).unwrap();
        f.mask_lun(id, true);
    });
    let scan = || {
        lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
            .unwrap();
    };
    for _ in 0..5 {
        scan();
        let db = lab.xapi.db();
        let row = db
            .vdis
            .get(&vdi)
            .expect("the VDI is never forgotten while in use");
        assert_eq!(row.uuid, uuid);
        assert!(row.managed);
    }
    let smlog = everything_shown(&lab);
    assert!(
        smlog.contains(&format!(
            "LUN {} of VDI {uuid}: the SR master does not see it; kept, it has 1 VBD(s)",
            lun(2)
        )),
        "{smlog}"
    );
    // Detached everywhere, the LUN still missing: forgotten after three scans, not before.
    lab.detach(1, &vdi).unwrap();
    scan();
    assert_eq!(
        lab.xapi.db().vdis[&vdi].sm_config["sm-rs-missing-scans"],
        "1"
    );
    scan();
    assert!(lab.xapi.db().vdis.contains_key(&vdi));
    scan();
    assert!(!lab.xapi.db().vdis.contains_key(&vdi));
    let smlog = everything_shown(&lab);
    assert!(
        smlog.contains("in 3 scans in a row, and the VDI has no VBDs: forgetting it"),
        "{smlog}"
    );
    // The other LUNs were never touched.
    assert_eq!(locations(&lab, &sr), [lun(0), lun(1)]);
}

#[test]
fn a_vdi_with_vbds_of_a_halted_vm_is_kept_while_its_lun_is_missing() {
    let lab = lab_with(1, || iscsi_fabric(2).0, ReplyStyle::V0_9_8);
    let sr = lab.create_sr("lunoiscsi", "LUNs", &iscsi_dconf()).unwrap();
    let vdi = lab.claim(&sr, &lun(1)).unwrap();
    let vm = lab.xapi.add_vm("halted VM");
    lab.xapi.add_vbd(&vm, &vdi).unwrap();
    lab.host(0).sim.fabric(|f| {
        let id = f.lun_by_wwid(&lun(1)).unwrap();
        f.mask_lun(id, true);
    });
    for _ in 0..4 {
        lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
            .unwrap();
    }
    assert!(lab.xapi.db().vdis.contains_key(&vdi));
}

#[test]
fn stale_mpath_keys_are_gone_after_a_crash_and_the_next_plug() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let key = format!("mpath-{SEED}");
    assert_eq!(lab.pbd_other_config(0, &sr)[&key], "[2, 2]");
    // A key of a LUN long gone, degraded, as a lost agent update would leave it.
    let pbd = lab.pbd(0, &sr);
    lab.xapi.modify(|db| {
        if let Some(p) = db.pbds.get_mut(pbd.as_str()) {
            p.other_config.insert(
                "mpath-3600a0b800012345600000000deadbeef".into(),
                "[1, 2]".into(),
            );
        }
    });
    // The host crashes: tmpfs (the in-use registry, the plug state) is gone, the VM with it;
    // at boot xapi finds the PBD unplugged and the VBD unplugged, and plugs the PBD again.
    std::fs::remove_dir_all(lab.host(0).sim.root().join("run/sm-rs")).unwrap();
    lab.xapi.modify(|db| {
        db.attachments.clear();
        db.vbds.clear();
        if let Some(p) = db.pbds.get_mut(pbd.as_str()) {
            p.currently_attached = false;
        }
    });
    lab.plug(0, &sr).unwrap();
    let keys = lab.pbd_other_config(0, &sr);
    assert!(
        keys.keys().all(|k| !k.starts_with("mpath-")),
        "stale keys stayed: {keys:?}"
    );
    assert_eq!(keys["multipathed"], "true");
    // In use again, its key is back.
    lab.attach(0, &vdi).unwrap();
    assert_eq!(lab.pbd_other_config(0, &sr)[&key], "[2, 2]");
    lab.detach(0, &vdi).unwrap();
}

/// An FC array whose LUNs identify themselves in each way scsi_id knows: NAA, EUI-64, a
/// vendor-specific designator, and only a page 0x80 serial number.
const NAA: &str = "3600a0b800026b2820000a1b25c3e2f1b";
const EUI64: &str = "20025380040a1b2c3";
const VENDOR_SPECIFIC: &str = "0HITACHI_OPEN-V_50403A1B0022";
const PAGE80_ONLY: &str = "SHITACHI_OPEN-V_SER4206";

fn identity_fabric() -> Fabric {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Fc);
    fabric.add_host_port(Transport::Fc);
    let port = |name: &str, n: u32| PortSpec {
        wwpn: Some(format!("0x50060e80{n:08x}")),
        wwnn: Some("0x50060e8000000000".into()),
        ..PortSpec::new(name, 0)
    };
    let array = fabric.add_array(ArraySpec {
        vendor: "HITACHI".into(),
        product: "OPEN-V".into(),
        revision: "8301".into(),
        controllers: vec![
            ControllerSpec {
                name: "CL1".into(),
                ports: vec![port("1A", 1)],
            },
            ControllerSpec {
                name: "CL2".into(),
                ports: vec![port("2A", 2)],
            },
        ],
        tpgs: vec![(0, AluaState::ActiveOptimized)],
        standby_tur: StandbyTur::Ready,
        policy: Policy {
            no_path_retry: NoPathRetry::Retries(12),
            ..Policy::builtin()
        },
    });
    for (i, wwid) in [NAA, EUI64, VENDOR_SPECIFIC, PAGE80_ONLY]
        .iter()
        .enumerate()
    {
        fabric.add_lun(
            array,
            LunSpec {
                lun: i as u64,
                wwid: (*wwid).into(),
                size_bytes: 32 << 30,
                serial: format!("504030{i:04}"),
            },
        );
    }
    fabric.scan();
    fabric
}

#[test]
fn the_scsiid_is_the_one_udev_gives_for_every_kind_of_designator() {
    let lab = lab_with(1, identity_fabric, ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let root = lab.host(0).sim.root().to_path_buf();
    // The simulated udev named each LUN as the rules do: by-id link and database agree.
    for wwid in [NAA, EUI64, VENDOR_SPECIFIC, PAGE80_ONLY] {
        let link = root.join(format!("dev/disk/by-id/scsi-{wwid}"));
        assert!(link.exists(), "no udev link {}", link.display());
    }
    let sr = lab.create_sr("lunohba", "Hitachi", &[]).unwrap();
    let mut ids = locations(&lab, &sr);
    ids.sort();
    let mut expected = vec![
        NAA.to_string(),
        EUI64.into(),
        VENDOR_SPECIFIC.into(),
        PAGE80_ONLY.into(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    // The vendor-specific one attaches through multipathd under that same name.
    let vdi = lab.claim(&sr, VENDOR_SPECIFIC).unwrap();
    assert_eq!(
        lab.attach(0, &vdi).unwrap()["params"],
        format!("/dev/disk/mpInuse/{VENDOR_SPECIFIC}")
    );
    assert!(
        lab.host(0)
            .sim
            .maps()
            .contains(&VENDOR_SPECIFIC.to_string())
    );
    lab.detach(0, &vdi).unwrap();
}

#[test]
fn udevs_name_wins_over_the_vpd_pages_which_serve_only_without_it() {
    let lab = lab_with(1, identity_fabric, ReplyStyle::V0_9_8);
    let root = lab.host(0).sim.root().to_path_buf();
    let data = root.join("run/udev/data");
    let probe_ids = || {
        let e = lab.probe("lunohba", &[]).unwrap_err();
        assert_eq!(e.code, "SR_BACKEND_FAILURE_107", "{e}");
        e.params[2].clone()
    };
    // Without udev's database the pages give the same names (scsi_id's rules, in the driver).
    let saved = data.with_extension("saved");
    std::fs::rename(&data, &saved).unwrap();
    let listed = probe_ids();
    for wwid in [NAA, EUI64, VENDOR_SPECIFIC, PAGE80_ONLY] {
        assert!(
            listed.contains(&format!("<SCSIid>{wwid}</SCSIid>")),
            "{listed}"
        );
    }
    std::fs::rename(&saved, &data).unwrap();
    // Where the host's rules named a disk otherwise (sg3_utils' rules on an eight-letter
    // vendor, say), the host's name is the one used.
    let sg3_name = "0HITACHI_OPEN-V_50403A1B0022-sg3";
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        if text.contains(&format!("E:ID_SERIAL={VENDOR_SPECIFIC}\n")) {
            std::fs::write(
                entry.path(),
                text.replace(
                    &format!("E:ID_SERIAL={VENDOR_SPECIFIC}\n"),
                    &format!("E:ID_SERIAL={sg3_name}\n"),
                ),
            )
            .unwrap();
        }
    }
    let listed = probe_ids();
    assert!(
        listed.contains(&format!("<SCSIid>{sg3_name}</SCSIid>")),
        "{listed}"
    );
    assert!(
        !listed.contains(&format!("<SCSIid>{VENDOR_SPECIFIC}</SCSIid>")),
        "{listed}"
    );
}

/// Stock sm's `sr_health_check.py`, unchanged, against the simulator with an SR of ours and
/// a stock ISO SR plugged on the host: it runs to the end and checks the stock SR. With our
/// SM record set back to "1.0" (what the driver declared before) the same run crashes on our
/// SR, which shows the test can fail.
#[test]
fn stock_sm_health_check_runs_past_our_srs() {
    let Some(stock) = std::env::var_os("SM_RS_STOCK_SM").map(PathBuf::from) else {
        println!(
            "SKIPPED stock_sm_health_check_runs_past_our_srs: set SM_RS_STOCK_SM to a checkout \
             of xcp-ng/sm (branch 3.2.12-8.3) to run it"
        );
        return;
    };
    // The venv `cargo xtask test` makes (`.ci/install.d/30-python.sh`), as xapi_python.rs.
    let python = std::env::var_os("SM_RS_PYTHON")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || {
                std::env::var_os("XDG_CACHE_HOME")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_default()
                    .join("sm-rs/py-xenapi/bin/python3")
            },
            PathBuf::from,
        );
    let lab = lab_with(1, || iscsi_fabric(2).0, ReplyStyle::V0_9_8);
    let ours = lab.create_sr("lunoiscsi", "LUNs", &iscsi_dconf()).unwrap();
    // The stock ISO library, installed as the sm RPM installs drivers (a symlink to the .py).
    let iso_driver = lab.dir.join("stock-sm/ISOSR");
    std::fs::create_dir_all(iso_driver.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(stock.join("drivers/ISOSR.py"), &iso_driver).unwrap();
    lab.xapi.add_sm(SmRow {
        sm_type: "iso".into(),
        name_label: "ISO".into(),
        required_api_version: "1.0".into(),
        driver_filename: iso_driver.display().to_string(),
        ..SmRow::default()
    });
    let iso = stock_sr(
        &lab,
        "iso",
        "ISO library",
        &[("location", "192.0.2.50:/isos")],
    );
    let (host_uuid, dom0_uuid, ours_uuid, iso_uuid) = {
        let db = lab.xapi.db();
        let host = &lab.host(0).host_ref;
        let dom0 = db.control_domain(host).unwrap();
        (
            db.hosts[host].uuid.clone(),
            db.vms[dom0].uuid.clone(),
            db.srs[ours.as_str()].uuid.clone(),
            db.srs[iso.as_str()].uuid.clone(),
        )
    };
    let inventory = lab.dir.join("xensource-inventory");
    std::fs::write(
        &inventory,
        format!("INSTALLATION_UUID='{host_uuid}'\nCONTROL_DOMAIN_UUID='{dom0_uuid}'\n"),
    )
    .unwrap();
    let address = lab.block_on(lab.xapi.listen_tcp("127.0.0.1:0")).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/stock_sr_health_check.py");
    let run = || {
        let out = std::process::Command::new(&python)
            .arg(&script)
            .env("SM_RS_STOCK_SM", &stock)
            .env("XAPI_URL", format!("http://{address}/"))
            .env("INVENTORY", &inventory)
            .output()
            .expect("python runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run();
    assert!(ok, "sr_health_check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("DONE"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("CHECKED {iso_uuid} ISOSR")),
        "the stock SR was not checked:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(&ours_uuid), "{stdout}");
    println!("stock sr_health_check with our SR plugged:\n{stdout}");

    // As the driver declared before: the check dies on our SR.
    lab.xapi.modify(|db| {
        for sm in db.sms.values_mut() {
            if sm.sm_type == "lunoiscsi" {
                sm.required_api_version = "1.0".into();
            }
        }
    });
    let (ok, stdout, stderr) = run();
    assert!(
        !ok,
        "with \"1.0\" the check should fail:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("from_uuid"), "{stderr}");
    assert!(!stdout.contains("DONE"), "{stdout}");
}
