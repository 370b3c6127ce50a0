//! What happens to a mail before its turn: the ledger's word on it, the
//! poison-mail protection, the size limit, the download and the parse.
//!
//! Poison mail: whatever a parser bug may do to the process (an abort, a
//! stack overflow, the kernel's OOM killer), one mail must not stop the bot.
//! So while the process works on a mail's content (parsing it, deciding
//! about it) the mail is marked "in hand" (`in_hand`: a small file the
//! kernel keeps whatever becomes of the process), and the mark is lifted
//! while the mail waits for Gerrit, for its effects or for its turn: a
//! process killed then (a restart, the OOM killer choosing it for another
//! reason) was not killed by the mail, and a genuine mail must not be set
//! aside because the process happened to die twice while a server was
//! slow. A mark found at start means the process died working on that
//! mail: the ledger counts it ([`bionicbb_core::ledger::Ledger::record_death`]).
//! After [`MAX_DEATHS`] such deaths the mail is quarantined without being
//! read again, the mails behind it go on, and the operator sees it in the
//! log (an error naming the mail), in the `mails_poisoned_total` counter and
//! on the status page. The count is cleared when a handling of the mail
//! ends, whatever the outcome.
//!
//! Mails are handled concurrently, so several could be "in hand" at once
//! and one death would be blamed on all of them. The windows in which the
//! process works on a mail's content are therefore exclusive: one lock
//! (`Listener::content`) is held from [`Listener::resume`] through the
//! parse to the pause, and again through the decision; downloads and every
//! other network wait stay outside it, and the windows cost no disk flush.
//! At most one mail is in hand at any moment (the debug log shows each
//! window as `in hand` ... `out of hand`).
//!
//! Size: a mail is read with one `messages.get?format=raw` whose answer is
//! read as a stream and abandoned as soon as it is longer than the answer
//! for a mail of `gmail.max_mail_size` bytes can be (base64 of the mail
//! plus Gmail's JSON around it, [`crate::gmail::answer_bound`]): a mail
//! over the limit is quarantined without more than that bound ever being
//! held in memory, and without a second request to learn its size first.

use crate::gmail::{Download, Oversize};
use bionicbb_core::error::ErrorKind;
use bionicbb_core::ledger::{self, EventRecord, MailState, metric_names as names};
use bionicbb_core::mail::{self, ParsedMail};
use serde_json::json;
use tokio::sync::MutexGuard;

use super::drain::{ChangeKey, Fetched, Prepared};
use super::{Handled, Listener};

/// A mail in hand when the process died this many times is quarantined
/// without being read again.
pub const MAX_DEATHS: u32 = 2;

/// The content lock, held while one mail's content is worked on.
pub(super) type Window<'a> = MutexGuard<'a, ()>;

impl Listener {
    /// Reads and parses one mail from the label, or says what became of
    /// it when it goes no further (taken out, quarantined, left pending).
    /// Its in-hand mark is lifted when this returns.
    pub(super) async fn fetch(&self, id: String) -> Fetched {
        match self.prepare(&id).await {
            Ok((parsed, deaths)) => Fetched::Ready(Box::new(Prepared {
                key: ChangeKey::of(&parsed.event),
                id,
                parsed,
                deaths,
            })),
            Err(handled) => Fetched::Finished(id, handled),
        }
    }

    /// The mail parsed, with the deaths counted against it.
    async fn prepare(&self, id: &str) -> Result<(ParsedMail, u32), Handled> {
        let mut deaths_so_far = 0;
        if let Some(ledger) = &self.ledger {
            let gmail_id = id.to_string();
            let (state, deaths) = ledger
                .blocking("read a mail's state", move |l| {
                    Ok((l.mail_state(&gmail_id)?, l.mail_in_hand(&gmail_id)?))
                })
                .await
                .map_err(|e| Handled::Pending(format!("ledger: {e}")))?;
            match state {
                // Marked before a crash or a failed take-out: only take it out.
                Some(MailState::Done) => return Err(Handled::Done),
                Some(MailState::Quarantined) => return Err(self.moved_to_quarantine(id).await),
                _ => {}
            }
            deaths_so_far = deaths;
            match deaths {
                0 => {}
                deaths if deaths >= MAX_DEATHS => return Err(self.poisoned(id, deaths).await),
                deaths => tracing::warn!(
                    gmail_id = %id,
                    deaths,
                    "the process died while handling this mail before; trying it again"
                ),
            }
        }
        let raw = self.read(id).await?;
        let window = self.resume(id).await;
        match mail::parse(&raw) {
            Ok(parsed) => {
                self.pause(id, window).await;
                Ok((parsed, deaths_so_far))
            }
            Err(e) => {
                let marked = self
                    .mark_quarantined(id, &format!("unreadable mail: {e}"))
                    .await;
                tracing::debug!(gmail_id = %id, "out of hand");
                drop(window);
                marked?;
                Err(self.moved_to_quarantine(id).await)
            }
        }
    }

