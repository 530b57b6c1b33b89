//! Peer test: Python's `xmlrpc.client` (what stock sm is built on) builds every command's
//! call to the real driver and reads every response (`tests/python/driver_peer.py`).
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use std::process::Command;

#[test]
fn python_xmlrpc_speaks_with_the_driver() {
    let lab = seed_lab();
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let vdi = lab.claim(&sr, SEED).unwrap();
    let call = lab.sm_call(0, &sr, "vdi_attach", &["true"], Some(&vdi));
    let host = lab.host(0);
    let xapi = format!("unix:{}", lab.dir.join("xapi.sock").display());
    let env: serde_json::Map<String, serde_json::Value> = lab
        .driver_env
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace("{host_uuid}", &host.uuid)
                .replace("{xapi}", &xapi);
            (k.clone(), serde_json::Value::String(v))
        })
        .collect();
    let context = serde_json::json!({
        "driver": lab.driver_dir.join("LUNoHBASR"),
        "env": env,
        "host_ref": call.host_ref,
        "session_ref": call.session_ref,
        "sr_ref": call.sr_ref,
        "sr_uuid": call.sr_uuid,
        "vdi_ref": call.vdi_ref,
        "vdi_uuid": call.vdi_uuid,
        "vdi_location": call.vdi_location,
        "device_config": call.device_config,
    });
    let file = lab.dir.join("peer.json");
    std::fs::write(&file, context.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/driver_peer.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
