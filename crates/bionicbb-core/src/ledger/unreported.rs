//! Builds the bot triggered whose result build-listener never saw.
//!
//! Jenkins' Notification plugin sends each document once: when the
//! COMPLETED and FINALIZED documents are lost (build-listener down, a
//! dropped connection), nothing tells build-listener the result. So it
//! lists the build effects gmail-listener recorded ([`Ledger::unreported_builds`]):
//! done, owning a Jenkins queue item or build (`jenkins_owned`), with no
//! completion of an owned build in `builds`, and not closed; and asks
//! Jenkins about them. A completion recorded from Jenkins' answer goes
//! through [`Ledger::record_completion`] like a notification, so whichever
//! comes second is a duplicate. An effect whose queue item was cancelled, or
//! whose build no longer exists, is closed ([`Ledger::close_unreported`]) and
//! not listed again.

use std::collections::BTreeMap;

use rusqlite::params;
use serde_json::Value;

use super::effects::EffectKey;
use super::owned::JenkinsItem;
use super::{CachedExecute, Ledger, Result, from_json, sql};

/// A triggered build whose result was not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreportedBuild {
    pub key: EffectKey,
    /// The job's full name (`folder/name`), as triggered.
    pub job: String,
    /// The parameters sent with the trigger.
    pub params: BTreeMap<String, String>,
    /// When the trigger was begun, unix seconds.
    pub started_at: i64,
    /// What the effect owns on Jenkins, builds first (by number), then
    /// queue items.
    pub items: Vec<JenkinsItem>,
}

impl Ledger {
    /// The build effects begun between `oldest` and `newest` (unix seconds,
    /// both included) that are done, own a Jenkins queue item or build, have
    /// no owned build whose completion was recorded, and were not closed;
    /// oldest first, at most `limit`. An effect whose payload names no job
    /// is left out.
    pub fn unreported_builds(
        &self,
        oldest: i64,
        newest: i64,
        limit: usize,
    ) -> Result<Vec<UnreportedBuild>> {
        const OP: &str = "list the triggered builds without a result";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT e.key, e.payload, e.started_at FROM effects e
                     WHERE e.kind = 'build' AND e.state = 'done'
                       AND e.started_at BETWEEN ?1 AND ?2
                       AND EXISTS (SELECT 1 FROM jenkins_owned o WHERE o.effect_key = e.key)
                       AND NOT EXISTS (
                           SELECT 1 FROM jenkins_owned o
                           JOIN builds b ON b.build_key = 'job:' || substr(o.item, 7)
                           WHERE o.effect_key = e.key AND substr(o.item, 1, 6) = 'build:')
                       AND NOT EXISTS (
                           SELECT 1 FROM unreported_closed c WHERE c.effect_key = e.key)
                     ORDER BY e.started_at, e.key
                     LIMIT ?3",
                )
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map(params![oldest, newest, limit], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(sql(OP))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql(OP))?;
            let mut items_of = conn
                .prepare("SELECT item FROM jenkins_owned WHERE effect_key = ?1")
                .map_err(sql(OP))?;
            let mut out = Vec::new();
            for (key, payload, started_at) in rows {
                let payload = from_json(OP, &payload)?;
                let Some(job) = payload.get("job").and_then(Value::as_str) else {
                    continue;
                };
                let params = payload
                    .get("params")
                    .and_then(Value::as_object)
                    .map(|map| {
                        map.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut items = super::owned::owned_items(&mut items_of, &key, OP)?;
                items.sort_by_key(|item| match item {
                    JenkinsItem::Build { number, .. } => (0, *number),
                    JenkinsItem::Queue(id) => (1, *id),
                });
                out.push(UnreportedBuild {
                    key: EffectKey::from_stored(key),
                    job: job.to_string(),
                    params,
                    started_at,
                    items,
                });
            }
            Ok(out)
        })
    }

    /// Records that effect `key`'s build will never have a result
    /// (`reason`: its queue item was cancelled, its build is gone), so
    /// [`Ledger::unreported_builds`] no longer lists it. True the first time.
    pub fn close_unreported(&self, key: &EffectKey, reason: &str, now: i64) -> Result<bool> {
        const OP: &str = "close a triggered build without a result";
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "INSERT OR IGNORE INTO unreported_closed (effect_key, reason, closed_at)
                     VALUES (?1, ?2, ?3)",
                    params![key.as_str(), reason, now],
                )
                .map_err(sql(OP))?;
            Ok(n == 1)
        })
    }
}
