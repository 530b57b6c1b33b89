//! The driver's view of xapi: the session handed over in the call (`session_ref`), used on
//! the local xapi (`SM_RS_XAPI`, default the dom0 socket) for the few calls a driver makes,
//! each blocking on a small single-thread runtime. The session is xapi's: never renewed, never
//! logged out; it dies when the call returns.

use crate::errors::{Code, SrError};
use crate::smapi::call::StringMap;
use std::collections::BTreeMap;
use std::future::Future;
use xenapi::api::pbd::PbdRecord;
use xenapi::api::vdi::VdiRecord;
use xenapi::api::{field_equals, host, pbd, sr};
use xenapi::refs::{Host, Pbd, Sr, Vdi};
use xenapi::{Client, Ref, Session, Value};

/// What the driver needs of a VDI of a LUN-per-VDI SR (with its VBDs, which the bindings'
/// record leaves out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LunVdi {
    pub vdi_ref: String,
    pub uuid: String,
    pub location: String,
    pub managed: bool,
    pub sm_config: StringMap,
    /// How many VBDs (VMs' uses, plugged or not) it has.
    pub vbds: usize,
}

impl LunVdi {
    fn from_record(vdi_ref: String, record: &Value) -> Option<Self> {
        let fields = record.as_struct()?;
        let text = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(Self {
            vdi_ref,
            uuid: text("uuid"),
            location: text("location"),
            managed: fields
                .get("managed")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            sm_config: fields
                .get("sm_config")
                .and_then(Value::as_string_map)
                .unwrap_or_default(),
            vbds: fields
                .get("VBDs")
                .and_then(Value::as_array)
                .map_or(0, <[Value]>::len),
        })
    }
}

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

    /// The SR's size, used space and allocation.
    pub fn set_sr_sizes(
        &self,
        sr: &str,
        size: i64,
        used: i64,
        allocated: i64,
    ) -> Result<(), SrError> {
        self.block(
            "SR.set_physical_size",
            sr::set_sizes(&self.session, &Ref::new(sr), size, used, allocated),
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

    pub fn all_pbds(&self) -> Result<BTreeMap<Ref<Pbd>, PbdRecord>, SrError> {
        self.block("PBD.get_all_records", pbd::get_all_records(&self.session))
    }

    /// The VDIs of an SR with their VBD counts, by location order of xapi.
    pub fn lun_vdis(&self, sr: &str) -> Result<Vec<LunVdi>, SrError> {
        let records = self.block(
            "VDI.get_all_records_where",
            self.session.call(
                "VDI.get_all_records_where",
                vec![field_equals("SR", sr).into()],
            ),
        )?;
        Ok(records
            .as_struct()
            .into_iter()
            .flatten()
            .filter_map(|(r, record)| LunVdi::from_record(r.clone(), record))
            .collect())
    }

    /// `VDI.set_managed`: a LUN claimed (usable by VMs) or handed back.
    pub fn set_vdi_managed(&self, vdi: &str, managed: bool) -> Result<(), SrError> {
        self.block(
            "VDI.set_managed",
            self.session
                .call("VDI.set_managed", vec![vdi.into(), managed.into()]),
        )
        .map(drop)
    }

    /// A VDI's name and description (each left as it is when empty).
    pub fn set_vdi_names(&self, vdi: &str, label: &str, description: &str) -> Result<(), SrError> {
        for (field, value) in [("name_label", label), ("name_description", description)] {
            if value.is_empty() {
                continue;
            }
            let method = format!("VDI.set_{field}");
            self.block(
                &method,
                self.session.call(&method, vec![vdi.into(), value.into()]),
            )?;
        }
        Ok(())
    }

    /// Sets one key of a VDI's `sm_config` (`None` removes it).
    pub fn put_vdi_sm_config(
        &self,
        vdi: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), SrError> {
        self.block(
            "VDI.remove_from_sm_config",
            self.session
                .call("VDI.remove_from_sm_config", vec![vdi.into(), key.into()]),
        )?;
        if let Some(value) = value {
            self.block(
                "VDI.add_to_sm_config",
                self.session.call(
                    "VDI.add_to_sm_config",
                    vec![vdi.into(), key.into(), value.into()],
                ),
            )?;
        }
        Ok(())
    }

    /// `VDI.db_introduce` with the size, so a LUN shows its capacity; `managed` false lists
    /// the LUN without offering it to VMs (stock LUN-per-VDI's unclaimed LUN).
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
        managed: bool,
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
                    managed.into(),
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
