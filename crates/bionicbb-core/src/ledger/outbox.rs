//! build-listener's side: builds already seen, and the outbox of Gerrit
//! work.
//!
//! Jenkins does not resend a notification, so build-listener answers 2xx
//! only once the work is durable here ([`Ledger::record_completion`]); a
//! worker then drains the outbox:
//!
//! ```text
//! loop {
//!     let Some(item) = ledger.next_due(now())? else { sleep until next_due_at(); continue };
//!     ledger.mark_in_flight(item.id, now())?;
//!     if item.may_have_landed() { /* look on Gerrit for the same message first */ }
//!     match post(&item) {
//!         Ok(_) => ledger.mark_done(item.id, now())?,
//!         Err(e) if e.is_transient() => ledger.mark_retry(item.id, &e.to_string(), later)?,
//!         Err(e) => ledger.mark_failed(item.id, &e.to_string(), now())?,
//!     }
//! }
//! ```
//!
//! Order is kept per `order_key` (the change): only the oldest pending item
//! of a key is ever due, so a later build's vote never lands before an
//! earlier one's, even while the earlier one waits for a retry. Other keys
//! are not held up. A failed item (given up) no longer blocks its key.
//!
//! Delivery is at least once: there is no lease, an item whose post was cut
//! short by a crash is simply still pending after the restart, with
//! `in_flight_since` set. [`OutboxItem::may_have_landed`] tells the worker
//! to check Gerrit for an identical message before posting again.
//!
//! A request sent and never answered (a timeout, a dropped connection, the
//! process gone) may still be applied by the server later. Such an attempt
//! is kept *in doubt*: `in_flight_since` stays set and the item is not due
//! before the server can no longer apply it ([`Ledger::mark_in_doubt`],
//! [`Ledger::defer`]), so the look-back sees what the request did. This
//! state is in the file, so it survives a restart.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::{
    CachedExecute, Ledger, LedgerError, Result, from_i64, from_json, sql, to_i64, to_json,
};

/// Work to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxItem {
    /// What to do: `"review"`, `"drop_rejection"`...
    pub kind: String,
    /// Items with the same key are done in enqueue order (the change number).
    pub order_key: String,
    /// Everything the worker needs to do it.
    pub payload: Value,
}

/// Where an outbox item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Done,
    /// Given up; kept for the status page.
    Failed,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub order_key: String,
    pub payload: Value,
    pub state: OutboxState,
    pub created_at: i64,
    /// Failed attempts so far (each [`Ledger::mark_retry`]).
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// When the last attempt started ([`Ledger::mark_in_flight`]).
    pub last_attempt_at: Option<i64>,
    /// Set when an attempt started and was not concluded yet; still set when
    /// the item is picked again, a previous process died mid-post.
    pub in_flight_since: Option<i64>,
    pub last_error: Option<String>,
    /// When it was done or given up.
    pub finished_at: Option<i64>,
}

impl OutboxItem {
    /// Whether an earlier attempt may have reached the server (it failed
    /// after sending, or the process died during it): look for the effect
    /// there before doing it again.
    pub fn may_have_landed(&self) -> bool {
        self.attempts > 0 || self.in_flight_since.is_some()
    }

    /// Whether an attempt started and was never concluded: the process
    /// stopped during it, and its request may still be on its way. (An
    /// attempt concluded in doubt, or deferred, is due only after the
    /// moment it went in flight.)
    pub fn interrupted(&self) -> bool {
        self.in_flight_since
            .is_some_and(|since| self.next_attempt_at <= since)
    }
}

pub(super) const COLUMNS: &str = "id, kind, order_key, payload, state, created_at, attempts, \
                       next_attempt_at, last_attempt_at, in_flight_since, last_error, finished_at";

/// A row as stored, before its JSON and enums are checked.
pub(super) struct RawItem {
    id: i64,
    kind: String,
    order_key: String,
    payload: String,
    state: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_attempt_at: Option<i64>,
    in_flight_since: Option<i64>,
    last_error: Option<String>,
    finished_at: Option<i64>,
}

impl RawItem {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<RawItem> {
        Ok(RawItem {
            id: row.get(0)?,
            kind: row.get(1)?,
            order_key: row.get(2)?,
            payload: row.get(3)?,
            state: row.get(4)?,
            created_at: row.get(5)?,
            attempts: row.get(6)?,
            next_attempt_at: row.get(7)?,
            last_attempt_at: row.get(8)?,
            in_flight_since: row.get(9)?,
            last_error: row.get(10)?,
            finished_at: row.get(11)?,
        })
    }

