//! The codecs against the wire examples of `reference/xapi-facts.md` §1–2, both ways.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xenapi::wire::{Value, jsonrpc, xmlrpc};
use xenapi::{Error, Failure};

const ADD_TO_OTHER_CONFIG: &str = r#"<methodCall><methodName>PBD.add_to_other_config</methodName><params>
  <param><value><string>OpaqueRef:SESSION</string></value></param>
  <param><value><string>OpaqueRef:PBD</string></value></param>
  <param><value><string>mpath-3600a0b80001234</string></value></param>
  <param><value><string>[2, 2]</string></value></param>
</params></methodCall>"#;

const MAP_DUPLICATE_KEY: &str = r#"<methodResponse><params><param><value><struct>
  <member><name>Status</name><value>Failure</value></member>
  <member><name>ErrorDescription</name><value><array><data>
    <value>MAP_DUPLICATE_KEY</value><value>PBD</value><value>other_config</value>
    <value>OpaqueRef:…</value><value>mpath-3600a0b80001234</value>
  </data></array></value></member>
</struct></value></param></params></methodResponse>"#;

#[test]
fn xml_call_from_the_reference_decodes_and_round_trips() {
    let (method, params) = xmlrpc::decode_call(ADD_TO_OTHER_CONFIG).unwrap();
    assert_eq!(method, "PBD.add_to_other_config");
    let texts: Vec<&str> = params.iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "OpaqueRef:SESSION",
            "OpaqueRef:PBD",
            "mpath-3600a0b80001234",
            "[2, 2]"
        ]
    );

    let encoded = xmlrpc::encode_call(&method, &params);
    // xapi's own form: bare strings, no declaration, no whitespace.
    assert_eq!(
        encoded,
        "<methodCall><methodName>PBD.add_to_other_config</methodName><params>\
         <param><value>OpaqueRef:SESSION</value></param><param><value>OpaqueRef:PBD</value></param>\
         <param><value>mpath-3600a0b80001234</value></param><param><value>[2, 2]</value></param>\
         </params></methodCall>"
    );
    assert_eq!(xmlrpc::decode_call(&encoded).unwrap(), (method, params));
}

#[test]
fn xml_failure_from_the_reference_decodes_and_round_trips() {
    let failure = xmlrpc::decode_response(MAP_DUPLICATE_KEY)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.code, "MAP_DUPLICATE_KEY");
    assert_eq!(
        failure.params,
        [
            "PBD",
            "other_config",
            "OpaqueRef:…",
            "mpath-3600a0b80001234"
        ]
    );
    let again = xmlrpc::encode_response(&Err(failure.clone()));
    assert!(
        again.contains("<member><name>Status</name><value>Failure</value></member>"),
        "{again}"
    );
    assert_eq!(xmlrpc::decode_response(&again).unwrap(), Err(failure));
}

#[test]
fn xml_success_values_take_xapis_forms() {
    let record: Value = [
        ("uuid", Value::from("5f1c")),
        ("physical_size", Value::Int(107_374_182_400)),
        ("shared", Value::Bool(true)),
        ("currently_attached", Value::Bool(false)),
        ("timestamp", Value::DateTime("20240131T12:00:00Z".into())),
        ("empty", Value::from("")),
        ("sm_config", Value::Struct(BTreeMap::new())),
        ("VDIs", Value::Array(vec![])),
        ("ratio", Value::Double(0.5)),
    ]
    .into_iter()
    .collect();
    let xml = xmlrpc::encode_response(&Ok(record.clone()));
    for form in [
        "<member><name>physical_size</name><value>107374182400</value></member>",
        "<member><name>shared</name><value><boolean>1</boolean></value></member>",
        "<member><name>currently_attached</name><value><boolean>0</boolean></value></member>",
        "<value><dateTime.iso8601>20240131T12:00:00Z</dateTime.iso8601></value>",
        "<member><name>empty</name><value/></member>",
        "<member><name>uuid</name><value>5f1c</value></member>",
        "<member><name>Value</name>",
    ] {
        assert!(xml.contains(form), "missing {form} in {xml}");
    }
    let back = xmlrpc::decode_response(&xml).unwrap().unwrap();
    let fields = back.as_struct().unwrap();
    // Ints come back as the text xapi sends; readers decode them leniently.
    assert_eq!(fields["physical_size"], Value::from("107374182400"));
    assert_eq!(fields["physical_size"].as_int(), Some(107_374_182_400));
    assert_eq!(fields["shared"], Value::Bool(true));
    assert_eq!(
        fields["timestamp"],
        Value::DateTime("20240131T12:00:00Z".into())
    );
    assert_eq!(fields["empty"], Value::from(""));
    assert_eq!(fields["ratio"], Value::Double(0.5));
}

