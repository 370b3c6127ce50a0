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

#[test]
fn the_answer_bound_covers_the_padded_base64_and_the_envelope() {
    use super::download::{ENVELOPE_ROOM, answer_bound};
    assert_eq!(answer_bound(1), 4 + ENVELOPE_ROOM);
    assert_eq!(answer_bound(3), 4 + ENVELOPE_ROOM);
    assert_eq!(answer_bound(4), 8 + ENVELOPE_ROOM);
    assert_eq!(answer_bound(1024 * 1024), 1_398_104 + ENVELOPE_ROOM);
    assert_eq!(answer_bound(u64::MAX), u64::MAX, "saturates");
}

#[test]
fn raw_is_decoded_padded_or_not_and_escaped_padding_too() {
    use super::download::{Download, decode};
    let mail = b"Subject: x\r\n\r\nbody??>!".to_vec(); // 22 bytes: `==` padding
    let padded = "U3ViamVjdDogeA0KDQpib2R5Pz8-IQ";
    for raw in [
        padded.to_string(),
        format!("{padded}=="),
        format!("{padded}\\u003d\\u003d"),
    ] {
        let answer = format!(r#"{{"id":"a","labelIds":["INBOX"],"raw":"{raw}"}}"#);
        assert_eq!(
            decode("a", answer.as_bytes(), 1000, None).unwrap(),
            Download::Mail(mail.clone()),
            "{raw}"
        );
    }
    let answer = format!(r#"{{"raw":"{padded}=="}}"#);
    match decode("a", answer.as_bytes(), 21, None).unwrap() {
        Download::TooLarge(over) => assert_eq!(over.mail_size, Some(22)),
        other => panic!("{other:?}"),
    }
    for bad in [r#"{"id":"a"}"#, r#"{"raw":"***"}"#, r#"{"raw":"#, "<html>"] {
        let err = decode("a", bad.as_bytes(), 1000, None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed, "{bad}");
        assert!(!err.message.contains("***"), "no content in errors: {err}");
    }
}

#[test]
fn answers_read_without_the_hub_are_classified_alike() {
    use super::classify_answer;
    let body = json!({"error": {"code": 429, "message": "slow down",
        "errors": [{"reason": "rateLimitExceeded"}]}})
    .to_string();
    let err = classify_answer(
        "messages.get",
        429,
        Some(Duration::from_secs(3)),
        body.as_bytes(),
    );
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    let err = classify_answer("messages.get", 502, None, b"<html>bad gateway</html>");
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(err.status, Some(502));
    let err = classify_answer("messages.get", 404, None, b"");
    assert_eq!(err.kind, ErrorKind::NotFound);
}
