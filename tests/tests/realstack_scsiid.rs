//! The SCSIid on the real stack: for every disk of the guest, the identifier the driver's own
//! code computes (`sm_plugin::host::sysfs::scsi_disks`: udev's `ID_SERIAL`, and with udev's
//! database out of reach its VPD fallback) is the one `scsi_id` gives, run as stock sm runs it
//! (`util/scsiutil.py` `getSCSIid`: `/usr/lib/udev/scsi_id -g --device /dev/sdX`, then
//! `SCSIid_sanitise`), and the WWID multipathd gives the path.
//!
//! The real code runs in the guest: this test binary, shared at `/mnt/host/deps`, is started
//! there for its guest-side test [`guest_side_scsi_disks`], which prints what `scsi_disks` found.
//!
//! The disks: topology A's NAA-5 LUN through two qemu HBAs, plus two hot-plugged through QMP
//! that identify themselves the ways the issue names as the hard cases — a vendor-specific
//! designator only (scsi_id puts the inquiry vendor and model in front) and no designator at
//! all (page 0x80, the unit serial number, only); topology B's LUN as tgtd serves it over two
//! iSCSI sessions; topology C's as the kernel's LIO serves it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sm_testkit::realstack::{self, Daemon, Probe, Topology, Vm, scsi_lun_wwid};

/// Set in the guest when this binary is started there for its guest side.
const GUEST_SIDE: &str = "SM_RS_SCSIID_GUEST_SIDE";
/// The prefix of each line the guest side prints (libtest prints its own lines around them).
const DISK_LINE: &str = "SCSIDISK";

/// Runs only in the guest (the host side starts it there): the disks as the driver sees them,
/// under `SM_RS_ROOT`.
#[test]
#[ignore = "runs inside the real-stack VM, started by the tests below"]
fn guest_side_scsi_disks() {
    if std::env::var_os(GUEST_SIDE).is_none() {
        return;
    }
    let root = mpathutil::HostRoot::from_env();
    for disk in sm_plugin::host::sysfs::scsi_disks(&root) {
        println!(
            "{DISK_LINE} {} {} {:?} {}",
            disk.name,
            disk.hcil,
            disk.reach,
            disk.scsiid.as_deref().unwrap_or("-")
        );
    }
}

/// stock sm's `SCSIid_sanitise`: trimmed, whitespace runs become `_`.
fn sanitise(id: &str) -> String {
    id.split_whitespace().collect::<Vec<_>>().join("_")
}

/// One disk's identifiers, as each source gives them.
#[derive(Debug, Default, Clone)]
struct Ids {
    hcil: String,
    /// The driver's code with the udev database (the production path).
    ours: Option<String>,
    /// The driver's code with no udev database: the VPD pages.
    ours_vpd: Option<String>,
    scsi_id: Option<String>,
    /// udev's ID_SERIAL as recorded (which rule set it is udev's business).
    id_serial: Option<String>,
    /// multipathd's WWID of the path.
    wwid: Option<String>,
}

fn parse_disks(stdout: &str) -> BTreeMap<String, (String, Option<String>)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(DISK_LINE))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let hcil = f.next()?.to_string();
            let _reach = f.next()?;
            let id = f.next()?;
            Some((name, (hcil, (id != "-").then(|| id.to_string()))))
        })
        .collect()
}

/// The guest-side test under a host root; the disks it printed.
fn ours(vm: &mut Vm, guest_exe: &str, root: &str) -> BTreeMap<String, (String, Option<String>)> {
    let out = vm
        .sh(&format!(
            "{GUEST_SIDE}=1 SM_RS_ROOT={root} {guest_exe} --exact guest_side_scsi_disks --ignored --nocapture"
        ))
        .expect("the guest side runs");
    parse_disks(&out)
}

/// Every source's identifier of every disk of the running guest.
fn collect(vm: &mut Vm, guest_exe: &str) -> BTreeMap<String, Ids> {
    vm.sh("udevadm settle").expect("settle");
    let mut ids: BTreeMap<String, Ids> = BTreeMap::new();
    for (name, (hcil, id)) in ours(vm, guest_exe, "/") {
        let entry = ids.entry(name).or_default();
        entry.hcil = hcil;
        entry.ours = id;
    }
    // The same code without udev's database: a root that shows the kernel's sysfs only.
    vm.sh("rm -rf /tmp/vpd-root && mkdir -p /tmp/vpd-root && ln -s /sys /tmp/vpd-root/sys")
        .expect("a root without udev");
    for (name, (_, id)) in ours(vm, guest_exe, "/tmp/vpd-root") {
        ids.entry(name).or_default().ours_vpd = id;
    }
    let stock = vm
        .sh("for d in /sys/block/sd*; do n=${d##*/}; \
             printf '%s\\t%s\\n' \"$n\" \"$(/usr/lib/udev/scsi_id -g --device /dev/$n)\"; done")
        .expect("scsi_id");
    for line in stock.lines() {
        if let Some((name, id)) = line.split_once('\t') {
            let id = sanitise(id);
            ids.entry(name.to_string()).or_default().scsi_id = (!id.is_empty()).then_some(id);
        }
    }
    let serials = vm
        .sh(
            "for d in /sys/block/sd*; do n=${d##*/}; \
             printf '%s\\t%s\\n' \"$n\" \"$(sed -n 's/^E:ID_SERIAL=//p' /run/udev/data/b$(cat $d/dev))\"; done",
        )
        .expect("udev database");
    for line in serials.lines() {
        if let Some((name, id)) = line.split_once('\t') {
            ids.entry(name.to_string()).or_default().id_serial =
                (!id.is_empty()).then(|| id.to_string());
        }
    }
    let wwids = vm
        .sh("multipathd show paths raw format '%d %w'")
        .unwrap_or_default();
    for line in wwids.lines() {
        if let Some((name, wwid)) = line.trim().split_once(' ')
            && let Some(entry) = ids.get_mut(name)
        {
            let wwid = wwid.trim();
            entry.wwid = (!wwid.is_empty() && wwid != "[undef]").then(|| wwid.to_string());
        }
    }
    ids
}

