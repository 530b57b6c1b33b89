//! Data-path checks on a multipath map, run in the guest by `smrs-io-check`
//! (`tests/realstack/guest/io-check`): a fixed area whose checksum must never change, and a
//! background O_DIRECT write/read-back loop that must see no error while paths come and go.

use std::time::Duration;

use serde::Deserialize;

use super::error::{Error, Result};
use super::poll::{Probe, wait_for};
use super::vm::Vm;

/// The loop's counters (the JSON file it keeps up to date).
#[derive(Debug, Clone, Deserialize)]
pub struct IoStats {
    pub pid: u32,
    pub loops: u64,
    pub writes: u64,
    pub reads: u64,
    pub write_errors: u64,
    pub read_errors: u64,
    pub mismatches: u64,
    /// The slowest single write + read-back + read: how long a path change stalled I/O.
    pub max_iteration_secs: f64,
    /// The first errors, with time and offset.
    pub errors: Vec<String>,
    pub stopped: bool,
}

impl IoStats {
    pub fn failures(&self) -> u64 {
        self.write_errors + self.read_errors + self.mismatches
    }
}

/// Writes the fixed pattern to the start of `device`; returns its sha256.
pub fn fill(vm: &mut Vm, device: &str) -> Result<String> {
    Ok(vm
        .sh(&format!("smrs-io-check fill {device}"))?
        .trim()
        .to_string())
}

/// The sha256 of the fixed area as read back through `device` now.
pub fn checksum(vm: &mut Vm, device: &str) -> Result<String> {
    Ok(vm
        .sh(&format!("smrs-io-check sum {device}"))?
        .trim()
        .to_string())
}

/// A running background loop.
pub struct IoLoop {
    stats_file: String,
    pid: u32,
}

impl IoLoop {
    /// Starts the loop on `device` and waits until it has done some I/O.
    pub fn start(vm: &mut Vm, device: &str) -> Result<IoLoop> {
        let stats_file = "/run/smrs-io-loop.json".to_string();
        vm.sh(&format!(
            "rm -f {stats_file}; setsid -f smrs-io-check loop {device} {stats_file} \
             </dev/null >/run/smrs-io-loop.log 2>&1"
        ))?;
        let (stats, _) = wait_for("the I/O loop to start", Duration::from_secs(30), || {
            Ok(match read_stats(vm, &stats_file)? {
                Some(s) if s.loops > 0 => Probe::Ready(s),
                Some(s) => Probe::Pending(format!("{} loops", s.loops)),
                None => Probe::Pending("no stats file yet".into()),
            })
        })?;
        Ok(IoLoop {
            stats_file,
            pid: stats.pid,
        })
    }

    pub fn stats(&self, vm: &mut Vm) -> Result<IoStats> {
        read_stats(vm, &self.stats_file)?
            .ok_or_else(|| Error::Protocol(format!("{} disappeared", self.stats_file)))
    }

    /// Waits until the loop has completed `more` iterations after `since`: proof that I/O
    /// kept flowing (e.g. while a path was gone).
    pub fn wait_progress(&self, vm: &mut Vm, since: &IoStats, more: u64) -> Result<IoStats> {
        let target = since.loops + more;
        let (stats, _) = wait_for(
            &format!("{more} more I/O loops"),
            Duration::from_secs(60),
            || {
                let s = self.stats(vm)?;
                Ok(if s.loops >= target {
                    Probe::Ready(s)
                } else {
                    Probe::Pending(format!(
                        "{} of {target} loops, {} failures",
                        s.loops,
                        s.failures()
                    ))
                })
            },
        )?;
        Ok(stats)
    }

    /// Stops the loop (SIGTERM: it finishes the current iteration) and returns its totals.
    pub fn stop(self, vm: &mut Vm) -> Result<IoStats> {
        vm.sh(&format!("kill -TERM {}", self.pid))?;
        let (stats, _) = wait_for("the I/O loop to stop", Duration::from_secs(60), || {
            let s = self.stats(vm)?;
            Ok(if s.stopped {
                Probe::Ready(s)
            } else {
                Probe::Pending(format!("{} loops, still running", s.loops))
            })
        })?;
        Ok(stats)
    }
}

fn read_stats(vm: &mut Vm, file: &str) -> Result<Option<IoStats>> {
    let out = vm.run(&format!("cat {file}"))?;
    if out.rc != 0 {
        return Ok(None);
    }
    serde_json::from_str(&out.stdout)
        .map(Some)
        .map_err(|e| Error::Protocol(format!("bad I/O stats ({e}): {}", out.stdout)))
}
