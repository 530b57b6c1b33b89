//! Typed calls, one module per XenAPI class, named as the API names them:
//! `pbd::add_to_other_config(&session, &pbd, key, value)` is `PBD.add_to_other_config`.
//! Records keep only the fields sm-rs reads; unknown fields are ignored, missing ones
//! default, so one binding reads every xapi release we meet.

pub mod event;
pub mod host;
pub mod message;
pub mod pbd;
pub mod pool;
pub mod sr;
pub mod vdi;

use std::collections::BTreeMap;

/// A `(string -> string) map` field.
pub type StringMap = BTreeMap<String, String>;

/// `field "name" = "value"`, a term of `get_all_records_where`.
pub fn field_equals(name: &str, value: &str) -> String {
    format!("field \"{}\" = \"{}\"", escape(name), escape(value))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
