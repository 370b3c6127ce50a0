//! build-listener's hot path: everything one build document leads to,
//! written in one transaction, so a notification costs one share of one
//! commit (see `commit.rs`) instead of one commit per row.

use serde_json::Value;

use super::outbox::insert_completion;
use super::status::{bump, insert_event};
use super::{EventRecord, Ledger, NewOutboxItem, Result, to_json, with_extras};

/// A build's completion as build-listener records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion<'a> {
    /// The build (see [`Ledger::record_completion`]).
    pub build_key: &'a str,
    /// What is kept of the document.
    pub event: &'a Value,
    /// Its Gerrit work.
    pub outbox: NewOutboxItem,
    /// The status page's event, recorded only for the first completion.
    pub record: &'a EventRecord,
    /// The counter bumped for every document: `(name, labels)`.
    pub counter: (&'a str, &'a str),
}

impl Ledger {
    /// [`Ledger::record_completion`], plus the event (the first time) and
    /// the counter, in one transaction. Returns `true` the first time. A
    /// failure to count is logged and does not undo the rest: the document
    /// is recorded all the same.
    pub fn record_completion_counted(&self, c: Completion<'_>, now: i64) -> Result<bool> {
        const OP: &str = "record a build completion";
        let event = to_json(OP, c.event)?;
        let cap = self.inner.options.event_cap;
        self.write(OP, |tx| {
            let first = insert_completion(tx, OP, c.build_key, &event, &c.outbox, now)?;
            if first {
                insert_event(tx, OP, c.record, cap)?;
            }
            let (name, labels) = c.counter;
            with_extras(tx, OP, "count an event", || bump(tx, OP, name, labels, 1))?;
            Ok(first)
        })
    }
}
