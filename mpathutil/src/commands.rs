//! The multipathd commands sm-rs sends, typed.
//!
//! Map arguments are map names; with `user_friendly_names no` (as on XenServer) the name is
//! the WWID, which every multipathd version accepts (a WWID that is not also the name is
//! only understood from 0.9.9 on).

use crate::client::{Error, Multipathd};
use crate::model::{Hcil, Map, Topology};
use crate::parse::{self, ParseError};
use std::collections::HashMap;

/// What `show paths` / `show maps` in raw form give us that JSON lacks.
const PATH_ADDRESSES: &str = "show paths raw format \"%d %i\"";
const MAP_SIZES: &str = "show maps raw format \"%w %S\"";

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

    /// Every map with every field multipathd knows: `show maps json`, completed with each
    /// path's H:C:T:L and each map's size. A daemon without JSON (0.6.1 and older) is read
    /// through its topology text instead.
    pub fn snapshot(&mut self) -> Result<Topology, Error> {
        let command = "show maps json";
        let mut topology = match self.send(command) {
            Ok(reply) => parse_with(command, &reply, parse::parse_maps_json)?,
            Err(Error::UnknownCommand { .. }) => return self.topology(),
            Err(e) => return Err(e),
        };
        self.complete(&mut topology.maps)?;
        Ok(topology)
    }

    /// One map as [`Multipathd::snapshot`] sees it; `None` when multipathd has no such map.
    pub fn map_snapshot(&mut self, map: &str) -> Result<Option<Map>, Error> {
        let command = format!("show map {} json", quote(map));
        let mut found = match self.send(&command) {
            Ok(reply) => parse_with(&command, &reply, parse::parse_map_json)?,
            Err(Error::Failed { .. } | Error::DeviceNotFound { .. }) => return Ok(None),
            Err(Error::UnknownCommand { .. }) => {
                return Ok(self
                    .topology()?
                    .maps
                    .into_iter()
                    .find(|m| m.name == map || m.wwid == map));
            }
            Err(e) => return Err(e),
        };
        self.complete(std::slice::from_mut(&mut found))?;
        Ok(Some(found))
    }

    fn complete(&mut self, maps: &mut [Map]) -> Result<(), Error> {
        let reply = self.send(PATH_ADDRESSES)?;
        let addresses: HashMap<&str, Hcil> = reply
            .lines()
            .filter_map(|line| {
                let (dev, hcil) = line.split_once(' ')?;
                Some((dev, Hcil::parse(hcil.trim())?))
            })
            .collect();
        let reply = self.send(MAP_SIZES)?;
        let sizes: HashMap<&str, &str> = reply
            .lines()
            .filter_map(|line| line.split_once(' '))
            .collect();
        for map in maps {
            map.size = sizes.get(map.wwid.as_str()).map(|size| size.trim().into());
            for group in &mut map.groups {
                for path in &mut group.paths {
                    path.hcil = path
                        .dev
                        .as_deref()
                        .and_then(|dev| addresses.get(dev))
                        .copied();
                }
            }
        }
        Ok(())
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
