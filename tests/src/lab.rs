//! A pool on the simulated default, ready for the driver: an [`XapiSim`] pool of N hosts,
//! each host a [`HostSim`] with its own view of the storage, the driver installed in xapi's
//! driver directory as `LUNoISCSISR` and `LUNoHBASR`, and the stand-ins first in `PATH`.
//! The driver runs as xapi runs it, with `SM_RS_ROOT`, `MULTIPATH_SOCKET_NAME` and
//! `SM_RS_XAPI` pointing at its host's simulators.
//!
//! Operations are the ones an administrator uses (`xe sr-create`, `pbd-plug`, …), made over
//! XenAPI with the real client, or in process where xapi itself acts (a VBD plug attaching
//! a VDI).

use crate::fabric::Fabric;
use crate::host_sim::{HostSim, HostSpec, relay};
use crate::multipathd_sim::ReplyStyle;
use crate::xapi_sim::sm_exec::SmCall;
use crate::xapi_sim::{StringMap, XapiSim};
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use xenapi::api::{host, pbd, sr};
use xenapi::refs::{Host, Pbd, Sr};
use xenapi::wire::xmlrpc::{self, PlainResponse};
use xenapi::{Client, Endpoint, Failure, Ref, Session, Value};

/// What the pool looks like.
pub struct LabSpec {
    pub hosts: usize,
    /// Each host's view of the storage (called once per host).
    pub fabric: Box<dyn Fn() -> Fabric>,
    /// The executable installed as the drivers.
    pub driver: PathBuf,
    /// The executable installed as `iscsiadm`, `udevadm`, `systemctl`.
    pub standins: PathBuf,
    pub style: ReplyStyle,
    /// Extra environment for every driver run (e.g. `SM_RS_LOG=stderr`).
    pub env: Vec<(String, String)>,
}

/// One host of the pool.
pub struct LabHost {
    pub host_ref: String,
    pub uuid: String,
    pub name: String,
    pub sim: HostSim,
}

/// A running pool.
pub struct Lab {
    pub runtime: tokio::runtime::Runtime,
    /// xapi's driver directory and the drivers' extra environment (placeholders unfilled).
    pub driver_dir: PathBuf,
    pub driver_env: Vec<(String, String)>,
    pub xapi: XapiSim,
    pub hosts: Vec<LabHost>,
    pub session: Session,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn failure(e: xenapi::Error) -> Failure {
    match e {
        xenapi::Error::Failure(f) => f,
        other => Failure::new("CLIENT_ERROR", [other.to_string()]),
    }
}

impl Lab {
    /// Starts the pool in a fresh temporary directory.
    pub fn start(spec: LabSpec) -> std::io::Result<Lab> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_path_buf();
        let mut lab = Self::start_in(&dir, spec)?;
        lab._temp = Some(temp);
        Ok(lab)
    }

