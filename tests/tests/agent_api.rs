//! The agent's local API: JSON-RPC 2.0 over HTTP on `run/sm-rs/agent.sock`, root only.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::seed_fabric;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// POSTs `body` on the socket as root; the HTTP status and the JSON reply.
fn post(socket: &Path, body: &str) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let json = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or_default())
        .unwrap_or_default();
    (status, json)
}

#[test]
fn root_gets_status_kick_and_health_others_a_clear_refusal() {
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let key = format!("mpath-{SEED}");
    wait_until("the count", || {
        lab.pbd_other_config(0, &sr).get(&key).map(String::as_str) == Some("[2, 2]")
    });

    // Root: the three methods.
    assert_eq!(agent.call("kick").unwrap(), "scheduled");
    agent.kick_passes(2);
    let status = agent.call("status").unwrap();
    let lun = &status["luns"][0];
    assert_eq!(lun["scsiid"], SEED, "{status}");
    assert_eq!(lun["health"], "ok");
    assert_eq!(lun["active"], 2);
    assert_eq!(lun["max"], 2);
    assert_eq!(lun["published"], "[2, 2]");
    assert!(lun["published_at"].is_string(), "{status}");
    assert_eq!(lun["paths"].as_array().map(Vec::len), Some(2));
    let health = agent.health();
    for field in ["uptime_s", "last_pass_ms", "pending_writes"] {
        assert!(health[field].is_number(), "{field}: {health}");
    }
    assert_eq!(health["xapi_reachable"], true);
    assert!(health["counters"]["passes"].as_u64() >= Some(2));
    assert!(health["counters"]["writes"].as_u64() >= Some(1));
    assert!(health["counters"]["kicks"].as_u64() >= Some(1));

    // Malformed JSON-RPC: a JSON-RPC error, and the agent lives on.
    let socket = agent.socket();
    let (code, reply) = post(&socket, "{not json");
    assert_eq!(code, 200);
    assert_eq!(reply["error"]["code"], -32700, "{reply}");
    let (_, reply) = post(&socket, r#"{"jsonrpc":"2.0","method":"reboot","id":7}"#);
    assert_eq!(reply["error"]["code"], -32601, "{reply}");
    assert_eq!(reply["id"], 7);
    let (_, reply) = post(
        &socket,
        r#"{"jsonrpc":"2.0","method":"status","params":[1],"id":8}"#,
    );
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let (_, reply) = post(
        &socket,
        r#"[{"jsonrpc":"2.0","method":"health","id":1},{"oops":1}]"#,
    );
    assert_eq!(reply.as_array().map(Vec::len), Some(2), "{reply}");
    assert!(agent.call("health").is_ok());

    // Anyone else: refused by the peer's uid, with words. The socket is reachable by all
    // (its directories are opened up here; a host's /run is).
    let mut dir = socket.parent();
    while let Some(d) = dir {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        if d == lab.dir {
            break;
        }
        dir = d.parent();
    }
    let output = Command::new("/usr/bin/curl")
        .args(["-s", "-i", "--unix-socket"])
        .arg(&socket)
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"jsonrpc":"2.0","method":"kick","id":1}"#,
            "http://agent/",
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&output.stdout);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}\n{output:?}");
    assert!(reply.contains("root only (uid 65534)"), "{reply}");
    assert!(reply.contains("-32001"), "{reply}");
    let kicks = agent.health()["counters"]["kicks"].as_u64();
    agent.kick_passes(1);
    assert!(agent.health()["counters"]["kicks"].as_u64() > kicks);
    eprintln!("{}", agent.log());
}
