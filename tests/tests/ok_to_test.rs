//! `bionicbb:ok-to-test` through the real `gmail-listener` binary against
//! the fake Gerrit, Jenkins and Gmail: a trusted reviewer vouches for the
//! patch set of an untrusted committer, which is then built once; the
//! vouch holds for that patch set only, and an untrusted account's
//! vouches for nothing. On the mail path (each run a new process, so
//! every step also survives a restart) and on the reconcile path.

use bionicbb_core::ledger::{self, VouchRecord};
use bionicbb_tests::fakes::gerrit::format_timestamp;
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{RECONCILE_DEBUG, World};

/// The committer of the changes here: not in a trusted domain.
const OUTSIDER: &str = "x@outsider.org";

fn sam() -> Person {
    Person::new("Sam Reviewer", "sam@example.com")
}

fn dana() -> Person {
    Person::new("Dana Dev", "dana@example.com")
}

fn mallory() -> Person {
    Person::new("Mallory", "stranger@evil.org")
}

fn mail_change(number: u64) -> MailChange {
    MailChange::sample(number)
}

/// A change of the outsider with `patch_sets` patch sets.
fn outsiders_change(w: &World, patch_sets: u32) -> u64 {
    w.change(patch_sets, OUTSIDER, &["libc/bionic/strtod.cpp"])
}

/// The upload mail of patch set `ps`.
fn upload_mail(number: u64, ps: u32) -> Vec<u8> {
    mailgen::patch_set_uploaded(&mail_change(number), ps, &dana(), ledger::now())
}

/// `author` (Gerrit account `account`) comments `text` on patch set `ps`:
/// the change message on Gerrit, and the mail about it.
fn comment(w: &World, number: u64, ps: u32, account: u64, author: &Person, text: &str) -> Vec<u8> {
    let now = ledger::now();
    w.gerrit.add_message(
        number,
        ps,
        account,
        &format!("Patch Set {ps}:\n\n{text}"),
        &format_timestamp(now, 0),
    );
    mailgen::comment(&mail_change(number), ps, author, "", text, now)
}

/// `PATCHSET` of every build, in order (Jenkins coalesces a second
/// trigger of a build still in its queue into the first: count those with
/// `triggers`).
fn built(w: &World) -> Vec<String> {
    w.builds()
        .into_iter()
        .map(|(_, params)| params["PATCHSET"].clone())
        .collect()
}

