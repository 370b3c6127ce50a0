//! End-to-end: the real `build-listener` binary against the fake Gerrit,
//! fed with the real Notification-plugin samples.
//!
//! Build the binary first (`cargo build -p build-listener`, or run the whole
//! workspace's tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::Method;
use bionicbb_tests::fakes::gerrit::{GerritFake, PostedReview, Status};
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, Setup, binary, free_port,
};
use serde_json::{Value, json};

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const SECRET: &str = "listener-secret-1234";
const WAIT: Duration = Duration::from_secs(15);
/// How long after the listener gave up on a post the fake Gerrit may still
/// apply it, as the listener is told: longer than any late post below.
const SETTLE_MS: u64 = 3000;
const SUCCESS_1842: &str = "bionic-presubmit #1842 checkbuild SUCCESS: https://jenkins.example.org/job/bionic-presubmit/1842/";

struct Env {
    gerrit: GerritFake,
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    change: u64,
    bot: u64,
    human: u64,
    http: reqwest::Client,
}

/// A fake Gerrit with the bot, a human, and change 123456 with
/// `patch_sets` patch sets; a configuration pointing at it.
async fn env(patch_sets: u32) -> Env {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    let bot = gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let human = gerrit.add_account("Alice", "alice@example.com", "alice", "alice-pw");
    let change = gerrit.create_change("platform/bionic", "master", KEY, human, "Fix malloc");
    assert_eq!(change, 123456, "the samples name change 123456");
    for _ in 0..patch_sets {
        gerrit.add_patch_set(change, "alice@example.com", &["libc/bionic/malloc.cpp"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let setup = Setup::build_listener(dir.path(), gerrit.url().as_str(), port, SECRET);
    let config = setup.write_config();
    Env {
        gerrit,
        dir,
        config,
        port,
        change,
        bot,
        human,
        // No connection reuse: the listener closes a connection whose
        // oversized body it refused without reading it.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    }
}

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/jenkins")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sample with its JSON edited.
fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&sample(name)).unwrap();
    edit(&mut doc);
    serde_json::to_vec(&doc).unwrap()
}

impl Env {
    /// Starts the listener; `base_delay_ms` is its first retry delay. A post
    /// that got no answer is waited out for [`SETTLE_MS`].
    async fn start(&self, base_delay_ms: u64) -> Daemon {
        let config = self.config.display().to_string();
        let delay = base_delay_ms.to_string();
        let settle = SETTLE_MS.to_string();
        let daemon = Daemon::spawn(
            "build-listener",
            &[
                "--config",
                &config,
                "--outbox-base-delay-ms",
                &delay,
                "--outbox-settle-ms",
                &settle,
            ],
        );
        daemon.wait_for_output("listening on", WAIT).await;
        daemon
    }

    /// Sets Gerrit's client timeout (the `[gerrit] timeout` key).
    fn set_gerrit_timeout(&self, timeout: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let (head, tail) = text.split_once("[gerrit]").unwrap();
        let tail = tail.replacen("timeout = \"5s\"", &format!("timeout = \"{timeout}\""), 1);
        std::fs::write(&self.config, format!("{head}[gerrit]{tail}")).unwrap();
    }

    /// Waits until the review posts Gerrit was told to apply late have
    /// landed.
    async fn late_reviews_landed(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.gerrit.late_reviews_settled() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the late reviews did not land"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until a review post reached Gerrit.
    async fn review_post_seen(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self
            .gerrit
            .faults()
            .requests()
            .iter()
            .any(|r| r.starts_with("POST "))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no post reached Gerrit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn post_raw(&self, url: String, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST to the listener");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.post_raw(self.url(&format!("{path}?token={SECRET}")), body)
            .await
    }

    async fn pending(&self) -> u64 {
        let response = self.http.get(self.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        body["pending"].as_u64().unwrap()
    }

    /// Waits until the outbox is empty.
    async fn drained(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.pending().await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the outbox did not drain"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until Gerrit accepted `n` reviews, then returns them.
    async fn reviews(&self, n: usize) -> Vec<PostedReview> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reviews = self.gerrit.reviews_posted();
            if reviews.len() >= n {
                return reviews;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} reviews instead of {n}: {reviews:?}",
                reviews.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn bot_messages(&self) -> Vec<String> {
        self.gerrit
            .messages(self.change)
            .into_iter()
            .filter(|m| m.author == Some(self.bot))
            .map(|m| m.message)
            .collect()
    }

    fn bot_vote(&self, ps: u32) -> Option<i32> {
        self.gerrit
            .votes(self.change, ps)
            .get("Verified")
            .and_then(|by| by.get(&self.bot))
            .copied()
    }
}

fn labels(review: &PostedReview) -> &Value {
    &review.body["labels"]
}

fn message(review: &PostedReview) -> &str {
    review.body["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn four_phases_give_exactly_one_review() {
    let env = env(4).await;
    let daemon = env.start(0).await;
    let phases = [
        ("01-presubmit-queued.json", 200, "acknowledged"),
        ("02-presubmit-started.json", 200, "acknowledged"),
        ("03-presubmit-completed-success.json", 202, "queued"),
        ("04-presubmit-finalized-success.json", 200, "duplicate"),
    ];
    for (name, status, word) in phases {
        let (code, body) = env.post("/", sample(name)).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (status, Some(word)),
            "{name}"
        );
    }
    env.drained().await;
    let reviews = env.reviews(1).await;
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let review = &reviews[0];
    assert_eq!(
        (review.number, review.patch_set, review.account),
        (env.change, 4, env.bot)
    );
    assert_eq!(message(review), SUCCESS_1842);
    assert_eq!(labels(review), &json!({"Verified": 1}));
    assert_eq!(review.body["tag"], "autogenerated:bionicbb");
    assert_eq!(review.body["notify"], "OWNER_REVIEWERS");
    assert_eq!(env.bot_vote(4), Some(1));
    assert_eq!(
        env.bot_messages(),
        vec![format!("Patch Set 4: Verified+1\n\n{SUCCESS_1842}")]
    );
    // The same documents again (Jenkins restarted and re-sent): duplicates.
    let (code, body) = env
        .post("/jenkins", sample("04-presubmit-finalized-success.json"))
        .await;
    assert_eq!((code, body["status"].as_str()), (200, Some("duplicate")));
    let (status, _) = daemon.terminate(WAIT).await;
    assert!(status.success());
    // And after a restart.
    let _daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 200);
    env.drained().await;
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
}

#[tokio::test]
async fn only_completed_or_only_finalized_also_give_one_review_each() {
    let env = env(4).await;
    let _daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    // Another build that only sends FINALIZED.
    let finalized = edited("04-presubmit-finalized-success.json", |d| {
        d["build"]["number"] = json!(1900);
        d["build"]["url"] = json!("job/bionic-presubmit/1900/");
        d["build"]["full_url"] = json!("https://jenkins.example.org/job/bionic-presubmit/1900/");
    });
    let (code, _) = env.post("/", finalized).await;
    assert_eq!(code, 202);
    env.drained().await;
    let reviews = env.reviews(2).await;
    assert_eq!(reviews.len(), 2);
    assert_eq!(message(&reviews[0]), SUCCESS_1842);
    assert!(message(&reviews[1]).starts_with("bionic-presubmit #1900 checkbuild SUCCESS"));
    assert!(reviews.iter().all(|r| labels(r) == &json!({"Verified": 1})));
}

#[tokio::test]
async fn failure_votes_minus_one_with_the_removal_hint() {
    let env = env(3).await;
    let _daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("05-presubmit-finalized-failure.json"))
        .await;
    assert_eq!(code, 202);
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].patch_set, 3);
    assert_eq!(labels(&reviews[0]), &json!({"Verified": -1}));
    assert_eq!(
        message(&reviews[0]),
        "bionic-presubmit #1843 checkbuild FAILURE: https://jenkins.example.org/job/bionic-presubmit/1843/\n\
         If you believe this Verified-1 was in error, +1 the change (Verified+1) \
         and bionicbb will remove its -1 shortly."
    );
    assert_eq!(env.bot_vote(3), Some(-1));
}

#[tokio::test]
async fn inconclusive_results_post_without_a_vote() {
    let env = env(4).await;
    let _daemon = env.start(0).await;
    let unstable = edited("04-presubmit-finalized-success.json", |d| {
        d["build"]["status"] = json!("UNSTABLE");
        d["build"]["number"] = json!(1901);
    });
    let not_built = edited("03-presubmit-completed-success.json", |d| {
        d["build"]["status"] = json!("NOT_BUILT");
        d["build"]["number"] = json!(1902);
    });
    for body in [sample("19-aborted-no-full-url.json"), unstable, not_built] {
        let (code, answer) = env.post("/", body).await;
        assert_eq!(code, 202, "{answer}");
    }
    env.drained().await;
    let reviews = env.reviews(3).await;
    assert_eq!(reviews.len(), 3);
    for (review, word) in reviews.iter().zip(["ABORTED", "UNSTABLE", "NOT_BUILT"]) {
        assert_eq!(labels(review), &Value::Null, "{review:?}");
        let text = message(review);
        assert!(text.contains(&format!("checkbuild {word}: ")), "{text}");
        assert!(text.ends_with("bionicbb:retry"), "{text}");
    }
    assert!(message(&reviews[0]).contains(": job/bionic-presubmit/1852/"));
    assert_eq!(env.bot_vote(4), None);
}

#[tokio::test]
async fn clean_job_posts_out_directory_removed_without_a_vote() {
    let env = env(4).await;
    let _daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("20-clean-finalized-success.json"))
        .await;
    assert_eq!(code, 202);
    let reviews = env.reviews(1).await;
    assert!(
        message(&reviews[0]).starts_with("out/ directory removed (clean-bionic-presubmit #77: "),
        "{}",
        message(&reviews[0])
    );
    assert_eq!(labels(&reviews[0]), &Value::Null);
    assert_eq!(reviews[0].body["tag"], "autogenerated:bionicbb");
}

#[tokio::test]
async fn ignored_and_unknown_jobs_post_nothing() {
    let env = env(4).await;
    let daemon = env.start(0).await;
    let (code, body) = env
        .post("/", sample("21-lint-finalized-failure.json"))
        .await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ignored")));
    let (code, body) = env.post("/", sample("22-unknown-job.json")).await;
    assert_eq!((code, body["status"].as_str()), (202, Some("ignored")));
    // A real result afterwards is the only review.
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    env.drained().await;
    let reviews = env.reviews(1).await;
    assert_eq!(reviews.len(), 1);
    assert_eq!(message(&reviews[0]), SUCCESS_1842);
    assert!(daemon.output().contains("unknown job"));
}

#[tokio::test]
async fn stale_patch_sets_and_closed_changes_get_no_vote() {
    let env = env(4).await;
    let _daemon = env.start(0).await;
    // Built patch set 3, patch set 4 is current.
    let (code, _) = env
        .post("/", sample("05-presubmit-finalized-failure.json"))
        .await;
    assert_eq!(code, 202);
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].patch_set, 3);
    assert_eq!(labels(&reviews[0]), &Value::Null);
    assert!(message(&reviews[0]).ends_with(
        "This result is for patch set 3, but patch set 4 is now current, so bionicbb did not vote."
    ));
    assert_eq!((env.bot_vote(3), env.bot_vote(4)), (None, None));
    // The change is abandoned before the result of patch set 4 arrives.
    env.gerrit.set_status(env.change, Status::Abandoned);
    let (code, _) = env
        .post("/", sample("04-presubmit-finalized-success.json"))
        .await;
    assert_eq!(code, 202);
    let reviews = env.reviews(2).await;
    assert_eq!(labels(&reviews[1]), &Value::Null);
    assert_eq!(
        message(&reviews[1]),
        format!("{SUCCESS_1842}\n\nThis change is abandoned, so bionicbb did not vote.")
    );
    assert_eq!(env.bot_vote(4), None);
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let env = env(4).await;
    let daemon = env.start(0).await;
    let good = sample("03-presubmit-completed-success.json");
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        (env.url("/"), good.clone(), 401),
        (env.url("/?token=not-the-secret"), good.clone(), 401),
        (
            env.url("/drop-rejection"),
            br#"{"change":123456,"patchset":4}"#.to_vec(),
            401,
        ),
        (
            env.url(&format!("/?token={SECRET}")),
            sample("15-truncated.json"),
            400,
        ),
        (
            env.url(&format!("/?token={SECRET}")),
            sample("14-missing-name.json"),
            400,
        ),
        (
            env.url(&format!("/?token={SECRET}")),
            sample("16-path-like-change-id.json"),
            400,
        ),
        (
            env.url(&format!("/?token={SECRET}")),
            sample("17-ref-non-numeric-patch-set.json"),
            400,
        ),
        (
            env.url(&format!("/?token={SECRET}")),
            edited("03-presubmit-completed-success.json", |d| {
                d["build"]["log"] = json!("x".repeat(5 << 20));
            }),
            413,
        ),
    ];
    for (url, body, expected) in cases {
        let shown = url.replace(SECRET, "SECRET");
        let (code, answer) = env.post_raw(url, body).await;
        assert_eq!(code, expected, "{shown}: {answer}");
    }
    // Nothing reached Gerrit, nothing is pending.
    assert_eq!(env.pending().await, 0);
    assert!(env.gerrit.faults().requests().is_empty());
    assert!(env.gerrit.reviews_posted().is_empty());
    // The listener still works, and never logged a secret.
    let (code, _) = env.post("/", good).await;
    assert_eq!(code, 202);
    assert_eq!(env.reviews(1).await.len(), 1);
    let output = daemon.output();
    assert!(output.contains("refused a request without the shared secret"));
    assert!(
        !output.contains(SECRET) && !output.contains("not-the-secret"),
        "{output}"
    );
}

