//! Where xapi is and how bytes get there: the dom0 unix socket, plain HTTP, or HTTPS with
//! the server certificate pinned by its SHA-256 fingerprint (xapi's certificate is
//! self-signed unless an administrator installed one, so a CA check would prove nothing).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;

/// The local xapi's socket on every dom0; a request there is pre-authenticated as root.
pub const DOM0_SOCKET: &str = "/var/lib/xcp/xapi";
/// The knob that points sm-rs at another xapi (DESIGN.md rule 5).
pub const ENV_XAPI: &str = "SM_RS_XAPI";
/// xapi refuses larger requests (`http_limit_max_rpc_size`).
pub const MAX_REQUEST_BYTES: usize = 300 * 1024;

/// Where xapi listens.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Http {
        host: String,
        port: u16,
    },
    Https {
        host: String,
        port: u16,
        pin: Fingerprint,
    },
}

impl Endpoint {
    /// `unix:PATH`, `http://HOST[:PORT]` or `https://HOST[:PORT]#sha256=FINGERPRINT`.
    pub fn parse(address: &str) -> Result<Endpoint, Error> {
        let bad = |reason: &str| Error::Address {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let (https, rest) = if let Some(rest) = address.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = address.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad(
                "expected unix:PATH, http://HOST[:PORT] or https://HOST[:PORT]#sha256=PIN",
            ));
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(bad("xapi is reached at the server root: give no path"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) =
            split_host_port(authority, default_port).ok_or_else(|| bad("bad host or port"))?;
        if https {
            let pin = fragment
                .and_then(|f| f.strip_prefix("sha256="))
                .ok_or_else(|| {
                    bad("https needs the server certificate pinned: append #sha256=FINGERPRINT")
                })?;
            let pin = Fingerprint::parse(pin).map_err(|r| bad(&r))?;
            Ok(Endpoint::Https { host, port, pin })
        } else if fragment.is_some() {
            Err(bad("a #fragment means nothing for plain http"))
        } else {
            Ok(Endpoint::Http { host, port })
        }
    }

    /// `$SM_RS_XAPI`, or the dom0 socket.
    pub fn from_env() -> Result<Endpoint, Error> {
        match std::env::var(ENV_XAPI) {
            Ok(address) if !address.is_empty() => Endpoint::parse(&address),
            _ => Ok(Endpoint::Unix(PathBuf::from(DOM0_SOCKET))),
        }
    }

    /// The value of the Host header.
    fn authority(&self) -> String {
        match self {
            // xapi ignores it on the socket; the Python binding sends the mangled path.
            Endpoint::Unix(_) => "localhost".to_owned(),
            Endpoint::Http { host, port } | Endpoint::Https { host, port, .. } => {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
        }
    }

    pub(crate) async fn connect(&self) -> Result<Connection, Error> {
        let io_error = |source| Error::Connect {
            endpoint: self.to_string(),
            source,
        };
        let sender = match self {
            Endpoint::Unix(path) => {
                handshake(
                    self,
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(io_error)?,
                )
                .await?
            }
            Endpoint::Http { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_error)?;
                let _ = tcp.set_nodelay(true);
                handshake(self, tcp).await?
            }
            Endpoint::Https { host, port, pin } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_error)?;
                let _ = tcp.set_nodelay(true);
                handshake(self, tls_connect(self, host, pin, tcp).await?).await?
            }
        };
        Ok(Connection {
            sender,
            authority: self.authority(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Http { .. } => write!(f, "http://{}", self.authority()),
            Endpoint::Https { pin, .. } => write!(f, "https://{}#sha256={pin}", self.authority()),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Some((host.to_owned(), port.parse().ok()?))
        }
        Some(_) => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

/// The SHA-256 of a certificate's DER encoding, as `xe host-get-server-certificate | openssl
/// x509 -fingerprint -sha256` prints it (colons optional, any case).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            return Err(format!(
                "a SHA-256 fingerprint has 64 hex digits, this has {}",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| {
                "a fingerprint is hex digits, optionally separated by colons".to_owned()
            })?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One HTTP/1.1 connection to xapi, kept alive between calls.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Connection {
    /// One POST. The body is complete before it is sent, so `Content-Length` is always set;
    /// xapi refuses chunked bodies.
    pub(crate) async fn post(
        &mut self,
        endpoint: &Endpoint,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        subtask_of: Option<&str>,
    ) -> Result<Bytes, Error> {
        use http_body_util::BodyExt;
        let http_error = |reason: String| Error::Http {
            endpoint: endpoint.to_string(),
            reason,
        };
        let mut request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .header(
                hyper::header::USER_AGENT,
                concat!("sm-rs-xenapi/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(task) = subtask_of {
            request = request.header("Subtask-of", task);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http_error(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| http_error(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| http_error(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http_error(e.to_string()))?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            return Err(Error::HttpStatus {
                endpoint: endpoint.to_string(),
                status: status.as_u16(),
            });
        }
        Ok(body)
    }

    pub(crate) fn is_reusable(&self) -> bool {
        !self.sender.is_closed()
    }
}

async fn handshake<I>(endpoint: &Endpoint, io: I) -> Result<SendRequest<Full<Bytes>>, Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Error::Http {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("xapi connection ended: {e}");
        }
    });
    Ok(sender)
}

async fn tls_connect(
    endpoint: &Endpoint,
    host: &str,
    pin: &Fingerprint,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let tls_error = |reason: String| Error::Tls {
        endpoint: endpoint.to_string(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        pin: *pin,
        seen: Mutex::new(None),
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // The name is not checked (the pin is), but SNI still wants a syntactically valid one.
    let server_name = ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
        ServerName::try_from("xapi")
            .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(server_name, tcp).await {
        Ok(stream) => Ok(stream),
        Err(e) => match verifier.seen.lock().ok().and_then(|s| *s) {
            Some(got) if got != *pin => Err(Error::PinMismatch {
                endpoint: endpoint.to_string(),
                expected: pin.to_string(),
                got: got.to_string(),
            }),
            _ => Err(tls_error(e.to_string())),
        },
    }
}

/// Accepts exactly one certificate, and still checks that the server holds its key.
#[derive(Debug)]
struct PinnedCertificate {
    pin: Fingerprint,
    seen: Mutex<Option<Fingerprint>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity.as_ref());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(got);
        }
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate does not match the pinned fingerprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
