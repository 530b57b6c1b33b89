//! The programs a driver runs on a host, answered by the simulated host: `iscsiadm`
//! (open-iscsi's node database, SendTargets discovery, login and logout against the
//! fabric's iSCSI portals, CHAP), `udevadm settle` (the SCSI scans a driver asked for by
//! writing `sys/class/scsi_host/hostN/scan` are carried out, then udev is idle), and
//! `systemctl` (start/restart of multipathd and iscsid; `is-active` of iscsid).
//!
//! As iscsid does, discovery and login first connect to the portal over TCP (see
//! [`super::portals`]): a portal that never answers costs what it costs open-iscsi, the
//! login timeout (15 s) for each of its tries (discovery `reopen_max` 5, login
//! `initial_login_retry_max` 8). Discovery writes the node records it finds under
//! `var/lib/iscsi/nodes/<iqn>/<ip>,<port>,<tpgt>/default`, with default settings, as
//! open-iscsi does. While iscsid is stopped, what needs it fails with 20.
//!
//! The stand-in programs (see [`super::relay`]) pass their argv here over a unix socket at
//! `<root>/.host-sim.sock` and print what comes back. Outputs and exit codes are
//! open-iscsi's (`iscsi_err.h`): 4 no connection, 8 timed out, 15 session exists, 21 no
//! records/sessions, 24 authorization failure.

use crate::fabric::{HostPortId, PortRef};
use crate::multipathd_sim::MultipathdSim;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One program run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub program: String,
    pub args: Vec<String>,
}

