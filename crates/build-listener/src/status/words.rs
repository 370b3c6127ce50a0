//! The recent events in words: "Sam Reviewer commented bionicbb:retry on
//! 123456/2 → bionic-presubmit queued", "bionic-presubmit #12 FAILURE on
//! 123456/2 → Verified -1 to post", skipped ones with their reason. Pure.
//! Events recorded before the ledger kept their details read from their
//! one-line summary.

use bionicbb_core::ledger::EventRecord;
use serde::Serialize;
use serde_json::Value;

use super::changes::{gerrit_link, status_tone};
use super::text::{Href, Text, Tone, When, clip, vote};

/// How many events the page lists.
pub const EVENT_LIMIT: usize = 50;
/// How much of a reply the page quotes.
const REPLY_CHARS: usize = 80;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLine {
    pub when: When,
    /// `gmail`, `jenkins`...
    pub source: Text,
    /// Who acted, when known.
    pub actor: Option<Text>,
    /// What happened, up to the change.
    pub action: Text,
    pub change: Option<ChangeRef>,
    /// What came of it.
    pub outcomes: Vec<Outcome>,
}

/// The patch set an event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRef {
    /// `123456/2`.
    pub text: Text,
    pub link: Option<Href>,
}

/// One thing that came of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub text: Text,
    pub tone: Tone,
    pub link: Option<Href>,
}

impl Outcome {
    fn new(text: &str, tone: Tone, link: Option<Href>) -> Outcome {
        Outcome {
            text: Text::new(text),
            tone,
            link,
        }
    }
}

pub fn line(now: i64, gerrit: &url::Url, event: &EventRecord) -> EventLine {
    let change = event.change_number.map(|n| ChangeRef {
        text: Text::new(&match event.patch_set {
            Some(ps) => format!("{n}/{ps}"),
            None => n.to_string(),
        }),
        link: gerrit_link(gerrit, n, event.patch_set),
    });
    let decisions = decisions_of(&event.decisions);
    // Words end with the change ("... on 123456/2"); a summary names it itself.
    let (actor, action, worded) = match (&event.details, event.source.as_str()) {
        (Some(d), "gmail") => {
            let kind = d.message_type.as_deref().unwrap_or("");
            let action = match kind {
                "comment" if !d.commands.is_empty() => {
                    format!("commented {} on", d.commands.join(", "))
                }
                "comment" => "commented on".to_string(),
                "newchange" => "uploaded new change".to_string(),
                "newpatchset" => "uploaded".to_string(),
                "merged" => "merged".to_string(),
                "abandon" => "abandoned".to_string(),
                "restore" => "restored".to_string(),
                "revert" => "reverted".to_string(),
                "merge-failed" => "failed to merge".to_string(),
                "deleteVote" => "removed a vote on".to_string(),
                other => format!("{} on", other.replace(['-', '_'], " ")),
            };
            (d.author.as_deref().map(Text::new), action, true)
        }
        (_, "jenkins" | "jenkins-catch-up") => match jenkins_action(event, &decisions) {
            Some(action) => (None, action, true),
            None => (None, attempt(&event.summary), false),
        },
        _ => (None, attempt(&event.summary), false),
    };
    let change = change.filter(|_| worded);
    let mut outcomes: Vec<Outcome> = decisions.iter().filter_map(|d| outcome(d)).collect();
    if outcomes.is_empty() && event.source == "gmail" && event.details.is_some() {
        outcomes.push(Outcome::new("nothing to do", Tone::Idle, None));
    }
    EventLine {
        when: When::new(now, event.at),
        source: Text::new(&event.source),
        actor,
        action: Text::new(&action),
        change,
        outcomes,
    }
}

/// The summary of an attempt to post on Gerrit (`review 123456/2 (job #3):
/// posted`, `drop_rejection 123456/2: ...`), its kind in words.
fn attempt(summary: &str) -> String {
    match summary.split_once(' ') {
        Some(("review", rest)) => format!("Review {rest}"),
        Some(("drop_rejection", rest)) => format!("Dropping the bot's vote on {rest}"),
        _ => summary.to_string(),
    }
}

/// "bionic-presubmit #12 FAILURE on" for a build document's event.
fn jenkins_action(event: &EventRecord, decisions: &[&Value]) -> Option<String> {
    let d = decisions.first()?;
    let job = d.get("job").and_then(Value::as_str)?;
    let number = d.get("number").and_then(Value::as_u64)?;
    let status = d.get("status").and_then(Value::as_str).unwrap_or("started");
    let via = if event.source == "jenkins-catch-up" {
        " (asked Jenkins: its notification never came)"
    } else {
        ""
    };
    Some(format!("{job} #{number} {status}{via} on"))
}

