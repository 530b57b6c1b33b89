//! multipathd's printers, byte for byte (multipath-tools 0.9, `libmultipath/print.c`; and
//! the dom0's 0.4.9-xs where its `print.c` differs, see [`Printer::new`]): the `%` wildcard
//! engine with its padding rules, the topology, the JSON, the small reports.
//!
//! Padding: in tables every field is padded to its column's width (the widest value or
//! title, over every map or every path); in topologies the path fields are padded to the
//! widest value over every path the daemon monitors, orphans included; map lines are never
//! padded. Unknown wildcards vanish.

use super::daemon::{Checker, Daemon, MapState};
use crate::fabric::{DeviceId, Fabric, Failback, NoPathRetry, PathFacts, Transport};
use mpathutil::model::Hcil;
use std::fmt::Write;

const MAX_FIELD_WIDTH: usize = 255;

/// Map wildcards and their column titles, as `show wildcards` lists them in 0.9.4.
pub const MAP_WILDCARDS: &[(char, &str)] = &[
    ('n', "name"),
    ('w', "uuid"),
    ('d', "sysfs"),
    ('F', "failback"),
    ('Q', "queueing"),
    ('N', "paths"),
    ('r', "write_prot"),
    ('t', "dm-st"),
    ('S', "size"),
    ('f', "features"),
    ('x', "failures"),
    ('h', "hwhandler"),
    ('A', "action"),
    ('0', "path_faults"),
    ('1', "switch_grp"),
    ('2', "map_loads"),
    ('3', "total_q_time"),
    ('4', "q_timeouts"),
    ('s', "vend/prod/rev"),
    ('v', "vend"),
    ('p', "prod"),
    ('e', "rev"),
    ('G', "foreign"),
    ('g', "vpd page data"),
];

/// Path wildcards and their column titles.
pub const PATH_WILDCARDS: &[(char, &str)] = &[
    ('w', "uuid"),
    ('i', "hcil"),
    ('d', "dev"),
    ('D', "dev_t"),
    ('t', "dm_st"),
    ('o', "dev_st"),
    ('T', "chk_st"),
    ('s', "vend/prod/rev"),
    ('c', "checker"),
    ('C', "next_check"),
    ('p', "pri"),
    ('S', "size"),
    ('z', "serial"),
    ('M', "marginal_st"),
    ('m', "multipath"),
    ('N', "host WWNN"),
    ('n', "target WWNN"),
    ('R', "host WWPN"),
    ('r', "target WWPN"),
    ('a', "host adapter"),
    ('G', "foreign"),
    ('g', "vpd page data"),
    ('0', "failures"),
    ('P', "protocol"),
    ('I', "init_st"),
    ('L', "LUN hex"),
];

const GROUP_WILDCARDS: &[(char, &str)] = &[
    ('s', "selector"),
    ('p', "pri"),
    ('t', "dm_st"),
    ('M', "marginal_st"),
];

/// Wildcards 0.9 added, which 0.4.9 does not know (its printers skip them: they print
/// nothing and take no padding).
const MAP_WILDCARDS_NOT_0_4_9: &[char] = &['G', 'g'];
const PATH_WILDCARDS_NOT_0_4_9: &[char] = &['M', 'G', 'g', 'I', 'L'];
const GROUP_WILDCARDS_NOT_0_4_9: &[char] = &['M'];

/// 0.4.9 prints every field into a `MAX_FIELD_LEN` (64) buffer: longer values are cut.
const MAX_FIELD_LEN_0_4_9: usize = 63;

const PATH_INDENT: &str = "%i %d %D %t %T %o";
const MAP_PROPS: &str = "size=%S features='%f' hwhandler='%h' wp=%r";
const GROUP_INDENT: &str = "policy='%s' prio=%p status=%t";

/// A format string split at its wildcards: literal text, then a wildcard, repeatedly.
fn segments(format: &str) -> (Vec<(&str, char)>, &str) {
    let mut parts = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let literal = &rest[..at];
        let mut chars = rest[at + 1..].chars();
        match chars.next() {
            Some(w) => {
                parts.push((literal, w));
                rest = chars.as_str();
            }
            None => {
                // A lone `%` at the end: multipathd would read past the string; we drop it.
                return (parts, literal);
            }
        }
    }
    (parts, rest)
}

/// Column widths by wildcard (wildcards are ASCII letters and digits).
type Widths = [usize; 128];

