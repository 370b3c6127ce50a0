//! End-to-end: SIGHUP no longer stops the daemons. By default it kills a
//! process with a status systemd counts as a clean stop; both daemons log
//! it, ignore it and keep serving, and SIGTERM still stops them cleanly.

use std::time::Duration;

use bionicbb_core::runtime::SIGHUP_IGNORED;
use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, Setup};
use bionicbb_tests::world::{RUN, World, fixture};

const WAIT: Duration = Duration::from_secs(15);

fn hang_up(daemon: &Daemon) {
    let pid = daemon.pid().expect("the daemon runs");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn times(output: &str, needle: &str) -> usize {
    output.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until `needle` is on `n` lines of the daemon's output.
async fn wait_for_lines(daemon: &Daemon, needle: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while times(&daemon.output(), needle) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} not printed {n} times:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_listener_logs_and_ignores_sighup_and_keeps_serving() {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    // Port 0: the daemon says which port it got, and no other test can
    // take it in between.
    let config =
        Setup::build_listener(dir.path(), gerrit.url().as_str(), 0, "s3cret-hup").write_config();
    let mut daemon = Daemon::spawn(
        "build-listener",
        &["--config", &config.display().to_string()],
    );
    daemon.wait_for_output("listening on", WAIT).await;
    let addr = daemon
        .output()
        .lines()
        .find_map(|l| l.split("listening on ").nth(1).map(str::to_string))
        .expect("the listening address");

    // Each signal is logged, the second as the first.
    hang_up(&daemon);
    wait_for_lines(&daemon, SIGHUP_IGNORED, 1).await;
    hang_up(&daemon);
    wait_for_lines(&daemon, SIGHUP_IGNORED, 2).await;

    assert!(daemon.try_exited().is_none(), "{}", daemon.output());
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("still serving after SIGHUP");
    assert_eq!(health.status(), 200);
    let (status, output) = daemon.terminate(WAIT).await;
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(times(&output, SIGHUP_IGNORED), 2, "{output}");
    assert!(
        output
            .lines()
            .filter(|l| l.contains(SIGHUP_IGNORED))
            .all(|l| l.contains("WARN")),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_listener_logs_and_ignores_sighup_and_keeps_polling() {
    let w = World::new().await;
    let config = w.config_arg();
    let mut daemon = Daemon::spawn("gmail-listener", &["--config", &config]);
    daemon.wait_for_output("poll finished", RUN).await;

    hang_up(&daemon);
    wait_for_lines(&daemon, SIGHUP_IGNORED, 1).await;
    assert!(daemon.try_exited().is_none(), "{}", daemon.output());

    // Still polling: a mail that arrives after the signal is built.
    w.sample_change(2);
    w.deliver(&fixture("02-newpatchset-2.x.eml"));
    let deadline = tokio::time::Instant::now() + RUN;
    while w.builds().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no build after SIGHUP:\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, output) = daemon.terminate(WAIT).await;
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(times(&output, SIGHUP_IGNORED), 1, "{output}");
    assert_eq!(w.builds().len(), 1);
}
