//! The ledger's record of a vouch ([`Decision::Vouch`]: who gave the
//! `bionicbb:ok-to-test` a build was decided on, kept for the status page),
//! and the one message explaining a skipped patch set
//! ([`Decision::ExplainSkip`]). Each once per patch set
//! ([`EffectKey::vouch`], [`EffectKey::explain`]), whichever path decided
//! it: the first vouch is the one kept.

use bionicbb_core::event::Decision;
use bionicbb_core::gerrit::ChangeRef;
use bionicbb_core::ledger::{Begin, EffectKey};
use serde_json::json;

use super::{Effects, Outcome, passing_ledger};

impl Effects {
    /// Records the vouch `decision` names, unless one was recorded for
    /// its patch set before. Nothing leaves the ledger, so a record begun
    /// and never marked is simply marked.
    pub(super) async fn record_vouch(&self, key: &EffectKey, decision: &Decision) -> Outcome {
        let Decision::Vouch {
            change_number,
            patch_set,
            by_name,
            by_email,
            message_id,
        } = decision
        else {
            return Outcome::Failed("not a vouch".to_string());
        };
        let payload = json!({
            "change_number": change_number,
            "patch_set": patch_set,
            "by_name": by_name,
            "by_email": by_email,
            "message_id": message_id,
        });
        let who = by_name.as_deref().unwrap_or(by_email);
        match self.begin(key, "vouch", &payload).await {
            Err(e) => passing_ledger(e),
            Ok(Begin::AlreadyDone { .. }) => {
                Outcome::Done(format!("vouch: patch set {patch_set} already vouched for"))
            }
            Ok(Begin::New | Begin::InDoubt { .. }) => match self.finish(key, payload).await {
                Ok(()) => Outcome::Done(format!(
                    "vouch: {who} vouched for change {change_number} patch set {patch_set}"
                )),
                Err(e) => passing_ledger(e),
            },
        }
    }

    /// Posts the explanation of a skipped patch set once.
    pub(super) async fn explain(
        &self,
        key: &EffectKey,
        change: &ChangeRef,
        ps: u32,
        message: &str,
    ) -> Outcome {
        self.reply(key, "explain", change, ps, message).await
    }
}
