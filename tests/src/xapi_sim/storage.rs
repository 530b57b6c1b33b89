//! The operations that run a driver, in the order xapi runs them: `PBD.plug` (`sr_attach`),
//! `PBD.unplug` (`sr_detach`), `SR.create` (`sr_create`, then a plug of every PBD),
//! `SR.probe`, `SR.scan`, and a dom0 VBD plug of a VDI (`vdi_attach` + `vdi_activate`).
//! `SRmaster` is added to `device_config` on every call; each call gets a fresh session
//! marked for its SR, destroyed when the driver returns.

use xenapi::{Failure, Value};

use crate::xapi_sim::db::{self, Attachment, Class, Db, PbdRow, SrRow, StringMap};
use crate::xapi_sim::sm_exec::{self, HostEnv, Shape, SmCall};
use crate::xapi_sim::{XapiSim, api};

fn handle_invalid(class: &str, r: &str) -> Failure {
    Failure::new("HANDLE_INVALID", [class, r])
}

fn host_env(sim: &XapiSim, db: &Db, host: &str) -> HostEnv {
    let row = db.hosts.get(host);
    HostEnv {
        host_ref: host.to_owned(),
        host_uuid: row.map(|h| h.uuid.clone()).unwrap_or_default(),
        host_name: row.map(|h| h.name_label.clone()).unwrap_or_default(),
        xapi: sim.xapi_address(),
    }
}

/// The common part of an SR-scoped call on `host`.
fn sr_call(
    db: &Db,
    host: &str,
    sr: &str,
    command: &str,
    args: Vec<String>,
) -> Result<SmCall, Failure> {
    let row = db.srs.get(sr).ok_or_else(|| handle_invalid("SR", sr))?;
    let srmaster = db.sr_master(sr)? == host;
    let mut device_config = db
        .pbds
        .values()
        .find(|p| p.host == host && p.sr == sr)
        .map(|p| p.device_config.clone())
        .unwrap_or_default();
    device_config.insert("SRmaster".into(), srmaster.to_string());
    Ok(SmCall {
        host_ref: host.to_owned(),
        command: command.to_owned(),
        args,
        device_config,
        sr_ref: Some(sr.to_owned()),
        sr_uuid: Some(row.uuid.clone()),
        ..SmCall::default()
    })
}

/// One driver run with a fresh SM session (when the call needs one).
async fn run(
    sim: &XapiSim,
    sr_type: &str,
    env: &HostEnv,
    mut call: SmCall,
    sr: Option<&str>,
    shape: Shape,
) -> Result<Value, Failure> {
    let drivers = &sim.inner.drivers;
    register(sim, sr_type, env).await?;
    let session = sim.modify(|db| api::new_session(db, &env.host_ref, api::SM_USER, "SM", sr));
    call.session_ref = Some(session.clone());
    let result = drivers.run(sr_type, env, &call, shape).await;
    sim.modify(|db| db.sessions.remove(&session));
    result
}

/// The driver's SM record, made when xapi first learns of the driver (at its start; here at
/// the first use), from `sr_get_driver_info`.
async fn register(
    sim: &XapiSim,
    sr_type: &str,
    env: &HostEnv,
) -> Result<sm_exec::DriverInfo, Failure> {
    let drivers = &sim.inner.drivers;
    let info = drivers.driver_info(sr_type, env).await?;
    if sim.db().sm_of(sr_type).is_none() {
        let driver_filename = drivers
            .executable(sr_type)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        sim.modify(|db| {
            db.register_sm(db::SmRow {
                sm_type: sr_type.to_owned(),
                name_label: info.name.clone(),
                required_api_version: info.required_api_version.clone(),
                capabilities: info.capabilities.clone(),
                driver_filename,
                ..db::SmRow::default()
            })
        });
    }
    Ok(info)
}

pub(crate) async fn pbd_plug(sim: &XapiSim, pbd: &str) -> Result<(), Failure> {
    let (row, sr_row) = pbd_and_sr(sim, pbd)?;
    if row.currently_attached {
        return Ok(());
    }
    let lock = sim.inner.drivers.host_lock(&row.host);
    let _serialised = lock.lock().await;
    let (call, env) = {
        let db = sim.db();
        if !sr_row.shared
            && let Some(other) = db
                .pbds
                .values()
                .find(|p| p.sr == row.sr && p.host != row.host && p.currently_attached)
        {
            return Err(Failure::new(
                "SR_NOT_SHARABLE",
                [row.sr.as_str(), other.host.as_str()],
            ));
        }
        (
            sr_call(&db, &row.host, &row.sr, "sr_attach", vec![])?,
            host_env(sim, &db, &row.host),
        )
    };
    run(sim, &sr_row.sr_type, &env, call, Some(&row.sr), Shape::Nil).await?;
    sim.modify(|db| set_attached(db, pbd, true));
    Ok(())
}

