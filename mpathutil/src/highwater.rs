//! The most paths each map has had: `max` in `[active, max]`.
//!
//! A pulled controller must read `[1, 2]`, not `[1, 1]`, so `max` outlives the paths that
//! made it. Stock mpathcount keeps it inside the PBD value; we also keep it on the host, in
//! one small file under `run/sm-rs/`, so that every sm-rs program that reads the topology
//! (the driver, the agent, `mpathutil`) agrees. A map is forgotten when it is released or
//! gone, so a LUN attached again starts afresh.
//!
//! Writers serialise on a lock file and replace the ledger by rename, so a reader never sees
//! half a file. `/run` is a tmpfs: the ledger, like the maps it describes, ends at reboot.

use crate::root::HostRoot;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Where the ledger lives on the host.
pub const LEDGER_PATH: &str = "/run/sm-rs/mpath-max.json";
const LOCK_PATH: &str = "/run/sm-rs/mpath-max.lock";

#[derive(Debug, thiserror::Error)]
#[error("cannot keep path high-water marks in {path}: {source}")]
pub struct LedgerError {
    pub path: String,
    #[source]
    pub source: io::Error,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    /// WWID → the most paths seen at once.
    #[serde(deserialize_with = "marks")]
    max: BTreeMap<String, u32>,
}

/// Reads the marks as a list and builds the tree from it at once. We write them sorted,
/// and `collect` builds a tree from sorted pairs in one pass, where inserting them one by
/// one would search the tree for each (a thousand WWIDs sharing long prefixes).
fn marks<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u32>, D::Error> {
    struct Marks;
    impl<'de> Visitor<'de> for Marks {
        type Value = Vec<(String, u32)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of WWIDs to path counts")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut marks = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(mark) = map.next_entry()? {
                marks.push(mark);
            }
            Ok(marks)
        }
    }
    Ok(d.deserialize_map(Marks)?.into_iter().collect())
}

/// The high-water ledger of one host.
#[derive(Debug, Clone)]
pub struct Ledger {
    file: PathBuf,
    lock: PathBuf,
}

impl Ledger {
    pub fn new(root: &HostRoot) -> Self {
        Self {
            file: root.path(LEDGER_PATH),
            lock: root.path(LOCK_PATH),
        }
    }

    /// Records a view of every map (WWID → paths present now) and returns each map's max,
    /// in the order of the view. Maps missing from the view are gone and are forgotten.
    pub fn record_all<'a>(
        &self,
        totals: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Vec<u32>, LedgerError> {
        let totals: Vec<(&str, u32)> = totals.into_iter().collect();
        // The view in WWID order, to walk beside the ledger's sorted marks: one comparison
        // or two per map instead of a tree search. multipathd lists maps in the order it
        // made them, so this is often sorted already, which the sort sees in one pass.
        let mut order: Vec<usize> = (0..totals.len()).collect();
        order.sort_by(|a, b| totals[*a].0.cmp(totals[*b].0));
        self.update(|max| {
            let known = max.len();
            let mut marks = std::mem::take(max).into_iter().peekable();
            let mut merged: Vec<(String, u32)> = Vec::with_capacity(totals.len());
            let mut changed = false;
            // Where each map of the view landed in `merged`.
            let mut slots = vec![0; totals.len()];
            for &i in &order {
                let (wwid, total) = totals[i];
                while marks.next_if(|(mark, _)| mark.as_str() < wwid).is_some() {}
                let same_as_last = merged.last().is_some_and(|(last, _)| last == wwid);
                if !same_as_last {
                    let entry = marks.next_if(|(mark, _)| mark == wwid).unwrap_or_else(|| {
                        changed = true;
                        (wwid.to_string(), total)
                    });
                    merged.push(entry);
                }
                if let Some((_, mark)) = merged.last_mut() {
                    changed |= total > *mark;
                    *mark = (*mark).max(total);
                }
                slots[i] = merged.len() - 1;
            }
            // Any mark not merged was of a map gone.
            changed |= merged.len() != known;
            let maxima = slots.iter().map(|slot| merged[*slot].1).collect();
            *max = merged.into_iter().collect();
            (maxima, changed)
        })
    }

    /// Records one map's paths present now and returns its max; `None` means the map is
    /// gone and is forgotten.
    pub fn record(&self, wwid: &str, total: Option<u32>) -> Result<Option<u32>, LedgerError> {
        self.update(|max| match total {
            Some(total) => {
                let (max, changed) = raise(max, wwid, total);
                (Some(max), changed)
            }
            None => (None, max.remove(wwid).is_some()),
        })
    }

