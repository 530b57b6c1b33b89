//! What XenCenter shows of a LUN-per-VDI SR, computed from the xapi simulator's records the
//! way XenCenter computes it (xenserver/xenadmin `XenModel/XenAPI-Extensions/SR.cs`:
//! `LunPerVDI`, `GetMultiPathStatusLunPerVDI`, `MultipathAOK`; `PBD.cs`: `MultipathActive`,
//! `ParsePathCounts`), while the path agent keeps the counts and the driver keeps the SR's
//! `sm_config` (`LUNperVDI`, `scsi-<SCSIid>` = the VDI's uuid).
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::large_fabric;
use std::collections::BTreeMap;
use xenapi::refs::Sr;
use xenapi::{Ref, Value};

/// A record's fields, read over XenAPI as XenCenter's cache holds them.
fn record(lab: &Lab, class: &str, r: &str) -> BTreeMap<String, Value> {
    lab.block_on(
        lab.session
            .call(&format!("{class}.get_record"), vec![r.into()]),
    )
    .unwrap()
    .as_struct()
    .cloned()
    .unwrap()
}

fn text(record: &BTreeMap<String, Value>, field: &str) -> String {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn refs(record: &BTreeMap<String, Value>, field: &str) -> Vec<String> {
    record
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn map(record: &BTreeMap<String, Value>, field: &str) -> BTreeMap<String, String> {
    record
        .get(field)
        .and_then(Value::as_string_map)
        .unwrap_or_default()
}

/// `PBD.ParsePathCounts`: the first match of `\[(\d+)L?,\s(\d+)L?` anywhere in the value.
fn parse_path_counts(input: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<(u32, usize)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s[..n].parse().ok()?, n))
    };
    input
        .char_indices()
        .filter(|(_, c)| *c == '[')
        .find_map(|(at, _)| {
            let rest = &input[at + 1..];
            let (current, n) = digits(rest)?;
            let mut rest = &rest[n..];
            rest = rest.strip_prefix('L').unwrap_or(rest);
            let rest = rest.strip_prefix(',')?;
            let mut chars = rest.chars();
            if !chars.next()?.is_whitespace() {
                return None;
            }
            let (max, _) = digits(chars.as_str())?;
            Some((current, max))
        })
}

/// What XenCenter computes of an SR.
struct XenCenterView {
    lun_per_vdi: bool,
    /// `GetMultiPathStatusLunPerVDI`: VM name → VDI name → the `mpath-*` value.
    per_vdi: BTreeMap<String, BTreeMap<String, String>>,
    multipath_aok: bool,
}

fn xencenter_view(lab: &Lab, sr: &Ref<Sr>) -> XenCenterView {
    let sr_record = record(lab, "SR", sr.as_str());
    let sm_config = map(&sr_record, "sm_config");
    // SR.LunPerVDI
    let lun_per_vdi = sm_config
        .keys()
        .any(|k| k.contains("LUNperVDI") || k.starts_with("scsi-"));
    // SR.GetMultiPathStatusLunPerVDI
    let mut per_vdi: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for pbd in refs(&sr_record, "PBDs") {
        let other_config = map(&record(lab, "PBD", &pbd), "other_config");
        // PBD.MultipathActive
        if other_config.get("multipathed").map(String::as_str) != Some("true") {
            continue;
        }
        for (key, value) in &other_config {
            if !key.starts_with("mpath") || parse_path_counts(value).is_none() {
                continue;
            }
            // kvp.Key.Substring(MPATH.Length + 1)
            let scsi_key = format!("scsi-{}", &key["mpath".len() + 1..]);
            let Some(vdi_uuid) = sm_config.get(&scsi_key) else {
                continue;
            };
            let Some(vdi) = refs(&sr_record, "VDIs")
                .into_iter()
                .map(|v| record(lab, "VDI", &v))
                .find(|v| text(v, "uuid") == *vdi_uuid)
            else {
                continue;
            };
            for vbd in refs(&vdi, "VBDs") {
                let vm = record(lab, "VM", &text(&record(lab, "VBD", &vbd), "VM"));
                if text(&vm, "power_state") != "Running" {
                    continue;
                }
                per_vdi
                    .entry(text(&vm, "name_label"))
                    .or_default()
                    .insert(text(&vdi, "name_label"), value.clone());
            }
        }
    }
    // SR.MultipathAOK (the SR is multipath capable: sm_config:multipathable)
    let multipath_aok = per_vdi
        .values()
        .flat_map(BTreeMap::values)
        .all(|v| parse_path_counts(v).is_none_or(|(current, max)| current >= max));
    XenCenterView {
        lun_per_vdi,
        per_vdi,
        multipath_aok,
    }
}