#[tokio::test]
async fn gerrit_unavailable_for_a_while_still_ends_in_one_review() {
    let env = env(4).await;
    env.gerrit
        .faults()
        .fail_next(Some(Method::POST), "/review", 3, Fault::status(503, "busy"));
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    env.drained().await;
    let reviews = env.reviews(1).await;
    assert_eq!(reviews.len(), 1);
    assert_eq!(env.bot_messages().len(), 1);
    let posts = env
        .gerrit
        .faults()
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST ") && r.ends_with("/review"))
        .count();
    assert_eq!(posts, 4, "three refused, one accepted");
    assert!(daemon.output().contains("retrying"));
}

#[tokio::test]
async fn a_crash_while_gerrit_is_slow_still_ends_in_one_review() {
    let env = env(4).await;
    env.gerrit.faults().fail_next(
        Some(Method::POST),
        "/review",
        1,
        Fault::Delay(Duration::from_secs(1)),
    );
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    // Kill it while the post is in flight.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env
        .gerrit
        .faults()
        .requests()
        .iter()
        .any(|r| r.starts_with("POST "))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no post reached Gerrit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill().await;
    // Whether or not that post lands once its delay is over, the restarted
    // listener ends with one review: give it the time to land.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let _daemon = env.start(0).await;
    env.drained().await;
    assert_eq!(env.reviews(1).await.len(), 1);
    assert_eq!(env.bot_messages().len(), 1);
    assert_eq!(env.bot_vote(4), Some(1));
}

