//! The HTTP face of the simulator, as xapi's `http_svr`: `POST /` and `/RPC2` carry XML-RPC,
//! `POST /jsonrpc` JSON-RPC. A body needs a `Content-Length` of at most 300 KiB; a request
//! that cannot be read or parsed gets xapi's HTML 500 and the connection is closed. A call
//! that parses always gets HTTP 200, its failure inside the envelope.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use xenapi::transport::MAX_REQUEST_BYTES;
use xenapi::wire::{jsonrpc, xmlrpc};

use crate::xapi_sim::XapiSim;
use crate::xapi_sim::api::{self, Origin};

pub(crate) async fn serve_unix(sim: XapiSim, listener: tokio::net::UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(sim.clone(), stream, Origin::Local));
            }
            Err(e) => {
                tracing::warn!("xapi-sim: accept on unix socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

pub(crate) async fn serve_tcp(
    sim: XapiSim,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("xapi-sim: accept on TCP: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let sim = sim.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(sim, stream, Origin::Remote).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => connection(sim, stream, Origin::Remote).await,
                    Err(e) => tracing::debug!("xapi-sim: TLS handshake failed: {e}"),
                },
            }
        });
    }
}

async fn connection<I>(sim: XapiSim, io: I, origin: Origin)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| handle(sim.clone(), origin, request));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!("xapi-sim: connection ended: {e}");
    }
}

enum Codec {
    Xml,
    Json,
}

async fn handle(
    sim: XapiSim,
    origin: Origin,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let codec = match (request.method(), request.uri().path()) {
        (&Method::POST, "/" | "/RPC2") => Codec::Xml,
        (&Method::POST, "/jsonrpc") => Codec::Json,
        (&Method::POST, _) => return Ok(forbidden()),
        _ => return Ok(method_not_implemented(request.method())),
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let Some(declared) = declared else {
        return Ok(internal_error(
            "Failure(\"We require a content-length: HTTP header\")",
        ));
    };
    if declared > MAX_REQUEST_BYTES {
        return Ok(internal_error("Http_svr.Client_requested_size_over_limit"));
    }
    let context = api::Context {
        origin,
        subtask_of: header(&request, "subtask-of"),
        originator: header(&request, "originator"),
    };
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(internal_error("End_of_file")),
    };
    Ok(match codec {
        Codec::Xml => {
            let call = std::str::from_utf8(&body).ok().map(xmlrpc::decode_call);
            match call {
                Some(Ok((method, params))) => {
                    let result = api::dispatch(&sim, &context, &method, params).await;
                    ok("text/xml", xmlrpc::encode_response(&result).into_bytes())
                }
                _ => internal_error(
                    "Xml_light.Xml_error: the request is not a well-formed XML-RPC methodCall",
                ),
            }
        }
        Codec::Json => match jsonrpc::decode_call(&body) {
            Ok(call) => {
                let result = api::dispatch(&sim, &context, &call.method, call.params).await;
                ok(
                    "application/json",
                    jsonrpc::encode_response(call.version, &call.id, &result),
                )
            }
            Err(_) => internal_error("Api_errors.Server_error(\"Malformed_method_request\")"),
        },
    })
}

fn header(request: &Request<Incoming>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-cache, no-store"),
    );
    response
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    headers.insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    headers.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-cache, no-store"),
    );
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn internal_error(extra: &str) -> Response<Full<Bytes>> {
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.<h1> Additional information </h1>{}</body></html>",
            escape(extra)
        ),
    )
}

fn forbidden() -> Response<Full<Bytes>> {
    html(
        StatusCode::FORBIDDEN,
        "<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource is forbidden.</body></html>".into(),
    )
}

fn method_not_implemented(method: &Method) -> Response<Full<Bytes>> {
    html(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "<html><body><h1>HTTP 501 Method Not Implemented</h1><p>{} not supported.<br /></p></body></html>",
            escape(method.as_str())
        ),
    )
}
