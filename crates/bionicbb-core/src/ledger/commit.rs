//! Group commit: concurrent writers of one process share one transaction
//! and one flush.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the
//! WAL), and one commit per write caps a daemon at a few hundred writes a
//! second. Here writers that arrive while others are running join the same
//! transaction (a *batch*), and the last of them commits it for all:
//!
//! 1. a writer counts itself as waiting, then takes the connection's lock;
//! 2. if no batch is open it opens one (`BEGIN IMMEDIATE`, which waits for
//!    the other daemon's write lock up to the busy timeout);
//! 3. it runs its work inside a `SAVEPOINT`: released if the work succeeds,
//!    rolled back if it fails (or panics), so a failing writer never undoes
//!    the others of its batch;
//! 4. it stops counting itself as waiting. If no other writer waits to run
//!    (or the batch is [`MAX_BATCH`] writers long), it commits the batch
//!    itself, still holding the lock, and wakes the batch's members with
//!    the outcome; otherwise it lets go of the lock and waits for the
//!    outcome, which the batch's last writer publishes. (A writer that would
//!    commit a batch smaller than the previous one first waits up to
//!    [`LINGER`] for the others to come back; whoever runs last then
//!    commits.)
//!
//! A writer returns its own work's value only once the commit succeeded: an
//! acknowledged write is in the WAL and flushed to the disk (`FULL`), so it
//! survives `kill -9` of the process *and* a power cut. A failed commit (a
//! full disk...) is an error for every member, and the batch is rolled back.
//! If SQLite itself abandons the transaction under a member (it does on an
//! I/O error or a full disk), the batch ends there, as failed for every
//! member that ran in it.
//!
//! The batch holds SQLite's write lock only while its members run one after
//! the other (microseconds each), at most [`LINGER`] longer, and during the
//! commit, never while a caller waits for anything else (a network answer,
//! an await), so the other daemon's writes still get their turn. Readers use their own connection (see [`super::Ledger`]):
//! WAL readers see committed transactions only, so a read never sees an
//! uncommitted batch, and never waits behind a flush.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{LedgerError, Result, sql};

/// The most writers one batch takes before it commits even though more
/// wait: bounds a batch's wait under a steady stream of writers.
pub const MAX_BATCH: usize = 128;

/// How long a writer that would commit a batch smaller than the previous
/// one waits for others first: concurrent writers answered by one commit
/// come back a moment later, and without this the first of them would
/// commit alone and the rest in the next batch (two flushes where one
/// does). At most once per batch; never when writers come one at a time
/// (the previous batch had one member).
pub const LINGER: Duration = Duration::from_millis(1);

/// The writer connection and the batching state.
pub(super) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled each time a batch ends.
    ended: Condvar,
    /// Writers counted in but not yet done running their work.
    waiting: AtomicUsize,
    /// Batches committed since open.
    commits: AtomicU64,
    /// Writes whose work ran in a batch since open.
    writes: AtomicU64,
}

struct State {
    conn: Connection,
    /// The batch whose transaction is open.
    open: Option<u64>,
    next_batch: u64,
    /// Members that ran in the open batch.
    members: usize,
    /// Members of the open batch waiting for its outcome.
    listeners: usize,
    /// How many members the previous batch had.
    last_size: usize,
    /// A member of the open batch lingers (see `LINGER`).
    lingering: bool,
    /// Outcomes of ended batches not yet read by all their waiting members:
    /// (members still to read it, the outcome).
    outcomes: HashMap<u64, (usize, Result<(), String>)>,
}

/// How one writer's work ended.
enum Ran<T> {
    Value(T),
    Failed(LedgerError),
    Panicked(Box<dyn Any + Send>),
}