/// What it printed and how it ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    fn ok(stdout: impl Into<String>) -> Self {
        Self {
            status: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn fail(status: i32, stderr: impl Into<String>) -> Self {
        Self {
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// open-iscsi's state on this host.
#[derive(Debug, Default)]
pub struct Iscsi {
    /// (target, portal) → settings.
    pub nodes: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Discovery settings per portal (CHAP for SendTargets).
    pub discoverydb: BTreeMap<String, BTreeMap<String, String>>,
    /// Sessions: SCSI host → (target, portal).
    pub sessions: BTreeMap<usize, (String, String)>,
    /// Targets that demand CHAP: target → (user, secret).
    pub chap: BTreeMap<String, (String, String)>,
    /// Targets that demand mutual CHAP: target → (user_in, secret_in) they prove
    /// themselves with.
    pub mutual_chap: BTreeMap<String, (String, String)>,
    /// iscsid is stopped (`systemctl start` starts it).
    pub iscsid_stopped: bool,
    /// `systemctl` actions seen, e.g. `restart iscsid.service`.
    pub systemctl: Vec<String>,
    /// Every program run, as (program, argv).
    pub runs: Vec<(String, Vec<String>)>,
}

/// open-iscsi's `*.timeo.login_timeout`: how long one TCP connect to a portal may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// `discovery.sendtargets.reopen_max`.
const DISCOVERY_TRIES: u32 = 5;
/// `node.session.initial_login_retry_max`.
const LOGIN_TRIES: u32 = 8;

/// Connects to a portal over TCP as iscsid does: each try waits up to the login timeout;
/// a refused connection is final.
fn reach(portal: &str, tries: u32) -> Result<(), String> {
    let addresses = super::portals::addresses(portal);
    let Some(at) = addresses.first() else {
        return Err(format!("cannot resolve {portal}"));
    };
    let mut why = String::new();
    for _ in 0..tries.max(1) {
        match TcpStream::connect_timeout(at, LOGIN_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => why = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(why)
}

/// A (portal, tpgt, target) SendTargets reports.
type Advertised = (String, String, String);

/// What the programs act on.
pub struct Kernel {
    pub root: PathBuf,
    pub mpd: Arc<MultipathdSim>,
    pub iscsi: Arc<Mutex<Iscsi>>,
    pub gates: Arc<Gates>,
}

/// Programs held at their start until a test lets them go, so a test can run something
/// else at a chosen point of a driver call (no timing involved).
#[derive(Default)]
pub struct Gates {
    state: Mutex<Vec<GateState>>,
    changed: std::sync::Condvar,
}

struct GateState {
    id: usize,
    program: String,
    args_contain: String,
    /// The argv of the run it holds, once one arrived.
    holding: Option<Vec<String>>,
    open: bool,
}

/// One gate: the first run of `program` whose argv contains `args_contain` waits at it.
pub struct Gate {
    gates: Arc<Gates>,
    id: usize,
}

/// How long a test waits for a gate before it gives up (a safety net against a hung test,
/// never an assertion about time).
const GATE_PATIENCE: Duration = Duration::from_secs(120);

impl Gates {
    pub fn add(self: &Arc<Self>, program: &str, args_contain: &str) -> Gate {
        let mut state = lock(&self.state);
        let id = state.len();
        state.push(GateState {
            id,
            program: program.into(),
            args_contain: args_contain.into(),
            holding: None,
            open: false,
        });
        Gate {
            gates: Arc::clone(self),
            id,
        }
    }

    /// Holds a run at the first closed gate that matches it, until the gate opens.
    fn pass(&self, request: &Request) {
        let argv = request.args.join(" ");
        let mut state = lock(&self.state);
        let Some(id) = state
            .iter()
            .find(|g| {
                !g.open
                    && g.holding.is_none()
                    && g.program == request.program
                    && argv.contains(&g.args_contain)
            })
            .map(|g| g.id)
        else {
            return;
        };
        state[id].holding = Some(request.args.clone());
        self.changed.notify_all();
        while !state[id].open {
            state = match self.changed.wait_timeout(state, GATE_PATIENCE) {
                Ok((s, t)) if t.timed_out() => {
                    let mut s = s;
                    s[id].open = true;
                    s
                }
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

impl Gate {
    /// Waits until a run arrived at the gate; its argv.
    pub fn reached(&self) -> Option<Vec<String>> {
        let mut state = lock(&self.gates.state);
        loop {
            if let Some(argv) = &state[self.id].holding {
                return Some(argv.clone());
            }
            state = match self.gates.changed.wait_timeout(state, GATE_PATIENCE) {
                Ok((_, t)) if t.timed_out() => return None,
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Lets the held run (and any later one) through.
    pub fn open(&self) {
        lock(&self.gates.state)[self.id].open = true;
        self.gates.changed.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `a.b.c.d:port`, 3260 when none is given; brackets of an IPv6 portal dropped.
fn norm_portal(p: &str) -> String {
    let p = p.split(',').next().unwrap_or(p);
    if let Some(rest) = p.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').unwrap_or("3260");
        return format!("{addr}:{port}");
    }
    match p.rsplit_once(':') {
        Some((a, port)) if !a.contains(':') => format!("{a}:{port}"),
        _ => format!("{p}:3260"),
    }
}

/// The options of an iscsiadm command line.
#[derive(Default)]
struct Opts {
    mode: String,
    portal: Option<String>,
    target: Option<String>,
    op: Option<String>,
    names: Vec<String>,
    values: Vec<String>,
    login: bool,
    logout: bool,
    discover: bool,
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "-m" | "--mode" => {
                o.mode = next;
                i += 1;
            }
            "-p" | "--portal" => {
                o.portal = Some(norm_portal(&next));
                i += 1;
            }
            "-T" | "--targetname" => {
                o.target = Some(next);
                i += 1;
            }
            "-o" | "--op" => {
                o.op = Some(next);
                i += 1;
            }
            "-n" | "--name" => {
                o.names.push(next);
                i += 1;
            }
            "-v" | "--value" => {
                o.values.push(next);
                i += 1;
            }
            "-t" | "--type" | "-I" | "--interface" => i += 1,
            "-l" | "--login" => o.login = true,
            "-u" | "--logout" => o.logout = true,
            "--discover" => o.discover = true,
            _ => {}
        }
        i += 1;
    }
    o
}

fn default_node() -> BTreeMap<String, String> {
    [
        ("node.session.timeo.replacement_timeout", "120"),
        ("node.session.auth.authmethod", "None"),
        ("node.startup", "manual"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Kernel {
    /// Runs one program.
    pub fn run(&self, request: &Request) -> Reply {
        self.gates.pass(request);
        lock(&self.iscsi)
            .runs
            .push((request.program.clone(), request.args.clone()));
        match request.program.as_str() {
            "iscsiadm" => self.iscsiadm(&request.args),
            "udevadm" => self.udevadm(&request.args),
            "dmsetup" => self.dmsetup(&request.args),
            "systemctl" => {
                let mut iscsi = lock(&self.iscsi);
                iscsi.systemctl.push(request.args.join(" "));
                let unit = request.args.get(1).map(String::as_str);
                match (request.args.first().map(String::as_str), unit) {
                    (Some("is-active"), Some("iscsid" | "iscsid.service")) => {
                        if iscsi.iscsid_stopped {
                            Reply {
                                status: 3,
                                stdout: "inactive\n".into(),
                                stderr: String::new(),
                            }
                        } else {
                            Reply::ok("active\n")
                        }
                    }
                    (Some("start" | "restart"), Some("iscsid" | "iscsid.service")) => {
                        iscsi.iscsid_stopped = false;
                        Reply::ok("")
                    }
                    (Some("stop"), Some("iscsid" | "iscsid.service")) => {
                        iscsi.iscsid_stopped = true;
                        Reply::ok("")
                    }
                    (Some("is-active"), _) => Reply::ok("active\n"),
                    _ => Reply::ok(""),
                }
            }
            other => Reply::fail(127, format!("{other}: not simulated\n")),
        }
    }

    /// `dmsetup status [--target multipath]`: the kernel's status line of every multipath
    /// table, as `drivers/md/dm-mpath.c` prints it (`STATUSTYPE_INFO`). The tables are the
    /// daemon's maps: the kernel keeps them, and their path states, while multipathd is
    /// down or not answering.
    fn dmsetup(&self, args: &[String]) -> Reply {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if !matches!(
            args.as_slice(),
            ["status"] | ["status", "--target", "multipath"]
        ) {
            return Reply::fail(
                1,
                "dmsetup: only `status [--target multipath]` is simulated\n",
            );
        }
        let lines = self.mpd.with(|w| {
            let (fabric, daemon) = (&w.fabric, &w.daemon);
            daemon
                .maps
                .iter()
                .map(|map| {
                    // Per-path info arguments of the path selector (dm-round-robin: none,
                    // dm-queue-length: the queue length, dm-service-time: in-flight size and
                    // relative throughput).
                    let (info_args, info) = match map.policy.selector.split(' ').next() {
                        Some("service-time") => (2, " 0 1"),
                        Some("queue-length") => (1, " 0"),
                        _ => (0, ""),
                    };
                    let mut line = format!(
                        "{}: 0 {} multipath 2 0 0 0 {} {}",
                        map.alias,
                        map.size_bytes / 512,
                        map.layout.len(),
                        if map.layout.is_empty() {
                            0
                        } else {
                            map.current + 1
                        }
                    );
                    for (i, group) in map.layout.iter().enumerate() {
                        let state = if i == map.current { 'A' } else { 'E' };
                        line.push_str(&format!(" {state} 0 {} {info_args}", group.len()));
                        for id in group {
                            let (_, failed, _) = daemon.path_view(fabric, *id);
                            let (major, minor) = fabric.device(*id).dev_t;
                            let (state, fails) = if failed { ('F', 1) } else { ('A', 0) };
                            line.push_str(&format!(" {major}:{minor} {state} {fails}{info}"));
                        }
                    }
                    line.push('\n');
                    line
                })
                .collect::<String>()
        });
        if lines.is_empty() {
            Reply::ok("No devices found\n")
        } else {
            Reply::ok(&lines)
        }
    }

    fn udevadm(&self, args: &[String]) -> Reply {
        if args.first().map(String::as_str) != Some("settle") {
            return Reply::fail(1, "udevadm: only settle is simulated\n");
        }
        self.settle();
        Reply::ok("")
    }

    /// Carries out the scans written to `sys/class/scsi_host/hostN/scan`.
    pub fn settle(&self) {
        let dir = self.root.join("sys/class/scsi_host");
        let mut asked = Vec::new();
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let scan = entry.path().join("scan");
            let wrote = fs::read_to_string(&scan).unwrap_or_default();
            if wrote.trim().is_empty() {
                continue;
            }
            let _ = fs::write(&scan, "");
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("host"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                asked.push(n);
            }
        }
        if !asked.is_empty() {
            self.mpd.fabric(|f| {
                for n in asked {
                    if n < f.host_ports().len() {
                        f.scan_host_port(HostPortId(n));
                    }
                }
            });
        }
    }

    /// The target port serving a portal, whether it answers, and every (portal, tpgt,
    /// target) SendTargets reports through it.
    fn portals_of(&self, portal: &str) -> Option<(PortRef, bool, Vec<Advertised>)> {
        self.mpd.fabric(|f| {
            let ports = f.iscsi_ports();
            let (at, spec) = ports
                .iter()
                .find(|(_, s)| s.portal.as_deref().map(norm_portal).as_deref() == Some(portal))?;
            let iqn = spec.target_iqn.clone().unwrap_or_default();
            let all = ports
                .iter()
                .filter(|(p, s)| p.array == at.array && s.target_iqn.as_deref() == Some(&iqn))
                .map(|(_, s)| {
                    (
                        norm_portal(s.portal.as_deref().unwrap_or("")),
                        s.tpg.to_string(),
                        iqn.clone(),
                    )
                })
                .collect();
            Some((*at, f.port_up(*at), all))
        })
    }

    fn iscsiadm(&self, args: &[String]) -> Reply {
        let o = parse(args);
        let needs_iscsid = matches!(o.mode.as_str(), "discovery" | "session")
            || (o.mode == "discoverydb" && o.discover)
            || (o.mode == "node" && (o.login || o.logout));
        if needs_iscsid && lock(&self.iscsi).iscsid_stopped {
            return Reply::fail(
                20,
                "iscsiadm: can not connect to iSCSI daemon (111)!\n\
                 iscsiadm: Could not complete the operation: iscsid not connected\n",
            );
        }
        match o.mode.as_str() {
            "discovery" => self.discover(&o),
            "discoverydb" => {
                let portal = o.portal.clone().unwrap_or_default();
                if o.discover {
                    return self.discover(&o);
                }
                let mut iscsi = lock(&self.iscsi);
                let db = iscsi.discoverydb.entry(portal).or_default();
                for (n, v) in o.names.iter().zip(&o.values) {
                    db.insert(n.clone(), v.clone());
                }
                Reply::ok("")
            }
            "node" => self.node(&o),
            "session" => {
                let iscsi = lock(&self.iscsi);
                if iscsi.sessions.is_empty() {
                    return Reply::fail(21, "iscsiadm: No active sessions.\n");
                }
                let text: String = iscsi
                    .sessions
                    .iter()
                    .map(|(sid, (iqn, portal))| {
                        format!("tcp: [{sid}] {portal},1 {iqn} (non-flash)\n")
                    })
                    .collect();
                Reply::ok(text)
            }
            _ => Reply::fail(7, "iscsiadm: mode not simulated\n"),
        }
    }

    fn discover(&self, o: &Opts) -> Reply {
        let portal = o.portal.clone().unwrap_or_default();
        let host = portal
            .rsplit_once(':')
            .map_or(portal.as_str(), |(a, _)| a)
            .to_string();
        let unreachable = Reply::fail(
            4,
            format!(
                "iscsiadm: cannot make connection to {host}: No route to host\n\
                 iscsiadm: connection login retries (reopen_max) 5 exceeded\n\
                 iscsiadm: Could not perform SendTargets discovery: encountered connection failure\n"
            ),
        );
        if reach(&portal, DISCOVERY_TRIES).is_err() {
            return unreachable;
        }
        let Some((_, up, all)) = self.portals_of(&portal) else {
            return unreachable;
        };
        if !up {
            return unreachable;
        }
        let mut iscsi = lock(&self.iscsi);
        let mut out = String::new();
        for (p, tpgt, iqn) in all {
            // A discovery resets the records it reports (what iBFT users guard against).
            iscsi.nodes.insert((iqn.clone(), p.clone()), default_node());
            self.write_node_record(&iqn, &p, &tpgt);
            out.push_str(&format!("{p},{tpgt} {iqn}\n"));
        }
        Reply::ok(out)
    }

    /// open-iscsi's record file of a node, with default settings.
    fn write_node_record(&self, iqn: &str, portal: &str, tpgt: &str) {
        let (address, port) = portal.rsplit_once(':').unwrap_or((portal, "3260"));
        let dir = self
            .root
            .join("var/lib/iscsi/nodes")
            .join(iqn)
            .join(format!("{address},{port},{tpgt}"));
        let mut text = format!(
            "# BEGIN RECORD 6.2.0.874\nnode.name = {iqn}\nnode.tpgt = {tpgt}\n\
             node.conn[0].address = {address}\nnode.conn[0].port = {port}\n"
        );
        for (k, v) in default_node() {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text.push_str("# END RECORD\n");
        let _ = fs::create_dir_all(&dir);
        let _ = fs::write(dir.join("default"), text);
    }

    fn node(&self, o: &Opts) -> Reply {
        let Some(target) = o.target.clone() else {
            let iscsi = lock(&self.iscsi);
            if iscsi.nodes.is_empty() {
                return Reply::fail(21, "iscsiadm: No records found\n");
            }
            let text: String = iscsi
                .nodes
                .keys()
                .map(|(iqn, portal)| format!("{portal},1 {iqn}\n"))
                .collect();
            return Reply::ok(text);
        };
        let matching: Vec<(String, String)> = lock(&self.iscsi)
            .nodes
            .keys()
            .filter(|(iqn, portal)| *iqn == target && o.portal.as_ref().is_none_or(|p| p == portal))
            .cloned()
            .collect();
        if o.logout {
            return self.logout(&target, o.portal.as_deref());
        }
        if matching.is_empty() {
            return Reply::fail(21, "iscsiadm: No records found\n");
        }
        if o.op.as_deref() == Some("update") {
            let mut iscsi = lock(&self.iscsi);
            for key in &matching {
                if let Some(node) = iscsi.nodes.get_mut(key) {
                    for (n, v) in o.names.iter().zip(&o.values) {
                        node.insert(n.clone(), v.clone());
                    }
                }
            }
            return Reply::ok("");
        }
        if o.op.as_deref() == Some("delete") {
            let mut iscsi = lock(&self.iscsi);
            for key in &matching {
                iscsi.nodes.remove(key);
            }
            return Reply::ok("");
        }
        if o.login {
            return self.login(&target, &matching);
        }
        // Show: the settings, secrets masked as iscsiadm masks them without -S.
        let iscsi = lock(&self.iscsi);
        let node = &iscsi.nodes[&matching[0]];
        let mut text = format!(
            "node.name = {target}\nnode.conn[0].address = {}\n",
            matching[0].1
        );
        for (k, v) in node {
            let shown = if k.contains("password") {
                "********"
            } else {
                v
            };
            text.push_str(&format!("{k} = {shown}\n"));
        }
        Reply::ok(text)
    }

    fn login(&self, target: &str, nodes: &[(String, String)]) -> Reply {
        let mut out = String::new();
        let mut err = String::new();
        let mut status = 0;
        for (iqn, portal) in nodes {
            let what = format!(
                "[iface: default, target: {iqn}, portal: {}]",
                portal.replace(':', ",")
            );
            let iscsi = lock(&self.iscsi);
            if iscsi
                .sessions
                .values()
                .any(|s| s.0 == *iqn && s.1 == *portal)
            {
                err.push_str("iscsiadm: default: 1 session requested, but 1 already present.\n");
                status = 15;
                continue;
            }
            let node = iscsi.nodes[&(iqn.clone(), portal.clone())].clone();
            if let Some((user, secret)) = iscsi.chap.get(target) {
                let given_user = node.get("node.session.auth.username");
                let given_secret = node.get("node.session.auth.password");
                if node.get("node.session.auth.authmethod").map(String::as_str) != Some("CHAP")
                    || given_user != Some(user)
                    || given_secret != Some(secret)
                {
                    err.push_str(&format!(
                        "iscsiadm: Could not login to {what}.\n\
                         iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n"
                    ));
                    status = 24;
                    continue;
                }
            }
            if let Some((user_in, secret_in)) = iscsi.mutual_chap.get(target) {
                // The initiator must ask the target to prove itself, with its credentials.
                if node.get("node.session.auth.username_in") != Some(user_in)
                    || node.get("node.session.auth.password_in") != Some(secret_in)
                {
                    err.push_str(&format!(
                        "iscsiadm: Could not login to {what}.\n\
                         iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n"
                    ));
                    status = 24;
                    continue;
                }
            }
            drop(iscsi);
            let tries = node
                .get("node.session.initial_login_retry_max")
                .and_then(|n| n.parse().ok())
                .unwrap_or(LOGIN_TRIES);
            if let Err(why) = reach(portal, tries) {
                err.push_str(&format!(
                    "iscsiadm: Could not login to {what}.\n\
                     iscsiadm: initiator reported error (8 - connection timed out: {why})\n"
                ));
                status = 8;
                continue;
            }
            let Some((port, up, _)) = self.portals_of(portal) else {
                status = 4;
                continue;
            };
            if !up {
                err.push_str(&format!(
                    "iscsiadm: Could not login to {what}.\n\
                     iscsiadm: initiator reported error (8 - connection timed out)\n"
                ));
                status = 8;
                continue;
            }
            let (hp, _) = self.mpd.fabric(|f| f.login_iscsi(port));
            lock(&self.iscsi)
                .sessions
                .insert(hp.0, (iqn.clone(), portal.clone()));
            out.push_str(&format!(
                "Logging in to {what} (multiple)\nLogin to {what} successful.\n"
            ));
        }
        if status == 15 && out.is_empty() {
            return Reply {
                status,
                stdout: out,
                stderr: err,
            };
        }
        if status != 0 && status != 15 {
            err.push_str("iscsiadm: Could not log into all portals\n");
        }
        Reply {
            status: if status == 15 { 0 } else { status },
            stdout: out,
            stderr: err,
        }
    }

    fn logout(&self, target: &str, portal: Option<&str>) -> Reply {
        let gone: Vec<(usize, String)> = lock(&self.iscsi)
            .sessions
            .iter()
            .filter(|(_, (iqn, p))| iqn == target && portal.is_none_or(|want| want == p))
            .map(|(hp, (_, p))| (*hp, p.clone()))
            .collect();
        if gone.is_empty() {
            return Reply::fail(21, "iscsiadm: No matching sessions found\n");
        }
        let mut out = String::new();
        for (hp, p) in gone {
            self.mpd.fabric(|f| f.logout_iscsi(HostPortId(hp)));
            lock(&self.iscsi).sessions.remove(&hp);
            let what = format!(
                "[sid: {hp}, target: {target}, portal: {}]",
                p.replace(':', ",")
            );
            out.push_str(&format!(
                "Logging out of session {what}\nLogout of {what} successful.\n"
            ));
        }
        Reply::ok(out)
    }
}
