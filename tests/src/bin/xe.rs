//! `xe`: the xe CLI's syntax for the commands sm-rs's demo and people need, over the
//! `xenapi` bindings. Connection as xe takes it (`server=`, `port=`, `username=`,
//! `password=`, `passwordfile=`, `nossl=true`, or `-s -p -u -pw -pwf --nossl`), plus
//! `socket=PATH` and `sha256=FINGERPRINT` (the pin for https); without them, `$SM_RS_XAPI`
//! or the dom0 socket.
//!
//! ```text
//! xe pbd-list sr-uuid=<uuid>
//! xe host-param-set uuid=<host> other-config:multipathing=true
//! xe sr-create type=lunoiscsi shared=true name-label=LUNs device-config:target=192.0.2.1
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use xenapi::wire::Value;
use xenapi::{Client, Endpoint, Error, Session};

const USAGE: &str =
    "usage: xe [-s server] [-p port] [-u user] [-pw password] [--nossl] <command> [name=value ...]
commands: host-list sr-list pbd-list vdi-list message-list
          host-param-list pbd-param-list sr-param-list vdi-param-list
          host-param-get pbd-param-get sr-param-get   (uuid= param-name= [param-key=])
          host-param-set pbd-param-set sr-param-set   (uuid= name=value map:key=value ...)
          host-param-remove pbd-param-remove sr-param-remove (uuid= param-name= param-key=)
          pbd-plug pbd-unplug sr-scan (uuid=)  sr-create  sr-probe";

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match runtime.block_on(run(args)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(Fail::Usage(text)) => {
            eprintln!("{text}\n{USAGE}");
            ExitCode::FAILURE
        }
        Err(Fail::Api(Error::Failure(f))) => {
            // xe's form for an error it has no text of its own for.
            eprintln!(
                "Error code: {}\nError parameters: {}",
                f.code,
                f.params.join(", ")
            );
            ExitCode::FAILURE
        }
        Err(Fail::Api(e)) => {
            eprintln!("xe: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Fail {
    Usage(String),
    Api(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Api(e)
    }
}

fn usage<T>(text: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(text.into()))
}

/// A command line: the command, its `name=value` parameters in order, and `--minimal`.
struct Invocation {
    command: String,
    params: Vec<(String, String)>,
    minimal: bool,
}

impl Invocation {
    fn parse(args: Vec<String>) -> Result<Invocation, Fail> {
        let mut command = None;
        let mut params = Vec::new();
        let mut minimal = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let short = match arg.as_str() {
                "-s" => Some("server"),
                "-p" => Some("port"),
                "-u" => Some("username"),
                "-pw" => Some("password"),
                "-pwf" => Some("passwordfile"),
                _ => None,
            };
            if let Some(name) = short {
                let Some(value) = args.next() else {
                    return usage(format!("{arg} needs a value"));
                };
                params.push((name.to_owned(), value));
            } else if arg == "--nossl" {
                params.push(("nossl".into(), "true".into()));
            } else if arg == "--minimal" {
                minimal = true;
            } else if let Some((k, v)) = arg.split_once('=') {
                params.push((k.to_owned(), v.to_owned()));
            } else if command.is_none() {
                command = Some(arg);
            } else {
                return usage(format!(
                    "unexpected argument {arg:?}: parameters are name=value"
                ));
            }
        }
        let Some(command) = command else {
            return usage("no command given");
        };
        Ok(Invocation {
            command,
            params,
            minimal,
        })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.params.iter().position(|(k, _)| k == name)?;
        Some(self.params.remove(at).1)
    }

    fn require(&mut self, name: &str) -> Result<String, Fail> {
        match self.take(name) {
            Some(v) => Ok(v),
            None => usage(format!("{} needs {name}=", self.command)),
        }
    }

    /// `prefix:key=value` parameters, e.g. `device-config:target=…`.
    fn take_map(&mut self, prefix: &str) -> BTreeMap<String, String> {
        let wanted = format!("{prefix}:");
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.params)
            .into_iter()
            .partition(|(k, _)| k.starts_with(&wanted));
        self.params = kept;
        taken
            .into_iter()
            .map(|(k, v)| (k[wanted.len()..].to_owned(), v))
            .collect()
    }
}

