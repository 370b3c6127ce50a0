//! No mail can stop the bot: the real `gmail-listener` against the fakes,
//! with a mail that kills the process whenever it is handled, and a mail too
//! large to read.

use std::time::Duration;

use bionicbb_core::ledger::metric_names as names;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::Daemon;
use bionicbb_tests::world::{KEY, RUN, World, fixture};

/// The Change-Id of the change the poison mail is about.
const POISON_KEY: &str = "I0123456789abcdef0123456789abcdef01234567";

/// A new-patch-set mail about the poison change.
fn poison_mail() -> Vec<u8> {
    String::from_utf8(fixture("02-newpatchset-2.x.eml"))
        .unwrap()
        .replace(KEY, POISON_KEY)
        .replace("1456218842117-5a1b2c3d@", "1456218842117-dead0001@")
        .into_bytes()
}

/// Where the daemon marks the mail in hand.
fn mark_file(w: &World) -> std::path::PathBuf {
    w.config
        .parent()
        .unwrap()
        .join("state")
        .join("gmail-listener.in-hand")
}

/// The requests a fake saw that contain `needle`.
fn seen(requests: Vec<String>, needle: &str) -> usize {
    requests.iter().filter(|r| r.contains(needle)).count()
}

/// Starts the daemon, waits until Gerrit holds a request about the sample
/// change (the daemon is provably in the middle of its mail, waiting for
/// Gerrit), and kills it.
async fn die_waiting_for_gerrit(w: &World) {
    let before = seen(w.gerrit.faults().requests(), KEY);
    let config = w.config_arg();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    let deadline = tokio::time::Instant::now() + RUN;
    while seen(w.gerrit.faults().requests(), KEY) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon never asked Gerrit about the mail:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_in_hand_at_two_deaths_is_quarantined_unread_and_the_next_mail_builds() {
    let w = World::new().await;
    w.sample_change(2);
    let poison = w.deliver(&poison_mail());
    let genuine = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // What two processes that died parsing the mail leave: the first death
    // recorded in the ledger by the start after it, and the mark of the
    // mail in hand that the second one left (as the daemon writes it before
    // parsing), which the next start records.
    let ledger = w.ledger();
    ledger.record_death(&poison, 1).unwrap();
    std::fs::write(mark_file(&w), format!("2 {poison}\n")).unwrap();

    // The next start sets it aside without reading it again, and the
    // genuine mail behind it builds.
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(
        w.gmail.messages_with_label("gerrit-unparsed"),
        vec![poison.clone()],
        "{output}"
    );
    assert_eq!(w.gmail.in_trash(), vec![genuine], "{output}");
    assert!(w.labelled().is_empty(), "{output}");
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].1["CHANGE_ID"], KEY);
    assert_eq!(
        seen(w.gmail.faults().requests(), &format!("{poison}?")),
        0,
        "the poison mail was fetched:\n{output}"
    );
    assert_eq!(
        seen(w.gerrit.faults().requests(), POISON_KEY),
        0,
        "the poison mail was handled:\n{output}"
    );
    assert!(output.contains("poison mail"), "{output}");
    assert!(output.contains(&poison), "{output}");
    assert_eq!(w.counter(names::MAILS_POISONED, &[]), Some(1));
    assert_eq!(w.counter(names::MAILS_QUARANTINED, &[]), Some(1));
    let status = w.ledger().status("gmail-listener").unwrap();
    assert_eq!(status["last_poison_mail"]["gmail_id"], poison.as_str());
    assert_eq!(status["last_poison_mail"]["deaths"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaths_while_a_mail_waits_for_gerrit_are_not_poison() {
    let w = World::new().await;
    w.sample_change(2);
    let mail = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // Gerrit holds the requests about the change while the test kills the
    // daemon, more times than a poison mail may kill it.
    w.gerrit.faults().fail_next(
        None,
        KEY,
        gmail_listener::poll::MAX_DEATHS + 1,
        Fault::Delay(Duration::from_secs(120)),
    );
    for _ in 0..=gmail_listener::poll::MAX_DEATHS {
        die_waiting_for_gerrit(&w).await;
        // Killed while waiting: no mail was in hand.
        assert_eq!(std::fs::read_to_string(mark_file(&w)).unwrap(), "");
        assert_eq!(w.ledger().mail_in_hand(&mail).unwrap(), 0);
    }
    // Gerrit answers again: the mail is genuine work, and it builds.
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert!(
        w.gmail.messages_with_label("gerrit-unparsed").is_empty(),
        "{output}"
    );
    assert_eq!(w.gmail.in_trash(), vec![mail], "{output}");
    let builds = w.builds();
    assert_eq!(builds.len(), 1, "{builds:?}\n{output}");
    assert_eq!(builds[0].1["CHANGE_ID"], KEY);
    assert_eq!(w.counter(names::MAILS_POISONED, &[]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_faults_are_not_poison() {
    let w = World::new().await;
    w.sample_change(2);
    let id = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // Polls that each end on a passing fault (Jenkins down), more than the
    // deaths that make a poison mail.
    for _ in 0..=gmail_listener::poll::MAX_DEATHS {
        w.jenkins.faults().fail_next(
            None,
            "buildWithParameters",
            1,
            Fault::status(503, "Service Unavailable"),
        );
        let (status, output) = w.once().await;
        assert!(!status.success(), "{output}");
        assert_eq!(w.labelled(), vec![id.clone()], "{output}");
        assert_eq!(w.ledger().mail_in_hand(&id).unwrap(), 0);
    }
    // The mail is still genuine work: it builds.
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);
    assert!(w.gmail.messages_with_label("gerrit-unparsed").is_empty());
    assert_eq!(w.counter(names::MAILS_POISONED, &[]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_mail_is_quarantined_without_being_read() {
    let w = World::new().await;
    // A limit of 100 kB for this test (the default is 1 MiB).
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replacen("[gmail]\n", "[gmail]\nmax_mail_size = 100000\n", 1),
    )
    .unwrap();
    w.sample_change(2);
    let mut big = String::from_utf8(fixture("02-newpatchset-2.x.eml")).unwrap();
    big = big.replacen(
        "Hello Bionic Buildbot",
        &format!("{}\nHello Bionic Buildbot", "padding\n".repeat(20_000)),
        1,
    );
    let big = w.deliver(big.as_bytes());
    let genuine = w.deliver(&edited_message_id());
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(
        w.gmail.messages_with_label("gerrit-unparsed"),
        vec![big.clone()],
        "{output}"
    );
    assert!(output.contains("too large"), "{output}");
    // One request for it, whose answer was refused on its length (the
    // fake's small answers carry a Content-Length; a streamed one is cut
    // at the bound, see gmail_client.rs), and no size query before it.
    let requests = w.gmail.faults().requests();
    let fetched: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&big))
        .collect();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert!(fetched[0].contains("format=raw"), "{fetched:?}");
    assert!(output.contains("an answer of"), "{output}");
    // The genuine mail behind it builds.
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![genuine]);
    assert_eq!(w.counter(names::MAILS_QUARANTINED, &[]), Some(1));
}

/// A 64 MiB mail whose answer comes chunked (no length to refuse it on):
/// the daemon stops reading at the bound of the default 1 MiB limit, so the
/// fake hands out only a fraction of it, and quarantines it; the mail
/// behind it builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_streamed_mail_is_quarantined_after_reading_at_most_the_bound() {
    let w = World::new().await;
    w.sample_change(2);
    let size = 64 * 1024 * 1024;
    let head = fixture("02-newpatchset-2.x.eml");
    let huge = w.gmail.deliver_huge(&head, size, &["gerrit"]);
    let genuine = w.deliver(&edited_message_id());
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert_eq!(
        w.gmail.messages_with_label("gerrit-unparsed"),
        vec![huge.clone()],
        "{output}"
    );
    assert!(output.contains("too large"), "{output}");
    let whole = 4 * size.div_ceil(3);
    let sent = w.gmail.huge_bytes_sent(&huge);
    assert!(sent < whole / 4, "{sent} of {whole} bytes sent");
    assert_eq!(
        seen(
            w.gmail.faults().requests(),
            &format!("GET /gmail/v1/users/me/messages/{huge}")
        ),
        1
    );
    assert_eq!(w.builds().len(), 1, "{output}");
    assert_eq!(w.gmail.in_trash(), vec![genuine]);
}

/// The new-patch-set fixture under another Message-ID.
fn edited_message_id() -> Vec<u8> {
    String::from_utf8(fixture("02-newpatchset-2.x.eml"))
        .unwrap()
        .replace("1456218842117-5a1b2c3d@", "1456218842117-0000beef@")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_skips_a_poison_mail_and_writes_nothing() {
    let w = World::new().await;
    w.sample_change(2);
    let poison = w.deliver(&poison_mail());
    let genuine = w.deliver(&fixture("02-newpatchset-2.x.eml"));
    // Two deaths with the mail in hand, as the ledger records them.
    let ledger = w.ledger();
    ledger.record_death(&poison, 1).unwrap();
    ledger.record_death(&poison, 2).unwrap();
    let (status, output) = w.run(&["--once", "--dry-run"]).await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert!(output.contains("poison mail"), "{output}");
    let requests = w.gmail.faults().requests();
    assert!(
        !requests.iter().any(|r| r.contains(&format!("{poison}?"))),
        "the poison mail was fetched: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| r.starts_with("GET")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.contains(&genuine)),
        "the genuine mail is read: {requests:?}"
    );
    assert_eq!(w.jenkins.triggers(), 0);
    let mut labelled = w.labelled();
    labelled.sort();
    let mut both = vec![poison.clone(), genuine];
    both.sort();
    assert_eq!(labelled, both);
    assert_eq!(ledger.mail_in_hand(&poison).unwrap(), 2);
}
