//! The agent's metrics for the monitoring people already run: a file in Prometheus' text
//! exposition format (0.0.4) for node_exporter's textfile collector, rewritten after every
//! pass. No network port on dom0: node_exporter (or anything that reads the format) serves it.
//!
//! The file is replaced whole (a temporary file in the same directory, then a rename), so a
//! scrape never sees half of it; the temporary name does not end in `.prom`, so the collector
//! never reads it. It is written only while its directory exists: a host without a textfile
//! collector gets no new directory from us.
//!
//! Per LUN in use (`scsi_id`, `sr`): paths active, present and the most it has had, its
//! health, whether a write is waiting for xapi; per path (`path` = H:C:T:L, `device`) its
//! state; per LUN since the agent started: flaps (a working path failed or removed) and
//! failovers (a path in state active failed while another still worked; from the path
//! states, not from multipathd's path-group switches, which `status` does not carry). For
//! the agent: when
//! the last pass ended and how long it took (its age is `time() - …_timestamp_seconds`),
//! pending writes and messages, whether xapi and multipathd answer, and its counters.
//!
//! Transitions are seen pass by pass: a path that fails and returns within one debounce is
//! not counted (the kernel's uevents of it only woke the pass).

use super::{Health, LunStatus, Shared};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where node_exporter's textfile collector is usually pointed
/// (`--collector.textfile.directory`) when it is installed from a package or by hand.
pub const DEFAULT_FILE: &str = "/var/lib/node_exporter/textfile_collector/sm_rs_agent.prom";

/// Path states, as `status` reports them (`mpathutil::PathVerdict`).
/// One of a LUN's path counts, as the API reports it (`None`: unknown).
type Count = fn(&LunStatus) -> Option<u32>;

const PATH_STATES: [&str; 4] = ["active", "standby", "pending", "failed"];
/// LUN health, as `status` reports it.
const LUN_HEALTH: [&str; 4] = ["ok", "degraded", "down", "unknown"];

/// Counts per LUN since the agent started, from one pass to the next.
#[derive(Debug, Default)]
struct LunMemory {
    /// Path → state at the last reading that had paths.
    paths: BTreeMap<String, String>,
    flaps: u64,
    failovers: u64,
}

/// Writes the metrics file after each pass.
#[derive(Debug)]
pub struct Writer {
    file: Option<PathBuf>,
    started: SystemTime,
    version: &'static str,
    luns: BTreeMap<String, LunMemory>,
    /// What we last said about the file, so a persistent problem is logged once.
    last_problem: Option<Problem>,
}

