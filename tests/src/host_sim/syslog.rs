//! The host's syslog socket, `dev/log`: every datagram kept as sent (`<pri>… SM: [pid] …`),
//! and its text appended to `var/log/SMlog`, as rsyslog does with facility local2 on a
//! XenServer host.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The text of a barrier datagram (followed by its number); never a syslog line.
const BARRIER: &str = "\u{1}sm-rs-host-sim-barrier ";

pub struct Syslog {
    pub socket: PathBuf,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// The barrier markers the reader passed, with their signal (see [`Syslog::lines`]).
    passed: Arc<(Mutex<BTreeSet<u64>>, Condvar)>,
    next_marker: AtomicU64,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syslog {
    pub fn start(root: &Path) -> std::io::Result<Self> {
        let socket = root.join("dev/log");
        fs::create_dir_all(root.join("dev"))?;
        fs::create_dir_all(root.join("var/log"))?;
        let _ = fs::remove_file(&socket);
        let receiver = UnixDatagram::bind(&socket)?;
        receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let passed = Arc::new((Mutex::new(BTreeSet::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let smlog = root.join("var/log/SMlog");
        let thread = {
            let (lines, stop, passed) =
                (Arc::clone(&lines), Arc::clone(&stop), Arc::clone(&passed));
            std::thread::Builder::new()
                .name("host-sim-syslog".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(n) = receiver.recv(&mut buf) else {
                            continue;
                        };
                        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if let Some(marker) = line
                            .strip_prefix(BARRIER)
                            .and_then(|m| m.parse::<u64>().ok())
                        {
                            let (last, signal) = &*passed;
                            if let Ok(mut last) = last.lock() {
                                last.insert(marker);
                            }
                            signal.notify_all();
                            continue;
                        }
                        if let Ok(mut file) =
                            OpenOptions::new().create(true).append(true).open(&smlog)
                        {
                            let text = line.split_once('>').map_or(line.as_str(), |(_, t)| t);
                            let _ = writeln!(file, "{}", text.trim_end());
                        }
                        if let Ok(mut l) = lines.lock() {
                            l.push(line);
                        }
                    }
                })?
        };
        Ok(Self {
            socket,
            lines,
            passed,
            next_marker: AtomicU64::new(1),
            stop,
            thread: Some(thread),
        })
    }

    /// Every line so far. A datagram a program sent before it exited is in the socket's
    /// queue but maybe not read yet: a barrier datagram, sent now and queued after them,
    /// is awaited first, so every line sent before this call is in.
    pub fn lines(&self) -> Vec<String> {
        self.settle();
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn settle(&self) {
        let marker = self.next_marker.fetch_add(1, Ordering::Relaxed);
        let Ok(sender) = UnixDatagram::unbound() else {
            return;
        };
        if sender
            .send_to(format!("{BARRIER}{marker}").as_bytes(), &self.socket)
            .is_err()
        {
            return;
        }
        let (last, signal) = &*self.passed;
        let Ok(guard) = last.lock() else {
            return;
        };
        // Bounded only so a dead reader cannot hang a test; the reader normally passes the
        // marker as soon as it reaches it.
        let passed = signal.wait_timeout_while(guard, Duration::from_secs(30), |passed| {
            !passed.contains(&marker)
        });
        if let Ok((mut passed, _)) = passed {
            passed.remove(&marker);
        }
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
