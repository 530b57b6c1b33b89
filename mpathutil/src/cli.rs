//! The `mpathutil` command line.
//!
//! `list` and `status` print exactly what the stock tool prints (`sm-facts.md` §4.4): the map
//! names one per line, and the echoed `show topology` command followed by multipathd's
//! topology text. Everything else is ours. Exit codes: 0 ok, 1 error, 2 usage, and for
//! `agent` 3 when the path agent is not running (as an LSB `status` says "not running").
//!
//! The binary's `main` only builds a [`Context`] from the environment and calls [`run`];
//! tests and the demo call [`run`] with their own context and writers.

use crate::agent;
use crate::client::{self, Error, Multipathd};
use crate::highwater::Ledger;
use crate::model::Topology;
use crate::parse::parse_topology;
use crate::report;
use crate::root::HostRoot;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// mpathutil: query the dm-multipath maps of this host.
#[derive(Debug, Parser)]
#[command(name = "mpathutil", version, disable_help_subcommand = true)]
struct Cli {
    /// How long to wait for multipathd to answer before giving up, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 120)]
    wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the name of every multipath map, one per line (as the stock tool).
    List,
    /// Print the topology as multipathd shows it, after the echoed command (as the stock
    /// tool); with SCSIID only that map; with --json every field, group and path, with
    /// "active", "total" (paths present now) and "max" (the most paths ever seen) per map
    /// (indented on a terminal, one line otherwise).
    Status {
        /// Print JSON: {"maps": [...]}.
        #[arg(long)]
        json: bool,
        /// Only this map (its SCSIid, i.e. WWID).
        scsiid: Option<String>,
    },
    /// One line per map: `<SCSIid> [<active>, <max>]` (the value XenCenter reads), then
    /// `ok`, `degraded` or `down`. `max` is the most paths the map has had.
    Count {
        /// Only this map.
        scsiid: Option<String>,
    },
    /// One line per path, like AIX lspath: state (active, standby, pending, failed), map,
    /// H:C:T:L, device, checker state, priority, path group.
    Paths,
    /// What the path agent (sm-mpath-agent) sees and publishes: its health (xapi and
    /// multipathd reachable, the last pass, pending writes, counters) and every LUN in use
    /// (paths, [active, max], what the PBD holds and since when). Exit 3 when the agent is
    /// not running.
    Agent {
        /// Print JSON: {"health": {...}, "status": {"luns": [...]}}.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code of `agent` when the agent is not running.
pub const AGENT_NOT_RUNNING: i32 = 3;

/// How long `agent` waits for the agent's answer.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `mpathutil` finds multipathd and the host, and how it writes.
#[derive(Debug, Clone)]
pub struct Context {
    pub multipathd: client::Config,
    pub root: HostRoot,
    /// Indent `--json` for a person (stdout is a terminal); a program gets one line.
    pub pretty_json: bool,
}

impl Context {
    /// `MULTIPATH_SOCKET_NAME` and `SM_RS_ROOT`, as every sm-rs program reads them.
    pub fn from_env() -> Self {
        Self {
            multipathd: client::Config::from_env(),
            root: HostRoot::from_env(),
            pretty_json: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }
}

/// Runs one command line; returns the exit code.
pub fn run<I, T>(args: I, ctx: &Context, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = write!(err, "{text}");
                2
            } else {
                let _ = write!(out, "{text}");
                0
            };
        }
    };
    if let Command::Agent { json } = cli.command {
        return agent_command(json, ctx, out, err);
    }
    match execute(&cli, ctx, out, err) {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(err, "mpathutil: {message}");
            1
        }
    }
}

