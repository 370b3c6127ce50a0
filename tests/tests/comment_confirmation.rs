//! Commands in a comment mail run only when Gerrit shows their text written
//! by the comment's author: in the change message, or (Gerrit 3.3+, text
//! typed in the reply box) in a comment published with it. The real
//! `gmail-listener --once` against the fake Gerrit, Jenkins and Gmail, plus
//! the client's `GET /changes/{id}/comments` against the fake.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use bionicbb_core::config::Secret;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::gerrit::{ChangeRef, GerritClient};
use bionicbb_core::netrc::Credentials;
use bionicbb_core::retry::RetryPolicy;
use bionicbb_tests::fakes::gerrit::{GerritFake, format_timestamp};
use bionicbb_tests::fakes::gmail::GmailFake;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, GMAIL_TOKEN, JENKINS_TOKEN, JENKINS_USER, Setup,
};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use serde_json::Value;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const SECRET: &str = "listener-shared-secret";
const RUN: Duration = Duration::from_secs(40);
/// The comment date of fixture 10: 2023-03-14 17:02:11 UTC.
const FIXTURE_10_DATE: i64 = 1_678_813_331;
/// The mail of a Gerrit 3.8 review on patch set 4 by Sam Reviewer:
/// `Code-Review+1 Verified+1`, and `bionicbb:retry` typed in the reply box,
/// which the mail shows under `Patchset:`.
const FIXTURE_10: &str = "10-comment-patchset-level-3.x-qp.eml";
/// What Gerrit 3.3+ stores as the change message of that review.
const ONE_COMMENT: &str = "Patch Set 4: Code-Review+1 Verified+1\n\n(1 comment)";
const LEVEL_TEXT: &str =
    "bionicbb:retry\nThe first run hit the known pthread flake; the change itself looks fine.";

struct World {
    gerrit: GerritFake,
    jenkins: JenkinsFake,
    gmail: GmailFake,
    /// `/drop-rejection` requests received (the fixture adds `Verified+1`).
    drops: Arc<Mutex<Vec<Value>>>,
    config: PathBuf,
    sam: u64,
    stranger: u64,
    /// The sample change, with four patch sets (the fixture's is current).
    change: u64,
    _dir: tempfile::TempDir,
}

/// A stand-in for build-listener's `/drop-rejection`: records the body,
/// answers 202.
async fn drop_rejection_stub() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/drop-rejection",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {SECRET}"));
                if !authorized {
                    return StatusCode::UNAUTHORIZED;
                }
                let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                log.lock().unwrap().push(body);
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, seen)
}

