//! LUNs: the SCSI disks of an SR grouped by SCSIid (one disk per path), and what a LUN is
//! as a VDI.
//!
//! A LUN's VDI uuid is the md5 of its SCSIid written as a uuid, as stock LUN-per-VDI drivers
//! make it (`scsiutil.gen_uuid_from_string(getuniqueserial)`): the same on every host and
//! at every scan, so a LUN keeps its VDI (and its VBDs) across rescans and re-introductions.
//! The VDI's location is the SCSIid itself: what the driver needs to find the LUN.

use crate::host::sysfs::{Reach, ScsiDisk};
use md5::{Digest, Md5};
use std::collections::{BTreeMap, BTreeSet};

/// One LUN as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lun {
    pub scsiid: String,
    /// The LUN number (of its first path).
    pub lun_id: u64,
    pub vendor: String,
    pub model: String,
    pub size_bytes: u64,
    /// The paths' kernel names, e.g. `sdb`, `sdc`.
    pub paths: Vec<String>,
    /// The SCSI host of each path.
    pub hosts: Vec<u32>,
    /// How it is reached: [`Reach::Local`] if any path is a local disk.
    pub reach: Reach,
}

/// Groups disks into LUNs, leaving out disks without an identifier and those carrying
/// dom0. `filter` keeps only those SCSIids (an empty filter keeps all).
pub fn group(
    disks: impl IntoIterator<Item = ScsiDisk>,
    root_disks: &BTreeSet<String>,
    filter: &[String],
) -> Vec<Lun> {
    let mut luns: BTreeMap<String, Lun> = BTreeMap::new();
    let mut hidden = BTreeSet::new();
    for disk in disks {
        let Some(scsiid) = disk.scsiid.clone() else {
            continue;
        };
        if root_disks.contains(&disk.name) {
            hidden.insert(scsiid);
            continue;
        }
        if !filter.is_empty() && !filter.contains(&scsiid) {
            continue;
        }
        let lun = luns.entry(scsiid.clone()).or_insert_with(|| Lun {
            scsiid,
            lun_id: disk.hcil.lun,
            vendor: disk.vendor.clone(),
            model: disk.model.clone(),
            size_bytes: disk.size_bytes,
            paths: Vec::new(),
            hosts: Vec::new(),
            reach: disk.reach,
        });
        if disk.reach == Reach::Local {
            lun.reach = Reach::Local;
        }
        lun.paths.push(disk.name);
        lun.hosts.push(disk.hcil.host);
    }
    // A LUN with any path carrying dom0 is dom0's, whatever other paths it has.
    luns.retain(|id, _| !hidden.contains(id));
    luns.into_values().collect()
}

/// The VDI uuid of a LUN.
pub fn vdi_uuid(scsiid: &str) -> String {
    let digest = Md5::digest(scsiid.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `device_config:SCSIid` as a list.
pub fn scsiid_filter(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// XML text with `&`, `<`, `>` escaped.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The LUN list a probe prints on stderr (stock `print_LUNs_XML` form, one `<LUN>` each).
pub fn luns_xml(root_element: &str, luns: &[Lun]) -> String {
    let mut xml = format!("<?xml version=\"1.0\" ?>\n<{root_element}>\n");
    for lun in luns {
        xml.push_str(&format!(
            "\t<LUN>\n\t\t<vendor>{}</vendor>\n\t\t<model>{}</model>\n\t\t<LUNid>{}</LUNid>\n\t\t<size>{}</size>\n\t\t<SCSIid>{}</SCSIid>\n\t\t<numpaths>{}</numpaths>\n\t</LUN>\n",
            xml_escape(&lun.vendor),
            xml_escape(&lun.model),
            lun.lun_id,
            lun.size_bytes,
            xml_escape(&lun.scsiid),
            lun.paths.len()
        ));
    }
    xml.push_str(&format!("</{root_element}>\n"));
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpathutil::model::Hcil;

    fn disk(name: &str, host: u32, id: Option<&str>) -> ScsiDisk {
        ScsiDisk {
            name: name.into(),
            hcil: Hcil {
                host,
                channel: 0,
                target: 0,
                lun: 3,
            },
            scsiid: id.map(str::to_string),
            vendor: "DGC".into(),
            model: "VRAID".into(),
            size_bytes: 1 << 30,
            state: "running".into(),
            reach: Reach::Fc,
        }
    }

    #[test]
    fn disks_become_luns() {
        let luns = group(
            [
                disk("sdb", 1, Some("3600a")),
                disk("sdc", 2, Some("3600a")),
                disk("sdd", 1, Some("3600b")),
                disk("sde", 1, None),
            ],
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(luns.len(), 2);
        assert_eq!(luns[0].paths, ["sdb", "sdc"]);
        assert_eq!(luns[0].hosts, [1, 2]);
        let only_b = group(
            [disk("sdd", 1, Some("3600b"))],
            &BTreeSet::new(),
            &["3600b".into()],
        );
        assert_eq!(only_b.len(), 1);
        let root: BTreeSet<String> = ["sdc".to_string()].into();
        let without_root = group(
            [disk("sdb", 1, Some("3600a")), disk("sdc", 2, Some("3600a"))],
            &root,
            &[],
        );
        assert!(without_root.is_empty());
        let mut local = disk("sdd", 3, Some("3600a"));
        local.reach = Reach::Local;
        let mixed = group(
            [disk("sdb", 1, Some("3600a")), local],
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(mixed[0].reach, Reach::Local);
    }

    #[test]
    fn vdi_uuids_are_stocks() {
        // md5("3600a") = 4b9d1c5c…; the shape is what matters to xapi.
        let u = vdi_uuid("3600a");
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_eq!(u, vdi_uuid("3600a"));
        assert_ne!(u, vdi_uuid("3600b"));
        assert_eq!(scsiid_filter(Some(" a, b ,")), ["a", "b"]);
    }
}
