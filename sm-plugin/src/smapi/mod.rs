//! The SMAPIv1 calling convention (`sm-facts.md` §1): the methodCall in argv[1] in, exactly
//! one methodResponse on stdout out, exit status 0 whatever happened.
//!
//! - wrong argc or an unparsable call: fault 143 (`BadRequest`);
//! - a struct member `command=sr_get_driver_info`: the driver info, before anything else
//!   (no session, no host access);
//! - any other command: [`crate::drivers::dispatch`]; its error becomes a fault with its SR
//!   error code; a panic anywhere becomes fault 1200, never a torn stdout.

pub mod call;
pub mod response;

use crate::drivers::{self, Ctx, SrType, info};
use crate::errors::{Code, SrError};
use crate::host::log;
use call::Call;
use mpathutil::HostRoot;
use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};

/// Runs one call and returns the text for stdout.
pub fn respond(argv: &[OsString]) -> String {
    let program = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    guarded(|| handle(&program, argv))
}

/// Runs a handler and turns whatever it does into one response: its value, its fault, or
/// fault 1200 if it panics.
fn guarded(handler: impl FnOnce() -> Result<dxr::Value, SrError>) -> String {
    let outcome = panic::catch_unwind(AssertUnwindSafe(handler));
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("internal error: {what}");
            Err(SrError::with(
                Code::GenericException,
                format!("internal error in sm-rs: {what}"),
            ))
        }
    };
    match result {
        Ok(value) => response::success(value),
        Err(e) => {
            let mut e = e;
            e.opterr = e.opterr.map(|o| log::scrub(&o));
            response::fault(&e)
        }
    }
}

fn handle(program: &str, argv: &[OsString]) -> Result<dxr::Value, SrError> {
    let sr_type = SrType::from_program(program).ok_or_else(|| {
        SrError::with(
            Code::BadRequest,
            format!("run as {program:?}: the driver must be installed as LUNoISCSISR or LUNoHBASR"),
        )
    })?;
    let call = call::parse_argv(argv)?;
    if call.struct_command.as_deref() == Some("sr_get_driver_info")
        || call.command == "sr_get_driver_info"
    {
        return Ok(info::driver_info(sr_type));
    }
    let root = HostRoot::from_env();
    log::init(&root);
    protect_secrets(&call);
    tracing::info!(
        "{} {} sr={} vdi={} device_config: {}",
        sr_type.as_str(),
        call.command,
        call.sr_uuid.as_deref().unwrap_or("-"),
        call.vdi_uuid.as_deref().unwrap_or("-"),
        call::redacted(&call.device_config)
    );
    let ctx = Ctx::new(&call, sr_type, root, mpathutil::Config::from_env());
    let result = drivers::dispatch(&ctx);
    match &result {
        Ok(_) => tracing::info!("{} done", call.command),
        Err(e) => tracing::warn!("{} failed: {e}", call.command),
    }
    result
}

fn protect_secrets(call: &Call) {
    for (key, value) in &call.device_config {
        if call::is_secret_key(key) {
            log::protect(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_fault_1200_and_stdout_stays_one_response() {
        let _ = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let text = guarded(|| panic!("index out of bounds"));
        assert!(text.contains("<i4>1200</i4>"), "{text}");
        assert!(
            text.contains("internal error in sm-rs: index out of bounds"),
            "{text}"
        );
        assert_eq!(text.matches("<methodResponse>").count(), 1);
    }

    #[test]
    fn wrong_programs_and_calls_are_bad_requests() {
        let text = respond(&["/opt/xensource/sm/OtherSR".into(), "x".into()]);
        assert!(text.contains("<i4>143</i4>"), "{text}");
        let text = respond(&["LUNoHBASR".into()]);
        assert!(text.contains("<i4>143</i4>"), "{text}");
    }
}
