//! A small synchronous client of the agent's local API, for the driver: one JSON-RPC call
//! under a deadline, never waiting on an agent that is not there (no socket, or nobody
//! listening on it, fails at once).

use mpathutil::HostRoot;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the agent listens, under the host root.
pub const SOCKET: &str = "/run/sm-rs/agent.sock";

/// How long the driver gives the agent to take a kick.
pub const KICK_TIMEOUT: Duration = Duration::from_millis(100);

pub fn socket_path(root: &HostRoot) -> PathBuf {
    root.path(SOCKET)
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the path agent is not running ({0})")]
    NotRunning(std::io::Error),
    #[error("the path agent did not answer in time: {0}")]
    Io(std::io::Error),
    #[error("the path agent answered {0}")]
    Refused(String),
}

/// `method` with no params; the `result`.
pub fn call(
    root: &HostRoot,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CallError> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(socket_path(root)).map_err(CallError::NotRunning)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1))
    };
    let body = serde_json::json!({"jsonrpc": "2.0", "method": method, "id": 1}).to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: sm-mpath-agent\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .set_write_timeout(Some(left()))
        .map_err(CallError::Io)?;
    stream
        .write_all(request.as_bytes())
        .map_err(CallError::Io)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        stream
            .set_read_timeout(Some(left()))
            .map_err(CallError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(CallError::Io(e)),
        }
    }
    let text = String::from_utf8_lossy(&reply);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| CallError::Refused("no HTTP response".into()))?;
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| CallError::Refused(format!("something that is not JSON: {e}")))?;
    if let Some(error) = value.get("error") {
        return Err(CallError::Refused(
            error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("an error")
                .to_string(),
        ));
    }
    Ok(value.get("result").cloned().unwrap_or_default())
}

/// Asks the agent to look now. `Ok` means the agent took it and will publish.
pub fn kick(root: &HostRoot) -> Result<(), CallError> {
    call(root, "kick", KICK_TIMEOUT).map(drop)
}
