//! The simulated pool's database: one table per class, rows as xapi keeps them, records
//! rendered exactly as `get_record` returns them. Every change is stamped with a generation
//! so `event.from` can say what changed since a token. The whole thing is what the state
//! file holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xenapi::Value;

pub type StringMap = BTreeMap<String, String>;

/// The classes the simulator serves, with the names the IDL gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Class {
    Session,
    Pool,
    Host,
    Sr,
    Pbd,
    Vdi,
    Message,
    Sm,
    Vm,
    Vbd,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Session,
        Class::Pool,
        Class::Host,
        Class::Sr,
        Class::Pbd,
        Class::Vdi,
        Class::Message,
        Class::Sm,
        Class::Vm,
        Class::Vbd,
    ];

    /// As in method names and `HANDLE_INVALID`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Session => "session",
            Class::Pool => "pool",
            Class::Host => "host",
            Class::Sr => "SR",
            Class::Pbd => "PBD",
            Class::Vdi => "VDI",
            Class::Message => "message",
            Class::Sm => "SM",
            Class::Vm => "VM",
            Class::Vbd => "VBD",
        }
    }

    /// As in `event.from` subscriptions and events: lower case.
    pub fn event_name(self) -> String {
        self.name().to_ascii_lowercase()
    }

    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The map fields a client may change with `add_to_*` / `remove_from_*` / `set_*`.
    pub fn rw_maps(self) -> &'static [&'static str] {
        match self {
            Class::Pool | Class::Host | Class::Pbd | Class::Sm | Class::Vm | Class::Vbd => {
                &["other_config"]
            }
            Class::Sr => &["other_config", "sm_config"],
            Class::Vdi => &["other_config", "sm_config", "xenstore_data"],
            Class::Session | Class::Message => &[],
        }
    }

    /// The string fields a client may `set_*`.
    pub fn rw_strings(self) -> &'static [&'static str] {
        match self {
            Class::Pool | Class::Host | Class::Sr | Class::Vdi | Class::Vm => {
                &["name_label", "name_description"]
            }
            _ => &[],
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PoolRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub master: String,
    pub other_config: StringMap,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub hostname: String,
    pub address: String,
    pub enabled: bool,
    pub other_config: StringMap,
    pub multipathing: bool,
    pub iscsi_iqn: String,
    pub api_version_major: i64,
    pub api_version_minor: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SrRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub sr_type: String,
    pub content_type: String,
    pub shared: bool,
    pub physical_size: i64,
    pub physical_utilisation: i64,
    pub virtual_allocation: i64,
    pub other_config: StringMap,
    pub sm_config: StringMap,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PbdRow {
    pub uuid: String,
    pub host: String,
    pub sr: String,
    pub device_config: StringMap,
    pub currently_attached: bool,
    pub other_config: StringMap,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VdiRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub sr: String,
    pub vdi_type: String,
    pub sharable: bool,
    pub read_only: bool,
    pub location: String,
    pub managed: bool,
    pub missing: bool,
    pub other_config: StringMap,
    pub xenstore_data: StringMap,
    pub sm_config: StringMap,
    pub virtual_size: i64,
    pub physical_utilisation: i64,
    pub is_a_snapshot: bool,
    pub snapshot_of: String,
    pub snapshot_time: String,
    pub metadata_of_pool: String,
    pub cbt_enabled: bool,
}

/// A storage plugin as xapi registers it from `sr_get_driver_info` (`Xapi_sm`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SmRow {
    pub uuid: String,
    pub sm_type: String,
    pub name_label: String,
    pub name_description: String,
    pub vendor: String,
    pub copyright: String,
    pub version: String,
    pub required_api_version: String,
    pub capabilities: Vec<String>,
    pub configuration: StringMap,
    /// Where the driver is, e.g. `/opt/xensource/sm/LVMoISCSISR`.
    pub driver_filename: String,
    pub other_config: StringMap,
}

/// A VM; each host has its control domain (dom0), whose VBDs are the disks dom0 attaches.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VmRow {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub is_control_domain: bool,
    /// The host it runs on (`OpaqueRef:NULL` when halted).
    pub resident_on: String,
    /// `Running`, `Halted`, …
    pub power_state: String,
    pub other_config: StringMap,
}

