//! The reconcile card: when gmail-listener last compared the open changes
//! on Gerrit with what mail reported, what that pass found, and whether
//! mail is leaking (a pass found patch sets or commands no mail had
//! delivered). Pure: read from the status value the pass records (key
//! `reconcile` of `gmail-listener`) and the configured intervals.

use std::collections::BTreeMap;

use serde_json::Value;

use super::health::{Card, Fact, text_of, time_of};
use super::text::{Text, Tone, When, span};

/// What the card is made from.
pub struct Inputs<'a> {
    pub now: i64,
    /// gmail-listener's status values.
    pub status: &'a BTreeMap<String, Value>,
    /// `gerrit.reconcile_interval` in seconds; 0 = off.
    pub every: i64,
    /// `gerrit.reconcile_full_interval` in seconds.
    pub full_every: i64,
}

/// The status keys the card reads (the other cards leave them alone).
pub const KEYS: [&str; 2] = ["reconcile", "reconcile_cursor"];

pub fn card(i: &Inputs<'_>) -> Card {
    let title = "Reconcile with Gerrit";
    if i.every <= 0 {
        return Card {
            title,
            level: Tone::Idle,
            state: Text::new("Off"),
            facts: vec![Fact::new(
                "gerrit.reconcile_interval is \"0\": a patch set or command whose mail is \
                 lost is never acted on",
                None,
                None,
            )],
        };
    }
    let mut facts = vec![Fact::new(
        &format!(
            "Asks Gerrit every {} (every open change every {})",
            span(i.every.unsigned_abs()),
            span(i.full_every.unsigned_abs())
        ),
        None,
        None,
    )];
    let Some(pass) = i.status.get("reconcile").filter(|v| v.is_object()) else {
        return Card {
            title,
            level: Tone::Idle,
            state: Text::new("No pass recorded yet"),
            facts,
        };
    };
    let count = |key: &str| pass.get(key).and_then(Value::as_u64).unwrap_or(0);
    let outcome = pass.get("outcome").and_then(Value::as_str).unwrap_or("");
    if let Some(at) = time_of(pass) {
        let kind = pass.get("kind").and_then(Value::as_str).unwrap_or("");
        let tail = format!(
            " · {kind} · {} · {} · {}",
            plural(count("changes"), "change"),
            plural(count("pages"), "page"),
            seconds(count("duration_ms"))
        );
        facts.push(Fact::new(
            "Last pass",
            Some(When::new(i.now, at)),
            Some(tail),
        ));
    }
    let (patch_sets, commands) = (count("missed_patch_sets"), count("missed_commands"));
    let leaking = patch_sets + commands > 0;
    if leaking {
        let mut found = Vec::new();
        if patch_sets > 0 {
            found.push(plural(patch_sets, "patch set"));
        }
        if commands > 0 {
            found.push(plural(commands, "command"));
        }
        let text = format!(
            "It found {} that no mail had delivered: check the Gmail filter and label",
            found.join(" and ")
        );
        facts.push(Fact::new(&text, None, None).at(Tone::Warn));
    }
    if let Some(error) = text_of(pass) {
        let level = if outcome == "failed" {
            Tone::Bad
        } else {
            Tone::Warn
        };
        facts.push(Fact::new(&format!("Error: {error}"), None, None).at(level));
    }
    let next_at = pass.get("next_at").and_then(Value::as_i64);
    if let Some(at) = next_at {
        facts.push(Fact::new("Next pass", Some(When::new(i.now, at)), None));
    }
    let overdue = next_at.is_some_and(|at| i.now.saturating_sub(at) > i.every.max(60));
    let (level, state) = match outcome {
        _ if overdue => {
            let since = time_of(pass).map(|at| span(i.now.saturating_sub(at).unsigned_abs()));
            (
                Tone::Warn,
                format!("No pass for {}", since.unwrap_or_default()),
            )
        }
        "failed" => (Tone::Bad, "Last pass failed".to_string()),
        "incomplete" => (Tone::Warn, "Last pass stopped early".to_string()),
        "truncated" => (
            Tone::Warn,
            "Last pass reached gerrit.reconcile_limit".to_string(),
        ),
        "stopped" => (Tone::Idle, "Last pass stopped with the daemon".to_string()),
        _ if leaking => (Tone::Warn, "Mail is missing events".to_string()),
        _ => (Tone::Good, "Nothing missed".to_string()),
    };
    Card {
        title,
        level,
        state: Text::new(&state),
        facts,
    }
}