impl Writer {
    /// `file`: `None` writes nothing.
    pub fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            started: SystemTime::now(),
            version: env!("CARGO_PKG_VERSION"),
            luns: BTreeMap::new(),
            last_problem: None,
        }
    }

    /// After a pass: the agent's report as the API has it, written out.
    pub fn after_pass(&mut self, shared: &Shared) {
        let Ok(report) = shared.report.lock().map(|r| r.clone()) else {
            return;
        };
        let (mut health, luns) = report;
        health.counters.events = shared.events.load(Ordering::Relaxed);
        health.counters.kicks = shared.kicks.load(Ordering::Relaxed);
        self.observe(&luns);
        let Some(file) = self.file.clone() else {
            return;
        };
        let text = self.render(&health, &luns, SystemTime::now());
        let problem = write_atomically(&file, text.as_bytes()).err();
        if problem != self.last_problem {
            match &problem {
                // A host without a textfile collector: said once, not a fault.
                Some(Problem::NoDirectory(why)) => tracing::info!("metrics not written: {why}"),
                Some(Problem::Failed(why)) => tracing::warn!("metrics not written: {why}"),
                None => tracing::info!("metrics written to {}", file.display()),
            }
            self.last_problem = problem;
        }
    }

    /// Counts the transitions since the last pass; forgets LUNs no longer in use.
    fn observe(&mut self, luns: &[LunStatus]) {
        self.luns
            .retain(|id, _| luns.iter().any(|l| l.scsiid == *id));
        for lun in luns {
            // Unknown (multipathd unreadable): no paths to compare, nothing learnt.
            if lun.active.is_none() {
                continue;
            }
            let now: BTreeMap<String, String> = lun
                .paths
                .iter()
                .map(|p| (path_label(&p.hcil, &p.dev).to_string(), p.state.clone()))
                .collect();
            let memory = self.luns.entry(lun.scsiid.clone()).or_default();
            let working = |state: &str| state != "failed";
            let still_working = now.values().any(|s| working(s));
            for (path, was) in &memory.paths {
                let is = now.get(path).map(String::as_str);
                if working(was) && !is.is_some_and(working) {
                    memory.flaps += 1;
                    if was == "active" && still_working {
                        memory.failovers += 1;
                    }
                }
            }
            memory.paths = now;
        }
    }

    /// The file's text.
    fn render(&self, health: &Health, luns: &[LunStatus], now: SystemTime) -> String {
        let mut out = Exposition::default();
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
        };
        let lun_labels =
            |l: &LunStatus| vec![("scsi_id", l.scsiid.clone()), ("sr", l.sr_uuid.clone())];

        out.family(
            "sm_rs_agent_info",
            "gauge",
            "The path agent of this host (value 1).",
        );
        out.sample(
            "sm_rs_agent_info",
            &[
                ("host_uuid", health.host_uuid.clone()),
                ("version", self.version.to_string()),
            ],
            1.0,
        );
        out.gauge(
            "sm_rs_agent_start_time_seconds",
            "When the agent started, in seconds since the epoch.",
            secs(self.started),
        );
        out.gauge(
            "sm_rs_agent_last_pass_timestamp_seconds",
            "When the agent's last pass ended, in seconds since the epoch; its age is \
             time() minus this.",
            secs(now),
        );
        out.gauge(
            "sm_rs_agent_last_pass_duration_seconds",
            "How long the last pass took (reading the host and multipathd, writing to xapi).",
            health.last_pass_ms.unwrap_or(0.0) / 1000.0,
        );
        out.gauge(
            "sm_rs_agent_pending_writes",
            "PBD keys xapi has not taken yet (kept, and retried until it does).",
            health.pending_writes as f64,
        );
        out.gauge(
            "sm_rs_agent_pending_messages",
            "xapi messages (all paths down, restored) not delivered yet.",
            health.pending_messages as f64,
        );
        out.gauge(
            "sm_rs_agent_xapi_reachable",
            "1 when xapi answered the agent's last call, else 0.",
            f64::from(u8::from(health.xapi_reachable)),
        );
        out.gauge(
            "sm_rs_agent_multipathd_readable",
            "1 when multipathd answered the last topology read, else 0.",
            f64::from(u8::from(health.multipathd_readable)),
        );
        let c = &health.counters;
        for (name, help, value) in [
            (
                "sm_rs_agent_uevents_total",
                "Kernel uevents about multipath devices.",
                c.events,
            ),
            (
                "sm_rs_agent_kicks_total",
                "Kicks on the local API (the driver after it activates or releases a map).",
                c.kicks,
            ),
            ("sm_rs_agent_passes_total", "Passes made.", c.passes),
            (
                "sm_rs_agent_xapi_writes_total",
                "PBD keys written to xapi (set or removed).",
                c.writes,
            ),
            (
                "sm_rs_agent_xapi_retries_total",
                "Calls to xapi that failed and are tried again.",
                c.retries,
            ),
            (
                "sm_rs_agent_xapi_messages_total",
                "Messages xapi took (all paths down, restored).",
                c.messages,
            ),
            (
                "sm_rs_agent_xapi_resyncs_total",
                "Full reads of this host's PBDs from xapi.",
                c.resyncs,
            ),
            (
                "sm_rs_agent_kernel_status_reads_total",
                "Reads of the kernel's dm status, where multipathd could not answer for a LUN \
                 in use.",
                c.kernel_reads,
            ),
            (
                "sm_rs_agent_path_flaps_total",
                "Paths of any LUN in use that went from working to failed or removed.",
                c.flaps,
            ),
        ] {
            out.family(name, "counter", help);
            out.sample(name, &[], value as f64);
        }

        let known: Vec<&LunStatus> = luns.iter().filter(|l| l.active.is_some()).collect();
        let counts: [(&str, &str, Count); 3] = [
            (
                "sm_rs_lun_paths_active",
                "Paths of the LUN that work now (the first number of the PBD's [active, max]); \
                 absent while the count is unknown.",
                |l| l.active,
            ),
            (
                "sm_rs_lun_paths_max",
                "The most paths the LUN has had (the second number of [active, max]).",
                |l| l.max,
            ),
            (
                "sm_rs_lun_paths_present",
                "Paths of the LUN's map now, working or not.",
                |l| l.total,
            ),
        ];
        for (name, help, count) in counts {
            out.family(name, "gauge", help);
            for l in &known {
                out.sample(name, &lun_labels(l), f64::from(count(l).unwrap_or(0)));
            }
        }
        out.family(
            "sm_rs_lun_health",
            "gauge",
            "The LUN's health: 1 for its state (ok, degraded, down, unknown), 0 for the others.",
        );
        for l in luns {
            for state in LUN_HEALTH {
                let mut labels = lun_labels(l);
                labels.push(("state", state.to_string()));
                out.sample(
                    "sm_rs_lun_health",
                    &labels,
                    f64::from(u8::from(l.health == state)),
                );
            }
        }
        out.family(
            "sm_rs_lun_publish_pending",
            "gauge",
            "1 while the LUN's PBD key waits for xapi to take a new value, else 0.",
        );
        for l in luns {
            out.sample(
                "sm_rs_lun_publish_pending",
                &lun_labels(l),
                f64::from(u8::from(l.pending.is_some())),
            );
        }
        out.family(
            "sm_rs_path_state",
            "gauge",
            "A path's state: 1 for its state (active, standby, pending, failed), 0 for the \
             others.",
        );
        for l in &known {
            for p in &l.paths {
                for state in PATH_STATES {
                    let mut labels = lun_labels(l);
                    labels.push(("path", path_label(&p.hcil, &p.dev).to_string()));
                    labels.push(("device", p.dev.clone()));
                    labels.push(("state", state.to_string()));
                    out.sample(
                        "sm_rs_path_state",
                        &labels,
                        f64::from(u8::from(p.state == state)),
                    );
                }
            }
        }
        for (name, help, pick) in [
            (
                "sm_rs_lun_path_flaps_total",
                "Paths of the LUN that went from working to failed or removed, since the agent \
                 started.",
                (|m: &LunMemory| m.flaps) as fn(&LunMemory) -> u64,
            ),
            (
                "sm_rs_lun_failovers_total",
                "Times a path in state active failed or went while another path still worked \
                 (I/O on it moved to the others), since the agent started. Counted from the \
                 path states: an ALUA standby path its checker calls ready counts too.",
                |m: &LunMemory| m.failovers,
            ),
        ] {
            out.family(name, "counter", help);
            for l in luns {
                let value = self.luns.get(&l.scsiid).map_or(0, pick);
                out.sample(name, &lun_labels(l), value as f64);
            }
        }
        out.text
    }
}

