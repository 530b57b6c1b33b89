//! The per-target reference count of iSCSI sessions: `/run/sr-ref/<targetIQN>` (stock's
//! `/var/run/sr-ref`; `/var/run` is `/run` on a dom0) lists, one per line, every user of the
//! target's sessions on this host. We keep stock sm's file and its rules (`util.py`
//! `_incr_iscsiSR_refcount` / `_decr_iscsiSR_refcount`), so a stock SR and ours sharing a
//! target never log each other out; a session is logged out only when the last user lets go.
//!
//! Stock counts only the lines that begin with a uuid (lowercase, `8-4-4-4-12`), and when it
//! drops its own line it rewrites the file with those lines alone (each kept whole). So every
//! line we write begins with a uuid:
//! - an SR: its uuid, as stock writes it;
//! - a call using the sessions without an SR of its own (`sr_probe`, the check in
//!   `sr_create`): a uuid of its own followed by ` sm-rs <what> pid=<pid>`. A stock detach
//!   counts it and keeps it. If the call dies before it lets go, the next of our calls that
//!   rewrites the file drops the line (its process is gone); until then the sessions stay,
//!   which is the safe way to be wrong.
//!
//! Stock edits the file without a lock (xapi serialises stock's attach and detach, not
//! `sr_create`). Our edits are serialised among our processes by a lock of ours, and made
//! so that a stock reader at any instant sees at least every line that remains: a new line
//! is appended in one write (as stock appends), and a rewrite writes the kept lines over
//! the start of the file before cutting its tail, never truncating first.

use crate::host::lock;
use md5::{Digest, Md5};
use mpathutil::HostRoot;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SR_REF_DIR: &str = "/run/sr-ref";

/// How long a call waits for another of ours editing the same file (a few file operations).
const EDIT_WAIT: Duration = Duration::from_secs(30);

fn file(root: &HostRoot, target_iqn: &str) -> PathBuf {
    root.path(SR_REF_DIR).join(target_iqn.replace('/', "_"))
}

/// Whether a line begins with a uuid as stock matches it (`util.match_uuid`).
pub fn stock_counts(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= 36
        && b[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// The identity of a line: its first word.
fn id(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// The user a line names, for a call of ours: its process id (`pid=N` of ours; the
/// `probe-N` / `create-N` lines of older versions).
fn call_pid(line: &str) -> Option<i32> {
    if let Some(pid) = line.split_whitespace().find_map(|w| w.strip_prefix("pid=")) {
        return pid.parse().ok();
    }
    let first = id(line);
    ["probe-", "create-"]
        .iter()
        .find_map(|p| first.strip_prefix(p))
        .and_then(|pid| pid.parse().ok())
}

/// Whether the line's user may still use the sessions: every SR line, and call lines whose
/// process lives.
fn live(line: &str) -> bool {
    let Some(pid) = call_pid(line) else {
        return true;
    };
    match rustix::process::Pid::from_raw(pid) {
        Some(pid) => match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            // Alive, another user's.
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

/// The user for this call (`what`: `probe`, `create`): a line stock counts and keeps.
pub fn call_user(what: &str) -> String {
    let pid = std::process::id();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = Md5::digest(format!("sm-rs {what} {pid} {now}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{} sm-rs {what} pid={pid}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
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

fn edit_lock(root: &HostRoot, target_iqn: &str) -> io::Result<lock::Held> {
    lock::acquire(root, &format!("sr-ref-{target_iqn}"), EDIT_WAIT)
}

/// Adds a user (an SR uuid, or a [`call_user`]); returns how many users the target has.
pub fn add(root: &HostRoot, target_iqn: &str, user: &str) -> io::Result<usize> {
    let _edit = edit_lock(root, target_iqn)?;
    let path = file(root, target_iqn);
    let lines = read(&path)?;
    let users = lines.iter().filter(|l| live(l)).count();
    if lines.iter().any(|l| id(l) == id(user)) {
        return Ok(users);
    }
    fs::create_dir_all(root.path(SR_REF_DIR))?;
    let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
    f.write_all(format!("{user}\n").as_bytes())?;
    Ok(users + 1)
}

/// Removes a user; returns how many users the target still has. Lines of calls that died
/// go too.
pub fn remove(root: &HostRoot, target_iqn: &str, user: &str) -> io::Result<usize> {
    let _edit = edit_lock(root, target_iqn)?;
    let path = file(root, target_iqn);
    let lines = read(&path)?;
    let kept: Vec<&String> = lines
        .iter()
        .filter(|l| id(l) != id(user) && live(l))
        .collect();
    if kept.is_empty() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        return Ok(0);
    }
    if kept.len() != lines.len() {
        let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
        let f = OpenOptions::new().write(true).open(&path)?;
        f.write_all_at(text.as_bytes(), 0)?;
        f.set_len(text.len() as u64)?;
    }
    Ok(kept.len())
}

/// The users of a target (the first word of each line: an SR's uuid, a call's own uuid).
pub fn users(root: &HostRoot, target_iqn: &str) -> io::Result<Vec<String>> {
    Ok(read(&file(root, target_iqn))?
        .iter()
        .map(|l| id(l).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
    const B: &str = "7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8";

    #[test]
    fn counts_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let iqn = "iqn.2026-01.com.example:array";
        assert_eq!(add(&root, iqn, A).unwrap(), 1);
        assert_eq!(add(&root, iqn, A).unwrap(), 1);
        assert_eq!(add(&root, iqn, B).unwrap(), 2);
        assert_eq!(remove(&root, iqn, A).unwrap(), 1);
        assert_eq!(users(&root, iqn).unwrap(), vec![B.to_string()]);
        assert_eq!(remove(&root, iqn, B).unwrap(), 0);
        assert_eq!(remove(&root, iqn, B).unwrap(), 0);
        assert!(!root.path("/run/sr-ref").join(iqn).exists());
    }

    #[test]
    fn a_call_line_is_one_stock_counts_and_it_dies_with_its_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let iqn = "iqn.2026-01.com.example:array";
        let probe = call_user("probe");
        assert!(stock_counts(&probe), "{probe}");
        assert!(!stock_counts("probe-123"));
        assert!(stock_counts(A) && !stock_counts(&A.to_uppercase()));
        assert!(probe.ends_with(&format!(" sm-rs probe pid={}", std::process::id())));
        add(&root, iqn, A).unwrap();
        assert_eq!(add(&root, iqn, &probe).unwrap(), 2);
        // A line of a call that died (and one of an older version) goes at the next rewrite.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let path = root.path("/run/sr-ref").join(iqn);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(&format!(
            "{B} sm-rs create pid={dead_pid}\ncreate-{dead_pid}\n"
        ));
        fs::write(&path, text).unwrap();
        assert_eq!(remove(&root, iqn, A).unwrap(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{probe}\n"));
        assert_eq!(remove(&root, iqn, &probe).unwrap(), 0);
        assert!(!path.exists());
    }
}
