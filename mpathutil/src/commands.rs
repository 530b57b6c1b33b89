//! The multipathd commands sm-rs sends, typed.
//!
//! Map arguments are map names; with `user_friendly_names no` (as on XenServer) the name is
//! the WWID, which every multipathd version accepts (a WWID that is not also the name is
//! only understood from 0.9.9 on).

use crate::client::{Error, Multipathd};
use crate::model::{Map, MapDmState, Marginal, Topology};
use crate::parse::{self, ParseError, defined, known};
use std::collections::HashMap;

/// The fields the topology text leaves out, in raw listings. They are separated by the
/// ASCII unit separator, which no multipathd value contains (vendor and revision strings
/// may contain spaces). A wildcard an older multipathd does not know prints nothing, so
/// its field is empty and the others keep their places.
/// Maps: WWID, failback, queueing, usable paths, path faults, revision, dm state.
const MAP_FIELDS: &str = "\"%w\u{1f}%F\u{1f}%Q\u{1f}%N\u{1f}%0\u{1f}%e\u{1f}%t\"";
/// Paths: device, checker, priority, host WWNN, target WWNN (iSCSI: IQN), host WWPN,
/// target WWPN, host adapter, LUN hex, marginal state.
const PATH_FIELDS: &str =
    "\"%d\u{1f}%c\u{1f}%p\u{1f}%N\u{1f}%n\u{1f}%R\u{1f}%r\u{1f}%a\u{1f}%L\u{1f}%M\"";

/// A raw line's `N` fields, or `None` when it has another number of them. A byte loop:
/// for fields this short, a searcher per field costs more than the scan.
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut slot = 0;
    let mut start = 0;
    for (i, b) in line.bytes().enumerate() {
        if b == 0x1f {
            // The separator is ASCII, so `start..i` lies on character boundaries.
            *out.get_mut(slot)? = line.get(start..i)?;
            slot += 1;
            start = i + 1;
        }
    }
    *out.get_mut(slot)? = line.get(start..)?;
    (slot + 1 == N).then_some(out)
}

/// Adds the raw listings' fields to maps read from the topology text.
fn complete(maps: &mut [Map], map_fields: &str, path_fields: &str) {
    let mut map_rows: HashMap<&str, [&str; 7]> = HashMap::with_capacity(maps.len());
    map_rows.extend(
        map_fields
            .lines()
            .filter_map(fields::<7>)
            .map(|f| (f[0], f)),
    );
    let path_count = maps.iter().map(|m| m.paths().count()).sum();
    let mut path_rows: HashMap<&str, [&str; 10]> = HashMap::with_capacity(path_count);
    path_rows.extend(
        path_fields
            .lines()
            .filter_map(fields::<10>)
            .map(|f| (f[0], f)),
    );
    for map in maps {
        if let Some(f) = map_rows.get(map.wwid.as_str()) {
            map.failback = known(f[1]);
            map.queueing = known(f[2]);
            map.usable_paths_reported = f[3].parse().ok();
            map.path_faults = f[4].parse().ok();
            map.revision = defined(f[5]);
            map.dm_state = (!f[6].is_empty()).then(|| MapDmState::from_word(f[6]));
        }
        for group in &mut map.groups {
            for path in &mut group.paths {
                let Some(f) = path.dev.as_deref().and_then(|dev| path_rows.get(dev)) else {
                    continue;
                };
                path.checker = known(f[1]);
                path.priority = f[2].parse().ok();
                path.host_wwnn = defined(f[3]);
                path.target_wwnn = defined(f[4]);
                path.host_wwpn = defined(f[5]);
                path.target_wwpn = defined(f[6]);
                path.host_adapter = defined(f[7]);
                path.lun_hex = known(f[8]);
                path.marginal = (!f[9].is_empty()).then(|| Marginal::from_word(f[9]));
            }
        }
    }
}

impl Multipathd {
    /// `show daemon`: `pid <pid> <state>`; answered without the daemon's big lock, so it
    /// tells whether the daemon is up even while it reconfigures.
    pub fn daemon_state(&mut self) -> Result<String, Error> {
        Ok(self.send("show daemon")?.trim().to_string())
    }

