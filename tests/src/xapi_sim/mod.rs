//! An xapi simulator that speaks real XenAPI: XML-RPC at `/` and `/RPC2`, JSON-RPC at
//! `/jsonrpc`, over a unix socket (pre-authenticated as root, like `/var/lib/xcp/xapi`),
//! plain TCP and TLS 1.2, with xapi's wire formats and error codes. It keeps a pool of hosts
//! with SRs, PBDs, VDIs and messages, runs SMAPIv1 drivers as xapi's `sm_exec` does for
//! `SR.create`, `SR.probe`, `SR.scan`, `PBD.plug`, `PBD.unplug` and VDI attach/detach, and
//! saves its state to a file so a demo can stop and resume.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sm_testkit::xapi_sim::{XapiSim, SrSpec};
//! let sim = XapiSim::builder().hosts(2).driver_dir("/tmp/drivers").build();
//! let sr = sim.add_sr(SrSpec::shared("lunoiscsi", "iSCSI LUNs"));
//! sim.listen_unix("/tmp/xapi.sock").await?;
//! # let _ = sr; Ok(()) }
//! ```

mod api;
pub mod db;
mod events;
pub mod filter;
mod http;
pub mod sm_exec;
mod storage;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::AbortHandle;
use xenapi::Failure;

pub use db::{
    Attachment, Class, Db, HostRow, MessageRow, PbdRow, SmRow, SrRow, StringMap, VbdRow, VdiRow,
    VmRow,
};
pub use sm_exec::{DriverCall, DriverConfig};
pub use tls::SelfSignedCert;

/// The pool's simulated xapi. Cheap to clone; every clone is the same pool.
#[derive(Clone)]
pub struct XapiSim {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<Db>,
    settings: Settings,
    drivers: sm_exec::Drivers,
    /// Bumped on every change; `event.from` waits on it.
    changes: tokio::sync::watch::Sender<u64>,
    listeners: Mutex<Vec<AbortHandle>>,
    unix_socket: Mutex<Option<PathBuf>>,
}

#[derive(Clone, Debug)]
struct Settings {
    root_password: String,
    auth_failure_delay: Duration,
    state_file: Option<PathBuf>,
}

/// How to make a simulator.
#[derive(Clone, Debug)]
pub struct Builder {
    hosts: usize,
    settings: Settings,
    drivers: Option<DriverConfig>,
}

/// An SR to put in the pool, with one unplugged PBD per host (per the first host if not shared).
#[derive(Clone, Debug, Default)]
pub struct SrSpec {
    pub sr_type: String,
    pub name_label: String,
    pub shared: bool,
    pub content_type: String,
    pub device_config: StringMap,
    pub sm_config: StringMap,
    pub physical_size: i64,
}

impl SrSpec {
    pub fn shared(sr_type: &str, name_label: &str) -> SrSpec {
        SrSpec {
            sr_type: sr_type.into(),
            name_label: name_label.into(),
            shared: true,
            ..SrSpec::default()
        }
    }

    pub fn device_config(mut self, key: &str, value: &str) -> SrSpec {
        self.device_config.insert(key.into(), value.into());
        self
    }
}

/// The SR made by [`XapiSim::add_sr`]: its ref and uuid, and its PBDs in host order.
#[derive(Clone, Debug)]
pub struct SrHandle {
    pub sr: String,
    pub uuid: String,
    pub pbds: Vec<String>,
}

/// A VDI to put in an SR.
#[derive(Clone, Debug, Default)]
pub struct VdiSpec {
    pub name_label: String,
    pub location: String,
    pub virtual_size: i64,
    pub sm_config: StringMap,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            hosts: 1,
            settings: Settings {
                root_password: String::new(),
                auth_failure_delay: Duration::from_secs(5),
                state_file: None,
            },
            drivers: None,
        }
    }
}

impl Builder {
    /// The pool size; the first host is the master.
    pub fn hosts(mut self, n: usize) -> Builder {
        self.hosts = n.max(1);
        self
    }

    /// root's password for logins over TCP (the unix socket checks none).
    pub fn root_password(mut self, password: &str) -> Builder {
        password.clone_into(&mut self.settings.root_password);
        self
    }

