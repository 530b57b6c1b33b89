//! A simulated storage fabric: arrays with controllers and ports, ALUA target port groups,
//! LUNs, host initiator ports, and the SCSI devices (paths) a host sees through them.
//!
//! A path is host port × array port × LUN. The kernel's naming is reproduced because the
//! seed log depends on it: every remote port that (re)appears on a SCSI host gets the next
//! target id of that host (so a controller pushed back comes back as `0:0:2:0`, then
//! `0:0:3:0`), a new disk takes the lowest free `sd` index (so it is `sdb` again), and
//! `dev_t` follows the sd driver's major/minor scheme.

use mpathutil::model::Hcil;
use std::collections::{BTreeMap, BTreeSet};

/// How a host port reaches the array; decides which identifiers multipathd can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sas,
    Fc,
    Iscsi,
    /// qemu's virtio-scsi, as in the real-stack VM: no transport identifiers at all.
    Virtio,
    /// A local RAID controller (`megaraid_sas`): its volumes are the server's own disks.
    Raid,
}

impl Transport {
    /// multipathd's `%P`.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Sas => "scsi:sas",
            Self::Fc => "scsi:fcp",
            Self::Iscsi => "scsi:iscsi",
            Self::Virtio | Self::Raid => "scsi:unspec",
        }
    }
}

/// An ALUA target port group's asymmetric access state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    Transitioning,
}

/// What the array answers a TEST UNIT READY on a standby port. Modern arrays (and LIO) say
/// NOT READY 04/0B, which the tur checker reports as `ghost`; some older firmware, like the
/// Intel Multi-Flex of the seed log, answers GOOD and the path shows `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbyTur {
    Ghost,
    Ready,
}

/// How multipath groups this array's paths (`path_grouping_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Failover,
    Multibus,
    GroupByPrio,
}

/// The prioritizer (`prio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prio {
    Const,
    Alua,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    Manual,
    Immediate,
    Followover,
    /// `failback N` (stock sm's multipath.conf sets 10): back to the best group N + 1
    /// checker ticks after it works again.
    Deferred(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPathRetry {
    Undef,
    Queue,
    Fail,
    Retries(u32),
}

/// The multipath.conf device section that applies to an array's LUNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub grouping: Grouping,
    /// With its argument count, e.g. `service-time 0`.
    pub selector: String,
    /// The feature words as the kernel table has them, e.g. `1 queue_if_no_path`.
    pub features: String,
    pub hwhandler: String,
    pub prio: Prio,
    pub checker: String,
    pub failback: Failback,
    pub no_path_retry: NoPathRetry,
}

impl Policy {
    /// multipath-tools' built-in defaults (what the real-stack VM runs for a qemu disk).
    pub fn builtin() -> Self {
        Self {
            grouping: Grouping::Failover,
            selector: "service-time 0".into(),
            features: "0".into(),
            hwhandler: "0".into(),
            prio: Prio::Const,
            checker: "tur".into(),
            failback: Failback::Manual,
            no_path_retry: NoPathRetry::Undef,
        }
    }

    /// An ALUA array grouped by priority.
    pub fn alua(selector: &str) -> Self {
        Self {
            grouping: Grouping::GroupByPrio,
            selector: selector.into(),
            hwhandler: "1 alua".into(),
            prio: Prio::Alua,
            failback: Failback::Immediate,
            ..Self::builtin()
        }
    }
}

/// One controller (storage processor, SCM, slammer) and its target ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSpec {
    pub name: String,
    pub ports: Vec<PortSpec>,
}

/// A target port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    /// Its ALUA target port group.
    pub tpg: u16,
    /// FC: the port's WWPN and its node's WWNN.
    pub wwpn: Option<String>,
    pub wwnn: Option<String>,
    /// iSCSI: the target IQN and the portal address.
    pub target_iqn: Option<String>,
    pub portal: Option<String>,
}

impl PortSpec {
    pub fn new(name: &str, tpg: u16) -> Self {
        Self {
            name: name.into(),
            tpg,
            wwpn: None,
            wwnn: None,
            target_iqn: None,
            portal: None,
        }
    }
}

