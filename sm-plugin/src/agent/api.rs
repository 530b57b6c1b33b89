//! The local API: JSON-RPC 2.0 (`jsonrpc-core`) over HTTP/1.1 (`hyper`) on a unix socket,
//! `run/sm-rs/agent.sock`. Root only: the peer's uid comes from the kernel (`SO_PEERCRED`),
//! and anyone else gets a JSON-RPC error saying so (the socket itself is open to all, so the
//! refusal is a clear answer rather than a bare `EACCES`).
//!
//! - `status`: every LUN in use: counts, path states, what is published and since when, the
//!   all-paths-down episode;
//! - `kick`: "look now" (what the driver sends after it activates or releases a map);
//! - `health`: uptime, the last pass and its duration, pending writes, whether xapi and
//!   multipathd answer, counters.

use super::Shared;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonrpc_core::{IoHandler, Params, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::UnixListener;

/// A request is a few hundred bytes; refuse anything absurd.
const MAX_REQUEST: usize = 64 << 10;
pub use mpathutil::agent::PERMISSION_DENIED;

fn handler(shared: &Arc<Shared>) -> IoHandler {
    let mut io = IoHandler::new();
    let s = Arc::clone(shared);
    io.add_method("status", move |params: Params| {
        let s = Arc::clone(&s);
        async move {
            params.expect_no_params()?;
            Ok(s.status_value())
        }
    });
    let s = Arc::clone(shared);
    io.add_method("health", move |params: Params| {
        let s = Arc::clone(&s);
        async move {
            params.expect_no_params()?;
            Ok(s.health_value())
        }
    });
    let s = Arc::clone(shared);
    io.add_method("kick", move |_params: Params| {
        let s = Arc::clone(&s);
        async move {
            s.kicks.fetch_add(1, Ordering::Relaxed);
            s.wake.wake();
            Ok(Value::String("scheduled".into()))
        }
    });
    // A kick that also re-reads this host's PBDs first: what `xe sr-update` and a plug ask
    // for, since another writer may have changed a key the agent believes published.
    let s = Arc::clone(shared);
    io.add_method("resync", move |params: Params| {
        let s = Arc::clone(&s);
        async move {
            params.expect_no_params()?;
            s.kicks.fetch_add(1, Ordering::Relaxed);
            s.resync_asked.store(true, Ordering::SeqCst);
            s.wake.wake();
            Ok(Value::String("scheduled".into()))
        }
    });
    io
}

/// Serves the API until the task is dropped.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let io = Arc::new(handler(&shared));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: let connections finish, then go on.
                tracing::warn!("agent API: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        let io = Arc::clone(&io);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let io = Arc::clone(&io);
                async move { answer(&io, uid, request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_body(code: i64, message: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message},
        "id": null,
    })
    .to_string()
}

async fn answer(
    io: &IoHandler,
    uid: Option<u32>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if uid != Some(0) {
        let who = uid.map_or_else(|| "an unknown peer".to_string(), |u| format!("uid {u}"));
        return Ok(json(
            StatusCode::FORBIDDEN,
            error_body(
                PERMISSION_DENIED,
                &format!("permission denied: the sm-mpath-agent API is for root only ({who})"),
            ),
        ));
    }
    if request.method() != Method::POST {
        return Ok(json(
            StatusCode::METHOD_NOT_ALLOWED,
            error_body(-32600, "send JSON-RPC 2.0 requests with POST"),
        ));
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                error_body(-32600, "request too large"),
            ));
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(json(StatusCode::OK, error_body(-32700, "Parse error")));
    };
    Ok(match io.handle_request(text).await {
        Some(reply) => json(StatusCode::OK, reply),
        // Notifications only: nothing to answer.
        None => json(StatusCode::NO_CONTENT, String::new()),
    })
}