fn execute(
    cli: &Cli,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    let mut daemon = connect_when_up(ctx, Duration::from_secs(cli.wait), err)?;
    let ledger = Ledger::new(&ctx.root);
    let text = match &cli.command {
        Command::List => {
            let maps = daemon.list_maps().map_err(|e| e.to_string())?;
            if let Err(e) = ledger.retain(maps.iter().map(|m| m.wwid.as_str())) {
                let _ = writeln!(err, "mpathutil: warning: {e}");
            }
            maps.iter().map(|m| format!("{}\n", m.name)).collect()
        }
        Command::Status {
            json: false,
            scsiid,
        } => {
            let (command, reply) = match scsiid {
                None => ("show topology".to_string(), daemon.topology_text()),
                Some(id) => (
                    format!("show map {id} topology"),
                    daemon.map_topology_text(id),
                ),
            };
            let reply = reply.map_err(|e| missing_map(e, scsiid.as_deref()))?;
            // Stock prints what it read; we also note the counts, when the text parses.
            if let Ok(topology) = parse_topology(&reply) {
                note_counts(&ledger, &topology, scsiid.as_deref(), err);
                left_to_exit(topology);
            }
            let newline = if reply.ends_with('\n') { "" } else { "\n" };
            // Written as read rather than copied into one string first: the reply may be
            // a megabyte.
            return [command.as_str(), "\n", &reply, newline]
                .iter()
                .try_for_each(|part| out.write_all(part.as_bytes()))
                .map_err(|e| format!("cannot write the output: {e}"));
        }
        Command::Status { json: true, scsiid } => {
            let topology = snapshot(&mut daemon, scsiid.as_deref())?;
            let max = note_counts(&ledger, &topology, scsiid.as_deref(), err);
            let reports = report::reports(&topology, &max);
            let written = report::write_status_json(&reports, ctx.pretty_json, out);
            drop(reports);
            left_to_exit(topology);
            return written.map_err(|e| format!("cannot write the output: {e}"));
        }
        Command::Count { scsiid } => {
            let topology = match scsiid {
                None => daemon.states().map_err(|e| e.to_string()),
                Some(_) => snapshot(&mut daemon, scsiid.as_deref()),
            }
            .inspect_err(|_| {
                if let Some(id) = scsiid {
                    let _ = ledger.forget(id);
                }
            })?;
            let max = note_counts(&ledger, &topology, scsiid.as_deref(), err);
            let lines = report::reports(&topology, &max)
                .iter()
                .map(|r| r.count_line() + "\n")
                .collect();
            left_to_exit(topology);
            lines
        }
        // Answered in `run`, without multipathd.
        Command::Agent { .. } => String::new(),
        Command::Paths => {
            let topology = snapshot(&mut daemon, None)?;
            let max = note_counts(&ledger, &topology, None, err);
            let lines = report::path_lines(&report::reports(&topology, &max));
            left_to_exit(topology);
            lines
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the output: {e}"))
}

/// `mpathutil agent [--json]`: asks the path agent, not multipathd.
fn agent_command(json: bool, ctx: &Context, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let socket = agent::socket_path(&ctx.root);
    let (health, status) = match agent::health_and_status(&socket, AGENT_TIMEOUT) {
        Ok(answers) => answers,
        Err(e) if e.is_not_running() => {
            let _ = writeln!(
                err,
                "mpathutil: {e}\n\
                 mpathutil: path counts reach xapi only at VDI attach and detach and \
                 `xe sr-update` until it runs: systemctl start sm-mpath-agent"
            );
            return AGENT_NOT_RUNNING;
        }
        Err(e) => {
            let hint = match &e {
                agent::CallError::Refused { code, .. } if *code == agent::PERMISSION_DENIED => {
                    " (run it as root)"
                }
                _ => "",
            };
            let _ = writeln!(err, "mpathutil: {e}{hint}");
            return 1;
        }
    };
    let text = if json {
        let value = serde_json::json!({ "health": health, "status": status });
        let text = if ctx.pretty_json {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        };
        text.map(|t| t + "\n").unwrap_or_default()
    } else {
        agent::describe(&health, &status)
    };
    match out.write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "mpathutil: cannot write the output: {e}");
            1
        }
    }
}

