//! Fault injection shared by the fakes: "fail the next N requests that
//! match", and a seeded random plan ([`Dice`]) that faults a share of every
//! request a fake sees, for chaos tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What happens to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, content type and body instead of serving.
    Status {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Wait this long, then serve normally.
    Delay(Duration),
    /// Close the connection without a complete answer (the server did not act).
    Drop,
    /// Serve the request, then answer this status instead of the real
    /// answer: the server acted, the client sees an error.
    StatusAfter {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Serve the request, then close the connection without an answer: the
    /// server acted, the client cannot know.
    DropAfter,
    /// The request is served after this delay in a task of its own, so it
    /// lands even when the client has given up waiting (a slow proxy or a
    /// loaded server); the client gets the answer if it is still there.
    Late(Duration),
}

impl Fault {
    /// A plain-text error answer.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Fault::Status {
            status,
            content_type: "text/plain; charset=UTF-8",
            body: body.into(),
        }
    }

    /// A JSON error answer.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Fault::Status {
            status,
            content_type: "application/json; charset=UTF-8",
            body: body.to_string(),
        }
    }

    /// The same error answer, given after the server acted on the request.
    pub fn after(self) -> Self {
        match self {
            Fault::Status {
                status,
                content_type,
                body,
            } => Fault::StatusAfter {
                status,
                content_type,
                body,
            },
            Fault::Drop => Fault::DropAfter,
            other => other,
        }
    }
}

/// A seeded random fault plan: each roll faults with probability `rate`,
/// picking one entry of the menu by weight, and counts what it picked by
/// kind. The same seed and the same sequence of rolls give the same faults.
#[derive(Debug)]
pub struct Dice<T> {
    rng: rand::rngs::StdRng,
    rate: f64,
    menu: Vec<(&'static str, u32, T)>,
    enabled: bool,
    counts: BTreeMap<&'static str, u64>,
}

impl<T: Clone> Dice<T> {
    /// `menu`: (kind, weight, fault). `rate` is clamped to `0..=1`.
    pub fn new(seed: u64, rate: f64, menu: Vec<(&'static str, u32, T)>) -> Self {
        use rand::SeedableRng;
        Dice {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            rate: rate.clamp(0.0, 1.0),
            menu,
            enabled: true,
            counts: BTreeMap::new(),
        }
    }

    /// The fault for the next request, if it gets one.
    pub fn roll(&mut self) -> Option<T> {
        use rand::Rng;
        let total: u32 = self.menu.iter().map(|(_, w, _)| *w).sum();
        if !self.enabled || total == 0 || !self.rng.random_bool(self.rate) {
            return None;
        }
        let mut pick = self.rng.random_range(0..total);
        for (kind, weight, fault) in &self.menu {
            if pick < *weight {
                *self.counts.entry(kind).or_default() += 1;
                return Some(fault.clone());
            }
            pick -= weight;
        }
        None
    }

    /// Stops (or resumes) faulting; the counts stay.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// How many faults of each kind were injected.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.clone()
    }
}

#[derive(Debug)]
struct Rule {
    method: Option<Method>,
    path_contains: String,
    remaining: u32,
    fault: Fault,
}

/// The faults a fake has been told to inject, and a log of every request
/// it saw (method, path and query), for tests that check what was sent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<String>>>,
    random: Arc<Mutex<Option<Dice<Fault>>>>,
    latency: Arc<Mutex<Option<Duration>>>,
    concurrency: Arc<Mutex<Concurrency>>,
    answered: Arc<Mutex<Vec<Answered>>>,
}

/// A request the fake answered: when it arrived and when its answer was
/// ready (the injected latency included).
#[derive(Debug, Clone)]
pub struct Answered {
    pub request: String,
    pub arrived: Instant,
    pub answered: Instant,
}

/// Requests in flight at once, among those whose `METHOD /path?query`
/// contains the tracked text.
#[derive(Debug, Default)]
struct Concurrency {
    tracked: Option<String>,
    now: usize,
    max: usize,
}

