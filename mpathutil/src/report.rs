//! What `mpathutil` prints beyond the stock tool: counts, paths, and JSON.

use crate::health::{Health, PathCounts, PathVerdict, path_count_value};
use crate::model::{
    CheckerState, DevState, GroupState, Hcil, Map, MapDmState, Marginal, Path, PathDmState,
    PathGroup, Topology, WriteProt,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One map with its counts against its high-water mark.
#[derive(Debug)]
pub struct MapReport<'a> {
    pub map: &'a Map,
    /// Paths that count as active now.
    pub active: u32,
    /// Paths present now.
    pub total: u32,
    /// The most paths this map has had.
    pub max: u32,
    pub health: Health,
}

impl<'a> MapReport<'a> {
    /// `max` comes from the high-water ledger; it is never below the paths present now.
    pub fn new(map: &'a Map, max: Option<u32>) -> Self {
        let PathCounts { active, total } = PathCounts::of(map);
        let max = max.unwrap_or(0).max(total);
        Self {
            map,
            active,
            total,
            max,
            health: Health::judge(active, max),
        }
    }

    /// The `count` line: `<SCSIid> [<active>, <max>] <health>`.
    pub fn count_line(&self) -> String {
        format!(
            "{} {} {}",
            self.map.wwid,
            path_count_value(self.active, self.max),
            self.health
        )
    }
}

// `status --json` writes these: an explicit field list, so the output is a contract that a
// change to the model cannot alter by accident.

#[derive(Serialize)]
struct MapJson<'a> {
    name: &'a str,
    wwid: &'a str,
    sysfs: Option<&'a str>,
    vendor: Option<&'a str>,
    product: Option<&'a str>,
    revision: Option<&'a str>,
    size: Option<&'a str>,
    features: Option<&'a str>,
    queue_if_no_path: bool,
    hwhandler: Option<&'a str>,
    write_prot: Option<&'a WriteProt>,
    dm_state: Option<&'a MapDmState>,
    queueing: Option<&'a str>,
    failback: Option<&'a str>,
    action: Option<&'a str>,
    active: u32,
    total: u32,
    max: u32,
    health: Health,
    groups: Groups<'a>,
}

#[derive(Serialize)]
struct GroupJson<'a> {
    /// 1-based, as multipathd numbers groups.
    group: usize,
    selector: Option<&'a str>,
    priority: Option<i32>,
    state: Option<&'a GroupState>,
    marginal: Option<&'a Marginal>,
    paths: Paths<'a>,
}

#[derive(Serialize)]
struct PathJson<'a> {
    hcil: Option<Hcil>,
    dev: Option<&'a str>,
    dev_t: Option<&'a str>,
    dm_state: Option<&'a PathDmState>,
    checker_state: Option<&'a CheckerState>,
    dev_state: Option<&'a DevState>,
    checker: Option<&'a str>,
    priority: Option<i32>,
    host_wwnn: Option<&'a str>,
    target_wwnn: Option<&'a str>,
    host_wwpn: Option<&'a str>,
    target_wwpn: Option<&'a str>,
    host_adapter: Option<&'a str>,
    lun_hex: Option<&'a str>,
    marginal: Option<&'a Marginal>,
    verdict: PathVerdict,
}

/// A map's groups, written as they are read: no list of them is built first.
struct Groups<'a>(&'a [PathGroup]);

impl Serialize for Groups<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .enumerate()
                .map(|(i, g)| GroupJson::new(i + 1, g)),
        )
    }
}

/// A group's paths, written as they are read.
struct Paths<'a>(&'a [Path]);

impl Serialize for Paths<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(PathJson::from))
    }
}

