//! Lazy activation: a device-mapper map exists only for a LUN in use on this host.
//!
//! # The mechanism, on both daemons we serve
//!
//! A dom0 runs XenServer's multipathd 0.4.9-xs with stock sm's multipath.conf; Debian and
//! others run multipath-tools 0.9. Both build a map only for a WWID listed in
//! `/etc/multipath/wwids`, for different reasons: 0.4.9-xs because `find_multipaths yes`
//! carries XenServer's `restrict_should_multipath_success_conditions.patch`, 0.9 because of
//! `find_multipaths strict` in our drop-in (0.4.9 ignores that word). So the wwids file is
//! the durable "in use" mark: a restart flushes every unopened map it does not list.
//!
//! To build a map we list the WWID, then send `add path <sdX>` for the LUN's paths:
//! both daemons then run the path through `should_multipath`, which now says yes, and
//! build the map, adopting the other paths (0.4.9 `cli_add_path` → `ev_add_path`; 0.9.4 the
//! same for a path it already monitors). `add map <wwid>` is not enough: on 0.4.9 it only
//! adopts a table that already exists and answers `ok` having built nothing (after about
//! 4.8 s); it stays as a last resort for 0.9 configurations where a path event would not
//! build the map. An `ok` proves nothing, so every step is followed by a look at the map
//! (`show map X json`). Removing: `remove map` flushes a map only if nothing holds it
//! open (0.9.8+ say `map or partition in use`, older ones a bare `fail`).
//!
//! We ask multipathd over its socket rather than run `multipath` as stock does, so stock's
//! `devicemapper` fairlock (which serialises stock's own `multipath` runs) is not ours to
//! take: multipathd serialises what it is asked under its own lock.
//!
//! - attach: record → list the WWID → `add path` → see the map → wait for
//!   `/dev/mapper/<id>` → link `/dev/disk/mpInuse/<id>` → record "attached". Each step is
//!   idempotent; a call killed anywhere is finished by the next attach, or undone by the
//!   next detach.
//! - detach: see the map → unlink → unlist the WWID → `remove map` (only if there is one:
//!   0.4.9 takes 4.8 s to fail on a missing map); if the map is open, relist and relink and
//!   refuse with VDIInUse: nothing changed. Unlisting before removing means no path event
//!   in between can bring the map back; the record goes last.
//!
//! We never run `reconfigure` (it recreates every map and forgets failed paths, CA-136041)
//! and never touch a map that is open. All steps for one LUN hold its lock.

use crate::errors::{Code, SrError};
use crate::host::command::Program;
use crate::host::devfs;
use crate::host::inuse::{Record, Registry, Stage};
use crate::host::lock;
use crate::host::sysfs;
use crate::host::wwids::WwidsFile;
use mpathutil::client::{Config, Error as MpError, Multipathd};
use mpathutil::highwater::Ledger;
use mpathutil::{HostRoot, Map};
use std::time::{Duration, Instant};

/// How long a call waits for another call holding the same LUN.
const LOCK_WAIT: Duration = Duration::from_secs(300);
/// How long udev may take to create the map's node (stock waits 30 s, CA-374612).
const NODE_WAIT: Duration = Duration::from_secs(30);
/// How long a just-scanned LUN's paths may take to reach multipathd.
const PATHS_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for multipathd to answer at all.
const DAEMON_WAIT: Duration = Duration::from_secs(30);
/// `add map` of a WWID with no table takes 0.4.9 about 4.8 s to answer `ok`; a client
/// waiting its usual 4.1 s would send it again twice.
const ADD_MAP_WAIT: Duration = Duration::from_secs(15);

/// What the driver needs of the host to (de)activate LUNs.
#[derive(Debug, Clone)]
pub struct Activator {
    pub root: HostRoot,
    pub multipathd: Config,
}

/// Which LUN, for which SR and VDI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunUse {
    pub scsiid: String,
    pub sr_uuid: String,
    pub vdi_uuid: String,
}

/// The outcome of an activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The device handed to xapi.
    pub device: String,
    /// Whether it is a multipath map (the LUN may be blacklisted for multipath).
    pub multipath: bool,
}

fn mp_error(scsiid: &str, e: &MpError) -> SrError {
    let code = if e.is_daemon_down() || matches!(e, MpError::ConnectDenied { .. }) {
        Code::MultipathdCommsFailure
    } else {
        Code::MultipathGenericFailure
    };
    SrError::with(code, format!("LUN {scsiid}: {e}"))
}

