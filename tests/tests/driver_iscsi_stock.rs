//! The iSCSI SR type next to stock sm on one host (issue 14, items 7-10): stock's iscsiadm
//! lock and set-iscsi-initiator's lock; the sr-ref lines a stock detach counts, against a
//! process that follows stock's refcount and lock protocol (`tests/python/stock_iscsi_peer.py`,
//! written from the facts of xcp-ng/sm's code); `iscsi_sessions` as XenCenter's red-row rule
//! reads it; `same_storage` for wildcard SRs; stock's inquiry pages, scheduler and SR size.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::fabric::{
    ArraySpec, ControllerSpec, Fabric, LunSpec, NoPathRetry, Policy, PortSpec, StandbyTur,
};
use sm_testkit::lab::{Lab, LabSpec};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{ISCSI_PORTALS, ISCSI_TARGET, iscsi_fabric};
use sm_testkit::xapi_sim::db::Db;
use sm_testkit::xapi_sim::sm_exec::SmCall;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use xenapi::Ref;
use xenapi::refs::Sr;

const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/stock_iscsi_peer.py"
);
const TARGET: &str = "127.0.0.101,127.0.0.102";
const STOCK_SR: &str = "5c0ffee1-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
const SECOND_TARGET: &str = "iqn.2026-01.com.example:array2";
const SECOND_PORTALS: [&str; 2] = ["127.0.0.111:3260", "127.0.0.112:3260"];

fn lun(i: usize) -> String {
    format!("36001405{i:025x}")
}

fn second_lun(i: usize) -> String {
    format!("3600140b{i:025x}")
}

/// A lab whose driver logs to stderr, so a test sees when it waits.
fn lab(fabric: impl Fn() -> Fabric + 'static) -> Lab {
    Lab::start(LabSpec {
        hosts: 1,
        fabric: Box::new(fabric),
        driver: sm_testkit::bins::path("sm-driver"),
        standins: sm_testkit::bins::path("sm-sim-tool"),
        style: ReplyStyle::V0_9_8,
        env: vec![("SM_RS_LOG".into(), "stderr".into())],
    })
    .expect("the lab starts")
}

/// The first array of `iscsi_fabric`, and a second array with a target of its own.
fn two_arrays() -> Fabric {
    let (mut fabric, _) = iscsi_fabric(2);
    let portal = |name: &str, tpg: u16, at: &str| PortSpec {
        target_iqn: Some(SECOND_TARGET.into()),
        portal: Some(at.into()),
        ..PortSpec::new(name, tpg)
    };
    let array = fabric.add_array(ArraySpec {
        vendor: "LIO-ORG".into(),
        product: "lun2".into(),
        revision: "4.0".into(),
        controllers: vec![
            ControllerSpec {
                name: "CTRL-C".into(),
                ports: vec![portal("C-eth1", 1, SECOND_PORTALS[0])],
            },
            ControllerSpec {
                name: "CTRL-D".into(),
                ports: vec![portal("D-eth1", 2, SECOND_PORTALS[1])],
            },
        ],
        tpgs: Vec::new(),
        standby_tur: StandbyTur::Ghost,
        policy: Policy {
            no_path_retry: NoPathRetry::Retries(12),
            ..Policy::builtin()
        },
    });
    for i in 0..2 {
        fabric.add_lun(
            array,
            LunSpec {
                lun: i as u64,
                wwid: second_lun(i),
                size_bytes: 8 << 30,
                serial: format!("two{i:08}"),
            },
        );
    }
    fabric.scan();
    fabric
}

/// The stock-style peer on host 0, as a stock driver process would run there.
fn peer(lab: &Lab, args: &[&str]) -> Command {
    let path = lab
        .driver_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap();
    let root = lab.host(0).sim.root();
    let mut command = Command::new("python3");
    command
        .arg(PEER)
        .arg(root)
        .args(args)
        .env("PATH", path)
        .env("SM_RS_ROOT", root);
    command
}

