//! Taking handled mails out of the label, in batches.
//!
//! Only a mail marked done in the ledger joins a batch ("removed only after
//! done"); a mail found done at a later poll (the process died before its
//! batch went out) joins that poll's batch. A batch goes out when it holds
//! 1,000 mails (the most `messages.batchModify` takes) and at the end of
//! each poll.
//!
//! How the mails leave: one `messages.batchModify` that adds `TRASH` and
//! removes the label, 50 quota units for up to 1,000 mails where
//! `messages.trash` costs 5 per mail and a round trip each. Adding `TRASH`
//! moves a message to the trash as `messages.trash` does (and works with
//! the `gmail.modify` scope the daemon holds); removing the label as well
//! takes the mails out of the listing even if Gmail ever kept a trashed
//! message's label visible. Trashing rather than only removing the label
//! keeps what the bot always did: handled mail is out of the way and Gmail
//! deletes it after 30 days. Should Gmail refuse the batch (400, or 403/404
//! for the request as a whole), the mails are trashed one by one with
//! `messages.trash`, as before. On a passing fault the mails stay in the
//! label, done in the ledger, and the next poll takes them out without
//! handling them again.

use bionicbb_core::error::ErrorKind;
use futures_util::stream::{self, StreamExt};

use super::Listener;
use crate::gmail::BATCH_MODIFY_MAX;

/// Gmail's system label of trashed messages.
const TRASH: &str = "TRASH";

/// Handled mails waiting to be taken out of the label.
#[derive(Debug, Default)]
pub(super) struct TakeOut {
    ids: Vec<String>,
}

impl TakeOut {
    /// Adds a mail done in the ledger; true when the batch is full.
    pub(super) fn push(&mut self, id: String) -> bool {
        self.ids.push(id);
        self.ids.len() >= BATCH_MODIFY_MAX
    }

    pub(super) fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.ids)
    }
}

impl Listener {
    /// Moves `ids` (done in the ledger) out of the label and into the
    /// trash (see the module docs); returns how many are still in the label.
    pub(super) async fn take_out(&self, ids: Vec<String>) -> usize {
        if self.dry_run || ids.is_empty() {
            return 0;
        }
        let mut left = 0;
        for batch in ids.chunks(BATCH_MODIFY_MAX) {
            left += self.take_out_batch(batch).await;
        }
        left
    }

    async fn take_out_batch(&self, ids: &[String]) -> usize {
        let add = [TRASH.to_string()];
        let remove = std::slice::from_ref(&self.label_id);
        match self.mailbox.batch_modify(ids, &add, remove).await {
            Ok(()) => {
                tracing::info!(mails = ids.len(), "handled mails moved to the trash");
                0
            }
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Rejected | ErrorKind::Forbidden | ErrorKind::NotFound
                ) =>
            {
                tracing::warn!(
                    error = %e,
                    mails = ids.len(),
                    "Gmail refused to trash the handled mails in one batch; trashing them one by one"
                );
                self.trash_each(ids).await
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    mails = ids.len(),
                    "cannot take the handled mails out of the label; the next poll does"
                );
                ids.len()
            }
        }
    }

    /// Trashes each mail with `messages.trash`, `concurrency` at a time;
    /// returns how many are still in the label.
    async fn trash_each(&self, ids: &[String]) -> usize {
        let concurrency = self.config.gmail_listener.concurrency.max(1);
        stream::iter(ids)
            .map(|id| async move {
                match self.mailbox.trash(id).await {
                    Ok(()) => 0,
                    Err(e) if e.kind == ErrorKind::NotFound => 0,
                    Err(e) => {
                        tracing::warn!(gmail_id = %id, error = %e, "handled, but trashing it failed");
                        1
                    }
                }
            })
            .buffer_unordered(concurrency)
            .fold(0, |left, one| async move { left + one })
            .await
    }
}
