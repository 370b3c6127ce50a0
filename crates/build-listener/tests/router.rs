//! The router in process, without a socket: authentication, limits,
//! validation, and what reaches the ledger.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bionicbb_core::config::Config;
use bionicbb_core::ledger::Ledger;
use build_listener::app::{AppState, router};
use serde_json::Value;
use tokio::sync::Notify;
use tower::ServiceExt;

const SECRET: &str = "s3cret+/=";
const TOKEN: &str = "s3cret%2B%2F%3D";

struct Fixture {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

fn fixture_with(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
state_dir = "{state}"
[gerrit]
url = "https://review.example.org/"
bot_email = "bionicbb@example.com"
[jenkins]
url = "https://jenkins.example.org/"
user = "bionicbb"
api_token = "t"
[build_listener]
secret = "{SECRET}"
body_limit = 65536
{extra}
[jobs]
[jobs.roles]
bionic-presubmit = "verify"
clean-bionic-presubmit = "clean"
bionic-lint = "ignore"
"#,
        state = dir.path().join("state").display()
    );
    let config = Config::parse(&text, Path::new("test.toml")).unwrap();
    let ledger = Ledger::open(&config.ledger_path()).unwrap();
    let state = AppState::new(Arc::new(config), ledger, Arc::new(Notify::new()));
    Fixture { _dir: dir, state }
}

fn fixture() -> Fixture {
    fixture_with("")
}

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/jenkins")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Fixture {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let request = Request::post(format!("{path}{sep}token={TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.into()))
            .unwrap();
        self.send(request).await
    }

    fn pending(&self) -> Vec<bionicbb_core::ledger::OutboxItem> {
        self.state.ledger.pending().unwrap()
    }
}

