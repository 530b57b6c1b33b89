//! The path agent's local API, from the caller's side: where it listens, what it answers
//! (the wire types, which the agent in `sm-plugin` serialises — they live here because
//! `sm-plugin` may import `mpathutil` and not the other way round) and a small client.
//!
//! The wire: JSON-RPC 2.0 over HTTP/1.1 on the unix socket `run/sm-rs/agent.sock` under the
//! host root, root only. Methods take no params: `status` ([`Status`]), `health`
//! ([`Health`]) and `kick` (`"scheduled"`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::root::HostRoot;

/// Where the agent listens, under the host root.
pub const SOCKET: &str = "/run/sm-rs/agent.sock";

/// The JSON-RPC error code of a refusal (the implementation-defined server-error range).
pub const PERMISSION_DENIED: i64 = -32001;

/// A reply larger than this is not the agent's (a `status` of thousands of LUNs is a few
/// megabytes).
const MAX_REPLY: usize = 64 << 20;

pub fn socket_path(root: &HostRoot) -> PathBuf {
    root.path(SOCKET)
}

/// What the agent counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Uevents that concerned multipath.
    pub events: u64,
    pub kicks: u64,
    pub passes: u64,
    /// Keys xapi took.
    pub writes: u64,
    /// Writes or reads that failed and were tried again.
    pub retries: u64,
    /// Paths that went from working to failed or gone.
    pub flaps: u64,
    pub messages: u64,
    /// Full reads of this host's PBDs.
    pub resyncs: u64,
    /// Reads of the kernel's dm status (multipathd could not answer for a LUN in use).
    pub kernel_reads: u64,
}

/// `health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    pub uptime_s: f64,
    pub host_uuid: String,
    pub last_pass_at: Option<String>,
    pub last_pass_ms: Option<f64>,
    pub pending_writes: usize,
    pub pending_messages: usize,
    pub xapi_reachable: bool,
    pub multipathd_readable: bool,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathStatus {
    pub hcil: String,
    pub dev: String,
    pub state: String,
}

/// One LUN in use, in `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LunStatus {
    pub scsiid: String,
    pub sr_uuid: String,
    /// `ok`, `degraded`, `down` or `unknown`.
    pub health: String,
    pub active: Option<u32>,
    pub total: Option<u32>,
    pub max: Option<u32>,
    pub paths: Vec<PathStatus>,
    pub unknown_because: Option<String>,
    /// What the PBD holds, and when we wrote it (absent: found there).
    pub published: Option<String>,
    pub published_at: Option<String>,
    /// A write xapi has not taken yet: absent when none, `null` for a removal.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub pending: Option<Option<String>>,
    pub all_paths_down_since: Option<String>,
}

/// A field that is there (`null` included) is `Some`; an absent one stays the default.
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub luns: Vec<LunStatus>,
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the path agent is not running: nothing answers on {} ({source})", path.display())]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the path agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("talking to the path agent: {0}")]
    Io(String),
    /// A JSON-RPC error (a non-root caller gets [`PERMISSION_DENIED`]).
    #[error("the path agent answered: {message}")]
    Refused { code: i64, message: String },
}

impl CallError {
    pub fn is_not_running(&self) -> bool {
        matches!(self, Self::NotRunning { .. })
    }
}

/// `method` (no params) on the agent listening on `socket`, under a deadline; its `result`.
///
/// Synchronous for the driver and `mpathutil`: it runs its own single-threaded runtime (on
/// a thread of its own when the caller is already inside one, where a second runtime may
/// not block). An agent that is not there fails at once (no socket file, or nobody
/// listening on it).
pub fn call(
    socket: &Path,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CallError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|scope| {
            scope
                .spawn(|| call_on_own_runtime(socket, method, timeout))
                .join()
                .unwrap_or_else(|_| Err(CallError::Io("the call's thread failed".into())))
        });
    }
    call_on_own_runtime(socket, method, timeout)
}

fn call_on_own_runtime(
    socket: &Path,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CallError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| CallError::Io(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, call_async(socket, method))
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)))
    })
}

