//! End-to-end: the real `build-listener` binary, many changes at once.
//!
//! - the outbox posts reviews of different changes concurrently, never more
//!   at once than `build_listener.outbox_concurrency`, and one change's
//!   reviews one at a time, in the order of their builds;
//! - intake is durable: every notification answered 2xx is reviewed exactly
//!   once even when the listener is SIGKILLed right after the answers.
//!
//! Concurrency is observed on the fake Gerrit, which delays every request
//! and counts the tracked requests in flight at once.
//!
//! Build the binary first (`cargo build -p build-listener`, or run the whole
//! workspace's tests).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::Method;
use bionicbb_tests::fakes::gerrit::{GerritFake, PostedReview};
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, Setup, free_port};
use serde_json::{Value, json};

const SECRET: &str = "listener-secret-1234";
const WAIT: Duration = Duration::from_secs(30);
const JOB: &str = "bionic-presubmit";

struct Env {
    gerrit: GerritFake,
    _dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    /// The changes, each with one patch set, and their Change-Ids.
    changes: Vec<(u64, String)>,
    http: reqwest::Client,
}

/// A fake Gerrit with `n` changes of one patch set each, and a listener
/// configuration with `outbox_concurrency` (none: the default).
async fn env(n: usize, outbox_concurrency: Option<usize>) -> Env {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let human = gerrit.add_account("Alice", "alice@example.com", "alice", "alice-pw");
    let changes = (0..n)
        .map(|i| {
            let key = format!("I{:040x}", 0xc0ffee + i);
            let number = gerrit.create_change("platform/bionic", "master", &key, human, "Fix");
            gerrit.add_patch_set(number, "alice@example.com", &["libc/bionic/malloc.cpp"]);
            (number, key)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let setup = Setup::build_listener(dir.path(), gerrit.url().as_str(), port, SECRET);
    let config = setup.write_config();
    if let Some(n) = outbox_concurrency {
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replacen(
            "[build_listener]\n",
            &format!("[build_listener]\noutbox_concurrency = {n}\n"),
            1,
        );
        std::fs::write(&config, text).unwrap();
    }
    Env {
        gerrit,
        _dir: dir,
        config,
        port,
        changes,
        http: reqwest::Client::new(),
    }
}

/// The Notification plugin's COMPLETED SUCCESS document of the `nth` build
/// of patch set 1 of `change` (build number [`build_number`]).
fn completed(change: &(u64, String), nth: u64) -> Vec<u8> {
    let (number, key) = change;
    let build = build_number(*number, nth);
    let url = format!("job/{JOB}/{build}/");
    let doc = json!({
        "name": JOB,
        "url": format!("job/{JOB}/"),
        "build": {
            "full_url": format!("https://jenkins.example.org/{url}"),
            "number": build,
            "phase": "COMPLETED",
            "status": "SUCCESS",
            "url": url,
            "parameters": {
                "REF": format!("refs/changes/{:02}/{number}/1", number % 100),
                "CHANGE_ID": key,
                "PROJECT": "platform/bionic",
            },
        },
    });
    serde_json::to_vec(&doc).unwrap()
}

/// Jenkins numbers a job's builds across changes: the `nth` build of
/// `change` gets a number of its own.
fn build_number(change: u64, nth: u64) -> u64 {
    change * 100 + nth
}

/// The build number a review names (its message starts with `JOB #n `).
fn build_of(review: &PostedReview) -> u64 {
    let message = review.body["message"].as_str().unwrap_or_default();
    let rest = message
        .strip_prefix(&format!("{JOB} #"))
        .unwrap_or_else(|| panic!("unexpected review message {message:?}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

impl Env {
    async fn start(&self) -> Daemon {
        let config = self.config.display().to_string();
        let daemon = Daemon::spawn(
            "build-listener",
            &[
                "--config",
                &config,
                "--outbox-base-delay-ms",
                "100",
                "--outbox-settle-ms",
                "1000",
            ],
        );
        daemon.wait_for_output("listening on", WAIT).await;
        daemon
    }

    /// POSTs a notification; returns the HTTP status.
    async fn notify(&self, body: Vec<u8>) -> u16 {
        self.http
            .post(format!("http://127.0.0.1:{}/?token={SECRET}", self.port))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST to the listener")
            .status()
            .as_u16()
    }

    /// Waits until Gerrit accepted `n` reviews and the outbox is empty, then
    /// returns the reviews.
    async fn reviews(&self, n: usize) -> Vec<PostedReview> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reviews = self.gerrit.reviews_posted();
            if reviews.len() >= n && self.pending().await == 0 {
                return reviews;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} reviews instead of {n}",
                reviews.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn pending(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let body: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["pending"].as_u64().unwrap()
    }
}

/// Each change's reviews, as the `nth` build of the change they name, in
/// posting order.
fn builds_per_change(reviews: &[PostedReview]) -> BTreeMap<u64, Vec<u64>> {
    let mut per_change: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for review in reviews {
        let nth = build_of(review) - build_number(review.number, 0);
        per_change.entry(review.number).or_default().push(nth);
    }
    per_change
}

#[tokio::test]
async fn reviews_of_different_changes_are_posted_at_once_never_more_than_the_bound() {
    const BOUND: usize = 3;
    let env = env(2 * BOUND, Some(BOUND)).await;
    // Each request takes long enough that the first BOUND reviews are all
    // still in flight when the last of them is sent.
    env.gerrit
        .faults()
        .set_latency(Some(Duration::from_millis(500)));
    env.gerrit.faults().track_in_flight("/review");
    let _daemon = env.start().await;
    for change in &env.changes {
        assert_eq!(env.notify(completed(change, 1)).await, 202);
    }
    let reviews = env.reviews(env.changes.len()).await;
    assert_eq!(reviews.len(), env.changes.len(), "one review per build");
    assert_eq!(
        env.gerrit.faults().max_in_flight(),
        BOUND,
        "{BOUND} changes' reviews in flight at once, never more"
    );
}

#[tokio::test]
async fn one_change_s_reviews_are_posted_in_order_and_never_overlap() {
    let env = env(4, None).await;
    env.gerrit
        .faults()
        .set_latency(Some(Duration::from_millis(100)));
    let first = env.changes[0].clone();
    // Every request about the first change (its queries and its posts).
    env.gerrit.faults().track_in_flight(&first.0.to_string());
    let _daemon = env.start().await;
    // Four builds of the first change, interleaved with the other changes'.
    let mut expected = 0;
    for build in 1..=4u64 {
        for change in &env.changes {
            assert_eq!(env.notify(completed(change, build)).await, 202);
            expected += 1;
        }
    }
    let reviews = env.reviews(expected).await;
    assert_eq!(reviews.len(), expected);
    for (change, builds) in builds_per_change(&reviews) {
        assert_eq!(builds, [1, 2, 3, 4], "change {change}'s reviews in order");
    }
    assert_eq!(
        env.gerrit.faults().max_in_flight(),
        1,
        "one change's requests never overlap"
    );
}

#[tokio::test]
async fn acknowledged_notifications_survive_a_sigkill_and_are_reviewed_once() {
    const CLIENTS: usize = 16;
    const BUILDS: u64 = 3;
    let env = env(CLIENTS, None).await;
    // Gerrit answers no query before the kill: nothing can be posted yet,
    // everything acknowledged exists only in the ledger.
    env.gerrit.faults().fail_next(
        Some(Method::GET),
        "/changes/",
        u32::MAX,
        Fault::status(503, "busy"),
    );
    let daemon = env.start().await;
    // Sixteen clients at once, each posting its change's builds in order.
    let clients: Vec<_> = env
        .changes
        .iter()
        .map(|change| {
            let bodies: Vec<Vec<u8>> = (1..=BUILDS).map(|b| completed(change, b)).collect();
            let (http, port) = (env.http.clone(), env.port);
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for body in bodies {
                    let status = http
                        .post(format!("http://127.0.0.1:{port}/?token={SECRET}"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("POST to the listener")
                        .status();
                    codes.push(status.as_u16());
                }
                codes
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), [202; BUILDS as usize]);
    }
    // Every answer was 2xx: kill at once, before the outbox could drain.
    daemon.kill().await;
    assert!(env.gerrit.reviews_posted().is_empty());
    env.gerrit.faults().clear();
    let expected = CLIENTS * BUILDS as usize;

    let daemon = env.start().await;
    let reviews = env.reviews(expected).await;
    assert_eq!(
        reviews.len(),
        expected,
        "each acknowledged build reviewed exactly once\n{}",
        daemon.output()
    );
    let per_change = builds_per_change(&reviews);
    assert_eq!(per_change.len(), CLIENTS);
    for (change, builds) in per_change {
        assert_eq!(builds, [1, 2, 3], "change {change}: once each, in order");
    }
}