/// Runs the peer to its end; its events.
fn peer_run(lab: &Lab, args: &[&str]) -> Vec<serde_json::Value> {
    let out = peer(lab, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn last_event(events: &[serde_json::Value]) -> &serde_json::Value {
    events.last().unwrap()
}

/// A peer that holds a lock until told to let go.
struct Holder {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Holder {
    fn start(lab: &Lab, command: &str) -> Self {
        let mut child = peer(lab, &[command])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("\"held\""), "{line}");
        Self { child, out }
    }

    fn release(mut self) {
        self.child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert!(line.contains("\"released\""), "{line}");
        self.child.wait().unwrap();
    }
}

/// The host's IQN in the initiator file, as a stock plug leaves it.
fn initiator_name_set(lab: &Lab) {
    let iqn = {
        let db = lab.xapi.db();
        db.hosts[&lab.host(0).host_ref].other_config["iscsi_iqn"].clone()
    };
    let file = lab.host(0).sim.root().join("etc/iscsi/initiatorname.iscsi");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, format!("InitiatorName={iqn}\nInitiatorAlias=host\n")).unwrap();
}

/// `sr_probe` with a target IQN and no SCSIid, as xapi sends it.
fn probe_call(lab: &Lab, target: &str, iqn: &str) -> String {
    SmCall {
        host_ref: lab.host(0).host_ref.clone(),
        command: "sr_probe".into(),
        device_config: [("target", target), ("targetIQN", iqn)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        session_ref: Some(lab.xapi.login_local("SM")),
        sr_sm_config: Some(BTreeMap::new()),
        ..SmCall::default()
    }
    .to_xml()
}

/// Reads the driver's stderr until a line has every one of `words`.
fn wait_for_line(stderr: &mut BufReader<std::process::ChildStderr>, words: &[&str]) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the driver ended without saying {words:?}:\n{seen}"
        );
        if words.iter().all(|w| line.contains(w)) {
            return line;
        }
        seen.push_str(&line);
    }
}

fn iscsiadm_runs(lab: &Lab) -> usize {
    lab.host(0)
        .sim
        .programs_run()
        .iter()
        .filter(|r| r.starts_with("iscsiadm "))
        .count()
}

/// The driver's answer: (stdout, the rest of stderr).
fn finish(mut child: Child, mut stderr: BufReader<std::process::ChildStderr>) -> (String, String) {
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    (out, rest)
}

/// Item 7: our iscsiadm waits while a stock process runs one (stock's lock file, fcntl).
#[test]
fn stocks_iscsiadm_lock_holds_our_iscsiadm_back() {
    let lab = lab(|| iscsi_fabric(1).0);
    let stock = Holder::start(&lab, "hold-iscsiadm-lock");
    let mut child = lab
        .spawn_driver(0, "lunoiscsi", &probe_call(&lab, TARGET, ISCSI_TARGET))
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let line = wait_for_line(
        &mut stderr,
        &[
            "waiting for the lock",
            "var/lock/sm/iscsiadm/isciadm_running",
        ],
    );
    assert_eq!(iscsiadm_runs(&lab), 0, "{line}");
    stock.release();
    let (out, rest) = finish(child, stderr);
    // The probe went on: it lists the LUN (fault 107).
    assert!(out.contains("<i4>107</i4>"), "{out}");
    assert!(
        rest.contains(&format!("<SCSIid>{}</SCSIid>", lun(0))),
        "{rest}"
    );
    assert!(iscsiadm_runs(&lab) > 0);
    // Our process let go of it: a stock process gets it at once.
    let free = peer_run(&lab, &["try-iscsiadm-lock"]);
    assert_eq!(last_event(&free)["free"], true);
}