/// Counts a tracked request in flight until dropped (also when the client
/// hangs up and the handler is cancelled).
struct InFlight {
    concurrency: Arc<Mutex<Concurrency>>,
    counted: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.counted {
            self.concurrency.lock().unwrap().now -= 1;
        }
    }
}

impl Faults {
    /// Fails the next `times` requests whose method matches (any method when
    /// `None`) and whose path contains `path_contains`.
    pub fn fail_next(&self, method: Option<Method>, path_contains: &str, times: u32, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path_contains: path_contains.to_string(),
            remaining: times,
            fault,
        });
    }

    /// Forgets every pending fault.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Faults requests at random from now on (after the `fail_next` rules,
    /// which go first); `None` stops it and forgets the counts.
    pub fn set_random(&self, dice: Option<Dice<Fault>>) {
        *self.random.lock().unwrap() = dice;
    }

    /// Stops (or resumes) the random faults, keeping their counts.
    pub fn set_random_enabled(&self, enabled: bool) {
        if let Some(dice) = self.random.lock().unwrap().as_mut() {
            dice.set_enabled(enabled);
        }
    }

    /// How many random faults of each kind were injected.
    pub fn random_counts(&self) -> BTreeMap<&'static str, u64> {
        self.random
            .lock()
            .unwrap()
            .as_ref()
            .map(Dice::counts)
            .unwrap_or_default()
    }

    /// Delays every request by `latency` before it is served (a round trip
    /// of a distant server); `None` serves at once.
    pub fn set_latency(&self, latency: Option<Duration>) {
        *self.latency.lock().unwrap() = latency;
    }

    /// From now on, counts how many requests whose `METHOD /path?query`
    /// contains `request_contains` are in flight at once (see
    /// [`Faults::max_in_flight`]).
    pub fn track_in_flight(&self, request_contains: &str) {
        *self.concurrency.lock().unwrap() = Concurrency {
            tracked: Some(request_contains.to_string()),
            now: 0,
            max: 0,
        };
    }

    /// The most tracked requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.concurrency.lock().unwrap().max
    }

    fn enter(&self, request: &str) -> InFlight {
        let mut c = self.concurrency.lock().unwrap();
        let counted = c.tracked.as_deref().is_some_and(|t| request.contains(t));
        if counted {
            c.now += 1;
            c.max = c.max.max(c.now);
        }
        InFlight {
            concurrency: self.concurrency.clone(),
            counted,
        }
    }

    /// Every request seen so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Every request answered so far, in the order of the answers (a
    /// request whose client hung up before the answer is left out).
    pub fn answered(&self) -> Vec<Answered> {
        self.answered.lock().unwrap().clone()
    }

    fn take(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let Some(index) = rules.iter().position(|r| {
            r.remaining > 0
                && r.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&r.path_contains)
        }) else {
            drop(rules);
            return self.random.lock().unwrap().as_mut().and_then(Dice::roll);
        };
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            rules.remove(index);
        }
        Some(fault)
    }
}

/// axum middleware: records the request, then applies the first matching fault.
/// Install with `axum::middleware::from_fn_with_state(faults, inject)`.
pub async fn inject(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let seen = format!("{} {}", request.method(), path);
    let _in_flight = faults.enter(&seen);
    faults.seen.lock().unwrap().push(seen.clone());
    let arrived = Instant::now();
    let response = answer(&faults, request, next, &path).await;
    faults.answered.lock().unwrap().push(Answered {
        request: seen,
        arrived,
        answered: Instant::now(),
    });
    response
}

