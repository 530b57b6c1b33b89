//! The VDI commands. A VDI is a LUN (its location is the SCSIid).
//!
//! `vdi_attach` takes the LUN into use on this host (a multipath map when the SR was plugged
//! with multipathing, see [`crate::multipath::activation`]) and answers xapi's attach struct:
//! `params` is the device, `params_nbd` empty (no tapdisk: the VM gets the LUN). It then
//! publishes the LUN's `[active, max]` on this host's PBD. `vdi_detach` releases it and drops
//! the key. `vdi_generate_config` / `vdi_attach_from_config` are the HA statefile path: the
//! whole attach, multipath setting included, travels in the generated call, so it works at
//! boot without xapi.

use crate::drivers::claims::{self, OtherSrs};
use crate::drivers::luns::{self};
use crate::drivers::xapi::LunVdi;
use crate::drivers::{Ctx, SrType, iscsi, sr};
use crate::errors::{Code, SrError};
use crate::host::inuse::{Registry, Stage};
use crate::host::{attached, scheduler};
use crate::multipath::activation::LunUse;
use crate::multipath::counts::{self, PbdKeys};
use crate::smapi::call::StringMap;
use crate::smapi::response::{string_struct, structure};
use dxr::Value;

/// The LUN of the VDI of the call.
fn scsiid(ctx: &Ctx<'_>) -> Result<String, SrError> {
    let call = ctx.call;
    call.vdi_location
        .as_deref()
        .filter(|l| !l.is_empty())
        .or_else(|| call.vdi_sm_config.get("SCSIid").map(String::as_str))
        .map(str::to_string)
        .ok_or_else(|| {
            SrError::with(
                Code::MultipathDeviceNoScsiid,
                format!(
                    "{}: VDI {} has no location (its SCSIid)",
                    call.command,
                    call.vdi_uuid.as_deref().unwrap_or("?")
                ),
            )
        })
}

fn lun_use(ctx: &Ctx<'_>, scsiid: &str) -> Result<LunUse, SrError> {
    Ok(LunUse {
        scsiid: scsiid.to_string(),
        sr_uuid: ctx.sr_uuid()?.to_string(),
        vdi_uuid: ctx
            .call
            .vdi_uuid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| luns::vdi_uuid(scsiid)),
    })
}

/// The elevator of the LUN's disks, as stock sets it (see [`scheduler`]).
fn set_schedulers(ctx: &Ctx<'_>, plugged: &attached::Attached, scsiid: &str) {
    if let Some(lun) = sr::luns_of(ctx, plugged)
        .into_iter()
        .find(|l| l.scsiid == scsiid)
    {
        scheduler::set_paths(&ctx.root, scsiid, &lun.paths);
    }
}

/// xapi's attach struct.
fn attach_result(device: &str, vdi_uuid: &str) -> Value {
    let (page80, page83) = inquiry_pages(vdi_uuid);
    structure([
        ("params", Value::String(device.to_string())),
        ("params_nbd", Value::String(String::new())),
        (
            "xenstore_data",
            string_struct([
                ("vdi-uuid", vdi_uuid),
                ("scsi/0x12/0x80", &page80),
                ("scsi/0x12/0x83", &page83),
            ]),
        ),
    ])
}

/// The SCSI inquiry pages 0x80 (unit serial number) and 0x83 (device identification) a
/// guest's PV drivers answer for the disk, base64, exactly as stock sm's attach gives them
/// for every VDI, LUN-per-VDI ones included (`blktap2.VDI` with
/// `scsiutil.gen_synthetic_page_data`): made from the VDI uuid, vendor `XENSRC`, so a
/// Windows guest sees the same disk serials as under stock. Stock builds them as text and
/// encodes it UTF-8, so the bytes 0x80 and 0x83 become two bytes each; Rust strings are
/// UTF-8 too, which keeps those bytes identical.
fn inquiry_pages(vdi_uuid: &str) -> (String, String) {
    use base64::Engine as _;
    let serial: String = vdi_uuid.chars().take(16).collect();
    let page80 = format!("\u{0}\u{80}\u{0}\u{12}{serial}  ");
    let page83 = format!("\u{0}\u{83}\u{0}\u{31}\u{2}\u{1}\u{0}\u{2d}XENSRC  {vdi_uuid} ");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    (b64(&page80), b64(&page83))
}

