//! The real `gmail-listener` binary against the fake Gerrit, Jenkins and
//! Gmail, with a small stand-in for build-listener's `/drop-rejection`.
//! Needs the binary built (`cargo build -p gmail-listener`, or
//! `cargo test --workspace`).

use std::time::Duration;

use axum::http::Method;
use bionicbb_core::ledger::metric_names as names;
use bionicbb_tests::fakes::gerrit::{Status, format_timestamp};
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{Daemon, assert_ok, free_port};
use bionicbb_tests::world::{KEY, RUN, World, fixture};
use serde_json::Value;

/// A fixture with text replaced (the fixtures edited for this case).
fn edited(name: &str, replacements: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from_utf8(fixture(name)).expect("UTF-8 fixture");
    for (from, to) in replacements {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    text.into_bytes()
}

/// `mail` as if `sender` had acted: its `From:` line replaced the way
/// Gerrit writes it.
fn sent_by(mail: &[u8], sender: &str) -> Vec<u8> {
    let text = String::from_utf8(mail.to_vec()).expect("UTF-8 mail");
    let mut out = String::new();
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        if !replaced && line.starts_with("From: ") {
            out.push_str(&format!(
                "From: \"{sender} (Code Review)\" <gerrit@example.org>\r\n"
            ));
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    assert!(replaced, "no From: line");
    out.into_bytes()
}

fn gerrit_date(secs: i64) -> String {
    format_timestamp(secs, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_patch_set_builds_once_with_the_original_parameters_and_is_trashed() {
    let w = World::new().await;
    let n = w.sample_change(2);
    assert_eq!(n, 123456);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    let (job, params) = &builds[0];
    assert_eq!(job, "bionic-presubmit");
    assert_eq!(params["REF"], "refs/changes/56/123456/2");
    assert_eq!(params["CHANGE_ID"], KEY);
    assert_eq!(params["PROJECT"], "bionic");
    assert_eq!(params["CHANGE_NUMBER"], "123456");
    assert_eq!(params["PATCHSET"], "2");
    assert_eq!(
        params["LUNCH_TARGET"], "aosp_arm64-eng",
        "the job's default"
    );
    assert_eq!(w.gmail.in_trash(), vec![id]);
    assert!(w.labelled().is_empty());
    assert!(output.contains("poll finished"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_mail_for_a_superseded_patch_set_builds_nothing() {
    let w = World::new().await;
    w.sample_change(3);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.builds().is_empty(), "{output}");
    assert!(output.contains("superseded"), "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mails_for_the_same_event_build_once() {
    let w = World::new().await;
    w.sample_change(2);
    let raw = fixture("02-newpatchset-2.x.eml");
    let first = w.deliver(&raw);
    let second = w.deliver(&edited(
        "02-newpatchset-2.x.eml",
        &[("1456218842117-5a1b2c3d@", "1456218842999-ffffffff@")],
    ));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    let mut trashed = w.gmail.in_trash();
    trashed.sort();
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(trashed, both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_from_a_trusted_reviewer_builds_and_from_a_stranger_does_not() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.add_message(
        n,
        2,
        w.stranger,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_date(1_456_224_000),
    );
    w.deliver(&sent_by(&fixture("04-comment-retry-2.x.eml"), "Mallory"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.builds().is_empty(), "{output}");
    assert!(output.contains("not a trusted commenter"), "{output}");

    // The same command, now typed by a trusted reviewer: it builds.
    w.gerrit.add_message(
        n,
        2,
        w.sam,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_date(1_456_224_069),
    );
    w.deliver(&sent_by(
        &edited(
            "04-comment-retry-2.x.eml",
            &[("1456224069331-0c4d8e22@", "1456224069999-0c4d8e23@")],
        ),
        "Sam Reviewer",
    ));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].1["PATCHSET"], "2");
    assert!(!builds[0].1.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_from_a_trusted_reviewer_triggers_the_clean_job() {
    let w = World::new().await;
    let n = w.sample_change(3);
    // 11: X-Gerrit-Comment-Date Fri, 15 Mar 2019 16:30:00 +0000.
    w.gerrit.add_message(
        n,
        3,
        w.dana,
        "Patch Set 3:\n\nbionicbb:clean",
        &gerrit_date(1_552_667_400),
    );
    w.deliver(&fixture("11-comment-clean-text-2.16.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].0, "clean-bionic-presubmit");
    assert_eq!(builds[0].1["REF"], "refs/changes/56/123456/3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_command_builds_with_its_lunch_target_base64_mail() {
    let w = World::new().await;
    let n = w.sample_change(4);
    // 14 is from José Núñez.
    let jose = w
        .gerrit
        .add_account("José Núñez", "jose@example.com", "jose", "pw-jose");
    w.gerrit.add_message(
        n,
        4,
        jose,
        "Patch Set 4:\n\nbionicbb:arm",
        &gerrit_date(1_678_960_800),
    );
    w.deliver(&fixture("14-comment-base64-3.x.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].0, "bionic-presubmit");
    assert_eq!(builds[0].1["LUNCH_TARGET"], "aosp_arm-eng");
    assert_eq!(builds[0].1["PATCHSET"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_gets_exactly_one_reply() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:frobnicate",
        &gerrit_date(1_456_224_069),
    );
    let mail = edited(
        "04-comment-retry-2.x.eml",
        &[("bionicbb:retry", "bionicbb:frobnicate")],
    );
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    // The same notification again (a second copy of the mail): still one reply.
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let replies = w.gerrit.reviews_posted();
    assert_eq!(replies.len(), 1, "{replies:?}\n{output}");
    let body = &replies[0].body;
    assert_eq!(replies[0].patch_set, 2);
    assert!(
        body["message"].as_str().unwrap().contains("frobnicate"),
        "{body}"
    );
    assert_eq!(body["tag"], "autogenerated:bionicbb");
    assert!(
        body.get("labels").is_none(),
        "a reply carries no vote: {body}"
    );
    assert!(w.builds().is_empty());
    assert_eq!(w.gmail.in_trash().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_gets_a_did_you_mean_and_runs_nothing() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:rety\nbionicbb:frobnicate",
        &gerrit_date(1_456_224_069),
    );
    let mail = edited(
        "04-comment-retry-2.x.eml",
        &[("bionicbb:retry", "bionicbb:rety\nbionicbb:frobnicate")],
    );
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let replies = w.gerrit.reviews_posted();
    assert_eq!(replies.len(), 1, "{replies:?}\n{output}");
    let message = replies[0].body["message"].as_str().unwrap_or_default();
    // The close name gets a suggestion, the far one none; nothing is
    // guessed into a build.
    assert!(
        message.starts_with(
            "Unknown commands bionicbb:rety (did you mean bionicbb:retry?), bionicbb:frobnicate. \
             Known commands: bionicbb:retry, bionicbb:clean"
        ),
        "{message}"
    );
    assert!(w.builds().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_gets_one_reply_listing_every_command_and_builds_nothing() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:help",
        &gerrit_date(1_456_224_069),
    );
    let mail = edited(
        "04-comment-retry-2.x.eml",
        &[("bionicbb:retry", "bionicbb:help")],
    );
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    // A second copy of the mail: still the one reply.
    w.deliver(&mail);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let replies = w.gerrit.reviews_posted();
    assert_eq!(replies.len(), 1, "{replies:?}\n{output}");
    assert_eq!(replies[0].patch_set, 2);
    let message = replies[0].body["message"].as_str().unwrap_or_default();
    for line in [
        "bionicbb:retry - build this patch set again",
        "bionicbb:clean - run clean-bionic-presubmit to remove the out/ directory",
        "bionicbb:help - this list",
        "bionicbb:why - what bionicbb decided and did about this patch set, and why",
        "bionicbb:arm - build this patch set again for aosp_arm-eng",
    ] {
        assert!(message.contains(line), "missing {line:?} in {message}");
    }
    assert!(replies[0].body.get("labels").is_none(), "{:?}", replies[0]);
    assert!(w.builds().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_plus_one_asks_build_listener_to_drop_the_rejection() {
    let w = World::new().await;
    let n = w.sample_change(3);
    // 09: multipart/alternative, quoted-printable, comment date 2019-03-14 17:02:11 UTC.
    w.gerrit.add_message(
        n,
        3,
        w.sam,
        "Patch Set 3: Verified+1",
        &gerrit_date(1_552_582_931),
    );
    let id = w.deliver(&fixture("09-comment-verified-multipart-2.16.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let drops = w.drops.lock().unwrap().clone();
    assert_eq!(drops.len(), 1, "{drops:?}\n{output}");
    assert!(drops[0].0, "sent with the Bearer secret");
    assert_eq!(
        drops[0].1,
        serde_json::json!({"changeid": "platform/bionic~123456", "patchset": 3})
    );
    assert!(w.builds().is_empty());
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_printable_and_flowed_mails_parse_and_act() {
    let w = World::new().await;
    let n = w.sample_change(5);
    // 16: format=flowed, patch set 5, `bionicbb:x86_64 ...`, no comment date.
    w.gerrit.add_message(
        n,
        5,
        w.dana,
        "Patch Set 5: Code-Review+1\n\nbionicbb:x86_64 because the denormal path only regressed",
        &gerrit_date(1_476_911_823),
    );
    w.deliver(&fixture("16-comment-googlesource-flowed.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].1["LUNCH_TARGET"], "aosp_x86_64-eng");
    assert_eq!(builds[0].1["PATCHSET"], "5");

    // 10: quoted-printable 3.x patch-set-level comment on patch set 4 with
    // Verified+1 and retry: both the drop request and the build, but patch
    // set 4 is superseded now, so only the drop request.
    w.gerrit.add_message(
        n,
        4,
        w.sam,
        "Patch Set 4: Code-Review+1 Verified+1\n\n(1 comment)\n\nbionicbb:retry",
        &gerrit_date(1_678_813_331),
    );
    w.deliver(&fixture("10-comment-patchset-level-3.x-qp.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.builds().len(), 1, "{output}");
    assert!(output.contains("superseded"), "{output}");
    let drops = w.drops.lock().unwrap().clone();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].1["patchset"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skip_policy_applies() {
    for (committer, file, why) in [
        (
            "dana@evil.org",
            "libc/bionic/strtod.cpp",
            "not in a trusted domain",
        ),
        ("dana@example.com", "libc/CleanSpec.mk", "CleanSpec.mk"),
        (
            "dana@example.com",
            "tools/bionicbb/gmail_listener.py",
            "tools/bionicbb",
        ),
    ] {
        let w = World::new().await;
        w.change(2, committer, &[file]);
        let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
        let (status, output) = w.once().await;
        assert_ok(status, &output);
        assert!(w.builds().is_empty(), "{why}: {output}");
        assert!(output.contains(why), "{why}: {output}");
        assert_eq!(w.gmail.in_trash(), vec![id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_mail_does_nothing() {
    let w = World::new().await;
    // Gerrit has a change, but not the one the footers name.
    w.gerrit.create_change(
        "platform/bionic",
        "master",
        "I0000000000000000000000000000000000000001",
        w.dana,
        "x",
    );
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let forged_comment = w.deliver(&fixture("09-comment-verified-multipart-2.16.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.builds().is_empty(), "{output}");
    assert!(w.gerrit.reviews_posted().is_empty());
    assert!(w.drops.lock().unwrap().is_empty());
    assert!(output.contains("forged"), "{output}");
    let mut trashed = w.gmail.in_trash();
    trashed.sort();
    let mut both = vec![id, forged_comment];
    both.sort();
    assert_eq!(trashed, both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_keeps_the_label_filter_and_handles_every_mail() {
    let w = World::new().await;
    let keys: Vec<String> = (1..=5)
        .map(|i| format!("I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c{i:02}"))
        .collect();
    for key in &keys {
        let n = w
            .gerrit
            .create_change("platform/bionic", "master", key, w.dana, "s");
        w.gerrit.add_patch_set(n, "dana@example.com", &["libc/a.c"]);
        w.gerrit.add_patch_set(n, "dana@example.com", &["libc/a.c"]);
        w.deliver(&edited("02-newpatchset-2.x.eml", &[(KEY, key)]));
    }
    // Mail outside the label must not be listed.
    w.gmail
        .deliver(&fixture("02-newpatchset-2.x.eml"), &["INBOX"]);
    w.gmail.set_page_size_cap(2);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let builds = w.builds();
    assert_eq!(builds.len(), 5, "{builds:?}\n{output}");
    let mut built: Vec<String> = builds.iter().map(|b| b.1["CHANGE_ID"].clone()).collect();
    built.sort();
    assert_eq!(built, keys);
    assert_eq!(w.gmail.in_trash().len(), 5);
    let pages = w
        .gmail
        .faults()
        .requests()
        .into_iter()
        .filter(|r| r.contains("/messages?") || r.ends_with("/messages"))
        .collect::<Vec<_>>();
    assert!(pages.len() >= 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.contains("labelIds=")), "{pages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jenkins_outage_leaves_the_mail_for_the_next_poll() {
    let w = World::new().await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    w.jenkins.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(503, "Service Unavailable"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "a passing fault fails --once:\n{output}");
    assert!(w.builds().is_empty());
    assert_eq!(w.labelled(), vec![id.clone()]);
    assert!(w.gmail.in_trash().is_empty());
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_trigger_and_trash_builds_once() {
    let w = World::new().await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // The handled mail leaves the label in a batch (`batchModify`).
    w.gmail.faults().fail_next(
        Some(Method::POST),
        "/batchModify",
        10,
        Fault::Delay(Duration::from_secs(60)),
    );
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config, "--once"]);
    let deadline = tokio::time::Instant::now() + RUN;
    while w.builds().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the take-out request reach the (hanging) fake, then crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.kill().await;
    assert_eq!(w.labelled(), vec![id.clone()]);
    w.gmail.faults().clear();
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_anywhere() {
    let w = World::new().await;
    let n = w.sample_change(3);
    w.gerrit.add_message(
        n,
        3,
        w.sam,
        "Patch Set 3: Verified+1",
        &gerrit_date(1_552_582_931),
    );
    let a = w.deliver(&edited(
        "02-newpatchset-2.x.eml",
        &[("Gerrit-PatchSet: 2", "Gerrit-PatchSet: 3")],
    ));
    let b = w.deliver(&fixture("09-comment-verified-multipart-2.16.eml"));
    let c = w.deliver(&fixture("27-not-gerrit.eml"));
    let (status, output) = w.run(&["--once", "--dry-run"]).await;
    assert_ok(status, &output);
    assert!(output.contains("decided"), "{output}");
    assert_eq!(w.jenkins.triggers(), 0, "{output}");
    assert!(w.gerrit.reviews_posted().is_empty());
    assert!(w.drops.lock().unwrap().is_empty());
    assert!(w.gmail.in_trash().is_empty());
    let mut labelled = w.labelled();
    labelled.sort();
    let mut all = vec![a, b, c];
    all.sort();
    assert_eq!(labelled, all);
    assert!(w.gmail.messages_with_label("gerrit-unparsed").is_empty());
    assert!(
        w.gmail
            .faults()
            .requests()
            .iter()
            .all(|r| r.starts_with("GET")),
        "only reads: {:?}",
        w.gmail.faults().requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_mail_is_quarantined_not_trashed() {
    let w = World::new().await;
    let bad = w.deliver(&fixture("25-truncated-mid-text-3.x.eml"));
    let foreign = w.deliver(&fixture("27-not-gerrit.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let mut quarantined = w.gmail.messages_with_label("gerrit-unparsed");
    quarantined.sort();
    let mut both = vec![bad, foreign];
    both.sort();
    assert_eq!(quarantined, both, "{output}");
    assert!(w.labelled().is_empty());
    assert!(w.gmail.in_trash().is_empty());
    // The next poll has nothing left to do.
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.gmail.messages_with_label("gerrit-unparsed").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_prints_json_for_every_fixture() {
    let dir = format!("{}/data/emails", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".eml"))
        .collect();
    files.sort();
    let good: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| !f.contains("25-") && !f.contains("27-") && !f.contains("28-"))
        .collect();
    let mut args = vec!["parse"];
    args.extend(good.iter().copied());
    let (status, output) = Daemon::spawn("gmail-listener", &args).wait(RUN).await;
    assert_ok(status, &output);
    let lines: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), good.len(), "{output}");
    for (line, file) in lines.iter().zip(&good) {
        assert_eq!(line["file"], *file);
        assert!(line.get("error").is_none(), "{line}");
        assert_eq!(line["project"], "platform/bionic");
    }
    let retry = lines
        .iter()
        .find(|l| l["file"].as_str().unwrap().contains("04-"))
        .unwrap();
    assert_eq!(retry["commands"][0]["name"], "retry");

    let not_gerrit = format!("{dir}/27-not-gerrit.eml");
    let (status, output) = Daemon::spawn("gmail-listener", &["parse", &not_gerrit])
        .wait(RUN)
        .await;
    assert!(!status.success(), "{output}");
    let line: Value = serde_json::from_str(output.trim()).unwrap();
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("not a Gerrit notification")
    );
    assert_eq!(line["file"], not_gerrit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_poll_loop_exits_zero() {
    let w = World::new().await;
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon.wait_for_output("poll finished", RUN).await;
    assert_eq!(w.builds().len(), 1);
    let (status, output) = daemon.terminate(Duration::from_secs(15)).await;
    assert_ok(status, &output);
    assert!(output.contains("SIGTERM"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_changes_build_nothing() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.set_status(n, Status::Abandoned);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(w.builds().is_empty());
    assert!(output.contains("abandoned"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_an_untrusted_author_run_nothing() {
    // (mail, patch sets, stored comment, comment date)
    for (mail, patch_sets, text, date) in [
        (
            "04-comment-retry-2.x.eml",
            2,
            "bionicbb:retry",
            1_456_224_069,
        ),
        (
            "11-comment-clean-text-2.16.eml",
            3,
            "bionicbb:clean",
            1_552_667_400,
        ),
        (
            "14-comment-base64-3.x.eml",
            4,
            "bionicbb:arm",
            1_678_960_800,
        ),
    ] {
        let w = World::new().await;
        let n = w.sample_change(patch_sets);
        w.gerrit.add_message(
            n,
            patch_sets,
            w.stranger,
            &format!("Patch Set {patch_sets}:\n\n{text}"),
            &gerrit_date(date),
        );
        let id = w.deliver(&sent_by(&fixture(mail), "Mallory"));
        let (status, output) = w.once().await;
        assert_ok(status, &output);
        assert_eq!(w.jenkins.triggers(), 0, "{mail}: {output}");
        assert!(output.contains("stranger@evil.org"), "{mail}: {output}");
        assert!(w.gerrit.reviews_posted().is_empty());
        assert_eq!(w.gmail.in_trash(), vec![id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_retry_builds_again_but_a_copy_of_the_same_mail_does_not() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_date(1_456_224_069),
    );
    let retry = fixture("04-comment-retry-2.x.eml");
    w.deliver(&retry);
    w.deliver(&retry);
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(
        w.jenkins.triggers(),
        2,
        "the upload and one retry: {output}"
    );
    // Another retry comment later: a new mail (a new Message-ID and a new
    // date), a new build. (04 is from Dana, so Dana wrote both.)
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:retry",
        &gerrit_date(1_456_230_000),
    );
    w.deliver(&edited(
        "04-comment-retry-2.x.eml",
        &[
            ("1456224069331-0c4d8e22@", "1456230000000-0c4d8e99@"),
            (
                "Date: Tue, 23 Feb 2016 10:41:09 +0000",
                "Date: Tue, 23 Feb 2016 12:20:01 +0000",
            ),
        ],
    ));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.jenkins.triggers(), 3, "{output}");
    assert_eq!(w.gmail.in_trash().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_with_an_unknown_outcome_is_sent_again_next_poll() {
    let w = World::new().await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // The trigger hangs until the client gives up (5 s): its outcome is unknown.
    w.jenkins.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::Delay(Duration::from_secs(6)),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert_eq!(w.labelled(), vec![id.clone()]);
    assert!(
        w.builds().is_empty(),
        "the fake drops a request its client gave up on"
    );
    // Until the first attempt can no longer land (its timeout plus Jenkins'
    // quiet period), polls wait for it; then the trigger is sent again.
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("may still reach Jenkins"), "{output}");
    assert!(w.builds().is_empty(), "{output}");
    let mut output = String::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, out) = w.once().await;
        output.push_str(&out);
        if status.success() {
            break;
        }
    }
    assert!(output.contains("unknown outcome"), "{output}");
    // Triggered again, once.
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gmail_listing_failure_fails_the_poll_and_the_next_one_recovers() {
    let w = World::new().await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    w.gmail.faults().fail_next(
        Some(Method::GET),
        "/messages",
        4,
        Fault::status(500, "backend error"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot list the Gmail label"), "{output}");
    assert!(w.builds().is_empty());
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.builds().len(), 1);
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_label_is_a_clear_startup_error() {
    let w = World::new().await;
    let config = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("label = \"gerrit\"", "label = \"gerrit-missing\"");
    std::fs::write(&w.config, config).unwrap();
    let (status, output) = w.once().await;
    assert!(!status.success());
    assert!(output.contains("gerrit-missing"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_counters_are_recorded_in_the_ledger() {
    let w = World::new().await;
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    w.deliver(&fixture("27-not-gerrit.eml"));
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    let ledger = w.ledger();
    let status = ledger.status("gmail-listener").unwrap();
    assert_eq!(status["last_poll"]["ok"], true);
    assert_eq!(status["last_poll"]["mails"], 2);
    assert_eq!(w.counter(names::MAILS_PROCESSED, &[]), Some(1));
    assert_eq!(w.counter(names::MAILS_QUARANTINED, &[]), Some(1));
    assert_eq!(
        w.counter(names::BUILDS_TRIGGERED, &[("job", "bionic-presubmit")]),
        Some(1)
    );
    assert_eq!(
        w.counter(
            names::EVENTS_RECEIVED,
            &[("source", "gmail"), ("type", "newpatchset")]
        ),
        Some(1)
    );
    assert_eq!(
        w.counter(names::FAILURES, &[("component", "gmail-listener")]),
        None
    );
    // The fixture is dated 2016: one observation, in the +Inf bucket only.
    let histograms = ledger.histograms().unwrap();
    let latency: Vec<_> = histograms
        .iter()
        .filter(|h| h.name == names::MAIL_TO_TRIGGER_SECONDS)
        .collect();
    assert_eq!(latency.len(), 1, "{histograms:?}");
    assert_eq!(latency[0].labels, "job=\"bionic-presubmit\"");
    assert_eq!(latency[0].count, 1);
    assert!(latency[0].sum > 3600.0 * 24.0 * 365.0, "{:?}", latency[0]);
    assert_eq!(latency[0].buckets.last().map(|b| b.1), Some(1));
    assert_eq!(latency[0].buckets.first().map(|b| b.1), Some(0));
    // The event shows the queue item the build went to.
    let events = ledger.recent_events(10).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let queue_id = w
        .jenkins
        .queue()
        .first()
        .map(|q| q.id)
        .or_else(|| w.jenkins.builds().first().map(|b| b.queue_id))
        .expect("a queued or started build");
    let jenkins = w.jenkins.url();
    let jenkins = jenkins.trim_end_matches('/');
    let build = &events[0].decisions[0];
    assert_eq!(build["decision"], "build", "{build}");
    assert_eq!(
        build["queue_url"],
        format!("{jenkins}/queue/item/{queue_id}/"),
        "{build}"
    );
}

/// A configuration tail turning the health endpoint on; its port.
fn health_config() -> (u16, String) {
    let port = free_port();
    (
        port,
        format!("\n[gmail_listener]\nhealth_listen = \"127.0.0.1:{port}\"\n"),
    )
}

async fn healthz(port: u16) -> reqwest::Result<(u16, Value)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await?;
    let code = response.status().as_u16();
    let body = response.text().await?;
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Ok((code, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_the_last_poll_and_stops_with_the_daemon() {
    let (port, extra) = health_config();
    let w = World::with_extra(&extra).await;
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon.wait_for_output("poll finished", RUN).await;
    let (code, body) = healthz(port).await.expect("the health endpoint answers");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["last_poll"]["ok"], true, "{body}");
    assert!(body["last_poll"]["error"].is_null(), "{body}");
    assert!(body["last_poll"]["at"].as_i64().is_some(), "{body}");
    assert!(body["last_poll"]["mails"].as_u64().is_some(), "{body}");
    let at = body["last_poll"]["at"].as_i64().unwrap();
    assert!(
        body["next_poll"].as_i64().is_some_and(|n| n >= at),
        "{body}"
    );
    assert_eq!(w.builds().len(), 1);
    let (status, output) = daemon.terminate(Duration::from_secs(15)).await;
    assert_ok(status, &output);
    assert!(healthz(port).await.is_err(), "still answering after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_gmail_cannot_be_listed() {
    let (port, extra) = health_config();
    let w = World::with_extra(&extra).await;
    w.gmail.faults().fail_next(
        Some(Method::GET),
        "/messages",
        100,
        Fault::status(500, "backend error"),
    );
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon
        .wait_for_output("cannot list the Gmail label", RUN)
        .await;
    daemon.wait_for_output("poll finished", RUN).await;
    let (code, body) = healthz(port).await.expect("the health endpoint answers");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "failing", "{body}");
    assert_eq!(body["last_poll"]["ok"], false, "{body}");
    assert!(
        body["last_poll"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, output) = daemon.terminate(Duration::from_secs(15)).await;
    assert_ok(status, &output);
    assert!(
        w.counter(names::FAILURES, &[("component", "gmail-listener")])
            .is_some_and(|n| n >= 1),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_in_doubt_is_looked_for_before_posting_again() {
    let w = World::new().await;
    let n = w.sample_change(2);
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:frobnicate",
        &gerrit_date(1_456_224_069),
    );
    let id = w.deliver(&edited(
        "04-comment-retry-2.x.eml",
        &[("bionicbb:retry", "bionicbb:frobnicate")],
    ));
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
    // As if it had landed after all: the bot's reply is on the patch set.
    let known = bionicbb_core::command::known_names(&Default::default());
    let text = bionicbb_core::messages::unknown_command(&[("frobnicate", None)], &known);
    w.gerrit.add_message(
        n,
        2,
        w.bot,
        &format!("Patch Set 2:\n\n{text}"),
        &gerrit_date(1_456_224_100),
    );
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains("was posted before"), "{output}");
    assert!(w.gerrit.reviews_posted().is_empty(), "not posted again");
    assert_eq!(w.gmail.in_trash(), vec![id]);
}
