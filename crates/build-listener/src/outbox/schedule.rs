//! Which items the worker has in hand: up to
//! `build_listener.outbox_concurrency` at once, each of a different change.
//!
//! The loop asks the ledger for the due items of the changes that have
//! nothing in hand ([`Ledger::due_items`]: the oldest pending item of each
//! change, so a change's items still go in order), starts one task per item
//! and waits for a task to end, new work, the next due time or shutdown.
//! Only this loop adds or removes a change from the set in hand, so two
//! items of one change are never in flight together. What each task does
//! with its item (in doubt, look-back, retries, giving up) is [`Worker`]'s
//! one-item logic, unchanged.
//!
//! [`Ledger::due_items`]: bionicbb_core::ledger::Ledger::due_items

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bionicbb_core::ledger;
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};

use super::{IDLE_WAIT, PRUNE_EVERY_SECS, Worker};
use crate::with_ledger;

/// How often the pending items are counted (for the service's status line)
/// while the worker is busy.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// The tasks in hand and the change (order key) of each.
#[derive(Default)]
struct InHand {
    tasks: JoinSet<()>,
    keys: HashMap<Id, String>,
}

impl InHand {
    fn busy(&self) -> Vec<String> {
        self.keys.values().cloned().collect()
    }

    /// Forgets the task that ended (its change may be picked again).
    fn ended(&mut self, ended: Result<(Id, ()), JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(e) => {
                // The item stays pending in the ledger: picked again later.
                tracing::error!("outbox: an item's task failed: {e}");
                e.id()
            }
        };
        self.keys.remove(&id);
    }
}

impl Worker {
    /// Runs until `shutdown` turns true; the items in hand are finished
    /// first (the outbox is durable, stopping between items loses nothing).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let limit = worker.config.build_listener.outbox_concurrency.max(1);
        let mut in_hand = InHand::default();
        let mut next_prune = 0;
        let mut reported = None;
        let mut counted_at: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Counting reads every pending item: at most once a second while
            // items are in hand (each item's end wakes this loop), at once
            // when the worker is about to go idle.
            if in_hand.keys.is_empty() || counted_at.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
                worker.report_pending(&mut reported).await;
                counted_at = Some(Instant::now());
            }
            let now = ledger::now();
            if now >= next_prune {
                next_prune = now + PRUNE_EVERY_SECS;
                worker.prune(now).await;
            }
            let wait = if in_hand.keys.len() < limit {
                let free = limit - in_hand.keys.len();
                let busy = in_hand.busy();
                let due = with_ledger(&worker.ledger, move |l| {
                    let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
                    l.due_items(now, &busy, free)
                })
                .await;
                match due {
                    Ok(items) if !items.is_empty() => {
                        for item in items {
                            let key = item.order_key.clone();
                            let worker = worker.clone();
                            let task = in_hand
                                .tasks
                                .spawn(async move { worker.handle(item).await });
                            in_hand.keys.insert(task.id(), key);
                        }
                        continue;
                    }
                    Ok(_) => worker.idle_wait(now, in_hand.busy()).await,
                    Err(e) => worker.ledger_trouble(&e).await,
                }
            } else {
                // Full: a task's end is what frees a place.
                IDLE_WAIT
            };
            tokio::select! {
                Some(ended) = in_hand.tasks.join_next_with_id() => in_hand.ended(ended),
                _ = tokio::time::sleep(wait) => {}
                _ = worker.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        while let Some(ended) = in_hand.tasks.join_next_with_id().await {
            in_hand.ended(ended);
        }
        tracing::info!("outbox worker stopped");
    }

    /// How long to sleep when nothing can start now: until the next item of
    /// a change without an item in hand is due (a change with one in hand
    /// waits for its task's end, which wakes the loop anyway).
    async fn idle_wait(&self, now: i64, busy: Vec<String>) -> Duration {
        let next = with_ledger(&self.ledger, move |l| {
            let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
            l.next_due_at_except(&busy)
        })
        .await;
        match next {
            Ok(Some(at)) if at > now => Duration::from_secs((at - now) as u64).min(IDLE_WAIT),
            // Due already (a race with a write): look again soon.
            Ok(Some(_)) => Duration::from_millis(200),
            Ok(None) => IDLE_WAIT,
            Err(e) => self.ledger_trouble(&e).await,
        }
    }
}
