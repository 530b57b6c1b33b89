//! The node records of an iSCSI boot disk (iBFT), kept safe around a SendTargets
//! discovery: a discovery on the array that also serves the host's root disk rewrites the
//! records of every target it reports with default settings, and the root's target would
//! lose its boot-time settings. Stock sm copies `/var/lib/iscsi/nodes/<iqn>` of each iBFT
//! target aside before a discovery and back after it (`iscsilib.save_rootdisk_nodes`); so
//! do we.

use mpathutil::HostRoot;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const IBFT: &str = "/sys/firmware/ibft";
const NODES: &str = "/var/lib/iscsi/nodes";

/// The target names of the firmware's boot targets (`target*/target-name`).
pub fn boot_targets(root: &HostRoot) -> Vec<String> {
    let Ok(dir) = fs::read_dir(root.path(IBFT)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("target"))
        .filter_map(|e| fs::read_to_string(e.path().join("target-name")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Boot targets' records copied aside; [`Saved::restore`] puts them back.
#[derive(Debug)]
pub struct Saved {
    dir: PathBuf,
    targets: Vec<String>,
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, meta.permissions())?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        let _ = fs::remove_file(to);
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to)?;
    }
    Ok(())
}

/// Copies the boot targets' records aside; `None` when the host has no iBFT target (or
/// none of them has records).
pub fn save(root: &HostRoot) -> Option<Saved> {
    let targets: Vec<String> = boot_targets(root)
        .into_iter()
        .filter(|t| root.path(NODES).join(t).exists())
        .collect();
    if targets.is_empty() {
        return None;
    }
    let dir = root.path(format!("/run/sm-rs/ibft-nodes.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for target in &targets {
        if let Err(e) = copy_tree(&root.path(NODES).join(target), &dir.join(target)) {
            tracing::warn!("cannot save the node records of boot target {target}: {e}");
        }
    }
    tracing::info!(
        "saved the node records of boot target(s) {}",
        targets.join(", ")
    );
    Some(Saved { dir, targets })
}

impl Saved {
    /// Copies the records back over what the discovery wrote, and drops the copy.
    pub fn restore(self, root: &HostRoot) {
        for target in &self.targets {
            let from = self.dir.join(target);
            if !from.exists() {
                continue;
            }
            match copy_tree(&from, &root.path(NODES).join(target)) {
                Ok(()) => tracing::info!("restored the node records of boot target {target}"),
                Err(e) => tracing::warn!(
                    "cannot restore the node records of boot target {target} from {}: {e}",
                    from.display()
                ),
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
