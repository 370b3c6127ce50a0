//! gmail-listener's record of each mail.
//!
//! A mail is `Done` once every decision about it is done (or can never be),
//! and `Quarantined` when it can never be handled. Both are final for the
//! ledger: a mail still in the label in one of these states was left there
//! by a crash (or a failed trash) after it was marked, so the daemon only
//! removes it from the label again, without redoing anything.
//!
//! Poison mail: gmail-listener keeps the one mail whose content it works
//! on (parsing it, deciding about it) in a small file of its own, and at
//! its next start records a death of the process against the mail that
//! file still names ([`Ledger::record_death`]). The count of such deaths
//! ([`Ledger::mail_in_hand`]) lets it set aside a mail that keeps killing
//! the process, without reading it again. The count is cleared
//! ([`Ledger::release_mail`], or by the write that records the mail's
//! outcome) when a handling of the mail ends, whatever the outcome (done,
//! quarantined, or left for the next poll after a passing fault). Deaths
//! are counted per mail, so mails handled at the same time never count for
//! each other.

use rusqlite::{OptionalExtension, params};

use super::status::{bump, insert_event};
use super::{CachedExecute, EventRecord, Ledger, Result, from_i64, sql, with_extras};

/// A handled mail's outcome as gmail-listener records it: the mail done,
/// the counters it bumps and its event for the status page, in one
/// transaction (one share of one commit instead of four commits, each a
/// wait on the mail's path).
#[derive(Debug, Clone, PartialEq)]
pub struct MailDone<'a> {
    pub gmail_id: &'a str,
    /// What was done (the mail's note).
    pub summary: &'a str,
    /// Counters bumped by one: `(name, labels)`.
    pub counters: &'a [(&'a str, String)],
    /// The status page's event.
    pub event: &'a EventRecord,
}

/// What the ledger knows about a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailState {
    /// Handled: every effect is done. Only trash it.
    Done,
    /// Can never be handled (unreadable, forged, permanently refused). Only
    /// trash it (or move it aside).
    Quarantined,
    /// Seen, not finished: `attempts` failed tries so far.
    Pending {
        attempts: u32,
        last_error: Option<String>,
    },
}

