//! One retry policy for every remote call: a timeout on each attempt, capped
//! exponential backoff with full jitter, and retries only for passing faults.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::{ApiError, ErrorKind, Service};

/// How a call is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Limit on each attempt; an attempt that takes longer is a passing fault.
    pub attempt_timeout: Duration,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Cap on one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            attempt_timeout: Duration::from_secs(30),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A single attempt with a timeout: for callers that keep their own
    /// schedule (an outbox, the next poll).
    pub fn once(attempt_timeout: Duration) -> Self {
        RetryPolicy {
            attempts: 1,
            attempt_timeout,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0-based): a random duration in
    /// `[0, min(max_delay, base_delay * 2^retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = backoff_cap(self.base_delay, self.max_delay, retry);
        let millis = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// `min(max, base * 2^n)` without overflow.
pub fn backoff_cap(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// Runs `call` until it succeeds, fails permanently, or the attempts run out.
/// `what` names the call in log lines. A server's `Retry-After` is honoured
/// (up to `max_delay`).
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    service: Service,
    what: &str,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match tokio::time::timeout(policy.attempt_timeout, call()).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::new(
                service,
                ErrorKind::Transient,
                format!("{what}: no answer within {:?}", policy.attempt_timeout),
            )),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() && attempt < attempts => {
                let delay = match err.retry_after {
                    Some(after) => after.min(policy.max_delay),
                    None => policy.backoff(attempt - 1),
                };
                tracing::warn!(
                    %service, call = what, attempt, of = attempts, ?delay, error = %err,
                    "passing fault, retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            attempt_timeout: Duration::from_millis(200),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    #[test]
    fn backoff_is_capped_and_does_not_overflow() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        assert_eq!(backoff_cap(base, max, 0), base);
        assert_eq!(backoff_cap(base, max, 3), Duration::from_secs(4));
        assert_eq!(backoff_cap(base, max, 10), max);
        assert_eq!(backoff_cap(base, max, 200), max);
        let policy = RetryPolicy::default();
        for n in 0..100 {
            assert!(policy.backoff(n) <= max);
        }
    }

    #[tokio::test]
    async fn retries_passing_faults_until_success() {
        let calls = AtomicU32::new(0);
        let out = retry(&fast(4), Service::Gerrit, "t", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(ApiError::new(Service::Gerrit, ErrorKind::Transient, "503"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_faults() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry(&fast(4), Service::Gerrit, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::new(Service::Gerrit, ErrorKind::NotFound, "404"))
        })
        .await;
        assert_eq!(out.unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt_and_times_out_slow_calls() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry(&fast(3), Service::Jenkins, "slow", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        let err = out.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.message.contains("no answer"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
