//! XenAPI dispatch, in the order xapi checks a call: the method must exist
//! (`MESSAGE_METHOD_UNKNOWN`), the parameter count must fit
//! (`MESSAGE_PARAMETER_COUNT_MISMATCH`), the session must be live (`SESSION_INVALID`), each
//! parameter must have its type (`FIELD_TYPE_ERROR`), refs must exist (`HANDLE_INVALID`).
//! Every class gets xapi's generated messages (`get_record`, `get_by_uuid`, `get_<field>`,
//! `add_to_<map>` …); the few with behaviour are written out below.

use std::collections::BTreeMap;

use xenapi::{Failure, Value};

use crate::xapi_sim::db::{self, Class, Db, MessageRow, SessionRow, SrRow, StringMap, VdiRow};
use crate::xapi_sim::{XapiSim, events, filter, storage};

/// The user xapi gives the session of a driver call.
pub(crate) const SM_USER: &str = "__sm__backend";
/// Marks a driver's session with the SR it may act on (`_sm_session`).
const SM_SESSION_KEY: &str = "_sm_session";
/// xapi keeps at most this many sessions per originator, destroying the oldest.
const SESSIONS_PER_ORIGINATOR: usize = 500;

/// Where a call came from: the local socket is pre-authenticated as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Local,
    Remote,
}

pub(crate) struct Context {
    pub origin: Origin,
    pub subtask_of: Option<String>,
    pub originator: Option<String>,
}

fn failure<const N: usize>(code: &str, params: [&str; N]) -> Failure {
    Failure::new(code, params)
}

pub(crate) fn new_session(
    db: &mut Db,
    host: &str,
    user: &str,
    originator: &str,
    sr: Option<&str>,
) -> String {
    let session = db::new_ref();
    let mut other_config = StringMap::new();
    if let Some(sr) = sr {
        other_config.insert(SM_SESSION_KEY.into(), sr.into());
    }
    db.generation += 1;
    let serial = db.generation;
    db.sessions.insert(
        session.clone(),
        SessionRow {
            uuid: db::new_uuid(),
            this_host: host.into(),
            this_user: user.into(),
            originator: originator.into(),
            is_local_superuser: true,
            other_config,
            last_active: db::now_datetime(),
            serial,
        },
    );
    if user != SM_USER {
        let mut same: Vec<(u64, String)> = db
            .sessions
            .iter()
            .filter(|(_, s)| s.originator == originator && s.this_user != SM_USER)
            .map(|(r, s)| (s.serial, r.clone()))
            .collect();
        if same.len() > SESSIONS_PER_ORIGINATOR {
            same.sort();
            for (_, old) in &same[..same.len() - SESSIONS_PER_ORIGINATOR] {
                db.sessions.remove(old);
            }
        }
    }
    session
}

/// Typed access to positional parameters, with xapi's parameter names in errors.
struct Params<'a> {
    values: &'a [Value],
}

impl Params<'_> {
    fn get(&self, i: usize) -> &Value {
        self.values.get(i).unwrap_or(&Value::Nil)
    }

    fn string(&self, i: usize, name: &str) -> Result<String, Failure> {
        match self.get(i) {
            Value::String(s) => Ok(s.clone()),
            _ => Err(failure("FIELD_TYPE_ERROR", [name])),
        }
    }

    fn bool(&self, i: usize, name: &str) -> Result<bool, Failure> {
        self.get(i)
            .as_bool()
            .ok_or_else(|| failure("FIELD_TYPE_ERROR", [name]))
    }

    fn int(&self, i: usize, name: &str) -> Result<i64, Failure> {
        match self.get(i) {
            v @ (Value::Int(_) | Value::Int32(_) | Value::String(_)) => v.as_int(),
            _ => None,
        }
        .ok_or_else(|| failure("FIELD_TYPE_ERROR", [name]))
    }

    fn float(&self, i: usize, name: &str) -> Result<f64, Failure> {
        self.get(i)
            .as_double()
            .ok_or_else(|| failure("FIELD_TYPE_ERROR", [name]))
    }

    fn map(&self, i: usize, name: &str) -> Result<StringMap, Failure> {
        string_map(self.get(i)).ok_or_else(|| failure("FIELD_TYPE_ERROR", [name]))
    }

    fn strings(&self, i: usize, name: &str) -> Result<Vec<String>, Failure> {
        let items = self
            .get(i)
            .as_array()
            .ok_or_else(|| failure("FIELD_TYPE_ERROR", [name]))?;
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(failure("FIELD_TYPE_ERROR", [name])),
            })
            .collect()
    }
}