/// Refuses a LUN that is not the SR's: another SR uses it, it is a disk of this server, or
/// dom0 holds it open (see [`claims`]). Other SRs are known only with a session.
fn check_ours(ctx: &Ctx<'_>, plugged: &attached::Attached, scsiid: &str) -> Result<(), SrError> {
    check_lun(ctx, plugged, scsiid, true)
}

/// `whole`: every rule; else only that dom0 does not hold it open — the generated
/// config's attach (HA statefile, at boot, no xapi) was vetted by the attach that made the
/// VDI usable, and what dom0 holds is the one fact that changes under it.
fn check_lun(
    ctx: &Ctx<'_>,
    plugged: &attached::Attached,
    scsiid: &str,
    whole: bool,
) -> Result<(), SrError> {
    if !whole {
        let paths: Vec<String> = sr::luns_of(ctx, plugged)
            .into_iter()
            .find(|l| l.scsiid == scsiid)
            .map(|l| l.paths)
            .unwrap_or_default();
        return match claims::held_open(ctx, scsiid, &paths) {
            Some(why) => Err(why.refusal(scsiid, "attached")),
            None => Ok(()),
        };
    }
    let others = match ctx.call.session_ref {
        Some(_) => Some(OtherSrs::read(ctx)?),
        None => None,
    };
    let seen = sr::luns_of(ctx, plugged)
        .into_iter()
        .find(|l| l.scsiid == scsiid);
    let why = match &seen {
        Some(lun) => claims::not_ours(ctx, lun, others.as_ref()),
        None => others.as_ref().and_then(|o| o.get(scsiid)).cloned(),
    };
    match why {
        Some(why) => Err(why.refusal(scsiid, "attached")),
        None => Ok(()),
    }
}

pub fn attach(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let plugged = ctx.attached()?;
    let scsiid = scsiid(ctx)?;
    let lun = lun_use(ctx, &scsiid)?;
    check_ours(ctx, &plugged, &scsiid)?;
    let held = ctx.activator.lock(&scsiid)?;
    let active = ctx.activator.activate(&held, &lun, plugged.multipath())?;
    set_schedulers(ctx, &plugged, &scsiid);
    if ctx.call.session_ref.is_some() && !agent_kicked(ctx, &format!("LUN {scsiid}"), false) {
        // The device is attached; a count xapi did not take must not fail the VM's start
        // (the agent publishes it again).
        if let Err(e) = publish(ctx, &scsiid, active.multipath) {
            tracing::warn!("LUN {scsiid} attached, but its path count was not published: {e}");
        }
    }
    Ok(attach_result(&active.device, &lun.vdi_uuid))
}

/// Where the path agent runs, it is the one writer of the counts: tell it to look now.
/// `false` (publish ourselves) when it does not answer within its short deadline. `what`
/// names what the counts are of, for the log ("LUN <SCSIid>", "SR <uuid>"). `resync` also
/// has it re-read this host's PBDs first (a plug, `xe sr-update`: someone else may have
/// changed a key it believes published).
pub(crate) fn agent_kicked(ctx: &Ctx<'_>, what: &str, resync: bool) -> bool {
    let asked = if resync {
        crate::agent::client::resync(&ctx.root)
    } else {
        crate::agent::client::kick(&ctx.root)
    };
    match asked {
        Ok(()) => {
            tracing::info!("{what}: the path agent publishes its count");
            true
        }
        Err(e) => {
            tracing::debug!("{what}: {e}; publishing the count ourselves");
            false
        }
    }
}

