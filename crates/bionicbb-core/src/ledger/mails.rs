//! gmail-listener's record of each mail.
//!
//! A mail is `Done` once every decision about it is done (or can never be),
//! and `Quarantined` when it can never be handled. Both are final for the
//! ledger: a mail still in the label in one of these states was left there
//! by a crash (or a failed trash) after it was marked, so the daemon only
//! removes it from the label again, without redoing anything.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, Result, from_i64, sql};

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
            tx.execute(
                "INSERT INTO mails (gmail_id, state, attempts, last_error)
                 VALUES (?1, 'pending', 1, ?2)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET attempts = attempts + 1, last_error = excluded.last_error
                   WHERE state = 'pending'",
                params![gmail_id, error],
            )
            .map_err(sql(OP))?;
            let attempts: i64 = tx
                .query_row(
                    "SELECT CASE state WHEN 'pending' THEN attempts ELSE 0 END
                     FROM mails WHERE gmail_id = ?1",
                    [gmail_id],
                    |row| row.get(0),
                )
                .map_err(sql(OP))?;
            from_i64(OP, "attempt count", attempts)
        })
    }

    /// Marks a mail handled; `summary` says what was done (for operators).
    /// Idempotent; final.
    pub fn mark_mail_done(&self, gmail_id: &str, summary: &str, now: i64) -> Result<()> {
        const OP: &str = "mark a mail done";
        self.write(OP, |tx| {
            tx.execute(
                "INSERT INTO mails (gmail_id, state, note, updated_at)
                 VALUES (?1, 'done', ?2, ?3)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET state = 'done', note = excluded.note, updated_at = excluded.updated_at
                   WHERE state != 'done'",
                params![gmail_id, summary, now],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }

    /// Marks a mail as never to be handled, with the reason. A mail already
    /// done stays done (its effects happened).
    pub fn mark_mail_quarantined(&self, gmail_id: &str, reason: &str, now: i64) -> Result<()> {
        const OP: &str = "quarantine a mail";
        self.write(OP, |tx| {
            tx.execute(
                "INSERT INTO mails (gmail_id, state, note, updated_at)
                 VALUES (?1, 'quarantined', ?2, ?3)
                 ON CONFLICT (gmail_id) DO UPDATE
                   SET state = 'quarantined', note = excluded.note,
                       updated_at = excluded.updated_at
                   WHERE state = 'pending'",
                params![gmail_id, reason, now],
            )
            .map_err(sql(OP))?;
            Ok(())
        })
    }
}
