//! The driver's side of the agent's local API: a kick under a short deadline, never waiting
//! on an agent that is not there (no socket, or nobody listening on it, fails at once). The
//! wire and its client are `mpathutil::agent`'s (which `mpathutil agent` shares).

use mpathutil::HostRoot;
pub use mpathutil::agent::{CallError, SOCKET, socket_path};
use std::time::Duration;

/// How long the driver gives the agent to take a kick.
pub const KICK_TIMEOUT: Duration = Duration::from_millis(100);

/// `method` with no params; the `result`. Not from inside a runtime.
pub fn call(
    root: &HostRoot,
    method: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CallError> {
    mpathutil::agent::call(&socket_path(root), method, timeout)
}

/// Asks the agent to look now. `Ok` means the agent took it and will publish.
pub fn kick(root: &HostRoot) -> Result<(), CallError> {
    call(root, "kick", KICK_TIMEOUT).map(drop)
}

/// A kick that first re-reads this host's PBDs, so a key someone else changed is put right
/// in this pass rather than at the next periodic resync.
pub fn resync(root: &HostRoot) -> Result<(), CallError> {
    call(root, "resync", KICK_TIMEOUT).map(drop)
}
