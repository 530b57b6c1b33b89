//! The kernel's and udev's part: the fabric and the daemon's maps rendered as the files a
//! host has, under a host root, after every change.
//!
//! - `sys/class/scsi_host/hostN/{proc_name,scan}` per SCSI host (`mptsas`, `lpfc`,
//!   `iscsi_tcp`, `virtio_scsi` by transport); for an iSCSI session also
//!   `sys/class/iscsi_host/hostN/device/sessionN/iscsi_session/sessionN/targetname` and
//!   `…/connectionN:0/iscsi_connection/connectionN:0/persistent_{address,port}`;
//! - per disk `sys/block/sdX/{size,dev}`, `sys/block/sdX/device` → the SCSI device
//!   `…/H:C:T:L/{vendor,model,rev,state,wwid,vpd_pg83,vpd_pg80}`, placed in `sys/devices`
//!   where the kernel puts it for its transport: below a FC remote port
//!   (`host1/rport-1:0-0/target1:0:0`), a SAS end device (`host0/port-0:0/end_device-0:0/…`),
//!   an iSCSI session (`platform/host3/session3/…`), or directly below the SCSI host for a
//!   local RAID controller's volume or a virtio disk; and `dev/sdX`;
//! - udev's database entry `run/udev/data/b<major>:<minor>` (see [`super::udev`]) and its
//!   `dev/disk/by-id/scsi-<ID_SERIAL>` → one path of each LUN;
//! - udev's `dev/mapper/<name>` for every map multipathd has (held back while a test holds
//!   udev, to catch a driver between "map made" and "node there").
//!
//! Device nodes are plain files: nothing here opens them. `vpd_pg83` is the binary page a
//! LUN returns, built from its SCSIid (the fabric's `wwid`, which is what udev will call
//! it): the designator type from the first character (`3` NAA and `2` EUI-64 in binary, `1`
//! T10 in ASCII, `0` vendor specific after the vendor and model), with a target-port
//! designator the reader must skip; a SCSIid starting with `S` is a LUN without page 0x83,
//! whose page 0x80 carries the serial. Every other LUN has a page 0x80 with its serial.

use crate::fabric::{Fabric, PathFacts, Transport};
use crate::host_sim::udev::{self, Inquiry};
use crate::multipathd_sim::Daemon;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What has been rendered, to change only what changed.
pub struct Renderer {
    root: PathBuf,
    generation: Option<u64>,
    hosts: BTreeSet<u32>,
    /// disk name → (its SCSI device directory, state)
    disks: BTreeMap<String, (String, String)>,
    by_id: BTreeMap<String, String>,
    /// disk name → the `ID_SERIAL` udev gave it.
    serials: BTreeMap<String, String>,
    maps: BTreeSet<String>,
    pub(crate) udev_held: Arc<AtomicBool>,
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let _ = fs::write(path, contents);
}

fn proc_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Sas => "mptsas",
        Transport::Fc => "lpfc",
        Transport::Iscsi => "iscsi_tcp",
        Transport::Virtio => "virtio_scsi",
        Transport::Raid => "megaraid_sas",
    }
}

/// Where the kernel puts a path's SCSI device in the device tree (below `sys/devices`).
fn device_dir(facts: &PathFacts<'_>) -> String {
    let hcil = facts.device.hcil;
    let (h, c, t) = (hcil.host, hcil.channel, hcil.target);
    let target = format!("target{h}:{c}:{t}/{hcil}");
    let pci = facts.host_port.adapter.as_deref().unwrap_or("0000:00:00.0");
    match facts.host_port.transport {
        Transport::Fc => format!("pci0000:00/{pci}/host{h}/rport-{h}:0-{t}/{target}"),
        Transport::Sas => {
            format!("pci0000:00/{pci}/host{h}/port-{h}:{t}/end_device-{h}:{t}/{target}")
        }
        Transport::Iscsi => format!("platform/host{h}/session{h}/{target}"),
        Transport::Virtio => format!("pci0000:00/0000:00:05.0/virtio{h}/host{h}/{target}"),
        Transport::Raid => format!("pci0000:00/{pci}/host{h}/{target}"),
    }
}

