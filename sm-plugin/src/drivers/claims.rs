//! Whose LUN is it. An SR of ours shares the host, the fabric and often the target with
//! other SRs; a LUN is this SR's to list, introduce or attach only when nothing else has it:
//!
//! - **another SR uses it**: another SR's PBD names it (`device_config:SCSIid`, as a stock
//!   LVMoISCSI/LVMoHBA SR does), another SR's `sm_config` names it (`SCSIid`, or a
//!   `scsi-<SCSIid>` key, XenCenter's LUN-per-VDI convention), or another SR has a VDI of
//!   it that is claimed (managed) or in a VM (VBDs) — stock `hba`/`iscsi` SRs and our own;
//! - **dom0 holds it open**: a path or its partitions have holders (an LVM volume group, a
//!   RAID set, a multipath map someone else made — our own map of the LUN is looked
//!   through), or it carries dom0's root;
//! - **it is the server's own disk**: not reached over FC, SAS or iSCSI (a local RAID
//!   volume, SATA, virtio), see [`crate::host::sysfs::Reach`].
//!
//! Writing to any of these from a VM destroys someone else's data, so they are never shown.

use crate::drivers::Ctx;
use crate::drivers::luns::Lun;
use crate::errors::{Code, SrError};
use crate::host::sysfs::{self, Reach};
use std::collections::BTreeMap;
use std::fmt;

/// Why a LUN is not this SR's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// Another SR uses it: its uuid, name and how.
    OtherSr {
        sr_uuid: String,
        name: String,
        how: String,
    },
    /// dom0 has it open: the holders (or `/` for the root disk).
    HeldOpen { holders: Vec<String> },
    /// A disk of the server, not shared storage.
    Local,
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherSr { sr_uuid, name, how } => {
                write!(f, "SR {sr_uuid} ({name}) uses it ({how})")
            }
            Self::HeldOpen { holders } => {
                write!(f, "dom0 holds it open ({})", holders.join(", "))
            }
            Self::Local => write!(
                f,
                "it is a disk of this server (not reached over FC, SAS or iSCSI)"
            ),
        }
    }
}

impl NotOurs {
    /// The refusal of a VDI command on such a LUN.
    pub fn refusal(&self, scsiid: &str, what: &str) -> SrError {
        let code = match self {
            Self::OtherSr { .. } => Code::SRInUse,
            Self::HeldOpen { .. } => Code::VDIInUse,
            Self::Local => Code::InvalidDev,
        };
        SrError::with(code, format!("LUN {scsiid} cannot be {what}: {self}"))
    }
}

/// The LUNs other SRs of the pool use, by SCSIid.
#[derive(Debug, Clone, Default)]
pub struct OtherSrs {
    used: BTreeMap<String, NotOurs>,
}

