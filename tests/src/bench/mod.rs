//! The benchmark (`bionicbb-bench`): the release daemons against the fakes
//! with an injected round-trip latency, one printed line per figure. Each
//! comparison is measured side by side in one run, so its ratio holds on a
//! noisy machine. Correctness is checked in the same run (every expected
//! build once and in order per change, every mail out of the label, every
//! review posted once); a failed check makes the run fail.
//!
//! Timing targets live here and in the README, never in tests.

pub mod drain;
pub mod idle;
pub mod intake;
pub mod reconcile;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::fakes::gerrit::GerritFake;
use crate::harness;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Round trip added by every fake to every request.
    pub latency: Duration,
    /// Mails in the drain's backlog, and the changes they are about.
    pub mails: usize,
    pub changes: usize,
    /// The concurrent drain compared with concurrency 1.
    pub concurrency: usize,
    /// Jenkins notifications per intake run.
    pub notifications: usize,
    /// Open changes a reconcile pass looks at.
    pub open_changes: usize,
    /// Concurrent clients of each intake run, one run per entry.
    pub clients: Vec<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            latency: Duration::from_millis(20),
            mails: 1000,
            changes: 200,
            concurrency: 8,
            notifications: 2000,
            open_changes: 1000,
            clients: vec![16, 64],
        }
    }
}

/// Prints one figure.
pub fn line(name: &str, text: impl std::fmt::Display) {
    println!("{name:<28} {text}");
}

/// Builds the daemons in the profile this program runs in, so the figures
/// are those of the binaries next to it.
pub fn build_daemons() -> Result<(), String> {
    let Some(mut cmd) = harness::nested_cargo("build") else {
        return Ok(());
    };
    cmd.args(["-p", "build-listener", "-p", "gmail-listener", "--quiet"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the daemons failed: {status}"))
    }
}

/// A state directory on the disk the binaries live on (never a tmpfs: the
/// ledger's flushes are part of what is measured).
pub fn state_dir() -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("current executable");
    let base: PathBuf = exe.parent().map(|p| p.join("bench")).unwrap_or_default();
    std::fs::create_dir_all(&base).expect("bench directory");
    tempfile::tempdir_in(base).expect("state directory")
}

/// Starts build-listener against `gerrit`, its state directory on the real
/// disk ([`state_dir`]); returns it once it listens, with that directory
/// (kept while the daemon runs) and its port.
pub async fn start_build_listener(
    gerrit: &GerritFake,
    secret: &str,
) -> (harness::Daemon, tempfile::TempDir, u16) {
    let dir = state_dir();
    let port = harness::free_port();
    let config = harness::Setup::build_listener(dir.path(), gerrit.url().as_str(), port, secret)
        .write_config()
        .display()
        .to_string();
    let daemon = harness::Daemon::spawn("build-listener", &["--config", &config]);
    daemon
        .wait_for_output("listening on", Duration::from_secs(30))
        .await;
    (daemon, dir, port)
}

/// A running daemon's resident memory now, in MiB (0 once it exited).
pub fn rss_mib(daemon: &harness::Daemon) -> f64 {
    daemon
        .pid()
        .and_then(|pid| status_kib(pid, "VmRSS:"))
        .unwrap_or(0) as f64
        / 1024.0
}

/// Samples a process's peak resident memory (VmHWM) until stopped.
pub struct PeakRss {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    pub fn watch(pid: Option<u32>) -> PeakRss {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = pid {
            let (peak, stop) = (peak_kib.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = status_kib(pid, "VmHWM:") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        PeakRss { peak_kib, stop }
    }

    /// The peak seen so far, in MiB.
    pub fn mib(&self) -> f64 {
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The fakes' own cost per request (no injected latency): sequential
/// keep-alive GETs of one change, to show the fakes are not the bottleneck.
pub async fn fake_cost() -> Duration {
    let gerrit = GerritFake::start().await;
    let owner = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
    let n = gerrit.create_change(
        "platform/bionic",
        "master",
        "I0000000000000000000000000000000000000001",
        owner,
        "A change",
    );
    gerrit.add_patch_set(n, "dana@example.com", &["libc/a.c"]);
    let http = reqwest::Client::new();
    let url = format!(
        "{}changes/platform%2Fbionic~{n}?o=ALL_REVISIONS&o=MESSAGES",
        gerrit.url()
    );
    let rounds = 500u32;
    let start = Instant::now();
    for _ in 0..rounds {
        let ok = http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(ok, "the fake Gerrit did not answer {url}");
    }
    start.elapsed() / rounds
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Quota units of a Gmail request, per Google's table (protocols.md 4.1).
pub fn gmail_units(request: &str) -> u64 {
    let path = request.split('?').next().unwrap_or(request);
    if path.ends_with("/batchModify") {
        50
    } else if path.contains("/labels") {
        1
    } else if path.contains("/history") {
        2
    } else {
        5
    }
}