/// The VPD page 0x83 a LUN with this SCSIid returns; `None` for a LUN without one (`S…`).
pub fn page83(scsiid: &str, inquiry: Inquiry<'_>) -> Option<Vec<u8>> {
    let mut descriptors = vec![
        // Relative target port (association: target port), which scsi_id skips.
        0x61, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
    ];
    if scsiid.starts_with('S') {
        return None;
    }
    let kind = scsiid
        .chars()
        .next()
        .and_then(|c| c.to_digit(16))
        .unwrap_or(0) as u8;
    let mut rest = &scsiid[scsiid.len().min(1)..];
    let prefix = inquiry.serial_prefix();
    if kind == 0 {
        rest = rest.strip_prefix(prefix.as_str()).unwrap_or(rest);
    }
    let binary: Option<Vec<u8>> = (kind == 2 || kind == 3)
        .then(|| {
            (0..rest.len() / 2)
                .map(|i| u8::from_str_radix(&rest[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
    let (code_set, body) = match binary {
        Some(bytes) => (1u8, bytes),
        None => (2u8, rest.replace('_', " ").into_bytes()),
    };
    descriptors.extend_from_slice(&[code_set, kind, 0, body.len() as u8]);
    descriptors.extend(body);
    let mut page = vec![0x00, 0x83];
    page.extend_from_slice(&(descriptors.len() as u16).to_be_bytes());
    page.extend(descriptors);
    Some(page)
}

/// The VPD page 0x80 (unit serial number): for a LUN without page 0x83 (`S…`) the serial
/// its SCSIid was made from, else the LUN's serial.
pub fn page80(scsiid: &str, serial: &str, inquiry: Inquiry<'_>) -> Vec<u8> {
    let serial = match scsiid.strip_prefix('S') {
        Some(rest) => rest
            .strip_prefix(inquiry.serial_prefix().as_str())
            .unwrap_or(rest),
        None => serial,
    };
    let mut page = vec![0x00, 0x80, 0x00, serial.len().min(255) as u8];
    page.extend(serial.bytes().take(255));
    page
}

/// The kernel's `wwid` attribute for the SCSIid.
/// (None when the kernel has none: no page 0x83, or only a vendor-specific designator.)
fn wwid_attribute(scsiid: &str) -> Option<String> {
    match scsiid.chars().next() {
        Some('3') => Some(format!("naa.{}", &scsiid[1..])),
        Some('2') => Some(format!("eui.{}", &scsiid[1..])),
        Some('1') => Some(format!("t10.{}", &scsiid[1..])),
        _ => None,
    }
}

impl Renderer {
    pub fn new(root: &Path, udev_held: Arc<AtomicBool>) -> Self {
        Self {
            root: root.to_path_buf(),
            generation: None,
            hosts: BTreeSet::new(),
            disks: BTreeMap::new(),
            by_id: BTreeMap::new(),
            serials: BTreeMap::new(),
            maps: BTreeSet::new(),
            udev_held,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Brings the files in step with the world.
    pub fn render(&mut self, fabric: &Fabric, daemon: &Daemon) {
        if self.generation != Some(fabric.generation()) {
            self.generation = Some(fabric.generation());
            self.render_hosts(fabric);
            self.render_disks(fabric);
        }
        self.render_maps(daemon);
    }

    fn render_hosts(&mut self, fabric: &Fabric) {
        let mut present = BTreeSet::new();
        for hp in fabric.host_ports() {
            if hp.removed {
                continue;
            }
            let n = hp.scsi_host;
            present.insert(n);
            if self.hosts.contains(&n) {
                continue;
            }
            let dir = self.path(&format!("sys/class/scsi_host/host{n}"));
            write(
                &dir.join("proc_name"),
                format!("{}\n", proc_name(hp.transport)),
            );
            if !dir.join("scan").exists() {
                write(&dir.join("scan"), "");
            }
            if let Some(port) = hp.reach.filter(|_| hp.transport == Transport::Iscsi) {
                let spec = fabric.port_spec(port);
                let session = format!("sys/class/iscsi_host/host{n}/device/session{n}");
                write(
                    &self.path(&format!("{session}/iscsi_session/session{n}/targetname")),
                    format!("{}\n", spec.target_iqn.clone().unwrap_or_default()),
                );
                let portal = spec.portal.clone().unwrap_or_default();
                let (address, port) = portal.rsplit_once(':').unwrap_or((&portal, "3260"));
                let conn = format!("{session}/connection{n}:0/iscsi_connection/connection{n}:0");
                write(
                    &self.path(&format!("{conn}/persistent_address")),
                    format!("{address}\n"),
                );
                write(
                    &self.path(&format!("{conn}/persistent_port")),
                    format!("{port}\n"),
                );
            }
        }
        for gone in self.hosts.difference(&present) {
            let _ = fs::remove_dir_all(self.path(&format!("sys/class/scsi_host/host{gone}")));
            let _ = fs::remove_dir_all(self.path(&format!("sys/class/iscsi_host/host{gone}")));
        }
        self.hosts = present;
    }

    fn render_disks(&mut self, fabric: &Fabric) {
        let mut present: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut first_path: BTreeMap<String, String> = BTreeMap::new();
        for device in fabric.devices().iter().filter(|d| d.present) {
            let facts = fabric.facts(device.id);
            let dir = format!("sys/devices/{}", device_dir(&facts));
            let state = if device.offline { "offline" } else { "running" };
            present.insert(device.name.clone(), (dir.clone(), state.to_string()));
            let rendered = self.disks.get(&device.name);
            if rendered.is_some_and(|(d, s)| *d == dir && s == state) {
                if let Some(serial) = self.serials.get(&device.name) {
                    first_path
                        .entry(serial.clone())
                        .or_insert_with(|| device.name.clone());
                }
                continue;
            }
            let sdev = self.path(&dir);
            if rendered.is_none_or(|(d, _)| *d != dir) {
                let wwid = &facts.lun.wwid;
                let inquiry = Inquiry {
                    vendor: &facts.array.vendor,
                    model: &facts.array.product,
                };
                write(&sdev.join("vendor"), format!("{:<8}\n", facts.array.vendor));
                write(
                    &sdev.join("model"),
                    format!("{:<16}\n", facts.array.product),
                );
                write(&sdev.join("rev"), format!("{}\n", facts.array.revision));
                if let Some(attribute) = wwid_attribute(wwid) {
                    write(&sdev.join("wwid"), format!("{attribute}\n"));
                }
                let pg83 = page83(wwid, inquiry);
                if let Some(page) = &pg83 {
                    write(&sdev.join("vpd_pg83"), page);
                }
                let pg80 = page80(wwid, &facts.lun.serial, inquiry);
                write(&sdev.join("vpd_pg80"), &pg80);
                let block = self.path(&format!("sys/block/{}", device.name));
                let _ = fs::remove_dir_all(&block);
                write(
                    &block.join("size"),
                    format!("{}\n", facts.lun.size_bytes / 512),
                );
                write(
                    &block.join("dev"),
                    format!("{}:{}\n", device.dev_t.0, device.dev_t.1),
                );
                // A blk-mq disk's elevators, the kernel's default chosen (a plain file here:
                // a write leaves just what was written).
                write(
                    &block.join("queue/scheduler"),
                    "[mq-deadline] kyber bfq none\n",
                );
                let _ = symlink(
                    format!("../../{}", &dir["sys/".len()..]),
                    block.join("device"),
                );
                write(&self.path(&format!("dev/{}", device.name)), "");
                let serial = udev::id_serial(pg83.as_deref(), Some(&pg80), inquiry);
                write(
                    &self.path(&format!(
                        "run/udev/data/b{}:{}",
                        device.dev_t.0, device.dev_t.1
                    )),
                    udev::database_entry(&device.name, device.dev_t, inquiry, serial.as_ref()),
                );
                match serial {
                    Some((full, _)) => {
                        self.serials.insert(device.name.clone(), full);
                    }
                    None => {
                        self.serials.remove(&device.name);
                    }
                }
            }
            if let Some(serial) = self.serials.get(&device.name) {
                first_path
                    .entry(serial.clone())
                    .or_insert_with(|| device.name.clone());
            }
            write(&sdev.join("state"), format!("{state}\n"));
        }
        for (name, (dir, _)) in &self.disks {
            if present.get(name).is_none_or(|(d, _)| d != dir) {
                let _ = fs::remove_dir_all(self.path(dir));
                if !present.contains_key(name) {
                    let _ = fs::remove_dir_all(self.path(&format!("sys/block/{name}")));
                    let _ = fs::remove_file(self.path(&format!("dev/{name}")));
                    if let Some((major, minor)) = fabric
                        .devices()
                        .iter()
                        .find(|d| d.name == *name)
                        .map(|d| d.dev_t)
                    {
                        let _ =
                            fs::remove_file(self.path(&format!("run/udev/data/b{major}:{minor}")));
                    }
                }
            }
        }
        self.serials.retain(|name, _| present.contains_key(name));
        self.disks = present;
        let by_id_dir = self.path("dev/disk/by-id");
        for (wwid, name) in &first_path {
            if self.by_id.get(wwid) != Some(name) {
                let link = by_id_dir.join(format!("scsi-{wwid}"));
                let _ = fs::create_dir_all(&by_id_dir);
                let _ = fs::remove_file(&link);
                let _ = symlink(format!("../../{name}"), &link);
            }
        }
        for wwid in self.by_id.keys() {
            if !first_path.contains_key(wwid) {
                let _ = fs::remove_file(by_id_dir.join(format!("scsi-{wwid}")));
            }
        }
        self.by_id = first_path;
    }

    fn render_maps(&mut self, daemon: &Daemon) {
        let now: BTreeSet<String> = daemon.map_names().into_iter().collect();
        let dir = self.path("dev/mapper");
        for gone in self.maps.difference(&now) {
            let _ = fs::remove_file(dir.join(gone));
        }
        self.maps.retain(|m| now.contains(m));
        if self.udev_held.load(Ordering::SeqCst) {
            return;
        }
        for new in now.difference(&self.maps.clone()) {
            write(&dir.join(new), "");
            self.maps.insert(new.clone());
        }
    }
}