/// Prints one line of `format`, padding each wildcard to `widths`. `field` writes a
/// wildcard's value and says whether the wildcard exists.
fn line(
    out: &mut String,
    format: &str,
    widths: Option<&Widths>,
    field: impl FnMut(&mut String, char) -> bool,
) {
    let (parts, tail) = segments(format);
    line_of(out, &parts, tail, widths, field);
}

/// [`line`] with the format already split (the topology prints thousands of path lines).
fn line_of(
    out: &mut String,
    parts: &[(&str, char)],
    tail: &str,
    widths: Option<&Widths>,
    mut field: impl FnMut(&mut String, char) -> bool,
) {
    for &(literal, w) in parts {
        out.push_str(literal);
        let start = out.len();
        if !field(out, w) {
            continue;
        }
        let width = widths
            .and_then(|ws| ws.get(w as usize))
            .copied()
            .unwrap_or(0);
        for _ in out.len() - start..width {
            out.push(' ');
        }
    }
    out.push_str(tail);
    out.push('\n');
}

/// Column widths for the wildcards `format` uses: the widest value, or title with
/// `with_titles`, capped as multipathd caps them.
fn widths<T>(
    table: &[(char, &str)],
    format: &str,
    with_titles: bool,
    items: &[T],
    mut field: impl FnMut(&mut String, &T, char) -> bool,
) -> Widths {
    let used: Vec<char> = segments(format).0.iter().map(|(_, w)| *w).collect();
    let mut scratch = String::new();
    let mut widths = [0; 128];
    for (w, title) in table.iter().filter(|(w, _)| used.contains(w)) {
        let mut width = if with_titles { title.len() } else { 0 };
        for item in items {
            scratch.clear();
            if field(&mut scratch, item, *w) {
                width = width.max(scratch.len().min(MAX_FIELD_WIDTH));
            }
        }
        if let Some(slot) = widths.get_mut(*w as usize) {
            *slot = width;
        }
    }
    widths
}

fn title(out: &mut String, table: &[(char, &str)], w: char) -> bool {
    match table.iter().find(|(c, _)| *c == w) {
        Some((_, t)) => {
            out.push_str(t);
            true
        }
        None => false,
    }
}

/// `%S`: sectors/2 in K, scaled by 1024 up to P, one decimal below 10 (in C `float`).
pub fn size(bytes: u64) -> String {
    let mut s = ((bytes / 512) >> 1) as f32;
    let units = ['K', 'M', 'G', 'T', 'P'];
    let mut unit = 0;
    while s >= 1024.0 && unit < units.len() - 1 {
        s /= 1024.0;
        unit += 1;
    }
    if s < 10.0 {
        format!("{s:.1}{}", units[unit])
    } else if s.fract() == 0.0 {
        // The common case (whole units), without the exact float formatter's cost.
        format!("{}{}", s as u64, units[unit])
    } else {
        format!("{s:.0}{}", units[unit])
    }
}

/// `%L`: the LUN as the kernel's `int_to_scsilun` lays it out (printed as `0x%016x`).
fn scsilun(lun: u64) -> u64 {
    ((lun & 0xffff) << 48)
        | ((lun & 0xffff_0000) << 16)
        | ((lun & 0xffff_0000_0000) >> 16)
        | ((lun & 0xffff_0000_0000_0000) >> 48)
}

/// Appends a number (itoa: `fmt` costs several times more, and the printers write tens of
/// thousands of numbers per request at scale).
fn number(out: &mut String, value: impl itoa::Integer) -> std::fmt::Result {
    out.push_str(itoa::Buffer::new().format(value));
    Ok(())
}

/// Appends sixteen lowercase hex digits (`%016x`).
fn hex16(out: &mut String, value: u64) -> std::fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((value >> (shift * 4)) & 0xf) as usize]));
    }
    Ok(())
}

/// Appends `h:c:t:l`.
fn hcil(out: &mut String, hcil: Hcil) -> std::fmt::Result {
    let _ = number(out, hcil.host);
    out.push(':');
    let _ = number(out, hcil.channel);
    out.push(':');
    let _ = number(out, hcil.target);
    out.push(':');
    number(out, hcil.lun)
}

/// Appends a string; the printers' common case, without `fmt`'s machinery.
fn push(out: &mut String, text: impl AsRef<str>) -> std::fmt::Result {
    out.push_str(text.as_ref());
    Ok(())
}

fn progress(out: &mut String, cur: u32, total: u32) {
    if let Some(x) = (10 * cur).checked_div(total) {
        let x = x as usize;
        out.push_str(&"X".repeat(x));
        out.push_str(&".".repeat(10 - x.min(10)));
    }
    let _ = write!(out, " {cur}/{total}");
}

