//! End-to-end: the real `build-listener`, started with few file
//! descriptors, flooded on loopback with connections that never finish a
//! request (idle, headers sent slowly, a body sent slowly), still answers
//! `/healthz` and accepts a genuine Jenkins notification while the flood
//! holds its connections, and votes once.

use std::path::Path;
use std::time::Duration;

use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, Setup, free_port};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
const SECRET: &str = "listener-secret-1234";
const WAIT: Duration = Duration::from_secs(20);
/// The daemon's descriptor limit, and how many connections the flood opens:
/// well past the limit.
const NOFILE: u32 = 64;
const FLOOD: usize = 3 * NOFILE as usize;

/// What one flooding connection sends before it stalls.
fn stall(i: usize, port: u16) -> String {
    match i % 3 {
        // Idle: nothing at all.
        0 => String::new(),
        // Headers sent slowly: a request line and half a header.
        1 => format!("POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Ty"),
        // A body sent slowly, without the secret (refused) or with a
        // content length it never reaches.
        _ => format!(
            "POST /?token=not-the-secret HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"na"
        ),
    }
}

#[tokio::test]
async fn a_flood_of_stalled_connections_does_not_stop_a_genuine_notification() {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let human = gerrit.add_account("Alice", "alice@example.com", "alice", "alice-pw");
    let change = gerrit.create_change("platform/bionic", "master", KEY, human, "Fix malloc");
    for _ in 0..4 {
        gerrit.add_patch_set(change, "alice@example.com", &["libc/bionic/malloc.cpp"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config =
        Setup::build_listener(dir.path(), gerrit.url().as_str(), port, SECRET).write_config();
    let config = config.display().to_string();
    let daemon = Daemon::spawn_with_nofile("build-listener", NOFILE, &["--config", &config]);
    daemon.wait_for_output("listening on", WAIT).await;

    // The flood: every connection is held open until the end of the test.
    let mut flood = Vec::new();
    let mut refused = 0;
    for i in 0..FLOOD {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut stream) => {
                let _ = stream.write_all(stall(i, port).as_bytes()).await;
                flood.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("flood: {} connections held, {refused} refused", flood.len());

    // While they are held, the listener answers.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(WAIT)
        .build()
        .unwrap();
    let health = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz during the flood: {e}\n{}", daemon.output()));
    assert_eq!(health.status().as_u16(), 200);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/jenkins/03-presubmit-completed-success.json");
    let response = http
        .post(format!("http://127.0.0.1:{port}/?token={SECRET}"))
        .header("content-type", "application/json")
        .body(std::fs::read(sample).unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("notification during the flood: {e}\n{}", daemon.output()));
    assert_eq!(response.status().as_u16(), 202, "{}", daemon.output());

    // The vote follows, once.
    let deadline = tokio::time::Instant::now() + WAIT;
    while gerrit.reviews_posted().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no review posted\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // It stops cleanly with the flood still connected.
    let (status, output) = daemon.terminate(WAIT).await;
    assert!(status.success(), "{output}");
    drop(flood);
    assert_eq!(gerrit.reviews_posted().len(), 1);
}