    /// xapi sleeps 5 s before it answers a failed login; tests may not want to.
    pub fn auth_failure_delay(mut self, delay: Duration) -> Builder {
        self.settings.auth_failure_delay = delay;
        self
    }

    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Builder {
        self.settings.state_file = Some(path.into());
        self
    }

    pub fn driver_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.drivers.get_or_insert_with(DriverConfig::default).dir = dir.into();
        self
    }

    /// An extra variable for every driver run; see [`DriverConfig::env`] for placeholders.
    pub fn driver_env(mut self, key: &str, value: &str) -> Builder {
        self.drivers
            .get_or_insert_with(DriverConfig::default)
            .env
            .push((key.into(), value.into()));
        self
    }

    /// A new pool.
    pub fn build(self) -> XapiSim {
        let mut db = Db::default();
        db.pool_ref = db::new_ref();
        let mut master = String::new();
        for i in 0..self.hosts {
            let host = db::new_ref();
            let uuid = db::new_uuid();
            db.hosts.insert(
                host.clone(),
                HostRow {
                    uuid: uuid.clone(),
                    name_label: format!("host{i}"),
                    hostname: format!("host{i}"),
                    address: format!("192.0.2.{}", i + 10),
                    enabled: true,
                    other_config: [(
                        "iscsi_iqn".to_owned(),
                        format!("iqn.2026-01.com.example:host{i}"),
                    )]
                    .into(),
                    iscsi_iqn: format!("iqn.2026-01.com.example:host{i}"),
                    api_version_major: 2,
                    api_version_minor: 21,
                    ..HostRow::default()
                },
            );
            db.created(Class::Host, &host);
            db.insert_control_domain(&host, &format!("host{i}"));
            if i == 0 {
                master = host;
            }
        }
        db.pool = db::PoolRow {
            uuid: db::new_uuid(),
            name_label: "pool".into(),
            master,
            ..db::PoolRow::default()
        };
        let pool_ref = db.pool_ref.clone();
        db.created(Class::Pool, &pool_ref);
        XapiSim::from_parts(db, self.settings, self.drivers)
    }

    /// The pool saved in the state file, or a new one if there is no file yet.
    pub fn load_or_build(self) -> std::io::Result<XapiSim> {
        let Some(path) = self.settings.state_file.clone() else {
            return Ok(self.build());
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let db: Db = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                Ok(XapiSim::from_parts(db, self.settings, self.drivers))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let sim = self.build();
                sim.save();
                Ok(sim)
            }
            Err(e) => Err(e),
        }
    }
}

impl XapiSim {
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn from_parts(db: Db, settings: Settings, drivers: Option<DriverConfig>) -> XapiSim {
        let generation = db.generation;
        XapiSim {
            inner: Arc::new(Inner {
                db: Mutex::new(db),
                settings,
                drivers: sm_exec::Drivers::new(drivers),
                changes: tokio::sync::watch::Sender::new(generation),
                listeners: Mutex::new(Vec::new()),
                unix_socket: Mutex::new(None),
            }),
        }
    }

    /// The database, locked. Hold it briefly: every API call waits for it, and so does every
    /// other method of the simulator (do not call one while holding this guard).
    pub fn db(&self) -> MutexGuard<'_, Db> {
        match self.inner.db.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A copy of the database, for assertions that need no lock.
    pub fn snapshot(&self) -> Db {
        self.db().clone()
    }