/// What a decision came to, in words.
fn outcome(d: &Value) -> Option<Outcome> {
    let text = |key: &str| d.get(key).and_then(Value::as_str);
    let result = text("result").unwrap_or("");
    let failed = result.starts_with("failed for good");
    let job = text("job").unwrap_or("the job");
    let link = text("queue_url").and_then(Href::new);
    let out = match text("decision") {
        Some("build" | "clean") if failed => {
            Outcome::new(&format!("{job} not triggered: {result}"), Tone::Bad, None)
        }
        Some("build") => Outcome::new(&format!("{job} queued"), Tone::Info, link),
        Some("clean") => Outcome::new(&format!("clean build {job} queued"), Tone::Info, link),
        Some("drop_rejection") if failed => Outcome::new(result, Tone::Bad, None),
        Some("drop_rejection") => Outcome::new("the bot's vote to be dropped", Tone::Info, None),
        Some("reply") => {
            let message = text("message").unwrap_or("");
            let quoted = clip(message.lines().next().unwrap_or(""), REPLY_CHARS);
            let tone = if failed { Tone::Bad } else { Tone::Idle };
            Outcome::new(&format!("replied “{quoted}”"), tone, None)
        }
        Some("carry_over") if failed => Outcome::new(result, Tone::Bad, None),
        Some("carry_over") => {
            let label = text("label").unwrap_or("vote");
            let value = d.get("value").and_then(Value::as_i64).unwrap_or(0);
            let from = d.get("from_patch_set").and_then(Value::as_u64).unwrap_or(0);
            let what = format!("{} carried over from patch set {from}", vote(label, value));
            Outcome::new(&what, status_tone_of(value), None)
        }
        Some("vouch") => {
            let who = text("by_name").or(text("by_email")).unwrap_or("someone");
            Outcome::new(&format!("built on {who}'s ok-to-test"), Tone::Info, None)
        }
        Some("acknowledge") => {
            let command = clip(text("command").unwrap_or("a command"), REPLY_CHARS);
            let by = clip(text("by").unwrap_or("someone"), REPLY_CHARS);
            let tone = if failed { Tone::Bad } else { Tone::Idle };
            Outcome::new(
                &format!("acknowledged bionicbb:{command} by {by}"),
                tone,
                None,
            )
        }
        Some("why") => {
            let tone = if failed { Tone::Bad } else { Tone::Idle };
            Outcome::new("answered bionicbb:why", tone, None)
        }
        Some("explain_skip") => {
            let message = text("message").unwrap_or("");
            let quoted = clip(message.lines().next().unwrap_or(""), REPLY_CHARS);
            let tone = if failed { Tone::Bad } else { Tone::Idle };
            Outcome::new(&format!("explained “{quoted}”"), tone, None)
        }
        Some("cancel_superseded") if result.is_empty() => return None,
        Some("cancel_superseded") => {
            Outcome::new(&format!("superseded builds: {result}"), Tone::Idle, None)
        }
        Some("skip") => Outcome::new(
            &format!("skipped: {}", text("reason").unwrap_or("no reason given")),
            Tone::Idle,
            None,
        ),
        Some(other) => Outcome::new(other, Tone::Idle, None),
        None => return jenkins_outcome(d),
    };
    Some(out)
}

/// The outcome of a build document: its review queued.
fn jenkins_outcome(d: &Value) -> Option<Outcome> {
    if d.get("review").is_some() {
        let label = d.get("vote").filter(|v| v.is_object());
        let status = d.get("status").and_then(Value::as_str);
        let tone = status.map_or(Tone::Info, status_tone);
        let text = match label
            .and_then(|l| Some(vote(l.get("name")?.as_str()?, l.get("value")?.as_i64()?)))
        {
            Some(v) => format!("{v} to post"),
            None => "review to post".to_string(),
        };
        return Some(Outcome::new(&text, tone, None));
    }
    // An attempt's outcome (`{"outcome": "posted"}`): its summary says it.
    None
}

/// The decision objects of an event (recorded as an array, or one object).
pub fn decisions_of(decisions: &Value) -> Vec<&Value> {
    match decisions {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The tone of a vote carried over: good for a positive one, bad else.
fn status_tone_of(value: i64) -> Tone {
    if value > 0 { Tone::Good } else { Tone::Bad }
}
