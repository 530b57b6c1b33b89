//! The `xenapi` client against the xapi simulator over the unix socket, HTTP and pinned
//! HTTPS, in both protocols: sessions, typed calls, map updates, errors, events.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::time::Duration;

use sm_testkit::xapi_sim::{SelfSignedCert, SrSpec, XapiSim};
use xenapi::api::{event, host, message, pbd, pool, sr, vdi};
use xenapi::{Client, Endpoint, Error, Protocol, Ref, Session};

struct Pool {
    sim: XapiSim,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    sr: String,
}

async fn pool(hosts: usize) -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let sim = XapiSim::builder()
        .hosts(hosts)
        .auth_failure_delay(Duration::ZERO)
        .root_password("secret")
        .build();
    let sr = sim
        .add_sr(SrSpec::shared("lunoiscsi", "LUNs").device_config("target", "192.0.2.1"))
        .sr;
    let socket = dir.path().join("xapi");
    sim.listen_unix(&socket).await.unwrap();
    Pool {
        sim,
        _dir: dir,
        socket,
        sr,
    }
}

fn unix(p: &Pool, protocol: Protocol) -> Client {
    Client::with_protocol(Endpoint::Unix(p.socket.clone()), protocol)
}

async fn login(client: &Client) -> Session {
    Session::login_with_password(client, "root", "", "1.0", "sm-rs-test")
        .await
        .unwrap()
}

#[tokio::test]
async fn typed_calls_over_the_unix_socket_in_both_protocols() {
    let p = pool(3).await;
    for protocol in [Protocol::JsonRpc, Protocol::XmlRpc] {
        let s = login(&unix(&p, protocol)).await;
        let master = pool::master(&s).await.unwrap();
        let record = host::get_record(&s, &master).await.unwrap();
        assert_eq!(record.name_label, "host0");
        assert_eq!(record.api_version_major, 2);
        assert_eq!(host::get_by_uuid(&s, &record.uuid).await.unwrap(), master);
        assert_eq!(host::get_all(&s).await.unwrap().len(), 3);

        let sr_ref: Ref<xenapi::refs::Sr> = Ref::new(p.sr.clone());
        let sr_record = sr::get_record(&s, &sr_ref).await.unwrap();
        assert!(sr_record.shared);
        assert_eq!(sr_record.pbds.len(), 3);
        assert_eq!(sr::get_type(&s, &sr_ref).await.unwrap(), "lunoiscsi");
        assert_eq!(sr::get_by_uuid(&s, &sr_record.uuid).await.unwrap(), sr_ref);

        let mine = pbd::get_all_records_where(&s, &pbd::of_host_and_sr(&master, &sr_ref))
            .await
            .unwrap();
        assert_eq!(mine.len(), 1, "{mine:?}");
        let (pbd_ref, pbd_record) = mine.into_iter().next().unwrap();
        assert_eq!(pbd_record.host, master);
        assert_eq!(pbd_record.device_config["target"], "192.0.2.1");
        assert!(!pbd_record.currently_attached);
        s.logout().await.unwrap();
        let _ = pbd_ref;
    }
}

#[tokio::test]
async fn map_keys_are_updated_remove_then_add() {
    let p = pool(1).await;
    let s = login(&unix(&p, Protocol::JsonRpc)).await;
    let master = pool::master(&s).await.unwrap();
    let pbd_ref: Ref<xenapi::refs::Pbd> =
        Ref::new(p.sim.pbd_of(&master.to_string(), &p.sr).unwrap());

    pbd::add_to_other_config(&s, &pbd_ref, "mpath-3600a0b80001234", "[2, 2]")
        .await
        .unwrap();
    let again = pbd::add_to_other_config(&s, &pbd_ref, "mpath-3600a0b80001234", "[2, 2]")
        .await
        .unwrap_err();
    let failure = again.failure().unwrap();
    assert_eq!(failure.code, "MAP_DUPLICATE_KEY");
    assert_eq!(
        failure.params,
        [
            "PBD",
            "other_config",
            pbd_ref.as_str(),
            "mpath-3600a0b80001234"
        ]
    );

    pbd::put_other_config(&s, &pbd_ref, "mpath-3600a0b80001234", "[1, 2]")
        .await
        .unwrap();
    pbd::put_other_config(&s, &pbd_ref, "multipathed", "true")
        .await
        .unwrap();
    let other = pbd::get_other_config(&s, &pbd_ref).await.unwrap();
    assert_eq!(other["mpath-3600a0b80001234"], "[1, 2]");
    assert_eq!(other["multipathed"], "true");
    pbd::remove_from_other_config(&s, &pbd_ref, "absent")
        .await
        .unwrap();
    pbd::remove_from_other_config(&s, &pbd_ref, "multipathed")
        .await
        .unwrap();
    assert!(
        !pbd::get_other_config(&s, &pbd_ref)
            .await
            .unwrap()
            .contains_key("multipathed")
    );
    // The simulator's own view agrees.
    assert_eq!(
        p.sim.db().pbds[pbd_ref.as_str()].other_config["mpath-3600a0b80001234"],
        "[1, 2]"
    );

    let sr_ref: Ref<xenapi::refs::Sr> = Ref::new(p.sr.clone());
    sr::put_sm_config(&s, &sr_ref, "multipathable", "true")
        .await
        .unwrap();
    sr::put_sm_config(&s, &sr_ref, "multipathable", "true")
        .await
        .unwrap();
    assert_eq!(
        sr::get_sm_config(&s, &sr_ref).await.unwrap()["multipathable"],
        "true"
    );
}