fn string_map(v: &Value) -> Option<StringMap> {
    match v {
        // An empty struct may arrive as "" from a peer that writes nothing for it.
        Value::String(s) if s.is_empty() => Some(StringMap::new()),
        other => other.as_string_map(),
    }
}

/// How many parameters (the session included) a method takes, or `None` if it has none.
fn arity(class: Class, message: &str) -> Option<(usize, usize)> {
    let generic = match message {
        "get_all" | "get_all_records" => Some((1, 1)),
        "get_all_records_where" | "get_by_uuid" | "get_record" | "get_uuid" => Some((2, 2)),
        m if m
            .strip_prefix("get_")
            .is_some_and(|f| Db::field_names(class).iter().any(|n| n == f)) =>
        {
            Some((2, 2))
        }
        m if m
            .strip_prefix("set_")
            .is_some_and(|f| class.rw_maps().contains(&f) || class.rw_strings().contains(&f)) =>
        {
            Some((3, 3))
        }
        m if m
            .strip_prefix("add_to_")
            .is_some_and(|f| class.rw_maps().contains(&f)) =>
        {
            Some((4, 4))
        }
        m if m
            .strip_prefix("remove_from_")
            .is_some_and(|f| class.rw_maps().contains(&f)) =>
        {
            Some((3, 3))
        }
        _ => None,
    };
    generic.or(match (class, message) {
        (Class::Session, "logout" | "local_logout") => Some((1, 1)),
        (Class::Host, "set_multipathing") => Some((3, 3)),
        (Class::Pbd, "create" | "destroy" | "plug" | "unplug") => Some((2, 2)),
        (Class::Pbd, "set_device_config") => Some((3, 3)),
        // The trailing parameters are versioned: older, shorter forms are accepted.
        (Class::Sr, "create") => Some((9, 10)),
        (Class::Sr, "introduce") => Some((7, 8)),
        (Class::Sr, "probe") => Some((5, 5)),
        (Class::Sr, "scan" | "update") => Some((2, 2)),
        (Class::Vdi, "db_introduce") => Some((12, 20)),
        (Class::Vdi, "db_forget" | "forget") => Some((2, 2)),
        (Class::Vdi, "introduce") => Some((12, 19)),
        (Class::Vdi, "create") => Some((2, 2)),
        (Class::Vdi, "set_managed") => Some((3, 3)),
        (
            Class::Sr,
            "set_physical_size" | "set_physical_utilisation" | "set_virtual_allocation",
        ) => Some((3, 3)),
        (Class::Message, "create") => Some((6, 6)),
        (Class::Message, "destroy") => Some((2, 2)),
        _ => None,
    })
}

fn count_mismatch(method: &str, expected: usize, got: usize) -> Failure {
    failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        [method, &expected.to_string(), &got.to_string()],
    )
}