/// An array as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    pub vendor: String,
    pub product: String,
    pub revision: String,
    pub controllers: Vec<ControllerSpec>,
    /// Initial state of each target port group; empty for an array without ALUA.
    pub tpgs: Vec<(u16, AluaState)>,
    pub standby_tur: StandbyTur,
    pub policy: Policy,
}

/// A LUN as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSpec {
    /// The LUN number the host sees.
    pub lun: u64,
    /// What `scsi_id` prints: the SCSIid, the map's WWID.
    pub wwid: String,
    pub size_bytes: u64,
    pub serial: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPortId(pub usize);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArrayId(pub usize);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LunId {
    pub array: usize,
    pub index: usize,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub usize);
/// A target port: array, controller, port index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    pub array: usize,
    pub controller: usize,
    pub port: usize,
}

/// An initiator port: one SCSI host (`hostN`) of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub scsi_host: u32,
    pub transport: Transport,
    /// FC/SAS: the HBA's PCI address; iSCSI: the session's local address.
    pub adapter: Option<String>,
    pub wwnn: Option<String>,
    pub wwpn: Option<String>,
    /// An iSCSI session reaches the one portal it logged in to; an HBA reaches every
    /// FC/SAS target port (and no iSCSI portal).
    pub reach: Option<PortRef>,
    /// A logged-out session's SCSI host is gone; its number is never reused.
    pub removed: bool,
    next_target: u32,
}

#[derive(Debug, Clone)]
pub struct Array {
    pub spec: ArraySpec,
    pub luns: Vec<LunSpec>,
    present: Vec<bool>,
    /// (controller, port) of failed links.
    failed_ports: BTreeSet<(usize, usize)>,
    alua: BTreeMap<u16, AluaState>,
}

/// A SCSI disk the host has (or had): one path to one LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    pub host_port: HostPortId,
    pub port: PortRef,
    pub lun: LunId,
    pub hcil: Hcil,
    pub name: String,
    pub dev_t: (u32, u32),
    /// False once the kernel removed it; ids are never reused.
    pub present: bool,
    /// `/sys/block/sdX/device/state` is `offline`.
    pub offline: bool,
}

/// What the host can learn about one path right now.
#[derive(Debug, Clone, Copy)]
pub struct PathFacts<'f> {
    pub device: &'f Device,
    pub lun: &'f LunSpec,
    pub array: &'f ArraySpec,
    pub host_port: &'f HostPort,
    pub port: &'f PortSpec,
    /// The link and the controller answer.
    pub transport_up: bool,
    /// The port group's state, for an ALUA array.
    pub alua: Option<AluaState>,
}

/// The whole fabric as seen from one host.
#[derive(Debug, Clone, Default)]
pub struct Fabric {
    host_ports: Vec<HostPort>,
    arrays: Vec<Array>,
    devices: Vec<Device>,
    sd_in_use: BTreeSet<u32>,
    /// Target id of each remote port currently attached to a SCSI host.
    rports: BTreeMap<(HostPortId, PortRef), u32>,
    /// Bumped on every change, so observers know to look again.
    generation: u64,
    /// Arrays that are a server's local RAID volumes, reached only by their controller.
    local_arrays: BTreeSet<usize>,
    /// LUNs the array does not present to this host (LUN masking).
    masked: BTreeSet<LunId>,
}

impl Fabric {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an initiator port; SCSI host numbers are handed out in order.
    pub fn add_host_port(&mut self, transport: Transport) -> HostPortId {
        let n = self.host_ports.len();
        let adapter = match transport {
            Transport::Sas | Transport::Fc | Transport::Raid => {
                Some(format!("0000:{:02x}:00.0", 4 + n))
            }
            Transport::Iscsi => Some(format!("192.0.2.{}", 10 + n)),
            Transport::Virtio => None,
        };
        let (wwnn, wwpn) = match transport {
            Transport::Fc => (
                Some(format!("0x20000024ff{:06x}", 0x3a0000 + n)),
                Some(format!("0x21000024ff{:06x}", 0x3a0000 + n)),
            ),
            _ => (None, None),
        };
        self.host_ports.push(HostPort {
            scsi_host: n as u32,
            transport,
            adapter,
            wwnn,
            wwpn,
            reach: None,
            removed: false,
            next_target: 0,
        });
        self.touch();
        HostPortId(n)
    }

