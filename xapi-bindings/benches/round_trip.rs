//! A `PBD.get_other_config` round trip over a unix socket, in both protocols: encode, HTTP/1.1
//! on a kept-alive connection, decode on the far side, a map looked up and encoded back,
//! decoded into a typed map. The far side is a small responder built from this crate's own
//! codecs (the xapi simulator lives in the test kit, which nothing here may import).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use xenapi::api::pbd;
use xenapi::wire::{Value, jsonrpc, xmlrpc};
use xenapi::{Client, Endpoint, Failure, Protocol, Ref, Session};

type Table = Arc<BTreeMap<String, Value>>;

fn answer(table: &Table, method: &str, params: &[Value]) -> Result<Value, Failure> {
    match (method, params) {
        ("PBD.get_other_config", [_, Value::String(pbd)]) => table
            .get(pbd)
            .cloned()
            .ok_or_else(|| Failure::new("HANDLE_INVALID", ["PBD", pbd.as_str()])),
        _ => Err(Failure::new("MESSAGE_METHOD_UNKNOWN", [method])),
    }
}

async fn respond(
    table: Table,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let json = request.uri().path() == "/jsonrpc";
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let out = if json {
        match jsonrpc::decode_call(&body) {
            Ok(call) => jsonrpc::encode_response(
                call.version,
                &call.id,
                &answer(&table, &call.method, &call.params),
            ),
            Err(_) => Vec::new(),
        }
    } else {
        match std::str::from_utf8(&body).ok().map(xmlrpc::decode_call) {
            Some(Ok((method, params))) => {
                xmlrpc::encode_response(&answer(&table, &method, &params)).into_bytes()
            }
            _ => Vec::new(),
        }
    };
    Ok(hyper::Response::new(Full::new(Bytes::from(out))))
}

fn serve(path: std::path::PathBuf, table: Table) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&path).expect("bind");
            let _ = ready_tx.send(());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let table = table.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |r| respond(table.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let _ = ready_rx.recv();
}

fn round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("xapi");
    let pbd_ref = "OpaqueRef:7d2ab5a2-2b1c-4a4c-9d0c-1f0e7a6b3c11";
    let other_config: Value = [
        ("multipathed", "true"),
        ("mpath-3600a0b80001234", "[2, 2]"),
        ("mpath-3600a0b80005678", "[1, 2]"),
        ("iscsi_sessions", "2"),
    ]
    .into_iter()
    .collect();
    serve(
        socket.clone(),
        Arc::new([(pbd_ref.to_owned(), other_config)].into()),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for protocol in [Protocol::JsonRpc, Protocol::XmlRpc] {
        let client = Client::with_protocol(Endpoint::Unix(socket.clone()), protocol);
        let session = Session::adopt(&client, Ref::new("OpaqueRef:bench-session"));
        let pbd: Ref<xenapi::refs::Pbd> = Ref::new(pbd_ref);
        // One call first: it opens the connection the measured ones reuse.
        runtime
            .block_on(pbd::get_other_config(&session, &pbd))
            .expect("warm-up call");
        c.bench_function(
            &format!("PBD.get_other_config unix socket {protocol:?}"),
            |b| {
                b.iter(|| {
                    runtime
                        .block_on(pbd::get_other_config(&session, &pbd))
                        .expect("call")
                })
            },
        );
    }
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
