//! The bot's cancels of its own superseded builds: which builds may be
//! cancelled, each cancel once, and how build-listener recognises a build
//! the bot stopped.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{
    Begin, BeginCancel, EffectKey, JenkinsItem, Ledger, NewOutboxItem, StoppedBuild,
};
use serde_json::json;

const JOB: &str = "team/bionic-presubmit";
const CHANGE: u64 = 123456;

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
}

fn params(ps: u32, extra: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("REF".to_string(), format!("refs/changes/56/{CHANGE}/{ps}")),
        ("X".to_string(), extra.to_string()),
    ])
}

/// A build effect of patch set `ps` (of `change`), begun at `at`; done and
/// owning `items` unless `items` is empty (then still in doubt).
fn triggered(
    ledger: &Ledger,
    change: u64,
    ps: u32,
    extra: &str,
    at: i64,
    items: &[JenkinsItem],
) -> EffectKey {
    let key = EffectKey::build(change, ps, JOB, &params(ps, extra));
    let payload = json!({ "job": JOB, "params": params(ps, extra) });
    assert_eq!(
        ledger.begin_effect(&key, "build", &payload, at).unwrap(),
        Begin::New
    );
    if !items.is_empty() {
        ledger.own_jenkins_items(&key, items).unwrap();
        ledger.finish_effect(&key, &json!({}), at + 1).unwrap();
    }
    key
}

/// Records the completion of build `number`, from queue item `queue_id`.
fn completed(ledger: &Ledger, number: u64, queue_id: Option<u64>, status: &str) {
    let event = json!({ "number": number, "queue_id": queue_id, "status": status });
    assert!(
        ledger
            .record_completion(
                &format!("job:{JOB}#{number}"),
                &event,
                NewOutboxItem {
                    kind: "review".into(),
                    order_key: CHANGE.to_string(),
                    payload: json!({}),
                },
                500,
            )
            .unwrap()
    );
}

fn targets(ledger: &Ledger, below: Option<u32>) -> Vec<EffectKey> {
    ledger
        .cancel_targets(CHANGE, below)
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect()
}

fn build(number: u64) -> JenkinsItem {
    JenkinsItem::Build {
        job: JOB.into(),
        number,
    }
}

#[test]
fn only_the_bots_unfinished_builds_of_older_patch_sets_are_cancelled() {
    let (_dir, ledger) = open();
    let queued = triggered(&ledger, CHANGE, 1, "a", 100, &[JenkinsItem::Queue(7)]);
    let running = triggered(
        &ledger,
        CHANGE,
        2,
        "a",
        110,
        &[JenkinsItem::Queue(8), build(41)],
    );
    let by_queue = triggered(&ledger, CHANGE, 2, "b", 115, &[JenkinsItem::Queue(9)]);
    let in_doubt = triggered(&ledger, CHANGE, 2, "c", 118, &[]);
    let current = triggered(&ledger, CHANGE, 3, "a", 120, &[JenkinsItem::Queue(10)]);
    let elsewhere = triggered(&ledger, 99, 1, "a", 130, &[JenkinsItem::Queue(11)]);
    let _ = (&in_doubt, &elsewhere);

    // Below patch set 3: the older ones, done and owning something.
    assert_eq!(
        targets(&ledger, Some(3)),
        vec![queued.clone(), running.clone(), by_queue.clone()]
    );
    let listed = ledger.cancel_targets(CHANGE, Some(3)).unwrap();
    assert_eq!(listed[1].patch_set, 2);
    assert_eq!(listed[1].job, JOB);
    assert_eq!(listed[1].started_at, 110);
    assert_eq!(listed[1].items, vec![build(41), JenkinsItem::Queue(8)]);
    assert_eq!(targets(&ledger, Some(2)), vec![queued.clone()]);
    // The change closed: all of them.
    assert_eq!(
        targets(&ledger, None),
        vec![
            queued.clone(),
            running.clone(),
            by_queue.clone(),
            current.clone()
        ]
    );

    // A result recorded: by the build it owns, or by the queue item the
    // completion names.
    completed(&ledger, 41, None, "SUCCESS");
    completed(&ledger, 50, Some(9), "FAILURE");
    assert_eq!(targets(&ledger, Some(3)), vec![queued.clone()]);
    // Found without a result by build-listener (closed): no longer listed.
    assert!(ledger.close_unreported(&queued, "cancelled", 600).unwrap());
    assert!(targets(&ledger, Some(3)).is_empty());
}