pub(crate) async fn pbd_unplug(sim: &XapiSim, pbd: &str) -> Result<(), Failure> {
    let (row, sr_row) = pbd_and_sr(sim, pbd)?;
    if !row.currently_attached {
        return Ok(());
    }
    let (call, env) = {
        let db = sim.db();
        let in_use = db.attachments.keys().find_map(|key| {
            let (vdi, host) = key.split_once('/')?;
            (host == row.host && db.vdis.get(vdi).is_some_and(|v| v.sr == row.sr))
                .then(|| vdi.to_owned())
        });
        if let Some(vdi) = in_use {
            return Err(Failure::new("VDI_IN_USE", [vdi.as_str(), "unplug"]));
        }
        (
            sr_call(&db, &row.host, &row.sr, "sr_detach", vec![])?,
            host_env(sim, &db, &row.host),
        )
    };
    let lock = sim.inner.drivers.host_lock(&row.host);
    let _serialised = lock.lock().await;
    run(sim, &sr_row.sr_type, &env, call, Some(&row.sr), Shape::Nil).await?;
    sim.modify(|db| set_attached(db, pbd, false));
    Ok(())
}

fn pbd_and_sr(sim: &XapiSim, pbd: &str) -> Result<(PbdRow, SrRow), Failure> {
    let db = sim.db();
    let row = db
        .pbds
        .get(pbd)
        .cloned()
        .ok_or_else(|| handle_invalid("PBD", pbd))?;
    let sr = db
        .srs
        .get(&row.sr)
        .cloned()
        .ok_or_else(|| handle_invalid("SR", &row.sr))?;
    Ok((row, sr))
}

fn set_attached(db: &mut Db, pbd: &str, attached: bool) {
    if let Some(p) = db.pbds.get_mut(pbd) {
        p.currently_attached = attached;
        db.touch(Class::Pbd, pbd);
    }
}

/// What `SR.create` takes after the session.
pub(crate) struct NewSr {
    pub host: String,
    pub device_config: StringMap,
    pub physical_size: i64,
    pub name_label: String,
    pub name_description: String,
    pub sr_type: String,
    pub content_type: String,
    pub shared: bool,
    pub sm_config: StringMap,
}

pub(crate) async fn sr_create(sim: &XapiSim, new: NewSr) -> Result<String, Failure> {
    let env = {
        let db = sim.db();
        if !db.hosts.contains_key(&new.host) {
            return Err(handle_invalid("host", &new.host));
        }
        host_env(sim, &db, &new.host)
    };
    sim.inner.drivers.driver_info(&new.sr_type, &env).await?;
    let hosts = if new.shared {
        sim.hosts()
    } else {
        vec![new.host.clone()]
    };
    let (sr, uuid, pbds) = sim.modify(|db| {
        let uuid = db::new_uuid();
        let row = SrRow {
            uuid: uuid.clone(),
            name_label: new.name_label.clone(),
            name_description: new.name_description.clone(),
            sr_type: new.sr_type.clone(),
            content_type: new.content_type.clone(),
            shared: new.shared,
            physical_size: new.physical_size,
            sm_config: new.sm_config.clone(),
            ..SrRow::default()
        };
        let (sr, pbds) = db.insert_sr(row, &hosts, &new.device_config);
        (sr, uuid, pbds)
    });
    let mut device_config = new.device_config.clone();
    device_config.insert("SRmaster".into(), "true".into());
    let call = SmCall {
        host_ref: new.host.clone(),
        command: "sr_create".into(),
        args: vec![new.physical_size.to_string()],
        device_config,
        sr_ref: Some(sr.clone()),
        sr_uuid: Some(uuid),
        ..SmCall::default()
    };
    let created = run(sim, &new.sr_type, &env, call, Some(&sr), Shape::Nil).await;
    if let Err(f) = created {
        // A failed create leaves nothing behind.
        sim.modify(|db| {
            for pbd in &pbds {
                db.pbds.remove(pbd);
                db.deleted(Class::Pbd, pbd);
            }
            db.srs.remove(&sr);
            db.deleted(Class::Sr, &sr);
        });
        return Err(f);
    }
    // xapi plugs every PBD of the new SR; a plug that fails is logged and left unplugged.
    for pbd in &pbds {
        if let Err(f) = pbd_plug(sim, pbd).await {
            tracing::warn!("xapi-sim: SR.create could not plug PBD {pbd}: {f}");
        }
    }
    Ok(sr)
}

