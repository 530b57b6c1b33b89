//! `sm-mpath-agent`: the per-host path monitor that keeps each PBD's `mpath-<SCSIid>` =
//! `[active, max]` true within a second of a path change, where stock XCP-ng waits for the
//! next `sr-update` or a fresh Python process per udev kick (`sm-facts.md` §4.5).
//!
//! Level-triggered: a kernel uevent ([`uevent`]), a `kick` on the local API ([`api`]) or the
//! periodic reconcile only say "look now"; after a short debounce (a storm folds into one
//! pass) one pass ([`pass`]) reads the LUNs in use (the in-use registry), the topology once
//! (`show maps json` + `show topology`) and the high-water ledger, and diffs what each of
//! this host's PBDs of our SR types should hold against what xapi holds. Where multipathd
//! cannot answer for a LUN in use (down, restarting, answering `timeout`, not listing the
//! map yet), the kernel's dm status of the map is read instead
//! ([`crate::host::dmstatus`]); with neither, the count is unknown and nothing is written.
//! Where dom0 boots from a multipath map and stock mpathcount is not installed, the host's
//! `mpath-boot` is kept the same way ([`crate::host::bootdisk`]). Only keys that
//! changed are written; writes xapi did not take stay pending (coalesced per key: the
//! latest value wins) and are retried with backoff; when xapi answers again, its PBDs are
//! read afresh and the diff is made against that, so nothing is written twice. What xapi
//! holds, the paths last seen and the all-paths-down episodes are kept under `run/`, so a
//! restart neither rewrites every key nor repeats a message.
//!
//! Calls to xapi in a pass of a consistent host: none. A full read of this host's PBDs
//! (two calls) happens at start, when xapi answers again after an outage, when a LUN of an
//! SR not yet seen is in use, and every `resync` period (other writers: the driver while
//! the agent was down, an administrator).

pub mod api;
pub mod cli;
pub mod client;
pub mod metrics;
pub mod pass;
pub mod uevent;
pub mod xapi;

use crate::host::inuse::{Record, Registry, Stage};
use crate::host::{bootdisk, dmstatus};
use crate::publish;
use mpathutil::highwater::Ledger;
use mpathutil::parse::KernelStatus;
use mpathutil::{HostRoot, PathCounts, Topology};
use pass::{Context, Disks, Reading, Saved};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uevent::{Source, SourceSpec, Uevent};
use xapi::{CallError, PbdView, XapiLink};
use xenapi::Ref;
use xenapi::api::message::{self, MessageClass};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: HostRoot,
    /// How long to wait after the first event of a burst before a pass.
    pub debounce: Duration,
    /// A pass at least this often, events or not.
    pub reconcile: Duration,
    /// A full read of this host's PBDs at least this often.
    pub resync: Duration,
    /// On SIGTERM, how long pending writes may still take.
    pub drain: Duration,
    /// The deadline of each XenAPI call.
    pub call_timeout: Duration,
    /// XenAPI writes in flight at once.
    pub concurrency: usize,
    pub uevents: SourceSpec,
    pub socket: PathBuf,
    pub state_file: PathBuf,
    /// The Prometheus textfile-collector file; `None`: no metrics.
    pub metrics_file: Option<PathBuf>,
}

impl Config {
    pub fn new(root: HostRoot) -> Self {
        Self {
            debounce: Duration::from_millis(200),
            reconcile: Duration::from_secs(60),
            resync: Duration::from_secs(600),
            drain: Duration::from_secs(5),
            call_timeout: Duration::from_secs(5),
            concurrency: 16,
            uevents: SourceSpec::Netlink,
            socket: client::socket_path(&root),
            state_file: root.path(STATE_FILE),
            metrics_file: Some(root.path(metrics::DEFAULT_FILE)),
            root,
        }
    }
}

pub const STATE_FILE: &str = "/run/sm-rs/agent-state.json";
pub const INVENTORY: &str = "/etc/xensource-inventory";

