//! The ledger against real files: reopening after a "crash" (dropping the
//! handle), two handles on one file, file permissions and bad files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bionicbb_core::ledger::{
    Begin, EffectKey, EventDetails, EventRecord, Ledger, LedgerError, LedgerOptions, MailState,
    NewOutboxItem, OutboxState,
};
use serde_json::{Value, json};

fn ledger_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("ledger.sqlite")
}

fn open(path: &Path) -> Ledger {
    Ledger::open(path).expect("open ledger")
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn review(change: &str, n: u32) -> NewOutboxItem {
    NewOutboxItem {
        kind: "review".into(),
        order_key: change.into(),
        payload: json!({ "change": change, "n": n }),
    }
}

#[test]
fn ledger_is_clone_send_sync() {
    fn assert<T: Clone + Send + Sync + 'static>() {}
    assert::<Ledger>();
}

#[test]
fn open_creates_directory_and_private_file_and_records_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let ledger = open(&path);
    assert!(path.is_file());
    assert_eq!(ledger.path(), path);
    assert_eq!(ledger.schema_version().unwrap(), 9);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "ledger file mode {mode:o}");
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o077, 0, "state directory mode {dir_mode:o}");
        // SQLite gives the WAL the database file's permissions.
        ledger.bump_counter("c", "", 1).unwrap();
        let wal = path.with_file_name("ledger.sqlite-wal");
        let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode();
        assert_eq!(wal_mode & 0o077, 0, "WAL mode {wal_mode:o}");
    }
    drop(ledger);
    // Reopening does not migrate again.
    assert_eq!(open(&path).schema_version().unwrap(), 9);
}

#[test]
fn a_corrupt_file_gives_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, LedgerError::Open { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a database"), "{text}");
}

#[test]
fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = Ledger::open(&path).unwrap_err();
    match &err {
        LedgerError::TooNew {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (99, 9));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn effects_survive_a_crash_as_in_doubt_or_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let started = EffectKey::build(12345, 3, "presubmit", &params(&[("REF", "refs/x")]));
    let done = EffectKey::reply(12345, 3, "hash-1");
    {
        let ledger = open(&path);
        let payload = json!({ "job": "presubmit" });
        assert_eq!(
            ledger
                .begin_effect(&started, "build", &payload, 100)
                .unwrap(),
            Begin::New
        );
        ledger
            .record_effect_progress(&started, &json!({ "queue_item": 7 }))
            .unwrap();
        assert_eq!(
            ledger
                .begin_effect(&done, "reply", &json!("hi"), 100)
                .unwrap(),
            Begin::New
        );
        ledger
            .finish_effect(&done, &json!({ "posted": true }), 101)
            .unwrap();
        // The "crash": the handle goes away with the first effect unmarked.
    }
    let ledger = open(&path);
    assert_eq!(
        ledger
            .begin_effect(&started, "build", &json!({ "other": 1 }), 200)
            .unwrap(),
        Begin::InDoubt {
            payload: json!({ "job": "presubmit" }),
            started_at: 100,
            result_so_far: Some(json!({ "queue_item": 7 })),
        }
    );
    assert_eq!(
        ledger
            .begin_effect(&done, "reply", &json!("hi"), 200)
            .unwrap(),
        Begin::AlreadyDone {
            result: json!({ "posted": true })
        }
    );
    // Resolving the in-doubt effect (the server had it) makes it done.
    ledger
        .finish_effect(&started, &json!({ "build": 42 }), 201)
        .unwrap();
    assert_eq!(
        ledger
            .begin_effect(&started, "build", &json!({}), 202)
            .unwrap(),
        Begin::AlreadyDone {
            result: json!({ "build": 42 })
        }
    );
    // Finishing again keeps the first result.
    ledger
        .finish_effect(&started, &json!("other"), 203)
        .unwrap();
    assert_eq!(
        ledger
            .begin_effect(&started, "build", &json!({}), 204)
            .unwrap(),
        Begin::AlreadyDone {
            result: json!({ "build": 42 })
        }
    );
}

#[test]
fn in_doubt_without_progress_has_no_result_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let key = EffectKey::drop_rejection(1, 1, "mail-1");
    assert_eq!(
        ledger.begin_effect(&key, "drop", &json!(null), 5).unwrap(),
        Begin::New
    );
    assert_eq!(
        ledger.begin_effect(&key, "drop", &json!(null), 6).unwrap(),
        Begin::InDoubt {
            payload: Value::Null,
            started_at: 5,
            result_so_far: None
        }
    );
}

#[test]
fn an_effect_sent_again_is_in_doubt_from_its_newest_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let key = EffectKey::drop_rejection(1, 1, "mail-1");
    ledger.begin_effect(&key, "drop", &json!(null), 5).unwrap();
    ledger.restart_effect(&key, 40).unwrap();
    assert_eq!(
        ledger.begin_effect(&key, "drop", &json!(null), 50).unwrap(),
        Begin::InDoubt {
            payload: Value::Null,
            started_at: 40,
            result_so_far: None
        }
    );
    // Only an effect in doubt is restarted.
    ledger
        .finish_effect(&key, &json!({"ok": true}), 60)
        .unwrap();
    assert!(ledger.restart_effect(&key, 70).is_err());
    assert!(
        ledger
            .restart_effect(&EffectKey::drop_rejection(2, 1, "mail-2"), 70)
            .is_err()
    );
}

