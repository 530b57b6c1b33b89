//! The official Python XenAPI binding (PyPI `XenAPI`) talks to the simulator over its unix
//! socket and over TCP, and must see what it sees with a real xapi. The binding is installed
//! by `.ci/install.d/30-python.sh` into `target/py-xenapi`; without it this test fails.

use std::path::PathBuf;
use std::time::Duration;

use sm_testkit::xapi_sim::{SrSpec, XapiSim};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SM_RS_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-xenapi/bin/python3");
    assert!(
        venv.exists(),
        "no Python with XenAPI at {}: run .ci/install.d/30-python.sh (or set SM_RS_PYTHON)",
        venv.display()
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_binding_sees_real_xenapi() {
    let python = python();
    // XenAPI.py spells the socket path with '_' for '/', so the path must have no '_'.
    let dir = tempfile::Builder::new()
        .prefix("xapisim")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("xapi");
    let sim = XapiSim::builder()
        .hosts(2)
        .root_password("s3cret")
        .auth_failure_delay(Duration::ZERO)
        .build();
    sim.add_sr(SrSpec::shared("lunoiscsi", "LUNs").device_config("SCSIid", "3600a0b8"));
    sim.listen_unix(&socket).await.unwrap();
    let addr = sim.listen_tcp("127.0.0.1:0").await.unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/xenapi_peer.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&socket)
        .arg(format!("http://{addr}/"))
        .arg("s3cret")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PYTHON-PEER-OK"),
        "python peer failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // What Python wrote is in the pool.
    let db = sim.snapshot();
    let written: Vec<&String> = db
        .pbds
        .values()
        .flat_map(|p| p.other_config.keys())
        .collect();
    assert!(
        written.contains(&&"mpath-3600a0b8unix".to_owned()),
        "{written:?}"
    );
    assert!(written.contains(&&"mpath-3600a0b8tcp".to_owned()));
    assert_eq!(db.messages.len(), 2);
}
