//! What the real multipathd in the guest says, read independently of the `mpathutil` crate
//! (these readings are the oracle the code under test is compared with, so they must not
//! share its parsers): `show maps json` through serde, `show topology` through a small line
//! reader, and the guest's disks mapped to the fabric ports they hang off.

use std::time::Duration;

use serde::Deserialize;

use super::error::{Error, Result};
use super::poll::{Probe, wait_for};
use super::vm::Vm;

/// `multipathd show maps json` (format version 0.1).
#[derive(Debug, Clone, Deserialize)]
pub struct MapsJson {
    pub major_version: u32,
    pub minor_version: u32,
    pub maps: Vec<Map>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Map {
    pub name: String,
    pub uuid: String,
    pub sysfs: String,
    /// multipathd's own count of usable (up or ghost) paths.
    pub paths: u32,
    pub path_faults: u32,
    pub dm_st: String,
    pub features: String,
    pub hwhandler: String,
    pub vend: String,
    pub prod: String,
    #[serde(default)]
    pub path_groups: Vec<PathGroup>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PathGroup {
    pub selector: String,
    pub pri: i64,
    pub dm_st: String,
    pub group: u32,
    pub paths: Vec<MapPath>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MapPath {
    pub dev: String,
    pub dev_t: String,
    pub dm_st: String,
    pub dev_st: String,
    pub chk_st: String,
    pub checker: String,
    pub pri: i64,
}

impl Map {
    pub fn all_paths(&self) -> impl Iterator<Item = (&PathGroup, &MapPath)> {
        self.path_groups
            .iter()
            .flat_map(|g| g.paths.iter().map(move |p| (g, p)))
    }

    /// Paths the map lists, whatever their state.
    pub fn listed(&self) -> usize {
        self.all_paths().count()
    }

    /// Paths that carry I/O or can take it over: the kernel has them active and the checker
    /// finds them ready or ghost (an ALUA standby port: up, waiting to be activated).
    pub fn usable(&self) -> usize {
        self.all_paths()
            .filter(|(_, p)| p.dm_st == "active" && matches!(p.chk_st.as_str(), "ready" | "ghost"))
            .count()
    }

    pub fn path(&self, dev: &str) -> Option<&MapPath> {
        self.all_paths().map(|(_, p)| p).find(|p| p.dev == dev)
    }

    /// `dev dm_st chk_st dev_st` of every path, for messages.
    pub fn describe(&self) -> String {
        let paths: Vec<String> = self
            .all_paths()
            .map(|(g, p)| {
                format!(
                    "g{}({}) {} {} {} {}",
                    g.group, g.dm_st, p.dev, p.dm_st, p.chk_st, p.dev_st
                )
            })
            .collect();
        format!("{} [{}]", self.name, paths.join(", "))
    }
}

/// One map of `show topology` text (format of multipath-tools 0.4.9 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMap {
    /// The word before `: ` on the first line (`create`, `reload`, ...), if any.
    pub action: Option<String>,
    pub name: String,
    pub sysfs: String,
    pub vendor_product: String,
    /// The whole `size=... features=... hwhandler=... wp=...` line.
    pub attributes: String,
    pub groups: Vec<TextGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextGroup {
    pub policy: String,
    pub prio: i64,
    pub status: String,
    pub paths: Vec<TextPath>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPath {
    pub hcil: String,
    pub dev: String,
    pub dev_t: String,
    pub dm_st: String,
    pub chk_st: String,
    pub dev_st: String,
}

/// Reads `show topology` output. Lines are told apart by shape: a group line carries
/// `policy=`, a path line has an H:C:T:L after the tree glyphs, `size=` follows a header.
pub fn parse_topology(text: &str) -> Result<Vec<TextMap>> {
    let mut maps: Vec<TextMap> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let body = line.trim_start_matches(['|', '`', '-', '+', ' ']);
        if line.starts_with("size=") {
            let map = maps.last_mut().ok_or_else(|| bad(line))?;
            map.attributes = line.to_string();
        } else if body.starts_with("policy=") {
            let map = maps.last_mut().ok_or_else(|| bad(line))?;
            map.groups.push(parse_group(body).ok_or_else(|| bad(line))?);
        } else if body != line && is_hcil(body.split_whitespace().next().unwrap_or("")) {
            let group = maps
                .last_mut()
                .and_then(|m| m.groups.last_mut())
                .ok_or_else(|| bad(line))?;
            // hcil dev dev_t dm_st chk_st dev_st, where chk_st may be two words
            // ("i/o pending", "i/o timeout")
            let f: Vec<&str> = body.split_whitespace().collect();
            if f.len() < 6 {
                return Err(bad(line));
            }
            group.paths.push(TextPath {
                hcil: f[0].into(),
                dev: f[1].into(),
                dev_t: f[2].into(),
                dm_st: f[3].into(),
                chk_st: f[4..f.len() - 1].join(" "),
                dev_st: f[f.len() - 1].into(),
            });
        } else {
            maps.push(parse_header(line).ok_or_else(|| bad(line))?);
        }
    }
    Ok(maps)
}

fn bad(line: &str) -> Error {
    Error::Protocol(format!("unexpected line in show topology: {line:?}"))
}

fn is_hcil(word: &str) -> bool {
    let parts: Vec<&str> = word.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_header(line: &str) -> Option<TextMap> {
    let (action, rest) = match line.split_once(": ") {
        Some((a, rest)) if !a.contains(' ') => {
            (Some(a.to_string()).filter(|a| !a.is_empty()), rest)
        }
        _ => (None, line),
    };
    let mut words = rest.splitn(3, ' ');
    let name = words.next()?.to_string();
    let mut sysfs = words.next()?.to_string();
    let mut vendor_product = words.next().unwrap_or("").to_string();
    if sysfs.starts_with('(') {
        // an alias is followed by "(wwid)": take the next word as sysfs
        let (s, vp) = vendor_product.split_once(' ')?;
        sysfs = s.to_string();
        vendor_product = vp.to_string();
    }
    Some(TextMap {
        action,
        name,
        sysfs,
        vendor_product,
        attributes: String::new(),
        groups: Vec::new(),
    })
}

fn parse_group(body: &str) -> Option<TextGroup> {
    // policy='service-time 0' prio=1 status=active
    let policy = body.strip_prefix("policy='")?;
    let (policy, rest) = policy.split_once('\'')?;
    let mut prio = None;
    let mut status = None;
    for word in rest.split_whitespace() {
        if let Some(v) = word.strip_prefix("prio=") {
            prio = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("status=") {
            status = Some(v.to_string());
        }
    }
    Some(TextGroup {
        policy: policy.to_string(),
        prio: prio?,
        status: status?,
        paths: Vec::new(),
    })
}

/// A SCSI disk of the guest and the fabric port it is reached through
/// (`tests/realstack/guest/paths`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub dev: String,
    pub hctl: String,
    /// `pci 0000:00:08.0` (the HBA of a qemu path) or `iscsi 127.0.0.2:3260` (a session's portal).
    pub port: String,
}

pub fn parse_disks(text: &str) -> Vec<Disk> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ' ');
            Some(Disk {
                dev: f.next()?.to_string(),
                hctl: f.next()?.to_string(),
                port: f.next()?.to_string(),
            })
        })
        .collect()
}

