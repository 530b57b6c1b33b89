//! The installed binary's contract with xapi, without a host: argv[0] picks the SR type,
//! argv[1] is the methodCall, stdout carries exactly one methodResponse and the exit status
//! is 0 whatever happens (`sm-facts.md` §1.2–1.4). The end-to-end behaviour is tested in
//! `sm-testkit` (`tests/tests/driver_*.rs`), which runs this same binary; having a test
//! here also makes the test command build it before any test runs.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::path::{Path, PathBuf};
use std::process::Command;

const DRIVER_INFO: &str = "<methodCall><methodName>sr_get_driver_info</methodName><params>\
<param><value><struct>\
<member><name>host_ref</name><value>OpaqueRef:NULL</value></member>\
<member><name>command</name><value>sr_get_driver_info</value></member>\
<member><name>args</name><value><array><data/></array></value></member>\
<member><name>device_config</name><value><struct/></value></member>\
</struct></value></param></params></methodCall>";

/// The binary installed under `name`, as xapi finds it in `/opt/xensource/sm`.
fn installed(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sm-driver"), &path).unwrap();
    path
}

fn run(driver: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(driver)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "the exit status is always 0");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn one_response(stdout: &str) -> &str {
    assert!(stdout.starts_with("<methodResponse>"), "{stdout}");
    assert_eq!(stdout.matches("<methodResponse>").count(), 1, "{stdout}");
    assert!(stdout.trim_end().ends_with("</methodResponse>"), "{stdout}");
    stdout
}

#[test]
fn each_installed_name_answers_its_driver_info() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["LUNoHBASR", "LUNoISCSISR"] {
        let (stdout, _) = run(&installed(dir.path(), name), &[DRIVER_INFO]);
        let response = one_response(&stdout);
        for needle in [
            "<name>required_api_version</name>",
            "SR_MULTIPATH",
            "VDI_ATTACH",
            "<name>configuration</name>",
        ] {
            assert!(response.contains(needle), "{name}: no {needle}");
        }
        assert!(!response.contains("<fault>"), "{name}: {response}");
    }
}

#[test]
fn a_bad_invocation_is_fault_143_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let driver = installed(dir.path(), "LUNoHBASR");
    for args in [&[][..], &["not xml"], &[DRIVER_INFO, "extra"]] {
        let (stdout, _) = run(&driver, args);
        assert!(
            one_response(&stdout).contains("<i4>143</i4>"),
            "{args:?}: {stdout}"
        );
    }
    let unknown = DRIVER_INFO.replace("sr_get_driver_info", "vdi_frobnicate");
    let (stdout, _) = run(&driver, &[&unknown]);
    assert!(one_response(&stdout).contains("<i4>143</i4>"), "{stdout}");
}

#[test]
fn under_another_name_it_says_how_to_install_it() {
    let (stdout, _) = run(Path::new(env!("CARGO_BIN_EXE_sm-driver")), &[DRIVER_INFO]);
    assert!(
        one_response(&stdout).contains("LUNoISCSISR or LUNoHBASR"),
        "{stdout}"
    );
}

#[test]
fn a_secret_in_a_bad_call_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let call = "<methodCall><methodName>sr_attach</methodName><params><param><value><struct>\
                <member><name>device_config</name><value><struct><member>\
                <name>chappassword</name><value>s3cr3t-Passw0rd</value></member></struct>\
                </value></member><broken";
    let (stdout, stderr) = run(&installed(dir.path(), "LUNoISCSISR"), &[call]);
    assert!(one_response(&stdout).contains("<i4>143</i4>"));
    assert!(!stdout.contains("s3cr3t-Passw0rd"), "{stdout}");
    assert!(!stderr.contains("s3cr3t-Passw0rd"), "{stderr}");
}