/// `mpath-<SCSIid>` (and `multipathed`) on this host's PBD.
fn publish(ctx: &Ctx<'_>, scsiid: &str, multipath: bool) -> Result<(), SrError> {
    if !multipath {
        return Ok(());
    }
    let Some(map) = ctx.activator.map(scsiid)? else {
        return Ok(());
    };
    let value = counts::value_of(&ctx.root, &map);
    tracing::info!("LUN {scsiid}: {value} paths ({})", map.describe());
    if let Some(mut keys) = PbdKeys::find(ctx.xapi()?, ctx.host_ref()?, ctx.sr_ref()?)? {
        keys.put(&counts::mpath_key(scsiid), &value)?;
        keys.put(counts::MULTIPATHED, "true")?;
    }
    Ok(())
}

pub fn detach(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let scsiid = scsiid(ctx)?;
    let held = ctx.activator.lock(&scsiid)?;
    ctx.activator.release(&held, &scsiid)?;
    if ctx.call.session_ref.is_some() && !agent_kicked(ctx, &format!("LUN {scsiid}"), false) {
        let unpublish = || -> Result<(), SrError> {
            if let Some(mut keys) = PbdKeys::find(ctx.xapi()?, ctx.host_ref()?, ctx.sr_ref()?)? {
                keys.remove(&counts::mpath_key(&scsiid))?;
            }
            Ok(())
        };
        if let Err(e) = unpublish() {
            tracing::warn!("LUN {scsiid} released, but its path count stays on the PBD: {e}");
        }
    }
    Ok(())
}

pub fn activate(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let scsiid = scsiid(ctx)?;
    match Registry::new(&ctx.root).get(&scsiid) {
        Ok(Some(record)) if record.stage == Stage::Attached => Ok(()),
        Ok(_) => Err(SrError::with(
            Code::VDIUnavailable,
            format!("LUN {scsiid} is not attached on this host: vdi_attach first"),
        )),
        Err(e) => Err(SrError::with(
            Code::SMGeneral,
            format!("reading the in-use registry: {e}"),
        )),
    }
}

pub fn epoch_begin(ctx: &Ctx<'_>) -> Result<(), SrError> {
    if ctx.call.vdi_on_boot.as_deref() == Some("reset") {
        return Err(SrError::with(
            Code::Unimplemented,
            "on-boot=reset needs a snapshot of the disk; a raw LUN has none",
        ));
    }
    Ok(())
}

/// `vdi_introduce` (`xe vdi-introduce`): the administrator claims a LUN. Its VDI (listed
/// unmanaged by the scans, or made now) becomes managed, so VMs may use it — unless the LUN
/// is not the SR's to give (see [`claims`]).
pub fn introduce(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let plugged = ctx.attached()?;
    let scsiid = ctx
        .call
        .vdi_sm_config
        .get("SCSIid")
        .cloned()
        .or_else(|| ctx.call.vdi_location.clone().filter(|l| !l.is_empty()))
        .ok_or_else(|| {
            SrError::with(
                Code::ConfigSCSIid,
                "vdi_introduce: give sm-config:SCSIid or the location",
            )
        })?;
    let others = OtherSrs::read(ctx)?;
    let seen = sr::luns_of(ctx, &plugged)
        .into_iter()
        .find(|l| l.scsiid == scsiid);
    let why = match &seen {
        Some(lun) => claims::not_ours(ctx, lun, Some(&others)),
        None => others.get(&scsiid).cloned(),
    };
    if let Some(why) = why {
        return Err(why.refusal(&scsiid, "claimed"));
    }
    let vdis = ctx.xapi()?.lun_vdis(ctx.sr_ref()?)?;
    let uuid = claim(ctx, &vdis, &scsiid, seen.as_ref())?;
    Ok(string_struct([
        ("uuid", uuid.as_str()),
        ("location", scsiid.as_str()),
    ]))
}

/// Makes a LUN's VDI managed (introducing it if the scans have not), and names it in the
/// SR's `sm_config:scsi-<SCSIid>` (XenCenter's LUN-per-VDI view); its uuid.
fn claim(
    ctx: &Ctx<'_>,
    vdis: &[LunVdi],
    scsiid: &str,
    seen: Option<&luns::Lun>,
) -> Result<String, SrError> {
    let uuid = make_managed(ctx, vdis, scsiid, seen)?;
    if let Err(e) = sr::lun_vdi_keys(ctx) {
        // The claim stands; the next scan writes the key.
        tracing::warn!("LUN {scsiid} claimed as VDI {uuid}, but the SR's sm-config was not: {e}");
    }
    Ok(uuid)
}

