//! The triggered builds whose result build-listener never saw: what
//! build-listener asks Jenkins about when a notification was lost.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{Begin, EffectKey, JenkinsItem, Ledger, NewOutboxItem};
use serde_json::json;

const JOB: &str = "team/bionic-presubmit";

fn params(ps: u32) -> BTreeMap<String, String> {
    BTreeMap::from([("REF".to_string(), format!("refs/changes/56/123456/{ps}"))])
}

/// A build effect for patch set `ps`, begun at `at`; done (owning `items`)
/// unless `items` is empty.
fn triggered(ledger: &Ledger, ps: u32, at: i64, items: &[JenkinsItem]) -> EffectKey {
    let key = EffectKey::build(123456, ps, JOB, &params(ps));
    let payload = json!({ "job": JOB, "params": params(ps) });
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

fn seen(ledger: &Ledger, number: u64) -> bool {
    ledger
        .record_completion(
            &format!("job:{JOB}#{number}"),
            &json!({}),
            NewOutboxItem {
                kind: "review".into(),
                order_key: "123456".into(),
                payload: json!({}),
            },
            500,
        )
        .unwrap()
}

fn keys(ledger: &Ledger, oldest: i64, newest: i64) -> Vec<EffectKey> {
    ledger
        .unreported_builds(oldest, newest, 100)
        .unwrap()
        .into_iter()
        .map(|u| u.key)
        .collect()
}

#[test]
fn done_triggers_without_a_seen_completion_are_listed_until_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let build = |number| JenkinsItem::Build {
        job: JOB.into(),
        number,
    };
    let queued = triggered(&ledger, 1, 100, &[JenkinsItem::Queue(7)]);
    let started = triggered(&ledger, 2, 110, &[JenkinsItem::Queue(8), build(41)]);
    let reported = triggered(&ledger, 3, 120, &[JenkinsItem::Queue(9), build(42)]);
    let in_doubt = triggered(&ledger, 4, 130, &[]);
    let _ = (&reported, &in_doubt);

    // The notification of build 42 was seen; the in-doubt trigger owns nothing.
    assert!(seen(&ledger, 42));
    let listed = ledger.unreported_builds(0, 1000, 100).unwrap();
    assert_eq!(
        listed.iter().map(|u| &u.key).collect::<Vec<_>>(),
        vec![&queued, &started]
    );
    assert_eq!(listed[0].job, JOB);
    assert_eq!(listed[0].params, params(1));
    assert_eq!(listed[0].started_at, 100);
    assert_eq!(listed[0].items, vec![JenkinsItem::Queue(7)]);
    // Builds first: the number needs no queue look-up.
    assert_eq!(listed[1].items, vec![build(41), JenkinsItem::Queue(8)]);

    // Only triggers begun within the window, and at most `limit`.
    assert_eq!(keys(&ledger, 105, 1000), vec![started.clone()]);
    assert_eq!(keys(&ledger, 0, 105), vec![queued.clone()]);
    assert_eq!(ledger.unreported_builds(0, 1000, 1).unwrap().len(), 1);

    // The queue item started as build 43 (now owned too), and its completion
    // was recorded: no longer listed.
    ledger.own_jenkins_items(&queued, &[build(43)]).unwrap();
    assert_eq!(
        keys(&ledger, 0, 1000),
        vec![queued.clone(), started.clone()]
    );
    assert!(!ledger.build_seen(&format!("job:{JOB}#43")).unwrap());
    assert!(seen(&ledger, 43));
    assert!(ledger.build_seen(&format!("job:{JOB}#43")).unwrap());
    assert_eq!(keys(&ledger, 0, 1000), vec![started.clone()]);

    // Closed once (a cancelled item, a build gone): never listed again.
    assert!(ledger.close_unreported(&started, "cancelled", 600).unwrap());
    assert!(!ledger.close_unreported(&started, "cancelled", 601).unwrap());
    assert!(keys(&ledger, 0, 1000).is_empty());
}

#[test]
fn stored_items_read_back() {
    for item in [
        JenkinsItem::Queue(90211),
        JenkinsItem::Build {
            job: "a/b#c".into(),
            number: 7,
        },
    ] {
        assert_eq!(JenkinsItem::parse(&item.to_string()), Some(item));
    }
    for bad in ["queue:x", "build:#3", "build:j#", "build:j", "other:1", ""] {
        assert_eq!(JenkinsItem::parse(bad), None, "{bad}");
    }
}
