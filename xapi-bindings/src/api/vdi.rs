//! `VDI`: a virtual disk. A SMAPIv1 driver makes and forgets the records itself
//! (`db_introduce`, `db_forget`); xapi then reads them back by uuid.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::api::StringMap;
use crate::error::Error;
use crate::refs::{Ref, Sr, Vdi};
use crate::session::Session;
use crate::wire::lenient;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct VdiRecord {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    #[serde(rename = "SR")]
    pub sr: Ref<Sr>,
    #[serde(rename = "type")]
    pub vdi_type: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub sharable: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub read_only: bool,
    pub location: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub managed: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub missing: bool,
    pub sm_config: StringMap,
    pub other_config: StringMap,
    pub xenstore_data: StringMap,
    #[serde(deserialize_with = "lenient::int")]
    pub virtual_size: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub physical_utilisation: i64,
    #[serde(deserialize_with = "lenient::bool")]
    pub is_a_snapshot: bool,
}

/// What `VDI.db_introduce` takes (its first twelve parameters, the form every API version
/// accepts; the later ones take their defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntroducedVdi {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    pub sr: Ref<Sr>,
    /// `user`, `system`, …
    pub vdi_type: String,
    pub sharable: bool,
    pub read_only: bool,
    pub other_config: StringMap,
    pub location: String,
    pub xenstore_data: StringMap,
    pub sm_config: StringMap,
}

pub async fn db_introduce(s: &Session, vdi: &IntroducedVdi) -> Result<Ref<Vdi>, Error> {
    s.call_as(
        "VDI.db_introduce",
        vec![
            (&vdi.uuid).into(),
            (&vdi.name_label).into(),
            (&vdi.name_description).into(),
            (&vdi.sr).into(),
            (&vdi.vdi_type).into(),
            vdi.sharable.into(),
            vdi.read_only.into(),
            (&vdi.other_config).into(),
            (&vdi.location).into(),
            (&vdi.xenstore_data).into(),
            (&vdi.sm_config).into(),
        ],
    )
    .await
}

pub async fn db_forget(s: &Session, vdi: &Ref<Vdi>) -> Result<(), Error> {
    s.call_void("VDI.db_forget", vec![vdi.into()]).await
}

pub async fn get_by_uuid(s: &Session, uuid: &str) -> Result<Ref<Vdi>, Error> {
    s.call_as("VDI.get_by_uuid", vec![uuid.into()]).await
}

pub async fn get_record(s: &Session, vdi: &Ref<Vdi>) -> Result<VdiRecord, Error> {
    s.call_as("VDI.get_record", vec![vdi.into()]).await
}

pub async fn get_all_records(s: &Session) -> Result<BTreeMap<Ref<Vdi>, VdiRecord>, Error> {
    s.call_as("VDI.get_all_records", vec![]).await
}