#[tokio::test]
async fn a_review_that_landed_before_a_crash_is_not_posted_again() {
    let env = env(4).await;
    // Every post fails, with a one-second retry delay.
    env.gerrit.faults().fail_next(
        Some(Method::POST),
        "/review",
        1000,
        Fault::status(503, "busy"),
    );
    let daemon = env.start(1000).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env
        .gerrit
        .faults()
        .requests()
        .iter()
        .any(|r| r.starts_with("POST "))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no post reached Gerrit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill().await;
    // As if that attempt had reached Gerrit and only the answer was lost.
    env.gerrit.vote(env.change, 4, env.bot, "Verified", 1);
    env.gerrit.add_message(
        env.change,
        4,
        env.bot,
        &format!("Patch Set 4: Verified+1\n\n{SUCCESS_1842}"),
        "2025-11-25 06:33:20.000000000",
    );
    env.gerrit.faults().clear();
    let daemon = env.start(0).await;
    env.drained().await;
    assert!(env.gerrit.reviews_posted().is_empty());
    assert_eq!(env.bot_messages().len(), 1);
    assert!(
        daemon.output().contains("not posted again"),
        "{}",
        daemon.output()
    );
}

/// The job URL as Jenkins forms it and the equivalent forms of the same
/// job: one build, whatever the form, gets one review.
const JOB_URL_FORMS: &[&str] = &[
    "job/bionic-presubmit/",
    "job/bionic-presubmit//",
    "/job/bionic-presubmit/",
    "job/bionic-presubmit",
    "job//bionic-presubmit/",
    "job/bionic%2Dpresubmit/",
    "https://jenkins.example.org/job/bionic-presubmit/",
    "https://jenkins.example.org/jenkins/job/bionic-presubmit/",
    "view/all/job/bionic-presubmit/",
];