/// The values of a format's wildcards for every monitored path, each printed once. The
/// topology pads path fields to the widest value over all of them, so it needs every
/// value before its first line; printing each one twice cost a third of the request.
struct PathCells {
    text: String,
    /// Row by row (pathvec order), wildcard by wildcard: where the value lies in `text`,
    /// `None` for a wildcard multipathd does not know.
    cells: Vec<Option<(usize, usize)>>,
    parts: usize,
    /// Device id → row.
    rows: Vec<Option<usize>>,
}

impl PathCells {
    fn row(&self, id: DeviceId) -> Option<&[Option<(usize, usize)>]> {
        let row = (*self.rows.get(id.0)?)?;
        self.cells.get(row * self.parts..(row + 1) * self.parts)
    }

    /// As [`widths`] without titles: the widest value per wildcard, capped.
    fn widths(&self, parts: &[(&str, char)]) -> Widths {
        let mut widths = [0; 128];
        for row in self.cells.chunks(self.parts.max(1)) {
            for (&(_, w), cell) in parts.iter().zip(row) {
                if let (Some((start, end)), Some(slot)) = (cell, widths.get_mut(w as usize)) {
                    *slot = (*slot).max((end - start).min(MAX_FIELD_WIDTH));
                }
            }
        }
        widths
    }
}

/// What the printers read: the fabric (the truth) and the daemon (its view of it), with
/// each path's and map's state worked out once per request.
pub struct Printer<'a> {
    daemon: &'a Daemon,
    /// The 0.4.9-xs printers: no `%G %g` (maps), `%M %G %g %I %L` (paths), `%M` (groups);
    /// values cut at 63 bytes; SCSI vendor, product and revision as sysfs pads them (8, 16
    /// and 4 columns: 0.4.9 keeps the attribute as read); `%s` of a map without paths empty;
    /// `%Q` of a map with queueing retries `N chk` until its last path fails, then the
    /// seconds left (`retry_tick`); `%T` of a pending check `undef`; `%C` of a path that
    /// keeps passing its checks counts to `max_checkint` (4 × polling_interval).
    v0_4_9: bool,
    /// Indexed by device id: every monitored path.
    paths: Vec<Option<PathInfo<'a>>>,
    maps: Vec<MapInfo<'a>>,
}

/// One monitored path, as this request sees it.
struct PathInfo<'a> {
    facts: PathFacts<'a>,
    /// The map it sits in.
    map: Option<usize>,
    checker: Checker,
    failed: bool,
    prio: i32,
}

/// One map, as this request sees it.
struct MapInfo<'a> {
    /// The first path in group order: the map's vendor, product and revision.
    first: Option<PathFacts<'a>>,
    usable: usize,
}

impl<'a> Printer<'a> {
    pub fn new(fabric: &'a Fabric, daemon: &'a Daemon) -> Self {
        let mut membership: Vec<Option<usize>> = vec![None; fabric.devices().len()];
        for (i, map) in daemon.maps.iter().enumerate() {
            for id in map.layout.iter().flatten() {
                membership[id.0] = Some(i);
            }
        }
        let mut paths: Vec<Option<PathInfo<'a>>> = Vec::new();
        paths.resize_with(fabric.devices().len(), || None);
        for id in &daemon.pathvec {
            let (checker, failed, prio) = daemon.path_view(fabric, *id);
            paths[id.0] = Some(PathInfo {
                facts: fabric.facts(*id),
                map: membership[id.0],
                checker,
                failed,
                prio,
            });
        }
        let maps = daemon
            .maps
            .iter()
            .map(|m| {
                let members = || {
                    m.layout
                        .iter()
                        .flatten()
                        .filter_map(|id| paths[id.0].as_ref())
                };
                MapInfo {
                    first: members().next().map(|p| p.facts),
                    usable: members().filter(|p| p.checker.usable()).count(),
                }
            })
            .collect();
        Self {
            daemon,
            paths,
            maps,
            v0_4_9: daemon.config.style.is_0_4_9(),
        }
    }

    fn map(&self, index: usize) -> &MapState {
        &self.daemon.maps[index]
    }

