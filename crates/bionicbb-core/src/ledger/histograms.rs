//! Duration histograms kept in the ledger, so latency distributions survive
//! restarts and either daemon can observe while build-listener reports.
//!
//! Each histogram (a name and a label set) stores, per fixed upper bound, the
//! cumulative number of observations at or below it, plus the sum and the
//! total count (the `+Inf` bucket). One observation is one transaction.
//!
//! The names of every counter and histogram the daemons write are in
//! [`metric_names`], the one place both daemons and the metrics endpoint
//! take them from.

use rusqlite::params;

use super::{CachedExecute, Ledger, LedgerError, Result, from_i64, sql};

/// The finite upper bounds (seconds) of every histogram's buckets; an
/// implicit `+Inf` bucket follows. From a second to two hours: a trigger
/// takes seconds after a mail is read, a build tens of minutes.
pub const BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

/// The metric names the daemons record in the ledger, and the label sets
/// they use. Counters are bumped with [`Ledger::bump_counter`], histograms
/// fed with [`Ledger::observe`]; labels are rendered with [`labels`].
pub mod metric_names {
    /// Events received, labels `source` (`gmail`, `jenkins`...) and `type`
    /// (the Gerrit message type or the build phase).
    pub const EVENTS_RECEIVED: &str = "events_received_total";
    /// Jenkins builds triggered, label `job`.
    pub const BUILDS_TRIGGERED: &str = "builds_triggered_total";
    /// Reviews posted on Gerrit, label `outcome` (`posted`, `failed`...).
    pub const REVIEWS_POSTED: &str = "reviews_posted_total";
    /// Outbox attempts that failed and were scheduled again; no labels.
    pub const OUTBOX_RETRIES: &str = "outbox_retries_total";
    /// Failures, label `component` (`gmail-listener`, `build-listener`...).
    pub const FAILURES: &str = "failures_total";
    /// Notification e-mails handled to the end; no labels.
    pub const MAILS_PROCESSED: &str = "mails_processed_total";
    /// Notification e-mails set aside as unreadable; no labels.
    pub const MAILS_QUARANTINED: &str = "mails_quarantined_total";
    /// E-mails set aside unread because the process died while handling
    /// them (also counted in [`MAILS_QUARANTINED`]); no labels.
    pub const MAILS_POISONED: &str = "mails_poisoned_total";

    /// Changes a reconcile pass with Gerrit looked at; no labels.
    pub const RECONCILE_CHANGES_SCANNED: &str = "reconcile_changes_scanned_total";
    /// Patch sets and commands a reconcile pass found that no mail had
    /// delivered (an effect it began afresh), label `kind` (`patch_set`,
    /// `command`): the mail path is leaking.
    pub const RECONCILE_MISSED: &str = "reconcile_missed_total";
    /// Reconcile passes, labels `kind` (`full`, `incremental`) and
    /// `outcome` (`ok`, `truncated`, `incomplete`, `failed`, `stopped`).
    pub const RECONCILE_PASSES: &str = "reconcile_passes_total";

    /// Histogram: seconds from a notification e-mail's date to the Jenkins
    /// trigger it caused.
    pub const MAIL_TO_TRIGGER_SECONDS: &str = "mail_to_trigger_seconds";
    /// Histogram: seconds from a build's completion to its review on Gerrit.
    pub const BUILD_TO_REVIEW_SECONDS: &str = "build_to_review_seconds";
    /// Histogram: seconds one reconcile pass took, label `kind`.
    pub const RECONCILE_PASS_SECONDS: &str = "reconcile_pass_seconds";

    /// Renders a label set the way the metrics endpoint parses it:
    /// `key="value",key2="value2"`, values quoted with `\\`, `\"` and `\n`
    /// escaped (unquoted `key=value` is read too, for values without `,`).
    pub fn labels(pairs: &[(&str, &str)]) -> String {
        let mut out = String::new();
        for (i, (key, value)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out
    }
}

/// A histogram as read back by [`Ledger::histograms`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistogramSnapshot {
    pub name: String,
    /// The label set as recorded (see [`metric_names::labels`]).
    pub labels: String,
    /// `(upper bound, cumulative count)`, ascending, ending with
    /// `(f64::INFINITY, count)`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observed values, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Ledger {
    /// Records one observation of `seconds` in histogram `name` with
    /// `labels`. A negative duration (clocks of two machines disagreeing)
    /// counts as 0; NaN or infinite values are refused.
    pub fn observe(&self, name: &str, labels: &str, seconds: f64) -> Result<()> {
        const OP: &str = "observe a histogram value";
        self.write(OP, |tx| observe_in(tx, OP, name, labels, seconds))
    }

