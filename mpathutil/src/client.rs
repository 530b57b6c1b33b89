//! The multipathd control-socket client (`multipath-facts.md` §1).
//!
//! Wire format, both ways: a native-endian `size_t` length that counts a trailing NUL, then
//! the bytes including that NUL. Requests are at most 512 bytes; replies under 32 MiB.
//! Several commands may share one connection. The daemon answers `ok` for success without
//! output, `fail\n[reason]` for failures, and some failures without the `fail` line
//! (0.9.7 and older answer a bare `timeout` or `permission deny: …`; `add map` answers
//! `blacklisted`); [`classify`] folds all of these into [`Error`].

use crate::parse::ParseError;
use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::PathBuf;
use std::time::Duration;
use std::{env, fmt, thread};

/// The abstract socket every multipathd since 0.5.0 listens on.
pub const ABSTRACT_SOCKET: &str = "@/org/kernel/linux/storage/multipathd";
/// The pathname socket of multipathd 0.12.0 and later, tried first.
pub const PATHNAME_SOCKET: &str = "/run/multipathd.socket";
/// multipathd's own reply deadline is 4 s; like its CLI we wait 100 ms longer.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_millis(4100);
/// A request, NUL included, must fit multipathd's 512-byte buffer.
pub const MAX_REQUEST_LEN: usize = 512;
/// libmpathcmd refuses replies of 32 MiB or more.
pub const MAX_REPLY_LEN: usize = 32 << 20;
/// How often a command is sent when multipathd answers that it timed out.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// Where multipathd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketName {
    /// A socket in the filesystem.
    Path(PathBuf),
    /// A Linux abstract socket, written with a leading `@`.
    Abstract(Vec<u8>),
}

impl SocketName {
    /// `@name` is abstract (as `MULTIPATH_SOCKET_NAME` spells it); anything else is a path.
    pub fn parse(name: &str) -> Self {
        match name.strip_prefix('@') {
            Some(rest) => Self::Abstract(rest.as_bytes().to_vec()),
            None => Self::Path(PathBuf::from(name)),
        }
    }

    fn connect(&self) -> io::Result<UnixStream> {
        match self {
            Self::Path(path) => UnixStream::connect(path),
            Self::Abstract(name) => {
                UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)
            }
        }
    }
}

impl fmt::Display for SocketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// How to reach multipathd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Tried in order; the first that accepts is used.
    pub sockets: Vec<SocketName>,
    /// How long to wait for each part of a reply.
    pub reply_timeout: Duration,
    /// Sends per command while the daemon answers `timeout` (it was busy, e.g. reconfiguring).
    pub attempts: u32,
}

impl Config {
    /// multipath-tools' own order: `MULTIPATH_SOCKET_NAME` alone if set, otherwise the
    /// pathname socket, then the abstract one.
    pub fn from_env() -> Self {
        match env::var("MULTIPATH_SOCKET_NAME") {
            Ok(name) if !name.is_empty() => Self::for_socket(&name),
            _ => Self {
                sockets: vec![
                    SocketName::parse(PATHNAME_SOCKET),
                    SocketName::parse(ABSTRACT_SOCKET),
                ],
                ..Self::for_socket(ABSTRACT_SOCKET)
            },
        }
    }

