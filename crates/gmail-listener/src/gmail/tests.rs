//! Unit tests of the error classifier, on the exact shapes Google sends.

use std::time::Duration;

use bionicbb_core::error::ErrorKind;
use google_gmail1::Error;
use google_gmail1::common;
use serde_json::json;

use super::classify;

fn google(code: u16, reason: &str, message: &str) -> Error {
    Error::BadRequest(json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}],
    }}))
}

fn failure(status: u16, retry_after: Option<&str>) -> Error {
    let mut builder = google_gmail1::hyper::Response::builder().status(status);
    if let Some(value) = retry_after {
        builder = builder.header("retry-after", value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    Error::Failure(common::to_response(parts, Some("<html>oops</html>")))
}

#[test]
fn rate_limits_are_passing_whatever_the_status() {
    for (code, reason) in [
        (403, "userRateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (429, "rateLimitExceeded"),
        (429, "anything"),
    ] {
        let err = classify("messages.list", google(code, reason, "slow down"), None);
        assert_eq!(err.kind, ErrorKind::RateLimited, "{code} {reason}");
        assert_eq!(err.status, Some(code));
        assert!(err.is_transient());
        assert!(err.message.contains(reason) && err.message.contains("messages.list"));
    }
}

#[test]
fn retry_after_is_kept() {
    let err = classify(
        "messages.get",
        google(
            429,
            "rateLimitExceeded",
            "Too many concurrent requests for user",
        ),
        Some(Duration::from_secs(3)),
    );
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    let err = classify("messages.get", failure(429, Some("9")), None);
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(9)));
}

#[test]
fn daily_quota_waits_at_least_an_hour() {
    let err = classify(
        "labels.list",
        google(403, "dailyLimitExceeded", "Daily Limit Exceeded"),
        None,
    );
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(super::DAILY_LIMIT_WAIT));
}

#[test]
fn other_statuses() {
    let cases = [
        (403, "domainPolicy", ErrorKind::Forbidden),
        (401, "authError", ErrorKind::Unauthorized),
        (404, "notFound", ErrorKind::NotFound),
        (400, "badRequest", ErrorKind::Rejected),
        (400, "failedPrecondition", ErrorKind::Rejected),
        (409, "conflict", ErrorKind::Conflict),
        (500, "backendError", ErrorKind::Transient),
        (503, "backendError", ErrorKind::Transient),
    ];
    for (code, reason, kind) in cases {
        let err = classify("x", google(code, reason, "m"), None);
        assert_eq!(err.kind, kind, "{code} {reason}");
        assert_eq!(err.status, Some(code));
    }
    let err = classify("x", google(401, "authError", "Invalid Credentials"), None);
    assert!(err.message.contains("gmail-listener auth"), "{err}");
}

#[test]
fn non_json_failures_go_by_status() {
    assert_eq!(
        classify("x", failure(502, None), None).kind,
        ErrorKind::Transient
    );
    assert_eq!(
        classify("x", failure(404, None), None).kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        classify("x", failure(401, None), None).kind,
        ErrorKind::Unauthorized
    );
    assert_eq!(
        classify("x", failure(400, None), None).kind,
        ErrorKind::Rejected
    );
}

#[test]
fn json_without_a_code_is_malformed() {
    let err = classify("x", Error::BadRequest(json!({"oops": true})), None);
    assert_eq!(err.kind, ErrorKind::Malformed);
}

#[test]
fn decode_errors_are_malformed_and_do_not_echo_the_body() {
    let body = r#"{"raw": "c2VjcmV0IG1haWw"}"#.to_string();
    let serde = serde_json::from_str::<u32>("x").unwrap_err();
    let err = classify("messages.get", Error::JsonDecodeError(body, serde), None);
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert!(!err.message.contains("c2VjcmV0"), "{err}");
}

#[test]
fn io_is_transient_and_token_failures_say_what_to_run() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert_eq!(
        classify("x", Error::Io(io), None).kind,
        ErrorKind::Transient
    );

    let err = classify("x", Error::MissingToken("no token cached".into()), None);
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(err.message.contains("gmail-listener auth"), "{err}");

    let yup = google_gmail1::yup_oauth2::Error::UserError("refused".into());
    let err = classify("x", Error::MissingToken(Box::new(yup)), None);
    assert_eq!(err.kind, ErrorKind::Unauthorized);

    let net = google_gmail1::yup_oauth2::Error::LowLevelError(std::io::Error::other("dns"));
    let err = classify("x", Error::MissingToken(Box::new(net)), None);
    assert_eq!(err.kind, ErrorKind::Transient);
}

#[test]
fn retry_after_parsing() {
    assert_eq!(
        super::parse_retry_after(" 12 "),
        Some(Duration::from_secs(12))
    );
    assert_eq!(
        super::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        None
    );
}