    /// Writes a map wildcard's value; false for a wildcard multipathd does not know.
    fn map_field(&self, out: &mut String, index: usize, w: char) -> bool {
        if !self.v0_4_9 {
            return self.map_field_0_9(out, index, w);
        }
        if MAP_WILDCARDS_NOT_0_4_9.contains(&w) {
            return false;
        }
        let start = out.len();
        let map = self.map(index);
        let info = &self.maps[index];
        let array = info.first.map(|f| f.array);
        let known = match w {
            's' => {
                if let Some(a) = array {
                    let _ = write!(out, "{:<8.8},{:<16.16}", a.vendor, a.product);
                }
                true
            }
            'v' => push(
                out,
                array.map_or("##".into(), |a| format!("{:<8.8}", a.vendor)),
            )
            .is_ok(),
            'p' => push(
                out,
                array.map_or("##".into(), |a| format!("{:<16.16}", a.product)),
            )
            .is_ok(),
            'e' => push(
                out,
                array.map_or("##".into(), |a| format!("{:<4.4}", a.revision)),
            )
            .is_ok(),
            'Q' => match map.policy.no_path_retry {
                // retry_tick is set to no_path_retry × checkint + 1 when the last path
                // fails, and the checker loop takes one off in the same pass (then one a
                // second): shown as after that first pass.
                NoPathRetry::Retries(n) if info.usable == 0 => {
                    write!(out, "{} sec", n * self.daemon.config.polling_interval).is_ok()
                }
                NoPathRetry::Retries(n) => write!(out, "{n} chk").is_ok(),
                _ => self.map_field_0_9(out, index, w),
            },
            _ => self.map_field_0_9(out, index, w),
        };
        cut(out, start);
        known
    }

    fn map_field_0_9(&self, out: &mut String, index: usize, w: char) -> bool {
        let map = self.map(index);
        let info = &self.maps[index];
        let array = info.first.map(|f| f.array);
        let _ = match w {
            'n' => push(out, &map.alias),
            'w' => push(out, &map.wwid),
            'd' => {
                out.push_str("dm-");
                number(out, map.minor)
            }
            'F' => push(
                out,
                match map.policy.failback {
                    Failback::Immediate => "immediate",
                    Failback::Followover => "followover",
                    // A deferred failback prints its progress only while one is pending
                    // (failback_tick), which the simulator never shows.
                    Failback::Manual | Failback::Deferred(_) => "-",
                },
            ),
            'Q' => match map.policy.no_path_retry {
                NoPathRetry::Undef => push(out, "-"),
                NoPathRetry::Queue => push(out, "on"),
                NoPathRetry::Fail => push(out, "off"),
                NoPathRetry::Retries(n) if info.usable > 0 => write!(out, "{n} chk"),
                NoPathRetry::Retries(_) => push(out, "off"),
            },
            'N' => number(out, info.usable),
            'r' => push(out, "rw"),
            't' => push(out, "active"),
            'S' => push(out, size(map.size_bytes)),
            'f' => push(out, &map.policy.features),
            'x' | '3' | '4' => push(out, "0"),
            'h' => push(out, &map.policy.hwhandler),
            'A' => push(out, if map.created { "create" } else { "" }),
            '0' => number(out, map.path_faults),
            '1' => number(out, map.switch_grp),
            '2' => number(out, map.map_loads),
            's' => match array {
                Some(a) => {
                    out.push_str(&a.vendor);
                    out.push(',');
                    push(out, &a.product)
                }
                None => push(out, "##,##"),
            },
            'v' => push(out, array.map_or("##", |a| a.vendor.as_str())),
            'p' => push(out, array.map_or("##", |a| a.product.as_str())),
            'e' => push(out, array.map_or("##", |a| a.revision.as_str())),
            'G' => push(out, "--"),
            'g' => push(out, "[undef]"),
            _ => return false,
        };
        true
    }

    /// Writes a path wildcard's value; false for a wildcard multipathd does not know.
    pub fn path_field(&self, out: &mut String, id: DeviceId, w: char) -> bool {
        if !self.v0_4_9 {
            return self.path_field_0_9(out, id, w);
        }
        if PATH_WILDCARDS_NOT_0_4_9.contains(&w) {
            return false;
        }
        let Some(info) = self.paths.get(id.0).and_then(Option::as_ref) else {
            return false;
        };
        let start = out.len();
        let array = info.facts.array;
        let known = match w {
            's' => write!(out, "{:<8.8},{:<16.16}", array.vendor, array.product).is_ok(),
            // A path outside a map has no checker selected yet.
            'c' if info.map.is_none() => true,
            'T' if info.map.is_some() && info.checker == Checker::Pending => {
                push(out, "undef").is_ok()
            }
            'C' if info.map.is_some() => {
                let interval = self.daemon.config.polling_interval;
                if info.checker.usable() && !info.failed {
                    progress(out, 1, 4 * interval);
                } else {
                    progress(out, 1, interval);
                }
                true
            }
            _ => self.path_field_0_9(out, id, w),
        };
        cut(out, start);
        known
    }

