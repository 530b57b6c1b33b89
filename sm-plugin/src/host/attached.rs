//! What an `sr_attach` decided, kept until `sr_detach`: `/run/sm-rs/sr/<sr-uuid>`.
//!
//! The multipath setting takes effect at the next plug (`xapi-facts.md` §4.3): VDI calls
//! use the setting the SR was plugged with, not whatever `host.other_config` says now. The
//! file also names the iSCSI targets the SR logged in to. `/run` ends at reboot, as do the
//! plugs.

use mpathutil::HostRoot;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::PathBuf;

pub const SR_DIR: &str = "/run/sm-rs/sr";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub sr_uuid: String,
    pub sr_type: String,
    /// `dmp` or `null`.
    pub handle: String,
    /// iSCSI: the target IQNs logged in to.
    #[serde(default)]
    pub targets: Vec<String>,
}

impl Attached {
    pub fn multipath(&self) -> bool {
        self.handle == "dmp"
    }
}

fn file(root: &HostRoot, sr_uuid: &str) -> PathBuf {
    root.path(SR_DIR).join(sr_uuid)
}

pub fn get(root: &HostRoot, sr_uuid: &str) -> io::Result<Option<Attached>> {
    match fs::read(file(root, sr_uuid)) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn put(root: &HostRoot, attached: &Attached) -> io::Result<()> {
    let dir = root.path(SR_DIR);
    fs::create_dir_all(&dir)?;
    let temp = dir.join(format!(".{}.{}", attached.sr_uuid, std::process::id()));
    fs::write(
        &temp,
        serde_json::to_vec(attached).map_err(io::Error::other)?,
    )?;
    fs::rename(temp, file(root, &attached.sr_uuid))
}

pub fn remove(root: &HostRoot, sr_uuid: &str) -> io::Result<()> {
    match fs::remove_file(file(root, sr_uuid)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
