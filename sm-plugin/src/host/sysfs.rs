//! What the kernel says about SCSI disks, SCSI hosts and iSCSI sessions, read from sysfs.
//!
//! - a disk: `/sys/block/sdX` with `device` → the SCSI device `H:C:T:L` (`vendor`, `model`,
//!   `state`, `vpd_pg83`, `wwid`), `size` in 512-byte sectors;
//! - a SCSI host: `/sys/class/scsi_host/hostN` (`proc_name`, `scan`);
//! - an iSCSI session (open-iscsi's `iscsi_tcp` makes one SCSI host per session):
//!   `/sys/class/iscsi_host/hostN/device/sessionM/iscsi_session/sessionM/targetname` and
//!   `…/connectionM:0/iscsi_connection/connectionM:0/persistent_address|persistent_port`
//!   (the paths stock `iscsilib.py` reads).
//!
//! The SCSIid is the disk's `ID_SERIAL` in udev's database (see [`super::udevdb`]): the
//! name of its `/dev/disk/by-id/scsi-…` link and multipathd's WWID. Only when udev has no
//! record of the disk is it computed here from the VPD pages, the way udev's `scsi_id`
//! does (`scsi_serial.c`): from page 0x83, among designators associated with the LUN, NAA
//! IEEE-registered-extended first, then NAA IEEE-registered, any NAA, EUI-64, T10 vendor
//! id, vendor specific; binary ones in lower-case hex, prefixed with the designator type as
//! one hex digit (`3…` NAA, `2…` EUI-64, `1…` T10, `0…` vendor specific, which also gets the
//! inquiry vendor and model in front, being unique only within them); without page 0x83,
//! `S` + vendor + model + the page 0x80 serial number. Whitespace runs become `_`, as sm
//! sanitises.
//!
//! How a disk is reached is read from where the kernel put it in the device tree: below a
//! FC remote port (`rport-…`), a SAS end device (`end_device-…`) or an iSCSI session
//! (`session…`), each a transport to storage outside the server; anything else (a RAID
//! volume of `megaraid_sas` or `mpt3sas`, a disk on `ahci`, virtio, USB) is the server's
//! own.

use crate::host::udevdb;
use mpathutil::HostRoot;
use mpathutil::model::Hcil;
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One SCSI disk (one path to a LUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiDisk {
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    pub hcil: Hcil,
    /// `None` when the disk reports no usable identifier.
    pub scsiid: Option<String>,
    pub vendor: String,
    pub model: String,
    pub size_bytes: u64,
    /// `running`, `offline`, …
    pub state: String,
    pub reach: Reach,
}

/// How a disk is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Fc,
    Sas,
    Iscsi,
    /// A disk of the server itself: a local RAID volume, SATA, virtio, USB.
    Local,
}

impl Reach {
    /// Over a transport to shared storage.
    pub fn is_shared_transport(self) -> bool {
        self != Self::Local
    }
}

/// One SCSI host (`hostN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiHost {
    pub number: u32,
    /// The driver, e.g. `lpfc`, `mpt3sas`, `iscsi_tcp`.
    pub proc_name: String,
}

/// One iSCSI session, as the SCSI host it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiSession {
    pub host: u32,
    pub target_iqn: String,
    /// The portal it is connected to.
    pub address: String,
    pub port: u16,
}

/// Drivers whose hosts are not storage HBAs: local SATA/PATA, USB sticks, and software
/// iSCSI (handled by the iSCSI SR type), as stock `devscan.py` leaves them out.
pub fn is_hba_driver(proc_name: &str) -> bool {
    let p = proc_name.trim();
    !(p.starts_with("ata_")
        || p.starts_with("sata_")
        || p.starts_with("pata_")
        || matches!(p, "ahci" | "pdc_adma" | "iscsi_tcp" | "usb-storage"))
}

fn read_trim(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

fn names_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort_by_key(|n| natural_key(n));
    names
}

fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0))
}

/// Every SCSI disk the kernel has now.
pub fn scsi_disks(root: &HostRoot) -> Vec<ScsiDisk> {
    let block = root.path("/sys/block");
    names_with_prefix(&block, "sd")
        .into_iter()
        .filter_map(|name| scsi_disk(root, &name))
        .collect()
}

