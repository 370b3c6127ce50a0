//! Deciding what a failed or unanswered Jenkins trigger means, without
//! building twice.
//!
//! A trigger is sent once. When its answer is lost (a timeout, a dropped
//! connection, a proxy's 502 or 504) the build may be queued or not; the
//! effect stays `started` in the ledger and comes back in doubt on the next
//! poll. There, instead of triggering again (Jenkins merges identical
//! parameters only into an item still waiting, so a build that already left
//! the queue would run twice), the listener asks Jenkins for an item in the
//! queue, then for a build started since the first attempt, with the same
//! parameters; only when neither exists does it trigger again.

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::jenkins::QueueItemId;
use serde_json::{Value, json};

/// What a failed trigger says about the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerFailure {
    /// Refused for good (an unknown job, a disabled or unparameterized one):
    /// nothing was queued and trying again cannot help.
    Permanent,
    /// Jenkins itself answered with an error (a 503 while it restarts, a
    /// 500, a 401): nothing was queued, trying again later is safe.
    NotQueued,
    /// The answer was lost or cannot be trusted: maybe queued.
    Unknown,
}

/// Classifies a trigger's error.
///
/// - no status: a timeout or a dropped connection after the request was
///   (maybe) delivered → [`TriggerFailure::Unknown`];
/// - 502 and 504: a gateway's answer that Jenkins did not answer in time;
///   Jenkins may have queued the build all the same → `Unknown`;
/// - a 2xx without a queue item in `Location`: Jenkins accepted the build
///   but did not say which item it is → `Unknown`;
/// - otherwise a refusal for good or a passing error answered by Jenkins.
pub fn classify(error: &ApiError) -> TriggerFailure {
    match error.status {
        None | Some(502) | Some(504) => return TriggerFailure::Unknown,
        Some(s) if (200..300).contains(&s) => return TriggerFailure::Unknown,
        Some(_) => {}
    }
    match error.kind {
        ErrorKind::NotFound
        | ErrorKind::Rejected
        | ErrorKind::InvalidInput
        | ErrorKind::Conflict => TriggerFailure::Permanent,
        _ => TriggerFailure::NotQueued,
    }
}

/// What Jenkins shows of an earlier trigger whose outcome was unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An item with our parameters is still waiting in the queue.
    Queued(QueueItemId),
    /// A build with our parameters started after the first attempt.
    Built { number: u64, url: String },
    /// Neither: the earlier trigger never reached Jenkins (or its item was
    /// cancelled); triggering again builds once.
    Nothing,
}

impl Found {
    /// Combines the two lookups, asked in this order: the queue first, then
    /// the builds (an item that leaves the queue between the two questions
    /// is found as a build).
    pub fn from_lookups(queued: Option<QueueItemId>, built: Option<(u64, String)>) -> Found {
        match (queued, built) {
            (Some(id), _) => Found::Queued(id),
            (None, Some((number, url))) => Found::Built { number, url },
            (None, None) => Found::Nothing,
        }
    }

    /// The effect's result in the ledger, or `None` for [`Found::Nothing`].
    /// A queue item is recorded as `queue_id`, like a trigger that answered.
    pub fn result(&self) -> Option<Value> {
        match self {
            Found::Queued(id) => Some(json!({ "queue_id": id.0, "found": true })),
            Found::Built { number, url } => Some(json!({
                "build": number,
                "build_url": url,
                "found": true,
            })),
            Found::Nothing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bionicbb_core::error::Service;

    fn error(kind: ErrorKind, status: Option<u16>) -> ApiError {
        let e = ApiError::new(Service::Jenkins, kind, "trigger bionic-presubmit");
        match status {
            Some(s) => e.with_status(s),
            None => e,
        }
    }

    #[test]
    fn lost_answers_are_unknown() {
        assert_eq!(
            classify(&error(ErrorKind::Transient, None)),
            TriggerFailure::Unknown,
            "a timeout or a dropped connection"
        );
        assert_eq!(
            classify(&error(ErrorKind::Transient, Some(502))),
            TriggerFailure::Unknown
        );
        assert_eq!(
            classify(&error(ErrorKind::Transient, Some(504))),
            TriggerFailure::Unknown
        );
        assert_eq!(
            classify(&error(ErrorKind::Malformed, Some(201))),
            TriggerFailure::Unknown,
            "queued, but which item is unknown"
        );
    }

    #[test]
    fn answers_from_jenkins_mean_nothing_was_queued() {
        assert_eq!(
            classify(&error(ErrorKind::Transient, Some(503))),
            TriggerFailure::NotQueued
        );
        assert_eq!(
            classify(&error(ErrorKind::Transient, Some(500))),
            TriggerFailure::NotQueued
        );
        assert_eq!(
            classify(&error(ErrorKind::Unauthorized, Some(401))),
            TriggerFailure::NotQueued
        );
        assert_eq!(
            classify(&error(ErrorKind::NotFound, Some(404))),
            TriggerFailure::Permanent
        );
        assert_eq!(
            classify(&error(ErrorKind::Rejected, Some(302))),
            TriggerFailure::Permanent,
            "a disabled job"
        );
    }

    #[test]
    fn the_queue_wins_then_the_build_then_nothing() {
        let build = Some((1842, "https://ci/job/j/1842/".to_string()));
        assert_eq!(
            Found::from_lookups(Some(QueueItemId(7)), build.clone()),
            Found::Queued(QueueItemId(7))
        );
        assert_eq!(
            Found::from_lookups(None, build),
            Found::Built {
                number: 1842,
                url: "https://ci/job/j/1842/".to_string()
            }
        );
        assert_eq!(Found::from_lookups(None, None), Found::Nothing);
    }

    #[test]
    fn found_items_are_recorded_like_answered_triggers() {
        let queued = Found::Queued(QueueItemId(90211)).result().unwrap();
        assert_eq!(queued["queue_id"], 90211);
        let built = Found::Built {
            number: 1842,
            url: "u".into(),
        }
        .result()
        .unwrap();
        assert_eq!(built["build"], 1842);
        assert!(built.get("queue_id").is_none());
        assert_eq!(Found::Nothing.result(), None);
    }
}