    /// `list maps`: the names of all maps.
    pub fn list_maps(&mut self) -> Result<Vec<MapName>, Error> {
        let command = "list maps";
        let table = parse_with(command, &self.send(command)?, parse::parse_table)?;
        let names = table.column("name");
        let uuids = table.column("uuid");
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| MapName {
                name: name.to_string(),
                wwid: uuids
                    .get(i)
                    .map_or_else(|| name.to_string(), |u| u.to_string()),
            })
            .collect())
    }

    /// `show topology`, verbatim.
    pub fn topology_text(&mut self) -> Result<String, Error> {
        self.send("show topology")
    }

    /// `show map <map> topology`, verbatim.
    pub fn map_topology_text(&mut self, map: &str) -> Result<String, Error> {
        self.send(&format!("show map {} topology", quote(map)))
    }

    /// Every map, from the topology text (what stock mpathcount reads; fast).
    pub fn topology(&mut self) -> Result<Topology, Error> {
        let command = "show topology";
        parse_with(command, &self.send(command)?, parse::parse_topology)
    }

    /// Every map with every field multipathd knows. Read from `show topology` and two raw
    /// listings of the fields the topology leaves out, rather than from `show maps json`:
    /// the same facts in a seventh of the bytes (1024 maps: 0.6 MB against 3.2 MB), so the
    /// daemon holds its lock for less time and we parse less.
    pub fn snapshot(&mut self) -> Result<Topology, Error> {
        let maps_command = format!("show maps raw format {MAP_FIELDS}");
        Ok(Topology {
            maps: self.maps_with_fields("show topology", &maps_command)?,
        })
    }

    /// One map as [`Multipathd::snapshot`] sees it; `None` when multipathd has no such map.
    pub fn map_snapshot(&mut self, map: &str) -> Result<Option<Map>, Error> {
        let topology_command = format!("show map {} topology", quote(map));
        let maps_command = format!("show map {} raw format {MAP_FIELDS}", quote(map));
        match self.maps_with_fields(&topology_command, &maps_command) {
            Ok(maps) => Ok(maps.into_iter().next()),
            Err(Error::Failed { .. } | Error::DeviceNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The maps of a topology listing, completed from a raw maps listing and the raw paths
    /// listing. Sent together: we parse the topology while multipathd lists the rest.
    fn maps_with_fields(
        &mut self,
        topology_command: &str,
        maps_command: &str,
    ) -> Result<Vec<Map>, Error> {
        let paths_command = format!("show paths raw format {PATH_FIELDS}");
        let mut replies = self.pipeline(&[topology_command, maps_command, &paths_command])?;
        let text = replies.next_reply()?;
        let mut maps = parse_with(topology_command, &text, parse::parse_topology)?.maps;
        let fields = replies.next_reply()?;
        let paths = replies.next_reply()?;
        complete(&mut maps, &fields, &paths);
        Ok(maps)
    }

    /// `add map <wwid>`: assemble the map from the paths multipathd knows.
    pub fn add_map(&mut self, map: &str) -> Result<(), Error> {
        self.send(&format!("add map {}", quote(map))).map(drop)
    }

    /// `remove map <map>`: flush it. An open map is refused with [`Error::MapInUse`]
    /// (0.9.8+; older daemons only say `fail`).
    pub fn remove_map(&mut self, map: &str) -> Result<(), Error> {
        self.send(&format!("remove map {}", quote(map))).map(drop)
    }

    /// `add path <dev>`: start monitoring a path device.
    pub fn add_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("add path {}", quote(dev))).map(drop)
    }

    /// `remove path <dev>`: stop monitoring a path device.
    pub fn remove_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("remove path {}", quote(dev))).map(drop)
    }

    /// `fail path <dev>`: fail it in the kernel and keep the checker from reinstating it.
    pub fn fail_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("fail path {}", quote(dev))).map(drop)
    }

    /// `reinstate path <dev>`.
    pub fn reinstate_path(&mut self, dev: &str) -> Result<(), Error> {
        self.send(&format!("reinstate path {}", quote(dev)))
            .map(drop)
    }

    /// `reconfigure`: re-read the configuration (asynchronous since 0.6.1).
    pub fn reconfigure(&mut self) -> Result<(), Error> {
        self.send("reconfigure").map(drop)
    }
}

/// A map's name and WWID as `list maps` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapName {
    pub name: String,
    pub wwid: String,
}

fn parse_with<T>(
    command: &str,
    reply: &str,
    parser: fn(&str) -> Result<T, ParseError>,
) -> Result<T, Error> {
    parser(reply).map_err(|source| Error::Parse {
        command: command.to_string(),
        source,
    })
}

/// Quotes an argument that multipathd's tokenizer would otherwise split or cut
/// (spaces, `#`, `!`, braces, quotes); `""` is its escaped quote.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || "\"#!{}".contains(c)) {
        return arg.to_string();
    }
    format!("\"{}\"", arg.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting() {
        assert_eq!(quote("3600a0b8"), "3600a0b8");
        assert_eq!(quote("%d %i"), "\"%d %i\"");
        assert_eq!(quote("a#b"), "\"a#b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote(""), "\"\"");
    }
}
