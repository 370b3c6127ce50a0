//! The developer's question, "what happened to my change?": one row per
//! change (subject, owner, project), one line per patch set with its builds
//! as badges (queued, running, SUCCESS, FAILURE...) and the verdict the bot
//! posted. Pure: joined from the triggers gmail-listener recorded, the
//! builds build-listener recorded (with their reviews) and the events.
//!
//! A build is matched to its trigger by the build the trigger owns, else
//! by the queue item both name, else (rows recorded before documents kept
//! their queue item) by job and patch set, oldest first.

use std::collections::{BTreeMap, BTreeSet};

use bionicbb_core::jenkins::JobPath;
use bionicbb_core::ledger::{
    EventRecord, OutboxItem, OutboxState, SeenBuild, Trigger, TriggerState, VouchRecord,
};
use serde::Serialize;
use serde_json::Value;

use super::filter::{Filter, project_query};
use super::text::{Href, Text, Tone, When, join, person, vote};

/// How many changes the page shows, most recently active first.
pub const CHANGE_LIMIT: usize = 30;
/// How many notes (skip reasons...) a patch set shows.
const NOTE_LIMIT: usize = 3;

/// A change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    pub number: u64,
    pub link: Option<Href>,
    pub subject: Option<Text>,
    pub owner: Option<Text>,
    pub project: Option<Text>,
    pub branch: Option<Text>,
    /// The query string of the page filtered on its project.
    pub project_query: Option<String>,
    /// Its latest activity.
    pub last: When,
    /// Newest first.
    pub patch_sets: Vec<PatchSetRow>,
}

/// A patch set of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchSetRow {
    pub number: u32,
    pub link: Option<Href>,
    /// Oldest first, as they were triggered.
    pub builds: Vec<Badge>,
    /// The newest vote of each label.
    pub verdicts: Vec<Verdict>,
    /// Why nothing (more) was built.
    pub notes: Vec<Text>,
    /// Whose `bionicbb:ok-to-test` it was built on (an untrusted
    /// committer's patch set), e.g. "built on Sam Reviewer's ok-to-test".
    pub vouch: Option<Text>,
}

/// A build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Badge {
    pub job: Text,
    pub number: Option<u64>,
    /// `queued`, `running`, `SUCCESS`...
    pub state: Text,
    pub tone: Tone,
    pub link: Option<Href>,
    pub when: When,
    /// More about it (why it was not triggered), shown on hover.
    pub note: Option<Text>,
}

/// A vote the bot posted (or is posting).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `Verified -1`.
    pub vote: Text,
    /// `posted`, `waiting to post`, `not posted`.
    pub state: Text,
    pub tone: Tone,
    pub link: Option<Href>,
    pub when: When,
}

/// What the rows are made from.
pub struct Inputs<'a> {
    pub now: i64,
    pub gerrit: &'a url::Url,
    pub jenkins: &'a url::Url,
    pub filter: &'a Filter,
    /// Newest first, all three.
    pub events: &'a [EventRecord],
    pub triggers: &'a [Trigger],
    pub builds: &'a [SeenBuild],
    /// Newest first.
    pub vouches: &'a [VouchRecord],
}

/// A recorded build, its documents (start, completion) merged.
struct Run<'a> {
    job: String,
    number: u64,
    change: Option<u64>,
    patch_set: Option<u32>,
    queue_id: Option<u64>,
    /// `None` while only its start was recorded.
    status: Option<String>,
    url: Option<String>,
    seen_at: i64,
    review: Option<&'a OutboxItem>,
}

/// What is known of a change, gathered from all sources.
#[derive(Default)]
struct Gathered<'a> {
    last: i64,
    subject: Option<String>,
    owner: Option<String>,
    project: Option<String>,
    branch: Option<String>,
    /// By patch set: builds as `(first seen, badge)`, verdicts, notes.
    patch_sets: BTreeMap<u32, PatchSet<'a>>,
}

#[derive(Default)]
struct PatchSet<'a> {
    builds: Vec<(i64, Badge)>,
    runs: Vec<&'a Run<'a>>,
    notes: Vec<String>,
    /// When the bot's rejection was last dropped (a human's vote).
    dropped_at: Option<i64>,
    /// Who vouched for it (the first vouch recorded).
    vouched_by: Option<String>,
}