#[test]
fn builds_in_doubt_are_the_started_build_effects_of_exactly_one_patch_set() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let p = params(&[("REF", "refs/changes/56/123456/2")]);
    let upload = EffectKey::build(123456, 2, "presubmit", &p);
    let retry = EffectKey::build(123456, 2, "presubmit", &p).with("change-message:m1");
    let clean = EffectKey::build(123456, 2, "clean", &p);
    ledger
        .begin_effect(&upload, "build", &json!({"n": 1}), 30)
        .unwrap();
    ledger
        .begin_effect(&retry, "build", &json!({"n": 2}), 10)
        .unwrap();
    ledger
        .begin_effect(&clean, "build", &json!({"n": 3}), 20)
        .unwrap();
    ledger
        .record_effect_progress(&upload, &json!({"queue_id": 7}))
        .unwrap();
    // Not in doubt: done, failed.
    ledger
        .finish_effect(&clean, &json!({"queue_id": 8}), 21)
        .unwrap();
    let failed = EffectKey::build(123456, 2, "lint", &p);
    ledger
        .begin_effect(&failed, "build", &json!(null), 5)
        .unwrap();
    ledger.fail_effect(&failed, "404").unwrap();
    // Not this patch set: other patch sets and changes whose keys share
    // digits, and other kinds of effect.
    for key in [
        EffectKey::build(123456, 21, "presubmit", &p),
        EffectKey::build(123456, 1, "presubmit", &p),
        EffectKey::build(1234567, 2, "presubmit", &p),
        EffectKey::build(12345, 2, "presubmit", &p),
        EffectKey::reply(123456, 2, "m1"),
    ] {
        ledger.begin_effect(&key, "build", &json!(null), 1).unwrap();
    }
    let found = ledger.builds_in_doubt(123456, 2).unwrap();
    let keys: Vec<_> = found.iter().map(|b| b.key.clone()).collect();
    assert_eq!(keys, vec![retry, upload], "oldest first");
    assert_eq!(found[0].payload, json!({"n": 2}));
    assert_eq!(found[0].started_at, 10);
    assert_eq!(found[0].progress, None);
    assert_eq!(found[1].progress, Some(json!({"queue_id": 7})));
    assert!(ledger.builds_in_doubt(99, 2).unwrap().is_empty());
}

#[test]
fn a_failed_effect_frees_its_key_and_a_done_one_cannot_fail() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let key = EffectKey::for_mail("mail-9", 0);
    assert_eq!(
        ledger.begin_effect(&key, "x", &json!(1), 1).unwrap(),
        Begin::New
    );
    ledger.fail_effect(&key, "404 no such job").unwrap();
    assert_eq!(
        ledger.begin_effect(&key, "x", &json!(2), 2).unwrap(),
        Begin::New
    );
    // The second run is the one that is in doubt now, with its own payload.
    assert_eq!(
        ledger.begin_effect(&key, "x", &json!(3), 3).unwrap(),
        Begin::InDoubt {
            payload: json!(2),
            started_at: 2,
            result_so_far: None
        }
    );
    ledger.finish_effect(&key, &json!("ok"), 4).unwrap();
    let err = ledger.fail_effect(&key, "late").unwrap_err();
    assert!(matches!(err, LedgerError::Invalid { .. }), "{err:?}");

    let unknown = EffectKey::for_mail("never", 0);
    for err in [
        ledger.finish_effect(&unknown, &json!(1), 1).unwrap_err(),
        ledger.fail_effect(&unknown, "e").unwrap_err(),
        ledger
            .record_effect_progress(&unknown, &json!(1))
            .unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");
    }
    // Progress on a finished effect is refused too.
    let err = ledger.record_effect_progress(&key, &json!(1)).unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");
}

#[test]
fn an_effect_is_begun_in_every_state_and_unknown_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let started = EffectKey::build(7, 1, "job", &params(&[("A", "1")]));
    let done = EffectKey::build(7, 2, "job", &params(&[("A", "1")]));
    let failed = EffectKey::reply(7, 2, "change-message:m1");
    for key in [&started, &done, &failed] {
        assert!(!ledger.effect_begun(key).unwrap(), "{key}");
        ledger.begin_effect(key, "x", &json!({}), 1).unwrap();
    }
    ledger.finish_effect(&done, &json!("ok"), 2).unwrap();
    ledger.fail_effect(&failed, "refused").unwrap();
    for key in [&started, &done, &failed] {
        assert!(ledger.effect_begun(key).unwrap(), "{key}");
    }
    let other = EffectKey::build(7, 3, "job", &params(&[("A", "1")]));
    assert!(!ledger.effect_begun(&other).unwrap());
}

