//! Group commit: concurrent writers of one process share one transaction
//! and one flush.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the
//! WAL), and one commit per write caps a daemon at a few hundred writes a
//! second. Here one thread owns the writing connection and runs every
//! write; writers hand it their work through a queue and wait for the
//! answer. The thread takes whatever is queued as one *batch*:
//!
//! 1. it opens a transaction (`BEGIN IMMEDIATE`, which waits for the other
//!    daemon's write lock up to the busy timeout) for the first queued work;
//! 2. it runs each queued work inside a `SAVEPOINT`: released if the work
//!    succeeds, rolled back if it fails (or panics), so a failing writer
//!    never undoes the others of its batch. A writer whose work failed gets
//!    its error at once (its panic, resumed in its own thread);
//! 3. once the queue is empty (or the batch is [`MAX_BATCH`] writes long) it
//!    commits, then answers every member of the batch. Writers that queue
//!    meanwhile form the next batch, so the more writers wait, the more
//!    each flush carries, and a lone writer is never kept waiting.
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
//! the other (microseconds each) and during the commit, never while a
//! caller waits for anything else (a network answer, an await), so the
//! other daemon's writes still get their turn. Readers use their own
//! connection (see [`super::Ledger`]): WAL readers see committed
//! transactions only, so a read never sees an uncommitted batch, and never
//! waits behind a flush.
//!
//! A queue and one thread rather than writers taking turns on a lock: on a
//! busy daemon (dozens of concurrent writers on two cores) a shared lock
//! with a condition variable makes every writer sleep and wake several
//! times per write (a lock convoy); here each writer sleeps once, until its
//! answer.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{LedgerError, Result, sql};

/// The most writers one batch takes before it commits even though more
/// wait: bounds a batch's wait under a steady stream of writers.
pub const MAX_BATCH: usize = 128;

/// What the writing thread tells a batch member once the batch ended:
/// `Ok` if it was committed, the reason otherwise.
type Outcome = std::result::Result<(), String>;

/// A member's answer, sent once the batch it ran in ended.
type Finish = Box<dyn FnOnce(Outcome) + Send>;

/// A writer's work as the writing thread runs it (or refuses it): `Some`
/// answer to send once the batch ends when the work succeeded, `None` when
/// it failed or was refused (its writer was answered already).
type Job = Box<dyn FnOnce(Step<'_>) -> Option<Finish> + Send>;

/// What the writing thread does with a job.
enum Step<'c> {
    /// Run it in the open batch.
    Run(&'c Connection),
    /// No batch could be opened for it: answer this error.
    Refuse(rusqlite::Error),
}

/// The writing thread and the counters it keeps.
pub(super) struct GroupCommit {
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What writers and the writing thread share besides the queue.
struct Shared {
    /// Batches committed since open.
    commits: AtomicU64,
    /// Writes whose work ran in a batch since open.
    writes: AtomicU64,
    /// Open [`CommitHold`]s: while any, the open batch does not commit.
    holds: Mutex<usize>,
    released: Condvar,
}

/// A writer's work and where its answer goes. The fields drop in
/// declaration order (the work and what it borrows first, then the sender
/// whose drop lets the writer return); see the safety argument in
/// [`GroupCommit::write`].
struct Pending<F, T> {
    work: F,
    answer: SyncSender<Answer<T>>,
}

/// A writer's answer.
enum Answer<T> {
    Value(T),
    Failed(LedgerError),
    Panicked(Box<dyn Any + Send>),
}

impl GroupCommit {
    pub(super) fn new(conn: Connection) -> GroupCommit {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            holds: Mutex::new(0),
            released: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || run(conn, jobs, &shared))
                .ok()
        };
        GroupCommit {
            queue: thread.as_ref().map(|_| queue),
            thread,
            shared,
        }
    }

    /// Batches committed since open.
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::SeqCst)
    }

    /// Writes that ran (in a batch, committed or not yet) since open.
    pub(super) fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::SeqCst)
    }

    /// Runs `f` in the current batch (opening one if needed) and returns its
    /// value once the batch is committed. See the module documentation.
    pub(super) fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T> + Send,
    ) -> Result<T> {
        let (answer, answered) = std::sync::mpsc::sync_channel::<Answer<T>>(1);
        let pending = Pending { work: f, answer };
        let job: Box<dyn FnOnce(Step<'_>) -> Option<Finish> + Send + '_> =
            Box::new(move |step: Step<'_>| {
                // Taken apart here: `work` is consumed before `answer` is
                // used (see the safety argument below).
                let Pending { work, answer } = pending;
                let ran = match step {
                    Step::Run(conn) => run_in_savepoint(conn, op, work),
                    Step::Refuse(e) => {
                        drop(work);
                        Answer::Failed(sql(op)(e))
                    }
                };
                match ran {
                    Answer::Value(value) => Some(Box::new(move |outcome: Outcome| {
                        let _ = answer.send(match outcome {
                            Ok(()) => Answer::Value(value),
                            Err(detail) => Answer::Failed(LedgerError::Commit { op, detail }),
                        });
                    }) as Finish),
                    failed => {
                        let _ = answer.send(failed);
                        None
                    }
                }
            });
        // SAFETY: the job borrows from this call's argument `f`, so it must
        // not outlive this call. This call returns only once `answered` has
        // an answer or is disconnected, that is once `pending.answer` was
        // used or dropped. The job uses it only after `f` is consumed (run
        // to its end, or unwound inside `run_in_savepoint`), then moves it
        // into its `Finish`, which holds nothing borrowed (`T: 'static`).
        // A job dropped unrun (the writing thread gone) drops `pending`,
        // whose fields drop in declaration order: `work` (with its
        // borrows) before `answer`. So nothing borrowed is touched after
        // this call returns: the same contract as a scoped thread's.
        let job: Job = unsafe { std::mem::transmute(job) };
        let gone = || LedgerError::Invalid {
            op,
            detail: "the ledger's writing thread is gone".to_string(),
        };
        let queued = match &self.queue {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        };
        if !queued {
            return Err(gone());
        }
        match answered.recv() {
            Ok(Answer::Value(value)) => Ok(value),
            Ok(Answer::Failed(e)) => Err(e),
            Ok(Answer::Panicked(payload)) => resume_unwind(payload),
            Err(_) => Err(gone()),
        }
    }

    /// Keeps the open batch from committing (unless it is [`MAX_BATCH`]
    /// long) until the returned guard is dropped. For tests that need a
    /// batch to stay open while they look at it.
    pub(super) fn hold(&self) -> CommitHold<'_> {
        *lock(&self.shared.holds) += 1;
        CommitHold { group: self }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it answered what is
        // queued; joining it closes the connection before the caller goes
        // on (a reopen of the file then finds it closed).
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
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
        let shared = &self.group.shared;
        let mut holds = lock(&shared.holds);
        *holds = holds.saturating_sub(1);
        shared.released.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writing thread: batch after batch until the queue is closed.