fn make_managed(
    ctx: &Ctx<'_>,
    vdis: &[LunVdi],
    scsiid: &str,
    seen: Option<&luns::Lun>,
) -> Result<String, SrError> {
    let xapi = ctx.xapi()?;
    let uuid = luns::vdi_uuid(scsiid);
    match vdis.iter().find(|v| v.uuid == uuid || v.location == scsiid) {
        Some(vdi) => {
            if !vdi.managed {
                tracing::info!("LUN {scsiid} claimed: VDI {} is now managed", vdi.uuid);
                xapi.set_vdi_managed(&vdi.vdi_ref, true)?;
            }
            if vdi.sm_config.contains_key(sr::MISSING_SCANS) {
                xapi.put_vdi_sm_config(&vdi.vdi_ref, sr::MISSING_SCANS, None)?;
            }
            Ok(vdi.uuid.clone())
        }
        None => {
            let lun = seen.ok_or_else(|| {
                SrError::with(
                    Code::ConfigSCSIid,
                    format!("no LUN {scsiid} is visible in this SR on this host"),
                )
            })?;
            sr::introduce(ctx, lun, true)
        }
    }
}

/// `vdi_create` (`xe vdi-create sr-uuid=… virtual-size=… sm-config:SCSIid=…`): claims a LUN
/// as stock LUN-per-VDI drivers do — the one `sm-config:SCSIid` names, else the smallest
/// unclaimed LUN of the SR at least the size asked — and gives it the name asked. Nothing
/// is written to the LUN.
pub fn create(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let plugged = ctx.attached()?;
    let arg = |i: usize| ctx.call.args.get(i).map(String::as_str).unwrap_or("");
    let size: u64 = arg(0).parse().unwrap_or(0);
    let (name_label, name_description) = (arg(1), arg(2));
    let xapi = ctx.xapi()?;
    let others = OtherSrs::read(ctx)?;
    let seen = sr::luns_of(ctx, &plugged);
    let vdis = xapi.lun_vdis(ctx.sr_ref()?)?;
    let claimed = |scsiid: &str| {
        vdis.iter()
            .find(|v| v.location == scsiid && v.managed)
            .map(|v| v.uuid.clone())
    };
    let lun = match ctx.call.vdi_sm_config.get("SCSIid") {
        Some(scsiid) => {
            let lun = seen
                .iter()
                .find(|l| l.scsiid == *scsiid)
                .cloned()
                .ok_or_else(|| {
                    SrError::with(
                        Code::ConfigSCSIid,
                        format!("no LUN {scsiid} is visible in this SR on this host"),
                    )
                })?;
            if let Some(why) = claims::not_ours(ctx, &lun, Some(&others)) {
                return Err(why.refusal(scsiid, "claimed"));
            }
            if let Some(vdi) = claimed(scsiid) {
                return Err(SrError::with(
                    Code::VDIInUse,
                    format!("LUN {scsiid} is already claimed, as VDI {vdi}"),
                ));
            }
            if lun.size_bytes < size {
                return Err(SrError::with(
                    Code::SRNoSpace,
                    format!(
                        "LUN {scsiid} has {} bytes, {size} were asked",
                        lun.size_bytes
                    ),
                ));
            }
            lun
        }
        None => {
            let (ours, _) = claims::screen(ctx, seen, Some(&others));
            ours.into_iter()
                .filter(|l| l.size_bytes >= size && claimed(&l.scsiid).is_none())
                .min_by_key(|l| (l.size_bytes, l.scsiid.clone()))
                .ok_or_else(|| {
                    SrError::with(
                        Code::SRNoSpace,
                        format!(
                            "no unclaimed LUN of {size} bytes or more in this SR; name one \
                             with sm-config:SCSIid"
                        ),
                    )
                })?
        }
    };
    let uuid = claim(ctx, &vdis, &lun.scsiid, Some(&lun))?;
    if !name_label.is_empty() || !name_description.is_empty() {
        let vdi = xapi
            .lun_vdis(ctx.sr_ref()?)?
            .into_iter()
            .find(|v| v.uuid == uuid);
        if let Some(vdi) = vdi {
            xapi.set_vdi_names(&vdi.vdi_ref, name_label, name_description)?;
        }
    }
    Ok(string_struct([
        ("uuid", uuid.as_str()),
        ("location", lun.scsiid.as_str()),
    ]))
}

