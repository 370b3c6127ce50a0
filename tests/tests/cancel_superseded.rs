//! Cancelling superseded builds, end to end: the real `gmail-listener`
//! (one `--once` poll per step) and, where a result is reported, the real
//! `build-listener`, sharing one ledger, against the fake Gerrit, Jenkins
//! and Gmail. Build both binaries first (`cargo build -p gmail-listener -p
//! build-listener`, or run the whole workspace's tests).

use std::time::Duration;

use axum::http::Method;
use bionicbb_core::config::Config;
use bionicbb_core::ledger::{self, Ledger, metric_names as names};
use bionicbb_tests::fakes::gerrit::{GerritFake, PostedReview, Status, format_timestamp};
use bionicbb_tests::fakes::gmail::GmailFake;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, CANCEL_OFF, Daemon, GMAIL_TOKEN, JENKINS_TOKEN,
    JENKINS_USER, RECONCILE_OFF, Setup, free_port,
};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{KEY, RUN};

const JOB: &str = "bionic-presubmit";
const SECRET: &str = "listener-shared-secret";
/// How long a review may take to reach Gerrit once its build ended.
const WAIT: Duration = Duration::from_secs(15);

struct Env {
    gerrit: GerritFake,
    jenkins: JenkinsFake,
    gmail: GmailFake,
    config: std::path::PathBuf,
    port: u16,
    sam: u64,
    change: u64,
    _dir: tempfile::TempDir,
}

/// The fakes, the sample change with one patch set, and a configuration
/// for both daemons; `edit` rewrites the configuration's text.
async fn env(edit: impl FnOnce(String) -> String) -> Env {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    let jenkins = JenkinsFake::start().await;
    let gmail = GmailFake::start().await;
    gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
    let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "pw-sam");
    jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
    let params = [
        ("REF", ""),
        ("CHANGE_ID", ""),
        ("PROJECT", ""),
        ("CHANGE_NUMBER", ""),
        ("PATCHSET", ""),
        ("LUNCH_TARGET", "aosp_arm64-eng"),
    ];
    jenkins.add_job(JOB, &params);
    jenkins.add_job("clean-bionic-presubmit", &params[..5]);
    gmail.require_token(Some(GMAIL_TOKEN));
    gmail.add_label("gerrit");
    let port = free_port();
    jenkins.set_notification_endpoint(format!("http://127.0.0.1:{port}/jenkins?token={SECRET}"));
    let dir = tempfile::tempdir().unwrap();
    let config = Setup {
        dir: dir.path().to_path_buf(),
        gerrit_url: gerrit.url().to_string(),
        jenkins_url: jenkins.url(),
        gmail_url: gmail.base_url(),
        listener_port: port,
        secret: SECRET.to_string(),
        extra: String::new(),
    }
    .write_config();
    // Cancelling is on, as by default, unless `edit` turns it off.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(CANCEL_OFF), "the harness's [jobs] table");
    let text = text.replacen(CANCEL_OFF, "", 1);
    std::fs::write(&config, edit(text)).unwrap();
    let change = gerrit.create_change("platform/bionic", "master", KEY, dana, "Fix strtod");
    gerrit.add_patch_set(change, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    Env {
        gerrit,
        jenkins,
        gmail,
        config,
        port,
        sam,
        change,
        _dir: dir,
    }
}

/// The configuration's `[jobs]` table with `key = value` added.
fn jobs_key(key: &str, value: &str) -> impl FnOnce(String) -> String {
    let line = format!("[jobs]\n{key} = {value}\n");
    move |text| text.replacen("[jobs]\n", &line, 1)
}

/// The configuration with a `[review]` table of `key = value`.
fn review_key(key: &str, value: &str) -> impl FnOnce(String) -> String {
    let table = format!("\n[review]\n{key} = {value}\n");
    move |text| format!("{text}{table}")
}

impl Env {
    fn mail_change(&self) -> MailChange {
        MailChange {
            host: "gerrit.example.org".into(),
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: KEY.into(),
            number: self.change,
            subject: "Fix strtod".into(),
            owner: Person::new("Dana Dev", "dana@example.com"),
        }
    }

    /// Uploads patch set `ps` (the first exists already) and mails it.
    fn upload(&self, ps: u32) -> String {
        if ps > 1 {
            let added = self.gerrit.add_patch_set(
                self.change,
                "dana@example.com",
                &["libc/bionic/strtod.cpp"],
            );
            assert_eq!(added, ps);
        }
        self.mail_upload(ps, 0)
    }

