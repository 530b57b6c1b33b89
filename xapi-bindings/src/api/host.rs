//! `host`: a server of the pool. Its multipath setting lives in the `multipathing` field
//! (API 2.10+) and, kept in step by xapi, in `other_config:multipathing`.

use serde::Deserialize;

use crate::api::StringMap;
use crate::error::Error;
use crate::refs::{Host, Pbd, Ref};
use crate::session::Session;
use crate::wire::lenient;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct HostRecord {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub hostname: String,
    pub address: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub enabled: bool,
    pub other_config: StringMap,
    #[serde(rename = "PBDs")]
    pub pbds: Vec<Ref<Pbd>>,
    /// Absent before API 2.10: then `other_config:multipathing` is the setting.
    #[serde(deserialize_with = "lenient::bool")]
    pub multipathing: bool,
    pub iscsi_iqn: String,
    #[serde(rename = "API_version_major", deserialize_with = "lenient::int")]
    pub api_version_major: i64,
    #[serde(rename = "API_version_minor", deserialize_with = "lenient::int")]
    pub api_version_minor: i64,
}

pub async fn get_all(s: &Session) -> Result<Vec<Ref<Host>>, Error> {
    s.call_as("host.get_all", vec![]).await
}

pub async fn get_by_uuid(s: &Session, uuid: &str) -> Result<Ref<Host>, Error> {
    s.call_as("host.get_by_uuid", vec![uuid.into()]).await
}

pub async fn get_record(s: &Session, host: &Ref<Host>) -> Result<HostRecord, Error> {
    s.call_as("host.get_record", vec![host.into()]).await
}

pub async fn get_other_config(s: &Session, host: &Ref<Host>) -> Result<StringMap, Error> {
    s.call_as("host.get_other_config", vec![host.into()]).await
}

pub async fn add_to_other_config(
    s: &Session,
    host: &Ref<Host>,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    s.call_void(
        "host.add_to_other_config",
        vec![host.into(), key.into(), value.into()],
    )
    .await
}

pub async fn remove_from_other_config(
    s: &Session,
    host: &Ref<Host>,
    key: &str,
) -> Result<(), Error> {
    s.call_void(
        "host.remove_from_other_config",
        vec![host.into(), key.into()],
    )
    .await
}

/// Sets one `other_config` key, remove-then-add.
pub async fn put_other_config(
    s: &Session,
    host: &Ref<Host>,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    s.put_map_key("host", "other_config", host.as_str(), key, value)
        .await
}

pub async fn get_multipathing(s: &Session, host: &Ref<Host>) -> Result<bool, Error> {
    s.call_as("host.get_multipathing", vec![host.into()]).await
}

pub async fn set_multipathing(s: &Session, host: &Ref<Host>, value: bool) -> Result<(), Error> {
    s.call_void("host.set_multipathing", vec![host.into(), value.into()])
        .await
}

pub async fn get_pbds(s: &Session, host: &Ref<Host>) -> Result<Vec<Ref<Pbd>>, Error> {
    s.call_as("host.get_PBDs", vec![host.into()]).await
}