    /// Sets what multipathd prints as the port's host adapter (`%a`, `host_adapter`): the
    /// HBA's PCI address, or for iSCSI the session's local address.
    pub fn set_adapter(&mut self, port: HostPortId, adapter: Option<String>) {
        self.host_ports[port.0].adapter = adapter;
        self.touch();
    }

    /// An iSCSI login to one portal: the kernel makes a new SCSI host for the session and
    /// scans it. Returns the session's host port and the disks found.
    pub fn login_iscsi(&mut self, port: PortRef) -> (HostPortId, Vec<DeviceId>) {
        let hp = self.add_host_port(Transport::Iscsi);
        self.host_ports[hp.0].reach = Some(port);
        let found = self.scan_host_port(hp);
        self.touch();
        (hp, found)
    }

    /// An iSCSI logout: the session's disks and its SCSI host go away.
    pub fn logout_iscsi(&mut self, hp: HostPortId) {
        let gone: Vec<usize> = (0..self.devices.len())
            .filter(|&i| self.devices[i].present && self.devices[i].host_port == hp)
            .collect();
        for i in gone {
            self.remove_device_at(i);
        }
        self.rports.retain(|(h, _), _| *h != hp);
        self.host_ports[hp.0].removed = true;
        self.touch();
    }

    /// A local RAID controller (a new SCSI host, `megaraid_sas`) with its volumes: an array
    /// only that controller reaches. Returns the controller's host port and the array.
    pub fn add_local_raid(&mut self, spec: ArraySpec) -> (HostPortId, ArrayId) {
        let array = self.add_array(spec);
        self.local_arrays.insert(array.0);
        let hp = self.add_host_port(Transport::Raid);
        self.host_ports[hp.0].reach = Some(PortRef {
            array: array.0,
            controller: 0,
            port: 0,
        });
        (hp, array)
    }

    /// The initiator ports, by id (removed ones included).
    pub fn host_ports(&self) -> &[HostPort] {
        &self.host_ports
    }

    /// Every iSCSI target port: where it is, its portal and its target IQN.
    pub fn iscsi_ports(&self) -> Vec<(PortRef, &PortSpec)> {
        let mut found = Vec::new();
        for (a, array) in self.arrays.iter().enumerate() {
            for (c, controller) in array.spec.controllers.iter().enumerate() {
                for (p, port) in controller.ports.iter().enumerate() {
                    if port.portal.is_some() && port.target_iqn.is_some() {
                        found.push((
                            PortRef {
                                array: a,
                                controller: c,
                                port: p,
                            },
                            port,
                        ));
                    }
                }
            }
        }
        found
    }

    /// Whether a target port answers now (its controller in, its link up).
    pub fn port_up(&self, port: PortRef) -> bool {
        self.port_reachable(port)
    }

    /// The target port an initiator port reaches, for an iSCSI session.
    pub fn port_spec(&self, port: PortRef) -> &PortSpec {
        &self.arrays[port.array].spec.controllers[port.controller].ports[port.port]
    }

    pub fn add_array(&mut self, spec: ArraySpec) -> ArrayId {
        let present = vec![true; spec.controllers.len()];
        let alua = spec.tpgs.iter().copied().collect();
        self.arrays.push(Array {
            spec,
            luns: Vec::new(),
            present,
            failed_ports: BTreeSet::new(),
            alua,
        });
        self.touch();
        ArrayId(self.arrays.len() - 1)
    }

    /// Adds a LUN; the host sees it at the next [`Fabric::scan`].
    pub fn add_lun(&mut self, array: ArrayId, lun: LunSpec) -> LunId {
        let luns = &mut self.arrays[array.0].luns;
        luns.push(lun);
        let index = luns.len() - 1;
        self.touch();
        LunId {
            array: array.0,
            index,
        }
    }

