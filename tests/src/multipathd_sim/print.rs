//! multipathd's printers, byte for byte (multipath-tools 0.9, `libmultipath/print.c`):
//! the `%` wildcard engine with its padding rules, the topology, the JSON, the small reports.
//!
//! Padding: in tables every field is padded to its column's width (the widest value or
//! title, over every map or every path); in topologies the path fields are padded to the
//! widest value over every path the daemon monitors, orphans included; map lines are never
//! padded. Unknown wildcards vanish.

use super::daemon::{Checker, Daemon, MapState};
use crate::fabric::{DeviceId, Fabric, Failback, NoPathRetry, Transport};
use std::collections::HashMap;
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

const PATH_INDENT: &str = "%i %d %D %t %T %o";
const MAP_PROPS: &str = "size=%S features='%f' hwhandler='%h' wp=%r";
const GROUP_INDENT: &str = "policy='%s' prio=%p status=%t";

/// What the printers read: the fabric (the truth) and the daemon (its view of it).
pub struct Printer<'a> {
    fabric: &'a Fabric,
    daemon: &'a Daemon,
    /// Which map each path sits in, so a field costs no search.
    membership: HashMap<DeviceId, usize>,
}

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

/// Prints one line of `format` with `field`, padding each wildcard to `widths`.
fn line(
    out: &mut String,
    format: &str,
    widths: Option<&HashMap<char, usize>>,
    field: impl Fn(char) -> Option<String>,
) {
    let (parts, tail) = segments(format);
    for (literal, w) in parts {
        out.push_str(literal);
        let Some(value) = field(w) else { continue };
        out.push_str(&value);
        if let Some(width) = widths.and_then(|ws| ws.get(&w)) {
            for _ in value.len()..*width {
                out.push(' ');
            }
        }
    }
    out.push_str(tail);
    out.push('\n');
}

/// Column widths for the wildcards `format` uses: the widest value, or title with
/// `with_titles`, capped as multipathd caps them.
fn widths<I>(
    table: &[(char, &str)],
    format: &str,
    with_titles: bool,
    items: I,
    field: impl Fn(&I::Item, char) -> Option<String>,
) -> HashMap<char, usize>
where
    I: IntoIterator + Clone,
{
    let used: Vec<char> = segments(format).0.iter().map(|(_, w)| *w).collect();
    table
        .iter()
        .filter(|(w, _)| used.contains(w))
        .map(|(w, title)| {
            let start = if with_titles { title.len() } else { 0 };
            let width = items
                .clone()
                .into_iter()
                .filter_map(|item| field(&item, *w))
                .map(|v| v.len().min(MAX_FIELD_WIDTH))
                .fold(start, usize::max);
            (*w, width)
        })
        .collect()
}

fn title(table: &[(char, &str)], w: char) -> Option<String> {
    table
        .iter()
        .find(|(c, _)| *c == w)
        .map(|(_, t)| (*t).to_string())
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
    } else {
        format!("{s:.0}{}", units[unit])
    }
}

/// `%L`: the LUN as the kernel's `int_to_scsilun` lays it out.
fn lun_hex(lun: u64) -> String {
    let hex = ((lun & 0xffff) << 48)
        | ((lun & 0xffff_0000) << 16)
        | ((lun & 0xffff_0000_0000) >> 16)
        | ((lun & 0xffff_0000_0000_0000) >> 48);
    format!("0x{hex:016x}")
}

fn progress(cur: u32, total: u32) -> String {
    let mut out = String::new();
    if let Some(x) = (10 * cur).checked_div(total) {
        let x = x as usize;
        out.push_str(&"X".repeat(x));
        out.push_str(&".".repeat(10 - x.min(10)));
    }
    let _ = write!(out, " {cur}/{total}");
    out
}