/// [`call`] without its deadline, for a caller that has a runtime.
pub async fn call_async(socket: &Path, method: &str) -> Result<serde_json::Value, CallError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| CallError::NotRunning {
            path: socket.to_path_buf(),
            source,
        })?;
    let io = |e: hyper::Error| CallError::Io(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io)?;
    let connection = tokio::spawn(connection);
    let body = serde_json::json!({"jsonrpc": "2.0", "method": method, "id": 1}).to_string();
    let request = hyper::Request::post("/")
        .header(hyper::header::HOST, "sm-mpath-agent")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| CallError::Io(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(io)?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| CallError::Io(format!("reading the reply: {e}")))?
        .to_bytes();
    connection.abort();
    let reply: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        CallError::Io(format!(
            "the reply (HTTP {status}) is not JSON-RPC: {e}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    if let Some(error) = reply.get("error") {
        return Err(CallError::Refused {
            code: error
                .get("code")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
            message: error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("an error without a message")
                .to_string(),
        });
    }
    Ok(reply.get("result").cloned().unwrap_or_default())
}

/// `health` and `status`, typed.
pub fn health_and_status(socket: &Path, timeout: Duration) -> Result<(Health, Status), CallError> {
    Ok((
        typed(socket, "health", timeout)?,
        typed(socket, "status", timeout)?,
    ))
}

fn typed<T: serde::de::DeserializeOwned>(
    socket: &Path,
    method: &str,
    timeout: Duration,
) -> Result<T, CallError> {
    call(socket, method, timeout).and_then(|v| {
        serde_json::from_value(v)
            .map_err(|e| CallError::Io(format!("an unexpected `{method}` reply: {e}")))
    })
}

