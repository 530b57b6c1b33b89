//! The one methodResponse a driver prints: a value, `<nil/>`, or a fault whose code is an
//! `<i4>` (xapi reads only `int`/`i4`). Printed with one trailing newline, as Python's
//! `print` does in stock sm.

use crate::errors::SrError;
use dxr::{Fault, FaultResponse, MethodResponse, Value};

/// A success carrying `value` (`Value::Nil` for commands that return nothing).
pub fn success(value: Value) -> String {
    let response = MethodResponse { value };
    match response.to_xml() {
        Ok(xml) => xml + "\n",
        // Only a value we built ourselves can get here, and every one we build serialises;
        // stay on the protocol anyway.
        Err(_) => fault_xml(1200, "sm-rs could not serialise its answer"),
    }
}

/// A fault for an SR error.
pub fn fault(error: &SrError) -> String {
    fault_xml(error.code.value(), &error.fault_string())
}

fn fault_xml(code: i32, string: &str) -> String {
    let response = FaultResponse {
        fault: Fault::new(code, string.to_string()),
    };
    match response.to_xml() {
        Ok(xml) => xml + "\n",
        Err(_) => format!(
            "<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>{code}</i4></value></member><member><name>faultString</name><value><string>sm-rs could not serialise a fault</string></value></member></struct></value></fault></methodResponse>\n"
        ),
    }
}

/// A struct value from `(name, value)` pairs.
pub fn structure<'a>(members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Struct(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A struct of strings.
pub fn string_struct<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    structure(
        members
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.to_string()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;

    #[test]
    fn nil_value_and_fault_shapes() {
        assert_eq!(
            success(Value::Nil),
            "<methodResponse><params><param><value><nil/></value></param></params></methodResponse>\n"
                .replace("<nil/>", &dxr_nil())
        );
        let f = fault(&SrError::with(Code::VDIInUse, "map 3600 is open"));
        assert!(f.contains("<i4>24</i4>"), "{f}");
        assert!(
            f.contains("The VDI is currently in use [opterr=map 3600 is open]"),
            "{f}"
        );
        assert!(f.ends_with("</methodResponse>\n"));
    }

    fn dxr_nil() -> String {
        // dxr writes empty elements expanded or not depending on its writer; accept its form.
        let xml = MethodResponse { value: Value::Nil }.to_xml().unwrap();
        let start = xml.find("<value>").unwrap() + "<value>".len();
        let end = xml.rfind("</value>").unwrap();
        xml[start..end].to_string()
    }
}
