//! Everything the page shows, read from the ledger at once: the one place
//! the status page does I/O.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{
    EventRecord, Ledger, LedgerError, OutboxItem, SeenBuild, Trigger, VouchRecord,
};
use serde_json::Value;

use super::filter::Filter;

/// How many recent events the page reads (for the subjects and owners of
/// the changes it shows, and its list of events).
const EVENTS_READ: usize = 1000;
/// How many recent triggers and recorded builds it reads.
const BUILDS_READ: usize = 400;
/// How many recently failed outbox items it reads.
const FAILED_READ: usize = 20;

/// The ledger's state as the page reads it.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub now: i64,
    /// Status values by component, then key.
    pub components: BTreeMap<String, BTreeMap<String, Value>>,
    /// Newest first.
    pub events: Vec<EventRecord>,
    /// Newest first.
    pub triggers: Vec<Trigger>,
    /// Newest first.
    pub builds: Vec<SeenBuild>,
    /// The vouches (`bionicbb:ok-to-test`) recorded, newest first.
    pub vouches: Vec<VouchRecord>,
    pub pending_count: u64,
    pub oldest_pending_age: Option<i64>,
    /// Oldest first.
    pub pending: Vec<OutboxItem>,
    /// Newest first.
    pub failed: Vec<OutboxItem>,
}

impl Snapshot {
    /// Reads the ledger; with a change in `filter`, the triggers and
    /// builds of that change only (the rest is narrowed by the page).
    pub fn read(ledger: &Ledger, filter: &Filter, now: i64) -> Result<Snapshot, LedgerError> {
        Ok(Snapshot {
            now,
            components: ledger.all_status()?,
            events: ledger.recent_events(EVENTS_READ)?,
            triggers: ledger.recent_triggers(filter.change, BUILDS_READ)?,
            builds: ledger.recent_builds(filter.change, BUILDS_READ)?,
            vouches: ledger.recent_vouches(filter.change, BUILDS_READ)?,
            pending_count: ledger.pending_count()?,
            oldest_pending_age: ledger.oldest_pending_age(now)?,
            pending: ledger.pending()?,
            failed: ledger.failed_recent(FAILED_READ)?,
        })
    }
}