    fn path_field_0_9(&self, out: &mut String, id: DeviceId, w: char) -> bool {
        let Some(info) = self.paths.get(id.0).and_then(Option::as_ref) else {
            return false;
        };
        let facts = &info.facts;
        let device = facts.device;
        let in_map = info.map.is_some();
        let fc = facts.host_port.transport == Transport::Fc;
        let or_undef = |value: &'a Option<String>| value.as_deref().unwrap_or("[undef]");
        let _ = match w {
            'w' => push(out, &facts.lun.wwid),
            'i' => hcil(out, device.hcil),
            'd' => push(out, &device.name),
            'D' => {
                let _ = number(out, device.dev_t.0);
                out.push(':');
                number(out, device.dev_t.1)
            }
            't' if !in_map => push(out, "undef"),
            't' => push(out, if info.failed { "failed" } else { "active" }),
            'o' if !in_map => push(out, "unknown"),
            'o' => push(out, if device.offline { "offline" } else { "running" }),
            'T' if !in_map => push(out, "undef"),
            'T' => push(out, info.checker.word()),
            's' => {
                out.push_str(&facts.array.vendor);
                out.push(',');
                push(out, &facts.array.product)
            }
            'c' => push(out, &facts.array.policy.checker),
            'C' if !in_map => push(out, "orphan"),
            'C' => {
                progress(out, 1, self.daemon.config.polling_interval);
                Ok(())
            }
            'p' => number(out, info.prio),
            'S' => push(out, size(facts.lun.size_bytes)),
            'z' => push(out, &facts.lun.serial),
            'M' => push(out, "normal"),
            'm' => match info.map {
                Some(m) => push(out, &self.daemon.maps[m].alias),
                None => push(out, "[orphan]"),
            },
            'N' if fc => push(out, facts.host_port.wwnn.as_deref().unwrap_or("[unknown]")),
            'R' if fc => push(out, facts.host_port.wwpn.as_deref().unwrap_or("[unknown]")),
            'r' if fc => push(out, facts.port.wwpn.as_deref().unwrap_or("[unknown]")),
            'N' | 'R' | 'r' | 'g' => push(out, "[undef]"),
            'n' => match facts.host_port.transport {
                Transport::Fc => push(out, or_undef(&facts.port.wwnn)),
                Transport::Iscsi => push(out, or_undef(&facts.port.target_iqn)),
                _ => push(out, "[undef]"),
            },
            // iSCSI has no adapter in sysfs: multipathd prints the session's local address,
            // read from the iscsi_host, which has none while the connection is down
            'a' if facts.host_port.transport == Transport::Iscsi && !facts.transport_up => {
                push(out, "[undef]")
            }
            'a' => push(out, or_undef(&facts.host_port.adapter)),
            'G' => push(out, "--"),
            '0' => push(out, "0"),
            'P' => push(out, facts.host_port.transport.protocol()),
            'I' => push(out, "ok"),
            'L' => {
                out.push_str("0x");
                hex16(out, scsilun(device.hcil.lun))
            }
            _ => return false,
        };
        true
    }

    fn group_field(&self, out: &mut String, map: &MapState, index: usize, w: char) -> bool {
        if self.v0_4_9 && GROUP_WILDCARDS_NOT_0_4_9.contains(&w) {
            return false;
        }
        let _ = match w {
            's' => push(out, &map.policy.selector),
            'p' => number(out, self.group_prio(&map.layout[index])),
            't' => push(
                out,
                if index == map.current {
                    "active"
                } else {
                    "enabled"
                },
            ),
            'M' => push(out, "normal"),
            _ => return false,
        };
        true
    }

    /// The mean priority of the group's usable paths, 0 without any.
    fn group_prio(&self, group: &[DeviceId]) -> i32 {
        let (sum, n) = group
            .iter()
            .filter_map(|id| self.paths.get(id.0).and_then(Option::as_ref))
            .filter(|p| p.checker.usable())
            .fold((0, 0), |(sum, n), p| (sum + p.prio, n + 1));
        if n == 0 { 0 } else { sum / n }
    }