fn run(conn: Connection, jobs: Receiver<Job>, shared: &Shared) {
    while let Ok(first) = jobs.recv() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // No batch is open: this writer is refused alone, the next one
            // tries again.
            first(Step::Refuse(e));
            continue;
        }
        let mut finishes: Vec<Finish> = Vec::new();
        let mut members = 0;
        let mut next = Some(first);
        let mut abandoned = false;
        loop {
            if let Some(job) = next.take() {
                let finish = job(Step::Run(&conn));
                members += 1;
                shared.writes.fetch_add(1, Ordering::SeqCst);
                finishes.extend(finish);
                if conn.is_autocommit() {
                    // SQLite ended the transaction under this writer (an
                    // I/O error, a full disk, a savepoint that could not be
                    // rolled back): the batch ends here.
                    abandoned = true;
                    break;
                }
            }
            if members >= MAX_BATCH {
                break;
            }
            match jobs.try_recv() {
                Ok(job) => next = Some(job),
                Err(TryRecvError::Empty) => match wait_while_held(shared, &jobs) {
                    Some(job) => next = Some(job),
                    None => break,
                },
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let outcome = if abandoned {
            Err("the shared transaction was rolled back".to_string())
        } else {
            match conn.execute_batch("COMMIT") {
                Ok(()) => {
                    shared.commits.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                Err(e) => {
                    if !conn.is_autocommit() {
                        // Nothing to do if this fails too: the next BEGIN
                        // fails and says why.
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Err(e.to_string())
                }
            }
        };
        for finish in finishes {
            finish(outcome.clone());
        }
    }
}

/// While a [`CommitHold`] lives, waits for more work to join the open
/// batch; `None` once no hold is left (commit now).
fn wait_while_held(shared: &Shared, jobs: &Receiver<Job>) -> Option<Job> {
    loop {
        {
            let holds = lock(&shared.holds);
            if *holds == 0 {
                return None;
            }
            // Woken by a released hold, or soon enough to see new work.
            let _ = shared
                .released
                .wait_timeout(holds, Duration::from_millis(1));
        }
        match jobs.recv_timeout(Duration::ZERO) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Runs `f` inside a savepoint: released on success, rolled back on an
/// error or a panic. If the savepoint cannot be rolled back, the whole
/// transaction is (the caller sees the connection in autocommit mode).
fn run_in_savepoint<T>(
    conn: &Connection,
    op: &'static str,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Answer<T> {
    if let Err(e) = conn.execute_batch("SAVEPOINT member") {
        return Answer::Failed(sql(op)(e));
    }
    let ran = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => match conn.execute_batch("RELEASE member") {
            Ok(()) => return Answer::Value(value),
            Err(e) => Answer::Failed(sql(op)(e)),
        },
        Ok(Err(e)) => Answer::Failed(e),
        Err(payload) => Answer::Panicked(payload),
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
