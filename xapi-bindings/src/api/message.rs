//! `message`: alerts shown in XenCenter and `xe message-list`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Error;
use crate::refs::{Message, Ref};
use crate::session::Session;
use crate::wire::lenient;

/// The object class a message is about (`cls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageClass {
    Vm,
    Host,
    Sr,
    Pool,
    Vdi,
}

impl MessageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageClass::Vm => "VM",
            MessageClass::Host => "Host",
            MessageClass::Sr => "SR",
            MessageClass::Pool => "Pool",
            MessageClass::Vdi => "VDI",
        }
    }
}

/// Priorities as xapi names them: 1 is critical, 5 informational.
pub mod priority {
    pub const CRITICAL: i64 = 1;
    pub const MAJOR: i64 = 2;
    pub const WARNING: i64 = 3;
    pub const MINOR: i64 = 4;
    pub const INFORMATIONAL: i64 = 5;
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct MessageRecord {
    pub uuid: String,
    pub name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub priority: i64,
    pub cls: String,
    pub obj_uuid: String,
    /// `YYYYMMDDTHH:MM:SSZ`.
    pub timestamp: String,
    pub body: String,
}

pub async fn create(
    s: &Session,
    name: &str,
    priority: i64,
    cls: MessageClass,
    obj_uuid: &str,
    body: &str,
) -> Result<Ref<Message>, Error> {
    s.call_as(
        "message.create",
        vec![
            name.into(),
            priority.into(),
            cls.as_str().into(),
            obj_uuid.into(),
            body.into(),
        ],
    )
    .await
}

pub async fn get_all_records(s: &Session) -> Result<BTreeMap<Ref<Message>, MessageRecord>, Error> {
    s.call_as("message.get_all_records", vec![]).await
}