/// Item 7: xapi's set-iscsi-initiator and our plug exclude each other.
#[test]
fn set_iscsi_initiators_lock_and_our_logins_exclude_each_other() {
    let lab = lab(|| iscsi_fabric(1).0);
    // set-iscsi-initiator runs (shared flock): our plug waits before it looks at the name.
    let script = Holder::start(&lab, "hold-initiator-lock");
    let mut child = lab
        .spawn_driver(0, "lunoiscsi", &probe_call(&lab, TARGET, ISCSI_TARGET))
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    wait_for_line(
        &mut stderr,
        &["waiting for the lock", "run/lock/sm/iscsiadm/running"],
    );
    assert_eq!(iscsiadm_runs(&lab), 0);
    let initiator = lab.host(0).sim.root().join("etc/iscsi/initiatorname.iscsi");
    assert!(!initiator.exists());
    script.release();
    let (out, _) = finish(child, stderr);
    assert!(out.contains("<i4>107</i4>"), "{out}");
    assert!(initiator.exists());

    // Our logins run: set-iscsi-initiator cannot take its lock, a stock iscsiadm waits.
    let login = lab.host(0).sim.gate("iscsiadm", "-l");
    let mut child = lab
        .spawn_driver(0, "lunoiscsi", &probe_call(&lab, TARGET, ISCSI_TARGET))
        .unwrap();
    let argv = login.reached().expect("the probe logs in");
    assert!(argv.contains(&ISCSI_TARGET.to_string()), "{argv:?}");
    let script = peer_run(&lab, &["try-initiator-lock"]);
    assert_eq!(last_event(&script)["free"], false);
    let stock = peer_run(&lab, &["try-iscsiadm-lock"]);
    assert_eq!(last_event(&stock)["free"], false);
    login.open();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    finish(child, stderr);
    assert_eq!(
        last_event(&peer_run(&lab, &["try-initiator-lock"]))["free"],
        true
    );
    assert_eq!(
        last_event(&peer_run(&lab, &["try-iscsiadm-lock"]))["free"],
        true
    );
}

/// Items 1 and 7 together: the logins of one multipathed plug run at once, each holding
/// stock's iscsiadm lock; the hold is the process's, shared by its threads, so one login
/// does not wait for the other, while a stock iscsiadm waits for both.
#[test]
fn parallel_logins_share_stocks_iscsiadm_lock_and_keep_stock_out() {
    let lab = lab(|| iscsi_fabric(1).0);
    multipath_on(&lab, 0);
    let sim = &lab.host(0).sim;
    let first = sim.gate("iscsiadm", &format!("{} -l", ISCSI_PORTALS[0]));
    let second = sim.gate("iscsiadm", &format!("{} -l", ISCSI_PORTALS[1]));
    let mut child = lab
        .spawn_driver(0, "lunoiscsi", &probe_call(&lab, TARGET, ISCSI_TARGET))
        .unwrap();
    // Both logins are under way at the same time: neither has returned.
    let one = first.reached().expect("a login to the first portal");
    let other = second.reached().expect("a login to the second portal");
    assert!(one.contains(&ISCSI_TARGET.to_string()), "{one:?}");
    assert!(other.contains(&ISCSI_TARGET.to_string()), "{other:?}");
    let stock = peer_run(&lab, &["try-iscsiadm-lock"]);
    assert_eq!(last_event(&stock)["free"], false);
    first.open();
    // The first login goes on, the second is still held: the lock stays ours.
    let stock = peer_run(&lab, &["try-iscsiadm-lock"]);
    assert_eq!(last_event(&stock)["free"], false);
    second.open();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (out, rest) = finish(child, stderr);
    assert!(out.contains("<i4>107</i4>"), "{out}");
    assert!(
        rest.contains("logged in through 2 of 2 portal(s)"),
        "{rest}"
    );
    assert_eq!(
        last_event(&peer_run(&lab, &["try-iscsiadm-lock"]))["free"],
        true
    );
}

