//! The chaos test (see `bionicbb_tests::chaos`): both real daemons, every
//! fake faulting about one request in five, each daemon SIGKILLed at random
//! moments, and an oracle that checks exactly-once builds and reviews.
//!
//! Run alone: `cargo test -p bionicbb-tests --test chaos -- --nocapture`.
//! `BIONICBB_CHAOS_SEED=<n>` replays a run's faults and kills (the seed is
//! printed); `BIONICBB_CHAOS_EVENTS=5000` is the long run (default 330).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bionicbb_tests::chaos::{Settings, run};

const DEFAULT_EVENTS: usize = 330;
/// The whole run stops by itself well before this.
const LIMIT: Duration = Duration::from_secs(60 * 60);

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_build_and_review_exactly_once_under_faults_and_kills() {
    let seed = env_number("BIONICBB_CHAOS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let events = env_number("BIONICBB_CHAOS_EVENTS").map_or(DEFAULT_EVENTS, |n| n as usize);
    eprintln!("chaos: seed {seed} (BIONICBB_CHAOS_SEED={seed} replays it), {events} events");
    let settings = Settings {
        seed,
        events,
        fault_rate: 0.2,
        min_kills: 5,
        concurrency: 64,
        log_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}")),
    };
    let report = tokio::time::timeout(LIMIT, run(settings))
        .await
        .expect("the chaos run stops by itself");
    let summary = report.summary();
    println!("{summary}");
    assert!(report.events >= events.min(300), "{summary}");
    assert!(report.changes >= 50 || events < 300, "{summary}");
    assert!(report.kills.iter().all(|k| *k >= 5), "{summary}");
    assert!(
        report
            .faults
            .values()
            .all(|kinds| kinds.values().sum::<u64>() > 0),
        "every server must have been faulted:\n{summary}"
    );
    assert!(report.ok(), "invariants broken:\n{summary}");
}
