//! Figure 5: what a reconcile pass with Gerrit costs over many open
//! changes: requests per server and time, for a pass that finds every
//! change's patch set unbuilt (no mail ever came), one that finds them all
//! already built (the steady state: every change updated within the
//! pass's window, nothing to do), and one after which no change was
//! updated. Each pass is one `gmail-listener --once` (an empty poll, then
//! the pass); the pass's own duration is read from the status it records.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Options, line, ms};
use crate::fakes::gerrit::format_timestamp;
use crate::harness::Daemon;
use crate::world::World;

/// Requests per server and times of one pass.
#[derive(Debug, Clone, Copy)]
struct Pass {
    gerrit: usize,
    jenkins: usize,
    changes: u64,
    pass: Duration,
    run: Duration,
}

/// Runs the three passes over `options.open_changes` changes; returns what
/// the correctness check found wrong.
pub async fn run(options: &Options) -> Vec<String> {
    let world = World::reconciling("").await;
    let n = options.open_changes;
    seed(&world, n);
    for faults in [
        world.gerrit.faults(),
        world.jenkins.faults(),
        world.gmail.faults(),
    ] {
        faults.set_latency(Some(options.latency));
    }
    let mut problems = Vec::new();
    let unbuilt = pass(&world, &mut problems).await;
    print("reconcile: all unbuilt", n, &unbuilt);
    if world.jenkins.triggers() != n {
        problems.push(format!(
            "reconcile: {} builds for {n} unbuilt patch sets",
            world.jenkins.triggers()
        ));
    }
    let built = pass(&world, &mut problems).await;
    print("reconcile: all built", n, &built);
    // Nothing changed since: the next pass's window holds no change.
    let hour_ago = format_timestamp(bionicbb_core::ledger::now() - 3600, 0);
    for number in world.gerrit.change_numbers() {
        world.gerrit.set_updated(number, &hour_ago);
    }
    let quiet = pass(&world, &mut problems).await;
    print("reconcile: nothing updated", n, &quiet);
    if world.jenkins.triggers() != n {
        problems.push(format!(
            "reconcile: {} builds after passes that had nothing to build (want {n})",
            world.jenkins.triggers()
        ));
    }
    if built.jenkins != 0 || quiet.jenkins != 0 {
        problems.push("reconcile: a pass over built patch sets asked Jenkins".to_string());
    }
    problems
}

/// `n` open changes with one patch set each, a review and an upload notice.
fn seed(world: &World, n: usize) {
    let at = format_timestamp(bionicbb_core::ledger::now() - 60, 0);
    for i in 0..n {
        let number = world.gerrit.create_change(
            "platform/bionic",
            "master",
            &format!("I{i:040x}"),
            world.dana,
            "A change",
        );
        world
            .gerrit
            .add_patch_set(number, "dana@example.com", &["libc/bionic/strtod.cpp"]);
        world.gerrit.add_message(
            number,
            1,
            world.sam,
            "Patch Set 1: Code-Review+1\n\nLooks good.",
            &at,
        );
    }
}

/// One `--once` run; the requests each server saw during it.
async fn pass(world: &World, problems: &mut Vec<String>) -> Pass {
    let before = (
        world.gerrit.faults().requests().len(),
        world.jenkins.faults().requests().len(),
    );
    let config = world.config_arg();
    let start = Instant::now();
    let daemon = Daemon::spawn("gmail-listener", &["--config", &config, "--once"]);
    let (status, output) = daemon.wait(Duration::from_secs(1800)).await;
    let run = start.elapsed();
    if !status.success() {
        problems.push(format!("reconcile: gmail-listener exited with {status}"));
    }
    let last = world
        .ledger()
        .status("gmail-listener")
        .ok()
        .and_then(|s| s.get("reconcile").cloned())
        .unwrap_or(Value::Null);
    if last["outcome"] != "ok" {
        problems.push(format!("reconcile: pass outcome {}", last["outcome"]));
        if std::env::var_os("BIONICBB_BENCH_LOG").is_some() {
            eprintln!("{output}");
        }
    }
    Pass {
        gerrit: world.gerrit.faults().requests().len() - before.0,
        jenkins: world.jenkins.faults().requests().len() - before.1,
        changes: last["changes"].as_u64().unwrap_or(0),
        pass: Duration::from_millis(last["duration_ms"].as_u64().unwrap_or(0)),
        run,
    }
}

fn print(name: &str, open: usize, p: &Pass) {
    let per_change = if p.changes == 0 {
        String::new()
    } else {
        format!(
            " ({:.2} ms per change)",
            p.pass.as_secs_f64() * 1000.0 / p.changes as f64
        )
    };
    line(
        name,
        format!(
            "{open} open changes, {} in the window: {} Gerrit requests, {} Jenkins requests; \
             pass {}{per_change}, whole run {}",
            p.changes,
            p.gerrit,
            p.jenkins,
            ms(p.pass),
            ms(p.run),
        ),
    );
}