#[test]
fn xencenter_parses_path_counts_as_its_regex_does() {
    assert_eq!(parse_path_counts("[2, 2]"), Some((2, 2)));
    assert_eq!(parse_path_counts("[3L, 4L]"), Some((3, 4)));
    assert_eq!(parse_path_counts("[2,2]"), None);
    assert_eq!(parse_path_counts("x [1, 2] y"), Some((1, 2)));
}

#[test]
fn xencenter_shows_the_degraded_lun_under_its_vdi_and_running_vm() {
    let lab = lab_with(1, || large_fabric(3), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let sr = lab.create_sr("lunohba", "Array LUNs", &[]).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdis = lab.claim_all(&sr).unwrap();
    assert_eq!(vdis.len(), 3, "{vdis:?}");
    let host_ref = lab.host(0).host_ref.clone();
    let mut wwids = Vec::new();
    for (i, (vdi, _, scsiid)) in vdis.iter().enumerate() {
        lab.block_on(lab.session.call(
            "VDI.set_name_label",
            vec![vdi.as_str().into(), format!("disk{i}").into()],
        ))
        .unwrap();
        let vm = lab.xapi.add_vm(&format!("vm{i}"));
        lab.xapi.add_vbd(&vm, vdi).unwrap();
        lab.block_on(lab.xapi.start_vm(&vm, &host_ref)).unwrap();
        wwids.push(scsiid.clone());
    }
    let key = |id: &str| format!("mpath-{id}");
    wait_until("every count published", || {
        let oc = lab.pbd_other_config(0, &sr);
        wwids
            .iter()
            .all(|id| oc.get(&key(id)).map(String::as_str) == Some("[4, 4]"))
    });
    // The SR says how XenCenter should read it.
    let sm_config = lab
        .block_on(xenapi::api::sr::get_sm_config(&lab.session, &sr))
        .unwrap();
    assert_eq!(sm_config.get("LUNperVDI").map(String::as_str), Some("true"));
    for (_, uuid, id) in &vdis {
        assert_eq!(
            sm_config.get(&format!("scsi-{id}")),
            Some(uuid),
            "{sm_config:?}"
        );
    }
    let view = xencenter_view(&lab, &sr);
    assert!(view.lun_per_vdi);
    assert!(view.multipath_aok, "{:?}", view.per_vdi);
    assert_eq!(view.per_vdi.len(), 3, "{:?}", view.per_vdi);

    // One path of the second LUN goes down.
    let relay = agent.relay();
    let sim = &lab.host(0).sim;
    let (_, sent) = relay.change(sim, |f| {
        let path = f.paths_of(&wwids[1])[0].id;
        f.set_offline(path, true);
    });
    assert!(sent > 0);
    wait_until("the degraded count", || {
        lab.pbd_other_config(0, &sr)
            .get(&key(&wwids[1]))
            .map(String::as_str)
            == Some("[3, 4]")
    });
    let view = xencenter_view(&lab, &sr);
    assert!(!view.multipath_aok, "Repair SR warns: not fully functional");
    let expected: BTreeMap<String, BTreeMap<String, String>> = [
        ("vm0", "disk0", "[4, 4]"),
        ("vm1", "disk1", "[3, 4]"),
        ("vm2", "disk2", "[4, 4]"),
    ]
    .into_iter()
    .map(|(vm, disk, v)| (vm.to_string(), [(disk.to_string(), v.to_string())].into()))
    .collect();
    assert_eq!(view.per_vdi, expected);
    let red: Vec<(&String, &String)> = view
        .per_vdi
        .iter()
        .flat_map(|(vm, disks)| {
            disks
                .iter()
                .filter(|(_, v)| parse_path_counts(v).is_some_and(|(c, m)| c < m))
                .map(move |(disk, _)| (vm, disk))
        })
        .collect();
    assert_eq!(red, [(&"vm1".to_string(), &"disk1".to_string())]);
}

#[test]
fn the_scsi_keys_follow_claims_scans_and_forgets() {
    let lab = lab_with(1, || large_fabric(3), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Array LUNs", &[]).unwrap();
    let scsi_keys = || -> BTreeMap<String, String> {
        lab.block_on(xenapi::api::sr::get_sm_config(&lab.session, &sr))
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k.starts_with("scsi-"))
            .collect()
    };
    // Listed, not claimed: no key (another SR may still claim the LUN).
    assert_eq!(lab.vdis(&sr).len(), 3);
    assert!(scsi_keys().is_empty(), "{:?}", scsi_keys());
    let listed = lab.vdis(&sr);
    let (_, uuid0, id0) = &listed[0];
    lab.claim(&sr, id0).unwrap();
    assert_eq!(
        scsi_keys(),
        [(format!("scsi-{id0}"), uuid0.clone())].into(),
        "{}",
        everything_shown(&lab)
    );
    // A key lost, or naming the wrong VDI, is put right by the next scan.
    let (_, _, id1) = &listed[1];
    lab.block_on(xenapi::api::sr::remove_from_sm_config(
        &lab.session,
        &sr,
        &format!("scsi-{id0}"),
    ))
    .unwrap();
    lab.block_on(xenapi::api::sr::add_to_sm_config(
        &lab.session,
        &sr,
        &format!("scsi-{id1}"),
        "not-a-vdi",
    ))
    .unwrap();
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    assert_eq!(scsi_keys(), [(format!("scsi-{id0}"), uuid0.clone())].into());
    // `xe vdi-forget` (xapi alone, no driver call): the scan lists the LUN again,
    // unclaimed, and drops its key.
    let vdi0 = lab.vdi_of(&sr, id0).unwrap();
    lab.block_on(lab.session.call("VDI.forget", vec![vdi0.as_str().into()]))
        .unwrap();
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    assert!(scsi_keys().is_empty(), "{:?}", scsi_keys());
    assert_eq!(lab.vdis(&sr).len(), 3);
    // vdi-create claims one and names it.
    let vdi = lab.create_vdi(&sr, "data", 1 << 30, None).unwrap();
    let keys = scsi_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let uuid = text(&record(&lab, "VDI", &vdi), "uuid");
    assert_eq!(keys.values().next(), Some(&uuid));
}

/// XenCenter's `Host.GetBootPathCounts`: `multipathed` true and a parseable `mpath-boot`.
fn boot_path_counts(lab: &Lab) -> Option<(u32, u32)> {
    let host = Ref::<xenapi::refs::Host>::new(&lab.host(0).host_ref);
    let config = lab
        .block_on(xenapi::api::host::get_other_config(&lab.session, &host))
        .unwrap();
    if config.get("multipathed").map(String::as_str) != Some("true") {
        return None;
    }
    parse_path_counts(config.get("mpath-boot")?)
}

#[test]
fn a_multipathed_boot_disk_shows_in_the_hosts_multipath_boot_section() {
    use std::os::unix::fs::MetadataExt;
    let lab = lab_with(1, || large_fabric(2), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sim = &lab.host(0).sim;
    let wwid = format!("36006016015301d00{:016x}", 1);
    // multipathd built the boot disk's map at boot: its WWID is listed, its paths added.
    let wwids = sim.root().join("etc/multipath/wwids");
    let mut text = std::fs::read_to_string(&wwids).unwrap_or_default();
    text.push_str(&format!("/{wwid}/\n"));
    std::fs::write(&wwids, text).unwrap();
    let paths: Vec<String> =
        sim.fabric(|f| f.paths_of(&wwid).iter().map(|d| d.name.clone()).collect());
    let mut daemon =
        mpathutil::Multipathd::connect(&mpathutil::Config::for_socket(sim.socket_name())).unwrap();
    for p in &paths {
        daemon.send(&format!("add path {p}")).unwrap();
    }
    assert!(sim.maps().contains(&wwid), "{:?}", sim.maps());
    // `/` sits on it: the device of the root filesystem is that map.
    let holder = sim.hold(&wwid, &wwid, &format!("mpath-{wwid}"));
    let dev = std::fs::metadata(sim.root()).unwrap().dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let links = sim.root().join("sys/dev/block");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(
        format!("../../block/{holder}"),
        links.join(format!("{major}:{minor}")),
    )
    .unwrap();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let mut agent = AgentProc::start(&lab, 0, &tap, &[]);
    wait_until("mpath-boot", || boot_path_counts(&lab) == Some((4, 4)));
    let relay = agent.relay();
    relay.change(sim, |f| {
        let path = f.paths_of(&wwid)[0].id;
        f.set_offline(path, true);
    });
    wait_until("the degraded boot disk", || {
        boot_path_counts(&lab) == Some((3, 4))
    });
    // Where stock sm's mpathcount is installed, it keeps the key: we do not write it too.
    agent.kill();
    let stock = sim.root().join("opt/xensource/sm");
    std::fs::create_dir_all(&stock).unwrap();
    std::fs::write(stock.join("mpathcount.py"), "").unwrap();
    agent.restart();
    let from = std::time::Instant::now();
    relay.change(sim, |f| {
        let path = f.paths_of(&wwid)[0].id;
        f.set_offline(path, false);
    });
    agent.kick_passes(2);
    assert_eq!(boot_path_counts(&lab), Some((3, 4)));
    assert!(
        !tap.calls_since(from)
            .iter()
            .any(|c| c.is_write() && c.method.starts_with("host.")),
        "{:?}",
        tap.calls_since(from)
    );
    assert!(
        agent.log().contains("stock mpathcount keeps"),
        "{}",
        agent.log()
    );
}
