//! `sm-mpath-agent`: the per-host path monitor (installed as
//! `/usr/libexec/sm-rs/sm-mpath-agent`, run by `sm-mpath-agent.service`). See
//! `sm_plugin::agent` and `sm-mpath-agent --help`.

fn main() -> std::process::ExitCode {
    sm_plugin::agent::cli::main(std::env::args_os())
}
