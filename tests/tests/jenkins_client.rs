//! The Jenkins client against the fake Jenkins, over real HTTP.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine;
use bionicbb_core::config::Secret;
use bionicbb_core::jenkins::{JenkinsClient, JobPath, QueueItemId, QueueState};
use bionicbb_core::retry::RetryPolicy;
use bionicbb_core::{ErrorKind, tls};
use bionicbb_tests::fakes::jenkins::{AutoRun, JenkinsFake};
use bionicbb_tests::fault::Fault;

const JOB: &str = "bionic-presubmit";
const USER: &str = "bionicbb";
const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        attempt_timeout: Duration::from_secs(5),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn client_as(fake: &JenkinsFake, user: &str, secret: &str) -> JenkinsClient {
    JenkinsClient::new(
        url::Url::parse(&fake.url()).unwrap(),
        user,
        Secret::new(secret),
        Duration::from_secs(5),
        fast_retry(),
    )
    .unwrap()
}

/// A fake with the presubmit job and the bot's token user, and a client.
async fn setup() -> (JenkinsFake, JenkinsClient) {
    tls::install_crypto_provider();
    let fake = JenkinsFake::start().await;
    fake.add_job(
        JOB,
        &[("REF", ""), ("CHANGE_ID", ""), ("PROJECT", "bionic")],
    );
    fake.add_user(USER, TOKEN);
    let client = client_as(&fake, USER, TOKEN);
    (fake, client)
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn job(path: &str) -> JobPath {
    JobPath::parse(path).unwrap()
}

fn count(fake: &JenkinsFake, needle: &str) -> usize {
    fake.faults()
        .requests()
        .iter()
        .filter(|r| r.contains(needle))
        .count()
}

#[tokio::test]
async fn trigger_returns_the_queue_id_and_jenkins_keeps_only_defined_parameters() {
    let (fake, client) = setup().await;
    let id = client
        .trigger(
            &job(JOB),
            &params(&[
                ("REF", "refs/changes/56/123456/4"),
                ("CHANGE_ID", "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b"),
                ("UNDECLARED", "dropped"),
            ]),
        )
        .await
        .unwrap();
    let queue = fake.queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(QueueItemId(queue[0].id), id);
    assert_eq!(queue[0].job, JOB);
    assert_eq!(
        queue[0].params,
        params(&[
            ("REF", "refs/changes/56/123456/4"),
            ("CHANGE_ID", "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b"),
            ("PROJECT", "bionic"),
        ])
    );
    // The parameters travel in the form body, not the query string.
    assert_eq!(
        fake.faults().requests(),
        vec![format!("POST /job/{JOB}/buildWithParameters")]
    );
}

#[tokio::test]
async fn folder_jobs_use_nested_encoded_urls() {
    let (fake, client) = setup().await;
    fake.add_job("android/bionic tests/presubmit", &[("REF", "")]);
    let path = job("android/bionic tests/presubmit");
    assert!(client.job_exists(&path).await.unwrap());
    let id = client
        .trigger(&path, &params(&[("REF", "refs/changes/1/1/1")]))
        .await
        .unwrap();
    assert_eq!(fake.queue()[0].job, "android/bionic tests/presubmit");
    assert!(fake.faults().requests().contains(
        &"POST /job/android/job/bionic%20tests/job/presubmit/buildWithParameters".to_string()
    ));
    let number = fake
        .start_next("android/bionic tests/presubmit")
        .await
        .unwrap();
    let QueueState::Started { url, .. } = client.queue_item(id).await.unwrap() else {
        panic!("not started");
    };
    assert!(
        url.ends_with("/job/android/job/bionic%20tests/job/presubmit/1/"),
        "{url}"
    );
    assert!(client.build(&path, number).await.unwrap().building);
}

#[tokio::test]
async fn identical_triggers_coalesce_into_one_queue_item() {
    let (fake, client) = setup().await;
    let p = params(&[("REF", "refs/changes/56/123456/4")]);
    let first = client.trigger(&job(JOB), &p).await.unwrap();
    let second = client.trigger(&job(JOB), &p).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.queue().len(), 1);
    assert_eq!(fake.triggers(), 2);
    let other = client
        .trigger(&job(JOB), &params(&[("REF", "refs/changes/56/123456/5")]))
        .await
        .unwrap();
    assert_ne!(other, first);
    assert_eq!(fake.queue().len(), 2);
    // Once the first item has started, the same parameters queue a new build.
    fake.start_next(JOB).await.unwrap();
    let again = client.trigger(&job(JOB), &p).await.unwrap();
    assert_ne!(again, first);
}