impl OtherSrs {
    /// Reads the pool: every other SR's PBDs and `sm_config`, and the VDIs of those that
    /// hold LUNs as VDIs.
    pub fn read(ctx: &Ctx<'_>) -> Result<Self, SrError> {
        let xapi = ctx.xapi()?;
        // A probe has no SR yet: every SR is another.
        let me = ctx.call.sr_ref.as_deref().unwrap_or("");
        let srs = xapi.all_srs()?;
        let mut used = BTreeMap::new();
        let mut note = |scsiid: &str, sr_uuid: &str, name: &str, how: String| {
            for id in scsiid.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                used.entry(id.to_string())
                    .or_insert_with(|| NotOurs::OtherSr {
                        sr_uuid: sr_uuid.to_string(),
                        name: name.to_string(),
                        how: how.clone(),
                    });
            }
        };
        for (pbd_ref, pbd) in xapi.all_pbds()? {
            if pbd.sr.as_str() == me {
                continue;
            }
            let Some(id) = pbd.device_config.get("SCSIid") else {
                continue;
            };
            let (uuid, name) = srs
                .get(&pbd.sr)
                .map(|r| (r.uuid.as_str(), r.name_label.as_str()))
                .unwrap_or((pbd.sr.as_str(), "?"));
            note(
                id,
                uuid,
                name,
                format!("device-config:SCSIid of PBD {}", pbd_ref.as_str()),
            );
        }
        for (sr_ref, sr) in &srs {
            if sr_ref.as_str() == me {
                continue;
            }
            if let Some(id) = sr.sm_config.get("SCSIid") {
                note(id, &sr.uuid, &sr.name_label, "sm-config:SCSIid".into());
            }
            for key in sr.sm_config.keys() {
                if let Some(id) = key.strip_prefix("scsi-") {
                    note(id, &sr.uuid, &sr.name_label, format!("sm-config:{key}"));
                }
            }
            if !holds_luns_as_vdis(&sr.sr_type) {
                continue;
            }
            for vdi in xapi.lun_vdis(sr_ref.as_str())? {
                if !vdi.managed && vdi.vbds == 0 {
                    // Listed there, not claimed: a LUN both SRs may show until one claims it.
                    continue;
                }
                if let Some(id) = vdi.sm_config.get("SCSIid") {
                    note(
                        id,
                        &sr.uuid,
                        &sr.name_label,
                        format!("its VDI {} is claimed", vdi.uuid),
                    );
                }
            }
        }
        Ok(Self { used })
    }

    pub fn get(&self, scsiid: &str) -> Option<&NotOurs> {
        self.used.get(scsiid)
    }
}

/// SR types whose VDIs are whole LUNs (`sm_config:SCSIid`): ours and stock's LUN-per-VDI.
fn holds_luns_as_vdis(sr_type: &str) -> bool {
    matches!(sr_type, "lunoiscsi" | "lunohba" | "hba" | "iscsi")
}

/// Whether dom0 holds a LUN open: the holders of its paths (and their partitions), looking
/// through the LUN's own multipath map and the partition maps kpartx puts on it (device
/// mapper uuids `mpath-<SCSIid>`, `part<N>-mpath-<SCSIid>`) to what holds those.
pub fn held_open(ctx: &Ctx<'_>, scsiid: &str, paths: &[String]) -> Option<NotOurs> {
    let own_map = format!("mpath-{scsiid}");
    let is_own = |holder: &str| {
        sysfs::dm_uuid(&ctx.root, holder).is_some_and(|uuid| {
            uuid == own_map
                || uuid
                    .strip_prefix("part")
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(n, map)| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && map == own_map
                    })
        })
    };
    let mut holders = Vec::new();
    let mut todo: Vec<String> = paths.to_vec();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(device) = todo.pop() {
        if !seen.insert(device.clone()) {
            continue;
        }
        for holder in sysfs::holders(&ctx.root, &device) {
            if is_own(&holder) {
                todo.push(holder);
            } else if !holders.contains(&holder) {
                holders.push(holder);
            }
        }
    }
    (!holders.is_empty()).then_some(NotOurs::HeldOpen { holders })
}

/// Why a LUN seen on this host is not this SR's, if it is not.
pub fn not_ours(ctx: &Ctx<'_>, lun: &Lun, others: Option<&OtherSrs>) -> Option<NotOurs> {
    if lun.reach == Reach::Local {
        return Some(NotOurs::Local);
    }
    if let Some(used) = others.and_then(|o| o.get(&lun.scsiid)) {
        return Some(used.clone());
    }
    held_open(ctx, &lun.scsiid, &lun.paths)
}

/// Splits the LUNs seen into this SR's and the others (with why), logging each left out.
pub fn screen(
    ctx: &Ctx<'_>,
    luns: Vec<Lun>,
    others: Option<&OtherSrs>,
) -> (Vec<Lun>, Vec<(Lun, NotOurs)>) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for lun in luns {
        match not_ours(ctx, &lun, others) {
            None => ours.push(lun),
            Some(why) => {
                tracing::info!("LUN {} is left out: {why}", lun.scsiid);
                theirs.push((lun, why));
            }
        }
    }
    (ours, theirs)
}
