//! `pool`: there is exactly one, and its master is the SR master of every shared SR.

use serde::Deserialize;

use crate::api::StringMap;
use crate::error::Error;
use crate::refs::{Host, Pool, Ref};
use crate::session::Session;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PoolRecord {
    pub uuid: String,
    pub name_label: String,
    pub master: Ref<Host>,
    pub other_config: StringMap,
}

pub async fn get_all(s: &Session) -> Result<Vec<Ref<Pool>>, Error> {
    s.call_as("pool.get_all", vec![]).await
}

pub async fn get_master(s: &Session, pool: &Ref<Pool>) -> Result<Ref<Host>, Error> {
    s.call_as("pool.get_master", vec![pool.into()]).await
}

pub async fn get_record(s: &Session, pool: &Ref<Pool>) -> Result<PoolRecord, Error> {
    s.call_as("pool.get_record", vec![pool.into()]).await
}

/// The pool master, in one step.
pub async fn master(s: &Session) -> Result<Ref<Host>, Error> {
    let pools = get_all(s).await?;
    let pool = pools
        .first()
        .ok_or_else(|| Error::Protocol("xapi reports no pool".into()))?;
    get_master(s, pool).await
}