#[tokio::test]
async fn queue_item_goes_from_waiting_to_started_and_the_build_finishes() {
    let (fake, client) = setup().await;
    let id = client
        .trigger(&job(JOB), &params(&[("REF", "refs/changes/56/123456/4")]))
        .await
        .unwrap();
    match client.queue_item(id).await.unwrap() {
        QueueState::Waiting { why } => assert!(why.unwrap().contains("quiet period")),
        other => panic!("expected Waiting, got {other:?}"),
    }
    let number = fake.start_next(JOB).await.unwrap();
    let expected_url = format!("{}job/{JOB}/{number}/", fake.url());
    assert_eq!(
        client.queue_item(id).await.unwrap(),
        QueueState::Started {
            number,
            url: expected_url.clone()
        }
    );
    let running = client.build(&job(JOB), number).await.unwrap();
    assert!(running.building);
    assert_eq!(running.result, None);
    assert_eq!(running.queue_id, Some(id.0));

    assert!(fake.finish(JOB, number, "UNSTABLE").await);
    let done = client.build(&job(JOB), number).await.unwrap();
    assert!(!done.building);
    assert_eq!(done.result.as_deref(), Some("UNSTABLE"));
    // Still a left item with its executable after the build finished.
    assert_eq!(
        client.queue_item(id).await.unwrap(),
        QueueState::Started {
            number,
            url: expected_url
        }
    );
    assert_eq!(
        client.build(&job(JOB), number + 1).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn left_items_expire_and_then_the_queue_url_is_not_found() {
    let (fake, client) = setup().await;
    fake.set_left_item_ttl(Duration::ZERO);
    let id = client.trigger(&job(JOB), &params(&[])).await.unwrap();
    fake.start_next(JOB).await.unwrap();
    assert_eq!(
        client.queue_item(id).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn cancel_waiting_item_then_cancelled_and_not_cancellable_twice() {
    let (fake, client) = setup().await;
    let id = client.trigger(&job(JOB), &params(&[])).await.unwrap();
    client.cancel_queue_item(id).await.unwrap();
    assert!(fake.queue().is_empty());
    assert_eq!(client.queue_item(id).await.unwrap(), QueueState::Cancelled);
    assert_eq!(
        client.cancel_queue_item(id).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let err = client
        .cancel_queue_item(QueueItemId(999))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("Provided id (999) not found"), "{err}");
    assert_eq!(
        count(&fake, "POST /queue/cancelItem?id="),
        3,
        "{:?}",
        fake.faults().requests()
    );
    // A started item cannot be cancelled.
    let started = client.trigger(&job(JOB), &params(&[])).await.unwrap();
    fake.start_next(JOB).await.unwrap();
    assert_eq!(
        client.cancel_queue_item(started).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn stop_aborts_a_running_build() {
    let (fake, client) = setup().await;
    client.trigger(&job(JOB), &params(&[])).await.unwrap();
    let number = fake.start_next(JOB).await.unwrap();
    client.stop_build(&job(JOB), number).await.unwrap();
    let mut result = None;
    for _ in 0..100 {
        result = client.build(&job(JOB), number).await.unwrap().result;
        if result.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(result.as_deref(), Some("ABORTED"));
    assert_eq!(fake.builds()[0].result.as_deref(), Some("ABORTED"));
    assert_eq!(
        client.stop_build(&job(JOB), 77).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn job_exists_is_true_for_known_jobs_and_false_for_unknown_ones() {
    let (fake, client) = setup().await;
    assert!(client.job_exists(&job(JOB)).await.unwrap());
    assert!(!client.job_exists(&job("no-such-job")).await.unwrap());
    assert!(
        fake.faults()
            .requests()
            .contains(&format!("GET /job/{JOB}/api/json?tree=name,buildable"))
    );
    // A 404 is an answer, not a passing fault: one request each.
    assert_eq!(fake.faults().requests().len(), 2);
}

#[tokio::test]
async fn disabled_unknown_and_unparameterized_jobs_are_errors() {
    let (fake, client) = setup().await;
    fake.disable_job(JOB);
    let err = client
        .trigger(&job(JOB), &params(&[("REF", "x")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(err.status, Some(302));
    assert!(err.message.contains("queue refused"), "{err}");

    let err = client
        .trigger(&job("folder/missing"), &params(&[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("no such job"), "{err}");

    fake.add_unparameterized_job("plain");
    let err = client
        .trigger(&job("plain"), &params(&[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert!(err.message.contains("not parameterized"), "{err}");
    assert!(fake.queue().is_empty());
    // POSTs are sent once: the 500 was not retried.
    assert_eq!(count(&fake, "POST /job/plain/buildWithParameters"), 1);
}

#[tokio::test]
async fn password_user_gets_a_crumb_bound_to_its_session_and_retries_once() {
    let (fake, _) = setup().await;
    fake.add_password_user("alice", "correct horse");
    let client = client_as(&fake, "alice", "correct horse");
    let p = params(&[("REF", "refs/changes/56/123456/4")]);
    let id = client.trigger(&job(JOB), &p).await.unwrap();
    assert_eq!(fake.queue()[0].id, id.0);
    assert_eq!(
        fake.faults().requests(),
        vec![
            format!("POST /job/{JOB}/buildWithParameters"),
            "GET /crumbIssuer/api/json".to_string(),
            format!("POST /job/{JOB}/buildWithParameters"),
        ]
    );
    // The crumb is kept for the session: the next POST succeeds directly.
    client.cancel_queue_item(id).await.unwrap();
    assert_eq!(count(&fake, "crumbIssuer"), 1);
    assert_eq!(fake.faults().requests().len(), 4);
}

#[tokio::test]
async fn a_crumb_without_its_session_cookie_is_refused() {
    // The fake really ties crumbs to sessions: a client that fetched a crumb
    // but drops the cookie gets the 403.
    let (fake, _) = setup().await;
    fake.add_password_user("alice", "pw");
    let http = reqwest::Client::new();
    let crumb: serde_json::Value = http
        .get(format!("{}crumbIssuer/api/json", fake.url()))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(crumb["crumbRequestField"], "Jenkins-Crumb");
    let response = http
        .post(format!("{}job/{JOB}/buildWithParameters", fake.url()))
        .basic_auth("alice", Some("pw"))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("No valid crumb was included in the request")
    );
    // Anonymous POSTs are refused too.
    let anonymous = http
        .post(format!("{}job/{JOB}/buildWithParameters", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    assert!(fake.queue().is_empty());
}

#[tokio::test]
async fn token_user_sends_no_crumb_traffic() {
    let (fake, client) = setup().await;
    let id = client.trigger(&job(JOB), &params(&[])).await.unwrap();
    client.cancel_queue_item(id).await.unwrap();
    assert_eq!(count(&fake, "crumbIssuer"), 0);
    assert_eq!(fake.faults().requests().len(), 2);
}

#[tokio::test]
async fn without_a_crumb_issuer_the_original_403_stands() {
    let (fake, client) = setup().await;
    fake.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(403, "No valid crumb was included in the request"),
    );
    fake.faults().fail_next(
        Some(Method::GET),
        "crumbIssuer",
        1,
        Fault::status(404, "Not Found"),
    );
    let err = client.trigger(&job(JOB), &params(&[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(err.status, Some(403));
    assert!(err.message.contains("No valid crumb"), "{err}");
    assert_eq!(count(&fake, "POST"), 1);
    assert!(fake.queue().is_empty());
}

#[tokio::test]
async fn a_403_that_is_not_about_crumbs_fetches_no_crumb() {
    let (fake, client) = setup().await;
    fake.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(403, "bionicbb is missing the Job/Build permission"),
    );
    let err = client.trigger(&job(JOB), &params(&[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(count(&fake, "crumbIssuer"), 0);
}

#[tokio::test]
async fn get_503_is_retried_until_it_succeeds() {
    let (fake, client) = setup().await;
    let id = client.trigger(&job(JOB), &params(&[])).await.unwrap();
    fake.faults().fail_next(
        Some(Method::GET),
        "/queue/item/",
        2,
        Fault::status(503, "Jenkins is getting ready to work"),
    );
    assert!(matches!(
        client.queue_item(id).await.unwrap(),
        QueueState::Waiting { .. }
    ));
    assert_eq!(count(&fake, "GET /queue/item/"), 3);
}

#[tokio::test]
async fn get_404_is_not_retried() {
    let (fake, client) = setup().await;
    let err = client.queue_item(QueueItemId(4242)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(count(&fake, "GET /queue/item/4242/api/json"), 1);
}

#[tokio::test]
async fn post_is_not_retried_on_503_or_timeout() {
    let (fake, client) = setup().await;
    fake.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(503, "Service Unavailable"),
    );
    let err = client.trigger(&job(JOB), &params(&[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(count(&fake, "POST"), 1);
    assert!(fake.queue().is_empty());

    let impatient = JenkinsClient::new(
        url::Url::parse(&fake.url()).unwrap(),
        USER,
        Secret::new(TOKEN),
        Duration::from_millis(200),
        fast_retry(),
    )
    .unwrap();
    fake.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::Delay(Duration::from_secs(2)),
    );
    let err = impatient
        .trigger(&job(JOB), &params(&[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(count(&fake, "POST"), 2);
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_not_retried() {
    let (fake, _) = setup().await;
    let wrong = client_as(&fake, USER, "not-the-token");
    let err = wrong.job_exists(&job(JOB)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    let err = wrong.trigger(&job(JOB), &params(&[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    let stranger = client_as(&fake, "mallory", TOKEN);
    let err = stranger.queue_item(QueueItemId(1)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(!format!("{err}").contains(TOKEN));
    assert_eq!(fake.faults().requests().len(), 3);
    assert!(fake.queue().is_empty());
}

#[tokio::test]
async fn invalid_job_paths_are_refused_before_any_request() {
    let (fake, _client) = setup().await;
    for bad in ["", "a//b", "../admin", "folder/.", "/abs", "trailing/"] {
        let err = JobPath::parse(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.message.contains("invalid Jenkins job path"), "{err}");
    }
    assert!(fake.faults().requests().is_empty());
}

/// What the notification endpoint received.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    uri: Uri,
    body: String,
}

/// An endpoint that records every POST and answers 200.
async fn start_listener() -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/jenkins",
        axum::routing::post(move |headers: HeaderMap, uri: Uri, body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(Received { headers, uri, body });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/jenkins"), seen)
}

fn phase_and_status(doc: &serde_json::Value) -> (String, Option<String>) {
    (
        doc["build"]["phase"].as_str().unwrap().to_string(),
        doc["build"]["status"].as_str().map(str::to_string),
    )
}

#[tokio::test]
async fn notifications_post_the_four_phases_in_order_and_in_plugin_format() {
    let (fake, client) = setup().await;
    let (endpoint, seen) = start_listener().await;
    let with_auth = endpoint.replace("http://", "http://jenkins:s%3Acret@");
    fake.set_notification_endpoint(format!("{with_auth}?token=t0k"));
    let id = client
        .trigger(
            &job(JOB),
            &params(&[
                ("REF", "refs/changes/56/123456/4"),
                ("CHANGE_ID", "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b"),
            ]),
        )
        .await
        .unwrap();
    let number = fake.start_next(JOB).await.unwrap();
    assert!(fake.finish(JOB, number, "FAILURE").await);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    let docs: Vec<serde_json::Value> = seen
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let phases: Vec<_> = docs.iter().map(phase_and_status).collect();
    assert_eq!(
        phases,
        vec![
            ("QUEUED".to_string(), None),
            ("STARTED".to_string(), None),
            ("COMPLETED".to_string(), Some("FAILURE".to_string())),
            ("FINALIZED".to_string(), Some("FAILURE".to_string())),
        ]
    );
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("jenkins:s:cret")
    );
    for r in &seen {
        assert_eq!(r.headers["content-type"], "application/json;charset=UTF-8");
        assert_eq!(r.headers["authorization"], expected_auth.as_str());
        assert_eq!(r.uri.query(), Some("token=t0k"));
        assert!(r.headers.contains_key("content-length"));
    }
    for doc in &docs {
        assert_eq!(doc["name"], JOB);
        assert_eq!(doc["display_name"], JOB);
        assert_eq!(doc["url"], format!("job/{JOB}/"));
        let b = &doc["build"];
        assert_eq!(b["number"], number);
        assert_eq!(b["queue_id"], id.0);
        assert_eq!(b["url"], format!("job/{JOB}/{number}/"));
        assert_eq!(b["full_url"], format!("{}job/{JOB}/{number}/", fake.url()));
        assert_eq!(b["parameters"]["REF"], "refs/changes/56/123456/4");
        assert_eq!(b["parameters"]["PROJECT"], "bionic");
        assert_eq!(b["scm"], serde_json::json!({"changes": [], "culprits": []}));
        assert_eq!(b["log"], "");
        assert_eq!(b["artifacts"], serde_json::json!({}));
    }
    assert_eq!(docs[1]["build"]["duration"], 0);
    assert!(docs[2]["build"]["duration"].as_u64().unwrap() > 0);
    // Gson order: the raw text keeps the plugin's field order.
    let raw = &seen[3].body;
    let order = [
        "\"name\"",
        "\"display_name\"",
        "\"full_url\"",
        "\"number\"",
        "\"queue_id\"",
        "\"timestamp\"",
        "\"duration\"",
        "\"phase\"",
        "\"status\"",
        "\"scm\"",
        "\"parameters\"",
        "\"log\"",
        "\"artifacts\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| raw.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
    let deliveries = fake.deliveries();
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries.iter().all(|d| d.outcome == Ok(200)));
}

#[tokio::test]
async fn auto_run_starts_and_finishes_queued_builds_by_itself() {
    let (fake, client) = setup().await;
    let (endpoint, seen) = start_listener().await;
    fake.set_notification_endpoint(endpoint);
    fake.set_auto_run(Some(AutoRun {
        delay: Duration::from_millis(20),
        outcome: Arc::new(|job, params| {
            if job == JOB && params.get("REF").is_some_and(|r| r.ends_with("/4")) {
                "FAILURE".to_string()
            } else {
                "SUCCESS".to_string()
            }
        }),
    }));
    let failing = client
        .trigger(&job(JOB), &params(&[("REF", "refs/changes/56/123456/4")]))
        .await
        .unwrap();
    let passing = client
        .trigger(&job(JOB), &params(&[("REF", "refs/changes/56/123456/5")]))
        .await
        .unwrap();
    let mut builds = Vec::new();
    for _ in 0..200 {
        builds = fake.builds();
        if builds.len() == 2 && fake.deliveries().len() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result_of = |id: QueueItemId| {
        builds
            .iter()
            .find(|b| b.queue_id == id.0)
            .and_then(|b| b.result.clone())
    };
    assert_eq!(result_of(failing).as_deref(), Some("FAILURE"));
    assert_eq!(result_of(passing).as_deref(), Some("SUCCESS"));
    assert!(fake.queue().is_empty());
    assert_eq!(seen.lock().unwrap().len(), 8);
}