pub fn changes(i: &Inputs<'_>) -> Vec<ChangeRow> {
    let runs = runs(i.builds);
    let mut gathered: BTreeMap<u64, Gathered<'_>> = BTreeMap::new();
    let mut matched = vec![false; runs.len()];
    // Triggers oldest first, so the fallback pairs the oldest with the oldest.
    for trigger in i.triggers.iter().rev() {
        let (Some(change), Some(ps)) = (trigger.change_number, trigger.patch_set) else {
            continue;
        };
        let found = find_run(trigger, &runs, &matched);
        if let Some(at) = found {
            matched[at] = true;
        }
        let badge = match found {
            Some(at) => run_badge(i, &runs[at], Some(trigger)),
            None => trigger_badge(i, trigger),
        };
        let g = gathered.entry(change).or_default();
        g.last = g
            .last
            .max(trigger.finished_at.unwrap_or(trigger.started_at));
        let p = g.patch_sets.entry(ps).or_default();
        p.builds.push((trigger.started_at, badge));
        if let Some(at) = found {
            p.runs.push(&runs[at]);
        }
    }
    for (at, run) in runs.iter().enumerate() {
        let (Some(change), Some(ps)) = (run.change, run.patch_set) else {
            continue;
        };
        let g = gathered.entry(change).or_default();
        g.last = g.last.max(run.seen_at);
        let p = g.patch_sets.entry(ps).or_default();
        if !matched[at] {
            p.builds.push((run.seen_at, run_badge(i, run, None)));
        }
        if !p.runs.iter().any(|r| std::ptr::eq(*r, run)) {
            p.runs.push(run);
        }
    }
    for event in i.events {
        let Some(change) = event.change_number else {
            continue;
        };
        let g = gathered.entry(change).or_default();
        g.last = g.last.max(event.at);
        if let Some(d) = &event.details {
            fill(&mut g.subject, &d.subject);
            fill(&mut g.owner, &d.owner);
            fill(&mut g.project, &d.project);
            fill(&mut g.branch, &d.branch);
        }
        if let Some(ps) = event.patch_set {
            let p = g.patch_sets.entry(ps).or_default();
            if event.source == "drop-rejection" && outcome_of(&event.decisions) == Some("dropped") {
                p.dropped_at = p.dropped_at.max(Some(event.at));
            }
            for reason in skip_reasons(&event.decisions) {
                if p.notes.len() < NOTE_LIMIT && !p.notes.contains(&reason) {
                    p.notes.push(reason);
                }
            }
        }
    }
    for vouch in i.vouches {
        let g = gathered.entry(vouch.change_number).or_default();
        g.last = g.last.max(vouch.at);
        let p = g.patch_sets.entry(vouch.patch_set).or_default();
        // Newest first: the oldest, the one kept, comes last.
        p.vouched_by = Some(vouch.who().to_string());
    }
    let mut rows: Vec<ChangeRow> = gathered
        .into_iter()
        .filter(|(n, g)| i.filter.admits(Some(*n), g.project.as_deref()))
        .map(|(n, g)| row(i, n, g))
        .collect();
    rows.sort_by(|a, b| b.last.at.cmp(&a.last.at).then(b.number.cmp(&a.number)));
    rows.truncate(CHANGE_LIMIT);
    rows
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(&value.as_ref().filter(|v| !v.trim().is_empty()).cloned());
    }
}

fn row(i: &Inputs<'_>, number: u64, g: Gathered<'_>) -> ChangeRow {
    let mut patch_sets: Vec<PatchSetRow> = g
        .patch_sets
        .into_iter()
        .map(|(ps, mut p)| {
            p.builds.sort_by_key(|(at, _)| *at);
            PatchSetRow {
                number: ps,
                link: gerrit_link(i.gerrit, number, Some(ps)),
                builds: p.builds.into_iter().map(|(_, b)| b).collect(),
                verdicts: verdicts(i, number, ps, &p.runs, p.dropped_at),
                notes: p.notes.iter().map(|n| Text::new(n)).collect(),
                vouch: p
                    .vouched_by
                    .as_deref()
                    .map(|who| Text::new(&format!("built on {who}'s ok-to-test"))),
            }
        })
        .collect();
    patch_sets.reverse();
    ChangeRow {
        number,
        link: gerrit_link(i.gerrit, number, None),
        subject: g.subject.as_deref().map(Text::new),
        owner: g.owner.as_deref().map(person),
        project_query: g.project.as_deref().map(project_query),
        project: g.project.as_deref().map(Text::new),
        branch: g.branch.as_deref().map(Text::new),
        last: When::new(i.now, g.last),
        patch_sets,
    }
}

