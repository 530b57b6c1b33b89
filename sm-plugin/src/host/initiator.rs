//! The host's iSCSI initiator name, `/etc/iscsi/initiatorname.iscsi`, which must be the
//! IQN xapi holds for the host (`host.other_config:iscsi_iqn`) before any login: the array
//! grants LUNs to that IQN. As stock does, we write it and restart iscsid when it differs,
//! unless sessions exist (changing the name under them would strand them).

use crate::host::command::Program;
use mpathutil::HostRoot;
use std::fs;
use std::io;
use std::time::Duration;

pub const INITIATOR_FILE: &str = "/etc/iscsi/initiatorname.iscsi";

/// The name in the file, if any.
pub fn current(root: &HostRoot) -> Option<String> {
    let text = fs::read_to_string(root.path(INITIATOR_FILE)).ok()?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("InitiatorName="))
        .map(|v| v.trim().to_string())
}

/// Writes the name and restarts iscsid so it takes it.
pub fn set(root: &HostRoot, iqn: &str, alias: &str) -> io::Result<()> {
    let path = root.path(INITIATOR_FILE);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // The MD3000i alias bug (stock): an alias longer than 30 characters breaks logins.
    let alias: String = alias.chars().take(30).collect();
    fs::write(
        &path,
        format!("InitiatorName={iqn}\nInitiatorAlias={alias}\n"),
    )?;
    tracing::info!("initiator name set to {iqn}; restarting iscsid");
    let restart = Program::new("systemctl").args(["restart", "iscsid.service"]);
    match restart.run(Duration::from_secs(60)) {
        Ok(out) if out.status == 0 => Ok(()),
        Ok(out) => Err(io::Error::other(format!(
            "{}: exit {}: {}",
            restart.shown(),
            out.status,
            out.said()
        ))),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}