    pub fn for_socket(name: &str) -> Self {
        Self {
            sockets: vec![SocketName::parse(name)],
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

/// What can go wrong talking to multipathd. Each says what happened and to what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("multipathd is not running: no daemon listens on {tried}")]
    NotRunning { tried: String },
    #[error("not allowed to connect to multipathd on {socket}: {source}")]
    ConnectDenied { socket: String, source: io::Error },
    #[error("multipathd refused {command:?}: permission denied, need to be root")]
    PermissionDenied { command: String },
    #[error("multipathd did not answer {command:?} within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("multipathd was too busy to run {command:?} (it timed out {attempts} times)")]
    Busy { command: String, attempts: u32 },
    #[error("multipathd: {command:?}: device not found")]
    DeviceNotFound { command: String },
    #[error("multipathd: {command:?}: map or partition in use")]
    MapInUse { command: String },
    #[error("multipathd: {command:?}: blacklisted")]
    Blacklisted { command: String },
    #[error("multipathd does not know the command {command:?}")]
    UnknownCommand { command: String },
    #[error("multipathd: {command:?} failed{}", reason_suffix(.reason))]
    Failed { command: String, reason: String },
    #[error("multipathd broke the protocol answering {command:?}: {detail}")]
    Protocol { command: String, detail: String },
    #[error("cannot send {command:?} to multipathd: {detail}")]
    BadCommand { command: String, detail: String },
    #[error("connection to multipathd lost during {command:?}: {source}")]
    Io { command: String, source: io::Error },
    #[error("multipathd answered {command:?} with output we cannot read: {source}")]
    Parse { command: String, source: ParseError },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl Error {
    /// The daemon is absent or not serving yet: worth waiting for.
    pub fn is_daemon_down(&self) -> bool {
        matches!(
            self,
            Self::NotRunning { .. } | Self::Timeout { .. } | Self::Busy { .. }
        )
    }
}

/// A connection to multipathd.
#[derive(Debug)]
pub struct Multipathd {
    config: Config,
    socket: SocketName,
    /// `None` after a failed exchange: the stream may hold half a reply, so we reconnect.
    stream: Option<UnixStream>,
}

impl Multipathd {
    /// Connects to the first socket of `config` that accepts.
    pub fn connect(config: &Config) -> Result<Self, Error> {
        let (socket, stream) = open(config)?;
        Ok(Self {
            config: config.clone(),
            socket,
            stream: Some(stream),
        })
    }

    /// How long to wait for each part of a reply from now on (a command the daemon is
    /// known to answer slowly).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.config.reply_timeout = timeout;
    }

    /// The socket this connection uses.
    pub fn socket(&self) -> &SocketName {
        &self.socket
    }

    /// The open connection, or a new one after a failed exchange dropped it.
    fn stream(&mut self) -> Result<&mut UnixStream, Error> {
        if self.stream.is_none() {
            let (socket, stream) = open(&self.config)?;
            self.socket = socket;
            self.stream = Some(stream);
        }
        self.stream.as_mut().ok_or_else(|| Error::Protocol {
            command: String::new(),
            detail: "no connection".into(),
        })
    }

    /// Sends one command and returns the reply text of a success (`ok\n` included).
    /// A `timeout` answer is retried up to `attempts` times; so is a reply that did not
    /// come in time, on a fresh connection.
    pub fn send(&mut self, command: &str) -> Result<String, Error> {
        check_command(command)?;
        let attempts = self.config.attempts.max(1);
        let mut attempt = 1;
        loop {
            let timeout = self.config.reply_timeout;
            let result = exchange(self.stream()?, command, timeout);
            if result.is_err() {
                self.stream = None;
            }
            match result.and_then(|reply| classify(command, &reply).map(|()| reply)) {
                Err(Error::Busy { .. } | Error::Timeout { .. }) if attempt < attempts => {
                    thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                    attempt += 1;
                }
                Err(Error::Busy { command, .. }) => return Err(Error::Busy { command, attempts }),
                other => return other,
            }
        }
    }

    /// Sends `commands` at once and hands back their replies in order, one per
    /// [`Pipeline::next_reply`]: multipathd reads a command by its length and answers
    /// commands in order (0.4.x and 0.9.x alike), so it can prepare the next reply while
    /// we read the last. A reply that is `timeout`, or that does not come, sends that
    /// command and the rest again one by one, through [`Multipathd::send`].
    pub fn pipeline<'a>(&'a mut self, commands: &[&'a str]) -> Result<Pipeline<'a>, Error> {
        for command in commands {
            check_command(command)?;
        }
        let timeout = self.config.reply_timeout;
        let stream = self.stream()?;
        // One write for all of them: the daemon starts on the first while we send the rest.
        let requests: Vec<u8> = commands.iter().flat_map(|c| encode_request(c)).collect();
        let written = write_bytes(
            stream,
            &requests,
            commands.first().copied().unwrap_or(""),
            timeout,
        )
        .is_ok();
        if !written {
            self.stream = None;
        }
        Ok(Pipeline {
            daemon: self,
            commands: commands.to_vec(),
            next: 0,
            in_flight: written,
        })
    }
}

/// Replies to commands sent together; see [`Multipathd::pipeline`].
pub struct Pipeline<'a> {
    daemon: &'a mut Multipathd,
    commands: Vec<&'a str>,
    next: usize,
    /// The commands from `next` on were sent and their replies are on the way.
    in_flight: bool,
}

impl Pipeline<'_> {
    /// The next command's reply, as [`Multipathd::send`] returns it.
    pub fn next_reply(&mut self) -> Result<String, Error> {
        let Some(command) = self.commands.get(self.next).copied() else {
            return Err(Error::Protocol {
                command: String::new(),
                detail: "no command left in the pipeline".into(),
            });
        };
        self.next += 1;
        if self.in_flight {
            let timeout = self.daemon.config.reply_timeout;
            let reply = match self.daemon.stream.as_mut() {
                Some(stream) => read_reply(stream, command, timeout),
                None => Err(Error::Protocol {
                    command: command.to_string(),
                    detail: "connection closed".into(),
                }),
            };
            match reply.and_then(|r| classify(command, &r).map(|()| r)) {
                Err(Error::Busy { .. } | Error::Timeout { .. } | Error::Io { .. }) => {
                    // Later replies may be half read or still coming: start afresh.
                    self.in_flight = false;
                    self.daemon.stream = None;
                }
                other => return other,
            }
        }
        self.daemon.send(command)
    }
}

impl Drop for Pipeline<'_> {
    /// Replies left unread would be taken for the answers to later commands.
    fn drop(&mut self) {
        if self.in_flight && self.next < self.commands.len() {
            self.daemon.stream = None;
        }
    }
}

