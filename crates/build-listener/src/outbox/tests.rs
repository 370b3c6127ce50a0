//! Unit tests of the outbox worker.

use super::*;
use bionicbb_core::ledger::metric_names as names;
use serde_json::json;

#[test]
fn backoff_doubles_up_to_the_cap() {
    let s = Settings::default();
    assert_eq!(s.delay(1), Duration::from_secs(2));
    assert_eq!(s.delay(2), Duration::from_secs(4));
    assert_eq!(s.delay(5), Duration::from_secs(32));
    assert_eq!(s.delay(9), Duration::from_secs(512));
    assert_eq!(s.delay(10), Duration::from_secs(600));
    assert_eq!(s.delay(500), Duration::from_secs(600));
    assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
    assert_eq!(ceil_secs(Duration::ZERO), 0);
}

/// A worker whose Gerrit is never reached, on a fresh ledger.
fn worker(dir: &std::path::Path) -> Worker {
    let text = r#"
[gerrit]
url = "http://127.0.0.1:9/"
bot_email = "bionicbb@example.com"
[jenkins]
url = "http://127.0.0.1:9/"
user = "bionicbb"
api_token = "t"
[build_listener]
secret = "s"
[jobs]
"#;
    let config = Config::parse(text, std::path::Path::new("test.toml")).unwrap();
    let gerrit = GerritClient::new(
        config.gerrit.url.clone(),
        None,
        Duration::from_secs(1),
        bionicbb_core::retry::RetryPolicy::default(),
    )
    .unwrap();
    let ledger = Ledger::open(&dir.join("ledger.sqlite3")).unwrap();
    Worker::new(
        ledger,
        gerrit,
        Arc::new(config),
        Arc::new(tokio::sync::Notify::new()),
        Settings::default(),
    )
}

fn enqueue(worker: &Worker, created_at: i64) -> OutboxItem {
    let item = ledger::NewOutboxItem {
        kind: KIND_REVIEW.into(),
        order_key: "123456".into(),
        payload: json!({"patch_set": 4, "build": "j #1"}),
    };
    let id = worker.ledger.enqueue(item, created_at).unwrap();
    worker.ledger.outbox_item(id).unwrap().unwrap()
}

fn transient() -> ApiError {
    ApiError::new(
        bionicbb_core::Service::Gerrit,
        bionicbb_core::ErrorKind::Transient,
        "busy",
    )
    .with_status(503)
}

#[tokio::test]
async fn finished_history_older_than_thirty_days_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path());
    let now = ledger::now();
    let old = enqueue(&w, now - KEEP_HISTORY_SECS - 100);
    w.ledger
        .mark_done(old.id, now - KEEP_HISTORY_SECS - 50)
        .unwrap();
    let recent = enqueue(&w, now - 100);
    w.ledger.mark_done(recent.id, now - 50).unwrap();
    let pending = enqueue(&w, now - KEEP_HISTORY_SECS - 100);
    w.prune(now).await;
    assert_eq!(w.ledger.outbox_item(old.id).unwrap(), None);
    assert!(w.ledger.outbox_item(recent.id).unwrap().is_some());
    assert!(
        w.ledger.outbox_item(pending.id).unwrap().is_some(),
        "pending work is never pruned"
    );
}

#[tokio::test]
async fn passing_errors_are_retried_with_backoff_then_given_up_after_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path());
    let now = ledger::now();
    // Young item: retried 2 s later, still pending.
    let item = enqueue(&w, now);
    w.conclude(&item, Outcome::Retry(transient())).await;
    let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
    assert_eq!(after.attempts, 1);
    assert!(after.next_attempt_at >= now + 2 && after.next_attempt_at <= now + 4);
    assert!(after.last_error.unwrap().contains("busy"));
    // A day-old item is given up.
    let old = enqueue(&w, now - 24 * 3600 - 5);
    w.ledger.mark_done(item.id, now).unwrap();
    w.conclude(&old, Outcome::Retry(transient())).await;
    let after = w.ledger.outbox_item(old.id).unwrap().unwrap();
    assert_eq!(after.state, ledger::OutboxState::Failed);
    assert!(
        after
            .last_error
            .unwrap()
            .starts_with("gave up after 1 attempts over 1day")
    );
    let counters = w.ledger.counters().unwrap();
    assert_eq!(
        counters,
        vec![
            (
                names::FAILURES.into(),
                "component=\"build-listener\"".into(),
                1
            ),
            (names::OUTBOX_RETRIES.into(), String::new(), 1),
            (names::REVIEWS_POSTED.into(), "outcome=\"failed\"".into(), 1),
        ]
    );
    assert!(
        w.ledger
            .status("build-listener")
            .unwrap()
            .contains_key("last_error")
    );
}

#[tokio::test]
async fn a_post_in_doubt_waits_out_the_settle_time_and_stays_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path());
    let now = ledger::now();
    let item = enqueue(&w, now);
    w.ledger.mark_in_flight(item.id, now).unwrap();
    let unanswered = ApiError::new(
        bionicbb_core::Service::Gerrit,
        bionicbb_core::ErrorKind::Transient,
        "no answer within 30s",
    );
    w.conclude(&item, Outcome::after_post(unanswered)).await;
    let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
    assert_eq!(after.attempts, 1);
    assert_eq!(after.in_flight_since, Some(now), "still in doubt");
    assert!(!after.interrupted());
    assert!(after.may_have_landed());
    let settle = in_doubt::DEFAULT_SETTLE.as_secs() as i64;
    assert!(after.next_attempt_at >= now + settle, "{after:?}");
    // A refusal is no doubt: the usual backoff, nothing in flight.
    let refused = enqueue(&w, now);
    w.ledger.mark_done(item.id, now).unwrap();
    w.ledger.mark_in_flight(refused.id, now).unwrap();
    w.conclude(&refused, Outcome::after_post(transient())).await;
    let after = w.ledger.outbox_item(refused.id).unwrap().unwrap();
    assert_eq!(after.in_flight_since, None);
    assert!(after.next_attempt_at <= now + 4);
}

