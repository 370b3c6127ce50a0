//! Which Jenkins queue items and builds each build effect owns: a trigger
//! whose answer was lost may adopt only what no other effect owns, and a
//! ledger written by the previous version learns what its effects owned.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{Begin, EffectKey, JenkinsItem, Ledger, TriggerRecord};
use serde_json::json;

fn params(ps: u32) -> BTreeMap<String, String> {
    BTreeMap::from([("REF".to_string(), format!("refs/changes/56/123456/{ps}"))])
}

fn build_key(ps: u32, comment: Option<&str>) -> EffectKey {
    let key = EffectKey::build(123456, ps, "bionic-presubmit", &params(ps));
    match comment {
        Some(c) => key.with(c),
        None => key,
    }
}

fn payload(ps: u32) -> serde_json::Value {
    json!({ "job": "bionic-presubmit", "params": params(ps) })
}

fn build(number: u64) -> JenkinsItem {
    JenkinsItem::Build {
        job: "bionic-presubmit".into(),
        number,
    }
}

#[test]
fn an_item_owned_by_one_effect_cannot_be_adopted_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let upload = build_key(2, None);
    let retry = build_key(2, Some("change-message:Zq3-Kd"));
    assert_eq!(
        ledger
            .begin_effect(&upload, "build", &payload(2), 100)
            .unwrap(),
        Begin::New
    );
    ledger
        .own_jenkins_items(&upload, &[JenkinsItem::Queue(5)])
        .unwrap();
    ledger
        .finish_effect(&upload, &json!({"queue_id": 5}), 101)
        .unwrap();
    assert_eq!(
        ledger
            .begin_effect(&retry, "build", &payload(2), 200)
            .unwrap(),
        Begin::New
    );

    // The upload's item, and the build that came from it, are not the retry's.
    let upload_build = [JenkinsItem::Queue(5), build(100)];
    assert!(ledger.owned_by_another(&retry, &upload_build).unwrap());
    assert!(!ledger.owned_by_another(&upload, &upload_build).unwrap());
    assert!(!ledger.adopt_jenkins_items(&retry, &upload_build).unwrap());
    assert!(ledger.jenkins_items_of(&retry).unwrap().is_empty());

    // The retry counts as an unresolved trigger until it owns something.
    assert_eq!(ledger.unresolved_twins(&payload(2)).unwrap(), 1);
    assert_eq!(ledger.unresolved_twins(&payload(3)).unwrap(), 0);
    let own = [JenkinsItem::Queue(6), build(101)];
    assert!(ledger.adopt_jenkins_items(&retry, &own).unwrap());
    assert_eq!(
        ledger.jenkins_items_of(&retry).unwrap(),
        vec!["build:bionic-presubmit#101", "queue:6"]
    );
    assert_eq!(ledger.unresolved_twins(&payload(2)).unwrap(), 0);
    // Adopting again what it owns is allowed (idempotent); the upload may not.
    assert!(ledger.adopt_jenkins_items(&retry, &own).unwrap());
    assert!(!ledger.adopt_jenkins_items(&upload, &own).unwrap());

    // Jenkins merged two triggers into one waiting item and named it in
    // both answers: both own it, neither can adopt it for a third.
    let third = build_key(2, Some("change-message:Ab1"));
    ledger
        .begin_effect(&third, "build", &payload(2), 300)
        .unwrap();
    ledger
        .own_jenkins_items(&third, &[JenkinsItem::Queue(5)])
        .unwrap();
    assert!(
        ledger
            .owned_by_another(&upload, &[JenkinsItem::Queue(5)])
            .unwrap()
    );
}

