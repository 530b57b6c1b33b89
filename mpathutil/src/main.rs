//! `mpathutil list|status|count|paths`: see `mpathutil::cli`.

use mpathutil::cli::{Context, run};
use std::fs::File;
use std::io::{Write, stderr, stdout};
use std::os::fd::AsFd;
use std::process::ExitCode;

// The shipped binary is static (musl), whose malloc is slow on a large report's many small
// allocations; see the dependency's note in Cargo.toml.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Output goes out in large blocks that we buffer ourselves; Rust's stdout would search
    // every block for a newline (it is line-buffered), a tenth of `status --json`. So we
    // write to our own handle on the same descriptor when we can get one.
    let mut own = stdout().as_fd().try_clone_to_owned().map(File::from).ok();
    let mut locked;
    let out: &mut dyn Write = match own.as_mut() {
        Some(file) => file,
        None => {
            locked = stdout().lock();
            &mut locked
        }
    };
    let code = run(
        std::env::args_os(),
        &Context::from_env(),
        out,
        &mut stderr().lock(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
