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

/// Where the screenshots are kept: the target directory this test was
/// built in (`target/` unless `CARGO_TARGET_DIR` says otherwise).
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// What the page shows of the sandbox's story, at any width.
const STORY_ON_THE_PAGE: &[&str] = &[
    "<title>bionicbb status</title>",
    // The header: both daemons in words, no raw keys.
    "gmail-listener",
    "build-listener",
    ">Polling<",
    "Last poll",
    "Reviews to post",
    // The change: its subject, owner, project, builds and verdicts.
    ">123456</a>",
    "Fix strtod rounding for denormals",
    "by Dana Dev",
    "platform/bionic",
    "bionic-presubmit #1</span><span class=\"res\">FAILURE</span>",
    "bionic-presubmit #2</span><span class=\"res\">SUCCESS</span>",
    "bionic-presubmit #3</span><span class=\"res\">FAILURE</span>",
    "Verified +1 <span>posted</span>",
    // Sam's Verified+1 dropped the bot's -1 on patch set 2.
    "Verified -1 <span>dropped</span>",
    // The events in words.
    "<b>Sam Reviewer</b> commented bionicbb:retry on",
    "bionic-presubmit queued",
];

/// A file showing the page `html` in a frame exactly `width` CSS pixels
/// wide at its top left corner. Headless Chromium lays a window out at
/// 500 px at least, whatever `--window-size` says (it only crops the
/// screenshot), so a phone's width is given to the page by a frame of that
/// width. The page is self-contained: in the frame it is the same page.
fn framed(dir: &Path, html: &str, width: u32, height: u32) -> String {
    let path = dir.join(format!("frame-{width}.html"));
    let srcdoc = html.replace('&', "&amp;").replace('"', "&quot;");
    let html = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\"><iframe srcdoc=\"{srcdoc}\" \
         style=\"display:block;border:0;width:{width}px;height:{height}px\"></iframe></body></html>"
    );
    std::fs::write(&path, html).unwrap();
    format!("file://{}", path.display())
}

/// How many pixels the page's content is wider than a window `width` CSS
/// pixels wide (0: nothing is cut off or scrolls sideways). Measured on a
/// copy of the page with a script added (the page itself has none).
async fn overflow_at(browser: &Path, profile: &Path, html: &str, width: u32) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let probe = "<script>parent.document.body.setAttribute('data-overflow', \
                 String(document.documentElement.scrollWidth - window.innerWidth));</script>";
    let copy = html.replace("</body>", &format!("{probe}</body>"));
    let page = framed(dir.path(), &copy, width, 900);
    let out = headless(
        browser,
        profile,
        &["--window-size=1400,900", "--dump-dom", &page],
    )
    .await;
    let dom = String::from_utf8_lossy(&out.stdout);
    let value = dom
        .split("data-overflow=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run at {width} px:\n{dom}"));
    value.parse().unwrap()
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
    let artifacts = artifacts_dir();
    bionicbb_core::tls::install_crypto_provider();
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    for width in [390, 1280] {
        let size = format!("--window-size={width},2400");
        let dom = headless(&browser, profile.path(), &[&size, "--dump-dom", &url]).await;
        let html = String::from_utf8_lossy(&dom.stdout);
        assert!(
            dom.status.success(),
            "chromium --dump-dom at {width} px failed: {}",
            String::from_utf8_lossy(&dom.stderr)
        );
        for expected in STORY_ON_THE_PAGE {
            assert!(
                html.contains(expected),
                "the status page at {width} px lacks {expected:?}:\n{html}"
            );
        }
        assert!(
            html.contains(r#"<meta http-equiv="refresh" content="10">"#),
            "the page does not refresh itself"
        );
        for raw in [
            "last_success_at",
            "last_poll",
            "ok: true",
            "sandbox-secret",
            "<script",
        ] {
            assert!(
                !html.contains(raw),
                "the status page shows {raw:?}:\n{html}"
            );
        }

        let png = artifacts.join(format!("status-page-{width}.png"));
        let _ = std::fs::remove_file(&png);
        let frames = tempfile::tempdir().unwrap();
        let framed = framed(frames.path(), &page, width, 2400);
        let shot = headless(
            &browser,
            profile.path(),
            &[&size, &format!("--screenshot={}", png.display()), &framed],
        )
        .await;
        assert!(
            shot.status.success(),
            "chromium --screenshot at {width} px failed: {}",
            String::from_utf8_lossy(&shot.stderr)
        );
        let bytes = std::fs::read(&png).expect("the screenshot was written");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        // The PNG header's width: the page was laid out at that width.
        let png_width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        assert_eq!(png_width, width, "screenshot width");
        assert!(
            bytes.len() > 10_000,
            "a suspiciously small screenshot: {} bytes",
            bytes.len()
        );
        eprintln!("status page screenshot at {width} px: {}", png.display());
    }

    // Nothing is cut off or scrolls sideways, on a phone or a desktop.
    for width in [390, 1280] {
        let overflow = overflow_at(&browser, profile.path(), &page, width).await;
        assert!(
            overflow <= 0,
            "the page is {overflow} px too wide at {width} px"
        );
    }
    // The measure sees a page that is too wide.
    let wide = page.replace("<main>", "<main><div style=\"min-width:700px\">wide</div>");
    assert!(overflow_at(&browser, profile.path(), &wide, 390).await > 0);

    // The filter is a query parameter; the refresh keeps it.
    let filtered = format!("{url}?change=123456");
    let dom = headless(&browser, profile.path(), &["--dump-dom", &filtered]).await;
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(html.contains(r#"value="123456""#), "{html}");
    assert!(html.contains("Fix strtod rounding for denormals"), "{html}");
    let dom = headless(
        &browser,
        profile.path(),
        &["--dump-dom", &format!("{url}?change=1")],
    )
    .await;
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("No recent activity matches the filter."),
        "{html}"
    );

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
