//! Reconciling with Gerrit: the real `gmail-listener --once` (one poll,
//! then one reconcile pass) against the fake Gerrit, Jenkins and Gmail.
//! What mail and reconcile both report happens once; what mail never
//! delivers is caught by the next pass; a Gerrit outage delays the pass
//! and nothing else.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{self, metric_names as names};
use bionicbb_core::timefmt;
use bionicbb_tests::fakes::gerrit::{Status, format_timestamp};
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{Daemon, assert_ok};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{KEY, RECONCILE_DEBUG, RUN, World, fixture};
use serde_json::Value;

/// The time as Gerrit writes it.
fn gerrit_now() -> String {
    format_timestamp(ledger::now(), 0)
}

/// The reconcile queries Gerrit saw, in order.
fn queries(w: &World) -> Vec<String> {
    w.gerrit
        .faults()
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /a/changes/?q="))
        .collect()
}

fn jenkins_requests(w: &World) -> usize {
    w.jenkins.faults().requests().len()
}

/// The `gmail-listener` status values of the ledger.
fn status(w: &World) -> BTreeMap<String, Value> {
    w.ledger().status("gmail-listener").unwrap()
}

/// The build parameters `PATCHSET` of every build, in order.
fn built_patch_sets(w: &World) -> Vec<String> {
    w.builds()
        .into_iter()
        .map(|(_, params)| params["PATCHSET"].clone())
        .collect()
}

fn missed(w: &World, kind: &str) -> Option<u64> {
    w.counter(names::RECONCILE_MISSED, &[("kind", kind)])
}

fn sam() -> Person {
    Person::new("Sam Reviewer", "sam@example.com")
}