/// The call `vdi_attach_from_config` will get: the SR's `device_config` with the multipath
/// setting, the initiator IQN and a plain CHAP password (from a secret) in it.
pub fn generate_config(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let setting = ctx.setting()?;
    let mut dconf: StringMap = ctx.call.device_config.clone();
    dconf.insert("multipathing".into(), setting.multipathing_value().into());
    dconf.insert("multipathhandle".into(), setting.handle.as_str().into());
    if ctx.sr_type == SrType::Iscsi {
        if !dconf.contains_key("localIQN")
            && let Some(iqn) = ctx.host_other_config()?.get("iscsi_iqn")
        {
            dconf.insert("localIQN".into(), iqn.clone());
        }
        if let Some(chap) = iscsi::Config::read(ctx)?.chap {
            dconf.remove("chappassword_secret");
            dconf.insert("chappassword".into(), chap.secret);
        }
    }
    let scsiid = scsiid(ctx)?;
    let text = |s: &str| Value::String(s.to_string());
    let members = structure([
        ("command", text("vdi_attach_from_config")),
        ("args", Value::Array(Vec::new())),
        (
            "device_config",
            Value::Struct(
                dconf
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        ),
        ("sr_uuid", text(ctx.sr_uuid()?)),
        ("vdi_uuid", text(ctx.call.vdi_uuid.as_deref().unwrap_or(""))),
        ("vdi_location", text(&scsiid)),
        ("host_ref", text(ctx.call.host_ref.as_deref().unwrap_or(""))),
    ]);
    let call = dxr::MethodCall {
        name: "vdi_attach_from_config".into(),
        params: vec![members],
    };
    call.to_xml()
        .map(Value::String)
        .map_err(|_| SrError::with(Code::SMGeneral, "could not write the generated config"))
}

/// The generated call: plug the SR as its config says (no xapi), then attach the LUN.
pub fn attach_from_config(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let sr_uuid = ctx.sr_uuid()?.to_string();
    let plugged = match attached::get(&ctx.root, &sr_uuid).ok().flatten() {
        Some(p) => p,
        None => sr::plug(ctx, &sr_uuid, ctx.setting()?)?,
    };
    let scsiid = scsiid(ctx)?;
    let lun = lun_use(ctx, &scsiid)?;
    check_lun(ctx, &plugged, &scsiid, false)?;
    let held = ctx.activator.lock(&scsiid)?;
    let active = ctx.activator.activate(&held, &lun, plugged.multipath())?;
    set_schedulers(ctx, &plugged, &scsiid);
    Ok(attach_result(&active.device, &lun.vdi_uuid))
}

pub fn detach_from_config(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let scsiid = scsiid(ctx)?;
    let held = ctx.activator.lock(&scsiid)?;
    ctx.activator.release(&held, &scsiid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inquiry_pages_are_stocks_bytes() {
        // What stock's python3 gives for this uuid (0x80 and 0x83 encoded as UTF-8).
        let (p80, p83) = inquiry_pages("3f2b8a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b");
        assert_eq!(p80, "AMKAABIzZjJiOGExYy01ZDZlLTRmICA=");
        assert_eq!(
            p83,
            "AMKDADECAQAtWEVOU1JDICAzZjJiOGExYy01ZDZlLTRmNzAtOGE5Yi0wYzFkMmUzZjRhNWIg"
        );
    }
}
