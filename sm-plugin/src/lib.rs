//! `sm-plugin`: the SMAPIv1 drivers of sm-rs, `LUNoISCSISR` (type `lunoiscsi`) and
//! `LUNoHBASR` (type `lunohba`): LUN-per-VDI SRs with per-host multipathing and a
//! device-mapper map only for a LUN in use.
//!
//! - [`smapi`]: argv methodCall → [`smapi::call::Call`]; result or fault → stdout;
//! - [`errors`]: the SR error codes;
//! - [`drivers`]: the SR types and their commands;
//! - [`multipath`]: the host's multipath setting, lazy activation, the published counts;
//! - [`host`]: everything that touches the machine (programs, sysfs, `/dev`, `/run`, `/etc`);
//! - [`publish`]: the PBD keys and the XenAPI calls that set them, below drivers and agent;
//! - [`agent`]: `sm-mpath-agent`, the per-host path monitor that keeps those keys true.
//!
//! It stands on `mpathutil` (multipathd, path health) and `xenapi` (the session of a call).

pub mod agent;
pub mod drivers;
pub mod errors;
pub mod host;
pub mod multipath;
pub mod publish;
pub mod smapi;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// The driver's `main`: one call from argv, one response on stdout, exit status 0.
pub fn driver_main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    driver_main_with(&argv)
}

/// [`driver_main`] for a given argv (argv[0] picks the SR type).
pub fn driver_main_with(argv: &[OsString]) -> ExitCode {
    // A panic's default report goes to stderr, which xapi shows a person: keep it short.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "sm-rs: internal error{location}");
    }));
    let response = smapi::respond(argv);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(response.as_bytes());
    let _ = stdout.flush();
    ExitCode::SUCCESS
}
