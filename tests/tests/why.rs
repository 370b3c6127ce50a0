//! `bionicbb:why`, end to end: the real `gmail-listener` (one `--once`
//! run per step) and, where a build's result is reported, the real
//! `build-listener`, sharing one ledger, against the fake Gerrit, Jenkins
//! and Gmail. The one reply explains, from the ledger, what the bot
//! decided and did about the patch set the comment is on.

use std::time::Duration;

use axum::http::Method;
use bionicbb_core::config::Config;
use bionicbb_core::ledger::{self, Ledger};
use bionicbb_tests::fakes::gerrit::{GerritFake, format_timestamp};
use bionicbb_tests::fakes::gmail::GmailFake;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, GMAIL_TOKEN, JENKINS_TOKEN, JENKINS_USER,
    Setup, assert_ok, free_port,
};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{KEY, RUN, World, fixture};

const JOB: &str = "bionic-presubmit";
const SECRET: &str = "listener-shared-secret";
/// How long build-listener may take to act on a notification.
const WAIT: Duration = Duration::from_secs(15);

fn mail_change(n: u64) -> MailChange {
    MailChange::sample(n)
}

/// `text` commented by `who` (account `account`) on patch set `ps` of
/// change `n`, on Gerrit; returns the mail about it.
fn comment(
    gerrit: &GerritFake,
    account: u64,
    who: &Person,
    n: u64,
    ps: u32,
    text: &str,
) -> Vec<u8> {
    let date = ledger::now();
    gerrit.add_message(
        n,
        ps,
        account,
        &format!("Patch Set {ps}:\n\n{text}"),
        &format_timestamp(date, 0),
    );
    mailgen::comment(&mail_change(n), ps, who, "", text, date)
}

fn sam() -> Person {
    Person::new("Sam Reviewer", "sam@example.com")
}