#[test]
fn effect_keys_are_canonical() {
    // Two mails about the same event build the parameters in another order.
    let mut a = BTreeMap::new();
    a.insert("REF".to_string(), "refs/changes/45/12345/3".to_string());
    a.insert("CHANGE_ID".to_string(), "I0123".to_string());
    a.insert("PROJECT".to_string(), "bionic".to_string());
    let mut b = BTreeMap::new();
    b.insert("PROJECT".to_string(), "bionic".to_string());
    b.insert("CHANGE_ID".to_string(), "I0123".to_string());
    b.insert("REF".to_string(), "refs/changes/45/12345/3".to_string());
    let ka = EffectKey::build(12345, 3, "presubmit", &a);
    let kb = EffectKey::build(12345, 3, "presubmit", &b);
    assert_eq!(ka, kb);
    assert_eq!(ka.as_str(), kb.to_string());

    // Anything else that differs gives another key.
    assert_ne!(ka, EffectKey::build(12345, 4, "presubmit", &a));
    assert_ne!(ka, EffectKey::build(12346, 3, "presubmit", &a));
    assert_ne!(ka, EffectKey::build(12345, 3, "clean", &a));
    let mut c = a.clone();
    c.insert("LUNCH_TARGET".into(), "aosp_arm-eng".into());
    assert_ne!(ka, EffectKey::build(12345, 3, "presubmit", &c));

    // A retry command adds its comment's identity: once per command.
    let retry1 = ka.clone().with("mail-1");
    assert_ne!(retry1, ka);
    assert_eq!(retry1, kb.clone().with("mail-1"));
    assert_ne!(retry1, ka.clone().with("mail-2"));

    // Parts cannot run into each other.
    assert_ne!(EffectKey::reply(1, 12, "3"), EffectKey::reply(11, 2, "3"));
    assert_ne!(
        EffectKey::for_mail("a\",1", 2),
        EffectKey::for_mail("a", 1).with("2")
    );
    assert_ne!(
        EffectKey::reply(1, 1, "m"),
        EffectKey::drop_rejection(1, 1, "m")
    );
    // A carry-over is once per patch set, apart from every other effect
    // and outside the range of build keys.
    assert_eq!(EffectKey::carry(12345, 3), EffectKey::carry(12345, 3));
    assert_ne!(EffectKey::carry(1, 12), EffectKey::carry(11, 2));
    assert_eq!(EffectKey::carry(12345, 3).as_str(), "carry:[12345,3]");

    // The same key from two mails builds once.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    assert_eq!(
        ledger.begin_effect(&ka, "build", &json!(1), 1).unwrap(),
        Begin::New
    );
    ledger.finish_effect(&ka, &json!("queued"), 2).unwrap();
    assert!(matches!(
        ledger.begin_effect(&kb, "build", &json!(1), 3).unwrap(),
        Begin::AlreadyDone { .. }
    ));
    assert_eq!(
        ledger.begin_effect(&retry1, "build", &json!(1), 4).unwrap(),
        Begin::New
    );
}

#[test]
fn deaths_with_a_mail_in_hand_count_per_mail_until_its_handling_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    {
        let ledger = open(&path);
        assert_eq!(ledger.mail_in_hand("m1").unwrap(), 0);
        assert_eq!(ledger.record_death("m1", 100).unwrap(), 1);
        // The same death recorded again (a start that died before it
        // forgot the mark) counts once.
        assert_eq!(ledger.record_death("m1", 100).unwrap(), 1);
    }
    let ledger = open(&path);
    assert_eq!(ledger.mail_in_hand("m1").unwrap(), 1, "durable");
    assert_eq!(ledger.mail_in_hand("m2").unwrap(), 0, "per mail");
    assert_eq!(ledger.record_death("m1", 200).unwrap(), 2);
    // A passing fault: the mail stays pending, its handling ended (the
    // record of the try clears the count).
    assert_eq!(ledger.record_death("m2", 300).unwrap(), 1);
    assert_eq!(ledger.record_mail_attempt("m2", "gerrit 503").unwrap(), 1);
    assert_eq!(ledger.mail_in_hand("m2").unwrap(), 0);
    assert_eq!(
        ledger.mail_state("m2").unwrap(),
        Some(MailState::Pending {
            attempts: 1,
            last_error: Some("gerrit 503".into())
        })
    );
    // A handling that ended some other way is released.
    assert_eq!(ledger.record_death("m2", 301).unwrap(), 1);
    ledger.release_mail("m2").unwrap();
    assert_eq!(ledger.mail_in_hand("m2").unwrap(), 0);
    // With nothing to clear (the usual case), releasing writes nothing: no
    // wait for a commit that other writers share.
    let writes = ledger.writes();
    ledger.release_mail("m2").unwrap();
    ledger.release_mail("never-seen").unwrap();
    assert_eq!(ledger.writes(), writes, "nothing to clear, nothing written");
    // Quarantined or done: final, cleared, never counted again.
    ledger.mark_mail_quarantined("m1", "poison", 13).unwrap();
    assert_eq!(ledger.mail_in_hand("m1").unwrap(), 0);
    assert_eq!(ledger.record_death("m1", 400).unwrap(), 0);
    assert_eq!(ledger.mail_in_hand("m1").unwrap(), 0);
    assert_eq!(ledger.record_death("m3", 500).unwrap(), 1);
    ledger.mark_mail_done("m3", "built", 15).unwrap();
    assert_eq!(ledger.mail_in_hand("m3").unwrap(), 0);
    assert_eq!(ledger.record_death("m3", 501).unwrap(), 0);
}

