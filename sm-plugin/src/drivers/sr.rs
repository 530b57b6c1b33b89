//! The SR commands, common to both types.
//!
//! - `sr_attach` (pbd-plug): resolve this host's multipath setting, reach the LUNs (iSCSI
//!   logins or an HBA rescan), remember the plug (`/run/sm-rs/sr/<uuid>`), publish
//!   `multipathed`, `iscsi_sessions` and SR `multipathable`, drop `mpath-*` keys no LUN in
//!   use here backs (left by a crash or a reboot: the in-use registry is on tmpfs), finish
//!   or undo activations a killed call left half done, and on the SR master bring the VDIs
//!   in step with the LUNs. No map is made here: a LUN gets one when a VDI of it is
//!   attached.
//!
//! The VDIs (`sr_scan`, and the master's `sr_attach`): every LUN that is this SR's
//! ([`claims`]) is listed as a VDI, unmanaged, as stock LUN-per-VDI lists LUNs: hidden from
//! VMs until the administrator claims it (`xe vdi-introduce`, [`crate::drivers::vdi`]). A
//! VDI is forgotten only when nothing can lose by it: never while it has VBDs or is
//! attached on the master, and only after its LUN was missing from
//! [`FORGET_AFTER_SCANS`] scans in a row (the master may miss a LUN another host sees:
//! per-host masking, a session down), unless another SR has since claimed an unclaimed one.
//! - `sr_detach` (pbd-unplug): refuse (SRInUse) while a LUN of the SR is attached on this
//!   host; otherwise log out (refcounted per target) and drop the PBD keys.
//! - `sr_probe`, `sr_create`, `sr_delete`, `sr_scan`, `sr_update`.

use crate::drivers::claims::{self, NotOurs, OtherSrs};
use crate::drivers::luns::{self, Lun, xml_escape};
use crate::drivers::xapi::{LunVdi, Xapi};
use crate::drivers::{Ctx, SrType, hba, iscsi, vdi};
use crate::errors::{Code, SrError};
use crate::host::attached::{self, Attached};
use crate::host::inuse::{Registry, Stage};
use crate::host::srref;
use crate::host::wwids::WwidsFile;
use crate::multipath::counts::{self, PbdKeys};
use crate::multipath::setting::Setting;
use crate::publish::{self, Blocking};
use dxr::Value;
use std::collections::{BTreeMap, BTreeSet};
use xenapi::Ref;

fn state_error(e: std::io::Error) -> SrError {
    SrError::with(
        Code::SMGeneral,
        format!("keeping the SR's plug state under /run/sm-rs: {e}"),
    )
}

/// Scans in a row a LUN must be missing from before its VDI is forgotten.
pub const FORGET_AFTER_SCANS: u32 = 3;

/// VDI `sm_config` key: how many scans in a row have missed the LUN.
pub const MISSING_SCANS: &str = "sm-rs-missing-scans";

/// The LUNs an SR reaches on this host, whoever's they are.
pub fn luns_of(ctx: &Ctx<'_>, plugged: &Attached) -> Vec<Lun> {
    let filter = luns::scsiid_filter(ctx.call.config("SCSIid"));
    match ctx.sr_type {
        SrType::Iscsi => iscsi::luns(ctx, &plugged.targets, &filter),
        SrType::Hba => hba::luns(ctx, &filter),
    }
}

pub fn attach(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let sr_uuid = ctx.sr_uuid()?.to_string();
    let setting = ctx.setting()?;
    tracing::info!(
        "plugging SR {sr_uuid} with multipath handle {} (from {:?})",
        setting.handle.as_str(),
        setting.source
    );
    let plugged = plug(ctx, &sr_uuid, setting)?;
    repair(ctx, &sr_uuid);
    if ctx.call.session_ref.is_some() {
        if plugged.multipath() {
            release_leftovers(ctx, &plugged);
        }
        // The agent, where it runs, is the one writer of the counts; the plug's own keys
        // (`multipathed`, `iscsi_sessions`, `multipathable`) are ours either way.
        let agent = vdi::agent_kicked(ctx, &format!("SR {sr_uuid}"), true);
        publish_plug(ctx, &plugged, agent)?;
        if ctx.is_master()
            && let Err(e) = sync_vdis(ctx, &plugged)
        {
            // As stock after_master_attach: the plug stands, the scan is retried by the next.
            tracing::warn!("scan after plugging SR {sr_uuid} failed: {e}");
        }
    }
    Ok(())
}