async fn connect(inv: &mut Invocation) -> Result<Session, Fail> {
    let server = inv.take("server");
    let port = inv.take("port");
    let nossl = inv.take("nossl").is_some_and(|v| v == "true");
    let pin = inv.take("sha256");
    let socket = inv.take("socket");
    let username = inv.take("username").unwrap_or_else(|| "root".into());
    let mut password = inv.take("password").unwrap_or_default();
    if let Some(file) = inv.take("passwordfile") {
        password = std::fs::read_to_string(&file)
            .map_err(|e| Fail::Usage(format!("passwordfile {file}: {e}")))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
    }
    let endpoint = match (socket, server) {
        (Some(path), _) => Endpoint::parse(&format!("unix:{path}"))?,
        (None, Some(server)) if nossl => Endpoint::parse(&format!(
            "http://{server}:{}",
            port.as_deref().unwrap_or("80")
        ))?,
        (None, Some(server)) => {
            let Some(pin) = pin else {
                return usage(
                    "https to a server needs its certificate pinned: sha256=FINGERPRINT (or nossl=true)",
                );
            };
            Endpoint::parse(&format!(
                "https://{server}:{}#sha256={pin}",
                port.as_deref().unwrap_or("443")
            ))?
        }
        (None, None) => Endpoint::from_env()?,
    };
    let client = Client::new(endpoint);
    Ok(Session::login_with_password(&client, &username, &password, "1.0", "xe").await?)
}

async fn run(args: Vec<String>) -> Result<String, Fail> {
    let mut inv = Invocation::parse(args)?;
    if matches!(inv.command.as_str(), "help" | "--help" | "-h") {
        return Ok(format!("{USAGE}\n"));
    }
    let session = connect(&mut inv).await?;
    let result = dispatch(&session, &mut inv).await;
    let _ = session.logout().await;
    result
}

