//! What the status page and the metrics read: recent events, per-component
//! status, and counters. Both daemons write here, so one of them can report
//! everything, and counts survive restarts.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde_json::Value;

use super::{
    CachedExecute, Ledger, LedgerError, Result, from_i64, from_json, sql, to_i64, to_json,
};

/// One event as the status page shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    /// Unix seconds.
    pub at: i64,
    /// Where it came from: `"gmail"`, `"jenkins"` or `"drop-rejection"`.
    pub source: String,
    /// One line for humans.
    pub summary: String,
    pub change_number: Option<u64>,
    pub patch_set: Option<u32>,
    /// What was decided about it.
    pub decisions: Value,
    /// What it is about, as its source knew it; `None` in events recorded
    /// before the ledger kept it, and from sources that know no more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<EventDetails>,
}

/// What an event is about, beyond its change number and patch set: the
/// change as Gerrit describes it, and who acted. Stored as JSON, so a
/// field added later reads as absent in older rows. Every text came from
/// the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EventDetails {
    /// Gerrit's message type of the mail (`comment`, `newpatchset`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Who acted, as the mail names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The change's subject (the first line of its commit message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The change's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The `bionicbb:` commands of a comment, as written (`bionicbb:retry`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

/// An `events` row as stored: `(at, source, summary, change_number,
/// patch_set, decisions, details)`.
type EventRow = (
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
);

impl Ledger {
    /// Appends an event and prunes the log to the newest
    /// [`LedgerOptions::event_cap`](super::LedgerOptions) events.
    pub fn record_event(&self, event: &EventRecord) -> Result<()> {
        const OP: &str = "record an event";
        let cap = self.inner.options.event_cap;
        self.write(OP, |tx| insert_event(tx, OP, event, cap))
    }

    /// The newest `limit` events, newest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<EventRecord>> {
        const OP: &str = "read recent events";
        let limit = to_i64(OP, "limit", limit as u64)?;
        self.events_where(OP, "ORDER BY id DESC LIMIT ?1", [limit])
    }

    /// The events `tail` (a `WHERE` and `ORDER BY` clause over `params`)
    /// selects, in its order.
    pub(super) fn events_where<P: rusqlite::Params>(
        &self,
        op: &'static str,
        tail: &str,
        params: P,
    ) -> Result<Vec<EventRecord>> {
        let sql_text = format!(
            "SELECT at, source, summary, change_number, patch_set, decisions, details
             FROM events {tail}"
        );
        let rows: Vec<EventRow> = self.read(|conn| {
            let mut stmt = conn.prepare(&sql_text).map_err(sql(op))?;
            let rows = stmt
                .query_map(params, |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                })
                .map_err(sql(op))?;
            rows.collect::<rusqlite::Result<Vec<EventRow>>>()
                .map_err(sql(op))
        })?;
        rows.into_iter()
            .map(
                |(at, source, summary, change, patch_set, decisions, details)| {
                    Ok(EventRecord {
                        at,
                        source,
                        summary,
                        change_number: change
                            .map(|n| from_i64(op, "change number", n))
                            .transpose()?,
                        patch_set: patch_set
                            .map(|n| from_i64(op, "patch set", n))
                            .transpose()?,
                        decisions: from_json(op, &decisions)?,
                        // Details are for display: unreadable ones (written by
                        // some later version) are left out, not an error.
                        details: details.and_then(|text| serde_json::from_str(&text).ok()),
                    })
                },
            )
            .collect()
    }

    /// Sets one status value of a component (e.g. `("gmail", "last_poll_at")`),
    /// replacing the previous one.
    pub fn set_status(&self, component: &str, key: &str, value: &Value, now: i64) -> Result<()> {
        const OP: &str = "set a status value";
        let text = to_json(OP, value)?;
        self.write(OP, |tx| {
            tx.cached_execute(
                "INSERT INTO status (component, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (component, key) DO UPDATE
                   SET value = excluded.value, updated_at = excluded.updated_at",
                params![component, key, text, now],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }

    /// Every status value of one component, by key.
    pub fn status(&self, component: &str) -> Result<BTreeMap<String, Value>> {
        Ok(self
            .status_rows(Some(component))?
            .remove(component)
            .unwrap_or_default())
    }

    /// Every status value, by component then key.
    pub fn all_status(&self) -> Result<BTreeMap<String, BTreeMap<String, Value>>> {
        self.status_rows(None)
    }

    fn status_rows(
        &self,
        component: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeMap<String, Value>>> {
        const OP: &str = "read status";
        let rows: Vec<(String, String, String)> = self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT component, key, value FROM status
                     WHERE ?1 IS NULL OR component = ?1",
                )
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map([component], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(sql(OP))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql(OP))
        })?;
        let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        for (component, key, value) in rows {
            out.entry(component)
                .or_default()
                .insert(key, from_json(OP, &value)?);
        }
        Ok(out)
    }

    /// Adds `by` to a counter. `labels` is the metric's label set as the
    /// caller renders it (e.g. `job="presubmit",status="SUCCESS"`); the
    /// ledger only keys on it. Saturates instead of overflowing.
    pub fn bump_counter(&self, name: &str, labels: &str, by: u64) -> Result<()> {
        const OP: &str = "bump a counter";
        self.write(OP, |tx| bump(tx, OP, name, labels, by))
    }

    /// Every counter as `(name, labels, value)`, sorted by name then labels.
    pub fn counters(&self) -> Result<Vec<(String, String, u64)>> {
        const OP: &str = "read counters";
        let rows: Vec<(String, String, i64)> = self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT name, labels, value FROM counters ORDER BY name, labels")
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .map_err(sql(OP))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql(OP))
        })?;
        rows.into_iter()
            .map(|(name, labels, value)| Ok((name, labels, from_i64(OP, "counter", value)?)))
            .collect()
    }
}

/// Appends an event and prunes the log to the newest `cap` events.
pub(super) fn insert_event(
    tx: &Connection,
    op: &'static str,
    event: &EventRecord,
    cap: usize,
) -> Result<()> {
    let decisions = to_json(op, &event.decisions)?;
    let change = event
        .change_number
        .map(|n| to_i64(op, "change number", n))
        .transpose()?;
    let details = event
        .details
        .as_ref()
        .map(|d| serde_json::to_string(d).map_err(|source| LedgerError::Json { op, source }))
        .transpose()?;
    let cap = to_i64(op, "event cap", cap as u64)?;
    tx.cached_execute(
        "INSERT INTO events (at, source, summary, change_number, patch_set, decisions, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            event.at,
            event.source,
            event.summary,
            change,
            event.patch_set,
            decisions,
            details
        ],
    )
    .map_err(sql(op))?;
    tx.cached_execute(
        "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC
                                          LIMIT 1 OFFSET ?1)",
        [cap],
    )
    .map_err(sql(op))?;
    Ok(())
}

/// Adds `by` to a counter, saturating.
pub(super) fn bump(
    tx: &Connection,
    op: &'static str,
    name: &str,
    labels: &str,
    by: u64,
) -> Result<()> {
    let by = i64::try_from(by).unwrap_or(i64::MAX);
    tx.cached_execute(
        "INSERT INTO counters (name, labels, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, labels) DO UPDATE
           SET value = CASE WHEN value > 9223372036854775807 - excluded.value
                            THEN 9223372036854775807
                            ELSE value + excluded.value END",
        params![name, labels, by],
    )
    .map_err(sql(op))?;
    Ok(())
}
