//! Typed references: a `Ref<Pbd>` cannot be passed where a `Ref<Host>` is wanted, though on
//! the wire both are `OpaqueRef:<uuid>` strings.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::Value;

/// A XenAPI class, named as the IDL spells it (that is also what `HANDLE_INVALID` reports).
pub trait Class {
    const NAME: &'static str;
}

macro_rules! classes {
    ($($(#[$doc:meta])* $marker:ident => $name:literal),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $marker {}
        impl Class for $marker {
            const NAME: &'static str = $name;
        }
    )*};
}

classes! {
    /// `session`: a login.
    ApiSession => "session",
    Host => "host",
    Pbd => "PBD",
    Sr => "SR",
    Vdi => "VDI",
    Message => "message",
    Pool => "pool",
    Task => "task",
}

pub struct Ref<T> {
    id: String,
    class: PhantomData<fn() -> T>,
}

impl<T> Ref<T> {
    pub const NULL: &'static str = "OpaqueRef:NULL";

    pub fn new(id: impl Into<String>) -> Ref<T> {
        Ref {
            id: id.into(),
            class: PhantomData,
        }
    }

    pub fn null() -> Ref<T> {
        Ref::new(Self::NULL)
    }

    pub fn is_null(&self) -> bool {
        self.id == Self::NULL
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl<T> Default for Ref<T> {
    fn default() -> Self {
        Ref::null()
    }
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref::new(self.id.clone())
    }
}

impl<T> PartialEq for Ref<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for Ref<T> {}

impl<T> PartialOrd for Ref<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ref<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl<T> Hash for Ref<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<T: Class> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref<{}>({})", T::NAME, self.id)
    }
}

impl<T> fmt::Display for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl<T> From<&Ref<T>> for Value {
    fn from(r: &Ref<T>) -> Self {
        Value::String(r.id.clone())
    }
}

impl<T> From<Ref<T>> for Value {
    fn from(r: Ref<T>) -> Self {
        Value::String(r.id)
    }
}

impl<T> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

impl<'de, T> Deserialize<'de> for Ref<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Ref::new(String::deserialize(d)?))
    }
}
