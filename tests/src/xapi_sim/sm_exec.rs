//! Runs SMAPIv1 drivers exactly as xapi's `sm_exec` does: `<dir>/<Name>SR` (the SR type is
//! the name lower-cased), the whole `methodCall` as argv[1] with xapi's member order, an
//! environment of `PATH` and `ORIGINATOR=SM` only (plus the `SM_RS_*` knobs a test points at
//! its simulated host), no stdin, no timeout; stdout parsed as the answer, faults mapped to
//! xapi's errors. Every run is recorded for tests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use xenapi::wire::xmlrpc::{self, PlainResponse};
use xenapi::{Failure, Value};

use crate::xapi_sim::db::StringMap;

/// xapi's `default_path` for the programs it forks.
pub const XAPI_PATH: &str = "/sbin:/usr/sbin:/bin:/usr/bin";

/// Where the drivers are and what extra environment they get.
#[derive(Clone, Debug, Default)]
pub struct DriverConfig {
    /// xapi's `sm-dir` (`/opt/xensource/sm` on a host).
    pub dir: PathBuf,
    /// Added after `PATH` and `ORIGINATOR` (a `PATH` here replaces xapi's). Values may hold
    /// `{host_uuid}`, `{host_ref}`, `{host_name}` (of the host the call runs on) and `{xapi}`
    /// (the simulator's unix socket as an `SM_RS_XAPI` address).
    pub env: Vec<(String, String)>,
}

/// One driver run, as the simulator saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct DriverCall {
    pub host: String,
    pub sr_type: String,
    pub command: String,
    pub args: Vec<String>,
    pub device_config: StringMap,
    /// The methodCall, as argv[1].
    pub argv1: String,
    pub env: Vec<(String, String)>,
    pub stdout: String,
    pub stderr: String,
    /// What xapi made of it, the shape check of the command's answer included.
    pub outcome: Result<Value, Failure>,
}

/// The answer a command must give (`sm_exec`'s per-command parsers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `<nil/>`: attach, detach, activate, scan, create …
    Nil,
    /// `sr_probe`, `vdi_generate_config`.
    String,
    /// `vdi_attach`: a struct with `params_nbd`.
    Attach,
    /// `sr_get_driver_info`, checked by its own parser.
    Any,
}

/// The call struct of `sm_exec.xmlrpc_of_call`; absent members are left out, as there.
#[derive(Clone, Debug, Default)]
pub struct SmCall {
    pub host_ref: String,
    pub command: String,
    pub args: Vec<String>,
    pub device_config: StringMap,
    pub session_ref: Option<String>,
    pub sr_sm_config: Option<StringMap>,
    pub sr_ref: Option<String>,
    pub vdi_type: Option<String>,
    pub sr_uuid: Option<String>,
    pub vdi_ref: Option<String>,
    pub vdi_location: Option<String>,
    pub vdi_uuid: Option<String>,
    pub driver_params: Option<StringMap>,
    pub vdi_sm_config: Option<StringMap>,
    pub new_uuid: Option<String>,
    pub subtask_of: Option<String>,
    pub vdi_on_boot: Option<String>,
    pub vdi_allow_caching: Option<String>,
    pub local_cache_sr: Option<String>,
}