pub(crate) async fn dispatch(
    sim: &XapiSim,
    ctx: &Context,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, Failure> {
    let unknown = || failure("MESSAGE_METHOD_UNKNOWN", [method]);
    let (class_name, message) = method.split_once('.').ok_or_else(unknown)?;
    let p = Params { values: &params };
    let n = params.len();

    // The login family takes no session.
    if class_name == "session" {
        match message {
            "login_with_password" => {
                if !(2..=4).contains(&n) {
                    return Err(count_mismatch(method, 4, n));
                }
                return login(sim, ctx, &p, n).await;
            }
            "slave_local_login_with_password" => {
                if n != 2 {
                    return Err(count_mismatch(method, 2, n));
                }
                return login(sim, ctx, &p, n).await;
            }
            _ => {}
        }
    }
    if method == "event.from" {
        if n != 4 {
            return Err(count_mismatch(method, 4, n));
        }
        check_session(sim, &p)?;
        let classes = p.strings(1, "classes")?;
        let token = p.string(2, "token")?;
        let timeout = p.float(3, "timeout")?;
        return events::from(sim, classes, &token, timeout).await;
    }
    let class = Class::from_name(class_name).ok_or_else(unknown)?;
    let (min, max) = arity(class, message).ok_or_else(unknown)?;
    if !(min..=max).contains(&n) {
        return Err(count_mismatch(method, max, n));
    }
    let session = check_session(sim, &p)?;

    let result = match (class, message) {
        (Class::Session, "logout" | "local_logout") => {
            sim.modify(|db| db.sessions.remove(&session));
            Ok(Value::void())
        }
        (Class::Host, "set_multipathing") => {
            let host = p.string(1, "host")?;
            let value = p.bool(2, "value")?;
            sim.modify(|db| set_multipathing(db, &host, value))
        }
        (Class::Pbd, "create") => {
            let record = p
                .get(1)
                .as_struct()
                .cloned()
                .ok_or_else(|| failure("FIELD_TYPE_ERROR", ["args"]))?;
            sim.modify(|db| pbd_create(db, &record))
        }
        (Class::Pbd, "destroy") => {
            let pbd = p.string(1, "self")?;
            sim.modify(|db| {
                let row = db
                    .pbds
                    .get(&pbd)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["PBD", &pbd]))?;
                if row.currently_attached {
                    return Err(failure(
                        "OPERATION_NOT_ALLOWED",
                        ["PBD is currently attached"],
                    ));
                }
                db.pbds.remove(&pbd);
                db.deleted(Class::Pbd, &pbd);
                Ok(Value::void())
            })
        }
        (Class::Pbd, "plug") => storage::pbd_plug(sim, &p.string(1, "self")?)
            .await
            .map(|()| Value::void()),
        (Class::Pbd, "unplug") => storage::pbd_unplug(sim, &p.string(1, "self")?)
            .await
            .map(|()| Value::void()),
        (Class::Pbd, "set_device_config") => {
            let pbd = p.string(1, "self")?;
            let value = p.map(2, "value")?;
            sim.modify(|db| {
                let sr = db
                    .pbds
                    .get(&pbd)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["PBD", &pbd]))?
                    .sr
                    .clone();
                let marked = db
                    .sessions
                    .get(&session)
                    .and_then(|s| s.other_config.get(SM_SESSION_KEY));
                if marked != Some(&sr) {
                    return Err(failure(
                        "PERMISSION_DENIED",
                        ["PBD.set_device_config needs the session of a driver call on this SR"],
                    ));
                }
                if let Some(row) = db.pbds.get_mut(&pbd) {
                    row.device_config = value;
                }
                db.touch(Class::Pbd, &pbd);
                Ok(Value::void())
            })
        }
        (Class::Sr, "create") => {
            let new = storage::NewSr {
                host: p.string(1, "host")?,
                device_config: p.map(2, "device_config")?,
                physical_size: p.int(3, "physical_size")?,
                name_label: p.string(4, "name_label")?,
                name_description: p.string(5, "name_description")?,
                sr_type: p.string(6, "type")?,
                content_type: p.string(7, "content_type")?,
                shared: p.bool(8, "shared")?,
                sm_config: if n > 9 {
                    p.map(9, "sm_config")?
                } else {
                    StringMap::new()
                },
            };
            storage::sr_create(sim, new).await.map(Value::String)
        }
        (Class::Sr, "introduce") => {
            let mut row = SrRow {
                uuid: p.string(1, "uuid")?,
                name_label: p.string(2, "name_label")?,
                name_description: p.string(3, "name_description")?,
                sr_type: p.string(4, "type")?,
                content_type: p.string(5, "content_type")?,
                shared: p.bool(6, "shared")?,
                sm_config: if n > 7 {
                    p.map(7, "sm_config")?
                } else {
                    StringMap::new()
                },
                ..SrRow::default()
            };
            sim.modify(|db| {
                if row.uuid.is_empty() {
                    row.uuid = db::new_uuid();
                } else if db.by_uuid(Class::Sr, &row.uuid).is_some() {
                    return Err(failure("SR_UUID_EXISTS", [&row.uuid]));
                }
                let sr = db::new_ref();
                db.srs.insert(sr.clone(), row);
                db.created(Class::Sr, &sr);
                Ok(Value::String(sr))
            })
        }
        (Class::Sr, "probe") => storage::sr_probe(
            sim,
            &p.string(1, "host")?,
            p.map(2, "device_config")?,
            &p.string(3, "type")?,
            p.map(4, "sm_config")?,
        )
        .await
        .map(Value::String),
        (Class::Sr, "update") => storage::sr_update(sim, &p.string(1, "sr")?)
            .await
            .map(|()| Value::void()),
        (Class::Sr, "scan") => storage::sr_scan(sim, &p.string(1, "sr")?)
            .await
            .map(|()| Value::void()),
        (Class::Vdi, "db_introduce") => {
            let row = vdi_from_params(&p, n)?;
            sim.modify(|db| {
                if !db.srs.contains_key(&row.sr) {
                    return Err(failure("HANDLE_INVALID", ["SR", &row.sr]));
                }
                // introduce_dbonly: a location is unique in its SR.
                if db
                    .vdis
                    .values()
                    .any(|v| v.sr == row.sr && v.location == row.location)
                {
                    return Err(failure("LOCATION_NOT_UNIQUE", [&row.sr, &row.location]));
                }
                if db.by_uuid(Class::Vdi, &row.uuid).is_some() {
                    return Err(failure(
                        "INTERNAL_ERROR",
                        [&format!(
                            "Db_exn.Uniqueness_constraint_violation(\"VDI\", \"uuid\", \"{}\")",
                            row.uuid
                        )],
                    ));
                }
                let vdi = db::new_ref();
                db.vdis.insert(vdi.clone(), row);
                db.created(Class::Vdi, &vdi);
                Ok(Value::String(vdi))
            })
        }
        (Class::Vdi, "introduce") => {
            let row = vdi_from_params(&p, n)?;
            storage::vdi_introduce(sim, row).await.map(Value::String)
        }
        (Class::Vdi, "create") => {
            let record = p
                .get(1)
                .as_struct()
                .cloned()
                .ok_or_else(|| failure("FIELD_TYPE_ERROR", ["args"]))?;
            let text = |k: &str| {
                record
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let map = |k: &str| record.get(k).and_then(string_map).unwrap_or_default();
            let flag = |k: &str| record.get(k).and_then(Value::as_bool).unwrap_or(false);
            let row = VdiRow {
                name_label: text("name_label"),
                name_description: text("name_description"),
                sr: text("SR"),
                vdi_type: text("type").to_ascii_lowercase(),
                sharable: flag("sharable"),
                read_only: flag("read_only"),
                other_config: map("other_config"),
                xenstore_data: map("xenstore_data"),
                sm_config: map("sm_config"),
                virtual_size: match record.get("virtual_size") {
                    Some(Value::String(s)) => s.parse().unwrap_or(0),
                    Some(v) => v.as_int().unwrap_or(0),
                    None => 0,
                },
                ..VdiRow::default()
            };
            storage::vdi_create(sim, row).await.map(Value::String)
        }
        // What an SR driver's scan sets (stock `SR._db_update`); int64 arrives as a string
        // over XML-RPC.
        (
            Class::Sr,
            field @ ("set_physical_size" | "set_physical_utilisation" | "set_virtual_allocation"),
        ) => {
            let sr = p.string(1, "self")?;
            let value = p.int(2, "value")?;
            let field = field.to_string();
            sim.modify(|db| {
                let row = db
                    .srs
                    .get_mut(&sr)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["SR", &sr]))?;
                match field.as_str() {
                    "set_physical_size" => row.physical_size = value,
                    "set_physical_utilisation" => row.physical_utilisation = value,
                    _ => row.virtual_allocation = value,
                }
                db.touch(Class::Sr, &sr);
                Ok(Value::void())
            })
        }
        (Class::Vdi, "set_managed") => {
            let vdi = p.string(1, "self")?;
            let value = p.bool(2, "value")?;
            sim.modify(|db| {
                let row = db
                    .vdis
                    .get_mut(&vdi)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["VDI", &vdi]))?;
                row.managed = value;
                db.touch(Class::Vdi, &vdi);
                Ok(Value::void())
            })
        }
        (Class::Vdi, "db_forget" | "forget") => {
            let vdi = p.string(1, "vdi")?;
            sim.modify(|db| {
                db.vdis
                    .remove(&vdi)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["VDI", &vdi]))?;
                db.deleted(Class::Vdi, &vdi);
                Ok(Value::void())
            })
        }
        (Class::Message, "create") => {
            let name = p.string(1, "name")?;
            let priority = p.int(2, "priority")?;
            let cls = p.string(3, "cls")?;
            let obj_uuid = p.string(4, "obj_uuid")?;
            let body = p.string(5, "body")?;
            sim.modify(|db| message_create(db, name, priority, &cls, obj_uuid, body))
        }
        (Class::Message, "destroy") => {
            let m = p.string(1, "self")?;
            sim.modify(|db| {
                db.messages
                    .remove(&m)
                    .ok_or_else(|| failure("HANDLE_INVALID", ["message", &m]))?;
                db.deleted(Class::Message, &m);
                Ok(Value::void())
            })
        }
        _ => generic(sim, class, message, &p),
    };
    let _ = &ctx.subtask_of;
    result
}

