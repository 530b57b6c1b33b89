//! What `mpathutil` prints beyond the stock tool: counts, paths, and JSON.

use crate::health::{Health, PathCounts, PathVerdict, path_count_value};
use crate::json_writer::{JsonWriter, member};
use crate::model::{
    CheckerState, DevState, GroupState, Map, MapDmState, Marginal, Path, PathDmState, PathGroup,
    Topology, WriteProt,
};
use std::fmt::Write;
use std::io;

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

/// Writes `"key": value` members whose values are optional strings. A macro rather than a
/// loop over pairs: with each key a literal at its call, writing it is a fixed-size copy.
macro_rules! members {
    ($w:ident, $($key:literal => $value:expr),+ $(,)?) => {
        $(
            $w.member(member!($key));
            $w.opt_string($value);
        )+
    };
}

/// Writes `"key": value` members whose values are optional state words.
macro_rules! words {
    ($w:ident, $($key:literal => $value:expr),+ $(,)?) => {
        $(
            $w.member(member!($key));
            $w.opt_word($value);
        )+
    };
}

/// `status --json`: `{"maps": [...]}`, each map with its fields, groups and paths; indented
/// for a person, or on one line (half the size, twice as fast to write and to read).
/// The field list is explicit: the output is a contract that a change to the model cannot
/// alter by accident.
pub fn write_status_json(
    reports: &[MapReport<'_>],
    pretty: bool,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let mut w = JsonWriter::new(out, pretty);
    w.begin_object();
    w.member(member!("maps"));
    w.begin_array();
    for report in reports {
        w.element();
        map_json(&mut w, report)?;
    }
    w.end_array()?;
    w.end_object()?;
    w.finish()
}

fn map_json(w: &mut JsonWriter, report: &MapReport<'_>) -> io::Result<()> {
    let m = report.map;
    w.begin_object();
    w.member(member!("name"));
    w.string(&m.name);
    w.member(member!("wwid"));
    w.string(&m.wwid);
    members!(
        w,
        "sysfs" => m.sysfs.as_deref(),
        "vendor" => m.vendor.as_deref(),
        "product" => m.product.as_deref(),
        "revision" => m.revision.as_deref(),
        "size" => m.size.as_deref(),
        "features" => m.features.as_deref(),
    );
    w.member(member!("queue_if_no_path"));
    w.bool(m.queue_if_no_path());
    members!(
        w,
        "hwhandler" => m.hwhandler.as_deref(),
    );
    words!(
        w,
        "write_prot" => m.write_prot.as_ref().map(WriteProt::as_known),
        "dm_state" => m.dm_state.as_ref().map(MapDmState::as_known),
    );
    members!(
        w,
        "queueing" => m.queueing.as_deref(),
        "failback" => m.failback.as_deref(),
        "action" => m.action.as_deref(),
    );
    w.member(member!("active"));
    w.int(report.active.into());
    w.member(member!("total"));
    w.int(report.total.into());
    w.member(member!("max"));
    w.int(report.max.into());
    w.member(member!("health"));
    w.opt_word(Some(Ok(report.health.as_str())));
    w.member(member!("groups"));
    w.begin_array();
    for (i, group) in m.groups.iter().enumerate() {
        w.element();
        group_json(w, i + 1, group)?;
    }
    w.end_array()?;
    w.end_object()
}

/// `number` is 1-based, as multipathd numbers groups.
fn group_json(w: &mut JsonWriter, number: usize, g: &PathGroup) -> io::Result<()> {
    w.begin_object();
    w.member(member!("group"));
    w.int(i64::try_from(number).unwrap_or(i64::MAX));
    w.member(member!("selector"));
    w.opt_string(g.selector.as_deref());
    w.member(member!("priority"));
    w.opt_int(g.priority.map(i64::from));
    words!(
        w,
        "state" => g.state.as_ref().map(GroupState::as_known),
        "marginal" => g.marginal.as_ref().map(Marginal::as_known),
    );
    w.member(member!("paths"));
    w.begin_array();
    for path in &g.paths {
        w.element();
        path_json(w, path)?;
    }
    w.end_array()?;
    w.end_object()
}

fn path_json(w: &mut JsonWriter, p: &Path) -> io::Result<()> {
    w.begin_object();
    w.member(member!("hcil"));
    match p.hcil {
        Some(hcil) => w.joined_numbers(
            &[
                hcil.host.into(),
                hcil.channel.into(),
                hcil.target.into(),
                hcil.lun,
            ],
            b':',
        ),
        None => w.null(),
    }
    members!(
        w,
        "dev" => p.dev.as_deref(),
        "dev_t" => p.dev_t.as_deref(),
    );
    words!(
        w,
        "dm_state" => p.dm_state.as_ref().map(PathDmState::as_known),
        "checker_state" => p.checker_state.as_ref().map(CheckerState::as_known),
        "dev_state" => p.dev_state.as_ref().map(DevState::as_known),
    );
    members!(
        w,
        "checker" => p.checker.as_deref(),
    );
    w.member(member!("priority"));
    w.opt_int(p.priority.map(i64::from));
    members!(
        w,
        "host_wwnn" => p.host_wwnn.as_deref(),
        "target_wwnn" => p.target_wwnn.as_deref(),
        "host_wwpn" => p.host_wwpn.as_deref(),
        "target_wwpn" => p.target_wwpn.as_deref(),
        "host_adapter" => p.host_adapter.as_deref(),
        "lun_hex" => p.lun_hex.as_deref(),
    );
    words!(
        w,
        "marginal" => p.marginal.as_ref().map(Marginal::as_known),
        "verdict" => Some(Ok(PathVerdict::of(p).as_str())),
    );
    w.end_object()
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
