//! The driver's view of xapi: the session handed over in the call (`session_ref`), used on
//! the local xapi (`SM_RS_XAPI`, default the dom0 socket) for the few calls a driver makes,
//! each blocking on a small single-thread runtime. The session is xapi's: never renewed, never
//! logged out; it dies when the call returns.

use crate::errors::{Code, SrError};
use crate::smapi::call::StringMap;
use std::collections::BTreeMap;
use std::future::Future;
use xenapi::api::vdi::VdiRecord;
use xenapi::api::{field_equals, host, sr};
use xenapi::refs::{Host, Sr, Vdi};
use xenapi::{Client, Ref, Session, Value};

pub struct Xapi {
    runtime: tokio::runtime::Runtime,
    session: Session,
}

fn api_error(what: &str, e: xenapi::Error) -> SrError {
    SrError::with(Code::APIFailure, format!("{what}: {e}"))
}

impl crate::publish::Blocking for Xapi {
    fn session(&self) -> &Session {
        &self.session
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

impl Xapi {
    /// Adopts the call's session.
    pub fn adopt(session_ref: &str, subtask_of: Option<&str>) -> Result<Self, SrError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SrError::with(Code::SMGeneral, format!("cannot start a runtime: {e}")))?;
        let client = Client::from_env().map_err(|e| api_error("where is xapi", e))?;
        let mut session = Session::adopt(&client, Ref::new(session_ref));
        if let Some(task) = subtask_of {
            session = session.with_subtask_of(task);
        }
        Ok(Self { runtime, session })
    }

    fn block<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, xenapi::Error>>,
    ) -> Result<T, SrError> {
        self.runtime.block_on(f).map_err(|e| api_error(what, e))
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn host_other_config(&self, host: &str) -> Result<StringMap, SrError> {
        self.block(
            "host.get_other_config",
            host::get_other_config(&self.session, &Ref::<Host>::new(host)),
        )
    }

    pub fn sr_sm_config(&self, sr: &str) -> Result<StringMap, SrError> {
        self.block(
            "SR.get_sm_config",
            sr::get_sm_config(&self.session, &Ref::<Sr>::new(sr)),
        )
    }

    pub fn put_sr_sm_config(&self, sr: &str, key: &str, value: &str) -> Result<(), SrError> {
        self.block(
            "SR.add_to_sm_config",
            sr::put_sm_config(&self.session, &Ref::new(sr), key, value),
        )
    }

    pub fn all_srs(&self) -> Result<BTreeMap<Ref<Sr>, sr::SrRecord>, SrError> {
        self.block("SR.get_all_records", sr::get_all_records(&self.session))
    }

    /// The VDIs of an SR.
    pub fn vdis_of(&self, sr: &str) -> Result<BTreeMap<Ref<Vdi>, VdiRecord>, SrError> {
        self.block(
            "VDI.get_all_records_where",
            self.session.call_as(
                "VDI.get_all_records_where",
                vec![field_equals("SR", sr).into()],
            ),
        )
    }

    /// `VDI.db_introduce` with the size, so a LUN shows its capacity.
    #[allow(clippy::too_many_arguments)]
    pub fn introduce_vdi(
        &self,
        uuid: &str,
        name_label: &str,
        name_description: &str,
        sr: &str,
        location: &str,
        sm_config: &StringMap,
        size: i64,
    ) -> Result<String, SrError> {
        let empty = StringMap::new();
        self.block(
            "VDI.db_introduce",
            self.session.call_as::<String>(
                "VDI.db_introduce",
                vec![
                    uuid.into(),
                    name_label.into(),
                    name_description.into(),
                    sr.into(),
                    "user".into(),
                    false.into(),
                    false.into(),
                    (&empty).into(),
                    location.into(),
                    (&empty).into(),
                    sm_config.into(),
                    true.into(),
                    size.into(),
                    size.into(),
                ],
            ),
        )
    }

    pub fn forget_vdi(&self, vdi: &Ref<Vdi>) -> Result<(), SrError> {
        self.block(
            "VDI.db_forget",
            xenapi::api::vdi::db_forget(&self.session, vdi),
        )
    }

    /// The value of a XenAPI secret (`chappassword_secret`).
    pub fn secret_value(&self, uuid: &str) -> Result<String, SrError> {
        let secret_error =
            |e: xenapi::Error| SrError::with(Code::InvalidSecret, format!("secret {uuid}: {e}"));
        let secret: String = self
            .runtime
            .block_on(
                self.session
                    .call_as("secret.get_by_uuid", vec![uuid.into()]),
            )
            .map_err(secret_error)?;
        self.runtime
            .block_on(
                self.session
                    .call_as::<String>("secret.get_value", vec![Value::from(secret)]),
            )
            .map_err(secret_error)
    }
}
