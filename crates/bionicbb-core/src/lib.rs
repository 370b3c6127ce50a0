//! bionicbb-core: what both daemons share.
//!
//! - [`config`]: the one TOML file both daemons read.
//! - [`gerrit`] and [`jenkins`]: REST clients with typed errors ([`error`])
//!   and one retry policy ([`retry`]).
//! - [`mail`], [`command`], [`event`], [`decide`], [`messages`]: the pure
//!   domain: Gerrit e-mails become events, events become decisions, and every
//!   text the bot posts lives in one place.
//! - [`ledger`]: the durable state that makes each effect happen once.
//! - [`check`]: the operator's checklist of a configuration (`check`).
//! - [`runtime`]: what both daemons do at start-up and shutdown.

pub mod check;
pub mod command;
pub mod config;
pub mod decide;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod gerrit;
pub mod http;
pub mod jenkins;
pub mod ledger;
pub mod mail;
pub mod messages;
pub mod netrc;
pub mod retry;
pub mod review;
pub mod runtime;
pub mod timefmt;
pub mod tls;

pub use error::{ApiError, ErrorKind, Service};