fn open(config: &Config) -> Result<(SocketName, UnixStream), Error> {
    let mut tried = Vec::new();
    let mut denied = None;
    for socket in &config.sockets {
        match socket.connect() {
            Ok(stream) => return Ok((socket.clone(), stream)),
            Err(e) if matches!(e.kind(), io::ErrorKind::PermissionDenied) => {
                denied.get_or_insert((socket.to_string(), e));
            }
            Err(e) => tried.push(format!("{socket} ({e})")),
        }
    }
    match denied {
        Some((socket, source)) => Err(Error::ConnectDenied { socket, source }),
        None => Err(Error::NotRunning {
            tried: tried.join(", "),
        }),
    }
}

fn check_command(command: &str) -> Result<(), Error> {
    let bad = |detail: &str| Error::BadCommand {
        command: command.to_string(),
        detail: detail.into(),
    };
    if command.trim().is_empty() {
        return Err(bad("the command is empty"));
    }
    if command.contains('\0') {
        return Err(bad("the command contains a NUL byte"));
    }
    if command.len() + 1 > MAX_REQUEST_LEN {
        return Err(bad("longer than the 511 bytes multipathd accepts"));
    }
    Ok(())
}

/// The request frame: length (NUL included), command, NUL.
pub fn encode_request(command: &str) -> Vec<u8> {
    let len = command.len() + 1;
    let mut frame = Vec::with_capacity(size_of::<usize>() + len);
    frame.extend_from_slice(&len.to_ne_bytes());
    frame.extend_from_slice(command.as_bytes());
    frame.push(0);
    frame
}

/// Decodes a reply body: drops the trailing NUL, reads UTF-8 leniently (vendor strings
/// are ASCII in practice, but a stray byte must not cost us the whole reply).
pub fn decode_reply(mut body: Vec<u8>) -> String {
    if body.last() == Some(&0) {
        body.pop();
    }
    // Valid text (the rule) is taken as it is; only a damaged reply is copied to repair it.
    String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn exchange(stream: &mut UnixStream, command: &str, timeout: Duration) -> Result<String, Error> {
    write_request(stream, command, timeout)?;
    read_reply(stream, command, timeout)
}

fn io_error(command: &str, timeout: Duration) -> impl Fn(io::Error) -> Error + '_ {
    move |source: io::Error| {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            Error::Timeout {
                command: command.to_string(),
                after: timeout,
            }
        } else {
            Error::Io {
                command: command.to_string(),
                source,
            }
        }
    }
}

fn write_request(stream: &mut UnixStream, command: &str, timeout: Duration) -> Result<(), Error> {
    write_bytes(stream, &encode_request(command), command, timeout)
}

/// Writes encoded requests; errors name `command`.
fn write_bytes(
    stream: &mut UnixStream,
    requests: &[u8],
    command: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let io_error = io_error(command, timeout);
    stream.set_write_timeout(Some(timeout)).map_err(&io_error)?;
    stream.write_all(requests).map_err(&io_error)
}

fn read_reply(stream: &mut UnixStream, command: &str, timeout: Duration) -> Result<String, Error> {
    let io_error = io_error(command, timeout);
    stream.set_read_timeout(Some(timeout)).map_err(&io_error)?;
    let mut header = [0u8; size_of::<usize>()];
    stream.read_exact(&mut header).map_err(&io_error)?;
    let len = usize::from_ne_bytes(header);
    if len == 0 || len >= MAX_REPLY_LEN {
        return Err(Error::Protocol {
            command: command.to_string(),
            detail: format!("reply length {len} is outside 1..32 MiB"),
        });
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).map_err(&io_error)?;
    Ok(decode_reply(body))
}

