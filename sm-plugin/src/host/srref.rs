//! The per-target reference count of iSCSI SRs: `/run/sr-ref/<targetIQN>` lists, one per
//! line, the uuid of every SR attached through that target on this host. We keep stock sm's
//! file and format (`util.py`), so an sm-rs SR and a stock SR sharing a target do not log
//! each other out. A session is logged out only when the last SR lets go.

use mpathutil::HostRoot;
use std::fs;
use std::io;
use std::path::PathBuf;

pub const SR_REF_DIR: &str = "/run/sr-ref";

fn file(root: &HostRoot, target_iqn: &str) -> PathBuf {
    root.path(SR_REF_DIR).join(target_iqn.replace('/', "_"))
}

fn read(path: &PathBuf) -> io::Result<Vec<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Adds an SR; returns how many SRs now use the target.
pub fn add(root: &HostRoot, target_iqn: &str, sr_uuid: &str) -> io::Result<usize> {
    let path = file(root, target_iqn);
    let mut srs = read(&path)?;
    if !srs.iter().any(|s| s == sr_uuid) {
        srs.push(sr_uuid.to_string());
        fs::create_dir_all(root.path(SR_REF_DIR))?;
        fs::write(
            &path,
            srs.iter().map(|s| format!("{s}\n")).collect::<String>(),
        )?;
    }
    Ok(srs.len())
}

/// Removes an SR; returns how many SRs still use the target.
pub fn remove(root: &HostRoot, target_iqn: &str, sr_uuid: &str) -> io::Result<usize> {
    let path = file(root, target_iqn);
    let mut srs = read(&path)?;
    srs.retain(|s| s != sr_uuid);
    if srs.is_empty() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        fs::write(
            &path,
            srs.iter().map(|s| format!("{s}\n")).collect::<String>(),
        )?;
    }
    Ok(srs.len())
}

/// The SRs using a target.
pub fn users(root: &HostRoot, target_iqn: &str) -> io::Result<Vec<String>> {
    read(&file(root, target_iqn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let iqn = "iqn.2026-01.com.example:array";
        assert_eq!(add(&root, iqn, "a").unwrap(), 1);
        assert_eq!(add(&root, iqn, "a").unwrap(), 1);
        assert_eq!(add(&root, iqn, "b").unwrap(), 2);
        assert_eq!(remove(&root, iqn, "a").unwrap(), 1);
        assert_eq!(users(&root, iqn).unwrap(), vec!["b".to_string()]);
        assert_eq!(remove(&root, iqn, "b").unwrap(), 0);
        assert_eq!(remove(&root, iqn, "b").unwrap(), 0);
        assert!(!root.path("/run/sr-ref").join(iqn).exists());
    }
}
