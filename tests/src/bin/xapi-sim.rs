//! `xapi-sim`: the xapi simulator as a program, for the demo and for people:
//!
//! ```text
//! xapi-sim --socket /tmp/xapi --tcp 127.0.0.1:8080 --state /tmp/pool.json --hosts 3 \
//!          --driver-dir target/debug/sm --driver-env SM_RS_ROOT=/tmp/roots/{host_uuid}
//! SM_RS_XAPI=unix:/tmp/xapi xe pbd-list
//! ```
//!
//! State is saved on every change, so stopping and starting again resumes the pool.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sm_testkit::xapi_sim::{SelfSignedCert, SrSpec, XapiSim};

#[derive(Parser, Debug)]
#[command(
    name = "xapi-sim",
    about = "A simulated xapi pool speaking XenAPI (XML-RPC and JSON-RPC)"
)]
struct Args {
    /// Unix socket to serve, pre-authenticated as root like /var/lib/xcp/xapi.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Plain-HTTP address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    tcp: Option<String>,
    /// TLS 1.2 address, e.g. 127.0.0.1:8443; the certificate is self-signed and kept beside
    /// the state file.
    #[arg(long)]
    tls: Option<String>,
    /// State file: loaded if present, written on every change.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Hosts in a new pool (ignored when the state file exists).
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// root's password for logins over TCP and TLS.
    #[arg(long, default_value = "")]
    root_password: String,
    /// Seconds a failed login waits before it answers, as xapi does.
    #[arg(long, default_value_t = 5.0)]
    auth_failure_delay: f64,
    /// Directory of SMAPIv1 drivers (`<Name>SR`), as xapi's sm-dir.
    #[arg(long)]
    driver_dir: Option<PathBuf>,
    /// KEY=VALUE added to every driver's environment; VALUE may use {host_uuid}, {host_ref},
    /// {host_name} and {xapi}.
    #[arg(long, value_parser = key_value)]
    driver_env: Vec<(String, String)>,
    /// TYPE:NAME[:key=value,...]: add a shared SR with unplugged PBDs on every host (new pool only).
    #[arg(long)]
    sr: Vec<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn sr_spec(text: &str) -> Result<SrSpec, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(sr_type), Some(name)) = (parts.next(), parts.next()) else {
        return Err(format!("expected TYPE:NAME[:key=value,...], got {text:?}"));
    };
    let mut spec = SrSpec::shared(sr_type, name);
    for pair in parts
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = key_value(pair)?;
        spec = spec.device_config(&k, &v);
    }
    Ok(spec)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xapi-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.socket.is_none() && args.tcp.is_none() && args.tls.is_none() {
        return Err("nothing to serve: give --socket, --tcp or --tls".into());
    }
    let specs = args
        .sr
        .iter()
        .map(|s| sr_spec(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = XapiSim::builder()
        .hosts(args.hosts)
        .root_password(&args.root_password)
        .auth_failure_delay(Duration::from_secs_f64(args.auth_failure_delay.max(0.0)));
    if let Some(dir) = &args.driver_dir {
        builder = builder.driver_dir(dir);
    }
    for (k, v) in &args.driver_env {
        builder = builder.driver_env(k, v);
    }
    let fresh = args.state.as_ref().is_none_or(|s| !s.exists());
    if let Some(state) = &args.state {
        builder = builder.state_file(state);
    }
    let sim = builder.load_or_build().map_err(|e| e.to_string())?;
    if fresh {
        for spec in specs {
            let sr = sim.add_sr(spec);
            println!("added SR {}", sr.uuid);
        }
    }
    let master = sim.master();
    println!(
        "pool of {} host(s), master {}",
        sim.hosts().len(),
        sim.db().hosts[&master].uuid
    );
    if let Some(path) = &args.socket {
        sim.listen_unix(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("listening on unix:{}", path.display());
    }
    if let Some(addr) = &args.tcp {
        let bound = sim
            .listen_tcp(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        println!("listening on http://{bound}");
    }
    if let Some(addr) = &args.tls {
        let dir = args
            .state
            .as_ref()
            .and_then(|s| s.parent().map(PathBuf::from))
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let cert = SelfSignedCert::load_or_create(&dir, &["localhost", "127.0.0.1"])
            .map_err(|e| e.to_string())?;
        let bound = sim
            .listen_tls(addr, &cert)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let pin = cert.fingerprint().map_err(|e| e.to_string())?;
        println!("listening on https://{bound}#sha256={pin}");
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    sim.shutdown();
    sim.save();
    if let Some(path) = &args.socket {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
