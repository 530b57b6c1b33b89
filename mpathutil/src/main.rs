//! `mpathutil list|status|count|paths`: see `mpathutil::cli`.

use mpathutil::cli::{Context, run};
use std::io::{stderr, stdout};
use std::process::ExitCode;

fn main() -> ExitCode {
    let code = run(
        std::env::args_os(),
        &Context::from_env(),
        &mut stdout().lock(),
        &mut stderr().lock(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
