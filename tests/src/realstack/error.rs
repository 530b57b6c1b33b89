//! What can go wrong when driving the real stack, with enough context to act on.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host cannot run the real stack, and `SM_RS_REALSTACK=require` says it must.
    #[error("the real stack cannot run here: {0}")]
    Unavailable(String),

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("building the guest image failed: {0}")]
    Build(String),

    #[error("timed out after {:.1} s waiting for {what}; last seen: {last}", .after.as_secs_f64())]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },

    #[error("guest command `{cmd}` exited {rc}{}\nstdout: {stdout}\nstderr: {stderr}",
        if *.timed_out { " (killed by its timeout)" } else { "" })]
    Command {
        cmd: String,
        rc: i32,
        timed_out: bool,
        stdout: String,
        stderr: String,
    },

    #[error("QMP `{command}` failed: {message}")]
    Qmp { command: String, message: String },

    /// The other end said something that does not fit the protocol.
    #[error("{0}")]
    Protocol(String),

    /// qemu is gone although we did not stop it.
    #[error("qemu exited unexpectedly ({status}); its stderr: {stderr}")]
    QemuDied { status: String, stderr: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