impl<'a> Printer<'a> {
    pub fn new(fabric: &'a Fabric, daemon: &'a Daemon) -> Self {
        let membership = daemon
            .maps
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.layout.iter().flatten().map(move |id| (*id, i)))
            .collect();
        Self {
            fabric,
            daemon,
            membership,
        }
    }

    fn map(&self, index: usize) -> &MapState {
        &self.daemon.maps[index]
    }

    fn members<'m>(&self, map: &'m MapState) -> impl Iterator<Item = DeviceId> + 'm {
        map.layout.iter().flatten().copied()
    }

    fn usable_paths(&self, map: &MapState) -> usize {
        self.members(map)
            .filter(|id| self.daemon.checker(self.fabric, *id).usable())
            .count()
    }

    /// The first path (in group order) that knows the vendor and product.
    fn first_path(&self, map: &MapState) -> Option<DeviceId> {
        self.members(map).next()
    }

    pub fn map_field(&self, index: usize, w: char) -> Option<String> {
        let map = self.map(index);
        let first = self.first_path(map).map(|id| self.fabric.facts(id));
        let array = first.map(|f| f.array);
        Some(match w {
            'n' => map.alias.clone(),
            'w' => map.wwid.clone(),
            'd' => format!("dm-{}", map.minor),
            'F' => match map.policy.failback {
                Failback::Immediate => "immediate".into(),
                Failback::Followover => "followover".into(),
                Failback::Manual => "-".into(),
            },
            'Q' => match map.policy.no_path_retry {
                NoPathRetry::Undef => "-".into(),
                NoPathRetry::Queue => "on".into(),
                NoPathRetry::Fail => "off".into(),
                NoPathRetry::Retries(n) if self.usable_paths(map) > 0 => format!("{n} chk"),
                NoPathRetry::Retries(_) => "off".into(),
            },
            'N' => self.usable_paths(map).to_string(),
            'r' => "rw".into(),
            't' => "active".into(),
            'S' => size(map.size_bytes),
            'f' => map.policy.features.clone(),
            'x' => "0".into(),
            'h' => map.policy.hwhandler.clone(),
            'A' => {
                if map.created {
                    "create".into()
                } else {
                    String::new()
                }
            }
            '0' => map.path_faults.to_string(),
            '1' => map.switch_grp.to_string(),
            '2' => map.map_loads.to_string(),
            '3' | '4' => "0".into(),
            's' => match array {
                Some(a) => format!("{},{}", a.vendor, a.product),
                None => "##,##".into(),
            },
            'v' => array.map_or("##".into(), |a| a.vendor.clone()),
            'p' => array.map_or("##".into(), |a| a.product.clone()),
            'e' => array.map_or("##".into(), |a| a.revision.clone()),
            'G' => "--".into(),
            'g' => "[undef]".into(),
            _ => return None,
        })
    }

    pub fn path_field(&self, id: DeviceId, w: char) -> Option<String> {
        let facts = self.fabric.facts(id);
        let device = facts.device;
        let map = self.membership.get(&id).copied();
        let in_map = map.is_some();
        let fc = facts.host_port.transport == Transport::Fc;
        let undef = || "[undef]".to_string();
        Some(match w {
            'w' => facts.lun.wwid.clone(),
            'i' => device.hcil.to_string(),
            'd' => device.name.clone(),
            'D' => format!("{}:{}", device.dev_t.0, device.dev_t.1),
            't' if !in_map => "undef".into(),
            't' => {
                if self.daemon.dm_failed(self.fabric, id) {
                    "failed".into()
                } else {
                    "active".into()
                }
            }
            'o' if !in_map => "unknown".into(),
            'o' => {
                if device.offline {
                    "offline".into()
                } else {
                    "running".into()
                }
            }
            'T' if !in_map => "undef".into(),
            'T' => self.daemon.checker(self.fabric, id).word().into(),
            's' => format!("{},{}", facts.array.vendor, facts.array.product),
            'c' => facts.array.policy.checker.clone(),
            'C' if !in_map => "orphan".into(),
            'C' => progress(1, self.daemon.config.polling_interval),
            'p' => self.daemon.prio(id).to_string(),
            'S' => size(facts.lun.size_bytes),
            'z' => facts.lun.serial.clone(),
            'M' => "normal".into(),
            'm' => match map {
                Some(m) => self.daemon.maps[m].alias.clone(),
                None => "[orphan]".into(),
            },
            'N' if fc => facts
                .host_port
                .wwnn
                .clone()
                .unwrap_or_else(|| "[unknown]".into()),
            'R' if fc => facts
                .host_port
                .wwpn
                .clone()
                .unwrap_or_else(|| "[unknown]".into()),
            'r' if fc => facts
                .port
                .wwpn
                .clone()
                .unwrap_or_else(|| "[unknown]".into()),
            'N' | 'R' | 'r' => undef(),
            'n' => match facts.host_port.transport {
                Transport::Fc => facts.port.wwnn.clone().unwrap_or_else(undef),
                Transport::Iscsi => facts.port.target_iqn.clone().unwrap_or_else(undef),
                _ => undef(),
            },
            'a' => facts.host_port.adapter.clone().unwrap_or_else(undef),
            'G' => "--".into(),
            'g' => undef(),
            '0' => "0".into(),
            'P' => facts.host_port.transport.protocol().into(),
            'I' => "ok".into(),
            'L' => lun_hex(device.hcil.lun),
            _ => return None,
        })
    }

    fn group_field(&self, map: &MapState, index: usize, w: char) -> Option<String> {
        let group = &map.layout[index];
        Some(match w {
            's' => map.policy.selector.clone(),
            'p' => self.daemon.group_prio(self.fabric, group).0.to_string(),
            't' => {
                if index == map.current {
                    "active".into()
                } else {
                    "enabled".into()
                }
            }
            'M' => "normal".into(),
            _ => return None,
        })
    }

    /// `show maps [raw] format …`; `ok` when there are no maps.
    pub fn maps_table(&self, format: &str, pretty: bool) -> String {
        let indexes = 0..self.daemon.maps.len();
        let widths = pretty.then(|| {
            widths(MAP_WILDCARDS, format, true, indexes.clone(), |i, w| {
                self.map_field(*i, w)
            })
        });
        let mut out = String::new();
        if pretty {
            line(&mut out, format, widths.as_ref(), |w| {
                title(MAP_WILDCARDS, w)
            });
        }
        for i in indexes {
            line(&mut out, format, widths.as_ref(), |w| self.map_field(i, w));
        }
        if pretty && self.daemon.maps.is_empty() {
            out.clear();
        }
        out
    }

    /// `show map X [raw] format …`: one line, padded to every map's widths, no header.
    pub fn map_line(&self, index: usize, format: &str) -> String {
        let all = 0..self.daemon.maps.len();
        let widths = widths(MAP_WILDCARDS, format, true, all, |i, w| {
            self.map_field(*i, w)
        });
        let mut out = String::new();
        line(&mut out, format, Some(&widths), |w| {
            self.map_field(index, w)
        });
        out
    }

    /// `show paths [raw] format …`; `ok` when there are no paths.
    pub fn paths_table(&self, format: &str, pretty: bool) -> String {
        let ids = self.daemon.pathvec.clone();
        let widths = pretty.then(|| {
            widths(PATH_WILDCARDS, format, true, ids.clone(), |id, w| {
                self.path_field(*id, w)
            })
        });
        let mut out = String::new();
        if pretty {
            line(&mut out, format, widths.as_ref(), |w| {
                title(PATH_WILDCARDS, w)
            });
        }
        for id in &ids {
            line(&mut out, format, widths.as_ref(), |w| {
                self.path_field(*id, w)
            });
        }
        if pretty && ids.is_empty() {
            out.clear();
        }
        out
    }

    /// `show topology` / `show map X topology`.
    pub fn topology(&self, indexes: impl IntoIterator<Item = usize>) -> String {
        let ids = self.daemon.pathvec.iter().copied();
        let path_widths = widths(PATH_WILDCARDS, PATH_INDENT, false, ids, |id, w| {
            self.path_field(*id, w)
        });
        let mut out = String::new();
        for index in indexes {
            let map = self.map(index);
            let mut style = String::new();
            if map.created {
                style.push_str("%A: ");
            }
            style.push_str("%n");
            if map.alias != map.wwid {
                style.push_str(" (%w)");
            }
            style.push_str(" %d %s");
            line(&mut out, &style, None, |w| self.map_field(index, w));
            line(&mut out, MAP_PROPS, None, |w| self.map_field(index, w));
            for (g, group) in map.layout.iter().enumerate() {
                let last_group = g + 1 == map.layout.len();
                out.push_str(if last_group { "`-+- " } else { "|-+- " });
                line(&mut out, GROUP_INDENT, None, |w| {
                    self.group_field(map, g, w)
                });
                for (p, id) in group.iter().enumerate() {
                    out.push(if last_group { ' ' } else { '|' });
                    out.push(' ');
                    out.push(if p + 1 == group.len() { '`' } else { '|' });
                    out.push_str("- ");
                    line(&mut out, PATH_INDENT, Some(&path_widths), |w| {
                        self.path_field(*id, w)
                    });
                }
            }
        }
        out
    }

    fn json_map(&self, out: &mut String, index: usize, last: bool) {
        let map = self.map(index);
        let f = |w| self.map_field(index, w).unwrap_or_default();
        let _ = write!(
            out,
            "{{\n      \"name\" : \"{}\",\n      \"uuid\" : \"{}\",\n      \"sysfs\" : \"{}\",\n      \"failback\" : \"{}\",\n      \"queueing\" : \"{}\",\n      \"paths\" : {},\n      \"write_prot\" : \"{}\",\n      \"dm_st\" : \"{}\",\n      \"features\" : \"{}\",\n      \"hwhandler\" : \"{}\",\n      \"action\" : \"{}\",\n      \"path_faults\" : {},\n      \"vend\" : \"{}\",\n      \"prod\" : \"{}\",\n      \"rev\" : \"{}\",\n      \"switch_grp\" : {},\n      \"map_loads\" : {},\n      \"total_q_time\" : {},\n      \"q_timeouts\" : {},\n",
            f('n'),
            f('w'),
            f('d'),
            f('F'),
            f('Q'),
            f('N'),
            f('r'),
            f('t'),
            f('f'),
            f('h'),
            f('A'),
            f('0'),
            f('v'),
            f('p'),
            f('e'),
            f('1'),
            f('2'),
            f('3'),
            f('4'),
        );
        out.push_str("      \"path_groups\": [");
        for (g, group) in map.layout.iter().enumerate() {
            let gf = |w| self.group_field(map, g, w).unwrap_or_default();
            let _ = write!(
                out,
                "{{\n         \"selector\" : \"{}\",\n         \"pri\" : {},\n         \"dm_st\" : \"{}\",\n         \"marginal_st\" : \"{}\",\n         \"group\" : {},\n",
                gf('s'),
                gf('p'),
                gf('t'),
                gf('M'),
                g + 1,
            );
            out.push_str("         \"paths\": [");
            for (p, id) in group.iter().enumerate() {
                let pf = |w| self.path_field(*id, w).unwrap_or_default();
                let _ = write!(
                    out,
                    "{{\n            \"dev\" : \"{}\",\n            \"dev_t\" : \"{}\",\n            \"dm_st\" : \"{}\",\n            \"dev_st\" : \"{}\",\n            \"chk_st\" : \"{}\",\n            \"checker\" : \"{}\",\n            \"pri\" : {},\n            \"host_wwnn\" : \"{}\",\n            \"target_wwnn\" : \"{}\",\n            \"host_wwpn\" : \"{}\",\n            \"target_wwpn\" : \"{}\",\n            \"host_adapter\" : \"{}\",\n            \"lun_hex\" : \"{}\",\n            \"marginal_st\" : \"{}\"\n",
                    pf('d'),
                    pf('D'),
                    pf('t'),
                    pf('o'),
                    pf('T'),
                    pf('c'),
                    pf('p'),
                    pf('N'),
                    pf('n'),
                    pf('R'),
                    pf('r'),
                    pf('a'),
                    pf('L'),
                    pf('M'),
                );
                out.push_str(if p + 1 == group.len() {
                    "         }"
                } else {
                    "         },"
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

    /// `show maps json`.
    pub fn maps_json(&self) -> String {
        let mut out = String::with_capacity(1024 + 3000 * self.daemon.maps.len());
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
                .daemon
                .pathvec
                .iter()
                .filter(|id| self.daemon.checker(self.fabric, **id) == state)
                .count();
            if n > 0 {
                let _ = writeln!(out, "{:<20}{n}", state.status_name());
            }
        }
        let _ = write!(out, "\npaths: {}\nbusy: False\n", self.daemon.pathvec.len());
        out
    }
}

/// `show wildcards`.
pub fn wildcards() -> String {
    let mut out = String::from("multipath format wildcards:\n");
    for (w, t) in MAP_WILDCARDS {
        let _ = writeln!(out, "%{w}  {t}");
    }
    out.push_str("\npath format wildcards:\n");
    for (w, t) in PATH_WILDCARDS {
        let _ = writeln!(out, "%{w}  {t}");
    }
    out.push_str("\npathgroup format wildcards:\n");
    for (w, t) in GROUP_WILDCARDS {
        let _ = writeln!(out, "%{w}  {t}");
    }
    out
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
    }

    #[test]
    fn lun_hex_is_scsilun_order() {
        assert_eq!(lun_hex(0), "0x0000000000000000");
        assert_eq!(lun_hex(1), "0x0001000000000000");
    }

    #[test]
    fn unknown_wildcards_vanish_and_padding_applies_to_the_last_column() {
        let mut widths = HashMap::new();
        widths.insert('a', 4);
        let mut out = String::new();
        line(&mut out, "x%a|%q|%a", Some(&widths), |w| {
            (w == 'a').then(|| "ab".to_string())
        });
        assert_eq!(out, "xab  ||ab  \n");
    }

    #[test]
    fn progress_bar() {
        assert_eq!(progress(1, 5), "XX........ 1/5");
        assert_eq!(progress(4, 5), "XXXXXXXX.. 4/5");
    }
}
