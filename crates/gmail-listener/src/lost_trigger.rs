//! Deciding what a failed or unanswered Jenkins trigger means, without
//! building twice.
//!
//! A trigger is sent once. When its answer is lost (a timeout, a dropped
//! connection, a proxy's 502 or 504) the build may be queued or not; the
//! effect stays `started` in the ledger and comes back in doubt on the next
//! poll. There, instead of triggering again (Jenkins merges identical
//! parameters only into an item still waiting, so a build that already left
//! the queue would run twice), the listener asks Jenkins for the items in
//! the queue and the builds started since the first attempt with the same
//! parameters, sets aside those another effect owns in the ledger (the same
//! parameters legitimately build twice: an upload and a `retry`), and
//! [`choose`]s among the rest. When the evidence is ambiguous it builds
//! again: a change without a vote is worse than a second build.
//!
//! Absence is concluded only once the first attempt can no longer land
//! ([`may_still_land`]): a trigger the client gave up on may still be on
//! its way (a slow network, a busy Jenkins), and sending it again before it
//! arrives builds twice.

use std::time::Duration;

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::jenkins::lookup::Candidate;
use bionicbb_core::ledger::JenkinsItem;
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

/// Jenkins' default quiet period: how long a new item waits in the queue
/// before it can start.
pub const QUIET_PERIOD: Duration = Duration::from_secs(5);

/// True while a trigger sent at `started_at` (unix seconds, as the ledger
/// records it: rounded down, hence one more second) may still reach Jenkins
/// or not be visible there yet, at `now`: the client's request `timeout`
/// plus Jenkins' quiet period.
pub fn may_still_land(started_at: i64, now: i64, timeout: Duration) -> bool {
    let window = (timeout + QUIET_PERIOD).as_secs_f64().ceil() as i64 + 1;
    now < started_at.saturating_add(window)
}

/// What Jenkins shows of an earlier trigger whose outcome was unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A queue item or build no other effect owns: ours.
    Adopt(Candidate),
    /// Nothing that could be ours: the earlier trigger never reached Jenkins
    /// (or its item was cancelled); triggering again builds once.
    Nothing,
    /// More unowned candidates than unresolved triggers with these
    /// parameters could have left: which one is ours cannot be told, and
    /// adopting the wrong one could leave a change without its build.
    Ambiguous { free: usize, unresolved: u64 },
}

/// Chooses among the `free` candidates (those no other effect owns, oldest
/// first), knowing that `unresolved` triggers with the same job and
/// parameters (this one included) have an unknown outcome. Each of those
/// left at most one item or build, and any of them may adopt any of these
/// (they are the same build), so with no more candidates than triggers the
/// oldest is taken; with more, some were not left by a lost trigger and
/// which is ours is unknown.
pub fn choose(mut free: Vec<Candidate>, unresolved: u64) -> Found {
    if free.is_empty() {
        return Found::Nothing;
    }
    if free.len() as u64 > unresolved.max(1) {
        return Found::Ambiguous {
            free: free.len(),
            unresolved,
        };
    }
    Found::Adopt(free.remove(0))
}

/// What owning `candidate` of `job` means in the ledger: its queue item
/// and its build, as far as they are known.
pub fn items(job: &str, candidate: &Candidate) -> Vec<JenkinsItem> {
    let mut items = Vec::new();
    if let Some(id) = candidate.queue_id {
        items.push(JenkinsItem::Queue(id.0));
    }
    if let Some(build) = &candidate.build {
        items.push(JenkinsItem::Build {
            job: job.to_string(),
            number: build.number,
        });
    }
    items
}

/// The effect's result once `candidate` is adopted. A queue item is
/// recorded as `queue_id`, like a trigger that answered.
pub fn result(candidate: &Candidate) -> Value {
    let mut result = json!({ "found": true });
    if let Some(id) = candidate.queue_id {
        result["queue_id"] = json!(id.0);
    }
    if let Some(build) = &candidate.build {
        result["build"] = json!(build.number);
        result["build_url"] = json!(build.url);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bionicbb_core::error::Service;
    use bionicbb_core::jenkins::QueueItemId;
    use bionicbb_core::jenkins::lookup::FoundBuild;

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

    fn queued(id: u64) -> Candidate {
        Candidate {
            queue_id: Some(QueueItemId(id)),
            build: None,
        }
    }

    fn built(number: u64, queue_id: Option<u64>) -> Candidate {
        Candidate {
            queue_id: queue_id.map(QueueItemId),
            build: Some(FoundBuild {
                number,
                url: format!("https://ci/job/j/{number}/"),
                queue_id,
            }),
        }
    }

    #[test]
    fn a_trigger_may_land_until_its_timeout_and_the_quiet_period_have_passed() {
        let timeout = Duration::from_secs(30);
        let sent = 1_700_000_000;
        assert!(may_still_land(sent, sent, timeout));
        assert!(may_still_land(sent, sent + 30, timeout));
        assert!(may_still_land(sent, sent + 35, timeout));
        assert!(!may_still_land(sent, sent + 36, timeout));
        assert!(!may_still_land(sent, sent + 3600, timeout));
        // A fraction of a second counts as a whole one.
        assert!(may_still_land(
            sent,
            sent + 36,
            Duration::from_millis(30_500)
        ));
        // A clock that went back: still in the window.
        assert!(may_still_land(sent, sent - 10, timeout));
    }

    #[test]
    fn one_free_candidate_is_adopted_none_means_nothing() {
        assert_eq!(choose(vec![], 1), Found::Nothing);
        assert_eq!(choose(vec![queued(7)], 1), Found::Adopt(queued(7)));
        assert_eq!(
            choose(vec![built(1842, Some(7))], 1),
            Found::Adopt(built(1842, Some(7)))
        );
        // Counted before this trigger's own row: still one may be adopted.
        assert_eq!(choose(vec![queued(7)], 0), Found::Adopt(queued(7)));
    }

    #[test]
    fn more_free_candidates_than_lost_triggers_is_ambiguous() {
        assert_eq!(
            choose(vec![built(1, Some(3)), queued(7)], 1),
            Found::Ambiguous {
                free: 2,
                unresolved: 1
            }
        );
        // Two lost triggers with the same parameters: each takes one, the
        // oldest first.
        assert_eq!(
            choose(vec![built(1, Some(3)), queued(7)], 2),
            Found::Adopt(built(1, Some(3)))
        );
    }

    #[test]
    fn adopted_candidates_are_recorded_like_answered_triggers() {
        let queued = result(&queued(90211));
        assert_eq!(queued["queue_id"], 90211);
        assert!(queued.get("build").is_none());
        let built = result(&built(1842, Some(90211)));
        assert_eq!(built["build"], 1842);
        assert_eq!(built["queue_id"], 90211);
        assert!(result(&built_without_queue()).get("queue_id").is_none());
        assert_eq!(
            items("a/b", &built_without_queue()),
            vec![JenkinsItem::Build {
                job: "a/b".into(),
                number: 5
            }]
        );
        assert_eq!(
            items("j", &self::built(6, Some(9))),
            vec![
                JenkinsItem::Queue(9),
                JenkinsItem::Build {
                    job: "j".into(),
                    number: 6
                }
            ]
        );
    }

    fn built_without_queue() -> Candidate {
        built(5, None)
    }
}
