//! When reconcile passes run, and what each one looks at. Pure: every
//! function takes the time (unix seconds) from the caller.
//!
//! - The **cursor** lives in the ledger (the status table, so the status
//!   page shows it): when reconciling was first turned on, and when the
//!   last pass and the last full pass that went through started. A restart
//!   resumes from it; a pass that fails leaves it where it was.
//! - A **full** pass asks for every open change; an **incremental** one for
//!   those updated since the last pass started, minus [`OVERLAP`] for the
//!   clock skew between this host and Gerrit (and Gerrit's whole seconds).
//!   The daemon's first pass is full, then one every
//!   `gerrit.reconcile_full_interval`; `--once` runs one pass, full when
//!   the last full one is that old (or there is none).
//! - A pass acts only on patch sets uploaded, and on commands posted, since
//!   reconciling was first turned on and within [`HORIZON`]: a first start
//!   does not build every open change, and nothing older than the history
//!   the ledger keeps (30 days) is ever acted on again. Commands are taken
//!   only from messages newer than the last pass, so an old command is not
//!   decided again on every full pass.

use std::time::Duration;

use serde_json::{Value, json};

/// Slack for the clock skew between this host and Gerrit.
pub const OVERLAP: i64 = 5 * 60;

/// How far back a pass acts: well inside the 30 days of history the ledger
/// keeps, so whatever was done within it is still known there.
pub const HORIZON: i64 = 14 * 24 * 3600;

/// What a pass asks Gerrit for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    Full,
    Incremental,
}

impl PassKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PassKind::Full => "full",
            PassKind::Incremental => "incremental",
        }
    }
}

/// Where reconciling stands, as kept in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// When reconciling was first turned on.
    pub enabled_at: i64,
    /// When the last pass that went through started.
    pub since: Option<i64>,
    /// When the last full pass that went through started.
    pub full_at: Option<i64>,
}

impl Cursor {
    /// The cursor of a first pass starting at `now`.
    pub fn first(now: i64) -> Cursor {
        Cursor {
            enabled_at: now,
            since: None,
            full_at: None,
        }
    }

    /// Reads the stored form; `None` when absent or unreadable (then the
    /// next pass is a first one).
    pub fn from_value(value: &Value) -> Option<Cursor> {
        let enabled_at = value.get("enabled_at")?.as_i64()?;
        let time = |key: &str| value.get(key).and_then(Value::as_i64);
        Some(Cursor {
            enabled_at,
            since: time("since"),
            full_at: time("full_at"),
        })
    }

    pub fn to_value(self) -> Value {
        json!({
            "enabled_at": self.enabled_at,
            "since": self.since,
            "full_at": self.full_at,
        })
    }

    /// The cursor once a pass of `kind` that started at `started` went
    /// through.
    pub fn advanced(self, kind: PassKind, started: i64) -> Cursor {
        Cursor {
            enabled_at: self.enabled_at,
            since: Some(started),
            full_at: match kind {
                PassKind::Full => Some(started),
                PassKind::Incremental => self.full_at,
            },
        }
    }
}

/// What one pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The query's `after:` (unix seconds); `None` for a full pass.
    pub after: Option<i64>,
    /// Current patch sets uploaded before this are left alone.
    pub patch_sets_since: i64,
    /// Messages dated before this are not read for commands.
    pub messages_since: i64,
}

/// The window of a pass of `kind` starting at `now`. A pass without a
/// previous one to follow is full whatever `kind` says.
pub fn window(kind: PassKind, cursor: Cursor, now: i64) -> Window {
    let floor = (now - HORIZON).max(cursor.enabled_at) - OVERLAP;
    let last = cursor.since.map(|t| t - OVERLAP);
    Window {
        after: match kind {
            PassKind::Incremental => last,
            PassKind::Full => None,
        },
        patch_sets_since: floor,
        messages_since: last.map_or(floor, |t| t.max(floor)),
    }
}

/// When the next passes are due, in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    interval: i64,
    full_interval: Option<i64>,
    next_at: i64,
    /// `None`: no full pass is due again (full passes only at start).
    next_full_at: Option<i64>,
}