#[test]
fn xml_void_is_an_empty_string() {
    let xml = xmlrpc::encode_response(&Ok(Value::void()));
    assert_eq!(
        xml,
        "<methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member>\
         <member><name>Value</name><value/></member></struct></value></param></params></methodResponse>"
    );
    assert_eq!(xmlrpc::decode_response(&xml).unwrap(), Ok(Value::from("")));
}

#[test]
fn xml_reader_takes_every_form_a_peer_sends() {
    // Python's xmlrpc.client: declaration, whitespace, typed strings, <int>, <i8>, <nil/>.
    let python = "<?xml version='1.0'?>\n<methodCall>\n<methodName>message.create</methodName>\n<params>\n\
        <param>\n<value><string>OpaqueRef:S</string></value>\n</param>\n\
        <param>\n<value><int>3</int></value>\n</param>\n\
        <param>\n<value><i8>9000000000</i8></value>\n</param>\n\
        <param>\n<value><nil/></value></param>\n\
        <param>\n<value><string>a &amp; b &lt;c&gt;</string></value></param>\n\
        </params>\n</methodCall>\n";
    let (method, params) = xmlrpc::decode_call(python).unwrap();
    assert_eq!(method, "message.create");
    assert_eq!(params[1].as_int(), Some(3));
    assert_eq!(params[2].as_int(), Some(9_000_000_000));
    assert_eq!(params[3], Value::Nil);
    assert_eq!(params[4], Value::from("a & b <c>"));
}

#[test]
fn xml_booleans_are_true_only_as_1_as_xapi_reads_them() {
    let call = |text: &str| {
        let xml = format!(
            "<methodCall><methodName>m</methodName><params><param><value><boolean>{text}</boolean></value></param></params></methodCall>"
        );
        xmlrpc::decode_call(&xml).unwrap().1[0].clone()
    };
    assert_eq!(call("1"), Value::Bool(true));
    assert_eq!(call("0"), Value::Bool(false));
    assert_eq!(call("true"), Value::Bool(false));
}

#[test]
fn xml_plain_responses_and_faults_as_drivers_send_them() {
    let nil = xmlrpc::decode_plain_response(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><nil/></value></param>\n</params>\n</methodResponse>\n",
    )
    .unwrap();
    assert_eq!(nil, xmlrpc::PlainResponse::Value(Value::Nil));
    let fault = xmlrpc::encode_fault(432, "Device Mapper path missing [opterr=<SCSIid>]");
    assert_eq!(
        xmlrpc::decode_plain_response(&fault).unwrap(),
        xmlrpc::PlainResponse::Fault {
            code: 432,
            string: "Device Mapper path missing [opterr=<SCSIid>]".into()
        }
    );
}

#[test]
fn malformed_xml_is_a_typed_error_that_does_not_echo_the_input() {
    for bad in [
        "",
        "<methodCall>",
        "not xml at all",
        "<methodCall><methodName>x</methodName><params><param><value><int>twelve</int></value></param></params></methodCall>",
        "<methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value>s3cret-pw</value></param></params>",
    ] {
        let err = xmlrpc::decode_call(bad).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert!(
            !err.to_string().contains("s3cret-pw"),
            "error text leaks the input: {err}"
        );
        assert!(xmlrpc::decode_response(bad).is_err());
    }
    // A response without a Status is a protocol error, not a success.
    let no_status =
        xmlrpc::encode_plain_response(&[("Value", Value::from("x"))].into_iter().collect());
    assert!(matches!(
        xmlrpc::decode_response(&no_status),
        Err(Error::Protocol(_))
    ));
}

#[test]
fn json_requests_and_answers_from_the_reference_v1_and_v2() {
    let v1 = jsonrpc::decode_call(br#"{"method":"host.get_all","params":["OpaqueRef:S"],"id":1}"#)
        .unwrap();
    assert_eq!(v1.version, jsonrpc::Version::V1);
    assert_eq!(v1.method, "host.get_all");
    assert_eq!(v1.params, [Value::from("OpaqueRef:S")]);
    let v2 = jsonrpc::decode_call(
        br#"{"jsonrpc":"2.0","method":"host.get_all","params":["OpaqueRef:S"],"id":"a"}"#,
    )
    .unwrap();
    assert_eq!(v2.version, jsonrpc::Version::V2);
    assert_eq!(v2.id, serde_json::json!("a"));

    let result = Ok(Value::Array(vec![Value::from("OpaqueRef:H")]));
    let failure = Err(Failure::new("SESSION_INVALID", ["OpaqueRef:S"]));
    let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    assert_eq!(
        json(jsonrpc::encode_response(v1.version, &v1.id, &result)),
        serde_json::json!({"result":["OpaqueRef:H"],"error":null,"id":1})
    );
    assert_eq!(
        json(jsonrpc::encode_response(v1.version, &v1.id, &failure)),
        serde_json::json!({"result":null,"error":["SESSION_INVALID","OpaqueRef:S"],"id":1})
    );
    assert_eq!(
        json(jsonrpc::encode_response(v2.version, &v1.id, &result)),
        serde_json::json!({"jsonrpc":"2.0","result":["OpaqueRef:H"],"id":1})
    );
    assert_eq!(
        json(jsonrpc::encode_response(v2.version, &v1.id, &failure)),
        serde_json::json!({"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:S"]},"id":1})
    );
    // And the client reads both shapes back.
    for version in [jsonrpc::Version::V1, jsonrpc::Version::V2] {
        let bytes = jsonrpc::encode_response(version, &v1.id, &failure);
        assert_eq!(jsonrpc::decode_response(&bytes).unwrap(), failure);
        let bytes = jsonrpc::encode_response(version, &v1.id, &result);
        assert_eq!(jsonrpc::decode_response(&bytes).unwrap(), result);
    }
}