/// One disk, if it is there and is a SCSI disk.
pub fn scsi_disk(root: &HostRoot, name: &str) -> Option<ScsiDisk> {
    let dir = root.path("/sys/block").join(name);
    let device = dir.join("device");
    let target = fs::read_link(&device).ok()?;
    let hcil = Hcil::parse(target.file_name()?.to_str()?)?;
    let sectors: u64 = read_trim(&dir.join("size"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let vendor = read_trim(&device.join("vendor")).unwrap_or_default();
    let model = read_trim(&device.join("model")).unwrap_or_default();
    let inquiry = Inquiry {
        vendor: &vendor,
        model: &model,
    };
    let scsiid = dev_t(root, name)
        .and_then(|(major, minor)| udevdb::id_serial(root, major, minor))
        .or_else(|| {
            fs::read(device.join("vpd_pg83"))
                .ok()
                .and_then(|page| scsiid_from_page83(&page, inquiry))
        })
        .or_else(|| {
            fs::read(device.join("vpd_pg80"))
                .ok()
                .and_then(|page| scsiid_from_page80(&page, inquiry))
        })
        .or_else(|| {
            read_trim(&device.join("wwid"))
                .ok()
                .and_then(|w| scsiid_from_wwid(&w))
        });
    let reach = if vendor == "ATA" {
        // A SATA drive, even behind a SAS HBA: single-ported, never shared storage.
        Reach::Local
    } else {
        reach_of(root, &device)
    };
    Some(ScsiDisk {
        name: name.to_string(),
        hcil,
        scsiid,
        vendor,
        model,
        size_bytes: sectors * 512,
        state: read_trim(&device.join("state")).unwrap_or_default(),
        reach,
    })
}

/// A block device's `major:minor`.
pub fn dev_t(root: &HostRoot, name: &str) -> Option<(u32, u32)> {
    let text = read_trim(&root.path("/sys/block").join(name).join("dev")).ok()?;
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Where the SCSI device sits in the device tree decides how it is reached.
fn reach_of(root: &HostRoot, device: &Path) -> Reach {
    let Ok(real) = fs::canonicalize(device) else {
        return Reach::Local;
    };
    let base = fs::canonicalize(root.path("/sys/devices")).unwrap_or_default();
    let below = real.strip_prefix(&base).unwrap_or(&real);
    let mut reach = Reach::Local;
    for part in below.iter().filter_map(|p| p.to_str()) {
        if part.starts_with("rport-") {
            reach = Reach::Fc;
        } else if part.starts_with("end_device-") {
            reach = Reach::Sas;
        } else if part
            .strip_prefix("session")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            reach = Reach::Iscsi;
        }
    }
    reach
}

/// The devices stacked on a disk or its partitions (`holders/`), as kernel names: an LVM
/// volume, a RAID member, a multipath map. A disk with holders is in use by dom0.
pub fn holders(root: &HostRoot, name: &str) -> Vec<String> {
    let dir = root.path("/sys/block").join(name);
    let mut found: Vec<String> = names_with_prefix(&dir.join("holders"), "");
    for part in names_with_prefix(&dir, name) {
        found.extend(names_with_prefix(&dir.join(&part).join("holders"), ""));
    }
    found
}

/// A device-mapper device's `dm/uuid` (`mpath-<wwid>` for a multipath map, `LVM-…` for a
/// logical volume).
pub fn dm_uuid(root: &HostRoot, name: &str) -> Option<String> {
    read_trim(&root.path("/sys/block").join(name).join("dm/uuid")).ok()
}

/// Every SCSI host.
pub fn scsi_hosts(root: &HostRoot) -> Vec<ScsiHost> {
    let dir = root.path("/sys/class/scsi_host");
    names_with_prefix(&dir, "host")
        .into_iter()
        .filter_map(|name| {
            Some(ScsiHost {
                number: name.strip_prefix("host")?.parse().ok()?,
                proc_name: read_trim(&dir.join(&name).join("proc_name")).unwrap_or_default(),
            })
        })
        .collect()
}

/// Asks a SCSI host to scan all its channels, targets and LUNs (`- - -`). The kernel
/// scans before the write returns; udev creates the links afterwards (see `udev::settle`).
pub fn rescan(root: &HostRoot, host: u32) -> io::Result<()> {
    let path = root.path(format!("/sys/class/scsi_host/host{host}/scan"));
    tracing::debug!("rescanning SCSI host {host}");
    fs::write(&path, "- - -\n")
}

/// Every iSCSI session the kernel has.
pub fn iscsi_sessions(root: &HostRoot) -> Vec<IscsiSession> {
    let dir = root.path("/sys/class/iscsi_host");
    let mut found = Vec::new();
    for name in names_with_prefix(&dir, "host") {
        let Some(host) = name.strip_prefix("host").and_then(|n| n.parse().ok()) else {
            continue;
        };
        let device = dir.join(&name).join("device");
        for session in names_with_prefix(&device, "session") {
            let sdir = device.join(&session);
            let Ok(target_iqn) =
                read_trim(&sdir.join("iscsi_session").join(&session).join("targetname"))
            else {
                continue;
            };
            for conn in names_with_prefix(&sdir, "connection") {
                let cdir = sdir.join(&conn).join("iscsi_connection").join(&conn);
                let (Ok(address), Ok(port)) = (
                    read_trim(&cdir.join("persistent_address")),
                    read_trim(&cdir.join("persistent_port")),
                ) else {
                    continue;
                };
                found.push(IscsiSession {
                    host,
                    target_iqn: target_iqn.clone(),
                    address,
                    port: port.parse().unwrap_or(3260),
                });
                break;
            }
        }
    }
    found
}

/// The SCSI disks that carry dom0's root filesystem: never offered as LUNs. Found from the
/// device of `/`, through partitions and device-mapper slaves.
pub fn root_disks(root: &HostRoot) -> BTreeSet<String> {
    let mut disks = BTreeSet::new();
    let Ok(meta) = fs::metadata(root.as_path()) else {
        return disks;
    };
    let dev = meta.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let start = root.path(format!("/sys/dev/block/{major}:{minor}"));
    let Ok(real) = fs::canonicalize(&start) else {
        return disks;
    };
    collect_disks(&real, &mut disks, 0);
    disks
}

fn collect_disks(dir: &Path, disks: &mut BTreeSet<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    let dir: PathBuf = if dir.join("partition").exists() {
        match dir.parent() {
            Some(p) => p.to_path_buf(),
            None => return,
        }
    } else {
        dir.to_path_buf()
    };
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    if name.starts_with("sd") {
        disks.insert(name.to_string());
    }
    for slave in fs::read_dir(dir.join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(real) = fs::canonicalize(slave.path()) {
            collect_disks(&real, disks, depth + 1);
        }
    }
}

/// The designator kinds scsi_id looks for, in its order.
const SEARCH: [(u8, Option<u8>, u8); 12] = [
    // (designator type, NAA type, code set): NAA=3, EUI-64=2, T10=1, vendor=0;
    // code set 1 binary, 2 ASCII.
    (3, Some(6), 1),
    (3, Some(6), 2),
    (3, Some(5), 1),
    (3, Some(5), 2),
    (3, None, 1),
    (3, None, 2),
    (2, None, 1),
    (2, None, 2),
    (1, None, 1),
    (1, None, 2),
    (0, None, 1),
    (0, None, 2),
];

/// A disk's standard inquiry identity, as sysfs shows it (trailing blanks trimmed).
#[derive(Debug, Clone, Copy)]
pub struct Inquiry<'a> {
    pub vendor: &'a str,
    pub model: &'a str,
}

impl Inquiry<'_> {
    /// The inquiry's 8-byte vendor and 16-byte model fields as scsi_id copies them.
    fn prefix(self) -> String {
        format!("{:<8.8}{:<16.16}", self.vendor, self.model)
    }
}

