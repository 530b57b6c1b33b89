//! The shipped static (musl) binaries against gnu builds of the same code, whole process,
//! interleaved (not part of the tests; the figures of packaging/README.md's "Measured"):
//!
//! ```text
//! cargo xtask dist                                              # target/x86_64-unknown-linux-musl/dist/
//! cargo build --profile dist -p mpathutil -p sm-plugin --bins   # target/dist/
//! cargo build --release -p sm-testkit --bin sm-bench-musl
//! target/release/sm-bench-musl target/x86_64-unknown-linux-musl/dist target/dist [RUNS]
//! ```
//!
//! - `mpathutil status --json` at 1024 maps × 4 paths against the multipathd simulator
//!   (served from this process, so built with optimisation: a debug simulator would add the
//!   same milliseconds to both and hide the ratio);
//! - `sr_get_driver_info` through `sm-driver` installed as `LUNoHBASR`.
//!
//! Each round runs the four commands once, in an order that alternates between rounds, so
//! that a change of the machine's load falls on both builds alike. Medians (and quartiles)
//! from spawn to exit.

use sm_testkit::multipathd_sim::{DaemonConfig, MultipathdSim};
use sm_testkit::scenarios::large_fabric;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAPS: usize = 1024;

const DRIVER_INFO: &str = "<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>";

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs a command to its end; its stdout, and how long it took.
fn time(mut command: Command) -> Result<(Duration, Vec<u8>)> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let out = command.output()?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{command:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((took, out.stdout))
}

/// Lower quartile, median, upper quartile.
fn quartiles(samples: &mut [Duration]) -> [Duration; 3] {
    samples.sort();
    let at = |q: usize| samples[(samples.len() - 1) * q / 4];
    [at(1), at(2), at(3)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Build {
    name: &'static str,
    mpathutil: PathBuf,
    driver: PathBuf,
    status: Vec<Duration>,
    info: Vec<Duration>,
}

impl Build {
    fn new(name: &'static str, dir: &Path, scratch: &Path) -> Result<Self> {
        let driver = scratch.join(name).join("LUNoHBASR");
        std::fs::create_dir_all(scratch.join(name))?;
        std::os::unix::fs::symlink(std::path::absolute(dir.join("sm-driver"))?, &driver)?;
        Ok(Build {
            name,
            mpathutil: std::path::absolute(dir.join("mpathutil"))?,
            driver,
            status: Vec::new(),
            info: Vec::new(),
        })
    }
}

fn main() -> Result {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sm-bench-musl MUSL-DIR GNU-DIR [RUNS]";
    let musl: PathBuf = args.next().ok_or(usage)?.into();
    let gnu: PathBuf = args.next().ok_or(usage)?.into();
    let runs: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);

    let sim = MultipathdSim::start(large_fabric(MAPS), DaemonConfig::default())?;
    let root = tempfile::tempdir()?;
    let scratch = tempfile::tempdir()?;
    let mut builds = [
        Build::new("musl", &musl, scratch.path())?,
        Build::new("gnu", &gnu, scratch.path())?,
    ];

    let status = |build: &Build| {
        let mut c = Command::new(&build.mpathutil);
        c.args(["status", "--json"])
            .env_clear()
            .env("MULTIPATH_SOCKET_NAME", sim.socket_name())
            .env("SM_RS_ROOT", root.path());
        time(c)
    };
    let info = |build: &Build| {
        let mut c = Command::new(&build.driver);
        c.arg(DRIVER_INFO).env_clear().env("PATH", "/usr/bin:/bin");
        time(c)
    };

    // Both builds print the same report (and a warm-up round for the page cache).
    let expected = status(&builds[0])?.1;
    if status(&builds[1])?.1 != expected {
        return Err("the musl and gnu builds print different reports".into());
    }
    let driver_reply = info(&builds[0])?.1;
    if !String::from_utf8_lossy(&driver_reply).contains("<methodResponse>")
        || info(&builds[1])?.1 != driver_reply
    {
        return Err("the driver's sr_get_driver_info replies differ or are not replies".into());
    }

    let load_before = load();
    let started = Instant::now();
    for round in 0..runs {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (took, out) = status(&builds[i])?;
            if out.len() != expected.len() {
                return Err(format!("{}: a report of another size", builds[i].name).into());
            }
            builds[i].status.push(took);
        }
        for i in order {
            let (took, _) = info(&builds[i])?;
            builds[i].info.push(took);
        }
    }
    let wall = started.elapsed();

    println!(
        "{runs} interleaved rounds in {:.1} s; load average before {load_before}, after {}",
        wall.as_secs_f64(),
        load()
    );
    println!(
        "status --json: {MAPS} maps x 4 paths, {} bytes of JSON",
        expected.len()
    );
    let mut medians = Vec::new();
    for build in &mut builds {
        let s = quartiles(&mut build.status);
        let d = quartiles(&mut build.info);
        println!(
            "  {:<4}  mpathutil status --json  median {}  (quartiles {} .. {})",
            build.name,
            ms(s[1]),
            ms(s[0]),
            ms(s[2])
        );
        println!(
            "  {:<4}  sr_get_driver_info       median {}  (quartiles {} .. {})",
            build.name,
            ms(d[1]),
            ms(d[0]),
            ms(d[2])
        );
        medians.push((s[1], d[1]));
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "musl / gnu: status --json {:.2}x, sr_get_driver_info {:.2}x",
        ratio(medians[0].0, medians[1].0),
        ratio(medians[0].1, medians[1].1)
    );
    Ok(())
}
