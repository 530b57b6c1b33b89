//! `udevadm settle`: wait until udev has handled the events in its queue (device links
//! after a rescan or a login, the map node after multipathd loads a map).

use crate::host::command::Program;
use std::time::Duration;

/// Runs `udevadm settle --timeout=<s>`; a failure only costs time (the caller waits for
/// the path it needs anyway), so it is logged, not returned.
pub fn settle(timeout: Duration) {
    let secs = timeout.as_secs().max(1);
    let program = Program::new("udevadm")
        .arg("settle")
        .arg(format!("--timeout={secs}"));
    match program.run(timeout + Duration::from_secs(2)) {
        Ok(out) if out.status == 0 => {}
        Ok(out) => tracing::warn!("{}: exit {}: {}", program.shown(), out.status, out.said()),
        Err(e) => tracing::warn!("{e}"),
    }
}