/// Item 8: a stock SR shares the target. From the moment our probe logs in, a stock detach
/// of the stock SR counts the probe as a user (its line begins with a uuid, and is written
/// before the login) and keeps the session; when the probe lets go, it is the last user and
/// logs out.
#[test]
fn a_stock_detach_never_logs_out_a_session_our_probe_uses() {
    let lab = lab(|| iscsi_fabric(2).0);
    initiator_name_set(&lab);
    let sim = &lab.host(0).sim;
    let attached = peer_run(
        &lab,
        &["attach", ISCSI_TARGET, "127.0.0.101:3260", STOCK_SR],
    );
    assert_eq!(last_event(&attached)["refcount"], 1, "{attached:?}");
    assert_eq!(sim.iscsi_sessions().len(), 1);
    let login = sim.gate("iscsiadm", "-l");
    let settle = sim.gate("udevadm", "settle");
    let mut child = lab
        .spawn_driver(
            0,
            "lunoiscsi",
            &probe_call(&lab, "127.0.0.101", ISCSI_TARGET),
        )
        .unwrap();
    let probe_line = format!(" sm-rs probe pid={}", child.id());
    // The probe is logging in: the stock SR goes, the session stays.
    login.reached().expect("the probe logs in");
    let detached = peer_run(&lab, &["detach", ISCSI_TARGET, STOCK_SR]);
    let last = last_event(&detached);
    assert_eq!(last["event"], "kept", "{detached:?}");
    assert_eq!(last["refcount"], 1);
    let lines = last["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].as_str().unwrap().ends_with(&probe_line),
        "{lines:?}"
    );
    assert_eq!(sim.iscsi_sessions().len(), 1);
    login.open();
    // Logged in, waiting for udev to make the LUNs' links: the probe uses the session.
    settle.reached().expect("the probe settles");
    assert_eq!(sim.iscsi_sessions().len(), 1);
    let users = std::fs::read_to_string(sim.root().join("var/run/sr-ref").join(ISCSI_TARGET));
    assert!(users.unwrap().trim_end().ends_with(&probe_line));
    settle.open();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (out, rest) = finish(child, stderr);
    assert!(out.contains("<i4>107</i4>"), "{out}");
    for i in 0..2 {
        assert!(
            rest.contains(&format!("<SCSIid>{}</SCSIid>", lun(i))),
            "{rest}"
        );
    }
    // The probe was the last user: logged out, the count gone, as stock leaves it.
    assert!(sim.iscsi_sessions().is_empty());
    assert!(!sim.root().join("run/sr-ref").join(ISCSI_TARGET).exists());
}