impl SmCall {
    /// The methodCall document, members in xapi's order.
    pub fn to_xml(&self) -> String {
        let s = |v: &str| Value::from(v);
        let m = |v: &StringMap| Value::from(v);
        let mut members: Vec<(&str, Value)> = vec![
            ("host_ref", s(&self.host_ref)),
            ("command", s(&self.command)),
            (
                "args",
                Value::Array(self.args.iter().map(|a| s(a)).collect()),
            ),
            ("device_config", m(&self.device_config)),
        ];
        let optional: [(&str, Option<Value>); 15] = [
            ("session_ref", self.session_ref.as_deref().map(s)),
            ("sr_sm_config", self.sr_sm_config.as_ref().map(m)),
            ("sr_ref", self.sr_ref.as_deref().map(s)),
            ("vdi_type", self.vdi_type.as_deref().map(s)),
            ("sr_uuid", self.sr_uuid.as_deref().map(s)),
            ("vdi_ref", self.vdi_ref.as_deref().map(s)),
            ("vdi_location", self.vdi_location.as_deref().map(s)),
            ("vdi_uuid", self.vdi_uuid.as_deref().map(s)),
            ("driver_params", self.driver_params.as_ref().map(m)),
            ("vdi_sm_config", self.vdi_sm_config.as_ref().map(m)),
            ("new_uuid", self.new_uuid.as_deref().map(s)),
            ("subtask_of", self.subtask_of.as_deref().map(s)),
            ("vdi_on_boot", self.vdi_on_boot.as_deref().map(s)),
            (
                "vdi_allow_caching",
                self.vdi_allow_caching.as_deref().map(s),
            ),
            ("local_cache_sr", self.local_cache_sr.as_deref().map(s)),
        ];
        members.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        let mut out = String::from("<methodCall><methodName>");
        out.push_str(&escape(&self.command));
        out.push_str("</methodName><params><param><value><struct>");
        for (name, value) in &members {
            out.push_str("<member><name>");
            out.push_str(name);
            out.push_str("</name>");
            xmlrpc::write_value(&mut out, value);
            out.push_str("</member>");
        }
        out.push_str("</struct></value></param></params></methodCall>");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What `sr_get_driver_info` told us about a driver.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverInfo {
    pub name: String,
    pub required_api_version: String,
    /// Capability names, without a `/version` suffix.
    pub capabilities: Vec<String>,
}

impl DriverInfo {
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// The drivers of one simulated pool, the log of their runs, and the host-wide lock that
/// serialises `sr_attach`, `sr_detach` and `sr_probe` (`serialize_attach_detach`).
#[derive(Default)]
pub struct Drivers {
    pub config: Option<DriverConfig>,
    info: Mutex<BTreeMap<String, DriverInfo>>,
    log: Mutex<Vec<DriverCall>>,
    host_locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Who the call runs for: fills the env placeholders.
#[derive(Clone, Debug, Default)]
pub struct HostEnv {
    pub host_ref: String,
    pub host_uuid: String,
    pub host_name: String,
    pub xapi: String,
}

impl Drivers {
    pub fn new(config: Option<DriverConfig>) -> Drivers {
        Drivers {
            config,
            ..Drivers::default()
        }
    }

    pub fn calls(&self) -> Vec<DriverCall> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_calls(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    pub fn host_lock(&self, host: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.host_locks.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        locks.entry(host.to_owned()).or_default().clone()
    }

    /// The executable of an SR type: the `<Name>SR` whose lower-cased name is the type.
    pub(crate) fn executable(&self, sr_type: &str) -> Option<PathBuf> {
        let dir = &self.config.as_ref()?.dir;
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let driver = name.strip_suffix("SR")?;
            let executable = entry.metadata().ok()?.permissions().mode() & 0o111 != 0;
            (executable && !driver.is_empty() && driver.to_ascii_lowercase() == sr_type)
                .then(|| entry.path())
        })
    }

    /// The driver of a type, registered on first use by `sr_get_driver_info` (with no
    /// session), as xapi registers drivers when it starts. `SR_UNKNOWN_DRIVER` if none.
    pub async fn driver_info(&self, sr_type: &str, host: &HostEnv) -> Result<DriverInfo, Failure> {
        if let Some(info) = self.info.lock().ok().and_then(|i| i.get(sr_type).cloned()) {
            return Ok(info);
        }
        let unknown = || Failure::new("SR_UNKNOWN_DRIVER", [sr_type]);
        if self.executable(sr_type).is_none() {
            return Err(unknown());
        }
        let call = SmCall {
            host_ref: host.host_ref.clone(),
            command: "sr_get_driver_info".into(),
            ..SmCall::default()
        };
        let value = self
            .run(sr_type, host, &call, Shape::Any)
            .await
            .map_err(|_| unknown())?;
        let info = parse_driver_info(&value).ok_or_else(unknown)?;
        if let Ok(mut i) = self.info.lock() {
            i.insert(sr_type.to_owned(), info.clone());
        }
        Ok(info)
    }

    /// One run, with xapi's mapping of what came back; the value is returned unparsed
    /// (see [`expect_nil`] and friends for the per-command shapes).
    pub async fn run(
        &self,
        sr_type: &str,
        host: &HostEnv,
        call: &SmCall,
        shape: Shape,
    ) -> Result<Value, Failure> {
        let Some(path) = self.executable(sr_type) else {
            return Err(Failure::new("SR_UNKNOWN_DRIVER", [sr_type]));
        };
        let argv1 = call.to_xml();
        let mut env = vec![
            ("PATH".to_owned(), XAPI_PATH.to_owned()),
            ("ORIGINATOR".to_owned(), "SM".to_owned()),
        ];
        for (k, v) in self.config.iter().flat_map(|c| c.env.iter()) {
            let v = v
                .replace("{host_uuid}", &host.host_uuid)
                .replace("{host_ref}", &host.host_ref)
                .replace("{host_name}", &host.host_name)
                .replace("{xapi}", &host.xapi);
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v));
        }
        let output = tokio::process::Command::new(&path)
            .arg(&argv1)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await;
        let (stdout, stderr, outcome) = match output {
            Err(e) => (
                String::new(),
                String::new(),
                Err(Failure::new(
                    "SR_BACKEND_FAILURE",
                    [
                        format!("cannot run {}: {e}", path.display()),
                        String::new(),
                        String::new(),
                    ],
                )),
            ),
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                let outcome = interpret(call, out.status, &stdout, &stderr)
                    .and_then(|v| check_shape(v, shape));
                (stdout, stderr, outcome)
            }
        };
        tracing::debug!(command = %call.command, sr_type, ok = outcome.is_ok(), "sm_exec");
        if let Ok(mut log) = self.log.lock() {
            log.push(DriverCall {
                host: call.host_ref.clone(),
                sr_type: sr_type.to_owned(),
                command: call.command.clone(),
                args: call.args.clone(),
                device_config: call.device_config.clone(),
                argv1,
                env,
                stdout,
                stderr,
                outcome: outcome.clone(),
            });
        }
        outcome
    }
}

