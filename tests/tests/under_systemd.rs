//! The real daemons as systemd runs them: readiness and `STATUS=` lines on
//! a stand-in notification socket (`NOTIFY_SOCKET`), and secrets handed
//! over as credentials (`$CREDENTIALS_DIRECTORY`, the units'
//! `LoadCredential=`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::Method;
use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, Setup, free_port};
use bionicbb_tests::notify::{NotifySocket, statuses};
use bionicbb_tests::world::{RUN, World, fixture};

const SECRET: &str = "listener-secret-1234";
const WAIT: Duration = Duration::from_secs(15);

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/jenkins")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `config` rewritten so that the secret files written by
/// [`Setup::write_config`] are credentials of the directory they are in;
/// returns the new configuration's path and that directory.
fn with_credentials(config: &Path) -> (PathBuf, PathBuf) {
    let dir = config.parent().unwrap().to_path_buf();
    let mut text = std::fs::read_to_string(config).unwrap();
    for name in ["netrc", "jenkins-token", "listener-secret", "gmail-token"] {
        let plain = format!("\"{}\"", dir.join(name).display());
        assert!(text.contains(&plain), "{plain} in\n{text}");
        text = text.replace(&plain, &format!("\"credential:{name}\""));
    }
    let path = dir.join("config-credentials.toml");
    std::fs::write(&path, text).unwrap();
    (path, dir)
}