#[test]
fn a_ledger_of_the_previous_version_learns_what_its_effects_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let answered = build_key(2, None);
    let found = build_key(2, Some("comment-date:1678813331"));
    let in_flight = build_key(3, None);
    {
        let ledger = Ledger::open(&path).unwrap();
        ledger
            .begin_effect(&answered, "build", &payload(2), 100)
            .unwrap();
        ledger
            .finish_effect(&answered, &json!({"queue_id": 5}), 101)
            .unwrap();
        ledger
            .begin_effect(&found, "build", &payload(2), 200)
            .unwrap();
        let adopted = json!({"build": 100, "build_url": "http://ci/job/bionic-presubmit/100/", "found": true});
        ledger.finish_effect(&found, &adopted, 201).unwrap();
        ledger
            .begin_effect(&in_flight, "build", &payload(3), 300)
            .unwrap();
        ledger
            .record_effect_progress(&in_flight, &json!({"queue_id": 7}))
            .unwrap();
    }
    // Back to what version 3 wrote: no ownership table (nor later ones).
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE jenkins_owned; DROP TABLE unreported_closed;
             ALTER TABLE events DROP COLUMN details; PRAGMA user_version = 3",
        )
        .unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), 9);
    assert_eq!(ledger.jenkins_items_of(&answered).unwrap(), vec!["queue:5"]);
    assert_eq!(
        ledger.jenkins_items_of(&found).unwrap(),
        vec!["build:bionic-presubmit#100"]
    );
    assert_eq!(
        ledger.jenkins_items_of(&in_flight).unwrap(),
        vec!["queue:7"]
    );
    let newcomer = build_key(2, Some("change-message:new"));
    ledger
        .begin_effect(&newcomer, "build", &payload(2), 400)
        .unwrap();
    assert!(
        ledger
            .owned_by_another(&newcomer, &[JenkinsItem::Queue(5)])
            .unwrap()
    );
    assert!(ledger.owned_by_another(&newcomer, &[build(100)]).unwrap());
    assert!(!ledger.owned_by_another(&newcomer, &[build(101)]).unwrap());
    // The old effects still resolve as before.
    assert!(matches!(
        ledger
            .begin_effect(&answered, "build", &payload(2), 500)
            .unwrap(),
        Begin::AlreadyDone { .. }
    ));
}

#[test]
fn a_trigger_is_owned_done_and_counted_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let upload = build_key(2, None);
    let retry = build_key(2, Some("change-message:Zq3-Kd"));
    assert_eq!(
        ledger
            .begin_effect(&upload, "build", &payload(2), 100)
            .unwrap(),
        Begin::New
    );
    let labels = r#"job="bionic-presubmit""#.to_string();
    let counters = [("builds_triggered_total", labels.clone())];
    let observed = [("mail_to_trigger_seconds", labels.clone(), 4.0)];
    let result = json!({"queue_id": 7});
    let writes = ledger.writes();
    ledger
        .record_trigger(
            TriggerRecord {
                key: &upload,
                items: &[JenkinsItem::Queue(7)],
                result: &result,
                counters: &counters,
                observed: &observed,
            },
            101,
        )
        .unwrap();
    assert_eq!(
        ledger.writes(),
        writes + 1,
        "one write, one commit to wait for"
    );
    // Done with its result, and its item is no other effect's to adopt.
    assert_eq!(
        ledger
            .begin_effect(&upload, "build", &payload(2), 102)
            .unwrap(),
        Begin::AlreadyDone {
            result: result.clone()
        }
    );
    assert!(
        ledger
            .owned_by_another(&retry, &[JenkinsItem::Queue(7)])
            .unwrap()
    );
    assert_eq!(
        ledger.counters().unwrap(),
        vec![("builds_triggered_total".to_string(), labels.clone(), 1)]
    );
    let histograms = ledger.histograms().unwrap();
    assert_eq!(histograms.len(), 1);
    assert_eq!((histograms[0].count, histograms[0].sum), (1, 4.0));

    // The trigger of an effect never begun is refused, and nothing of it is
    // written: no item owned, nothing counted.
    let never = build_key(3, None);
    let stray = [JenkinsItem::Queue(8)];
    let refused = ledger.record_trigger(
        TriggerRecord {
            key: &never,
            items: &stray,
            result: &json!({"queue_id": 8}),
            counters: &counters,
            observed: &observed,
        },
        103,
    );
    assert!(refused.is_err(), "{refused:?}");
    assert!(!ledger.owned_by_another(&upload, &stray).unwrap());
    assert_eq!(ledger.counters().unwrap()[0].2, 1);
    assert_eq!(ledger.histograms().unwrap()[0].count, 1);
}

#[test]
fn a_trigger_that_cannot_be_counted_is_recorded_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let upload = build_key(2, None);
    ledger
        .begin_effect(&upload, "build", &payload(2), 100)
        .unwrap();
    let labels = r#"job="bionic-presubmit""#.to_string();
    let result = json!({"queue_id": 9});
    // A latency that is no number of seconds: the count and the observation
    // are rolled back together; the trigger's record stands.
    ledger
        .record_trigger(
            TriggerRecord {
                key: &upload,
                items: &[JenkinsItem::Queue(9)],
                result: &result,
                counters: &[("builds_triggered_total", labels.clone())],
                observed: &[("mail_to_trigger_seconds", labels, f64::NAN)],
            },
            101,
        )
        .unwrap();
    assert_eq!(
        ledger
            .begin_effect(&upload, "build", &payload(2), 102)
            .unwrap(),
        Begin::AlreadyDone { result }
    );
    assert!(
        ledger
            .owned_by_another(&build_key(2, Some("x")), &[JenkinsItem::Queue(9)])
            .unwrap()
    );
    assert!(ledger.counters().unwrap().is_empty());
    assert!(ledger.histograms().unwrap().is_empty());
}
