//! Uevents as the kernel sends them, for a simulated host: a change to the fabric is
//! applied, the kernel's view before and after is compared (disks present; each map's
//! paths and whether dm-multipath has failed them, from the simulated host's tables, which
//! stay while multipathd is down), and the datagrams the kernel would multicast are sent to the agent's relay
//! socket, in the kernel's wire format (`ACTION@DEVPATH\0KEY=VALUE\0…`):
//!
//! - `remove` / `add` of `sdX` (`SUBSYSTEM=block`, `DEVTYPE=disk`, `MAJOR`, `MINOR`);
//! - `change` of the map's `dm-N` with `DM_ACTION=PATH_FAILED` or `PATH_REINSTATED`,
//!   `DM_PATH`, `DM_NR_VALID_PATHS`, `DM_NAME`, `DM_UUID`, `DM_SEQNUM`
//!   (`drivers/md/dm-uevent.c`);
//! - a plain `change` of `dm-N` when its path set changed (multipathd reloaded the table).

use crate::fabric::Fabric;
use crate::host_sim::HostSim;
use sm_plugin::agent::uevent::Uevent;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the kernel knows that uevents are about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelView {
    /// `sdX` → (major, minor, H:C:T:L).
    pub disks: BTreeMap<String, (u32, u32, String)>,
    /// WWID → (`dm-N`, path `major:minor` → failed by the kernel).
    pub maps: BTreeMap<String, (String, BTreeMap<String, bool>)>,
}

impl KernelView {
    /// Read from the kernel's side of the simulated host (the disks, and the tables of the
    /// maps with each path's dm state), not from multipathd: the kernel sends its uevents
    /// whether multipathd runs or not.
    pub fn read(sim: &HostSim) -> Self {
        sim.with(|w| {
            let (fabric, daemon) = (&w.fabric, &w.daemon);
            let disks = fabric
                .devices()
                .iter()
                .filter(|d| d.present)
                .map(|d| (d.name.clone(), (d.dev_t.0, d.dev_t.1, d.hcil.to_string())))
                .collect();
            let maps = daemon
                .maps
                .iter()
                .map(|m| {
                    let paths = m
                        .layout
                        .iter()
                        .flatten()
                        .map(|id| {
                            let (major, minor) = fabric.device(*id).dev_t;
                            let (_, failed, _) = daemon.path_view(fabric, *id);
                            (format!("{major}:{minor}"), failed)
                        })
                        .collect();
                    (m.wwid.clone(), (format!("dm-{}", m.minor), paths))
                })
                .collect();
            Self { disks, maps }
        })
    }
}

/// Sends uevents to an agent's relay socket.
pub struct Relay {
    socket: UnixDatagram,
    path: PathBuf,
    seqnum: AtomicU64,
    dm_seqnum: AtomicU64,
}

impl Relay {
    pub fn new(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            path: path.to_path_buf(),
            seqnum: AtomicU64::new(4000),
            dm_seqnum: AtomicU64::new(1),
        })
    }

    /// Sends one event; `false` when nobody listens (the agent is not running).
    pub fn send(&self, event: &Uevent) -> bool {
        self.socket
            .send_to(&event.to_datagram(), &self.path)
            .is_ok()
    }

    fn event(&self, action: &str, devpath: String, vars: &[(&str, String)]) -> Uevent {
        let mut all: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        all.insert("ACTION".into(), action.into());
        all.insert("DEVPATH".into(), devpath.clone());
        all.insert("SUBSYSTEM".into(), "block".into());
        all.insert("DEVTYPE".into(), "disk".into());
        all.insert(
            "SEQNUM".into(),
            self.seqnum.fetch_add(1, Ordering::Relaxed).to_string(),
        );
        Uevent {
            action: action.into(),
            devpath,
            vars: all,
        }
    }

    /// The events the kernel sends between two views, in its order: paths failed and
    /// reinstated, disks removed, tables reloaded, disks added.
    pub fn events_between(&self, before: &KernelView, after: &KernelView) -> Vec<Uevent> {
        let mut events = Vec::new();
        for (wwid, (dm, paths)) in &after.maps {
            let was = before.maps.get(wwid).map(|(_, p)| p);
            let valid = paths.values().filter(|f| !**f).count();
            for (dev_t, failed) in paths {
                let flipped = was.and_then(|w| w.get(dev_t)).is_some_and(|f| f != failed);
                if flipped {
                    let action = if *failed {
                        "PATH_FAILED"
                    } else {
                        "PATH_REINSTATED"
                    };
                    let (major, minor) =
                        ("253".to_string(), dm.trim_start_matches("dm-").to_string());
                    events.push(self.event(
                        "change",
                        format!("/devices/virtual/block/{dm}"),
                        &[
                            ("DEVNAME", dm.clone()),
                            ("MAJOR", major),
                            ("MINOR", minor),
                            ("DM_TARGET", "multipath".into()),
                            ("DM_ACTION", action.into()),
                            (
                                "DM_SEQNUM",
                                self.dm_seqnum.fetch_add(1, Ordering::Relaxed).to_string(),
                            ),
                            ("DM_PATH", dev_t.clone()),
                            ("DM_NR_VALID_PATHS", valid.to_string()),
                            ("DM_NAME", wwid.clone()),
                            ("DM_UUID", format!("mpath-{wwid}")),
                        ],
                    ));
                }
            }
        }
        let disk_event = |action: &str, name: &str, (major, minor, hcil): &(u32, u32, String)| {
            self.event(
                action,
                format!("/devices/platform/scsi/{hcil}/block/{name}"),
                &[
                    ("DEVNAME", name.to_string()),
                    ("MAJOR", major.to_string()),
                    ("MINOR", minor.to_string()),
                ],
            )
        };
        for (name, disk) in &before.disks {
            if !after.disks.contains_key(name) {
                events.push(disk_event("remove", name, disk));
            }
        }
        for (wwid, (dm, paths)) in &after.maps {
            let reloaded = before.maps.get(wwid).is_none_or(|(_, was)| {
                was.keys().collect::<BTreeSet<_>>() != paths.keys().collect::<BTreeSet<_>>()
            });
            if reloaded {
                let action = if before.maps.contains_key(wwid) {
                    "change"
                } else {
                    "add"
                };
                events.push(self.event(
                    action,
                    format!("/devices/virtual/block/{dm}"),
                    &[("DEVNAME", dm.clone()), ("DM_NAME", wwid.clone())],
                ));
            }
        }
        for (wwid, (dm, _)) in &before.maps {
            if !after.maps.contains_key(wwid) {
                events.push(self.event(
                    "remove",
                    format!("/devices/virtual/block/{dm}"),
                    &[("DEVNAME", dm.clone())],
                ));
            }
        }
        for (name, disk) in &after.disks {
            if !before.disks.contains_key(name) {
                events.push(disk_event("add", name, disk));
            }
        }
        events
    }

    /// Changes the fabric of a host and sends the uevents the kernel would; returns how
    /// many it sent (0 also when the agent does not listen).
    pub fn change<R>(&self, sim: &HostSim, change: impl FnOnce(&mut Fabric) -> R) -> (R, usize) {
        let before = KernelView::read(sim);
        let result = sim.fabric(change);
        let after = KernelView::read(sim);
        let sent = self
            .events_between(&before, &after)
            .iter()
            .filter(|e| self.send(e))
            .count();
        (result, sent)
    }
}
