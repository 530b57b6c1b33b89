//! The I/O scheduler of a LUN's disks, set as stock sets it for LUNs (`util.set_scheduler`,
//! from BaseISCSI's attach and LUN-per-VDI's attach): `none`, or `noop` on a kernel without
//! it. The array orders its own I/O; an elevator in dom0 only adds latency to a guest's
//! disk. Only the SCSI disks: a multipath map (request-based device-mapper) has none.

use mpathutil::HostRoot;
use std::fs;
use std::io;

/// Stock's choices, best first.
pub const PREFERRED: [&str; 2] = ["none", "noop"];

/// The elevator a `queue/scheduler` text shows as chosen (`[none] mq-deadline`), or the
/// text itself when the file holds just one name.
fn chosen(text: &str) -> Option<&str> {
    let text = text.trim();
    match text.split_once('[') {
        Some((_, rest)) => rest.split_once(']').map(|(name, _)| name),
        None if !text.is_empty() && !text.contains(' ') => Some(text),
        None => None,
    }
}

/// Sets the scheduler of disk `name` (`sdb`); says which, or why not. A disk without a
/// queue (gone meanwhile) is left alone, as stock does.
pub fn set(root: &HostRoot, name: &str) -> io::Result<Option<&'static str>> {
    let path = root.path(format!("/sys/block/{name}/queue/scheduler"));
    let current = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Some(already) = PREFERRED.iter().find(|p| chosen(&current) == Some(**p)) {
        return Ok(Some(already));
    }
    let mut last = None;
    for elevator in PREFERRED {
        // Never create the file: sysfs has it or the disk has no elevator to set. Truncated
        // as stock's open(…, 'w') does (sysfs ignores it).
        match fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, format!("{elevator}\n").as_bytes()))
        {
            Ok(()) => return Ok(Some(elevator)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no elevator to choose")))
}

/// Sets the scheduler of every path of a LUN, logging what failed (never fatal: the LUN
/// works with any elevator).
pub fn set_paths(root: &HostRoot, scsiid: &str, paths: &[String]) {
    for path in paths {
        match set(root, path) {
            Ok(Some(elevator)) => {
                tracing::debug!("LUN {scsiid}: {path} uses the {elevator} scheduler");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("LUN {scsiid}: setting the scheduler of {path}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_chosen_and_a_chosen_one_is_left() {
        assert_eq!(
            chosen("[mq-deadline] kyber bfq none\n"),
            Some("mq-deadline")
        );
        assert_eq!(chosen("noop deadline [cfq]"), Some("cfq"));
        assert_eq!(chosen("none\n"), Some("none"));
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let file = dir.path().join("sys/block/sdb/queue/scheduler");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, "[mq-deadline] kyber bfq none\n").unwrap();
        assert_eq!(set(&root, "sdb").unwrap(), Some("none"));
        assert_eq!(fs::read_to_string(&file).unwrap(), "none\n");
        fs::write(&file, "[none] mq-deadline\n").unwrap();
        assert_eq!(set(&root, "sdb").unwrap(), Some("none"));
        assert_eq!(fs::read_to_string(&file).unwrap(), "[none] mq-deadline\n");
        assert_eq!(set(&root, "sdz").unwrap(), None);
        assert!(!dir.path().join("sys/block/sdz").exists());
    }
}