/// The answer to a request: the injected latency, then the first matching
/// fault or the fake's own answer.
async fn answer(faults: &Faults, request: Request, next: Next, path: &str) -> Response {
    let latency = *faults.latency.lock().unwrap();
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    match faults.take(request.method(), path) {
        None => next.run(request).await,
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(request).await
        }
        Some(Fault::Status {
            status,
            content_type,
            body,
        }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Some(Fault::Drop) => reset(),
        Some(Fault::StatusAfter {
            status,
            content_type,
            body,
        }) => {
            let _ = next.run(request).await;
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-type", content_type)],
                body,
            )
                .into_response()
        }
        Some(Fault::DropAfter) => {
            let _ = next.run(request).await;
            reset()
        }
        Some(Fault::Late(d)) => {
            // Served in its own task: the client hanging up does not cancel it.
            let late = tokio::spawn(async move {
                tokio::time::sleep(d).await;
                next.run(request).await
            });
            late.await
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// A body that fails before its first byte makes hyper abort the
/// connection: the client sees a reset, not an answer.
fn reset() -> Response {
    Response::new(Body::from_stream(failing_body()))
}

fn failing_body()
-> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    struct Failing;
    impl futures_core::Stream for Failing {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault injection: connection dropped",
            ))))
        }
    }
    Failing
}

/// A fake's listener with TCP_NODELAY on every accepted socket: a server
/// that writes headers and body separately would otherwise wait for the
/// client's delayed ACK (~40 ms) on each keep-alive request.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn dice_are_seeded_weighted_and_counted() {
        let menu = || vec![("a", 1, 'a'), ("b", 3, 'b')];
        let rolls = |seed| {
            let mut dice = Dice::new(seed, 0.5, menu());
            (0..400).map(|_| dice.roll()).collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        assert_ne!(rolls(7), rolls(8));
        let mut dice = Dice::new(7, 0.5, menu());
        let faulted = (0..4000).filter_map(|_| dice.roll()).count();
        assert!((1800..2200).contains(&faulted), "{faulted}");
        let counts = dice.counts();
        assert_eq!(counts.values().sum::<u64>(), faulted as u64);
        assert!(counts["b"] > 2 * counts["a"], "{counts:?}");
        dice.set_enabled(false);
        assert!((0..100).all(|_| dice.roll().is_none()));
        assert!(Dice::new(1, 0.0, menu()).roll().is_none());
    }

    /// A server counting the requests it acted on, behind the fault layer.
    async fn server(faults: Faults) -> (String, Arc<AtomicU32>) {
        let acted = Arc::new(AtomicU32::new(0));
        let counter = acted.clone();
        let app = axum::Router::new()
            .route(
                "/act",
                axum::routing::post(move || {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        "done"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(faults, inject));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/act", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(crate::fault::no_delay(listener), app).await;
        });
        (url, acted)
    }

    #[tokio::test]
    async fn faults_before_and_after_acting() {
        let faults = Faults::default();
        let (url, acted) = server(faults.clone()).await;
        bionicbb_core::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let post = || client.post(&url).send();

        faults.fail_next(None, "/act", 1, Fault::status(503, "busy"));
        assert_eq!(post().await.unwrap().status(), 503);
        assert_eq!(acted.load(Ordering::SeqCst), 0, "503 before acting");

        faults.fail_next(None, "/act", 1, Fault::status(500, "oops").after());
        assert_eq!(post().await.unwrap().status(), 500);
        assert_eq!(acted.load(Ordering::SeqCst), 1, "500 after acting");

        faults.fail_next(None, "/act", 1, Fault::Drop);
        assert!(post().await.is_err());
        assert_eq!(acted.load(Ordering::SeqCst), 1, "reset before acting");

        faults.fail_next(None, "/act", 1, Fault::DropAfter);
        assert!(post().await.is_err());
        assert_eq!(acted.load(Ordering::SeqCst), 2, "reset after acting");

        faults.fail_next(None, "/act", 1, Fault::Late(Duration::from_millis(600)));
        assert!(post().await.unwrap_err().is_timeout());
        assert_eq!(acted.load(Ordering::SeqCst), 2, "not yet");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            acted.load(Ordering::SeqCst),
            3,
            "lands after the client gave up"
        );

        faults.set_random(Some(Dice::new(
            3,
            1.0,
            vec![("503", 1, Fault::status(503, "x"))],
        )));
        assert_eq!(post().await.unwrap().status(), 503);
        faults.set_random_enabled(false);
        assert_eq!(post().await.unwrap().status(), 200);
        assert_eq!(faults.random_counts()["503"], 1);
    }
}
