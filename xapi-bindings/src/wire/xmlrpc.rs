//! XML-RPC as xapi speaks it: `POST /` with a `methodCall`, answered by a `methodResponse`
//! whose one param is a `{Status, Value | ErrorDescription}` struct.
//!
//! Writing is done here, by hand, because xapi's form is stricter than a generic writer's:
//! strings are bare `<value>text</value>`, ints are decimal text, booleans `1`/`0`. Reading
//! goes through `dxr`, which takes every form a peer may send (typed or untyped strings,
//! `<int>`/`<i4>`/`<i8>`, `<nil/>`, whitespace). Its error texts quote the whole document,
//! which may hold secrets, so they are replaced by ours.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::error::{Error, Failure};
use crate::wire::Value;

/// What a plain XML-RPC `methodResponse` holds: a value, or a `<fault>`. A SMAPIv1 driver
/// answers this way; XenAPI itself never sends a fault.
#[derive(Clone, Debug, PartialEq)]
pub enum PlainResponse {
    Value(Value),
    Fault { code: i32, string: String },
}

pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        write_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

pub fn decode_call(xml: &str) -> Result<(String, Vec<Value>), Error> {
    let call = dxr::MethodCall::from_xml(&for_dxr(xml)).map_err(|_| malformed("methodCall"))?;
    Ok((
        call.name.into_owned(),
        call.params.into_iter().map(from_dxr).collect(),
    ))
}

/// The XenAPI answer: `{Status: "Success", Value}` or `{Status: "Failure", ErrorDescription}`.
pub fn encode_response(result: &Result<Value, Failure>) -> String {
    let envelope: Value = match result {
        Ok(v) => [("Status", Value::from("Success")), ("Value", v.clone())]
            .into_iter()
            .collect(),
        Err(f) => [
            ("Status", Value::from("Failure")),
            ("ErrorDescription", Value::from(f.description())),
        ]
        .into_iter()
        .collect(),
    };
    encode_plain_response(&envelope)
}

pub fn decode_response(xml: &str) -> Result<Result<Value, Failure>, Error> {
    let envelope = match decode_plain_response(xml)? {
        PlainResponse::Value(v) => v,
        PlainResponse::Fault { code, .. } => {
            return Err(Error::Protocol(format!(
                "XML-RPC fault {code} where XenAPI sends a Status"
            )));
        }
    };
    let Value::Struct(mut members) = envelope else {
        return Err(Error::Protocol(
            "XenAPI response is not a Status struct".into(),
        ));
    };
    match members.get("Status").and_then(Value::as_str) {
        Some("Success") => Ok(Ok(members.remove("Value").unwrap_or_else(Value::void))),
        Some("Failure") => {
            let description = members.remove("ErrorDescription").unwrap_or(Value::Nil);
            Ok(Err(Failure::from_description(&description)?))
        }
        Some(other) => Err(Error::Protocol(format!("unknown XenAPI Status {other:?}"))),
        None => Err(Error::Protocol("XenAPI response has no Status".into())),
    }
}

pub fn encode_plain_response(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<methodResponse><params><param>");
    write_value(&mut out, value);
    out.push_str("</param></params></methodResponse>");
    out
}

/// A fault with an `<int>` code, the only width xapi's driver-output parser takes.
pub fn encode_fault(code: i32, string: &str) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>{code}</int></value></member><member><name>faultString</name><value>"
    );
    escape_into(&mut out, string);
    out.push_str("</value></member></struct></value></fault></methodResponse>");
    out
}

pub fn decode_plain_response(xml: &str) -> Result<PlainResponse, Error> {
    let xml = for_dxr(xml);
    if let Ok(response) = dxr::MethodResponse::from_xml(&xml) {
        return Ok(PlainResponse::Value(from_dxr(response.value)));
    }
    match dxr::FaultResponse::from_xml(&xml) {
        Ok(f) => Ok(PlainResponse::Fault {
            code: f.fault.code(),
            string: f.fault.string().to_owned(),
        }),
        Err(_) => Err(malformed("methodResponse")),
    }
}

