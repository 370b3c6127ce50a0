//! What the status page reads about builds: the triggers gmail-listener
//! recorded (build effects, with what they own on Jenkins), and the
//! completions build-listener recorded (with the review each led to).
//! Read-only; the page joins the two.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::effects::EffectKey;
use super::outbox::{COLUMNS, RawItem};
use super::owned::JenkinsItem;
use super::{Ledger, OutboxItem, Result, from_json, sql, to_i64};

/// Where a trigger stands in the effect protocol (see `effects.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    /// Begun, its outcome not known yet (being sent, or in doubt).
    Started,
    /// Jenkins took it.
    Done,
    /// It certainly did not reach Jenkins (`error` says why).
    Failed,
}

/// A build the bot triggered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trigger {
    pub key: EffectKey,
    /// The patch set it builds, from the key (`None` if unreadable).
    pub change_number: Option<u64>,
    pub patch_set: Option<u32>,
    /// The job's full name, as triggered.
    pub job: String,
    pub state: TriggerState,
    /// When it was begun and finished, unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// The Jenkins queue item it owns, once Jenkins answered.
    pub queue_id: Option<u64>,
    /// The build it owns, once known (the highest number, if several).
    pub build_number: Option<u64>,
    /// Why it will have no result, when build-listener found that out
    /// (a cancelled queue item, a build Jenkins no longer has).
    pub closed: Option<String>,
}

/// A build whose completion (or, with `post_started`, start) was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeenBuild {
    pub build_key: String,
    /// When it was recorded, unix seconds.
    pub seen_at: i64,
    /// What build-listener kept of the document (`job`, `number`, `phase`,
    /// `status`, `url`, `change`, `patch_set`...).
    pub event: Value,
    /// The review it led to, while the outbox keeps it.
    pub review: Option<OutboxItem>,
}

impl Ledger {
    /// The newest `limit` build triggers, newest first; only those of
    /// change `change` when given.
    pub fn recent_triggers(&self, change: Option<u64>, limit: usize) -> Result<Vec<Trigger>> {
        const OP: &str = "list recent build triggers";
        let limit = to_i64(OP, "limit", limit as u64)?;
        let (from, to) = EffectKey::build_range(change, None);
        type Row = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let (rows, owned) = self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT e.key, e.payload, e.state, e.started_at, e.finished_at, e.error,
                            c.reason
                     FROM effects e LEFT JOIN unreported_closed c ON c.effect_key = e.key
                     WHERE e.kind = 'build' AND e.key >= ?1 AND e.key < ?2
                     ORDER BY e.started_at DESC, e.key DESC LIMIT ?3",
                )
                .map_err(sql(OP))?;
            let rows: Vec<Row> = stmt
                .query_map(params![from, to, limit], |row| {
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
                .map_err(sql(OP))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql(OP))?;
            let mut items_of = conn
                .prepare("SELECT item FROM jenkins_owned WHERE effect_key = ?1")
                .map_err(sql(OP))?;
            let mut owned = Vec::with_capacity(rows.len());
            for row in &rows {
                let items: Vec<String> = items_of
                    .query_map([&row.0], |r| r.get(0))
                    .map_err(sql(OP))?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(sql(OP))?;
                owned.push(items);
            }
            Ok((rows, owned))
        })?;
        rows.into_iter()
            .zip(owned)
            .map(
                |((key, payload, state, started_at, finished_at, error, closed), owned)| {
                    let payload = from_json(OP, &payload)?;
                    let job = payload
                        .get("job")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let (change_number, patch_set) = patch_set_of(&key);
                    let items: Vec<JenkinsItem> =
                        owned.iter().filter_map(|t| JenkinsItem::parse(t)).collect();
                    Ok(Trigger {
                        change_number,
                        patch_set,
                        state: match state.as_str() {
                            "done" => TriggerState::Done,
                            "failed" => TriggerState::Failed,
                            _ => TriggerState::Started,
                        },
                        started_at,
                        finished_at,
                        error,
                        queue_id: items.iter().find_map(|i| match i {
                            JenkinsItem::Queue(id) => Some(*id),
                            JenkinsItem::Build { .. } => None,
                        }),
                        build_number: items
                            .iter()
                            .filter_map(|i| match i {
                                JenkinsItem::Build { job: j, number } if *j == job => Some(*number),
                                _ => None,
                            })
                            .max(),
                        closed,
                        job,
                        key: EffectKey::from_stored(key),
                    })
                },
            )
            .collect()
    }

    /// The newest `limit` builds whose completion was recorded, newest
    /// first, each with its review while the outbox keeps it; only those
    /// naming change `change` when given.
    pub fn recent_builds(&self, change: Option<u64>, limit: usize) -> Result<Vec<SeenBuild>> {
        const OP: &str = "list recent builds";
        let limit = to_i64(OP, "limit", limit as u64)?;
        let change = change.map(|n| n.to_string());
        let rows: Vec<(String, String, i64, Option<RawItem>)> = self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT build_key, event, seen_at, outbox_id FROM builds
                     WHERE ?1 IS NULL OR json_extract(event, '$.change') = ?1
                     ORDER BY seen_at DESC, rowid DESC LIMIT ?2",
                )
                .map_err(sql(OP))?;
            let rows: Vec<(String, String, i64, Option<i64>)> = stmt
                .query_map(params![change, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .map_err(sql(OP))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql(OP))?;
            let mut item = conn
                .prepare(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))
                .map_err(sql(OP))?;
            let mut out = Vec::with_capacity(rows.len());
            for (key, event, seen_at, outbox_id) in rows {
                let review = match outbox_id {
                    Some(id) => item
                        .query_row([id], RawItem::from_row)
                        .optional()
                        .map_err(sql(OP))?,
                    None => None,
                };
                out.push((key, event, seen_at, review));
            }
            Ok(out)
        })?;
        rows.into_iter()
            .map(|(build_key, event, seen_at, review)| {
                Ok(SeenBuild {
                    build_key,
                    seen_at,
                    event: from_json(OP, &event)?,
                    review: review.map(|r| r.check(OP)).transpose()?,
                })
            })
            .collect()
    }
}

/// The change number and patch set of a build effect's key
/// (`build:[change,patch_set,job,params]`, perhaps followed by `+...`).
pub(super) fn patch_set_of(key: &str) -> (Option<u64>, Option<u32>) {
    let Some(parts) = key.strip_prefix("build:") else {
        return (None, None);
    };
    let first = serde_json::Deserializer::from_str(parts)
        .into_iter::<Value>()
        .next()
        .and_then(|v| v.ok());
    let at = |i: usize| {
        first
            .as_ref()
            .and_then(|v| v.get(i))
            .and_then(Value::as_u64)
    };
    (at(0), at(1).and_then(|n| u32::try_from(n).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_give_their_patch_set() {
        let params = std::collections::BTreeMap::from([("A".to_string(), "1".to_string())]);
        let key = EffectKey::build(123456, 2, "folder/job", &params);
        assert_eq!(patch_set_of(key.as_str()), (Some(123456), Some(2)));
        let retry = key.with("message-id");
        assert_eq!(patch_set_of(retry.as_str()), (Some(123456), Some(2)));
        assert_eq!(patch_set_of("mail:[\"x\",0]"), (None, None));
        assert_eq!(patch_set_of("build:not json"), (None, None));
    }
}