/// A link to a change, or one of its patch sets, on Gerrit.
pub fn gerrit_link(gerrit: &url::Url, change: u64, patch_set: Option<u32>) -> Option<Href> {
    match patch_set {
        Some(ps) => join(gerrit, &format!("c/{change}/{ps}")),
        None => join(gerrit, &format!("c/{change}")),
    }
}

/// The recorded builds, one per job and number, newest first.
fn runs(builds: &[SeenBuild]) -> Vec<Run<'_>> {
    let mut runs: Vec<Run<'_>> = Vec::new();
    for build in builds {
        let e = &build.event;
        let (Some(job), Some(number)) = (
            e.get("job").and_then(Value::as_str),
            e.get("number").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let completed = e
            .get("phase")
            .and_then(Value::as_str)
            .is_some_and(|p| p != "STARTED" && p != "QUEUED");
        let status = e
            .get("status")
            .and_then(Value::as_str)
            .filter(|_| completed)
            .map(str::to_string);
        let review = build.review.as_ref().filter(|_| completed);
        if let Some(run) = runs.iter_mut().find(|r| r.job == job && r.number == number) {
            // The completion wins over the start, whichever came first.
            if run.status.is_none() && status.is_some() {
                run.status = status;
                run.review = review;
                run.seen_at = run.seen_at.max(build.seen_at);
            }
            continue;
        }
        runs.push(Run {
            job: job.to_string(),
            number,
            change: e
                .get("change")
                .and_then(Value::as_str)
                .and_then(|c| c.rsplit('~').next())
                .and_then(|n| n.parse().ok()),
            patch_set: e
                .get("patch_set")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            queue_id: e.get("queue_id").and_then(Value::as_u64),
            status,
            url: e.get("url").and_then(Value::as_str).map(str::to_string),
            seen_at: build.seen_at,
            review,
        });
    }
    runs
}