/// A virtual block device: a VM's use of a VDI.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VbdRow {
    pub uuid: String,
    pub vm: String,
    pub vdi: String,
    pub userdevice: String,
    pub device: String,
    /// `RW` or `RO`.
    pub mode: String,
    pub currently_attached: bool,
    pub other_config: StringMap,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MessageRow {
    pub uuid: String,
    pub name: String,
    pub priority: i64,
    pub cls: String,
    pub obj_uuid: String,
    pub timestamp: String,
    pub body: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionRow {
    pub uuid: String,
    pub this_host: String,
    pub this_user: String,
    pub originator: String,
    pub is_local_superuser: bool,
    pub other_config: StringMap,
    pub last_active: String,
    /// Creation order, to find the oldest when a limit is hit.
    #[serde(default)]
    pub serial: u64,
}

/// Where a VDI is attached (as a dom0 VBD plug attaches it), per host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    pub writable: bool,
    pub active: bool,
    /// What the driver's `vdi_attach` answered, e.g. `params`.
    pub result: BTreeMap<String, String>,
}

/// When an object was made, last changed and removed, in generations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stamp {
    pub class: Option<Class>,
    pub object: String,
    pub created: u64,
    pub modified: u64,
    pub deleted: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Db {
    pub pool_ref: String,
    pub pool: PoolRow,
    pub hosts: BTreeMap<String, HostRow>,
    pub srs: BTreeMap<String, SrRow>,
    pub pbds: BTreeMap<String, PbdRow>,
    pub vdis: BTreeMap<String, VdiRow>,
    pub messages: BTreeMap<String, MessageRow>,
    #[serde(default)]
    pub sms: BTreeMap<String, SmRow>,
    #[serde(default)]
    pub vms: BTreeMap<String, VmRow>,
    #[serde(default)]
    pub vbds: BTreeMap<String, VbdRow>,
    pub sessions: BTreeMap<String, SessionRow>,
    /// `"<vdi ref>/<host ref>"` → attachment.
    pub attachments: BTreeMap<String, Attachment>,
    pub generation: u64,
    /// `"<class>/<ref>"` → stamp, kept after deletion so a `del` event can be reported.
    pub stamps: BTreeMap<String, Stamp>,
}

pub const NULL_REF: &str = "OpaqueRef:NULL";

pub fn new_ref() -> String {
    format!("OpaqueRef:{}", new_uuid())
}

/// A random (version 4) uuid, from the kernel's generator.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if read.is_err() {
        // Unique is what matters here, not unpredictable.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        b[8..].copy_from_slice(&n.to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Now, as xapi writes datetimes: `YYYYMMDDTHH:MM:SSZ`.
pub fn now_datetime() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn map(m: &StringMap) -> Value {
    Value::from(m)
}

fn refs(iter: impl Iterator<Item = String>) -> Value {
    Value::Array(iter.map(Value::String).collect())
}

impl Db {
    /// Records a change to an object, for `event.from`.
    pub fn touch(&mut self, class: Class, object: &str) {
        self.generation += 1;
        let generation = self.generation;
        let stamp = self
            .stamps
            .entry(format!("{}/{object}", class.name()))
            .or_insert_with(|| Stamp {
                class: Some(class),
                object: object.to_owned(),
                created: generation,
                ..Stamp::default()
            });
        stamp.modified = generation;
    }

    /// Adds an SR row and one unplugged PBD per host carrying `device_config`, as
    /// `SR.create` and a test's direct set-up both do. Returns the SR ref and the PBD refs.
    pub fn insert_sr(
        &mut self,
        row: SrRow,
        hosts: &[String],
        device_config: &BTreeMap<String, String>,
    ) -> (String, Vec<String>) {
        let sr = new_ref();
        self.srs.insert(sr.clone(), row);
        self.created(Class::Sr, &sr);
        let pbds = hosts
            .iter()
            .map(|host| {
                let pbd = new_ref();
                self.pbds.insert(
                    pbd.clone(),
                    PbdRow {
                        uuid: new_uuid(),
                        host: host.clone(),
                        sr: sr.clone(),
                        device_config: device_config.clone(),
                        ..PbdRow::default()
                    },
                );
                self.created(Class::Pbd, &pbd);
                pbd
            })
            .collect();
        (sr, pbds)
    }

    pub fn created(&mut self, class: Class, object: &str) {
        self.generation += 1;
        self.stamps.insert(
            format!("{}/{object}", class.name()),
            Stamp {
                class: Some(class),
                object: object.to_owned(),
                created: self.generation,
                modified: self.generation,
                deleted: None,
            },
        );
    }

    pub fn deleted(&mut self, class: Class, object: &str) {
        self.generation += 1;
        let generation = self.generation;
        if let Some(stamp) = self.stamps.get_mut(&format!("{}/{object}", class.name())) {
            stamp.modified = generation;
            stamp.deleted = Some(generation);
        }
    }