#[tokio::test]
async fn one_build_posted_with_equivalent_job_urls_gets_one_review() {
    let env = env(4).await;
    let daemon = env.start(0).await;
    for url in JOB_URL_FORMS {
        let doc = edited("03-presubmit-completed-success.json", |d| {
            d["url"] = json!(url);
        });
        let (code, body) = env.post("/", doc).await;
        assert!(code == 200 || code == 202, "{url}: {code} {body}");
    }
    env.drained().await;
    let reviews = env.gerrit.reviews_posted();
    assert_eq!(reviews.len(), 1, "{reviews:#?}\n{}", daemon.output());
    assert_eq!(env.bot_messages().len(), 1);
}

/// A ledger written before builds were keyed on their canonical job name
/// holds the key `job/bionic-presubmit/#1842` for a build already reviewed:
/// after the upgrade, that build posted again, in any form, is a duplicate.
#[tokio::test]
async fn a_build_reviewed_before_the_upgrade_is_not_reviewed_again() {
    let env = env(4).await;
    {
        let path = env.dir.path().join("state/bionicbb.sqlite3");
        let ledger = bionicbb_core::ledger::Ledger::open(&path).unwrap();
        let now = bionicbb_core::ledger::now() - 60;
        let item = bionicbb_core::ledger::NewOutboxItem {
            kind: "review".into(),
            order_key: env.change.to_string(),
            payload: json!({"patch_set": 4, "build": "bionic-presubmit #1842"}),
        };
        let first = ledger
            .record_completion("job/bionic-presubmit/#1842", &json!({}), item, now)
            .unwrap();
        assert!(first);
        let id = ledger.pending().unwrap()[0].id;
        ledger.mark_done(id, now).unwrap();
    }
    let daemon = env.start(0).await;
    for url in JOB_URL_FORMS {
        let doc = edited("03-presubmit-completed-success.json", |d| {
            d["url"] = json!(url);
        });
        let (code, body) = env.post("/", doc).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (200, Some("duplicate")),
            "{url}: {body}\n{}",
            daemon.output()
        );
    }
    env.drained().await;
    assert!(env.gerrit.reviews_posted().is_empty());
}

