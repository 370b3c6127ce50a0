//! HTTP plumbing shared by the Gerrit and Jenkins clients: the client
//! builder and the mapping from statuses and transport errors to
//! [`ApiError`] kinds.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::{ApiError, ErrorKind, Service};

/// The `User-Agent` of every request bionicbb makes.
pub const USER_AGENT: &str = concat!("bionicbb/", env!("CARGO_PKG_VERSION"));

/// A reqwest builder with the project's settings: user agent, a
/// whole-request timeout and a connect timeout. Installs the TLS provider.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
}

/// Builds `builder`; a failure is an [`ApiError`] of `service`.
pub fn build_client(
    service: Service,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, ApiError> {
    builder.build().map_err(|e| {
        ApiError::new(
            service,
            ErrorKind::InvalidInput,
            format!("cannot build HTTP client: {e}"),
        )
    })
}

/// A client with the project's settings ([`client_builder`]); `cookies`
/// keeps a cookie jar.
pub fn client(
    service: Service,
    timeout: Duration,
    cookies: bool,
) -> Result<reqwest::Client, ApiError> {
    build_client(service, client_builder(timeout).cookie_store(cookies))
}

/// Classifies a transport error (no HTTP answer, or a body that broke off).
pub fn transport_error(service: Service, what: &str, err: reqwest::Error) -> ApiError {
    // Credentials travel in headers, never in the URL; the URL is dropped
    // anyway so that query strings stay out of logs.
    let err = err.without_url();
    let kind = if err.is_builder() {
        ErrorKind::InvalidInput
    } else if err.is_decode() {
        ErrorKind::Malformed
    } else {
        ErrorKind::Transient
    };
    ApiError::new(service, kind, format!("{what}: {}", error_chain(&err)))
}

/// An error and its sources on one line, `outer: cause: root cause`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Classifies a non-2xx answer. `body` is the server's text (trimmed and cut
/// to a readable length in the message).
pub fn status_error(
    service: Service,
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> ApiError {
    let kind = match status.as_u16() {
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 | 410 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::RateLimited,
        408 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Rejected,
    };
    let mut err = ApiError::new(service, kind, format!("{what}: {}", excerpt(body)))
        .with_status(status.as_u16());
    err.retry_after = retry_after(headers);
    err
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these servers
/// and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The first 300 characters of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if one_line.is_empty() {
        "(empty body)".to_string()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let h = HeaderMap::new();
        let kind = |s: u16| {
            status_error(
                Service::Gerrit,
                "x",
                StatusCode::from_u16(s).unwrap(),
                &h,
                "",
            )
            .kind
        };
        assert_eq!(kind(401), ErrorKind::Unauthorized);
        assert_eq!(kind(403), ErrorKind::Forbidden);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(409), ErrorKind::Conflict);
        assert_eq!(kind(429), ErrorKind::RateLimited);
        assert_eq!(kind(408), ErrorKind::Transient);
        assert_eq!(kind(500), ErrorKind::Transient);
        assert_eq!(kind(503), ErrorKind::Transient);
        assert_eq!(kind(400), ErrorKind::Rejected);
        assert_eq!(kind(422), ErrorKind::Rejected);
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let err = status_error(Service::Gmail, "x", StatusCode::TOO_MANY_REQUESTS, &h, "");
        assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\nb\r\n"), "a b");
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt(&"x".repeat(1000)).len(), 300);
    }
}