    /// Mails that patch set `ps` was uploaded; `later` seconds later than
    /// another mail about it (a copy has its own date and Message-ID).
    fn mail_upload(&self, ps: u32, later: i64) -> String {
        let dana = Person::new("Dana Dev", "dana@example.com");
        let date = ledger::now() + i64::from(ps) + later;
        let raw = mailgen::patch_set_uploaded(&self.mail_change(), ps, &dana, date);
        self.gmail.deliver(&raw, &["gerrit"])
    }

    /// Closes the change on Gerrit (`merged` or `abandon`) and mails it.
    fn close(&self, kind: &str, ps: u32) -> String {
        let status = if kind == "merged" {
            Status::Merged
        } else {
            Status::Abandoned
        };
        self.gerrit.set_status(self.change, status);
        self.mail_closed(kind, ps, 0)
    }

    /// Mails that the change was closed, whatever Gerrit says; `later`
    /// seconds later than another such mail.
    fn mail_closed(&self, kind: &str, ps: u32, later: i64) -> String {
        let dana = Person::new("Dana Dev", "dana@example.com");
        let date = ledger::now() + 60 + later;
        let raw = mailgen::closed(&self.mail_change(), ps, &dana, kind, date);
        self.gmail.deliver(&raw, &["gerrit"])
    }

    /// `bionicbb:retry` by a trusted reviewer on patch set `ps`, on Gerrit
    /// and by mail.
    fn retry(&self, ps: u32) -> String {
        let date = ledger::now() + 30;
        let text = format!("Patch Set {ps}:\n\nbionicbb:retry");
        self.gerrit
            .add_message(self.change, ps, self.sam, &text, &format_timestamp(date, 0));
        let sam = Person::new("Sam Reviewer", "sam@example.com");
        let raw = mailgen::comment(&self.mail_change(), ps, &sam, "", "bionicbb:retry", date);
        self.gmail.deliver(&raw, &["gerrit"])
    }

    /// One `gmail-listener --once` run, which must succeed.
    async fn once(&self) -> String {
        let (status, output) = self.once_status().await;
        assert!(status.success(), "exit {status:?}; output:\n{output}");
        output
    }

    /// One `gmail-listener --once` run.
    async fn once_status(&self) -> (std::process::ExitStatus, String) {
        let config = self.config.display().to_string();
        Daemon::spawn("gmail-listener", &["--config", &config, "--once"])
            .wait(RUN)
            .await
    }

    async fn build_listener(&self) -> Daemon {
        let config = self.config.display().to_string();
        let daemon = Daemon::spawn("build-listener", &["--config", &config]);
        daemon.wait_for_output("listening on", WAIT).await;
        daemon
    }

    fn ledger(&self) -> Ledger {
        let config = Config::load(&self.config).unwrap();
        Ledger::open(&config.ledger_path()).unwrap()
    }

    /// `PATCHSET` of each item waiting in the queue.
    fn queued(&self) -> Vec<String> {
        self.jenkins
            .queue()
            .into_iter()
            .map(|q| q.params["PATCHSET"].clone())
            .collect()
    }

    /// `(PATCHSET, result)` of each build.
    fn builds(&self) -> Vec<(String, Option<String>)> {
        self.jenkins
            .builds()
            .into_iter()
            .map(|b| (b.params["PATCHSET"].clone(), b.result))
            .collect()
    }

    fn jenkins_posts(&self, path: &str) -> usize {
        self.jenkins
            .faults()
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST ") && r.contains(path))
            .count()
    }

    /// The change queries Gerrit saw.
    fn gerrit_requests(&self) -> usize {
        self.gerrit
            .faults()
            .requests()
            .iter()
            .filter(|r| r.contains("/changes/"))
            .count()
    }