/// Reaches the LUNs and records the plug.
pub fn plug(ctx: &Ctx<'_>, sr_uuid: &str, setting: Setting) -> Result<Attached, SrError> {
    let targets = match ctx.sr_type {
        SrType::Iscsi => {
            let config = iscsi::Config::read(ctx)?;
            iscsi::attach(ctx, &config, setting, sr_uuid)?
        }
        SrType::Hba => {
            hba::rescan(ctx)?;
            Vec::new()
        }
    };
    let plugged = Attached {
        sr_uuid: sr_uuid.to_string(),
        sr_type: ctx.sr_type.as_str().to_string(),
        handle: setting.handle.as_str().to_string(),
        targets,
    };
    attached::put(&ctx.root, &plugged).map_err(state_error)?;
    Ok(plugged)
}

/// Undoes activations a killed call left half done (a record still "attaching": xapi was
/// told the attach failed, so nobody uses the LUN).
fn repair(ctx: &Ctx<'_>, sr_uuid: &str) {
    for record in ctx.activator.in_use_by(sr_uuid) {
        if record.stage == Stage::Attaching {
            match ctx.activator.undo_unfinished(&record.scsiid) {
                Ok(true) => tracing::info!("undid the unfinished attach of LUN {}", record.scsiid),
                Ok(false) => {}
                Err(e) => tracing::warn!("could not undo the attach of LUN {}: {e}", record.scsiid),
            }
        }
    }
}

/// After a crash a WWID stays listed in the wwids file, so multipathd may have built its map
/// at boot (or builds it on the next path event) for a LUN nobody uses: the LUNs of this SR
/// listed there but not in use on this host are released as `vdi_detach` releases them.
/// Only this SR's LUNs (those no other SR of the pool uses, not held open by dom0), each
/// under its lock and only while still not in use; a map that is open is left as it is.
fn release_leftovers(ctx: &Ctx<'_>, plugged: &Attached) {
    let wwids = WwidsFile::new(&ctx.root);
    let listed: Vec<Lun> = luns_of(ctx, plugged)
        .into_iter()
        .filter(|l| wwids.contains(&l.scsiid).unwrap_or(false))
        .collect();
    if listed.is_empty() {
        return;
    }
    let others = match OtherSrs::read(ctx) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("not releasing leftover multipath listings: {e}");
            return;
        }
    };
    let registry = Registry::new(&ctx.root);
    let (ours, _) = claims::screen(ctx, listed, Some(&others));
    for lun in ours {
        let id = &lun.scsiid;
        let held = match ctx.activator.lock(id) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("LUN {id}: listed in the wwids file but not in use: {e}");
                continue;
            }
        };
        // Re-read under the lock: an attach may have taken it meanwhile.
        if !matches!(registry.get(id), Ok(None)) {
            continue;
        }
        tracing::info!(
            "LUN {id} is listed in the wwids file but not in use on this host (left by a \
             crash): releasing it"
        );
        if let Err(e) = ctx.activator.release(&held, id) {
            tracing::warn!("LUN {id}: leftover listing kept: {e}");
        }
    }
}

