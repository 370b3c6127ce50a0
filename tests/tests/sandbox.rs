//! The sandbox (the README's first command) runs to the end, and its status
//! page is checked in a real headless browser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn sandbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bionicbb-sandbox"));
    // `cargo test --workspace` has built the daemons already.
    cmd.env("BIONICBB_NO_BUILD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_sandbox_story_runs_to_the_end() {
    let out = tokio::time::timeout(Duration::from_secs(180), sandbox().arg("--exit").output())
        .await
        .expect("the sandbox finishes within 3 minutes")
        .expect("the sandbox runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sandbox failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "bionic-presubmit #1 triggered",
        "checkbuild FAILURE",
        "bionic-presubmit #2 triggered again",
        "checkbuild SUCCESS",
        "bionic-presubmit #3 triggered for patch set 2",
        "dropped the bot's -1",
        "Unknown command bionicbb:rebuild",
        "Jenkins bionic-presubmit #2: SUCCESS (patch set 1)",
        // Votes as Gerrit shows them, by name: the bot's -1 on patch set 2
        // was dropped, Sam's +1 stands.
        "patch set 1: Verified: +1 by Bionic Buildbot",
        "patch set 2: Verified: +1 by Sam Reviewer",
        "Status page: http://127.0.0.1:",
        "copy config.example.toml",
        "gmail-listener exited: exit status: 0",
        "build-listener exited: exit status: 0",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("votes: {"),
        "votes printed as a debug map:\n{stdout}"
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let ok = std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            ok.then(|| PathBuf::from(name))
        })
}

/// Runs headless Chromium with the flags this sandboxed network needs.
async fn headless(browser: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("chromium finishes within a minute")
        .expect("chromium runs")
}

#[tokio::test]
async fn the_status_page_renders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium is required in CI (.ci/run installs Debian's chromium package)"
        );
        eprintln!(
            "chromium is not installed here: status page not checked in a browser (CI checks it)"
        );
        return;
    };
    let mut child = sandbox().spawn().expect("the sandbox starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let url = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find("Status page: ") {
                return line[at + "Status page: ".len()..].trim().to_string();
            }
        }
        panic!("the sandbox ended before serving its status page:\n{seen}");
    })
    .await
    .expect("the sandbox reaches its status page within 3 minutes");

    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&browser, profile.path(), &["--dump-dom", &url]).await;
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    for expected in [
        "bionicbb status",
        "gmail-listener",
        "build-listener",
        "123456",
        "bionic-presubmit",
    ] {
        assert!(
            html.contains(expected),
            "the status page lacks {expected:?}:\n{html}"
        );
    }
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "the page does not refresh itself"
    );
    assert!(
        !html.contains("sandbox-secret"),
        "the status page shows the shared secret"
    );

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = headless(
        &browser,
        profile.path(),
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", png.display()),
            &url,
        ],
    )
    .await;
    assert!(
        shot.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "a suspiciously small screenshot: {} bytes",
        bytes.len()
    );
    eprintln!("status page screenshot: {}", png.display());

    let pid = child.id().expect("running").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the sandbox stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "the sandbox exited with {status}");
}
