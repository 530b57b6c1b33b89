//! `PBD`: the link of one SR to one host, with the SR's `device_config` on that host and the
//! `other_config` keys where path health is published (`multipathed`, `mpath-<SCSIid>`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::api::{StringMap, field_equals};
use crate::error::Error;
use crate::refs::{Host, Pbd, Ref, Sr};
use crate::session::Session;
use crate::wire::{Value, lenient};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PbdRecord {
    pub uuid: String,
    pub host: Ref<Host>,
    #[serde(rename = "SR")]
    pub sr: Ref<Sr>,
    pub device_config: StringMap,
    #[serde(deserialize_with = "lenient::bool")]
    pub currently_attached: bool,
    pub other_config: StringMap,
}

/// What `PBD.create` takes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPbd {
    pub host: Ref<Host>,
    pub sr: Ref<Sr>,
    pub device_config: StringMap,
    pub other_config: StringMap,
}

pub async fn create(s: &Session, pbd: &NewPbd) -> Result<Ref<Pbd>, Error> {
    let record: Value = [
        ("host", Value::from(&pbd.host)),
        ("SR", Value::from(&pbd.sr)),
        ("device_config", Value::from(&pbd.device_config)),
        ("other_config", Value::from(&pbd.other_config)),
    ]
    .into_iter()
    .collect();
    s.call_as("PBD.create", vec![record]).await
}

pub async fn get_by_uuid(s: &Session, uuid: &str) -> Result<Ref<Pbd>, Error> {
    s.call_as("PBD.get_by_uuid", vec![uuid.into()]).await
}

pub async fn get_record(s: &Session, pbd: &Ref<Pbd>) -> Result<PbdRecord, Error> {
    s.call_as("PBD.get_record", vec![pbd.into()]).await
}

pub async fn get_all_records(s: &Session) -> Result<BTreeMap<Ref<Pbd>, PbdRecord>, Error> {
    s.call_as("PBD.get_all_records", vec![]).await
}

/// `PBD.get_all_records_where`, e.g. with [`of_host_and_sr`].
pub async fn get_all_records_where(
    s: &Session,
    expr: &str,
) -> Result<BTreeMap<Ref<Pbd>, PbdRecord>, Error> {
    s.call_as("PBD.get_all_records_where", vec![expr.into()])
        .await
}

/// The expression that selects the PBD of one SR on one host.
pub fn of_host_and_sr(host: &Ref<Host>, sr: &Ref<Sr>) -> String {
    format!(
        "{} and {}",
        field_equals("host", host.as_str()),
        field_equals("SR", sr.as_str())
    )
}

pub async fn get_device_config(s: &Session, pbd: &Ref<Pbd>) -> Result<StringMap, Error> {
    s.call_as("PBD.get_device_config", vec![pbd.into()]).await
}

/// Needs the SM session of the PBD's SR: any other gets `PERMISSION_DENIED`.
pub async fn set_device_config(
    s: &Session,
    pbd: &Ref<Pbd>,
    value: &StringMap,
) -> Result<(), Error> {
    s.call_void("PBD.set_device_config", vec![pbd.into(), value.into()])
        .await
}

pub async fn get_other_config(s: &Session, pbd: &Ref<Pbd>) -> Result<StringMap, Error> {
    s.call_as("PBD.get_other_config", vec![pbd.into()]).await
}

pub async fn add_to_other_config(
    s: &Session,
    pbd: &Ref<Pbd>,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    s.call_void(
        "PBD.add_to_other_config",
        vec![pbd.into(), key.into(), value.into()],
    )
    .await
}

pub async fn remove_from_other_config(s: &Session, pbd: &Ref<Pbd>, key: &str) -> Result<(), Error> {
    s.call_void("PBD.remove_from_other_config", vec![pbd.into(), key.into()])
        .await
}

/// Sets one `other_config` key, remove-then-add.
pub async fn put_other_config(
    s: &Session,
    pbd: &Ref<Pbd>,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    s.put_map_key("PBD", "other_config", pbd.as_str(), key, value)
        .await
}

pub async fn plug(s: &Session, pbd: &Ref<Pbd>) -> Result<(), Error> {
    s.call_void("PBD.plug", vec![pbd.into()]).await
}

pub async fn unplug(s: &Session, pbd: &Ref<Pbd>) -> Result<(), Error> {
    s.call_void("PBD.unplug", vec![pbd.into()]).await
}