/// The PBD and SR keys of a plug. `agent`: the path agent runs and keeps the `mpath-*`
/// keys, so leave them to it.
fn publish_plug(ctx: &Ctx<'_>, plugged: &Attached, agent: bool) -> Result<(), SrError> {
    let xapi = ctx.xapi()?;
    let sr_ref = ctx.sr_ref()?;
    if let Some(mut keys) = PbdKeys::find(xapi, ctx.host_ref()?, sr_ref)? {
        if plugged.multipath() && agent {
            keys.put(counts::MULTIPATHED, "true")?;
        } else if plugged.multipath() {
            keys.put(counts::MULTIPATHED, "true")?;
            let backed: BTreeSet<String> = ctx
                .activator
                .in_use_by(&plugged.sr_uuid)
                .into_iter()
                .filter(|r| r.multipath && r.stage == Stage::Attached)
                .map(|r| counts::mpath_key(&r.scsiid))
                .collect();
            for key in keys.mpath_keys() {
                if !backed.contains(&key) {
                    tracing::info!(
                        "dropping {key} from the PBD: no LUN of it is in use on this host"
                    );
                    keys.remove(&key)?;
                }
            }
        } else {
            keys.remove(counts::MULTIPATHED)?;
            for key in keys.mpath_keys() {
                keys.remove(&key)?;
            }
        }
        if ctx.sr_type == SrType::Iscsi {
            publish_sessions(ctx, &mut keys, plugged)?;
        }
    }
    let sm_config = xapi.sr_sm_config(sr_ref)?;
    for key in [counts::MULTIPATHABLE, publish::LUN_PER_VDI] {
        if sm_config.get(key).map(String::as_str) != Some("true") {
            xapi.put_sr_sm_config(sr_ref, key, "true")?;
        }
    }
    Ok(())
}

pub fn detach(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let sr_uuid = ctx.sr_uuid()?.to_string();
    unplug(ctx, &sr_uuid)?;
    if ctx.call.session_ref.is_some() {
        let xapi = ctx.xapi()?;
        if let Some(mut keys) = PbdKeys::find(xapi, ctx.host_ref()?, ctx.sr_ref()?)? {
            keys.remove(counts::MULTIPATHED)?;
            keys.remove(counts::ISCSI_SESSIONS)?;
            for key in keys.mpath_keys() {
                keys.remove(&key)?;
            }
        }
    }
    Ok(())
}

/// Refuses while a LUN is attached; otherwise lets go of the transport and the plug state.
pub fn unplug(ctx: &Ctx<'_>, sr_uuid: &str) -> Result<(), SrError> {
    repair(ctx, sr_uuid);
    let busy: Vec<String> = ctx
        .activator
        .in_use_by(sr_uuid)
        .into_iter()
        .map(|r| format!("{} (VDI {})", r.scsiid, r.vdi_uuid))
        .collect();
    if !busy.is_empty() {
        return Err(SrError::with(
            Code::SRInUse,
            format!(
                "SR {sr_uuid} has {} LUN(s) attached on this host: {}; detach their VDIs first",
                busy.len(),
                busy.join(", ")
            ),
        ));
    }
    let plugged = attached::get(&ctx.root, sr_uuid).map_err(state_error)?;
    if ctx.sr_type == SrType::Iscsi {
        // The targets this plug logged in to, or, if the state is lost, every target that
        // still counts this SR as a user.
        let targets = match &plugged {
            Some(p) => p.targets.clone(),
            None => ctx
                .call
                .config("targetIQN")
                .filter(|t| *t != "*")
                .map(|t| vec![t.to_string()])
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    srref::users(&ctx.root, t).is_ok_and(|u| u.iter().any(|s| s == sr_uuid))
                })
                .collect(),
        };
        iscsi::detach(ctx, &targets, sr_uuid)?;
    }
    attached::remove(&ctx.root, sr_uuid).map_err(state_error)?;
    tracing::info!("SR {sr_uuid} unplugged");
    Ok(())
}

pub fn probe(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let setting = ctx.setting()?;
    let filter = luns::scsiid_filter(ctx.call.config("SCSIid"));
    let seen = match ctx.sr_type {
        SrType::Iscsi => iscsi::probe(ctx, setting)?,
        SrType::Hba => {
            hba::rescan(ctx)?;
            hba::luns(ctx, &filter)
        }
    };
    let others = match ctx.call.session_ref {
        Some(_) => Some(OtherSrs::read(ctx)?),
        None => None,
    };
    let (found, _) = claims::screen(ctx, seen, others.as_ref());
    if filter.is_empty() {
        let root = match ctx.sr_type {
            SrType::Iscsi => "iscsi-target",
            SrType::Hba => "Devlist",
        };
        eprint!("{}", luns::luns_xml(root, &found));
        return Err(SrError::with(
            Code::ConfigSCSIid,
            format!(
                "{} LUN(s) found (listed on stderr); an SR of this type takes all of them, or \
                 those named in device-config:SCSIid",
                found.len()
            ),
        ));
    }
    Ok(Value::String(srlist(ctx)?))
}

