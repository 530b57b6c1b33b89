//! What `mpathutil` prints beyond the stock tool: counts, paths, and JSON.

use crate::health::{Health, PathCounts, PathVerdict, path_count_value};
use crate::model::{
    CheckerState, DevState, GroupState, Hcil, Map, MapDmState, Marginal, Path, PathDmState,
    PathGroup, Topology, WriteProt,
};
use serde::Serialize;
use std::fmt::Write;
use std::io::{self, Write as _};

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

/// Reports for every map of a topology, with maxima from the ledger in the same order.
pub fn reports<'a>(topology: &'a Topology, maxima: &[u32]) -> Vec<MapReport<'a>> {
    topology
        .maps
        .iter()
        .enumerate()
        .map(|(i, m)| MapReport::new(m, maxima.get(i).copied()))
        .collect()
}

/// `status --json`: `{"maps": [...]}`, each map with its fields, groups and paths; indented
/// for a person, or on one line. The records below spell the output out field by field:
/// it is a contract that a change to the model cannot alter by accident.
pub fn write_status_json(
    reports: &[MapReport<'_>],
    pretty: bool,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let status = StatusJson {
        maps: reports.iter().map(MapJson::of).collect(),
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    if pretty {
        serde_json::to_writer_pretty(&mut out, &status)?;
    } else {
        serde_json::to_writer(&mut out, &status)?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

#[derive(Serialize)]
struct StatusJson<'a> {
    maps: Vec<MapJson<'a>>,
}

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
    groups: Vec<GroupJson<'a>>,
}

impl<'a> MapJson<'a> {
    fn of(report: &MapReport<'a>) -> Self {
        let m = report.map;
        Self {
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
            groups: m
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| GroupJson::of(i + 1, g))
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct GroupJson<'a> {
    /// 1-based, as multipathd numbers groups.
    group: usize,
    selector: Option<&'a str>,
    priority: Option<i32>,
    state: Option<&'a GroupState>,
    marginal: Option<&'a Marginal>,
    paths: Vec<PathJson<'a>>,
}

impl<'a> GroupJson<'a> {
    fn of(group: usize, g: &'a PathGroup) -> Self {
        Self {
            group,
            selector: g.selector.as_deref(),
            priority: g.priority,
            state: g.state.as_ref(),
            marginal: g.marginal.as_ref(),
            paths: g.paths.iter().map(PathJson::of).collect(),
        }
    }
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

impl<'a> PathJson<'a> {
    fn of(p: &'a Path) -> Self {
        Self {
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