#[tokio::test]
async fn build_listener_tells_systemd_its_address_and_the_reviews_waiting() {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let human = gerrit.add_account("Alice", "alice@example.com", "alice", "alice-pw");
    let change = gerrit.create_change(
        "platform/bionic",
        "master",
        "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b",
        human,
        "Fix malloc",
    );
    for _ in 0..4 {
        gerrit.add_patch_set(change, "alice@example.com", &["libc/bionic/malloc.cpp"]);
    }
    // Two refused posts keep the review waiting for a while.
    gerrit
        .faults()
        .fail_next(Some(Method::POST), "/review", 2, Fault::status(503, "busy"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = Setup::build_listener(dir.path(), gerrit.url().as_str(), port, SECRET)
        .write_config()
        .display()
        .to_string();
    let mut notify = NotifySocket::bind();
    let socket = notify.path().display().to_string();
    let daemon = Daemon::spawn_with_env(
        "build-listener",
        &["--config", &config, "--outbox-base-delay-ms", "0"],
        &[("NOTIFY_SOCKET", &socket)],
    );
    let address = format!("listening on 127.0.0.1:{port}; ");
    let listening = format!("STATUS={address}");
    let idle = format!("{listening}no review waiting for Gerrit");
    // Readiness and the first status, in either order (the outbox worker
    // starts before the listener reports ready).
    let start = |m: &str| m == "READY=1" || m == idle;
    let first = notify.wait_for(start, WAIT).await;
    let second = notify.wait_for(start, WAIT).await;
    assert_ne!(first, second, "{:?}", notify.received());

    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/?token={SECRET}"))
        .header("content-type", "application/json")
        .body(sample("03-presubmit-completed-success.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let waiting = format!("{listening}1 review waiting for Gerrit");
    notify.wait_for(|m| m == waiting, WAIT).await;
    notify.wait_for(|m| m == idle, WAIT).await;
    assert_eq!(gerrit.reviews_posted().len(), 1, "{}", daemon.output());

    let (status, output) = daemon.terminate(WAIT).await;
    assert!(status.success(), "{output}");
    notify.drain();
    let received = notify.received();
    assert_eq!(received.last().map(String::as_str), Some("STOPPING=1"));
    for status in statuses(received) {
        assert!(status.starts_with(&address), "{received:?}");
    }
}

/// A backlog of mails is the first poll's work, after the daemon told
/// systemd it is ready: a long first poll cannot hold up the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_listener_is_ready_before_its_first_poll_and_tells_what_it_did() {
    let w = World::new().await;
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    w.deliver(&fixture("27-not-gerrit.eml"));
    let mut notify = NotifySocket::bind();
    let socket = notify.path().display().to_string();
    let config = w.config_arg();
    let daemon = Daemon::spawn_with_env(
        "gmail-listener",
        &["--config", &config, "--once"],
        &[("NOTIFY_SOCKET", &socket)],
    );
    let (status, output) = daemon.wait(RUN).await;
    assert!(status.success(), "{output}");
    assert_eq!(w.builds().len(), 1, "{output}");
    let received = notify.drain().to_vec();
    let ready = received.iter().position(|m| m == "READY=1");
    let first = received
        .iter()
        .position(|m| m.starts_with("STATUS=polled "));
    assert!(
        matches!((ready, first), (Some(r), Some(p)) if r < p),
        "{received:?}"
    );
    let statuses = statuses(&received);
    assert_eq!(statuses.len(), 2, "{received:?}");
    assert_eq!(statuses[0], "ready; first poll under way");
    let polled = statuses[1];
    assert!(
        polled.ends_with(" UTC: 2 mails, 1 done, 1 quarantined, 0 left for the next poll"),
        "{polled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_from_the_credentials_directory_systemd_gives() {
    let w = World::new().await;
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let (config, credentials) = with_credentials(&w.config);
    let config = config.display().to_string();

    // Without the directory: a configuration error naming the first key.
    let (status, output) = Daemon::spawn_with_env(
        "gmail-listener",
        &["--config", &config, "--once"],
        &[("CREDENTIALS_DIRECTORY", "")],
    )
    .wait(RUN)
    .await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("[gerrit] netrc: credential:netrc: $CREDENTIALS_DIRECTORY is not set"),
        "{output}"
    );
    assert!(w.builds().is_empty());

    let dir = credentials.display().to_string();
    let (status, output) = Daemon::spawn_with_env(
        "gmail-listener",
        &["--config", &config, "--once"],
        &[("CREDENTIALS_DIRECTORY", &dir)],
    )
    .wait(RUN)
    .await;
    assert!(status.success(), "{output}");
    assert_eq!(w.builds().len(), 1, "{output}");
    assert!(!output.contains("WARN"), "{output}");
}

/// The units do not restart a daemon that exits 2
/// (`RestartPreventExitStatus=2`): that status is kept for what the
/// operator must fix; a fault that may pass exits 1, and is restarted.
#[tokio::test]
async fn build_listener_exits_2_for_what_the_operator_must_fix_and_1_for_a_passing_fault() {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = Setup::build_listener(dir.path(), gerrit.url().as_str(), port, SECRET)
        .write_config()
        .display()
        .to_string();

    let (status, output) = Daemon::spawn("build-listener", &["--config", &config])
        .wait(WAIT)
        .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("cannot listen on 127.0.0.1:"), "{output}");

    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, "machine elsewhere.example login bot password pw\n").unwrap();
    let (status, output) = Daemon::spawn("build-listener", &["--config", &config])
        .wait(WAIT)
        .await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains(&format!(
            "cannot start: Gerrit credentials: {}: no entry for 127.0.0.1",
            netrc.display()
        )),
        "{output}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_listener_exits_2_for_a_missing_label_and_1_when_gmail_is_down_at_start() {
    let w = World::new().await;
    let config = w.config_arg();
    w.gmail
        .faults()
        .fail_next(None, "/labels", 100, Fault::status(503, "backend error"));
    let (status, output) = Daemon::spawn("gmail-listener", &["--config", &config, "--once"])
        .wait(RUN)
        .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains("cannot start: Gmail label `gerrit`"),
        "{output}"
    );
    w.gmail.faults().clear();

    let text = std::fs::read_to_string(&w.config).unwrap();
    let absent = text.replacen("label = \"gerrit\"", "label = \"absent\"", 1);
    assert_ne!(absent, text);
    std::fs::write(&w.config, absent).unwrap();
    let (status, output) = Daemon::spawn("gmail-listener", &["--config", &config, "--once"])
        .wait(RUN)
        .await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("the Gmail label `absent` does not exist"),
        "{output}"
    );
}
