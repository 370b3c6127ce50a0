//! The operator's question, "is the bot healthy, what is waiting?": one
//! card per daemon and one for the reviews waiting to be posted, each with
//! a level (its colour) and facts in words, and the newest error. Pure:
//! read from the status values both daemons record, the outbox counts and
//! the time.

use std::collections::BTreeMap;

use bionicbb_core::ledger::OutboxItem;
use serde::Serialize;
use serde_json::Value;

use super::reconcile;
use super::text::{Text, Tone, When, span};
use crate::redact;

/// An error older than this is history, not news: shown grey, not red.
const FRESH_ERROR: i64 = 3600;
/// Reviews waiting longer than this make the outbox card red.
const STUCK_AFTER: i64 = 30 * 60;
/// Given-up items finished within this count on the outbox card.
const GIVEN_UP_WINDOW: i64 = 24 * 3600;

/// One line of a card: `{lead} {when}{tail}`, e.g. "Last poll" "12 s ago"
/// " · 3 mails".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    pub lead: Text,
    pub when: Option<When>,
    pub tail: Option<Text>,
    /// Set for a fact that is itself a problem.
    pub level: Option<Tone>,
}

impl Fact {
    pub(super) fn new(lead: &str, when: Option<When>, tail: Option<String>) -> Fact {
        Fact {
            lead: Text::new(lead),
            when,
            tail: tail.map(Text::from),
            level: None,
        }
    }

    pub(super) fn at(self, level: Tone) -> Fact {
        Fact {
            level: Some(level),
            ..self
        }
    }
}

/// A card of the header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub title: &'static str,
    pub level: Tone,
    /// The state in a few words ("Polling", "3 waiting").
    pub state: Text,
    pub facts: Vec<Fact>,
}

/// The newest error either daemon recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    pub component: &'static str,
    pub text: Text,
    pub when: When,
    /// Recent enough to be news (shown red).
    pub fresh: bool,
}

/// The header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub level: Tone,
    /// The overall state in words.
    pub summary: &'static str,
    pub cards: Vec<Card>,
    pub last_error: Option<LastError>,
}

/// What the header is made from.
pub struct Inputs<'a> {
    pub now: i64,
    pub components: &'a BTreeMap<String, BTreeMap<String, Value>>,
    pub poll_interval: i64,
    /// The Gmail label gmail-listener watches.
    pub label: &'a str,
    pub pending_count: u64,
    pub oldest_pending_age: Option<i64>,
    /// Recently given-up outbox items, newest first.
    pub failed: &'a [OutboxItem],
    /// `gerrit.reconcile_interval` and `reconcile_full_interval`, seconds.
    pub reconcile_every: i64,
    pub reconcile_full_every: i64,
}

