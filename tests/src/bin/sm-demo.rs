//! The main job on the embedded simulated default: the reference scenario of
//! `seeds/000_*` — a dual-controller ALUA array whose controllers are pulled out and pushed
//! back — shown through `mpathutil` as an administrator on the host would see it.
//!
//! The array, the host's disks and multipathd are simulated (sm-testkit); `mpathutil` is
//! the real code, talking to the simulated multipathd over its real socket protocol.

use mpathutil::cli::{Context, run};
use mpathutil::{Config, HostRoot};
use sm_testkit::multipathd_sim::{DaemonConfig, MultipathdSim};
use sm_testkit::scenarios::{SEED_STEPS, seed_fabric};
use std::io::{Write, stdout};
use std::process::ExitCode;

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sm-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let (fabric, array) = seed_fabric();
    let sim = MultipathdSim::start(fabric, DaemonConfig::default())?;
    let root = tempfile::tempdir()?;
    let ctx = Context {
        multipathd: Config::for_socket(sim.socket_name()),
        root: HostRoot::new(root.path()),
    };
    let mut out = stdout().lock();

    writeln!(
        out,
        "sm-rs demo: the seed scenario (seeds/000_*) on the simulated default"
    )?;
    writeln!(
        out,
        "  array: Intel Multi-Flex, SCM1 active/optimized (ALUA prio 50), SCM2 standby (prio 1)"
    )?;
    writeln!(
        out,
        "  LUN:   22202000155fdb615, 100 GiB, over an mptsas SAS HBA (SCSI host 0)"
    )?;
    writeln!(
        out,
        "  multipathd (simulated, speaks 0.9.8) on {}",
        sim.socket_name()
    )?;

    for (n, step) in SEED_STEPS.iter().enumerate() {
        sim.fabric(|f| (step.apply)(f, array));
        writeln!(out, "\n=== step {n}: {} ===", step.action)?;
        for args in [&["status"][..], &["count"]] {
            writeln!(out, "# mpathutil {}", args.join(" "))?;
            let mut err = Vec::new();
            let code = run(
                std::iter::once("mpathutil").chain(args.iter().copied()),
                &ctx,
                &mut out,
                &mut err,
            );
            out.write_all(&err)?;
            if code != 0 {
                return Err(format!("mpathutil {} exited {code}", args.join(" ")).into());
            }
        }
    }
    writeln!(
        out,
        "\nEvery step matches the multipath -ll the log recorded (cargo nextest run -E 'test(seed)')."
    )?;
    Ok(())
}
