//! The `xapi-sim` and `xe` programs together, as the demo and people use them: the simulator
//! serves a pool from a state file, `xe` reads and changes it, and a restart resumes it.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const XE: &str = env!("CARGO_BIN_EXE_xe");
const SIM: &str = env!("CARGO_BIN_EXE_xapi-sim");

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, extra: &[&str]) -> Sim {
    let socket = dir.join("xapi");
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(SIM)
        .arg("--socket")
        .arg(&socket)
        .arg("--state")
        .arg(dir.join("pool.json"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "xapi-sim did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Sim(child)
}

fn xe(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(XE)
        .args(args)
        .env("SM_RS_XAPI", format!("unix:{}", dir.join("xapi").display()))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = xe(dir, args);
    assert!(success, "xe {args:?} failed: {stderr}");
    stdout
}

#[test]
fn xe_reads_and_changes_a_simulated_pool_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = start(
        d,
        &[
            "--hosts",
            "2",
            "--sr",
            "lunoiscsi:LUNs:target=192.0.2.1,chappassword=hush",
        ],
    );

    let hosts = ok(d, &["host-list", "--minimal"]);
    let hosts: Vec<&str> = hosts.trim().split(',').collect();
    assert_eq!(hosts.len(), 2);

    let srs = ok(d, &["sr-list"]);
    assert!(srs.starts_with("uuid ( RO)                : "), "{srs}");
    assert!(srs.contains("          name-label ( RW): LUNs\n"), "{srs}");
    assert!(
        srs.contains("                host ( RO): <shared>\n"),
        "{srs}"
    );
    let sr_uuid = ok(d, &["sr-list", "type=lunoiscsi", "--minimal"])
        .trim()
        .to_owned();

    let pbds = ok(
        d,
        &[
            "pbd-list",
            &format!("sr-uuid={sr_uuid}"),
            &format!("host-uuid={}", hosts[0]),
        ],
    );
    assert!(
        pbds.contains("device-config (MRO): chappassword: ******; target: 192.0.2.1"),
        "{pbds}"
    );
    assert!(!pbds.contains("hush"));
    assert!(pbds.contains("currently-attached ( RO): false"));
    let pbd = ok(
        d,
        &["pbd-list", &format!("host-uuid={}", hosts[1]), "--minimal"],
    )
    .trim()
    .to_owned();

    ok(
        d,
        &[
            "pbd-param-set",
            &format!("uuid={pbd}"),
            "other-config:mpath-3600a0b8=[2, 2]",
        ],
    );
    ok(
        d,
        &[
            "pbd-param-set",
            &format!("uuid={pbd}"),
            "other-config:mpath-3600a0b8=[1, 2]",
        ],
    );
    let listed = ok(d, &["pbd-param-list", &format!("uuid={pbd}")]);
    assert!(
        listed.contains("other-config (MRW): mpath-3600a0b8: [1, 2]"),
        "{listed}"
    );
    assert!(listed.contains(&format!("host-uuid ( RO): {}", hosts[1])));

    ok(
        d,
        &[
            "host-param-set",
            &format!("uuid={}", hosts[0]),
            "other-config:multipathing=true",
        ],
    );
    assert_eq!(
        ok(
            d,
            &[
                "host-param-get",
                &format!("uuid={}", hosts[0]),
                "param-name=multipathing"
            ]
        ),
        "true\n"
    );
    let key = ok(
        d,
        &[
            "host-param-get",
            &format!("uuid={}", hosts[0]),
            "param-name=other-config",
            "param-key=multipathing",
        ],
    );
    assert_eq!(key, "true\n");

    // Errors come out as xe prints them.
    let (success, _, stderr) = xe(d, &["pbd-plug", "uuid=nope"]);
    assert!(!success);
    assert_eq!(
        stderr,
        "Error code: UUID_INVALID\nError parameters: PBD, nope\n"
    );
    let (success, _, stderr) = xe(d, &["pbd-plug", &format!("uuid={pbd}")]);
    assert!(!success);
    assert!(
        stderr.starts_with("Error code: SR_UNKNOWN_DRIVER\nError parameters: lunoiscsi"),
        "{stderr}"
    );
    let (success, _, stderr) = xe(d, &["frobnicate"]);
    assert!(
        !success && stderr.contains("unknown command frobnicate"),
        "{stderr}"
    );

    // Stop and resume: what was written is still there.
    drop(sim);
    let _sim = start(d, &[]);
    let listed = ok(
        d,
        &[
            "pbd-param-get",
            &format!("uuid={pbd}"),
            "param-name=other-config",
            "param-key=mpath-3600a0b8",
        ],
    );
    assert_eq!(listed, "[1, 2]\n");
    assert_eq!(
        ok(d, &["host-list", "--minimal"]).trim().split(',').count(),
        2
    );
}