#[tokio::test]
async fn multipathing_field_and_other_config_stay_in_step() {
    let p = pool(2).await;
    let s = login(&unix(&p, Protocol::XmlRpc)).await;
    let hosts = host::get_all(&s).await.unwrap();
    let h = &hosts[0];
    assert!(!host::get_multipathing(&s, h).await.unwrap());
    host::set_multipathing(&s, h, true).await.unwrap();
    assert!(host::get_multipathing(&s, h).await.unwrap());
    assert_eq!(
        host::get_other_config(&s, h).await.unwrap()["multipathing"],
        "true"
    );
    // The older way, as `xe host-param-set other-config:multipathing=false` does it.
    host::put_other_config(&s, h, "multipathing", "false")
        .await
        .unwrap();
    assert!(!host::get_multipathing(&s, h).await.unwrap());
    // A key that does not parse as a bool leaves the field alone.
    host::put_other_config(&s, h, "multipathing", "yes")
        .await
        .unwrap();
    assert!(!host::get_multipathing(&s, h).await.unwrap());
    host::put_other_config(&s, h, "multipathhandle", "dmp")
        .await
        .unwrap();
    assert_eq!(
        host::get_record(&s, h).await.unwrap().other_config["multipathhandle"],
        "dmp"
    );
}

#[tokio::test]
async fn xapi_errors_keep_their_codes() {
    let p = pool(1).await;
    for protocol in [Protocol::JsonRpc, Protocol::XmlRpc] {
        let s = login(&unix(&p, protocol)).await;
        let bogus: Ref<xenapi::refs::Pbd> =
            Ref::new("OpaqueRef:00000000-0000-0000-0000-000000000000");
        let e = pbd::get_record(&s, &bogus).await.unwrap_err();
        assert_eq!(e.failure().unwrap().code, "HANDLE_INVALID");
        assert_eq!(e.failure().unwrap().params, ["PBD", bogus.as_str()]);
        let e = host::get_by_uuid(&s, "nope").await.unwrap_err();
        assert_eq!(e.failure().unwrap().params, ["host", "nope"]);
        assert_eq!(e.failure().unwrap().code, "UUID_INVALID");
        let e = s.call("PBD.no_such_call", vec![]).await.unwrap_err();
        assert_eq!(e.failure().unwrap().code, "MESSAGE_METHOD_UNKNOWN");
        let e = s.call("PBD.get_record", vec![]).await.unwrap_err();
        assert_eq!(
            e.failure().unwrap().description(),
            [
                "MESSAGE_PARAMETER_COUNT_MISMATCH",
                "PBD.get_record",
                "2",
                "1"
            ]
        );
        let e = s
            .call("PBD.get_record", vec![true.into()])
            .await
            .unwrap_err();
        assert_eq!(
            e.failure().unwrap().description(),
            ["FIELD_TYPE_ERROR", "self"]
        );
        let e = s
            .call("PBD.get_record", vec![true.into()])
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Failure(_)),
            "a failure is not a transport error: {e:?}"
        );
    }
}

#[tokio::test]
async fn an_owned_session_logs_in_again_a_handed_one_does_not() {
    let p = pool(1).await;
    let client = unix(&p, Protocol::JsonRpc);
    let owned = login(&client).await;
    let first = owned.session_ref();
    p.sim.db().sessions.clear();
    assert_eq!(pool::get_all(&owned).await.unwrap().len(), 1);
    assert_ne!(owned.session_ref(), first, "a new session was made");

    let handed = Session::adopt(&client, Ref::new(p.sim.login_local("SM")))
        .with_subtask_of("OpaqueRef:task");
    assert_eq!(pool::get_all(&handed).await.unwrap().len(), 1);
    p.sim.db().sessions.remove(handed.session_ref().as_str());
    let e = pool::get_all(&handed).await.unwrap_err();
    assert_eq!(
        e.failure().unwrap().description(),
        ["SESSION_INVALID", handed.session_ref().as_str()]
    );
    // Logging out a handed session leaves it to its owner.
    let handed_ref = p.sim.login_local("SM");
    Session::adopt(&client, Ref::new(handed_ref.clone()))
        .logout()
        .await
        .unwrap();
    assert!(p.sim.db().sessions.contains_key(&handed_ref));
    // Logging out an owned one ends it.
    let mine = owned.session_ref();
    owned.logout().await.unwrap();
    assert!(!p.sim.db().sessions.contains_key(mine.as_str()));
}