fn check_session(sim: &XapiSim, p: &Params<'_>) -> Result<String, Failure> {
    let session = match p.get(0) {
        Value::String(s) => s.clone(),
        _ => return Err(failure("FIELD_TYPE_ERROR", ["session_id"])),
    };
    let mut db = sim.db();
    match db.sessions.get_mut(&session) {
        Some(row) => {
            row.last_active = db::now_datetime();
            Ok(session)
        }
        None => Err(failure("SESSION_INVALID", [&session])),
    }
}

async fn login(sim: &XapiSim, ctx: &Context, p: &Params<'_>, n: usize) -> Result<Value, Failure> {
    let uname = p.string(0, "uname")?;
    let password = p.string(1, "pwd")?;
    let originator = if n > 3 {
        p.string(3, "originator")?
    } else {
        ctx.originator.clone().unwrap_or_default()
    };
    if n > 2 {
        p.string(2, "version")?;
    }
    // The local socket is root already; over the network the password counts.
    if ctx.origin == Origin::Remote
        && (uname != "root" || password != sim.inner.settings.root_password)
    {
        tokio::time::sleep(sim.inner.settings.auth_failure_delay).await;
        return Err(failure(
            "SESSION_AUTHENTICATION_FAILED",
            [&uname, "Authentication failure"],
        ));
    }
    let host = sim.master();
    Ok(Value::String(sim.modify(|db| {
        new_session(db, &host, &uname, &originator, None)
    })))
}

