//! Path counts published into xapi, the contract XenCenter and mpathalert read
//! (`xapi-facts.md` §6, DESIGN.md rule 6):
//!
//! - PBD `other_config:mpath-<SCSIid>` = `[active, max]` for every LUN in use through a map
//!   on this host, `max` being the most paths the map has had (the host-wide ledger shared
//!   with `mpathutil` and the agent, so all three agree);
//! - PBD `other_config:multipathed` = `true` while the PBD is plugged with multipathing;
//! - PBD `other_config:iscsi_sessions` = the sessions to the SR's targets (iSCSI);
//! - SR `sm_config:multipathable` = `true` (XenCenter then shows the multipath section).
//!
//! Keys are written only when their value changes (remove, then add: `add_to_other_config`
//! refuses an existing key). The driver writes them at attach and removes them at detach;
//! the agent keeps them true in between.

use crate::drivers::xapi::Xapi;
use crate::errors::SrError;
use mpathutil::health::path_count_value;
use mpathutil::highwater::Ledger;
use mpathutil::{HostRoot, Map, PathCounts};
use xenapi::Ref;
use xenapi::api::pbd::PbdRecord;
use xenapi::refs::Pbd;

pub const MULTIPATHED: &str = "multipathed";
pub const ISCSI_SESSIONS: &str = "iscsi_sessions";
pub const MULTIPATHABLE: &str = "multipathable";

pub fn mpath_key(scsiid: &str) -> String {
    format!("mpath-{scsiid}")
}

/// `[active, max]` of a map now, recording its paths in the host's ledger.
pub fn value_of(root: &HostRoot, map: &Map) -> String {
    let counts = PathCounts::of(map);
    let max = match Ledger::new(root).record(&map.wwid, Some(counts.total)) {
        Ok(max) => max.unwrap_or(counts.total),
        Err(e) => {
            tracing::warn!("{e}");
            counts.total
        }
    };
    path_count_value(counts.active, max)
}

/// The PBD of this SR on this host, which the keys live on.
pub struct PbdKeys<'x> {
    xapi: &'x Xapi,
    pbd: Ref<Pbd>,
    record: PbdRecord,
}

impl<'x> PbdKeys<'x> {
    /// `None` when the SR has no PBD on this host (nothing to publish to).
    pub fn find(xapi: &'x Xapi, host: &str, sr: &str) -> Result<Option<Self>, SrError> {
        Ok(xapi
            .my_pbd(host, sr)?
            .map(|(pbd, record)| Self { xapi, pbd, record }))
    }

    /// Sets a key unless it already has the value.
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), SrError> {
        match self.record.other_config.get(key) {
            Some(v) if v == value => return Ok(()),
            Some(_) => self.xapi.put_pbd_key(&self.pbd, key, value)?,
            None => self.xapi.add_pbd_key(&self.pbd, key, value)?,
        }
        self.record
            .other_config
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Removes a key if present.
    pub fn remove(&mut self, key: &str) -> Result<(), SrError> {
        if self.record.other_config.remove(key).is_some() {
            self.xapi.remove_pbd_key(&self.pbd, key)?;
        }
        Ok(())
    }

    /// Every `mpath-*` key present.
    pub fn mpath_keys(&self) -> Vec<String> {
        self.record
            .other_config
            .keys()
            .filter(|k| k.starts_with("mpath-"))
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.record.other_config.get(key).map(String::as_str)
    }
}
