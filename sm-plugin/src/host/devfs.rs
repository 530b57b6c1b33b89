//! Device nodes and links under `/dev` that the driver reads and writes.
//!
//! - `/dev/mapper/<SCSIid>`: the multipath map's node (the map name is the WWID, as
//!   `user_friendly_names no` makes it); udev creates it after multipathd loads the map;
//! - `/dev/disk/mpInuse/<SCSIid>` → `/dev/mapper/<SCSIid>`: stock sm's mark of a LUN in use
//!   on this host, which we keep (`sm-facts.md` §4.6);
//! - `/dev/disk/by-id/scsi-<SCSIid>`: udev's link to one path of the LUN, what a LUN is
//!   used through without multipathing.

use mpathutil::HostRoot;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const MAPPER_DIR: &str = "/dev/mapper";
pub const MP_INUSE_DIR: &str = "/dev/disk/mpInuse";
pub const BY_ID_DIR: &str = "/dev/disk/by-id";

/// The host path of a map's node (as handed to xapi: without the root prefix).
pub fn mapper_device(scsiid: &str) -> String {
    format!("{MAPPER_DIR}/{scsiid}")
}

/// The host path of the in-use link.
pub fn inuse_device(scsiid: &str) -> String {
    format!("{MP_INUSE_DIR}/{scsiid}")
}

/// The host path of udev's by-id link.
pub fn by_id_device(scsiid: &str) -> String {
    format!("{BY_ID_DIR}/scsi-{scsiid}")
}

/// Whether a host path exists (a dangling link does not count).
pub fn exists(root: &HostRoot, host_path: &str) -> bool {
    root.path(host_path).exists()
}

/// Waits until a host path exists; `false` at the deadline.
pub fn wait_for(root: &HostRoot, host_path: &str, timeout: Duration) -> bool {
    let path = root.path(host_path);
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if path.exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until a host path is gone; `false` at the deadline.
pub fn wait_gone(root: &HostRoot, host_path: &str, timeout: Duration) -> bool {
    let path = root.path(host_path);
    let deadline = Instant::now() + timeout;
    loop {
        if fs::symlink_metadata(&path).is_err() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the in-use link of a LUN is there (pointing anywhere).
pub fn inuse_link_exists(root: &HostRoot, scsiid: &str) -> bool {
    fs::symlink_metadata(root.path(inuse_device(scsiid))).is_ok()
}

/// `ln -sf /dev/mapper/<id> /dev/disk/mpInuse/<id>`, atomically (a new link renamed over
/// the old one), so a reader never finds the link missing while we replace it.
pub fn link_inuse(root: &HostRoot, scsiid: &str) -> io::Result<()> {
    let dir = root.path(MP_INUSE_DIR);
    fs::create_dir_all(&dir)?;
    let link = dir.join(scsiid);
    let target = PathBuf::from(mapper_device(scsiid));
    if fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let temp = dir.join(format!(".{scsiid}.{}", std::process::id()));
    let _ = fs::remove_file(&temp);
    symlink(&target, &temp)?;
    fs::rename(&temp, &link)
}

/// Removes the in-use link; gone already is fine.
pub fn unlink_inuse(root: &HostRoot, scsiid: &str) -> io::Result<()> {
    match fs::remove_file(root.path(inuse_device(scsiid))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inuse_links_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert!(!inuse_link_exists(&root, "3600a"));
        link_inuse(&root, "3600a").unwrap();
        link_inuse(&root, "3600a").unwrap();
        assert!(inuse_link_exists(&root, "3600a"));
        assert_eq!(
            fs::read_link(root.path("/dev/disk/mpInuse/3600a")).unwrap(),
            PathBuf::from("/dev/mapper/3600a")
        );
        unlink_inuse(&root, "3600a").unwrap();
        unlink_inuse(&root, "3600a").unwrap();
        assert!(!inuse_link_exists(&root, "3600a"));
        assert!(!wait_for(
            &root,
            "/dev/mapper/3600a",
            Duration::from_millis(10)
        ));
        assert!(wait_gone(
            &root,
            "/dev/mapper/3600a",
            Duration::from_millis(10)
        ));
    }
}
