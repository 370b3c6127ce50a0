//! The worker's side of `/drop-rejection`: remove the bot's negative vote,
//! only when Gerrit confirms that another account voted positive on the
//! same (current) patch set.
//!
//! Gerrit reports labels for the current patch set only, so a request for
//! an older patch set does nothing: the bot's vote there is no longer the
//! one that counts. Re-running the decision is idempotent (once the vote is
//! 0 there is nothing to drop), so a retried item needs no look-back.

use bionicbb_core::gerrit::{ChangeInfo, QueryOption};
use bionicbb_core::ledger::OutboxItem;
use bionicbb_core::messages;
use bionicbb_core::review::{self, ApprovalLike, DropDecision, FinalReview, TAG};

use crate::outbox::{Outcome, Worker};
use crate::payload::DropPayload;

fn nothing(summary: String) -> Outcome {
    Outcome::Done {
        summary,
        counter: "nothing_done",
    }
}

impl Worker {
    pub(crate) async fn drop_rejection(&self, item: &OutboxItem) -> Outcome {
        let request = match DropPayload::from_value(&item.payload) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let bot = match self.bot_id().await {
            Ok(bot) => bot,
            Err(e) => return Outcome::from_error(e),
        };
        let options = [
            QueryOption::DetailedLabels,
            QueryOption::CurrentRevision,
            QueryOption::DetailedAccounts,
        ];
        let change = match self.gerrit.change(&request.change, &options).await {
            Ok(change) => change,
            Err(e) => return Outcome::from_error(e),
        };
        let Some(current) = change.current_patch_set() else {
            return Outcome::Failed(format!(
                "Gerrit did not say which patch set of {} is current",
                request.change
            ));
        };
        if request.patch_set != current {
            return nothing(format!(
                "nothing done: patch set {} is not current (patch set {current} is)",
                request.patch_set
            ));
        }
        if !change.is_open() {
            return nothing(format!("nothing done: the change is {:?}", change.status));
        }
        let label = &self.config.review.label;
        let votes = label_votes(&change, label);
        match review::drop_rejection_decision(&votes, bot) {
            DropDecision::Nothing { reason } => nothing(format!("nothing done: {reason}")),
            DropDecision::Drop => {
                let review = FinalReview {
                    change: request.change.clone(),
                    patch_set: request.patch_set,
                    message: messages::rejection_dropped(label),
                    label: Some((label.clone(), 0)),
                    tag: TAG.to_string(),
                    notify: self.config.review.notify.clone(),
                    withheld: None,
                };
                match self.post(&review).await {
                    Ok(()) => Outcome::Done {
                        summary: format!("removed the bot's {label} rejection"),
                        counter: "dropped",
                    },
                    Err(e) => Outcome::after_post(e),
                }
            }
        }
    }
}

/// Every account's vote on `label`, as Gerrit reports it with
/// `DETAILED_LABELS` (on the current patch set).
pub(crate) fn label_votes(change: &ChangeInfo, label: &str) -> Vec<ApprovalLike> {
    change
        .labels
        .get(label)
        .map(|l| {
            l.all
                .iter()
                .map(|a| ApprovalLike {
                    account_id: a.account_id,
                    email: a.email.clone(),
                    value: a.value.unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}
