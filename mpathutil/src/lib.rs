//! `mpathutil`: everything sm-rs knows about dm-multipath.
//!
//! - [`client`]: the multipathd control-socket protocol, and [`commands`] on top of it;
//! - [`model`]: maps, path groups and paths, with every state word multipath-tools prints;
//! - [`parse`]: JSON, topology text (current and 0.4.x), tables, the kernel status line;
//! - [`health`]: which paths count as active, `[active, max]`, ok / degraded / down;
//! - [`highwater`]: the host-wide record of the most paths each map has had;
//! - [`agent`]: the path agent's local API (its wire types and a client);
//! - [`report`] and [`cli`]: what the `mpathutil` command prints.
//!
//! It knows nothing of xapi; `sm-plugin` joins the two.

pub mod agent;
pub mod cli;
pub mod client;
pub mod commands;
pub mod health;
pub mod highwater;
pub mod model;
pub mod parse;
pub mod report;
pub mod root;

pub use client::{Config, Error, Multipathd, Pipeline, SocketName};
pub use health::{Health, PathCounts, PathVerdict};
pub use model::{Map, Path, PathGroup, Topology};
pub use root::HostRoot;
