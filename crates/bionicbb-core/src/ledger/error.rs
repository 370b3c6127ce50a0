//! The ledger's errors: each names the operation (and, when opening, the
//! file), so a log line says what the daemon was doing.

use std::path::PathBuf;

/// Why a ledger operation failed.
///
/// The underlying error's text is part of the message (not a separate
/// `source`), so one line in a log says everything.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The state directory or the file could not be created.
    #[error("ledger: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but cannot be used as a ledger (not a SQLite
    /// database, unreadable, locked for longer than the busy timeout...).
    #[error("ledger: cannot open {} ({step}): {source}", path.display())]
    Open {
        path: PathBuf,
        step: &'static str,
        source: rusqlite::Error,
    },
    /// The file was written by a newer bionicbb: refusing to misread it.
    #[error(
        "ledger: {} has schema version {found}, newer than the {supported} this program \
         knows; run the newer bionicbb",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A statement failed (including "database is locked" after the busy
    /// timeout).
    #[error("ledger: {op}: {source}")]
    Sql {
        op: &'static str,
        source: rusqlite::Error,
    },
    /// The work was done, but the transaction it shared with other writers
    /// (see `ledger/commit.rs`) could not be committed: nothing of it was
    /// kept.
    #[error("ledger: {op}: the commit failed, nothing was written: {detail}")]
    Commit { op: &'static str, detail: String },
    /// Stored JSON could not be read back, or a value could not be written.
    #[error("ledger: {op}: bad JSON: {source}")]
    Json {
        op: &'static str,
        source: serde_json::Error,
    },
    /// The row the operation works on does not exist (an unknown outbox id,
    /// an effect that was never begun).
    #[error("ledger: {op}: no {what}")]
    NotFound { op: &'static str, what: String },
    /// A value out of range or a row in a state the operation does not
    /// accept.
    #[error("ledger: {op}: {detail}")]
    Invalid { op: &'static str, detail: String },
}
