//! A daemon that fails one listing: every subcommand still answers from what remains, or
//! says which command failed; never an empty answer with success.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::HostRoot;
use mpathutil::cli::{Context, run};
use mpathutil::client::{self, encode_request};
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

const JSON: &str = include_str!("fixtures/realstack/a-initial.maps.json");
const TOPOLOGY: &str = include_str!("fixtures/realstack/a-initial.show-topology");
const WWID: &str = "35001405aabbccdd1";

/// What the scripted daemon answers to `command`, failing the commands that start with
/// one of the `|`-separated prefixes of `broken`.
fn answer(command: &str, broken: &str) -> String {
    if broken.split('|').any(|prefix| command.starts_with(prefix)) {
        return "fail\n".into();
    }
    match command {
        "show daemon" => "pid 1 idle\n".into(),
        "show maps json" => JSON.into(),
        "show topology" => TOPOLOGY.into(),
        "list maps" => format!("name              sysfs uuid\n{WWID} dm-0  {WWID}\n"),
        c if c == format!("show map {WWID} json") => {
            // `show map X json` has the map as one object.
            let map = JSON
                .split_once("\"maps\": [")
                .and_then(|(_, rest)| rest.rsplit_once(']'))
                .map(|(map, _)| map.trim())
                .unwrap();
            format!(
                "{{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":{map}\n}}\n"
            )
        }
        c if c == format!("show map {WWID} topology") => TOPOLOGY.into(),
        _ => "fail\n".into(),
    }
}

fn serve(stream: &mut UnixStream, broken: &str) {
    loop {
        let mut len = [0u8; size_of::<usize>()];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0u8; usize::from_ne_bytes(len)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let command = String::from_utf8_lossy(&body[..body.len().saturating_sub(1)]).into_owned();
        let reply = answer(&command, broken);
        // The reply frame is the request frame's shape.
        if stream.write_all(&encode_request(&reply)).is_err() {
            return;
        }
    }
}

/// Runs `mpathutil ARGS` against a daemon that fails `broken`.
fn mpathutil(broken: &'static str, args: &[&str]) -> (i32, String, String) {
    let name = format!(
        "sm-rs-fallback-{}-{broken}-{}",
        std::process::id(),
        args.join("-")
    );
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || serve(&mut stream, broken));
        }
    });
    let root = tempfile::tempdir().unwrap();
    let ctx = Context {
        multipathd: client::Config::for_socket(&format!("@{name}")),
        root: HostRoot::new(root.path()),
        pretty_json: false,
    };
    let mut argv = vec!["mpathutil", "--wait", "0"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(argv, &ctx, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn each_listing_failing_in_turn() {
    let one = WWID;
    for broken in ["show maps json", "show topology", "list maps", "show map"] {
        for args in [
            &["list"][..],
            &["status"],
            &["status", "--json"],
            &["status", "--json", one],
            &["status", one],
            &["count"],
            &["count", one],
            &["paths"],
        ] {
            let (code, out, err) = mpathutil(broken, args);
            let what = format!("{args:?} with {broken:?} failing: exit {code}, {out:?} {err:?}");
            if code == 0 {
                assert!(!out.trim().is_empty(), "empty success: {what}");
                match args[0] {
                    "list" => assert_eq!(out, format!("{WWID}\n"), "{what}"),
                    "count" => assert_eq!(out, format!("{WWID} [2, 2] ok\n"), "{what}"),
                    "paths" => assert_eq!(out.lines().count(), 2, "{what}"),
                    "status" if args.contains(&"--json") => {
                        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                        let map = &v["maps"][0];
                        assert_eq!(map["wwid"], WWID, "{what}");
                        assert_eq!(map["active"], 2, "{what}");
                        assert_eq!(map["groups"][0]["paths"][0]["dev"], "sdb", "{what}");
                        // Each fact from where it is: H:C:T:L from the topology text,
                        // the priority from JSON; a listing that failed costs its facts.
                        let path = &map["groups"][0]["paths"][0];
                        let one_map = args.len() == 3;
                        let topology_ok =
                            broken != "show topology" && !(one_map && broken == "show map");
                        if topology_ok {
                            assert_eq!(path["hcil"], "0:0:0:0", "{what}");
                        }
                    }
                    _ => assert!(out.contains(WWID), "{what}"),
                }
            } else {
                assert_eq!(code, 1, "{what}");
                assert!(out.is_empty(), "an error prints nothing on stdout: {what}");
                let names =
                    broken.split('|').any(|b| err.contains(b)) || err.contains("no multipath map");
                assert!(names, "the error names what failed: {what}");
            }
        }
    }
}

#[test]
fn both_listings_failing_is_an_error_naming_the_command() {
    let (code, out, err) = mpathutil("show maps json|show topology", &["status", "--json"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("show maps json"), "{err}");
}