#[test]
fn mail_states_round_trip_and_done_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    {
        let ledger = open(&path);
        assert_eq!(ledger.mail_state("m1").unwrap(), None);
        assert_eq!(ledger.record_mail_attempt("m1", "gerrit 503").unwrap(), 1);
        assert_eq!(
            ledger.record_mail_attempt("m1", "gerrit timeout").unwrap(),
            2
        );
        assert_eq!(
            ledger.mail_state("m1").unwrap(),
            Some(MailState::Pending {
                attempts: 2,
                last_error: Some("gerrit timeout".into())
            })
        );
        ledger.mark_mail_done("m1", "built 12345/3", 10).unwrap();
        ledger.mark_mail_quarantined("m2", "forged", 10).unwrap();
        // Marked done, then crashed before the mail was trashed.
    }
    let ledger = open(&path);
    assert_eq!(ledger.mail_state("m1").unwrap(), Some(MailState::Done));
    assert_eq!(
        ledger.mail_state("m2").unwrap(),
        Some(MailState::Quarantined)
    );
    // Later failures (of the trash) or a quarantine never undo "done".
    assert_eq!(ledger.record_mail_attempt("m1", "trash failed").unwrap(), 0);
    ledger.mark_mail_quarantined("m1", "late", 11).unwrap();
    assert_eq!(ledger.mail_state("m1").unwrap(), Some(MailState::Done));
    // Marking done twice is fine.
    ledger.mark_mail_done("m1", "again", 12).unwrap();
    assert_eq!(ledger.mail_state("m1").unwrap(), Some(MailState::Done));
}

#[test]
fn old_build_keys_are_rewritten_once_and_then_recognised() {
    use bionicbb_core::jenkins::job_url::{KEY_PREFIX, canonical_build_key};
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    // Keys an older version wrote: one build twice under two URL forms, a
    // start message, a key that is no job URL, and a current key.
    for key in [
        "job/presubmit/#17",
        "job/presubmit//#17",
        "job/presubmit/#17/started",
        "old-build",
        "job:presubmit#18",
    ] {
        assert!(
            ledger
                .record_completion(key, &json!({}), review("1", 1), 10)
                .unwrap()
        );
    }
    assert_eq!(
        ledger
            .rekey_builds(KEY_PREFIX, canonical_build_key)
            .unwrap(),
        2
    );
    for (key, seen) in [
        ("job:presubmit#17", true),
        ("job:presubmit#17/started", true),
        ("job:presubmit#18", true),
        ("job:presubmit#19", false),
    ] {
        let first = ledger
            .record_completion(key, &json!({}), review("1", 2), 20)
            .unwrap();
        assert_eq!(first, !seen, "{key}");
    }
    // Nothing left to rewrite.
    assert_eq!(
        ledger
            .rekey_builds(KEY_PREFIX, canonical_build_key)
            .unwrap(),
        0
    );
}

#[test]
fn record_completion_dedupes_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let key = "https://ci/job/presubmit/#17";
    {
        let ledger = open(&path);
        let event = json!({ "phase": "COMPLETED" });
        assert!(
            ledger
                .record_completion(key, &event, review("12345", 1), 10)
                .unwrap()
        );
        // FINALIZED after COMPLETED: a duplicate.
        let finalized = json!({ "phase": "FINALIZED" });
        assert!(
            !ledger
                .record_completion(key, &finalized, review("12345", 2), 11)
                .unwrap()
        );
        assert_eq!(ledger.pending_count().unwrap(), 1);
    }
    let ledger = open(&path);
    // A document re-sent after a restart: still a duplicate.
    assert!(
        !ledger
            .record_completion(key, &json!({}), review("12345", 3), 20)
            .unwrap()
    );
    let pending = ledger.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].payload, json!({ "change": "12345", "n": 1 }));
    assert_eq!(pending[0].kind, "review");
    assert_eq!(pending[0].state, OutboxState::Pending);
    // Another build of the same job is new.
    assert!(
        ledger
            .record_completion(
                "https://ci/job/presubmit/#18",
                &json!({}),
                review("12345", 4),
                21
            )
            .unwrap()
    );
    assert_eq!(ledger.pending_count().unwrap(), 2);
}