pub(crate) async fn sr_probe(
    sim: &XapiSim,
    host: &str,
    device_config: StringMap,
    sr_type: &str,
    sm_config: StringMap,
) -> Result<String, Failure> {
    let env = {
        let db = sim.db();
        if !db.hosts.contains_key(host) {
            return Err(handle_invalid("host", host));
        }
        host_env(sim, &db, host)
    };
    let info = sim.inner.drivers.driver_info(sr_type, &env).await?;
    if !info.has("SR_PROBE") {
        return Err(Failure::new(
            "SR_OPERATION_NOT_SUPPORTED",
            ["OpaqueRef:NULL"],
        ));
    }
    let mut device_config = device_config;
    device_config.insert("SRmaster".into(), "true".into());
    let call = SmCall {
        host_ref: host.to_owned(),
        command: "sr_probe".into(),
        device_config,
        sr_sm_config: Some(sm_config),
        ..SmCall::default()
    };
    let lock = sim.inner.drivers.host_lock(host);
    let _serialised = lock.lock().await;
    match run(sim, sr_type, &env, call, None, Shape::String).await? {
        Value::String(s) => Ok(s),
        _ => Ok(String::new()),
    }
}

pub(crate) async fn sr_scan(sim: &XapiSim, sr: &str) -> Result<(), Failure> {
    sr_master_call(sim, sr, "sr_scan").await
}

/// `SR.update`: xapi runs `sr_update` on the SR master, as it does `sr_scan`.
pub(crate) async fn sr_update(sim: &XapiSim, sr: &str) -> Result<(), Failure> {
    sr_master_call(sim, sr, "sr_update").await
}

async fn sr_master_call(sim: &XapiSim, sr: &str, command: &str) -> Result<(), Failure> {
    let (call, env, sr_type) = {
        let db = sim.db();
        let row = db.srs.get(sr).ok_or_else(|| handle_invalid("SR", sr))?;
        let master = db.sr_master(sr)?;
        let attached = db
            .pbds
            .values()
            .any(|p| p.sr == sr && p.host == master && p.currently_attached);
        if !attached {
            return Err(Failure::new("SR_NOT_ATTACHED", [sr]));
        }
        (
            sr_call(&db, &master, sr, command, vec![])?,
            host_env(sim, &db, &master),
            row.sr_type.clone(),
        )
    };
    run(sim, &sr_type, &env, call, Some(sr), Shape::Nil)
        .await
        .map(drop)
}

/// A VDI call on `host`: the SR call plus the VDI's members.
fn vdi_call(
    db: &Db,
    host: &str,
    vdi: &str,
    command: &str,
    args: Vec<String>,
) -> Result<(SmCall, String), Failure> {
    let row = db.vdis.get(vdi).ok_or_else(|| handle_invalid("VDI", vdi))?;
    let attached = db
        .pbds
        .values()
        .any(|p| p.sr == row.sr && p.host == host && p.currently_attached);
    if !attached {
        return Err(Failure::new("SR_NOT_ATTACHED", [row.sr.as_str()]));
    }
    let mut call = sr_call(db, host, &row.sr, command, args)?;
    call.vdi_ref = Some(vdi.to_owned());
    call.vdi_location = Some(row.location.clone());
    call.vdi_uuid = Some(row.uuid.clone());
    call.vdi_on_boot = Some("persist".into());
    call.vdi_allow_caching = Some("false".into());
    let sr_type = db
        .srs
        .get(&row.sr)
        .map(|s| s.sr_type.clone())
        .unwrap_or_default();
    Ok((call, sr_type))
}