#[test]
fn json_types_ints_numbers_or_strings_void_and_dates() {
    let call: serde_json::Value = serde_json::from_slice(&jsonrpc::encode_call(
        "message.create",
        &[
            Value::from("OpaqueRef:S"),
            Value::Int(3),
            Value::Bool(true),
            Value::Double(30.0),
            Value::DateTime("20240131T12:00:00Z".into()),
        ],
        7,
    ))
    .unwrap();
    assert_eq!(call["jsonrpc"], "2.0");
    assert_eq!(call["id"], 7);
    assert_eq!(
        call["params"],
        serde_json::json!(["OpaqueRef:S", 3, true, 30.0, "20240131T12:00:00Z"])
    );
    let void = jsonrpc::decode_response(br#"{"jsonrpc":"2.0","result":"","id":1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(void, Value::void());
    let as_string = jsonrpc::decode_response(br#"{"jsonrpc":"2.0","result":"42","id":1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(as_string.as_int(), Some(42));
}

#[test]
fn malformed_json_is_a_typed_error() {
    for bad in [
        &b""[..],
        b"{",
        b"[]",
        br#"{"method":"host.get_all","params":[]}"#,
        br#"{"method":"host.get_all","params":[],"id":null}"#,
        br#"{"method":"host.get_all","params":{},"id":1}"#,
        br#"{"method":7,"params":[],"id":1}"#,
        br#"{"jsonrpc":"1.5","method":"x","id":1}"#,
    ] {
        assert!(
            jsonrpc::decode_call(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(jsonrpc::decode_response(b"<html>").is_err());
    assert!(jsonrpc::decode_response(br#"{"id":1}"#).is_err());
}

#[derive(serde::Deserialize)]
struct Sized {
    #[serde(deserialize_with = "xenapi::wire::lenient::int")]
    size: i64,
}

#[test]
fn typed_records_read_ints_either_way() {
    let from_xml: Value = [("size", Value::from("107374182400"))]
        .into_iter()
        .collect();
    let from_json: Value = [("size", Value::Int(107_374_182_400))]
        .into_iter()
        .collect();
    assert_eq!(from_xml.decode::<Sized>("t").unwrap().size, 107_374_182_400);
    assert_eq!(
        from_json.decode::<Sized>("t").unwrap().size,
        107_374_182_400
    );
    let bad: Value = [("size", Value::from("lots"))].into_iter().collect();
    assert!(matches!(
        bad.decode::<Sized>("t"),
        Err(Error::Decode { .. })
    ));
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        "[ -~\u{e9}\u{4e2d}]{0,12}".prop_map(Value::String),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_A-Z0-9-]{1,8}", inner, 0..4)
                .prop_map(Value::Struct),
        ]
    })
}

/// What a value becomes after a trip through XML-RPC: ints arrive as their decimal text.
fn as_received(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::String(i.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(as_received).collect()),
        Value::Struct(m) => {
            Value::Struct(m.iter().map(|(k, v)| (k.clone(), as_received(v))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn whitespace_only_strings_survive_xml() {
    for s in [" ", "  ", "\t", " x", "x "] {
        let params = vec![Value::String(s.to_string())];
        let (_, back) = xmlrpc::decode_call(&xmlrpc::encode_call("x.y", &params)).unwrap();
        assert_eq!(back, params, "{s:?}");
    }
}

proptest! {
    #[test]
    fn xml_round_trip(params in proptest::collection::vec(value(), 0..4)) {
        let (_, back) = xmlrpc::decode_call(&xmlrpc::encode_call("x.y", &params)).unwrap();
        let expected: Vec<Value> = params.iter().map(as_received).collect();
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn json_round_trip(params in proptest::collection::vec(value(), 0..4)) {
        let call = jsonrpc::decode_call(&jsonrpc::encode_call("x.y", &params, 1)).unwrap();
        prop_assert_eq!(call.params, params);
    }
}
