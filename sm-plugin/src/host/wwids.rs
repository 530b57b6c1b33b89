//! `/etc/multipath/wwids`: the WWIDs multipath-tools may assemble maps for.
//!
//! With `find_multipaths strict` (our multipath.conf drop-in) multipathd creates a map only
//! for a WWID listed here, and on `reconfigure` or a restart it flushes every unopened map
//! whose WWID is not (multipath-tools 0.9 `coalesce_maps`). So the file is the durable
//! record of "this LUN is in use on this host": we list a WWID before asking for its map and
//! unlist it before removing the map.
//!
//! On the dom0's multipathd (0.4.9-xs) `find_multipaths yes` with XenServer's
//! `restrict_should_multipath_success_conditions.patch` gives the same: a map is built on a
//! path event only for a listed WWID. Its tools also bump `/run/multipathd/timestamp`
//! after each change (`update_timestamp`), which RHEL 7's udev rule caches its "is this a
//! multipath path" verdict against; so do we. 0.9.x has no such file.
//!
//! The format and locking are multipath-tools' (`libmultipath/wwids.c`): a header of `#`
//! comments, then one `/<wwid>/` line per WWID; writers hold an fcntl write lock on the whole
//! file. `multipath -w` only turns a line into a comment (`#wwid/`); we drop the line
//! instead, which every reader treats the same and keeps the file from growing.

use mpathutil::HostRoot;
use rustix::fs::{FlockOperation, fcntl_lock};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

pub const WWIDS_PATH: &str = "/etc/multipath/wwids";
/// Written by multipath-tools 0.4.9 when the wwids file changes; only if it exists.
pub const TIMESTAMP_PATH: &str = "/run/multipathd/timestamp";

/// multipath-tools' header, written when the file is new.
const HEADER: &str = "# Multipath wwids, Version : 1.0\n\
# NOTE: This file is automatically maintained by multipath and multipathd.\n\
# You should not need to edit this file in normal circumstances.\n\
#\n\
# Valid WWIDs:\n";

/// The wwids file of a host.
#[derive(Debug, Clone)]
pub struct WwidsFile {
    path: PathBuf,
    timestamp: PathBuf,
}

impl WwidsFile {
    pub fn new(root: &HostRoot) -> Self {
        Self {
            path: root.path(WWIDS_PATH),
            timestamp: root.path(TIMESTAMP_PATH),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether the WWID is listed.
    pub fn contains(&self, wwid: &str) -> io::Result<bool> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(listed(&text).any(|w| w == wwid)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lists the WWID; `true` if it was not listed before.
    pub fn add(&self, wwid: &str) -> io::Result<bool> {
        self.edit(|text| {
            if listed(text).any(|w| w == wwid) {
                return None;
            }
            let mut new = text.to_string();
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(&format!("/{wwid}/\n"));
            Some(new)
        })
    }

    /// Unlists the WWID; `true` if it was listed.
    pub fn remove(&self, wwid: &str) -> io::Result<bool> {
        self.edit(|text| {
            let line = format!("/{wwid}/");
            if !text.lines().any(|l| l.trim() == line) {
                return None;
            }
            let kept: String = text
                .lines()
                .filter(|l| l.trim() != line)
                .map(|l| format!("{l}\n"))
                .collect();
            Some(kept)
        })
    }

    /// Applies `change` to the text under multipath-tools' lock; `None` leaves it alone.
    fn edit(&self, change: impl FnOnce(&str) -> Option<String>) -> io::Result<bool> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        fcntl_lock(&file, FlockOperation::LockExclusive)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        if text.is_empty() {
            text.push_str(HEADER);
        }
        let result = match change(&text) {
            Some(new) => {
                rewrite(&mut file, &new)?;
                true
            }
            None => {
                if text.len() != file.metadata()?.len() as usize {
                    // A new, empty file: give it its header.
                    rewrite(&mut file, &text)?;
                }
                false
            }
        };
        let _ = fcntl_lock(&file, FlockOperation::Unlock);
        if result {
            self.bump_timestamp();
        }
        Ok(result)
    }

    /// `DM_MULTIPATH_TIMESTAMP=<seconds>` into the timestamp file, as `update_timestamp(0)`
    /// does: only where the daemon made one. A failure costs udev a stale cached verdict,
    /// not our change, so it is logged and not returned.
    fn bump_timestamp(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let written = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.timestamp)
            .and_then(|mut f| f.write_all(format!("DM_MULTIPATH_TIMESTAMP={now}\n").as_bytes()));
        match written {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!("cannot bump {}: {e}", self.timestamp.display());
            }
            _ => {}
        }
    }
}

/// Replaces the contents, in place under the lock (readers that lock see whole files).
/// No fsync, as multipath-tools does none: after a crash the file is rebuilt from the maps
/// multipathd has and the LUNs the next calls take into use.
fn rewrite(file: &mut File, text: &str) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(text.as_bytes())
}

/// The WWIDs a text lists: `/wwid/` lines (anything after the second slash is ignored, as
/// multipath-tools' `lookup_wwid` ignores it).
fn listed(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|l| {
        let rest = l.trim_start().strip_prefix('/')?;
        rest.split_once('/').map(|(w, _)| w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_and_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let wwids = WwidsFile::new(&HostRoot::new(dir.path()));
        assert!(!wwids.contains("3600a").unwrap());
        assert!(wwids.add("3600a").unwrap());
        assert!(!wwids.add("3600a").unwrap());
        assert!(wwids.add("3600b").unwrap());
        let text = fs::read_to_string(wwids.path()).unwrap();
        assert!(
            text.starts_with("# Multipath wwids, Version : 1.0\n"),
            "{text}"
        );
        assert!(text.ends_with("/3600a/\n/3600b/\n"), "{text}");
        assert!(wwids.remove("3600a").unwrap());
        assert!(!wwids.remove("3600a").unwrap());
        assert!(!wwids.contains("3600a").unwrap());
        assert!(wwids.contains("3600b").unwrap());
        // A line multipath -w commented out is not listed.
        fs::write(wwids.path(), format!("{HEADER}#3600c/\n/3600b/\n")).unwrap();
        assert!(!wwids.contains("3600c").unwrap());
    }

    #[test]
    fn a_change_bumps_the_timestamp_only_where_the_daemon_keeps_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let wwids = WwidsFile::new(&root);
        wwids.add("3600a").unwrap();
        let stamp = root.path(TIMESTAMP_PATH);
        assert!(!stamp.exists(), "0.9.x has no timestamp file: none is made");
        fs::create_dir_all(stamp.parent().unwrap()).unwrap();
        fs::write(&stamp, "DM_MULTIPATH_TIMESTAMP=1\n").unwrap();
        assert!(!wwids.add("3600a").unwrap());
        assert_eq!(
            fs::read_to_string(&stamp).unwrap(),
            "DM_MULTIPATH_TIMESTAMP=1\n",
            "no change, no bump"
        );
        wwids.remove("3600a").unwrap();
        let text = fs::read_to_string(&stamp).unwrap();
        let secs: u64 = text
            .strip_prefix("DM_MULTIPATH_TIMESTAMP=")
            .and_then(|t| t.strip_suffix('\n'))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{text:?}"));
        assert!(secs > 1_600_000_000, "{text:?}");
    }
}
