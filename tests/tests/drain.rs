//! The concurrent drain of the real `gmail-listener` against the fakes:
//! mails of different changes handled at once (never more than
//! `gmail_listener.concurrency`), mails of one change in arrival order, a
//! pending mail holding back only the later mails of its change, the
//! content windows of the poison-mail protection never overlapping, and
//! handled mails taken out of the label with `messages.batchModify`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use bionicbb_core::ledger::{MailState, now};
use bionicbb_tests::fakes::gerrit::format_timestamp;
use bionicbb_tests::fakes::gmail::google_error;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::Daemon;
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{RUN, World};
use gmail_listener::poll::DOWNLOADS_PER_WORKER;

/// The first mail date of a scene; later mails a minute apart.
const T0: i64 = 1_700_000_000;

/// A world whose daemon handles `concurrency` mails at once.
async fn world(concurrency: usize) -> World {
    World::with_extra(&format!(
        "\n[gmail_listener]\nconcurrency = {concurrency}\n"
    ))
    .await
}

fn dana() -> Person {
    Person::new("Dana Dev", "dana@example.com")
}

fn sam() -> Person {
    Person::new("Sam Reviewer", "sam@example.com")
}

/// A change in the fake Gerrit with `patch_sets` patch sets; the mails'
/// view of it.
fn change(w: &World, i: u32, patch_sets: u32) -> MailChange {
    let key = format!("I{:040x}", 0x00c0_ffee_0000_u64 + u64::from(i));
    let subject = format!("Change number {i}");
    let number = w
        .gerrit
        .create_change("platform/bionic", "master", &key, w.dana, &subject);
    for _ in 0..patch_sets {
        w.gerrit
            .add_patch_set(number, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    }
    MailChange {
        host: "gerrit.example.org".into(),
        project: "platform/bionic".into(),
        branch: "master".into(),
        change_key: key,
        number,
        subject,
        owner: dana(),
    }
}

/// A `bionicbb:retry` on `patch_set` by Sam, as Gerrit shows it and as
/// the mail says it.
fn retry(w: &World, c: &MailChange, patch_set: u32, date: i64) -> Vec<u8> {
    w.gerrit.add_message(
        c.number,
        patch_set,
        w.sam,
        &format!("Patch Set {patch_set}:\n\nbionicbb:retry"),
        &format_timestamp(date, 0),
    );
    mailgen::comment(c, patch_set, &sam(), "", "bionicbb:retry", date)
}

/// The kind of each handled mail of change `number`, in the order the
/// ledger recorded them.
fn handled_in_order(w: &World, number: u64) -> Vec<String> {
    let mut events = w.ledger().recent_events(10_000).unwrap();
    events.reverse();
    events
        .into_iter()
        .filter(|e| e.source == "gmail" && e.change_number == Some(number))
        .map(|e| {
            let kind = e.summary.split(' ').next().unwrap_or("").to_string();
            format!("{kind} {}", e.patch_set.unwrap_or(0))
        })
        .collect()
}

/// Builds triggered per change: the patch sets, in trigger order.
fn builds_by_change(w: &World) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, params) in w.builds() {
        out.entry(params["CHANGE_NUMBER"].clone())
            .or_default()
            .push(params["PATCHSET"].clone());
    }
    out
}

/// Requests a fake saw that contain `needle`.
fn count(requests: Vec<String>, needle: &str) -> usize {
    requests.iter().filter(|r| r.contains(needle)).count()
}

