//! One JSON object per line over a unix stream: how both the guest agent (through a qemu
//! virtio-serial chardev) and QMP talk. Reads keep partial lines across timeouts, so a reply
//! that arrives in pieces is never lost or torn.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{Error, Result};

pub struct JsonLines {
    stream: UnixStream,
    /// Bytes read but not yet ended by a newline.
    pending: Vec<u8>,
    what: String,
}

impl JsonLines {
    /// Connects to a socket qemu serves; qemu creates it a moment after it starts, so keep
    /// trying until `deadline`.
    pub fn connect(path: &Path, what: &str, deadline: Instant) -> Result<Self> {
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(JsonLines {
                        stream,
                        pending: Vec::new(),
                        what: what.to_string(),
                    });
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::io(format!("connecting to {}", path.display()), e));
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn send(&mut self, message: &Value) -> Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(format!("writing to {}", self.what), e))
    }

    /// The next whole line as JSON, or a timeout error at `deadline`.
    pub fn receive(&mut self, deadline: Instant) -> Result<Value> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(&text).map_err(|e| {
                    Error::Protocol(format!(
                        "{} sent a line that is not JSON ({e}): {text}",
                        self.what
                    ))
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("a reply from {}", self.what),
                    after: Duration::ZERO,
                    last: format!("{} bytes of an unfinished line", self.pending.len()),
                });
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Error::io("setting a read timeout", e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::Protocol(format!(
                        "{} closed the connection",
                        self.what
                    )));
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("reading from {}", self.what), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_line_sent_in_pieces_arrives_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = thread::spawn(move || {
            let (mut peer, _) = listener.accept().expect("accept");
            peer.write_all(b"{\"a\": ").expect("write");
            thread::sleep(Duration::from_millis(300));
            peer.write_all(b"1}\n\n{\"b\": 2}\n").expect("write");
            thread::sleep(Duration::from_millis(300));
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = JsonLines::connect(&path, "test peer", deadline).expect("connect");
        // a first short deadline expires while the line is half there: nothing may be lost
        let early = lines.receive(Instant::now() + Duration::from_millis(100));
        assert!(matches!(early, Err(Error::Timeout { .. })), "{early:?}");
        assert_eq!(lines.receive(deadline).expect("first"), json!({"a": 1}));
        assert_eq!(lines.receive(deadline).expect("second"), json!({"b": 2}));
        server.join().expect("server");
    }
}
