//! The fake Jenkins' executors for the chaos test: start every waiting item
//! at once, finish each build a little later with the result the scenario
//! gives it, except builds the story holds back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::env::{CLEAN_JOB, Env, VERIFY_JOB, build_key};
use super::scenario::verify_result;

/// How long a build runs.
const RUN: Duration = Duration::from_millis(300);

/// Runs until `stop` turns true.
pub async fn run(env: Arc<Env>, mut stop: watch::Receiver<bool>) {
    let mut seen: BTreeMap<(String, u64), Instant> = BTreeMap::new();
    let mut finishing: BTreeSet<(String, u64)> = BTreeSet::new();
    loop {
        for item in env.jenkins.queue() {
            let env = env.clone();
            tokio::spawn(async move {
                env.jenkins.start_next(&item.job).await;
            });
        }
        let builds = env.jenkins.builds();
        let holds = env.holds.lock().unwrap().clone();
        for b in &builds {
            let id = (b.job.clone(), b.number);
            if b.result.is_some() || finishing.contains(&id) {
                continue;
            }
            let since = *seen.entry(id.clone()).or_insert_with(Instant::now);
            let (_, change, ps) = build_key(&b.job, &b.params);
            if since.elapsed() < RUN || holds.contains(&(change, ps)) {
                continue;
            }
            let result = if b.job == VERIFY_JOB {
                // The n-th build of this patch set, in Jenkins' order.
                let ordinal = builds
                    .iter()
                    .filter(|o| o.job == b.job && o.number < b.number)
                    .filter(|o| build_key(&o.job, &o.params) == build_key(&b.job, &b.params))
                    .count() as u32;
                verify_result(change, ps, ordinal)
            } else {
                debug_assert_eq!(b.job, CLEAN_JOB);
                "SUCCESS"
            };
            finishing.insert(id);
            let env = env.clone();
            let job = b.job.clone();
            let number = b.number;
            tokio::spawn(async move {
                env.jenkins.finish(&job, number, result).await;
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
