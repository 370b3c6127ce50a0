//! The keys of builds already seen (see [`Ledger::record_completion`]),
//! rewritten when their form changes.

use rusqlite::{OptionalExtension, params};

use super::{CachedExecute, Ledger, Result, sql};

impl Ledger {
    /// Whether the completion of build `build_key` was recorded
    /// ([`Ledger::record_completion`]).
    pub fn build_seen(&self, build_key: &str) -> Result<bool> {
        const OP: &str = "look up a build";
        self.read(|conn| {
            conn.query_row(
                "SELECT 1 FROM builds WHERE build_key = ?1",
                [build_key],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql(OP))
        })
    }

    /// Rewrites the keys of builds already seen into their current form:
    /// `rekey` gives the new key of an old one (`None`: keep it). Keys
    /// starting with `current_prefix` are current and not looked at. Where
    /// two old keys give the same new key (one build recorded twice under
    /// two forms), the first one takes it and the other is left as it was.
    /// Returns the number of keys rewritten. Run at start-up, so a build
    /// recorded by an older version is still recognised when it is posted
    /// again.
    pub fn rekey_builds(
        &self,
        current_prefix: &str,
        rekey: impl Fn(&str) -> Option<String> + Sync,
    ) -> Result<usize> {
        const OP: &str = "rewrite old build keys";
        self.write(OP, |tx| {
            let old: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT build_key FROM builds WHERE substr(build_key, 1, ?1) <> ?2")
                    .map_err(sql(OP))?;
                let prefix_len = current_prefix.chars().count() as i64;
                let rows = stmt
                    .query_map(params![prefix_len, current_prefix], |row| row.get(0))
                    .map_err(sql(OP))?;
                rows.collect::<rusqlite::Result<_>>().map_err(sql(OP))?
            };
            let mut rewritten = 0;
            for key in old {
                let Some(new) = rekey(&key).filter(|new| *new != key) else {
                    continue;
                };
                rewritten += tx
                    .cached_execute(
                        "UPDATE OR IGNORE builds SET build_key = ?2 WHERE build_key = ?1",
                        params![key, new],
                    )
                    .map_err(sql(OP))?;
            }
            Ok(rewritten)
        })
    }
}