/// The SRs of this type that use the same LUNs or target (`<SRlist>`).
fn srlist(ctx: &Ctx<'_>) -> Result<String, SrError> {
    let mut xml = String::from("<?xml version=\"1.0\" ?>\n<SRlist>\n");
    let portals = StoragePortals::read(ctx)?;
    for (sr_ref, record) in ctx.xapi()?.all_srs()? {
        if record.sr_type != ctx.sr_type.as_str()
            || !same_storage(ctx, &record.sm_config, portals.of(&sr_ref))
        {
            continue;
        }
        xml.push_str(&format!(
            "\t<SR>\n\t\t<UUID>{}</UUID>\n",
            xml_escape(&record.uuid)
        ));
        for key in ["target", "targetIQN"] {
            if let Some(v) = record.sm_config.get(key) {
                xml.push_str(&format!("\t\t<{key}>{}</{key}>\n", xml_escape(v)));
            }
        }
        xml.push_str("\t</SR>\n");
    }
    xml.push_str("</SRlist>\n");
    Ok(xml)
}

/// The portal addresses each iSCSI SR names: its `sm_config:target` and the
/// `device_config:target` lists of its PBDs.
struct StoragePortals(BTreeMap<String, BTreeSet<String>>);

impl StoragePortals {
    fn read(ctx: &Ctx<'_>) -> Result<Self, SrError> {
        let mut by_sr: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if ctx.sr_type == SrType::Iscsi {
            for (_, pbd) in ctx.xapi()?.all_pbds()? {
                if let Some(targets) = pbd.device_config.get("target") {
                    by_sr
                        .entry(pbd.sr.as_str().to_string())
                        .or_default()
                        .extend(portal_addresses(targets));
                }
            }
        }
        Ok(Self(by_sr))
    }

    fn of<T>(&self, sr: &Ref<T>) -> Option<&BTreeSet<String>> {
        self.0.get(sr.as_str())
    }
}

fn portal_addresses(targets: &str) -> impl Iterator<Item = String> + '_ {
    targets
        .split(',')
        .filter_map(|t| crate::host::iscsiadm::Portal::parse(t, 3260))
        .map(|p| p.address)
}

/// Whether an existing SR (its `sm_config`, and the portals its PBDs name) is the storage
/// this call names. iSCSI: the same target IQN (as stock: an IQN names one target in the
/// world); for `targetIQN=*`, which names every target behind a portal, the same IQN and a
/// portal both name, so wildcard SRs on different arrays are different storage.
fn same_storage(
    ctx: &Ctx<'_>,
    sm_config: &BTreeMap<String, String>,
    their_portals: Option<&BTreeSet<String>>,
) -> bool {
    match ctx.sr_type {
        SrType::Iscsi => {
            let iqn = ctx.call.config("targetIQN");
            if sm_config.get("targetIQN").map(String::as_str) != iqn {
                return false;
            }
            if iqn != Some("*") {
                return true;
            }
            let theirs: BTreeSet<&str> = sm_config
                .get("target")
                .map(String::as_str)
                .into_iter()
                .chain(their_portals.into_iter().flatten().map(String::as_str))
                .collect();
            ctx.call
                .config("target")
                .is_some_and(|t| portal_addresses(t).any(|a| theirs.contains(a.as_str())))
        }
        SrType::Hba => {
            sm_config.get("SCSIid").map(String::as_str).unwrap_or("")
                == ctx.call.config("SCSIid").unwrap_or("")
        }
    }
}

