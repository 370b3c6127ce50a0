//! Commands in a comment mail run only when Gerrit shows their text written
//! by the comment's author: in the change message, or (Gerrit 3.3+, text
//! typed in the reply box) in a comment published with it. The real
//! `gmail-listener --once` against the fake Gerrit, Jenkins and Gmail, plus
//! the client's `GET /changes/{id}/comments` against the fake.

use std::process::ExitStatus;
use std::time::Duration;

use bionicbb_core::config::Secret;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::gerrit::{ChangeRef, GerritClient};
use bionicbb_core::netrc::Credentials;
use bionicbb_core::retry::RetryPolicy;
use bionicbb_tests::fakes::gerrit::{GerritFake, format_timestamp};
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{BOT_HTTP_PASSWORD, BOT_USER};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{self, fixture};
use serde_json::Value;

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

/// The shared gmail-listener world with the sample change at four patch
/// sets (the fixture's patch set is current).
struct World {
    base: world::World,
    change: u64,
}

impl std::ops::Deref for World {
    type Target = world::World;
    fn deref(&self) -> &world::World {
        &self.base
    }
}

impl World {
    async fn new() -> World {
        let base = world::World::new().await;
        let change = base.sample_change(4);
        World { base, change }
    }

    /// One `gmail-listener --once` run, which must succeed.
    async fn once(&self) -> (ExitStatus, String) {
        let (status, output) = self.base.once().await;
        assert!(status.success(), "exit {status:?}; output:\n{output}");
        (status, output)
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
        let change = MailChange::sample(self.change);
        mailgen::comment(&change, 4, author, votes, text, date)
    }
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

/// `04-comment-retry-2.x.eml` (Gerrit 2.13: no comment date) with its
/// sender and Message-ID replaced.
fn retry_2x_mail(sender: &str, message_id: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("04-comment-retry-2.x.eml")).unwrap();
    let from = "From: \"Dana Dev (Code Review)\"";
    let id = "1456224069331-0c4d8e22@";
    assert!(text.contains(from) && text.contains(id));
    text.replace(from, &format!("From: \"{sender} (Code Review)\""))
        .replace(id, &format!("{message_id}@"))
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_undated_comment_mail_builds_nothing_and_another_sender_is_refused() {
    let base = world::World::new().await;
    let change = base.sample_change(2);
    base.gerrit.add_message(
        change,
        2,
        base.sam,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_date(1_456_224_069),
    );
    let genuine = base.deliver(&retry_2x_mail("Sam Reviewer", "1456224069331-0c4d8e22"));
    let (status, output) = base.once().await;
    assert!(status.success(), "{output}");
    assert_eq!(base.jenkins.triggers(), 1, "the genuine retry: {output}");
    assert_eq!(base.gmail.in_trash(), vec![genuine]);

    // A copy of it with a new Message-ID: the same Gerrit message, the same
    // command, already done.
    base.deliver(&retry_2x_mail("Sam Reviewer", "1456300000000-feedbeef"));
    let (status, output) = base.once().await;
    assert!(status.success(), "{output}");
    assert_eq!(base.jenkins.triggers(), 1, "a replayed copy: {output}");
    assert!(output.contains("already triggered"), "{output}");

    // A copy claiming another sender: Gerrit's message is Sam's, not theirs.
    base.deliver(&retry_2x_mail("Mallory", "1456300000001-deadbeef"));
    let (status, output) = base.once().await;
    assert!(status.success(), "{output}");
    assert_eq!(base.jenkins.triggers(), 1, "a copy from Mallory: {output}");
    assert!(
        output.contains(&no_comment_matching_on(change, 2)),
        "{output}"
    );
    assert_eq!(base.gmail.in_trash().len(), 3, "every copy is done with");
}

fn no_comment_matching_on(change: u64, ps: u32) -> String {
    format!("Gerrit has no comment on change {change} patch set {ps} matching this mail")
}
