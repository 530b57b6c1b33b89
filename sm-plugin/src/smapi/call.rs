//! The methodCall xapi puts in argv[1], read into a typed [`Call`] (`sm-facts.md` §1.2, §2.1).
//!
//! Exactly one argument; one `<param>` holding a struct with `device_config`. Anything else
//! is `BadRequest` (143), as stock answers it. dxr's own error text quotes the whole input,
//! which may hold a CHAP secret, so it is never shown: our text says what was wrong and how
//! long the input was.

use crate::errors::{Code, SrError};
use dxr::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// A string → string map from the call (`device_config`, `vdi_sm_config`, …).
pub type StringMap = BTreeMap<String, String>;

/// One SMAPIv1 call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    /// The method name: the command.
    pub command: String,
    /// The struct member `command`; `sr_get_driver_info` there is answered before anything
    /// else, as stock's `run_statics` does.
    pub struct_command: Option<String>,
    pub args: Vec<String>,
    pub device_config: StringMap,
    pub host_ref: Option<String>,
    pub session_ref: Option<String>,
    pub sr_ref: Option<String>,
    pub sr_uuid: Option<String>,
    pub sr_sm_config: StringMap,
    pub vdi_ref: Option<String>,
    pub vdi_uuid: Option<String>,
    pub vdi_location: Option<String>,
    pub vdi_sm_config: StringMap,
    pub vdi_on_boot: Option<String>,
    pub new_uuid: Option<String>,
    pub subtask_of: Option<String>,
}

impl Call {
    /// A `device_config` key, if present and not empty.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.device_config
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `device_config:SRmaster` as xapi adds it.
    pub fn is_sr_master(&self) -> bool {
        self.config("SRmaster") == Some("true")
    }

    /// The first of `args`, e.g. `writable` of `vdi_attach`.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

fn bad_request(detail: impl Into<String>) -> SrError {
    SrError::with(Code::BadRequest, detail)
}

/// Parses the process arguments (argv[0] included).
pub fn parse_argv(argv: &[OsString]) -> Result<Call, SrError> {
    if argv.len() != 2 {
        return Err(bad_request(format!(
            "expected exactly one argument, the XML-RPC methodCall; got {}",
            argv.len().saturating_sub(1)
        )));
    }
    let text = argv[1]
        .to_str()
        .ok_or_else(|| bad_request("the methodCall is not valid UTF-8"))?;
    parse(text)
}

/// Parses a methodCall document.
pub fn parse(text: &str) -> Result<Call, SrError> {
    let call = dxr::MethodCall::from_xml(text).map_err(|_| {
        // Not dxr's message: it quotes the input.
        bad_request(format!(
            "argv[1] ({} bytes) is not an XML-RPC methodCall",
            text.len()
        ))
    })?;
    let [Value::Struct(members)] = call.params.as_slice() else {
        return Err(bad_request(format!(
            "{}: expected one struct parameter, got {}",
            call.name,
            call.params.len()
        )));
    };
    let command = call.name.trim().to_string();
    if command.is_empty() {
        return Err(bad_request("the methodName is empty"));
    }
    let string = |key: &str| -> Result<Option<String>, SrError> {
        match members.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_request(format!("{command}: {key} is not a string"))),
        }
    };
    let map = |key: &str| -> Result<StringMap, SrError> {
        match members.get(key) {
            None | Some(Value::Nil) => Ok(StringMap::new()),
            // xapi writes an empty struct as `<value/>`, which reads as "".
            Some(Value::String(s)) if s.is_empty() => Ok(StringMap::new()),
            Some(Value::Struct(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Integer(i) => Ok((k.clone(), i.to_string())),
                    Value::Boolean(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(bad_request(format!("{command}: {key}:{k} is not a string"))),
                })
                .collect(),
            Some(_) => Err(bad_request(format!("{command}: {key} is not a struct"))),
        }
    };
    if !members.contains_key("device_config") {
        return Err(bad_request(format!(
            "{command}: the call has no device_config"
        )));
    }
    let args = match members.get("args") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Integer(i) => Ok(i.to_string()),
                #[allow(unreachable_patterns)]
                _ => Err(bad_request(format!(
                    "{command}: an argument is not a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad_request(format!("{command}: args is not an array"))),
    };
    Ok(Call {
        struct_command: string("command")?,
        args,
        device_config: map("device_config")?,
        host_ref: string("host_ref")?,
        session_ref: string("session_ref")?,
        sr_ref: string("sr_ref")?,
        sr_uuid: string("sr_uuid")?,
        sr_sm_config: map("sr_sm_config")?,
        vdi_ref: string("vdi_ref")?,
        vdi_uuid: string("vdi_uuid")?,
        vdi_location: string("vdi_location")?,
        vdi_sm_config: map("vdi_sm_config")?,
        vdi_on_boot: string("vdi_on_boot")?,
        new_uuid: string("new_uuid")?,
        subtask_of: string("subtask_of")?,
        command,
    })
}

/// The keys whose values are never logged (stock masks the same, `util.py`).
pub fn is_secret_key(key: &str) -> bool {
    key.contains("password")
}

/// `device_config` for a log line: secrets masked.
pub fn redacted(config: &StringMap) -> String {
    config
        .iter()
        .map(|(k, v)| {
            if is_secret_key(k) {
                format!("{k}=******")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What xapi sends: untyped strings, `<value/>` for "", `<data/>` for no args.
    const XAPI_STYLE: &str = "<methodCall><methodName>sr_attach</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:h</value></member><member><name>command</name><value>sr_attach</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct><member><name>SRmaster</name><value>true</value></member><member><name>target</name><value>192.0.2.1,192.0.2.2</value></member><member><name>chappassword</name><value>s3cr&amp;t</value></member></struct></value></member><member><name>session_ref</name><value>OpaqueRef:s</value></member><member><name>sr_uuid</name><value/></member></struct></value></param></params></methodCall>";

    #[test]
    fn reads_xapi_style_calls() {
        let call = parse(XAPI_STYLE).unwrap();
        assert_eq!(call.command, "sr_attach");
        assert_eq!(call.struct_command.as_deref(), Some("sr_attach"));
        assert!(call.args.is_empty());
        assert!(call.is_sr_master());
        assert_eq!(call.config("chappassword"), Some("s3cr&t"));
        assert_eq!(call.session_ref.as_deref(), Some("OpaqueRef:s"));
        assert_eq!(call.sr_uuid.as_deref(), Some(""));
        assert!(!redacted(&call.device_config).contains("s3cr"));
    }

    #[test]
    fn bad_requests_never_quote_the_input() {
        let e = parse("<methodCall><methodName>x</methodName><params><param><value><struct><member><name>chappassword</name><value>hunter2").unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
        assert!(!e.fault_string().contains("hunter2"), "{e}");
        let no_dconf = "<methodCall><methodName>sr_attach</methodName><params><param><value><struct><member><name>command</name><value>sr_attach</value></member></struct></value></param></params></methodCall>";
        assert_eq!(parse(no_dconf).unwrap_err().code, Code::BadRequest);
        assert_eq!(
            parse_argv(&["LUNoHBASR".into()]).unwrap_err().code,
            Code::BadRequest
        );
        assert_eq!(
            parse_argv(&["a".into(), "b".into(), "c".into()])
                .unwrap_err()
                .code,
            Code::BadRequest
        );
    }
}