pub(crate) async fn vdi_attach(
    sim: &XapiSim,
    host: &str,
    vdi: &str,
    writable: bool,
) -> Result<StringMap, Failure> {
    let key = format!("{vdi}/{host}");
    if let Some(existing) = sim.db().attachments.get(&key) {
        return Ok(existing.result.clone());
    }
    let mode = writable.to_string();
    let (call, sr_type, env, sr) = {
        let db = sim.db();
        // VBD.create refuses a VDI the SR has not handed over (CA-26514).
        if db.vdis.get(vdi).is_some_and(|v| !v.managed) {
            return Err(Failure::new("VDI_NOT_MANAGED", [vdi]));
        }
        let (call, sr_type) = vdi_call(&db, host, vdi, "vdi_attach", vec![mode.clone()])?;
        let sr = call.sr_ref.clone().unwrap_or_default();
        (call, sr_type, host_env(sim, &db, host), sr)
    };
    let info = sim.inner.drivers.driver_info(&sr_type, &env).await?;
    let result = sm_exec::attach_result(
        &run(sim, &sr_type, &env, call.clone(), Some(&sr), Shape::Attach).await?,
    );
    let active = info.has("VDI_ACTIVATE");
    if active {
        let activate = SmCall {
            command: "vdi_activate".into(),
            args: vec![mode],
            ..call.clone()
        };
        let activated = run(sim, &sr_type, &env, activate, Some(&sr), Shape::Nil).await;
        if let Err(f) = activated {
            let detach = SmCall {
                command: "vdi_detach".into(),
                args: vec![],
                ..call
            };
            let _ = run(sim, &sr_type, &env, detach, Some(&sr), Shape::Nil).await;
            return Err(f);
        }
    }
    sim.modify(|db| {
        db.attachments.insert(
            key,
            Attachment {
                writable,
                active,
                result: result.clone(),
            },
        );
        // dom0's VBD of the plug.
        if let Some(dom0) = db.control_domain(host).map(str::to_owned) {
            db.insert_vbd(&dom0, vdi, true);
        }
        db.touch(Class::Vdi, vdi);
    });
    Ok(result)
}

pub(crate) async fn vdi_detach(sim: &XapiSim, host: &str, vdi: &str) -> Result<(), Failure> {
    let key = format!("{vdi}/{host}");
    let Some(attachment) = sim.db().attachments.get(&key).cloned() else {
        return Ok(());
    };
    let (call, sr_type, env, sr) = {
        let db = sim.db();
        let (call, sr_type) = vdi_call(&db, host, vdi, "vdi_deactivate", vec![])?;
        let sr = call.sr_ref.clone().unwrap_or_default();
        (call, sr_type, host_env(sim, &db, host), sr)
    };
    let info = sim.inner.drivers.driver_info(&sr_type, &env).await?;
    if attachment.active && info.has("VDI_DEACTIVATE") {
        run(sim, &sr_type, &env, call.clone(), Some(&sr), Shape::Nil).await?;
        sim.modify(|db| {
            if let Some(a) = db.attachments.get_mut(&key) {
                a.active = false;
            }
        });
    }
    let detach = SmCall {
        command: "vdi_detach".into(),
        ..call
    };
    run(sim, &sr_type, &env, detach, Some(&sr), Shape::Nil).await?;
    sim.modify(|db| {
        db.attachments.remove(&key);
        let dom0 = db.control_domain(host).map(str::to_owned);
        let vbd = db
            .vbds
            .iter()
            .find(|(_, b)| Some(&b.vm) == dom0.as_ref() && b.vdi == vdi)
            .map(|(r, _)| r.clone());
        if let Some(vbd) = vbd {
            db.vbds.remove(&vbd);
            db.deleted(Class::Vbd, &vbd);
        }
        db.touch(Class::Vdi, vdi);
    });
    Ok(())
}

