use bionicbb_core::ledger::{EventDetails, OutboxState};
use serde_json::json;

use super::*;

const JENKINS: &str = "http://jenkins.example.org/";

fn trigger(ps: u32, state: TriggerState, queue: Option<u64>, build: Option<u64>) -> Trigger {
    Trigger {
        key: EffectKey::build(123456, ps, "bionic-presubmit", &Default::default()),
        change_number: Some(123456),
        patch_set: Some(ps),
        job: "bionic-presubmit".into(),
        state,
        started_at: 10,
        finished_at: None,
        error: None,
        queue_id: queue,
        build_number: build,
        closed: None,
    }
}

fn completion(ps: u32, queue: u64, number: u64, status: &str) -> SeenBuild {
    SeenBuild {
        build_key: format!("bionic-presubmit#{number}"),
        seen_at: 20,
        event: json!({
            "job": "bionic-presubmit", "number": number, "queue_id": queue,
            "status": status, "change": "123456", "patch_set": ps,
            "url": format!("job/bionic-presubmit/{number}/"),
        }),
        review: None,
    }
}

fn event(kind: &str, decisions: Value, author: &str, commands: &[&str]) -> EventRecord {
    EventRecord {
        at: 30,
        source: "gmail".into(),
        summary: format!("{kind} on 123456 patch set 2"),
        change_number: Some(123456),
        patch_set: Some(2),
        decisions,
        details: Some(EventDetails {
            message_type: Some(kind.into()),
            author: Some(author.into()),
            commands: commands.iter().map(|c| c.to_string()).collect(),
            ..EventDetails::default()
        }),
    }
}

#[test]
fn builds_of_the_patch_set_are_joined_with_their_results_oldest_first() {
    let history = History {
        // Newest first, as the ledger lists them.
        triggers: vec![
            trigger(2, TriggerState::Done, Some(8), None),
            trigger(3, TriggerState::Done, Some(9), None),
            trigger(2, TriggerState::Done, Some(7), Some(12)),
        ],
        completions: vec![
            completion(2, 7, 12, "FAILURE"),
            completion(3, 9, 13, "SUCCESS"),
        ],
        ..History::default()
    };
    let r = report(&history, 123456, 2, Vec::new(), JENKINS, JENKINS);
    assert_eq!(
        r.builds,
        [
            BuildLine {
                job: "bionic-presubmit".into(),
                state: BuildState::Completed {
                    number: 12,
                    result: "FAILURE".into(),
                    link: Some(format!("{JENKINS}job/bionic-presubmit/12/")),
                },
            },
            BuildLine {
                job: "bionic-presubmit".into(),
                state: BuildState::Queued {
                    queue_url: format!("{JENKINS}queue/item/8/"),
                },
            },
        ]
    );
}

#[test]
fn skips_of_uploads_and_ignored_commands_come_from_the_events() {
    let skip = |reason: &str| json!([{ "decision": "skip", "reason": reason }]);
    let history = History {
        events: vec![
            event(
                "newpatchset",
                skip("committer dana@evil.org is not in a trusted domain"),
                "Dana Dev",
                &[],
            ),
            // The same reason again (a copy of the mail): listed once.
            event(
                "newpatchset",
                skip("committer dana@evil.org is not in a trusted domain"),
                "Dana Dev",
                &[],
            ),
            event(
                "comment",
                skip("commands from stranger@evil.org ignored: not a trusted commenter"),
                "Mallory",
                &["bionicbb:retry"],
            ),
            // A comment without commands, and a mail with nothing to do.
            event("comment", skip("comment without votes"), "Sam", &[]),
            event("merged", skip("merged: nothing to do"), "Sam", &[]),
        ],
        events_kept_since: Some(5),
        ..History::default()
    };
    let r = report(&history, 123456, 2, Vec::new(), JENKINS, JENKINS);
    assert_eq!(
        r.skipped,
        ["committer dana@evil.org is not in a trusted domain"]
    );
    assert_eq!(
        r.ignored,
        [IgnoredCommand {
            by: Some("Mallory".into()),
            commands: vec!["bionicbb:retry".into()],
            reason: "commands from stranger@evil.org ignored: not a trusted commenter".into(),
        }]
    );
    // The upload's event is kept: nothing about the patch set is older.
    assert_eq!(r.history_since, None);
}

#[test]
fn pruned_events_without_the_upload_are_said_to_be_gone() {
    let history = History {
        events_kept_since: Some(1_780_000_000),
        ..History::default()
    };
    let r = report(&history, 123456, 2, Vec::new(), JENKINS, JENKINS);
    assert_eq!(r.history_since, Some(1_780_000_000));
    let none = report(&History::default(), 123456, 2, Vec::new(), JENKINS, JENKINS);
    assert_eq!(none.history_since, None, "nothing was pruned");
}

#[test]
fn pending_reviews_a_vouch_and_an_explanation_are_reported() {
    let history = History {
        pending: vec![OutboxItem {
            id: 1,
            kind: "review".into(),
            order_key: "123456".into(),
            payload: json!({ "patch_set": 2, "build": "bionic-presubmit #12" }),
            state: OutboxState::Pending,
            created_at: 10,
            attempts: 1,
            next_attempt_at: 40,
            last_attempt_at: Some(20),
            in_flight_since: None,
            last_error: Some("HTTP 503".into()),
            finished_at: None,
        }],
        vouch: Some(StoredEffect {
            kind: "vouch".into(),
            state: "done".into(),
            payload: json!({ "by_name": "Sam Reviewer", "by_email": "sam@example.com" }),
            result: None,
        }),
        explain: Some(StoredEffect {
            kind: "explain".into(),
            state: "done".into(),
            payload: json!({}),
            result: None,
        }),
        ..History::default()
    };
    let r = report(&history, 123456, 2, Vec::new(), JENKINS, JENKINS);
    assert_eq!(
        r.waiting,
        [WaitingReview {
            what: "the result of bionic-presubmit #12".into(),
            next_attempt_at: 40,
            attempts: 1,
            last_error: Some("HTTP 503".into()),
        }]
    );
    assert_eq!(r.vouched_by.as_deref(), Some("Sam Reviewer"));
    assert!(r.explained);
}
