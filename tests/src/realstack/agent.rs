//! The host side of the guest's command agent (`tests/realstack/guest/agent`): run a shell
//! command in the guest and get its exit code, stdout and stderr back, over the virtio-serial
//! port `smrs.agent` (a unix socket on the host).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::error::{Error, Result};
use super::jsonl::JsonLines;

/// What a guest command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub cmd: String,
    /// Exit status; -9 when the agent killed it at its timeout, -N for death by signal N.
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    /// Time the command took inside the guest.
    pub secs: f64,
    pub timed_out: bool,
}

impl Output {
    /// The output of a command that exited 0, or an error that carries all of it.
    pub fn success(self) -> Result<Output> {
        if self.rc == 0 && !self.timed_out {
            Ok(self)
        } else {
            Err(Error::Command {
                cmd: self.cmd,
                rc: self.rc,
                timed_out: self.timed_out,
                stdout: self.stdout,
                stderr: self.stderr,
            })
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    rc: i32,
    stdout: String,
    stderr: String,
    secs: f64,
    timed_out: bool,
}

pub struct Agent {
    line: JsonLines,
    next_id: u64,
}

/// The host waits this much longer than the guest-side timeout: the agent needs a moment to
/// kill the command and send what it printed.
const REPLY_MARGIN: Duration = Duration::from_secs(10);

impl Agent {
    pub fn connect(socket: &Path, deadline: Instant) -> Result<Agent> {
        Ok(Agent {
            line: JsonLines::connect(socket, "the guest agent", deadline)?,
            next_id: 1,
        })
    }

    /// Waits until the agent in the guest answers, i.e. the guest has booted. A ping sent
    /// before the agent opened its port may be answered late or not at all, so ping again
    /// every second; late answers are told apart by their id.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let id = self.fresh_id();
            self.line.send(&json!({"id": id, "ping": true}))?;
            let deadline = (Instant::now() + Duration::from_secs(1)).min(started + timeout);
            match self.reply_to(id, deadline) {
                Ok(_) => return Ok(started.elapsed()),
                Err(Error::Timeout { .. }) if started.elapsed() < timeout => continue,
                Err(Error::Timeout { .. }) => {
                    return Err(Error::Timeout {
                        what: "the guest agent to answer (boot)".into(),
                        after: started.elapsed(),
                        last: "no answer to any ping".into(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `cmd` with bash in the guest; the guest kills it (and its process group) after
    /// `timeout`. A non-zero exit is not an error here: see [`Output::success`].
    pub fn run(&mut self, cmd: &str, timeout: Duration, stdin: &str) -> Result<Output> {
        let id = self.fresh_id();
        self.line.send(&json!({
            "id": id,
            "cmd": cmd,
            "timeout": timeout.as_secs_f64(),
            "stdin": stdin,
        }))?;
        let reply = self.reply_to(id, Instant::now() + timeout + REPLY_MARGIN)?;
        Ok(Output {
            cmd: cmd.to_string(),
            rc: reply.rc,
            stdout: reply.stdout,
            stderr: reply.stderr,
            secs: reply.secs,
            timed_out: reply.timed_out,
        })
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The reply with this id; replies to requests we gave up on are dropped.
    fn reply_to(&mut self, id: u64, deadline: Instant) -> Result<Reply> {
        loop {
            let value = self.line.receive(deadline)?;
            let reply: Reply = serde_json::from_value(value.clone())
                .map_err(|e| Error::Protocol(format!("bad agent reply ({e}): {value}")))?;
            if reply.id == Some(id) {
                return Ok(reply);
            }
        }
    }
}