#[tokio::test]
async fn the_secret_is_accepted_in_three_forms() {
    let f = fixture();
    let body = sample("03-presubmit-completed-success.json");
    let (status, _) = f.post("/", body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let basic = format!("Basic {}", STANDARD.encode(format!("jenkins:{SECRET}")));
    let request = Request::post("/jenkins")
        .header("authorization", basic)
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, answer) = f.send(request).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let request = Request::post("/")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Body::from(body))
        .unwrap();
    let (status, answer) = f.send(request).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(f.pending().len(), 1);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused_and_nothing_recorded() {
    let f = fixture();
    let body = sample("03-presubmit-completed-success.json");
    let requests = [
        Request::post("/").body(Body::from(body.clone())).unwrap(),
        Request::post("/?token=wrong")
            .body(Body::from(body.clone()))
            .unwrap(),
        Request::post("/?token=")
            .body(Body::from(body.clone()))
            .unwrap(),
        Request::post("/jenkins")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("jenkins:nope")),
            )
            .body(Body::from(body.clone()))
            .unwrap(),
        Request::post("/")
            .header("authorization", format!("Bearer {SECRET}x"))
            .body(Body::from(body.clone()))
            .unwrap(),
        Request::post("/drop-rejection?token=bad")
            .body(Body::from(r#"{"change":123456,"patchset":1}"#))
            .unwrap(),
    ];
    for request in requests {
        let uri = request.uri().to_string();
        let (status, answer) = f.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(answer["error"], "missing or wrong secret");
    }
    assert!(f.pending().is_empty());
    assert!(f.state.ledger.recent_events(10).unwrap().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let f = fixture();
    let mut doc: Value =
        serde_json::from_slice(&sample("03-presubmit-completed-success.json")).unwrap();
    doc["build"]["log"] = Value::String("x".repeat(70_000));
    let (status, _) = f.post("/", serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = f.post("/drop-rejection", vec![b' '; 70_000]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(f.pending().is_empty());
    // Without the secret, the size does not matter: 401 first.
    let request = Request::post("/")
        .body(Body::from(vec![b' '; 70_000]))
        .unwrap();
    assert_eq!(f.send(request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn invalid_documents_are_400_naming_the_field() {
    let f = fixture();
    let mut no_number: Value =
        serde_json::from_slice(&sample("03-presubmit-completed-success.json")).unwrap();
    no_number["build"].as_object_mut().unwrap().remove("number");
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (sample("15-truncated.json"), None, "malformed JSON"),
        (
            serde_json::to_vec(&no_number).unwrap(),
            Some("build.number"),
            "build.number",
        ),
        (sample("14-missing-name.json"), Some("name"), "`name`"),
        (
            sample("16-path-like-change-id.json"),
            Some("CHANGE_ID"),
            "CHANGE_ID",
        ),
        (
            sample("17-ref-non-numeric-patch-set.json"),
            Some("REF"),
            "REF",
        ),
        (
            sample("13-no-parameters.json"),
            Some("build.parameters"),
            "names no change",
        ),
    ];
    for (body, field, needle) in cases {
        let (status, answer) = f.post("/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(needle), "{error} should mention {needle}");
        if let Some(field) = field {
            assert!(
                answer["field"].as_str().unwrap_or_default().contains(field),
                "{answer} should name {field}"
            );
        }
    }
    assert!(f.pending().is_empty());
}

#[tokio::test]
async fn queued_and_started_are_acknowledged_and_nothing_is_enqueued() {
    let f = fixture();
    for (name, phase) in [
        ("01-presubmit-queued.json", "QUEUED"),
        ("02-presubmit-started.json", "STARTED"),
    ] {
        let (status, answer) = f.post("/", sample(name)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["status"], "acknowledged");
        assert_eq!(answer["phase"], phase);
    }
    assert!(f.pending().is_empty());
}

#[tokio::test]
async fn started_is_queued_when_post_started_is_set() {
    let f = fixture_with("post_started = true");
    let (status, _) = f.post("/", sample("02-presubmit-started.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let pending = f.pending();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0].payload["message"]
            .as_str()
            .unwrap()
            .contains("STARTED")
    );
    assert_eq!(pending[0].payload["label"], Value::Null);
    // The result of the same build is a second, separate review.
    let (status, _) = f
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(f.pending().len(), 2);
}

#[tokio::test]
async fn completed_enqueues_one_review_and_finalized_is_a_duplicate() {
    let f = fixture();
    let (status, answer) = f
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["change"], "123456");
    assert_eq!(answer["patch_set"], 4);
    let (status, answer) = f
        .post("/jenkins", sample("04-presubmit-finalized-success.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "duplicate");
    let pending = f.pending();
    assert_eq!(pending.len(), 1);
    let item = &pending[0];
    assert_eq!(
        (item.kind.as_str(), item.order_key.as_str()),
        ("review", "123456")
    );
    assert_eq!(item.payload["patch_set"], 4);
    assert_eq!(
        item.payload["message"],
        "bionic-presubmit #1842 checkbuild SUCCESS: https://jenkins.example.org/job/bionic-presubmit/1842/"
    );
    assert_eq!(
        item.payload["label"],
        serde_json::json!({"name": "Verified", "value": 1})
    );
    assert_eq!(item.payload["tag"], "autogenerated:bionicbb");
    // A duplicate after a "restart" (a new router on the same ledger).
    let again = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        state: AppState::new(
            f.state.config.clone(),
            Ledger::open(f.state.ledger.path()).unwrap(),
            Arc::new(Notify::new()),
        ),
    };
    let (status, _) = again
        .post("/", sample("04-presubmit-finalized-success.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.pending().len(), 1);
}

#[tokio::test]
async fn unknown_and_ignored_jobs_enqueue_nothing() {
    let f = fixture();
    let (status, answer) = f.post("/", sample("22-unknown-job.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["status"], "ignored");
    assert!(answer["reason"].as_str().unwrap().contains("unknown job"));
    let (status, answer) = f.post("/", sample("21-lint-finalized-failure.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "ignored");
    assert!(f.pending().is_empty());
}

#[tokio::test]
async fn drop_rejection_is_queued_or_refused() {
    let f = fixture();
    let (status, answer) = f
        .post(
            "/drop-rejection",
            r#"{"changeid":"I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b","patchset":3}"#,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["queued"], true);
    let pending = f.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, "drop_rejection");
    assert_eq!(pending[0].payload["patch_set"], 3);
    for (body, field) in [
        (
            r#"{"changeid":"../../accounts/self","patchset":1}"#,
            "changeid",
        ),
        (r#"{"change":123456}"#, "patchset"),
        (r#"{"change":123456,"patchset":"x"}"#, "patchset"),
    ] {
        let (status, answer) = f.post("/drop-rejection", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["field"], field, "{body}");
    }
    let (status, _) = f.post("/drop-rejection", "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.pending().len(), 1);
}

#[tokio::test]
async fn healthz_reads_the_ledger() {
    let f = fixture();
    let request = Request::get("/healthz").body(Body::empty()).unwrap();
    let (status, answer) = f.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "ok");
    assert_eq!(answer["pending"], 0);
}

/// A GET without any secret, with an optional `Accept`; the status, the
/// `Content-Type` and the body as text.
async fn get(f: &Fixture, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::get(path);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = router(f.state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// The value of one sample line `name{labels} value`, if present.
fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_need_no_secret_and_count_received_documents() {
    let f = fixture();
    let (status, content_type, text) = get(&f, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, build_listener::metrics::CONTENT_TYPE);
    assert!(
        text.contains("# TYPE bionicbb_events_received_total counter"),
        "{text}"
    );
    assert!(!text.contains("bionicbb_events_received_total{"), "{text}");

    let (status, _) = f.post("/", sample("01-presubmit-queued.json")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = f
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = f
        .post("/", sample("04-presubmit-finalized-success.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Refused documents are not counted.
    let (status, _) = f.post("/", sample("15-truncated.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = f
        .post(
            "/drop-rejection",
            r#"{"changeid": "123456", "patchset": 4}"#,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, _, text) = get(&f, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let events = |kind: &str, source: &str| {
        sample_value(
            &text,
            &format!("bionicbb_events_received_total{{source=\"{source}\",type=\"{kind}\"}}"),
        )
    };
    assert_eq!(events("QUEUED", "jenkins"), Some(1.0), "{text}");
    assert_eq!(events("COMPLETED", "jenkins"), Some(1.0), "{text}");
    assert_eq!(events("FINALIZED", "jenkins"), Some(1.0), "{text}");
    assert_eq!(events("request", "drop-rejection"), Some(1.0), "{text}");
    assert_eq!(
        sample_value(&text, "bionicbb_outbox_pending"),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn status_is_html_or_json_without_a_secret() {
    let f = fixture();
    let (status, _) = f
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, content_type, page) = get(&f, "/status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.contains(r#"Waiting to post on Gerrit <span class="count">1</span>"#),
        "{page}"
    );
    // The build as a badge linking to Jenkins, with its vote waiting.
    assert!(
        page.contains(
            r#"<a class="badge good" href="https://jenkins.example.org/job/bionic-presubmit/1842/""#
        ),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<span class="job">bionic-presubmit #1842</span><span class="res">SUCCESS</span>"#
        ),
        "{page}"
    );
    assert!(
        page.contains("Verified +1 <span>waiting to post</span>"),
        "{page}"
    );
    // Neither the listener's secret nor the Jenkins token is ever shown.
    assert!(!page.contains("s3cret"), "{page}");

    let (status, content_type, json) = get(&f, "/status", Some("application/json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["pending_count"], 1);
    assert_eq!(json["events"][0]["source"], "jenkins");
    assert_eq!(json["changes"][0]["number"], 123456);
}

#[tokio::test]
async fn the_status_filter_is_a_query_parameter() {
    let f = fixture();
    let (status, _) = f
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let browser = Some("text/html");
    for path in [
        "/status?change=123456",
        "/?change=123456",
        "/status?change=123456&project=",
    ] {
        let (status, _, page) = get(&f, path, browser).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(page.contains(r#"value="123456""#), "{path}: {page}");
        assert!(page.contains("bionic-presubmit #1842"), "{path}: {page}");
    }
    let (_, _, page) = get(&f, "/status?change=654321", browser).await;
    assert!(
        page.contains("No recent activity matches the filter."),
        "{page}"
    );
    assert!(!page.contains("bionic-presubmit #1842"), "{page}");
    // An unreadable query is no filter, not an error.
    for path in ["/status?change=%ZZ", "/status?change=abc", "/status?%%%"] {
        let (status, _, page) = get(&f, path, browser).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(page.contains("bionic-presubmit #1842"), "{path}: {page}");
    }
    let (_, _, json) = get(&f, "/status?change=654321", Some("application/json")).await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["filter"]["change"], 654321);
    assert_eq!(json["changes"], serde_json::json!([]));
}

#[tokio::test]
async fn the_root_is_the_page_for_a_browser_and_a_line_otherwise() {
    let f = fixture();
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (status, content_type, page) = get(&f, "/", Some(browser)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(page.contains("<title>bionicbb status</title>"));

    for accept in [None, Some("*/*"), Some("text/plain")] {
        let (status, content_type, text) = get(&f, "/", accept).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(text, build_listener::pages::INDEX_TEXT);
        assert!(text.contains("/metrics") && text.contains("/status"));
    }

    // The Jenkins endpoint on the same path still wants the secret.
    let request = Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from(sample("03-presubmit-completed-success.json")))
        .unwrap();
    let (status, _) = f.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(f.pending().is_empty());
    // Other methods on the read-only paths are not allowed.
    let request = Request::post("/metrics").body(Body::empty()).unwrap();
    let (status, _) = f.send(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_status_page_masks_secrets_recorded_in_events() {
    let f = fixture();
    let record = bionicbb_core::ledger::EventRecord {
        at: 1_700_000_000,
        source: "gmail".into(),
        summary: format!(
            "triggered https://jenkins.example.org/job/x/buildWithParameters?token=buildtok&REF=r \
             via https://bot:gerritpw@review.example.org/ with {SECRET}"
        ),
        change_number: Some(123456),
        patch_set: Some(4),
        decisions: serde_json::json!([{ "decision": "build", "job": "x", "token": "jobtok" }]),
        details: None,
    };
    f.state.ledger.record_event(&record).unwrap();
    let (_, _, page) = get(&f, "/status", None).await;
    for secret in ["buildtok", "gerritpw", "s3cret", "jobtok"] {
        assert!(!page.contains(secret), "{secret} shown:\n{page}");
    }
    assert!(page.contains("token=***&#38;REF=r"), "{page}");
    assert!(
        page.contains("https://bot:***@review.example.org/"),
        "{page}"
    );
    let (_, _, json) = get(&f, "/status", Some("application/json")).await;
    for secret in ["buildtok", "gerritpw", "jobtok"] {
        assert!(!json.contains(secret), "{secret} shown:\n{json}");
    }
}
