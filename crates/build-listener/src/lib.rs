//! build-listener: turns Jenkins Notification-plugin documents into Gerrit
//! reviews, and serves `/drop-rejection`.
//!
//! - [`cli`]: the command line.
//! - [`app`]: the shared state and the router (also used by in-process tests).
//! - [`auth`]: the shared-secret check every POST goes through.
//! - [`routes`]: the handlers; they only validate and write to the ledger,
//!   never call Gerrit (Jenkins' Notification plugin waits for the answer
//!   with an executor blocked, and does not retry). [`record`] is what a
//!   build document leads to, shared with [`catch_up`].
//! - [`catch_up`]: the periodic task that asks Jenkins about the builds the
//!   bot triggered whose notification never arrived, so no vote is lost.
//! - [`payload`]: the outbox items' JSON, written by the routes and read by
//!   the worker.
//! - [`outbox`] and [`drop`]: the background worker that drains the ledger's
//!   outbox to Gerrit, with retries, and keeps each vote to exactly one
//!   review across crashes; [`in_doubt`] waits out a post that got no
//!   answer before looking for it.
//! - [`server`]: start-up and graceful shutdown of the daemon; [`conn`]
//!   serves its connections, bounded in number and in idle time.
//! - [`metrics`] and [`status`]: the Prometheus metrics and the HTML status
//!   page, both read from the ledger that both daemons write; [`pages`]
//!   serves them (`GET /metrics`, `GET /status`, `GET /`) without a secret.

pub mod app;
pub mod auth;
pub mod catch_up;
pub mod cli;
pub mod conn;
pub mod drop;
pub mod in_doubt;
pub mod metrics;
pub mod outbox;
pub mod pages;
pub mod payload;
pub mod record;
pub mod redact;
pub mod routes;
pub mod server;
pub mod status;

use bionicbb_core::ledger::{Ledger, LedgerError};

/// Runs a ledger operation on the blocking thread pool ([`Ledger::blocking`]:
/// SQLite calls block, a write waits for the shared commit's fsync, and
/// concurrent writes share it). Errors are rendered for logs and answers.
pub(crate) async fn with_ledger<T, F>(ledger: &Ledger, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
{
    ledger
        .blocking("build-listener ledger call", f)
        .await
        .map_err(|e| e.to_string())
}