impl World {
    async fn new() -> World {
        bionicbb_core::tls::install_crypto_provider();
        let gerrit = GerritFake::start().await;
        let jenkins = JenkinsFake::start().await;
        let gmail = GmailFake::start().await;
        gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
        let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
        let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "pw-sam");
        let stranger = gerrit.add_account("Mallory", "stranger@evil.org", "mallory", "pw-m");
        jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
        jenkins.add_job(
            "bionic-presubmit",
            &[
                ("REF", ""),
                ("CHANGE_ID", ""),
                ("PROJECT", ""),
                ("CHANGE_NUMBER", ""),
                ("PATCHSET", ""),
                ("LUNCH_TARGET", "aosp_arm64-eng"),
            ],
        );
        gmail.require_token(Some(GMAIL_TOKEN));
        gmail.add_label("gerrit");
        let (port, drops) = drop_rejection_stub().await;
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
        let change = gerrit.create_change(
            "platform/bionic",
            "master",
            KEY,
            dana,
            "Fix strtod rounding for denormals",
        );
        for _ in 0..4 {
            gerrit.add_patch_set(change, "dana@example.com", &["libc/bionic/strtod.cpp"]);
        }
        World {
            gerrit,
            jenkins,
            gmail,
            drops,
            config,
            sam,
            stranger,
            change,
            _dir: dir,
        }
    }

    fn deliver(&self, raw: &[u8]) -> String {
        self.gmail.deliver(raw, &["gerrit"])
    }

    async fn once(&self) -> (ExitStatus, String) {
        let config = self.config.display().to_string();
        let (status, output) = Daemon::spawn("gmail-listener", &["--config", &config, "--once"])
            .wait(RUN)
            .await;
        assert!(status.success(), "exit {status:?}; output:\n{output}");
        (status, output)
    }

    /// Every build queued or started, with its parameters.
    fn builds(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut all: Vec<_> = self
            .jenkins
            .queue()
            .into_iter()
            .map(|q| (q.job, q.params))
            .collect();
        all.extend(self.jenkins.builds().into_iter().map(|b| (b.job, b.params)));
        all
    }

    /// The `GET .../comments` requests Gerrit saw.
    fn comment_reads(&self) -> usize {
        self.gerrit
            .faults()
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains("/comments"))
            .count()
    }

    /// A Gerrit 3.x mail from `mailgen`, about patch set 4 of the change.
    fn mail(&self, author: &Person, votes: &str, text: &str, date: i64) -> Vec<u8> {
        let change = MailChange {
            host: "gerrit.example.org".into(),
            project: "platform/bionic".into(),
            branch: "master".into(),
            change_key: KEY.into(),
            number: self.change,
            subject: "Fix strtod rounding for denormals".into(),
            owner: Person::new("Dana Dev", "dana@example.com"),
        };
        mailgen::comment(&change, 4, author, votes, text, date)
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/data/emails/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gerrit_date(secs: i64) -> String {
    format_timestamp(secs, 0)
}

fn no_comment_matching(change: u64) -> String {
    format!("Gerrit has no comment on change {change} patch set 4 matching this mail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_only_in_a_patchset_level_comment_builds_once() {
    let w = World::new().await;
    let date = gerrit_date(FIXTURE_10_DATE);
    w.gerrit.add_message(w.change, 4, w.sam, ONE_COMMENT, &date);
    w.gerrit.add_comment(
        w.change,
        4,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        LEVEL_TEXT,
        // Gerrit stores the comment a few milliseconds after the message.
        &format_timestamp(FIXTURE_10_DATE, 4_000_000),
    );
    let id = w.deliver(&fixture(FIXTURE_10));
    let (_, output) = w.once().await;
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].0, "bionic-presubmit");
    assert_eq!(builds[0].1["PATCHSET"], "4");
    assert_eq!(builds[0].1["CHANGE_NUMBER"], w.change.to_string());
    assert_eq!(w.comment_reads(), 1, "{output}");
    assert_eq!(
        w.drops.lock().unwrap().len(),
        1,
        "Verified+1 is on the line"
    );
    assert_eq!(w.gmail.in_trash(), vec![id]);
    // The same mail again (a copy) builds nothing more.
    w.deliver(&fixture(FIXTURE_10));
    let (_, output) = w.once().await;
    assert_eq!(w.builds().len(), 1, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_the_change_message_needs_no_comments() {
    let w = World::new().await;
    // A 3.x server with patchset-level comments turned off, or a review
    // posted through REST with a message: the text is in the message.
    w.gerrit.add_message(
        w.change,
        4,
        w.sam,
        &format!("{ONE_COMMENT}\n\n{LEVEL_TEXT}"),
        &gerrit_date(FIXTURE_10_DATE),
    );
    w.deliver(&fixture(FIXTURE_10));
    let (_, output) = w.once().await;
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.comment_reads(), 0, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_comment_message_without_the_text_on_gerrit_builds_nothing() {
    let w = World::new().await;
    let date = gerrit_date(FIXTURE_10_DATE);
    w.gerrit.add_message(w.change, 4, w.sam, ONE_COMMENT, &date);
    // Sam's real comment says something else.
    w.gerrit.add_comment(
        w.change,
        4,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        "The first run hit the known pthread flake.",
        &date,
    );
    let id = w.deliver(&fixture(FIXTURE_10));
    let (_, output) = w.once().await;
    assert!(w.builds().is_empty(), "{output}");
    assert!(w.drops.lock().unwrap().is_empty(), "{output}");
    assert!(w.gerrit.reviews_posted().is_empty(), "{output}");
    assert!(output.contains(&no_comment_matching(w.change)), "{output}");
    assert_eq!(w.comment_reads(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_text_copying_a_trusted_reviewers_comment_date_runs_nothing() {
    let w = World::new().await;
    let date = FIXTURE_10_DATE + 3600;
    let sam = Person::new("Sam Reviewer", "sam@example.com");
    // Sam's real review: a patchset-level comment without any command, and
    // at the same second a command from an untrusted account.
    w.gerrit.add_message(
        w.change,
        4,
        w.sam,
        "Patch Set 4:\n\n(1 comment)",
        &gerrit_date(date),
    );
    w.gerrit.add_comment(
        w.change,
        4,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        "Thanks, looks good.",
        &gerrit_date(date),
    );
    w.gerrit.add_comment(
        w.change,
        4,
        w.stranger,
        "libc/bionic/strtod.cpp",
        Some(42),
        "bionicbb:retry",
        &gerrit_date(date),
    );
    let forged = w.deliver(&w.mail(&sam, "", "Thanks, looks good.\nbionicbb:retry", date));
    let (_, output) = w.once().await;
    assert!(w.builds().is_empty(), "{output}");
    assert!(w.gerrit.reviews_posted().is_empty(), "{output}");
    assert!(output.contains(&no_comment_matching(w.change)), "{output}");
    assert_eq!(w.gmail.in_trash(), vec![forged.clone()]);

    // The real text, in a mail generated the same way, does run.
    w.gerrit.add_message(
        w.change,
        4,
        w.sam,
        "Patch Set 4:\n\n(1 comment)",
        &gerrit_date(date + 60),
    );
    w.gerrit.add_comment(
        w.change,
        4,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        "bionicbb:retry",
        &gerrit_date(date + 60),
    );
    w.deliver(&w.mail(&sam, "", "bionicbb:retry", date + 60));
    let (_, output) = w.once().await;
    assert_eq!(w.builds().len(), 1, "{output}");
}

fn client(fake: &GerritFake) -> GerritClient {
    GerritClient::new(
        fake.url(),
        Some(Credentials {
            login: BOT_USER.to_string(),
            password: Secret::new(BOT_HTTP_PASSWORD),
        }),
        Duration::from_secs(5),
        RetryPolicy {
            attempts: 3,
            attempt_timeout: Duration::from_secs(5),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_published_comments_in_gerrits_shape() {
    let w = World::new().await;
    let date = gerrit_date(FIXTURE_10_DATE);
    w.gerrit.add_comment(
        w.change,
        4,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        LEVEL_TEXT,
        &date,
    );
    w.gerrit.add_comment(
        w.change,
        3,
        w.stranger,
        "libc/bionic/strtod.cpp",
        Some(7),
        "nit",
        &date,
    );

    // The raw answer: guard line, path → list, no `path` in the entries,
    // authors with details.
    let raw = reqwest::Client::new()
        .get(format!("{}changes/{}/comments", w.gerrit.url(), w.change))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json = raw.strip_prefix(")]}'\n").expect("guard line");
    let value: Value = serde_json::from_str(json).unwrap();
    let level = &value["/PATCHSET_LEVEL"][0];
    assert!(level.get("path").is_none(), "{value}");
    assert_eq!(level["patch_set"], 4);
    assert_eq!(level["author"]["_account_id"], w.sam);
    assert_eq!(level["author"]["email"], "sam@example.com");
    assert_eq!(level["author"]["name"], "Sam Reviewer");
    assert_eq!(value["libc/bionic/strtod.cpp"][0]["line"], 7);

    // Through the client, authenticated, with a passing fault retried.
    let gerrit = client(&w.gerrit);
    w.gerrit
        .faults()
        .fail_next(None, "/comments", 1, Fault::status(503, "busy"));
    let change = ChangeRef::project_number("platform/bionic", w.change).unwrap();
    let comments = gerrit.comments(&change).await.unwrap();
    assert_eq!(comments.len(), 2);
    let level = &comments["/PATCHSET_LEVEL"][0];
    assert_eq!(level.message, LEVEL_TEXT);
    assert_eq!(level.patch_set, Some(4));
    assert_eq!(level.path, None);
    assert_eq!(level.updated, date);
    let author = level.author.as_ref().unwrap();
    assert_eq!(author.account_id, w.sam);
    assert_eq!(author.email.as_deref(), Some("sam@example.com"));
    assert_eq!(comments["libc/bionic/strtod.cpp"][0].line, Some(7));
    assert!(
        w.gerrit
            .faults()
            .requests()
            .iter()
            .any(|r| r.contains("/a/changes/") && r.contains("/comments")),
        "authenticated path"
    );

    // Unknown changes are 404s, as everywhere else.
    let missing = ChangeRef::project_number("platform/bionic", 999_999).unwrap();
    let err = gerrit.comments(&missing).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}
