//! Waiting for the guest to reach a state: poll with a deadline, never a bare sleep. Under
//! software emulation the same step takes 0.2 s on a quiet machine and several seconds on a
//! busy one, so a fixed sleep is either slow or flaky; a deadline is only the give-up point.

use std::thread;
use std::time::{Duration, Instant};

use super::error::{Error, Result};

/// How often a probe runs. A guest command costs about 0.1 s under emulation anyway.
const INTERVAL: Duration = Duration::from_millis(100);

/// What one look at the system found.
pub enum Probe<T> {
    Ready(T),
    /// Not there yet: says what was seen instead, for the timeout message.
    Pending(String),
}

/// Runs `probe` until it is ready or `timeout` has passed. Returns the value and how long the
/// wait took; an error from the probe ends the wait at once.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Probe<T>>,
) -> Result<(T, Duration)> {
    let started = Instant::now();
    loop {
        match probe()? {
            Probe::Ready(value) => return Ok((value, started.elapsed())),
            Probe::Pending(last) => {
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(Error::Timeout {
                        what: what.to_string(),
                        after: waited,
                        last,
                    });
                }
                thread::sleep(INTERVAL.min(timeout - waited));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_ready() {
        let mut calls = 0;
        let (value, _) = wait_for("three calls", Duration::from_secs(5), || {
            calls += 1;
            Ok(if calls == 3 {
                Probe::Ready(calls)
            } else {
                Probe::Pending(format!("call {calls}"))
            })
        })
        .expect("ready on the third call");
        assert_eq!(value, 3);
    }

    #[test]
    fn times_out_with_the_last_state_seen() {
        let err = wait_for::<()>("never", Duration::from_millis(250), || {
            Ok(Probe::Pending("still not".into()))
        })
        .expect_err("must time out");
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still not"),
            "{text}"
        );
    }

    #[test]
    fn a_probe_error_ends_the_wait() {
        let err = wait_for::<()>("broken", Duration::from_secs(5), || {
            Err(Error::Protocol("boom".into()))
        })
        .expect_err("must fail");
        assert_eq!(err.to_string(), "boom");
    }
}
