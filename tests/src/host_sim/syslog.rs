//! The host's syslog socket, `dev/log`: every datagram kept as sent (`<pri>… SM: [pid] …`),
//! and its text appended to `var/log/SMlog`, as rsyslog does with facility local2 on a
//! XenServer host.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Syslog {
    pub socket: PathBuf,
    pub lines: Arc<Mutex<Vec<String>>>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let smlog = root.join("var/log/SMlog");
        let thread = {
            let (lines, stop) = (Arc::clone(&lines), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("host-sim-syslog".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(n) = receiver.recv(&mut buf) else {
                            continue;
                        };
                        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
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
            stop,
            thread: Some(thread),
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
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