#[test]
fn each_cancel_is_begun_once_and_settled_once() {
    let (_dir, ledger) = open();
    let old = triggered(&ledger, CHANGE, 1, "a", 100, &[JenkinsItem::Queue(7)]);
    assert_eq!(
        ledger.begin_cancel(&old, CHANGE, Some(2), 200).unwrap(),
        BeginCancel::New
    );
    // Begun and never marked (a crash, a passing fault): listed, and done
    // again.
    assert_eq!(targets(&ledger, Some(3)), vec![old.clone()]);
    assert_eq!(
        ledger.begin_cancel(&old, CHANGE, Some(3), 210).unwrap(),
        BeginCancel::Again
    );
    ledger
        .finish_cancel(&old, true, "queue item 7 cancelled", 220)
        .unwrap();
    assert!(targets(&ledger, Some(3)).is_empty());
    assert_eq!(
        ledger.begin_cancel(&old, CHANGE, Some(3), 230).unwrap(),
        BeginCancel::Settled
    );
    assert!(ledger.cancel_begun(&old).unwrap());
    // Refused for good: settled as well, and not counted as stopped.
    let refused = triggered(&ledger, CHANGE, 1, "b", 100, &[JenkinsItem::Queue(8)]);
    ledger.begin_cancel(&refused, CHANGE, None, 240).unwrap();
    ledger
        .finish_cancel(&refused, false, "HTTP 403", 250)
        .unwrap();
    assert!(targets(&ledger, None).is_empty());
    assert!(!ledger.cancel_begun(&refused).unwrap());
}

#[test]
fn a_build_the_bot_stopped_is_recognised_by_its_queue_item_or_number() {
    let (_dir, ledger) = open();
    let by_queue = triggered(&ledger, CHANGE, 1, "a", 100, &[JenkinsItem::Queue(7)]);
    let by_number = triggered(
        &ledger,
        CHANGE,
        1,
        "b",
        100,
        &[JenkinsItem::Queue(8), build(42)],
    );
    let refused = triggered(&ledger, CHANGE, 1, "c", 100, &[JenkinsItem::Queue(9)]);
    let never = triggered(&ledger, CHANGE, 1, "d", 100, &[JenkinsItem::Queue(10)]);
    let _ = &never;
    ledger
        .begin_cancel(&by_queue, CHANGE, Some(2), 200)
        .unwrap();
    ledger.begin_cancel(&by_number, CHANGE, None, 200).unwrap();
    ledger.begin_cancel(&refused, CHANGE, Some(2), 200).unwrap();
    ledger
        .finish_cancel(&refused, false, "HTTP 403", 210)
        .unwrap();
    // Build 41 came from queue item 7 (a cancel begun, not yet marked:
    // the stop may have reached Jenkins before the mark).
    completed(&ledger, 41, Some(7), "ABORTED");
    completed(&ledger, 42, None, "FAILURE");
    completed(&ledger, 43, Some(9), "ABORTED");
    completed(&ledger, 44, Some(10), "ABORTED");
    assert_eq!(
        ledger.stopped_by_bot(&format!("job:{JOB}#41")).unwrap(),
        Some(StoppedBuild {
            superseded_by: Some(2),
            status: Some("ABORTED".into())
        })
    );
    assert_eq!(
        ledger.stopped_by_bot(&format!("job:{JOB}#42")).unwrap(),
        Some(StoppedBuild {
            superseded_by: None,
            status: Some("FAILURE".into())
        })
    );
    // A refused cancel, no cancel, an unknown build: not stopped by the bot.
    for number in [43, 44, 45] {
        assert_eq!(
            ledger
                .stopped_by_bot(&format!("job:{JOB}#{number}"))
                .unwrap(),
            None,
            "{number}"
        );
    }
    assert_eq!(ledger.stopped_by_bot("not a key").unwrap(), None);
}