async fn dispatch(s: &Session, inv: &mut Invocation) -> Result<String, Fail> {
    let command = inv.command.clone();
    if let Some(noun) = command.strip_suffix("-list") {
        if let Some(noun) = noun.strip_suffix("-param") {
            let class = Class::named(noun)
                .ok_or_else(|| Fail::Usage(format!("unknown command {command}")))?;
            let uuid = inv.require("uuid")?;
            return param_list(s, class, &uuid).await;
        }
        let class =
            Class::named(noun).ok_or_else(|| Fail::Usage(format!("unknown command {command}")))?;
        return list(s, class, inv).await;
    }
    if let Some(noun) = command.strip_suffix("-param-get") {
        let class =
            Class::named(noun).ok_or_else(|| Fail::Usage(format!("unknown command {command}")))?;
        let uuid = inv.require("uuid")?;
        let name = inv.require("param-name")?;
        let key = inv.take("param-key");
        return param_get(s, class, &uuid, &name, key.as_deref()).await;
    }
    if let Some(noun) = command.strip_suffix("-param-set") {
        let class =
            Class::named(noun).ok_or_else(|| Fail::Usage(format!("unknown command {command}")))?;
        let uuid = inv.require("uuid")?;
        return param_set(s, class, &uuid, inv).await;
    }
    if let Some(noun) = command.strip_suffix("-param-remove") {
        let class =
            Class::named(noun).ok_or_else(|| Fail::Usage(format!("unknown command {command}")))?;
        let uuid = inv.require("uuid")?;
        let name = inv.require("param-name")?;
        let key = inv.require("param-key")?;
        let object = by_uuid(s, class, &uuid).await?;
        s.call_void(
            &format!("{}.remove_from_{}", class.api(), name.replace('-', "_")),
            vec![object.into(), key.into()],
        )
        .await?;
        return Ok(String::new());
    }
    match command.as_str() {
        "pbd-plug" | "pbd-unplug" | "sr-scan" => {
            let uuid = inv.require("uuid")?;
            let (class, call) = match command.as_str() {
                "pbd-plug" => (Class::Pbd, "PBD.plug"),
                "pbd-unplug" => (Class::Pbd, "PBD.unplug"),
                _ => (Class::Sr, "SR.scan"),
            };
            let object = by_uuid(s, class, &uuid).await?;
            s.call_void(call, vec![object.into()]).await?;
            Ok(String::new())
        }
        "sr-create" => sr_create(s, inv).await,
        "sr-probe" => sr_probe(s, inv).await,
        other => usage(format!("unknown command {other}")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Host,
    Sr,
    Pbd,
    Vdi,
    Message,
}

impl Class {
    fn named(noun: &str) -> Option<Class> {
        Some(match noun {
            "host" => Class::Host,
            "sr" => Class::Sr,
            "pbd" => Class::Pbd,
            "vdi" => Class::Vdi,
            "message" => Class::Message,
            _ => return None,
        })
    }

    fn api(self) -> &'static str {
        match self {
            Class::Host => "host",
            Class::Sr => "SR",
            Class::Pbd => "PBD",
            Class::Vdi => "VDI",
            Class::Message => "message",
        }
    }
}

type Record = BTreeMap<String, Value>;

/// What a field shows needs other records: the uuid and name of the host or SR a ref names.
#[derive(Default)]
struct Lookup {
    hosts: BTreeMap<String, Record>,
    srs: BTreeMap<String, Record>,
    pbds: BTreeMap<String, Record>,
}

impl Lookup {
    async fn load(s: &Session) -> Result<Lookup, Fail> {
        Ok(Lookup {
            hosts: records(s, Class::Host).await?,
            srs: records(s, Class::Sr).await?,
            pbds: records(s, Class::Pbd).await?,
        })
    }

    fn of(&self, table: &BTreeMap<String, Record>, r: &Value, field: &str) -> String {
        r.as_str()
            .and_then(|r| table.get(r))
            .and_then(|rec| rec.get(field))
            .map(show)
            .unwrap_or_else(|| "<not in database>".into())
    }
}

async fn records(s: &Session, class: Class) -> Result<BTreeMap<String, Record>, Fail> {
    let all = s
        .call(&format!("{}.get_all_records", class.api()), vec![])
        .await?;
    Ok(all
        .as_struct()
        .map(|m| {
            m.iter()
                .filter_map(|(r, rec)| rec.as_struct().map(|rec| (r.clone(), rec.clone())))
                .collect()
        })
        .unwrap_or_default())
}

async fn by_uuid(s: &Session, class: Class, uuid: &str) -> Result<String, Fail> {
    Ok(s.call_as(
        match class {
            Class::Host => "host.get_by_uuid",
            Class::Sr => "SR.get_by_uuid",
            Class::Pbd => "PBD.get_by_uuid",
            Class::Vdi => "VDI.get_by_uuid",
            Class::Message => "message.get_by_uuid",
        },
        vec![uuid.into()],
    )
    .await?)
}

/// A value as xe prints it: maps `k: v; k2: v2`, sets `a; b`, booleans `true`/`false`.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) | Value::DateTime(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Nil => String::new(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join("; "),
        Value::Struct(m) => m
            .iter()
            .map(|(k, v)| {
                // The CLI is not where secrets are shown.
                let v = if k.to_ascii_lowercase().contains("password") {
                    "******".to_owned()
                } else {
                    show(v)
                };
                format!("{k}: {v}")
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// One field as xe shows it: name, qualifier, shown by default in `*-list`, and how to read it.
struct Field {
    name: &'static str,
    qualifier: &'static str,
    listed: bool,
    read: Read,
}

enum Read {
    /// The API field of this name.
    Api(&'static str),
    HostUuid(&'static str),
    HostName(&'static str),
    SrUuid(&'static str),
    SrName(&'static str),
    /// `host` of an SR: the one host of a local SR, `<shared>` for a shared one.
    SrHost,
}

const fn f(name: &'static str, qualifier: &'static str, listed: bool, read: Read) -> Field {
    Field {
        name,
        qualifier,
        listed,
        read,
    }
}

fn fields(class: Class) -> Vec<Field> {
    use Read::*;
    match class {
        Class::Host => vec![
            f("uuid", " RO", true, Api("uuid")),
            f("name-label", " RW", true, Api("name_label")),
            f("name-description", " RW", true, Api("name_description")),
            f("enabled", " RO", false, Api("enabled")),
            f("address", " RO", false, Api("address")),
            f("hostname", " RO", false, Api("hostname")),
            f("multipathing", " RW", false, Api("multipathing")),
            f("iscsi_iqn", " RW", false, Api("iscsi_iqn")),
            f("other-config", "MRW", false, Api("other_config")),
            f("API-version-major", " RO", false, Api("API_version_major")),
            f("API-version-minor", " RO", false, Api("API_version_minor")),
        ],
        Class::Sr => vec![
            f("uuid", " RO", true, Api("uuid")),
            f("name-label", " RW", true, Api("name_label")),
            f("name-description", " RW", true, Api("name_description")),
            f("host", " RO", true, SrHost),
            f("type", " RO", true, Api("type")),
            f("content-type", " RO", true, Api("content_type")),
            f("shared", " RW", false, Api("shared")),
            f("physical-size", " RO", false, Api("physical_size")),
            f(
                "physical-utilisation",
                " RO",
                false,
                Api("physical_utilisation"),
            ),
            f(
                "virtual-allocation",
                " RO",
                false,
                Api("virtual_allocation"),
            ),
            f("other-config", "MRW", false, Api("other_config")),
            f("sm-config", "MRO", false, Api("sm_config")),
            f("PBDs", "SRO", false, Api("PBDs")),
            f("VDIs", "SRO", false, Api("VDIs")),
        ],
        Class::Pbd => vec![
            f("uuid", " RO", true, Api("uuid")),
            f("host", " RO", false, HostUuid("host")),
            f("host-uuid", " RO", true, HostUuid("host")),
            f("host-name-label", " RO", false, HostName("host")),
            f("sr-uuid", " RO", true, SrUuid("SR")),
            f("sr-name-label", " RO", false, SrName("SR")),
            f("device-config", "MRO", true, Api("device_config")),
            f("currently-attached", " RO", true, Api("currently_attached")),
            f("other-config", "MRW", false, Api("other_config")),
        ],
        Class::Vdi => vec![
            f("uuid", " RO", true, Api("uuid")),
            f("name-label", " RW", true, Api("name_label")),
            f("name-description", " RW", true, Api("name_description")),
            f("sr-uuid", " RO", true, SrUuid("SR")),
            f("sr-name-label", " RO", false, SrName("SR")),
            f("virtual-size", " RO", true, Api("virtual_size")),
            f(
                "physical-utilisation",
                " RO",
                false,
                Api("physical_utilisation"),
            ),
            f("location", " RO", false, Api("location")),
            f("type", " RO", false, Api("type")),
            f("sharable", " RO", true, Api("sharable")),
            f("read-only", " RO", true, Api("read_only")),
            f("managed", " RO", false, Api("managed")),
            f("missing", " RO", false, Api("missing")),
            f("sm-config", "MRO", false, Api("sm_config")),
            f("other-config", "MRW", false, Api("other_config")),
        ],
        Class::Message => vec![
            f("uuid", " RO", true, Api("uuid")),
            f("name", " RO", true, Api("name")),
            f("priority", " RO", true, Api("priority")),
            f("class", " RO", true, Api("cls")),
            f("obj-uuid", " RO", true, Api("obj_uuid")),
            f("timestamp", " RO", true, Api("timestamp")),
            f("body", " RO", true, Api("body")),
        ],
    }
}

fn read(field: &Field, r: &str, record: &Record, lookup: &Lookup) -> String {
    let get = |name: &str| record.get(name).cloned().unwrap_or(Value::Nil);
    match field.read {
        Read::Api(name) => show(&get(name)),
        Read::HostUuid(name) => lookup.of(&lookup.hosts, &get(name), "uuid"),
        Read::HostName(name) => lookup.of(&lookup.hosts, &get(name), "name_label"),
        Read::SrUuid(name) => lookup.of(&lookup.srs, &get(name), "uuid"),
        Read::SrName(name) => lookup.of(&lookup.srs, &get(name), "name_label"),
        Read::SrHost => {
            if get("shared").as_bool() == Some(true) {
                return "<shared>".into();
            }
            let pbd = lookup
                .pbds
                .values()
                .find(|p| p.get("SR").and_then(Value::as_str) == Some(r));
            match pbd.and_then(|p| p.get("host")) {
                Some(host) => lookup.of(&lookup.hosts, host, "name_label"),
                None => "<not in database>".into(),
            }
        }
    }
}

/// Records in xe's layout: `name ( RO): value`, aligned on the colon four columns in from
/// the longest label, a blank line after each.
fn render(rows: &[Vec<(String, String)>]) -> String {
    let mut out = String::new();
    for row in rows {
        let width = row.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 4;
        for (i, (label, value)) in row.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{label:<width$}: {value}\n"));
            } else {
                out.push_str(&format!("{label:>width$}: {value}\n"));
            }
        }
        out.push('\n');
    }
    if !rows.is_empty() {
        out.push('\n');
    }
    out
}

async fn list(s: &Session, class: Class, inv: &mut Invocation) -> Result<String, Fail> {
    let all = records(s, class).await?;
    let lookup = Lookup::load(s).await?;
    let fields = fields(class);
    let wanted = inv.take("params");
    let filters = std::mem::take(&mut inv.params);
    for (name, _) in &filters {
        if !fields.iter().any(|f| f.name == name) {
            return usage(format!("unknown parameter {name} for {}", inv.command));
        }
    }
    let shown: Vec<&Field> = match wanted.as_deref() {
        Some("all") => fields.iter().collect(),
        Some(list) => list
            .split(',')
            .filter_map(|n| fields.iter().find(|f| f.name == n))
            .collect(),
        None => fields.iter().filter(|f| f.listed).collect(),
    };
    let mut rows = Vec::new();
    let mut uuids = Vec::new();
    for (r, record) in &all {
        let matches = filters.iter().all(|(name, value)| {
            fields
                .iter()
                .find(|f| f.name == name)
                .is_some_and(|f| read(f, r, record, &lookup) == *value)
        });
        if !matches {
            continue;
        }
        uuids.push(show(record.get("uuid").unwrap_or(&Value::Nil)));
        rows.push(
            shown
                .iter()
                .map(|f| {
                    (
                        format!("{} ({})", f.name, f.qualifier),
                        read(f, r, record, &lookup),
                    )
                })
                .collect(),
        );
    }
    if inv.minimal {
        return Ok(format!("{}\n", uuids.join(",")));
    }
    Ok(render(&rows))
}

async fn param_list(s: &Session, class: Class, uuid: &str) -> Result<String, Fail> {
    let r = by_uuid(s, class, uuid).await?;
    let record = get_record(s, class, &r).await?;
    let lookup = Lookup::load(s).await?;
    let row = fields(class)
        .iter()
        .map(|f| {
            (
                format!("{} ({})", f.name, f.qualifier),
                read(f, &r, &record, &lookup),
            )
        })
        .collect();
    Ok(render(&[row]))
}

async fn get_record(s: &Session, class: Class, r: &str) -> Result<Record, Fail> {
    let record = s.call(record_call(class), vec![r.into()]).await?;
    Ok(record.as_struct().cloned().unwrap_or_default())
}

fn record_call(class: Class) -> &'static str {
    match class {
        Class::Host => "host.get_record",
        Class::Sr => "SR.get_record",
        Class::Pbd => "PBD.get_record",
        Class::Vdi => "VDI.get_record",
        Class::Message => "message.get_record",
    }
}

async fn param_get(
    s: &Session,
    class: Class,
    uuid: &str,
    name: &str,
    key: Option<&str>,
) -> Result<String, Fail> {
    let r = by_uuid(s, class, uuid).await?;
    let record = get_record(s, class, &r).await?;
    let lookup = Lookup::load(s).await?;
    let fields = fields(class);
    let Some(field) = fields.iter().find(|f| f.name == name) else {
        return usage(format!("unknown parameter {name}"));
    };
    match key {
        None => Ok(format!("{}\n", read(field, &r, &record, &lookup))),
        Some(key) => {
            let Read::Api(api) = field.read else {
                return usage(format!("{name} is not a map"));
            };
            match record
                .get(api)
                .and_then(Value::as_struct)
                .and_then(|m| m.get(key))
            {
                Some(v) => Ok(format!("{}\n", show(v))),
                None => Err(Fail::Api(Error::Failure(xenapi::Failure::new(
                    "MAP_KEY_NOT_FOUND",
                    [key],
                )))),
            }
        }
    }
}

async fn param_set(
    s: &Session,
    class: Class,
    uuid: &str,
    inv: &mut Invocation,
) -> Result<String, Fail> {
    let r = by_uuid(s, class, uuid).await?;
    let api = class.api();
    let params = std::mem::take(&mut inv.params);
    if params.is_empty() {
        return usage(format!("{} needs something to set", inv.command));
    }
    for (name, value) in params {
        if let Some((map, key)) = name.split_once(':') {
            // As xe does it: remove the key, then add it.
            s.put_map_key(api, &map.replace('-', "_"), &r, key, &value)
                .await?;
            continue;
        }
        match (class, name.as_str()) {
            (Class::Host, "multipathing") => {
                let value = value
                    .parse::<bool>()
                    .map_err(|_| Fail::Usage("multipathing=true|false".into()))?;
                s.call_void(
                    "host.set_multipathing",
                    vec![r.as_str().into(), value.into()],
                )
                .await?;
            }
            (_, "name-label" | "name-description") => {
                s.call_void(
                    &format!("{api}.set_{}", name.replace('-', "_")),
                    vec![r.as_str().into(), value.into()],
                )
                .await?;
            }
            _ => return usage(format!("{name} cannot be set here")),
        }
    }
    Ok(String::new())
}

async fn host_or_master(
    s: &Session,
    inv: &mut Invocation,
) -> Result<xenapi::Ref<xenapi::refs::Host>, Fail> {
    Ok(match inv.take("host-uuid") {
        Some(uuid) => xenapi::api::host::get_by_uuid(s, &uuid).await?,
        None => xenapi::api::pool::master(s).await?,
    })
}

async fn sr_create(s: &Session, inv: &mut Invocation) -> Result<String, Fail> {
    let host = host_or_master(s, inv).await?;
    let new = xenapi::api::sr::NewSr {
        host,
        device_config: inv.take_map("device-config"),
        physical_size: inv
            .take("physical-size")
            .map(|p| p.parse())
            .transpose()
            .map_err(|_| Fail::Usage("physical-size is a number".into()))?
            .unwrap_or(0),
        name_label: inv.require("name-label")?,
        name_description: inv.take("name-description").unwrap_or_default(),
        sr_type: inv.require("type")?,
        content_type: inv.take("content-type").unwrap_or_default(),
        shared: inv.take("shared").is_some_and(|v| v == "true"),
        sm_config: inv.take_map("sm-config"),
    };
    let sr = xenapi::api::sr::create(s, &new).await?;
    let record = xenapi::api::sr::get_record(s, &sr).await?;
    Ok(format!("{}\n", record.uuid))
}

async fn sr_probe(s: &Session, inv: &mut Invocation) -> Result<String, Fail> {
    let host = host_or_master(s, inv).await?;
    let device_config = inv.take_map("device-config");
    let sm_config = inv.take_map("sm-config");
    let sr_type = inv.require("type")?;
    let xml = xenapi::api::sr::probe(s, &host, &device_config, &sr_type, &sm_config).await?;
    Ok(format!("{xml}\n"))
}