    /// `show maps [raw] format …`; empty (the daemon then says `ok`) when there are no maps.
    pub fn maps_table(&self, format: &str, pretty: bool) -> String {
        let indexes: Vec<usize> = (0..self.daemon.maps.len()).collect();
        let widths = pretty.then(|| {
            widths(MAP_WILDCARDS, format, true, &indexes, |o, i, w| {
                self.map_field(o, *i, w)
            })
        });
        let mut out = String::with_capacity(64 * (indexes.len() + 1));
        if pretty && !indexes.is_empty() {
            line(&mut out, format, widths.as_ref(), |o, w| {
                title(o, MAP_WILDCARDS, w)
            });
        }
        let (parts, tail) = segments(format);
        for i in indexes {
            line_of(&mut out, &parts, tail, widths.as_ref(), |o, w| {
                self.map_field(o, i, w)
            });
        }
        out
    }

    /// `show map X [raw] format …`: one line, padded to every map's widths, no header.
    pub fn map_line(&self, index: usize, format: &str) -> String {
        let all: Vec<usize> = (0..self.daemon.maps.len()).collect();
        let widths = widths(MAP_WILDCARDS, format, true, &all, |o, i, w| {
            self.map_field(o, *i, w)
        });
        let mut out = String::new();
        line(&mut out, format, Some(&widths), |o, w| {
            self.map_field(o, index, w)
        });
        out
    }

    /// `show paths [raw] format …`; empty when there are no paths.
    pub fn paths_table(&self, format: &str, pretty: bool) -> String {
        let ids = &self.daemon.pathvec;
        let widths = pretty.then(|| {
            widths(PATH_WILDCARDS, format, true, ids, |o, id, w| {
                self.path_field(o, *id, w)
            })
        });
        let mut out = String::with_capacity(128 * (ids.len() + 1));
        if pretty && !ids.is_empty() {
            line(&mut out, format, widths.as_ref(), |o, w| {
                title(o, PATH_WILDCARDS, w)
            });
        }
        let (parts, tail) = segments(format);
        for id in ids {
            line_of(&mut out, &parts, tail, widths.as_ref(), |o, w| {
                self.path_field(o, *id, w)
            });
        }
        out
    }

    /// Every monitored path's values for `parts`, printed once.
    fn path_cells(&self, parts: &[(&str, char)]) -> PathCells {
        let ids = &self.daemon.pathvec;
        let mut cells = PathCells {
            text: String::with_capacity(ids.len() * 48),
            cells: Vec::with_capacity(ids.len() * parts.len()),
            parts: parts.len(),
            rows: vec![None; self.paths.len()],
        };
        for (row, id) in ids.iter().enumerate() {
            if let Some(slot) = cells.rows.get_mut(id.0) {
                *slot = Some(row);
            }
            for &(_, w) in parts {
                let start = cells.text.len();
                let known = self.path_field(&mut cells.text, *id, w);
                cells.cells.push(known.then_some((start, cells.text.len())));
            }
        }
        cells
    }

    /// `show topology` / `show map X topology`.
    pub fn topology(&self, indexes: impl IntoIterator<Item = usize>) -> String {
        let (path_parts, path_tail) = segments(PATH_INDENT);
        let cells = self.path_cells(&path_parts);
        let path_widths = cells.widths(&path_parts);
        let (props_parts, props_tail) = segments(MAP_PROPS);
        let (group_parts, group_tail) = segments(GROUP_INDENT);
        let mut out = String::with_capacity(512 * self.daemon.maps.len());
        // The header's four shapes: with or without the action, with or without the WWID
        // after an alias.
        let headers = [
            "%n %d %s",
            "%n (%w) %d %s",
            "%A: %n %d %s",
            "%A: %n (%w) %d %s",
        ]
        .map(segments);
        for index in indexes {
            let map = self.map(index);
            let shape = usize::from(map.created) * 2 + usize::from(map.alias != map.wwid);
            let (header_parts, header_tail) = &headers[shape];
            line_of(&mut out, header_parts, header_tail, None, |o, w| {
                self.map_field(o, index, w)
            });
            line_of(&mut out, &props_parts, props_tail, None, |o, w| {
                self.map_field(o, index, w)
            });
            for (g, group) in map.layout.iter().enumerate() {
                let last_group = g + 1 == map.layout.len();
                out.push_str(if last_group { "`-+- " } else { "|-+- " });
                line_of(&mut out, &group_parts, group_tail, None, |o, w| {
                    self.group_field(o, map, g, w)
                });
                for (p, id) in group.iter().enumerate() {
                    out.push(if last_group { ' ' } else { '|' });
                    out.push(' ');
                    out.push(if p + 1 == group.len() { '`' } else { '|' });
                    out.push_str("- ");
                    let row = cells.row(*id);
                    let mut part = 0;
                    line_of(
                        &mut out,
                        &path_parts,
                        path_tail,
                        Some(&path_widths),
                        |o, _| {
                            let cell = row.and_then(|r| r.get(part)).copied().flatten();
                            part += 1;
                            cell.map(|(start, end)| o.push_str(&cells.text[start..end]))
                                .is_some()
                        },
                    );
                }
            }
        }
        out
    }