    /// Every histogram, sorted by name then labels.
    pub fn histograms(&self) -> Result<Vec<HistogramSnapshot>> {
        const OP: &str = "read histograms";
        type Totals = (String, String, f64, i64);
        type Bucket = (String, String, f64, i64);
        let (totals, buckets): (Vec<Totals>, Vec<Bucket>) = self.read(|conn| {
            let tx = conn.unchecked_transaction().map_err(sql(OP))?;
            let totals = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name, labels, sum, count FROM histograms ORDER BY name, labels",
                    )
                    .map_err(sql(OP))?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(sql(OP))?;
                rows.collect::<rusqlite::Result<Vec<Totals>>>()
                    .map_err(sql(OP))?
            };
            let buckets = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name, labels, le, count FROM histogram_buckets
                         ORDER BY name, labels, le",
                    )
                    .map_err(sql(OP))?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(sql(OP))?;
                rows.collect::<rusqlite::Result<Vec<Bucket>>>()
                    .map_err(sql(OP))?
            };
            tx.finish().map_err(sql(OP))?;
            Ok((totals, buckets))
        })?;
        let mut buckets = buckets.into_iter().peekable();
        let mut out = Vec::with_capacity(totals.len());
        for (name, labels, sum, count) in totals {
            let count: u64 = from_i64(OP, "histogram count", count)?;
            let mut snapshot = HistogramSnapshot {
                name,
                labels,
                buckets: Vec::new(),
                sum,
                count,
            };
            // Both lists are sorted by (name, labels): take this one's rows.
            while let Some((n, l, le, c)) = buckets.next_if(|(n, l, _, _)| {
                (n.as_str(), l.as_str()) <= (snapshot.name.as_str(), snapshot.labels.as_str())
            }) {
                if n == snapshot.name && l == snapshot.labels {
                    let c: u64 = from_i64(OP, "histogram bucket", c)?;
                    // Never above the total, even if a row was damaged.
                    snapshot.buckets.push((le, c.min(count)));
                }
            }
            snapshot.buckets.push((f64::INFINITY, count));
            out.push(snapshot);
        }
        Ok(out)
    }
}

/// [`Ledger::observe`] in the transaction `tx`.
pub(super) fn observe_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    name: &str,
    labels: &str,
    seconds: f64,
) -> Result<()> {
    if !seconds.is_finite() {
        return Err(LedgerError::Invalid {
            op,
            detail: format!("{name}: {seconds} is not a finite number of seconds"),
        });
    }
    let seconds = seconds.max(0.0);
    tx.cached_execute(
        "INSERT INTO histograms (name, labels, sum, count) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (name, labels) DO UPDATE
           SET sum = sum + excluded.sum, count = count + 1",
        params![name, labels, seconds],
    )
    .map_err(sql(op))?;
    for &le in BUCKETS {
        let hit = i64::from(seconds <= le);
        tx.cached_execute(
            "INSERT INTO histogram_buckets (name, labels, le, count)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name, labels, le) DO UPDATE SET count = count + excluded.count",
            params![name, labels, le, hit],
        )
        .map_err(sql(op))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::metric_names::labels;
    use super::*;

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).expect("open");
        (dir, ledger)
    }

    fn bucket(h: &HistogramSnapshot, le: f64) -> u64 {
        h.buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map(|(_, c)| *c)
            .expect("bucket present")
    }

    #[test]
    fn observations_fill_cumulative_buckets() {
        let (_dir, ledger) = ledger();
        for s in [0.5, 3.0, 3.0, 100.0, 9000.0] {
            ledger.observe("lat", "job=\"a\"", s).unwrap();
        }
        let all = ledger.histograms().unwrap();
        assert_eq!(all.len(), 1);
        let h = &all[0];
        assert_eq!((h.name.as_str(), h.labels.as_str()), ("lat", "job=\"a\""));
        assert_eq!(h.count, 5);
        assert!((h.sum - 9106.5).abs() < 1e-9);
        assert_eq!(h.buckets.len(), BUCKETS.len() + 1);
        assert_eq!(bucket(h, 1.0), 1);
        assert_eq!(bucket(h, 5.0), 3);
        assert_eq!(bucket(h, 60.0), 3);
        assert_eq!(bucket(h, 120.0), 4);
        assert_eq!(bucket(h, 7200.0), 4);
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 5)));
        // Cumulative: never decreasing, bounds ascending.
        for w in h.buckets.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{:?}", h.buckets);
        }
    }

    #[test]
    fn histograms_are_kept_apart_by_name_and_labels_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        {
            let ledger = Ledger::open(&path).unwrap();
            ledger.observe("b", &labels(&[("job", "x")]), 10.0).unwrap();
            ledger.observe("b", &labels(&[("job", "y")]), 20.0).unwrap();
            ledger.observe("a", "", 1.0).unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let all = ledger.histograms().unwrap();
        let keys: Vec<_> = all
            .iter()
            .map(|h| (h.name.as_str(), h.labels.as_str(), h.count))
            .collect();
        assert_eq!(
            keys,
            [("a", "", 1), ("b", "job=\"x\"", 1), ("b", "job=\"y\"", 1)]
        );
        assert_eq!(bucket(&all[1], 5.0), 0);
        assert_eq!(bucket(&all[1], 15.0), 1);
        assert_eq!(bucket(&all[2], 15.0), 0);
        assert_eq!(bucket(&all[2], 30.0), 1);
    }

    #[test]
    fn negative_durations_count_as_zero_and_nan_is_refused() {
        let (_dir, ledger) = ledger();
        ledger.observe("lat", "", -30.0).unwrap();
        assert!(matches!(
            ledger.observe("lat", "", f64::NAN),
            Err(LedgerError::Invalid { .. })
        ));
        assert!(ledger.observe("lat", "", f64::INFINITY).is_err());
        let h = &ledger.histograms().unwrap()[0];
        assert_eq!((h.count, h.sum), (1, 0.0));
        assert_eq!(bucket(h, 1.0), 1);
    }

    #[test]
    fn empty_ledger_has_no_histograms() {
        let (_dir, ledger) = ledger();
        assert!(ledger.histograms().unwrap().is_empty());
    }

    #[test]
    fn labels_are_quoted_and_escaped() {
        assert_eq!(labels(&[]), "");
        assert_eq!(
            labels(&[("job", "a,b"), ("why", "say \"hi\"\\\n")]),
            r#"job="a,b",why="say \"hi\"\\\n""#
        );
    }
}
