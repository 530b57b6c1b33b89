//! Where the driver's log lines go: syslog in SMlog form (ident `SM`, facility local2, the
//! text prefixed with `[pid]`, `sm-facts.md` §1.2), or stderr when `SM_RS_LOG=stderr`;
//! nowhere when `/etc/xensource/no_sm_log` exists, as in stock. Never stdout: that is the
//! RPC channel.
//!
//! Lines are `tracing` events, ours and the XenAPI client's. Every line, and every fault
//! string and stderr text the driver writes, is scrubbed of the secrets registered with
//! [`protect`] (the CHAP passwords of the call): a last line of defence behind the rule that
//! secrets are never formatted into text in the first place.

use mpathutil::HostRoot;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// syslog's facility local2.
const LOCAL2: u8 = 18;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret: it is replaced by `******` in everything [`scrub`] sees.
pub fn protect(secret: &str) {
    // A one-character "secret" would blank out the whole log; CHAP secrets are 12+ chars.
    if secret.len() < 2 {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock()
        && !secrets.iter().any(|s| s == secret)
    {
        secrets.push(secret.to_string());
    }
}

/// The text with every registered secret masked.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(secrets) = SECRETS.lock() {
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "******");
            }
        }
    }
    out
}

enum Sink {
    Syslog(UnixDatagram),
    Stderr,
    Off,
}

/// The subscriber: formats each event as one line and sends it.
struct SmLog {
    sink: Sink,
    pid: u32,
    /// The least severe level written.
    level: Level,
}

/// Installs the logger for this process; call once, first thing.
pub fn init(root: &HostRoot) {
    let sink = match std::env::var("SM_RS_LOG").as_deref() {
        Ok("stderr") => Sink::Stderr,
        Ok("off") => Sink::Off,
        _ if root.path("/etc/xensource/no_sm_log").exists() => Sink::Off,
        _ => match UnixDatagram::unbound() {
            Ok(socket) if socket.connect(root.path("/dev/log")).is_ok() => Sink::Syslog(socket),
            // No syslog daemon: stock's syslog() drops the line the same way.
            _ => Sink::Off,
        },
    };
    let subscriber = SmLog {
        sink,
        pid: std::process::id(),
        level: Level::DEBUG,
    };
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The logger of a long-running service (the path agent): SMlog form, to stderr when
/// `foreground` (or `SM_RS_LOG=stderr`), else to syslog; informational lines and worse (a
/// debug line per XenAPI call would flood SMlog).
pub fn init_service(root: &HostRoot, foreground: bool) {
    let sink = match std::env::var("SM_RS_LOG").as_deref() {
        Ok("off") => Sink::Off,
        Ok("stderr") => Sink::Stderr,
        _ if foreground => Sink::Stderr,
        _ => match UnixDatagram::unbound() {
            Ok(socket) if socket.connect(root.path("/dev/log")).is_ok() => Sink::Syslog(socket),
            _ => Sink::Off,
        },
    };
    let subscriber = SmLog {
        sink,
        pid: std::process::id(),
        level: Level::INFO,
    };
    let _ = tracing::subscriber::set_global_default(subscriber);
}

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for SmLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !matches!(self.sink, Sink::Off) && *metadata.level() <= self.level
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        let text = scrub(&line.0);
        let level = event.metadata().level();
        match &self.sink {
            Sink::Syslog(socket) => {
                let pri = LOCAL2 * 8 + severity(level);
                let message = format!("<{pri}>{} SM: [{}] {text}", timestamp(), self.pid);
                let _ = socket.send(message.as_bytes());
            }
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr(), "SM: [{}] {text}", self.pid);
            }
            Sink::Off => {}
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Seconds since the epoch as a UTC civil date: (year, month 1-12, day 1-31, seconds into
/// the day). Howard Hinnant's days-to-civil algorithm: no time crate for two log formats.
pub fn civil(secs: u64) -> (i64, i64, i64, u64) {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs % 86_400)
}

/// RFC 3164's `Mmm dd hh:mm:ss` (UTC; rsyslog takes its own receive time anyway).
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (_, month, day, rem) = civil(secs);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        protect("correct horse battery");
        assert_eq!(
            scrub("iscsiadm -v correct horse battery failed"),
            "iscsiadm -v ****** failed"
        );
        protect("x");
        assert_eq!(scrub("x marks"), "x marks");
    }

    #[test]
    fn timestamps_look_like_rfc3164() {
        let t = timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(&t[9..10], ":");
    }
}