    fn json_map(&self, out: &mut String, index: usize, last: bool) {
        let map = self.map(index);
        out.push('{');
        for (key, w, quoted) in JSON_MAP {
            out.push_str("\n      \"");
            out.push_str(key);
            out.push_str("\" : ");
            self.json_value(out, *quoted, |o| self.map_field(o, index, *w));
            out.push(',');
        }
        out.push_str("\n      \"path_groups\": [");
        for (g, group) in map.layout.iter().enumerate() {
            out.push('{');
            for (key, w, quoted) in self.json_group() {
                out.push_str("\n         \"");
                out.push_str(key);
                out.push_str("\" : ");
                self.json_value(out, *quoted, |o| self.group_field(o, map, g, *w));
                out.push(',');
            }
            let _ = write!(
                out,
                "\n         \"group\" : {},\n         \"paths\": [",
                g + 1
            );
            for (p, id) in group.iter().enumerate() {
                out.push('{');
                let keys = self.json_path();
                for (n, (key, w, quoted)) in keys.iter().enumerate() {
                    out.push_str("\n            \"");
                    out.push_str(key);
                    out.push_str("\" : ");
                    self.json_value(out, *quoted, |o| self.path_field(o, *id, *w));
                    if n + 1 < keys.len() {
                        out.push(',');
                    }
                }
                out.push_str(if p + 1 == group.len() {
                    "\n         }"
                } else {
                    "\n         },"
                });
            }
            out.push_str("]\n");
            out.push_str(if g + 1 == map.layout.len() {
                "      }"
            } else {
                "      },"
            });
        }
        out.push_str("]\n");
        out.push_str(if last { "   }" } else { "   }," });
    }

