//! The simulator runs SMAPIv1 drivers as xapi's sm_exec does. The drivers here are shell
//! scripts the test writes: they log what they saw and answer from files the test puts in
//! place, so every fault mapping can be provoked.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sm_testkit::xapi_sim::{SrSpec, VdiSpec, XapiSim};
use xenapi::api::{pbd, sr};
use xenapi::wire::{Value, xmlrpc};
use xenapi::{Client, Endpoint, Failure, Protocol, Ref, Session};

const DRIVER: &str = r#"#!/bin/sh
cmd=$(printf '%s' "$1" | sed -n 's|^<methodCall><methodName>\([a-z_]*\)</methodName>.*|\1|p')
echo "argc=$# cmd=$cmd" >&2
env | sort >&2
mkdir -p "$SM_RS_ROOT"
printf '%s\n' "$cmd" >> "$SM_RS_ROOT/calls"
if [ "$cmd" = sr_attach ] || [ "$cmd" = sr_detach ] || [ "$cmd" = sr_probe ]; then
    if [ -e "$TEST_RESPONSES/busy" ]; then echo overlap >> "$TEST_RESPONSES/overlaps"; fi
    : > "$TEST_RESPONSES/busy"
    if [ -f "$TEST_RESPONSES/slow" ]; then sleep 0.3; fi
    rm -f "$TEST_RESPONSES/busy"
fi
r="$TEST_RESPONSES/$cmd"
if [ -f "$r.exit" ]; then echo "exiting" >&2; exit "$(cat "$r.exit")"; fi
if [ -f "$r.signal" ]; then kill -"$(cat "$r.signal")" $$; fi
if [ -f "$r" ]; then cat "$r"; exit 0; fi
case "$cmd" in
sr_get_driver_info)
    printf '%s' '<methodResponse><params><param><value><struct>'
    for k in name description vendor copyright driver_version required_api_version; do
        printf '<member><name>%s</name><value><string>1.0</string></value></member>' "$k"
    done
    printf '%s' '<member><name>capabilities</name><value><array><data>'
    for c in $(cat "$TEST_RESPONSES/capabilities"); do printf '<value><string>%s</string></value>' "$c"; done
    printf '%s' '</data></array></value></member><member><name>configuration</name><value><array><data>'
    printf '%s' '<value><struct><member><name>key</name><value>SCSIid</value></member><member><name>description</name><value>the LUN</value></member></struct></value>'
    printf '%s\n' '</data></array></value></member></struct></value></param></params></methodResponse>'
    ;;
sr_probe)
    printf '%s\n' '<?xml version="1.0"?><methodResponse><params><param><value><string>&lt;SRlist&gt;&lt;SR&gt;&lt;UUID&gt;x&lt;/UUID&gt;&lt;/SR&gt;&lt;/SRlist&gt;</string></value></param></params></methodResponse>'
    ;;
vdi_attach)
    printf '%s\n' '<methodResponse><params><param><value><struct><member><name>params</name><value>/dev/disk/mpInuse/3600a0b8</value></member><member><name>params_nbd</name><value>nbd:unix:/run/blktap-control/nbd/x</value></member><member><name>xenstore_data</name><value><struct/></value></member></struct></value></param></params></methodResponse>'
    ;;
*)
    printf '%s\n' '<?xml version="1.0"?>' '<methodResponse>' '<params>' '<param>' '<value><nil/></value></param>' '</params>' '</methodResponse>'
    ;;
esac
"#;

struct Lab {
    sim: XapiSim,
    dir: tempfile::TempDir,
    session: Session,
    sr: String,
}

impl Lab {
    fn responses(&self) -> PathBuf {
        self.dir.path().join("responses")
    }

    fn respond(&self, command: &str, body: &str) {
        std::fs::write(self.responses().join(command), body).unwrap();
    }

    fn clear(&self, command: &str) {
        for suffix in ["", ".exit", ".signal"] {
            let _ = std::fs::remove_file(self.responses().join(format!("{command}{suffix}")));
        }
    }

