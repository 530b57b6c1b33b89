//! A `Client` carries XenAPI calls to one xapi, over kept-alive HTTP/1.1 connections, in
//! JSON-RPC (the first choice) or XML-RPC. It knows nothing of sessions: see [`crate::Session`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::transport::{Connection, Endpoint, MAX_REQUEST_BYTES};
use crate::wire::{Value, jsonrpc, xmlrpc};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /jsonrpc`, v2.
    #[default]
    JsonRpc,
    /// `POST /` with the `Status`/`Value` envelope.
    XmlRpc,
}

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    protocol: Protocol,
    /// Connections not in use. A long call (`event.from`) takes one of its own, so calls made
    /// meanwhile are not stuck behind it.
    idle: Mutex<Vec<Connection>>,
    next_id: AtomicU64,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Client {
        Client::with_protocol(endpoint, Protocol::default())
    }

    pub fn with_protocol(endpoint: Endpoint, protocol: Protocol) -> Client {
        Client {
            inner: Arc::new(Inner {
                endpoint,
                protocol,
                idle: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The xapi that `$SM_RS_XAPI` names, or the dom0 socket.
    pub fn from_env() -> Result<Client, Error> {
        Ok(Client::new(Endpoint::from_env()?))
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// One call, params exactly as given (the session first where the method wants one).
    /// A XenAPI error comes back as [`Error::Failure`].
    pub async fn call(
        &self,
        method: &str,
        params: &[Value],
        subtask_of: Option<&str>,
    ) -> Result<Value, Error> {
        let (path, content_type, body) = match self.inner.protocol {
            Protocol::JsonRpc => {
                let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                (
                    "/jsonrpc",
                    "application/json",
                    jsonrpc::encode_call(method, params, id),
                )
            }
            Protocol::XmlRpc => (
                "/",
                "text/xml",
                xmlrpc::encode_call(method, params).into_bytes(),
            ),
        };
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Error::RequestTooLarge {
                size: body.len(),
                limit: MAX_REQUEST_BYTES,
            });
        }
        // Only the method name: params may hold a password or a CHAP secret.
        tracing::debug!(method, endpoint = %self.inner.endpoint, "xapi call");
        let mut connection = self.connection().await?;
        let response = connection
            .post(&self.inner.endpoint, path, content_type, body, subtask_of)
            .await?;
        if connection.is_reusable()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push(connection);
        }
        let result = match self.inner.protocol {
            Protocol::JsonRpc => jsonrpc::decode_response(&response)?,
            Protocol::XmlRpc => {
                let text = std::str::from_utf8(&response).map_err(|_| Error::Decode {
                    what: "XML-RPC response",
                    detail: "not UTF-8".into(),
                })?;
                xmlrpc::decode_response(text)?
            }
        };
        result.map_err(Error::Failure)
    }

    async fn connection(&self) -> Result<Connection, Error> {
        loop {
            let candidate = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
            match candidate {
                Some(c) if c.is_reusable() => return Ok(c),
                Some(_) => continue,
                None => return self.inner.endpoint.connect().await,
            }
        }
    }
}