/// This host's uuid, as stock finds it: `INSTALLATION_UUID` in `etc/xensource-inventory`.
pub fn installation_uuid(root: &HostRoot) -> Result<String, String> {
    let path = root.path(INVENTORY);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("INSTALLATION_UUID="))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .find(|v| !v.is_empty())
        .ok_or_else(|| format!("{} has no INSTALLATION_UUID", path.display()))
}

/// "Look now", folded: any number of wake-ups before the next pass make one.
#[derive(Default)]
pub struct Wake {
    pending: AtomicBool,
    notify: Notify,
}

impl Wake {
    pub fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.pending.swap(false, Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    fn take(&self) -> bool {
        self.pending.swap(false, Ordering::SeqCst)
    }
}

// The API's wire types are `mpathutil`'s, which `mpathutil agent` reads.
pub use mpathutil::agent::{Counters, Health, LunStatus, PathStatus};

/// What the API and the service loop share.
pub struct Shared {
    pub wake: Wake,
    /// Someone asked for a full read of this host's PBDs before the next pass (`resync`:
    /// `xe sr-update`, a plug), because another writer may have changed them.
    resync_asked: AtomicBool,
    started: Instant,
    events: AtomicU64,
    kicks: AtomicU64,
    report: Mutex<(Health, Vec<LunStatus>)>,
}

impl Shared {
    fn new() -> Self {
        Self {
            wake: Wake::default(),
            resync_asked: AtomicBool::new(false),
            started: Instant::now(),
            events: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
            report: Mutex::new(Default::default()),
        }
    }

    fn health_value(&self) -> serde_json::Value {
        let mut health = self.report.lock().map(|r| r.0.clone()).unwrap_or_default();
        health.uptime_s = self.started.elapsed().as_secs_f64();
        health.counters.events = self.events.load(Ordering::Relaxed);
        health.counters.kicks = self.kicks.load(Ordering::Relaxed);
        serde_json::to_value(health).unwrap_or_default()
    }