    fn pbd_on(&self, host: usize) -> Ref<xenapi::refs::Pbd> {
        Ref::new(self.sim.pbd_of(&self.sim.hosts()[host], &self.sr).unwrap())
    }

    fn calls_seen_by(&self, host: usize) -> Vec<String> {
        let host = self.sim.hosts()[host].clone();
        let uuid = self.sim.db().hosts[&host].uuid.clone();
        std::fs::read_to_string(self.dir.path().join("roots").join(uuid).join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn install_driver(dir: &Path, name: &str) {
    let path = dir.join(name);
    std::fs::write(&path, DRIVER).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn lab(hosts: usize) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let drivers = dir.path().join("sm");
    std::fs::create_dir_all(&drivers).unwrap();
    std::fs::create_dir_all(dir.path().join("responses")).unwrap();
    install_driver(&drivers, "LUNoISCSISR");
    // Not a driver: no SR suffix, or not executable.
    std::fs::write(drivers.join("README"), "x").unwrap();
    std::fs::write(drivers.join("NotExecSR"), DRIVER).unwrap();
    std::fs::write(
        dir.path().join("responses/capabilities"),
        "SR_PROBE SR_UPDATE SR_MULTIPATH VDI_ATTACH VDI_DETACH VDI_ACTIVATE VDI_DEACTIVATE VDI_RESET_ON_BOOT/2",
    )
    .unwrap();
    let roots = dir.path().join("roots");
    let sim = XapiSim::builder()
        .hosts(hosts)
        .driver_dir(&drivers)
        .driver_env("SM_RS_ROOT", &format!("{}/{{host_uuid}}", roots.display()))
        .driver_env("SM_RS_XAPI", "{xapi}")
        .driver_env(
            "TEST_RESPONSES",
            &dir.path().join("responses").display().to_string(),
        )
        .build();
    let socket = dir.path().join("xapi");
    sim.listen_unix(&socket).await.unwrap();
    let sr = sim
        .add_sr(
            SrSpec::shared("lunoiscsi", "LUNs")
                .device_config("SCSIid", "3600a0b80001234")
                .device_config("target", "192.0.2.1"),
        )
        .sr;
    let client = Client::with_protocol(Endpoint::Unix(socket), Protocol::JsonRpc);
    let session = Session::login_with_password(&client, "root", "", "1.0", "test")
        .await
        .unwrap();
    Lab {
        sim,
        dir,
        session,
        sr,
    }
}

fn member<'a>(call: &'a Value, name: &str) -> &'a Value {
    call.as_struct()
        .unwrap()
        .get(name)
        .unwrap_or_else(|| panic!("no member {name} in {call:?}"))
}

#[tokio::test]
async fn plug_runs_sr_attach_with_xapis_argv_and_environment() {
    let lab = lab(2).await;
    let pbd0 = lab.pbd_on(0);
    pbd::plug(&lab.session, &pbd0).await.unwrap();
    assert!(
        pbd::get_record(&lab.session, &pbd0)
            .await
            .unwrap()
            .currently_attached
    );

    let calls = lab.sim.driver_calls();
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["sr_get_driver_info", "sr_attach"]);
    assert_eq!(lab.calls_seen_by(0), ["sr_get_driver_info", "sr_attach"]);
    assert!(lab.calls_seen_by(1).is_empty());

    // Driver info: no session, empty device_config.
    let (method, params) = xmlrpc::decode_call(&calls[0].argv1).unwrap();
    assert_eq!(method, "sr_get_driver_info");
    assert!(params[0].as_struct().unwrap().get("session_ref").is_none());