/// One `<value>` in xapi's own form.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) if s.is_empty() => out.push_str("<value/>"),
        // Readers (xapi's among them) drop whitespace-only text between elements, so such a
        // string would arrive empty; typed, it arrives whole.
        Value::String(s)
            if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) =>
        {
            out.push_str("<value><string>");
            escape_into(out, s);
            out.push_str("</string></value>");
        }
        Value::String(s) => {
            out.push_str("<value>");
            escape_into(out, s);
            out.push_str("</value>");
        }
        Value::Int(i) => {
            let _ = write!(out, "<value>{i}</value>");
        }
        Value::Int32(i) => {
            let _ = write!(out, "<value><i4>{i}</i4></value>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<value><boolean>{}</boolean></value>", u8::from(*b));
        }
        Value::Double(d) => {
            let _ = write!(out, "<value><double>{}</double></value>", format_double(*d));
        }
        Value::DateTime(s) => {
            out.push_str("<value><dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601></value>");
        }
        Value::Nil => out.push_str("<value><nil/></value>"),
        Value::Array(items) if items.is_empty() => {
            out.push_str("<value><array><data/></array></value>")
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array></value>");
        }
        Value::Struct(members) => {
            out.push_str("<value><struct>");
            for (name, member) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, member);
                out.push_str("</member>");
            }
            out.push_str("</struct></value>");
        }
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Close to C's `%.16g`, which xapi uses: integral values print without a fraction.
fn format_double(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e16 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

fn malformed(what: &str) -> Error {
    Error::Decode {
        what: "XML-RPC",
        detail: format!("not a well-formed XML-RPC {what}"),
    }
}

/// Brings a document to what dxr reads, the way xapi's reader sees it: dxr wants
/// `dateTime.iso8601` without a zone (xapi writes a trailing `Z`), and only `0`/`1` as
/// booleans, while xapi reads any boolean text other than `1` as false.
fn for_dxr(xml: &str) -> std::borrow::Cow<'_, str> {
    let mut xml: std::borrow::Cow<'_, str> = xml.into();
    if xml.contains("Z</dateTime.iso8601>") {
        xml = xml
            .replace("Z</dateTime.iso8601>", "</dateTime.iso8601>")
            .into();
    }
    if xml.contains("<boolean>") {
        let mut out = String::with_capacity(xml.len());
        let mut rest: &str = &xml;
        while let Some(start) = rest.find("<boolean>") {
            let after = &rest[start + "<boolean>".len()..];
            let Some(end) = after.find("</boolean>") else {
                break;
            };
            out.push_str(&rest[..start]);
            out.push_str(if after[..end].trim() == "1" {
                "<boolean>1"
            } else {
                "<boolean>0"
            });
            rest = &after[end..];
        }
        out.push_str(rest);
        xml = out.into();
    }
    xml
}

fn from_dxr(v: dxr::Value) -> Value {
    match v {
        dxr::Value::Integer(i) => Value::Int(i64::from(i)),
        dxr::Value::Long(i) => Value::Int(i),
        dxr::Value::Boolean(b) => Value::Bool(b),
        dxr::Value::String(s) => Value::String(s),
        dxr::Value::Double(d) => Value::Double(d),
        dxr::Value::DateTime(dt) => Value::DateTime(format!(
            "{:04}{:02}{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )),
        dxr::Value::Base64(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        dxr::Value::Struct(members) => Value::Struct(
            members
                .into_iter()
                .map(|(k, v)| (k, from_dxr(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
        dxr::Value::Array(items) => Value::Array(items.into_iter().map(from_dxr).collect()),
        dxr::Value::Nil => Value::Nil,
        // dxr's Value is non-exhaustive; a kind it adds later is not one xapi sends.
        _ => Value::Nil,
    }
}