impl Schedule {
    /// The schedule of a process starting at `now`: the first pass is due
    /// at once. In the daemon it is full; with `once` it is full when the
    /// stored cursor's last full pass is older than `full_interval` (or
    /// there is none).
    pub fn new(
        interval: Duration,
        full_interval: Duration,
        cursor: Option<Cursor>,
        once: bool,
        now: i64,
    ) -> Schedule {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let full_interval = (!full_interval.is_zero()).then(|| secs(full_interval));
        let last_full = cursor.and_then(|c| c.full_at);
        let next_full_at = match (once, last_full, full_interval) {
            (true, Some(at), Some(every)) => Some(at.saturating_add(every)),
            (true, Some(_), None) => None,
            _ => Some(now),
        };
        Schedule {
            interval: secs(interval),
            full_interval,
            next_at: now,
            next_full_at,
        }
    }

    /// The pass due at `now`, if any.
    pub fn due(&self, now: i64) -> Option<PassKind> {
        if self.interval == 0 || now < self.next_at {
            return None;
        }
        Some(match self.next_full_at {
            Some(at) if now >= at => PassKind::Full,
            _ => PassKind::Incremental,
        })
    }

    /// Records a pass of `kind` that started at `started`: the next one is
    /// due `interval` later whatever became of it; a full pass that went
    /// through (`through`) puts the next full one `full_interval` later,
    /// one that did not is due again with the next pass.
    pub fn record(&mut self, kind: PassKind, started: i64, through: bool) {
        self.next_at = started.saturating_add(self.interval);
        if kind == PassKind::Full && through {
            self.next_full_at = self.full_interval.map(|i| started.saturating_add(i));
        }
    }