    /// Runs `f` on the database as one change: saved and announced to `event.from` after.
    pub fn modify<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        let (out, generation) = {
            let mut db = self.db();
            let out = f(&mut db);
            (out, db.generation)
        };
        self.changed(generation);
        out
    }

    fn changed(&self, generation: u64) {
        self.inner.changes.send_replace(generation);
        self.save();
    }

    /// Writes the state file, if there is one (atomically: a crash leaves the old one).
    pub fn save(&self) {
        let Some(path) = &self.inner.settings.state_file else {
            return;
        };
        let json = match serde_json::to_vec_pretty(&*self.db()) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!("xapi-sim: cannot serialise state: {e}");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!("xapi-sim: cannot save state to {}: {e}", path.display());
        }
    }

    pub fn hosts(&self) -> Vec<String> {
        let db = self.db();
        // The master first, then the others in creation order of their names.
        let mut hosts: Vec<(String, String)> = db
            .hosts
            .iter()
            .map(|(r, h)| (h.name_label.clone(), r.clone()))
            .collect();
        hosts.sort_by_key(|a| (a.1 != db.pool.master, natural(&a.0)));
        hosts.into_iter().map(|(_, r)| r).collect()
    }

    pub fn master(&self) -> String {
        self.db().pool.master.clone()
    }

    /// Adds an SR with one PBD per host (one, on the master, if not shared), all unplugged.
    pub fn add_sr(&self, spec: SrSpec) -> SrHandle {
        let hosts = self.hosts();
        self.modify(|db| {
            let uuid = db::new_uuid();
            let row = SrRow {
                uuid: uuid.clone(),
                name_label: spec.name_label,
                sr_type: spec.sr_type,
                content_type: spec.content_type,
                shared: spec.shared,
                physical_size: spec.physical_size,
                sm_config: spec.sm_config,
                ..SrRow::default()
            };
            let on: &[String] = if spec.shared { &hosts } else { &hosts[..1] };
            let (sr, pbds) = db.insert_sr(row, on, &spec.device_config);
            SrHandle { sr, uuid, pbds }
        })
    }

    pub fn add_vdi(&self, sr: &str, spec: VdiSpec) -> String {
        self.modify(|db| {
            let vdi = db::new_ref();
            let uuid = db::new_uuid();
            db.vdis.insert(
                vdi.clone(),
                VdiRow {
                    location: if spec.location.is_empty() {
                        uuid.clone()
                    } else {
                        spec.location
                    },
                    uuid,
                    name_label: spec.name_label,
                    sr: sr.into(),
                    vdi_type: "user".into(),
                    managed: true,
                    virtual_size: spec.virtual_size,
                    sm_config: spec.sm_config,
                    ..VdiRow::default()
                },
            );
            db.created(Class::Vdi, &vdi);
            vdi
        })
    }

    /// Registers a storage plugin of a type the simulator does not run (a stock SR type), as
    /// xapi registers the drivers it finds at start.
    pub fn add_sm(&self, row: SmRow) -> String {
        self.modify(|db| db.register_sm(row))
    }

    /// A halted VM (no VBDs yet).
    pub fn add_vm(&self, name_label: &str) -> String {
        self.modify(|db| {
            let vm = db::new_ref();
            db.vms.insert(
                vm.clone(),
                VmRow {
                    uuid: db::new_uuid(),
                    name_label: name_label.into(),
                    resident_on: db::NULL_REF.into(),
                    power_state: "Halted".into(),
                    ..VmRow::default()
                },
            );
            db.created(Class::Vm, &vm);
            vm
        })
    }

    /// A disk of a VM (`xe vbd-create`), not plugged.
    pub fn add_vbd(&self, vm: &str, vdi: &str) -> Result<String, Failure> {
        self.modify(|db| {
            let managed = db
                .vdis
                .get(vdi)
                .ok_or_else(|| Failure::new("HANDLE_INVALID", ["VDI", vdi]))?
                .managed;
            if !managed {
                return Err(Failure::new("VDI_NOT_MANAGED", [vdi]));
            }
            if !db.vms.contains_key(vm) {
                return Err(Failure::new("HANDLE_INVALID", ["VM", vm]));
            }
            Ok(db.insert_vbd(vm, vdi, false))
        })
    }

    /// The PBD of an SR on a host.
    pub fn pbd_of(&self, host: &str, sr: &str) -> Option<String> {
        self.db()
            .pbds
            .iter()
            .find(|(_, p)| p.host == host && p.sr == sr)
            .map(|(r, _)| r.clone())
    }

    /// A session as a local root login makes one, for in-process tests.
    pub fn login_local(&self, originator: &str) -> String {
        let host = self.master();
        self.modify(|db| api::new_session(db, &host, "root", originator, None))
    }

    /// Every driver run so far.
    pub fn driver_calls(&self) -> Vec<DriverCall> {
        self.inner.drivers.calls()
    }

    pub fn clear_driver_calls(&self) {
        self.inner.drivers.clear_calls();
    }

    /// `PBD.plug`, in process.
    pub async fn plug(&self, pbd: &str) -> Result<(), Failure> {
        storage::pbd_plug(self, pbd).await
    }

    /// `PBD.unplug`, in process.
    pub async fn unplug(&self, pbd: &str) -> Result<(), Failure> {
        storage::pbd_unplug(self, pbd).await
    }

    /// Attaches a VDI on a host as a dom0 VBD plug does: `vdi_attach`, then `vdi_activate`
    /// if the driver has `VDI_ACTIVATE`. Returns what `vdi_attach` answered.
    pub async fn attach_vdi(
        &self,
        host: &str,
        vdi: &str,
        writable: bool,
    ) -> Result<StringMap, Failure> {
        storage::vdi_attach(self, host, vdi, writable).await
    }

    /// The reverse: `vdi_deactivate` (with `VDI_DEACTIVATE`), then `vdi_detach`.
    pub async fn detach_vdi(&self, host: &str, vdi: &str) -> Result<(), Failure> {
        storage::vdi_detach(self, host, vdi).await
    }

    /// `VM.start_on` as far as storage goes: each of the VM's VBDs is plugged (the driver's
    /// `vdi_attach` and `vdi_activate` on the host, for the VM's VBD rather than dom0's),
    /// then the VM runs there.
    pub async fn start_vm(&self, vm: &str, host: &str) -> Result<(), Failure> {
        let vbds: Vec<(String, String, bool)> = {
            let db = self.db();
            if !db.vms.contains_key(vm) {
                return Err(Failure::new("HANDLE_INVALID", ["VM", vm]));
            }
            db.vbds
                .iter()
                .filter(|(_, b)| b.vm == vm)
                .map(|(r, b)| (r.clone(), b.vdi.clone(), b.mode != "RO"))
                .collect()
        };
        for (vbd, vdi, writable) in vbds {
            storage::vdi_attach(self, host, &vdi, writable).await?;
            self.modify(|db| {
                let dom0 = db.control_domain(host).map(str::to_owned);
                let dom0_vbd = db
                    .vbds
                    .iter()
                    .find(|(_, b)| Some(&b.vm) == dom0.as_ref() && b.vdi == vdi)
                    .map(|(r, _)| r.clone());
                if let Some(r) = dom0_vbd {
                    db.vbds.remove(&r);
                    db.deleted(Class::Vbd, &r);
                }
                if let Some(b) = db.vbds.get_mut(&vbd) {
                    b.currently_attached = true;
                }
                db.touch(Class::Vbd, &vbd);
            });
        }
        self.modify(|db| {
            if let Some(row) = db.vms.get_mut(vm) {
                row.power_state = "Running".into();
                row.resident_on = host.to_owned();
            }
            db.touch(Class::Vm, vm);
        });
        Ok(())
    }

    /// Serves XenAPI on a unix socket, pre-authenticated as root like `/var/lib/xcp/xapi`.
    /// The first such socket is the `{xapi}` drivers are pointed at.
    pub async fn listen_unix(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref().to_owned();
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        if let Ok(mut first) = self.inner.unix_socket.lock() {
            first.get_or_insert(path);
        }
        let task = tokio::spawn(http::serve_unix(self.clone(), listener));
        self.keep(task.abort_handle());
        Ok(())
    }

    /// Serves XenAPI over plain HTTP; returns the bound address (use port 0 for any).
    pub async fn listen_tcp(&self, addr: &str) -> std::io::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(http::serve_tcp(self.clone(), listener, None));
        self.keep(task.abort_handle());
        Ok(local)
    }

    /// Serves XenAPI over TLS 1.2 (what xapi's stunnel speaks) with this certificate.
    pub async fn listen_tls(
        &self,
        addr: &str,
        cert: &SelfSignedCert,
    ) -> std::io::Result<std::net::SocketAddr> {
        let acceptor = cert.acceptor()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(http::serve_tcp(self.clone(), listener, Some(acceptor)));
        self.keep(task.abort_handle());
        Ok(local)
    }

    fn keep(&self, handle: AbortHandle) {
        if let Ok(mut l) = self.inner.listeners.lock() {
            l.push(handle);
        }
    }

    /// Stops listening (connections in flight finish their call).
    pub fn shutdown(&self) {
        if let Ok(mut l) = self.inner.listeners.lock() {
            for h in l.drain(..) {
                h.abort();
            }
        }
    }

    fn xapi_address(&self) -> String {
        self.inner
            .unix_socket
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_default()
    }
}

/// Orders "host2" before "host10".
fn natural(name: &str) -> (String, u64) {
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let stem = name[..name.len() - digits.len()].to_owned();
    (stem, digits.parse().unwrap_or(0))
}
