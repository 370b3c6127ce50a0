//! Answering `bionicbb:why`: what the ledger keeps about the patch set
//! ([`History`]: the bot's triggers and the completions build-listener
//! saw, the events recorded about it, the reviews still in the outbox, a
//! vouch and an explained skip) becomes a [`WhyReport`] ([`report`], pure)
//! that [`messages::why`] renders as one reply, posted once per comment.

use bionicbb_core::event::Decision;
use bionicbb_core::gerrit::ChangeRef;
use bionicbb_core::ledger::{
    self, EffectKey, EventRecord, Ledger, OutboxItem, SeenBuild, StoredEffect, Trigger,
    TriggerState,
};
use bionicbb_core::messages::{
    self, BuildLine, BuildState, IgnoredCommand, WaitingReview, WhyReport,
};
use serde_json::Value;

use super::{Effects, Outcome, passing_ledger};

/// How many of a change's triggers and completions are read: far more
/// than one patch set ever has.
const LIMIT: usize = 500;

/// What the ledger keeps about one patch set.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The change's build triggers, newest first (those of other patch sets
    /// are left out by [`report`]).
    pub triggers: Vec<Trigger>,
    /// The change's completions build-listener recorded, newest first.
    pub completions: Vec<SeenBuild>,
    /// The patch set's events, oldest first.
    pub events: Vec<EventRecord>,
    /// The patch set's work still in the outbox, oldest first.
    pub pending: Vec<OutboxItem>,
    pub vouch: Option<StoredEffect>,
    pub explain: Option<StoredEffect>,
    /// When the oldest event kept was recorded, if older ones were pruned.
    pub events_kept_since: Option<i64>,
}

impl History {
    /// Reads what the ledger keeps about patch set `ps` of `change`.
    pub fn read(ledger: &Ledger, change: u64, ps: u32) -> ledger::Result<History> {
        Ok(History {
            triggers: ledger.recent_triggers(Some(change), LIMIT)?,
            completions: ledger.recent_builds(Some(change), LIMIT)?,
            events: ledger.events_of(change, ps)?,
            pending: ledger.pending_of(change, ps)?,
            vouch: ledger.effect(&EffectKey::vouch(change, ps))?,
            explain: ledger.effect(&EffectKey::explain(change, ps))?,
            events_kept_since: ledger.events_kept_since()?,
        })
    }
}

impl Effects {
    /// Posts the answer to `bionicbb:why` about patch set `ps` of change
    /// `number` (`change`) as effect `key`, with `automatic`, what the
    /// policy says now.
    pub(super) async fn why(
        &self,
        key: &EffectKey,
        change: &ChangeRef,
        number: u64,
        ps: u32,
        automatic: &[Decision],
    ) -> Outcome {
        let history = match self
            .db("read a patch set's history", move |l| {
                History::read(l, number, ps)
            })
            .await
        {
            Ok(history) => history,
            Err(e) => return passing_ledger(e),
        };
        let jenkins = self.config.jenkins.url.as_str();
        // A build's page as its result's review links it (`link_base`,
        // else Jenkins itself).
        let links = match &self.config.build_listener.link_base {
            Some(base) => base.to_string(),
            None => jenkins.to_string(),
        };
        let report = report(&history, number, ps, automatic.to_vec(), jenkins, &links);
        let message = messages::why(&report);
        self.reply(key, "why", change, ps, &message).await
    }
}

