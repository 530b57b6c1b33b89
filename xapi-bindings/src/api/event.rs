//! `event.from`: changes since a token. Start with the empty token (every object comes back
//! as an `add`), then pass back the token each answer gives. The call blocks up to `timeout`
//! seconds, so it takes a connection of its own.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Error;
use crate::session::Session;
use crate::wire::{Value, lenient};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub valid_ref_counts: BTreeMap<String, i64>,
    pub token: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Event {
    #[serde(deserialize_with = "lenient::int")]
    pub id: i64,
    pub timestamp: String,
    pub class: String,
    /// `add`, `mod` or `del`.
    pub operation: String,
    #[serde(rename = "ref")]
    pub object: String,
    /// The object's record, as `get_record` gives it; absent for `del`.
    pub snapshot: Option<serde_json::Value>,
}

impl Event {
    /// The snapshot decoded as a typed record, e.g. `event.record::<PbdRecord>()`.
    pub fn record<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.snapshot
            .as_ref()
            .map(|s| Value::from_json(s.clone()).decode("event snapshot"))
            .transpose()
    }
}

/// `classes` are lower-case class names (`"pbd"`), `"*"`, or `"pbd/OpaqueRef:…"`.
pub async fn from(
    s: &Session,
    classes: &[&str],
    token: &str,
    timeout_seconds: f64,
) -> Result<Batch, Error> {
    let classes: Vec<Value> = classes.iter().map(|c| Value::from(*c)).collect();
    s.call_as(
        "event.from",
        vec![classes.into(), token.into(), timeout_seconds.into()],
    )
    .await
}