    /// Opens a content window: the lock taken and the mark set (again,
    /// after a wait for a server). A failed write only weakens the
    /// protection, so it is logged.
    pub(super) async fn resume(&self, id: &str) -> Window<'_> {
        let window = self.content.lock().await;
        self.mark(id, true);
        tracing::debug!(gmail_id = %id, "in hand");
        window
    }

    /// Closes a content window: the mark lifted while the mail waits (for
    /// a server, or for its turn), then the lock released.
    pub(super) async fn pause(&self, id: &str, window: Window<'_>) {
        self.mark(id, false);
        tracing::debug!(gmail_id = %id, "out of hand");
        drop(window);
    }

    fn mark(&self, id: &str, set: bool) {
        let Some(in_hand) = &self.in_hand else {
            return;
        };
        let written = if set {
            in_hand.set(id)
        } else {
            in_hand.clear()
        };
        if let Err(e) = written {
            tracing::warn!(gmail_id = %id, error = %e, "cannot update the in-hand mark");
        }
    }

    /// Clears the mail's count of deaths once its handling ended, whatever
    /// the outcome (usually the outcome's write cleared it already; with
    /// nothing to clear, nothing is written). Only for a mail read with
    /// deaths counted against it.
    pub(super) async fn release(&self, id: &str) {
        let Some(ledger) = self.writer() else {
            return;
        };
        let gmail_id = id.to_string();
        let released = ledger
            .blocking("release a mail", move |l| l.release_mail(&gmail_id))
            .await;
        if let Err(e) = released {
            tracing::warn!(gmail_id = %id, error = %e, "cannot clear the mail's in-hand mark");
        }
    }

    /// Downloads a mail, unless it is too large.
    async fn read(&self, id: &str) -> Result<Vec<u8>, Handled> {
        let max = self.config.gmail.max_mail_size;
        match self.mailbox.download(id, max).await {
            Ok(Download::Mail(raw)) => Ok(raw),
            Ok(Download::TooLarge(over)) => Err(self.too_large(id, &over).await),
            Err(e) if e.kind == ErrorKind::NotFound => Err(self.disappeared(id)),
            Err(e) => Err(self.failed_try(id, e.to_string()).await),
        }
    }

    fn disappeared(&self, id: &str) -> Handled {
        tracing::info!(gmail_id = %id, "the mail disappeared before it was read");
        Handled::Gone
    }

    async fn too_large(&self, id: &str, size: &Oversize) -> Handled {
        let max = self.config.gmail.max_mail_size;
        self.quarantine(
            id,
            &format!("too large to read: {size} (gmail.max_mail_size is {max} bytes)"),
        )
        .await
    }

    /// Sets aside a mail that was in hand each time the process died.
    async fn poisoned(&self, id: &str, deaths: u32) -> Handled {
        tracing::error!(
            gmail_id = %id,
            deaths,
            label = %self.config.gmail.quarantine_label,
            "poison mail: the process died {deaths} times while handling it; \
             quarantining it without reading it again"
        );
        let Some(ledger) = self.writer() else {
            return Handled::Quarantined;
        };
        self.count(names::MAILS_POISONED, &[]).await;
        let now = ledger::now();
        let seen = json!({ "gmail_id": id, "deaths": deaths, "at": now });
        let recorded = ledger
            .blocking("record a poison mail", move |l| {
                l.set_status("gmail-listener", "last_poison_mail", &seen, now)
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record the poison mail on the status page");
        }
        let record = EventRecord {
            at: now,
            source: "gmail".to_string(),
            summary: format!("poison mail {id} quarantined unread after {deaths} deaths"),
            change_number: None,
            patch_set: None,
            decisions: json!([]),
            details: None,
        };
        let recorded = ledger
            .blocking("record an event", move |l| l.record_event(&record))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record the poison mail on the status page");
        }
        let handled = self
            .quarantine(
                id,
                &format!("poison mail: the process died {deaths} times while handling it"),
            )
            .await;
        self.release(id).await;
        handled
    }
}