    /// Forgets every map not in `present` (a listing without path counts).
    pub fn retain<'a>(
        &self,
        present: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), LedgerError> {
        let present: std::collections::BTreeSet<&str> = present.into_iter().collect();
        self.update(|max| {
            let known = max.len();
            max.retain(|wwid, _| present.contains(wwid.as_str()));
            ((), max.len() != known)
        })
    }

    /// Forgets a map (it was released).
    pub fn forget(&self, wwid: &str) -> Result<(), LedgerError> {
        self.record(wwid, None).map(drop)
    }

    /// The maxima as they stand.
    pub fn read(&self) -> Result<BTreeMap<String, u32>, LedgerError> {
        Ok(self.load().map_err(|e| self.error(e))?.max)
    }

    /// Applies `change` under the lock, stores the ledger if `change` says it changed it,
    /// and returns what `change` returned.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, u32>) -> (T, bool),
    ) -> Result<T, LedgerError> {
        if let Some(dir) = self.file.parent() {
            fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(|e| self.error(e))?;
        lock.lock().map_err(|e| self.error(e))?;
        let mut contents = self.load().map_err(|e| self.error(e))?;
        let (result, changed) = change(&mut contents.max);
        if changed {
            contents.version = 1;
            self.store(&contents).map_err(|e| self.error(e))?;
        }
        drop(lock);
        Ok(result)
    }

    fn load(&self) -> io::Result<Contents> {
        let text = match fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(e),
        };
        match serde_json::from_str(&text) {
            Ok(contents) => Ok(contents),
            Err(_) => {
                // Keep the damaged file for whoever investigates, and start again: the next
                // reading of the topology re-establishes every current count.
                let aside = self.file.with_extension("json.corrupt");
                fs::rename(&self.file, aside)?;
                Ok(Contents::default())
            }
        }
    }

    fn store(&self, contents: &Contents) -> io::Result<()> {
        let temp = self.file.with_extension("json.tmp");
        let mut file = File::create(&temp)?;
        file.write_all(&serde_json::to_vec(contents).map_err(io::Error::other)?)?;
        drop(file);
        fs::rename(&temp, &self.file)
    }

    fn error(&self, source: io::Error) -> LedgerError {
        LedgerError {
            path: self.file.display().to_string(),
            source,
        }
    }
}

/// Raises a map's mark to `total`; returns the mark and whether it changed.
fn raise(max: &mut BTreeMap<String, u32>, wwid: &str, total: u32) -> (u32, bool) {
    // Looked up before inserting: nearly every call finds the map already there, and the
    // entry API would allocate its key every time.
    if let Some(known) = max.get_mut(wwid) {
        let changed = total > *known;
        *known = (*known).max(total);
        return (*known, changed);
    }
    max.insert(wwid.to_string(), total);
    (total, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_is_a_high_water_mark_and_gone_maps_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(&HostRoot::new(dir.path()));
        assert_eq!(ledger.record_all([("a", 2), ("b", 4)]).unwrap(), [2, 4]);
        assert_eq!(ledger.record_all([("b", 4), ("a", 1)]).unwrap(), [4, 2]);
        assert_eq!(ledger.record_all([("a", 2)]).unwrap(), [2]);
        assert!(!ledger.read().unwrap().contains_key("b"));
        assert_eq!(ledger.record("b", Some(1)).unwrap(), Some(1));
        ledger.forget("a").unwrap();
        assert_eq!(ledger.read().unwrap().keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn a_view_in_any_order_is_merged_with_the_marks() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(&HostRoot::new(dir.path()));
        ledger
            .record_all([("m2", 2), ("m4", 4), ("m6", 1)])
            .unwrap();
        // Unsorted, a map twice (both get the higher count), a map gone (m4), new ones
        // before, between and after the known ones, and a new map with no path yet.
        let view = [
            ("m9", 3),
            ("m6", 2),
            ("m1", 0),
            ("m2", 1),
            ("m6", 3),
            ("m5", 1),
        ];
        assert_eq!(ledger.record_all(view).unwrap(), [3, 3, 0, 2, 3, 1]);
        let marks: Vec<(String, u32)> = ledger.read().unwrap().into_iter().collect();
        let expected = [("m1", 0), ("m2", 2), ("m5", 1), ("m6", 3), ("m9", 3)];
        assert_eq!(marks, expected.map(|(w, n)| (w.to_string(), n)));
        // A view that only drops a map still changes the ledger.
        ledger
            .record_all([("m1", 0), ("m2", 1), ("m5", 1), ("m6", 3)])
            .unwrap();
        assert!(!ledger.read().unwrap().contains_key("m9"));
    }

    #[test]
    fn the_ledger_is_written_only_when_a_mark_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let ledger = Ledger::new(&root);
        ledger.record_all([("a", 2), ("b", 4)]).unwrap();
        // Same marks, laid out as we never write them: a rewrite would show.
        let by_hand = "{ \"version\": 1, \"max\": { \"a\": 2, \"b\": 4 } }";
        fs::write(root.path(LEDGER_PATH), by_hand).unwrap();
        ledger.record_all([("a", 1), ("b", 4)]).unwrap();
        ledger.record("b", Some(3)).unwrap();
        assert_eq!(fs::read_to_string(root.path(LEDGER_PATH)).unwrap(), by_hand);
        ledger.record("a", Some(3)).unwrap();
        assert_ne!(fs::read_to_string(root.path(LEDGER_PATH)).unwrap(), by_hand);
        assert_eq!(ledger.read().unwrap()["a"], 3);
    }

    #[test]
    fn a_damaged_ledger_is_kept_aside_and_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let ledger = Ledger::new(&root);
        fs::create_dir_all(root.path("/run/sm-rs")).unwrap();
        fs::write(root.path(LEDGER_PATH), "{not json").unwrap();
        assert_eq!(ledger.record("a", Some(3)).unwrap(), Some(3));
        assert!(root.path("/run/sm-rs/mpath-max.json.corrupt").exists());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let ledger = Ledger::new(&root);
                std::thread::spawn(move || {
                    for n in 0..20 {
                        ledger.record(&format!("map{i}"), Some(n)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let max = Ledger::new(&root).read().unwrap();
        assert_eq!(max.len(), 8);
        assert!(max.values().all(|m| *m == 19));
    }
}
