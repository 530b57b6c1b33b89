//! The path agent on a lab host: `sm-mpath-agent` started as its service would be (with
//! the host's `SM_RS_ROOT`, `MULTIPATH_SOCKET_NAME`, the stand-ins first in `PATH`, and
//! `SM_RS_XAPI` pointing at a
//! [`tap::XapiTap`] in front of the xapi simulator), uevents delivered as the kernel would
//! ([`uevents`]), its local API called as root.

pub mod tap;
pub mod uevents;

use crate::lab::{Lab, LabHost};
use sm_plugin::agent::client::{self, CallError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tap::XapiTap;
use uevents::Relay;

/// Writes the host's `etc/xensource-inventory`, as the installer does.
pub fn install_inventory(host: &LabHost) -> std::io::Result<()> {
    let dir = host.sim.root().join("etc");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("xensource-inventory"),
        format!(
            "PRODUCT_BRAND='XCP-ng'\nINSTALLATION_UUID='{}'\nCONTROL_DOMAIN_UUID='00000000-0000-0000-0000-000000000000'\n",
            host.uuid
        ),
    )
}

/// Waits for `done`, up to a minute (a hang fails; the time is not what is tested).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running agent process.
pub struct AgentProc {
    child: Option<Child>,
    root: mpathutil::HostRoot,
    log: PathBuf,
    command: Vec<(String, String)>,
    args: Vec<String>,
    exe: PathBuf,
}

impl AgentProc {
    /// Starts the agent of lab host `i` with extra flags, and waits until its API answers.
    pub fn start(lab: &Lab, i: usize, tap: &XapiTap, args: &[&str]) -> Self {
        let host = lab.host(i);
        install_inventory(host).expect("the inventory is written");
        let root = host.sim.root().to_path_buf();
        let relay = relay_path(&root);
        let mut all_args = vec![
            "--foreground".to_string(),
            format!("--uevents=unix:{}", relay.display()),
        ];
        all_args.extend(args.iter().map(|a| a.to_string()));
        let env = vec![
            ("SM_RS_ROOT".to_string(), root.display().to_string()),
            (
                "MULTIPATH_SOCKET_NAME".to_string(),
                host.sim.socket_name().to_string(),
            ),
            ("SM_RS_XAPI".to_string(), tap.address()),
            // systemd's `PATH`, with the host's stand-ins (`dmsetup`) first.
            (
                "PATH".to_string(),
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    lab.dir.join("bin").display()
                ),
            ),
        ];
        let mut agent = Self {
            child: None,
            root: mpathutil::HostRoot::new(&root),
            log: lab.dir.join(format!("agent-{}.log", host.uuid)),
            command: env,
            args: all_args,
            exe: crate::bins::path("sm-mpath-agent"),
        };
        agent.restart();
        agent
    }

    /// Starts the process again (after [`AgentProc::kill`] or [`AgentProc::stop`]).
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the agent's log opens");
        let mut command = Command::new(&self.exe);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.command.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(command.spawn().expect("the agent starts"));
        wait_until("the agent's API", || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the agent exited: {status}\n{}", self.log());
            }
            self.call("health").is_ok()
        });
    }

    /// A call on the local API, as root.
    pub fn call(&self, method: &str) -> Result<serde_json::Value, CallError> {
        client::call(&self.root, method, Duration::from_secs(5))
    }

    pub fn health(&self) -> serde_json::Value {
        self.call("health").expect("the agent answers health")
    }

    /// A counter of `health`.
    pub fn counter(&self, name: &str) -> u64 {
        self.health()["counters"][name].as_u64().unwrap_or(0)
    }

    /// Waits until the agent has made `n` more passes than now, by itself (its periodic
    /// reconcile, its retries).
    pub fn wait_passes(&self, n: u64) {
        let start = self.counter("passes");
        wait_until("agent passes", || self.counter("passes") >= start + n);
    }

    /// Kicks the agent until it has made `n` more passes than now: with `n` ≥ 2, at least
    /// one pass began after this call.
    pub fn kick_passes(&self, n: u64) {
        let start = self.counter("passes");
        wait_until("agent passes", || {
            let _ = self.call("kick");
            std::thread::sleep(Duration::from_millis(20));
            self.counter("passes") >= start + n
        });
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as systemd stops it; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        child.wait().ok()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) and peak RSS of the running process, from `/proc`.
    pub fn usage(&self) -> Option<(Duration, u64)> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let hwm_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        // USER_HZ is 100 on Linux.
        Some((Duration::from_millis(ticks * 10), hwm_kib))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn socket(&self) -> PathBuf {
        client::socket_path(&self.root)
    }

    pub fn relay(&self) -> Relay {
        Relay::new(&relay_path(self.root.as_path())).expect("a datagram socket")
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the agent of a host root reads relayed uevents.
pub fn relay_path(root: &Path) -> PathBuf {
    root.join("run/sm-rs/uevents.sock")
}