    pub fn exists(&self, class: Class, object: &str) -> bool {
        match class {
            Class::Session => self.sessions.contains_key(object),
            Class::Pool => self.pool_ref == object,
            Class::Host => self.hosts.contains_key(object),
            Class::Sr => self.srs.contains_key(object),
            Class::Pbd => self.pbds.contains_key(object),
            Class::Vdi => self.vdis.contains_key(object),
            Class::Message => self.messages.contains_key(object),
            Class::Sm => self.sms.contains_key(object),
            Class::Vm => self.vms.contains_key(object),
            Class::Vbd => self.vbds.contains_key(object),
        }
    }

    pub fn all(&self, class: Class) -> Vec<String> {
        match class {
            Class::Session => self.sessions.keys().cloned().collect(),
            Class::Pool => vec![self.pool_ref.clone()],
            Class::Host => self.hosts.keys().cloned().collect(),
            Class::Sr => self.srs.keys().cloned().collect(),
            Class::Pbd => self.pbds.keys().cloned().collect(),
            Class::Vdi => self.vdis.keys().cloned().collect(),
            Class::Message => self.messages.keys().cloned().collect(),
            Class::Sm => self.sms.keys().cloned().collect(),
            Class::Vm => self.vms.keys().cloned().collect(),
            Class::Vbd => self.vbds.keys().cloned().collect(),
        }
    }

    pub fn uuid_of(&self, class: Class, object: &str) -> Option<&str> {
        Some(match class {
            Class::Session => &self.sessions.get(object)?.uuid,
            Class::Pool => (self.pool_ref == object).then_some(&self.pool.uuid)?,
            Class::Host => &self.hosts.get(object)?.uuid,
            Class::Sr => &self.srs.get(object)?.uuid,
            Class::Pbd => &self.pbds.get(object)?.uuid,
            Class::Vdi => &self.vdis.get(object)?.uuid,
            Class::Message => &self.messages.get(object)?.uuid,
            Class::Sm => &self.sms.get(object)?.uuid,
            Class::Vm => &self.vms.get(object)?.uuid,
            Class::Vbd => &self.vbds.get(object)?.uuid,
        })
    }

    pub fn by_uuid(&self, class: Class, uuid: &str) -> Option<String> {
        self.all(class)
            .into_iter()
            .find(|r| self.uuid_of(class, r) == Some(uuid))
    }

