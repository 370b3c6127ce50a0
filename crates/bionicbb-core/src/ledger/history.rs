//! What the ledger keeps about one patch set, read for `bionicbb:why`:
//! its events, one effect by key (a vouch, an explained skip), the reviews
//! of it still in the outbox, and whether older events were pruned (the
//! events table keeps only the newest, see
//! [`LedgerOptions::event_cap`](super::LedgerOptions)). Read-only.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::effects::EffectKey;
use super::{EventRecord, Ledger, OutboxItem, Result, from_json, sql, to_i64};

/// One effect as stored (see `effects.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEffect {
    pub kind: String,
    /// `started`, `done` or `failed`.
    pub state: String,
    /// What was recorded when it was begun.
    pub payload: Value,
    /// What it achieved, once done.
    pub result: Option<Value>,
}

impl Ledger {
    /// The events about patch set `patch_set` of change `change_number`
    /// the ledger still keeps, oldest first.
    pub fn events_of(&self, change_number: u64, patch_set: u32) -> Result<Vec<EventRecord>> {
        const OP: &str = "read the events of a patch set";
        let change = to_i64(OP, "change number", change_number)?;
        self.events_where(
            OP,
            "WHERE change_number = ?1 AND patch_set = ?2 ORDER BY id",
            params![change, patch_set],
        )
    }

    /// When older events were pruned: the time of the oldest event kept
    /// (events before it are gone). `None` while every event ever recorded
    /// is kept.
    pub fn events_kept_since(&self) -> Result<Option<i64>> {
        const OP: &str = "read the oldest event kept";
        let oldest: Option<(i64, i64)> = self.read(|conn| {
            conn.query_row("SELECT id, at FROM events ORDER BY id LIMIT 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(sql(OP))
        })?;
        // Ids count from 1 and are never reused: a first id above 1 means
        // the rows before it were pruned.
        Ok(oldest.filter(|(id, _)| *id > 1).map(|(_, at)| at))
    }

    /// The effect stored under `key`, in whatever state; `None` when it
    /// was never begun (or was pruned).
    pub fn effect(&self, key: &EffectKey) -> Result<Option<StoredEffect>> {
        const OP: &str = "read an effect";
        let row: Option<(String, String, String, Option<String>)> = self.read(|conn| {
            conn.query_row(
                "SELECT kind, state, payload, result FROM effects WHERE key = ?1",
                [key.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(sql(OP))
        })?;
        row.map(|(kind, state, payload, result)| {
            Ok(StoredEffect {
                kind,
                state,
                payload: from_json(OP, &payload)?,
                result: result.map(|r| from_json(OP, &r)).transpose()?,
            })
        })
        .transpose()
    }

    /// The pending outbox items about patch set `patch_set` of change
    /// `change_number` (ordered by the change's number, their payload
    /// naming the patch set), oldest first.
    pub fn pending_of(&self, change_number: u64, patch_set: u32) -> Result<Vec<OutboxItem>> {
        let order_key = change_number.to_string();
        Ok(self
            .pending()?
            .into_iter()
            .filter(|item| item.order_key == order_key)
            .filter(|item| {
                item.payload.get("patch_set").and_then(Value::as_u64) == Some(u64::from(patch_set))
            })
            .collect())
    }
}
