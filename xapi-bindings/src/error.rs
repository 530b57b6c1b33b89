//! What can go wrong: xapi said no ([`Failure`], with xapi's own code), or we could not
//! talk to it (every other [`Error`] variant). Texts never carry a request body or a password.

use std::fmt;

use crate::wire::Value;

/// A XenAPI error, as xapi reports it: `ErrorDescription = [code, params…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub params: Vec<String>,
}

impl Failure {
    pub fn new(
        code: impl Into<String>,
        params: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Failure {
            code: code.into(),
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// `[code, params…]`, the form both protocols' v1 encodings carry.
    pub fn description(&self) -> Vec<String> {
        std::iter::once(self.code.clone())
            .chain(self.params.iter().cloned())
            .collect()
    }

    pub fn from_description(description: &Value) -> Result<Failure, Error> {
        let mut all = strings_of(description).into_iter();
        match all.next() {
            Some(code) => Ok(Failure {
                code,
                params: all.collect(),
            }),
            None => Err(Error::Protocol(
                "XenAPI failure without an error code".into(),
            )),
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.params.is_empty() {
            write!(f, " [{}]", self.params.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// An error description's elements as text: xapi sends strings, but be kind to a peer that
/// sends a number.
pub(crate) fn strings_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i.as_str() {
                Some(s) => s.to_owned(),
                None => i.to_json().to_string(),
            })
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![
            other
                .as_str()
                .map_or_else(|| other.to_json().to_string(), str::to_owned),
        ],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// xapi answered, and the answer is an error.
    #[error("xapi: {0}")]
    Failure(#[from] Failure),
    /// The address of xapi could not be understood.
    #[error("bad xapi address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot connect to xapi at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS to {endpoint}: {reason}")]
    Tls { endpoint: String, reason: String },
    /// The server's certificate is not the one we pinned: maybe not the host we meant.
    #[error("TLS to {endpoint}: server certificate SHA-256 is {got}, but {expected} was pinned")]
    PinMismatch {
        endpoint: String,
        expected: String,
        got: String,
    },
    #[error("HTTP exchange with xapi at {endpoint} failed: {reason}")]
    Http { endpoint: String, reason: String },
    #[error("xapi at {endpoint} answered HTTP {status}")]
    HttpStatus { endpoint: String, status: u16 },
    /// xapi refuses requests over 300 KiB; we do not send them.
    #[error("request of {size} bytes is over xapi's limit of {limit} bytes")]
    RequestTooLarge { size: usize, limit: usize },
    #[error("cannot decode {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("XenAPI protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// The XenAPI failure, if xapi sent one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Failure(f) => Some(f),
            _ => None,
        }
    }

    pub fn is_failure(&self, code: &str) -> bool {
        self.failure().is_some_and(|f| f.is(code))
    }
}
