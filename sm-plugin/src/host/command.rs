//! Running an external program: an argv (never a shell), a deadline, a log line.
//!
//! An argument may be a [`Arg::Secret`] (a CHAP password): it is passed to the program but
//! shown as `******` in the log line and in any error text, and the program's own output is
//! scrubbed of it before anyone sees it. `PATH` is searched as execvp does, so a host's
//! `/sbin/iscsiadm` is found under xapi's `PATH`, and a test puts its stand-ins first.

use crate::host::log;
use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One argument.
#[derive(Clone, PartialEq, Eq)]
pub enum Arg {
    Plain(String),
    Secret(String),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Plain(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Plain(s)
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Plain(s) => write!(f, "{s:?}"),
            Arg::Secret(_) => f.write_str("\"******\""),
        }
    }
}

/// A program and its arguments.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub args: Vec<Arg>,
}

/// What a finished program said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Why a program did not give us an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error("`{command}` cannot be run: {reason}")]
    NotRun { command: String, reason: String },
    #[error("`{command}` did not finish within {} s and was killed", .after.as_secs())]
    TimedOut { command: String, after: Duration },
    #[error("`{command}` was killed by signal {signal}")]
    Killed { command: String, signal: i32 },
}

impl Program {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<A: Into<Arg>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        log::protect(secret);
        self.args.push(Arg::Secret(secret.to_string()));
        self
    }

    /// The command line as people may see it: secrets masked.
    pub fn shown(&self) -> String {
        let mut text = self.name.clone();
        for arg in &self.args {
            text.push(' ');
            match arg {
                Arg::Plain(s) if s.is_empty() => text.push_str("''"),
                Arg::Plain(s) if s.contains(' ') => {
                    text.push('\'');
                    text.push_str(s);
                    text.push('\'');
                }
                Arg::Plain(s) => text.push_str(s),
                Arg::Secret(_) => text.push_str("******"),
            }
        }
        text
    }

    /// Runs the program to its end or the deadline. A non-zero exit is an [`Output`] too:
    /// what it means is the caller's to say.
    pub fn run(&self, timeout: Duration) -> Result<Output, CommandError> {
        let shown = self.shown();
        let started = Instant::now();
        tracing::debug!("running {shown}");
        let mut child = Command::new(&self.name)
            .args(self.args.iter().map(|a| match a {
                Arg::Plain(s) | Arg::Secret(s) => s.as_str(),
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CommandError::NotRun {
                command: shown.clone(),
                reason: e.to_string(),
            })?;
        // Drain both pipes on threads, so a chatty program cannot block on a full pipe.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = started + timeout;
        let mut pause = Duration::from_micros(200);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    tracing::warn!("{shown}: killed after {} s", timeout.as_secs());
                    return Err(CommandError::TimedOut {
                        command: shown,
                        after: timeout,
                    });
                }
                Ok(None) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(CommandError::NotRun {
                        command: shown,
                        reason: e.to_string(),
                    });
                }
            }
        };
        let text = |h: thread::JoinHandle<Vec<u8>>| {
            log::scrub(&String::from_utf8_lossy(&h.join().unwrap_or_default()))
        };
        let (stdout, stderr) = (text(out), text(err));
        let Some(code) = status.code() else {
            use std::os::unix::process::ExitStatusExt;
            return Err(CommandError::Killed {
                command: shown,
                signal: status.signal().unwrap_or(0),
            });
        };
        tracing::debug!(
            "{shown}: exit {code} after {} ms{}",
            started.elapsed().as_millis(),
            first_line(&stderr).map_or(String::new(), |l| format!(": {l}"))
        );
        Ok(Output {
            status: code,
            stdout,
            stderr,
        })
    }
}

impl Output {
    /// What the program said, for an error text: its stderr, else its stdout, trimmed.
    pub fn said(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        let mut said: String = text.lines().take(4).collect::<Vec<_>>().join(" / ");
        if said.len() > 400 {
            let mut cut = 400;
            while !said.is_char_boundary(cut) {
                cut -= 1;
            }
            said.truncate(cut);
            said.push('…');
        }
        said
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_shown_masked_and_passed_whole() {
        let program = Program::new("sh")
            .args(["-c", "echo \"$0\" >&2; exit 3"])
            .secret("not-for-logs-123");
        assert_eq!(program.shown(), "sh -c 'echo \"$0\" >&2; exit 3' ******");
        let out = program.run(Duration::from_secs(10)).unwrap();
        assert_eq!(out.status, 3);
        // The program got the secret; what it printed is scrubbed.
        assert_eq!(out.stderr.trim(), "******");
    }

    #[test]
    fn deadlines_and_missing_programs() {
        let slow = Program::new("sleep").arg("5");
        assert!(matches!(
            slow.run(Duration::from_millis(100)),
            Err(CommandError::TimedOut { .. })
        ));
        assert!(matches!(
            Program::new("sm-rs-no-such-program").run(Duration::from_secs(1)),
            Err(CommandError::NotRun { .. })
        ));
    }
}