/// `1 change`, `3 changes`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A duration in milliseconds as `0.27 s` or `32 s`.
fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{} s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn card_for(pass: Option<Value>, every: i64) -> Card {
        let mut status = BTreeMap::new();
        if let Some(pass) = pass {
            status.insert("reconcile".to_string(), pass);
        }
        card(&Inputs {
            now: NOW,
            status: &status,
            every,
            full_every: 6 * 3600,
        })
    }

    fn pass(outcome: &str, patch_sets: u64, commands: u64, error: Option<&str>) -> Value {
        json!({
            "at": NOW - 120, "kind": "incremental", "outcome": outcome, "after": NOW - 900,
            "changes": 1000, "pages": 2, "comment_reads": 0,
            "missed_patch_sets": patch_sets, "missed_commands": commands,
            "duration_ms": 270, "error": error, "next_at": NOW + 480,
        })
    }

    fn texts(card: &Card) -> Vec<String> {
        card.facts
            .iter()
            .map(|f| {
                let when = f.when.as_ref().map(|w| w.relative.clone());
                let tail = f.tail.as_ref().map(|t| t.as_str().to_string());
                format!(
                    "{} {}{}",
                    f.lead.as_str(),
                    when.unwrap_or_default(),
                    tail.unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn a_clean_pass_reads_as_nothing_missed() {
        let c = card_for(Some(pass("ok", 0, 0, None)), 600);
        assert_eq!((c.level, c.state.as_str()), (Tone::Good, "Nothing missed"));
        let t = texts(&c);
        assert_eq!(
            t[0],
            "Asks Gerrit every 10 min (every open change every 6 h) "
        );
        assert_eq!(
            t[1],
            "Last pass 2 min ago · incremental · 1000 changes · 2 pages · 0.27 s"
        );
        assert_eq!(t[2], "Next pass in 8 min");
    }

    #[test]
    fn events_no_mail_delivered_say_mail_is_leaking() {
        let c = card_for(Some(pass("ok", 2, 1, None)), 600);
        assert_eq!(
            (c.level, c.state.as_str()),
            (Tone::Warn, "Mail is missing events")
        );
        let leak = c.facts.iter().find(|f| f.level == Some(Tone::Warn));
        assert_eq!(
            leak.map(|f| f.lead.as_str()),
            Some(
                "It found 2 patch sets and 1 command that no mail had delivered: \
                 check the Gmail filter and label"
            )
        );
    }

    #[test]
    fn a_failed_pass_is_red_with_its_error() {
        let c = card_for(Some(pass("failed", 0, 0, Some("asking Gerrit: 503"))), 600);
        assert_eq!((c.level, c.state.as_str()), (Tone::Bad, "Last pass failed"));
        assert!(texts(&c).contains(&"Error: asking Gerrit: 503 ".to_string()));
        let c = card_for(Some(pass("truncated", 0, 0, None)), 600);
        assert_eq!(c.level, Tone::Warn);
        assert!(c.state.as_str().contains("gerrit.reconcile_limit"));
    }

    #[test]
    fn an_overdue_pass_is_a_warning() {
        let mut p = pass("ok", 0, 0, None);
        p["at"] = json!(NOW - 3 * 3600);
        p["next_at"] = json!(NOW - 3 * 3600 + 600);
        let c = card_for(Some(p), 600);
        assert_eq!((c.level, c.state.as_str()), (Tone::Warn, "No pass for 3 h"));
    }

    #[test]
    fn off_and_not_yet_are_said_in_words() {
        let c = card_for(None, 0);
        assert_eq!((c.level, c.state.as_str()), (Tone::Idle, "Off"));
        let c = card_for(None, 600);
        assert_eq!(
            (c.level, c.state.as_str()),
            (Tone::Idle, "No pass recorded yet")
        );
        // Something that is not a pass record is not read as one.
        let c = card_for(Some(json!("garbage")), 600);
        assert_eq!(c.state.as_str(), "No pass recorded yet");
    }
}