    /// The record as `<class>.get_record` returns it.
    pub fn record(&self, class: Class, object: &str) -> Option<Value> {
        let fields: Vec<(&str, Value)> = match class {
            Class::Session => {
                let s = self.sessions.get(object)?;
                vec![
                    ("uuid", s.uuid.as_str().into()),
                    ("this_host", s.this_host.as_str().into()),
                    ("this_user", "OpaqueRef:NULL".into()),
                    ("last_active", Value::DateTime(s.last_active.clone())),
                    ("pool", false.into()),
                    ("other_config", map(&s.other_config)),
                    ("is_local_superuser", s.is_local_superuser.into()),
                    ("auth_user_name", s.this_user.as_str().into()),
                    ("originator", s.originator.as_str().into()),
                ]
            }
            Class::Pool => {
                if self.pool_ref != object {
                    return None;
                }
                let p = &self.pool;
                vec![
                    ("uuid", p.uuid.as_str().into()),
                    ("name_label", p.name_label.as_str().into()),
                    ("name_description", p.name_description.as_str().into()),
                    ("master", p.master.as_str().into()),
                    ("default_SR", "OpaqueRef:NULL".into()),
                    ("other_config", map(&p.other_config)),
                ]
            }
            Class::Host => {
                let h = self.hosts.get(object)?;
                let pbds = self
                    .pbds
                    .iter()
                    .filter(|(_, p)| p.host == object)
                    .map(|(r, _)| r.clone());
                vec![
                    ("uuid", h.uuid.as_str().into()),
                    ("name_label", h.name_label.as_str().into()),
                    ("name_description", h.name_description.as_str().into()),
                    ("hostname", h.hostname.as_str().into()),
                    ("address", h.address.as_str().into()),
                    ("enabled", h.enabled.into()),
                    ("other_config", map(&h.other_config)),
                    ("PBDs", refs(pbds)),
                    ("multipathing", h.multipathing.into()),
                    ("iscsi_iqn", h.iscsi_iqn.as_str().into()),
                    ("API_version_major", h.api_version_major.into()),
                    ("API_version_minor", h.api_version_minor.into()),
                    ("API_version_vendor", "XenSource".into()),
                    (
                        "control_domain",
                        self.control_domain(object).unwrap_or(NULL_REF).into(),
                    ),
                ]
            }
            Class::Sr => {
                let s = self.srs.get(object)?;
                let pbds = self
                    .pbds
                    .iter()
                    .filter(|(_, p)| p.sr == object)
                    .map(|(r, _)| r.clone());
                let vdis = self
                    .vdis
                    .iter()
                    .filter(|(_, v)| v.sr == object)
                    .map(|(r, _)| r.clone());
                vec![
                    ("uuid", s.uuid.as_str().into()),
                    ("name_label", s.name_label.as_str().into()),
                    ("name_description", s.name_description.as_str().into()),
                    ("type", s.sr_type.as_str().into()),
                    ("content_type", s.content_type.as_str().into()),
                    ("shared", s.shared.into()),
                    ("PBDs", refs(pbds)),
                    ("VDIs", refs(vdis)),
                    ("physical_size", s.physical_size.into()),
                    ("physical_utilisation", s.physical_utilisation.into()),
                    ("virtual_allocation", s.virtual_allocation.into()),
                    ("other_config", map(&s.other_config)),
                    ("sm_config", map(&s.sm_config)),
                    ("clustered", false.into()),
                    ("is_tools_sr", false.into()),
                ]
            }
            Class::Pbd => {
                let p = self.pbds.get(object)?;
                vec![
                    ("uuid", p.uuid.as_str().into()),
                    ("host", p.host.as_str().into()),
                    ("SR", p.sr.as_str().into()),
                    ("device_config", map(&p.device_config)),
                    ("currently_attached", p.currently_attached.into()),
                    ("other_config", map(&p.other_config)),
                ]
            }
            Class::Vdi => {
                let v = self.vdis.get(object)?;
                vec![
                    ("uuid", v.uuid.as_str().into()),
                    ("name_label", v.name_label.as_str().into()),
                    ("name_description", v.name_description.as_str().into()),
                    ("SR", v.sr.as_str().into()),
                    (
                        "VBDs",
                        refs(
                            self.vbds
                                .iter()
                                .filter(|(_, b)| b.vdi == object)
                                .map(|(r, _)| r.clone()),
                        ),
                    ),
                    ("type", v.vdi_type.as_str().into()),
                    ("sharable", v.sharable.into()),
                    ("read_only", v.read_only.into()),
                    ("location", v.location.as_str().into()),
                    ("managed", v.managed.into()),
                    ("missing", v.missing.into()),
                    ("other_config", map(&v.other_config)),
                    ("xenstore_data", map(&v.xenstore_data)),
                    ("sm_config", map(&v.sm_config)),
                    ("virtual_size", v.virtual_size.into()),
                    ("physical_utilisation", v.physical_utilisation.into()),
                    ("is_a_snapshot", v.is_a_snapshot.into()),
                    ("snapshot_of", v.snapshot_of.as_str().into()),
                    ("snapshot_time", Value::DateTime(v.snapshot_time.clone())),
                    ("metadata_of_pool", v.metadata_of_pool.as_str().into()),
                    ("cbt_enabled", v.cbt_enabled.into()),
                ]
            }
            Class::Message => {
                let m = self.messages.get(object)?;
                vec![
                    ("uuid", m.uuid.as_str().into()),
                    ("name", m.name.as_str().into()),
                    ("priority", m.priority.into()),
                    ("cls", m.cls.as_str().into()),
                    ("obj_uuid", m.obj_uuid.as_str().into()),
                    ("timestamp", Value::DateTime(m.timestamp.clone())),
                    ("body", m.body.as_str().into()),
                ]
            }
            Class::Sm => {
                let m = self.sms.get(object)?;
                vec![
                    ("uuid", m.uuid.as_str().into()),
                    ("name_label", m.name_label.as_str().into()),
                    ("name_description", m.name_description.as_str().into()),
                    ("type", m.sm_type.as_str().into()),
                    ("vendor", m.vendor.as_str().into()),
                    ("copyright", m.copyright.as_str().into()),
                    ("version", m.version.as_str().into()),
                    (
                        "required_api_version",
                        m.required_api_version.as_str().into(),
                    ),
                    ("configuration", map(&m.configuration)),
                    (
                        "capabilities",
                        Value::Array(
                            m.capabilities
                                .iter()
                                .map(|c| Value::String(c.clone()))
                                .collect(),
                        ),
                    ),
                    (
                        "features",
                        m.capabilities
                            .iter()
                            .map(|c| (c.clone(), Value::from(1i64)))
                            .collect(),
                    ),
                    ("other_config", map(&m.other_config)),
                    ("driver_filename", m.driver_filename.as_str().into()),
                    ("required_cluster_stack", Value::Array(Vec::new())),
                ]
            }
            Class::Vm => {
                let v = self.vms.get(object)?;
                vec![
                    ("uuid", v.uuid.as_str().into()),
                    ("name_label", v.name_label.as_str().into()),
                    ("name_description", v.name_description.as_str().into()),
                    ("is_control_domain", v.is_control_domain.into()),
                    ("resident_on", v.resident_on.as_str().into()),
                    ("power_state", v.power_state.as_str().into()),
                    (
                        "VBDs",
                        refs(
                            self.vbds
                                .iter()
                                .filter(|(_, b)| b.vm == object)
                                .map(|(r, _)| r.clone()),
                        ),
                    ),
                    ("other_config", map(&v.other_config)),
                ]
            }
            Class::Vbd => {
                let b = self.vbds.get(object)?;
                vec![
                    ("uuid", b.uuid.as_str().into()),
                    ("VM", b.vm.as_str().into()),
                    ("VDI", b.vdi.as_str().into()),
                    ("userdevice", b.userdevice.as_str().into()),
                    ("device", b.device.as_str().into()),
                    ("mode", b.mode.as_str().into()),
                    ("type", "Disk".into()),
                    ("empty", false.into()),
                    ("currently_attached", b.currently_attached.into()),
                    ("other_config", map(&b.other_config)),
                ]
            }
        };
        Some(fields.into_iter().collect())
    }

