//! JSON-RPC as xapi speaks it at `POST /jsonrpc`: positional `params` (session first), a
//! mandatory `id`, v1 or v2 by the presence of `"jsonrpc": "2.0"`. In v2 the XenAPI error
//! code travels in `error.message` and its parameters in `error.data`; `error.code` is a
//! placeholder.

use serde_json::{Value as Json, json};

use crate::error::{Error, Failure};
use crate::wire::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A decoded request.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub version: Version,
    /// A string or an integer, echoed back as it came.
    pub id: Json,
    pub method: String,
    pub params: Vec<Value>,
}

pub fn encode_call(method: &str, params: &[Value], id: u64) -> Vec<u8> {
    let params: Vec<Json> = params.iter().map(Value::to_json).collect();
    json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id})
        .to_string()
        .into_bytes()
}

pub fn decode_call(body: &[u8]) -> Result<Call, Error> {
    let malformed = |detail: &str| Error::Decode {
        what: "JSON-RPC request",
        detail: detail.to_owned(),
    };
    let request: Json = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let Json::Object(mut request) = request else {
        return Err(malformed("not a JSON object"));
    };
    let version = match request.get("jsonrpc") {
        Some(Json::String(v)) if v == "2.0" => Version::V2,
        Some(_) => return Err(malformed("unknown jsonrpc version")),
        None => Version::V1,
    };
    let id = match request.remove("id") {
        Some(id @ (Json::String(_) | Json::Number(_))) => id,
        // xapi takes no notifications: without an id there is no one to answer.
        _ => return Err(malformed("id missing, null or not a string or integer")),
    };
    let method = match request.remove("method") {
        Some(Json::String(m)) => m,
        _ => return Err(malformed("method missing or not a string")),
    };
    let params = match request.remove("params") {
        Some(Json::Array(p)) => p.into_iter().map(Value::from_json).collect(),
        None => Vec::new(),
        Some(_) => return Err(malformed("params is not an array")),
    };
    Ok(Call {
        version,
        id,
        method,
        params,
    })
}

pub fn encode_response(version: Version, id: &Json, result: &Result<Value, Failure>) -> Vec<u8> {
    let response = match (version, result) {
        (Version::V2, Ok(v)) => json!({"jsonrpc": "2.0", "result": v.to_json(), "id": id}),
        (Version::V2, Err(f)) => json!({
            "jsonrpc": "2.0",
            "error": {"code": 1, "message": f.code, "data": f.params},
            "id": id,
        }),
        (Version::V1, Ok(v)) => json!({"result": v.to_json(), "error": null, "id": id}),
        (Version::V1, Err(f)) => json!({"result": null, "error": f.description(), "id": id}),
    };
    response.to_string().into_bytes()
}

pub fn decode_response(body: &[u8]) -> Result<Result<Value, Failure>, Error> {
    let response: Json = serde_json::from_slice(body).map_err(|_| Error::Decode {
        what: "JSON-RPC response",
        detail: "not JSON".into(),
    })?;
    let Json::Object(mut response) = response else {
        return Err(Error::Protocol("JSON-RPC response is not an object".into()));
    };
    match response.remove("error") {
        None | Some(Json::Null) => match response.remove("result") {
            Some(result) => Ok(Ok(Value::from_json(result))),
            None => Err(Error::Protocol(
                "JSON-RPC response has neither result nor error".into(),
            )),
        },
        // v2: {code, message: CODE, data: [params]}
        Some(Json::Object(mut error)) => {
            let code = match error.remove("message") {
                Some(Json::String(code)) => code,
                _ => return Err(Error::Protocol("JSON-RPC error without a message".into())),
            };
            let params = match error.remove("data") {
                Some(data) => crate::error::strings_of(&Value::from_json(data)),
                None => Vec::new(),
            };
            Ok(Err(Failure { code, params }))
        }
        // v1: [CODE, params…]
        Some(description) => Ok(Err(Failure::from_description(&Value::from_json(
            description,
        ))?)),
    }
}
