//! `cargo xtask <task>`: the project's build tasks, as a workspace binary (no make).

mod dist;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("dist") => dist::run(args),
        _ => {
            eprintln!("usage: cargo xtask dist [--help]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
