//! Hardware and fabric faults, from the most realistic to the lightest:
//!
//! - a qemu path pulled and pushed back (QMP `device_del`/`device_add`): the guest sees a real
//!   SCSI hot-unplug and hot-plug, as when an array controller is pulled (`seeds/000_*`);
//! - an iSCSI portal cut and restored: the session's transport times out as on a real network;
//! - an ALUA access state changed on the LIO target: a controller failover;
//! - a SCSI disk set offline or running through sysfs: the path fails, the disk stays;
//! - `multipathd fail path` / `reinstate path`: device-mapper level only.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::Result;
use super::multipathd::Snapshot;
use super::scenario::PathFault;
use super::timing::report;
use super::topology::ScsiPath;
use super::vm::Vm;
use crate::fabric::{self, ArrayId, Fabric};

/// ALUA access states LIO can put a target port group in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    Offline,
}

impl AluaState {
    fn word(self) -> &'static str {
        match self {
            AluaState::ActiveOptimized => "ao",
            AluaState::ActiveNonOptimized => "ano",
            AluaState::Standby => "standby",
            AluaState::Unavailable => "unavailable",
            AluaState::Offline => "offline",
        }
    }
}

/// The two controllers of topology C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    A,
    B,
}

impl Controller {
    /// Its ALUA target port group id (`tests/realstack/guest/lio-alua`).
    pub fn tpg(self) -> u16 {
        match self {
            Controller::A => 1,
            Controller::B => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Controller::A => "A",
            Controller::B => "B",
        }
    }

    /// The iSCSI portal of the controller, as `smrs-paths` reports it.
    pub fn port(self) -> &'static str {
        match self {
            Controller::A => "iscsi 127.0.0.4:3261",
            Controller::B => "iscsi 127.0.0.5:3261",
        }
    }
}

/// The port (see `multipathd::Disk::port`) of portal 1 or 2 of topology B.
pub fn tgt_portal_port(portal: u8) -> String {
    format!("iscsi 127.0.0.{}:3260", portal + 1)
}

/// The name of portal 1 or 2 of topology B in a simulated fabric.
pub fn tgt_portal_name(portal: u8) -> String {
    format!("portal{portal}")
}

/// The port of a qemu path of topology A.
pub fn scsi_path_port(path: ScsiPath) -> String {
    format!("pci {}", path.hba_pci_address())
}

impl Vm {
    /// Pulls a path out (QMP `device_del`) and waits for qemu's DEVICE_DELETED. Returns how
    /// long qemu took.
    pub fn pull_scsi_path(&mut self, path: ScsiPath) -> Result<Duration> {
        let started = Instant::now();
        let qmp = self.qmp();
        qmp.execute("device_del", Some(serde_json::json!({"id": path.id})))?;
        qmp.wait_event("DEVICE_DELETED", Duration::from_secs(30), |data| {
            data.get("device").and_then(Value::as_str) == Some(path.id)
        })?;
        Ok(started.elapsed())
    }

    /// Pushes a pulled path back (QMP `device_add` with the same properties).
    pub fn push_scsi_path(&mut self, path: ScsiPath) -> Result<Duration> {
        let started = Instant::now();
        self.qmp()
            .execute("device_add", Some(path.device_add_args()))?;
        Ok(started.elapsed())
    }

    /// Makes portal 1 or 2 of topology B unreachable.
    pub fn cut_portal(&mut self, portal: u8) -> Result<()> {
        self.sh(&format!("smrs-tgt-portals cut {portal}")).map(drop)
    }

    pub fn restore_portal(&mut self, portal: u8) -> Result<()> {
        self.sh(&format!("smrs-tgt-portals restore {portal}"))
            .map(drop)
    }

    /// Sets the ALUA access state of a controller's target port group (topology C).
    pub fn set_alua(&mut self, controller: Controller, state: AluaState) -> Result<()> {
        let c = match controller {
            Controller::A => "A",
            Controller::B => "B",
        };
        self.sh(&format!("smrs-lio-alua state {c} {}", state.word()))
            .map(drop)
    }

    /// Sets a guest SCSI disk `offline` or `running` (its sysfs device state).
    pub fn set_disk_state(&mut self, dev: &str, state: &str) -> Result<()> {
        self.sh(&format!("echo {state} > /sys/block/{dev}/device/state"))
            .map(drop)
    }

    /// Asks multipathd to fail (`fail`) or reinstate (`reinstate`) a path.
    pub fn multipathd_path(&mut self, verb: &str, dev: &str) -> Result<String> {
        self.sh(&format!("multipathd {verb} path {dev}"))
    }
}

/// Whether the map's path on `port` has these kernel and checker states.
fn path_on(snapshot: &Snapshot, port: &str, dm_st: &str, chk_st: &[&str]) -> bool {
    let Some(disk) = snapshot.disk_on(port) else {
        return false;
    };
    snapshot
        .single_map()
        .and_then(|m| m.path(&disk.dev))
        .is_some_and(|p| p.dm_st == dm_st && chk_st.contains(&p.chk_st.as_str()))
}