    /// The host scans every SCSI host (`echo '- - -' > …/scan`): every reachable path to a
    /// LUN that has no disk yet gets one. Returns the new devices in discovery order.
    pub fn scan(&mut self) -> Vec<DeviceId> {
        let mut found = Vec::new();
        for hp in 0..self.host_ports.len() {
            found.extend(self.scan_host_port(HostPortId(hp)));
        }
        found
    }

    /// One SCSI host scans (`echo '- - -' > /sys/class/scsi_host/hostN/scan`).
    pub fn scan_host_port(&mut self, hp: HostPortId) -> Vec<DeviceId> {
        let mut found = Vec::new();
        if self.host_ports[hp.0].removed {
            return found;
        }
        let reach = self.host_ports[hp.0].reach;
        for a in 0..self.arrays.len() {
            for c in 0..self.arrays[a].spec.controllers.len() {
                for p in 0..self.arrays[a].spec.controllers[c].ports.len() {
                    let port = PortRef {
                        array: a,
                        controller: c,
                        port: p,
                    };
                    let iscsi_port = self.arrays[a].spec.controllers[c].ports[p].portal.is_some();
                    let reaches = match reach {
                        Some(only) => only == port,
                        None => !iscsi_port && !self.local_arrays.contains(&a),
                    };
                    if !reaches || !self.port_reachable(port) {
                        continue;
                    }
                    for l in 0..self.arrays[a].luns.len() {
                        let lun = LunId { array: a, index: l };
                        if self.masked.contains(&lun) {
                            continue;
                        }
                        if let Some(id) = self.attach(hp, port, lun) {
                            found.push(id);
                        }
                    }
                }
            }
        }
        if !found.is_empty() {
            self.touch();
        }
        found
    }

    /// Removes a controller, as when a storage controller module is pulled: on FC and SAS
    /// the kernel deletes every disk behind its ports; an iSCSI session to one of its
    /// portals stays (in recovery) with its disks, which stop answering.
    pub fn pull_controller(&mut self, array: ArrayId, controller: &str) {
        let c = self.controller_index(array, controller);
        self.arrays[array.0].present[c] = false;
        let behind = |d: &Device| d.port.array == array.0 && d.port.controller == c;
        let gone: Vec<usize> = (0..self.devices.len())
            .filter(|&i| {
                let d = &self.devices[i];
                d.present && behind(d) && self.host_ports[d.host_port.0].reach.is_none()
            })
            .collect();
        for i in gone {
            self.remove_device_at(i);
        }
        let sessions: Vec<bool> = self.host_ports.iter().map(|h| h.reach.is_some()).collect();
        self.rports.retain(|(hp, port), _| {
            sessions[hp.0] || !(port.array == array.0 && port.controller == c)
        });
        self.touch();
    }

    /// Puts a controller back: its ports log in again and the host discovers new disks.
    pub fn push_controller(&mut self, array: ArrayId, controller: &str) -> Vec<DeviceId> {
        let c = self.controller_index(array, controller);
        self.arrays[array.0].present[c] = true;
        self.touch();
        self.scan()
    }

    /// A controller that boots in stages, as a Pillar Axiom slammer does: its ports are
    /// present but `transitioning`, then `standby`, then `active/optimized`.
    pub fn boot_controller(&mut self, array: ArrayId, controller: &str, stage: BootStage) {
        let c = self.controller_index(array, controller);
        let tpgs: BTreeSet<u16> = self.arrays[array.0].spec.controllers[c]
            .ports
            .iter()
            .map(|p| p.tpg)
            .collect();
        let state = match stage {
            BootStage::PortsUp => AluaState::Transitioning,
            BootStage::Standby => AluaState::Standby,
            BootStage::Active => AluaState::ActiveOptimized,
        };
        for tpg in tpgs {
            self.arrays[array.0].alua.insert(tpg, state);
        }
        if stage == BootStage::PortsUp {
            self.push_controller(array, controller);
        }
        self.touch();
    }

    /// Cuts one target port's link (a cable, a switch port, an iSCSI portal): its disks stay
    /// but stop answering.
    pub fn fail_port(&mut self, array: ArrayId, port: &str) {
        let at = self.port_index(array, port);
        self.arrays[array.0].failed_ports.insert(at);
        self.touch();
    }