    /// A field names of a class, as its records have them.
    pub fn field_names(class: Class) -> Vec<String> {
        let mut db = Db::default();
        let r = "OpaqueRef:template".to_owned();
        match class {
            Class::Session => drop(db.sessions.insert(r.clone(), SessionRow::default())),
            Class::Pool => db.pool_ref = r.clone(),
            Class::Host => drop(db.hosts.insert(r.clone(), HostRow::default())),
            Class::Sr => drop(db.srs.insert(r.clone(), SrRow::default())),
            Class::Pbd => drop(db.pbds.insert(r.clone(), PbdRow::default())),
            Class::Vdi => drop(db.vdis.insert(r.clone(), VdiRow::default())),
            Class::Message => drop(db.messages.insert(r.clone(), MessageRow::default())),
            Class::Sm => drop(db.sms.insert(r.clone(), SmRow::default())),
            Class::Vm => drop(db.vms.insert(r.clone(), VmRow::default())),
            Class::Vbd => drop(db.vbds.insert(r.clone(), VbdRow::default())),
        }
        match db.record(class, &r) {
            Some(Value::Struct(fields)) => fields.into_keys().collect(),
            _ => Vec::new(),
        }
    }

    /// A client-writable map field of an object.
    pub fn map_mut(&mut self, class: Class, object: &str, field: &str) -> Option<&mut StringMap> {
        match (class, field) {
            (Class::Pool, "other_config") if self.pool_ref == object => {
                Some(&mut self.pool.other_config)
            }
            (Class::Host, "other_config") => Some(&mut self.hosts.get_mut(object)?.other_config),
            (Class::Sr, "other_config") => Some(&mut self.srs.get_mut(object)?.other_config),
            (Class::Sr, "sm_config") => Some(&mut self.srs.get_mut(object)?.sm_config),
            (Class::Pbd, "other_config") => Some(&mut self.pbds.get_mut(object)?.other_config),
            (Class::Vdi, "other_config") => Some(&mut self.vdis.get_mut(object)?.other_config),
            (Class::Vdi, "sm_config") => Some(&mut self.vdis.get_mut(object)?.sm_config),
            (Class::Vdi, "xenstore_data") => Some(&mut self.vdis.get_mut(object)?.xenstore_data),
            (Class::Sm, "other_config") => Some(&mut self.sms.get_mut(object)?.other_config),
            (Class::Vm, "other_config") => Some(&mut self.vms.get_mut(object)?.other_config),
            (Class::Vbd, "other_config") => Some(&mut self.vbds.get_mut(object)?.other_config),
            _ => None,
        }
    }