/// Gerrit applies the review two seconds after the client gave up on it:
/// the worker waits out the request in doubt before it looks for the
/// review, finds it, and does not post it again.
#[tokio::test]
async fn a_review_gerrit_applies_after_the_client_timeout_is_posted_once() {
    let env = env(4).await;
    env.set_gerrit_timeout("1s");
    env.gerrit.apply_reviews_late(1, Duration::from_secs(3));
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    env.late_reviews_landed().await;
    env.drained().await;
    let reviews = env.gerrit.reviews_posted();
    assert_eq!(reviews.len(), 1, "{reviews:#?}\n{}", daemon.output());
    assert_eq!(env.bot_messages().len(), 1);
    assert_eq!(env.bot_vote(4), Some(1));
    assert!(
        daemon.output().contains("not posted again"),
        "{}",
        daemon.output()
    );
}

/// The listener dies while its review post is in flight, and Gerrit applies
/// that post after the restart: the restarted listener waits it out too.
#[tokio::test]
async fn a_review_in_flight_when_the_listener_died_is_waited_out_after_the_restart() {
    let env = env(4).await;
    env.set_gerrit_timeout("1s");
    env.gerrit.apply_reviews_late(1, Duration::from_secs(2));
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    env.review_post_seen().await;
    daemon.kill().await;
    let daemon = env.start(0).await;
    env.late_reviews_landed().await;
    env.drained().await;
    let reviews = env.gerrit.reviews_posted();
    assert_eq!(reviews.len(), 1, "{reviews:#?}\n{}", daemon.output());
    assert_eq!(env.bot_messages().len(), 1);
    assert!(
        daemon.output().contains("not posted again"),
        "{}",
        daemon.output()
    );
}

/// Gerrit applies the review but answers 500, and a new patch set is
/// uploaded before the retry: the retry, which would now post without a
/// vote (the build's patch set is stale), still finds the first post.
#[tokio::test]
async fn a_review_applied_before_a_500_is_found_after_a_new_patch_set() {
    let env = env(4).await;
    env.gerrit.faults().fail_next(
        Some(Method::POST),
        "/review",
        1,
        Fault::StatusAfter {
            status: 500,
            content_type: "text/plain",
            body: "Internal server error".into(),
        },
    );
    // The retry's look at the change (the only one asking for its
    // messages) is answered 2 s late, after the new patch set.
    env.gerrit.faults().fail_next(
        Some(Method::GET),
        "MESSAGES",
        1,
        Fault::Delay(Duration::from_secs(2)),
    );
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("03-presubmit-completed-success.json"))
        .await;
    assert_eq!(code, 202);
    env.reviews(1).await;
    env.gerrit
        .add_patch_set(env.change, "alice@example.com", &["libc/bionic/malloc.cpp"]);
    env.drained().await;
    let reviews = env.gerrit.reviews_posted();
    assert_eq!(reviews.len(), 1, "{reviews:#?}\n{}", daemon.output());
    assert_eq!(env.bot_vote(4), Some(1));
    assert!(
        daemon.output().contains("not posted again"),
        "{}",
        daemon.output()
    );
}