/// The messages every class has.
fn generic(sim: &XapiSim, class: Class, message: &str, p: &Params<'_>) -> Result<Value, Failure> {
    let name = class.name();
    let handle = |db: &Db, r: &str| {
        if db.exists(class, r) {
            Ok(())
        } else {
            Err(failure("HANDLE_INVALID", [name, r]))
        }
    };
    match message {
        "get_all" => Ok(Value::Array(
            sim.db().all(class).into_iter().map(Value::String).collect(),
        )),
        "get_all_records" => {
            let db = sim.db();
            Ok(db
                .all(class)
                .into_iter()
                .filter_map(|r| db.record(class, &r).map(|rec| (r, rec)))
                .collect())
        }
        "get_all_records_where" => {
            let text = p.string(1, "expr")?;
            let expr = filter::parse(&text).map_err(|e| {
                failure(
                    "INTERNAL_ERROR",
                    [&format!("Db_filter.Expression_error({e})")],
                )
            })?;
            let db = sim.db();
            Ok(db
                .all(class)
                .into_iter()
                .filter_map(|r| db.record(class, &r).map(|rec| (r, rec)))
                .filter(|(_, rec)| rec.as_struct().is_some_and(|fields| expr.matches(fields)))
                .collect())
        }
        "get_by_uuid" => {
            let uuid = p.string(1, "uuid")?;
            sim.db()
                .by_uuid(class, &uuid)
                .map(Value::String)
                .ok_or_else(|| failure("UUID_INVALID", [name, &uuid]))
        }
        "get_record" => {
            let r = p.string(1, "self")?;
            sim.db()
                .record(class, &r)
                .ok_or_else(|| failure("HANDLE_INVALID", [name, &r]))
        }
        m if m.starts_with("get_") => {
            let field = &m["get_".len()..];
            let r = p.string(1, "self")?;
            let record = sim
                .db()
                .record(class, &r)
                .ok_or_else(|| failure("HANDLE_INVALID", [name, &r]))?;
            Ok(record
                .as_struct()
                .and_then(|f| f.get(field).cloned())
                .unwrap_or_else(Value::void))
        }
        m if m.starts_with("set_") => {
            let field = &m["set_".len()..];
            let r = p.string(1, "self")?;
            let is_map = class.rw_maps().contains(&field);
            let value = if is_map {
                None
            } else {
                Some(p.string(2, "value")?)
            };
            let map = if is_map {
                Some(p.map(2, "value")?)
            } else {
                None
            };
            sim.modify(|db| {
                handle(db, &r)?;
                match (map, value) {
                    (Some(map), _) => {
                        if let Some(target) = db.map_mut(class, &r, field) {
                            *target = map;
                        }
                    }
                    (None, Some(value)) => {
                        if let Some(target) = db.string_mut(class, &r, field) {
                            *target = value;
                        }
                    }
                    (None, None) => {}
                }
                after_map_change(db, class, &r, field);
                db.touch(class, &r);
                Ok(Value::void())
            })
        }
        m if m.starts_with("add_to_") => {
            let field = &m["add_to_".len()..];
            let r = p.string(1, "self")?;
            let key = p.string(2, "key")?;
            let value = p.string(3, "value")?;
            sim.modify(|db| {
                handle(db, &r)?;
                if key.is_empty() {
                    return Err(failure("INVALID_VALUE", [&format!("{name}.{field}"), ""]));
                }
                let map = db
                    .map_mut(class, &r, field)
                    .ok_or_else(|| failure("HANDLE_INVALID", [name, &r]))?;
                if map.contains_key(&key) {
                    return Err(failure("MAP_DUPLICATE_KEY", [name, field, &r, &key]));
                }
                map.insert(key, value);
                after_map_change(db, class, &r, field);
                db.touch(class, &r);
                Ok(Value::void())
            })
        }
        m if m.starts_with("remove_from_") => {
            let field = &m["remove_from_".len()..];
            let r = p.string(1, "self")?;
            let key = p.string(2, "key")?;
            sim.modify(|db| {
                handle(db, &r)?;
                let removed = db
                    .map_mut(class, &r, field)
                    .is_some_and(|map| map.remove(&key).is_some());
                if removed {
                    after_map_change(db, class, &r, field);
                    db.touch(class, &r);
                }
                Ok(Value::void())
            })
        }
        _ => Err(failure(
            "MESSAGE_METHOD_UNKNOWN",
            [&format!("{name}.{message}")],
        )),
    }
}

