//! The in-use registry: one small file per LUN in use on this host, under
//! `/run/sm-rs/in-use/<SCSIid>`, saying for which SR and VDI, how, and how far activation
//! got.
//!
//! It is written first when a LUN is taken into use and removed last when it is released, so
//! "a record exists" means "an attach began and no detach finished": that is what makes an
//! SR busy for `sr_detach`, and what tells a repair which half-done activation to finish or
//! undo. `/run` is a tmpfs: after a reboot nothing is in use, as is true. Records are
//! replaced by rename, so a reader sees the old or the new one, never half.

use mpathutil::HostRoot;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::PathBuf;

pub const INUSE_DIR: &str = "/run/sm-rs/in-use";

/// How far taking a LUN into use got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Begun: the WWID, the map and the link may or may not be there yet.
    Attaching,
    /// Done: the device was handed to xapi.
    Attached,
}

/// One LUN in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub scsiid: String,
    pub sr_uuid: String,
    pub vdi_uuid: String,
    /// Used through a multipath map (else through one path's by-id link).
    pub multipath: bool,
    pub stage: Stage,
    /// The device handed to xapi.
    pub device: String,
}

/// The registry of one host.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(root: &HostRoot) -> Self {
        Self {
            dir: root.path(INUSE_DIR),
        }
    }

    fn file(&self, scsiid: &str) -> PathBuf {
        self.dir.join(scsiid)
    }

    pub fn get(&self, scsiid: &str) -> io::Result<Option<Record>> {
        match fs::read(self.file(scsiid)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn put(&self, record: &Record) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let file = self.file(&record.scsiid);
        let temp = self
            .dir
            .join(format!(".{}.{}", record.scsiid, std::process::id()));
        fs::write(&temp, serde_json::to_vec(record).map_err(io::Error::other)?)?;
        fs::rename(&temp, &file)
    }

    pub fn remove(&self, scsiid: &str) -> io::Result<()> {
        match fs::remove_file(self.file(scsiid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record (unreadable ones are skipped: a record is only ever replaced whole).
    pub fn all(&self) -> Vec<Record> {
        let mut records: Vec<Record> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        records.sort_by(|a: &Record, b| a.scsiid.cmp(&b.scsiid));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(&HostRoot::new(dir.path()));
        assert_eq!(registry.get("3600a").unwrap(), None);
        let record = Record {
            scsiid: "3600a".into(),
            sr_uuid: "sr".into(),
            vdi_uuid: "vdi".into(),
            multipath: true,
            stage: Stage::Attaching,
            device: "/dev/disk/mpInuse/3600a".into(),
        };
        registry.put(&record).unwrap();
        assert_eq!(registry.get("3600a").unwrap(), Some(record.clone()));
        assert_eq!(registry.all(), vec![record]);
        registry.remove("3600a").unwrap();
        registry.remove("3600a").unwrap();
        assert!(registry.all().is_empty());
    }
}
