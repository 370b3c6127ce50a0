//! Carrying the bot's verdict over to a patch set that was not built
//! ([`Decision::CarryOver`](bionicbb_core::event::Decision::CarryOver)):
//! one review on that patch set with the vote and the message saying where
//! it came from, the bot's tag and the configured `notify`.
//!
//! Keyed once per patch set ([`EffectKey::carry`]), so a replayed mail, a
//! second mail, or a reconcile pass after the mail never votes twice. A
//! try whose outcome is unknown (a timeout) is in doubt: Gerrit is asked
//! whether the bot's message is on that patch set before posting again. A
//! permanent refusal (the change closed meanwhile, a label the bot may not
//! vote on) is a failure; a passing fault is tried again at the next poll.

use bionicbb_core::error::ErrorKind;
use bionicbb_core::gerrit::{ChangeRef, ReviewInput, Revision};
use bionicbb_core::ledger::{Begin, EffectKey};
use serde_json::json;

use super::{Effects, Outcome, gerrit_permanent, passing_ledger};

/// The verdict a carry-over votes.
pub(super) struct Carried<'a> {
    pub label: &'a str,
    pub value: i32,
    pub from_patch_set: u32,
    pub message: &'a str,
}

impl Effects {
    /// Posts the carried verdict on patch set `ps` of `change`, once.
    pub(super) async fn carry(
        &self,
        key: &EffectKey,
        change: &ChangeRef,
        ps: u32,
        carried: Carried<'_>,
    ) -> Outcome {
        let Carried {
            label,
            value,
            from_patch_set,
            message,
        } = carried;
        let payload = json!({
            "change": change.to_string(),
            "patch_set": ps,
            "from_patch_set": from_patch_set,
            "label": label,
            "value": value,
            "message": message,
        });
        match self.begin(key, "carry", &payload).await {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { .. }) => {
                return Outcome::Done("carry-over: already posted".to_string());
            }
            Ok(Begin::InDoubt { .. }) => match self.bot_said(change, ps, message).await {
                Ok(true) => {
                    return match self.finish(key, json!({"found": true})).await {
                        Ok(()) => Outcome::Done("carry-over: was posted before".to_string()),
                        Err(e) => passing_ledger(e),
                    };
                }
                Ok(false) => {
                    tracing::info!(%change, ps, "an earlier carry-over did not land; posting it");
                }
                Err(e) => return Outcome::Passing(format!("carry-over: checking for it: {e}")),
            },
            Ok(Begin::New) => {}
        }
        let input = ReviewInput {
            message: Some(message.to_string()),
            labels: [(label.to_string(), value)].into(),
            tag: Some(bionicbb_core::review::TAG.to_string()),
            notify: Some(self.notify()),
        };
        match self
            .gerrit
            .post_review(change, Revision::PatchSet(ps), &input)
            .await
        {
            Ok(result) => {
                if result.labels.get(label) != Some(&value) {
                    // Gerrit drops an unknown label silently.
                    tracing::warn!(%change, ps, label, "Gerrit did not apply the carried vote");
                }
                let done = json!({"posted": true, "labels": result.labels});
                match self.finish(key, done).await {
                    Ok(()) => Outcome::Done(format!(
                        "carried {label}{value:+} over from patch set {from_patch_set} \
                         to {change} patch set {ps}"
                    )),
                    Err(e) => passing_ledger(e),
                }
            }
            Err(e) if gerrit_permanent(&e) => {
                tracing::error!(%change, ps, error = %e, "Gerrit refused the carry-over for good");
                self.fail(key, format!("carry-over: {e}")).await
            }
            Err(e) => {
                // An answer (a 5xx, a 429) says it did not happen: the key
                // is freed. No answer (a timeout) leaves it in doubt.
                if e.status.is_some()
                    && e.kind != ErrorKind::Malformed
                    && let Err(le) = self.fail_effect(key, &e.to_string()).await
                {
                    return passing_ledger(le);
                }
                Outcome::Passing(format!("carry-over: {e}"))
            }
        }
    }
}