/// Everything multipathd shows at one moment (taken in one guest command, so the views are
/// as close in time as the daemon allows).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `show topology` as the multipathd CLI printed it.
    pub topology_raw: String,
    /// The same, with the daemon's `ok` for "no maps" read as no text.
    pub topology_text: String,
    pub maps_json_text: String,
    pub maps: MapsJson,
    pub topology: Vec<TextMap>,
    pub disks: Vec<Disk>,
}

const SEPARATOR: &str = "\n----smrs-snapshot----\n";

impl Snapshot {
    pub fn take(vm: &mut Vm) -> Result<Snapshot> {
        let out = vm.sh(&format!(
            "multipathd show maps json; printf '{SEPARATOR}'; multipathd show topology; \
             printf '{SEPARATOR}'; smrs-paths"
        ))?;
        let parts: Vec<&str> = out.split(SEPARATOR).collect();
        let [json, topology, disks] = parts[..] else {
            return Err(Error::Protocol(format!(
                "snapshot output in {} parts: {out}",
                parts.len()
            )));
        };
        let maps: MapsJson = serde_json::from_str(json).map_err(|e| {
            Error::Protocol(format!("show maps json is not what we know ({e}): {json}"))
        })?;
        // an empty topology is printed as nothing at all (or "ok" on some versions)
        let topology_text = if topology.trim() == "ok" {
            ""
        } else {
            topology
        };
        Ok(Snapshot {
            topology_raw: topology.to_string(),
            topology: parse_topology(topology_text)?,
            topology_text: topology_text.to_string(),
            maps_json_text: json.to_string(),
            maps,
            disks: parse_disks(disks),
        })
    }

    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.maps.iter().find(|m| m.name == name)
    }

    /// Whether two snapshots show the same thing (nothing moved in between).
    pub fn same_as(&self, other: &Snapshot) -> bool {
        self.maps_json_text == other.maps_json_text
            && self.topology_raw == other.topology_raw
            && self.disks == other.disks
    }

    /// Maps and disks in one line, for messages.
    pub fn describe(&self) -> String {
        let maps: Vec<String> = self.maps.maps.iter().map(Map::describe).collect();
        let disks: Vec<String> = self
            .disks
            .iter()
            .map(|d| format!("{} on {}", d.dev, d.port))
            .collect();
        format!("maps [{}]; disks [{}]", maps.join("; "), disks.join(", "))
    }

    /// The only map, if there is exactly one.
    pub fn single_map(&self) -> Option<&Map> {
        match self.maps.maps.as_slice() {
            [map] => Some(map),
            _ => None,
        }
    }

    /// The disk reached through `port` (see [`Disk::port`]), if the guest has one.
    pub fn disk_on(&self, port: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.port == port)
    }

    /// The daemon's two views must tell the same story: same maps, groups (priority,
    /// status), paths (device, dev_t, states) in the same order. A difference would mean we
    /// misread one of them.
    pub fn views_agree(&self) -> std::result::Result<(), String> {
        let json_names: Vec<&str> = self.maps.maps.iter().map(|m| m.name.as_str()).collect();
        let text_names: Vec<&str> = self.topology.iter().map(|m| m.name.as_str()).collect();
        if json_names != text_names {
            return Err(format!(
                "maps: json {json_names:?}, topology {text_names:?}"
            ));
        }
        for (j, t) in self.maps.maps.iter().zip(&self.topology) {
            if j.sysfs != t.sysfs {
                return Err(format!("{}: sysfs {} vs {}", j.name, j.sysfs, t.sysfs));
            }
            let features = format!("features='{}' hwhandler='{}'", j.features, j.hwhandler);
            if !t.attributes.contains(&features) {
                return Err(format!("{}: {features} not in {:?}", j.name, t.attributes));
            }
            if j.path_groups.len() != t.groups.len() {
                return Err(format!(
                    "{}: {} groups in json, {} in topology",
                    j.name,
                    j.path_groups.len(),
                    t.groups.len()
                ));
            }
            for (jg, tg) in j.path_groups.iter().zip(&t.groups) {
                if (jg.selector.as_str(), jg.pri, jg.dm_st.as_str())
                    != (tg.policy.as_str(), tg.prio, tg.status.as_str())
                {
                    return Err(format!(
                        "{}: group {} differs: {jg:?} vs {tg:?}",
                        j.name, jg.group
                    ));
                }
                let jp: Vec<(&str, &str, &str, &str, &str)> = jg
                    .paths
                    .iter()
                    .map(|p| {
                        (
                            p.dev.as_str(),
                            p.dev_t.as_str(),
                            p.dm_st.as_str(),
                            p.chk_st.as_str(),
                            p.dev_st.as_str(),
                        )
                    })
                    .collect();
                let tp: Vec<(&str, &str, &str, &str, &str)> = tg
                    .paths
                    .iter()
                    .map(|p| {
                        (
                            p.dev.as_str(),
                            p.dev_t.as_str(),
                            p.dm_st.as_str(),
                            p.chk_st.as_str(),
                            p.dev_st.as_str(),
                        )
                    })
                    .collect();
                if jp != tp {
                    return Err(format!(
                        "{}: group {} paths {jp:?} vs {tp:?}",
                        j.name, jg.group
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Waits until a snapshot of the guest satisfies `done`, and returns that snapshot.
pub fn wait_for_snapshot(
    vm: &mut Vm,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Snapshot) -> bool,
) -> Result<(Snapshot, Duration)> {
    wait_for(what, timeout, || {
        let snapshot = Snapshot::take(vm)?;
        if done(&snapshot) {
            return Ok(Probe::Ready(snapshot));
        }
        Ok(Probe::Pending(snapshot.describe()))
    })
}

/// Waits until the VM has exactly one map and it satisfies `done`.
pub fn wait_for_map(
    vm: &mut Vm,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Map) -> bool,
) -> Result<(Snapshot, Duration)> {
    wait_for_snapshot(
        vm,
        what,
        timeout,
        |s| matches!(s.maps.maps.as_slice(), [map] if done(map)),
    )
}

/// The `[active, max]` XenServer's `mpathcount` would publish for a map, computed the stock
/// way from `show topology` text: every path line counts toward the total, a path is up unless
/// its checker state is `faulty` or `shaky` (the stock regex also names `failed`), and `max` is
/// the high-water mark of the total. (`reference/sm-facts.md` §4.5.)
#[derive(Debug, Default, Clone)]
pub struct StockPathCount {
    max: usize,
}

impl StockPathCount {
    pub fn observe(&mut self, map: &TextMap) -> [usize; 2] {
        let paths: Vec<&TextPath> = map.groups.iter().flat_map(|g| &g.paths).collect();
        let up = paths
            .iter()
            .filter(|p| !matches!(p.chk_st.as_str(), "faulty" | "shaky" | "failed"))
            .count();
        self.max = self.max.max(paths.len());
        [up, self.max]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from multipath-tools 0.9.4 in the real-stack guest.
    const TWO_GROUPS: &str = "create: 350014055eed00001 dm-0 QEMU,QEMU HARDDISK
size=128M features='0' hwhandler='0' wp=rw
|-+- policy='service-time 0' prio=1 status=active
| `- 0:0:0:0 sda 8:0  active ready running
`-+- policy='service-time 0' prio=1 status=enabled
  `- 1:0:0:0 sdb 8:16 active ready running
";

    #[test]
    fn reads_a_two_group_topology() {
        let maps = parse_topology(TWO_GROUPS).expect("parse");
        assert_eq!(maps.len(), 1);
        let m = &maps[0];
        assert_eq!(m.action.as_deref(), Some("create"));
        assert_eq!(
            (m.name.as_str(), m.sysfs.as_str()),
            ("350014055eed00001", "dm-0")
        );
        assert_eq!(m.vendor_product, "QEMU,QEMU HARDDISK");
        assert_eq!(m.groups.len(), 2);
        assert_eq!(m.groups[1].status, "enabled");
        assert_eq!(m.groups[1].paths[0].dev, "sdb");
        assert_eq!(m.groups[1].paths[0].dev_t, "8:16");
    }

    #[test]
    fn reads_a_map_without_paths_and_an_alias() {
        let text = "mpatha (36001405aabb) dm-3 ##,##\nsize=128M features='0' hwhandler='0' wp=rw\n";
        let maps = parse_topology(text).expect("parse");
        assert_eq!(maps[0].action, None);
        assert_eq!(maps[0].sysfs, "dm-3");
        assert!(maps[0].groups.is_empty());
    }

    #[test]
    fn a_checker_state_may_be_two_words() {
        let text = TWO_GROUPS.replace(
            "sdb 8:16 active ready running",
            "sdb 8:16 active i/o pending running",
        );
        let maps = parse_topology(&text).expect("parse");
        let path = &maps[0].groups[1].paths[0];
        assert_eq!(
            (path.chk_st.as_str(), path.dev_st.as_str()),
            ("i/o pending", "running")
        );
    }

    #[test]
    fn a_path_line_outside_a_group_is_an_error() {
        assert!(parse_topology("| `- 0:0:0:0 sda 8:0 active ready running\n").is_err());
    }

    #[test]
    fn counts_like_the_stock_mpathcount() {
        let mut count = StockPathCount::default();
        let healthy = parse_topology(TWO_GROUPS).expect("parse");
        assert_eq!(count.observe(&healthy[0]), [2, 2]);
        let failed = TWO_GROUPS.replace(
            "sdb 8:16 active ready running",
            "sdb 8:16 failed faulty offline",
        );
        assert_eq!(
            count.observe(&parse_topology(&failed).expect("parse")[0]),
            [1, 2]
        );
        // failed by the kernel but the checker still finds it ready: the stock tool counts it
        let dm_failed = TWO_GROUPS.replace("sdb 8:16 active ready", "sdb 8:16 failed ready");
        assert_eq!(
            count.observe(&parse_topology(&dm_failed).expect("parse")[0]),
            [2, 2]
        );
        let ghost = TWO_GROUPS.replace("sdb 8:16 active ready", "sdb 8:16 active ghost");
        assert_eq!(
            count.observe(&parse_topology(&ghost).expect("parse")[0]),
            [2, 2]
        );
        let one = "x dm-0 Q,Q\nsize=1M features='0' hwhandler='0' wp=rw\n`-+- policy='service-time 0' prio=1 status=active\n  `- 0:0:0:0 sda 8:0 active ready running\n";
        assert_eq!(
            count.observe(&parse_topology(one).expect("parse")[0]),
            [1, 2],
            "max is a high-water mark"
        );
    }

    #[test]
    fn reads_disks() {
        let disks = parse_disks("sda 0:0:0:0 pci 0000:00:08.0\nsdc 3:0:0:1 iscsi 127.0.0.2:3260\n");
        assert_eq!(disks[1].port, "iscsi 127.0.0.2:3260");
        assert_eq!(disks[0].hctl, "0:0:0:0");
    }
}
