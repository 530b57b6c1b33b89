//! Locks between driver processes on one host, as files under `/run/sm-rs/lock/`.
//!
//! Every call is a fresh process and two may race (xapi serialises only attach, detach and
//! probe of SRs; VDI calls run in parallel). One lock per SCSIid serialises the steps of
//! activating and releasing a LUN; calls on different LUNs never wait for each other. The
//! lock is an `flock`, so it dies with its process: a killed call leaves nothing to clean.

use mpathutil::HostRoot;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const LOCK_DIR: &str = "/run/sm-rs/lock";

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Held {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock called `name` (a SCSIid, `iscsi-<iqn>`), waiting up to `timeout`.
pub fn acquire(root: &HostRoot, name: &str, timeout: Duration) -> io::Result<Held> {
    let dir = root.path(LOCK_DIR);
    fs::create_dir_all(&dir)?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Held { _file: file, path });
            }
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} is held by another call for more than {} s",
                        path.display(),
                        timeout.as_secs()
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let held = acquire(&root, "3600a", Duration::from_secs(1)).unwrap();
        let e = acquire(&root, "3600a", Duration::from_millis(30)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        acquire(&root, "3600b", Duration::from_millis(30)).unwrap();
        drop(held);
        acquire(&root, "3600a", Duration::from_millis(30)).unwrap();
    }
}