/// xapi's master watches `other_config:multipathing` and brings `host.multipathing` in
/// line when the key parses as a bool; the simulator does it at once.
fn after_map_change(db: &mut Db, class: Class, object: &str, field: &str) {
    if class != Class::Host || field != "other_config" {
        return;
    }
    if let Some(host) = db.hosts.get_mut(object) {
        match host.other_config.get("multipathing").map(String::as_str) {
            Some("true") => host.multipathing = true,
            Some("false") => host.multipathing = false,
            _ => {}
        }
    }
}

/// `host.set_multipathing`: remove the key, set the field, add the key back.
fn set_multipathing(db: &mut Db, host: &str, value: bool) -> Result<Value, Failure> {
    let row = db
        .hosts
        .get_mut(host)
        .ok_or_else(|| failure("HANDLE_INVALID", ["host", host]))?;
    row.other_config.remove("multipathing");
    row.multipathing = value;
    row.other_config
        .insert("multipathing".into(), value.to_string());
    db.touch(Class::Host, host);
    Ok(Value::void())
}

fn pbd_create(db: &mut Db, record: &BTreeMap<String, Value>) -> Result<Value, Failure> {
    let text = |k: &str| match record.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(failure("FIELD_TYPE_ERROR", [k])),
    };
    let host = text("host")?;
    let sr = text("SR")?;
    let device_config = record
        .get("device_config")
        .map_or(Some(StringMap::new()), string_map)
        .ok_or_else(|| failure("FIELD_TYPE_ERROR", ["device_config"]))?;
    let other_config = record
        .get("other_config")
        .map_or(Some(StringMap::new()), string_map)
        .ok_or_else(|| failure("FIELD_TYPE_ERROR", ["other_config"]))?;
    if !db.hosts.contains_key(&host) {
        return Err(failure("HANDLE_INVALID", ["host", &host]));
    }
    if !db.srs.contains_key(&sr) {
        return Err(failure("HANDLE_INVALID", ["SR", &sr]));
    }
    if device_config.contains_key("SRmaster") {
        return Err(failure(
            "VALUE_NOT_SUPPORTED",
            [
                "device_config",
                "SRmaster",
                "This key is for internal use only",
            ],
        ));
    }
    if let Some((existing, _)) = db.pbds.iter().find(|(_, p)| p.host == host && p.sr == sr) {
        return Err(failure("PBD_EXISTS", [&sr, &host, existing]));
    }
    let pbd = db::new_ref();
    db.pbds.insert(
        pbd.clone(),
        db::PbdRow {
            uuid: db::new_uuid(),
            host,
            sr,
            device_config,
            currently_attached: false,
            other_config,
        },
    );
    db.created(Class::Pbd, &pbd);
    Ok(Value::String(pbd))
}

