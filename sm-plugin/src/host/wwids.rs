//! `/etc/multipath/wwids`: the WWIDs multipath-tools may assemble maps for.
//!
//! With `find_multipaths strict` (our multipath.conf drop-in) multipathd creates a map only
//! for a WWID listed here, and on `reconfigure` or a restart it flushes every unopened map
//! whose WWID is not (multipath-tools 0.9 `coalesce_maps`). So the file is the durable
//! record of "this LUN is in use on this host": we list a WWID before asking for its map and
//! unlist it before removing the map.
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
}

impl WwidsFile {
    pub fn new(root: &HostRoot) -> Self {
        Self {
            path: root.path(WWIDS_PATH),
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
        Ok(result)
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
}
