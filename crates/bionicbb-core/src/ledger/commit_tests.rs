//! Group commit with arbitrary work (`Ledger::write` is private): a writer
//! whose work fails or panics after writing, and a commit that fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::{Ledger, LedgerError, MAX_BATCH, Result, sql};

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
}

fn insert(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO counters (name, labels, value) VALUES (?1, '', 1)",
        [name],
    )
    .map_err(sql("test insert"))?;
    Ok(())
}

fn names(ledger: &Ledger) -> Vec<String> {
    let mut names: Vec<String> = ledger
        .counters()
        .unwrap()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    names.sort();
    names
}

/// A thread that writes `name` and then ends its work with `end`.
fn writer(ledger: &Ledger, name: &str, end: fn() -> Result<()>) -> JoinHandle<Result<()>> {
    let (ledger, name) = (ledger.clone(), name.to_string());
    std::thread::spawn(move || {
        ledger.write("test write", |conn| {
            insert(conn, &name)?;
            end()
        })
    })
}

fn ok() -> Result<()> {
    Ok(())
}

fn fail() -> Result<()> {
    Err(LedgerError::Invalid {
        op: "test write",
        detail: "refused".into(),
    })
}

fn panic() -> Result<()> {
    panic!("a writer's work panicked")
}

fn wait_for_writes(ledger: &Ledger, n: u64) {
    while ledger.writes() < n {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn a_failing_writer_is_rolled_back_alone() {
    let (_dir, ledger) = open();
    let (commits, writes) = (ledger.commits(), ledger.writes());
    let hold = ledger.hold_commits();
    let good = writer(&ledger, "good", ok);
    let bad = writer(&ledger, "bad", fail);
    wait_for_writes(&ledger, writes + 2);
    drop(hold);
    good.join().unwrap().unwrap();
    let err = bad.join().unwrap().unwrap_err();
    assert!(matches!(err, LedgerError::Invalid { .. }), "{err:?}");
    assert_eq!(ledger.commits(), commits + 1, "one shared commit");
    assert_eq!(names(&ledger), ["good"], "the failing writer's row is gone");
}

#[test]
fn a_panicking_writer_fails_only_itself_and_nothing_hangs() {
    let (_dir, ledger) = open();
    let (commits, writes) = (ledger.commits(), ledger.writes());
    let hold = ledger.hold_commits();
    let good = writer(&ledger, "good", ok);
    let bad = writer(&ledger, "panicked", panic);
    wait_for_writes(&ledger, writes + 2);
    assert!(bad.join().is_err(), "the panic reaches its own caller");
    drop(hold);
    good.join().unwrap().unwrap();
    assert_eq!(ledger.commits(), commits + 1);
    assert_eq!(names(&ledger), ["good"]);
    // The ledger is still usable.
    ledger.bump_counter("after", "", 1).unwrap();
    assert_eq!(names(&ledger), ["after", "good"]);
}

#[test]
fn a_panicking_writer_that_ends_its_batch_commits_the_others() {
    let (_dir, ledger) = open();
    let (commits, writes) = (ledger.commits(), ledger.writes());
    let hold = ledger.hold_commits();
    // MAX_BATCH - 1 writers wait in the batch; the panicking one is its
    // last member, so it is the one that commits.
    let good: Vec<_> = (0..MAX_BATCH - 1)
        .map(|i| writer(&ledger, &format!("good-{i:03}"), ok))
        .collect();
    wait_for_writes(&ledger, writes + MAX_BATCH as u64 - 1);
    let bad = writer(&ledger, "panicked", panic);
    assert!(bad.join().is_err());
    for g in good {
        g.join().unwrap().unwrap();
    }
    assert_eq!(ledger.commits(), commits + 1);
    drop(hold);
    let names = names(&ledger);
    assert_eq!(names.len(), MAX_BATCH - 1);
    assert!(!names.contains(&"panicked".to_string()));
}

#[test]
fn a_lone_panicking_writer_leaves_the_ledger_usable() {
    let (_dir, ledger) = open();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        ledger.write("test write", |conn| {
            insert(conn, "panicked")?;
            panic()
        })
    }));
    assert!(caught.is_err());
    ledger.bump_counter("after", "", 1).unwrap();
    assert_eq!(names(&ledger), ["after"]);
}

#[test]
fn a_failed_commit_is_an_error_for_every_member_and_keeps_nothing() {
    let (_dir, ledger) = open();
    // A deferred foreign key is checked at COMMIT: a dangling reference
    // makes the shared commit fail.
    ledger
        .write("test setup", |conn| {
            conn.execute_batch(
                "CREATE TABLE dangling (build TEXT REFERENCES builds (build_key)
                                        DEFERRABLE INITIALLY DEFERRED)",
            )
            .map_err(sql("test setup"))
        })
        .unwrap();
    let (commits, writes) = (ledger.commits(), ledger.writes());
    let hold = ledger.hold_commits();
    let good = writer(&ledger, "good", ok);
    let breaker = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            ledger.write("test write", |conn| {
                conn.execute("INSERT INTO dangling VALUES ('no-such-build')", [])
                    .map_err(sql("test write"))?;
                Ok(())
            })
        })
    };
    wait_for_writes(&ledger, writes + 2);
    drop(hold);
    for w in [good, breaker] {
        let err = w.join().unwrap().unwrap_err();
        assert!(matches!(err, LedgerError::Commit { .. }), "{err:?}");
    }
    assert_eq!(ledger.commits(), commits);
    assert!(names(&ledger).is_empty(), "the batch was rolled back");
    // The next batch starts clean.
    ledger.bump_counter("after", "", 1).unwrap();
    assert_eq!(names(&ledger), ["after"]);
}
