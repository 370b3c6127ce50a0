//! Both real daemons under a supervisor that restarts them when they exit
//! (as systemd would) and SIGKILLs them at random moments.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, watch};

use super::env::Env;
use crate::harness::Daemon;

/// Milliseconds between two kills.
const KILL_EVERY_MS: std::ops::Range<u64> = 5000..12000;

pub const NAMES: [&str; 2] = ["build-listener", "gmail-listener"];

pub struct Daemons {
    config: String,
    running: [Option<Daemon>; 2],
    /// SIGKILLs sent to each daemon.
    pub kills: [u32; 2],
    /// Exits the daemons made by themselves.
    pub exits: Vec<String>,
    /// The output of every instance that ended: (daemon, instance, output).
    pub logs: Vec<(String, usize, String)>,
    instances: [usize; 2],
}

impl Daemons {
    pub fn start(env: &Env) -> Daemons {
        let mut daemons = Daemons {
            config: env.config_arg(),
            running: [None, None],
            kills: [0, 0],
            exits: Vec::new(),
            logs: Vec::new(),
            instances: [0, 0],
        };
        daemons.spawn(0);
        daemons.spawn(1);
        daemons
    }

    fn spawn(&mut self, which: usize) {
        self.instances[which] += 1;
        self.running[which] = Some(Daemon::spawn(NAMES[which], &["--config", &self.config]));
    }

    /// Restarts a daemon that exited by itself.
    pub fn supervise(&mut self) {
        for (which, name) in NAMES.iter().enumerate() {
            let Some(daemon) = self.running[which].as_mut() else {
                continue;
            };
            if let Some(status) = daemon.try_exited() {
                let output = daemon.output();
                self.exits
                    .push(format!("{name} exited by itself: {status}"));
                self.logs
                    .push((name.to_string(), self.instances[which], output));
                self.spawn(which);
            }
        }
    }

    /// SIGKILLs a daemon and starts it again after `pause`.
    pub async fn kill(&mut self, which: usize, pause: Duration) {
        if let Some(daemon) = self.running[which].take() {
            let output = daemon.kill().await;
            self.logs
                .push((NAMES[which].to_string(), self.instances[which], output));
            self.kills[which] += 1;
        }
        tokio::time::sleep(pause).await;
        self.spawn(which);
    }

    /// Stops both (the checks are done); keeps their output.
    pub async fn stop(&mut self) {
        for (which, name) in NAMES.iter().enumerate() {
            if let Some(daemon) = self.running[which].take() {
                let output = daemon.kill().await;
                self.logs
                    .push((name.to_string(), self.instances[which], output));
            }
        }
    }
}

/// Supervises the daemons and kills one at random every 5 to 12 s until
/// `stop` turns true and each was killed `min_kills` times; then only
/// supervises until `done` turns true.
pub async fn chaos(
    daemons: Arc<Mutex<Daemons>>,
    seed: u64,
    min_kills: u32,
    stop: watch::Receiver<bool>,
    done: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4b11);
    let mut next =
        tokio::time::Instant::now() + Duration::from_millis(rng.random_range(KILL_EVERY_MS));
    let mut killing = true;
    loop {
        if *done.borrow() {
            return;
        }
        daemons.lock().await.supervise();
        if killing && tokio::time::Instant::now() >= next {
            let kills = daemons.lock().await.kills;
            // Once the story is over, the one killed least until both had enough.
            let which = if *stop.borrow() {
                usize::from(kills[1] < kills[0])
            } else {
                rng.random_range(0..2)
            };
            let pause = Duration::from_millis(rng.random_range(0..400));
            daemons.lock().await.kill(which, pause).await;
            next = tokio::time::Instant::now()
                + Duration::from_millis(rng.random_range(KILL_EVERY_MS));
        }
        if killing && *stop.borrow() {
            let kills = daemons.lock().await.kills;
            if kills.iter().all(|k| *k >= min_kills) {
                killing = false;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