    /// When the next pass is due.
    pub fn next_at(&self) -> i64 {
        self.next_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const MIN: i64 = 60;
    const HOUR: i64 = 3600;

    #[test]
    fn a_first_pass_acts_only_on_what_came_since_it_started() {
        let w = window(PassKind::Full, Cursor::first(NOW), NOW);
        assert_eq!(
            w,
            Window {
                after: None,
                patch_sets_since: NOW - OVERLAP,
                messages_since: NOW - OVERLAP,
            }
        );
    }

    #[test]
    fn later_passes_follow_the_cursor_within_the_horizon() {
        let cursor = Cursor {
            enabled_at: NOW - 30 * 24 * HOUR,
            since: Some(NOW - 10 * MIN),
            full_at: Some(NOW - 3 * HOUR),
        };
        let incremental = window(PassKind::Incremental, cursor, NOW);
        assert_eq!(incremental.after, Some(NOW - 10 * MIN - OVERLAP));
        assert_eq!(incremental.patch_sets_since, NOW - HORIZON - OVERLAP);
        assert_eq!(incremental.messages_since, NOW - 10 * MIN - OVERLAP);
        let full = window(PassKind::Full, cursor, NOW);
        assert_eq!(full.after, None);
        assert_eq!(full.patch_sets_since, NOW - HORIZON - OVERLAP);
        assert_eq!(full.messages_since, NOW - 10 * MIN - OVERLAP);
        // Turned on an hour ago: nothing older than that.
        let young = Cursor {
            enabled_at: NOW - HOUR,
            ..cursor
        };
        assert_eq!(
            window(PassKind::Full, young, NOW).patch_sets_since,
            NOW - HOUR - OVERLAP
        );
        // Down for three weeks: messages within the horizon only.
        let stale = Cursor {
            since: Some(NOW - 21 * 24 * HOUR),
            ..cursor
        };
        let w = window(PassKind::Incremental, stale, NOW);
        assert_eq!(w.after, Some(NOW - 21 * 24 * HOUR - OVERLAP));
        assert_eq!(w.messages_since, NOW - HORIZON - OVERLAP);
    }

    #[test]
    fn a_first_pass_that_failed_leaves_an_incremental_one_full() {
        let cursor = Cursor::first(NOW - HOUR);
        let w = window(PassKind::Incremental, cursor, NOW);
        assert_eq!(w.after, None, "nothing to follow yet");
        assert_eq!(w.patch_sets_since, NOW - HOUR - OVERLAP);
    }

    #[test]
    fn the_cursor_round_trips_and_advances() {
        let cursor = Cursor::first(NOW);
        assert_eq!(Cursor::from_value(&cursor.to_value()), Some(cursor));
        let full = cursor.advanced(PassKind::Full, NOW + 1);
        assert_eq!((full.since, full.full_at), (Some(NOW + 1), Some(NOW + 1)));
        let inc = full.advanced(PassKind::Incremental, NOW + 600);
        assert_eq!((inc.since, inc.full_at), (Some(NOW + 600), Some(NOW + 1)));
        assert_eq!(inc.enabled_at, NOW);
        assert_eq!(Cursor::from_value(&inc.to_value()), Some(inc));
        assert_eq!(Cursor::from_value(&json!({"since": 5})), None);
        assert_eq!(Cursor::from_value(&json!("garbage")), None);
    }

    fn daemon(now: i64) -> Schedule {
        Schedule::new(
            Duration::from_secs(600),
            Duration::from_secs(6 * 3600),
            None,
            false,
            now,
        )
    }

    #[test]
    fn the_daemon_starts_with_a_full_pass_then_follows_the_intervals() {
        let mut s = daemon(NOW);
        assert_eq!(s.due(NOW), Some(PassKind::Full));
        s.record(PassKind::Full, NOW, true);
        assert_eq!(s.due(NOW + 599), None);
        assert_eq!(s.next_at(), NOW + 600);
        assert_eq!(s.due(NOW + 600), Some(PassKind::Incremental));
        s.record(PassKind::Incremental, NOW + 600, true);
        assert_eq!(s.due(NOW + 6 * HOUR), Some(PassKind::Full));
    }

    #[test]
    fn a_failed_pass_waits_an_interval_and_a_failed_full_one_comes_again() {
        let mut s = daemon(NOW);
        s.record(PassKind::Full, NOW, false);
        assert_eq!(s.due(NOW + 10), None, "Gerrit is not asked again at once");
        assert_eq!(s.due(NOW + 600), Some(PassKind::Full));
        s.record(PassKind::Full, NOW + 600, true);
        s.record(PassKind::Incremental, NOW + 1200, false);
        assert_eq!(s.due(NOW + 1800), Some(PassKind::Incremental));
    }

    #[test]
    fn zero_intervals_turn_passes_or_later_full_passes_off() {
        let off = Schedule::new(Duration::ZERO, Duration::ZERO, None, false, NOW);
        assert_eq!(off.due(NOW + 10 * HOUR), None);
        let mut start_only =
            Schedule::new(Duration::from_secs(600), Duration::ZERO, None, false, NOW);
        assert_eq!(start_only.due(NOW), Some(PassKind::Full));
        start_only.record(PassKind::Full, NOW, true);
        assert_eq!(
            start_only.due(NOW + 100 * HOUR),
            Some(PassKind::Incremental)
        );
    }

    #[test]
    fn once_runs_one_pass_full_only_when_the_last_full_one_is_old() {
        let every = Duration::from_secs(600);
        let full = Duration::from_secs(6 * 3600);
        let recent = Cursor {
            enabled_at: NOW - 24 * HOUR,
            since: Some(NOW - 60),
            full_at: Some(NOW - HOUR),
        };
        let s = Schedule::new(every, full, Some(recent), true, NOW);
        assert_eq!(s.due(NOW), Some(PassKind::Incremental));
        let old = Cursor {
            full_at: Some(NOW - 7 * HOUR),
            ..recent
        };
        let s = Schedule::new(every, full, Some(old), true, NOW);
        assert_eq!(s.due(NOW), Some(PassKind::Full));
        let s = Schedule::new(every, full, None, true, NOW);
        assert_eq!(s.due(NOW), Some(PassKind::Full));
        let s = Schedule::new(every, Duration::ZERO, Some(old), true, NOW);
        assert_eq!(s.due(NOW), Some(PassKind::Incremental));
    }
}