#[tokio::test]
async fn an_attempt_cut_short_by_a_stop_is_deferred_by_the_settle_time() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path());
    let now = ledger::now();
    let item = enqueue(&w, now - 10);
    w.ledger.mark_in_flight(item.id, now - 5).unwrap();
    let found = w.ledger.next_due(now).unwrap().unwrap();
    assert!(found.interrupted());
    w.handle(found).await;
    let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
    assert_eq!(after.attempts, 0, "waiting is not an attempt");
    assert_eq!(after.in_flight_since, Some(now - 5));
    assert!(!after.interrupted());
    let settle = in_doubt::DEFAULT_SETTLE.as_secs() as i64;
    assert!(after.next_attempt_at >= now + settle, "{after:?}");
    assert_eq!(w.ledger.next_due(now + 1).unwrap(), None);
}

#[test]
fn already_posted_matches_the_bots_text_on_that_patch_set() {
    let change: ChangeInfo = serde_json::from_value(json!({
        "project": "p", "branch": "b", "status": "NEW", "_number": 1,
        "owner": {"_account_id": 7},
        "messages": [
            {"id": "a", "author": {"_account_id": 7}, "date": "d", "_revision_number": 4,
             "message": "Patch Set 4: Verified+1\n\nj #1 checkbuild SUCCESS: L"},
            {"id": "b", "author": {"_account_id": 9}, "date": "d", "_revision_number": 3,
             "message": "Patch Set 3:\n\nj #2 checkbuild FAILURE: L"},
        ]
    }))
    .unwrap();
    assert!(already_posted(
        &change,
        7,
        4,
        "j #1 checkbuild SUCCESS: L\n"
    ));
    assert!(!already_posted(&change, 7, 3, "j #1 checkbuild SUCCESS: L"));
    assert!(!already_posted(&change, 9, 4, "j #1 checkbuild SUCCESS: L"));
    assert!(!already_posted(&change, 7, 4, "j #1 checkbuild SUCCESS"));
    // Another account's message with the same text is not the bot's.
    assert!(!already_posted(&change, 7, 3, "j #2 checkbuild FAILURE: L"));
    assert!(already_posted(&change, 9, 3, "j #2 checkbuild FAILURE: L"));
}

#[test]
fn already_posted_finds_the_build_whatever_note_followed_it() {
    let change: ChangeInfo = serde_json::from_value(json!({
        "project": "p", "branch": "b", "status": "NEW", "_number": 1,
        "owner": {"_account_id": 7},
        "messages": [
            {"id": "a", "author": {"_account_id": 7}, "date": "d", "_revision_number": 4,
             "message": "Patch Set 4:\n\nj #1 checkbuild SUCCESS: L\n\nPatch set 5 is current: no vote."},
            {"id": "b", "author": {"_account_id": 7}, "date": "d", "_revision_number": 4,
             "message": "Patch Set 4: Verified-1\n\nj #2 checkbuild FAILURE: L\nIf you believe..."},
        ]
    }))
    .unwrap();
    // Posted with a note (stale then), planned without one.
    assert!(already_posted(&change, 7, 4, "j #1 checkbuild SUCCESS: L"));
    // Posted with the vote, looked for when the patch set is stale.
    assert!(already_posted(
        &change,
        7,
        4,
        "j #2 checkbuild FAILURE: L\nIf you believe..."
    ));
    // Another build whose line begins the same is not this one.
    assert!(!already_posted(&change, 7, 4, "j #1 checkbuild SUCCESS"));
    assert!(!already_posted(&change, 7, 4, "j #2 checkbuild FAILURE: L"));
}

#[test]
fn notify_names() {
    assert_eq!(notify("OWNER_REVIEWERS"), Some(Notify::OwnerReviewers));
    assert_eq!(notify("none"), Some(Notify::None));
    assert_eq!(notify("bogus"), None);
}

#[test]
fn two_clean_builds_on_one_patch_set_are_told_apart() {
    use bionicbb_core::messages::clean_done;
    let first = clean_done("clean-bionic-presubmit", 21, "L/21/");
    let second = clean_done("clean-bionic-presubmit", 22, "L/22/");
    let change: ChangeInfo = serde_json::from_value(json!({
        "project": "p", "branch": "b", "status": "NEW", "_number": 1,
        "owner": {"_account_id": 7},
        "messages": [
            {"id": "a", "author": {"_account_id": 7}, "date": "d", "_revision_number": 1,
             "message": format!("Patch Set 1:\n\n{first}")},
        ]
    }))
    .unwrap();
    assert!(already_posted(&change, 7, 1, &first));
    assert!(
        !already_posted(&change, 7, 1, &second),
        "the second clean build's review is not the first's"
    );
}

#[test]
fn build_keys_name_their_job_and_number() {
    assert_eq!(
        super::job_and_number("job:bionic-presubmit#1842"),
        Some(("bionic-presubmit", 1842))
    );
    assert_eq!(super::job_and_number("job:a/b c#7"), Some(("a/b c", 7)));
    assert_eq!(super::job_and_number("job:x#"), None);
    assert_eq!(super::job_and_number("bionic-presubmit#1"), None);
    assert_eq!(super::job_and_number("job:x#1/started"), None);
}