fn table(what: &str, ids: &BTreeMap<String, Ids>) -> String {
    let mut text = format!("{what}:\n");
    for (name, i) in ids {
        text.push_str(&format!(
            "  {name} {}: ours {:?} | ours (VPD) {:?} | scsi_id {:?} | ID_SERIAL {:?} | multipathd {:?}\n",
            i.hcil, i.ours, i.ours_vpd, i.scsi_id, i.id_serial, i.wwid
        ));
    }
    text
}

/// The disagreements: ours (both ways) against scsi_id, for every disk; none may be missing.
fn disagreements(ids: &BTreeMap<String, Ids>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, i) in ids {
        if i.scsi_id.is_none() {
            wrong.push(format!("{name}: scsi_id gives nothing"));
            continue;
        }
        if i.ours != i.scsi_id {
            wrong.push(format!(
                "{name}: ours {:?} != scsi_id {:?}",
                i.ours, i.scsi_id
            ));
        }
        if i.ours_vpd != i.scsi_id {
            wrong.push(format!(
                "{name}: ours from the VPD pages {:?} != scsi_id {:?}",
                i.ours_vpd, i.scsi_id
            ));
        }
        if i.wwid.is_some() && i.wwid != i.scsi_id {
            wrong.push(format!(
                "{name}: multipathd's WWID {:?} != scsi_id {:?}",
                i.wwid, i.scsi_id
            ));
        }
    }
    wrong
}

/// The guest's path of this test binary.
fn guest_exe(stack: &realstack::Stack) -> String {
    let exe = std::env::current_exe().expect("this test binary");
    let name = exe.file_name().expect("a file name").to_string_lossy();
    let shared = stack.build_dir().expect("the build directory is shared");
    assert!(
        exe.starts_with(shared),
        "{} is not under the shared {}",
        exe.display(),
        shared.display()
    );
    format!("/mnt/host/deps/{name}")
}

/// Hot-plugs a disk on topology A's first HBA, backed by a null block node.
fn hot_plug(vm: &mut Vm, id: &str, scsi_target: u32, extra: serde_json::Value) {
    let node = format!("{id}-null");
    vm.qmp()
        .execute(
            "blockdev-add",
            Some(json!({"driver": "null-co", "node-name": node, "size": 64 << 20, "read-zeroes": true})),
        )
        .expect("blockdev-add");
    let mut args = json!({
        "driver": "scsi-hd",
        "id": id,
        "bus": "hba1.0",
        "scsi-id": scsi_target,
        "lun": 0,
        "drive": node,
    });
    for (k, v) in extra.as_object().expect("object") {
        args[k] = v.clone();
    }
    vm.qmp()
        .execute("device_add", Some(args))
        .expect("device_add");
}

fn check_topology(
    stack: &realstack::Stack,
    topology: Topology,
    expect_disks: usize,
) -> BTreeMap<String, Ids> {
    let exe = guest_exe(stack);
    let mut vm = stack.boot_on(topology, Daemon::Debian094).expect("boot");
    if topology == Topology::ScsiTwoHbas {
        // A LUN that names itself by a vendor-specific designator only (qemu's serial as
        // its device id, no WWN) and one with page 0x80 only (an empty device id).
        hot_plug(&mut vm, "vendorspecific", 1, json!({"serial": "SMRSVS01"}));
        hot_plug(
            &mut vm,
            "page80only",
            2,
            json!({"serial": "SMRSP8001", "device_id": ""}),
        );
        realstack::wait_for("the hot-plugged disks", Duration::from_secs(30), || {
            let n = vm.sh("ls -d /sys/block/sd* | wc -l")?;
            Ok(if n.trim() == "4" {
                Probe::Ready(())
            } else {
                Probe::Pending(format!("{} disks", n.trim()))
            })
        })
        .expect("4 disks");
    }
    let ids = collect(&mut vm, &exe);
    vm.stop().expect("stop");
    eprintln!("{}", table(&format!("{topology:?}"), &ids));
    assert_eq!(ids.len(), expect_disks, "{}", table("disks", &ids));
    ids
}

#[test]
fn realstack_scsiid_is_scsi_ids() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let mut wrong = Vec::new();
    let a = check_topology(&stack, Topology::ScsiTwoHbas, 4);
    // topology A's LUN is the WWID every other real-stack test names it by
    let lun = scsi_lun_wwid();
    assert_eq!(
        a.values()
            .filter(|i| i.scsi_id.as_deref() == Some(&lun))
            .count(),
        2,
        "{}",
        table("A", &a)
    );
    wrong.extend(disagreements(&a).into_iter().map(|w| format!("A: {w}")));
    for (topology, name) in [(Topology::IscsiTgt, "B"), (Topology::LioAlua, "C")] {
        let ids = check_topology(&stack, topology, 2);
        wrong.extend(
            disagreements(&ids)
                .into_iter()
                .map(|w| format!("{name}: {w}")),
        );
    }
    assert!(
        wrong.is_empty(),
        "SCSIids disagree:\n  {}",
        wrong.join("\n  ")
    );
}
