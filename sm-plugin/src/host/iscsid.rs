//! open-iscsi's daemon. Every discovery and login goes through iscsid; stock sm starts it
//! when `systemctl is-active iscsid.service` says it is not running (`iscsilib.py`), as a
//! dom0 may have it stopped (or only socket-activated) until the first iSCSI SR. Where it
//! runs, nothing is done. Unlike stock we do not wipe `/var/lib/iscsi/nodes` on the way:
//! the records of other SRs and of an iSCSI boot disk live there.

use crate::host::command::Program;
use std::time::Duration;

const UNIT: &str = "iscsid.service";

/// Whether systemd has iscsid running (`is-active` exits 0).
pub fn is_active() -> bool {
    Program::new("systemctl")
        .args(["is-active", UNIT])
        .run(Duration::from_secs(10))
        .is_ok_and(|out| out.status == 0)
}

/// Starts iscsid unless it runs; `Ok(true)` when it was started.
pub fn ensure_running() -> Result<bool, String> {
    if is_active() {
        return Ok(false);
    }
    tracing::info!("iscsid is not active: starting it");
    let start = Program::new("systemctl").args(["start", UNIT]);
    match start.run(Duration::from_secs(60)) {
        Ok(out) if out.status == 0 => Ok(true),
        Ok(out) => Err(format!(
            "`{}` failed with exit {}: {}",
            start.shown(),
            out.status,
            out.said()
        )),
        Err(e) => Err(e.to_string()),
    }
}