/// `VDI.create` (`xe vdi-create`): the SR master's driver runs `vdi_create` with the size,
/// names and flags as arguments and `vdi_sm_config`, answers `{uuid, location}`, and xapi
/// takes the VDI the driver made (or handed over) by that uuid and sets its own fields.
pub(crate) async fn vdi_create(sim: &XapiSim, row: db::VdiRow) -> Result<String, Failure> {
    let (call, env, sr_type) = {
        let db = sim.db();
        let sr_row = db
            .srs
            .get(&row.sr)
            .ok_or_else(|| handle_invalid("SR", &row.sr))?;
        let master = db.sr_master(&row.sr)?;
        let args = vec![
            row.virtual_size.to_string(),
            row.name_label.clone(),
            row.name_description.clone(),
            db::NULL_REF.to_owned(),
            "false".into(),
            "19700101T00:00:00Z".into(),
            db::NULL_REF.to_owned(),
            row.read_only.to_string(),
        ];
        let mut call = sr_call(&db, &master, &row.sr, "vdi_create", args)?;
        call.vdi_sm_config = Some(row.sm_config.clone());
        call.vdi_type = Some(row.vdi_type.clone());
        (call, host_env(sim, &db, &master), sr_row.sr_type.clone())
    };
    let info = sim.inner.drivers.driver_info(&sr_type, &env).await?;
    if !info.has("VDI_CREATE") {
        return Err(Failure::new(
            "SR_OPERATION_NOT_SUPPORTED",
            [row.sr.as_str()],
        ));
    }
    let sr = row.sr.clone();
    let answer = run(sim, &sr_type, &env, call, Some(&sr), Shape::Any).await?;
    let uuid = answered_uuid(&answer).ok_or_else(|| {
        Failure::new(
            "SR_BACKEND_FAILURE",
            ["", "vdi_create answered no uuid", ""],
        )
    })?;
    take_vdi(sim, &uuid, |v| {
        v.other_config = row.other_config;
        v.xenstore_data = row.xenstore_data;
        v.sharable = row.sharable;
    })
}

/// The `uuid` of a driver's `{uuid, location}` answer.
fn answered_uuid(answer: &Value) -> Option<String> {
    answer
        .as_struct()
        .and_then(|m| m.get("uuid"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The VDI a driver made or handed over, found by its uuid, with xapi's own fields set.
fn take_vdi(
    sim: &XapiSim,
    uuid: &str,
    set: impl FnOnce(&mut db::VdiRow),
) -> Result<String, Failure> {
    sim.modify(|db| {
        let vdi = db
            .by_uuid(Class::Vdi, uuid)
            .ok_or_else(|| Failure::new("UUID_INVALID", ["VDI", uuid]))?;
        if let Some(v) = db.vdis.get_mut(&vdi) {
            set(v);
        }
        db.touch(Class::Vdi, &vdi);
        Ok(vdi)
    })
}

/// `VDI.introduce` (`xe vdi-introduce`): the SR master's driver runs `vdi_introduce` with
/// `new_uuid`, `vdi_location` and `vdi_sm_config`, answers `{uuid, location}`, and xapi
/// looks the VDI up by that uuid (the driver made or updated the record), then sets the
/// fields of the call that belong to xapi.
pub(crate) async fn vdi_introduce(sim: &XapiSim, row: db::VdiRow) -> Result<String, Failure> {
    let (call, env, sr_type) = {
        let db = sim.db();
        let sr_row = db
            .srs
            .get(&row.sr)
            .ok_or_else(|| handle_invalid("SR", &row.sr))?;
        let master = db.sr_master(&row.sr)?;
        let plugged = db
            .pbds
            .values()
            .any(|p| p.sr == row.sr && p.host == master && p.currently_attached);
        if !plugged {
            return Err(Failure::new("SR_NO_PBDS", [row.sr.as_str()]));
        }
        let mut call = sr_call(&db, &master, &row.sr, "vdi_introduce", vec![])?;
        call.new_uuid = Some(row.uuid.clone());
        call.vdi_location = Some(row.location.clone());
        call.vdi_sm_config = Some(row.sm_config.clone());
        (call, host_env(sim, &db, &master), sr_row.sr_type.clone())
    };
    let sr = row.sr.clone();
    // storage_smapiv1's introduce turns any failure into Vdi_does_not_exist, which reaches
    // the client as an internal error: the driver's reason is only in its log.
    let lost = || {
        Failure::new(
            "INTERNAL_ERROR",
            [format!(
                "Storage_interface.Storage_error(Vdi_does_not_exist(\"{}\"))",
                row.location
            )],
        )
    };
    let answer = run(sim, &sr_type, &env, call, Some(&sr), Shape::Any)
        .await
        .map_err(|_| lost())?;
    let uuid = answered_uuid(&answer).ok_or_else(lost)?;
    take_vdi(sim, &uuid, |v| {
        v.other_config = row.other_config;
        v.xenstore_data = row.xenstore_data;
        v.sharable = row.sharable;
        v.vdi_type = row.vdi_type;
        if !row.name_label.is_empty() {
            v.name_label = row.name_label;
        }
        if !row.name_description.is_empty() {
            v.name_description = row.name_description;
        }
    })
}
