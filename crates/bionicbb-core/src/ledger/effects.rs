//! Effects keyed once: a build triggered, a reply posted, a rejection drop
//! requested, a verdict carried over.
//!
//! The protocol, for each effect a decision calls for:
//!
//! 1. [`Ledger::begin_effect`] writes the row as `started` *before* the
//!    effect runs, and answers what to do:
//!    - [`Begin::New`]: do it;
//!    - [`Begin::AlreadyDone`]: it was done (by this mail or another about the
//!      same event); do nothing;
//!    - [`Begin::InDoubt`]: an earlier run started it and never marked it (a
//!      crash, or a timeout whose outcome is unknown). Do **not** do it
//!      blindly: ask the server (is the Jenkins queue item or build there? is
//!      the Gerrit message there?), then mark it done, or fail it and begin
//!      again.
//! 2. [`Ledger::record_effect_progress`] stores what is known mid-way, so
//!    an in-doubt row can be resolved precisely. (A build records the
//!    queue item its trigger answered with, and that it is done, in one
//!    transaction: [`Ledger::record_trigger`]. Rows written by earlier
//!    versions may still carry the queue item as progress.)
//! 3. [`Ledger::finish_effect`] marks it done with its result.
//!    [`Ledger::fail_effect`] records that it certainly did **not** happen
//!    (the server refused it). The row is kept as `failed` with the error,
//!    and the key is free again: a later `begin_effect` answers `New`, so
//!    whether to try again is the caller's choice. Never fail an effect whose
//!    outcome is unknown (a timeout): leave it started, it comes back in doubt.
//!
//! The ledger does not lease: a second `begin_effect` on a started key while
//! the first caller is still working also answers `InDoubt`. gmail-listener
//! never works on two mails of one change at once (reconcile passes run
//! between polls), and an effect's key names its change, so this only
//! happens after a crash.

use std::collections::BTreeMap;
use std::fmt;

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::{CachedExecute, Ledger, LedgerError, Result, from_json, sql, to_json};

/// The identity of an effect: two decisions with the same key are the same
/// effect and happen once. The text is canonical (JSON-encoded parts), so
/// equal inputs give equal keys and different inputs never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EffectKey(String);

impl EffectKey {
    fn from_parts(namespace: &str, parts: Value) -> EffectKey {
        EffectKey(format!("{namespace}:{parts}"))
    }

    /// Triggering `job` for a patch set with these parameters. The map is
    /// sorted, so two mails about the same event give the same key and build
    /// once. A command that legitimately rebuilds (`retry`) adds the
    /// comment's identity with [`EffectKey::with`].
    pub fn build(
        change_number: u64,
        patch_set: u32,
        job: &str,
        params: &BTreeMap<String, String>,
    ) -> EffectKey {
        EffectKey::from_parts("build", json!([change_number, patch_set, job, params]))
    }

    /// A reply posted on a patch set; `discriminator` tells replies apart
    /// (a hash of the text, or the mail it answers).
    pub fn reply(change_number: u64, patch_set: u32, discriminator: &str) -> EffectKey {
        EffectKey::from_parts("reply", json!([change_number, patch_set, discriminator]))
    }

    /// Asking build-listener to drop the bot's rejection, because of the
    /// comment `comment` (the identity of the Gerrit change message).
    pub fn drop_rejection(change_number: u64, patch_set: u32, comment: &str) -> EffectKey {
        EffectKey::from_parts("drop-rejection", json!([change_number, patch_set, comment]))
    }

    /// The bot's verdict carried over to a patch set: once per patch set,
    /// whichever path (a mail, a copy of it, a reconcile pass) decided it,
    /// so the bot never votes it twice (not even after its vote there was
    /// removed).
    pub fn carry(change_number: u64, patch_set: u32) -> EffectKey {
        EffectKey::from_parts("carry", json!([change_number, patch_set]))
    }

    /// A trusted reviewer's `bionicbb:ok-to-test` recorded for a patch set
    /// (kind `vouch`; its payload names who vouched:
    /// `{"change_number", "patch_set", "by_name", "by_email", "message_id"}`).
    /// Once per patch set: the first vouch is the one kept.
    pub fn vouch(change_number: u64, patch_set: u32) -> EffectKey {
        EffectKey::from_parts("vouch", json!([change_number, patch_set]))
    }

    /// The one message explaining to a patch set's uploader why the bot
    /// did not build it (kind `explain`): once per patch set, whichever
    /// path (a mail, a copy of it, a reconcile pass) decided the skip.
    pub fn explain(change_number: u64, patch_set: u32) -> EffectKey {
        EffectKey::from_parts("explain", json!([change_number, patch_set]))
    }

    /// The reply acknowledging that the command behind `build` (a build
    /// effect's key) started it (kind `ack`): once per command.
    pub fn ack(build: &EffectKey) -> EffectKey {
        EffectKey::from_parts("ack", json!([build.as_str()]))
    }

