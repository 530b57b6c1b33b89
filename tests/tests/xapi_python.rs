//! The official Python XenAPI binding (PyPI `XenAPI`) talks to the simulator over its unix
//! socket and over TCP, and must see what it sees with a real xapi. The binding lives in a venv
//! that `cargo xtask test` makes on first use (`.ci/install.d/30-python.sh`,
//! `~/.cache/sm-rs/py-xenapi`) and names in `SM_RS_PYTHON`; without it this test fails.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::path::PathBuf;
use std::time::Duration;

use sm_testkit::xapi_sim::{SrSpec, XapiSim};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SM_RS_PYTHON").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_default();
    let venv = cache.join("sm-rs/py-xenapi/bin/python3");
    assert!(
        venv.exists(),
        "no Python with XenAPI at {}: `cargo xtask test` makes it (or set SM_RS_PYTHON)",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_driver_calls_back_with_the_session_it_was_handed() {
    use std::os::unix::fs::PermissionsExt;
    let python = python();
    let dir = tempfile::Builder::new()
        .prefix("xapisim")
        .tempdir_in("/tmp")
        .unwrap();
    let drivers = dir.path().join("sm");
    std::fs::create_dir(&drivers).unwrap();
    let body = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/callback_driver.py"),
    )
    .unwrap();
    let driver = drivers.join("CallbackSR");
    std::fs::write(&driver, format!("#!{}\n{body}", python.display())).unwrap();
    std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).unwrap();

    let sim = XapiSim::builder()
        .hosts(2)
        .driver_dir(&drivers)
        .driver_env("SM_RS_XAPI", "{xapi}")
        .build();
    let sr = sim.add_sr(SrSpec::shared("callback", "cb").device_config("target", "192.0.2.1"));
    let socket = dir.path().join("xapi");
    sim.listen_unix(&socket).await.unwrap();

    sim.plug(&sr.pbds[1])
        .await
        .unwrap_or_else(|f| panic!("{f}: {:?}", sim.driver_calls().last().map(|c| &c.stderr)));
    let db = sim.snapshot();
    let pbd = &db.pbds[&sr.pbds[1]];
    assert!(pbd.currently_attached);
    assert_eq!(
        pbd.device_config["discovered"],
        "iqn.2026-01.com.example:array"
    );
    assert_eq!(pbd.device_config["target"], "192.0.2.1");
    assert!(!pbd.device_config.contains_key("SRmaster"));
    assert_eq!(pbd.other_config["multipathed"], "true");
    // The other host's PBD was not touched.
    assert!(
        !db.pbds[&sr.pbds[0]]
            .device_config
            .contains_key("discovered")
    );

    // Only a driver's session may set device_config.
    let client = xenapi::Client::new(xenapi::Endpoint::Unix(socket));
    let admin = xenapi::Session::login_with_password(&client, "root", "", "1.0", "t")
        .await
        .unwrap();
    let e = xenapi::api::pbd::set_device_config(
        &admin,
        &xenapi::Ref::new(sr.pbds[0].clone()),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.failure().unwrap().code, "PERMISSION_DENIED");
}
