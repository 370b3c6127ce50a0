//! What happens to a mail before it is read: the ledger's word on it, the
//! poison-mail protection and the size limit.
//!
//! Poison mail: whatever a parser bug may do to the process (an abort, a
//! stack overflow, the kernel's OOM killer), one mail must not stop the bot.
//! So each mail is marked "in hand" in the ledger, durably, once it is
//! downloaded and before it is parsed, and released when its handling ends,
//! whatever the outcome (done, quarantined, or left for the next poll after
//! a passing fault: that is not a death). While the mail waits for Gerrit or
//! for its effects, the mark is lifted ([`Listener::waiting`]): a process
//! killed then (a restart, the OOM killer choosing it for another reason)
//! was not killed by the mail, and a genuine mail must not be set aside
//! because the process happened to die twice while a server was slow. A
//! mark found still set when the mail is next seen (at the first poll after
//! a restart) means the process died while working on the mail's content. After [`MAX_DEATHS`] such deaths the mail is quarantined without
//! being read again, the mails behind it go on, and the operator sees it in
//! the log (an error naming the mail), in the `mails_poisoned_total`
//! counter and on the status page. The mark is per mail: mails handled at
//! the same time never count for each other.
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
use serde_json::json;

use super::{Handled, Listener};

/// A mail in hand when the process died this many times is quarantined
/// without being read again.
pub const MAX_DEATHS: u32 = 2;

impl Listener {
    /// Handles one mail from the label, from the ledger's record of it to
    /// its trash or quarantine.
    pub(super) async fn handle(&self, id: &str) -> Handled {
        if let Some(ledger) = &self.ledger {
            let state = match ledger.mail_state(id) {
                Ok(s) => s,
                Err(e) => return Handled::Pending(format!("ledger: {e}")),
            };
            match state {
                // Marked before a crash or a failed trash: only take it out.
                Some(MailState::Done) => return self.trash(id).await,
                Some(MailState::Quarantined) => {
                    return match self.move_to_quarantine(id).await {
                        Ok(()) => Handled::Quarantined,
                        Err(e) => Handled::Pending(e),
                    };
                }
                _ => {}
            }
            match ledger.mail_in_hand(id) {
                Ok(deaths) if deaths >= MAX_DEATHS => return self.poisoned(id, deaths).await,
                Ok(0) => {}
                Ok(deaths) => tracing::warn!(
                    gmail_id = %id,
                    deaths,
                    "the process died while handling this mail before; trying it again"
                ),
                Err(e) => return Handled::Pending(format!("ledger: {e}")),
            }
        }
        let raw = match self.read(id).await {
            Ok(raw) => raw,
            Err(handled) => return handled,
        };
        // A dry run writes nothing, so it marks nothing either.
        let ledger = self.effects.as_ref().map(|e| &e.ledger);
        if let Some(ledger) = ledger
            && let Err(e) = ledger.hold_mail(id, ledger::now())
        {
            return Handled::Pending(format!("ledger: {e}"));
        }
        let handled = self.handle_raw(id, &raw).await;
        if let Some(ledger) = ledger
            && let Err(e) = ledger.release_mail(id)
        {
            tracing::warn!(gmail_id = %id, error = %e, "cannot clear the mail's in-hand mark");
        }
        handled
    }

    /// Lifts the mail's in-hand mark while it waits for a server (`waiting`)
    /// and sets it again after: a death while waiting is not the mail's
    /// doing. A failed write only weakens the protection, so it is logged.
    pub(super) fn waiting(&self, id: &str, waiting: bool) {
        let Some(ledger) = self.effects.as_ref().map(|e| &e.ledger) else {
            return;
        };
        let written = if waiting {
            ledger.pause_mail(id)
        } else {
            ledger.resume_mail(id)
        };
        if let Err(e) = written {
            tracing::warn!(gmail_id = %id, error = %e, "cannot update the mail's in-hand mark");
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
        Handled::Done
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
        let Some(ledger) = self.effects.as_ref().map(|e| &e.ledger) else {
            return Handled::Quarantined;
        };
        self.count(names::MAILS_POISONED, &[]);
        let now = ledger::now();
        let seen = json!({ "gmail_id": id, "deaths": deaths, "at": now });
        if let Err(e) = ledger.set_status("gmail-listener", "last_poison_mail", &seen, now) {
            tracing::warn!(error = %e, "cannot record the poison mail on the status page");
        }
        let record = EventRecord {
            at: now,
            source: "gmail".to_string(),
            summary: format!("poison mail {id} quarantined unread after {deaths} deaths"),
            change_number: None,
            patch_set: None,
            decisions: json!([]),
        };
        if let Err(e) = ledger.record_event(&record) {
            tracing::warn!(error = %e, "cannot record the poison mail on the status page");
        }
        let handled = self
            .quarantine(
                id,
                &format!("poison mail: the process died {deaths} times while handling it"),
            )
            .await;
        if let Err(e) = ledger.release_mail(id) {
            tracing::warn!(gmail_id = %id, error = %e, "cannot clear the mail's in-hand mark");
        }
        handled
    }
}