    /// The `index`-th decision about mail `gmail_id`, for effects that have
    /// no better identity than the mail that asked for them.
    pub fn for_mail(gmail_id: &str, index: usize) -> EffectKey {
        EffectKey::from_parts("mail", json!([gmail_id, index]))
    }

    /// This key narrowed by an extra discriminator (the Gerrit change
    /// message a `retry` command was confirmed against, so each command
    /// builds once but a new command builds again).
    pub fn with(self, discriminator: &str) -> EffectKey {
        EffectKey(format!("{}+{}", self.0, Value::from(discriminator)))
    }

    /// The range of the keys [`EffectKey::build`] gives: all of them, those
    /// of one change, or those of one patch set of it (whatever the job,
    /// parameters and discriminator). From their common prefix up to the
    /// prefix with its last character (`:` or `,`) raised by one.
    pub(super) fn build_range(
        change_number: Option<u64>,
        patch_set: Option<u32>,
    ) -> (String, String) {
        let from = match (change_number, patch_set) {
            (None, _) => "build:".to_string(),
            (Some(n), None) => format!("build:[{n},"),
            (Some(n), Some(ps)) => format!("build:[{n},{ps},"),
        };
        let mut to = from.clone();
        let last = to.pop().map_or(0, |c| c as u8);
        to.push(char::from(last + 1));
        (from, to)
    }

    /// A key as the ledger stored it.
    pub(super) fn from_stored(text: String) -> EffectKey {
        EffectKey(text)
    }

    /// The canonical text (what the ledger stores).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EffectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer of [`Ledger::begin_effect`].
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Not done before: the row is written as started; do the effect.
    New,
    /// Done before, with this result: do nothing.
    AlreadyDone { result: Value },
    /// Started before and never marked: resolve by asking the server.
    InDoubt {
        /// The payload recorded when it was started.
        payload: Value,
        started_at: i64,
        /// What [`Ledger::record_effect_progress`] stored, if anything.
        result_so_far: Option<Value>,
    },
}

/// A build effect begun and never marked: its trigger's outcome is unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildInDoubt {
    pub key: EffectKey,
    /// The payload recorded when it was begun (`job` and `params`).
    pub payload: Value,
    pub started_at: i64,
    /// What [`Ledger::record_effect_progress`] stored, if anything.
    pub progress: Option<Value>,
}

/// `(state, payload, started_at, progress, result)` of a stored effect.
type StoredEffect = (String, String, i64, Option<String>, Option<String>);

impl Ledger {
    /// Starts an effect unless it was done or started before; see the
    /// module documentation. `kind` and `payload` are recorded for the
    /// in-doubt case and for operators.
    pub fn begin_effect(
        &self,
        key: &EffectKey,
        kind: &str,
        payload: &Value,
        now: i64,
    ) -> Result<Begin> {
        const OP: &str = "begin an effect";
        let payload_text = to_json(OP, payload)?;
        self.write(OP, |tx| {
            let row: Option<StoredEffect> = tx
                .query_row(
                    "SELECT state, payload, started_at, progress, result
                     FROM effects WHERE key = ?1",
                    [key.as_str()],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql(OP))?;
            match row {
                None => {
                    tx.cached_execute(
                        "INSERT INTO effects (key, kind, payload, state, started_at)
                         VALUES (?1, ?2, ?3, 'started', ?4)",
                        params![key.as_str(), kind, payload_text, now],
                    )
                    .map_err(sql(OP))?;
                    Ok(Begin::New)
                }
                Some((state, _, _, _, result)) if state == "done" => Ok(Begin::AlreadyDone {
                    result: match result {
                        Some(text) => from_json(OP, &text)?,
                        None => Value::Null,
                    },
                }),
                Some((state, payload, started_at, progress, _)) if state == "started" => {
                    Ok(Begin::InDoubt {
                        payload: from_json(OP, &payload)?,
                        started_at,
                        result_so_far: progress.map(|p| from_json(OP, &p)).transpose()?,
                    })
                }
                Some(_) => {
                    // Failed before: it certainly did not happen; start afresh.
                    tx.cached_execute(
                        "UPDATE effects
                         SET kind = ?2, payload = ?3, state = 'started', started_at = ?4,
                             runs = runs + 1, progress = NULL, result = NULL,
                             finished_at = NULL
                         WHERE key = ?1",
                        params![key.as_str(), kind, payload_text, now],
                    )
                    .map_err(sql(OP))?;
                    Ok(Begin::New)
                }
            }
        })
    }

