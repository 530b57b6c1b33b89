//! Child processes that cannot outlive the test: qemu above all. Three layers make sure no
//! qemu is left behind, pass or fail:
//!
//! 1. the owner kills and reaps its child on drop (also while unwinding from a panic);
//! 2. the child gets `PR_SET_PDEATHSIG`: the kernel kills it when the thread that forked it
//!    ends, which covers a test process killed outright (nextest's timeout, SIGKILL), where no
//!    destructor runs;
//! 3. the child stays in the test's process group, so nextest's group-wide SIGTERM reaches it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use rustix::process::{Pid, Signal, getppid, set_parent_process_death_signal};

/// Spawns `command` so that the kernel kills it if the calling thread ends first. The thread
/// that calls this must therefore live as long as the child is meant to.
pub fn spawn_tied(command: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec and only makes two system
    // calls (prctl, getppid), both async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // the parent may have died between fork and prctl: then nobody would kill us
            if getppid().is_none_or(|p| p == Pid::INIT) {
                return Err(io::Error::other("parent died before exec"));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Kills a child (SIGKILL) unless it has already exited, and reaps it. Safe against pid reuse:
/// std only signals a child it has not reaped yet.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Whether a process with this pid is running (for tests that check nothing was left
/// behind). A zombie counts as gone: it runs nothing and only waits for its parent to reap it.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ...": comm may hold spaces and parentheses, so look after the last ')'
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!is_alive(pid));
    }

    #[test]
    fn kill_and_reap_ends_a_running_child() {
        let mut child = spawn_tied(Command::new("sleep").arg("300")).expect("spawn sleep");
        let pid = child.id();
        assert!(is_alive(pid));
        kill_and_reap(&mut child);
        assert!(!is_alive(pid));
    }
}