/// The content windows the debug log shows, in order: (gmail id, opened).
fn windows(output: &str) -> Vec<(String, bool)> {
    output
        .lines()
        .filter_map(|line| {
            let opened = if line.contains(" out of hand") {
                false
            } else if line.contains(" in hand") {
                true
            } else {
                return None;
            };
            let id = line.split("gmail_id=").nth(1)?.split_whitespace().next()?;
            Some((id.trim_matches('"').to_string(), opened))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_changes_build_once_each_in_order_per_change_and_concurrently() {
    const CONCURRENCY: usize = 3;
    let w = world(CONCURRENCY).await;
    // The focus change has two patch sets: the upload of 1 (superseded by
    // the time it is decided), the upload of 2, then a retry on 2.
    let focus = change(&w, 0, 2);
    let others: Vec<MailChange> = (1..=7).map(|i| change(&w, i, 1)).collect();
    let mut date = T0;
    let mut next = || {
        date += 60;
        date
    };
    let mut ids = Vec::new();
    let d = next();
    ids.push(w.deliver(&mailgen::patch_set_uploaded(&focus, 1, &dana(), d)));
    for c in &others[..3] {
        let d = next();
        ids.push(w.deliver(&mailgen::patch_set_uploaded(c, 1, &dana(), d)));
    }
    let d = next();
    ids.push(w.deliver(&mailgen::patch_set_uploaded(&focus, 2, &dana(), d)));
    let d = next();
    ids.push(w.deliver(&retry(&w, &focus, 2, d)));
    for c in &others[3..] {
        let d = next();
        ids.push(w.deliver(&mailgen::patch_set_uploaded(c, 1, &dana(), d)));
    }
    // Every request takes a while, and the focus change's first request
    // much longer: a later mail of the change would overtake it if it
    // could, and the other changes' mails reach Gerrit while it waits.
    for fake in [w.gerrit.faults(), w.jenkins.faults(), w.gmail.faults()] {
        fake.set_latency(Some(Duration::from_millis(20)));
    }
    w.gerrit.faults().fail_next(
        None,
        &format!("~{}", focus.number),
        1,
        Fault::Delay(Duration::from_secs(1)),
    );
    // Every trigger its own build, so that each one shows.
    w.jenkins.set_coalesce(false);
    w.gerrit.faults().track_in_flight("/changes/");
    w.gmail
        .faults()
        .track_in_flight("GET /gmail/v1/users/me/messages/");

    let config = w.config_arg();
    let daemon = Daemon::spawn_with_env(
        "gmail-listener",
        &["--config", &config, "--once"],
        &[("RUST_LOG", "info,gmail_listener::poll::guard=debug")],
    );
    let (status, output) = daemon.wait(RUN).await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");

    // Every expected build exactly once, in order per change.
    let builds = builds_by_change(&w);
    let mut expected: BTreeMap<String, Vec<String>> = others
        .iter()
        .map(|c| (c.number.to_string(), vec!["1".to_string()]))
        .collect();
    expected.insert(focus.number.to_string(), vec!["2".into(), "2".into()]);
    assert_eq!(builds, expected, "{output}");
    assert_eq!(
        handled_in_order(&w, focus.number),
        vec!["newchange 1", "newpatchset 2", "comment 2"],
        "{output}"
    );
    // Every mail trashed, in one batchModify.
    let mut trashed = w.gmail.in_trash();
    trashed.sort();
    ids.sort();
    assert_eq!(trashed, ids, "{output}");
    assert!(w.labelled().is_empty());
    let gmail = w.gmail.faults().requests();
    assert_eq!(
        count(
            gmail.clone(),
            "POST /gmail/v1/users/me/messages/batchModify"
        ),
        1
    );
    assert_eq!(count(gmail, "/trash"), 0);

    // Several changes at once, never more than the configured concurrency.
    let gerrit = w.gerrit.faults().max_in_flight();
    assert!(gerrit > 1, "one change at a time: {gerrit}\n{output}");
    assert!(gerrit <= CONCURRENCY, "{gerrit} Gerrit requests at once");
    let downloads = w.gmail.faults().max_in_flight();
    assert!(
        downloads <= DOWNLOADS_PER_WORKER * CONCURRENCY,
        "{downloads} downloads at once"
    );

    // The content windows of the poison-mail protection never overlap:
    // each opens and closes before the next opens, two per handled mail.
    let windows = windows(&output);
    assert_eq!(windows.len(), 4 * ids.len(), "{output}");
    for pair in windows.chunks(2) {
        assert!(pair[0].1 && !pair[1].1, "{pair:?}\n{output}");
        assert_eq!(pair[0].0, pair[1].0, "{output}");
    }
    for id in &ids {
        assert_eq!(w.ledger().mail_in_hand(id).unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_mail_holds_back_the_later_mails_of_its_change_only() {
    let w = world(4).await;
    let stuck = change(&w, 0, 1);
    let other = change(&w, 1, 1);
    let upload = w.deliver(&mailgen::patch_set_uploaded(&stuck, 1, &dana(), T0));
    let second = w.deliver(&retry(&w, &stuck, 1, T0 + 60));
    let fine = w.deliver(&mailgen::patch_set_uploaded(&other, 1, &dana(), T0 + 120));
    // Gerrit cannot answer about the stuck change this poll.
    w.gerrit.faults().fail_next(
        None,
        &format!("~{}", stuck.number),
        1000,
        Fault::status(503, "Service Unavailable"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert_eq!(
        builds_by_change(&w).keys().collect::<Vec<_>>(),
        vec![&other.number.to_string()]
    );
    assert_eq!(w.gmail.in_trash(), vec![fine], "{output}");
    assert_eq!(w.labelled(), vec![upload.clone(), second.clone()]);
    // The held-back mail was not tried: no failed attempt counted.
    let ledger = w.ledger();
    assert!(
        matches!(
            ledger.mail_state(&upload).unwrap(),
            Some(MailState::Pending { attempts: 1, .. })
        ),
        "{output}"
    );
    assert!(
        matches!(
            ledger.mail_state(&second).unwrap(),
            None | Some(MailState::Pending { attempts: 0, .. })
        ),
        "{:?}\n{output}",
        ledger.mail_state(&second)
    );
    assert!(output.contains("mail left untried"), "{output}");

    // Gerrit is back: both build, the upload first.
    w.gerrit.faults().clear();
    w.jenkins.set_coalesce(false);
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(
        builds_by_change(&w)[&stuck.number.to_string()],
        vec!["1", "1"],
        "{output}"
    );
    assert_eq!(
        handled_in_order(&w, stuck.number),
        vec!["newchange 1", "comment 1"]
    );
    assert!(w.labelled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_found_done_are_taken_out_a_thousand_per_batch_modify() {
    let w = World::new().await;
    let ledger = w.ledger();
    let mut ids = Vec::new();
    for i in 0..1001 {
        let id =
            w.deliver(format!("Subject: done {i}\r\n\r\nhandled before a crash\r\n").as_bytes());
        ledger
            .mark_mail_done(&id, "handled before a crash", now())
            .unwrap();
        ids.push(id);
    }
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert!(w.labelled().is_empty(), "{output}");
    assert_eq!(w.gmail.in_trash().len(), 1001);
    let requests = w.gmail.faults().requests();
    assert_eq!(count(requests.clone(), "/batchModify"), 2, "{output}");
    assert_eq!(count(requests.clone(), "/trash"), 0);
    // Done mails are not read again.
    assert_eq!(count(requests, "GET /gmail/v1/users/me/messages/"), 0);
    assert_eq!(w.jenkins.triggers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_modify_falls_back_to_trashing_each_mail() {
    let w = World::new().await;
    let changes: Vec<MailChange> = (0..3).map(|i| change(&w, i, 1)).collect();
    let mut ids: Vec<String> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| w.deliver(&mailgen::patch_set_uploaded(c, 1, &dana(), T0 + i as i64)))
        .collect();
    w.gmail.faults().fail_next(
        Some(Method::POST),
        "/batchModify",
        1,
        Fault::json(
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "global",
                "invalidArgument",
                "Invalid label: TRASH",
            ),
        ),
    );
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    let mut trashed = w.gmail.in_trash();
    trashed.sort();
    ids.sort();
    assert_eq!(trashed, ids, "{output}");
    let requests = w.gmail.faults().requests();
    assert_eq!(count(requests.clone(), "/batchModify"), 1);
    assert_eq!(count(requests, "/trash"), 3);
    assert_eq!(w.jenkins.triggers(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_modify_outage_leaves_done_mails_for_the_next_poll_without_redoing_them() {
    let w = World::new().await;
    let c = change(&w, 0, 1);
    let id = w.deliver(&mailgen::patch_set_uploaded(&c, 1, &dana(), T0));
    w.gmail.faults().fail_next(
        Some(Method::POST),
        "/batchModify",
        100,
        Fault::status(503, "Service Unavailable"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "{output}");
    assert_eq!(w.labelled(), vec![id.clone()]);
    assert_eq!(w.ledger().mail_state(&id).unwrap(), Some(MailState::Done));
    w.gmail.faults().clear();
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
    assert_eq!(w.jenkins.triggers(), 1, "built once: {output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_before_a_slow_first_poll_ends() {
    let port = bionicbb_tests::harness::free_port();
    let w = World::with_extra(&format!(
        "\n[gmail_listener]\nhealth_listen = \"127.0.0.1:{port}\"\n"
    ))
    .await;
    // The first listing hangs for a while.
    w.gmail.faults().fail_next(
        Some(Method::GET),
        "/messages?",
        1,
        Fault::Delay(Duration::from_secs(3)),
    );
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon.wait_for_output("start_to_ready_ms", RUN).await;
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let output = daemon.output();
    assert!(!output.contains("poll finished"), "{output}");
    assert_eq!(body["status"], "starting", "{body}");
    assert_eq!(body["note"], "no poll yet", "{body}");
    assert!(
        body["ready"]["start_to_ready_ms"].as_u64().is_some(),
        "{body}"
    );
    daemon.wait_for_output("poll finished", RUN).await;
    let status = w.ledger().status("gmail-listener").unwrap();
    assert!(
        status["ready"]["start_to_ready_ms"].as_u64().is_some(),
        "{status:?}"
    );
    let (exit, output) = daemon.terminate(Duration::from_secs(15)).await;
    assert!(exit.success(), "{output}");
}