    pub(super) fn check(self, op: &'static str) -> Result<OutboxItem> {
        let state = match self.state.as_str() {
            "pending" => OutboxState::Pending,
            "done" => OutboxState::Done,
            "failed" => OutboxState::Failed,
            other => {
                return Err(LedgerError::Invalid {
                    op,
                    detail: format!("outbox item {} has unknown state {other:?}", self.id),
                });
            }
        };
        Ok(OutboxItem {
            id: self.id,
            kind: self.kind,
            order_key: self.order_key,
            payload: from_json(op, &self.payload)?,
            state,
            created_at: self.created_at,
            attempts: from_i64(op, "attempt count", self.attempts)?,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            in_flight_since: self.in_flight_since,
            last_error: self.last_error,
            finished_at: self.finished_at,
        })
    }
}

fn insert_item(
    tx: &rusqlite::Connection,
    op: &'static str,
    item: &NewOutboxItem,
    now: i64,
) -> Result<i64> {
    let payload = to_json(op, &item.payload)?;
    tx.cached_execute(
        "INSERT INTO outbox (kind, order_key, payload, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
        params![item.kind, item.order_key, payload, now],
    )
    .map_err(sql(op))?;
    Ok(tx.last_insert_rowid())
}

/// [`Ledger::record_completion`] inside a transaction; `event` is JSON.
pub(super) fn insert_completion(
    tx: &rusqlite::Connection,
    op: &'static str,
    build_key: &str,
    event: &str,
    outbox: &NewOutboxItem,
    now: i64,
) -> Result<bool> {
    let inserted = tx
        .cached_execute(
            "INSERT INTO builds (build_key, event, seen_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (build_key) DO NOTHING",
            params![build_key, event, now],
        )
        .map_err(sql(op))?;
    if inserted == 0 {
        return Ok(false);
    }
    let id = insert_item(tx, op, outbox, now)?;
    tx.cached_execute(
        "UPDATE builds SET outbox_id = ?2 WHERE build_key = ?1",
        params![build_key, id],
    )
    .map_err(sql(op))?;
    Ok(true)
}

impl Ledger {
    /// Records the completion of build `build_key` (e.g. job name + build
    /// number) and enqueues its Gerrit work, in one transaction. Returns
    /// `true` the first time; a duplicate (FINALIZED after COMPLETED, a
    /// document re-sent after a restart) changes nothing and returns `false`.
    pub fn record_completion(
        &self,
        build_key: &str,
        event: &Value,
        outbox: NewOutboxItem,
        now: i64,
    ) -> Result<bool> {
        const OP: &str = "record a build completion";
        let event = to_json(OP, event)?;
        self.write(OP, |tx| {
            insert_completion(tx, OP, build_key, &event, &outbox, now)
        })
    }

    /// Puts work in the outbox, due now; returns its id.
    pub fn enqueue(&self, item: NewOutboxItem, now: i64) -> Result<i64> {
        const OP: &str = "enqueue outbox work";
        self.write(OP, |tx| insert_item(tx, OP, &item, now))
    }

