//! Publishing path health into xapi: the keys, and the XenAPI calls that set them. Both the
//! driver (at attach and detach, when no agent runs) and the path agent stand on this, so the
//! contract is written once (`xapi-facts.md` §6, DESIGN.md rule 6):
//!
//! - PBD `other_config:mpath-<SCSIid>` = `[active, max]`;
//! - PBD `other_config:multipathed` = `true` while the PBD is plugged with multipathing;
//! - PBD `other_config:iscsi_sessions` = the sessions to the SR's targets (iSCSI);
//! - host `other_config:mpath-boot` = `[active, max]` of the map dom0 boots from, with
//!   host `multipathed` = `true` (XenCenter's "Multipath boot", mpathalert's `root=true`);
//! - SR `sm_config:multipathable` = `true`;
//! - SR `sm_config:LUNperVDI` = `true`, and `scsi-<SCSIid>` = the VDI's uuid for every LUN
//!   claimed as a VDI: XenCenter (`SR.LunPerVDI`, `GetMultiPathStatusLunPerVDI`) then shows
//!   each `mpath-<SCSIid>` under the running VM and the VDI it belongs to, instead of the
//!   first `mpath*` key of each PBD as if the SR were one LUN. Stock's RawHBA SR kept the same
//!   keys (added at scan, removed at vdi_delete), and stock `util.test_SCSIid` reads a
//!   `scsi-<SCSIid>` key as "this SR uses the LUN".
//!
//! Calls are async, on a [`Session`]; the driver runs them through [`Blocking`].

use std::collections::BTreeMap;
use std::future::Future;
use xenapi::api::pbd::{self, PbdRecord};
use xenapi::refs::{Host, Pbd, Sr};
use xenapi::{Ref, Session};

pub const MULTIPATHED: &str = "multipathed";
/// host `other_config`: `[active, max]` of the multipath map dom0 boots from.
pub const MPATH_BOOT: &str = "mpath-boot";
pub const ISCSI_SESSIONS: &str = "iscsi_sessions";
pub const MULTIPATHABLE: &str = "multipathable";
/// SR `sm_config`: the SR holds one LUN per VDI (XenCenter matches any key containing it).
pub const LUN_PER_VDI: &str = "LUNperVDI";
/// SR `sm_config` keys `scsi-<SCSIid>` = the uuid of the LUN's VDI.
pub const LUN_VDI_PREFIX: &str = "scsi-";

pub fn lun_vdi_key(scsiid: &str) -> String {
    format!("{LUN_VDI_PREFIX}{scsiid}")
}
/// Every path-count key starts so (XenCenter looks for `mpath`, mpathalert for `mpath-`).
pub const MPATH_PREFIX: &str = "mpath-";

pub fn mpath_key(scsiid: &str) -> String {
    format!("{MPATH_PREFIX}{scsiid}")
}

/// The SCSIid of an `mpath-<SCSIid>` key.
pub fn scsiid_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(MPATH_PREFIX).filter(|id| !id.is_empty())
}

/// The LUNs an SR names, in stock mpathcount's order (`get_SCSIidlist`, `sm-facts.md` §4.5):
/// `sm_config:SCSIid` (a comma-separated list), `device_config:SCSIid`,
/// `device_config:ScsiId` with a `provider`, then every `sm_config:scsi-<SCSIid>` key. Our
/// LUN-per-VDI SRs are found by the in-use registry instead; this is what covering stock
/// SR types takes.
pub fn scsiids_named(
    sm_config: &BTreeMap<String, String>,
    device_config: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    if let Some(list) = sm_config.get("SCSIid") {
        ids.extend(list.split(',').map(str::trim).map(str::to_string));
    } else if let Some(id) = device_config.get("SCSIid") {
        ids.push(id.clone());
    } else if let Some(id) = device_config
        .get("ScsiId")
        .filter(|_| device_config.contains_key("provider"))
    {
        ids.push(id.clone());
    }
    ids.extend(
        sm_config
            .keys()
            .filter_map(|k| k.strip_prefix("scsi-"))
            .map(str::to_string),
    );
    ids.retain(|id| !id.is_empty());
    ids.dedup();
    ids
}

/// The PBD of an SR on a host, with its record.
pub async fn pbd_of(
    session: &Session,
    host: &Ref<Host>,
    sr: &Ref<Sr>,
) -> Result<Option<(Ref<Pbd>, PbdRecord)>, xenapi::Error> {
    let records = pbd::get_all_records_where(session, &pbd::of_host_and_sr(host, sr)).await?;
    Ok(records.into_iter().next())
}

/// Sets one `other_config` key of a PBD. A key known to be absent takes one call (add); a
/// writer that added it meanwhile is answered by remove-then-add (`add_to_other_config`
/// refuses an existing key, even with the same value), which is also what a present key
/// takes: at most two calls.
pub async fn set_key(
    session: &Session,
    pbd: &Ref<Pbd>,
    key: &str,
    value: &str,
    known_absent: bool,
) -> Result<(), xenapi::Error> {
    if known_absent {
        match pbd::add_to_other_config(session, pbd, key, value).await {
            Err(e) if e.is_failure("MAP_DUPLICATE_KEY") => {}
            other => return other,
        }
    }
    pbd::put_other_config(session, pbd, key, value).await
}

/// Removes one `other_config` key of a PBD (absent already is fine: xapi says nothing).
pub async fn remove_key(session: &Session, pbd: &Ref<Pbd>, key: &str) -> Result<(), xenapi::Error> {
    pbd::remove_from_other_config(session, pbd, key).await
}

/// Sets one `other_config` key of a host, as [`set_key`] does for a PBD.
pub async fn set_host_key(
    session: &Session,
    host: &Ref<Host>,
    key: &str,
    value: &str,
    known_absent: bool,
) -> Result<(), xenapi::Error> {
    if known_absent {
        match xenapi::api::host::add_to_other_config(session, host, key, value).await {
            Err(e) if e.is_failure("MAP_DUPLICATE_KEY") => {}
            other => return other,
        }
    }
    xenapi::api::host::put_other_config(session, host, key, value).await
}

/// A session whose calls a synchronous caller (the driver) can wait for.
pub trait Blocking {
    fn session(&self) -> &Session;
    fn block<F: Future>(&self, f: F) -> F::Output;
}
