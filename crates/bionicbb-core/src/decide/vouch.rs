//! `bionicbb:ok-to-test`: a trusted commenter vouches for the patch set
//! the comment is on. Whether a patch set is vouched for is one of
//! Gerrit's facts ([`ChangeFacts::vouch`](crate::event::ChangeFacts)),
//! so a mail, a copy of it, a restart or a reconcile pass decide the
//! same. The vouch lets exactly that patch set through the committer rule
//! (not the file and directory rules); the next patch set needs its own.
//!
//! The `ok-to-test` comment builds the patch set as its automatic build
//! does (the same effect, keyed by the patch set alone), so two
//! `ok-to-test`s, or one and the upload's mail, build it once. On a patch
//! set of a trusted committer there is nothing to vouch for: it is built
//! once like that, and the decision's reason says so.

use super::BuildTarget;
use crate::event::Decision;

impl BuildTarget {
    /// The record of the vouch this target relies on, if it relies on one.
    pub(super) fn vouched(&self, change_number: u64, patch_set: u32) -> Vec<Decision> {
        let Some(vouch) = &self.vouch else {
            return Vec::new();
        };
        vec![Decision::Vouch {
            change_number,
            patch_set,
            by_name: vouch.by_name.clone(),
            by_email: vouch.by_email.clone(),
            message_id: vouch.message_id.clone(),
        }]
    }
}

/// The build an `ok-to-test` comment asks for (`reason`: the command and
/// who gave it): the automatic build of the patch set.
pub(super) fn ok_to_test(target: &BuildTarget, reason: &str) -> Decision {
    let reason = match &target.vouch {
        Some(vouch) => format!("{reason}: vouched for by {}", vouch.who()),
        None => format!("{reason}: the committer is trusted, nothing to vouch for"),
    };
    target.build_once(&reason)
}
