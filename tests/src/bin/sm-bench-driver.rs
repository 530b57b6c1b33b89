//! Whole-process timings of the driver, side by side with stock sm (not part of the tests:
//! run `tests/benches/driver-vs-stock.sh PATH-TO-AN-SM-CHECKOUT`):
//!
//! - `sr_get_driver_info` through our driver (installed as `LUNoHBASR`) and through stock
//!   sm's `HBASR.py` (the same call, Python 3, from the checkout given);
//! - our `vdi_attach` (and `vdi_detach`) of the seed LUN with multipathing, on the
//!   simulated default: a real process as xapi starts it, talking to the xapi simulator and
//!   the multipathd simulator over their sockets.
//!
//! Medians of N runs each, measured from spawn to exit.

use sm_testkit::lab::{Lab, LabSpec};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{SEED_WWID, seed_fabric};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DRIVER_INFO: &str = "<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(mut command: Command) -> Duration {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let out = command.output().expect("the program runs");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("<methodResponse>") && !stdout.contains("<fault>"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let stock: PathBuf = args
        .next()
        .ok_or("usage: sm-bench-driver SM-CHECKOUT [PYTHON] [RUNS]")?
        .into();
    // Absolute (links kept: a venv's python is a link): the stock driver runs in its own
    // directory.
    let python = args
        .next()
        .map(|p| std::path::absolute(&p).unwrap_or_else(|_| p.into()))
        .unwrap_or_else(|| "python3".into());
    let runs: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(50);
    let here = std::env::current_exe()?;
    let dir = here.parent().ok_or("no target directory")?;
    let driver = dir.join("sm-driver");
    let tmp = tempfile::tempdir()?;
    let hba = tmp.path().join("LUNoHBASR");
    std::os::unix::fs::symlink(&driver, &hba)?;

    let ours: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut c = Command::new(&hba);
            c.arg(DRIVER_INFO).env_clear().env("PATH", "/usr/bin:/bin");
            time(c)
        })
        .collect();
    let pythonpath = format!("{0}:{0}/drivers:{0}/misc/fairlock", stock.display());
    let theirs: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut c = Command::new(&python);
            c.arg(stock.join("drivers/HBASR.py"))
                .arg(DRIVER_INFO)
                .current_dir(stock.join("drivers"))
                .env("PYTHONPATH", &pythonpath);
            time(c)
        })
        .collect();

    let lab = Lab::start(LabSpec {
        hosts: 1,
        fabric: Box::new(|| seed_fabric().0),
        driver: std::env::var_os("SM_BENCH_DRIVER").map_or(driver.clone(), PathBuf::from),
        standins: dir.join("sm-sim-tool"),
        style: ReplyStyle::V0_9_8,
        env: vec![("SM_RS_LOG".into(), "off".into())],
    })?;
    lab.host_config(
        0,
        &[
            ("multipathing", Some("true")),
            ("multipathhandle", Some("dmp")),
        ],
    )
    .map_err(|f| f.to_string())?;
    let sr = lab
        .create_sr("lunohba", "bench", &[])
        .map_err(|f| f.to_string())?;
    let vdi = lab.vdi_of(&sr, SEED_WWID).ok_or("no VDI")?;
    let mut attach = Vec::new();
    let mut detach = Vec::new();
    for _ in 0..runs {
        let call = lab
            .sm_call(0, &sr, "vdi_attach", &["true"], Some(&vdi))
            .to_xml();
        let start = Instant::now();
        let out = lab.spawn_driver(0, "lunohba", &call)?.wait_with_output()?;
        attach.push(start.elapsed());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("<fault>"));
        let call = lab.sm_call(0, &sr, "vdi_detach", &[], Some(&vdi)).to_xml();
        let start = Instant::now();
        let out = lab.spawn_driver(0, "lunohba", &call)?.wait_with_output()?;
        detach.push(start.elapsed());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("<fault>"));
    }

    let (ours, theirs) = (median(ours), median(theirs));
    println!("whole-process medians of {runs} runs each");
    println!(
        "  sr_get_driver_info   sm-rs {:>10}   stock sm (HBASR.py) {:>10}   {:.0}x faster",
        ms(ours),
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  vdi_attach (seed LUN, multipathing, simulated host)  sm-rs {:>10}",
        ms(median(attach))
    );
    println!(
        "  vdi_detach (seed LUN, multipathing, simulated host)  sm-rs {:>10}",
        ms(median(detach))
    );
    Ok(())
}