#[test]
fn outbox_keeps_order_per_change_and_retries_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    assert_eq!(ledger.next_due(0).unwrap(), None);
    assert_eq!(ledger.next_due_at().unwrap(), None);
    let a1 = ledger.enqueue(review("A", 1), 100).unwrap();
    let a2 = ledger.enqueue(review("A", 2), 101).unwrap();
    let b1 = ledger.enqueue(review("B", 1), 102).unwrap();
    assert!(a1 < a2 && a2 < b1);

    // Nothing is due before it was enqueued.
    assert_eq!(ledger.next_due(99).unwrap(), None);
    assert_eq!(ledger.next_due(100).unwrap().unwrap().id, a1);

    // A1 fails for a passing reason: retry at 200.
    ledger.mark_retry(a1, "gerrit 503", 200).unwrap();
    let item = ledger.outbox_item(a1).unwrap().unwrap();
    assert_eq!(item.attempts, 1);
    assert_eq!(item.last_error.as_deref(), Some("gerrit 503"));
    assert_eq!(item.next_attempt_at, 200);
    assert!(item.may_have_landed());

    // A2 waits behind A1; B is not held up.
    assert_eq!(ledger.next_due(150).unwrap().unwrap().id, b1);
    ledger.mark_done(b1, 150).unwrap();
    assert_eq!(ledger.next_due(150).unwrap(), None);
    assert_eq!(ledger.next_due_at().unwrap(), Some(200));
    assert_eq!(ledger.pending_count().unwrap(), 2);
    assert_eq!(ledger.oldest_pending_age(150).unwrap(), Some(50));

    // At 200, A1 again (not A2, though both are "due").
    assert_eq!(ledger.next_due(200).unwrap().unwrap().id, a1);
    ledger.mark_retry(a1, "gerrit 502", 300).unwrap();
    assert_eq!(ledger.outbox_item(a1).unwrap().unwrap().attempts, 2);
    assert_eq!(ledger.next_due(299).unwrap(), None);
    assert_eq!(ledger.next_due(300).unwrap().unwrap().id, a1);
    ledger.mark_done(a1, 300).unwrap();

    // Then A2.
    let next = ledger.next_due(300).unwrap().unwrap();
    assert_eq!(next.id, a2);
    assert_eq!(next.attempts, 0);
    assert!(!next.may_have_landed());
    ledger.mark_done(a2, 301).unwrap();
    assert_eq!(ledger.next_due(1000).unwrap(), None);
    assert_eq!(ledger.pending_count().unwrap(), 0);
    assert_eq!(ledger.oldest_pending_age(1000).unwrap(), None);
    let done = ledger.outbox_item(a2).unwrap().unwrap();
    assert_eq!(
        (done.state, done.finished_at),
        (OutboxState::Done, Some(301))
    );
}

#[test]
fn a_failed_item_unblocks_its_change_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let a1 = ledger.enqueue(review("A", 1), 1).unwrap();
    let a2 = ledger.enqueue(review("A", 2), 2).unwrap();
    let c1 = ledger.enqueue(review("C", 1), 3).unwrap();
    ledger.mark_retry(a1, "503", 1000).unwrap();
    assert_eq!(ledger.next_due(10).unwrap().unwrap().id, c1);
    ledger.mark_failed(c1, "change closed", 10).unwrap();
    assert_eq!(ledger.next_due(10).unwrap(), None);
    ledger.mark_failed(a1, "403 forbidden", 11).unwrap();
    assert_eq!(ledger.next_due(11).unwrap().unwrap().id, a2);

    let failed = ledger.failed_recent(10).unwrap();
    let ids: Vec<i64> = failed.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![a1, c1], "newest first");
    assert_eq!(failed[0].state, OutboxState::Failed);
    assert_eq!(failed[0].last_error.as_deref(), Some("403 forbidden"));
    assert_eq!(failed[0].attempts, 1);
    assert_eq!(ledger.failed_recent(1).unwrap().len(), 1);
    let pending: Vec<i64> = ledger.pending().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(pending, vec![a2]);
}

#[test]
fn outbox_transitions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let id = ledger.enqueue(review("A", 1), 1).unwrap();
    ledger.mark_done(id, 2).unwrap();
    ledger.mark_done(id, 3).unwrap(); // idempotent
    assert_eq!(
        ledger.outbox_item(id).unwrap().unwrap().finished_at,
        Some(2)
    );
    for err in [
        ledger.mark_retry(id, "e", 5).unwrap_err(),
        ledger.mark_failed(id, "e", 5).unwrap_err(),
        ledger.mark_in_flight(id, 5).unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::Invalid { .. }), "{err:?}");
    }
    for err in [
        ledger.mark_done(999, 1).unwrap_err(),
        ledger.mark_retry(999, "e", 1).unwrap_err(),
        ledger.mark_failed(999, "e", 1).unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");
    }
    let f = ledger.enqueue(review("B", 1), 1).unwrap();
    ledger.mark_failed(f, "gone", 2).unwrap();
    ledger.mark_failed(f, "gone", 3).unwrap(); // idempotent
    assert!(matches!(
        ledger.mark_done(f, 4).unwrap_err(),
        LedgerError::Invalid { .. }
    ));
}

#[test]
fn an_item_in_flight_at_a_crash_is_picked_again_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let id = {
        let ledger = open(&path);
        let id = ledger.enqueue(review("A", 1), 10).unwrap();
        let item = ledger.next_due(10).unwrap().unwrap();
        ledger.mark_in_flight(item.id, 11).unwrap();
        id // crash while posting
    };
    let ledger = open(&path);
    let item = ledger.next_due(20).unwrap().unwrap();
    assert_eq!(item.id, id);
    assert_eq!(item.in_flight_since, Some(11));
    assert_eq!(item.last_attempt_at, Some(11));
    assert!(item.may_have_landed());
    ledger.mark_in_flight(id, 21).unwrap();
    ledger.mark_retry(id, "timeout", 30).unwrap();
    let item = ledger.outbox_item(id).unwrap().unwrap();
    assert_eq!(item.in_flight_since, None);
    assert_eq!(item.last_attempt_at, Some(21));
    assert_eq!(item.attempts, 1);
}