    fn status_value(&self) -> serde_json::Value {
        let luns = self.report.lock().map(|r| r.1.clone()).unwrap_or_default();
        serde_json::json!({ "luns": luns })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the topology once, off the runtime, under a deadline.
async fn read_topology() -> Result<Topology, String> {
    let mut config = mpathutil::Config::from_env();
    config.reply_timeout = Duration::from_secs(3);
    config.attempts = 2;
    let task = tokio::task::spawn_blocking(move || {
        let mut daemon = mpathutil::Multipathd::connect(&config)?;
        daemon.snapshot()
    });
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Err(_) => Err("multipathd did not answer within 10 s".into()),
        Ok(Err(e)) => Err(format!("reading multipathd: {e}")),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Ok(Ok(t))) => Ok(t),
    }
}

/// The kernel's multipath maps (by name) and the SCSI disks (by `major:minor`), off the
/// runtime.
async fn read_kernel(root: HostRoot) -> Result<(BTreeMap<String, KernelStatus>, Disks), String> {
    let task = tokio::task::spawn_blocking(move || {
        let maps = dmstatus::multipath_maps()?;
        Ok((maps, dmstatus::disks_by_dev_t(&root)))
    });
    match tokio::time::timeout(dmstatus::DMSETUP_TIMEOUT * 2, task).await {
        Err(_) => Err("dmsetup did not answer".into()),
        Ok(Err(e)) => Err(format!("reading the kernel's dm status: {e}")),
        Ok(Ok(r)) => r,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The service's state.
struct Agent {
    config: Config,
    shared: Arc<Shared>,
    link: XapiLink,
    saved: Saved,
    saved_bytes: Vec<u8>,
    views: Vec<PbdView>,
    /// (PBD ref, key) → the value xapi should take (`None`: remove).
    outbox: BTreeMap<(String, String), Option<String>>,
    /// This host's `other_config` key → the value xapi should take.
    host_outbox: BTreeMap<String, Option<String>>,
    /// The multipath map dom0 boots from, while we keep its `mpath-boot` (no stock
    /// mpathcount on this host), and its reading of the last pass.
    boot: Option<String>,
    boot_reading: Option<Reading>,
    /// The root map as last seen, whoever keeps it (to log a change once).
    root_map: Option<String>,
    need_resync: bool,
    last_resync: Option<Instant>,
    /// SRs we already re-read xapi for without finding them.
    looked_for: BTreeSet<String>,
    reachable: bool,
    multipathd_ok: bool,
    backoff: Duration,
    retry_at: Option<Instant>,
    counters: Counters,
    last_pass: Option<(u64, Duration)>,
    statuses: Vec<LunStatus>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Short enough that a returning xapi is reconciled within 2 s.
const BACKOFF_MAX: Duration = Duration::from_millis(800);

impl Agent {
    fn new(config: Config, shared: Arc<Shared>, host_uuid: String) -> Result<Self, String> {
        let client = xenapi::Client::from_env().map_err(|e| format!("where is xapi: {e}"))?;
        let link = XapiLink::new(client, host_uuid, config.call_timeout);
        let saved: Saved = match std::fs::read(&config.state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: unreadable ({e}); starting afresh",
                    config.state_file.display()
                );
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        // Until xapi answers, the PBDs of the last read (their keys as we last knew them).
        let views = saved
            .pbds
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v.keys = saved
                    .xapi
                    .get(v.pbd.as_str())
                    .map(|keys| {
                        keys.iter()
                            .map(|(k, p)| (k.clone(), p.value.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                v
            })
            .collect();
        Ok(Self {
            config,
            shared,
            link,
            saved,
            saved_bytes: Vec::new(),
            views,
            outbox: BTreeMap::new(),
            host_outbox: BTreeMap::new(),
            boot: None,
            boot_reading: None,
            root_map: None,
            need_resync: true,
            last_resync: None,
            looked_for: BTreeSet::new(),
            reachable: true,
            multipathd_ok: true,
            backoff: BACKOFF_FIRST,
            retry_at: None,
            counters: Counters::default(),
            last_pass: None,
            statuses: Vec::new(),
        })
    }

    fn unreachable(&mut self, why: &str) {
        if self.reachable {
            tracing::warn!(
                "xapi unreachable ({why}); {} writes and {} messages kept until it answers",
                self.outbox.len(),
                self.saved.messages.len()
            );
        }
        self.reachable = false;
        self.need_resync = true;
        self.counters.retries += 1;
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Reads this host's PBDs from xapi; `false` if xapi did not answer.
    async fn resync(&mut self) -> bool {
        match self.link.pbds().await {
            Ok(views) => {
                if !self.reachable {
                    tracing::info!("xapi answers again; reconciling every key");
                }
                self.reachable = true;
                self.backoff = BACKOFF_FIRST;
                self.retry_at = None;
                self.saved.adopt_view(&views);
                self.views = views;
                if self.boot.is_some() {
                    match self.link.host_keys().await {
                        Ok(keys) => self.saved.adopt_host_keys(&keys),
                        Err(CallError::Unreachable(e)) => {
                            self.unreachable(&e);
                            return false;
                        }
                        Err(CallError::Failure(f)) => {
                            tracing::warn!("reading this host's other-config: {f}");
                        }
                    }
                }
                self.need_resync = false;
                self.last_resync = Some(Instant::now());
                self.counters.resyncs += 1;
                true
            }
            Err(CallError::Unreachable(e)) => {
                self.unreachable(&e);
                false
            }
            Err(CallError::Failure(f)) => {
                // HOST_UUID unknown, a session refused: keep trying, slowly, and say why.
                if f.code == "SESSION_INVALID" {
                    self.link.drop_session();
                }
                self.unreachable(&format!("xapi refused: {f}"));
                false
            }
        }
    }

    /// The readings of the LUNs in use, from one topology read; for the LUNs multipathd
    /// cannot answer for (it is down, restarting, timing out, or does not list the map yet),
    /// from the kernel's dm status instead ([`crate::host::dmstatus`]), read only then.
    async fn read(&mut self, in_use: &[Record]) -> BTreeMap<String, Reading> {
        let mut readings = BTreeMap::new();
        let multipathed: Vec<&Record> = in_use.iter().filter(|r| r.multipath).collect();
        self.find_boot_map();
        let boot = self.boot.clone();
        if multipathed.is_empty() && boot.is_none() {
            self.boot_reading = None;
            return readings;
        }
        let topology = read_topology().await;
        self.multipathd_ok = topology.is_ok();
        let (topology, daemon_error) = match topology {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        let listed = |r: &Record| {
            topology
                .as_ref()
                .is_some_and(|t| t.map(&r.scsiid).is_some())
        };
        let boot_listed = boot
            .as_deref()
            .is_none_or(|b| topology.as_ref().is_some_and(|t| t.map(b).is_some()));
        let kernel = if boot_listed && multipathed.iter().all(|r| listed(r)) {
            None
        } else {
            self.counters.kernel_reads += 1;
            Some(read_kernel(self.config.root.clone()).await)
        };
        let in_kernel =
            |id: &str| -> Option<&KernelStatus> { kernel.as_ref()?.as_ref().ok()?.0.get(id) };
        if let Some(e) = &daemon_error {
            match &kernel {
                Some(Ok((maps, _))) => tracing::warn!(
                    "{e}; path counts from the kernel's dm status ({} maps)",
                    maps.len()
                ),
                Some(Err(k)) => tracing::warn!("{e}; the kernel's dm status: {k}"),
                None => {}
            }
        }
        let maxima: HashMap<String, u32> = match &topology {
            // Every map goes to the ledger (one missing from the view is forgotten there),
            // and so does a LUN in use whose map multipathd does not list right now (a
            // restart): with the kernel's paths, or 0, which keeps its mark.
            Some(topology) => {
                let mut view: Vec<(&str, u32)> = topology
                    .maps
                    .iter()
                    .map(|m| (m.wwid.as_str(), PathCounts::of(m).total))
                    .collect();
                for r in &multipathed {
                    if topology.map(&r.scsiid).is_none() {
                        let total = in_kernel(&r.scsiid).map_or(0, |k| count(k.total_paths()));
                        view.push((r.scsiid.as_str(), total));
                    }
                }
                match Ledger::new(&self.config.root).record_all(view.iter().copied()) {
                    Ok(maxima) => view
                        .iter()
                        .zip(maxima)
                        .map(|((w, _), m)| (w.to_string(), m))
                        .collect(),
                    Err(e) => {
                        tracing::warn!("{e}");
                        HashMap::new()
                    }
                }
            }
            // Without multipathd's view of every map, the ledger is only read.
            None => Ledger::new(&self.config.root)
                .read()
                .map(|m| m.into_iter().collect())
                .unwrap_or_else(|e| {
                    tracing::warn!("{e}");
                    HashMap::new()
                }),
        };
        for r in multipathed {
            let max = maxima
                .get(r.scsiid.as_str())
                .copied()
                .unwrap_or(0)
                .max(self.saved.published_max(&r.scsiid));
            let from_daemon = topology.as_ref().and_then(|t| t.map(&r.scsiid));
            let from_kernel = match &kernel {
                Some(Ok((maps, disks))) => maps.get(&r.scsiid).map(|s| (s, disks)),
                _ => None,
            };
            let reading = match (from_daemon, from_kernel) {
                (Some(map), _) => Reading::of_map(map, max),
                (None, Some((status, disks))) => Reading::of_kernel(status, disks, max),
                // Still being activated: nothing to say yet.
                (None, None) if r.stage == Stage::Attaching => continue,
                (None, None) => {
                    let daemon = daemon_error
                        .clone()
                        .unwrap_or_else(|| "multipathd lists no map for it".into());
                    let kernel = match &kernel {
                        Some(Err(k)) => format!("the kernel's dm status: {k}"),
                        _ => "the kernel has no such map".into(),
                    };
                    Reading::Unknown(format!("{daemon}; {kernel}"))
                }
            };
            readings.insert(r.scsiid.clone(), reading);
        }
        self.boot_reading = boot.map(|name| {
            let from_daemon = topology.as_ref().and_then(|t| t.map(&name));
            let wwid = from_daemon.map_or(name.as_str(), |m| m.wwid.as_str());
            let max = maxima
                .get(wwid)
                .copied()
                .unwrap_or(0)
                .max(self.saved.boot_max());
            let from_kernel = match &kernel {
                Some(Ok((maps, disks))) => maps.get(&name).map(|s| (s, disks)),
                _ => None,
            };
            match (from_daemon, from_kernel) {
                (Some(map), _) => Reading::of_map(map, max),
                (None, Some((status, disks))) => Reading::of_kernel(status, disks, max),
                (None, None) => Reading::Unknown(format!("no map {name} is readable")),
            }
        });
        readings
    }

    /// The multipath map dom0 boots from; ours to publish only where stock mpathcount is
    /// not installed (it keeps `mpath-boot` from every udev kick: two writers of one key
    /// would overwrite each other, and stock picks the first map listed as the root).
    fn find_boot_map(&mut self) {
        let root_map = bootdisk::root_map(&self.config.root);
        let stock = bootdisk::stock_mpathcount(&self.config.root);
        if root_map != self.root_map {
            match (&root_map, stock) {
                (Some(m), true) => tracing::info!(
                    "dom0 boots from multipath map {m}; stock mpathcount keeps the host's \
                     mpath-boot"
                ),
                (Some(m), false) => {
                    tracing::info!(
                        "dom0 boots from multipath map {m}: keeping the host's mpath-boot"
                    );
                    // Read what the host holds at the next pass.
                    self.need_resync = true;
                }
                (None, _) => {}
            }
            self.root_map.clone_from(&root_map);
        }
        self.boot = root_map.filter(|_| !stock);
    }

    /// Resync if due, one pass, then the writes.
    async fn cycle(&mut self) {
        if self.shared.resync_asked.swap(false, Ordering::SeqCst) {
            self.need_resync = true;
        }
        let due = self
            .last_resync
            .is_none_or(|t| t.elapsed() >= self.config.resync);
        if (self.need_resync || due) && !self.resync().await {
            // xapi is away: still read the host, so the log, the API and the episodes
            // follow the paths, and the writes wait.
        }
        let started = Instant::now();
        let in_use = Registry::new(&self.config.root).all();
        let readings = self.read(&in_use).await;
        let host = self.link.host().cloned();
        // Before xapi ever answered, messages name the host by its uuid alone.
        let (host_uuid, host_name) = host.as_ref().map_or_else(
            || (self.link.host_uuid().to_string(), "?".to_string()),
            |h| (h.uuid.clone(), h.name.clone()),
        );
        let ctx = Context {
            host_uuid: &host_uuid,
            host_name: &host_name,
            now: now_secs(),
        };
        let mut outcome = self.saved.pass(&ctx, &in_use, &readings, &self.views);
        let unseen: BTreeSet<String> = outcome
            .unknown_srs
            .difference(&self.looked_for)
            .cloned()
            .collect();
        if !unseen.is_empty() && self.reachable && self.resync().await {
            // An SR plugged since the last read: read again, and pass again.
            self.looked_for.extend(unseen);
            outcome = self.saved.pass(&ctx, &in_use, &readings, &self.views);
        }
        self.counters.passes += 1;
        self.counters.flaps += u64::from(outcome.flaps);
        for settled in &outcome.settled {
            self.outbox.remove(settled);
        }
        self.outbox.extend(outcome.changes);
        let (host_changes, host_settled) = self.saved.host_pass(self.boot_reading.as_ref());
        for key in &host_settled {
            self.host_outbox.remove(key);
        }
        self.host_outbox.extend(host_changes);
        self.last_pass = Some((ctx.now, started.elapsed()));
        if self.reachable || self.retry_at.is_none_or(|t| Instant::now() >= t) {
            self.flush().await;
        }
        // After the writes: what the PBDs hold now, and what still waits.
        self.statuses = self.statuses(&in_use, &readings);
        self.save();
        self.report();
    }

    /// Hands pending writes, then messages, to xapi.
    async fn flush(&mut self) {
        if !self.pending() {
            return;
        }
        let session = match self.link.session().await {
            Ok(s) => s,
            Err(e) => {
                self.unreachable(&e.to_string());
                return;
            }
        };
        let timeout = self.link.timeout();
        // All paths down first: that is the key an HA host fences on.
        let mut order: Vec<((String, String), Option<String>)> = self
            .outbox
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        order.sort_by_key(|(_, v)| !v.as_deref().is_some_and(|v| v.starts_with("[0,")));
        let mut queue = order.into_iter();
        let mut running = JoinSet::new();
        let mut failed: Option<String> = None;
        loop {
            while failed.is_none() && running.len() < self.config.concurrency.max(1) {
                let Some(((pbd, key), value)) = queue.next() else {
                    break;
                };
                let absent = !self
                    .saved
                    .xapi
                    .get(&pbd)
                    .is_some_and(|keys| keys.contains_key(&key));
                let session = Arc::clone(&session);
                running.spawn(async move {
                    let pbd_ref = Ref::new(&pbd);
                    let result = match &value {
                        Some(v) => {
                            XapiLink::bounded(
                                timeout,
                                publish::set_key(&session, &pbd_ref, &key, v, absent),
                            )
                            .await
                        }
                        None => {
                            XapiLink::bounded(
                                timeout,
                                publish::remove_key(&session, &pbd_ref, &key),
                            )
                            .await
                        }
                    };
                    (pbd, key, value, result)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let Ok((pbd, key, value, result)) = done else {
                continue;
            };
            match result {
                Ok(()) => {
                    self.counters.writes += 1;
                    let keys = self.saved.xapi.entry(pbd.clone()).or_default();
                    match &value {
                        Some(v) => {
                            keys.insert(
                                key.clone(),
                                pass::Published {
                                    value: v.clone(),
                                    at: Some(now_secs()),
                                },
                            );
                        }
                        None => {
                            keys.remove(&key);
                        }
                    }
                    let entry = (pbd, key);
                    if self.outbox.get(&entry) == Some(&value) {
                        self.outbox.remove(&entry);
                    }
                }
                Err(CallError::Unreachable(e)) => {
                    failed.get_or_insert(e);
                }
                Err(CallError::Failure(f)) => {
                    self.counters.retries += 1;
                    if f.code == "HANDLE_INVALID" {
                        // The PBD is gone (SR forgotten, host removed): nothing to publish.
                        self.outbox.retain(|(p, _), _| *p != pbd);
                    } else {
                        tracing::warn!("PBD {pbd}: {key}: xapi refused the write: {f}");
                    }
                    self.need_resync = true;
                    self.retry_at = Some(Instant::now() + self.backoff);
                }
            }
        }
        if let Some(e) = failed {
            self.unreachable(&e);
            return;
        }
        if let Some(host) = self.link.host().map(|h| h.host.clone()) {
            for (key, value) in self.host_outbox.clone() {
                let absent = !self.saved.host_keys.contains_key(&key);
                let result = match &value {
                    Some(v) => {
                        XapiLink::bounded(
                            timeout,
                            publish::set_host_key(&session, &host, &key, v, absent),
                        )
                        .await
                    }
                    None => {
                        XapiLink::bounded(
                            timeout,
                            xenapi::api::host::remove_from_other_config(&session, &host, &key),
                        )
                        .await
                    }
                };
                match result {
                    Ok(()) => {
                        self.counters.writes += 1;
                        match &value {
                            Some(v) => {
                                self.saved.host_keys.insert(
                                    key.clone(),
                                    pass::Published {
                                        value: v.clone(),
                                        at: Some(now_secs()),
                                    },
                                );
                            }
                            None => {
                                self.saved.host_keys.remove(&key);
                            }
                        }
                        if self.host_outbox.get(&key) == Some(&value) {
                            self.host_outbox.remove(&key);
                        }
                    }
                    Err(CallError::Unreachable(e)) => {
                        self.unreachable(&e);
                        return;
                    }
                    Err(CallError::Failure(f)) => {
                        self.counters.retries += 1;
                        tracing::warn!("host {key}: xapi refused the write: {f}");
                        self.need_resync = true;
                        self.retry_at = Some(Instant::now() + self.backoff);
                    }
                }
            }
        }
        while let Some(m) = self.saved.messages.first().cloned() {
            let result = XapiLink::bounded(
                timeout,
                message::create(
                    &session,
                    &m.name,
                    m.priority,
                    MessageClass::Sr,
                    &m.sr_uuid,
                    &m.body,
                ),
            )
            .await;
            match result {
                Ok(_) => {
                    self.counters.messages += 1;
                    self.saved.messages.remove(0);
                }
                Err(CallError::Unreachable(e)) => {
                    self.unreachable(&e);
                    return;
                }
                Err(CallError::Failure(f)) => {
                    tracing::warn!("xapi refused the message {}: {f}; dropped", m.name);
                    self.saved.messages.remove(0);
                }
            }
        }
    }

    fn pending(&self) -> bool {
        !self.outbox.is_empty() || !self.host_outbox.is_empty() || !self.saved.messages.is_empty()
    }

    /// Keeps the state under `run/`, replaced whole, when it changed.
    fn save(&mut self) {
        let Ok(bytes) = serde_json::to_vec(&self.saved) else {
            return;
        };
        if bytes == self.saved_bytes {
            return;
        }
        let file = &self.config.state_file;
        let temp = file.with_extension("json.tmp");
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&temp, &bytes))
            .and_then(|()| std::fs::rename(&temp, file));
        match written {
            Ok(()) => self.saved_bytes = bytes,
            Err(e) => tracing::warn!("cannot keep the agent's state in {}: {e}", file.display()),
        }
    }

    fn statuses(&self, in_use: &[Record], readings: &BTreeMap<String, Reading>) -> Vec<LunStatus> {
        in_use
            .iter()
            .filter(|r| r.multipath)
            .map(|r| {
                let key = publish::mpath_key(&r.scsiid);
                let pbd = self.views.iter().find(|v| v.sr_uuid == r.sr_uuid);
                let published = pbd
                    .and_then(|v| self.saved.xapi.get(v.pbd.as_str()))
                    .and_then(|keys| keys.get(&key));
                let pending =
                    pbd.and_then(|v| self.outbox.get(&(v.pbd.as_str().to_string(), key.clone())));
                let memory = self.saved.luns.get(&r.scsiid);
                let mut status = LunStatus {
                    scsiid: r.scsiid.clone(),
                    sr_uuid: r.sr_uuid.clone(),
                    health: "unknown".into(),
                    active: None,
                    total: None,
                    max: None,
                    paths: Vec::new(),
                    unknown_because: None,
                    published: published.map(|p| p.value.clone()),
                    published_at: published.and_then(|p| p.at).map(pass::utc),
                    pending: pending.cloned(),
                    all_paths_down_since: memory
                        .and_then(|m| m.episode.as_ref())
                        .map(|e| pass::utc(e.since)),
                };
                match readings.get(&r.scsiid) {
                    Some(Reading::Known { counts, max, paths }) => {
                        status.health = mpathutil::Health::judge(counts.active, *max)
                            .as_str()
                            .to_string();
                        status.active = Some(counts.active);
                        status.total = Some(counts.total);
                        status.max = Some(*max);
                        status.paths = paths
                            .iter()
                            .map(|(h, d, v)| PathStatus {
                                hcil: h.clone(),
                                dev: d.clone(),
                                state: v.as_str().to_string(),
                            })
                            .collect();
                    }
                    Some(Reading::Unknown(why)) => status.unknown_because = Some(why.clone()),
                    None => status.unknown_because = Some("being activated".into()),
                }
                status
            })
            .collect()
    }

    fn report(&self) {
        let health = Health {
            uptime_s: 0.0,
            host_uuid: self.link.host_uuid().to_string(),
            last_pass_at: self.last_pass.map(|(at, _)| pass::utc(at)),
            last_pass_ms: self.last_pass.map(|(_, d)| d.as_secs_f64() * 1000.0),
            pending_writes: self.outbox.len() + self.host_outbox.len(),
            pending_messages: self.saved.messages.len(),
            xapi_reachable: self.reachable,
            multipathd_readable: self.multipathd_ok,
            counters: self.counters.clone(),
        };
        if let Ok(mut report) = self.shared.report.lock() {
            *report = (health, self.statuses.clone());
        }
    }

    /// On SIGTERM: hand what is pending to xapi, until the deadline.
    async fn drain(&mut self) {
        let deadline = Instant::now() + self.config.drain;
        while self.pending() && Instant::now() < deadline {
            if self.need_resync && !self.resync().await {
                tokio::time::sleep_until(
                    self.retry_at
                        .unwrap_or_else(Instant::now)
                        .min(deadline)
                        .into(),
                )
                .await;
                continue;
            }
            let _ = tokio::time::timeout_at(deadline.into(), self.flush()).await;
        }
        if self.pending() {
            tracing::warn!(
                "stopping with {} writes and {} messages xapi did not take; the next start \
                 publishes them",
                self.outbox.len(),
                self.saved.messages.len()
            );
        }
        self.save();
    }
}

async fn read_uevents(mut source: Source, shared: Arc<Shared>) {
    let mut buf = vec![0u8; uevent::MAX_UEVENT];
    loop {
        match source.recv(&mut buf).await {
            Ok(n) => {
                if let Some(event) = Uevent::parse(&buf[..n])
                    && event.kind().is_some()
                {
                    shared.events.fetch_add(1, Ordering::Relaxed);
                    shared.wake.wake();
                }
            }
            Err(e) => {
                // ENOBUFS: the kernel dropped events because we were slow. We lost only
                // "something happened", which a pass answers.
                tracing::warn!("reading uevents: {e}; looking now");
                shared.wake.wake();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Binds the API socket, refusing to run twice.
fn bind_api(path: &std::path::Path) -> Result<tokio::net::UnixListener, String> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "another sm-mpath-agent already answers on {}",
            path.display()
        ));
    }
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let listener =
        tokio::net::UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Open to every local user, so that a non-root caller gets a clear refusal from us
    // (the peer's uid) instead of a bare EACCES.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(listener)
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let host_uuid = installation_uuid(&config.root)?;
    let shared = Arc::new(Shared::new());
    let listener = bind_api(&config.socket)?;
    let api = tokio::spawn(api::serve(listener, Arc::clone(&shared)));
    let source = Source::open(&config.uevents)
        .map_err(|e| format!("cannot listen to uevents ({:?}): {e}", config.uevents))?;
    let uevents = source.map(|s| tokio::spawn(read_uevents(s, Arc::clone(&shared))));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tracing::info!(
        "sm-mpath-agent starting on host {host_uuid}: debounce {:?}, reconcile every {:?}, \
         uevents from {:?}, API on {}",
        config.debounce,
        config.reconcile,
        config.uevents,
        config.socket.display()
    );
    let socket = config.socket.clone();
    let (debounce, period) = (config.debounce, config.reconcile);
    let mut metrics = metrics::Writer::new(config.metrics_file.clone());
    let mut agent = Agent::new(config, Arc::clone(&shared), host_uuid)?;
    let mut next_reconcile = Instant::now() + period;
    // The first pass at once.
    agent.cycle().await;
    metrics.after_pass(&shared);
    let mut stopping = false;
    while !stopping {
        let retry = agent
            .retry_at
            .filter(|_| agent.pending() || agent.need_resync);
        tokio::select! {
            () = shared.wake.wait() => {
                // Fold the burst: what arrives during the debounce joins this pass.
                tokio::select! {
                    () = tokio::time::sleep(debounce) => {}
                    _ = term.recv() => stopping = true,
                    _ = int.recv() => stopping = true,
                }
                shared.wake.take();
            }
            () = tokio::time::sleep_until(next_reconcile.into()) => {
                next_reconcile = Instant::now() + period;
            }
            () = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = term.recv() => stopping = true,
            _ = int.recv() => stopping = true,
        }
        if !stopping {
            agent.cycle().await;
            metrics.after_pass(&shared);
        }
    }
    tracing::info!("sm-mpath-agent stopping");
    agent.drain().await;
    api.abort();
    if let Some(u) = uevents {
        u.abort();
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}
