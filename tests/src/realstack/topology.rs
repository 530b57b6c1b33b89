//! The fabrics a test VM can be booted with. Each presents one LUN through two paths, the
//! shape of the dual-controller array of `seeds/000_*`, in the three ways a XenServer host
//! meets it:
//!
//! - [`Topology::ScsiTwoHbas`] (A): a SAS/FC-like array. One LUN file becomes two qemu
//!   `scsi-hd` devices (same serial, same WWN) on two virtio-scsi HBAs. A path is pulled and
//!   pushed back through QMP `device_del`/`device_add`: real SCSI hot-unplug and hot-plug.
//! - [`Topology::IscsiTgt`] (B): software iSCSI. tgtd in the guest serves the LUN on two
//!   portals; open-iscsi logs in to both. A portal is cut by a blackhole route.
//! - [`Topology::LioAlua`] (C): an ALUA array. The kernel's LIO target serves the LUN through
//!   two target port groups, active/optimized and standby.
//!
//! [`Topology::Bare`] has no LUN at all (harness self-tests).

use std::path::Path;

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    ScsiTwoHbas,
    IscsiTgt,
    LioAlua,
    Bare,
}

/// Serial and NAA-5 WWN of the LUN of topology A (NAA-6 would need 16 bytes; qemu's `wwn` is 8).
pub const SCSI_LUN_SERIAL: &str = "SMRSSCSI0001";
pub const SCSI_LUN_WWN: u64 = 0x5001_4055_eed0_0001;
/// The LUN size every topology uses: room for the I/O checker's areas (48 MiB).
pub const LUN_BYTES: u64 = 128 << 20;

/// One qemu `scsi-hd` path of topology A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiPath {
    /// qemu device id, the name QMP knows it by.
    pub id: &'static str,
    /// The virtio-scsi HBA it hangs off.
    pub hba: &'static str,
    /// PCI slot of that HBA on the root bus: how the guest side is recognised
    /// (`tests/realstack/guest/paths`).
    pub hba_slot: u8,
    /// Relative target port identifier and port WWN (VPD page 0x83), one per "controller".
    pub port_index: u16,
    pub port_wwn: u64,
}

/// Controller 1 and controller 2 of the array.
pub const SCSI_PATHS: [ScsiPath; 2] = [
    ScsiPath {
        id: "path1",
        hba: "hba1",
        hba_slot: 8,
        port_index: 1,
        port_wwn: 0x5001_4055_eed0_1001,
    },
    ScsiPath {
        id: "path2",
        hba: "hba2",
        hba_slot: 9,
        port_index: 2,
        port_wwn: 0x5001_4055_eed0_1002,
    },
];

/// The qemu node name of the LUN's backing file.
const LUN_NODE: &str = "lun1";

impl ScsiPath {
    pub fn by_id(id: &str) -> Option<ScsiPath> {
        SCSI_PATHS.iter().copied().find(|p| p.id == id)
    }

    /// The PCI address the guest sees the HBA at.
    pub fn hba_pci_address(&self) -> String {
        format!("0000:00:{:02x}.0", self.hba_slot)
    }

    /// `device_add` arguments; the same properties as on the command line, so a path pushed
    /// back is the same device as the one pulled.
    pub fn device_add_args(&self) -> Value {
        json!({
            "driver": "scsi-hd",
            "id": self.id,
            "bus": format!("{}.0", self.hba),
            "scsi-id": 0,
            "lun": 0,
            "drive": LUN_NODE,
            "share-rw": true,
            "serial": SCSI_LUN_SERIAL,
            "wwn": SCSI_LUN_WWN,
            "port_wwn": self.port_wwn,
            "port_index": self.port_index,
        })
    }

    fn device_arg(&self) -> String {
        format!(
            "scsi-hd,id={},bus={}.0,scsi-id=0,lun=0,drive={LUN_NODE},share-rw=on,serial={SCSI_LUN_SERIAL},\
             wwn={SCSI_LUN_WWN:#x},port_wwn={:#x},port_index={}",
            self.id, self.hba, self.port_wwn, self.port_index
        )
    }
}

/// The WWID multipath gives the LUN of topology A: NAA designator type 3, then the WWN.
pub fn scsi_lun_wwid() -> String {
    format!("3{SCSI_LUN_WWN:016x}")
}

impl Topology {
    /// qemu arguments for the topology's hardware; `lun_file` is where its LUN lives.
    pub fn qemu_args(&self, lun_file: &Path) -> Vec<String> {
        match self {
            Topology::ScsiTwoHbas => {
                let mut args = Vec::new();
                for path in &SCSI_PATHS {
                    args.push("-device".into());
                    args.push(format!(
                        "virtio-scsi-pci,id={},bus=pcie.0,addr={:#x}",
                        path.hba, path.hba_slot
                    ));
                }
                args.push("-blockdev".into());
                args.push(format!(
                    "driver=file,node-name={LUN_NODE}-file,filename={}",
                    lun_file.display()
                ));
                args.push("-blockdev".into());
                args.push(format!(
                    "driver=raw,node-name={LUN_NODE},file={LUN_NODE}-file"
                ));
                for path in &SCSI_PATHS {
                    args.push("-device".into());
                    args.push(path.device_arg());
                }
                args
            }
            Topology::IscsiTgt | Topology::LioAlua | Topology::Bare => Vec::new(),
        }
    }

    /// Whether the topology needs a LUN file on the host.
    pub fn needs_lun_file(&self) -> bool {
        matches!(self, Topology::ScsiTwoHbas)
    }

    /// The guest command that builds the topology's target side (none for A: qemu is it).
    pub fn guest_setup(&self) -> Option<&'static str> {
        match self {
            Topology::IscsiTgt => Some("smrs-tgt-portals up"),
            Topology::LioAlua => Some("smrs-lio-alua up"),
            Topology::ScsiTwoHbas | Topology::Bare => None,
        }
    }

    /// How many paths to the LUN the topology has when healthy.
    pub fn paths(&self) -> usize {
        match self {
            Topology::Bare => 0,
            _ => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wwid_is_naa_type_3_and_the_wwn() {
        assert_eq!(scsi_lun_wwid(), "350014055eed00001");
    }

    #[test]
    fn command_line_and_hot_plug_describe_the_same_device() {
        let path = SCSI_PATHS[1];
        let line = path.device_arg();
        let add = path.device_add_args();
        for (key, value) in add.as_object().expect("object") {
            let expected = match value {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "on".into(),
                Value::Number(n) if key.contains("wwn") => {
                    format!("{:#x}", n.as_u64().expect("u64"))
                }
                Value::Number(n) => n.to_string(),
                other => panic!("unexpected {other}"),
            };
            let key = if key == "driver" {
                String::new()
            } else {
                format!("{key}=")
            };
            assert!(
                line.contains(&format!("{key}{expected}")),
                "{key}{expected} not in {line}"
            );
        }
    }
}
