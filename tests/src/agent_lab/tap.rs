//! A tap on the xapi socket: the agent talks to xapi through it, so a test can count and
//! time every XenAPI call the agent makes (the driver, on the simulator's own socket, is not
//! counted), and take xapi away and give it back (an xapi restart, a master that does not
//! answer) without stopping the simulator.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

/// One XenAPI call that went through.
#[derive(Debug, Clone)]
pub struct TapCall {
    pub method: String,
    /// The params after the session.
    pub params: Vec<serde_json::Value>,
    pub sent: Instant,
    pub answered: Instant,
}

impl TapCall {
    /// The `other_config` key of a `PBD.add_to_other_config` / `remove_from_other_config`.
    pub fn key(&self) -> Option<&str> {
        self.params.get(1).and_then(|v| v.as_str())
    }

    pub fn is_write(&self) -> bool {
        self.method.contains(".add_to_")
            || self.method.contains(".remove_from_")
            || self.method.starts_with("message.create")
    }
}

struct Inner {
    upstream: PathBuf,
    down: AtomicBool,
    calls: Mutex<Vec<TapCall>>,
}

pub struct XapiTap {
    inner: Arc<Inner>,
    path: PathBuf,
    task: AbortHandle,
}

impl XapiTap {
    /// A tap in front of a lab's xapi simulator, at `xapi-tap.sock` in the lab's folder.
    pub fn in_front_of(lab: &crate::lab::Lab) -> std::io::Result<Self> {
        lab.block_on(Self::start(
            &lab.dir.join("xapi-tap.sock"),
            &lab.dir.join("xapi.sock"),
        ))
    }

    /// Listens on `path`, forwarding to xapi's socket `upstream`. Call on a runtime.
    pub async fn start(path: &Path, upstream: &Path) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let inner = Arc::new(Inner {
            upstream: upstream.to_path_buf(),
            down: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&inner)));
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            task: task.abort_handle(),
        })
    }

    /// `SM_RS_XAPI` for whoever should go through the tap.
    pub fn address(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    /// xapi away (`true`): connections are dropped unanswered; back (`false`).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Every call answered so far.
    pub fn calls(&self) -> Vec<TapCall> {
        self.inner
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// The calls sent from `since` on (a call is recorded when answered, so counting by
    /// position would take in a call sent before and answered after).
    pub fn calls_since(&self, since: Instant) -> Vec<TapCall> {
        self.inner
            .calls
            .lock()
            .map(|c| c.iter().filter(|c| c.sent >= since).cloned().collect())
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.inner.calls.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl Drop for XapiTap {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if inner.down.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let inner = Arc::clone(&inner);
                async move { forward(&inner, request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    inner: &Inner,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let gone = || std::io::Error::other("xapi is down");
    if inner.down.load(Ordering::SeqCst) {
        return Err(gone());
    }
    let sent = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let call: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let method = call["method"].as_str().unwrap_or("?").to_string();
    let params = call["params"]
        .as_array()
        .map(|p| p.iter().skip(1).cloned().collect())
        .unwrap_or_default();
    let stream = UnixStream::connect(&inner.upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let upstream = Request::from_parts(parts, Full::new(body));
    let response = sender
        .send_request(upstream)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    // Taken away while the call was in flight: xapi did it, but nobody hears the answer.
    if inner.down.load(Ordering::SeqCst) {
        return Err(gone());
    }
    if let Ok(mut calls) = inner.calls.lock() {
        calls.push(TapCall {
            method,
            params,
            sent,
            answered: Instant::now(),
        });
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}
