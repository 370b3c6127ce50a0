//! The bot's cancels of its own superseded builds, one per build effect.
//!
//! gmail-listener lists the builds of a change it may cancel
//! ([`Ledger::cancel_targets`]: triggered, owning a Jenkins item, without
//! a recorded completion, not closed and not cancelled yet), begins each
//! cancel ([`Ledger::begin_cancel`]) *before* it asks Jenkins, and marks it
//! done or failed after. A crash in between leaves it started: the next
//! attempt does it again (cancelling a queue item or stopping a build
//! twice changes nothing on Jenkins). build-listener looks up whether a
//! build it reports was stopped by the bot ([`Ledger::stopped_by_bot`]),
//! by the queue item it came from or by its number: the cancel is
//! recorded before the stop, so before the build's aborted result can
//! arrive.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::effects::EffectKey;
use super::overview::patch_set_of;
use super::owned::JenkinsItem;
use super::{CachedExecute, Ledger, Result, from_json, sql};

/// A build the bot may cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    pub key: EffectKey,
    /// The patch set it builds.
    pub patch_set: u32,
    /// The job's full name, as triggered.
    pub job: String,
    /// When it was triggered, unix seconds.
    pub started_at: i64,
    /// What the effect owns on Jenkins, builds first (highest number
    /// first), then queue items.
    pub items: Vec<JenkinsItem>,
}

/// The answer of [`Ledger::begin_cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginCancel {
    /// Recorded as started: ask Jenkins.
    New,
    /// Started before and never marked (a crash, a passing fault): ask
    /// Jenkins again.
    Again,
    /// Done or failed for good before: nothing to do.
    Settled,
}

/// A build the bot stopped (or whose queue item it cancelled), as
/// build-listener sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedBuild {
    /// The patch set whose build superseded it; `None` when the change
    /// was closed.
    pub superseded_by: Option<u32>,
    /// The result its completion carries (`ABORTED` when the stop ended
    /// it; another when it finished first).
    pub status: Option<String>,
}