/// `scsi_id -g` from a raw VPD page 0x83.
pub fn scsiid_from_page83(page: &[u8], inquiry: Inquiry<'_>) -> Option<String> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let end = (4 + usize::from(u16::from_be_bytes([page[2], page[3]]))).min(page.len());
    let mut designators = Vec::new();
    let mut at = 4;
    while at + 4 <= end {
        let len = usize::from(page[at + 3]);
        let body_end = at + 4 + len;
        if body_end > end {
            break;
        }
        let code_set = page[at] & 0x0f;
        let association = (page[at + 1] >> 4) & 0x03;
        let kind = page[at + 1] & 0x0f;
        if association == 0 && len > 0 {
            designators.push((kind, code_set, &page[at + 4..body_end]));
        }
        at = body_end;
    }
    for (kind, naa, code_set) in SEARCH {
        for (k, c, body) in &designators {
            if *k != kind || *c != code_set {
                continue;
            }
            if let Some(naa) = naa
                && body[0] >> 4 != naa
            {
                continue;
            }
            let mut id = format!("{kind:x}");
            if kind == 0 {
                id.push_str(&inquiry.prefix());
            }
            if code_set == 1 {
                for b in *body {
                    id.push_str(&format!("{b:02x}"));
                }
            } else {
                id.push_str(&String::from_utf8_lossy(body));
            }
            return Some(sanitise(&id));
        }
    }
    None
}

