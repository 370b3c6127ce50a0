//! Why a patch set may not be built ([`Refusal`]), and the rule of
//! explained skips: when the automatic build of a new patch set is skipped
//! for a reason its uploader can act on (its committer is not in a trusted
//! domain; it touches a skipped file or directory), one message on that
//! patch set names the rule and the e-mail or file, and how to proceed
//! ([`Decision::ExplainSkip`], keyed once per patch set by the effects).
//!
//! Silent: with `review.explain_skips` off; on a closed change or a
//! superseded patch set (refused before the rules that explain); for any
//! other reason (no committer e-mail, no job: the operator's business);
//! and on a work-in-progress or private change the policy would not build
//! anyway.

use std::fmt;

use crate::config::{Config, SkipRule};
use crate::event::{ChangeFacts, ChangeStatus, Decision, GerritEvent};
use crate::messages;

/// Why the event's patch set may not be built, in the order `buildable`
/// checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal<'c> {
    Closed {
        number: u64,
        status: ChangeStatus,
    },
    Superseded {
        number: u64,
        patch_set: u32,
        current: u32,
    },
    /// `file` is kept off the build machines by `rule`; no vouch lifts it.
    SkippedPath {
        file: String,
        rule: SkipRule<'c>,
    },
    /// The committer's e-mail is not in a trusted domain, and no trusted
    /// commenter vouched for the patch set.
    UntrustedCommitter(String),
    NoCommitter,
    /// No job is configured for this project.
    NoJob(String),
    /// The project has a single component: no `PROJECT` parameter.
    NoProjectParameter(String),
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Closed { number, status } => {
                let state = match status {
                    ChangeStatus::Merged => "merged",
                    ChangeStatus::Abandoned => "abandoned",
                    ChangeStatus::New => "open",
                };
                write!(f, "change {number} is {state}")
            }
            Refusal::Superseded {
                number,
                patch_set,
                current,
            } => write!(
                f,
                "patch set {patch_set} of change {number} is superseded by patch set {current}"
            ),
            Refusal::SkippedPath { file, rule } => {
                let (SkipRule::FileName(why) | SkipRule::Directory(why)) = rule;
                write!(f, "the change touches {file} ({why})")
            }
            Refusal::UntrustedCommitter(email) => {
                write!(f, "committer {email} is not in a trusted domain")
            }
            Refusal::NoCommitter => {
                f.write_str("Gerrit shows no committer e-mail for this patch set")
            }
            Refusal::NoJob(project) => write!(f, "no job is configured for project {project}"),
            Refusal::NoProjectParameter(project) => write!(
                f,
                "project {project} has a single component: no PROJECT parameter"
            ),
        }
    }
}

impl Refusal<'_> {
    /// The message telling the uploader of patch set `patch_set` which
    /// rule applied and how to proceed, for the reasons they can act on.
    fn explanation(&self, patch_set: u32) -> Option<String> {
        match self {
            Refusal::UntrustedCommitter(email) => {
                Some(messages::untrusted_committer_skipped(patch_set, email))
            }
            Refusal::SkippedPath { file, rule } => {
                Some(messages::skipped_path(patch_set, file, *rule))
            }
            _ => None,
        }
    }
}

/// The decisions about an automatic build refused for `refusal`: the
/// skip, and the explanation when the module's rule calls for one.
pub(super) fn skipped(
    refusal: Refusal<'_>,
    event: &GerritEvent,
    facts: &ChangeFacts,
    config: &Config,
) -> Vec<Decision> {
    let mut decisions = vec![Decision::Skip {
        reason: refusal.to_string(),
    }];
    let (policy, upload) = (&config.policy, &facts.upload);
    let left_alone = (upload.work_in_progress && !policy.build_wip)
        || (upload.is_private && !policy.build_private);
    if !config.review.explain_skips || left_alone {
        return decisions;
    }
    if let Some(message) = refusal.explanation(event.patch_set) {
        decisions.push(Decision::ExplainSkip {
            change_number: facts.number,
            patch_set: event.patch_set,
            message,
        });
    }
    decisions
}
