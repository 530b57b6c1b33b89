//! `SR`: a storage repository. `sm_config:multipathable` is what XenCenter reads.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::api::StringMap;
use crate::error::Error;
use crate::refs::{Host, Pbd, Ref, Sr, Vdi};
use crate::session::Session;
use crate::wire::lenient;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SrRecord {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    #[serde(rename = "type")]
    pub sr_type: String,
    pub content_type: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub shared: bool,
    #[serde(rename = "PBDs")]
    pub pbds: Vec<Ref<Pbd>>,
    #[serde(rename = "VDIs")]
    pub vdis: Vec<Ref<Vdi>>,
    #[serde(deserialize_with = "lenient::int")]
    pub physical_size: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub physical_utilisation: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub virtual_allocation: i64,
    pub other_config: StringMap,
    pub sm_config: StringMap,
}

/// What `SR.create` takes after the session.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSr {
    pub host: Ref<Host>,
    pub device_config: StringMap,
    pub physical_size: i64,
    pub name_label: String,
    pub name_description: String,
    pub sr_type: String,
    pub content_type: String,
    pub shared: bool,
    pub sm_config: StringMap,
}

pub async fn create(s: &Session, sr: &NewSr) -> Result<Ref<Sr>, Error> {
    s.call_as(
        "SR.create",
        vec![
            (&sr.host).into(),
            (&sr.device_config).into(),
            sr.physical_size.into(),
            (&sr.name_label).into(),
            (&sr.name_description).into(),
            (&sr.sr_type).into(),
            (&sr.content_type).into(),
            sr.shared.into(),
            (&sr.sm_config).into(),
        ],
    )
    .await
}

/// What `SR.introduce` takes: a record of an SR that exists on storage already.
#[derive(Clone, Debug, PartialEq)]
pub struct IntroducedSr {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub sr_type: String,
    pub content_type: String,
    pub shared: bool,
    pub sm_config: StringMap,
}

pub async fn introduce(s: &Session, sr: &IntroducedSr) -> Result<Ref<Sr>, Error> {
    s.call_as(
        "SR.introduce",
        vec![
            (&sr.uuid).into(),
            (&sr.name_label).into(),
            (&sr.name_description).into(),
            (&sr.sr_type).into(),
            (&sr.content_type).into(),
            sr.shared.into(),
            (&sr.sm_config).into(),
        ],
    )
    .await
}

/// Runs the driver's `sr_probe` on `host`; the answer is the driver's XML text, verbatim.
pub async fn probe(
    s: &Session,
    host: &Ref<Host>,
    device_config: &StringMap,
    sr_type: &str,
    sm_config: &StringMap,
) -> Result<String, Error> {
    s.call_as(
        "SR.probe",
        vec![
            host.into(),
            device_config.into(),
            sr_type.into(),
            sm_config.into(),
        ],
    )
    .await
}

pub async fn scan(s: &Session, sr: &Ref<Sr>) -> Result<(), Error> {
    s.call_void("SR.scan", vec![sr.into()]).await
}

pub async fn get_by_uuid(s: &Session, uuid: &str) -> Result<Ref<Sr>, Error> {
    s.call_as("SR.get_by_uuid", vec![uuid.into()]).await
}

pub async fn get_record(s: &Session, sr: &Ref<Sr>) -> Result<SrRecord, Error> {
    s.call_as("SR.get_record", vec![sr.into()]).await
}

pub async fn get_all_records(s: &Session) -> Result<BTreeMap<Ref<Sr>, SrRecord>, Error> {
    s.call_as("SR.get_all_records", vec![]).await
}

pub async fn get_type(s: &Session, sr: &Ref<Sr>) -> Result<String, Error> {
    s.call_as("SR.get_type", vec![sr.into()]).await
}

pub async fn get_sm_config(s: &Session, sr: &Ref<Sr>) -> Result<StringMap, Error> {
    s.call_as("SR.get_sm_config", vec![sr.into()]).await
}

pub async fn add_to_sm_config(
    s: &Session,
    sr: &Ref<Sr>,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    s.call_void(
        "SR.add_to_sm_config",
        vec![sr.into(), key.into(), value.into()],
    )
    .await
}

pub async fn remove_from_sm_config(s: &Session, sr: &Ref<Sr>, key: &str) -> Result<(), Error> {
    s.call_void("SR.remove_from_sm_config", vec![sr.into(), key.into()])
        .await
}

/// The sizes an SR driver's scan sets (stock `SR._db_update`).
pub async fn set_sizes(
    s: &Session,
    sr: &Ref<Sr>,
    physical_size: i64,
    physical_utilisation: i64,
    virtual_allocation: i64,
) -> Result<(), Error> {
    for (method, value) in [
        ("SR.set_virtual_allocation", virtual_allocation),
        ("SR.set_physical_size", physical_size),
        ("SR.set_physical_utilisation", physical_utilisation),
    ] {
        s.call_void(method, vec![sr.into(), value.into()]).await?;
    }
    Ok(())
}

/// Sets one `sm_config` key, remove-then-add.
pub async fn put_sm_config(s: &Session, sr: &Ref<Sr>, key: &str, value: &str) -> Result<(), Error> {
    s.put_map_key("SR", "sm_config", sr.as_str(), key, value)
        .await
}
