//! The stand-in programs: `iscsiadm`, `udevadm`, `systemctl`, `dmsetup` on a simulated host. Each is a
//! name (a link) for one executable that sends its argv to the simulated host found under
//! `$SM_RS_ROOT` and prints what the host answers, exiting with its status. Put their
//! directory first in `PATH`, as xapi's `PATH` would find the real ones.

use super::kernel::{Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// The socket of the simulated host under a root.
pub const SOCKET: &str = ".host-sim.sock";

/// The programs a simulated host answers.
pub const PROGRAMS: [&str; 4] = ["iscsiadm", "udevadm", "systemctl", "dmsetup"];

/// Whether argv[0] names a stand-in.
pub fn is_standin(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    PROGRAMS.contains(&base)
}

/// The stand-in's `main`.
pub fn main(argv: Vec<String>) -> ExitCode {
    let program = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let Some(root) = std::env::var_os("SM_RS_ROOT") else {
        eprintln!("{program}: stand-in of a simulated host, but SM_RS_ROOT is not set");
        return ExitCode::from(127);
    };
    let socket = std::path::Path::new(&root).join(SOCKET);
    let reply = (|| -> std::io::Result<Reply> {
        let mut stream = UnixStream::connect(&socket)?;
        let request = Request {
            program: program.clone(),
            args: argv[1..].to_vec(),
        };
        let mut line = serde_json::to_string(&request)?;
        line.push('\n');
        stream.write_all(line.as_bytes())?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer)?;
        Ok(serde_json::from_str(&answer)?)
    })();
    match reply {
        Ok(reply) => {
            print!("{}", reply.stdout);
            eprint!("{}", reply.stderr);
            ExitCode::from(u8::try_from(reply.status).unwrap_or(1))
        }
        Err(e) => {
            eprintln!(
                "{program}: the simulated host at {} does not answer: {e}",
                socket.display()
            );
            ExitCode::from(127)
        }
    }
}