    /// Stores what is known so far about a started effect (e.g. the Jenkins
    /// queue item id), returned as `result_so_far` if it comes back in doubt.
    pub fn record_effect_progress(&self, key: &EffectKey, result_so_far: &Value) -> Result<()> {
        const OP: &str = "record an effect's progress";
        let text = to_json(OP, result_so_far)?;
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "UPDATE effects SET progress = ?2 WHERE key = ?1 AND state = 'started'",
                    params![key.as_str(), text],
                )
                .map_err(sql(OP))?;
            if n == 0 {
                return Err(LedgerError::NotFound {
                    op: OP,
                    what: format!("started effect {key}"),
                });
            }
            Ok(())
        })
    }

    /// Records that an effect in doubt is about to be sent again, at `now`:
    /// its `started_at` becomes the time of this newest attempt, so an
    /// answer lost again is waited out from the attempt that may still
    /// land, not from the first one.
    pub fn restart_effect(&self, key: &EffectKey, now: i64) -> Result<()> {
        const OP: &str = "restart an effect in doubt";
        self.write(OP, |tx| {
            let n = tx
                .cached_execute(
                    "UPDATE effects SET started_at = ?2, runs = runs + 1
                     WHERE key = ?1 AND state = 'started'",
                    params![key.as_str(), now],
                )
                .map_err(sql(OP))?;
            if n == 0 {
                return Err(LedgerError::NotFound {
                    op: OP,
                    what: format!("started effect {key}"),
                });
            }
            Ok(())
        })
    }

    /// The build effects of patch set `patch_set` of change `change_number`
    /// that are started and not marked (see [`Begin::InDoubt`]), oldest
    /// first: whatever decision began them, a trigger of each may have
    /// reached Jenkins.
    pub fn builds_in_doubt(&self, change_number: u64, patch_set: u32) -> Result<Vec<BuildInDoubt>> {
        const OP: &str = "list the builds in doubt of a patch set";
        let (from, to) = EffectKey::build_range(Some(change_number), Some(patch_set));
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key, payload, started_at, progress FROM effects
                     WHERE key >= ?1 AND key < ?2 AND kind = 'build' AND state = 'started'
                     ORDER BY started_at, key",
                )
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map([&from, &to], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                })
                .map_err(sql(OP))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql(OP))?;
            rows.into_iter()
                .map(|(key, payload, started_at, progress)| {
                    Ok(BuildInDoubt {
                        key: EffectKey::from_stored(key),
                        payload: from_json(OP, &payload)?,
                        started_at,
                        progress: progress.map(|p| from_json(OP, &p)).transpose()?,
                    })
                })
                .collect()
        })
    }

    /// Whether effect `key` was ever begun (in any state: started, done or
    /// failed). A read: it sees committed writes only.
    pub fn effect_begun(&self, key: &EffectKey) -> Result<bool> {
        const OP: &str = "look up an effect";
        self.read(|conn| {
            conn.query_row(
                "SELECT 1 FROM effects WHERE key = ?1",
                [key.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql(OP))
        })
    }

    /// Marks a started (or failed, once the server showed it did happen)
    /// effect done. Idempotent: finishing a done effect keeps the first
    /// result.
    pub fn finish_effect(&self, key: &EffectKey, result: &Value, now: i64) -> Result<()> {
        const OP: &str = "finish an effect";
        let text = to_json(OP, result)?;
        self.write(OP, |tx| finish_in(tx, OP, key, &text, now))
    }

    /// Records that a started effect certainly did not happen (permanent
    /// refusal). The key is free again; see the module documentation.
    /// Failing a done effect is refused: it did happen.
    pub fn fail_effect(&self, key: &EffectKey, error: &str) -> Result<()> {
        const OP: &str = "fail an effect";
        self.write(OP, |tx| match existing_state(tx, key, OP)?.as_str() {
            "done" => Err(LedgerError::Invalid {
                op: OP,
                detail: format!("effect {key} is already done"),
            }),
            _ => {
                tx.cached_execute(
                    "UPDATE effects SET state = 'failed', error = ?2 WHERE key = ?1",
                    params![key.as_str(), error],
                )
                .map_err(sql(OP))?;
                Ok(())
            }
        })
    }
}

/// [`Ledger::finish_effect`] in the transaction `tx`, with the result as
/// JSON text.
pub(super) fn finish_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    key: &EffectKey,
    result: &str,
    now: i64,
) -> Result<()> {
    if existing_state(tx, key, op)? == "done" {
        return Ok(());
    }
    tx.cached_execute(
        "UPDATE effects
             SET state = 'done', result = ?2, error = NULL, finished_at = ?3
             WHERE key = ?1",
        params![key.as_str(), result, now],
    )
    .map_err(sql(op))?;
    Ok(())
}

/// The state of an effect that must already have been begun.
fn existing_state(tx: &rusqlite::Connection, key: &EffectKey, op: &'static str) -> Result<String> {
    tx.query_row(
        "SELECT state FROM effects WHERE key = ?1",
        [key.as_str()],
        |row| row.get(0),
    )
    .optional()
    .map_err(sql(op))?
    .ok_or_else(|| LedgerError::NotFound {
        op,
        what: format!("effect {key} (begin it first)"),
    })
}