    /// A client-writable string field of an object.
    pub fn string_mut(&mut self, class: Class, object: &str, field: &str) -> Option<&mut String> {
        match (class, field) {
            (Class::Pool, "name_label") if self.pool_ref == object => {
                Some(&mut self.pool.name_label)
            }
            (Class::Pool, "name_description") if self.pool_ref == object => {
                Some(&mut self.pool.name_description)
            }
            (Class::Host, "name_label") => Some(&mut self.hosts.get_mut(object)?.name_label),
            (Class::Host, "name_description") => {
                Some(&mut self.hosts.get_mut(object)?.name_description)
            }
            (Class::Sr, "name_label") => Some(&mut self.srs.get_mut(object)?.name_label),
            (Class::Sr, "name_description") => {
                Some(&mut self.srs.get_mut(object)?.name_description)
            }
            (Class::Vdi, "name_label") => Some(&mut self.vdis.get_mut(object)?.name_label),
            (Class::Vdi, "name_description") => {
                Some(&mut self.vdis.get_mut(object)?.name_description)
            }
            (Class::Vm, "name_label") => Some(&mut self.vms.get_mut(object)?.name_label),
            (Class::Vm, "name_description") => {
                Some(&mut self.vms.get_mut(object)?.name_description)
            }
            _ => None,
        }
    }

    /// A host's control domain (dom0).
    pub fn control_domain(&self, host: &str) -> Option<&str> {
        self.vms
            .iter()
            .find(|(_, v)| v.is_control_domain && v.resident_on == host)
            .map(|(r, _)| r.as_str())
    }

    /// Adds a host's control domain.
    pub fn insert_control_domain(&mut self, host: &str, name: &str) -> String {
        let vm = new_ref();
        self.vms.insert(
            vm.clone(),
            VmRow {
                uuid: new_uuid(),
                name_label: format!("Control domain on host: {name}"),
                is_control_domain: true,
                resident_on: host.to_owned(),
                power_state: "Running".into(),
                ..VmRow::default()
            },
        );
        self.created(Class::Vm, &vm);
        vm
    }

    /// Adds a VBD of a VM for a VDI.
    pub fn insert_vbd(&mut self, vm: &str, vdi: &str, attached: bool) -> String {
        let userdevice = self
            .vbds
            .values()
            .filter(|b| b.vm == vm)
            .count()
            .to_string();
        let vbd = new_ref();
        self.vbds.insert(
            vbd.clone(),
            VbdRow {
                uuid: new_uuid(),
                vm: vm.to_owned(),
                vdi: vdi.to_owned(),
                userdevice,
                mode: "RW".into(),
                currently_attached: attached,
                ..VbdRow::default()
            },
        );
        self.created(Class::Vbd, &vbd);
        vbd
    }

    /// The SM record of an SR type.
    pub fn sm_of(&self, sr_type: &str) -> Option<&SmRow> {
        self.sms.values().find(|m| m.sm_type == sr_type)
    }

    /// Registers (or re-registers) an SM record, as xapi does for each driver it finds.
    pub fn register_sm(&mut self, row: SmRow) -> String {
        if let Some((r, existing)) = self.sms.iter_mut().find(|(_, m)| m.sm_type == row.sm_type) {
            let uuid = std::mem::take(&mut existing.uuid);
            *existing = SmRow { uuid, ..row };
            let r = r.clone();
            self.touch(Class::Sm, &r);
            return r;
        }
        let r = new_ref();
        let uuid = if row.uuid.is_empty() {
            new_uuid()
        } else {
            row.uuid.clone()
        };
        self.sms.insert(r.clone(), SmRow { uuid, ..row });
        self.created(Class::Sm, &r);
        r
    }

    /// The host whose driver runs the SR-wide calls: the pool master for a shared SR, else
    /// the host of its one PBD (`Helpers.get_srmaster`).
    pub fn sr_master(&self, sr: &str) -> Result<String, xenapi::Failure> {
        let row = self
            .srs
            .get(sr)
            .ok_or_else(|| xenapi::Failure::new("HANDLE_INVALID", ["SR", sr]))?;
        if row.shared {
            return Ok(self.pool.master.clone());
        }
        let hosts: Vec<&str> = self
            .pbds
            .values()
            .filter(|p| p.sr == sr)
            .map(|p| p.host.as_str())
            .collect();
        match hosts.as_slice() {
            [] => Err(xenapi::Failure::new("SR_HAS_NO_PBDS", [sr])),
            [one] => Ok((*one).to_owned()),
            _ => Err(xenapi::Failure::new("SR_HAS_MULTIPLE_PBDS", [sr])),
        }
    }
}