    /// `PRINT_JSON_GROUP`'s keys: 0.4.9 has no `marginal_st`.
    fn json_group(&self) -> &'static [(&'static str, char, bool)] {
        if self.v0_4_9 {
            &JSON_GROUP[..3]
        } else {
            JSON_GROUP
        }
    }

    /// `PRINT_JSON_PATH`'s keys: 0.4.9 ends at `host_adapter` (no `lun_hex`, no
    /// `marginal_st`) though it says the same version, 0.1.
    fn json_path(&self) -> &'static [(&'static str, char, bool)] {
        if self.v0_4_9 {
            &JSON_PATH[..12]
        } else {
            JSON_PATH
        }
    }

    /// Writes a value, quoted or not, as multipathd's printf does (no escaping).
    fn json_value(&self, out: &mut String, quoted: bool, field: impl FnOnce(&mut String) -> bool) {
        if quoted {
            out.push('"');
        }
        field(out);
        if quoted {
            out.push('"');
        }
    }

    /// `show maps json`.
    pub fn maps_json(&self) -> String {
        let mut out = String::with_capacity(1024 + 3200 * self.daemon.maps.len());
        out.push_str("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": [");
        let n = self.daemon.maps.len();
        for i in 0..n {
            self.json_map(&mut out, i, i + 1 == n);
        }
        out.push_str("]\n}\n");
        out
    }

    /// `show map X json`.
    pub fn map_json(&self, index: usize) -> String {
        let mut out =
            String::from("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":");
        self.json_map(&mut out, index, true);
        out.push_str("\n}\n");
        out
    }

    /// `show status`: checker states by their internal names, in the daemon's enum order.
    pub fn status(&self) -> String {
        let order = [Checker::Down, Checker::Up, Checker::Ghost, Checker::Pending];
        let mut out = String::from("path checker states:\n");
        for state in order {
            let n = self
                .paths
                .iter()
                .flatten()
                .filter(|p| p.checker == state)
                .count();
            if n > 0 {
                let _ = writeln!(out, "{:<20}{n}", state.status_name());
            }
        }
        let _ = write!(out, "\npaths: {}\nbusy: False\n", self.daemon.pathvec.len());
        out
    }
}

/// `PRINT_JSON_MAP`: key, wildcard, quoted.
const JSON_MAP: &[(&str, char, bool)] = &[
    ("name", 'n', true),
    ("uuid", 'w', true),
    ("sysfs", 'd', true),
    ("failback", 'F', true),
    ("queueing", 'Q', true),
    ("paths", 'N', false),
    ("write_prot", 'r', true),
    ("dm_st", 't', true),
    ("features", 'f', true),
    ("hwhandler", 'h', true),
    ("action", 'A', true),
    ("path_faults", '0', false),
    ("vend", 'v', true),
    ("prod", 'p', true),
    ("rev", 'e', true),
    ("switch_grp", '1', false),
    ("map_loads", '2', false),
    ("total_q_time", '3', false),
    ("q_timeouts", '4', false),
];

/// `PRINT_JSON_GROUP`.
const JSON_GROUP: &[(&str, char, bool)] = &[
    ("selector", 's', true),
    ("pri", 'p', false),
    ("dm_st", 't', true),
    ("marginal_st", 'M', true),
];

/// `PRINT_JSON_PATH`.
const JSON_PATH: &[(&str, char, bool)] = &[
    ("dev", 'd', true),
    ("dev_t", 'D', true),
    ("dm_st", 't', true),
    ("dev_st", 'o', true),
    ("chk_st", 'T', true),
    ("checker", 'c', true),
    ("pri", 'p', false),
    ("host_wwnn", 'N', true),
    ("target_wwnn", 'n', true),
    ("host_wwpn", 'R', true),
    ("target_wwpn", 'r', true),
    ("host_adapter", 'a', true),
    ("lun_hex", 'L', true),
    ("marginal_st", 'M', true),
];

/// `show wildcards`; `v0_4_9` leaves out what 0.4.9 does not know.
pub fn wildcards(v0_4_9: bool) -> String {
    let tables = [
        (
            "multipath format wildcards:\n",
            MAP_WILDCARDS,
            MAP_WILDCARDS_NOT_0_4_9,
        ),
        (
            "\npath format wildcards:\n",
            PATH_WILDCARDS,
            PATH_WILDCARDS_NOT_0_4_9,
        ),
        (
            "\npathgroup format wildcards:\n",
            GROUP_WILDCARDS,
            GROUP_WILDCARDS_NOT_0_4_9,
        ),
    ];
    let mut out = String::new();
    for (title, table, not_0_4_9) in tables {
        out.push_str(title);
        for (w, t) in table {
            if !(v0_4_9 && not_0_4_9.contains(w)) {
                let _ = writeln!(out, "%{w}  {t}");
            }
        }
    }
    out
}

/// Cuts what was written after `start` to 0.4.9's field buffer (on a character boundary).
fn cut(out: &mut String, start: usize) {
    let mut end = start + MAX_FIELD_LEN_0_4_9;
    if out.len() > end {
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_multipath_prints_them() {
        assert_eq!(size(256 << 20), "256M");
        assert_eq!(size(100 << 30), "100G");
        assert_eq!(size(1 << 40), "1.0T");
        assert_eq!(size(5 << 30), "5.0G");
        assert_eq!(size(1536 << 20), "1.5G");
        // printf's %.0f rounds a tie to even.
        assert_eq!(size((10 << 30) + (512 << 20)), "10G");
        assert_eq!(size((21 << 30) + (512 << 20)), "22G");
        assert_eq!(size((25 << 30) + (600 << 20)), "26G");
    }

    #[test]
    fn lun_hex_is_scsilun_order() {
        assert_eq!(format!("0x{:016x}", scsilun(0)), "0x0000000000000000");
        assert_eq!(format!("0x{:016x}", scsilun(1)), "0x0001000000000000");
    }

    #[test]
    fn unknown_wildcards_vanish_and_padding_applies_to_the_last_column() {
        let mut widths = [0; 128];
        widths['a' as usize] = 4;
        let mut out = String::new();
        line(&mut out, "x%a|%q|%a", Some(&widths), |o, w| {
            if w == 'a' {
                o.push_str("ab");
            }
            w == 'a'
        });
        assert_eq!(out, "xab  ||ab  \n");
    }

    #[test]
    fn progress_bar() {
        let mut out = String::new();
        progress(&mut out, 1, 5);
        assert_eq!(out, "XX........ 1/5");
        out.clear();
        progress(&mut out, 4, 5);
        assert_eq!(out, "XXXXXXXX.. 4/5");
    }
}
