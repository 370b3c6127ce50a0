//! The chaos test: both real daemons handle hundreds of Gerrit events while
//! every fake faults about one request in five (seeded), the notification
//! POSTs of the fake Jenkins are lost, doubled or delayed, and each daemon
//! is SIGKILLed at random moments and restarted. When the story is over,
//! the faults stop, the daemons settle, and an oracle that knows only the
//! scenario checks that every expected build ran exactly once, every
//! finished build got exactly one review on its patch set, no vote landed
//! on a stale patch set, and every mail was handled before it was trashed.
//!
//! - [`scenario`]: each change's steps, fixed (the fault seed changes only
//!   where and when faults strike);
//! - [`driver`]: plays the steps on the fakes and fills the oracle;
//! - [`executor`]: the fake Jenkins' executors;
//! - [`daemons`]: the real binaries, supervised and killed;
//! - [`check`]: the invariants and the summary.

pub mod check;
pub mod daemons;
pub mod driver;
pub mod env;
pub mod executor;
pub mod mail2x;
pub mod scenario;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bionicbb_core::config::Config;
use bionicbb_core::ledger::Ledger;
use tokio::sync::{Mutex, Semaphore, watch};

use check::Report;
use daemons::Daemons;
use env::{Env, LABEL};

/// What one run does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seeds the fault plans and the kill moments.
    pub seed: u64,
    /// Mails to deliver (at least); changes follow, about six mails each.
    pub events: usize,
    /// Share of requests faulted on every server.
    pub fault_rate: f64,
    /// SIGKILLs of each daemon, at least.
    pub min_kills: u32,
    /// Changes whose stories run at the same time.
    pub concurrency: usize,
    /// Where the daemons' logs go.
    pub log_dir: std::path::PathBuf,
}

/// How long the daemons get to finish their work once the faults stop.
const SETTLE: Duration = Duration::from_secs(120);

/// Runs the storm and checks the aftermath.
pub async fn run(settings: Settings) -> Report {
    let started = Instant::now();
    let env = Env::start().await;
    let changes = settings.events.div_ceil(scenario::MAILS_PER_CHANGE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(false);
    let executor = tokio::spawn(executor::run(env.clone(), done_rx.clone()));
    let daemons = Arc::new(Mutex::new(Daemons::start(&env)));
    env.start_faults(settings.seed, settings.fault_rate);
    let killer = tokio::spawn(daemons::chaos(
        daemons.clone(),
        settings.seed,
        settings.min_kills,
        stop_rx,
        done_rx,
    ));

    let gate = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut stories = tokio::task::JoinSet::new();
    for index in 0..changes {
        let env = env.clone();
        let gate = gate.clone();
        stories.spawn(async move {
            let _slot = gate.acquire_owned().await;
            driver::drive(env, index).await;
        });
    }
    while let Some(joined) = stories.join_next().await {
        if let Err(e) = joined {
            panic!("a change's story failed: {e}");
        }
    }

    // The story is over: kill until each daemon had its share, then calm.
    let _ = stop_tx.send(true);
    let enough = driver::wait_until(Duration::from_secs(120), || {
        daemons
            .try_lock()
            .is_ok_and(|d| d.kills.iter().all(|k| *k >= settings.min_kills))
    })
    .await;
    assert!(enough, "the daemons were not killed often enough");
    env.stop_faults();
    // build-listener's outbox counts too: a review waiting out a lost
    // answer (30 s each) is work not yet done, not a lost review.
    let ledger = Config::load(&env.config)
        .ok()
        .and_then(|c| Ledger::open(&c.ledger_path()).ok());
    let settled = driver::wait_until(SETTLE, || calm(&env, ledger.as_ref())).await;
    // Late duplicates (a second review, a second trigger) need a moment to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = done_tx.send(true);
    let _ = killer.await;
    let _ = executor.await;

    let mut report = Report {
        seed: settings.seed,
        changes,
        ..Report::default()
    };
    check::check(&env, &mut report);
    if !settled {
        report.unsettled.push(format!(
            "the daemons did not settle within {SETTLE:?} after the faults stopped"
        ));
    }
    report.faults = env.fault_counts();
    let mut daemons = daemons.lock().await;
    daemons.stop().await;
    report.kills = daemons.kills;
    report.exits = daemons.exits.clone();
    report.logs = write_logs(&settings.log_dir, &daemons.logs);
    report.elapsed = started.elapsed();
    report
}

/// Nothing waiting anywhere: no mail in the label, no build waiting or
/// running, no review waiting in build-listener's outbox.
fn calm(env: &Env, ledger: Option<&Ledger>) -> bool {
    let trash = env.gmail.in_trash();
    env.gmail
        .messages_with_label(LABEL)
        .iter()
        .all(|id| trash.contains(id))
        && env.jenkins.queue().is_empty()
        && env.jenkins.builds().iter().all(|b| b.result.is_some())
        && ledger.is_none_or(|l| l.pending_count().is_ok_and(|n| n == 0))
}

/// Writes each daemon instance's output to `dir`; returns the directory.
fn write_logs(dir: &std::path::Path, logs: &[(String, usize, String)]) -> String {
    if std::fs::create_dir_all(dir).is_err() {
        return String::new();
    }
    for (name, instance, output) in logs {
        let _ = std::fs::write(dir.join(format!("{name}-{instance:02}.log")), output);
    }
    dir.display().to_string()
}
