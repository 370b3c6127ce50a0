//! Acknowledging a command: once Jenkins accepted the trigger of the build
//! (or clean job) a command asked for, one short reply names the command,
//! its author, the job and the queue item. Keyed by the build's own key
//! ([`EffectKey::ack`]), so it is posted once per command: a copy of the
//! mail, a reconcile pass or a restart finds the build done
//! (`AlreadyDone`, with its queue item) and the acknowledgement either
//! posted (nothing to do) or not yet (posted now). When the build did not
//! reach Jenkins this time (a passing fault) the mail stays, and the next
//! try acknowledges it once the build is queued.

use bionicbb_core::event::Decision;
use bionicbb_core::gerrit::ChangeRef;
use bionicbb_core::ledger::EffectKey;
use bionicbb_core::messages;

use super::{Effects, Origin, Outcome};

/// What a build or clean decision came to, for the acknowledgement that
/// follows it.
#[derive(Debug, Clone)]
pub(super) struct Started {
    /// The build effect's key.
    key: EffectKey,
    job: String,
    /// The queue item Jenkins answered with, when the trigger was
    /// accepted (now or before).
    queue_url: Option<String>,
}

impl Started {
    /// The build `decision` (whose effect key is `key`) with `outcome`.
    pub(super) fn of(decision: &Decision, key: EffectKey, outcome: &Outcome) -> Started {
        let job = match decision {
            Decision::Build { job, .. } | Decision::Clean { job, .. } => job.clone(),
            _ => String::new(),
        };
        let queue_url = match outcome {
            Outcome::Triggered { queue_url, .. } => Some(queue_url.clone()),
            _ => None,
        };
        Started {
            key,
            job,
            queue_url,
        }
    }
}

impl Effects {
    /// Posts the acknowledgement `decision` (a [`Decision::Acknowledge`])
    /// asks for, of the build `started` (the decision before it). Nothing
    /// when that build was not queued: refused for good, or a passing fault
    /// (then the mail is tried again, and so is this).
    pub(super) async fn acknowledge(
        &self,
        decision: &Decision,
        started: Option<&Started>,
        origin: &Origin,
    ) -> Outcome {
        let Decision::Acknowledge {
            change_number,
            patch_set,
            command,
            by,
        } = decision
        else {
            return Outcome::Done(String::new());
        };
        let Some(Started {
            key,
            job,
            queue_url: Some(queue_url),
        }) = started
        else {
            return Outcome::Done(format!(
                "bionicbb:{command} not acknowledged: nothing was queued"
            ));
        };
        let target = match ChangeRef::project_number(&origin.project, *change_number) {
            Ok(target) => target,
            Err(e) => return Outcome::Failed(format!("ack: invalid change: {e}")),
        };
        let message = messages::acknowledged(command, by, job, queue_url);
        let ack = EffectKey::ack(key);
        self.reply(&ack, "ack", &target, *patch_set, &message).await
    }
}
