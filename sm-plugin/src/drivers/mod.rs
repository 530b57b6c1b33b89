//! The two SR types, LUN-per-VDI (each LUN of the SR is one VDI): `lunoiscsi` reaches its
//! LUNs through iSCSI sessions, `lunohba` through FC, SAS or offload-iSCSI HBAs. Both share
//! the SR commands ([`sr`]) and the VDI commands ([`vdi`]); what differs is how LUNs are
//! reached ([`iscsi`], [`hba`]).

pub mod claims;
pub mod hba;
pub mod info;
pub mod iscsi;
pub mod luns;
pub mod sr;
pub mod vdi;
pub mod xapi;

use crate::errors::{Code, SrError};
use crate::host::attached::{self, Attached};
use crate::multipath::activation::Activator;
use crate::multipath::setting::{self, Setting};
use crate::smapi::call::{Call, StringMap};
use dxr::Value;
use mpathutil::HostRoot;
use std::cell::OnceCell;
use xapi::Xapi;

/// The SR type, from the name the binary runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrType {
    Iscsi,
    Hba,
}

impl SrType {
    /// `LUNoISCSISR` → iSCSI, `LUNoHBASR` → HBA (xapi's type is the name minus `SR`,
    /// lower-cased).
    pub fn from_program(name: &str) -> Option<Self> {
        let base = name.rsplit('/').next().unwrap_or(name);
        match base {
            "LUNoISCSISR" => Some(Self::Iscsi),
            "LUNoHBASR" => Some(Self::Hba),
            _ => None,
        }
    }

    /// The SR type string xapi uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iscsi => "lunoiscsi",
            Self::Hba => "lunohba",
        }
    }
}

/// Everything one call works with.
pub struct Ctx<'c> {
    pub call: &'c Call,
    pub sr_type: SrType,
    pub root: HostRoot,
    pub activator: Activator,
    xapi: OnceCell<Xapi>,
    host_config: OnceCell<StringMap>,
}

impl<'c> Ctx<'c> {
    pub fn new(
        call: &'c Call,
        sr_type: SrType,
        root: HostRoot,
        multipathd: mpathutil::Config,
    ) -> Self {
        Self {
            call,
            sr_type,
            activator: Activator::new(root.clone(), multipathd),
            root,
            xapi: OnceCell::new(),
            host_config: OnceCell::new(),
        }
    }

    /// The session of the call, on the local xapi.
    pub fn xapi(&self) -> Result<&Xapi, SrError> {
        if let Some(x) = self.xapi.get() {
            return Ok(x);
        }
        let session = self
            .call
            .session_ref
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                SrError::with(
                    Code::APIFailure,
                    format!("{}: the call carries no session_ref", self.call.command),
                )
            })?;
        let xapi = Xapi::adopt(session, self.call.subtask_of.as_deref())?;
        Ok(self.xapi.get_or_init(|| xapi))
    }

    pub fn host_ref(&self) -> Result<&str, SrError> {
        self.required(self.call.host_ref.as_deref(), "host_ref")
    }

    pub fn sr_uuid(&self) -> Result<&str, SrError> {
        self.required(self.call.sr_uuid.as_deref(), "sr_uuid")
    }

    pub fn sr_ref(&self) -> Result<&str, SrError> {
        self.required(self.call.sr_ref.as_deref(), "sr_ref")
    }

    /// A member of the call this command needs: absent or empty is error 115, naming it.
    fn required<'v>(&self, value: Option<&'v str>, name: &str) -> Result<&'v str, SrError> {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            SrError::with(
                Code::ConfigParamsMissing,
                format!("{}: no {name}", self.call.command),
            )
        })
    }

    /// This host's `other_config`, read once per call.
    pub fn host_other_config(&self) -> Result<&StringMap, SrError> {
        if let Some(c) = self.host_config.get() {
            return Ok(c);
        }
        let config = self.xapi()?.host_other_config(self.host_ref()?)?;
        Ok(self.host_config.get_or_init(|| config))
    }

    /// The multipath setting for this call: from a generated config, else from the host.
    pub fn setting(&self) -> Result<Setting, SrError> {
        if setting::in_device_config(&self.call.device_config) {
            return setting::resolve(&self.call.device_config, &StringMap::new());
        }
        setting::resolve(&self.call.device_config, self.host_other_config()?)
    }

    /// What the SR's `sr_attach` on this host decided; `SRUnavailable` if it is not plugged.
    pub fn attached(&self) -> Result<Attached, SrError> {
        let sr = self.sr_uuid()?;
        attached::get(&self.root, sr)
            .map_err(|e| {
                SrError::with(
                    Code::SMGeneral,
                    format!("reading the state of SR {sr}: {e}"),
                )
            })?
            .ok_or_else(|| {
                SrError::with(
                    Code::SRUnavailable,
                    format!("SR {sr} is not attached on this host: plug its PBD first"),
                )
            })
    }

    pub fn is_master(&self) -> bool {
        self.call.is_sr_master()
    }
}

/// Runs one command.
pub fn dispatch(ctx: &Ctx<'_>) -> Result<Value, SrError> {
    let nil = |r: Result<(), SrError>| r.map(|()| Value::Nil);
    match ctx.call.command.as_str() {
        "sr_create" => nil(sr::create(ctx)),
        "sr_delete" => nil(sr::delete(ctx)),
        "sr_attach" => nil(sr::attach(ctx)),
        "sr_detach" => nil(sr::detach(ctx)),
        "sr_probe" => sr::probe(ctx),
        "sr_scan" => nil(sr::scan(ctx)),
        "sr_update" => nil(sr::update(ctx)),
        "sr_content_type" => Ok(Value::String("user".into())),
        "vdi_introduce" => vdi::introduce(ctx),
        "vdi_create" => vdi::create(ctx),
        "vdi_attach" => vdi::attach(ctx),
        "vdi_detach" => nil(vdi::detach(ctx)),
        "vdi_activate" => nil(vdi::activate(ctx)),
        "vdi_deactivate" => nil(Ok(())),
        "vdi_epoch_begin" => nil(vdi::epoch_begin(ctx)),
        "vdi_epoch_end" => nil(Ok(())),
        "vdi_generate_config" => vdi::generate_config(ctx),
        "vdi_attach_from_config" => vdi::attach_from_config(ctx),
        "vdi_detach_from_config" => nil(vdi::detach_from_config(ctx)),
        // SMAPIv1 commands a LUN-per-VDI SR has no meaning for: xapi does not send them
        // (we do not declare the capabilities); if it does, it hears "not supported".
        "vdi_delete"
        | "vdi_update"
        | "vdi_snapshot"
        | "vdi_clone"
        | "vdi_resize"
        | "vdi_resize_online"
        | "vdi_compose"
        | "vdi_enable_cbt"
        | "vdi_disable_cbt"
        | "vdi_data_destroy"
        | "vdi_list_changed_blocks" => Err(SrError::with(
            Code::Unimplemented,
            format!("{} is not supported by a LUN-per-VDI SR", ctx.call.command),
        )),
        other => Err(SrError::with(
            Code::BadRequest,
            format!("unknown command {other:?}"),
        )),
    }
}