fn io_error(what: &str, e: std::io::Error) -> SrError {
    SrError::with(Code::SMGeneral, format!("{what}: {e}"))
}

impl Activator {
    pub fn new(root: HostRoot, multipathd: Config) -> Self {
        Self { root, multipathd }
    }

    fn registry(&self) -> Registry {
        Registry::new(&self.root)
    }

    fn wwids(&self) -> WwidsFile {
        WwidsFile::new(&self.root)
    }

    /// Takes the LUN's lock: every step on a LUN, and publishing its count, happens under it,
    /// so two calls on one LUN never interleave (and a count never outlives its map).
    pub fn lock(&self, scsiid: &str) -> Result<lock::Held, SrError> {
        lock::acquire(&self.root, scsiid, LOCK_WAIT)
            .map_err(|e| SrError::with(Code::LockErr, format!("LUN {scsiid}: {e}")))
    }

    /// Connects to multipathd, starting it once if it is not running, waiting while it
    /// starts up.
    pub fn connect(&self, scsiid: &str) -> Result<Multipathd, SrError> {
        let deadline = Instant::now() + DAEMON_WAIT;
        let mut started = false;
        loop {
            let attempt = Multipathd::connect(&self.multipathd).and_then(|mut d| {
                d.daemon_state()?;
                Ok(d)
            });
            match attempt {
                Ok(daemon) => return Ok(daemon),
                Err(MpError::NotRunning { .. }) if !started => {
                    started = true;
                    tracing::warn!("multipathd is not running; starting it");
                    let start = Program::new("systemctl").args(["start", "multipathd.service"]);
                    if let Err(e) = start.run(Duration::from_secs(60)) {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) if e.is_daemon_down() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(mp_error(scsiid, &e)),
            }
        }
    }

    /// Takes a LUN into use and returns the device to hand to xapi; the caller holds the
    /// LUN's [`Activator::lock`].
    pub fn activate(
        &self,
        _held: &lock::Held,
        lun: &LunUse,
        multipath: bool,
    ) -> Result<Active, SrError> {
        let registry = self.registry();
        let existing = registry
            .get(&lun.scsiid)
            .map_err(|e| io_error("reading the in-use registry", e))?;
        if let Some(record) = &existing
            && (record.sr_uuid != lun.sr_uuid || record.vdi_uuid != lun.vdi_uuid)
        {
            return Err(SrError::with(
                Code::VDIInUse,
                format!(
                    "LUN {} is in use on this host by VDI {} of SR {}",
                    lun.scsiid, record.vdi_uuid, record.sr_uuid
                ),
            ));
        }
        // A LUN attached before keeps the way it was attached until it is detached: the
        // multipath setting takes effect at the next plug, never under a running VM.
        let multipath = existing.as_ref().map_or(multipath, |r| r.multipath);
        let device = if multipath {
            devfs::inuse_device(&lun.scsiid)
        } else {
            devfs::by_id_device(&lun.scsiid)
        };
        let mut record = Record {
            scsiid: lun.scsiid.clone(),
            sr_uuid: lun.sr_uuid.clone(),
            vdi_uuid: lun.vdi_uuid.clone(),
            multipath,
            stage: Stage::Attaching,
            device,
        };
        if existing
            .as_ref()
            .is_some_and(|r| r.stage == Stage::Attached)
            && self.complete(&record)
        {
            tracing::info!("LUN {} already attached as {}", lun.scsiid, record.device);
            return Ok(Active {
                device: record.device,
                multipath,
            });
        }
        registry
            .put(&record)
            .map_err(|e| io_error("writing the in-use registry", e))?;
        if multipath {
            match self.activate_map(&lun.scsiid)? {
                true => {}
                false => {
                    // Blacklisted for multipath by the administrator: honour it.
                    record.multipath = false;
                    record.device = devfs::by_id_device(&lun.scsiid);
                }
            }
        }
        if !record.multipath && !devfs::wait_for(&self.root, &record.device, PATHS_WAIT) {
            return Err(SrError::with(
                Code::VDIUnavailable,
                format!(
                    "LUN {}: {} did not appear (no path to the LUN on this host?)",
                    lun.scsiid, record.device
                ),
            ));
        }
        record.stage = Stage::Attached;
        registry
            .put(&record)
            .map_err(|e| io_error("writing the in-use registry", e))?;
        tracing::info!("LUN {} attached as {}", lun.scsiid, record.device);
        Ok(Active {
            device: record.device,
            multipath: record.multipath,
        })
    }

    /// Whether everything an attached record promises is there.
    fn complete(&self, record: &Record) -> bool {
        if !record.multipath {
            return devfs::exists(&self.root, &record.device);
        }
        devfs::inuse_link_exists(&self.root, &record.scsiid)
            && devfs::exists(&self.root, &devfs::mapper_device(&record.scsiid))
            && self.wwids().contains(&record.scsiid).unwrap_or(false)
    }

    /// WWID, map, node, link. `Ok(false)` when multipathd says the LUN is blacklisted.
    fn activate_map(&self, scsiid: &str) -> Result<bool, SrError> {
        let mut daemon = self.connect(scsiid)?;
        self.wwids()
            .add(scsiid)
            .map_err(|e| io_error(&format!("listing {scsiid} in the wwids file"), e))?;
        if !self.build_map(&mut daemon, scsiid)? {
            tracing::warn!(
                "LUN {scsiid} is blacklisted in multipath.conf: using it without multipathing"
            );
            let _ = self.wwids().remove(scsiid);
            return Ok(false);
        }
        let node = devfs::mapper_device(scsiid);
        if !devfs::wait_for(&self.root, &node, NODE_WAIT) {
            return Err(SrError::with(
                Code::MultipathMapperPathMissing,
                format!(
                    "LUN {scsiid}: multipathd has the map but {node} did not appear within {} s \
                     (is udev running?)",
                    NODE_WAIT.as_secs()
                ),
            ));
        }
        devfs::link_inuse(&self.root, scsiid)
            .map_err(|e| io_error(&format!("linking {}", devfs::inuse_device(scsiid)), e))?;
        Ok(true)
    }

    /// Has multipathd build the LUN's map (see the module doc) and checks that it did.
    /// `Ok(false)` when multipathd says the LUN is blacklisted.
    fn build_map(&self, daemon: &mut Multipathd, scsiid: &str) -> Result<bool, SrError> {
        let exists = |daemon: &mut Multipathd| {
            daemon
                .map_snapshot(scsiid)
                .map(|m| m.is_some())
                .map_err(|e| mp_error(scsiid, &e))
        };
        if exists(daemon)? {
            return Ok(true);
        }
        // What each request answered, for an error that says what was tried.
        let mut answers: Vec<String> = Vec::new();
        let mut devices: Vec<String>;
        let deadline = Instant::now() + PATHS_WAIT;
        loop {
            devices = sysfs::scsi_disks(&self.root)
                .into_iter()
                .filter(|d| d.scsiid.as_deref() == Some(scsiid))
                .map(|d| d.name)
                .collect();
            let mut blacklisted = 0;
            for dev in &devices {
                match daemon.add_path(dev) {
                    Ok(()) => {}
                    Err(MpError::Blacklisted { .. }) => blacklisted += 1,
                    Err(e) if e.is_daemon_down() => return Err(mp_error(scsiid, &e)),
                    Err(e) => answers.push(e.to_string()),
                }
                if exists(daemon)? {
                    return Ok(true);
                }
            }
            if blacklisted > 0 && blacklisted == devices.len() {
                return Ok(false);
            }
            // The paths of a LUN just found may not have reached the host or multipathd.
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon.set_reply_timeout(ADD_MAP_WAIT);
        let added = daemon.add_map(scsiid);
        daemon.set_reply_timeout(self.multipathd.reply_timeout);
        match added {
            Ok(()) if exists(daemon)? => return Ok(true),
            Ok(()) => answers.push(format!("`add map {scsiid}` answered ok and built nothing")),
            Err(MpError::Blacklisted { .. }) => return Ok(false),
            Err(e) => answers.push(e.to_string()),
        }
        let paths = if devices.is_empty() {
            "no path to it on this host".to_string()
        } else {
            format!("paths {}", devices.join(", "))
        };
        Err(SrError::with(
            Code::MultipathGenericFailure,
            format!(
                "LUN {scsiid}: multipathd built no map ({paths}; {}); check `mpathutil paths`, \
                 the blacklist in multipath.conf, and multipathd's log",
                answers.join("; ")
            ),
        ))
    }

    /// Releases a LUN: removes its map unless it is open, then forgets it. Idempotent: a LUN
    /// not in use is released already. A refusal changes nothing. The caller holds the LUN's
    /// [`Activator::lock`].
    pub fn release(&self, _held: &lock::Held, scsiid: &str) -> Result<(), SrError> {
        let registry = self.registry();
        let record = registry
            .get(scsiid)
            .map_err(|e| io_error("reading the in-use registry", e))?;
        let wwids = self.wwids();
        let listed = wwids.contains(scsiid).unwrap_or(false);
        let linked = devfs::inuse_link_exists(&self.root, scsiid);
        let ours_multipath = record.as_ref().map_or(listed || linked, |r| r.multipath);
        if ours_multipath {
            // Ask multipathd first: if it cannot answer, nothing has changed yet.
            let mut daemon = self.connect(scsiid)?;
            let mapped = daemon
                .map_snapshot(scsiid)
                .map_err(|e| mp_error(scsiid, &e))?
                .is_some();
            devfs::unlink_inuse(&self.root, scsiid)
                .map_err(|e| io_error(&format!("unlinking {}", devfs::inuse_device(scsiid)), e))?;
            if let Err(e) = wwids.remove(scsiid) {
                self.restore(scsiid, false, linked);
                return Err(io_error(
                    &format!("unlisting {scsiid} from the wwids file"),
                    e,
                ));
            }
            let removed = if mapped {
                daemon.remove_map(scsiid)
            } else {
                Ok(())
            };
            let open = match removed {
                Ok(()) | Err(MpError::DeviceNotFound { .. }) => None,
                Err(MpError::MapInUse { .. }) => Some("multipathd: map or partition in use"),
                // Before 0.9.8 an open map gets a bare `fail`, as does a missing one.
                Err(MpError::Failed { .. }) => match daemon.map_snapshot(scsiid) {
                    Ok(None) => None,
                    Ok(Some(_)) => {
                        Some("multipathd refused to remove it (`fail`) and the map is still there")
                    }
                    Err(e) => {
                        self.restore(scsiid, listed, linked);
                        return Err(mp_error(scsiid, &e));
                    }
                },
                Err(e) => {
                    self.restore(scsiid, listed, linked);
                    return Err(mp_error(scsiid, &e));
                }
            };
            if let Some(why) = open {
                self.restore(scsiid, listed, linked);
                return Err(SrError::with(
                    Code::VDIInUse,
                    format!(
                        "the multipath map of LUN {scsiid} is open on this host ({why}); \
                         nothing was changed: stop what uses /dev/mapper/{scsiid} and detach again"
                    ),
                ));
            }
            if !devfs::wait_gone(
                &self.root,
                &devfs::mapper_device(scsiid),
                Duration::from_secs(10),
            ) {
                tracing::warn!(
                    "/dev/mapper/{scsiid} is still there 10 s after its map was removed"
                );
            }
        }
        registry
            .remove(scsiid)
            .map_err(|e| io_error("updating the in-use registry", e))?;
        if let Err(e) = Ledger::new(&self.root).forget(scsiid) {
            tracing::warn!("{e}");
        }
        tracing::info!("LUN {scsiid} released");
        Ok(())
    }

    /// Undoes an activation a killed call left half done: under the LUN's lock, and only if
    /// its record still says "attaching" (a call that holds the lock may finish it meanwhile).
    pub fn undo_unfinished(&self, scsiid: &str) -> Result<bool, SrError> {
        let held = self.lock(scsiid)?;
        let unfinished = self
            .registry()
            .get(scsiid)
            .map_err(|e| io_error("reading the in-use registry", e))?
            .is_some_and(|r| r.stage == Stage::Attaching);
        if unfinished {
            self.release(&held, scsiid)?;
        }
        Ok(unfinished)
    }

    /// Puts back what a refused release took away.
    fn restore(&self, scsiid: &str, listed: bool, linked: bool) {
        if listed && let Err(e) = self.wwids().add(scsiid) {
            tracing::error!("could not list {scsiid} in the wwids file again: {e}");
        }
        if linked && let Err(e) = devfs::link_inuse(&self.root, scsiid) {
            tracing::error!("could not relink {}: {e}", devfs::inuse_device(scsiid));
        }
    }

    /// The map of a LUN as multipathd sees it now (for the path counts).
    pub fn map(&self, scsiid: &str) -> Result<Option<Map>, SrError> {
        let mut daemon = self.connect(scsiid)?;
        daemon
            .map_snapshot(scsiid)
            .map_err(|e| mp_error(scsiid, &e))
    }

    /// The LUNs in use on this host for an SR.
    pub fn in_use_by(&self, sr_uuid: &str) -> Vec<Record> {
        self.registry()
            .all()
            .into_iter()
            .filter(|r| r.sr_uuid == sr_uuid)
            .collect()
    }
}