    let attach = &calls[1];
    assert!(attach.argv1.starts_with(
        "<methodCall><methodName>sr_attach</methodName><params><param><value><struct><member><name>host_ref</name>"
    ));
    let order: Vec<usize> = [
        "host_ref",
        "command",
        "args",
        "device_config",
        "session_ref",
        "sr_ref",
        "sr_uuid",
    ]
    .iter()
    .map(|m| attach.argv1.find(&format!("<name>{m}</name>")).unwrap())
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "members in xapi's order: {}",
        attach.argv1
    );
    assert!(
        attach
            .argv1
            .contains("<member><name>args</name><value><array><data/></array></value></member>")
    );
    let (method, params) = xmlrpc::decode_call(&attach.argv1).unwrap();
    assert_eq!((method.as_str(), params.len()), ("sr_attach", 1));
    let call = &params[0];
    let master = lab.sim.master();
    assert_eq!(member(call, "host_ref").as_str(), Some(master.as_str()));
    assert_eq!(member(call, "command").as_str(), Some("sr_attach"));
    assert_eq!(member(call, "sr_ref").as_str(), Some(lab.sr.as_str()));
    assert_eq!(
        member(call, "sr_uuid").as_str(),
        Some(lab.sim.db().srs[&lab.sr].uuid.as_str())
    );
    let dc = member(call, "device_config").as_string_map().unwrap();
    assert_eq!(dc["SRmaster"], "true");
    assert_eq!(dc["SCSIid"], "3600a0b80001234");
    // The session was made for this SR, and is gone now that the driver returned.
    let session = member(call, "session_ref").as_str().unwrap();
    assert!(session.starts_with("OpaqueRef:"));
    assert!(!lab.sim.db().sessions.contains_key(session));

    // Exactly PATH and ORIGINATOR, plus the knobs; nothing of ours leaks through.
    let names: Vec<&str> = attach.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "PATH",
            "ORIGINATOR",
            "SM_RS_ROOT",
            "SM_RS_XAPI",
            "TEST_RESPONSES"
        ]
    );
    assert!(
        attach.stderr.contains("ORIGINATOR=SM\n"),
        "{}",
        attach.stderr
    );
    assert!(
        attach
            .stderr
            .contains("PATH=/sbin:/usr/sbin:/bin:/usr/bin\n")
    );
    assert!(attach.stderr.contains(&format!(
        "SM_RS_XAPI=unix:{}",
        lab.dir.path().join("xapi").display()
    )));
    assert!(!attach.stderr.contains("HOME="), "{}", attach.stderr);
    assert!(attach.stderr.starts_with("argc=1 cmd=sr_attach"));

    // A member host is not the SR master.
    let pbd1 = lab.pbd_on(1);
    pbd::plug(&lab.session, &pbd1).await.unwrap();
    let last = lab.sim.driver_calls().pop().unwrap();
    assert_eq!(last.device_config["SRmaster"], "false");
    assert_eq!(last.host, lab.sim.hosts()[1]);
    // Plugging an attached PBD runs nothing.
    pbd::plug(&lab.session, &pbd1).await.unwrap();
    assert_eq!(lab.sim.driver_calls().len(), 3);

    pbd::unplug(&lab.session, &pbd1).await.unwrap();
    assert_eq!(lab.sim.driver_calls().pop().unwrap().command, "sr_detach");
    assert!(
        !pbd::get_record(&lab.session, &pbd1)
            .await
            .unwrap()
            .currently_attached
    );
}

async fn plug_failure(lab: &Lab) -> Failure {
    let pbd0 = lab.pbd_on(0);
    let e = pbd::plug(&lab.session, &pbd0).await.unwrap_err();
    assert!(!lab.sim.db().pbds[pbd0.as_str()].currently_attached);
    e.failure()
        .cloned()
        .unwrap_or_else(|| panic!("not a XenAPI failure: {e:?}"))
}

fn fault(code: i32, text: &str) -> String {
    xmlrpc::encode_fault(code, text)
}

