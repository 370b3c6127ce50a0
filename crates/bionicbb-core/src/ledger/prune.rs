//! Forgetting old history, so the file does not grow for ever.
//!
//! Only finished rows are removed: pending mails, started effects and
//! pending outbox items are never touched, whatever their age. A mail or a
//! build seen again after its row was pruned is treated as new, so the
//! cutoff must be far older than any redelivery (a month is plenty: a Gmail
//! message is trashed within minutes of being done, and Jenkins re-sends a
//! notification, if ever, within seconds).

use super::{CachedExecute, Ledger, Result, sql};

impl Ledger {
    /// Deletes finished history older than `cutoff` (unix seconds): done and
    /// quarantined mails, done and failed effects, seen builds, done and
    /// failed outbox items. Returns the number of rows removed.
    pub fn prune_before(&self, cutoff: i64) -> Result<u64> {
        const OP: &str = "prune old history";
        const STATEMENTS: &[&str] = &[
            "DELETE FROM mails WHERE state != 'pending' AND updated_at < ?1",
            "DELETE FROM effects WHERE (state = 'done' AND finished_at < ?1)
                                    OR (state = 'failed' AND started_at < ?1)",
            "DELETE FROM builds WHERE seen_at < ?1",
            "DELETE FROM unreported_closed WHERE closed_at < ?1",
            "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?1",
        ];
        let removed = self.write(OP, |tx| {
            let mut removed = 0_usize;
            for statement in STATEMENTS {
                removed += tx.cached_execute(statement, [cutoff]).map_err(sql(OP))?;
            }
            Ok(removed)
        })?;
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }
}