    /// Waits until `n` reviews were posted, and returns them.
    async fn reviews(&self, n: usize) -> Vec<PostedReview> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reviews = self.gerrit.reviews_posted();
            if reviews.len() >= n {
                return reviews;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} reviews posted, {n} expected: {reviews:?}",
                reviews.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the counter `name{labels}` reaches `n`.
    async fn counter_reaches(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        let labels = names::labels(labels);
        let ledger = self.ledger();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = ledger
                .counters()
                .unwrap()
                .into_iter()
                .find(|(c, l, _)| c == name && *l == labels)
                .map_or(0, |(_, _, v)| v);
            if value >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}{{{labels}}} is {value}, {n} expected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn message(review: &PostedReview) -> &str {
    review.body["message"].as_str().unwrap_or_default()
}

fn votes(review: &PostedReview) -> usize {
    review.body["labels"].as_object().map_or(0, |l| l.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_patch_set_cancels_the_queued_item_of_the_older_one_once() {
    let env = env(|t| t).await;
    env.upload(1);
    let output = env.once().await;
    assert_eq!(env.queued(), ["1"], "{output}");

    let second = env.upload(2);
    let output = env.once().await;
    assert_eq!(env.queued(), ["2"], "item 1 cancelled, 2 queued:\n{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 1);
    assert!(output.contains("queue item 1 cancelled"), "{output}");
    assert!(env.gmail.in_trash().contains(&second));

    // A copy of the mail, and the same mail seen again by a restarted
    // listener: nothing is cancelled twice, nothing built twice.
    let copy = env.mail_upload(2, 100);
    let output = env.once().await;
    assert_eq!(env.queued(), ["2"], "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 1, "{output}");
    assert_eq!(env.jenkins.triggers(), 2, "{output}");
    assert!(env.gmail.in_trash().contains(&copy));
    // The cancelled item needs no result: build-listener does not look
    // for it.
    let unreported = env.ledger().unreported_builds(0, i64::MAX, 10).unwrap();
    assert_eq!(unreported.len(), 1, "only patch set 2's: {unreported:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_build_of_an_older_patch_set_is_stopped_and_posts_one_line_without_a_vote() {
    let env = env(|t| t).await;
    let _listener = env.build_listener().await;
    env.upload(1);
    env.once().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();

    env.upload(2);
    let output = env.once().await;
    assert!(
        output.contains(&format!("build #{number} stopped")),
        "{output}"
    );
    assert_eq!(env.queued(), ["2"], "{output}");
    let reviews = env.reviews(1).await;
    assert_eq!(
        env.builds(),
        [("1".to_string(), Some("ABORTED".to_string()))]
    );
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0].patch_set, 1);
    assert_eq!(
        message(&reviews[0]),
        format!("{JOB} #{number} stopped: superseded by patch set 2.")
    );
    assert_eq!(votes(&reviews[0]), 0, "never a vote: {reviews:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_message_off_a_stopped_build_posts_nothing() {
    let env = env(review_key("superseded_message", "false")).await;
    let _listener = env.build_listener().await;
    env.upload(1);
    env.once().await;
    env.jenkins.start_next(JOB).await.unwrap();
    env.upload(2);
    env.once().await;
    env.counter_reaches(names::REVIEWS_POSTED, &[("outcome", "superseded")], 1)
        .await;
    assert_eq!(
        env.builds(),
        [("1".to_string(), Some("ABORTED".to_string()))]
    );
    assert!(env.gerrit.reviews_posted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_stops_what_runs_and_merging_cancels_what_waits() {
    let env = env(|t| t).await;
    let _listener = env.build_listener().await;
    env.upload(1);
    env.once().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    env.close("abandon", 1);
    let output = env.once().await;
    assert!(
        output.contains(&format!("build #{number} stopped")),
        "{output}"
    );
    let reviews = env.reviews(1).await;
    assert_eq!(
        message(&reviews[0]),
        format!("{JOB} #{number} stopped: change abandoned.")
    );
    assert_eq!(votes(&reviews[0]), 0);

    // Restored, patch set 2 queued, then merged: its item is cancelled.
    env.gerrit.set_status(env.change, Status::New);
    env.upload(2);
    env.once().await;
    assert_eq!(env.queued(), ["2"]);
    env.close("merged", 2);
    let output = env.once().await;
    assert!(env.queued().is_empty(), "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 2, "{output}");

    // Another closing mail: nothing left to cancel, so Gerrit is not asked.
    let before = env.gerrit_requests();
    let id = env.mail_closed("merged", 2, 100);
    let output = env.once().await;
    assert_eq!(env.gerrit_requests(), before, "{output}");
    assert!(env.gmail.in_trash().contains(&id));
    assert_eq!(env.gerrit.reviews_posted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_mail_gerrit_does_not_confirm_cancels_nothing() {
    let env = env(|t| t).await;
    env.upload(1);
    env.once().await;
    // The change is still open on Gerrit: a forged (or stale) mail.
    let id = env.mail_closed("abandon", 1, 0);
    let output = env.once().await;
    assert_eq!(env.queued(), ["1"], "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 0);
    assert!(env.gmail.in_trash().contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cancelling_off_nothing_is_cancelled_and_closing_mails_ask_nothing() {
    let env = env(jobs_key("cancel_superseded", "false")).await;
    env.upload(1);
    env.once().await;
    env.upload(2);
    env.once().await;
    assert_eq!(env.queued(), ["1", "2"]);
    let before = env.gerrit_requests();
    env.close("abandon", 2);
    let output = env.once().await;
    assert_eq!(env.queued(), ["1", "2"], "{output}");
    assert_eq!(env.gerrit_requests(), before, "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_refused_for_good_is_logged_and_harmless() {
    let env = env(|t| t).await;
    env.upload(1);
    env.once().await;
    env.jenkins.faults().fail_next(
        Some(Method::POST),
        "/queue/cancelItem",
        1,
        Fault::status(
            403,
            "Access denied: bionicbb is missing the Item/Cancel permission",
        ),
    );
    let second = env.upload(2);
    let output = env.once().await;
    assert!(
        output.contains("cannot cancel the superseded build"),
        "{output}"
    );
    assert!(output.contains("403"), "{output}");
    assert_eq!(env.queued(), ["1", "2"], "2 built all the same:\n{output}");
    assert!(env.gmail.in_trash().contains(&second), "the mail is done");
    // Not tried again: the refusal settled it.
    env.mail_upload(2, 100);
    env.once().await;
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 1);
    assert_eq!(env.queued(), ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_fault_is_tried_again_next_poll() {
    let env = env(|t| t).await;
    env.upload(1);
    env.once().await;
    env.jenkins.faults().fail_next(
        Some(Method::POST),
        "/queue/cancelItem",
        1,
        Fault::status(503, "Service Unavailable"),
    );
    let second = env.upload(2);
    let (status, output) = env.once_status().await;
    assert!(
        !status.success(),
        "a mail is left for the next poll:\n{output}"
    );
    assert!(output.contains("mail left for the next poll"), "{output}");
    assert_eq!(env.queued(), ["1", "2"], "{output}");
    assert!(!env.gmail.in_trash().contains(&second), "the mail waits");
    let output = env.once().await;
    assert_eq!(env.queued(), ["2"], "{output}");
    assert!(env.gmail.in_trash().contains(&second));
    assert_eq!(env.jenkins.triggers(), 2, "2 is not built twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_jenkins_forgot_is_found_by_its_build_and_stopped() {
    let env = env(|t| t).await;
    let _listener = env.build_listener().await;
    // Jenkins forgets items as soon as they leave the queue: the cancel
    // gets 404, and the item's page too.
    env.jenkins.set_left_item_ttl(Duration::ZERO);
    env.upload(1);
    env.once().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    env.upload(2);
    let output = env.once().await;
    assert!(
        output.contains(&format!("build #{number} stopped")),
        "{output}"
    );
    let reviews = env.reviews(1).await;
    assert_eq!(votes(&reviews[0]), 0);
    assert!(message(&reviews[0]).ends_with("superseded by patch set 2."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_came_before_the_stop_is_posted_without_a_vote() {
    let env = env(|t| t).await;
    let _listener = env.build_listener().await;
    env.upload(1);
    env.once().await;
    // Build 1 fails, and its notification is lost on the way.
    env.jenkins.clear_notification_endpoint();
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "FAILURE").await);
    env.upload(2);
    let output = env.once().await;
    // The stop reaches a finished build: Jenkins leaves it as it is.
    assert!(
        output.contains(&format!("build #{number} stopped")),
        "{output}"
    );
    assert_eq!(
        env.builds(),
        [("1".to_string(), Some("FAILURE".to_string()))]
    );
    // The real result arrives late: posted as usual, without the -1.
    env.jenkins.set_notification_endpoint(format!(
        "http://127.0.0.1:{}/jenkins?token={SECRET}",
        env.port
    ));
    assert!(env.jenkins.resend_completion(JOB, number).await);
    let reviews = env.reviews(1).await;
    assert!(message(&reviews[0]).contains("FAILURE"), "{reviews:?}");
    assert_eq!(votes(&reviews[0]), 0, "never a -1: {reviews:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_the_current_patch_set_leaves_its_running_build_alone() {
    let env = env(|t| t).await;
    env.upload(1);
    env.once().await;
    env.jenkins.start_next(JOB).await.unwrap();
    env.retry(1);
    let output = env.once().await;
    assert_eq!(env.jenkins.triggers(), 2, "the retry builds:\n{output}");
    assert_eq!(env.queued(), ["1"]);
    assert_eq!(env.builds(), [("1".to_string(), None)], "still running");
    assert_eq!(env.jenkins_posts("/stop"), 0, "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 0, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_pass_that_finds_a_newer_patch_set_cancels_the_older_builds() {
    let env = env(|t| t.replacen(RECONCILE_OFF, "reconcile_interval = \"10m\"\n", 1)).await;
    // The first pass builds patch set 1 (no mail at all).
    let output = env.once().await;
    assert_eq!(env.queued(), ["1"], "{output}");
    // Patch set 2's mail is lost: the next pass builds it and cancels 1.
    env.gerrit
        .add_patch_set(env.change, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let output = env.once().await;
    assert_eq!(env.queued(), ["2"], "{output}");
    assert_eq!(env.jenkins_posts("/queue/cancelItem"), 1, "{output}");
}
