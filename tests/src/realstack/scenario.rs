//! The seed scenario (`seeds/000_*`): a path of a dual-controller array goes away and comes
//! back, again and again, while I/O runs on the map. Each topology brings its own way of
//! breaking a path ([`PathFault`]); the walk, the checks at every state and the figures are
//! the same for all.

use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::io::{self, IoLoop, IoStats};
use super::multipathd::{Map, Snapshot, StockPathCount, wait_for_snapshot};
use super::poll::{Probe, wait_for};
use super::timing::report;
use super::vm::Vm;
use crate::fabric::{ArrayId, Fabric};

/// One way to break a path and repair it.
pub trait PathFault {
    /// What it does, e.g. `pull path2`.
    fn name(&self) -> String;
    fn inject(&self, vm: &mut Vm) -> Result<()>;
    fn repair(&self, vm: &mut Vm) -> Result<()>;
    /// The same change on a simulated fabric built like the VM's (`sim_mirror`).
    fn mirror(&self, fabric: &mut Fabric, array: ArrayId, injected: bool);
    /// How many paths the change puts in a race with I/O (see `sim_mirror`'s counters).
    fn io_races(&self) -> u64 {
        0
    }
    /// Whether multipathd shows the fault in full: the right path gone, or failed, and the
    /// other one carrying on.
    fn shows_fault(&self, snapshot: &Snapshot) -> bool;
}

/// A state the walk reached, as the stock tool would count it.
#[derive(Debug, Clone)]
pub struct Step {
    /// e.g. `healthy`, `pull path2 (1)`, `push path2 (1)`.
    pub state: String,
    /// `[active, max]` from the real `show topology`, counted the stock way.
    pub count: [usize; 2],
    /// From the fault's injection (or repair) until multipathd showed it.
    pub settled_after: Duration,
    /// The multipath-level picture, for messages.
    pub map: String,
}

#[derive(Debug, Clone)]
pub struct WalkReport {
    pub steps: Vec<Step>,
    /// Checksum of the fixed data area when written, then after every step.
    pub written_checksum: String,
    pub checksums: Vec<String>,
    pub io: IoStats,
}

impl WalkReport {
    pub fn counts(&self) -> Vec<[usize; 2]> {
        self.steps.iter().map(|s| s.count).collect()
    }

    /// Asserts what every walk must show: no I/O error, at least `min_loops` I/O loops (so
    /// that "no error" means something), and the data area unchanged after every step.
    pub fn assert_data_intact(&self, min_loops: u64) {
        assert_eq!(self.io.failures(), 0, "I/O errors: {:?}", self.io.errors);
        assert!(
            self.io.loops >= min_loops,
            "too little I/O to prove anything: {:?}",
            self.io
        );
        for (i, sum) in self.checksums.iter().enumerate() {
            assert_eq!(sum, &self.written_checksum, "data changed by step {i}");
        }
    }
}

/// What runs at every state the walk reaches: the comparisons (the code under test against
/// the real daemon, the simulator against the real daemon, a test's own checks).
pub trait StateCheck {
    /// A fault was injected (`injected`) or repaired on the real stack.
    fn fault(&mut self, _fault: &dyn PathFault, _injected: bool) -> Result<()> {
        Ok(())
    }
    /// The guest settled in `state`, as `snapshot` shows.
    fn state(&mut self, vm: &mut Vm, state: &str, snapshot: &Snapshot) -> Result<()>;
}

/// A closure as a [`StateCheck`].
pub struct CheckFn<F>(pub F);

impl<F: FnMut(&mut Vm, &str, &Snapshot) -> Result<()>> StateCheck for CheckFn<F> {
    fn state(&mut self, vm: &mut Vm, state: &str, snapshot: &Snapshot) -> Result<()> {
        (self.0)(vm, state, snapshot)
    }
}

/// Time allowed for multipathd to show a fault or its repair: an iSCSI portal cut takes
/// about 10 s (nop-out + replacement_timeout); the rest well under one.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
/// I/O loops that must complete in each state.
const LOOPS_PER_STATE: u64 = 10;

