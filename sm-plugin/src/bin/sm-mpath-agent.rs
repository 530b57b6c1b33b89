//! `sm-mpath-agent`: the per-host path monitor (installed as
//! `/usr/libexec/sm-rs/sm-mpath-agent`, run by `sm-mpath-agent.service`). See
//! `sm_plugin::agent`.

use clap::Parser;
use sm_plugin::agent::{self, Config, uevent::SourceSpec};
use std::process::ExitCode;
use std::time::Duration;

/// Keeps each PBD's `mpath-<SCSIid>` = `[active, max]` true within a second of a path change.
///
/// Like every sm-rs program it reads `SM_RS_ROOT`, `SM_RS_XAPI` and `MULTIPATH_SOCKET_NAME`.
#[derive(Parser, Debug)]
#[command(name = "sm-mpath-agent", version)]
struct Args {
    /// Log to stderr (SMlog form) instead of syslog.
    #[arg(long)]
    foreground: bool,
    /// Wait this long after the first event of a burst before a pass.
    #[arg(long, default_value = "200ms", value_parser = duration)]
    debounce: Duration,
    /// A pass at least this often, events or not (it writes nothing when all is consistent).
    #[arg(long, default_value = "60s", value_parser = duration)]
    reconcile: Duration,
    /// Read this host's PBDs afresh from xapi at least this often.
    #[arg(long, default_value = "10m", value_parser = duration)]
    resync: Duration,
    /// On SIGTERM, how long pending writes may still take.
    #[arg(long, default_value = "5s", value_parser = duration)]
    drain: Duration,
    /// The deadline of each XenAPI call.
    #[arg(long, default_value = "5s", value_parser = duration)]
    call_timeout: Duration,
    /// Where uevents come from: `netlink` (the kernel), `unix:PATH` (a datagram socket fed
    /// in the kernel's format) or `off`.
    #[arg(long, default_value = "netlink", value_parser = SourceSpec::parse)]
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

fn main() -> ExitCode {
    let args = Args::parse();
    let root = mpathutil::HostRoot::from_env();
    sm_plugin::host::log::init_service(&root, args.foreground);
    let mut config = Config::new(root);
    config.debounce = args.debounce;
    config.reconcile = args.reconcile;
    config.resync = args.resync;
    config.drain = args.drain;
    config.call_timeout = args.call_timeout;
    config.uevents = args.uevents;
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
    match runtime.block_on(agent::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sm-mpath-agent: {e}");
            eprintln!("sm-mpath-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
