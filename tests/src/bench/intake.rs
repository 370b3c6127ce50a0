//! Figure 2: Jenkins notifications acknowledged by `build-listener` per
//! second, with the latency of each acknowledgement, from concurrent
//! clients, the state directory on the real disk; then how long the outbox
//! takes to post every review to a Gerrit with the injected latency.
//!
//! Each notification is a distinct finished build; two builds per change,
//! so the outbox also keeps an order per change. Checked: every
//! notification acknowledged, every build's review posted once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Options, PeakRss, line, ms};
use crate::fakes::gerrit::GerritFake;
use crate::harness::{BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER};

const SECRET: &str = "bench-listener-secret";
/// Build numbers start here; the review names the build's URL.
const FIRST_BUILD: usize = 10_000;
/// Each client's first notifications are the warm-up (its connection
/// opens, the daemon starts its threads): their latencies are reported
/// apart from the steady state's, which the targets are about.
const WARM_UP_PER_CLIENT: usize = 4;

/// What one intake run measured.
#[derive(Debug, Clone)]
pub struct Intake {
    pub clients: usize,
    pub notifications: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// The slowest of the warm-up notifications (see `WARM_UP_PER_CLIENT`).
    pub warm_up_max: Duration,
    /// From the first notification sent to the last review posted.
    pub reviews_after: Option<Duration>,
    pub peak_rss_mib: f64,
    pub problems: Vec<String>,
}

impl Intake {
    pub fn print(&self, latency: Duration) {
        line(
            &format!("intake {} clients", self.clients),
            format!(
                "{} notifications in {:.2} s = {:.0}/s; p50 {}, p99 {} after each client's first \
                 {WARM_UP_PER_CLIENT} (those: up to {}) (target >= 2000/s, p99 <= 20 ms)",
                self.notifications,
                self.elapsed.as_secs_f64(),
                self.notifications as f64 / self.elapsed.as_secs_f64(),
                ms(self.p50),
                ms(self.p99),
                ms(self.warm_up_max),
            ),
        );
        let outbox = match self.reviews_after {
            Some(d) => format!(
                "{} reviews posted {:.2} s after the first notification = {:.0} reviews/s \
                 at {} Gerrit latency (target >= 100/s); peak RSS {:.1} MiB",
                self.notifications,
                d.as_secs_f64(),
                self.notifications as f64 / d.as_secs_f64(),
                ms(latency),
                self.peak_rss_mib,
            ),
            None => "the reviews were not all posted".to_string(),
        };
        line(&format!("outbox after {} clients", self.clients), outbox);
    }
}

/// The notification of build `i`.
fn notification(i: usize, change: u64) -> Vec<u8> {
    let n = FIRST_BUILD + i;
    let doc = json!({
        "name": "bionic-presubmit",
        "display_name": "bionic-presubmit",
        "url": "job/bionic-presubmit/",
        "build": {
            "full_url": format!("https://jenkins.example.org/job/bionic-presubmit/{n}/"),
            "number": n,
            "queue_id": 500_000 + i,
            "timestamp": 1_764_050_000_123_u64,
            "duration": 1_864_022,
            "phase": "COMPLETED",
            "status": "SUCCESS",
            "url": format!("job/bionic-presubmit/{n}/"),
            "parameters": {
                "REF": format!("refs/changes/{:02}/{change}/1", change % 100),
                "CHANGE_NUMBER": change.to_string(),
                "CHANGE_ID": format!("I{:040x}", change),
                "PROJECT": "platform/bionic"
            },
            "log": "",
            "artifacts": {}
        }
    });
    serde_json::to_vec(&doc).expect("a notification serialises")
}

/// One intake run with `clients` concurrent clients.
pub async fn run(options: &Options, clients: usize) -> Intake {
    let gerrit = GerritFake::start().await;
    gerrit.add_account("Bionic Buildbot", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let owner = gerrit.add_account("Dana Dev", "dana@example.com", "dana", "pw-dana");
    let total = options.notifications;
    let changes: Vec<u64> = (0..total.div_ceil(2))
        .map(|i| {
            let key = format!("I{:040x}", 0xFEED_0000_u64 + i as u64);
            let n = gerrit.create_change("platform/bionic", "master", &key, owner, "Intake");
            gerrit.add_patch_set(n, "dana@example.com", &["libc/a.c"]);
            n
        })
        .collect();
    gerrit.faults().set_latency(Some(options.latency));
    let (daemon, _dir, port) = super::start_build_listener(&gerrit, SECRET).await;
    let peak = PeakRss::watch(daemon.pid());

    let next = Arc::new(AtomicUsize::new(0));
    let changes = Arc::new(changes);
    let url = format!("http://127.0.0.1:{port}/?token={SECRET}");
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (next, changes, url) = (next.clone(), changes.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client");
            let mut latencies = Vec::new();
            let mut warm_up = Vec::new();
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = notification(i, changes[i % changes.len()]);
                let sent = Instant::now();
                let ok = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if warm_up.len() < WARM_UP_PER_CLIENT {
                    warm_up.push(sent.elapsed());
                } else {
                    latencies.push(sent.elapsed());
                }
                failures += usize::from(!ok);
            }
            (latencies, warm_up, failures)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut warm_up_max = Duration::ZERO;
    let mut failures = 0;
    for task in tasks {
        let (l, w, f) = task.await.expect("a client task");
        latencies.extend(l);
        warm_up_max = w.into_iter().fold(warm_up_max, Duration::max);
        failures += f;
    }
    if latencies.is_empty() {
        // Fewer notifications than the warm-up takes: report those.
        latencies.push(warm_up_max);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let (p50, p99) = (pct(0.50), pct(0.99));

    let mut problems = Vec::new();
    if failures > 0 {
        problems.push(format!("{failures} notifications not acknowledged"));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut reviews_after = None;
    while Instant::now() < deadline {
        if gerrit.reviews_posted_count() >= total {
            reviews_after = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    problems.extend(check_reviews(&gerrit, total));
    let (_, output) = daemon.terminate(Duration::from_secs(30)).await;
    if !problems.is_empty() && std::env::var_os("BIONICBB_BENCH_LOG").is_some() {
        eprintln!("{output}");
    }
    Intake {
        clients,
        notifications: total,
        elapsed,
        p50,
        p99,
        warm_up_max,
        reviews_after,
        peak_rss_mib: peak.mib(),
        problems,
    }
}

/// Every build's review posted once, in build order per change.
fn check_reviews(gerrit: &GerritFake, total: usize) -> Vec<String> {
    let mut per_change: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut unnamed = 0;
    for review in gerrit.reviews_posted() {
        let message = review.body["message"].as_str().unwrap_or_default();
        let build = message
            .split("job/bionic-presubmit/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse::<usize>().ok());
        match build {
            Some(n) => per_change.entry(review.number).or_default().push(n),
            None => unnamed += 1,
        }
    }
    let mut problems = Vec::new();
    if unnamed > 0 {
        problems.push(format!("{unnamed} reviews name no build"));
    }
    let mut seen: Vec<usize> = per_change.values().flatten().copied().collect();
    seen.sort_unstable();
    let posted = seen.len();
    seen.dedup();
    if posted != total || seen.len() != total {
        problems.push(format!(
            "{posted} reviews posted for {} distinct builds; {total} expected once each",
            seen.len()
        ));
    }
    let out_of_order = per_change
        .values()
        .filter(|builds| builds.windows(2).any(|w| w[0] > w[1]))
        .count();
    if out_of_order > 0 {
        problems.push(format!(
            "{out_of_order} changes got their reviews out of order"
        ));
    }
    problems
}