#[test]
fn events_are_pruned_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        event_cap: 5,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open_with(&ledger_path(&dir), options).unwrap();
    for i in 0..12_u32 {
        ledger
            .record_event(&EventRecord {
                at: i64::from(i),
                source: if i % 2 == 0 { "gmail" } else { "jenkins" }.into(),
                summary: format!("event {i}"),
                change_number: Some(12345),
                patch_set: Some(i),
                decisions: json!([{ "build": i }]),
                details: None,
            })
            .unwrap();
    }
    let all = ledger.recent_events(100).unwrap();
    let summaries: Vec<&str> = all.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        summaries,
        ["event 11", "event 10", "event 9", "event 8", "event 7"]
    );
    assert_eq!(all[0].source, "jenkins");
    assert_eq!(all[0].patch_set, Some(11));
    assert_eq!(all[0].change_number, Some(12345));
    assert_eq!(all[0].decisions, json!([{ "build": 11 }]));
    assert_eq!(ledger.recent_events(2).unwrap().len(), 2);

    let none = EventRecord {
        at: 99,
        source: "drop-rejection".into(),
        summary: "no change".into(),
        change_number: None,
        patch_set: None,
        decisions: Value::Null,
        details: None,
    };
    ledger.record_event(&none).unwrap();
    assert_eq!(ledger.recent_events(1).unwrap(), vec![none]);

    let about = EventRecord {
        at: 100,
        source: "gmail".into(),
        summary: "comment on 12345 patch set 2".into(),
        change_number: Some(12345),
        patch_set: Some(2),
        decisions: json!([]),
        details: Some(EventDetails {
            message_type: Some("comment".into()),
            author: Some("Sam Reviewer".into()),
            subject: Some("Fix strtod".into()),
            owner: Some("Dana Dev".into()),
            project: Some("platform/bionic".into()),
            branch: Some("master".into()),
            commands: vec!["bionicbb:retry".into()],
        }),
    };
    ledger.record_event(&about).unwrap();
    assert_eq!(ledger.recent_events(1).unwrap(), vec![about]);
}

#[test]
fn a_patch_set_s_history_reads_its_events_effects_and_pending_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        event_cap: 3,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open_with(&ledger_path(&dir), options).unwrap();
    let event = |at: i64, ps: u32| EventRecord {
        at,
        source: "gmail".into(),
        summary: format!("event at {at}"),
        change_number: Some(12345),
        patch_set: Some(ps),
        decisions: json!([{ "decision": "skip", "reason": format!("r{at}") }]),
        details: None,
    };
    ledger.record_event(&event(10, 1)).unwrap();
    ledger.record_event(&event(11, 2)).unwrap();
    assert_eq!(
        ledger.events_kept_since().unwrap(),
        None,
        "nothing pruned yet"
    );
    ledger.record_event(&event(12, 1)).unwrap();
    ledger.record_event(&event(13, 2)).unwrap();
    let of_1: Vec<i64> = ledger
        .events_of(12345, 1)
        .unwrap()
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(of_1, [12], "oldest first, the pruned one gone");
    assert_eq!(ledger.events_of(12345, 2).unwrap().len(), 2);
    assert!(ledger.events_of(999, 1).unwrap().is_empty());
    assert_eq!(ledger.events_kept_since().unwrap(), Some(11));

    let key = EffectKey::vouch(12345, 2);
    assert_eq!(ledger.effect(&key).unwrap(), None);
    let payload = json!({ "by_name": "Sam Reviewer" });
    ledger.begin_effect(&key, "vouch", &payload, 20).unwrap();
    let stored = ledger.effect(&key).unwrap().unwrap();
    assert_eq!(
        (stored.kind.as_str(), stored.state.as_str()),
        ("vouch", "started")
    );
    assert_eq!(stored.payload, payload);
    ledger
        .finish_effect(&key, &json!({ "ok": true }), 21)
        .unwrap();
    let stored = ledger.effect(&key).unwrap().unwrap();
    assert_eq!(stored.state, "done");
    assert_eq!(stored.result, Some(json!({ "ok": true })));

    let item = |change: &str, ps: u32| NewOutboxItem {
        kind: "review".into(),
        order_key: change.into(),
        payload: json!({ "change": change, "patch_set": ps, "build": "j #1" }),
    };
    let wanted = ledger.enqueue(item("12345", 2), 30).unwrap();
    ledger.enqueue(item("12345", 1), 30).unwrap();
    ledger.enqueue(item("54321", 2), 30).unwrap();
    let done = ledger.enqueue(item("12345", 2), 30).unwrap();
    ledger.mark_done(done, 31).unwrap();
    let pending: Vec<i64> = ledger
        .pending_of(12345, 2)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(pending, [wanted]);
}

#[test]
fn events_recorded_before_details_were_kept_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let old = EventRecord {
        at: 10,
        source: "gmail".into(),
        summary: "comment on 12345 patch set 2".into(),
        change_number: Some(12345),
        patch_set: Some(2),
        decisions: json!([{ "decision": "skip", "reason": "r" }]),
        details: None,
    };
    open(&path).record_event(&old).unwrap();
    // Back to what version 5 wrote: no `details` column.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("ALTER TABLE events DROP COLUMN details; PRAGMA user_version = 5")
            .unwrap();
    }
    let ledger = open(&path);
    assert_eq!(ledger.schema_version().unwrap(), 9);
    assert_eq!(ledger.recent_events(10).unwrap(), vec![old.clone()]);
    // Details a later version wrote in a form this one cannot read are
    // left out, not an error.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE events SET details = '{\"commands\": 7}'")
            .unwrap();
    }
    assert_eq!(ledger.recent_events(10).unwrap(), vec![old]);
}