    pub fn restore_port(&mut self, array: ArrayId, port: &str) {
        let at = self.port_index(array, port);
        self.arrays[array.0].failed_ports.remove(&at);
        self.touch();
    }

    /// Changes a target port group's ALUA state (a failover inside the array).
    pub fn set_alua(&mut self, array: ArrayId, tpg: u16, state: AluaState) {
        self.arrays[array.0].alua.insert(tpg, state);
        self.touch();
    }

    /// `echo offline|running > /sys/block/sdX/device/state`.
    pub fn set_offline(&mut self, device: DeviceId, offline: bool) {
        self.devices[device.0].offline = offline;
        self.touch();
    }

    /// The disk is deleted (`echo 1 > …/delete`, or qemu `device_del`); a later
    /// [`Fabric::scan`] finds the path again as a new disk.
    pub fn delete_device(&mut self, device: DeviceId) {
        if self.devices[device.0].present {
            self.remove_device_at(device.0);
            let d = &self.devices[device.0];
            let key = (d.host_port, d.port);
            if !self
                .devices
                .iter()
                .any(|o| o.present && (o.host_port, o.port) == key)
            {
                self.rports.remove(&key);
            }
            self.touch();
        }
    }

    /// The array stops (or starts again) presenting a LUN to this host, as a change of its
    /// LUN masking: the host's disks of it go (as after the rescan that notices); a later
    /// scan finds it again once unmasked.
    pub fn mask_lun(&mut self, lun: LunId, masked: bool) {
        if !masked {
            self.masked.remove(&lun);
            self.touch();
            return;
        }
        self.masked.insert(lun);
        let gone: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|d| d.present && d.lun == lun)
            .map(|d| d.id)
            .collect();
        for id in gone {
            self.delete_device(id);
        }
        self.touch();
    }

    /// The LUN with this SCSIid.
    pub fn lun_by_wwid(&self, wwid: &str) -> Option<LunId> {
        self.arrays.iter().enumerate().find_map(|(a, array)| {
            array
                .luns
                .iter()
                .position(|l| l.wwid == wwid)
                .map(|index| LunId { array: a, index })
        })
    }

    /// Every device ever created, in creation order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn device(&self, id: DeviceId) -> &Device {
        &self.devices[id.0]
    }

    /// The present device with this kernel name.
    pub fn device_named(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.present && d.name == name)
    }

    /// The present devices of a LUN, in creation order.
    pub fn paths_of(&self, wwid: &str) -> Vec<&Device> {
        self.devices
            .iter()
            .filter(|d| d.present && self.lun(d.lun).wwid == wwid)
            .collect()
    }

    pub fn lun(&self, id: LunId) -> &LunSpec {
        &self.arrays[id.array].luns[id.index]
    }

    pub fn array(&self, id: ArrayId) -> &ArraySpec {
        &self.arrays[id.0].spec
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Everything about one path, as the host could learn it now.
    pub fn facts(&self, id: DeviceId) -> PathFacts<'_> {
        let device = &self.devices[id.0];
        let array = &self.arrays[device.port.array];
        let port = &array.spec.controllers[device.port.controller].ports[device.port.port];
        PathFacts {
            device,
            lun: &array.luns[device.lun.index],
            array: &array.spec,
            host_port: &self.host_ports[device.host_port.0],
            port,
            transport_up: device.present && self.port_reachable(device.port),
            alua: if array.spec.tpgs.is_empty() {
                None
            } else {
                array.alua.get(&port.tpg).copied()
            },
        }
    }

    fn port_reachable(&self, port: PortRef) -> bool {
        let array = &self.arrays[port.array];
        array.present[port.controller]
            && !array.failed_ports.contains(&(port.controller, port.port))
    }

    fn attach(&mut self, hp: HostPortId, port: PortRef, lun: LunId) -> Option<DeviceId> {
        let exists = self
            .devices
            .iter()
            .any(|d| d.present && d.host_port == hp && d.port == port && d.lun == lun);
        if exists {
            return None;
        }
        let target = match self.rports.get(&(hp, port)) {
            Some(target) => *target,
            None => {
                let host = &mut self.host_ports[hp.0];
                let target = host.next_target;
                host.next_target += 1;
                self.rports.insert((hp, port), target);
                target
            }
        };
        let index = (0..).find(|i| !self.sd_in_use.contains(i)).unwrap_or(0);
        self.sd_in_use.insert(index);
        let id = DeviceId(self.devices.len());
        self.devices.push(Device {
            id,
            host_port: hp,
            port,
            lun,
            hcil: Hcil {
                host: self.host_ports[hp.0].scsi_host,
                channel: 0,
                target,
                lun: self.arrays[lun.array].luns[lun.index].lun,
            },
            name: sd_name(index),
            dev_t: sd_dev_t(index),
            present: true,
            offline: false,
        });
        Some(id)
    }

    fn remove_device_at(&mut self, i: usize) {
        let device = &mut self.devices[i];
        device.present = false;
        if let Some(index) = sd_index(&device.name) {
            self.sd_in_use.remove(&index);
        }
    }

    fn controller_index(&self, array: ArrayId, name: &str) -> usize {
        self.arrays[array.0]
            .spec
            .controllers
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("the array has no controller {name}"))
    }

    fn port_index(&self, array: ArrayId, name: &str) -> (usize, usize) {
        for (c, controller) in self.arrays[array.0].spec.controllers.iter().enumerate() {
            if let Some(p) = controller.ports.iter().position(|p| p.name == name) {
                return (c, p);
            }
        }
        panic!("the array has no port {name}")
    }

    fn touch(&mut self) {
        self.generation += 1;
    }
}