#[tokio::test]
async fn drop_rejection_needs_a_human_plus_one_on_the_current_patch_set() {
    let env = env(3).await;
    let daemon = env.start(0).await;
    let (code, _) = env
        .post("/", sample("05-presubmit-finalized-failure.json"))
        .await;
    assert_eq!(code, 202);
    env.reviews(1).await;
    assert_eq!(env.bot_vote(3), Some(-1));
    let drop = |ps: u32| serde_json::to_vec(&json!({"changeid": KEY, "patchset": ps})).unwrap();

    // No human +1 yet: nothing happens.
    let (code, body) = env.post("/drop-rejection", drop(3)).await;
    assert_eq!((code, &body["queued"]), (202, &json!(true)));
    env.drained().await;
    assert_eq!(env.bot_vote(3), Some(-1));
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
    assert!(daemon.output().contains("no human has voted +1"));

    // A patch set that is not current: nothing happens either.
    env.gerrit.vote(env.change, 3, env.human, "Verified", 1);
    let (code, _) = env.post("/drop-rejection", drop(2)).await;
    assert_eq!(code, 202);
    env.drained().await;
    assert_eq!(env.bot_vote(3), Some(-1));
    assert!(
        daemon
            .output()
            .contains("nothing done: patch set 2 is not current")
    );

    // With the human +1 on the current patch set, the -1 goes.
    let (code, _) = env.post("/drop-rejection", drop(3)).await;
    assert_eq!(code, 202);
    let reviews = env.reviews(2).await;
    assert_eq!(reviews.len(), 2);
    assert_eq!(labels(&reviews[1]), &json!({"Verified": 0}));
    assert_eq!(
        message(&reviews[1]),
        "A reviewer voted Verified+1: bionicbb removed its Verified-1."
    );
    assert_eq!(reviews[1].body["tag"], "autogenerated:bionicbb");
    assert_eq!(env.bot_vote(3), None);
}

#[tokio::test]
async fn a_failure_that_arrives_after_a_human_verified_the_patch_set_does_not_vote() {
    let env = env(3).await;
    let daemon = env.start(0).await;
    // As gmail-listener sends it: the change as `project~number`.
    let change = format!("platform/bionic~{}", env.change);
    let drop = serde_json::to_vec(&json!({"changeid": change, "patchset": 3})).unwrap();
    // The build failed a minute ago, but its result has not arrived (its
    // notification was lost: catch-up finds it later). Meanwhile a
    // reviewer, who knows the failure is a flake, votes Verified+1; the
    // bot has no -1 to drop yet.
    env.gerrit.vote(env.change, 3, env.human, "Verified", 1);
    let (code, _) = env.post("/drop-rejection", drop).await;
    assert_eq!(code, 202);
    env.drained().await;
    assert!(daemon.output().contains("the bot has no negative vote"));
    let completed_ms = now_ms() - 60_000;
    let late = edited("05-presubmit-finalized-failure.json", |doc| {
        doc["build"]["timestamp"] = json!(completed_ms);
    });
    let (code, _) = env.post("/", late).await;
    assert_eq!(code, 202);
    let reviews = env.reviews(1).await;
    assert!(
        message(&reviews[0]).starts_with("bionic-presubmit #1843 checkbuild FAILURE"),
        "{}",
        message(&reviews[0])
    );
    assert_eq!(
        labels(&reviews[0]),
        &Value::Null,
        "the reviewer's verdict, given after the build finished, stands: {}",
        message(&reviews[0])
    );
    assert!(
        message(&reviews[0]).contains("Verified+1"),
        "the message says why: {}",
        message(&reviews[0])
    );
    assert_eq!(env.bot_vote(3), None);

    // A build that finishes after the reviewer's vote (a retry) votes as
    // usual: the reviewer has not seen that result.
    let retry = edited("05-presubmit-finalized-failure.json", |doc| {
        let build = &mut doc["build"];
        build["number"] = json!(1850);
        build["queue_id"] = json!(90200);
        build["timestamp"] = json!(now_ms());
        build["full_url"] = json!("https://jenkins.example.org/job/bionic-presubmit/1850/");
        build["url"] = json!("job/bionic-presubmit/1850/");
    });
    let (code, _) = env.post("/", retry).await;
    assert_eq!(code, 202);
    let reviews = env.reviews(2).await;
    assert_eq!(labels(&reviews[1]), &json!({"Verified": -1}));
    assert_eq!(env.bot_vote(3), Some(-1));
}

