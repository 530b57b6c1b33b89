//! What travels on the wire: one value model and the two encodings xapi speaks.
//!
//! Both codecs go through [`Value`], so a typed record is decoded the same way whichever
//! protocol carried it. The model keeps the distinctions the XML-RPC encoding makes and
//! JSON does not (a datetime is not a string there, an `int32` is an `<i4>`), so the simulator
//! can emit exactly what xapi emits.

pub mod jsonrpc;
pub mod xmlrpc;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::error::Error;

/// A XenAPI value, as either protocol carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `<nil/>` / `null`: only drivers and older peers send it; xapi answers void with `""`.
    Nil,
    Bool(bool),
    /// A 64-bit API int. XML-RPC carries it as decimal text, JSON-RPC as a number.
    Int(i64),
    /// The rare 32-bit int (`valid_ref_counts` in `event.from`), an `<i4>` in XML-RPC.
    Int32(i32),
    Double(f64),
    /// Strings, refs, uuids and enum values: the wire does not tell them apart.
    String(String),
    /// `YYYYMMDDTHH:MM:SSZ`, a `<dateTime.iso8601>` in XML-RPC and a string in JSON.
    DateTime(String),
    Array(Vec<Value>),
    /// A map or a record: member names are the stringified keys.
    Struct(BTreeMap<String, Value>),
}

impl Value {
    /// The empty string xapi sends for a `void` result.
    pub fn void() -> Value {
        Value::String(String::new())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    /// An API int, leniently: xapi's XML-RPC sends ints as decimal strings.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Int32(i) => Some(i64::from(*i)),
            Value::String(s) => s.trim().parse().ok(),
            Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_double(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            Value::Int(i) => Some(*i as f64),
            Value::Int32(i) => Some(f64::from(*i)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Struct(m) => Some(m),
            _ => None,
        }
    }

    /// A `(string -> string)` map, as xapi sends `other_config` and friends.
    pub fn as_string_map(&self) -> Option<BTreeMap<String, String>> {
        self.as_struct()?
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect()
    }

    /// The JSON form: what JSON-RPC carries, and the bridge to serde-typed records.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Nil => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Int32(i) => J::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
            Value::String(s) | Value::DateTime(s) => J::String(s.clone()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Struct(m) => {
                J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// From JSON. Numbers without a fraction are ints; JSON has no datetimes, so they stay strings.
    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s),
            J::Array(a) => Value::Array(a.into_iter().map(Value::from_json).collect()),
            J::Object(m) => Value::Struct(
                m.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Decodes a typed value (a record, a map, a ref set) whichever protocol carried it.
    pub fn decode<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, Error> {
        serde_json::from_value(self.to_json()).map_err(|e| Error::Decode {
            what,
            detail: e.to_string(),
        })
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::String(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl<V: Into<Value>> From<Vec<V>> for Value {
    fn from(v: Vec<V>) -> Self {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::Struct(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<&BTreeMap<String, String>> for Value {
    fn from(m: &BTreeMap<String, String>) -> Self {
        m.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect()
    }
}

impl From<BTreeMap<String, String>> for Value {
    fn from(m: BTreeMap<String, String>) -> Self {
        m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
    }
}

/// serde helpers for the leniency xapi's encodings need in typed records.
pub mod lenient {
    use serde::{Deserialize, Deserializer, de::Error as _};

    /// An API int sent as a JSON number or as XML-RPC decimal text.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| D::Error::custom(format!("not an int: {n}"))),
            serde_json::Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("not an int: {s:?}"))),
            other => Err(D::Error::custom(format!("not an int: {other}"))),
        }
    }

    /// A bool: native on both protocols, but tolerate "true"/"false" from older peers.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(b),
            serde_json::Value::String(s) if s == "true" || s == "1" => Ok(true),
            serde_json::Value::String(s) if s == "false" || s == "0" => Ok(false),
            other => Err(D::Error::custom(format!("not a bool: {other}"))),
        }
    }

    /// A float: `<double>`, a JSON number, or numeric text.
    pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => {
                n.as_f64().ok_or_else(|| D::Error::custom("not a float"))
            }
            serde_json::Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("not a float: {s:?}"))),
            other => Err(D::Error::custom(format!("not a float: {other}"))),
        }
    }
}
