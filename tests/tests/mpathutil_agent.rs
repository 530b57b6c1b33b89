//! `mpathutil agent [--json]` as an administrator runs it: the path agent's health and its
//! LUNs following a controller pulled and pushed back, JSON for scripts, a clear message
//! and exit 3 when the agent is not running, and a refusal with words for a non-root user.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::bins;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::seed_fabric;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn mpathutil(root: &Path, args: &[&str], nobody: bool) -> Run {
    let mut command = Command::new(bins::path("mpathutil"));
    command.args(args).env_clear().env("SM_RS_ROOT", root);
    if nobody {
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn not_running_is_said_plainly_with_exit_3() {
    let root = tempfile::tempdir().unwrap();
    for args in [&["agent"][..], &["agent", "--json"]] {
        let run = mpathutil(root.path(), args, false);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr.contains("the path agent is not running"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("run/sm-rs/agent.sock"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("systemctl start sm-mpath-agent"),
            "{}",
            run.stderr
        );
    }
    // A socket left by a crashed agent: nobody listens, the same answer.
    let socket = root.path().join("run/sm-rs/agent.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let run = mpathutil(root.path(), &["agent"], false);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("not running"), "{}", run.stderr);
}

#[test]
fn the_agent_shows_a_pulled_controller_to_people_and_scripts() {
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let sr_uuid = lab.xapi.db().srs[sr.as_str()].uuid.clone();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let root = lab.host(0).sim.root().to_path_buf();
    // Its API answers from the start; what it reports, from its first pass on.
    wait_until("the first pass", || agent.counter("passes") >= 1);

    let run = mpathutil(&root, &["agent"], false);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("sm-mpath-agent on host {}", lab.host(0).uuid)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("No LUN is in use through a multipath map"),
        "{}",
        run.stdout
    );

    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let key = format!("mpath-{SEED}");
    let pbd_key = || lab.pbd_other_config(0, &sr).get(&key).cloned();
    wait_until("[2, 2]", || pbd_key().as_deref() == Some("[2, 2]"));
    agent.relay().change(&lab.host(0).sim, |f| {
        f.pull_controller(seed_fabric().1, "SCM2")
    });
    wait_until("[1, 2]", || pbd_key().as_deref() == Some("[1, 2]"));
    let published = |value: &str| {
        wait_until("the agent's report of it", || {
            agent.call("status").unwrap()["luns"][0]["published"] == value
        });
    };
    published("[1, 2]");

    // For people: the health rows, the LUN's line, its paths.
    let run = mpathutil(&root, &["agent"], false);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    for needed in [
        "xapi:       reachable",
        "multipathd: readable",
        "last pass:",
        "pending:    0 writes, 0 messages",
        "path flaps",
        "LUN (SCSIid)",
        SEED,
        &sr_uuid,
        "[1, 2]",
        "degraded",
    ] {
        assert!(text.contains(needed), "{needed:?} in\n{text}");
    }
    let lun_line = text.lines().find(|l| l.starts_with(SEED)).unwrap();
    assert!(lun_line.contains("[1, 2] since 20"), "{lun_line}");
    let path_lines = text.lines().filter(|l| l.starts_with("    ")).count();
    assert!(path_lines >= 1, "{text}");

    // For scripts: one JSON document with both answers.
    let run = mpathutil(&root, &["agent", "--json"], false);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "one line when not on a terminal"
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["health"]["host_uuid"], lab.host(0).uuid.as_str());
    assert_eq!(json["health"]["xapi_reachable"], true);
    assert!(
        json["health"]["counters"]["flaps"].as_u64() >= Some(1),
        "{json}"
    );
    let lun = &json["status"]["luns"][0];
    assert_eq!(lun["scsiid"], SEED);
    assert_eq!(lun["sr_uuid"], sr_uuid.as_str());
    assert_eq!(lun["health"], "degraded");
    assert_eq!(
        (lun["active"].as_u64(), lun["max"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(lun["published"], "[1, 2]");
    assert!(
        lun.get("pending").is_none(),
        "nothing waits for xapi: {lun}"
    );

    // Pushed back: ok again.
    agent.relay().change(&lab.host(0).sim, |f| {
        drop(f.push_controller(seed_fabric().1, "SCM2"))
    });
    wait_until("[2, 2] again", || pbd_key().as_deref() == Some("[2, 2]"));
    published("[2, 2]");
    let run = mpathutil(&root, &["agent", "--json"], false);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["status"]["luns"][0]["health"], "ok", "{json}");

    // Not root: the agent's refusal, and what to do.
    let mut dir = Some(agent.socket().parent().unwrap().to_path_buf());
    while let Some(d) = dir {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        if d == lab.dir {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    let run = mpathutil(&root, &["agent"], true);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
    assert!(run.stderr.contains("run it as root"), "{}", run.stderr);

    // Stopped: not running.
    let mut agent = agent;
    agent.stop();
    let run = mpathutil(&root, &["agent"], false);
    assert_eq!(run.code, 3, "{}", run.stderr);
}
