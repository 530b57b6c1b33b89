//! Bad input to the simulator, sent as raw HTTP: it answers as xapi's http_svr does (an HTML
//! 500 for what cannot be read, a XenAPI failure for a call that parses) and keeps serving.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::time::Duration;

use sm_testkit::xapi_sim::XapiSim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sim() -> (XapiSim, std::net::SocketAddr) {
    let sim = XapiSim::builder()
        .auth_failure_delay(Duration::ZERO)
        .build();
    let addr = sim.listen_tcp("127.0.0.1:0").await.unwrap();
    (sim, addr)
}

/// One request on a fresh connection that the server is asked to close; the whole answer.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn xml_call(method: &str, params: &[&str]) -> String {
    let params: String = params
        .iter()
        .map(|p| format!("<param><value>{p}</value></param>"))
        .collect();
    format!("<methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>")
}

async fn session(addr: std::net::SocketAddr) -> String {
    let (_, answer) = raw(
        addr,
        &post(
            "/",
            "text/xml",
            &xml_call("session.login_with_password", &["root", ""]),
        ),
    )
    .await;
    let start = answer.find("OpaqueRef:").unwrap();
    answer[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn unreadable_requests_get_an_html_500_and_the_server_lives_on() {
    let (_sim, addr) = sim().await;
    let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let over = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        300 * 1024 + 1
    );
    let big_body = format!(
        "{{\"method\":\"x\",\"params\":[\"{}\"],\"id\":1}}",
        "a".repeat(300 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no Content-Length",
            chunked.to_vec(),
            "We require a content-length",
        ),
        (
            "over 300 KiB declared",
            over.into_bytes(),
            "Client_requested_size_over_limit",
        ),
        (
            "over 300 KiB sent",
            post("/jsonrpc", "application/json", &big_body),
            "Client_requested_size_over_limit",
        ),
        (
            "malformed XML",
            post(
                "/",
                "text/xml",
                "<methodCall><methodName>x</methodName><params>",
            ),
            "XML-RPC",
        ),
        ("not XML", post("/RPC2", "text/xml", "hello"), "XML-RPC"),
        (
            "malformed JSON",
            post("/jsonrpc", "application/json", "{\"method\":"),
            "Malformed_method_request",
        ),
        (
            "a JSON notification",
            post(
                "/jsonrpc",
                "application/json",
                "{\"method\":\"pool.get_all\",\"params\":[]}",
            ),
            "Malformed_method_request",
        ),
        (
            "binary junk",
            post("/", "text/xml", "\u{0}\u{1}\u{2}\u{fffd}"),
            "XML-RPC",
        ),
    ];
    for (what, request, extra) in cases {
        let (status, answer) = raw(addr, &request).await;
        assert_eq!(status, 500, "{what}: {answer}");
        assert!(
            answer.contains("Content-Type: text/html")
                || answer.contains("content-type: text/html"),
            "{what}: {answer}"
        );
        assert!(answer.contains("HTTP 500 internal server error"), "{what}");
        assert!(answer.contains(extra), "{what}: {answer}");
    }
    let (status, _) = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 501);
    let (status, _) = raw(addr, &post("/elsewhere", "text/xml", "x")).await;
    assert_eq!(status, 403);
    // Still serving.
    assert!(session(addr).await.starts_with("OpaqueRef:"));
}

#[tokio::test]
async fn calls_that_parse_get_xapis_failures_in_the_envelope() {
    let (_sim, addr) = sim().await;
    let s = session(addr).await;
    let cases = [
        (
            xml_call("PBD.frobnicate", &[&s]),
            "<value>MESSAGE_METHOD_UNKNOWN</value><value>PBD.frobnicate</value>",
        ),
        (
            xml_call("nosuchclass.get_all", &[&s]),
            "<value>MESSAGE_METHOD_UNKNOWN</value>",
        ),
        (
            xml_call("nodot", &[]),
            "<value>MESSAGE_METHOD_UNKNOWN</value><value>nodot</value>",
        ),
        (
            xml_call("PBD.get_other_config", &[&s]),
            "<value>MESSAGE_PARAMETER_COUNT_MISMATCH</value><value>PBD.get_other_config</value><value>2</value><value>1</value>",
        ),
        (
            xml_call("session.login_with_password", &["root"]),
            "<value>MESSAGE_PARAMETER_COUNT_MISMATCH</value>",
        ),
        (
            xml_call("pool.get_all", &["OpaqueRef:nope"]),
            "<value>SESSION_INVALID</value><value>OpaqueRef:nope</value>",
        ),
        (
            xml_call("PBD.get_other_config", &[&s, "<struct/>"]),
            "<value>FIELD_TYPE_ERROR</value><value>self</value>",
        ),
        (
            xml_call(
                "host.set_multipathing",
                &[&s, "OpaqueRef:x", "<boolean>1</boolean>"],
            ),
            "<value>HANDLE_INVALID</value><value>host</value><value>OpaqueRef:x</value>",
        ),
        (
            xml_call("host.set_multipathing", &[&s, "OpaqueRef:x", "yes"]),
            "<value>FIELD_TYPE_ERROR</value><value>value</value>",
        ),
        (
            xml_call("PBD.get_all_records_where", &[&s, "field \"host\" ="]),
            "<value>INTERNAL_ERROR</value>",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = raw(addr, &post("/", "text/xml", &body)).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert!(
            answer.contains("<member><name>Status</name><value>Failure</value></member>"),
            "{answer}"
        );
        assert!(
            answer.contains(expected),
            "{body}\nexpected {expected}\nin {answer}"
        );
    }

    let json = |body: &str| post("/jsonrpc", "application/json", body);
    let (status, answer) = raw(
        addr,
        &json(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"PBD.nope\",\"params\":[\"{s}\"],\"id\":\"q\"}}"
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer.contains(
            r#""error":{"code":1,"data":["PBD.nope"],"message":"MESSAGE_METHOD_UNKNOWN"}"#
        ),
        "{answer}"
    );
    assert!(answer.contains(r#""id":"q""#));
    let (_, answer) = raw(
        addr,
        &json(r#"{"method":"pool.get_all","params":["OpaqueRef:x"],"id":5}"#),
    )
    .await;
    assert!(
        answer.contains(r#""error":["SESSION_INVALID","OpaqueRef:x"]"#),
        "v1 shape: {answer}"
    );
    let (_, answer) = raw(
        addr,
        &json(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"pool.get_all\",\"params\":[\"{s}\"],\"id\":6}}"
        )),
    )
    .await;
    assert!(answer.contains(r#""result":["OpaqueRef:"#), "{answer}");
}

#[tokio::test]
async fn a_boolean_is_true_only_as_1_like_xapi_reads_it() {
    let (sim, addr) = sim().await;
    let s = session(addr).await;
    let host = sim.master();
    for (text, expected) in [("1", true), ("true", false), ("1", true), ("0", false)] {
        let body = xml_call(
            "host.set_multipathing",
            &[&s, &host, &format!("<boolean>{text}</boolean>")],
        );
        let (status, answer) = raw(addr, &post("/", "text/xml", &body)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            sim.db().hosts[&host].multipathing,
            expected,
            "<boolean>{text}</boolean>"
        );
    }
}

#[tokio::test]
async fn keep_alive_connections_serve_many_calls() {
    let (_sim, addr) = sim().await;
    let s = session(addr).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = xml_call("pool.get_all", &[&s]);
    for _ in 0..3 {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("Success"));
    }
}