#[tokio::test]
async fn every_fault_maps_to_xapis_error() {
    let lab = lab(1).await;
    let sr = lab.sr.clone();
    let cases: [(i32, Vec<String>); 5] = [
        (38, vec!["SR_OPERATION_NOT_SUPPORTED".into(), sr.clone()]),
        (39, vec!["SR_NOT_EMPTY".into()]),
        (24, vec!["VDI_IN_USE".into()]),
        (16, vec!["SR_DEVICE_IN_USE".into()]),
        (144, vec!["VDI_MISSING".into(), sr.clone(), String::new()]),
    ];
    for (code, expected) in cases {
        lab.respond("sr_attach", &fault(code, "special"));
        assert_eq!(
            plug_failure(&lab).await.description(),
            expected,
            "fault {code}"
        );
    }
    // Any other code: SR_BACKEND_FAILURE_<n> with ["", faultString, stderr].
    lab.respond(
        "sr_attach",
        &fault(432, "Device Mapper path missing [opterr=3600a0b8]"),
    );
    let f = plug_failure(&lab).await;
    assert_eq!(f.code, "SR_BACKEND_FAILURE_432");
    assert_eq!(
        f.params[..2],
        ["", "Device Mapper path missing [opterr=3600a0b8]"]
    );
    assert!(
        f.params[2].starts_with("argc=1 cmd=sr_attach\n"),
        "stderr is the third param: {f:?}"
    );

    // Non-zero exit, a signal, unparsable stdout, a value of the wrong shape.
    lab.clear("sr_attach");
    std::fs::write(lab.responses().join("sr_attach.exit"), "3").unwrap();
    let f = plug_failure(&lab).await;
    assert_eq!(
        (f.code.as_str(), f.params[0].as_str(), f.params[1].as_str()),
        ("SR_BACKEND_FAILURE", "non-zero exit", "")
    );
    assert!(f.params[2].contains("exiting"));
    lab.clear("sr_attach");
    std::fs::write(lab.responses().join("sr_attach.signal"), "9").unwrap();
    let f = plug_failure(&lab).await;
    assert_eq!(
        (f.code.as_str(), f.params[0].as_str()),
        ("SR_BACKEND_FAILURE", "received signal: SIGKILL")
    );
    lab.clear("sr_attach");
    lab.respond("sr_attach", "Traceback (most recent call last):\n  oops\n");
    let f = plug_failure(&lab).await;
    assert_eq!(f.code, "SR_BACKEND_FAILURE");
    assert_eq!(f.params[1], "Traceback (most recent call last):\n  oops\n");
    lab.respond(
        "sr_attach",
        &xmlrpc::encode_plain_response(&Value::from("")),
    );
    let f = plug_failure(&lab).await;
    assert_eq!(f.code, "SR_BACKEND_FAILURE");
    assert!(f.params[1].starts_with("XML parse failure: "), "{f:?}");

    // Fixed: it plugs.
    lab.clear("sr_attach");
    let pbd0 = lab.pbd_on(0);
    pbd::plug(&lab.session, &pbd0).await.unwrap();
    assert!(lab.sim.db().pbds[pbd0.as_str()].currently_attached);
    // Every failed run was recorded with what xapi made of it.
    let failed = lab
        .sim
        .driver_calls()
        .iter()
        .filter(|c| c.outcome.is_err())
        .count();
    assert_eq!(failed, 10);
}