/// Stages of a controller boot (see [`Fabric::boot_controller`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootStage {
    PortsUp,
    Standby,
    Active,
}

/// The sd driver's disk name for an index: `sda` … `sdz`, `sdaa` …
pub fn sd_name(index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = i64::from(index);
    loop {
        letters.push(b'a' + (n % 26) as u8);
        n = n / 26 - 1;
        if n < 0 {
            break;
        }
    }
    letters.reverse();
    format!("sd{}", String::from_utf8_lossy(&letters))
}

fn sd_index(name: &str) -> Option<u32> {
    let letters = name.strip_prefix("sd")?;
    let mut n: i64 = -1;
    for c in letters.bytes() {
        n = (n + 1) * 26 + i64::from(c.checked_sub(b'a')?);
    }
    u32::try_from(n).ok()
}

/// The sd driver's device number for a disk index, as `sd_probe` sets it: 16 minors per
/// disk, majors 8, 65–71 and 128–135 by bits 4–7 of the index, and past 256 disks the
/// index's higher bits kept in the minor (`sdiw`, disk 256, is `8:256`).
pub fn sd_dev_t(index: u32) -> (u32, u32) {
    let group = (index & 0xf0) >> 4;
    let major = match group {
        0 => 8,
        1..=7 => 64 + group,
        _ => 128 + group - 8,
    };
    let minor = ((index & 0xf) << 4) | (index & 0xfff00);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_disk_names_and_numbers() {
        assert_eq!(sd_name(0), "sda");
        assert_eq!(sd_name(25), "sdz");
        assert_eq!(sd_name(26), "sdaa");
        assert_eq!(sd_name(701), "sdzz");
        assert_eq!(sd_name(702), "sdaaa");
        for i in [0, 1, 25, 26, 700, 4095] {
            assert_eq!(sd_index(&sd_name(i)), Some(i));
        }
        assert_eq!(sd_dev_t(0), (8, 0));
        assert_eq!(sd_dev_t(1), (8, 16));
        assert_eq!(sd_dev_t(15), (8, 240));
        assert_eq!(sd_dev_t(16), (65, 0));
        assert_eq!(sd_dev_t(128), (128, 0));
        assert_eq!(sd_dev_t(256), (8, 256));
        assert_eq!(sd_dev_t(257), (8, 272));
        assert_eq!(sd_dev_t(4095), (135, 4080));
    }
}