/// Item 8, the other way round: a stock SR attached while our SR is plugged; stock's detach
/// of it keeps our SR's sessions, and our unplug then logs out.
#[test]
fn our_plugged_sr_and_a_stock_sr_on_one_target_keep_each_other() {
    let lab = lab(|| iscsi_fabric(1).0);
    multipath_on(&lab, 0);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "ours",
            &[("target", TARGET), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap();
    let sim = &lab.host(0).sim;
    assert_eq!(sim.iscsi_sessions().len(), 2);
    let attached = peer_run(
        &lab,
        &["attach", ISCSI_TARGET, "127.0.0.101:3260", STOCK_SR],
    );
    assert_eq!(last_event(&attached)["refcount"], 2, "{attached:?}");
    let detached = peer_run(&lab, &["detach", ISCSI_TARGET, STOCK_SR]);
    assert_eq!(last_event(&detached)["event"], "kept", "{detached:?}");
    assert_eq!(sim.iscsi_sessions().len(), 2);
    peer_run(
        &lab,
        &["attach", ISCSI_TARGET, "127.0.0.101:3260", STOCK_SR],
    );
    lab.unplug(0, &sr).unwrap();
    assert_eq!(
        sim.iscsi_sessions().len(),
        2,
        "the stock SR still uses them"
    );
    let detached = peer_run(&lab, &["detach", ISCSI_TARGET, STOCK_SR]);
    assert_eq!(last_event(&detached)["event"], "logged-out", "{detached:?}");
    assert!(sim.iscsi_sessions().is_empty());
}

/// XenCenter's multipath rows of an SR, computed as `GeneralTabPage.GenerateMultipathBox`
/// (with `SR.LunPerVDI`, `SR.GetMultiPathStatusLunPerVDI` / `…LunPerSR`, `PBD.MultipathActive`,
/// `PBD.ISCSISessions`, `PBD.ParsePathCounts` and `AddMultipathLine`) does from the records:
/// (title, row, red). Keys are read in the order the records list them.
fn xencenter_multipath_rows(db: &Db, sr: &str) -> Vec<(String, String, bool)> {
    let sm_config = &db.srs[sr].sm_config;
    let pbds: Vec<_> = db.pbds.values().filter(|p| p.sr == sr).collect();
    let multipath_active =
        |oc: &BTreeMap<String, String>| oc.get("multipathed").is_some_and(|v| v == "true");
    let iscsi_sessions = |oc: &BTreeMap<String, String>| {
        oc.get("iscsi_sessions")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(-1)
    };
    let counts = |text: &str| -> Option<(i64, i64)> {
        // \[(\d+)L?,\s(\d+)L?
        let rest = &text[text.find('[')? + 1..];
        let digits = |s: &str| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        };
        let current = digits(rest);
        let rest = rest[current.len()..]
            .strip_prefix('L')
            .unwrap_or(&rest[current.len()..]);
        let rest = rest.strip_prefix(',')?;
        let rest = rest.strip_prefix(|c: char| c.is_whitespace())?;
        let max = digits(rest);
        Some((current.parse().ok()?, max.parse().ok()?))
    };
    let line = |title: String, current: i64, max: i64, sessions: i64| {
        let bad = current < max || (sessions != -1 && max < sessions);
        let mut row = format!("{current} of {max} paths active");
        if sessions != -1 {
            row.push_str(&format!(" ({sessions} iSCSI sessions)"));
        }
        (title, row, bad)
    };
    let mut rows = Vec::new();
    let lun_per_vdi = sm_config
        .keys()
        .any(|k| k.contains("LUNperVDI") || k.starts_with("scsi-"));
    for (host_ref, host) in &db.hosts {
        let pbd = pbds.iter().find(|p| &p.host == host_ref);
        if lun_per_vdi {
            let Some(pbd) = pbd.filter(|p| multipath_active(&p.other_config)) else {
                continue;
            };
            // VM -> VDI -> status, from every PBD of the SR.
            let mut by_vm: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for any in pbds.iter().filter(|p| multipath_active(&p.other_config)) {
                for (key, value) in &any.other_config {
                    if !key.starts_with("mpath") || counts(value).is_none() {
                        continue;
                    }
                    let Some(vdi_uuid) = sm_config.get(&format!("scsi-{}", &key[6..])) else {
                        continue;
                    };
                    let Some((vdi_ref, _)) = db.vdis.iter().find(|(_, v)| &v.uuid == vdi_uuid)
                    else {
                        continue;
                    };
                    for vbd in db.vbds.values().filter(|b| &b.vdi == vdi_ref) {
                        if db
                            .vms
                            .get(&vbd.vm)
                            .is_some_and(|vm| vm.power_state == "Running")
                        {
                            by_vm
                                .entry(vbd.vm.clone())
                                .or_default()
                                .push((vdi_ref.clone(), value.clone()));
                        }
                    }
                }
            }
            for (vm, vdis) in by_vm {
                if db.vms[&vm].resident_on != *host_ref {
                    continue;
                }
                let sessions = iscsi_sessions(&pbd.other_config);
                let all: Vec<(i64, i64)> = vdis.iter().filter_map(|(_, v)| counts(v)).collect();
                if all.windows(2).all(|w| w[0] == w[1]) && !all.is_empty() {
                    rows.push(line(format!("  {vm}"), all[0].0, all[0].1, sessions));
                } else {
                    for (vdi, v) in &vdis {
                        if let Some((c, m)) = counts(v) {
                            rows.push(line(format!("    {vdi}"), c, m, sessions));
                        }
                    }
                }
            }
        } else {
            let Some(pbd) = pbd.filter(|p| multipath_active(&p.other_config)) else {
                continue;
            };
            let status = pbd
                .other_config
                .iter()
                .find(|(k, _)| k.starts_with("mpath"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if let Some((c, m)) = counts(&status) {
                rows.push(line(
                    host.name_label.clone(),
                    c,
                    m,
                    iscsi_sessions(&pbd.other_config),
                ));
            }
        }
    }
    rows
}

/// Item 9: an SR over two arrays' targets (`targetIQN=*`), every path up, a VM using a LUN
/// of each: XenCenter paints no row red. The PBD says 2 sessions (each LUN's), not 4.
#[test]
fn a_healthy_sr_over_several_targets_is_not_red_in_xencenter() {
    let lab = lab(two_arrays);
    multipath_on(&lab, 0);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "wide",
            &[("target", "127.0.0.101,127.0.0.111"), ("targetIQN", "*")],
        )
        .unwrap();
    let sim = &lab.host(0).sim;
    assert_eq!(sim.iscsi_sessions().len(), 4);
    assert_eq!(lab.pbd_other_config(0, &sr)["iscsi_sessions"], "2");
    let guest = running_guest(&lab);
    for scsiid in [lun(0), second_lun(1)] {
        let vdi = lab.claim(&sr, &scsiid).unwrap();
        lab.attach(0, &vdi).unwrap();
        lab.xapi.modify(|db| db.insert_vbd(&guest, &vdi, true));
    }
    let rows = xencenter_multipath_rows(&lab.xapi.db(), sr.as_str());
    assert!(!rows.is_empty(), "XenCenter shows no multipath row");
    for (title, row, red) in &rows {
        assert!(!red, "{title}: {row} is red");
        assert!(row.contains("(2 iSCSI sessions)"), "{row}");
    }
    // Had the PBD said 4 (all sessions), the rule paints every row red: the rule is live.
    lab.xapi.modify(|db| {
        for pbd in db.pbds.values_mut().filter(|p| p.sr == sr.as_str()) {
            pbd.other_config.insert("iscsi_sessions".into(), "4".into());
        }
    });
    let rows = xencenter_multipath_rows(&lab.xapi.db(), sr.as_str());
    assert!(rows.iter().all(|(_, _, red)| *red), "{rows:?}");
}

/// A running guest on host 0; its ref.
fn running_guest(lab: &Lab) -> String {
    let host = lab.host(0).host_ref.clone();
    lab.xapi.modify(|db| {
        let vm = sm_testkit::xapi_sim::db::new_ref();
        db.vms.insert(
            vm.clone(),
            sm_testkit::xapi_sim::db::VmRow {
                uuid: sm_testkit::xapi_sim::db::new_uuid(),
                name_label: "guest".into(),
                resident_on: host,
                power_state: "Running".into(),
                ..Default::default()
            },
        );
        vm
    })
}

/// Item 10: two wildcard SRs on different arrays are different storage; a second one through
/// the same portal is refused.
#[test]
fn wildcard_srs_are_the_same_storage_only_through_the_same_portal() {
    let lab = lab(two_arrays);
    let first = lab
        .create_sr(
            "lunoiscsi",
            "array1",
            &[("target", "127.0.0.101"), ("targetIQN", "*")],
        )
        .unwrap();
    let second = lab
        .create_sr(
            "lunoiscsi",
            "array2",
            &[("target", "127.0.0.111"), ("targetIQN", "*")],
        )
        .unwrap();
    assert_ne!(first, second);
    let dup = lab
        .create_sr(
            "lunoiscsi",
            "again",
            &[("target", "127.0.0.111,127.0.0.112"), ("targetIQN", "*")],
        )
        .unwrap_err();
    assert_eq!(dup.code, "SR_DEVICE_IN_USE", "{dup}");
    // Each SR lists its own array's LUNs.
    let locations =
        |sr: &Ref<Sr>| -> Vec<String> { lab.vdis(sr).into_iter().map(|(_, _, l)| l).collect() };
    assert_eq!(locations(&first), vec![lun(0), lun(1)]);
    assert_eq!(locations(&second), vec![second_lun(0), second_lun(1)]);
}

/// Item 10: what stock gives a LUN-per-VDI SR: the size at a scan, the inquiry pages in the
/// attach's xenstore_data (checked against Python computing them as stock does), `none`
/// as the LUN's disks' scheduler.
#[test]
fn size_inquiry_pages_and_scheduler_as_stock_sets_them() {
    let lab = lab(|| iscsi_fabric(2).0);
    multipath_on(&lab, 0);
    let sr = lab
        .create_sr(
            "lunoiscsi",
            "LIO",
            &[("target", TARGET), ("targetIQN", ISCSI_TARGET)],
        )
        .unwrap();
    let size = |lab: &Lab| {
        let db = lab.xapi.db();
        let row = &db.srs[sr.as_str()];
        (
            row.physical_size,
            row.physical_utilisation,
            row.virtual_allocation,
        )
    };
    assert_eq!(size(&lab), (32 << 30, 0, 0));
    let vdi = lab.claim(&sr, &lun(1)).unwrap();
    lab.block_on(xenapi::api::sr::scan(&lab.session, &sr))
        .unwrap();
    assert_eq!(size(&lab), (32 << 30, 16 << 30, 16 << 30));

    let scheduler = |disk: &str| {
        std::fs::read_to_string(
            lab.host(0)
                .sim
                .root()
                .join(format!("sys/block/{disk}/queue/scheduler")),
        )
        .unwrap()
    };
    let paths: Vec<String> = lab.host(0).sim.fabric(|f| {
        f.paths_of(&lun(1))
            .into_iter()
            .map(|d| d.name.clone())
            .collect()
    });
    assert_eq!(paths.len(), 2);
    for p in &paths {
        assert!(
            scheduler(p).starts_with("[mq-deadline]"),
            "{}",
            scheduler(p)
        );
    }
    lab.attach(0, &vdi).unwrap();
    for p in &paths {
        assert_eq!(scheduler(p), "none\n");
    }
    let other: Vec<String> = lab.host(0).sim.fabric(|f| {
        f.paths_of(&lun(0))
            .into_iter()
            .map(|d| d.name.clone())
            .collect()
    });
    assert!(scheduler(&other[0]).starts_with("[mq-deadline]"));

    let call = lab
        .xapi
        .driver_calls()
        .into_iter()
        .rfind(|c| c.command == "vdi_attach")
        .unwrap();
    let answer = call.outcome.unwrap();
    let xenstore = answer.as_struct().unwrap()["xenstore_data"]
        .as_struct()
        .unwrap()
        .clone();
    let text = |k: &str| xenstore[k].as_str().unwrap().to_string();
    let vdi_uuid = lab.xapi.db().vdis[&vdi].uuid.clone();
    assert_eq!(text("vdi-uuid"), vdi_uuid);
    let stock = Command::new("python3")
        .arg("-c")
        .arg(
            "import base64, sys\n\
             u = sys.argv[1]\n\
             p80 = '\\x00\\x80\\x00\\x12' + u[0:16] + '  '\n\
             p83 = '\\x00\\x83\\x00\\x31' + '\\x02\\x01\\x00\\x2d' + 'XENSRC  ' + u + ' '\n\
             print(base64.b64encode(str.encode(p80)).decode())\n\
             print(base64.b64encode(str.encode(p83)).decode())\n",
        )
        .arg(&vdi_uuid)
        .output()
        .unwrap();
    let stock = String::from_utf8(stock.stdout).unwrap();
    let mut pages = stock.lines();
    assert_eq!(text("scsi/0x12/0x80"), pages.next().unwrap());
    assert_eq!(text("scsi/0x12/0x83"), pages.next().unwrap());
    assert!(!xenstore.contains_key("scsi/0x12/default"));
}