fn vouches(w: &World, number: u64) -> Vec<VouchRecord> {
    w.ledger().recent_vouches(Some(number), 10).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_to_test_on_patch_set_1_builds_it_once_and_does_not_authorize_patch_set_2() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    let upload = upload_mail(n, 1);
    w.deliver(&upload);
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "triggers");
    assert!(
        output.contains("committer x@outsider.org is not in a trusted domain"),
        "{output}"
    );

    let ok = comment(&w, n, 1, w.sam, &sam(), "bionicbb:ok-to-test");
    w.deliver(&ok);
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    let recorded = vouches(&w, n);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (recorded[0].patch_set, recorded[0].who()),
        (1, "Sam Reviewer")
    );
    assert_eq!(recorded[0].by_email, "sam@example.com");

    // The same comment mail again, the upload mail again, and a second
    // ok-to-test by another trusted reviewer: the same build, done.
    w.deliver(&ok);
    w.deliver(&upload);
    let again = comment(&w, n, 1, w.dana, &dana(), "bionicbb:ok-to-test");
    w.deliver(&again);
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "built once\n{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    assert_eq!(vouches(&w, n).len(), 1, "the first vouch is kept");
    assert_eq!(vouches(&w, n)[0].who(), "Sam Reviewer");

    // Patch set 2 of the same uploader is not vouched for.
    w.gerrit
        .add_patch_set(n, OUTSIDER, &["libc/bionic/strtod.cpp"]);
    w.deliver(&upload_mail(n, 2));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    assert!(
        output.contains("committer x@outsider.org is not in a trusted domain"),
        "{output}"
    );
    // Its own ok-to-test builds it.
    w.deliver(&comment(&w, n, 2, w.sam, &sam(), "bionicbb:ok-to-test"));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1", "2"], "{output}");
    assert_eq!(w.jenkins.triggers(), 2, "triggers");
    let patch_sets: Vec<u32> = vouches(&w, n).iter().map(|v| v.patch_set).collect();
    assert_eq!(patch_sets.len(), 2, "{patch_sets:?}");
    assert!(
        patch_sets.contains(&1) && patch_sets.contains(&2),
        "{patch_sets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ok_to_test_vouches_for_nothing() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    w.deliver(&comment(
        &w,
        n,
        1,
        w.stranger,
        &mallory(),
        "bionicbb:ok-to-test",
    ));
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "triggers");
    assert!(output.contains("not a trusted commenter"), "{output}");
    assert!(vouches(&w, n).is_empty());
    // A trusted reviewer's retry after it still meets an unvouched patch set.
    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:retry"));
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "triggers");
    assert!(
        output.contains("commands not run: committer x@outsider.org is not in a trusted domain"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_builds_a_vouched_patch_set_and_not_an_unvouched_one() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:ok-to-test"));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    let retry = comment(&w, n, 1, w.dana, &dana(), "bionicbb:retry");
    w.deliver(&retry);
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "the retry builds again\n{output}");
    // A replayed retry mail: that command already ran.
    w.deliver(&retry);
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");

    w.gerrit
        .add_patch_set(n, OUTSIDER, &["libc/bionic/strtod.cpp"]);
    w.deliver(&comment(
        &w,
        n,
        2,
        w.sam,
        &sam(),
        "bionicbb:retry\nbionicbb:arm",
    ));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert_eq!(built(&w), ["1"], "{output}");
    assert!(
        output.contains("commands not run: committer x@outsider.org is not in a trusted domain"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_before_the_ok_to_test_stays_unbuilt_when_its_mail_comes_again() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    let retry = comment(&w, n, 1, w.sam, &sam(), "bionicbb:retry");
    w.deliver(&retry);
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "triggers");
    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:ok-to-test"));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    // The retry is judged on what stood when it was given.
    w.deliver(&retry);
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_to_test_on_a_trusted_committers_patch_set_just_builds_it_once() {
    let w = World::new().await;
    let n = w.sample_change(1);
    w.deliver(&upload_mail(n, 1));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:ok-to-test"));
    let output = w.once_ok().await;
    assert_eq!(
        built(&w),
        ["1"],
        "the automatic build, already done\n{output}"
    );
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    assert!(output.contains("nothing to vouch for"), "{output}");
    assert!(vouches(&w, n).is_empty(), "nothing was vouched for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ok_to_test_in_the_reply_box_vouches_for_later_commands_too() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    // Gerrit 3.3+: the text typed in the reply box is a patchset-level
    // comment; the change message only says so.
    let now = ledger::now();
    w.gerrit.add_message(
        n,
        1,
        w.sam,
        "Patch Set 1:\n\n(1 comment)",
        &format_timestamp(now, 0),
    );
    w.gerrit.add_comment(
        n,
        1,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        "bionicbb:ok-to-test",
        &format_timestamp(now, 4_000_000),
    );
    let ok = mailgen::comment(&mail_change(n), 1, &sam(), "", "bionicbb:ok-to-test", now);
    w.deliver(&ok);
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    w.deliver(&comment(&w, n, 1, w.dana, &dana(), "bionicbb:retry"));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert!(
        output.contains("bionicbb:retry by dana@example.com"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_to_test_found_by_reconcile_builds_once_and_for_that_patch_set_only() {
    let w = World::reconciling("").await;
    let n = outsiders_change(&w, 1);
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "triggers");
    // No mail: the pass finds the ok-to-test.
    let now = ledger::now();
    w.gerrit.add_message(
        n,
        1,
        w.sam,
        "Patch Set 1:\n\nbionicbb:ok-to-test",
        &format_timestamp(now, 0),
    );
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    assert_eq!(vouches(&w, n).len(), 1);
    // Its mail comes late: the same build, done; another pass: nothing.
    let late = mailgen::comment(&mail_change(n), 1, &sam(), "", "bionicbb:ok-to-test", now);
    w.deliver(&late);
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "triggers");
    // A stranger's ok-to-test and a retry: only the retry builds.
    w.gerrit.add_message(
        n,
        1,
        w.stranger,
        "Patch Set 1:\n\nbionicbb:ok-to-test",
        &format_timestamp(ledger::now(), 0),
    );
    w.gerrit.add_message(
        n,
        1,
        w.dana,
        "Patch Set 1:\n\nbionicbb:retry",
        &format_timestamp(ledger::now(), 0),
    );
    let output = w.once_ok_logging(RECONCILE_DEBUG).await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert!(output.contains("not a trusted commenter"), "{output}");
    // Patch set 2: unvouched, so neither its upload nor a retry builds.
    w.gerrit
        .add_patch_set(n, OUTSIDER, &["libc/bionic/strtod.cpp"]);
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:retry",
        &format_timestamp(ledger::now(), 0),
    );
    let output = w.once_ok_logging(RECONCILE_DEBUG).await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert_eq!(built(&w), ["1"], "{output}");
    assert!(
        output.contains("commands not run: committer x@outsider.org is not in a trusted domain"),
        "{output}"
    );
    assert_eq!(vouches(&w, n).len(), 1, "patch set 1's only");
}

/// The reply that answers a `bionicbb:why`, among those posted.
fn the_why(w: &World) -> String {
    let whys: Vec<String> = w
        .gerrit
        .reviews_posted()
        .iter()
        .map(|r| r.body["message"].as_str().unwrap_or_default().to_string())
        .filter(|m| m.starts_with("What bionicbb decided and did about patch set"))
        .collect();
    assert_eq!(whys.len(), 1, "{whys:?}");
    whys[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_on_a_vouched_patch_set_says_who_vouched_and_that_the_skip_was_explained() {
    let w = World::new().await;
    let n = outsiders_change(&w, 1);
    w.deliver(&upload_mail(n, 1));
    let output = w.once_ok().await;
    assert!(built(&w).is_empty(), "{output}");
    let explanations = w.gerrit.reviews_posted().len();
    assert_eq!(explanations, 1, "the skip is explained: {output}");

    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:ok-to-test"));
    let output = w.once_ok().await;
    assert_eq!(built(&w), ["1"], "{output}");

    w.deliver(&comment(&w, n, 1, w.sam, &sam(), "bionicbb:why"));
    let output = w.once_ok().await;
    let why = the_why(&w);
    for line in [
        "- Vouched for: built on Sam Reviewer's ok-to-test.",
        "- Explained: bionicbb posted why it did not build this patch set.",
        "bionic-presubmit",
    ] {
        assert!(why.contains(line), "missing {line:?} in:\n{why}\n{output}");
    }
    assert_eq!(w.jenkins.triggers(), 1, "why builds nothing: {output}");
}
