//! `xenapi`: the XenAPI client sm-rs uses to talk to xapi.
//!
//! Nothing here yet: the xapi-bindings issue fills this crate (codecs, transports, sessions,
//! typed refs and calls). It depends on nothing else in the house, and `mpathutil` never
//! imports it.
