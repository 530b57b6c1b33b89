//! What `mpathutil` prints beyond the stock tool: counts, paths, and JSON.

use crate::health::{Health, PathCounts, PathVerdict, path_count_value};
use crate::model::{Map, Path, PathGroup, Topology};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One map with its counts against its high-water mark.
#[derive(Debug, Serialize)]
pub struct MapReport<'a> {
    #[serde(flatten)]
    pub map: &'a Map,
    pub queue_if_no_path: bool,
    /// Paths that count as active now.
    pub active: u32,
    /// Paths present now.
    pub total: u32,
    /// The most paths this map has had.
    pub max: u32,
    pub health: Health,
    pub groups: Vec<GroupReport<'a>>,
}

#[derive(Debug, Serialize)]
pub struct GroupReport<'a> {
    /// 1-based, as multipathd numbers groups.
    pub group: usize,
    #[serde(flatten)]
    pub detail: &'a PathGroup,
    pub paths: Vec<PathReport<'a>>,
}

#[derive(Debug, Serialize)]
pub struct PathReport<'a> {
    #[serde(flatten)]
    pub detail: &'a Path,
    pub verdict: PathVerdict,
}

impl<'a> MapReport<'a> {
    /// `max` comes from the high-water ledger; it is never below the paths present now.
    pub fn new(map: &'a Map, max: Option<u32>) -> Self {
        let PathCounts { active, total } = PathCounts::of(map);
        let max = max.unwrap_or(0).max(total);
        Self {
            map,
            queue_if_no_path: map.queue_if_no_path(),
            active,
            total,
            max,
            health: Health::judge(active, max),
            groups: map
                .groups
                .iter()
                .enumerate()
                .map(|(i, group)| GroupReport {
                    group: i + 1,
                    detail: group,
                    paths: group
                        .paths
                        .iter()
                        .map(|path| PathReport {
                            detail: path,
                            verdict: PathVerdict::of(path),
                        })
                        .collect(),
                })
                .collect(),
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

/// Reports for every map of a topology, with maxima from the ledger.
pub fn reports<'a>(topology: &'a Topology, max: &BTreeMap<String, u32>) -> Vec<MapReport<'a>> {
    topology
        .maps
        .iter()
        .map(|m| MapReport::new(m, max.get(m.wwid.as_str()).copied()))
        .collect()
}

/// `status --json`: `{"maps": [...]}`.
pub fn status_json(reports: &[MapReport<'_>]) -> String {
    #[derive(Serialize)]
    struct Status<'r, 'a> {
        maps: &'r [MapReport<'a>],
    }
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&Status { maps: reports }).unwrap_or_default()
}

/// `paths`: one line per path, like AIX `lspath`: verdict, map, H:C:T:L, device, checker
/// state, priority, group; columns padded for reading.
pub fn path_lines(reports: &[MapReport<'_>]) -> String {
    let rows: Vec<[String; 7]> = reports
        .iter()
        .flat_map(|report| {
            report.groups.iter().flat_map(move |group| {
                group.paths.iter().map(move |path| {
                    let p = path.detail;
                    [
                        path.verdict.to_string(),
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
                        group.group.to_string(),
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