    /// Starts the pool under `dir` (kept afterwards).
    pub fn start_in(dir: &Path, spec: LabSpec) -> std::io::Result<Lab> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let drivers = dir.join("sm");
        let bin = dir.join("bin");
        for d in [&drivers, &bin] {
            std::fs::create_dir_all(d)?;
        }
        for name in ["LUNoISCSISR", "LUNoHBASR"] {
            let _ = std::fs::remove_file(drivers.join(name));
            symlink(&spec.driver, drivers.join(name))?;
        }
        for name in relay::PROGRAMS {
            let _ = std::fs::remove_file(bin.join(name));
            symlink(&spec.standins, bin.join(name))?;
        }
        let socket_prefix = format!("@sm-rs-lab-{}-{n}-", std::process::id());
        let mut driver_env = vec![
            (
                "SM_RS_ROOT".to_string(),
                format!("{}/hosts/{{host_uuid}}", dir.display()),
            ),
            (
                "MULTIPATH_SOCKET_NAME".to_string(),
                format!("{socket_prefix}{{host_uuid}}"),
            ),
            ("SM_RS_XAPI".to_string(), "{xapi}".to_string()),
            (
                "PATH".to_string(),
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
            ),
        ];
        driver_env.extend(spec.env.iter().cloned());
        let mut builder = XapiSim::builder()
            .hosts(spec.hosts)
            .driver_dir(&drivers)
            .driver_env(
                "SM_RS_ROOT",
                &format!("{}/hosts/{{host_uuid}}", dir.display()),
            )
            .driver_env(
                "MULTIPATH_SOCKET_NAME",
                &format!("{socket_prefix}{{host_uuid}}"),
            )
            .driver_env("SM_RS_XAPI", "{xapi}")
            .driver_env(
                "PATH",
                &format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
            );
        for (k, v) in &spec.env {
            builder = builder.driver_env(k, v);
        }
        let xapi = builder.build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let socket = dir.join("xapi.sock");
        runtime.block_on(xapi.listen_unix(&socket))?;
        let client = Client::new(Endpoint::Unix(socket));
        let session = runtime
            .block_on(Session::login_with_password(
                &client,
                "root",
                "",
                "1.0",
                "sm-rs-lab",
            ))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut hosts = Vec::new();
        for host_ref in xapi.hosts() {
            let (uuid, name) = {
                let db = xapi.db();
                let row = &db.hosts[&host_ref];
                (row.uuid.clone(), row.name_label.clone())
            };
            let mut host_spec = HostSpec::new(
                dir.join("hosts").join(&uuid),
                format!("{socket_prefix}{uuid}"),
            );
            host_spec.daemon.style = spec.style;
            let sim = HostSim::start((spec.fabric)(), host_spec)?;
            hosts.push(LabHost {
                host_ref,
                uuid,
                name,
                sim,
            });
        }
        Ok(Lab {
            runtime,
            driver_dir: drivers,
            driver_env,
            xapi,
            hosts,
            session,
            dir: dir.to_path_buf(),
            _temp: None,
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn host(&self, i: usize) -> &LabHost {
        &self.hosts[i]
    }

    /// Sets (`Some`) or removes (`None`) keys of a host's `other_config`.
    pub fn host_config(&self, i: usize, keys: &[(&str, Option<&str>)]) -> Result<(), Failure> {
        let h = Ref::<Host>::new(&self.hosts[i].host_ref);
        self.block_on(async {
            for (k, v) in keys {
                match v {
                    Some(v) => host::put_other_config(&self.session, &h, k, v).await?,
                    None => host::remove_from_other_config(&self.session, &h, k).await?,
                }
            }
            Ok(())
        })
        .map_err(failure)
    }

    /// `xe sr-create shared=true type=… device-config:…` on the master.
    pub fn create_sr(
        &self,
        sr_type: &str,
        name: &str,
        device_config: &[(&str, &str)],
    ) -> Result<Ref<Sr>, Failure> {
        let new = sr::NewSr {
            host: Ref::new(&self.hosts[0].host_ref),
            device_config: device_config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            physical_size: 0,
            name_label: name.into(),
            name_description: String::new(),
            sr_type: sr_type.into(),
            content_type: "user".into(),
            shared: true,
            sm_config: BTreeMap::new(),
        };
        self.block_on(sr::create(&self.session, &new))
            .map_err(failure)
    }

    /// `xe sr-probe`: the answer, or the failure (with the driver's stderr in it).
    pub fn probe(&self, sr_type: &str, device_config: &[(&str, &str)]) -> Result<String, Failure> {
        let dconf: StringMap = device_config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.block_on(sr::probe(
            &self.session,
            &Ref::new(&self.hosts[0].host_ref),
            &dconf,
            sr_type,
            &BTreeMap::new(),
        ))
        .map_err(failure)
    }

    /// The PBD of an SR on a host.
    pub fn pbd(&self, i: usize, sr: &Ref<Sr>) -> Ref<Pbd> {
        Ref::new(
            self.xapi
                .pbd_of(&self.hosts[i].host_ref, sr.as_str())
                .unwrap_or_default(),
        )
    }

    /// `xe pbd-plug`.
    pub fn plug(&self, i: usize, sr: &Ref<Sr>) -> Result<(), Failure> {
        self.block_on(pbd::plug(&self.session, &self.pbd(i, sr)))
            .map_err(failure)
    }

    /// `xe pbd-unplug`.
    pub fn unplug(&self, i: usize, sr: &Ref<Sr>) -> Result<(), Failure> {
        self.block_on(pbd::unplug(&self.session, &self.pbd(i, sr)))
            .map_err(failure)
    }

    /// `xe pbd-param-get param-name=other-config`.
    pub fn pbd_other_config(&self, i: usize, sr: &Ref<Sr>) -> StringMap {
        let pbd = self.pbd(i, sr);
        self.xapi
            .db()
            .pbds
            .get(pbd.as_str())
            .map(|p| p.other_config.clone())
            .unwrap_or_default()
    }

    /// The VDIs of an SR: (ref, uuid, location), by location.
    pub fn vdis(&self, sr: &Ref<Sr>) -> Vec<(String, String, String)> {
        let mut vdis: Vec<(String, String, String)> = self
            .xapi
            .db()
            .vdis
            .iter()
            .filter(|(_, v)| v.sr == sr.as_str())
            .map(|(r, v)| (r.clone(), v.uuid.clone(), v.location.clone()))
            .collect();
        vdis.sort_by(|a, b| a.2.cmp(&b.2));
        vdis
    }

    /// The VDI of a LUN.
    pub fn vdi_of(&self, sr: &Ref<Sr>, scsiid: &str) -> Option<String> {
        self.vdis(sr)
            .into_iter()
            .find(|(_, _, loc)| loc == scsiid)
            .map(|(r, _, _)| r)
    }

    /// `xe vdi-introduce uuid=<listed VDI> sr-uuid=… type=user location=<SCSIid>
    /// sm-config:SCSIid=<SCSIid>`: the administrator claims a LUN the SR lists (unmanaged)
    /// for VMs. The VDI's ref.
    pub fn claim(&self, sr: &Ref<Sr>, scsiid: &str) -> Result<String, Failure> {
        let uuid = self
            .vdis(sr)
            .into_iter()
            .find(|(_, _, loc)| loc == scsiid)
            .map_or_else(crate::xapi_sim::db::new_uuid, |(_, uuid, _)| uuid);
        let sm_config: StringMap = [("SCSIid".to_string(), scsiid.to_string())].into();
        let empty = StringMap::new();
        let params: Vec<Value> = vec![
            uuid.into(),
            "".into(),
            "".into(),
            sr.as_str().into(),
            "user".into(),
            false.into(),
            false.into(),
            (&empty).into(),
            scsiid.into(),
            (&empty).into(),
            (&sm_config).into(),
            true.into(),
        ];
        let vdi = self
            .block_on(self.session.call("VDI.introduce", params))
            .map_err(failure)?;
        vdi.as_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::new("CLIENT_ERROR", ["VDI.introduce answered no ref"]))
    }

    /// `xe vdi-create sr-uuid=… name-label=… virtual-size=… type=user [sm-config:SCSIid=…]`:
    /// claims a LUN of at least that size (the named one, else the smallest free). The VDI.
    pub fn create_vdi(
        &self,
        sr: &Ref<Sr>,
        name: &str,
        size: i64,
        scsiid: Option<&str>,
    ) -> Result<String, Failure> {
        let sm_config: StringMap = scsiid
            .map(|id| ("SCSIid".to_string(), id.to_string()))
            .into_iter()
            .collect();
        let empty = StringMap::new();
        let record: BTreeMap<String, Value> = [
            ("name_label", Value::from(name)),
            ("name_description", Value::from("")),
            ("SR", Value::from(sr.as_str())),
            ("virtual_size", Value::from(size.to_string())),
            ("type", Value::from("user")),
            ("sharable", Value::from(false)),
            ("read_only", Value::from(false)),
            ("other_config", Value::from(&empty)),
            ("xenstore_data", Value::from(&empty)),
            ("sm_config", Value::from(&sm_config)),
            ("tags", Value::Array(Vec::new())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let vdi = self
            .block_on(self.session.call("VDI.create", vec![Value::Struct(record)]))
            .map_err(failure)?;
        vdi.as_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::new("CLIENT_ERROR", ["VDI.create answered no ref"]))
    }

    /// Claims every LUN the SR lists (see [`Self::claim`]); the VDIs, by location.
    pub fn claim_all(&self, sr: &Ref<Sr>) -> Result<Vec<(String, String, String)>, Failure> {
        for (_, _, scsiid) in self.vdis(sr) {
            self.claim(sr, &scsiid)?;
        }
        Ok(self.vdis(sr))
    }

    /// A VBD plug on a host: `vdi_attach` then `vdi_activate`; the attach answer.
    pub fn attach(&self, i: usize, vdi: &str) -> Result<StringMap, Failure> {
        self.block_on(self.xapi.attach_vdi(&self.hosts[i].host_ref, vdi, true))
    }

    /// A VBD unplug: `vdi_deactivate` then `vdi_detach`.
    pub fn detach(&self, i: usize, vdi: &str) -> Result<(), Failure> {
        self.block_on(self.xapi.detach_vdi(&self.hosts[i].host_ref, vdi))
    }
}

impl Lab {
    /// The call xapi would make on host `i` for an SR (and a VDI): `device_config` of the
    /// host's PBD with `SRmaster`, a fresh session.
    pub fn sm_call(
        &self,
        i: usize,
        sr: &Ref<Sr>,
        command: &str,
        args: &[&str],
        vdi: Option<&str>,
    ) -> SmCall {
        let host = &self.hosts[i].host_ref;
        let session = self.xapi.login_local("SM");
        let db = self.xapi.db();
        let mut device_config = db
            .pbds
            .values()
            .find(|p| p.host == *host && p.sr == sr.as_str())
            .map(|p| p.device_config.clone())
            .unwrap_or_default();
        let master = db.sr_master(sr.as_str()).ok() == Some(host.clone());
        device_config.insert("SRmaster".into(), master.to_string());
        let vdi_row = vdi.and_then(|v| db.vdis.get(v));
        SmCall {
            host_ref: host.clone(),
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            device_config,
            session_ref: Some(session),
            sr_ref: Some(sr.as_str().into()),
            sr_uuid: db.srs.get(sr.as_str()).map(|s| s.uuid.clone()),
            vdi_ref: vdi.map(str::to_string),
            vdi_location: vdi_row.map(|v| v.location.clone()),
            vdi_uuid: vdi_row.map(|v| v.uuid.clone()),
            vdi_on_boot: vdi.map(|_| "persist".into()),
            vdi_allow_caching: vdi.map(|_| "false".into()),
            ..SmCall::default()
        }
    }

    /// The driver as xapi starts it on host `i` (argv[1] = the call), not yet waited for.
    pub fn spawn_driver(&self, i: usize, sr_type: &str, argv1: &str) -> std::io::Result<Child> {
        let name = match sr_type {
            "lunoiscsi" => "LUNoISCSISR",
            _ => "LUNoHBASR",
        };
        let h = &self.hosts[i];
        let xapi = format!("unix:{}", self.dir.join("xapi.sock").display());
        let mut command = Command::new(self.driver_dir.join(name));
        command
            .arg(argv1)
            .env_clear()
            .env("ORIGINATOR", "SM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.driver_env {
            let v = v
                .replace("{host_uuid}", &h.uuid)
                .replace("{host_ref}", &h.host_ref)
                .replace("{host_name}", &h.name)
                .replace("{xapi}", &xapi);
            command.env(k, v);
        }
        command.spawn()
    }

    /// Runs the driver on host `i` with a methodCall text; what it printed, and what xapi
    /// makes of stdout (a value or a fault code and string).
    pub fn run_driver(&self, i: usize, sr_type: &str, argv1: &str) -> DriverRun {
        let output = self
            .spawn_driver(i, sr_type, argv1)
            .and_then(|c| c.wait_with_output())
            .expect("the driver runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let response = match xmlrpc::decode_plain_response(stdout.trim()) {
            Ok(PlainResponse::Value(v)) => Ok(v),
            Ok(PlainResponse::Fault { code, string }) => Err((code, string)),
            Err(e) => Err((-1, format!("not a methodResponse: {e}: {stdout}"))),
        };
        DriverRun {
            status: output.status.code(),
            stdout,
            stderr,
            response,
        }
    }
}

/// One driver run outside xapi.
#[derive(Debug)]
pub struct DriverRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub response: Result<Value, (i32, String)>,
}