/// A path is known by its H:C:T:L, or its device when it has none.
fn path_label<'a>(hcil: &'a str, dev: &'a str) -> &'a str {
    if hcil.is_empty() || hcil == "?" {
        dev
    } else {
        hcil
    }
}

/// The text format, written family by family.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let value = value
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(self.text, "{key}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Why the file was not written.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    NoDirectory(String),
    Failed(String),
}

/// Replaces `file` whole: a temporary file beside it, then a rename. Nothing is written
/// while the directory does not exist.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), Problem> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Problem::NoDirectory(format!(
            "{} does not exist (no textfile collector on this host?)",
            dir.display()
        )));
    }
    let name = file
        .file_name()
        .ok_or_else(|| Problem::Failed(format!("{}: not a file name", file.display())))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let written = std::fs::write(&temp, bytes).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&temp, file)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Problem::Failed(format!("{}: {e}", file.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpathutil::agent::PathStatus;

    fn lun(id: &str, paths: &[(&str, &str, &str)]) -> LunStatus {
        let active = paths.iter().filter(|(_, _, s)| *s != "failed").count() as u32;
        LunStatus {
            scsiid: id.into(),
            sr_uuid: "sr-1".into(),
            health: if active == 0 { "down" } else { "ok" }.into(),
            active: Some(active),
            total: Some(paths.len() as u32),
            max: Some(2),
            paths: paths
                .iter()
                .map(|(h, d, s)| PathStatus {
                    hcil: h.to_string(),
                    dev: d.to_string(),
                    state: s.to_string(),
                })
                .collect(),
            ..LunStatus::default()
        }
    }

    #[test]
    fn flaps_and_failovers_are_counted_between_passes() {
        let mut w = Writer::new(None);
        w.observe(&[lun(
            "a",
            &[("0:0:0:1", "sda", "active"), ("0:0:1:1", "sdb", "standby")],
        )]);
        // The standby path goes: a flap, no failover.
        w.observe(&[lun("a", &[("0:0:0:1", "sda", "active")])]);
        assert_eq!((w.luns["a"].flaps, w.luns["a"].failovers), (1, 0));
        w.observe(&[lun(
            "a",
            &[("0:0:0:1", "sda", "active"), ("0:0:1:1", "sdb", "standby")],
        )]);
        // The active path fails with the other back: a failover.
        w.observe(&[lun(
            "a",
            &[("0:0:0:1", "sda", "failed"), ("0:0:1:1", "sdb", "active")],
        )]);
        assert_eq!((w.luns["a"].flaps, w.luns["a"].failovers), (2, 1));
        // The last one fails: nowhere to fail over to.
        w.observe(&[lun(
            "a",
            &[("0:0:0:1", "sda", "failed"), ("0:0:1:1", "sdb", "failed")],
        )]);
        assert_eq!((w.luns["a"].flaps, w.luns["a"].failovers), (3, 1));
        // An unknown reading teaches nothing; a released LUN is forgotten.
        let mut unknown = lun("a", &[]);
        unknown.active = None;
        w.observe(&[unknown]);
        assert_eq!(w.luns["a"].flaps, 3);
        w.observe(&[]);
        assert!(w.luns.is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("sr", "a\"b\\c\nd".into())], 1.0);
        assert_eq!(out.text, "m{sr=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn the_file_is_replaced_whole_and_only_where_its_directory_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sm_rs_agent.prom");
        write_atomically(&file, b"one\n").unwrap();
        write_atomically(&file, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        let absent = dir.path().join("none/sm_rs_agent.prom");
        assert!(write_atomically(&absent, b"x").is_err());
        assert!(!dir.path().join("none").exists());
    }
}
