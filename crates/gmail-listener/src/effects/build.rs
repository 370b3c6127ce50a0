//! Triggering a build once: the trigger is keyed in the ledger before it
//! is sent, owns the queue item Jenkins answers with, and a trigger whose
//! answer was lost is resolved by asking Jenkins (see `lost_trigger`)
//! rather than by sending it again blindly.

use std::collections::BTreeMap;

use bionicbb_core::error::ApiError;
use bionicbb_core::jenkins::JobPath;
use bionicbb_core::ledger::{
    self, Begin, EffectKey, JenkinsItem, TriggerRecord, metric_names as names,
};
use serde_json::{Value, json};

use super::{Effects, Outcome, passing_ledger};
use crate::lost_trigger::{self, Found, TriggerFailure};

impl Effects {
    pub(super) async fn build(
        &self,
        key: &EffectKey,
        job: &str,
        params: &BTreeMap<String, String>,
        mail_date: Option<i64>,
    ) -> Outcome {
        let payload = json!({ "job": job, "params": params });
        let in_doubt = match self.begin(key, "build", &payload).await {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { result }) => {
                let what = format!("{job}: already triggered ({result})");
                return self.triggered(what, &result);
            }
            Ok(Begin::InDoubt {
                started_at,
                result_so_far,
                ..
            }) => Some((started_at, result_so_far)),
            Ok(Begin::New) => None,
        };
        let path = match JobPath::parse(job) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .fail(key, format!("{job}: invalid job name: {e}"))
                    .await;
            }
        };
        if let Some((started_at, progress)) = in_doubt {
            // An earlier trigger's outcome is unknown: settle it before
            // triggering again (see `lost_trigger`).
            match self
                .settle(key, &path, &payload, started_at, progress, mail_date)
                .await
            {
                Err(outcome) => return outcome,
                Ok(Some(result)) => {
                    return self.triggered(format!("{job}: was triggered ({result})"), &result);
                }
                Ok(None) => {
                    // Sent again: from now on, this attempt is the one that
                    // may still land if its answer is lost too.
                    let again = key.clone();
                    let restarted = self
                        .db("restart an effect in doubt", move |l| {
                            l.restart_effect(&again, ledger::now())
                        })
                        .await;
                    if let Err(e) = restarted {
                        return passing_ledger(e);
                    }
                }
            }
        }
        match self.jenkins.trigger(&path, params).await {
            Ok(id) => {
                let result = json!({ "queue_id": id.0 });
                // Owned as it is done: from then on no lookup of another
                // effect can take this item for its own.
                let items = vec![JenkinsItem::Queue(id.0)];
                if let Err(e) = self
                    .record_trigger(key, items, &result, job, mail_date)
                    .await
                {
                    return passing_ledger(e);
                }
                tracing::info!(%job, queue_item = id.0, "build triggered");
                self.triggered(format!("{job}: queued as item {id}"), &result)
            }
            Err(e) => match lost_trigger::classify(&e) {
                TriggerFailure::Permanent => {
                    tracing::error!(%job, error = %e, "Jenkins refused the build for good");
                    self.fail(key, format!("{job}: {e}")).await
                }
                TriggerFailure::NotQueued => {
                    // Jenkins answered with an error: nothing was queued,
                    // free the key for the next poll.
                    if let Err(le) = self.fail_effect(key, &e.to_string()).await {
                        return passing_ledger(le);
                    }
                    Outcome::Passing(format!("{job}: {e}"))
                }
                TriggerFailure::Unknown => {
                    // Maybe queued: leave the effect started. It comes back
                    // in doubt, and the next poll asks Jenkins first.
                    tracing::warn!(
                        %job, error = %e,
                        "the trigger's answer was lost; the next poll looks for the build \
                         before triggering again"
                    );
                    Outcome::Passing(format!("{job}: {e}"))
                }
            },
        }
    }

    /// Settles build effect `key`, begun at `started_at` and never marked:
    /// `Ok(Some(result))` when its trigger reached Jenkins (the answer was
    /// recorded before a crash, or a lookup found what it left), now owned
    /// and marked done; `Ok(None)` when it certainly left nothing on Jenkins
    /// (the effect stays started, for the caller to trigger again or fail);
    /// `Err` with the outcome when that cannot be told yet.
    async fn settle(
        &self,
        key: &EffectKey,
        path: &JobPath,
        payload: &Value,
        started_at: i64,
        progress: Option<Value>,
        mail_date: Option<i64>,
    ) -> Result<Option<Value>, Outcome> {
        if let Some(progress) = progress.filter(|p| p.get("queue_id").is_some()) {
            // The trigger answered before the crash: the build is queued.
            let owned = progress
                .get("queue_id")
                .and_then(Value::as_u64)
                .map(JenkinsItem::Queue);
            self.own(key, owned.into_iter().collect())
                .await
                .map_err(passing_ledger)?;
            self.finish(key, progress.clone())
                .await
                .map_err(passing_ledger)?;
            return Ok(Some(progress));
        }
        let params = params_of(payload);
        let Some(result) = self
            .resolve_lost_trigger(key, path, payload, &params, started_at)
            .await?
        else {
            return Ok(None);
        };
        let job = payload
            .get("job")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // The lookup owned what it found.
        self.record_trigger(key, Vec::new(), &result, job, mail_date)
            .await
            .map_err(passing_ledger)?;
        Ok(Some(result))
    }

    /// Settles the builds of patch set `ps` of `change` whose trigger's
    /// outcome is unknown and that the mail being handled no longer calls
    /// for (not among `wanted`): the patch set was superseded or the change
    /// closed before the next poll, say (`why`). What such a trigger left on
    /// Jenkins is found and owned, so its result is reported (build-listener
    /// asks Jenkins about owned builds whose notifications never came); a
    /// trigger that certainly left nothing is recorded as never made, and is
    /// not sent again. [`Outcome::Passing`] while that cannot be told yet:
    /// the mail stays for the next poll.
    pub async fn settle_unwanted(
        &self,
        change: u64,
        ps: u32,
        wanted: &[EffectKey],
        why: &str,
    ) -> Outcome {
        let in_doubt = match self
            .db("list the builds in doubt", move |l| {
                l.builds_in_doubt(change, ps)
            })
            .await
        {
            Ok(list) => list,
            Err(e) => return passing_ledger(e),
        };
        let mut done = Vec::new();
        for build in in_doubt.into_iter().filter(|b| !wanted.contains(&b.key)) {
            let job = build
                .payload
                .get("job")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Ok(path) = JobPath::parse(job) else {
                // Never sent: a trigger is begun only for a valid name.
                if let Err(e) = self.fail_effect(&build.key, "invalid job name").await {
                    return passing_ledger(e);
                }
                continue;
            };
            match self
                .settle(
                    &build.key,
                    &path,
                    &build.payload,
                    build.started_at,
                    build.progress,
                    None,
                )
                .await
            {
                Err(outcome) => return outcome,
                Ok(Some(result)) => done.push(format!("{job}: was triggered ({result})")),
                Ok(None) => {
                    tracing::info!(
                        %job, change, patch_set = ps, %why,
                        "an earlier trigger of this build never reached Jenkins, and the patch \
                         set no longer calls for it: not sending it again"
                    );
                    let error = format!("never reached Jenkins; no longer called for: {why}");
                    if let Err(e) = self.fail_effect(&build.key, &error).await {
                        return passing_ledger(e);
                    }
                    done.push(format!("{job}: earlier trigger never made, not sent again"));
                }
            }
        }
        Outcome::Done(done.join("; "))
    }

    /// Resolves a trigger of `key`, begun at `started_at` (unix seconds),
    /// whose answer was lost: `Some(result)` when Jenkins shows a queue item
    /// or build with our parameters that no other effect owns (now adopted
    /// in the ledger), `None` when it must be triggered again, `Err` with
    /// the outcome when it cannot be decided now.
    async fn resolve_lost_trigger(
        &self,
        key: &EffectKey,
        path: &JobPath,
        payload: &Value,
        params: &BTreeMap<String, String>,
        started_at: i64,
    ) -> Result<Option<Value>, Outcome> {
        let job = path.to_string();
        let looking = |e: ApiError| {
            Outcome::Passing(format!(
                "{job}: looking for the build an earlier trigger may have started: {e}"
            ))
        };
        let since_ms = started_at.saturating_mul(1000);
        let candidates = self
            .jenkins
            .find_candidates(path, params, since_ms)
            .await
            .map_err(looking)?;
        let mut free = Vec::new();
        let mut owned_elsewhere = 0;
        for candidate in candidates {
            let items = lost_trigger::items(&job, &candidate);
            let k = key.clone();
            if self
                .db("look up owned Jenkins items", move |l| {
                    l.owned_by_another(&k, &items)
                })
                .await
                .map_err(passing_ledger)?
            {
                owned_elsewhere += 1;
            } else {
                free.push(candidate);
            }
        }
        let twin = payload.clone();
        let unresolved = self
            .db("look up unresolved triggers", move |l| {
                l.unresolved_twins(&twin)
            })
            .await
            .map_err(passing_ledger)?;
        let found = lost_trigger::choose(free, unresolved);
        let now = ledger::now();
        if !matches!(found, Found::Adopt(_))
            && lost_trigger::may_still_land(started_at, now, self.jenkins.timeout())
        {
            tracing::info!(
                %job, started_at, ?found,
                "an earlier trigger of this build had an unknown outcome and may still reach \
                 Jenkins: looking again next poll rather than triggering it twice"
            );
            return Err(Outcome::Passing(format!(
                "{job}: an earlier trigger may still reach Jenkins; looking again next poll"
            )));
        }
        match found {
            Found::Adopt(candidate) => {
                let (k, items) = (key.clone(), lost_trigger::items(&job, &candidate));
                if !self
                    .db("adopt Jenkins items", move |l| {
                        l.adopt_jenkins_items(&k, &items)
                    })
                    .await
                    .map_err(passing_ledger)?
                {
                    // Taken by another effect since we looked: not ours.
                    return Err(Outcome::Passing(format!(
                        "{job}: the build found for a lost trigger was just taken by another \
                         effect; looking again next poll"
                    )));
                }
                let result = lost_trigger::result(&candidate);
                tracing::info!(%job, found = %result, "found the build the lost answer had started");
                Ok(Some(result))
            }
            Found::Nothing => {
                tracing::info!(
                    %job, started_at, owned_elsewhere,
                    "an earlier trigger of this build had an unknown outcome, and Jenkins has no \
                     item or build of it that another trigger does not own: triggering it again"
                );
                Ok(None)
            }
            Found::Ambiguous { free, unresolved } => {
                tracing::warn!(
                    %job, started_at, free, unresolved, owned_elsewhere,
                    "an earlier trigger of this build had an unknown outcome, and Jenkins has \
                     more unowned builds with its parameters than lost triggers could have \
                     left, so which one is ours cannot be told: triggering it again rather \
                     than risk leaving the change without its build"
                );
                Ok(None)
            }
        }
    }

    /// Records a trigger that reached Jenkins in one ledger write: the
    /// effect owns `items` and is done with `result`; the trigger is counted,
    /// and how long after the notification's date it happened is observed
    /// (not when the mail had no `Date:`; a mail dated in the future, a
    /// skewed clock, counts as 0 seconds).
    async fn record_trigger(
        &self,
        key: &EffectKey,
        items: Vec<JenkinsItem>,
        result: &Value,
        job: &str,
        mail_date: Option<i64>,
    ) -> ledger::Result<()> {
        let labels = names::labels(&[("job", job)]);
        let observed: Vec<(&'static str, String, f64)> = mail_date
            .map(|date| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
                (
                    names::MAIL_TO_TRIGGER_SECONDS,
                    labels.clone(),
                    now - date as f64,
                )
            })
            .into_iter()
            .collect();
        let counters = [(names::BUILDS_TRIGGERED, labels)];
        let (key, result) = (key.clone(), result.clone());
        self.db("record a trigger", move |l| {
            let record = TriggerRecord {
                key: &key,
                items: &items,
                result: &result,
                counters: &counters,
                observed: &observed,
            };
            l.record_trigger(record, ledger::now())
        })
        .await
    }

    /// Records that the effect owns Jenkins `items`.
    async fn own(&self, key: &EffectKey, items: Vec<JenkinsItem>) -> ledger::Result<()> {
        let key = key.clone();
        self.db("own Jenkins items", move |l| {
            l.own_jenkins_items(&key, &items)
        })
        .await
    }

    /// [`Outcome::Triggered`] when `result` names the queue item, else a
    /// plain [`Outcome::Done`].
    fn triggered(&self, what: String, result: &Value) -> Outcome {
        match result.get("queue_id").and_then(Value::as_u64) {
            Some(id) => Outcome::Triggered {
                what,
                queue_url: format!("{}queue/item/{id}/", self.config.jenkins.url),
            },
            None => Outcome::Done(what),
        }
    }
}

/// The parameters of a build effect's payload (`{"job", "params"}`).
fn params_of(payload: &Value) -> BTreeMap<String, String> {
    payload
        .get("params")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