/// `mpathutil agent`: the agent's health, then every LUN in use, for a person.
pub fn describe(health: &Health, status: &Status) -> String {
    let mut out = String::new();
    let c = &health.counters;
    let yes_no = |ok: bool, yes: &str, no: &str| if ok { yes } else { no }.to_string();
    let _ = writeln!(
        out,
        "sm-mpath-agent on host {}: running for {}",
        or_unknown(&health.host_uuid),
        human_duration(health.uptime_s)
    );
    let rows = [
        (
            "xapi",
            yes_no(
                health.xapi_reachable,
                "reachable",
                "UNREACHABLE (writes are kept and retried)",
            ),
        ),
        (
            "multipathd",
            yes_no(
                health.multipathd_readable,
                "readable",
                "UNREADABLE (counts are not published while unknown)",
            ),
        ),
        (
            "last pass",
            match (&health.last_pass_at, health.last_pass_ms) {
                (Some(at), Some(ms)) => format!("{at}, took {ms:.1} ms"),
                (Some(at), None) => at.clone(),
                _ => "none yet".to_string(),
            },
        ),
        (
            "pending",
            format!(
                "{} writes, {} messages (for xapi)",
                health.pending_writes, health.pending_messages
            ),
        ),
        (
            "counters",
            format!(
                "{} uevents, {} kicks, {} passes, {} writes, {} retries, {} path flaps, \
                 {} messages, {} resyncs, {} kernel status reads",
                c.events,
                c.kicks,
                c.passes,
                c.writes,
                c.retries,
                c.flaps,
                c.messages,
                c.resyncs,
                c.kernel_reads
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "  {:<11} {value}", format!("{name}:"));
    }
    out.push('\n');
    if status.luns.is_empty() {
        out.push_str("No LUN is in use through a multipath map on this host.\n");
        return out;
    }
    let table: Vec<[String; 5]> = status
        .luns
        .iter()
        .map(|l| {
            let counts = match (l.active, l.max) {
                (Some(a), Some(m)) => crate::health::path_count_value(a, m),
                _ => "?".to_string(),
            };
            let published = match &l.pending {
                Some(Some(v)) => format!(
                    "{} (xapi has not taken {v} yet)",
                    l.published.as_deref().unwrap_or("-")
                ),
                Some(None) => format!(
                    "{} (its removal waits for xapi)",
                    l.published.as_deref().unwrap_or("-")
                ),
                None => match (&l.published, &l.published_at) {
                    (Some(v), Some(at)) => format!("{v} since {at}"),
                    (Some(v), None) => v.clone(),
                    (None, _) => "-".to_string(),
                },
            };
            [
                l.scsiid.clone(),
                l.sr_uuid.clone(),
                counts,
                l.health.clone(),
                published,
            ]
        })
        .collect();
    let header = ["LUN (SCSIid)", "SR", "paths", "health", "on the PBD"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, row: [&str; 5]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(&mut out, header);
    for (lun, row) in status.luns.iter().zip(&table) {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
        if let Some(since) = &lun.all_paths_down_since {
            let _ = writeln!(out, "    ALL PATHS DOWN since {since}");
        }
        if let Some(why) = &lun.unknown_because {
            let _ = writeln!(out, "    count unknown: {why}");
        }
        for p in &lun.paths {
            let _ = writeln!(out, "    {:<12} {:<8} {}", p.hcil, p.dev, p.state);
        }
    }
    out
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "?" } else { text }
}

/// `2h 03m 04s`, `5m 10s`, `42s`.
fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_removal_and_nothing_pending_differ_on_the_wire() {
        let mut lun = LunStatus {
            scsiid: "3600".into(),
            ..LunStatus::default()
        };
        let none = serde_json::to_value(&lun).unwrap();
        assert!(none.get("pending").is_none(), "{none}");
        lun.pending = Some(None);
        let removal = serde_json::to_value(&lun).unwrap();
        assert_eq!(removal["pending"], serde_json::Value::Null);
        lun.pending = Some(Some("[1, 2]".into()));
        for value in [none, removal, serde_json::to_value(&lun).unwrap()] {
            let back: LunStatus = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), value);
        }
    }

    #[test]
    fn an_older_or_newer_agent_still_reads() {
        let health: Health =
            serde_json::from_str(r#"{"uptime_s": 3.5, "future_field": 1, "counters": {}}"#)
                .unwrap();
        assert!((health.uptime_s - 3.5).abs() < f64::EPSILON);
        assert_eq!(health.counters, Counters::default());
    }

    #[test]
    fn people_read_the_health_and_every_lun() {
        let health = Health {
            uptime_s: 3725.0,
            host_uuid: "host-1".into(),
            last_pass_at: Some("2026-12-06T02:50:01Z".into()),
            last_pass_ms: Some(3.25),
            xapi_reachable: false,
            multipathd_readable: true,
            ..Health::default()
        };
        let status = Status {
            luns: vec![LunStatus {
                scsiid: "3600a".into(),
                sr_uuid: "sr-1".into(),
                health: "down".into(),
                active: Some(0),
                max: Some(2),
                published: Some("[2, 2]".into()),
                pending: Some(Some("[0, 2]".into())),
                all_paths_down_since: Some("2026-12-06T02:50:00Z".into()),
                paths: vec![PathStatus {
                    hcil: "7:0:0:1".into(),
                    dev: "sdb".into(),
                    state: "failed".into(),
                }],
                ..LunStatus::default()
            }],
        };
        let text = describe(&health, &status);
        for needed in [
            "host host-1: running for 1h 02m 05s",
            "UNREACHABLE",
            "took 3.2 ms",
            "3600a",
            "[0, 2]",
            "[2, 2] (xapi has not taken [0, 2] yet)",
            "ALL PATHS DOWN since 2026-12-06T02:50:00Z",
            "7:0:0:1      sdb      failed",
        ] {
            assert!(text.contains(needed), "{needed:?} in\n{text}");
        }
        let none = describe(&health, &Status::default());
        assert!(none.contains("No LUN is in use"), "{none}");
    }

    #[test]
    fn a_caller_inside_a_runtime_is_answered_too() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = runtime
            .block_on(async { call(&socket, "kick", Duration::from_secs(5)) })
            .unwrap_err();
        assert!(err.is_not_running(), "{err}");
    }

    #[test]
    fn no_agent_is_not_running_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(
            &dir.path().join("agent.sock"),
            "health",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(err.is_not_running(), "{err}");
        assert!(err.to_string().contains("not running"), "{err}");
    }
}
