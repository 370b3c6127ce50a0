//! End-to-end: a build the bot triggered whose notifications never reached
//! build-listener still gets its review, because build-listener asks
//! Jenkins about it. The real `build-listener` binary against the fake
//! Gerrit and the fake Jenkins; the trigger is recorded in the ledger the
//! way gmail-listener records it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bionicbb_core::config::Secret;
use bionicbb_core::jenkins::{JenkinsClient, JobPath, QueueItemId};
use bionicbb_core::ledger::{self, Begin, EffectKey, JenkinsItem, Ledger};
use bionicbb_core::retry::RetryPolicy;
use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, JENKINS_TOKEN, JENKINS_USER, Setup, free_port,
};
use serde_json::json;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const SECRET: &str = "listener-secret-1234";
const JOB: &str = "bionic-presubmit";
const WAIT: Duration = Duration::from_secs(15);
/// How often the listener asks Jenkins in these tests.
const INTERVAL: &str = "200ms";
/// Several passes of the listener at [`INTERVAL`].
const PASSES: Duration = Duration::from_millis(1500);

struct Env {
    gerrit: GerritFake,
    jenkins: JenkinsFake,
    client: JenkinsClient,
    _dir: tempfile::TempDir,
    config: PathBuf,
    ledger: Ledger,
    port: u16,
    change: u64,
}

async fn env() -> Env {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let human = gerrit.add_account("Alice", "alice@example.com", "alice", "alice-pw");
    let change = gerrit.create_change("platform/bionic", "master", KEY, human, "Fix malloc");
    gerrit.add_patch_set(change, "alice@example.com", &["libc/bionic/malloc.cpp"]);
    let jenkins = JenkinsFake::start().await;
    jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
    jenkins.add_job(JOB, &[("REF", ""), ("CHANGE_ID", "")]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let setup = Setup {
        dir: dir.path().to_path_buf(),
        gerrit_url: gerrit.url().to_string(),
        jenkins_url: jenkins.url(),
        gmail_url: "http://127.0.0.1:9/".to_string(),
        listener_port: port,
        secret: SECRET.to_string(),
        extra: String::new(),
    };
    let config = setup.write_config();
    // The listener asks often; triggers older than 2 minutes are asked about.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "\n[jobs]\n",
        &format!("catch_up_interval = \"{INTERVAL}\"\n\n[jobs]\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let ledger = Ledger::open(&dir.path().join("state/bionicbb.sqlite3")).unwrap();
    let client = JenkinsClient::new(
        url::Url::parse(&jenkins.url()).unwrap(),
        JENKINS_USER,
        Secret::new(JENKINS_TOKEN),
        Duration::from_secs(5),
        RetryPolicy::once(Duration::from_secs(5)),
    )
    .unwrap();
    Env {
        gerrit,
        jenkins,
        client,
        _dir: dir,
        config,
        ledger,
        port,
        change,
    }
}

impl Env {
    async fn start(&self) -> Daemon {
        let config = self.config.display().to_string();
        let daemon = Daemon::spawn("build-listener", &["--config", &config]);
        daemon.wait_for_output("listening on", WAIT).await;
        daemon
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "REF".to_string(),
                format!("refs/changes/56/{}/1", self.change),
            ),
            ("CHANGE_ID".to_string(), KEY.to_string()),
        ])
    }

    /// Triggers the build on Jenkins and records it in the ledger as
    /// gmail-listener does, `age_s` seconds ago: the effect owns the queue
    /// item Jenkins answered with.
    async fn trigger(&self, age_s: i64) -> QueueItemId {
        let params = self.params();
        let job = JobPath::parse(JOB).unwrap();
        let id = self.client.trigger(&job, &params).await.unwrap();
        let key = EffectKey::build(self.change, 1, JOB, &params);
        let payload = json!({ "job": JOB, "params": params });
        let begun = self
            .ledger
            .begin_effect(&key, "build", &payload, ledger::now() - age_s)
            .unwrap();
        assert_eq!(begun, Begin::New);
        let result = json!({ "queue_id": id.0 });
        self.ledger
            .own_jenkins_items(&key, &[JenkinsItem::Queue(id.0)])
            .unwrap();
        self.ledger.record_effect_progress(&key, &result).unwrap();
        self.ledger
            .finish_effect(&key, &result, ledger::now() - age_s)
            .unwrap();
        id
    }

    async fn reviews(&self, n: usize) -> Vec<bionicbb_tests::fakes::gerrit::PostedReview> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reviews = self.gerrit.reviews_posted();
            if reviews.len() >= n {
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
}