/// A Gerrit 3.x comment mail about patch set `ps` of the sample change.
fn comment_mail(number: u64, ps: u32, author: &Person, text: &str, date: i64) -> Vec<u8> {
    let change = MailChange::sample(number);
    mailgen::comment(&change, ps, author, "", text, date)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_set_whose_mail_never_arrives_is_built_by_the_next_pass() {
    let w = World::reconciling("").await;
    let n = w.sample_change(1);
    // No mail at all: the first pass (full, at start) builds patch set 1.
    let output = w.once_ok().await;
    assert_eq!(built_patch_sets(&w), ["1"], "{output}");
    assert!(
        output.contains("reconcile found what no mail delivered"),
        "{output}"
    );
    let cursor = status(&w)["reconcile_cursor"].clone();
    let since = cursor["since"].as_i64().expect("the cursor moved");
    assert_eq!(cursor["full_at"].as_i64(), Some(since));
    assert_eq!(missed(&w, "patch_set"), Some(1));

    // Patch set 2's mail is lost: the next pass (incremental) builds it.
    w.gerrit
        .add_patch_set(n, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let output = w.once_ok().await;
    assert_eq!(built_patch_sets(&w), ["1", "2"], "{output}");
    let builds = w.builds();
    assert_eq!(builds[1].1["REF"], "refs/changes/56/123456/2");
    assert_eq!(builds[1].1["CHANGE_ID"], KEY);
    assert_eq!(builds[1].1["PROJECT"], "bionic");
    assert_eq!(missed(&w, "patch_set"), Some(2));
    assert_eq!(w.counter(names::RECONCILE_CHANGES_SCANNED, &[]), Some(2));
    for kind in ["full", "incremental"] {
        assert_eq!(
            w.counter(
                names::RECONCILE_PASSES,
                &[("kind", kind), ("outcome", "ok")]
            ),
            Some(1),
            "{kind}"
        );
    }

    // One page per pass: the first without after:, the second after the
    // first pass's start, less the overlap for clock skew.
    let queries = queries(&w);
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(
        queries[0].starts_with("GET /a/changes/?q=status:open&o="),
        "{queries:?}"
    );
    assert!(!queries[0].contains("after"), "{queries:?}");
    let after = timefmt::format_gerrit_query(since - 300).replace(' ', "%20");
    assert!(
        queries[1].starts_with(&format!(
            "GET /a/changes/?q=status:open%20after:%22{after}%22&"
        )),
        "{queries:?}"
    );
    for option in [
        "ALL_REVISIONS",
        "CURRENT_COMMIT",
        "CURRENT_FILES",
        "MESSAGES",
    ] {
        assert!(queries[1].contains(&format!("o={option}")), "{queries:?}");
    }
    // The whole pass is one request: the answer holds every fact needed.
    assert_eq!(w.gerrit.faults().requests().len(), 2);

    // What the status page and the log show of the last pass.
    let last = status(&w)["reconcile"].clone();
    assert_eq!(last["kind"], "incremental");
    assert_eq!(last["outcome"], "ok");
    assert_eq!(last["changes"], 1);
    assert_eq!(last["missed_patch_sets"], 1);
    assert_eq!(last["pages"], 1);
    assert!(output.contains("reconcile pass finished"), "{output}");
    let events = w.ledger().recent_events(10).unwrap();
    assert_eq!(events[0].source, "reconcile");
    assert_eq!(events[0].patch_set, Some(2));
    assert!(
        events[0].summary.contains("found by reconcile"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_set_reported_by_mail_first_builds_once_and_costs_jenkins_nothing_more() {
    let w = World::reconciling("").await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
    assert_eq!(missed(&w, "patch_set"), None, "mail delivered it");
    // More passes see the change again (within the overlap): already done,
    // and not one more Jenkins request.
    let before = jenkins_requests(&w);
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert_eq!(jenkins_requests(&w), before, "{output}");
    assert_eq!(status(&w)["reconcile"]["changes"], 1);
    assert_eq!(missed(&w, "patch_set"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_set_found_by_reconcile_first_is_not_built_again_by_its_late_mail() {
    let w = World::reconciling("").await;
    w.sample_change(2);
    let output = w.once_ok().await;
    assert_eq!(built_patch_sets(&w), ["2"], "{output}");
    assert_eq!(missed(&w, "patch_set"), Some(1));
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert!(output.contains("already triggered"), "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id], "the mail is done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_seen_by_mail_and_reconcile_runs_once() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1, "patch set 2, by the first pass");
    // Gerrit 3.3+: the text typed in the reply box is a patchset-level
    // comment; the change message only says so.
    let now = ledger::now();
    w.gerrit
        .add_message(n, 2, w.sam, "Patch Set 2:\n\n(1 comment)", &gerrit_now());
    w.gerrit.add_comment(
        n,
        2,
        w.sam,
        "/PATCHSET_LEVEL",
        None,
        "bionicbb:retry",
        &format_timestamp(now, 4_000_000),
    );
    w.deliver(&comment_mail(n, 2, &sam(), "bionicbb:retry", now));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "the retry, once\n{output}");
    assert_eq!(missed(&w, "command"), None, "{output}");
    let reads = status(&w)["reconcile"]["comment_reads"].clone();
    assert_eq!(reads, 1, "the pass read the comments to see the command");
    // Another pass sees the message again: nothing more.
    let before = jenkins_requests(&w);
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert_eq!(jenkins_requests(&w), before, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_mail_is_lost_is_run_by_reconcile_and_not_again_by_the_mail() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    w.once_ok().await;
    let now = ledger::now();
    w.gerrit
        .add_message(n, 2, w.sam, "Patch Set 2:\n\nbionicbb:arm", &gerrit_now());
    let output = w.once_ok().await;
    let builds = w.builds();
    assert_eq!(builds.len(), 2, "{builds:?}\n{output}");
    assert_eq!(builds[1].1["LUNCH_TARGET"], "aosp_arm-eng");
    assert_eq!(builds[1].1["PATCHSET"], "2");
    assert_eq!(missed(&w, "command"), Some(1));
    // The mail comes after all: the same change message, so the same effect.
    let id = w.deliver(&comment_mail(n, 2, &sam(), "bionicbb:arm", now));
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 2, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_a_typo_found_by_reconcile_are_answered_once_whichever_path_sees_them() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    w.once_ok().await;
    let now = ledger::now();
    let text = "bionicbb:help\nbionicbb:rety";
    w.gerrit.add_message(
        n,
        2,
        w.sam,
        &format!("Patch Set 2:\n\n{text}"),
        &gerrit_now(),
    );
    let output = w.once_ok().await;
    let replies = w.gerrit.reviews_posted();
    assert_eq!(replies.len(), 1, "{replies:?}\n{output}");
    let message = replies[0].body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Unknown command bionicbb:rety (did you mean bionicbb:retry?)."),
        "{message}"
    );
    assert!(message.contains("bionicbb:help - this list"), "{message}");
    assert_eq!(
        w.jenkins.triggers(),
        1,
        "nothing but the first pass's build"
    );
    // The mail about the same message comes late: the same reply, already posted.
    w.deliver(&comment_mail(n, 2, &sam(), text, now));
    let output = w.once_ok().await;
    assert_eq!(w.gerrit.reviews_posted().len(), 1, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_strangers_and_of_the_bot_itself_run_nothing() {
    let w = World::reconciling("").await;
    let n = w.sample_change(2);
    w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1);
    w.gerrit.add_message(
        n,
        2,
        w.stranger,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_now(),
    );
    // The bot's own messages may quote a command at the start of a line.
    w.gerrit.add_message(
        n,
        2,
        w.bot,
        "Patch Set 2:\n\nbionicbb:clean\nbionicbb:retry",
        &gerrit_now(),
    );
    let output = w.once_ok_logging(RECONCILE_DEBUG).await;
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert!(output.contains("not a trusted commenter"), "{output}");
    assert_eq!(missed(&w, "command"), None);
    // The stranger's command was judged (and skipped); the bot's message
    // was never an event at all.
    let judged = output
        .lines()
        .filter(|l| l.contains("reconcile: already handled") && l.contains("command"))
        .count();
    assert_eq!(judged, 1, "{output}");
    assert!(!output.contains("bionicbb:clean"), "{output}");
    assert_eq!(w.gerrit.reviews_posted().len(), 0, "no reply either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_merged_and_untrusted_changes_are_left_alone() {
    let w = World::reconciling("").await;
    let abandoned = w.sample_change(1);
    w.gerrit.set_status(abandoned, Status::Abandoned);
    let merged = w.sample_change(1);
    w.gerrit.set_status(merged, Status::Merged);
    w.change(1, "someone@elsewhere.org", &["libc/bionic/strtod.cpp"]);
    let output = w.once_ok_logging(RECONCILE_DEBUG).await;
    assert_eq!(w.jenkins.triggers(), 0, "{output}");
    // Only the open change was in the answer, and the policy skipped it.
    let last = status(&w)["reconcile"].clone();
    assert_eq!(last["changes"], 1, "{last}");
    assert!(output.contains("not in a trusted domain"), "{output}");
    assert!(!output.contains("is abandoned"), "{output}");
    assert!(!output.contains("is merged"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_reads_every_page() {
    let w = World::reconciling("").await;
    w.gerrit.set_query_limit(2);
    let numbers: Vec<u64> = (0..5).map(|_| w.sample_change(1)).collect();
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 5, "{output}");
    let mut built: Vec<String> = w
        .builds()
        .into_iter()
        .map(|(_, p)| p["CHANGE_NUMBER"].clone())
        .collect();
    built.sort();
    let expected: Vec<String> = numbers.iter().map(u64::to_string).collect();
    assert_eq!(built, expected);
    let queries = queries(&w);
    assert_eq!(queries.len(), 3, "{queries:?}");
    for (query, start) in queries.iter().zip([0, 2, 4]) {
        assert!(query.ends_with(&format!("&n=500&S={start}")), "{queries:?}");
    }
    assert_eq!(status(&w)["reconcile"]["pages"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_bounds_a_pass_to_the_most_recently_updated_changes() {
    let w = World::reconciling("reconcile_limit = 2\n").await;
    let older = w.sample_change(1);
    w.gerrit
        .set_updated(older, &format_timestamp(ledger::now() - 60, 0));
    let newer: Vec<u64> = (0..2).map(|_| w.sample_change(1)).collect();
    let output = w.once_ok().await;
    let mut built: Vec<String> = w
        .builds()
        .into_iter()
        .map(|(_, p)| p["CHANGE_NUMBER"].clone())
        .collect();
    built.sort();
    assert_eq!(
        built,
        [newer[0].to_string(), newer[1].to_string()],
        "{output}"
    );
    assert_eq!(status(&w)["reconcile"]["outcome"], "truncated");
    assert!(output.contains("gerrit.reconcile_limit"), "{output}");
    assert!(queries(&w)[0].ends_with("&n=2&S=0"), "{:?}", queries(&w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gerrit_outage_delays_the_pass_and_nothing_else() {
    let w = World::reconciling("").await;
    let n = w.sample_change(1);
    w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 1);
    let cursor = status(&w)["reconcile_cursor"].clone();

    // Gerrit's search fails for the whole pass; the mail path still works.
    w.gerrit.faults().fail_next(
        None,
        "/changes/?q=",
        4,
        Fault::status(503, "Service Unavailable"),
    );
    w.gerrit
        .add_patch_set(n, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let change = MailChange::sample(n);
    let dana = Person::new("Dana Dev", "dana@example.com");
    let id = w.deliver(&mailgen::patch_set_uploaded(
        &change,
        2,
        &dana,
        ledger::now(),
    ));
    let output = w.once_ok().await;
    assert_eq!(built_patch_sets(&w), ["1", "2"], "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id], "{output}");
    assert_eq!(status(&w)["reconcile_cursor"], cursor, "the cursor stays");
    let last = status(&w)["reconcile"].clone();
    assert_eq!(last["outcome"], "failed", "{last}");
    assert!(
        last["error"].as_str().is_some_and(|e| e.contains("503")),
        "{last}"
    );
    assert!(output.contains("the next pass looks again"), "{output}");
    assert_eq!(
        w.counter(
            names::RECONCILE_PASSES,
            &[("kind", "incremental"), ("outcome", "failed")]
        ),
        Some(1)
    );

    // Gerrit is back: the next pass asks from the old cursor and catches
    // the patch set whose mail was lost meanwhile.
    w.gerrit
        .add_patch_set(n, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let output = w.once_ok().await;
    assert_eq!(built_patch_sets(&w), ["1", "2", "3"], "{output}");
    let since = cursor["since"].as_i64().unwrap();
    let after = timefmt::format_gerrit_query(since - 300).replace(' ', "%20");
    let last_query = queries(&w).pop().unwrap();
    assert!(last_query.contains(&after), "{last_query}");
    assert_eq!(status(&w)["reconcile"]["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciling_off_asks_gerrit_nothing() {
    let w = World::reconciling("reconcile_interval = \"0\"\n").await;
    w.sample_change(1);
    let output = w.once_ok().await;
    assert_eq!(w.jenkins.triggers(), 0, "{output}");
    assert!(queries(&w).is_empty());
    assert!(
        output.contains("reconciling with Gerrit is off"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reconciles_at_start_and_then_every_interval() {
    let w = World::reconciling("reconcile_interval = \"1s\"\n").await;
    let n = w.sample_change(1);
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon
        .wait_for_output("reconcile pass finished kind=\"full\"", RUN)
        .await;
    assert_eq!(built_patch_sets(&w), ["1"], "{}", daemon.output());
    // A later pass, between later polls, catches the next patch set.
    w.gerrit
        .add_patch_set(n, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let deadline = tokio::time::Instant::now() + RUN;
    while w.jenkins.triggers() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(built_patch_sets(&w), ["1", "2"], "{}", daemon.output());
    let (exit, output) = daemon.terminate(RUN).await;
    assert_ok(exit, &output);
    assert!(
        output.contains("reconcile pass finished kind=\"incremental\""),
        "{output}"
    );
    let last = status(&w)["reconcile"].clone();
    assert!(last["next_at"].is_i64(), "the daemon says when: {last}");
    assert_eq!(missed(&w, "patch_set"), Some(2));
}