#[tokio::test]
async fn sr_create_probe_and_scan() {
    let lab = lab(2).await;
    let host0: Ref<xenapi::refs::Host> = Ref::new(lab.sim.hosts()[0].clone());
    let config = [("target".to_owned(), "192.0.2.9".to_owned())].into();
    let xml = sr::probe(
        &lab.session,
        &host0,
        &config,
        "lunoiscsi",
        &[("x".to_owned(), "y".to_owned())].into(),
    )
    .await
    .unwrap();
    assert_eq!(xml, "<SRlist><SR><UUID>x</UUID></SR></SRlist>");
    let probe = lab.sim.driver_calls().pop().unwrap();
    let (_, params) = xmlrpc::decode_call(&probe.argv1).unwrap();
    assert_eq!(
        member(&params[0], "sr_sm_config").as_string_map().unwrap()["x"],
        "y"
    );
    assert_eq!(probe.device_config["SRmaster"], "true");
    assert!(params[0].as_struct().unwrap().get("sr_ref").is_none());

    // A probe that fails with its discovery output on stderr, as iSCSI drivers do.
    lab.respond(
        "sr_probe",
        &fault(
            96,
            "The request is missing or has an incorrect target IQN parameter",
        ),
    );
    let e = sr::probe(
        &lab.session,
        &host0,
        &config,
        "lunoiscsi",
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure().unwrap().code, "SR_BACKEND_FAILURE_96");
    lab.clear("sr_probe");

    let new = sr::NewSr {
        host: host0.clone(),
        device_config: config.clone(),
        physical_size: 0,
        name_label: "created".into(),
        name_description: String::new(),
        sr_type: "lunoiscsi".into(),
        content_type: "user".into(),
        shared: true,
        sm_config: Default::default(),
    };
    let created = sr::create(&lab.session, &new).await.unwrap();
    let record = sr::get_record(&lab.session, &created).await.unwrap();
    assert_eq!(record.pbds.len(), 2);
    for p in &record.pbds {
        assert!(
            pbd::get_record(&lab.session, p)
                .await
                .unwrap()
                .currently_attached
        );
    }
    let commands: Vec<String> = lab
        .sim
        .driver_calls()
        .iter()
        .rev()
        .take(3)
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(commands, ["sr_attach", "sr_attach", "sr_create"]);
    let create = lab
        .sim
        .driver_calls()
        .into_iter()
        .find(|c| c.command == "sr_create")
        .unwrap();
    assert_eq!(create.args, ["0"]);

    sr::scan(&lab.session, &created).await.unwrap();
    let scan = lab.sim.driver_calls().pop().unwrap();
    assert_eq!(
        (scan.command.as_str(), scan.host.as_str()),
        ("sr_scan", host0.as_str())
    );

    // A failed create leaves no SR behind; an unknown type is refused before any run.
    lab.respond(
        "sr_create",
        &fault(115, "Not all required parameters specified"),
    );
    let before = lab.sim.db().srs.len();
    assert_eq!(
        sr::create(&lab.session, &new)
            .await
            .unwrap_err()
            .failure()
            .unwrap()
            .code,
        "SR_BACKEND_FAILURE_115"
    );
    assert_eq!(lab.sim.db().srs.len(), before);
    let unknown = sr::NewSr {
        sr_type: "nosuch".into(),
        ..new.clone()
    };
    assert_eq!(
        sr::create(&lab.session, &unknown)
            .await
            .unwrap_err()
            .failure()
            .unwrap()
            .description(),
        ["SR_UNKNOWN_DRIVER", "nosuch"]
    );
    let not_executable = sr::NewSr {
        sr_type: "notexec".into(),
        ..new
    };
    assert_eq!(
        sr::create(&lab.session, &not_executable)
            .await
            .unwrap_err()
            .failure()
            .unwrap()
            .code,
        "SR_UNKNOWN_DRIVER"
    );
}