pub fn health(i: &Inputs<'_>) -> Health {
    let empty = BTreeMap::new();
    let status = |name: &str| i.components.get(name).unwrap_or(&empty);
    let gmail = status("gmail-listener");
    let builds = status("build-listener");
    let cards = vec![
        gmail_card(i, gmail),
        reconcile::card(&reconcile::Inputs {
            now: i.now,
            status: gmail,
            every: i.reconcile_every,
            full_every: i.reconcile_full_every,
        }),
        build_listener_card(i, builds),
        outbox_card(i),
    ];
    let level = cards.iter().map(|c| c.level).max().unwrap_or(Tone::Idle);
    let summary = match level {
        Tone::Good | Tone::Info => "Healthy",
        Tone::Idle => "Waiting for activity",
        Tone::Warn => "Degraded",
        Tone::Bad => "Needs attention",
    };
    let mut errors: Vec<(&'static str, i64, String)> = Vec::new();
    errors.extend(error_of(gmail, "last_error").map(|(at, e)| ("gmail-listener", at, e)));
    if let Some(poll) = gmail.get("last_poll").filter(|p| p["ok"] == false) {
        if let (Some(at), Some(e)) = (time_of(poll), text_of(poll)) {
            errors.push(("gmail-listener", at, e));
        }
    }
    errors.extend(error_of(builds, "last_error").map(|(at, e)| ("build-listener", at, e)));
    for item in i.failed.iter().take(1) {
        if let (Some(at), Some(e)) = (item.finished_at, &item.last_error) {
            errors.push(("build-listener", at, format!("gave up posting: {e}")));
        }
    }
    let last_error =
        errors
            .into_iter()
            .max_by_key(|(_, at, _)| *at)
            .map(|(component, at, text)| LastError {
                component,
                text: Text::new(&text),
                when: When::new(i.now, at),
                fresh: i.now.saturating_sub(at) < FRESH_ERROR,
            });
    Health {
        level,
        summary,
        cards,
        last_error,
    }
}

fn gmail_card(i: &Inputs<'_>, status: &BTreeMap<String, Value>) -> Card {
    let when = |at| When::new(i.now, at);
    let poll = status.get("last_poll");
    let poll_at = poll
        .and_then(time_of)
        .or_else(|| number(status, "last_poll_at"));
    let next_at = status
        .get("next_poll")
        .and_then(time_of)
        .or_else(|| number(status, "next_poll_due"));
    let every = span(i.poll_interval.unsigned_abs());
    let mut facts = vec![Fact::new(
        &format!("Watches label {} every {every}", i.label),
        None,
        None,
    )];
    if let Some(at) = poll_at {
        let mails = poll
            .and_then(|p| p.get("mails"))
            .and_then(Value::as_u64)
            .map(|n| format!(" · {n} mail{} in the label", if n == 1 { "" } else { "s" }));
        facts.push(Fact::new("Last poll", Some(when(at)), mails));
    }
    if let Some(at) = next_at {
        facts.push(Fact::new("Next poll", Some(when(at)), None));
    }
    let failed = poll.filter(|p| p["ok"] == false);
    if let Some(error) = failed.and_then(text_of) {
        facts.push(Fact::new(&format!("Error: {error}"), None, None).at(Tone::Bad));
    }
    if let Some(at) = status.get("ready").and_then(time_of) {
        facts.push(Fact::new("Started", Some(when(at)), None));
    }
    if let Some(poison) = status.get("last_poison_mail") {
        let deaths = poison.get("deaths").and_then(Value::as_u64).unwrap_or(0);
        let tail = format!(" (it crashed the daemon {deaths} times)");
        facts.push(Fact::new(
            "Poison mail set aside",
            poison_time(poison, i.now),
            Some(tail),
        ));
    }
    let known: Vec<&str> = GMAIL_KEYS.iter().chain(&reconcile::KEYS).copied().collect();
    facts.extend(other_facts(i.now, status, &known));
    // A poll is overdue when the next one was due over an interval ago (or,
    // with no next time recorded, the last one is two intervals old).
    let slack = i.poll_interval.max(60);
    let overdue = match (next_at, poll_at) {
        (Some(next), _) => i.now.saturating_sub(next) > slack,
        (None, Some(last)) => i.now.saturating_sub(last) > 2 * slack,
        (None, None) => false,
    };
    let (level, state) = if status.is_empty() || poll_at.is_none() {
        (Tone::Idle, "No poll recorded yet".to_string())
    } else if overdue {
        let since = poll_at.map(|at| span(i.now.saturating_sub(at).unsigned_abs()));
        let state = format!("No poll for {}", since.unwrap_or_default());
        (Tone::Bad, state)
    } else if failed.is_some() {
        (Tone::Bad, "Last poll failed".to_string())
    } else {
        (Tone::Good, "Polling".to_string())
    };
    Card {
        title: "gmail-listener",
        level,
        state: Text::new(&state),
        facts,
    }
}

fn build_listener_card(i: &Inputs<'_>, status: &BTreeMap<String, Value>) -> Card {
    let when = |at| When::new(i.now, at);
    let success = number(status, "last_success_at");
    let error = error_of(status, "last_error");
    let mut facts = vec![Fact::new("Serving this page", None, None)];
    match success {
        Some(at) => facts.push(Fact::new("Last post to Gerrit", Some(when(at)), None)),
        None => facts.push(Fact::new("Nothing posted to Gerrit yet", None, None)),
    }
    let failing = error
        .as_ref()
        .is_some_and(|(at, _)| success.is_none_or(|ok| *at > ok));
    if let Some((at, text)) = &error {
        let level = if failing { Tone::Warn } else { Tone::Idle };
        facts.push(Fact::new("Last error", Some(when(*at)), Some(format!(": {text}"))).at(level));
    }
    facts.extend(other_facts(i.now, status, &BUILD_LISTENER_KEYS));
    let (level, state) = if failing {
        (Tone::Warn, "Last post to Gerrit failed")
    } else {
        (Tone::Good, "Serving")
    };
    Card {
        title: "build-listener",
        level,
        state: Text::new(state),
        facts,
    }
}

fn outbox_card(i: &Inputs<'_>) -> Card {
    let mut facts = Vec::new();
    let oldest = i.oldest_pending_age.unwrap_or(0);
    if i.pending_count > 0 {
        let age = span(oldest.unsigned_abs());
        facts.push(Fact::new(&format!("Oldest waiting for {age}"), None, None));
    }
    let given_up = i
        .failed
        .iter()
        .filter(|f| f.finished_at.is_some_and(|at| i.now - at < GIVEN_UP_WINDOW))
        .count();
    if given_up > 0 {
        let text = format!("{given_up} given up in the last day (below)");
        facts.push(Fact::new(&text, None, None).at(Tone::Bad));
    }
    let level = if i.pending_count > 0 && oldest > STUCK_AFTER {
        Tone::Bad
    } else if i.pending_count > 0 || given_up > 0 {
        Tone::Warn
    } else {
        Tone::Good
    };
    let state = match i.pending_count {
        0 => "Nothing waiting".to_string(),
        n => format!("{n} waiting"),
    };
    if i.pending_count == 0 && given_up == 0 {
        facts.push(Fact::new("Every review has been posted", None, None));
    }
    Card {
        title: "Reviews to post",
        level,
        state: Text::new(&state),
        facts,
    }
}

/// The keys the cards read; any other is shown as a plain fact.
const GMAIL_KEYS: [&str; 6] = [
    "last_poll",
    "last_poll_at",
    "next_poll",
    "next_poll_due",
    "ready",
    "last_poison_mail",
];
const BUILD_LISTENER_KEYS: [&str; 2] = ["last_success_at", "last_error"];

/// The status values no card reads, in words: `last_thing_at: 100`
/// becomes "Last thing 12 s ago"; secret-named values are masked.
fn other_facts(now: i64, status: &BTreeMap<String, Value>, known: &[&str]) -> Vec<Fact> {
    let mut facts = Vec::new();
    for (key, value) in status {
        if known.contains(&key.as_str()) || (key == "last_error" && error_of(status, key).is_some())
        {
            continue;
        }
        let lead = humanize(key);
        let fact = if redact::is_secret_key(key) {
            Fact::new(&format!("{lead}: {}", redact::MASK), None, None)
        } else if let Some(at) = time_of(value).filter(|_| is_time_key(key) || value.is_object()) {
            let rest = describe(value);
            let tail = (!rest.is_empty()).then(|| format!(" ({rest})"));
            Fact::new(&lead, Some(When::new(now, at)), tail)
        } else {
            Fact::new(&format!("{lead}: {}", describe(value)), None, None)
        };
        let fact = if key.contains("error") {
            fact.at(Tone::Warn)
        } else {
            fact
        };
        facts.push(fact);
    }
    facts
}

/// `last_poll_at` as "Last poll at" → "Last poll".
fn humanize(key: &str) -> String {
    let words = key
        .trim_end_matches("_at")
        .trim_end_matches("_due")
        .replace(['_', '-'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A value in a few words: strings as they are, objects as `key value`
/// pairs (without `at`, secrets masked).
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| k.as_str() != "at" && !v.is_null())
            .map(|(k, v)| {
                let shown = if redact::is_secret_key(k) {
                    redact::MASK.to_string()
                } else {
                    describe(v)
                };
                format!("{} {shown}", k.replace('_', " "))
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => items.iter().map(describe).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn is_time_key(key: &str) -> bool {
    matches!(key, "at" | "due" | "since") || key.ends_with("_at") || key.ends_with("_due")
}

/// The time of a status value: the number itself, or its `at`.
pub(super) fn time_of(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.get("at").and_then(Value::as_i64))
}

/// The error text of a value: the string itself, or its `error` or
/// `message`.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(map) => ["error", "message"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// A recorded error as `(at, text)`, when it has both.
fn error_of(status: &BTreeMap<String, Value>, key: &str) -> Option<(i64, String)> {
    let value = status.get(key)?;
    Some((time_of(value)?, text_of(value)?))
}

fn number(status: &BTreeMap<String, Value>, key: &str) -> Option<i64> {
    status.get(key).and_then(Value::as_i64)
}

fn poison_time(value: &Value, now: i64) -> Option<When> {
    time_of(value).map(|at| When::new(now, at))
}
