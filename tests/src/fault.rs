//! Fault injection shared by the fakes: "fail the next N requests that match".

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Close the connection without a complete answer.
    Drop,
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

    /// Every request seen so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn take(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let index = rules.iter().position(|r| {
            r.remaining > 0
                && r.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&r.path_contains)
        })?;
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
    faults
        .seen
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method(), path));
    match faults.take(request.method(), &path) {
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
        Some(Fault::Drop) => {
            // A body that fails before its first byte makes hyper abort the
            // connection: the client sees a reset, not an answer.
            let stream = failing_body();
            Response::new(Body::from_stream(stream))
        }
    }
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
