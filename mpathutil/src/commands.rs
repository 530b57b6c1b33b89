//! The multipathd commands sm-rs sends, typed.
//!
//! Map arguments are map names; with `user_friendly_names no` (as on XenServer) the name is
//! the WWID, which every multipathd version accepts (a WWID that is not also the name is
//! only understood from 0.9.9 on).

use crate::client::{Error, Multipathd};
use crate::model::{Map, Topology};
use crate::parse::{self, ParseError};
use std::collections::HashMap;

/// One command's reply, or why there is none.
type Reply = Result<String, Error>;

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

    /// Every map with every field multipathd knows: `show maps json` for the states,
    /// priorities and WWNs, `show topology` for what the JSON lacks (H:C:T:L, size), sent
    /// together. Each is the other's fallback: a daemon that fails one listing (or has no
    /// JSON) still gives every map and path from the other, never an empty answer.
    pub fn snapshot(&mut self) -> Result<Topology, Error> {
        let (json, text) = self.both("show maps json", "show topology")?;
        let maps = merge(
            json.and_then(|reply| parse_with("show maps json", &reply, parse::parse_maps_json)),
            text.and_then(|reply| parse_with("show topology", &reply, parse::parse_topology)),
        )?;
        Ok(Topology { maps: maps.maps })
    }

    /// One map as [`Multipathd::snapshot`] sees it; `None` when multipathd has no such map.
    /// `show map X json` and `show map X topology` exist on every daemon we serve (0.4.9-xs
    /// has no `show map X raw format`).
    pub fn map_snapshot(&mut self, map: &str) -> Result<Option<Map>, Error> {
        let json_command = format!("show map {} json", quote(map));
        let text_command = format!("show map {} topology", quote(map));
        let (json, text) = self.both(&json_command, &text_command)?;
        let missing =
            |r: &Reply| matches!(r, Err(Error::Failed { .. } | Error::DeviceNotFound { .. }));
        if missing(&json)
            && (missing(&text) || text.as_ref().is_ok_and(|t| parse::is_empty_listing(t)))
        {
            return Ok(None);
        }
        let json = json.and_then(|reply| {
            parse_with(&json_command, &reply, parse::parse_map_json)
                .map(|m| Topology { maps: vec![m] })
        });
        let text = text.and_then(|reply| parse_with(&text_command, &reply, parse::parse_topology));
        Ok(merge(json, text)?.maps.into_iter().next())
    }

    /// Sends two listings at once and returns both replies, each its own result.
    fn both(&mut self, first: &str, second: &str) -> Result<(Reply, Reply), Error> {
        let mut replies = self.pipeline(&[first, second])?;
        let one = replies.next_reply();
        let two = replies.next_reply();
        Ok((one, two))
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

/// The JSON model completed from the topology text (H:C:T:L by device, size by map), or
/// whichever of the two could be read. With neither, the JSON's error, which names the
/// command; the text's error is the fallback's and says less.
fn merge(json: Result<Topology, Error>, text: Result<Topology, Error>) -> Result<Topology, Error> {
    let (mut json, text) = match (json, text) {
        (Ok(json), Ok(text)) => (json, text),
        (Ok(json), Err(_)) => return Ok(json),
        (Err(_), Ok(text)) => return Ok(text),
        (Err(e), Err(_)) => return Err(e),
    };
    let sizes: HashMap<&str, &Map> = text.maps.iter().map(|m| (m.wwid.as_str(), m)).collect();
    let hcils: HashMap<&str, _> = text
        .maps
        .iter()
        .flat_map(Map::paths)
        .filter_map(|p| Some((p.dev.as_deref()?, p.hcil?)))
        .collect();
    for map in &mut json.maps {
        if let Some(from_text) = sizes.get(map.wwid.as_str()) {
            map.size.clone_from(&from_text.size);
        }
        for group in &mut map.groups {
            for path in &mut group.paths {
                path.hcil = path.dev.as_deref().and_then(|d| hcils.get(d).copied());
            }
        }
    }
    Ok(json)
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
