//! Locks between processes on one host.
//!
//! - Ours, as files under `/run/sm-rs/lock/`: every call is a fresh process and two may race
//!   (xapi serialises only attach, detach and probe of SRs; VDI calls run in parallel). One
//!   lock per SCSIid serialises the steps of activating and releasing a LUN; calls on
//!   different LUNs never wait for each other. An `flock`, so it dies with its process: a
//!   killed call leaves nothing to clean.
//! - Stock sm's, taken the way stock takes them, so that our edits of open-iscsi's node
//!   database never interleave with a stock SR's or with xapi's `host.set_iscsi_iqn`:
//!   - [`stock_iscsiadm`]: stock runs every `iscsiadm` holding an fcntl write lock on the
//!     whole of `/var/lock/sm/iscsiadm/isciadm_running` (`iscsilib.doexec_locked`, the
//!     lock `lock.Lock("isciadm_running", "iscsiadm")`, its name misspelt as shipped since
//!     sm 3.2.3; before, the name was `running`). We hold the same lock around each of ours.
//!   - [`initiator`]: xapi's `set-iscsi-initiator` script holds a shared `flock` on
//!     `/run/lock/sm/iscsiadm/running` while it checks that there is no session, rewrites
//!     `/etc/iscsi/initiatorname.iscsi` and restarts iscsid. We hold it exclusively from
//!     checking the initiator name until our logins are done, so the name cannot change
//!     between the check and the login.

use mpathutil::HostRoot;
use rustix::fs::{FlockOperation, fcntl_lock};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const LOCK_DIR: &str = "/run/sm-rs/lock";

/// Stock sm's lock around every `iscsiadm` it runs (fcntl, exclusive, whole file).
pub const STOCK_ISCSIADM_LOCK: &str = "/var/lock/sm/iscsiadm/isciadm_running";

/// The lock `set-iscsi-initiator` takes (flock, shared) while it changes the initiator name.
pub const INITIATOR_LOCK: &str = "/run/lock/sm/iscsiadm/running";

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Held {
    _file: File,
    pub path: PathBuf,
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

fn held_too_long(path: &Path, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "{} is held by another process for more than {} s",
            path.display(),
            timeout.as_secs()
        ),
    )
}

/// Tries `attempt` until it takes the lock (`Ok(true)`) or `timeout` passes; says once that
/// it waits.
fn wait_for(
    path: &Path,
    timeout: Duration,
    mut attempt: impl FnMut() -> io::Result<bool>,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let mut told = false;
    loop {
        if attempt()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(held_too_long(path, timeout));
        }
        if !told && pause >= Duration::from_millis(16) {
            tracing::info!("waiting for the lock {}", path.display());
            told = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// An exclusive `flock` on `path`, waiting up to `timeout`.
fn flock_exclusive(path: PathBuf, timeout: Duration) -> io::Result<Held> {
    let file = open(&path)?;
    wait_for(&path, timeout, || match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    })?;
    Ok(Held { _file: file, path })
}

/// Takes our lock called `name` (a SCSIid, `iscsi-<iqn>`), waiting up to `timeout`.
pub fn acquire(root: &HostRoot, name: &str, timeout: Duration) -> io::Result<Held> {
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
    flock_exclusive(root.path(LOCK_DIR).join(format!("{safe}.lock")), timeout)
}

/// Takes `set-iscsi-initiator`'s lock exclusively: xapi cannot change the initiator name
/// while it is held.
pub fn initiator(root: &HostRoot, timeout: Duration) -> io::Result<Held> {
    flock_exclusive(root.path(INITIATOR_LOCK), timeout)
}

/// fcntl locks belong to the process, and closing any descriptor of the file drops them all:
/// so each lock file is opened once for the life of the process, and the threads of the
/// process (parallel logins) share one hold, counted here.
struct ProcessLock {
    file: File,
    holders: usize,
}

static PROCESS_LOCKS: Mutex<Option<HashMap<PathBuf, ProcessLock>>> = Mutex::new(None);

/// A hold of stock's iscsiadm lock by this process; released when the last hold drops.
#[derive(Debug)]
pub struct StockHold {
    path: PathBuf,
}

/// Takes stock's iscsiadm lock for this process, waiting up to `timeout` for a stock
/// process that holds it.
pub fn stock_iscsiadm(root: &HostRoot, timeout: Duration) -> io::Result<StockHold> {
    let path = root.path(STOCK_ISCSIADM_LOCK);
    let mut locks = PROCESS_LOCKS
        .lock()
        .map_err(|_| io::Error::other("the process lock table is poisoned"))?;
    let table = locks.get_or_insert_with(HashMap::new);
    if !table.contains_key(&path) {
        let file = open(&path)?;
        table.insert(path.clone(), ProcessLock { file, holders: 0 });
    }
    let Some(entry) = table.get_mut(&path) else {
        return Err(io::Error::other("the process lock table lost an entry"));
    };
    if entry.holders == 0 {
        let file = &entry.file;
        wait_for(&path, timeout, || {
            match fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Ok(true),
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })?;
    }
    entry.holders += 1;
    Ok(StockHold { path })
}

impl Drop for StockHold {
    fn drop(&mut self) {
        let Ok(mut locks) = PROCESS_LOCKS.lock() else {
            return;
        };
        if let Some(entry) = locks.as_mut().and_then(|t| t.get_mut(&self.path)) {
            entry.holders = entry.holders.saturating_sub(1);
            if entry.holders == 0 {
                let _ = fcntl_lock(&entry.file, FlockOperation::NonBlockingUnlock);
            }
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

    #[test]
    fn the_initiator_lock_is_set_iscsi_initiators_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let held = initiator(&root, Duration::from_secs(1)).unwrap();
        assert_eq!(held.path, dir.path().join("run/lock/sm/iscsiadm/running"));
        let e = initiator(&root, Duration::from_millis(30)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(held);
        initiator(&root, Duration::from_millis(30)).unwrap();
    }

    fn holders(path: &Path) -> usize {
        PROCESS_LOCKS
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|t| t.get(path))
            .map_or(0, |e| e.holders)
    }

    #[test]
    fn threads_share_the_stock_lock_and_the_last_one_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let path = dir.path().join("var/lock/sm/iscsiadm/isciadm_running");
        let first = stock_iscsiadm(&root, Duration::from_secs(1)).unwrap();
        // A second thread does not wait for its own process (fcntl locks are the process's).
        let second = std::thread::scope(|s| {
            s.spawn(|| stock_iscsiadm(&root, Duration::from_millis(30)).unwrap())
                .join()
                .unwrap()
        });
        assert_eq!(holders(&path), 2);
        drop(first);
        assert_eq!(holders(&path), 1);
        drop(second);
        assert_eq!(holders(&path), 0);
        // Taken again from the same descriptor; whether another process is kept out is
        // tested across processes in sm-testkit (tests/driver_iscsi_stock.rs).
        drop(stock_iscsiadm(&root, Duration::from_millis(30)).unwrap());
    }
}
