//! The HTTP server's connections, bounded so that no client can take the
//! listener away from Jenkins.
//!
//! Every connection costs a file descriptor, and a client that opens
//! connections and sends nothing (or half a header, or a body a byte at a
//! time) costs nothing to its sender. So:
//!
//! - at most [`Limits::max_connections`] connections are open at once, a
//!   number taken from the process's descriptor limit with room left for
//!   the ledger, the Gerrit client and the rest ([`Limits::for_descriptors`]);
//! - a connection is *idle* while it has no request being handled: from the
//!   moment it is opened until its request header is complete, and again
//!   after each answer. An idle connection is closed after
//!   [`Limits::idle_timeout`]: this bounds slow headers, idle keep-alive and
//!   clients that do not read their answer;
//! - when every slot is taken, a new connection takes the slot of the
//!   connection idle the longest, which is closed. A stalled connection
//!   therefore never keeps a genuine request out, however many there are:
//!   Jenkins sends its request as soon as it is connected, and a connection
//!   whose request is being handled is never closed for another. When all
//!   connections are handling requests, the new one is closed at once (shed);
//! - the time to read a request's body and answer it is bounded by the
//!   router ([`crate::app::REQUEST_TIMEOUT`], 408).
//!
//! The accept loop never stops on an error: a connection that failed before
//! it was accepted is skipped; running out of descriptors anyway closes the
//! connection idle the longest and waits a moment (without spinning). Log
//! lines about shed connections are limited to one every
//! [`COMPLAINT_EVERY`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a connection may stay idle (see the module doc).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle connection may stay open once the server stops.
const STOPPING_IDLE: Duration = Duration::from_secs(1);

/// How often at most the loop logs connections shed or accept errors.
pub const COMPLAINT_EVERY: Duration = Duration::from_secs(10);

/// The descriptor limit assumed when the process's cannot be read.
const DEFAULT_NOFILE: u64 = 1024;

/// Connections at most, whatever the descriptor limit.
const MAX_CONNECTIONS: u64 = 4096;

/// The bounds on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits for a process that may open `nofile` descriptors: an
    /// eighth of them (at least 32) are left for everything but the
    /// connections (the ledger's files, the Gerrit client, logs).
    pub fn for_descriptors(nofile: u64) -> Limits {
        let reserve = (nofile / 8).max(32);
        let max = nofile.saturating_sub(reserve).clamp(1, MAX_CONNECTIONS);
        Limits {
            max_connections: usize::try_from(max).unwrap_or(1),
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// The limits for this process (its soft `RLIMIT_NOFILE`, read from
    /// `/proc/self/limits`: asking the kernel with `getrlimit` is a
    /// `prlimit64` call, which the unit's system-call filter forbids).
    pub fn for_this_process() -> Limits {
        let nofile = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| soft_nofile(&text))
            .unwrap_or(DEFAULT_NOFILE);
        Limits::for_descriptors(nofile)
    }
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits`;
/// `None` if absent or `unlimited`.
pub fn soft_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One open connection.
struct Conn {
    /// Requests being handled on it.
    in_flight: AtomicUsize,
    /// When it last became idle, in milliseconds since the registry's epoch.
    idle_since: AtomicU64,
    /// Told to close (its slot was given to a newer connection).
    evict: Notify,
}

/// The open connections.
struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            epoch: Instant::now(),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection.
    fn admit(&self) -> (u64, Arc<Conn>) {
        let mut conns = self.lock();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        conns.insert(id, conn.clone());
        (id, conn)
    }

    /// Closes the connection idle the longest, if there is one.
    fn evict_one(&self) -> bool {
        evict_idlest(&mut self.lock())
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

fn evict_idlest(conns: &mut HashMap<u64, Arc<Conn>>) -> bool {
    let idlest = conns
        .iter()
        .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
        .min_by_key(|(_, c)| c.idle_since.load(Ordering::Acquire))
        .map(|(id, _)| *id);
    match idlest.and_then(|id| conns.remove(&id)) {
        Some(conn) => {
            conn.evict.notify_one();
            true
        }
        None => false,
    }
}

/// Marks a connection busy while a request is handled; idle again (from
/// now) when dropped, answered or not.
struct Busy {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Busy {
    fn start(conn: Arc<Conn>, registry: Arc<Registry>) -> Busy {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy { conn, registry }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most one log line per [`COMPLAINT_EVERY`] about what the loop had to
/// refuse, with the count since the last one.
#[derive(Default)]
struct Complaints {
    last: Option<Instant>,
    shed: u64,
    accept_errors: u64,
}

impl Complaints {
    fn note(&mut self, shed: bool, error: Option<&io::Error>, max: usize) {
        if shed {
            self.shed += 1;
        } else {
            self.accept_errors += 1;
        }
        if self.last.is_some_and(|at| at.elapsed() < COMPLAINT_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        match error {
            Some(e) => tracing::error!(
                errors = self.accept_errors,
                "accept error: {e}; closed the connection idle the longest"
            ),
            None => tracing::warn!(
                shed = self.shed,
                "all {max} connections are handling requests; new connections are closed"
            ),
        }
        self.shed = 0;
        self.accept_errors = 0;
    }
}

/// A slot for a new connection: free, or freed by closing the connection
/// idle the longest (waiting for it to be closed, so that descriptors stay
/// bounded); `None` when every connection is handling a request.
async fn slot(slots: &Arc<Semaphore>, registry: &Registry) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !registry.evict_one() {
        return None;
    }
    match tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Some(permit),
        _ => None,
    }
}

/// How long a new connection waits for the one it replaces to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` within `limits` until `shutdown` turns true,
/// then lets open connections finish their request and returns once they
/// are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::new());
    // One permit per open connection, held until its socket is closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut complaints = Complaints::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => match slot(&slots, &registry).await {
                Some(permit) => {
                    let (id, conn) = registry.admit();
                    let task = Connection {
                        id,
                        conn,
                        addr,
                        app: app.clone(),
                        registry: registry.clone(),
                        idle_timeout: limits.idle_timeout,
                    };
                    tasks.spawn(task.run(stream, permit, closing_rx.clone()));
                }
                None => {
                    drop(stream);
                    complaints.note(true, None, limits.max_connections);
                }
            },
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Most likely out of descriptors: free one and give the
                // closing connection a moment.
                registry.evict_one();
                complaints.note(false, Some(&e), limits.max_connections);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let _ = closing.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// An error about one connection that failed before it was accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One accepted connection and what it needs.