/// The run a trigger led to, if recorded and not taken by another trigger.
fn find_run(trigger: &Trigger, runs: &[Run<'_>], matched: &[bool]) -> Option<usize> {
    let free = |at: &usize| !matched[*at];
    let same_job = |r: &Run<'_>| r.job == trigger.job;
    let indexes = || (0..runs.len()).filter(free);
    if let Some(number) = trigger.build_number {
        if let Some(at) = indexes().find(|at| same_job(&runs[*at]) && runs[*at].number == number) {
            return Some(at);
        }
    }
    if let Some(queue) = trigger.queue_id {
        if let Some(at) =
            indexes().find(|at| same_job(&runs[*at]) && runs[*at].queue_id == Some(queue))
        {
            return Some(at);
        }
    }
    if trigger.state != TriggerState::Done || trigger.build_number.is_some() {
        return None;
    }
    // Rows recorded before documents kept their queue item: the oldest
    // build of the job on the patch set recorded after the trigger, and
    // named by no other queue item.
    indexes()
        .filter(|at| {
            let r = &runs[*at];
            same_job(r)
                && r.queue_id.is_none()
                && r.change == trigger.change_number
                && r.patch_set == trigger.patch_set
                && r.seen_at >= trigger.started_at
        })
        .min_by_key(|at| runs[*at].seen_at)
}

/// A recorded build as a badge.
fn run_badge(i: &Inputs<'_>, run: &Run<'_>, trigger: Option<&Trigger>) -> Badge {
    let (state, tone) = match run.status.as_deref() {
        None => ("running".to_string(), Tone::Info),
        Some(status) => (status.to_string(), status_tone(status)),
    };
    let link = run
        .url
        .as_deref()
        .and_then(|u| join(i.jenkins, u))
        .or_else(|| build_link(i.jenkins, &run.job, run.number));
    Badge {
        job: Text::new(&run.job),
        number: Some(run.number),
        state: Text::new(&state),
        tone,
        link,
        when: When::new(i.now, trigger.map_or(run.seen_at, |t| t.started_at)),
        note: None,
    }
}

/// A trigger whose build is not recorded (yet) as a badge.
fn trigger_badge(i: &Inputs<'_>, t: &Trigger) -> Badge {
    let queue_link = t
        .queue_id
        .and_then(|id| join(i.jenkins, &format!("queue/item/{id}/")));
    let job_link = || {
        JobPath::parse(&t.job)
            .ok()
            .and_then(|p| join(i.jenkins, &p.url_path()))
    };
    let (state, tone, link, note) = match (t.state, &t.closed, t.build_number) {
        (TriggerState::Failed, _, _) => {
            let why = t.error.as_deref().unwrap_or("Jenkins refused it");
            (
                "not triggered",
                Tone::Bad,
                job_link(),
                Some(why.to_string()),
            )
        }
        (TriggerState::Started, _, _) => (
            "triggering",
            Tone::Warn,
            job_link(),
            Some("Jenkins' answer is awaited or was lost; it is being checked".to_string()),
        ),
        (TriggerState::Done, Some(reason), number) => (
            "no result",
            Tone::Idle,
            number
                .and_then(|n| build_link(i.jenkins, &t.job, n))
                .or(queue_link),
            Some(reason.clone()),
        ),
        (TriggerState::Done, None, Some(n)) => (
            "running",
            Tone::Info,
            build_link(i.jenkins, &t.job, n),
            None,
        ),
        (TriggerState::Done, None, None) => {
            ("queued", Tone::Idle, queue_link.or_else(job_link), None)
        }
    };
    Badge {
        job: Text::new(&t.job),
        number: t.build_number,
        state: Text::new(state),
        tone,
        link,
        when: When::new(i.now, t.started_at),
        note: note.map(|n| Text::new(&n)),
    }
}

fn build_link(jenkins: &url::Url, job: &str, number: u64) -> Option<Href> {
    let path = JobPath::parse(job).ok()?;
    join(jenkins, &format!("{}{number}/", path.url_path()))
}

/// The colour of a Jenkins result.
pub fn status_tone(status: &str) -> Tone {
    match status {
        "SUCCESS" => Tone::Good,
        "FAILURE" | "FAILED" => Tone::Bad,
        "UNSTABLE" => Tone::Warn,
        _ => Tone::Idle,
    }
}

/// The newest vote of each label among the reviews of a patch set's runs.
fn verdicts(
    i: &Inputs<'_>,
    change: u64,
    ps: u32,
    runs: &[&Run<'_>],
    dropped_at: Option<i64>,
) -> Vec<Verdict> {
    let mut runs: Vec<&Run<'_>> = runs.to_vec();
    runs.sort_by_key(|r| std::cmp::Reverse(r.seen_at));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for item in runs.iter().filter_map(|r| r.review) {
        let Some(label) = item.payload.get("label").filter(|l| l.is_object()) else {
            continue;
        };
        let (Some(name), Some(value)) = (
            label.get("name").and_then(Value::as_str),
            label.get("value").and_then(Value::as_i64),
        ) else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let vote_tone = match value {
            v if v > 0 => Tone::Good,
            v if v < 0 => Tone::Bad,
            _ => Tone::Idle,
        };
        let at = item.finished_at.unwrap_or(item.created_at);
        let dropped = value < 0 && dropped_at.is_some_and(|d| d >= at);
        let (state, tone) = match item.state {
            OutboxState::Done if dropped => ("dropped", Tone::Idle),
            OutboxState::Done => ("posted", vote_tone),
            OutboxState::Pending if item.attempts > 0 => ("retrying to post", Tone::Warn),
            OutboxState::Pending => ("waiting to post", Tone::Warn),
            OutboxState::Failed => ("not posted", Tone::Bad),
        };
        out.push(Verdict {
            vote: vote(name, value),
            state: Text::new(state),
            tone,
            link: gerrit_link(i.gerrit, change, Some(ps)),
            when: When::new(i.now, at),
        });
    }
    out
}

/// The outcome an attempt of build-listener recorded (`dropped`...).
fn outcome_of(decisions: &Value) -> Option<&str> {
    decisions.get(0)?.get("outcome")?.as_str()
}

/// The reasons of the `skip` decisions of an event.
fn skip_reasons(decisions: &Value) -> Vec<String> {
    let list: &[Value] = match decisions {
        Value::Array(items) => items,
        _ => &[],
    };
    list.iter()
        .filter(|d| d.get("decision").and_then(Value::as_str) == Some("skip"))
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .map(|r| format!("Skipped: {r}"))
        .collect()
}
