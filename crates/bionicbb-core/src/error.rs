//! Errors from the services bionicbb talks to, classified by what a caller
//! does about them.

use std::fmt;
use std::time::Duration;

/// The remote service an [`ApiError`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Gerrit,
    Jenkins,
    Gmail,
    BuildListener,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Gerrit => "Gerrit",
            Service::Jenkins => "Jenkins",
            Service::Gmail => "Gmail",
            Service::BuildListener => "build-listener",
        })
    }
}

/// What went wrong, as far as the caller's next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist, is not visible, or (Gerrit) a bare
    /// Change-Id is ambiguous. Permanent.
    NotFound,
    /// The object is in a state that refuses the request (a closed change,
    /// a non-cancellable queue item). Permanent.
    Conflict,
    /// 401: missing or wrong credentials. Permanent until someone fixes them.
    Unauthorized,
    /// 403: authenticated but not allowed. Permanent.
    Forbidden,
    /// Slow down (429, Gmail's 403 rate-limit reasons). Passing.
    RateLimited,
    /// 5xx, a timeout, a reset connection. Passing.
    Transient,
    /// The server answered 2xx with something we cannot read. Permanent.
    Malformed,
    /// The server refused the request as malformed (400, 405, 422...). Permanent.
    Rejected,
    /// Refused before anything was sent: an invalid id, a bad argument.
    InvalidInput,
}

/// An error from a remote call, with enough context to log and act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}: {kind:?}{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct ApiError {
    pub service: Service,
    pub kind: ErrorKind,
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// What the server said, or what failed; never a credential.
    pub message: String,
    /// The server's `Retry-After`, when it gave one.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(service: Service, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            service,
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// True for faults that may pass by themselves: retry later.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::RateLimited)
    }
}
