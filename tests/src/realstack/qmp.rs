//! A QMP (qemu machine protocol) client: the qemu monitor the tests inject hardware faults
//! through (`device_del` of a path = a controller pulled, `device_add` = pushed back).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::error::{Error, Result};
use super::jsonl::JsonLines;

pub struct Qmp {
    line: JsonLines,
    /// Events that arrived while we waited for a command's return.
    events: VecDeque<Value>,
    next_id: u64,
}

/// qemu answers monitor commands at once; this only bounds a wedged qemu.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub fn connect(socket: &Path, deadline: Instant) -> Result<Qmp> {
        let mut line = JsonLines::connect(socket, "QMP", deadline)?;
        let greeting = line.receive(Instant::now() + COMMAND_TIMEOUT)?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Protocol(format!("not a QMP greeting: {greeting}")));
        }
        let mut qmp = Qmp {
            line,
            events: VecDeque::new(),
            next_id: 0,
        };
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"execute": command, "id": id});
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        self.line.send(&message)?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let reply = self.line.receive(deadline)?;
            if reply.get("event").is_some() {
                self.events.push_back(reply);
                continue;
            }
            if reply.get("id") != Some(&json!(id)) {
                continue; // an answer to a command we no longer wait for
            }
            if let Some(error) = reply.get("error") {
                return Err(Error::Qmp {
                    command: command.to_string(),
                    message: error
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no description")
                        .to_string(),
                });
            }
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    /// Waits for an event named `name` whose `data` satisfies `matches`; events seen earlier
    /// (while a command ran) count too. Other events are kept for later waits.
    pub fn wait_event(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let fits = |e: &Value| {
            e.get("event").and_then(Value::as_str) == Some(name)
                && matches(e.get("data").unwrap_or(&Value::Null))
        };
        if let Some(i) = self.events.iter().position(fits) {
            return Ok(self.events.remove(i).unwrap_or(Value::Null));
        }
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let message = self.line.receive(deadline).map_err(|e| match e {
                Error::Timeout { .. } => Error::Timeout {
                    what: format!("QMP event {name}"),
                    after: started.elapsed(),
                    last: format!("{} other events queued", self.events.len()),
                },
                other => other,
            })?;
            if fits(&message) {
                return Ok(message);
            }
            if message.get("event").is_some() {
                self.events.push_back(message);
            }
        }
    }
}