#[tokio::test]
async fn a_build_whose_notifications_never_arrive_gets_one_review_once_it_finishes() {
    let env = env().await;
    // No notification endpoint: Jenkins tells nobody about the build.
    env.trigger(300).await;
    let listener = env.start().await;
    let number = env.jenkins.start_next(JOB).await.expect("the build starts");

    // Running: nothing to post yet, however often the listener asks.
    tokio::time::sleep(PASSES).await;
    assert!(
        env.gerrit.reviews_posted().is_empty(),
        "a running build was reviewed"
    );

    assert!(env.jenkins.finish(JOB, number, "SUCCESS").await);
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].number, env.change);
    assert_eq!(reviews[0].patch_set, 1);
    assert_eq!(reviews[0].body["labels"], json!({ "Verified": 1 }));
    let message = reviews[0].body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{JOB} #{number}")) && message.contains("SUCCESS"),
        "{message}"
    );

    // The real notification arrives late: a duplicate.
    env.jenkins.set_notification_endpoint(format!(
        "http://127.0.0.1:{}/jenkins?token={SECRET}",
        env.port
    ));
    assert!(env.jenkins.resend_completion(JOB, number).await);
    let statuses: Vec<_> = env
        .jenkins
        .deliveries()
        .into_iter()
        .map(|d| d.outcome)
        .collect();
    assert_eq!(
        statuses,
        vec![Ok(200), Ok(200)],
        "both documents are duplicates"
    );
    tokio::time::sleep(PASSES).await;
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
    let output = listener.kill().await;
    assert!(
        output.contains("duplicate of an earlier document"),
        "{output}"
    );
}

#[tokio::test]
async fn a_build_reported_by_its_notification_is_not_reviewed_again() {
    let env = env().await;
    env.jenkins.set_notification_endpoint(format!(
        "http://127.0.0.1:{}/jenkins?token={SECRET}",
        env.port
    ));
    env.trigger(300).await;
    let listener = env.start().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "FAILURE").await);
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].body["labels"], json!({ "Verified": -1 }));
    tokio::time::sleep(PASSES).await;
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
    listener.kill().await;
}

#[tokio::test]
async fn a_cancelled_trigger_is_recorded_once_as_without_result() {
    let env = env().await;
    let id = env.trigger(300).await;
    env.client.cancel_queue_item(id).await.unwrap();
    let listener = env.start().await;
    listener
        .wait_for_output("was cancelled before it started", WAIT)
        .await;
    tokio::time::sleep(PASSES).await;
    let output = listener.kill().await;
    assert_eq!(
        output.matches("was cancelled before it started").count(),
        1,
        "{output}"
    );
    assert!(env.gerrit.reviews_posted().is_empty());
}

#[tokio::test]
async fn a_recent_trigger_is_left_to_its_notification() {
    let env = env().await;
    env.trigger(10).await;
    let listener = env.start().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "SUCCESS").await);
    tokio::time::sleep(PASSES).await;
    assert!(env.gerrit.reviews_posted().is_empty());
    listener.kill().await;
}

#[tokio::test]
async fn a_queue_item_jenkins_forgot_is_matched_to_its_build() {
    let env = env().await;
    // Jenkins forgets an item that left the queue (after 5 minutes).
    env.jenkins.set_left_item_ttl(Duration::ZERO);
    env.trigger(600).await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "FAILURE").await);
    let listener = env.start().await;
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].body["labels"], json!({ "Verified": -1 }));
    tokio::time::sleep(PASSES).await;
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
    listener.kill().await;
}

#[tokio::test]
async fn a_deleted_build_is_recorded_once_as_without_result() {
    let env = env().await;
    env.trigger(300).await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "SUCCESS").await);
    assert!(env.jenkins.delete_build(JOB, number));
    let listener = env.start().await;
    let gone = format!("Jenkins no longer has build #{number}");
    listener.wait_for_output(&gone, WAIT).await;
    tokio::time::sleep(PASSES).await;
    let output = listener.kill().await;
    assert_eq!(output.matches(&gone).count(), 1, "{output}");
    assert!(env.gerrit.reviews_posted().is_empty());
}

#[tokio::test]
async fn a_jenkins_outage_only_delays_the_review() {
    let env = env().await;
    env.trigger(300).await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "SUCCESS").await);
    env.jenkins.faults().fail_next(
        None,
        "/",
        u32::MAX,
        Fault::status(503, "Jenkins is restarting"),
    );
    let mut listener = env.start().await;
    listener
        .wait_for_output("catch-up: Jenkins does not answer", WAIT)
        .await;
    tokio::time::sleep(PASSES).await;
    assert!(listener.try_exited().is_none(), "{}", listener.output());
    assert!(env.gerrit.reviews_posted().is_empty());
    // One line per pass, not one per request or per build.
    let output = listener.output();
    let lines = output.matches("catch-up: Jenkins does not answer").count();
    let requests = env.jenkins.faults().requests().len();
    assert!(
        lines < requests,
        "{lines} log lines for {requests} requests"
    );

    env.jenkins.faults().clear();
    let reviews = env.reviews(1).await;
    assert_eq!(reviews[0].body["labels"], json!({ "Verified": 1 }));
    listener.kill().await;
}
