//! The ledger: the one durable store of both daemons, a SQLite file in the
//! state directory. It makes every effect happen once across crashes.
//!
//! What it holds, by the daemon that writes it:
//!
//! - gmail-listener: the state of each mail ([`MailState`]), the effects
//!   decided for it, keyed once ([`EffectKey`], [`Begin`]): a row is written
//!   *before* the effect runs and marked after, so a crash in between leaves
//!   an "in doubt" row that the caller resolves by asking the server;
//! - build-listener: the builds already seen (the first completion document
//!   of a build wins) and the outbox of Gerrit work ([`OutboxItem`]), ordered
//!   per change and retried with its attempts, next attempt time and last
//!   error; and the triggers it found on Jenkins to have no result for good
//!   (see [`Ledger::unreported_builds`]);
//! - both: the recent events and component status shown on the status page,
//!   and the metric counters, so counts survive restarts. The page also
//!   reads the build triggers and completions ([`Ledger::recent_triggers`],
//!   [`Ledger::recent_builds`]).
//!
//! Events are pruned on insert; finished history is pruned on request
//! ([`Ledger::prune_before`]).
//!
//! # Concurrency
//!
//! Both daemons open the same file. The journal is WAL (readers never block
//! the writer), every write transaction starts `IMMEDIATE` (it takes the write
//! lock before reading, so two processes never deadlock on a lock upgrade),
//! and a busy timeout makes a writer wait for the other process instead of
//! failing with "database is locked".
//!
//! [`Ledger`] is `Clone + Send + Sync`; clones share two connections: one
//! that writes, one that reads. Concurrent writers (threads) share one
//! transaction and one commit ("group commit", see `commit.rs`): each
//! write's work runs in its own savepoint, so one failing writer does not
//! undo the others, and returns once the shared commit is on the disk.
//! Reads go through the other connection and see committed data only,
//! never a batch still open, and never wait behind a commit's flush.
//! [`Ledger::commits`] counts the commits.
//!
//! # Durability
//!
//! `synchronous=FULL`: a commit returns once the WAL is flushed to the disk
//! (fsync). So a write that returned `Ok` (a notification acknowledged, a
//! build recorded as triggered) survives `kill -9` of the daemon and a
//! power cut; group commit only makes several writes share that flush, it
//! never acknowledges a write before it.
//!
//! Every method is synchronous and short, but a write may wait for the disk
//! (fsync) and, while the other daemon writes, up to the busy timeout.
//! Async callers on a hot path use [`Ledger::blocking`]; elsewhere they may
//! call it directly where a few milliseconds of blocking are acceptable.
//!
//! # Time
//!
//! Every method that records or compares a time takes `now` (unix seconds)
//! from the caller, so tests are deterministic; [`now`] reads the clock.
//!
//! # Schema
//!
//! Created by ordered migrations (see `schema.rs`), one transaction each,
//! the applied count kept in `PRAGMA user_version`. A file written by a newer
//! version is refused ([`LedgerError::TooNew`]) rather than misread.

mod builds;
mod cancel;
mod commit;
mod effects;
mod error;
mod histograms;
mod history;
mod intake;
mod mails;
mod outbox;
mod outbox_due;
mod overview;
mod owned;
mod prune;
mod schema;
mod status;
mod unreported;
mod vouches;

pub use cancel::{BeginCancel, CancelTarget, StoppedBuild};
pub use commit::{CommitHold, MAX_BATCH};
pub use effects::{Begin, BuildInDoubt, EffectKey};
pub use error::LedgerError;
pub use histograms::{BUCKETS, HistogramSnapshot, metric_names};
pub use history::StoredEffect;
pub use intake::Completion;
pub use mails::{MailDone, MailState};
pub use outbox::{NewOutboxItem, OutboxItem, OutboxState};
pub use overview::{SeenBuild, Trigger, TriggerState};
pub use owned::{JenkinsItem, TriggerRecord};
pub use status::{EventDetails, EventRecord};
pub use unreported::UnreportedBuild;
pub use vouches::VouchRecord;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use commit::GroupCommit;

/// `execute` through the connection's cache of prepared statements: the
/// ledger's statements are a fixed set, and parsing one again for every
/// write costs as much as running it.
pub(crate) trait CachedExecute {
    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedExecute for Connection {
    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// Prepared statements each connection keeps (more than the ledger has).
const STATEMENT_CACHE: usize = 128;

/// Result of a ledger operation.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// The current time in unix seconds: the only clock the ledger offers.
/// Decisions inside the ledger never read it; callers pass `now` in.
pub fn now() -> i64 {
    unix_seconds(SystemTime::now())
}

/// A `SystemTime` as unix seconds (negative before 1970, saturating).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Tunables of [`Ledger::open_with`]; [`Default`] is what the daemons use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerOptions {
    /// How long a write waits for the other process's transaction before
    /// failing with "database is locked".
    pub busy_timeout: Duration,
    /// How many events [`Ledger::record_event`] keeps (the newest).
    pub event_cap: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            busy_timeout: Duration::from_secs(10),
            event_cap: 1000,
        }
    }
}

