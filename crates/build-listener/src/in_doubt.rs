//! Requests in doubt: a post to Gerrit that was sent and never answered.
//!
//! Gerrit finishes a request whatever became of the client's connection, so
//! a post whose answer never came (a timeout, a dropped connection, the
//! listener killed) may be applied after the client gave up: its bytes may
//! still be on the wire, it may wait in Gerrit's queue, and Gerrit retries a
//! write that lost the race for the change's lock for up to `retry.timeout`
//! (20 s by default) before it answers. Looking for the review before then
//! proves nothing: the look-back finds nothing, the review is posted again,
//! and the first post lands too.
//!
//! So an attempt in doubt is waited out: the item is not tried again (and
//! nothing else of its change is done) until [`Settings::settle`] after the
//! client gave up on the request, or, when the process stopped during the
//! attempt, after the restarted worker found it. Then the look-back sees
//! whatever the request did. The state is in the ledger (the item's
//! `in_flight_since` stays set, see `Ledger::mark_in_doubt` and
//! `Ledger::defer`), so a restart keeps waiting.
//!
//! [`Settings::settle`]: crate::outbox::Settings::settle

use std::time::Duration;

use bionicbb_core::error::ApiError;

/// How long after the client gave up Gerrit may still apply a request, by
/// default: the 20 s of Gerrit's default `retry.timeout`, plus time on the
/// wire and in Gerrit's request queue.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(30);

/// Whether a failed request may still be applied: nobody answered (a
/// timeout, a dropped connection), or a gateway answered for Gerrit (502,
/// 504) while Gerrit behind it may still be working on it. Any other answer
/// comes from a Gerrit done with the request: a refusal (429, 503) changed
/// nothing, and a 500 after a partial write is already visible.
pub fn unanswered(error: &ApiError) -> bool {
    error.is_transient() && matches!(error.status, None | Some(502) | Some(504))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bionicbb_core::{ErrorKind, Service};

    fn error(kind: ErrorKind, status: Option<u16>) -> ApiError {
        let e = ApiError::new(Service::Gerrit, kind, "x");
        match status {
            Some(s) => e.with_status(s),
            None => e,
        }
    }

    #[test]
    fn only_requests_nobody_answered_are_in_doubt() {
        assert!(unanswered(&error(ErrorKind::Transient, None)));
        assert!(unanswered(&error(ErrorKind::Transient, Some(502))));
        assert!(unanswered(&error(ErrorKind::Transient, Some(504))));
        assert!(!unanswered(&error(ErrorKind::Transient, Some(503))));
        assert!(!unanswered(&error(ErrorKind::Transient, Some(500))));
        assert!(!unanswered(&error(ErrorKind::RateLimited, Some(429))));
        assert!(!unanswered(&error(ErrorKind::Conflict, Some(409))));
        assert!(!unanswered(&error(ErrorKind::Malformed, None)));
    }
}