/// `scsi_id -g` from a raw VPD page 0x80 (unit serial number), for a disk without page
/// 0x83: `S`, the inquiry vendor and model, the serial.
pub fn scsiid_from_page80(page: &[u8], inquiry: Inquiry<'_>) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let end = (4 + usize::from(page[3])).min(page.len());
    let serial = String::from_utf8_lossy(&page[4..end]);
    if serial.trim().is_empty() {
        return None;
    }
    Some(sanitise(&format!("S{}{serial}", inquiry.prefix())))
}

/// From the kernel's `wwid` attribute (`naa.…`, `eui.…`, `t10.…`), when there is no page 0x83.
pub fn scsiid_from_wwid(wwid: &str) -> Option<String> {
    let (kind, rest) = wwid.split_once('.')?;
    let prefix = match kind {
        "naa" => '3',
        "eui" => '2',
        "t10" => '1',
        _ => return None,
    };
    let rest = if prefix == '1' {
        rest.to_string()
    } else {
        rest.to_ascii_lowercase()
    };
    Some(sanitise(&format!("{prefix}{rest}")))
}

/// sm's `SCSIid_sanitise`: trimmed, whitespace runs become `_`.
fn sanitise(id: &str) -> String {
    id.split_whitespace().collect::<Vec<_>>().join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(code_set: u8, association: u8, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut d = vec![code_set, (association << 4) | kind, 0, body.len() as u8];
        d.extend_from_slice(body);
        d
    }

    fn page(descriptors: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = descriptors.concat();
        let mut p = vec![0, 0x83];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend(body);
        p
    }

    #[test]
    fn naa_wins_over_eui_and_target_port_designators_are_ignored() {
        let naa6 = [
            0x60, 0x0a, 0x0b, 0x80, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let p = page(&[
            descriptor(1, 1, 3, &[0x51; 8]), // NAA, but of the target port
            descriptor(1, 0, 2, &[0x22; 8]), // EUI-64
            descriptor(1, 0, 3, &naa6),
        ]);
        assert_eq!(
            scsiid_from_page83(&p, DGC).as_deref(),
            Some("3600a0b80001234560000000000000001")
        );
    }

    #[test]
    fn eui64_and_t10_and_lio_naa5() {
        let eui = [0x22, 0x02, 0x00, 0x01, 0x55, 0xfd, 0xb6, 0x15];
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(1, 0, 2, &eui)]), DGC).as_deref(),
            Some("22202000155fdb615")
        );
        let naa5 = [0x50, 0x01, 0x40, 0x5a, 0xab, 0xbc, 0xcd, 0xd1];
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(1, 0, 3, &naa5)]), DGC).as_deref(),
            Some("35001405aabbccdd1")
        );
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(2, 0, 1, b"LIO-ORG  disk 01 ")]), DGC).as_deref(),
            Some("1LIO-ORG_disk_01")
        );
        assert_eq!(scsiid_from_page83(&[0, 0x80, 0, 0], DGC), None);
        assert_eq!(scsiid_from_page83(&page(&[]), DGC), None);
    }

    const DGC: Inquiry<'static> = Inquiry {
        vendor: "DGC",
        model: "VRAID",
    };

    #[test]
    fn vendor_specific_designators_carry_vendor_and_model() {
        // scsi_id: '0' + the 8-byte vendor + the 16-byte model + the designator, blanks
        // collapsed to '_'.
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(2, 0, 0, b"APM00123456789")]), DGC).as_deref(),
            Some("0DGC_VRAID_APM00123456789")
        );
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(1, 0, 0, &[0xab, 0x01])]), DGC).as_deref(),
            Some("0DGC_VRAID_ab01")
        );
        // A full-width vendor runs into the model, as in scsi_id.
        let full = Inquiry {
            vendor: "ABCDEFGH",
            model: "Z",
        };
        assert_eq!(
            scsiid_from_page83(&page(&[descriptor(2, 0, 0, b"42")]), full).as_deref(),
            Some("0ABCDEFGHZ_42")
        );
        // Any other designator wins over a vendor-specific one.
        assert_eq!(
            scsiid_from_page83(
                &page(&[
                    descriptor(2, 0, 0, b"X"),
                    descriptor(2, 0, 1, b"DGC     VRAID 7")
                ]),
                DGC
            )
            .as_deref(),
            Some("1DGC_VRAID_7")
        );
    }

    #[test]
    fn page80_serial_when_there_is_no_page83() {
        let mut p = vec![0, 0x80, 0, 10];
        p.extend_from_slice(b"  SER0042 ");
        assert_eq!(
            scsiid_from_page80(&p, DGC).as_deref(),
            Some("SDGC_VRAID_SER0042")
        );
        assert_eq!(scsiid_from_page80(&[0, 0x80, 0, 2, b' ', b' '], DGC), None);
        assert_eq!(scsiid_from_page80(&[0, 0x83, 0, 0], DGC), None);
    }

    #[test]
    fn wwid_attribute_fallback() {
        assert_eq!(
            scsiid_from_wwid("naa.600A0B80").as_deref(),
            Some("3600a0b80")
        );
        assert_eq!(scsiid_from_wwid("eui.2202").as_deref(), Some("22202"));
        assert_eq!(scsiid_from_wwid("weird"), None);
    }

    #[test]
    fn how_a_disk_is_reached_is_where_the_kernel_put_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let cases = [
            // lpfc: below the FC remote port.
            (
                "pci0000:00/0000:00:02.0/0000:05:00.0/host1/rport-1:0-2/target1:0:2/1:0:2:3",
                Reach::Fc,
            ),
            // mpt3sas, a JBOD disk behind an expander: a SAS end device.
            (
                "pci0000:00/0000:00:03.0/0000:03:00.0/host0/port-0:0/expander-0:0/port-0:0:4/end_device-0:0:4/target0:0:4/0:0:4:0",
                Reach::Sas,
            ),
            // mpt3sas integrated RAID volume (channel 1): no end device.
            (
                "pci0000:00/0000:00:03.0/0000:03:00.0/host0/target0:1:0/0:1:0:0",
                Reach::Local,
            ),
            // megaraid_sas virtual drive.
            (
                "pci0000:00/0000:00:01.0/0000:02:00.0/host2/target2:2:0/2:2:0:0",
                Reach::Local,
            ),
            // open-iscsi (software or offload): below the session.
            ("platform/host7/session3/target7:0:0/7:0:0:1", Reach::Iscsi),
            // ahci.
            (
                "pci0000:00/0000:00:1f.2/ata1/host3/target3:0:0/3:0:0:0",
                Reach::Local,
            ),
        ];
        for (path, want) in cases {
            let device = dir.path().join("sys/devices").join(path);
            fs::create_dir_all(&device).unwrap();
            let link = dir.path().join("sys/block/sdq/device");
            let _ = fs::remove_file(&link);
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(format!("../../devices/{path}"), &link).unwrap();
            assert_eq!(reach_of(&root, &link), want, "{path}");
        }
    }

    #[test]
    fn hba_drivers() {
        assert!(is_hba_driver("lpfc"));
        assert!(is_hba_driver("mptsas"));
        assert!(!is_hba_driver("iscsi_tcp"));
        assert!(!is_hba_driver("ahci"));
        assert!(!is_hba_driver("ata_piix"));
    }
}
