//! Which Jenkins queue items and builds each build effect owns.
//!
//! A trigger that answered owns the queue item Jenkins named. A trigger
//! whose answer was lost may adopt what a lookup finds on Jenkins, but only
//! a queue item or build that no *other* effect owns: the same job and
//! parameters legitimately run twice (an upload and a `retry` of the same
//! patch set), so parameters alone are not an identity. Jenkins may merge
//! two triggers into one waiting item and name it in both answers; then both
//! effects own it (that is what Jenkins did), and neither can adopt it later.

use std::fmt;

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::effects::{EffectKey, finish_in};
use super::histograms::observe_in;
use super::status::bump;
use super::{CachedExecute, Ledger, Result, sql, to_json, with_extras};

/// Something on Jenkins an effect can own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JenkinsItem {
    /// A queue item, by its id (unique across the Jenkins instance).
    Queue(u64),
    /// A build, by its job's full name (`folder/name`) and number.
    Build { job: String, number: u64 },
}

impl JenkinsItem {
    /// Reads the stored text back (see [`fmt::Display`]); `None` if it is
    /// neither form.
    pub fn parse(text: &str) -> Option<JenkinsItem> {
        if let Some(id) = text.strip_prefix("queue:") {
            return id.parse().ok().map(JenkinsItem::Queue);
        }
        let (job, number) = text.strip_prefix("build:")?.rsplit_once('#')?;
        if job.is_empty() {
            return None;
        }
        Some(JenkinsItem::Build {
            job: job.to_string(),
            number: number.parse().ok()?,
        })
    }
}

impl fmt::Display for JenkinsItem {
    /// The stored text: `queue:<id>` or `build:<job>#<number>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JenkinsItem::Queue(id) => write!(f, "queue:{id}"),
            JenkinsItem::Build { job, number } => write!(f, "build:{job}#{number}"),
        }
    }
}

/// What a trigger's answer settles, for [`Ledger::record_trigger`].
#[derive(Debug, Clone)]
pub struct TriggerRecord<'a> {
    /// The build effect, begun before the trigger.
    pub key: &'a EffectKey,
    /// What Jenkins answered with (or a lookup found), owned from now on.
    pub items: &'a [JenkinsItem],
    /// The effect's result.
    pub result: &'a Value,
    /// Counters bumped by one: `(name, labels)`.
    pub counters: &'a [(&'a str, String)],
    /// Observations: `(histogram, labels, seconds)`.
    pub observed: &'a [(&'a str, String, f64)],
}

impl Ledger {
    /// Records a trigger that reached Jenkins, in one transaction (one
    /// commit to wait for, not one per step): effect `key` owns the items
    /// and is done with its result, and the trigger is counted. A failure
    /// to count is logged and does not undo the rest. A crash before the
    /// commit leaves the effect begun and not done, as a crash between the
    /// trigger and its answer would: the next try looks for what the
    /// trigger left before sending it again.
    pub fn record_trigger(&self, t: TriggerRecord<'_>, now: i64) -> Result<()> {
        const OP: &str = "record a trigger";
        let result = to_json(OP, t.result)?;
        self.write(OP, |tx| {
            insert(tx, t.key, t.items, OP)?;
            finish_in(tx, OP, t.key, &result, now)?;
            with_extras(tx, OP, "count a trigger", || {
                for (name, labels) in t.counters {
                    bump(tx, OP, name, labels, 1)?;
                }
                for (name, labels, seconds) in t.observed {
                    observe_in(tx, OP, name, labels, *seconds)?;
                }
                Ok(())
            })
        })
    }

    /// Records that effect `key` (begun before) owns `items`.
    pub fn own_jenkins_items(&self, key: &EffectKey, items: &[JenkinsItem]) -> Result<()> {
        const OP: &str = "record the Jenkins items an effect owns";
        self.write(OP, |tx| insert(tx, key, items, OP))
    }

    /// True when an effect other than `key` owns any of `items`.
    pub fn owned_by_another(&self, key: &EffectKey, items: &[JenkinsItem]) -> Result<bool> {
        const OP: &str = "look up who owns a Jenkins item";
        self.read(|conn| {
            for item in items {
                let other: Option<String> = conn
                    .query_row(
                        "SELECT effect_key FROM jenkins_owned
                         WHERE item = ?1 AND effect_key <> ?2 LIMIT 1",
                        params![item.to_string(), key.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql(OP))?;
                if other.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Adopts `items` for effect `key` if, checked in the same transaction,
    /// no other effect owns any of them. False (nothing recorded) otherwise.
    pub fn adopt_jenkins_items(&self, key: &EffectKey, items: &[JenkinsItem]) -> Result<bool> {
        const OP: &str = "adopt Jenkins items for an effect";
        self.write(OP, |tx| {
            for item in items {
                let taken: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM jenkins_owned
                                        WHERE item = ?1 AND effect_key <> ?2)",
                        params![item.to_string(), key.as_str()],
                        |row| row.get(0),
                    )
                    .map_err(sql(OP))?;
                if taken {
                    return Ok(false);
                }
            }
            insert(tx, key, items, OP)?;
            Ok(true)
        })
    }

    /// The items effect `key` owns, in their stored text, sorted.
    pub fn jenkins_items_of(&self, key: &EffectKey) -> Result<Vec<String>> {
        const OP: &str = "list the Jenkins items of an effect";
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT item FROM jenkins_owned WHERE effect_key = ?1 ORDER BY item")
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map([key.as_str()], |row| row.get(0))
                .map_err(sql(OP))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sql(OP))
        })
    }

    /// How many build effects with exactly `payload` (job and parameters, as
    /// recorded by `begin_effect`) are started and own nothing yet: triggers
    /// whose outcome is unknown (the caller's own included). Each of them
    /// may have left one item or build on Jenkins.
    pub fn unresolved_twins(&self, payload: &serde_json::Value) -> Result<u64> {
        const OP: &str = "count unresolved triggers";
        let text = super::to_json(OP, payload)?;
        self.read(|conn| {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM effects e
                     WHERE e.kind = 'build' AND e.state = 'started' AND e.payload = ?1
                       AND NOT EXISTS (SELECT 1 FROM jenkins_owned o WHERE o.effect_key = e.key)",
                    [text],
                    |row| row.get(0),
                )
                .map_err(sql(OP))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

fn insert(
    tx: &rusqlite::Connection,
    key: &EffectKey,
    items: &[JenkinsItem],
    op: &'static str,
) -> Result<()> {
    for item in items {
        tx.cached_execute(
            "INSERT OR IGNORE INTO jenkins_owned (item, effect_key) VALUES (?1, ?2)",
            params![item.to_string(), key.as_str()],
        )
        .map_err(sql(op))?;
    }
    Ok(())
}

/// The items the effect stored as `key` owns, parsed (an unreadable one
/// is left out), read with `items_of`, a prepared
/// `SELECT item FROM jenkins_owned WHERE effect_key = ?1`; the order is
/// the caller's.
pub(super) fn owned_items(
    items_of: &mut rusqlite::Statement<'_>,
    key: &str,
    op: &'static str,
) -> Result<Vec<JenkinsItem>> {
    let texts = items_of
        .query_map([key], |row| row.get::<_, String>(0))
        .map_err(sql(op))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql(op))?;
    Ok(texts.iter().filter_map(|t| JenkinsItem::parse(t)).collect())
}