    /// One outbox item by id.
    pub fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        const OP: &str = "read an outbox item";
        let sql_text = format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1");
        let raw = self.read(|conn| {
            conn.query_row(&sql_text, [id], RawItem::from_row)
                .optional()
                .map_err(sql(OP))
        })?;
        raw.map(|r| r.check(OP)).transpose()
    }

    /// Records that an attempt at a pending item starts now, before the
    /// request is sent; see [`OutboxItem::in_flight_since`].
    pub fn mark_in_flight(&self, id: i64, now: i64) -> Result<()> {
        self.transition(
            "mark an outbox item in flight",
            id,
            "in_flight_since = ?2, last_attempt_at = ?2",
            now.into(),
            None,
        )
    }

    /// The item's work is done. Idempotent.
    pub fn mark_done(&self, id: i64, now: i64) -> Result<()> {
        self.transition(
            "mark an outbox item done",
            id,
            "state = 'done', in_flight_since = NULL, finished_at = ?2",
            now.into(),
            Some(OutboxState::Done),
        )
    }

    /// The attempt failed for a passing reason: count it, keep the error,
    /// try again at `next_attempt_at`.
    pub fn mark_retry(&self, id: i64, error: &str, next_attempt_at: i64) -> Result<()> {
        const OP: &str = "schedule an outbox retry";
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                            next_attempt_at = ?3, in_flight_since = NULL
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, error, next_attempt_at],
                )
                .map_err(sql(OP))?;
            check_transition(tx, OP, id, n, None)
        })
    }

    /// The attempt failed without an answer after its request was sent: the
    /// server may still apply it. Counted like [`Ledger::mark_retry`], but
    /// `in_flight_since` stays set (the attempt is in doubt) and the item is
    /// due again at `next_attempt_at`, which the caller puts past the moment
    /// the request can still land.
    pub fn mark_in_doubt(&self, id: i64, error: &str, next_attempt_at: i64) -> Result<()> {
        const OP: &str = "keep an outbox item in doubt";
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                            next_attempt_at = ?3
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, error, next_attempt_at],
                )
                .map_err(sql(OP))?;
            check_transition(tx, OP, id, n, None)
        })
    }

    /// Makes a pending item due at `next_attempt_at` without counting an
    /// attempt; `in_flight_since` is kept (an [`OutboxItem::interrupted`]
    /// attempt stays in doubt until then).
    pub fn defer(&self, id: i64, next_attempt_at: i64) -> Result<()> {
        self.transition(
            "defer an outbox item",
            id,
            "next_attempt_at = ?2",
            next_attempt_at.into(),
            None,
        )
    }

    /// Gives the item up for good (kept for the status page); it no longer
    /// blocks its order key.
    pub fn mark_failed(&self, id: i64, error: &str, now: i64) -> Result<()> {
        const OP: &str = "give up an outbox item";
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "UPDATE outbox SET state = 'failed', last_error = ?2, finished_at = ?3,
                            in_flight_since = NULL
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, error, now],
                )
                .map_err(sql(OP))?;
            check_transition(tx, OP, id, n, Some(OutboxState::Failed))
        })
    }

    /// Updates a pending item with `set` (where `?2` is `value`).
    fn transition(
        &self,
        op: &'static str,
        id: i64,
        set: &str,
        value: rusqlite::types::Value,
        idempotent_in: Option<OutboxState>,
    ) -> Result<()> {
        let sql_text = format!("UPDATE outbox SET {set} WHERE id = ?1 AND state = 'pending'");
        self.write(op, |tx| {
            let n = tx
                .cached_execute(&sql_text, params![id, value])
                .map_err(sql(op))?;
            check_transition(tx, op, id, n, idempotent_in)
        })
    }

    /// Every pending item, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxItem>> {
        self.items(
            "list pending outbox items",
            "WHERE state = 'pending' ORDER BY id",
            None,
        )
    }

    /// The number of pending items.
    pub fn pending_count(&self) -> Result<u64> {
        const OP: &str = "count pending outbox items";
        let n: i64 = self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )
            .map_err(sql(OP))
        })?;
        from_i64(OP, "count", n)
    }

    /// Seconds since the oldest pending item was enqueued (0 if in the
    /// future), `None` if nothing is pending.
    pub fn oldest_pending_age(&self, now: i64) -> Result<Option<i64>> {
        const OP: &str = "read the oldest pending outbox item";
        let oldest: Option<i64> = self.read(|conn| {
            conn.query_row(
                "SELECT MIN(created_at) FROM outbox WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )
            .map_err(sql(OP))
        })?;
        Ok(oldest.map(|t| now.saturating_sub(t).max(0)))
    }

    /// The newest `limit` given-up items, newest first.
    pub fn failed_recent(&self, limit: usize) -> Result<Vec<OutboxItem>> {
        const OP: &str = "list failed outbox items";
        let limit = to_i64(OP, "limit", limit as u64)?;
        self.items(
            OP,
            "WHERE state = 'failed' ORDER BY finished_at DESC, id DESC LIMIT ?1",
            Some(limit),
        )
    }

    fn items(&self, op: &'static str, tail: &str, limit: Option<i64>) -> Result<Vec<OutboxItem>> {
        let sql_text = format!("SELECT {COLUMNS} FROM outbox {tail}");
        let raws = self.read(|conn| {
            let mut stmt = conn.prepare(&sql_text).map_err(sql(op))?;
            let rows = match limit {
                Some(l) => stmt.query_map([l], RawItem::from_row),
                None => stmt.query_map([], RawItem::from_row),
            }
            .map_err(sql(op))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql(op))
        })?;
        raws.into_iter().map(|r| r.check(op)).collect()
    }
}

/// After an `UPDATE ... WHERE state = 'pending'` that changed `n` rows:
/// fine if it changed one, or if the item is already in `idempotent_in`;
/// otherwise say why.
fn check_transition(
    tx: &rusqlite::Connection,
    op: &'static str,
    id: i64,
    n: usize,
    idempotent_in: Option<OutboxState>,
) -> Result<()> {
    if n > 0 {
        return Ok(());
    }
    let state: Option<String> = tx
        .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sql(op))?;
    let idempotent = match idempotent_in {
        Some(OutboxState::Done) => "done",
        Some(OutboxState::Failed) => "failed",
        _ => "",
    };
    match state {
        None => Err(LedgerError::NotFound {
            op,
            what: format!("outbox item {id}"),
        }),
        Some(s) if s == idempotent => Ok(()),
        Some(s) => Err(LedgerError::Invalid {
            op,
            detail: format!("outbox item {id} is {s}, not pending"),
        }),
    }
}