impl Ledger {
    /// The state of a mail, `None` if it was never seen.
    pub fn mail_state(&self, gmail_id: &str) -> Result<Option<MailState>> {
        const OP: &str = "read a mail's state";
        let row: Option<(String, i64, Option<String>)> = self.read(|conn| {
            conn.query_row(
                "SELECT state, attempts, last_error FROM mails WHERE gmail_id = ?1",
                [gmail_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(sql(OP))
        })?;
        let Some((state, attempts, last_error)) = row else {
            return Ok(None);
        };
        Ok(Some(match state.as_str() {
            "done" => MailState::Done,
            "quarantined" => MailState::Quarantined,
            _ => MailState::Pending {
                attempts: from_i64(OP, "attempt count", attempts)?,
                last_error,
            },
        }))
    }

    /// Records a failed try at a mail (it stays in the label for the next
    /// poll) and returns the number of failed tries so far, so the caller can
    /// quarantine a mail that keeps failing. A mail already done or
    /// quarantined is left as it is (and 0 is returned).
    pub fn record_mail_attempt(&self, gmail_id: &str, error: &str) -> Result<u32> {
        const OP: &str = "record a mail attempt";
        self.write(OP, |tx| {
            tx.cached_execute(
                "INSERT INTO mails (gmail_id, state, attempts, last_error)
                 VALUES (?1, 'pending', 1, ?2)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET attempts = attempts + 1, last_error = excluded.last_error,
                       in_hand = 0, in_hand_since = NULL
                   WHERE state = 'pending'",
                params![gmail_id, error],
            )
            .map_err(sql(OP))?;
            pending_count(tx, OP, gmail_id, Count::Attempts)
        })
    }

    /// How many times the process died with the mail in hand (see
    /// [`Ledger::record_death`]) since a handling of it last ended. 0 for a mail never seen, and for
    /// one whose every handling ended.
    pub fn mail_in_hand(&self, gmail_id: &str) -> Result<u32> {
        const OP: &str = "read a mail's in-hand count";
        let count: Option<i64> = self.read(|conn| {
            conn.query_row(
                "SELECT in_hand FROM mails WHERE gmail_id = ?1",
                [gmail_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql(OP))
        })?;
        from_i64(OP, "in-hand count", count.unwrap_or(0))
    }

    /// Records that the process died while it worked on the content of
    /// mail `gmail_id` (gmail-listener finds that out at its next start).
    /// `token` names that one death: recording it again (a start that died
    /// before it could forget it) counts nothing more. Returns the deaths
    /// counted so far. A mail done or quarantined is final: 0, nothing
    /// recorded.
    pub fn record_death(&self, gmail_id: &str, token: i64) -> Result<u32> {
        const OP: &str = "record a death with a mail in hand";
        self.write(OP, |tx| {
            tx.cached_execute(
                "INSERT INTO mails (gmail_id, state, in_hand, in_hand_since)
                 VALUES (?1, 'pending', 1, ?2)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET in_hand = in_hand + 1, in_hand_since = excluded.in_hand_since
                   WHERE state = 'pending'
                     AND in_hand_since IS NOT excluded.in_hand_since",
                params![gmail_id, token],
            )
            .map_err(sql(OP))?;
            pending_count(tx, OP, gmail_id, Count::InHand)
        })
    }

    /// Clears the in-hand mark of a mail whose handling ended (whatever
    /// became of it). Marking a mail done or quarantined, or recording a
    /// failed try, clears it too, in the same transaction; then this only
    /// reads: it does not join (and wait for) a commit of other writers.
    /// Deaths are only recorded at start, before any mail is handled, so
    /// the read cannot miss one recorded since.
    pub fn release_mail(&self, gmail_id: &str) -> Result<()> {
        const OP: &str = "release a mail";
        if self.mail_in_hand(gmail_id)? == 0 {
            return Ok(());
        }
        self.write(OP, |tx| {
            tx.cached_execute(
                "UPDATE mails SET in_hand = 0, in_hand_since = NULL
                 WHERE gmail_id = ?1 AND in_hand != 0",
                [gmail_id],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }

    /// Marks a mail handled; `summary` says what was done (for operators).
    /// Idempotent; final.
    pub fn mark_mail_done(&self, gmail_id: &str, summary: &str, now: i64) -> Result<()> {
        const OP: &str = "mark a mail done";
        self.write(OP, |tx| mark_done(tx, OP, gmail_id, summary, now))
    }

    /// [`Ledger::mark_mail_done`], plus the mail's counters and event, in
    /// one transaction. A failure to count or to record the event is
    /// logged and does not undo the rest: the mail is done all the same.
    pub fn finish_mail(&self, done: MailDone<'_>, now: i64) -> Result<()> {
        const OP: &str = "mark a mail done";
        let cap = self.inner.options.event_cap;
        self.write(OP, |tx| {
            mark_done(tx, OP, done.gmail_id, done.summary, now)?;
            with_extras(tx, OP, "count a mail or record its event", || {
                for (name, labels) in done.counters {
                    bump(tx, OP, name, labels, 1)?;
                }
                insert_event(tx, OP, done.event, cap)
            })
        })
    }

    /// Marks a mail as never to be handled, with the reason. A mail already
    /// done stays done (its effects happened).
    pub fn mark_mail_quarantined(&self, gmail_id: &str, reason: &str, now: i64) -> Result<()> {
        const OP: &str = "quarantine a mail";
        self.write(OP, |tx| {
            tx.cached_execute(
                "INSERT INTO mails (gmail_id, state, note, updated_at)
                 VALUES (?1, 'quarantined', ?2, ?3)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET state = 'quarantined', note = excluded.note,
                       updated_at = excluded.updated_at, in_hand = 0, in_hand_since = NULL
                   WHERE state = 'pending'",
                params![gmail_id, reason, now],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }
}

/// A count kept per pending mail.
#[derive(Clone, Copy)]
enum Count {
    Attempts,
    InHand,
}

/// A pending mail's count as written in this transaction; 0 once the mail
/// is done or quarantined (final: nothing counts any more).
fn pending_count(
    tx: &rusqlite::Connection,
    op: &'static str,
    gmail_id: &str,
    count: Count,
) -> Result<u32> {
    let (query, what) = match count {
        Count::Attempts => (
            "SELECT CASE state WHEN 'pending' THEN attempts ELSE 0 END FROM mails WHERE gmail_id = ?1",
            "attempt count",
        ),
        Count::InHand => (
            "SELECT CASE state WHEN 'pending' THEN in_hand ELSE 0 END FROM mails WHERE gmail_id = ?1",
            "in-hand count",
        ),
    };
    let value: i64 = tx
        .query_row(query, [gmail_id], |row| row.get(0))
        .map_err(sql(op))?;
    from_i64(op, what, value)
}

/// Marks a mail done inside a transaction (a mail done stays done).
fn mark_done(
    tx: &rusqlite::Connection,
    op: &'static str,
    gmail_id: &str,
    summary: &str,
    now: i64,
) -> Result<()> {
    tx.cached_execute(
        "INSERT INTO mails (gmail_id, state, note, updated_at)
         VALUES (?1, 'done', ?2, ?3)
         ON CONFLICT (gmail_id) DO UPDATE
           SET state = 'done', note = excluded.note, updated_at = excluded.updated_at,
               in_hand = 0, in_hand_since = NULL
           WHERE state != 'done'",
        params![gmail_id, summary, now],
    )
    .map_err(sql(op))?;
    Ok(())
}