pub fn create(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let sr_ref = ctx.sr_ref()?;
    let xapi = ctx.xapi()?;
    let portals = StoragePortals::read(ctx)?;
    for (other, record) in xapi.all_srs()? {
        if other.as_str() != sr_ref
            && record.sr_type == ctx.sr_type.as_str()
            && same_storage(ctx, &record.sm_config, portals.of(&other))
        {
            return Err(SrError::with(
                Code::SRInUse,
                format!(
                    "SR {} ({}) already uses this storage",
                    record.uuid, record.name_label
                ),
            ));
        }
    }
    // Check the storage answers before the SR exists; xapi plugs every PBD next.
    let mut sm_config: Vec<(&str, String)> = vec![
        ("disktype", "Raw".into()),
        (counts::MULTIPATHABLE, "true".into()),
        (publish::LUN_PER_VDI, "true".into()),
    ];
    match ctx.sr_type {
        SrType::Iscsi => {
            let config = iscsi::Config::read(ctx)?;
            let probe_user = srref::call_user("create");
            let targets = iscsi::attach(ctx, &config, ctx.setting()?, &probe_user)?;
            iscsi::detach(ctx, &targets, &probe_user)?;
            sm_config.push(("datatype", "ISCSI".into()));
            sm_config.push(("target", config.portals[0].address.clone()));
            sm_config.push(("targetIQN", config.target_iqn.clone().unwrap_or_default()));
        }
        SrType::Hba => {
            hba::rescan(ctx)?;
            sm_config.push(("datatype", "HBA".into()));
            if let Some(id) = ctx.call.config("SCSIid") {
                sm_config.push(("SCSIid", id.to_string()));
            }
        }
    }
    for (key, value) in sm_config {
        xapi.put_sr_sm_config(sr_ref, key, &value)?;
    }
    Ok(())
}

pub fn delete(ctx: &Ctx<'_>) -> Result<(), SrError> {
    // The LUNs stay on the array: deleting the SR only lets go of them on this host.
    let sr_uuid = ctx.sr_uuid()?.to_string();
    unplug(ctx, &sr_uuid)
}

/// `sr_update` (xe sr-update): brings this host's path counts up to date for every LUN of
/// the SR in use here, and drops the keys of LUNs no longer in use. The path agent does the
/// same on every path event; this is the administrator's way to ask for it now.
pub fn update(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let plugged = ctx.attached()?;
    if ctx.call.session_ref.is_none() {
        return Ok(());
    }
    let agent = vdi::agent_kicked(ctx, &format!("SR {}", plugged.sr_uuid), true);
    let Some(mut keys) = PbdKeys::find(ctx.xapi()?, ctx.host_ref()?, ctx.sr_ref()?)? else {
        return Ok(());
    };
    let mut current = BTreeSet::new();
    if agent {
        // The agent reads and publishes every count of this host now; the plug's keys
        // stay ours.
        if plugged.multipath() {
            keys.put(counts::MULTIPATHED, "true")?;
        }
    } else if plugged.multipath() {
        for record in ctx.activator.in_use_by(&plugged.sr_uuid) {
            if !record.multipath || record.stage != Stage::Attached {
                continue;
            }
            if let Some(map) = ctx.activator.map(&record.scsiid)? {
                let key = counts::mpath_key(&record.scsiid);
                keys.put(&key, &counts::value_of(&ctx.root, &map))?;
                current.insert(key);
            }
        }
        keys.put(counts::MULTIPATHED, "true")?;
    }
    for key in keys.mpath_keys() {
        if !agent && !current.contains(&key) {
            keys.remove(&key)?;
        }
    }
    if ctx.sr_type == SrType::Iscsi {
        publish_sessions(ctx, &mut keys, &plugged)?;
    }
    Ok(())
}

/// `iscsi_sessions`, or none where one number would mislead (see
/// [`iscsi::sessions_to_publish`]).
fn publish_sessions<X: Blocking>(
    ctx: &Ctx<'_>,
    keys: &mut PbdKeys<'_, X>,
    plugged: &Attached,
) -> Result<(), SrError> {
    match iscsi::sessions_to_publish(ctx, &plugged.targets) {
        Some(n) => keys.put(counts::ISCSI_SESSIONS, &n.to_string()),
        None => keys.remove(counts::ISCSI_SESSIONS),
    }
}

