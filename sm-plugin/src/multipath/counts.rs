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
//! refuses an existing key). The driver writes them at attach and removes them at detach
//! when no path agent runs; where one runs, the driver kicks it instead and the agent is the
//! one writer (see [`crate::agent`]). The calls themselves are in [`crate::publish`].

use crate::errors::{Code, SrError};
use crate::publish::{self, Blocking};
pub use crate::publish::{ISCSI_SESSIONS, MULTIPATHABLE, MULTIPATHED, mpath_key};
use mpathutil::health::path_count_value;
use mpathutil::highwater::Ledger;
use mpathutil::{HostRoot, Map, PathCounts};
use xenapi::Ref;
use xenapi::api::pbd::PbdRecord;
use xenapi::refs::Pbd;

fn api_error(what: &str, e: xenapi::Error) -> SrError {
    SrError::with(Code::APIFailure, format!("{what}: {e}"))
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
pub struct PbdKeys<'x, X: Blocking> {
    xapi: &'x X,
    pbd: Ref<Pbd>,
    record: PbdRecord,
}

impl<'x, X: Blocking> PbdKeys<'x, X> {
    /// `None` when the SR has no PBD on this host (nothing to publish to).
    pub fn find(xapi: &'x X, host: &str, sr: &str) -> Result<Option<Self>, SrError> {
        let found = xapi
            .block(publish::pbd_of(
                xapi.session(),
                &Ref::new(host),
                &Ref::new(sr),
            ))
            .map_err(|e| api_error("PBD.get_all_records_where", e))?;
        Ok(found.map(|(pbd, record)| Self { xapi, pbd, record }))
    }

    /// Sets a key unless it already has the value.
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), SrError> {
        let known_absent = match self.record.other_config.get(key) {
            Some(v) if v == value => return Ok(()),
            present => present.is_none(),
        };
        self.xapi
            .block(publish::set_key(
                self.xapi.session(),
                &self.pbd,
                key,
                value,
                known_absent,
            ))
            .map_err(|e| api_error("PBD.add_to_other_config", e))?;
        self.record
            .other_config
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Removes a key if present.
    pub fn remove(&mut self, key: &str) -> Result<(), SrError> {
        if self.record.other_config.remove(key).is_some() {
            self.xapi
                .block(publish::remove_key(self.xapi.session(), &self.pbd, key))
                .map_err(|e| api_error("PBD.remove_from_other_config", e))?;
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