/// Folds multipathd's ways of saying "no" into typed errors; `Ok` for a success.
pub fn classify(command: &str, reply: &str) -> Result<(), Error> {
    // The help block comes within three lines (`fail`, the echoed command, the version
    // line): a listing of a megabyte is not searched to its end for it.
    let head = &reply.as_bytes()[..reply.len().min(command.len() + 256)];
    let command = command.to_string();
    if memchr::memmem::find(head, b"CLI commands reference:").is_some() {
        // Help text: the command is unknown (0.4.x sends it without `fail`).
        let first = reply
            .strip_prefix("fail\n")
            .unwrap_or(reply)
            .lines()
            .next()
            .unwrap_or("");
        return Err(if first.ends_with("Missing argument") {
            Error::BadCommand {
                command,
                detail: "multipathd says an argument is missing".into(),
            }
        } else {
            Error::UnknownCommand { command }
        });
    }
    let (failed, reason) = match reply.strip_prefix("fail") {
        Some(rest) if rest.is_empty() || rest.starts_with('\n') => (true, rest.trim()),
        _ => (false, reply.trim()),
    };
    match reason {
        "timeout" => Err(Error::Busy {
            command,
            attempts: 1,
        }),
        r if r.starts_with("permission deny") => Err(Error::PermissionDenied { command }),
        "blacklisted" => Err(Error::Blacklisted { command }),
        "map or partition in use" if failed => Err(Error::MapInUse { command }),
        "device not found" if failed => Err(Error::DeviceNotFound { command }),
        _ if failed => Err(Error::Failed {
            command,
            reason: reason.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_counts_and_sends_the_nul() {
        let frame = encode_request("show maps");
        assert_eq!(&frame[..8], &10usize.to_ne_bytes());
        assert_eq!(&frame[8..], b"show maps\0");
    }

    #[test]
    fn reply_decoding_drops_the_nul_and_survives_bad_utf8() {
        assert_eq!(decode_reply(b"ok\n\0".to_vec()), "ok\n");
        assert_eq!(decode_reply(b"ok\n".to_vec()), "ok\n");
        assert_eq!(decode_reply(b"a\xffb\0".to_vec()), "a\u{fffd}b");
    }

    #[test]
    fn socket_names() {
        assert_eq!(
            SocketName::parse(ABSTRACT_SOCKET),
            SocketName::Abstract(b"/org/kernel/linux/storage/multipathd".to_vec())
        );
        assert_eq!(
            SocketName::parse("/run/x"),
            SocketName::Path("/run/x".into())
        );
        assert_eq!(SocketName::parse("@x").to_string(), "@x");
    }

    #[test]
    fn classification_of_both_reply_conventions() {
        assert!(classify("show maps", "ok\n").is_ok());
        assert!(classify("show maps", "name sysfs uuid\n").is_ok());
        assert!(matches!(
            classify("del map x", "fail\nmap or partition in use\n"),
            Err(Error::MapInUse { .. })
        ));
        assert!(matches!(
            classify("del map x", "fail\ndevice not found\n"),
            Err(Error::DeviceNotFound { .. })
        ));
        assert!(matches!(
            classify("add map x", "fail\ntimeout\n"),
            Err(Error::Busy { .. })
        ));
        assert!(matches!(
            classify("add map x", "timeout\n"),
            Err(Error::Busy { .. })
        ));
        assert!(matches!(
            classify("add map x", "fail\npermission deny: need to be root\n"),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify("add map x", "permission deny: need to be root\n"),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify("add map x", "blacklisted\n"),
            Err(Error::Blacklisted { .. })
        ));
        assert!(matches!(
            classify("del map x", "fail\n"),
            Err(Error::Failed { .. })
        ));
        assert!(matches!(
            classify(
                "frob",
                "fail\nfrob: not found\nmultipath-tools v0.9.8 (02/15, 2024)\nCLI commands reference:\n list|show paths\n"
            ),
            Err(Error::UnknownCommand { .. })
        ));
        assert!(matches!(
            classify(
                "show map",
                "fail\nshow map: Missing argument\nmultipath-tools v0.9.8\nCLI commands reference:\n"
            ),
            Err(Error::BadCommand { .. })
        ));
        // A map called "failover" is not a failure.
        assert!(classify("list maps", "name\nfailover\n").is_ok());
    }

    #[test]
    fn commands_are_checked_before_sending() {
        assert!(matches!(check_command(""), Err(Error::BadCommand { .. })));
        assert!(matches!(
            check_command("a\0b"),
            Err(Error::BadCommand { .. })
        ));
        assert!(matches!(
            check_command(&"x".repeat(512)),
            Err(Error::BadCommand { .. })
        ));
        assert!(check_command(&"x".repeat(511)).is_ok());
    }
}