pub fn scan(ctx: &Ctx<'_>) -> Result<(), SrError> {
    if !ctx.is_master() {
        return Err(SrError::with(
            Code::SRScan,
            "sr_scan must run on the SR master (device_config:SRmaster is not true)",
        ));
    }
    let plugged = ctx.attached()?;
    match ctx.sr_type {
        SrType::Hba => hba::rescan(ctx)?,
        // LUNs mapped to the host since the plug appear only when the sessions' SCSI
        // hosts scan for them (stock `BaseISCSI.scan` → `refresh`).
        SrType::Iscsi => iscsi::rescan(ctx, &plugged.targets),
    }
    sync_vdis(ctx, &plugged)
}

/// Brings the SR's VDIs in step with its LUNs: an unmanaged VDI for each LUN of the SR
/// (`VDI.db_introduce`); for the VDIs whose LUN the master no longer finds (or that is not
/// the SR's any more), a count of the scans that missed it, and `VDI.db_forget` only when
/// forgetting loses nothing (see the module's words), with the reason in the log.
fn sync_vdis(ctx: &Ctx<'_>, plugged: &Attached) -> Result<(), SrError> {
    let xapi = ctx.xapi()?;
    let sr_ref = ctx.sr_ref()?;
    let others = OtherSrs::read(ctx)?;
    let (ours, theirs) = claims::screen(ctx, luns_of(ctx, plugged), Some(&others));
    let existing = xapi.lun_vdis(sr_ref)?;
    // A VDI is its LUN: its location is the SCSIid (whatever uuid an older version gave it).
    let known: BTreeMap<&str, &LunVdi> =
        existing.iter().map(|v| (v.location.as_str(), v)).collect();
    publish_sizes(ctx, &ours, &known)?;
    let mut wanted = BTreeSet::new();
    for lun in &ours {
        match known.get(lun.scsiid.as_str()) {
            None => {
                introduce(ctx, lun, false)?;
            }
            Some(vdi) if vdi.sm_config.contains_key(MISSING_SCANS) => {
                tracing::info!("LUN {} is back: VDI {} stays", lun.scsiid, vdi.uuid);
                xapi.put_vdi_sm_config(&vdi.vdi_ref, MISSING_SCANS, None)?;
            }
            Some(_) => {}
        }
        wanted.insert(lun.scsiid.clone());
    }
    let why_not: BTreeMap<String, NotOurs> = theirs
        .into_iter()
        .map(|(lun, why)| (lun.scsiid, why))
        .collect();
    let attached_here: BTreeSet<String> = ctx
        .activator
        .in_use_by(&plugged.sr_uuid)
        .into_iter()
        .map(|r| r.scsiid)
        .collect();
    for vdi in existing.iter().filter(|v| !wanted.contains(&v.location)) {
        let why = why_not.get(&vdi.location);
        let reason = why.map_or_else(
            || "the SR master does not see it".to_string(),
            ToString::to_string,
        );
        if vdi.vbds > 0 {
            tracing::warn!(
                "LUN {} of VDI {}: {reason}; kept, it has {} VBD(s)",
                vdi.location,
                vdi.uuid,
                vdi.vbds
            );
            continue;
        }
        if attached_here.contains(&vdi.location) {
            tracing::warn!(
                "LUN {} of VDI {}: {reason}; kept, it is attached on this host",
                vdi.location,
                vdi.uuid
            );
            continue;
        }
        if !vdi.managed && matches!(why, Some(NotOurs::OtherSr { .. })) {
            tracing::info!(
                "LUN {}: {reason}; forgetting its unclaimed VDI {} here",
                vdi.location,
                vdi.uuid
            );
            xapi.forget_vdi(&Ref::new(&vdi.vdi_ref))?;
            continue;
        }
        let missed = vdi
            .sm_config
            .get(MISSING_SCANS)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        if missed < FORGET_AFTER_SCANS {
            tracing::info!(
                "LUN {} of VDI {}: {reason} (scan {missed} of {FORGET_AFTER_SCANS} before it \
                 is forgotten)",
                vdi.location,
                vdi.uuid
            );
            xapi.put_vdi_sm_config(&vdi.vdi_ref, MISSING_SCANS, Some(&missed.to_string()))?;
        } else {
            tracing::info!(
                "LUN {} of VDI {}: {reason} in {missed} scans in a row, and the VDI has no VBDs: \
                 forgetting it",
                vdi.location,
                vdi.uuid
            );
            xapi.forget_vdi(&Ref::new(&vdi.vdi_ref))?;
        }
    }
    lun_vdi_keys(ctx)
}