#[tokio::test]
async fn a_late_failure_a_human_overruled_also_takes_back_the_bots_earlier_plus_one() {
    let env = env(3).await;
    let daemon = env.start(0).await;
    // An earlier build of patch set 3 passed: the bot's Verified+1 is on it.
    env.gerrit.vote(env.change, 3, env.bot, "Verified", 1);
    // A retry failed a minute ago; its result was lost and comes late.
    // Meanwhile a reviewer voted Verified+1 (the bot has no -1 to drop).
    env.gerrit.vote(env.change, 3, env.human, "Verified", 1);
    let change = format!("platform/bionic~{}", env.change);
    let drop = serde_json::to_vec(&json!({"changeid": change, "patchset": 3})).unwrap();
    let (code, _) = env.post("/drop-rejection", drop).await;
    assert_eq!(code, 202);
    env.drained().await;
    let late = edited("05-presubmit-finalized-failure.json", |doc| {
        doc["build"]["timestamp"] = json!(now_ms() - 60_000);
    });
    let (code, _) = env.post("/", late).await;
    assert_eq!(code, 202);
    let reviews = env.reviews(1).await;
    // Had the result come in time, its -1 would have replaced the +1 and
    // the reviewer's vote would then have dropped it: the bot's vote ends
    // at none, and the reviewer's +1 stands.
    assert_eq!(
        labels(&reviews[0]),
        &json!({"Verified": 0}),
        "{}",
        message(&reviews[0])
    );
    assert!(
        message(&reviews[0]).contains("removed its earlier Verified+1"),
        "the message says so: {}",
        message(&reviews[0])
    );
    assert_eq!(env.bot_vote(3), None);
    assert!(daemon.output().contains("posted"), "{}", daemon.output());
}

#[tokio::test]
async fn sigterm_exits_zero_and_a_bad_config_exits_non_zero() {
    let env = env(1).await;
    let daemon = env.start(0).await;
    let (status, output) = daemon.terminate(WAIT).await;
    assert!(status.success(), "{output}");
    assert!(output.contains("stopped"), "{output}");

    let missing = env.dir.path().join("missing.toml");
    let daemon = Daemon::spawn(
        "build-listener",
        &["--config", &missing.display().to_string()],
    );
    let (status, output) = daemon.wait(WAIT).await;
    assert!(!status.success());
    assert!(output.contains("missing.toml"), "{output}");
    assert!(binary("build-listener").exists());
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses a Prometheus text exposition (format 0.0.4) strictly, panicking
/// at the first line a scraper would refuse: every non-comment line is
/// `name{label="value",...} value`, every sample belongs to a family
/// declared by `# TYPE` before it (a histogram's `_bucket`, `_sum` and
/// `_count` to the histogram), and the samples of a family are together.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types: std::collections::BTreeMap<String, String> = Default::default();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(is_metric_name(name), "HELP of {name:?}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(is_metric_name(name), "TYPE of {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "{line}: twice"
            );
            current = Some(name.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "sample name in {line:?}");
        let rest = &line[name_end..];
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(inner) => parse_labels(inner, line),
            None => (Vec::new(), rest),
        };
        let value = rest.strip_prefix(' ').expect("one space before the value");
        assert!(!value.contains(' '), "no timestamp expected: {line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        let family = if types.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|stem| types.get(*stem).is_some_and(|t| t == "histogram"))
                .unwrap_or_else(|| panic!("{line:?} belongs to no declared family"))
        };
        assert_eq!(
            current.as_deref(),
            Some(family),
            "{line:?} outside its family"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// The labels after a sample's `{`, and the text after the closing `}`.
fn parse_labels<'a>(mut s: &'a str, line: &str) -> (Vec<(String, String)>, &'a str) {
    let mut labels = Vec::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return (labels, after);
        }
        let eq = s
            .find("=\"")
            .unwrap_or_else(|| panic!("label=\"value\" in {line:?}"));
        let key = &s[..eq];
        assert!(
            is_metric_name(key) && !key.contains(':'),
            "label {key:?} in {line:?}"
        );
        let mut value = String::new();
        let mut chars = s[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break eq + 2 + i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.push((key.to_string(), value));
        s = &s[end..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
            assert!(!s.starts_with('}'), "trailing comma in {line:?}");
        } else {
            assert!(s.starts_with('}'), "labels separated by commas in {line:?}");
        }
    }
}

/// The value of the sample `name` with exactly `labels`.
fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

