//! One pass: from what the host says now (the LUNs in use, the topology, the high-water
//! marks) to the keys each of this host's PBDs should hold, diffed against what xapi holds.
//! Pure: the caller reads the host and xapi, and carries out the writes.
//!
//! Rules:
//! - a LUN in use through a map gets `mpath-<SCSIid>` = `[active, max]` on its SR's PBD;
//! - a reading we cannot trust (multipathd down, timed out, answering `fail`; the map not
//!   listed) is never published as a number: the key keeps what it has;
//! - an `mpath-*` key that no LUN in use backs is removed (left by a crash, or by a detach
//!   that let the agent drop it);
//! - `multipathed` is set where we publish a count and it is missing, never removed here
//!   (plug and unplug own it) and never removed and re-added around a count change;
//! - all paths down on a LUN in use opens an episode (one problem message); a path back, or
//!   the LUN released, closes it (one clear message).

use super::xapi::PbdView;
use crate::host::inuse::Record;
use crate::publish::{MPATH_BOOT, MULTIPATHED, mpath_key, scsiid_of_key};
use mpathutil::health::{parse_path_count_value, path_count_value};
use mpathutil::parse::KernelStatus;
use mpathutil::{Health, Map, PathCounts, PathVerdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the agent keeps across restarts (`run/sm-rs/agent-state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Saved {
    pub version: u32,
    /// PBD ref → our keys → what xapi holds, as last read or written.
    pub xapi: BTreeMap<String, BTreeMap<String, Published>>,
    /// What we last saw of each LUN in use.
    pub luns: BTreeMap<String, LunMemory>,
    /// Messages xapi has not taken yet.
    pub messages: Vec<Message>,
    /// This host's PBDs of our SR types at the last read.
    pub pbds: Vec<PbdView>,
    /// This host's `mpath-boot` and `multipathed`, as xapi holds them (kept only while dom0
    /// boots from a map and stock mpathcount is not there to keep them).
    pub host_keys: BTreeMap<String, Published>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub value: String,
    /// When we wrote it (seconds since the epoch); `None`: found there.
    pub at: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LunMemory {
    pub sr_uuid: String,
    /// Path (device name, or H:C:T:L) → its verdict at the last good reading.
    pub paths: BTreeMap<String, String>,
    /// `[active, max]` at the last good reading.
    pub value: Option<String>,
    pub episode: Option<Episode>,
}

/// All paths down, from `since` (seconds since the epoch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Episode {
    pub since: u64,
    pub paths: Vec<String>,
}

/// A message for xapi.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub name: String,
    pub priority: i64,
    pub sr_uuid: String,
    pub body: String,
}

pub const ALL_PATHS_DOWN: &str = "MULTIPATH_ALL_PATHS_DOWN";
pub const PATHS_RESTORED: &str = "MULTIPATH_PATHS_RESTORED";

/// SCSI disks by `major:minor`: (device, H:C:T:L).
pub type Disks = BTreeMap<String, (String, String)>;

/// One LUN as read now.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Known {
        counts: PathCounts,
        max: u32,
        /// (H:C:T:L, device, verdict) in map order.
        paths: Vec<(String, String, PathVerdict)>,
    },
    /// Why the count is not known.
    Unknown(String),
}

impl Reading {
    pub fn of_map(map: &Map, max: u32) -> Self {
        let counts = PathCounts::of(map);
        let paths = map
            .paths()
            .map(|p| {
                (
                    p.hcil.map_or_else(|| "?".to_string(), |h| h.to_string()),
                    p.dev.as_deref().unwrap_or("-").to_string(),
                    PathVerdict::of(p),
                )
            })
            .collect();
        Self::Known {
            counts,
            max: max.max(counts.total),
            paths,
        }
    }

    /// From the kernel's status line of the map (multipathd could not answer): a path the
    /// kernel sends I/O to (`A`) is active, one it failed (`F`) is not. `disks` names the
    /// paths (`major:minor` → device, H:C:T:L) as multipathd would.
    pub fn of_kernel(status: &KernelStatus, disks: &Disks, max: u32) -> Self {
        let paths: Vec<(String, String, PathVerdict)> = status
            .groups
            .iter()
            .flat_map(|g| &g.paths)
            .map(|p| {
                let (dev, hcil) = disks
                    .get(&p.dev_t)
                    .cloned()
                    .unwrap_or_else(|| (p.dev_t.clone(), "?".into()));
                let verdict = if p.active {
                    PathVerdict::Active
                } else {
                    PathVerdict::Failed
                };
                (hcil, dev, verdict)
            })
            .collect();
        let n = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let counts = PathCounts {
            active: n(status.active_paths()),
            total: n(status.total_paths()),
        };
        Self::Known {
            counts,
            max: max.max(counts.total),
            paths,
        }
    }

    pub fn value(&self) -> Option<String> {
        match self {
            Self::Known { counts, max, .. } => Some(path_count_value(counts.active, *max)),
            Self::Unknown(_) => None,
        }
    }
}

/// Who is asking and when.
pub struct Context<'a> {
    pub host_uuid: &'a str,
    pub host_name: &'a str,
    pub now: u64,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (PBD ref, key) → the value it should have (`None`: absent), where xapi differs.
    pub changes: BTreeMap<(String, String), Option<String>>,
    /// (PBD ref, key) that already hold what they should.
    pub settled: BTreeSet<(String, String)>,
    /// SRs of LUNs in use with no PBD of ours on this host in the view.
    pub unknown_srs: BTreeSet<String>,
    /// Paths that went from working to failed.
    pub flaps: u32,
    pub messages: u32,
}

/// The key a path is known by: its device, else its address.
fn path_id(hcil: &str, dev: &str) -> String {
    if dev == "-" {
        hcil.to_string()
    } else {
        dev.to_string()
    }
}

impl Saved {
    /// Replaces what we know xapi holds with a fresh read of this host's PBDs.
    pub fn adopt_view(&mut self, views: &[PbdView]) {
        let mut fresh = BTreeMap::new();
        for view in views {
            let old = self.xapi.remove(view.pbd.as_str()).unwrap_or_default();
            let keys = adopted(&old, &view.keys);
            fresh.insert(view.pbd.as_str().to_string(), keys);
        }
        self.xapi = fresh;
        self.pbds = views.to_vec();
    }

    /// The pass. `readings` has one entry per LUN in use through a map.
    pub fn pass(
        &mut self,
        ctx: &Context<'_>,
        in_use: &[Record],
        readings: &BTreeMap<String, Reading>,
        views: &[PbdView],
    ) -> Outcome {
        let mut out = Outcome::default();
        let srs_in_view: BTreeSet<&str> = views.iter().map(|v| v.sr_uuid.as_str()).collect();
        for record in in_use {
            if !srs_in_view.contains(record.sr_uuid.as_str()) {
                out.unknown_srs.insert(record.sr_uuid.clone());
            }
        }
        self.observe(ctx, in_use, readings, views, &mut out);
        for view in views {
            let pbd = view.pbd.as_str();
            let held = self.xapi.get(pbd).cloned().unwrap_or_default();
            let luns: Vec<&Record> = in_use
                .iter()
                .filter(|r| r.sr_uuid == view.sr_uuid)
                .collect();
            let mut wanted: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut counted = false;
            for record in &luns {
                let key = mpath_key(&record.scsiid);
                if !record.multipath {
                    wanted.insert(key, None);
                    continue;
                }
                match readings.get(&record.scsiid).and_then(Reading::value) {
                    Some(value) => {
                        wanted.insert(key, Some(value));
                        counted = true;
                    }
                    // Unknown: the key keeps what it has.
                    None => counted |= held.contains_key(&key),
                }
            }
            for key in held.keys() {
                if let Some(id) = scsiid_of_key(key)
                    && !luns.iter().any(|r| r.scsiid == id)
                {
                    wanted.insert(key.clone(), None);
                }
            }
            if counted {
                wanted.insert(MULTIPATHED.to_string(), Some("true".to_string()));
            }
            for (key, value) in wanted {
                let now = held.get(&key).map(|p| p.value.as_str());
                let entry = (pbd.to_string(), key);
                if now == value.as_deref() {
                    out.settled.insert(entry);
                } else {
                    out.changes.insert(entry, value);
                }
            }
        }
        out
    }

    /// Path transitions (logged), episodes (messages), and the memory of each LUN.
    fn observe(
        &mut self,
        ctx: &Context<'_>,
        in_use: &[Record],
        readings: &BTreeMap<String, Reading>,
        views: &[PbdView],
        out: &mut Outcome,
    ) {
        let sr_name = |sr_uuid: &str| {
            views
                .iter()
                .find(|v| v.sr_uuid == sr_uuid)
                .map(|v| format!("{} ({sr_uuid})", v.sr_name))
                .unwrap_or_else(|| sr_uuid.to_string())
        };
        // LUNs released: forget them; an open episode ends with them.
        let in_use_ids: BTreeSet<&str> = in_use.iter().map(|r| r.scsiid.as_str()).collect();
        let released: Vec<String> = self
            .luns
            .keys()
            .filter(|id| !in_use_ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in released {
            if let Some(memory) = self.luns.remove(&id)
                && let Some(episode) = memory.episode
            {
                tracing::info!("LUN {id}: released on this host; its all-paths-down episode ends");
                self.messages.push(Message {
                    name: PATHS_RESTORED.into(),
                    priority: xenapi::api::message::priority::INFORMATIONAL,
                    sr_uuid: memory.sr_uuid.clone(),
                    body: format!(
                        "LUN {id} is no longer in use on host {} ({}), SR {}; all its paths had \
                         been down since {}.",
                        ctx.host_name,
                        ctx.host_uuid,
                        sr_name(&memory.sr_uuid),
                        utc(episode.since)
                    ),
                });
                out.messages += 1;
            }
        }
        for record in in_use.iter().filter(|r| r.multipath) {
            let id = &record.scsiid;
            let Some(reading) = readings.get(id) else {
                continue;
            };
            let memory = self.luns.entry(id.clone()).or_default();
            memory.sr_uuid.clone_from(&record.sr_uuid);
            let (counts, max, paths) = match reading {
                Reading::Known { counts, max, paths } => (counts, *max, paths),
                Reading::Unknown(why) => {
                    if memory.value.is_some() {
                        tracing::warn!(
                            "LUN {id}: path count unknown ({why}); {} stays published",
                            memory.value.as_deref().unwrap_or("?")
                        );
                        memory.value = None;
                    }
                    continue;
                }
            };
            let value = path_count_value(counts.active, max);
            let first = memory.paths.is_empty() && memory.value.is_none();
            let mut now_paths = BTreeMap::new();
            for (hcil, dev, verdict) in paths {
                let pid = path_id(hcil, dev);
                let old = memory.paths.get(&pid).map(String::as_str);
                if !first && old != Some(verdict.as_str()) {
                    let was = old.unwrap_or("absent");
                    let words = match (was, verdict) {
                        (_, PathVerdict::Failed) => "PATH HAS FAILED",
                        ("failed" | "absent", _) => "PATH HAS RECOVERED",
                        _ => "PATH STATE CHANGED",
                    };
                    if *verdict == PathVerdict::Failed && was != "failed" {
                        out.flaps += 1;
                    }
                    tracing::info!(
                        "LUN {id}: {words}: path {hcil} ({dev}) {was} -> {verdict}; {value} paths active"
                    );
                }
                now_paths.insert(pid, verdict.as_str().to_string());
            }
            if !first {
                for (pid, was) in &memory.paths {
                    if !now_paths.contains_key(pid) {
                        if was != "failed" {
                            out.flaps += 1;
                        }
                        tracing::info!(
                            "LUN {id}: PATH HAS FAILED: path {pid} {was} -> removed; {value} paths active"
                        );
                    }
                }
            } else {
                tracing::info!("LUN {id}: watching, {value} paths active");
            }
            memory.paths = now_paths;
            memory.value = Some(value.clone());
            let down = Health::judge(counts.active, max) == Health::Down && max > 0;
            match (&memory.episode, down) {
                (None, true) => {
                    let listed: Vec<String> = paths
                        .iter()
                        .map(|(h, d, v)| format!("{h} {d} {v}"))
                        .collect();
                    let since = ctx.now;
                    tracing::error!(
                        "LUN {id}: ALL PATHS DOWN ({value}) on SR {}",
                        sr_name(&record.sr_uuid)
                    );
                    self.messages.push(Message {
                        name: ALL_PATHS_DOWN.into(),
                        priority: xenapi::api::message::priority::MAJOR,
                        sr_uuid: record.sr_uuid.clone(),
                        body: format!(
                            "All paths to LUN {id} are down on host {} ({}), SR {}, since {}: \
                             {value} paths active. Paths: {}. I/O to the LUN queues or fails \
                             until a path returns: check the array's controllers, the cabling \
                             and the switches between this host and the array.",
                            ctx.host_name,
                            ctx.host_uuid,
                            sr_name(&record.sr_uuid),
                            utc(since),
                            if listed.is_empty() {
                                "none left in the map".to_string()
                            } else {
                                listed.join(", ")
                            }
                        ),
                    });
                    out.messages += 1;
                    memory.episode = Some(Episode {
                        since,
                        paths: listed,
                    });
                }
                (Some(episode), false) => {
                    let back: Vec<String> = paths
                        .iter()
                        .filter(|(_, _, v)| v.counts_as_active())
                        .map(|(h, d, _)| format!("{h} {d}"))
                        .collect();
                    tracing::info!("LUN {id}: paths restored ({value})");
                    self.messages.push(Message {
                        name: PATHS_RESTORED.into(),
                        priority: xenapi::api::message::priority::INFORMATIONAL,
                        sr_uuid: record.sr_uuid.clone(),
                        body: format!(
                            "LUN {id} on host {} ({}), SR {}: {value} paths active again at {} \
                             (all paths had been down since {}). Working: {}.",
                            ctx.host_name,
                            ctx.host_uuid,
                            sr_name(&record.sr_uuid),
                            utc(ctx.now),
                            utc(episode.since),
                            back.join(", ")
                        ),
                    });
                    out.messages += 1;
                    memory.episode = None;
                }
                _ => {}
            }
        }
    }

    /// Replaces what we know the host holds with a fresh read.
    pub fn adopt_host_keys(&mut self, keys: &BTreeMap<String, String>) {
        self.host_keys = adopted(&self.host_keys, keys);
    }

    /// The host's keys while dom0 boots from a multipath map: `mpath-boot` = `[active,
    /// max]` and `multipathed` = `true`, where they differ from what the host holds. An
    /// unknown reading changes nothing; neither does a root disk that is not multipathed
    /// (stock mpathcount, where installed, owns these keys and removes them).
    pub fn host_pass(
        &self,
        boot: Option<&Reading>,
    ) -> (BTreeMap<String, Option<String>>, BTreeSet<String>) {
        let mut changes = BTreeMap::new();
        let mut settled = BTreeSet::new();
        let Some(value) = boot.and_then(Reading::value) else {
            return (changes, settled);
        };
        for (key, wanted) in [(MPATH_BOOT, value.as_str()), (MULTIPATHED, "true")] {
            if self.host_keys.get(key).map(|p| p.value.as_str()) == Some(wanted) {
                settled.insert(key.to_string());
            } else {
                changes.insert(key.to_string(), Some(wanted.to_string()));
            }
        }
        (changes, settled)
    }

    /// The `max` of the host's `mpath-boot` as last known.
    pub fn boot_max(&self) -> u32 {
        self.host_keys
            .get(MPATH_BOOT)
            .and_then(|p| parse_path_count_value(&p.value))
            .map_or(0, |(_, max)| max)
    }

    /// The highest `max` we published for a LUN on any PBD (a high-water mark survives a
    /// lost ledger).
    pub fn published_max(&self, scsiid: &str) -> u32 {
        let key = mpath_key(scsiid);
        self.xapi
            .values()
            .filter_map(|keys| keys.get(&key))
            .filter_map(|p| parse_path_count_value(&p.value))
            .map(|(_, max)| max)
            .max()
            .unwrap_or(0)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(secs: u64) -> String {
    let (year, month, day, rem) = crate::host::log::civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Keys as read from xapi, keeping when we wrote each one where it still holds our value
/// (a value someone else wrote, or one found there, has no time of ours).
fn adopted(
    old: &BTreeMap<String, Published>,
    read: &BTreeMap<String, String>,
) -> BTreeMap<String, Published> {
    read.iter()
        .map(|(k, v)| {
            let at = old.get(k).filter(|p| p.value == *v).and_then(|p| p.at);
            (
                k.clone(),
                Published {
                    value: v.clone(),
                    at,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::inuse::Stage;
    use xenapi::Ref;

    fn record(id: &str) -> Record {
        Record {
            scsiid: id.into(),
            sr_uuid: "sr-1".into(),
            vdi_uuid: "vdi".into(),
            multipath: true,
            stage: Stage::Attached,
            device: format!("/dev/disk/mpInuse/{id}"),
        }
    }

    fn view(keys: &[(&str, &str)]) -> PbdView {
        PbdView {
            pbd: Ref::new("OpaqueRef:pbd"),
            sr: Ref::new("OpaqueRef:sr"),
            sr_uuid: "sr-1".into(),
            sr_name: "LUNs".into(),
            sr_type: "lunohba".into(),
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            named_luns: Vec::new(),
        }
    }

    fn known(active: u32, total: u32, max: u32) -> Reading {
        let paths = (0..total)
            .map(|i| {
                let verdict = if i < active {
                    PathVerdict::Active
                } else {
                    PathVerdict::Failed
                };
                (format!("7:0:{i}:1"), format!("sd{i}"), verdict)
            })
            .collect();
        Reading::Known {
            counts: PathCounts { active, total },
            max,
            paths,
        }
    }

    const CTX: Context<'static> = Context {
        host_uuid: "host-uuid",
        host_name: "host0",
        now: 1_780_000_000,
    };

    fn run(saved: &mut Saved, views: &[PbdView], readings: &[(&str, Reading)]) -> Outcome {
        let in_use: Vec<Record> = readings.iter().map(|(id, _)| record(id)).collect();
        let readings = readings
            .iter()
            .map(|(id, r)| (id.to_string(), r.clone()))
            .collect();
        saved.pass(&CTX, &in_use, &readings, views)
    }

    fn change(out: &Outcome, key: &str) -> Option<Option<String>> {
        out.changes
            .get(&("OpaqueRef:pbd".to_string(), key.to_string()))
            .cloned()
    }

    #[test]
    fn only_changed_keys_are_written_and_stale_ones_removed() {
        let views = [view(&[
            ("mpath-a", "[2, 2]"),
            ("mpath-gone", "[1, 1]"),
            ("multipathed", "true"),
            ("mpath-b", "[2, 2]"),
        ])];
        let mut saved = Saved::default();
        saved.adopt_view(&views);
        let out = run(
            &mut saved,
            &views,
            &[("a", known(2, 2, 2)), ("b", known(1, 2, 2))],
        );
        assert_eq!(out.changes.len(), 2, "{:?}", out.changes);
        assert_eq!(change(&out, "mpath-b"), Some(Some("[1, 2]".into())));
        assert_eq!(change(&out, "mpath-gone"), Some(None));
        assert_eq!(out.flaps, 0, "the first reading is not a transition");
    }

    #[test]
    fn an_unknown_reading_is_never_published() {
        let views = [view(&[("mpath-a", "[2, 2]"), ("multipathed", "true")])];
        let mut saved = Saved::default();
        saved.adopt_view(&views);
        run(&mut saved, &views, &[("a", known(2, 2, 2))]);
        let out = run(
            &mut saved,
            &views,
            &[("a", Reading::Unknown("multipathd: fail".into()))],
        );
        assert!(out.changes.is_empty(), "{:?}", out.changes);
    }

    #[test]
    fn all_paths_down_is_one_episode_with_one_message_each_way() {
        let views = [view(&[("mpath-a", "[2, 2]"), ("multipathed", "true")])];
        let mut saved = Saved::default();
        saved.adopt_view(&views);
        run(&mut saved, &views, &[("a", known(2, 2, 2))]);
        let out = run(&mut saved, &views, &[("a", known(0, 2, 2))]);
        assert_eq!(change(&out, "mpath-a"), Some(Some("[0, 2]".into())));
        assert_eq!(out.flaps, 2);
        run(&mut saved, &views, &[("a", known(0, 2, 2))]);
        run(
            &mut saved,
            &views,
            &[("a", Reading::Unknown("down".into()))],
        );
        run(&mut saved, &views, &[("a", known(0, 1, 2))]);
        assert_eq!(saved.messages.len(), 1);
        assert_eq!(saved.messages[0].name, ALL_PATHS_DOWN);
        assert!(saved.messages[0].body.contains("host0"));
        run(&mut saved, &views, &[("a", known(1, 2, 2))]);
        assert_eq!(saved.messages.len(), 2);
        assert_eq!(saved.messages[1].name, PATHS_RESTORED);
        run(&mut saved, &views, &[("a", known(2, 2, 2))]);
        assert_eq!(saved.messages.len(), 2);
    }

    #[test]
    fn multipathed_is_added_once_and_never_removed() {
        let views = [view(&[])];
        let mut saved = Saved::default();
        saved.adopt_view(&views);
        let out = run(&mut saved, &views, &[("a", known(2, 2, 2))]);
        assert_eq!(change(&out, "multipathed"), Some(Some("true".into())));
        let views = [view(&[("multipathed", "true")])];
        saved.adopt_view(&views);
        let out = run(&mut saved, &views, &[]);
        assert!(out.changes.is_empty(), "{:?}", out.changes);
    }

    #[test]
    fn the_boot_disk_keys_follow_a_known_reading_only() {
        let mut saved = Saved::default();
        let (changes, _) = saved.host_pass(Some(&known(2, 2, 2)));
        assert_eq!(changes.get(MPATH_BOOT), Some(&Some("[2, 2]".to_string())));
        assert_eq!(changes.get(MULTIPATHED), Some(&Some("true".to_string())));
        saved.adopt_host_keys(
            &[(MPATH_BOOT, "[2, 2]"), (MULTIPATHED, "true")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let (changes, settled) = saved.host_pass(Some(&known(2, 2, 2)));
        assert!(changes.is_empty() && settled.len() == 2);
        let (changes, _) = saved.host_pass(Some(&known(1, 2, 2)));
        assert_eq!(changes.len(), 1);
        let (changes, _) = saved.host_pass(Some(&Reading::Unknown("down".into())));
        assert!(changes.is_empty());
        assert!(saved.host_pass(None).0.is_empty());
        assert_eq!(saved.boot_max(), 2);
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_780_000_000), "2026-05-28T20:26:40Z");
    }
}