impl<'a> From<&MapReport<'a>> for MapJson<'a> {
    fn from(report: &MapReport<'a>) -> Self {
        let m = report.map;
        MapJson {
            name: &m.name,
            wwid: &m.wwid,
            sysfs: m.sysfs.as_deref(),
            vendor: m.vendor.as_deref(),
            product: m.product.as_deref(),
            revision: m.revision.as_deref(),
            size: m.size.as_deref(),
            features: m.features.as_deref(),
            queue_if_no_path: m.queue_if_no_path(),
            hwhandler: m.hwhandler.as_deref(),
            write_prot: m.write_prot.as_ref(),
            dm_state: m.dm_state.as_ref(),
            queueing: m.queueing.as_deref(),
            failback: m.failback.as_deref(),
            action: m.action.as_deref(),
            active: report.active,
            total: report.total,
            max: report.max,
            health: report.health,
            groups: Groups(&m.groups),
        }
    }
}

impl<'a> GroupJson<'a> {
    fn new(group: usize, g: &'a PathGroup) -> Self {
        GroupJson {
            group,
            selector: g.selector.as_deref(),
            priority: g.priority,
            state: g.state.as_ref(),
            marginal: g.marginal.as_ref(),
            paths: Paths(&g.paths),
        }
    }
}

impl<'a> From<&'a Path> for PathJson<'a> {
    fn from(p: &'a Path) -> Self {
        PathJson {
            hcil: p.hcil,
            dev: p.dev.as_deref(),
            dev_t: p.dev_t.as_deref(),
            dm_state: p.dm_state.as_ref(),
            checker_state: p.checker_state.as_ref(),
            dev_state: p.dev_state.as_ref(),
            checker: p.checker.as_deref(),
            priority: p.priority,
            host_wwnn: p.host_wwnn.as_deref(),
            target_wwnn: p.target_wwnn.as_deref(),
            host_wwpn: p.host_wwpn.as_deref(),
            target_wwpn: p.target_wwpn.as_deref(),
            host_adapter: p.host_adapter.as_deref(),
            lun_hex: p.lun_hex.as_deref(),
            marginal: p.marginal.as_ref(),
            verdict: PathVerdict::of(p),
        }
    }
}

/// Reports for every map of a topology, with maxima from the ledger.
pub fn reports<'a>(topology: &'a Topology, max: &BTreeMap<String, u32>) -> Vec<MapReport<'a>> {
    topology
        .maps
        .iter()
        .map(|m| MapReport::new(m, max.get(m.wwid.as_str()).copied()))
        .collect()
}

/// `status --json`: `{"maps": [...]}`, each map with its fields, groups and paths; indented
/// for a person, or on one line (half the size, twice as fast to write and to read).
pub fn status_json(reports: &[MapReport<'_>], pretty: bool) -> String {
    #[derive(Serialize)]
    struct Status<'a> {
        maps: Vec<MapJson<'a>>,
    }
    let status = Status {
        maps: reports.iter().map(MapJson::from).collect(),
    };
    // Serialising plain structs of strings and numbers cannot fail.
    if pretty {
        serde_json::to_string_pretty(&status).unwrap_or_default()
    } else {
        serde_json::to_string(&status).unwrap_or_default()
    }
}

/// `paths`: one line per path, like AIX `lspath`: verdict, map, H:C:T:L, device, checker
/// state, priority, group; columns padded for reading.
pub fn path_lines(reports: &[MapReport<'_>]) -> String {
    let rows: Vec<[String; 7]> = reports
        .iter()
        .flat_map(|report| {
            report
                .map
                .groups
                .iter()
                .enumerate()
                .flat_map(move |(g, group)| {
                    group.paths.iter().map(move |p| {
                        [
                            PathVerdict::of(p).to_string(),
                            report.map.name.to_string(),
                            p.hcil
                                .map_or_else(|| "#:#:#:#".to_string(), |h| h.to_string()),
                            p.dev.as_deref().unwrap_or("-").to_string(),
                            p.checker_state
                                .as_ref()
                                .map_or("undef", |c| c.as_str())
                                .to_string(),
                            p.priority
                                .map_or_else(|| "-".to_string(), |n| n.to_string()),
                            (g + 1).to_string(),
                        ]
                    })
                })
        })
        .collect();
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$} ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