#[tokio::test]
async fn vdi_attach_activates_and_unplug_refuses_while_in_use() {
    let lab = lab(1).await;
    let host = lab.sim.hosts()[0].clone();
    let vdi = lab.sim.add_vdi(
        &lab.sr,
        VdiSpec {
            name_label: "lun".into(),
            location: "3600a0b8".into(),
            ..VdiSpec::default()
        },
    );
    // Not before the SR is attached on that host.
    assert_eq!(
        lab.sim
            .attach_vdi(&host, &vdi, true)
            .await
            .unwrap_err()
            .code,
        "SR_NOT_ATTACHED"
    );
    pbd::plug(&lab.session, &lab.pbd_on(0)).await.unwrap();
    lab.sim.clear_driver_calls();

    let attached = lab.sim.attach_vdi(&host, &vdi, true).await.unwrap();
    assert_eq!(attached["params"], "/dev/disk/mpInuse/3600a0b8");
    let calls = lab.sim.driver_calls();
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["vdi_attach", "vdi_activate"]);
    assert_eq!(calls[0].args, ["true"]);
    let (_, params) = xmlrpc::decode_call(&calls[0].argv1).unwrap();
    for (name, value) in [
        ("vdi_ref", vdi.as_str()),
        ("vdi_location", "3600a0b8"),
        ("vdi_on_boot", "persist"),
        ("vdi_allow_caching", "false"),
    ] {
        assert_eq!(member(&params[0], name).as_str(), Some(value), "{name}");
    }

    let e = pbd::unplug(&lab.session, &lab.pbd_on(0)).await.unwrap_err();
    assert_eq!(
        e.failure().unwrap().description(),
        ["VDI_IN_USE", vdi.as_str(), "unplug"]
    );

    // 144 from a VDI call names the SR and the VDI.
    lab.respond("vdi_deactivate", &fault(144, "VDI could not be found"));
    assert_eq!(
        lab.sim
            .detach_vdi(&host, &vdi)
            .await
            .unwrap_err()
            .description(),
        ["VDI_MISSING", lab.sr.as_str(), vdi.as_str()]
    );
    lab.clear("vdi_deactivate");
    lab.sim.detach_vdi(&host, &vdi).await.unwrap();
    let tail: Vec<String> = lab
        .sim
        .driver_calls()
        .iter()
        .rev()
        .take(2)
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(tail, ["vdi_detach", "vdi_deactivate"]);
    pbd::unplug(&lab.session, &lab.pbd_on(0)).await.unwrap();

    // An attach result without params_nbd is not one xapi takes.
    pbd::plug(&lab.session, &lab.pbd_on(0)).await.unwrap();
    lab.respond(
        "vdi_attach",
        &xmlrpc::encode_plain_response(&[("params", Value::from("/dev/x"))].into_iter().collect()),
    );
    assert_eq!(
        lab.sim
            .attach_vdi(&host, &vdi, false)
            .await
            .unwrap_err()
            .code,
        "SR_BACKEND_FAILURE"
    );
}

#[tokio::test]
async fn attach_detach_and_probe_are_serialised_per_host() {
    let lab = lab(1).await;
    std::fs::write(lab.responses().join("slow"), "").unwrap();
    let others: Vec<String> = (0..3)
        .map(|i| {
            lab.sim
                .add_sr(SrSpec::shared("lunoiscsi", &format!("sr{i}")))
                .pbds[0]
                .clone()
        })
        .collect();
    // Register the driver first so all runs below are attaches.
    lab.sim.plug(&lab.pbd_on(0).to_string()).await.unwrap();
    let runs: Vec<_> = others
        .iter()
        .map(|p| {
            let sim = lab.sim.clone();
            let p = p.clone();
            tokio::spawn(async move { sim.plug(&p).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert!(
        !lab.responses().join("overlaps").exists(),
        "two attaches ran at once on one host"
    );
    assert_eq!(
        lab.calls_seen_by(0)
            .iter()
            .filter(|c| *c == "sr_attach")
            .count(),
        4
    );
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (sr, pbd_ref, host) = {
        let sim = XapiSim::builder()
            .hosts(2)
            .state_file(&state)
            .load_or_build()
            .unwrap();
        let sr = sim.add_sr(SrSpec::shared("lunoiscsi", "kept"));
        let socket = dir.path().join("xapi");
        sim.listen_unix(&socket).await.unwrap();
        let client = Client::new(Endpoint::Unix(socket));
        let s = Session::login_with_password(&client, "root", "", "1.0", "t")
            .await
            .unwrap();
        pbd::put_other_config(
            &s,
            &Ref::new(sr.pbds[1].clone()),
            "mpath-3600a0b8",
            "[2, 2]",
        )
        .await
        .unwrap();
        sim.shutdown();
        (sr.sr, sr.pbds[1].clone(), sim.hosts()[1].clone())
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let again = XapiSim::builder()
        .state_file(&state)
        .load_or_build()
        .unwrap();
    assert_eq!(again.hosts().len(), 2);
    assert_eq!(again.hosts()[1], host);
    let db = again.db();
    assert_eq!(db.srs[&sr].name_label, "kept");
    assert_eq!(db.pbds[&pbd_ref].other_config["mpath-3600a0b8"], "[2, 2]");
    drop(db);
    // A state file that is not one is an error, not a panic.
    std::fs::write(&state, "{ not json").unwrap();
    assert!(
        XapiSim::builder()
            .state_file(&state)
            .load_or_build()
            .is_err()
    );
}
