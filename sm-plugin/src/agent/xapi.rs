//! The agent's own link to xapi: a session it logs in itself (re-login on `SESSION_INVALID`
//! is the session's), a deadline on every call, and what this host's PBDs of our SR types
//! hold, read in two calls.

use crate::publish::{MPATH_BOOT, MPATH_PREFIX, MULTIPATHED};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use xenapi::api::pbd::PbdRecord;
use xenapi::api::sr::SrRecord;
use xenapi::api::{field_equals, host};
use xenapi::refs::{Host, Pbd, Sr};
use xenapi::{Client, Ref, Session};

/// The SR types whose PBD keys are ours (stock mpathcount keeps those of its own types).
pub const OUR_SR_TYPES: [&str; 2] = ["lunoiscsi", "lunohba"];

/// Why a call did not land.
#[derive(Debug)]
pub enum CallError {
    /// xapi did not answer in time, or could not be reached: worth retrying.
    Unreachable(String),
    /// xapi answered with an error.
    Failure(xenapi::Failure),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "xapi unreachable: {e}"),
            Self::Failure(e) => write!(f, "{e}"),
        }
    }
}

/// One of this host's PBDs of our SR types (kept in the agent's state, so an agent started
/// while xapi is away still knows where its writes go).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PbdView {
    pub pbd: Ref<Pbd>,
    pub sr: Ref<Sr>,
    pub sr_uuid: String,
    pub sr_name: String,
    pub sr_type: String,
    /// Our keys there (`mpath-*`, `multipathed`), as xapi has them.
    pub keys: BTreeMap<String, String>,
    /// The LUNs the SR names the way stock mpathcount finds them.
    pub named_luns: Vec<String>,
}

/// This host as xapi knows it.
#[derive(Debug, Clone)]
pub struct HostView {
    pub host: Ref<Host>,
    pub uuid: String,
    pub name: String,
}

pub fn is_our_key(key: &str) -> bool {
    key.starts_with(MPATH_PREFIX) || key == MULTIPATHED
}

pub struct XapiLink {
    client: Client,
    timeout: Duration,
    session: Option<Arc<Session>>,
    host_uuid: String,
    host: Option<HostView>,
}

impl XapiLink {
    pub fn new(client: Client, host_uuid: String, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            session: None,
            host_uuid,
            host: None,
        }
    }

    /// This host's uuid (from the inventory), known before xapi ever answered.
    pub fn host_uuid(&self) -> &str {
        &self.host_uuid
    }

    pub fn host(&self) -> Option<&HostView> {
        self.host.as_ref()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A call with the deadline.
    pub async fn bounded<T>(
        timeout: Duration,
        f: impl Future<Output = Result<T, xenapi::Error>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(timeout, f).await {
            Err(_) => Err(CallError::Unreachable(format!(
                "no answer within {timeout:?}"
            ))),
            Ok(Err(xenapi::Error::Failure(f))) => Err(CallError::Failure(f)),
            Ok(Err(e)) => Err(CallError::Unreachable(e.to_string())),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// The session, logging in if there is none.
    pub async fn session(&mut self) -> Result<Arc<Session>, CallError> {
        if let Some(s) = &self.session {
            return Ok(Arc::clone(s));
        }
        let session = Self::bounded(
            self.timeout,
            Session::login_with_password(&self.client, "root", "", "1.0", "sm-mpath-agent"),
        )
        .await?;
        let session = Arc::new(session);
        self.session = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forgets the session (xapi restarted: its sessions are gone with it).
    pub fn drop_session(&mut self) {
        self.session = None;
    }

    /// This host, found by its `INSTALLATION_UUID`.
    pub async fn host_view(&mut self) -> Result<HostView, CallError> {
        if let Some(h) = &self.host {
            return Ok(h.clone());
        }
        let session = self.session().await?;
        let host =
            Self::bounded(self.timeout, host::get_by_uuid(&session, &self.host_uuid)).await?;
        let record = Self::bounded(self.timeout, host::get_record(&session, &host)).await?;
        let view = HostView {
            host,
            uuid: self.host_uuid.clone(),
            name: record.name_label,
        };
        self.host = Some(view.clone());
        Ok(view)
    }

    /// This host's `mpath-boot` and `multipathed`, as xapi has them now.
    pub async fn host_keys(&mut self) -> Result<BTreeMap<String, String>, CallError> {
        let host = self.host_view().await?;
        let session = self.session().await?;
        let config =
            Self::bounded(self.timeout, host::get_other_config(&session, &host.host)).await?;
        Ok(config
            .into_iter()
            .filter(|(k, _)| k == MPATH_BOOT || k == MULTIPATHED)
            .collect())
    }

    /// This host's PBDs of our SR types, with our keys as xapi has them now.
    pub async fn pbds(&mut self) -> Result<Vec<PbdView>, CallError> {
        let host = self.host_view().await?;
        let session = self.session().await?;
        let pbds: BTreeMap<Ref<Pbd>, PbdRecord> = Self::bounded(
            self.timeout,
            session.call_as(
                "PBD.get_all_records_where",
                vec![field_equals("host", host.host.as_str()).into()],
            ),
        )
        .await?;
        let types = OUR_SR_TYPES
            .iter()
            .map(|t| field_equals("type", t))
            .collect::<Vec<_>>()
            .join(" or ");
        let srs: BTreeMap<Ref<Sr>, SrRecord> = Self::bounded(
            self.timeout,
            session.call_as("SR.get_all_records_where", vec![types.into()]),
        )
        .await?;
        Ok(pbds
            .into_iter()
            .filter_map(|(pbd, record)| {
                let sr = srs.get(&record.sr)?;
                Some(PbdView {
                    pbd,
                    sr: record.sr.clone(),
                    sr_uuid: sr.uuid.clone(),
                    sr_name: sr.name_label.clone(),
                    sr_type: sr.sr_type.clone(),
                    keys: record
                        .other_config
                        .iter()
                        .filter(|(k, _)| is_our_key(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    named_luns: crate::publish::scsiids_named(&sr.sm_config, &record.device_config),
                })
            })
            .collect())
    }
}