/// Leaves a topology to the end of the process. mpathutil runs once and exits, and the
/// kernel takes a process's memory back at once, where dropping a model of thousands of
/// maps and paths frees it one allocation at a time (3% of a large `status --json`).
fn left_to_exit(topology: Topology) {
    std::mem::forget(topology);
}

/// Connects once multipathd answers, waiting up to `wait` and saying so on stderr.
fn connect_when_up(
    ctx: &Context,
    wait: Duration,
    err: &mut dyn Write,
) -> Result<Multipathd, String> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let attempt = Multipathd::connect(&ctx.multipathd).and_then(|mut daemon| {
            daemon.daemon_state()?;
            Ok(daemon)
        });
        match attempt {
            Ok(daemon) => return Ok(daemon),
            Err(e) if e.is_daemon_down() && Instant::now() < deadline => {
                if !said {
                    let _ = writeln!(
                        err,
                        "mpathutil: waiting up to {} s for multipathd ({e})",
                        wait.as_secs()
                    );
                    said = true;
                }
                thread::sleep(Duration::from_millis(200).min(deadline - Instant::now()));
            }
            Err(e) => return Err(format!("Unable to contact Multipathd daemon: {e}")),
        }
    }
}

fn snapshot(daemon: &mut Multipathd, scsiid: Option<&str>) -> Result<Topology, String> {
    match scsiid {
        None => daemon.snapshot().map_err(|e| e.to_string()),
        Some(id) => match daemon.map_snapshot(id).map_err(|e| e.to_string())? {
            Some(map) => Ok(Topology { maps: vec![map] }),
            None => Err(format!("no multipath map {id} on this host")),
        },
    }
}

fn missing_map(e: Error, scsiid: Option<&str>) -> String {
    match (e, scsiid) {
        (Error::Failed { .. } | Error::DeviceNotFound { .. }, Some(id)) => {
            format!("no multipath map {id} on this host")
        }
        (e, _) => e.to_string(),
    }
}

/// Records the paths present per map and returns each map's max, in the topology's
/// order. A ledger we cannot write costs only the history: we say so and count against
/// what we see now.
fn note_counts(
    ledger: &Ledger,
    topology: &Topology,
    scsiid: Option<&str>,
    err: &mut dyn Write,
) -> Vec<u32> {
    let totals = topology
        .maps
        .iter()
        .map(|m| (m.wwid.as_str(), m.paths().count() as u32));
    let result = match scsiid {
        None => ledger.record_all(totals.clone()),
        Some(_) => totals
            .clone()
            .map(|(wwid, total)| {
                ledger
                    .record(wwid, Some(total))
                    .map(|max| max.unwrap_or(total))
            })
            .collect(),
    };
    result.unwrap_or_else(|e| {
        let _ = writeln!(err, "mpathutil: warning: {e}");
        totals.map(|(_, total)| total).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            multipathd: client::Config::for_socket("@sm-rs-test-nobody-listens"),
            root: HostRoot::new("/nonexistent"),
            pretty_json: false,
        }
    }

    fn run_capture(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(args.iter().copied(), &ctx(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_errors_exit_2_with_the_usage() {
        let (code, _, err) = run_capture(&["mpathutil"]);
        assert_eq!(code, 2);
        assert!(err.contains("Usage"), "{err}");
        let (code, _, err) = run_capture(&["mpathutil", "frobnicate"]);
        assert_eq!(code, 2);
        assert!(err.contains("frobnicate"));
    }

    #[test]
    fn every_subcommand_has_help() {
        for sub in ["list", "status", "count", "paths", "agent"] {
            let (code, out, _) = run_capture(&["mpathutil", sub, "--help"]);
            assert_eq!(code, 0, "{sub}");
            assert!(out.contains("Usage"), "{sub}: {out}");
        }
    }

    #[test]
    fn no_daemon_is_an_error_after_the_wait() {
        let (code, _, err) = run_capture(&["mpathutil", "--wait", "0", "list"]);
        assert_eq!(code, 1);
        assert!(err.contains("Unable to contact Multipathd daemon"), "{err}");
        assert!(err.contains("not running"), "{err}");
    }
}