impl Ledger {
    /// The build effects of change `change_number` the bot may cancel: of
    /// patch sets below `below` (all of them when `None`), done (Jenkins
    /// took the trigger), owning a Jenkins item, with no completion of the
    /// build they own or of one from their queue item recorded, not found
    /// without a result by build-listener, and whose cancel is not settled
    /// (a cancel begun and never marked is listed again). Oldest first.
    pub fn cancel_targets(
        &self,
        change_number: u64,
        below: Option<u32>,
    ) -> Result<Vec<CancelTarget>> {
        const OP: &str = "list the builds to cancel";
        let (from, to) = EffectKey::build_range(Some(change_number), None);
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT e.key, e.payload, e.started_at FROM effects e
                     WHERE e.key >= ?1 AND e.key < ?2 AND e.kind = 'build' AND e.state = 'done'
                       AND EXISTS (SELECT 1 FROM jenkins_owned o WHERE o.effect_key = e.key)
                       AND NOT EXISTS (
                           SELECT 1 FROM jenkins_owned o
                           JOIN builds b ON b.build_key = 'job:' || substr(o.item, 7)
                           WHERE o.effect_key = e.key AND substr(o.item, 1, 6) = 'build:')
                       AND NOT EXISTS (
                           SELECT 1 FROM jenkins_owned o
                           JOIN builds b
                             ON json_extract(b.event, '$.queue_id')
                                = CAST(substr(o.item, 7) AS INTEGER)
                           WHERE o.effect_key = e.key AND substr(o.item, 1, 6) = 'queue:')
                       AND NOT EXISTS (
                           SELECT 1 FROM unreported_closed c WHERE c.effect_key = e.key)
                       AND NOT EXISTS (
                           SELECT 1 FROM cancels x
                           WHERE x.effect_key = e.key AND x.state <> 'started')
                     ORDER BY e.started_at, e.key",
                )
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map([&from, &to], |row| {
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
                let Some(patch_set) = patch_set_of(&key).1 else {
                    continue;
                };
                if below.is_some_and(|below| patch_set >= below) {
                    continue;
                }
                let payload = from_json(OP, &payload)?;
                let Some(job) = payload.get("job").and_then(Value::as_str) else {
                    continue;
                };
                let mut items = super::owned::owned_items(&mut items_of, &key, OP)?;
                items.sort_by_key(|item| match item {
                    JenkinsItem::Build { number, .. } => (0, u64::MAX - number),
                    JenkinsItem::Queue(id) => (1, *id),
                });
                out.push(CancelTarget {
                    key: EffectKey::from_stored(key),
                    patch_set,
                    job: job.to_string(),
                    started_at,
                    items,
                });
            }
            Ok(out)
        })
    }

    /// Begins the cancel of build effect `key` of change `change_number`,
    /// superseded by patch set `superseded_by` (`None`: the change closed);
    /// see [`BeginCancel`]. A cancel begun again keeps what superseded it
    /// first.
    pub fn begin_cancel(
        &self,
        key: &EffectKey,
        change_number: u64,
        superseded_by: Option<u32>,
        now: i64,
    ) -> Result<BeginCancel> {
        const OP: &str = "begin a cancel";
        let change = super::to_i64(OP, "change number", change_number)?;
        self.write(OP, |tx| {
            let state: Option<String> = tx
                .query_row(
                    "SELECT state FROM cancels WHERE effect_key = ?1",
                    [key.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql(OP))?;
            match state.as_deref() {
                None => {
                    tx.cached_execute(
                        "INSERT INTO cancels
                             (effect_key, change_number, superseded_by, state, started_at)
                         VALUES (?1, ?2, ?3, 'started', ?4)",
                        params![key.as_str(), change, superseded_by, now],
                    )
                    .map_err(sql(OP))?;
                    Ok(BeginCancel::New)
                }
                Some("started") => Ok(BeginCancel::Again),
                Some(_) => Ok(BeginCancel::Settled),
            }
        })
    }

    /// Marks the cancel of `key` settled: `done` when Jenkins cancelled or
    /// stopped it, else failed for good; `outcome` says what happened.
    pub fn finish_cancel(
        &self,
        key: &EffectKey,
        done: bool,
        outcome: &str,
        now: i64,
    ) -> Result<()> {
        const OP: &str = "finish a cancel";
        let state = if done { "done" } else { "failed" };
        self.write(OP, |tx| {
            tx.cached_execute(
                "UPDATE cancels SET state = ?2, outcome = ?3, finished_at = ?4
                 WHERE effect_key = ?1 AND state = 'started'",
                params![key.as_str(), state, outcome, now],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }

    /// Whether the build with key `build_key` (`job:<job>#<number>`), whose
    /// completion was recorded, was stopped by the bot: a cancel begun (and
    /// not failed for good) of an effect owning that build, or the queue
    /// item its completion names. With the result the completion carries.
    pub fn stopped_by_bot(&self, build_key: &str) -> Result<Option<StoppedBuild>> {
        const OP: &str = "look up a cancel of a build";
        let Some(build) = build_key.strip_prefix("job:") else {
            return Ok(None);
        };
        let build_item = format!("build:{build}");
        self.read(|conn| {
            conn.query_row(STOPPED_BY_BOT_SQL, params![build_key, build_item], |row| {
                Ok(StoppedBuild {
                    superseded_by: row.get(0)?,
                    status: row.get(1)?,
                })
            })
            .optional()
            .map_err(sql(OP))
        })
    }

    /// Whether the bot began a cancel of build effect `key` that did not
    /// fail for good.
    pub fn cancel_begun(&self, key: &EffectKey) -> Result<bool> {
        const OP: &str = "look up the cancel of an effect";
        self.read(|conn| {
            conn.query_row(
                "SELECT 1 FROM cancels WHERE effect_key = ?1 AND state <> 'failed'",
                [key.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql(OP))
        })
    }
}

/// [`Ledger::stopped_by_bot`]'s query: the build's owned Jenkins items
/// looked up by their key (the build itself, or the queue item it came
/// from), never a scan of every item the bot ever triggered.
pub(super) const STOPPED_BY_BOT_SQL: &str = "
    SELECT c.superseded_by, json_extract(b.event, '$.status')
    FROM builds b, cancels c
    JOIN jenkins_owned o ON o.effect_key = c.effect_key
    WHERE b.build_key = ?1 AND c.state <> 'failed'
      AND (o.item = ?2 OR o.item = 'queue:' || json_extract(b.event, '$.queue_id'))
    ORDER BY c.started_at LIMIT 1";