/// Walks `faults` (each `times` times: inject, check, repair, check) with a background I/O
/// loop on `/dev/mapper/<map_name>`. `healthy` says what the guest looks like when all is well.
pub fn walk(
    vm: &mut Vm,
    label: &str,
    map_name: &str,
    faults: &[(&dyn PathFault, usize)],
    healthy: &dyn Fn(&Snapshot) -> bool,
    checks: &mut [&mut dyn StateCheck],
) -> Result<WalkReport> {
    let device = format!("/dev/mapper/{map_name}");
    let mut counter = StockPathCount::default();
    let mut steps = Vec::new();

    let what = format!("{label}: healthy map");
    let (_, settled_after) = wait_for_snapshot(vm, &what, SETTLE_TIMEOUT, healthy)?;
    let snapshot = settled(vm, &what, healthy)?;
    steps.push(step("healthy", &snapshot, &mut counter, settled_after)?);
    for check in checks.iter_mut() {
        check.state(vm, "healthy", &snapshot)?;
    }

    let written_checksum = io::fill(vm, &device)?;
    let mut checksums = Vec::new();
    let io_loop = IoLoop::start(vm, &device)?;

    for &(fault, times) in faults {
        for round in 1..=times {
            // Inject, then repair: each a state of its own, reached with I/O running.
            for injected in [true, false] {
                let state = if injected {
                    format!("{} ({round})", fault.name())
                } else {
                    format!("repair {} ({round})", fault.name())
                };
                let before = io_loop.stats(vm)?;
                let started = Instant::now();
                if injected {
                    fault.inject(vm)?;
                } else {
                    fault.repair(vm)?;
                }
                for check in checks.iter_mut() {
                    check.fault(fault, injected)?;
                }
                let what = format!("{label}: {state}");
                let shows_fault = |s: &Snapshot| fault.shows_fault(s);
                let expected: &dyn Fn(&Snapshot) -> bool =
                    if injected { &shows_fault } else { healthy };
                wait_for_snapshot(vm, &what, SETTLE_TIMEOUT, expected)?;
                let took = started.elapsed();
                let snapshot = settled(vm, &what, expected)?;
                report(&format!("{label}: {state} until multipathd shows it"), took);
                steps.push(step(&state, &snapshot, &mut counter, took)?);
                for check in checks.iter_mut() {
                    check.state(vm, &state, &snapshot)?;
                }
                io_loop.wait_progress(vm, &before, LOOPS_PER_STATE)?;
                checksums.push(io::checksum(vm, &device)?);
            }
        }
    }
    let io = io_loop.stop(vm)?;
    checksums.push(io::checksum(vm, &device)?);
    Ok(WalkReport {
        steps,
        written_checksum,
        checksums,
        io,
    })
}

fn step(
    state: &str,
    snapshot: &Snapshot,
    counter: &mut StockPathCount,
    took: Duration,
) -> Result<Step> {
    let text = match snapshot.topology.as_slice() {
        [one] => one,
        maps => {
            return Err(Error::Protocol(format!(
                "{state}: {} maps in show topology",
                maps.len()
            )));
        }
    };
    let map = snapshot
        .maps
        .maps
        .first()
        .map(Map::describe)
        .unwrap_or_default();
    Ok(Step {
        state: state.to_string(),
        count: counter.observe(text),
        settled_after: took,
        map,
    })
}

/// The guest at rest after a change, or an error naming what kept moving. A state is only
/// compared once it is settled: udev has handled every event (its blkid read of a reloaded map
/// is what makes the kernel pick a current path group), two snapshots in a row are identical,
/// and multipathd's JSON and topology views agree.
pub fn settled(vm: &mut Vm, what: &str, holds: &dyn Fn(&Snapshot) -> bool) -> Result<Snapshot> {
    vm.sh("udevadm settle --timeout=30")?;
    let mut last = Snapshot::take(vm)?;
    let (snapshot, _) = wait_for(
        &format!("{what}: the guest to settle"),
        SETTLE_TIMEOUT,
        || {
            let next = Snapshot::take(vm)?;
            let stable = next.same_as(&last) && next.views_agree().is_ok();
            let seen = next.describe();
            last = next;
            Ok(if stable {
                Probe::Ready(last.clone())
            } else {
                Probe::Pending(seen)
            })
        },
    )?;
    if !holds(&snapshot) {
        return Err(Error::Protocol(format!(
            "{what}: the state did not hold once settled: {}",
            snapshot.describe()
        )));
    }
    Ok(snapshot)
}
