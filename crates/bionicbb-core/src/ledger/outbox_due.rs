//! Which outbox items are due: the oldest pending item of each order key
//! (the change), once its next attempt time has come. Only that item of a
//! key is ever offered, so a key's items are done in enqueue order.

use rusqlite::{OptionalExtension, params};

use super::outbox::{COLUMNS, RawItem};
use super::{Ledger, LedgerError, OutboxItem, Result, sql, to_i64};

impl Ledger {
    /// The other items of `kind` under `order_key` (the change) that are
    /// pending or done, not failed: what else was or will be posted there.
    pub fn siblings(&self, order_key: &str, kind: &str, except: i64) -> Result<Vec<OutboxItem>> {
        const OP: &str = "read an outbox item's siblings";
        let sql_text = siblings_sql();
        let raw = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql_text).map_err(sql(OP))?;
            let rows = stmt
                .query_map(params![order_key, kind, except], RawItem::from_row)
                .map_err(sql(OP))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql(OP))
        })?;
        raw.into_iter().map(|r| r.check(OP)).collect()
    }

    /// The item to work on now: the oldest pending item that is due and is
    /// the oldest pending item of its order key.
    pub fn next_due(&self, now: i64) -> Result<Option<OutboxItem>> {
        const OP: &str = "pick the next outbox item";
        let sql_text = format!(
            "SELECT {COLUMNS} FROM outbox o
             WHERE state = 'pending' AND next_attempt_at <= ?1
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending'
                               AND p.order_key = o.order_key AND p.id < o.id)
             ORDER BY id LIMIT 1"
        );
        let raw = self.read(|conn| {
            conn.query_row(&sql_text, [now], RawItem::from_row)
                .optional()
                .map_err(sql(OP))
        })?;
        raw.map(|r| r.check(OP)).transpose()
    }

    /// When the next item becomes due (possibly in the past), `None` if the
    /// outbox is empty: how long the worker may sleep.
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        self.next_due_at_except(&[])
    }

    /// [`Ledger::next_due_at`] leaving out the keys in `busy` (those with an
    /// item in hand: their next item waits for it, not for a time).
    pub fn next_due_at_except(&self, busy: &[&str]) -> Result<Option<i64>> {
        const OP: &str = "read when outbox work is due";
        let busy = busy_json(OP, busy)?;
        self.read(|conn| {
            conn.query_row(
                "SELECT MIN(next_attempt_at) FROM outbox o
                 WHERE state = 'pending'
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending'
                                   AND p.order_key = o.order_key AND p.id < o.id)
                   AND o.order_key NOT IN (SELECT value FROM json_each(?1))",
                [busy],
                |row| row.get(0),
            )
            .map_err(sql(OP))
        })
    }

    /// Up to `limit` items to work on now, oldest first, at most one per
    /// order key: the oldest pending item of each key, if due, leaving out
    /// the keys in `busy` (those with an item in hand). What a worker that
    /// runs several items at once asks for.
    pub fn due_items(&self, now: i64, busy: &[&str], limit: usize) -> Result<Vec<OutboxItem>> {
        const OP: &str = "pick due outbox items";
        let limit = to_i64(OP, "limit", limit as u64)?;
        let busy = busy_json(OP, busy)?;
        let sql_text = due_items_sql();
        let raws = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql_text).map_err(sql(OP))?;
            let rows = stmt
                .query_map(params![now, busy, limit], RawItem::from_row)
                .map_err(sql(OP))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql(OP))
        })?;
        raws.into_iter().map(|r| r.check(OP)).collect()
    }
}

/// [`Ledger::siblings`]' query: the rows of one change, found by the
/// `outbox_order` index (done rows included, which a month of history
/// makes many; never a scan of the whole outbox).
pub(super) fn siblings_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM outbox
         WHERE order_key = ?1 AND kind = ?2 AND id != ?3 AND state != 'failed'
         ORDER BY id"
    )
}

/// [`Ledger::due_items`]' query: pending rows in id order through the
/// `outbox_pending_id` index, so done rows (a month of history) are never
/// read to find the few that are due.
pub(super) fn due_items_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM outbox o
         WHERE state = 'pending' AND next_attempt_at <= ?1
           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending'
                           AND p.order_key = o.order_key AND p.id < o.id)
           AND o.order_key NOT IN (SELECT value FROM json_each(?2))
         ORDER BY id LIMIT ?3"
    )
}

/// The busy keys as a JSON array, for `json_each`.
fn busy_json(op: &'static str, busy: &[&str]) -> Result<String> {
    serde_json::to_string(busy).map_err(|source| LedgerError::Json { op, source })
}
