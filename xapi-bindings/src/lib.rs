//! `xenapi`: the XenAPI client sm-rs uses to talk to xapi.
//!
//! - [`wire`]: the value model and both encodings (JSON-RPC at `/jsonrpc`, XML-RPC at `/`);
//! - [`transport`]: the dom0 unix socket (`$SM_RS_XAPI`, default `unix:/var/lib/xcp/xapi`),
//!   HTTP, and HTTPS pinned to the server certificate's SHA-256;
//! - [`Client`] carries calls, [`Session`] logs in (or adopts a session handed to us);
//! - [`api`]: typed calls and records, one module per class;
//! - [`Error`]: [`Failure`] keeps xapi's error code, the other variants are ours.
//!
//! ```no_run
//! # async fn demo() -> Result<(), xenapi::Error> {
//! use xenapi::{Client, Session, api::pbd};
//! let client = Client::from_env()?;
//! let session = Session::login_with_password(&client, "root", "", "1.0", "sm-rs").await?;
//! for (pbd_ref, record) in pbd::get_all_records(&session).await? {
//!     pbd::put_other_config(&session, &pbd_ref, "multipathed", "true").await?;
//!     let _ = record.device_config;
//! }
//! session.logout().await
//! # }
//! ```

pub mod api;
mod client;
mod error;
pub mod refs;
mod session;
pub mod transport;
pub mod wire;

pub use client::{Client, Protocol};
pub use error::{Error, Failure};
pub use refs::Ref;
pub use session::Session;
pub use transport::{Endpoint, Fingerprint};
pub use wire::Value;
