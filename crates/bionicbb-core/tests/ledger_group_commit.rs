//! Group commit against real files: concurrent writers share one commit,
//! every acknowledged write is durable, one failing writer does not undo the
//! others of its batch, and reads (in this process or another) never see a
//! batch before it is committed.
//!
//! Sharing is made deterministic with `Ledger::hold_commits`: while it is
//! held the open batch cannot commit, so every writer joins it; the test
//! waits until all of them ran (`Ledger::writes`) before letting it go.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use bionicbb_core::ledger::{Ledger, LedgerError, NewOutboxItem};
use serde_json::json;

fn ledger_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("ledger.sqlite")
}

fn review(change: &str, n: u32) -> NewOutboxItem {
    NewOutboxItem {
        kind: "review".into(),
        order_key: change.into(),
        payload: json!({ "change": change, "n": n }),
    }
}

/// Waits (no deadline: a hang is a failure of its own) until `n` writes ran.
fn wait_for_writes(ledger: &Ledger, n: u64) {
    while ledger.writes() < n {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `n` threads that record one build completion each, all released at once.
fn record_builds(ledger: &Ledger, n: usize) -> Vec<JoinHandle<Result<bool, LedgerError>>> {
    let barrier = Arc::new(Barrier::new(n));
    (0..n)
        .map(|i| {
            let ledger = ledger.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let item = review(&format!("change-{i}"), 1);
                ledger.record_completion(&format!("build-{i}"), &json!({ "i": i }), item, 1)
            })
        })
        .collect()
}

/// The number of pending outbox rows, read by another connection (as the
/// other daemon would).
fn pending_seen_by_another_process(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

#[test]
fn concurrent_writers_share_one_commit_and_all_survive_reopen() {
    const N: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let (commits, writes) = (ledger.commits(), ledger.writes());

    let hold = ledger.hold_commits();
    let writers = record_builds(&ledger, N);
    wait_for_writes(&ledger, writes + N as u64);
    // All of them ran, in one open batch: nothing is visible yet, to this
    // process's reads or to another process.
    assert_eq!(ledger.pending_count().unwrap(), 0);
    assert_eq!(pending_seen_by_another_process(&path), 0);
    assert_eq!(ledger.commits(), commits);
    drop(hold);

    for w in writers {
        assert!(w.join().unwrap().unwrap(), "a new build is recorded");
    }
    assert_eq!(ledger.commits(), commits + 1, "{N} writes, one commit");
    assert_eq!(ledger.pending_count().unwrap(), N as u64);
    assert_eq!(pending_seen_by_another_process(&path), N as i64);
    // A lone writer after that batch commits by itself, at once.
    ledger.bump_counter("alone", "", 1).unwrap();
    assert_eq!(ledger.commits(), commits + 2);
    assert_eq!(ledger.counters().unwrap().len(), 1);

    // After a reopen ("a crash"), every acknowledged build is there, once.
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.pending_count().unwrap(), N as u64);
    for i in 0..N {
        let again = ledger
            .record_completion(&format!("build-{i}"), &json!({}), review("x", 2), 2)
            .unwrap();
        assert!(!again, "build-{i} was recorded before the reopen");
    }
}

#[test]
fn writers_without_contention_still_commit_each_write() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&ledger_path(&dir)).unwrap();
    let commits = ledger.commits();
    for i in 0..3 {
        ledger.bump_counter("c", "", 1).unwrap();
        assert_eq!(ledger.commits(), commits + i + 1);
        assert_eq!(ledger.counters().unwrap()[0].2, i + 1, "visible on return");
    }
}

#[test]
fn a_failing_writer_does_not_undo_the_others_of_its_batch() {
    const N: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let (commits, writes) = (ledger.commits(), ledger.writes());

    let hold = ledger.hold_commits();
    let writers = record_builds(&ledger, N);
    let failing = {
        let ledger = ledger.clone();
        std::thread::spawn(move || ledger.mark_done(424242, 1))
    };
    wait_for_writes(&ledger, writes + N as u64 + 1);
    drop(hold);

    let err = failing.join().unwrap().unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");
    for w in writers {
        assert!(w.join().unwrap().unwrap());
    }
    assert_eq!(ledger.commits(), commits + 1);
    drop(ledger);
    assert_eq!(
        Ledger::open(&path).unwrap().pending_count().unwrap(),
        N as u64
    );
}

#[test]
fn a_held_batch_blocks_no_reader_and_the_other_process_writes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_path(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let other = Ledger::open(&path).unwrap();
    let writes = ledger.writes();

    let hold = ledger.hold_commits();
    let writer = {
        let ledger = ledger.clone();
        std::thread::spawn(move || ledger.bump_counter("first", "", 1))
    };
    wait_for_writes(&ledger, writes + 1);
    // The other process reads while the batch is open, and its write waits
    // for the batch's lock (busy timeout) instead of failing.
    assert!(other.counters().unwrap().is_empty());
    let other_writer = {
        let other = other.clone();
        std::thread::spawn(move || other.bump_counter("second", "", 1))
    };
    drop(hold);
    writer.join().unwrap().unwrap();
    other_writer.join().unwrap().unwrap();
    let names: Vec<String> = ledger
        .counters()
        .unwrap()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, ["first", "second"]);
}
