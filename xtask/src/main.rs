//! The project's own commands, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`):
//!
//! - `test [NEXTEST ARGS…]`: make this machine able to run the suite (the Python venv, and as
//!   root the real-stack tools), then `cargo nextest run --workspace --no-fail-fast` without
//!   the tests this machine cannot run, which nextest counts as skipped; the end of the output
//!   says which and why.

mod test;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test [NEXTEST ARGS...]   provision what the tests need, then run them all
                           (cargo nextest run --workspace --no-fail-fast ARGS...)";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("test") => test::run(rest),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("xtask: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