#[test]
fn the_exposition_parser_refuses_malformed_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 2\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let samples = parse_exposition(good);
    assert_eq!(
        value_of(&samples, "a_total", &[("x", "1"), ("y", "q\"")]),
        Some(2.0)
    );
    assert_eq!(value_of(&samples, "h_count", &[]), Some(1.0));
    let bad = [
        "a_total 1\n",                                      // no TYPE
        "# TYPE a_total counter\na_total{x=1} 1\n",         // unquoted
        "# TYPE a_total counter\na_total{x=\"1\"}1\n",      // no space
        "# TYPE a_total counter\na_total{x=\"1\" 1\n",      // unclosed
        "# TYPE a_total counter\na_total one\n",            // value
        "# TYPE a_total counter\na_total 1",                // no newline
        "# TYPE a counter\n# TYPE b counter\na 1\n",        // out of family
        "# TYPE a_total counter\na_total{x=\"1\",} 1\n",    // trailing comma
        "# TYPE a_total counter\n# TYPE a_total counter\n", // declared twice
    ];
    for text in bad {
        let result = std::panic::catch_unwind(|| parse_exposition(text));
        assert!(result.is_err(), "accepted {text:?}");
    }
}

#[tokio::test]
async fn metrics_and_status_over_http_follow_a_build_and_its_review() {
    let env = env(4).await;
    let _daemon = env.start(0).await;
    let metrics = || async {
        let response = env.http.get(env.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        parse_exposition(&response.text().await.unwrap())
    };
    let events = |samples: &[Sample], phase: &str| {
        value_of(
            samples,
            "bionicbb_events_received_total",
            &[("source", "jenkins"), ("type", phase)],
        )
    };
    let before = metrics().await;
    assert_eq!(events(&before, "COMPLETED"), None);

    for name in [
        "01-presubmit-queued.json",
        "02-presubmit-started.json",
        "03-presubmit-completed-success.json",
        "04-presubmit-finalized-success.json",
    ] {
        let (code, _) = env.post("/", sample(name)).await;
        assert!(code == 200 || code == 202, "{name}: {code}");
    }
    env.reviews(1).await;
    // The counter and the histogram are written right after the item is
    // marked done, one after the other: wait for both rather than for the
    // outbox.
    let deadline = tokio::time::Instant::now() + WAIT;
    let samples = loop {
        let samples = metrics().await;
        let posted = value_of(
            &samples,
            "bionicbb_reviews_posted_total",
            &[("outcome", "posted")],
        );
        let observed = value_of(&samples, "bionicbb_build_to_review_seconds_count", &[]);
        if posted.is_some() && observed.is_some() {
            break samples;
        }
        assert!(tokio::time::Instant::now() < deadline, "no review counted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        value_of(
            &samples,
            "bionicbb_reviews_posted_total",
            &[("outcome", "posted")]
        ),
        Some(1.0)
    );
    for phase in ["QUEUED", "STARTED", "COMPLETED", "FINALIZED"] {
        assert_eq!(events(&samples, phase), Some(1.0), "{phase}");
    }
    assert_eq!(
        value_of(&samples, "bionicbb_build_to_review_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        value_of(&samples, "bionicbb_outbox_retries_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value_of(&samples, "bionicbb_outbox_pending", &[]),
        Some(0.0)
    );

    let page = env
        .http
        .get(env.url("/status"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("123456"), "{page}");
    assert!(page.contains("bionic-presubmit"), "{page}");
    assert!(!page.contains(SECRET), "{page}");
}

#[tokio::test]
async fn an_older_build_reported_after_a_newer_one_does_not_replace_its_vote() {
    let env = env(3).await;
    let _daemon = env.start(0).await;
    // The newer build (#1843) fails and votes -1.
    let (code, _) = env
        .post("/", sample("05-presubmit-finalized-failure.json"))
        .await;
    assert_eq!(code, 202);
    env.reviews(1).await;
    assert_eq!(env.bot_vote(3), Some(-1));
    // The result of an older build of the same job on the same patch set
    // arrives only now (its notification was late, or catch-up found it).
    let older = edited("05-presubmit-finalized-failure.json", |doc| {
        let build = &mut doc["build"];
        build["number"] = json!(1840);
        build["queue_id"] = json!(90100);
        build["status"] = json!("SUCCESS");
        build["full_url"] = json!("https://jenkins.example.org/job/bionic-presubmit/1840/");
        build["url"] = json!("job/bionic-presubmit/1840/");
    });
    let (code, _) = env.post("/", older).await;
    assert_eq!(code, 202);
    let reviews = env.reviews(2).await;
    assert!(
        message(&reviews[1]).starts_with("bionic-presubmit #1840 checkbuild SUCCESS"),
        "{}",
        message(&reviews[1])
    );
    assert_eq!(
        labels(&reviews[1]),
        &Value::Null,
        "the older build reports without a vote: {}",
        message(&reviews[1])
    );
    assert_eq!(env.bot_vote(3), Some(-1), "the newer build's vote stands");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