/// Brings the SR's `sm_config` `scsi-<SCSIid>` keys in step with its claimed VDIs (see
/// [`publish`]): one per managed VDI, naming its uuid; none for a LUN only listed (unclaimed,
/// so another SR may still claim it) or for a VDI forgotten.
pub fn lun_vdi_keys(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let xapi = ctx.xapi()?;
    let sr_ref = ctx.sr_ref()?;
    let wanted: BTreeMap<String, String> = xapi
        .lun_vdis(sr_ref)?
        .into_iter()
        .filter(|v| v.managed && !v.location.is_empty())
        .map(|v| (publish::lun_vdi_key(&v.location), v.uuid))
        .collect();
    let sm_config = xapi.sr_sm_config(sr_ref)?;
    for (key, value) in &sm_config {
        if key.starts_with(publish::LUN_VDI_PREFIX) && !wanted.contains_key(key) {
            tracing::info!("SR sm-config: dropping {key} (no claimed VDI of that LUN)");
            remove_sm_config(xapi, sr_ref, key)?;
        } else if let Some(w) = wanted.get(key).filter(|w| *w != value) {
            tracing::info!("SR sm-config: {key} names VDI {w}, not {value}");
            xapi.put_sr_sm_config(sr_ref, key, w)?;
        }
    }
    for (key, uuid) in wanted {
        if !sm_config.contains_key(&key) {
            xapi.put_sr_sm_config(sr_ref, &key, &uuid)?;
        }
    }
    Ok(())
}

fn remove_sm_config(xapi: &Xapi, sr: &str, key: &str) -> Result<(), SrError> {
    xapi.block(xenapi::api::sr::remove_from_sm_config(
        xapi.session(),
        &Ref::new(sr),
        key,
    ))
    .map_err(|e| {
        SrError::with(
            Code::APIFailure,
            format!("SR.remove_from_sm_config {key}: {e}"),
        )
    })
}

/// The SR's size, as stock LUN-per-VDI SRs set it at a scan (XenCenter shows it): the
/// LUNs that are the SR's. Used (and allocated): the LUNs claimed as VDIs. Stock adds the
/// claimed LUNs to the size once more, so a fully claimed SR shows 200 % used; we do not.
fn publish_sizes(
    ctx: &Ctx<'_>,
    ours: &[Lun],
    known: &BTreeMap<&str, &LunVdi>,
) -> Result<(), SrError> {
    let bytes = |lun: &Lun| i64::try_from(lun.size_bytes).unwrap_or(i64::MAX);
    let size = ours.iter().map(bytes).fold(0i64, i64::saturating_add);
    let used = ours
        .iter()
        .filter(|l| known.get(l.scsiid.as_str()).is_some_and(|v| v.managed))
        .map(bytes)
        .fold(0i64, i64::saturating_add);
    ctx.xapi()?.set_sr_sizes(ctx.sr_ref()?, size, used, used)
}

/// The VDI record of a LUN: `managed` when claimed by the administrator, else only listed.
pub fn introduce(ctx: &Ctx<'_>, lun: &Lun, managed: bool) -> Result<String, SrError> {
    let uuid = luns::vdi_uuid(&lun.scsiid);
    let sm_config: BTreeMap<String, String> = [
        ("SCSIid", lun.scsiid.clone()),
        ("LUNid", lun.lun_id.to_string()),
        ("backend-kind", "vbd".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let label = format!("LUN {} ({} {})", lun.lun_id, lun.vendor, lun.model);
    let description = format!("SCSIid {}, {} bytes", lun.scsiid, lun.size_bytes);
    tracing::info!(
        "introducing VDI {uuid} for LUN {} ({})",
        lun.scsiid,
        if managed { "claimed" } else { "unclaimed" }
    );
    ctx.xapi()?.introduce_vdi(
        &uuid,
        &label,
        &description,
        ctx.sr_ref()?,
        &lun.scsiid,
        &sm_config,
        i64::try_from(lun.size_bytes).unwrap_or(i64::MAX),
        managed,
    )?;
    Ok(uuid)
}