#[test]
fn status_and_counters_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    {
        let ledger = open(&path);
        ledger
            .set_status("gmail", "last_poll_at", &json!(100), 100)
            .unwrap();
        ledger
            .set_status("gmail", "last_error", &json!("503"), 100)
            .unwrap();
        ledger
            .set_status("gmail", "last_poll_at", &json!(400), 400)
            .unwrap();
        ledger
            .set_status("outbox", "worker", &json!({ "running": true }), 400)
            .unwrap();
        ledger
            .bump_counter("builds_triggered", "job=\"presubmit\"", 2)
            .unwrap();
        ledger.bump_counter("mails", "", 1).unwrap();
    }
    let ledger = open(&path);
    let gmail = ledger.status("gmail").unwrap();
    assert_eq!(gmail.len(), 2);
    assert_eq!(gmail["last_poll_at"], json!(400));
    assert_eq!(gmail["last_error"], json!("503"));
    assert!(ledger.status("nobody").unwrap().is_empty());
    let all = ledger.all_status().unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["gmail", "outbox"]);
    assert_eq!(all["outbox"]["worker"], json!({ "running": true }));

    ledger
        .bump_counter("builds_triggered", "job=\"presubmit\"", 3)
        .unwrap();
    ledger
        .bump_counter("builds_triggered", "job=\"clean\"", 1)
        .unwrap();
    ledger.bump_counter("mails", "", u64::MAX).unwrap(); // saturates
    assert_eq!(
        ledger.counters().unwrap(),
        vec![
            (
                "builds_triggered".to_string(),
                "job=\"clean\"".to_string(),
                1
            ),
            (
                "builds_triggered".to_string(),
                "job=\"presubmit\"".to_string(),
                5
            ),
            ("mails".to_string(), String::new(), i64::MAX as u64),
        ]
    );
}

#[test]
fn two_handles_on_one_file_both_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    const N: u64 = 100;
    // Both "processes" open the fresh file at the same time.
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let ledger = Ledger::open(&path).expect("open");
                for i in 0..N {
                    ledger.bump_counter("shared", "", 1).expect("bump");
                    ledger
                        .enqueue(review(&format!("change-{t}"), i as u32), 1)
                        .expect("enqueue");
                    let key = EffectKey::for_mail(&format!("mail-{}", i % 10), 0);
                    ledger.begin_effect(&key, "x", &json!(t), 1).expect("begin");
                    let status = json!(i);
                    ledger
                        .set_status("both", "last", &status, 1)
                        .expect("status");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let ledger = open(&path);
    assert_eq!(
        ledger.counters().unwrap(),
        vec![("shared".into(), String::new(), 2 * N)]
    );
    assert_eq!(ledger.pending_count().unwrap(), 2 * N);
    assert_eq!(ledger.schema_version().unwrap(), 9);
    // Each change's items came out in the order its writer enqueued them.
    for t in 0..2 {
        let key = format!("change-{t}");
        let ns: Vec<u64> = ledger
            .pending()
            .unwrap()
            .into_iter()
            .filter(|i| i.order_key == key)
            .map(|i| i.payload["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..N).collect::<Vec<_>>());
    }
}

#[test]
fn clones_share_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let clone = ledger.clone();
    let t = std::thread::spawn(move || clone.bump_counter("c", "", 1).unwrap());
    ledger.bump_counter("c", "", 1).unwrap();
    t.join().unwrap();
    assert_eq!(ledger.counters().unwrap()[0].2, 2);
}

#[test]
fn pruning_forgets_only_old_finished_history() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    // Old and finished.
    ledger.mark_mail_done("old-mail", "done", 10).unwrap();
    let old_effect = EffectKey::for_mail("old-mail", 0);
    ledger
        .begin_effect(&old_effect, "x", &json!(1), 10)
        .unwrap();
    ledger.finish_effect(&old_effect, &json!(1), 11).unwrap();
    assert!(
        ledger
            .record_completion("old-build", &json!({}), review("A", 1), 10)
            .unwrap()
    );
    let old_item = ledger.next_due(10).unwrap().unwrap().id;
    ledger.mark_done(old_item, 12).unwrap();
    // Old but unfinished: kept whatever its age.
    ledger.record_mail_attempt("stuck-mail", "503").unwrap();
    let stuck_effect = EffectKey::for_mail("stuck-mail", 0);
    ledger
        .begin_effect(&stuck_effect, "x", &json!(1), 10)
        .unwrap();
    let stuck_item = ledger.enqueue(review("B", 1), 10).unwrap();
    // Recent and finished: kept.
    ledger.mark_mail_done("new-mail", "done", 500).unwrap();

    assert_eq!(ledger.prune_before(100).unwrap(), 4);
    assert_eq!(ledger.mail_state("old-mail").unwrap(), None);
    assert_eq!(
        ledger.mail_state("new-mail").unwrap(),
        Some(MailState::Done)
    );
    assert!(matches!(
        ledger.mail_state("stuck-mail").unwrap(),
        Some(MailState::Pending { attempts: 1, .. })
    ));
    assert_eq!(
        ledger
            .begin_effect(&old_effect, "x", &json!(1), 600)
            .unwrap(),
        Begin::New
    );
    assert!(matches!(
        ledger
            .begin_effect(&stuck_effect, "x", &json!(1), 600)
            .unwrap(),
        Begin::InDoubt { .. }
    ));
    assert_eq!(ledger.outbox_item(old_item).unwrap(), None);
    assert_eq!(ledger.next_due(600).unwrap().unwrap().id, stuck_item);
    assert_eq!(ledger.prune_before(100).unwrap(), 0);
}