/// `exec_xmlrpc`'s reading of a finished driver.
fn interpret(
    call: &SmCall,
    status: std::process::ExitStatus,
    stdout: &str,
    stderr: &str,
) -> Result<Value, Failure> {
    let backend = |what: String| {
        Failure::new(
            "SR_BACKEND_FAILURE",
            [what, stdout.to_owned(), stderr.to_owned()],
        )
    };
    if let Some(signal) = status.signal() {
        return Err(backend(format!("received signal: {}", signal_name(signal))));
    }
    if !status.success() {
        return Err(backend("non-zero exit".into()));
    }
    match xmlrpc::decode_plain_response(stdout.trim()) {
        Err(_) => Err(backend(
            "Xml_light.Xml_error: driver output is not an XML-RPC methodResponse".into(),
        )),
        Ok(PlainResponse::Value(v)) => Ok(v),
        Ok(PlainResponse::Fault { code, string }) => Err(match code {
            38 => Failure::new(
                "SR_OPERATION_NOT_SUPPORTED",
                [call.sr_ref.clone().unwrap_or_default()],
            ),
            39 => Failure::new("SR_NOT_EMPTY", Vec::<String>::new()),
            24 => Failure::new("VDI_IN_USE", Vec::<String>::new()),
            16 => Failure::new("SR_DEVICE_IN_USE", Vec::<String>::new()),
            144 => Failure::new(
                "VDI_MISSING",
                [
                    call.sr_ref.clone().unwrap_or_default(),
                    call.vdi_ref.clone().unwrap_or_default(),
                ],
            ),
            n => Failure::new(
                format!("SR_BACKEND_FAILURE_{n}"),
                [String::new(), string, stderr.to_owned()],
            ),
        }),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        6 => "SIGABRT".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// xapi's "XML parse failure" for a value of the wrong shape.
fn shape_failure(value: &Value, reason: &str) -> Failure {
    let mut xml = String::new();
    xmlrpc::write_value(&mut xml, value);
    Failure::new(
        "SR_BACKEND_FAILURE",
        [
            String::new(),
            format!("XML parse failure: {xml}"),
            reason.to_owned(),
        ],
    )
}

fn check_shape(value: Value, shape: Shape) -> Result<Value, Failure> {
    let wrong = |looking_for: &str| {
        Err(shape_failure(
            &value,
            &format!("XMLRPC unmarshall RunTimeTypeError: looking for {looking_for}"),
        ))
    };
    match shape {
        Shape::Any => Ok(value),
        // An empty string is not nil to xapi.
        Shape::Nil if value == Value::Nil => Ok(value),
        Shape::Nil => wrong("nil"),
        Shape::String if matches!(value, Value::String(_)) => Ok(value),
        Shape::String => wrong("string"),
        Shape::Attach => match value.as_struct() {
            None => wrong("struct"),
            Some(m) if !matches!(m.get("params_nbd"), Some(Value::String(_))) => {
                Err(shape_failure(&value, "<struct> missing field: params_nbd"))
            }
            Some(_) => Ok(value),
        },
    }
}

/// The string members of a `vdi_attach` answer (`params`, `params_nbd`, …).
pub fn attach_result(value: &Value) -> BTreeMap<String, String> {
    value
        .as_struct()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_driver_info(value: &Value) -> Option<DriverInfo> {
    let info = value.as_struct()?;
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    for required in [
        "name",
        "description",
        "vendor",
        "copyright",
        "driver_version",
        "required_api_version",
    ] {
        text(required)?;
    }
    let capabilities = info
        .get("capabilities")?
        .as_array()?
        .iter()
        .map(|c| {
            c.as_str()
                .map(|c| c.split('/').next().unwrap_or(c).to_owned())
        })
        .collect::<Option<Vec<_>>>()?;
    for entry in info.get("configuration")?.as_array()? {
        let entry = entry.as_struct()?;
        entry.get("key")?.as_str()?;
        entry.get("description")?.as_str()?;
    }
    Some(DriverInfo {
        name: text("name")?,
        required_api_version: text("required_api_version")?,
        capabilities,
    })
}