/// The durable store; see the module documentation.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection that writes, and the batching of its transactions.
    writer: GroupCommit,
    /// The connection that reads: committed data only.
    reader: Mutex<Connection>,
    path: PathBuf,
    options: LedgerOptions,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` with the default
    /// options. Creates the parent directory and the file (mode 0600 on
    /// unix: it names changes and people), then brings the schema up to date.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_with(path, LedgerOptions::default())
    }

    /// [`Ledger::open`] with explicit options.
    pub fn open_with(path: &Path, options: LedgerOptions) -> Result<Ledger> {
        create_private_file(path)?;
        let mut conn = connect(path, options)?;
        schema::migrate(&mut conn, path)?;
        let reader = connect(path, options)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(open_err(path, "set query_only on the reading connection"))?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                writer: GroupCommit::new(conn),
                reader: Mutex::new(reader),
                path: path.to_path_buf(),
                options,
            }),
        })
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32> {
        let v: i64 = self.read(|conn| {
            conn.query_row("PRAGMA user_version", [], |row| row.get(0))
                .map_err(sql("read schema version"))
        })?;
        u32::try_from(v).map_err(|_| LedgerError::Invalid {
            op: "read schema version",
            detail: format!("user_version {v} is out of range"),
        })
    }

    /// Runs `f` on a clone of this ledger on tokio's blocking pool, so an
    /// async task waits for the disk without holding a runtime thread, and
    /// writes of concurrent tasks can share one commit. The way async code
    /// on a hot path calls the ledger.
    pub async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> Result<T> + Send + 'static,
    {
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .unwrap_or_else(|e| {
                Err(LedgerError::Invalid {
                    op,
                    detail: format!("the ledger call did not finish: {e}"),
                })
            })
    }

    /// Transactions committed since this ledger was opened (shared by its
    /// clones): fewer than the writes when writers shared commits.
    pub fn commits(&self) -> u64 {
        self.inner.writer.commits()
    }

    /// Writes run since this ledger was opened (shared by its clones),
    /// committed or still in an open batch.
    pub fn writes(&self) -> u64 {
        self.inner.writer.writes()
    }

    /// Keeps the current batch of writes open (uncommitted, its writers
    /// waiting) until the guard is dropped, as if one more writer were
    /// about to join it. For tests that look at a batch in progress.
    #[doc(hidden)]
    pub fn hold_commits(&self) -> CommitHold<'_> {
        self.inner.writer.hold()
    }

    /// Runs `f` in the current batch transaction (see `commit.rs`) and
    /// returns once that transaction is committed.
    fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T> + Send,
    ) -> Result<T> {
        self.inner.writer.write(op, f)
    }

    /// Runs a read-only `f` on the reading connection (one statement, or a
    /// consistent snapshot when `f` runs several inside a transaction). It
    /// sees committed data only.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock leaves the connection usable: an
        // unfinished transaction was rolled back when it was dropped.
        let conn = self.inner.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }
}

fn open_err(path: &Path, step: &'static str) -> impl FnOnce(rusqlite::Error) -> LedgerError {
    let path = path.to_path_buf();
    move |source: rusqlite::Error| LedgerError::Open { path, step, source }
}

/// One connection to the ledger's file, set up as the module documentation
/// says (WAL, `synchronous=FULL`, foreign keys, the busy timeout).
fn connect(path: &Path, options: LedgerOptions) -> Result<Connection> {
    // The file exists now; never let SQLite create one elsewhere.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err(path, "open"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(open_err(path, "set busy_timeout"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The first statement that reads the file: a file that is not a
    // SQLite database fails here, with the path in the error.
    let mode = journal_mode_wal(&conn, options.busy_timeout)
        .map_err(open_err(path, "set journal_mode=WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path = %path.display(),
            journal_mode = %mode,
            "the ledger's file system refused WAL; concurrent access will block more"
        );
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err(path, "set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_err(path, "enable foreign_keys"))?;
    Ok(conn)
}

/// `PRAGMA journal_mode=WAL`, the mode it answers. Switching a fresh file
/// to WAL needs it to itself, and SQLite answers "database is locked" at
/// once (without the busy handler) while the other daemon opens it at the
/// same moment: tried again until `patience` is spent.
fn journal_mode_wal(conn: &Connection, patience: Duration) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            answer => return answer,
        }
    }
}

/// Creates the parent directory (0700) and the file (0600) if missing.
fn create_private_file(path: &Path) -> Result<()> {
    let io_err = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source: std::io::Error| LedgerError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(io_err("create the directory", parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(io_err("create", path))?;
    Ok(())
}

/// Maps a SQLite error to [`LedgerError::Sql`] naming the operation.
fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> LedgerError {
    move |source| LedgerError::Sql { op, source }
}

/// Runs `extras` (counters, events: what a write may lose rather than
/// fail) in a savepoint of `tx`. When they fail, they are rolled back and
/// logged (`what`: what could not be done) and the rest of the transaction
/// stands.
fn with_extras(
    tx: &Connection,
    op: &'static str,
    what: &str,
    extras: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let done = tx
        .execute_batch("SAVEPOINT extras")
        .map_err(sql(op))
        .and_then(|()| extras());
    let end = match &done {
        Ok(()) => "RELEASE extras",
        Err(_) => "ROLLBACK TO extras; RELEASE extras",
    };
    tx.execute_batch(end).map_err(sql(op))?;
    if let Err(e) = done {
        tracing::warn!("cannot {what} in the ledger: {e}");
    }
    Ok(())
}

/// Serialises a JSON value for a TEXT column.
fn to_json(op: &'static str, value: &serde_json::Value) -> Result<String> {
    serde_json::to_string(value).map_err(|source| LedgerError::Json { op, source })
}

/// Reads back a JSON value written by [`to_json`].
fn from_json(op: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|source| LedgerError::Json { op, source })
}

/// An unsigned count or id as SQLite's signed integer.
fn to_i64(op: &'static str, what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| LedgerError::Invalid {
        op,
        detail: format!("{what} {value} is too large to store"),
    })
}

/// A stored integer back as an unsigned value.
fn from_i64<T: TryFrom<i64>>(op: &'static str, what: &str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| LedgerError::Invalid {
        op,
        detail: format!("stored {what} {value} is out of range"),
    })
}

#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod plan_tests;
