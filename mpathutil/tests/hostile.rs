//! Malformed, truncated, oversized or hostile input gives an error or an unknown state,
//! never a panic: property tests over every parser, and the client against servers that
//! break the protocol.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::client::{self, Config, Error, Multipathd};
use mpathutil::model::CheckerState;
use mpathutil::parse::{
    parse_kernel_status, parse_map_json, parse_maps_json, parse_table, parse_topology,
};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::Duration;

const TOPOLOGY: &str = include_str!("fixtures/realstack/a-device-offline.topology");
const LEGACY: &str = include_str!("fixtures/seed000/0-initial.txt");
const JSON: &str = include_str!("fixtures/realstack/a-initial.maps.json");
const TABLE: &str = include_str!("fixtures/realstack/a-initial.paths-format");
const STATUS: &str = "2 0 1 0 2 1 A 0 3 2 65:32 A 0 0 1 67:64 A 0 0 1 69:96 A 0 0 1 \
                      E 0 3 2 8:16 A 0 0 1 66:48 A 0 0 1 68:80 A 0 0 1";

fn every_parser(text: &str) {
    let _ = parse_topology(text);
    let _ = parse_maps_json(text);
    let _ = parse_map_json(text);
    let _ = parse_table(text);
    let _ = parse_kernel_status(text);
    let _ = client::classify("show maps", text);
}

fn cut(text: &str, at: usize) -> &str {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

fn splice(text: &str, at: usize, garbage: &str) -> String {
    let head = cut(text, at);
    format!("{head}{garbage}{}", &text[head.len()..])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        every_parser(&text);
    }

    #[test]
    fn line_shaped_noise_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("|-+- ".to_string()), Just("`- ".to_string()), Just("\\_ ".to_string()),
                Just("size=".to_string()), Just("[".to_string()), Just("'".to_string()),
                Just("0:0:0:0".to_string()), Just("dm-0".to_string()), Just("{".to_string()),
                "[ -~]{0,12}",
            ],
            0..40,
        )
    ) {
        every_parser(&lines.concat());
        every_parser(&lines.join("\n"));
        every_parser(&lines.join(" "));
    }

    #[test]
    fn truncated_outputs_never_panic(at in 0usize..4000) {
        for text in [TOPOLOGY, LEGACY, JSON, TABLE, STATUS] {
            every_parser(cut(text, at));
        }
    }

    #[test]
    fn spliced_garbage_never_panics(at in 0usize..4000, garbage in "\\PC{0,16}") {
        for text in [TOPOLOGY, LEGACY, JSON, TABLE, STATUS] {
            every_parser(&splice(text, at, &garbage));
        }
    }

    #[test]
    fn unknown_checker_words_become_unknown_states(word in "[a-z]{3,12}") {
        prop_assume!(!["ready", "faulty", "shaky", "ghost", "delayed", "undef", "disconnected"].contains(&word.as_str()));
        let text = TOPOLOGY.replace("failed faulty offline", &format!("failed {word} offline"));
        let topology = parse_topology(&text).unwrap();
        let first = topology.maps[0].paths().next().unwrap();
        prop_assert_eq!(first.checker_state.clone(), Some(CheckerState::Unknown(word.clone())));
        let json = JSON.replacen("\"chk_st\" : \"ready\"", &format!("\"chk_st\" : \"{word}\""), 1);
        let topology = parse_maps_json(&json).unwrap();
        let first = topology.maps[0].paths().next().unwrap();
        prop_assert_eq!(first.checker_state.clone(), Some(CheckerState::Unknown(word)));
    }

    #[test]
    fn huge_counts_in_the_status_line_are_errors(n in 1000u64..u64::MAX) {
        let line = format!("2 0 1 0 {n} 1 A 0 1 0 8:0 A 0");
        prop_assert!(parse_kernel_status(&line).is_err());
    }
}

/// A one-shot server on a fresh abstract socket that answers the first request with `reply`.
fn hostile_server(name: &str, reply: Vec<u8>) -> Config {
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut header = [0u8; 8];
            if stream.read_exact(&mut header).is_ok() {
                let mut body = vec![0u8; usize::from_ne_bytes(header).min(512)];
                let _ = stream.read_exact(&mut body);
                let _ = stream.write_all(&reply);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    Config {
        sockets: vec![client::SocketName::parse(&format!("@{name}"))],
        reply_timeout: Duration::from_millis(300),
        attempts: 1,
    }
}

fn unique(tag: &str) -> String {
    format!("sm-rs-hostile-{tag}-{}", std::process::id())
}

#[test]
fn oversized_reply_length_is_a_protocol_error() {
    let config = hostile_server(&unique("huge"), (64usize << 20).to_ne_bytes().to_vec());
    let err = Multipathd::connect(&config)
        .unwrap()
        .send("show maps")
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[test]
fn zero_reply_length_is_a_protocol_error() {
    let config = hostile_server(&unique("zero"), 0usize.to_ne_bytes().to_vec());
    let err = Multipathd::connect(&config)
        .unwrap()
        .send("show maps")
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[test]
fn truncated_reply_is_a_timeout_not_a_hang() {
    let mut reply = 100usize.to_ne_bytes().to_vec();
    reply.extend_from_slice(b"name sysfs");
    let config = hostile_server(&unique("short"), reply);
    let err = Multipathd::connect(&config)
        .unwrap()
        .send("show maps")
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
}

#[test]
fn garbage_reply_body_is_a_parse_error() {
    let body = b"\xff\xfe not a topology at all\0";
    let mut reply = body.len().to_ne_bytes().to_vec();
    reply.extend_from_slice(body);
    let config = hostile_server(&unique("garbage"), reply);
    let err = Multipathd::connect(&config)
        .unwrap()
        .topology()
        .unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn nobody_listening_is_not_running() {
    let config = Config::for_socket(&format!("@{}", unique("absent")));
    let err = Multipathd::connect(&config).unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    assert!(err.is_daemon_down());
    let config = Config::for_socket("/nonexistent/multipathd.socket");
    assert!(matches!(
        Multipathd::connect(&config),
        Err(Error::NotRunning { .. })
    ));
}