struct Connection {
    id: u64,
    conn: Arc<Conn>,
    addr: SocketAddr,
    app: Router,
    registry: Arc<Registry>,
    idle_timeout: Duration,
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        mut closing: watch::Receiver<bool>,
    ) {
        let Connection {
            id,
            conn,
            addr,
            app,
            registry,
            idle_timeout,
        } = self;
        let (tracked, reg) = (conn.clone(), registry.clone());
        let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            let busy = Busy::start(tracked.clone(), reg.clone());
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(Body::new)).await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout);
        // Boxed, so that it can be dropped (and its socket closed) before
        // the slot is given back.
        let mut http = Box::pin(
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
        );
        let idle_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
        // When the server began to stop, if it did.
        let mut stopping: Option<Instant> = None;
        loop {
            let busy = conn.in_flight.load(Ordering::Acquire) > 0;
            let idle_since = conn.idle_since.load(Ordering::Acquire);
            let mut deadline = if busy {
                Instant::now() + idle_timeout
            } else {
                registry.epoch + Duration::from_millis(idle_since.saturating_add(idle_ms))
            };
            if let Some(at) = stopping.filter(|_| !busy) {
                // A request whose header is on its way is still served; a
                // stalled connection does not hold the stop up.
                let cut = at + STOPPING_IDLE;
                if Instant::now() >= cut {
                    break;
                }
                deadline = deadline.min(cut);
            }
            tokio::select! {
                _ = http.as_mut() => break,
                _ = conn.evict.notified() => break,
                _ = closing.wait_for(|c| *c), if stopping.is_none() => {
                    stopping = Some(Instant::now());
                    http.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let idle = conn.in_flight.load(Ordering::Acquire) == 0
                        && registry.now_ms()
                            >= conn.idle_since.load(Ordering::Acquire).saturating_add(idle_ms);
                    if idle {
                        break;
                    }
                }
            }
        }
        // The socket first, then the slot.
        drop(http);
        registry.remove(id);
        drop(permit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_the_rest() {
        assert_eq!(Limits::for_descriptors(64).max_connections, 32);
        assert_eq!(Limits::for_descriptors(1024).max_connections, 896);
        assert_eq!(Limits::for_descriptors(8192).max_connections, 4096);
        assert_eq!(Limits::for_descriptors(10).max_connections, 1);
    }

    #[test]
    fn reads_the_soft_descriptor_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63704                63704                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(soft_nofile(text), Some(1024));
        assert_eq!(
            soft_nofile(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(soft_nofile(""), None);
    }

    #[tokio::test]
    async fn a_full_house_gives_the_slot_of_the_idlest_connection() {
        let registry = Registry::new();
        let slots = Arc::new(Semaphore::new(2));
        let pa = slot(&slots, &registry).await.unwrap();
        let (a, ca) = registry.admit();
        let pb = slot(&slots, &registry).await.unwrap();
        let (b, cb) = registry.admit();
        cb.idle_since.store(0, Ordering::Release);
        ca.idle_since.store(5, Ordering::Release);
        // b is idle the longest: it is told to close, and its slot is given
        // once it has.
        let waiting = {
            let (slots, registry) = (slots.clone(), Arc::new(registry));
            let r = registry.clone();
            (
                tokio::spawn(async move { slot(&slots, &r).await }),
                registry,
            )
        };
        let (task, registry) = waiting;
        cb.evict.notified().await;
        assert!(!registry.lock().contains_key(&b));
        drop(pb);
        let pc = task.await.unwrap().unwrap();
        let (_c, cc) = registry.admit();
        assert!(registry.lock().contains_key(&a));
        // Busy connections keep theirs: a full house of busy ones sheds.
        ca.in_flight.store(1, Ordering::Release);
        cc.in_flight.store(1, Ordering::Release);
        assert!(slot(&slots, &registry).await.is_none());
        drop((pa, pc));
    }
}