const VDI_TYPES: [&str; 12] = [
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "ha_statefile",
    "metadata",
    "redo_log",
    "rrd",
    "pvs_cache",
    "cbt_metadata",
    "unknown",
];

fn vdi_from_params(p: &Params<'_>, n: usize) -> Result<VdiRow, Failure> {
    let vdi_type = p.string(5, "type")?.to_ascii_lowercase();
    if !VDI_TYPES[..VDI_TYPES.len() - 1].contains(&vdi_type.as_str()) {
        return Err(failure("FIELD_TYPE_ERROR", ["type"]));
    }
    let mut row = VdiRow {
        uuid: p.string(1, "uuid")?,
        name_label: p.string(2, "name_label")?,
        name_description: p.string(3, "name_description")?,
        sr: p.string(4, "SR")?,
        vdi_type,
        sharable: p.bool(6, "sharable")?,
        read_only: p.bool(7, "read_only")?,
        other_config: p.map(8, "other_config")?,
        location: p.string(9, "location")?,
        xenstore_data: p.map(10, "xenstore_data")?,
        sm_config: p.map(11, "sm_config")?,
        managed: true,
        snapshot_of: "OpaqueRef:NULL".into(),
        snapshot_time: "19700101T00:00:00Z".into(),
        ..VdiRow::default()
    };
    if n > 12 {
        row.managed = p.bool(12, "managed")?;
    }
    if n > 13 {
        row.virtual_size = p.int(13, "virtual_size")?;
    }
    if n > 14 {
        row.physical_utilisation = p.int(14, "physical_utilisation")?;
    }
    if n > 15 {
        row.metadata_of_pool = p.string(15, "metadata_of_pool")?;
    }
    if n > 16 {
        row.is_a_snapshot = p.bool(16, "is_a_snapshot")?;
    }
    if n > 17 {
        row.snapshot_time = match p.get(17) {
            Value::DateTime(s) | Value::String(s) => s.clone(),
            _ => return Err(failure("FIELD_TYPE_ERROR", ["snapshot_time"])),
        };
    }
    if n > 18 {
        row.snapshot_of = p.string(18, "snapshot_of")?;
    }
    if n > 19 {
        row.cbt_enabled = p.bool(19, "cbt_enabled")?;
    }
    if row.uuid.is_empty() {
        row.uuid = db::new_uuid();
    }
    Ok(row)
}

/// The `cls` values xapi knows; matched without regard to case, as enums are.
const MESSAGE_CLASSES: [&str; 9] = [
    "VM",
    "Host",
    "SR",
    "Pool",
    "VMPP",
    "VMSS",
    "PVS_proxy",
    "VDI",
    "Certificate",
];

fn message_create(
    db: &mut Db,
    name: String,
    priority: i64,
    cls: &str,
    obj_uuid: String,
    body: String,
) -> Result<Value, Failure> {
    let cls = MESSAGE_CLASSES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(cls))
        .ok_or_else(|| failure("FIELD_TYPE_ERROR", ["cls"]))?;
    let exists = match *cls {
        "Host" => db.by_uuid(Class::Host, &obj_uuid).is_some(),
        "SR" => db.by_uuid(Class::Sr, &obj_uuid).is_some(),
        "Pool" => db.pool.uuid == obj_uuid,
        "VDI" => db.by_uuid(Class::Vdi, &obj_uuid).is_some(),
        _ => false,
    };
    if !exists {
        return Err(failure("UUID_INVALID", [cls, &obj_uuid]));
    }
    let message = db::new_ref();
    db.messages.insert(
        message.clone(),
        MessageRow {
            uuid: db::new_uuid(),
            name,
            priority,
            cls: (*cls).to_owned(),
            obj_uuid,
            timestamp: db::now_datetime(),
            body,
        },
    );
    db.created(Class::Message, &message);
    Ok(Value::String(message))
}
