//! udev's database: the properties udev's rules gave a device, in
//! `/run/udev/data/b<major>:<minor>` (`E:KEY=value` lines, as systemd-udevd writes them).
//!
//! A disk's `ID_SERIAL` is the identifier the whole host agrees on: udev names
//! `/dev/disk/by-id/scsi-<ID_SERIAL>` after it and multipathd takes it as the WWID
//! (`uid_attribute`). Which rule set it (`scsi_id` from 60-persistent-storage, or sg3_utils'
//! 55-scsi-sg3_id when installed) is the host's business; reading the result keeps us in step.

use mpathutil::HostRoot;
use std::fs;

/// One property of a block device, if udev recorded the device and gave it that property.
pub fn property(root: &HostRoot, major: u32, minor: u32, key: &str) -> Option<String> {
    let text = fs::read_to_string(root.path(format!("/run/udev/data/b{major}:{minor}"))).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.strip_prefix("E:")?.split_once('=')?;
        (k == key && !v.is_empty()).then(|| v.to_string())
    })
}

/// udev's `ID_SERIAL` of a block device.
pub fn id_serial(root: &HostRoot, major: u32, minor: u32) -> Option<String> {
    property(root, major, minor, "ID_SERIAL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_id_serial_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("run/udev/data");
        fs::create_dir_all(&data).unwrap();
        fs::write(
            data.join("b8:16"),
            "S:disk/by-id/scsi-3600a0b80001234\nE:ID_SCSI=1\nE:ID_SERIAL=3600a0b80001234\nE:ID_SERIAL_SHORT=600a0b80001234\n",
        )
        .unwrap();
        let root = HostRoot::new(dir.path());
        assert_eq!(id_serial(&root, 8, 16).as_deref(), Some("3600a0b80001234"));
        assert_eq!(
            property(&root, 8, 16, "ID_SERIAL_SHORT").as_deref(),
            Some("600a0b80001234")
        );
        assert_eq!(id_serial(&root, 8, 32), None);
    }
}