fn messages(gerrit: &GerritFake) -> Vec<String> {
    gerrit
        .reviews_posted()
        .iter()
        .map(|r| r.body["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The one reply starting as a why does, among those posted.
fn the_why(gerrit: &GerritFake) -> String {
    let whys: Vec<String> = messages(gerrit)
        .into_iter()
        .filter(|m| m.starts_with("What bionicbb decided and did about patch set"))
        .collect();
    assert_eq!(whys.len(), 1, "{whys:?}");
    whys[0].clone()
}

fn assert_has(text: &str, line: &str) {
    assert!(text.contains(line), "missing {line:?} in:\n{text}");
}

/// Both daemons sharing one ledger, against the fakes.
struct Env {
    gerrit: GerritFake,
    jenkins: JenkinsFake,
    gmail: GmailFake,
    config: std::path::PathBuf,
    sam: u64,
    change: u64,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    let jenkins = JenkinsFake::start().await;
    let gmail = GmailFake::start().await;
    gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let dana = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
    let sam = gerrit.add_account("Sam Reviewer", "sam@example.com", "sam", "pw-sam");
    jenkins.add_user(JENKINS_USER, JENKINS_TOKEN);
    jenkins.add_job(
        JOB,
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
    let change = gerrit.create_change("platform/bionic", "master", KEY, dana, "Fix strtod");
    gerrit.add_patch_set(change, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    Env {
        gerrit,
        jenkins,
        gmail,
        config,
        sam,
        change,
        _dir: dir,
    }
}

impl Env {
    /// Mails that patch set 1 was uploaded.
    fn upload(&self) {
        let dana = Person::new("Dana Dev", "dana@example.com");
        let raw = mailgen::patch_set_uploaded(&mail_change(self.change), 1, &dana, ledger::now());
        self.gmail.deliver(&raw, &["gerrit"]);
    }

    /// Sam's `bionicbb:why` on patch set 1, on Gerrit and by mail; returns
    /// the mail.
    fn why(&self) -> Vec<u8> {
        let mail = comment(
            &self.gerrit,
            self.sam,
            &sam(),
            self.change,
            1,
            "bionicbb:why",
        );
        self.gmail.deliver(&mail, &["gerrit"]);
        mail
    }

    async fn once(&self) -> String {
        let config = self.config.display().to_string();
        let (status, output) = Daemon::spawn("gmail-listener", &["--config", &config, "--once"])
            .wait(RUN)
            .await;
        assert_ok(status, &output);
        output
    }

    async fn build_listener(&self) -> Daemon {
        let config = self.config.display().to_string();
        let daemon = Daemon::spawn("build-listener", &["--config", &config]);
        daemon.wait_for_output("listening on", WAIT).await;
        daemon
    }

    fn ledger(&self) -> Ledger {
        Ledger::open(&Config::load(&self.config).unwrap().ledger_path()).unwrap()
    }

    /// Waits until `what` holds.
    async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_on_a_built_patch_set_names_the_job_the_build_and_its_result_once() {
    let env = env().await;
    let _listener = env.build_listener().await;
    env.upload();
    env.once().await;
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "SUCCESS").await);
    env.until("the build's review", || {
        env.gerrit.reviews_posted().len() == 1
    })
    .await;
    let mail = env.why();
    let output = env.once().await;
    let why = the_why(&env.gerrit);
    let link = format!("{}job/{JOB}/{number}/", with_slash(&env.jenkins.url()));
    assert_has(&why, &format!("- Built: {JOB} #{number} SUCCESS: {link}\n"));
    assert!(
        why.ends_with("Now, bionicbb would build this patch set (bionic-presubmit)."),
        "{why}"
    );
    assert!(!why.contains("not kept"), "{why}");
    let review = env.gerrit.reviews_posted().pop().unwrap();
    assert_eq!(review.patch_set, 1);
    assert_eq!(review.body["tag"], "autogenerated:bionicbb");
    assert!(review.body.get("labels").is_none(), "{:?}", review.body);
    assert_eq!(env.jenkins.triggers(), 1, "why builds nothing: {output}");
    // The same mail again, to a new process: the one reply stands.
    env.gmail.deliver(&mail, &["gerrit"]);
    env.once().await;
    the_why(&env.gerrit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_with_a_review_pending_in_the_outbox_says_so() {
    let env = env().await;
    let listener = env.build_listener().await;
    env.upload();
    env.once().await;
    // Gerrit refuses the build's review for now: it waits in the outbox.
    env.gerrit.faults().fail_next(
        Some(Method::POST),
        "/review",
        1000,
        Fault::status(503, "Service Unavailable"),
    );
    let number = env.jenkins.start_next(JOB).await.unwrap();
    assert!(env.jenkins.finish(JOB, number, "FAILURE").await);
    let ledger = env.ledger();
    env.until("a failed attempt at the review", || {
        ledger
            .pending()
            .unwrap()
            .iter()
            .any(|item| item.attempts > 0)
    })
    .await;
    listener.terminate(WAIT).await;
    env.gerrit.faults().clear();
    env.why();
    env.once().await;
    let why = the_why(&env.gerrit);
    assert_has(&why, &format!("- Built: {JOB} #{number} FAILURE"));
    assert_has(
        &why,
        &format!(
            "- Waiting: the result of {JOB} #{number} is still to be posted; next attempt at "
        ),
    );
    assert_has(&why, "failed attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_on_a_skipped_patch_set_names_the_rule_and_the_e_mail_or_file() {
    for (committer, file, reason) in [
        (
            "dana@evil.org",
            "libc/bionic/strtod.cpp",
            "committer dana@evil.org is not in a trusted domain",
        ),
        (
            "dana@example.com",
            "libc/CleanSpec.mk",
            "the change touches libc/CleanSpec.mk (CleanSpec.mk)",
        ),
    ] {
        let w = World::new().await;
        let n = w.change(2, committer, &[file]);
        w.deliver(&fixture("02-newpatchset-2.x.eml"));
        let (status, output) = w.once().await;
        assert_ok(status, &output);
        assert!(w.builds().is_empty(), "{output}");
        w.deliver(&comment(&w.gerrit, w.sam, &sam(), n, 2, "bionicbb:why"));
        let (status, output) = w.once().await;
        assert_ok(status, &output);
        let why = the_why(&w.gerrit);
        // What the ledger recorded, and what the policy says now.
        assert_has(&why, &format!("- Not built: {reason}.\n"));
        assert!(
            why.ends_with(&format!(
                "Now, bionicbb would not build this patch set: {reason}."
            )),
            "{why}"
        );
        assert!(w.builds().is_empty(), "why builds nothing: {output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_by_an_untrusted_commenter_does_nothing_and_a_trusted_why_lists_it_as_ignored() {
    let w = World::new().await;
    let n = w.sample_change(2);
    let mallory = Person::new("Mallory", "stranger@evil.org");
    w.deliver(&comment(
        &w.gerrit,
        w.stranger,
        &mallory,
        n,
        2,
        "bionicbb:why",
    ));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.gerrit.reviews_posted().is_empty(), "{output}");
    assert!(output.contains("not a trusted commenter"), "{output}");
    // Sam asks: Mallory's command is listed as not run, and why.
    w.deliver(&comment(&w.gerrit, w.sam, &sam(), n, 2, "bionicbb:why"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let why = the_why(&w.gerrit);
    assert_has(
        &why,
        "- Command not run: bionicbb:why by Mallory: commands from stranger@evil.org ignored: \
         not a trusted commenter.",
    );
    assert!(w.builds().is_empty(), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_found_by_reconcile_is_answered_once_whichever_path_sees_it() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    let mail = comment(&w.gerrit, w.sam, &sam(), n, 2, "bionicbb:why");
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let why = the_why(&w.gerrit);
    let item = w.jenkins.queue().into_iter().map(|q| q.id).max().unwrap();
    assert_has(
        &why,
        &format!(
            "- Queued: bionic-presubmit ({}queue/item/{item}/).",
            with_slash(&w.jenkins.url())
        ),
    );
    assert!(
        why.starts_with("What bionicbb decided and did about patch set 2 of change"),
        "{why}"
    );
    // The mail about the same comment comes late: nothing more.
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    the_why(&w.gerrit);
    assert_eq!(w.gerrit.reviews_posted().len(), 1, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_by_an_untrusted_commenter_found_by_reconcile_does_nothing() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let mallory = Person::new("Mallory", "stranger@evil.org");
    let _ = comment(&w.gerrit, w.stranger, &mallory, n, 2, "bionicbb:why");
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.gerrit.reviews_posted().is_empty(), "{output}");
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_why_in_doubt_is_looked_for_as_it_was_written_not_as_it_would_read_now() {
    let w = World::new().await;
    let n = w.sample_change(2);
    let id = w.deliver(&comment(&w.gerrit, w.sam, &sam(), n, 2, "bionicbb:why"));
    // The post hangs until the client gives up: its outcome is unknown.
    w.gerrit.faults().fail_next(
        Some(Method::POST),
        "/review",
        1,
        Fault::Delay(Duration::from_secs(6)),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert_eq!(w.labelled(), vec![id.clone()]);
    // It landed after all, as written then; since then the change was
    // merged, so the answer would read differently now.
    let written = format!(
        "What bionicbb decided and did about patch set 2 of change {n}:\n\
         - Nothing recorded.\n\
         Now, bionicbb would build this patch set (bionic-presubmit)."
    );
    w.gerrit.add_message(
        n,
        2,
        w.bot,
        &format!("Patch Set 2:\n\n{written}"),
        &format_timestamp(ledger::now(), 0),
    );
    w.gerrit
        .set_status(n, bionicbb_tests::fakes::gerrit::Status::Merged);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains("why: was posted before"), "{output}");
    assert!(w.gerrit.reviews_posted().is_empty(), "not posted again");
    assert!(w.labelled().is_empty(), "{output}");
}