#[test]
fn due_items_offer_one_item_per_change_leaving_out_busy_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let a1 = ledger.enqueue(review("A", 1), 1).unwrap();
    let a2 = ledger.enqueue(review("A", 2), 1).unwrap();
    let b1 = ledger.enqueue(review("B", 1), 1).unwrap();
    let c1 = ledger.enqueue(review("C", 1), 1).unwrap();
    let ids = |busy: &[&str], limit: usize| -> Vec<i64> {
        ledger
            .due_items(1, busy, limit)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(
        ids(&[], 10),
        [a1, b1, c1],
        "A's second item waits for its first"
    );
    assert_eq!(ids(&["B"], 10), [a1, c1]);
    assert_eq!(ids(&["A", "B", "C"], 10), Vec::<i64>::new());
    assert_eq!(ids(&[], 2), [a1, b1]);
    // A's first item waits for a retry: A's second is still not offered.
    ledger.mark_retry(a1, "503", 100).unwrap();
    assert_eq!(ids(&[], 10), [b1, c1]);
    ledger.mark_done(b1, 1).unwrap();
    ledger.mark_failed(a1, "gone", 1).unwrap();
    assert_eq!(ids(&[], 10), [a2, c1]);
}

#[test]
fn next_due_at_can_leave_out_busy_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let a1 = ledger.enqueue(review("A", 1), 1).unwrap();
    let b1 = ledger.enqueue(review("B", 1), 1).unwrap();
    ledger.mark_retry(b1, "503", 50).unwrap();
    assert_eq!(ledger.next_due_at().unwrap(), Some(1));
    assert_eq!(ledger.next_due_at_except(&["A"]).unwrap(), Some(50));
    assert_eq!(ledger.next_due_at_except(&["A", "B"]).unwrap(), None);
    ledger.mark_done(a1, 2).unwrap();
    assert_eq!(ledger.next_due_at_except(&[]).unwrap(), Some(50));
}

#[test]
fn a_completion_with_its_event_and_count_is_one_commit() {
    use bionicbb_core::ledger::Completion;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let record = EventRecord {
        at: 5,
        source: "jenkins".into(),
        summary: "build #1 COMPLETED: review queued".into(),
        change_number: Some(123456),
        patch_set: Some(4),
        decisions: json!([]),
        details: None,
    };
    let doc = json!({ "phase": "COMPLETED" });
    let completion = || Completion {
        build_key: "job #1",
        event: &doc,
        outbox: review("123456", 1),
        record: &record,
        counter: ("events_received_total", "type=\"COMPLETED\""),
    };
    let commits = ledger.commits();
    assert!(ledger.record_completion_counted(completion(), 5).unwrap());
    assert_eq!(ledger.commits(), commits + 1, "one commit for all of it");
    // A duplicate is counted, and changes nothing else.
    assert!(!ledger.record_completion_counted(completion(), 6).unwrap());
    assert_eq!(ledger.pending_count().unwrap(), 1);
    assert_eq!(ledger.recent_events(10).unwrap(), vec![record.clone()]);
    assert_eq!(
        ledger.counters().unwrap(),
        vec![(
            "events_received_total".into(),
            "type=\"COMPLETED\"".into(),
            2
        )]
    );
}

#[test]
fn siblings_are_the_other_live_items_of_a_change_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&ledger_path(&dir));
    let a1 = ledger.enqueue(review("a", 1), 1).unwrap();
    let a2 = ledger.enqueue(review("a", 2), 2).unwrap();
    let a3 = ledger.enqueue(review("a", 3), 3).unwrap();
    ledger.enqueue(review("b", 4), 4).unwrap();
    ledger.mark_done(a1, 5).unwrap();
    ledger.mark_failed(a3, "refused", 6).unwrap();
    let ids = |items: Vec<bionicbb_core::ledger::OutboxItem>| {
        items
            .into_iter()
            .map(|i| (i.id, i.state))
            .collect::<Vec<_>>()
    };
    let kind = review("a", 1).kind;
    assert_eq!(
        ids(ledger.siblings("a", &kind, a2).unwrap()),
        vec![(a1, OutboxState::Done)],
        "the failed one and the item itself are left out"
    );
    assert_eq!(
        ids(ledger.siblings("a", &kind, a1).unwrap()),
        vec![(a2, OutboxState::Pending)]
    );
    assert!(ledger.siblings("a", "drop", a1).unwrap().is_empty());
}