/// What `history` says about patch set `ps` of change `change`, with
/// `automatic` (the policy's decision now). `jenkins` is Jenkins's base
/// URL, for the link of a queue item; `links` the base of a build's
/// relative URL. Pure.
pub fn report(
    history: &History,
    change: u64,
    ps: u32,
    automatic: Vec<Decision>,
    jenkins: &str,
    links: &str,
) -> WhyReport {
    let mut report = WhyReport {
        change_number: change,
        patch_set: ps,
        automatic,
        ..WhyReport::default()
    };
    let completions: Vec<&Value> = history
        .completions
        .iter()
        .map(|c| &c.event)
        .filter(|e| e.get("patch_set").and_then(Value::as_u64) == Some(u64::from(ps)))
        .collect();
    let mut matched = vec![false; completions.len()];
    for trigger in history.triggers.iter().rev() {
        if trigger.patch_set != Some(ps) {
            continue;
        }
        let found = completions.iter().position(|c| same_build(trigger, c));
        if let Some(i) = found {
            matched[i] = true;
        }
        report.builds.push(BuildLine {
            job: trigger.job.clone(),
            state: trigger_state(trigger, found.map(|i| completions[i]), jenkins, links),
        });
    }
    // Results of builds the ledger has no trigger of (pruned, or started
    // by hand): what build-listener saw, oldest first.
    for (completion, _) in completions
        .iter()
        .zip(&matched)
        .rev()
        .filter(|(_, matched)| !**matched)
    {
        if let Some(state) = completed(completion, links) {
            let job = text(completion, "job").unwrap_or_default();
            report.builds.push(BuildLine { job, state });
        }
    }
    let mut upload_kept = false;
    for event in &history.events {
        let details = event.details.as_ref();
        let kind = details
            .and_then(|d| d.message_type.as_deref())
            .unwrap_or("");
        let upload = matches!(kind, "newchange" | "newpatchset");
        upload_kept |= upload;
        for decision in decisions_of(&event.decisions) {
            match text(decision, "decision").as_deref() {
                Some("skip") if kind == "comment" => {
                    let commands = details.map(|d| d.commands.clone()).unwrap_or_default();
                    if commands.is_empty() {
                        continue;
                    }
                    report.ignored.push(IgnoredCommand {
                        by: details.and_then(|d| d.author.clone()),
                        commands,
                        reason: text(decision, "reason").unwrap_or_default(),
                    });
                }
                Some("skip") if upload => {
                    let reason = text(decision, "reason").unwrap_or_default();
                    if !report.skipped.contains(&reason) {
                        report.skipped.push(reason);
                    }
                }
                Some("carry_over") if !failed(decision) => {
                    let carried = (
                        text(decision, "label").unwrap_or_default(),
                        decision.get("value").and_then(Value::as_i64).unwrap_or(0) as i32,
                        decision
                            .get("from_patch_set")
                            .and_then(Value::as_u64)
                            .unwrap_or(0) as u32,
                    );
                    if !report.carried.contains(&carried) {
                        report.carried.push(carried);
                    }
                }
                _ => {}
            }
        }
    }
    report.history_since = history.events_kept_since.filter(|_| !upload_kept);
    report.waiting = history.pending.iter().map(waiting).collect();
    report.vouched_by = history
        .vouch
        .as_ref()
        .filter(|v| v.state != "failed")
        .and_then(|v| {
            text(&v.payload, "by_name")
                .filter(|n| !n.is_empty())
                .or_else(|| text(&v.payload, "by_email"))
        });
    report.explained = history.explain.as_ref().is_some_and(|e| e.state == "done");
    report
}

/// Whether completion `c` is the build `trigger` started: the queue item
/// it came from, or the build the trigger owns.
fn same_build(trigger: &Trigger, c: &Value) -> bool {
    let queue = c.get("queue_id").and_then(Value::as_u64);
    let number = c.get("number").and_then(Value::as_u64);
    let job = text(c, "job");
    (queue.is_some() && queue == trigger.queue_id)
        || (number.is_some()
            && number == trigger.build_number
            && job.as_deref() == Some(trigger.job.as_str()))
}

fn trigger_state(
    trigger: &Trigger,
    completion: Option<&Value>,
    jenkins: &str,
    links: &str,
) -> BuildState {
    if let Some(state) = completion.and_then(|c| completed(c, links)) {
        return state;
    }
    match trigger.state {
        TriggerState::Failed => BuildState::NotTriggered {
            error: trigger.error.clone().unwrap_or_default(),
        },
        TriggerState::Started => BuildState::Triggering,
        TriggerState::Done => match (&trigger.closed, trigger.build_number, trigger.queue_id) {
            (Some(reason), number, _) => BuildState::NoResult {
                number,
                reason: reason.clone(),
            },
            (None, Some(number), _) => BuildState::Running { number },
            (None, None, Some(id)) => BuildState::Queued {
                queue_url: format!("{}queue/item/{id}/", with_slash(jenkins)),
            },
            (None, None, None) => BuildState::Triggering,
        },
    }
}

/// A completion document's result, when it has one (a `STARTED` document
/// recorded with `post_started` has none), its relative URL joined to
/// `links`.
fn completed(c: &Value, links: &str) -> Option<BuildState> {
    let result = text(c, "status")?;
    Some(BuildState::Completed {
        number: c.get("number").and_then(Value::as_u64).unwrap_or(0),
        result,
        link: text(c, "url")
            .filter(|u| !u.is_empty())
            .map(|u| absolute(links, &u)),
    })
}

/// `url` as a link: as it is when absolute, else after `base` (with one
/// `/` between them).
fn absolute(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        return url.to_string();
    }
    format!("{}{}", with_slash(base), url.trim_start_matches('/'))
}

fn waiting(item: &OutboxItem) -> WaitingReview {
    let build = text(&item.payload, "build");
    let what = match (item.kind.as_str(), build) {
        ("review", Some(build)) => format!("the result of {build}"),
        ("review", None) => "a review".to_string(),
        ("drop_rejection", _) => "the removal of the bot's rejection".to_string(),
        (other, _) => other.replace('_', " "),
    };
    WaitingReview {
        what,
        next_attempt_at: item.next_attempt_at,
        attempts: item.attempts,
        last_error: item.last_error.clone(),
    }
}

fn failed(decision: &Value) -> bool {
    text(decision, "result").is_some_and(|r| r.starts_with("failed for good"))
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The decision objects of an event (recorded as an array, or one object).
fn decisions_of(decisions: &Value) -> Vec<&Value> {
    match decisions {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![decisions],
        _ => Vec::new(),
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

#[cfg(test)]
mod tests;