#[tokio::test]
async fn vdis_messages_and_pbd_create() {
    let p = pool(2).await;
    let s = login(&unix(&p, Protocol::XmlRpc)).await;
    let sr_ref: Ref<xenapi::refs::Sr> = Ref::new(p.sr.clone());
    let sr_uuid = sr::get_record(&s, &sr_ref).await.unwrap().uuid;
    let new = vdi::IntroducedVdi {
        uuid: "3a1b8c52-0000-4000-8000-000000000001".into(),
        name_label: "LUN 1".into(),
        sr: sr_ref.clone(),
        vdi_type: "user".into(),
        location: "3600a0b80001234".into(),
        sm_config: [("SCSIid".to_owned(), "3600a0b80001234".to_owned())].into(),
        ..vdi::IntroducedVdi::default()
    };
    let v = vdi::db_introduce(&s, &new).await.unwrap();
    assert_eq!(vdi::get_by_uuid(&s, &new.uuid).await.unwrap(), v);
    let record = vdi::get_record(&s, &v).await.unwrap();
    assert_eq!(
        (record.location.as_str(), record.sr.clone()),
        ("3600a0b80001234", sr_ref.clone())
    );
    assert!(record.managed);
    assert_eq!(
        sr::get_record(&s, &sr_ref).await.unwrap().vdis,
        std::slice::from_ref(&v)
    );
    vdi::db_forget(&s, &v).await.unwrap();
    assert_eq!(
        vdi::get_record(&s, &v)
            .await
            .unwrap_err()
            .failure()
            .unwrap()
            .code,
        "HANDLE_INVALID"
    );

    let m = message::create(
        &s,
        "MULTIPATH_PERIODIC_ALERT",
        message::priority::WARNING,
        message::MessageClass::Sr,
        &sr_uuid,
        "body",
    )
    .await
    .unwrap();
    let all = message::get_all_records(&s).await.unwrap();
    assert_eq!(all[&m].priority, 3);
    assert_eq!(all[&m].cls, "SR");
    assert_eq!(all[&m].timestamp.len(), "20240131T12:00:00Z".len());
    let e = message::create(&s, "X", 1, message::MessageClass::Host, "not-a-host", "")
        .await
        .unwrap_err();
    assert_eq!(
        e.failure().unwrap().description(),
        ["UUID_INVALID", "Host", "not-a-host"]
    );

    // PBD.create: one per host and SR, no SRmaster key.
    let hosts = host::get_all(&s).await.unwrap();
    let master = pool::master(&s).await.unwrap();
    let other_sr = p.sim.add_sr(SrSpec {
        shared: false,
        ..SrSpec::shared("lunohba", "local")
    });
    let other_sr: Ref<xenapi::refs::Sr> = Ref::new(other_sr.sr);
    let on_second = pbd::NewPbd {
        host: hosts.iter().find(|h| **h != master).cloned().unwrap(),
        sr: other_sr.clone(),
        device_config: BTreeMap::new(),
        other_config: BTreeMap::new(),
    };
    let created = pbd::create(&s, &on_second).await.unwrap();
    let e = pbd::create(&s, &on_second).await.unwrap_err();
    assert_eq!(e.failure().unwrap().code, "PBD_EXISTS");
    assert_eq!(e.failure().unwrap().params[2], created.as_str());
    let mut with_master = on_second.clone();
    with_master
        .device_config
        .insert("SRmaster".into(), "true".into());
    assert_eq!(
        pbd::create(&s, &with_master)
            .await
            .unwrap_err()
            .failure()
            .unwrap()
            .code,
        "VALUE_NOT_SUPPORTED"
    );
}