impl GroupCommit {
    pub(super) fn new(conn: Connection) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                conn,
                open: None,
                next_batch: 0,
                members: 0,
                listeners: 0,
                last_size: 0,
                lingering: false,
                outcomes: HashMap::new(),
            }),
            ended: Condvar::new(),
            waiting: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Batches committed since open.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Writes that ran (in a batch, committed or not yet) since open.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Work runs under catch_unwind, so the lock is not poisoned by it;
        // should it be anyway, the state is consistent between statements.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in the current batch (opening one if needed) and returns its
    /// value once the batch is committed. See the module documentation.
    pub(super) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock();
        if state.open.is_none() {
            if let Err(e) = state.conn.execute_batch("BEGIN IMMEDIATE") {
                // No batch is open, so nobody waits for one: just leave.
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(sql(op)(e));
            }
            state.open = Some(state.next_batch);
            state.next_batch += 1;
            state.members = 0;
            state.listeners = 0;
        }
        let batch = state.open.unwrap_or_default();
        let ran = run_in_savepoint(&state.conn, op, f);
        state.members += 1;
        self.writes.fetch_add(1, Ordering::SeqCst);
        if state.conn.is_autocommit() {
            // SQLite ended the transaction under this writer (an I/O error,
            // a full disk, a savepoint that could not be rolled back).
            let why = match &ran {
                Ran::Failed(e) => e.to_string(),
                _ => "the transaction was abandoned".to_string(),
            };
            self.end_batch(&mut state, Err(why));
        }
        let others_waiting = self.waiting.fetch_sub(1, Ordering::SeqCst) > 1;
        // A writer alone in a batch while the previous batch was larger
        // waits a moment for the others to come back (see `LINGER`). Never
        // one whose work panicked: it leaves at once.
        let linger = !others_waiting
            && !state.lingering
            && state.members < state.last_size
            && !matches!(ran, Ran::Panicked(_));
        let outcome = if state.open != Some(batch) {
            // The batch already ended, rolled back (see above).
            Err("the shared transaction was rolled back".to_string())
        } else if (!others_waiting && !linger) || state.members >= MAX_BATCH {
            self.commit_batch(&mut state)
        } else if let Ran::Panicked(payload) = ran {
            // Its work is rolled back; the others commit without it.
            drop(state);
            resume_unwind(payload);
        } else {
            state.listeners += 1;
            let deadline = linger.then(|| Instant::now() + LINGER);
            state.lingering |= linger;
            loop {
                if let Some(entry) = state.outcomes.get_mut(&batch) {
                    entry.0 -= 1;
                    let outcome = entry.1.clone();
                    if entry.0 == 0 {
                        state.outcomes.remove(&batch);
                    }
                    break outcome;
                }
                let Some(deadline) = deadline.filter(|_| state.open == Some(batch)) else {
                    state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                    continue;
                };
                let now = Instant::now();
                if now < deadline {
                    state = self
                        .ended
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                } else if self.waiting.load(Ordering::SeqCst) == 0 {
                    // Nobody came, or all who came ran: commit for them.
                    state.listeners -= 1;
                    break self.commit_batch(&mut state);
                } else {
                    // A writer is about to run: the last one commits.
                    state = self.ended.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        };
        drop(state);
        match (ran, outcome) {
            (Ran::Panicked(payload), _) => resume_unwind(payload),
            (Ran::Failed(e), _) => Err(e),
            (Ran::Value(v), Ok(())) => Ok(v),
            (Ran::Value(_), Err(detail)) => Err(LedgerError::Commit { op, detail }),
        }
    }

    /// Commits the open batch and ends it with the outcome.
    fn commit_batch(&self, state: &mut State) -> Result<(), String> {
        let outcome = commit(&state.conn);
        if outcome.is_ok() {
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        self.end_batch(state, outcome.clone());
        outcome
    }

    /// Ends the open batch with `outcome` (rolling it back unless it was
    /// committed) and wakes its members.
    fn end_batch(&self, state: &mut State, outcome: Result<(), String>) {
        if outcome.is_err() && !state.conn.is_autocommit() {
            // Nothing to do if this fails too: the connection drops the
            // transaction when the next BEGIN finds it (never reached).
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        if let Some(batch) = state.open.take() {
            if state.listeners > 0 {
                state.outcomes.insert(batch, (state.listeners, outcome));
            }
        }
        state.listeners = 0;
        state.last_size = state.members;
        state.members = 0;
        state.lingering = false;
        self.ended.notify_all();
    }

    /// Counts one writer in without running it yet, so batches do not
    /// commit until the returned guard is dropped. For tests that need a
    /// batch to stay open while they look at it.
    pub(super) fn hold(&self) -> CommitHold<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        CommitHold { group: self }
    }
}

/// Keeps batches from committing while it lives; see
/// [`super::Ledger::hold_commits`].
#[must_use]
pub struct CommitHold<'a> {
    group: &'a GroupCommit,
}

impl Drop for CommitHold<'_> {
    fn drop(&mut self) {
        let group = self.group;
        let mut state = group.lock();
        let last = group.waiting.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && state.open.is_some() {
            let _ = group.commit_batch(&mut state);
        }
    }
}

/// `COMMIT`, the error as text (it is shared by every member).
fn commit(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())
}

/// Runs `f` inside a savepoint: released on success, rolled back on an
/// error or a panic. If the savepoint cannot be rolled back, the whole
/// transaction is (the caller sees the connection in autocommit mode).
fn run_in_savepoint<T>(
    conn: &Connection,
    op: &'static str,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Ran<T> {
    if let Err(e) = conn.execute_batch("SAVEPOINT member") {
        return Ran::Failed(sql(op)(e));
    }
    let ran = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => match conn.execute_batch("RELEASE member") {
            Ok(()) => return Ran::Value(value),
            Err(e) => Ran::Failed(sql(op)(e)),
        },
        Ok(Err(e)) => Ran::Failed(e),
        Err(payload) => Ran::Panicked(payload),
    };
    if !conn.is_autocommit()
        && conn
            .execute_batch("ROLLBACK TO member; RELEASE member")
            .is_err()
    {
        let _ = conn.execute_batch("ROLLBACK");
    }
    ran
}
