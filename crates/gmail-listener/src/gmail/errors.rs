//! Classification of `google_gmail1` errors into [`ApiError`] kinds.
//!
//! The hub reports every non-2xx answer with a JSON body as
//! `Error::BadRequest(value)` (404 and 429 included), and only non-JSON
//! error bodies as `Error::Failure(response)`; so the status has to be read
//! from Google's error object (`error.code`), and the reason list
//! (`error.errors[].reason`) decides between "slow down" and "forbidden".
//! Answers read without the hub ([`classify_answer`]) go the same way.

use std::time::Duration;

use bionicbb_core::error::{ApiError, ErrorKind, Service};
use google_gmail1::common;
use google_gmail1::yup_oauth2;

/// What a daily-quota 403 asks callers to wait. Gmail resets that quota once
/// a day (midnight Pacific time) and does not say when; an hour is a polite
/// step that keeps the daemon alive and polling without hammering the API.
pub const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// Hint appended to every authentication failure.
pub const AUTH_HINT: &str = "run `gmail-listener auth` to (re)authorize the Gmail account";

/// Reasons Google gives for "too many requests right now" on a 403 or 429.
const RATE_REASONS: &[&str] = &[
    "userRateLimitExceeded",
    "rateLimitExceeded",
    "quotaExceeded",
];

/// Errors building a [`super::Mailbox`] or authorizing the account: bad
/// configuration, missing credentials, or an API failure while checking.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// The `[gmail]` configuration cannot be used as it is.
    #[error("gmail configuration: {0}")]
    Config(String),
    /// No usable credentials; the message says what the operator should do.
    #[error("Gmail authorization: {0}")]
    Auth(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Turns a hub error into an [`ApiError`]. `what` names the call (for the
/// message); `retry_after` is the server's `Retry-After`, when the call's
/// delegate saw one.
pub fn classify(what: &str, err: google_gmail1::Error, retry_after: Option<Duration>) -> ApiError {
    use google_gmail1::Error as E;
    let api = |kind: ErrorKind, message: String| ApiError::new(Service::Gmail, kind, message);
    match err {
        E::BadRequest(value) => from_json(what, &value, retry_after),
        E::Failure(response) => {
            let status = response.status().as_u16();
            let header_wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            from_status(
                status,
                &[],
                format!("{what}: HTTP {status} without a JSON error body"),
                retry_after.or(header_wait),
            )
        }
        E::HttpError(e) => api(
            ErrorKind::Transient,
            format!("{what}: {}", bionicbb_core::http::error_chain(&e)),
        ),
        E::Io(e) => api(ErrorKind::Transient, format!("{what}: {e}")),
        // The body may be a whole mail: report only where decoding failed.
        E::JsonDecodeError(_, e) => api(
            ErrorKind::Malformed,
            format!("{what}: cannot decode Gmail's answer: {e}"),
        ),
        E::MissingToken(e) => token_error(what, e.as_ref()),
        // Never produced by the calls this crate makes (no API key, no
        // uploads, no extra parameters, a delegate that does not cancel).
        other @ (E::Cancelled
        | E::FieldClash(_)
        | E::MissingAPIKey
        | E::UploadSizeLimitExceeded(..)) => api(
            ErrorKind::InvalidInput,
            format!("{what}: {}", other.to_string().trim_end()),
        ),
    }
}

/// Classifies a non-2xx answer read outside the hub: Google's JSON error
/// object when the body holds one, else the status alone. `retry_after` is
/// the answer's `Retry-After`.
pub fn classify_answer(
    what: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> ApiError {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if value.get("error").is_some() => from_json(what, &value, retry_after),
        _ => from_status(
            status,
            &[],
            format!("{what}: HTTP {status} without a JSON error body"),
            retry_after,
        ),
    }
}

/// A failed token lookup: a broken network on the way to the token endpoint
/// is passing; anything else (no cached token, refresh token revoked,
/// unreadable token file) needs the operator.
pub(super) fn token_error(
    what: &str,
    err: &(dyn std::error::Error + Send + Sync + 'static),
) -> ApiError {
    let transient = matches!(
        err.downcast_ref::<yup_oauth2::Error>(),
        Some(
            yup_oauth2::Error::HttpError(_)
                | yup_oauth2::Error::HttpClientError(_)
                | yup_oauth2::Error::LowLevelError(_)
        )
    );
    if transient {
        ApiError::new(
            Service::Gmail,
            ErrorKind::Transient,
            format!("{what}: cannot reach the OAuth token endpoint: {err}"),
        )
    } else {
        ApiError::new(
            Service::Gmail,
            ErrorKind::Unauthorized,
            format!("{what}: no access token ({err}); {AUTH_HINT}"),
        )
    }
}

/// Google's JSON error object: `{"error":{"code":403,"message":"..",
/// "errors":[{"reason":".."}],"status":".."}}`.
fn from_json(what: &str, value: &serde_json::Value, retry_after: Option<Duration>) -> ApiError {
    let error = &value["error"];
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("no message");
    let reasons: Vec<&str> = error["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["reason"].as_str()).collect())
        .unwrap_or_default();
    let text = if reasons.is_empty() {
        format!("{what}: {message}")
    } else {
        format!("{what}: {message} ({})", reasons.join(", "))
    };
    match error["code"].as_u64().and_then(|c| u16::try_from(c).ok()) {
        Some(status) => from_status(status, &reasons, text, retry_after),
        None => ApiError::new(
            Service::Gmail,
            ErrorKind::Malformed,
            format!("{text}; error answer without a status code"),
        ),
    }
}

fn from_status(
    status: u16,
    reasons: &[&str],
    message: String,
    retry_after: Option<Duration>,
) -> ApiError {
    let has = |r: &str| reasons.contains(&r);
    let (kind, wait, message) = match status {
        429 => (ErrorKind::RateLimited, retry_after, message),
        403 if has("dailyLimitExceeded") => (
            ErrorKind::RateLimited,
            Some(
                retry_after
                    .unwrap_or(DAILY_LIMIT_WAIT)
                    .max(DAILY_LIMIT_WAIT),
            ),
            format!("{message}; the daily quota resets once a day"),
        ),
        403 if RATE_REASONS.iter().any(|r| has(r)) => {
            (ErrorKind::RateLimited, retry_after, message)
        }
        403 => (ErrorKind::Forbidden, None, message),
        401 => (
            ErrorKind::Unauthorized,
            None,
            format!("{message}; {AUTH_HINT}"),
        ),
        404 | 410 => (ErrorKind::NotFound, None, message),
        409 | 412 => (ErrorKind::Conflict, None, message),
        408 | 500..=599 => (ErrorKind::Transient, retry_after, message),
        _ => (ErrorKind::Rejected, None, message),
    };
    let mut err = ApiError::new(Service::Gmail, kind, message).with_status(status);
    err.retry_after = wait;
    err
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Google APIs).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A hub delegate that records the `Retry-After` of a failed answer and
/// never retries by itself (our own [`bionicbb_core::retry::retry`] does).
#[derive(Debug, Default)]
pub struct RetryAfterProbe {
    pub retry_after: Option<Duration>,
}

impl common::Delegate for RetryAfterProbe {
    fn http_failure(
        &mut self,
        response: &common::Response,
        _err: Option<&serde_json::Value>,
    ) -> common::Retry {
        self.retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        common::Retry::Abort
    }
}