#[tokio::test]
async fn plain_http_checks_the_password_the_socket_does_not() {
    let p = pool(1).await;
    let addr = p.sim.listen_tcp("127.0.0.1:0").await.unwrap();
    for protocol in [Protocol::JsonRpc, Protocol::XmlRpc] {
        let client = Client::with_protocol(
            Endpoint::parse(&format!("http://{addr}")).unwrap(),
            protocol,
        );
        let e = Session::login_with_password(&client, "root", "wrong", "1.0", "t")
            .await
            .unwrap_err();
        assert_eq!(
            e.failure().unwrap().description(),
            [
                "SESSION_AUTHENTICATION_FAILED",
                "root",
                "Authentication failure"
            ]
        );
        let s = Session::login_with_password(&client, "root", "secret", "1.0", "t")
            .await
            .unwrap();
        assert_eq!(pool::get_all(&s).await.unwrap().len(), 1);
        s.logout().await.unwrap();
    }
    // Any password on the local socket.
    Session::login_with_password(
        &unix(&p, Protocol::JsonRpc),
        "anyone",
        "anything",
        "1.0",
        "t",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn https_with_the_right_pin_works_and_a_wrong_pin_is_refused() {
    let p = pool(1).await;
    let cert = SelfSignedCert::generate(&["localhost", "127.0.0.1"]).unwrap();
    let addr = p.sim.listen_tls("127.0.0.1:0", &cert).await.unwrap();
    let pin = cert.fingerprint().unwrap();
    for protocol in [Protocol::JsonRpc, Protocol::XmlRpc] {
        let endpoint = Endpoint::parse(&format!("https://{addr}#sha256={pin}")).unwrap();
        let client = Client::with_protocol(endpoint, protocol);
        let s = Session::login_with_password(&client, "root", "secret", "1.0", "t")
            .await
            .unwrap();
        assert_eq!(host::get_all(&s).await.unwrap().len(), 1);
    }
    let other = SelfSignedCert::generate(&["localhost"])
        .unwrap()
        .fingerprint()
        .unwrap();
    let client = Client::new(Endpoint::parse(&format!("https://{addr}#sha256={other}")).unwrap());
    let e = Session::login_with_password(&client, "root", "secret", "1.0", "t")
        .await
        .unwrap_err();
    match &e {
        Error::PinMismatch { expected, got, .. } => {
            assert_eq!(expected, &other.to_string());
            assert_eq!(got, &pin.to_string());
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    assert!(e.to_string().contains("was pinned"), "{e}");
    assert!(!e.to_string().contains("secret"));
    // No pin, no https.
    assert!(matches!(
        Endpoint::parse(&format!("https://{addr}")),
        Err(Error::Address { .. })
    ));
}

#[tokio::test]
async fn event_from_reports_adds_then_changes_then_times_out() {
    let p = pool(1).await;
    let s = login(&unix(&p, Protocol::JsonRpc)).await;
    let first = event::from(&s, &["pbd"], "", 0.0).await.unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].operation, "add");
    assert_eq!(first.valid_ref_counts["pbd"], 1);
    let record: pbd::PbdRecord = first.events[0].record().unwrap().unwrap();
    let pbd_ref: Ref<xenapi::refs::Pbd> = Ref::new(first.events[0].object.clone());
    assert_eq!(record.sr.as_str(), p.sr);

    let waiter = {
        let token = first.token.clone();
        let client = unix(&p, Protocol::XmlRpc);
        let s2 = Session::adopt(&client, s.session_ref());
        tokio::spawn(async move { event::from(&s2, &["pbd"], &token, 30.0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    pbd::put_other_config(&s, &pbd_ref, "multipathed", "true")
        .await
        .unwrap();
    let batch = waiter.await.unwrap().unwrap();
    assert_eq!(batch.events.len(), 1, "coalesced: {batch:?}");
    assert_eq!(batch.events[0].operation, "mod");
    let record: pbd::PbdRecord = batch.events[0].record().unwrap().unwrap();
    assert_eq!(record.other_config["multipathed"], "true");

    let quiet = event::from(&s, &["pbd"], &batch.token, 0.2).await.unwrap();
    assert!(quiet.events.is_empty());
    let e = event::from(&s, &["pbd"], "garbage", 0.0).await.unwrap_err();
    assert_eq!(e.failure().unwrap().code, "EVENT_FROM_TOKEN_PARSE_FAILURE");
    let e = event::from(&s, &["nonsense"], "", 0.0).await.unwrap_err();
    assert_eq!(
        e.failure().unwrap().code,
        "EVENT_SUBSCRIPTION_PARSE_FAILURE"
    );
}

#[tokio::test]
async fn client_refuses_oversized_requests_and_reports_transport_errors() {
    let p = pool(1).await;
    let s = login(&unix(&p, Protocol::JsonRpc)).await;
    let huge = "x".repeat(301 * 1024);
    let e = s.call("pool.get_all", vec![huge.into()]).await.unwrap_err();
    assert!(
        matches!(e, Error::RequestTooLarge { limit: 307_200, .. }),
        "{e:?}"
    );

    let nowhere = Client::new(Endpoint::Unix("/nonexistent/xapi".into()));
    let e = Session::login_with_password(&nowhere, "root", "", "1.0", "t")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.failure().is_none());
}
