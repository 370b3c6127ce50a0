//! The queries run for every outbox item (picking it, its siblings, a
//! cancel of its build) find their rows through indexes. Done outbox rows
//! and the Jenkins items the bot triggered pile up for a month before they
//! are pruned, so a query that scans them makes every review slower than
//! the last (a backlog of 20,000 drained at half the rate of one of 2,000).
//! Checked on SQLite's own query plan, which depends on the schema, not on
//! timing.

use super::cancel::STOPPED_BY_BOT_SQL;
use super::outbox_due::{due_items_sql, siblings_sql};
use super::{Ledger, sql};

/// The plan's steps, one line each (`SCAN outbox`, `SEARCH o USING ...`).
fn plan(ledger: &Ledger, query: &str) -> Vec<String> {
    ledger
        .read(|conn| {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .map_err(sql("explain"))?;
            let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows = stmt
                .query_map(rusqlite::params_from_iter(unbound), |row| {
                    row.get::<_, String>(3)
                })
                .map_err(sql("explain"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql("explain"))
        })
        .unwrap()
}

/// Steps that read a whole table or a whole index of one: any `SCAN`
/// except of the JSON list of busy keys and of the index of pending
/// outbox rows (what is due is among them, and the scan stops at its
/// `LIMIT`).
fn full_scans(steps: &[String]) -> Vec<&String> {
    steps
        .iter()
        .filter(|s| s.starts_with("SCAN "))
        .filter(|s| !s.starts_with("SCAN json_each"))
        .filter(|s| !s.ends_with("USING INDEX outbox_pending_id"))
        .collect()
}

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
}

#[test]
fn picking_due_items_reads_pending_rows_only() {
    let (_dir, ledger) = open();
    let steps = plan(&ledger, &due_items_sql());
    assert_eq!(full_scans(&steps), Vec::<&String>::new(), "{steps:#?}");
}

#[test]
fn an_items_siblings_are_found_by_its_change() {
    let (_dir, ledger) = open();
    let steps = plan(&ledger, &siblings_sql());
    assert_eq!(full_scans(&steps), Vec::<&String>::new(), "{steps:#?}");
}

#[test]
fn a_cancel_of_a_build_is_found_by_its_jenkins_item() {
    let (_dir, ledger) = open();
    let steps = plan(&ledger, STOPPED_BY_BOT_SQL);
    assert_eq!(full_scans(&steps), Vec::<&String>::new(), "{steps:#?}");
}