/// Topology A and B healthy: one map, both paths active and ready.
pub fn both_paths_ready(snapshot: &Snapshot) -> bool {
    snapshot.single_map().is_some_and(|m| {
        m.listed() == 2
            && m.all_paths()
                .all(|(_, p)| p.dm_st == "active" && p.chk_st == "ready")
    })
}

/// Topology A: a controller pulled out. Shown when its disk is gone from the guest and the
/// map runs on the other path alone.
pub struct PullScsiPath {
    pub path: ScsiPath,
    pub other: ScsiPath,
}

impl PathFault for PullScsiPath {
    fn name(&self) -> String {
        format!("pull {}", self.path.id)
    }
    fn inject(&self, vm: &mut Vm) -> Result<()> {
        let took = vm.pull_scsi_path(self.path)?;
        report(
            &format!("QMP device_del {} until DEVICE_DELETED", self.path.id),
            took,
        );
        Ok(())
    }
    fn repair(&self, vm: &mut Vm) -> Result<()> {
        vm.push_scsi_path(self.path).map(drop)
    }
    fn mirror(&self, fabric: &mut Fabric, array: ArrayId, injected: bool) {
        if injected {
            fabric.pull_controller(array, self.path.id);
        } else {
            fabric.push_controller(array, self.path.id);
        }
    }
    fn shows_fault(&self, snapshot: &Snapshot) -> bool {
        snapshot.disk_on(&scsi_path_port(self.path)).is_none()
            && snapshot.single_map().is_some_and(|m| m.listed() == 1)
            && path_on(snapshot, &scsi_path_port(self.other), "active", &["ready"])
    }
}

/// Topology B: an iSCSI portal unreachable. Shown when its session's path is failed (the disk
/// stays: the session waits to reconnect) and the other portal's path is ready.
pub struct CutPortal {
    pub portal: u8,
}

impl PathFault for CutPortal {
    fn name(&self) -> String {
        format!("cut portal {}", self.portal)
    }
    fn inject(&self, vm: &mut Vm) -> Result<()> {
        vm.cut_portal(self.portal)
    }
    fn repair(&self, vm: &mut Vm) -> Result<()> {
        vm.restore_portal(self.portal)
    }
    fn mirror(&self, fabric: &mut Fabric, array: ArrayId, injected: bool) {
        let port = tgt_portal_name(self.portal);
        if injected {
            fabric.fail_port(array, &port);
        } else {
            fabric.restore_port(array, &port);
        }
    }
    fn shows_fault(&self, snapshot: &Snapshot) -> bool {
        let other = 3 - self.portal;
        path_on(
            snapshot,
            &tgt_portal_port(self.portal),
            "failed",
            &["faulty"],
        ) && path_on(snapshot, &tgt_portal_port(other), "active", &["ready"])
    }
}

/// Topology C healthy: controller A active/optimized (ready), B standby (ghost).
pub fn a_active_b_standby(snapshot: &Snapshot) -> bool {
    path_on(snapshot, Controller::A.port(), "active", &["ready"])
        && path_on(snapshot, Controller::B.port(), "active", &["ghost"])
}

/// Topology C: a controller failover. A goes standby and B takes over as active/optimized;
/// the repair fails back.
pub struct AluaFailover;

impl PathFault for AluaFailover {
    fn name(&self) -> String {
        "ALUA failover to B".into()
    }
    // The new controller goes active first, as an array hands over: at no moment is there
    // no active/optimized path.
    fn inject(&self, vm: &mut Vm) -> Result<()> {
        vm.set_alua(Controller::B, AluaState::ActiveOptimized)?;
        vm.set_alua(Controller::A, AluaState::Standby)
    }
    fn repair(&self, vm: &mut Vm) -> Result<()> {
        vm.set_alua(Controller::A, AluaState::ActiveOptimized)?;
        vm.set_alua(Controller::B, AluaState::Standby)
    }
    /// The controller going standby carries the I/O until multipathd regroups.
    fn io_races(&self) -> u64 {
        1
    }
    fn mirror(&self, fabric: &mut Fabric, array: ArrayId, injected: bool) {
        let (active, standby) = if injected {
            (Controller::B, Controller::A)
        } else {
            (Controller::A, Controller::B)
        };
        fabric.set_alua(array, active.tpg(), fabric::AluaState::ActiveOptimized);
        fabric.set_alua(array, standby.tpg(), fabric::AluaState::Standby);
    }
    fn shows_fault(&self, snapshot: &Snapshot) -> bool {
        path_on(snapshot, Controller::A.port(), "active", &["ghost"])
            && path_on(snapshot, Controller::B.port(), "active", &["ready"])
    }
}
