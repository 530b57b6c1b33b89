//! The `sm-mpath-agent` command line: flags, logging, the runtime, then [`super::run`].
//! A function of the library (not only of the binary) so that a test kit's all-in-one
//! executable can run the agent under its name.

use super::uevent::SourceSpec;
use super::{Config, metrics};
use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

/// sm-mpath-agent: keeps each PBD's `mpath-<SCSIid>` = `[active, max]` true within a second
/// of a path change.
///
/// It watches the LUNs in use on this host (the mpInuse links), wakes on the kernel's
/// path events, on a kick from the SR driver and on a periodic reconcile, reads multipathd
/// once per pass, and writes to xapi only the keys that changed (those xapi does not take
/// are kept and retried). All paths down on a LUN in use raises one xapi message, and its
/// end one more. Path transitions are logged in SMlog form ("PATH HAS FAILED", "PATH HAS
/// RECOVERED").
#[derive(Parser, Debug)]
#[command(
    name = "sm-mpath-agent",
    version,
    after_help = "Environment (as every sm-rs program):\n  \
        SM_RS_ROOT             prefix of every host path (default /)\n  \
        SM_RS_XAPI             where xapi is: unix:PATH, http://..., https://... \
                               (default unix:/var/lib/xcp/xapi)\n  \
        MULTIPATH_SOCKET_NAME  multipathd's control socket (@name: abstract)\n\n\
        Files (under SM_RS_ROOT):\n  \
        /etc/xensource-inventory           this host (INSTALLATION_UUID)\n  \
        /run/sm-rs/agent.sock              the local API (JSON-RPC, root only): `mpathutil agent`\n  \
        /run/sm-rs/agent-state.json        what xapi holds and the open episodes, across restarts\n\n\
        Signals: SIGTERM or SIGINT stop it after the pending writes (up to --drain).\n\
        Durations: 250ms, 2s, 10m (a bare number is seconds)."
)]
struct Args {
    /// Run in the foreground with logs on stderr (SMlog form) instead of syslog.
    #[arg(long)]
    foreground: bool,
    /// Wait this long after the first event of a burst before a pass: a storm of path
    /// events becomes one pass.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = duration)]
    debounce: Duration,
    /// A pass at least this often, events or not (it writes nothing when all is consistent).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    reconcile: Duration,
    /// Read this host's PBDs afresh from xapi at least this often (other writers: the driver
    /// while the agent was down, an administrator).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    resync: Duration,
    /// On SIGTERM, how long pending writes may still take.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    drain: Duration,
    /// The deadline of each XenAPI call.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    call_timeout: Duration,
    /// The Prometheus metrics file (text format, for node_exporter's textfile collector),
    /// replaced after every pass; written only while its directory exists. A host path,
    /// under SM_RS_ROOT. Empty: no metrics.
    #[arg(long, value_name = "FILE", default_value = metrics::DEFAULT_FILE)]
    metrics_file: String,
    /// Where uevents come from: `netlink` (the kernel), `unix:PATH` (a datagram socket fed
    /// in the kernel's format) or `off`.
    #[arg(long, value_name = "SOURCE", default_value = "netlink", value_parser = SourceSpec::parse)]
    uevents: SourceSpec,
}

/// `250ms`, `2s`, `10m`; a bare number is seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a duration looks like 200ms, 60s or 10m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{text:?}: the unit is ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// The agent's `main`, with its command line.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let args = Args::parse_from(args);
    let root = mpathutil::HostRoot::from_env();
    crate::host::log::init_service(&root, args.foreground);
    let mut config = Config::new(root);
    config.debounce = args.debounce;
    config.reconcile = args.reconcile;
    config.resync = args.resync;
    config.drain = args.drain;
    config.call_timeout = args.call_timeout;
    config.uevents = args.uevents;
    config.metrics_file = Some(args.metrics_file)
        .filter(|f| !f.is_empty())
        .map(|f| config.root.path(f));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sm-mpath-agent: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(super::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sm-mpath-agent: {e}");
            eprintln!("sm-mpath-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_an_operator_writes_them() {
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert!(duration("5h").unwrap_err().contains("ms, s or m"));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn the_flags_an_operator_needs_are_there_with_their_defaults() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--foreground",
            "--debounce",
            "--reconcile",
            "--metrics-file",
            "SM_RS_ROOT",
            "agent.sock",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
        }
        let args = Args::try_parse_from(["sm-mpath-agent", "--metrics-file="]).unwrap();
        assert_eq!(args.metrics_file, "");
        let args = Args::try_parse_from(["sm-mpath-agent"]).unwrap();
        assert_eq!(args.debounce, Duration::from_millis(200));
        assert_eq!(args.reconcile, Duration::from_secs(60));
        assert_eq!(args.metrics_file, metrics::DEFAULT_FILE);
    }
}
