//! Jenkins remote-API client: trigger a parameterized build, follow its queue
//! item, cancel or stop it, and look up jobs and builds.
//!
//! Authentication is HTTP Basic `user:api_token` on every request. Requests
//! made with an API token need no CSRF crumb (Jenkins 2.96+); when the secret
//! is a password instead, Jenkins answers a POST with 403 "No valid crumb",
//! and the client fetches a crumb from `crumbIssuer/api/json` and retries the
//! POST once. The crumb is bound to the web session, so the client keeps a
//! cookie jar: the `JSESSIONID` cookie issued with the crumb goes back with
//! the POST.
//!
//! Redirects are never followed: `buildWithParameters` answers a refused
//! item (a disabled job) with a redirect to the job page, and that must be
//! an error, not a successful GET of the job page.
//!
//! GETs are retried on passing faults with the caller's [`RetryPolicy`];
//! POSTs are sent once (see [`JenkinsClient::trigger`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::job::{JobPath, QueueItemId};
use crate::config::Secret;
use crate::error::{ApiError, ErrorKind, Service};
use crate::http;
use crate::retry::{self, RetryPolicy};

const SERVICE: Service = Service::Jenkins;

/// The text of the 403 Jenkins sends when a POST lacks a valid crumb.
const NO_VALID_CRUMB: &str = "No valid crumb";

/// Where a queue item stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueState {
    /// Still in the queue (waiting, blocked or buildable), with Jenkins'
    /// explanation when it gives one. Also reported for the short moment
    /// when an item has left the queue but its build does not exist yet.
    Waiting { why: Option<String> },
    /// The build was created: its number and absolute URL.
    Started { number: u64, url: String },
    /// The item was cancelled before it started.
    Cancelled,
}

/// The state of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub building: bool,
    /// `SUCCESS`, `UNSTABLE`, `FAILURE`, `NOT_BUILT`, `ABORTED`; `None`
    /// while the build runs.
    pub result: Option<String>,
    /// The queue item that produced the build.
    pub queue_id: Option<u64>,
}

/// A CSRF crumb and the header it travels in.
#[derive(Clone)]
struct Crumb {
    field: HeaderName,
    value: HeaderValue,
}

/// The Jenkins remote-API client. Cheap to share behind an `Arc`.
pub struct JenkinsClient {
    http: reqwest::Client,
    /// The Jenkins root URL, always ending with `/`.
    base: Url,
    user: String,
    token: Secret,
    timeout: Duration,
    retry: RetryPolicy,
    /// The last crumb obtained, sent on later POSTs so that a password user
    /// pays for the crumb round trip once per session, not once per POST.
    crumb: Mutex<Option<Crumb>>,
}

impl fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl JenkinsClient {
    /// A client for the Jenkins at `base_url` (a missing trailing `/` is
    /// added), authenticating as `user` with `api_token`. `timeout` limits
    /// each request; `retry` governs GETs.
    pub fn new(
        base_url: Url,
        user: &str,
        api_token: Secret,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, ApiError> {
        let invalid = |reason: &str| {
            ApiError::new(
                SERVICE,
                ErrorKind::InvalidInput,
                format!("invalid Jenkins URL: {reason}"),
            )
        };
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid("it must be an http or https URL"));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(invalid("credentials belong in the config, not in the URL"));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(invalid("it must not have a query or a fragment"));
        }
        let mut base = base_url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // A cookie jar keeps the session a crumb is bound to; redirects are
        // not followed because a redirect from buildWithParameters means
        // the queue refused the build.
        let http = http::build_client(
            SERVICE,
            http::client_builder(timeout)
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none()),
        )?;
        Ok(JenkinsClient {
            http,
            base,
            user: user.to_string(),
            token: api_token,
            timeout,
            retry,
            crumb: Mutex::new(None),
        })
    }

    /// The Jenkins root URL, ending with `/`.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// How long one request may take before the client gives up on it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Queues a build of `job` with `params` (form-encoded in the POST body)
    /// and returns its queue item. Parameters the job does not define are
    /// ignored by Jenkins and missing ones take their defaults; a request
    /// identical to an item still waiting returns that item.
    ///
    /// Sent exactly once, never retried: if the answer is lost, the build
    /// may or may not be queued, and a blind retry could build twice.
    /// Callers record the trigger in their durable ledger before calling
    /// and resolve an unknown outcome by asking Jenkins, not by resending.
    ///
    /// Errors: `NotFound` for an unknown job, `Rejected` when the queue
    /// refused the item (a disabled job: a redirect to the job page) or the
    /// job is not parameterized.
    pub async fn trigger(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
    ) -> Result<QueueItemId, ApiError> {
        let url = self.url(&format!("{}buildWithParameters", job.url_path()))?;
        let what = format!("trigger {job}");
        let response = self
            .post(&what, || self.http.post(url.clone()).form(params))
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let queue_id = self.queue_location(&headers);
        if status.is_success() || status.is_redirection() {
            if let Some(id) = queue_id {
                return Ok(id);
            }
        }
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Err(ApiError::new(
                SERVICE,
                ErrorKind::Malformed,
                format!("{what}: HTTP {status} without a queue item in Location"),
            )
            .with_status(status.as_u16()));
        }
        if status.is_redirection() {
            return Err(ApiError::new(
                SERVICE,
                ErrorKind::Rejected,
                format!("{what}: the Jenkins queue refused the build (is the job disabled?)"),
            )
            .with_status(status.as_u16()));
        }
        let mut err = http::status_error(SERVICE, &what, status, &headers, &body);
        if status == StatusCode::NOT_FOUND {
            err.message = format!("{what}: no such job (or no permission to see it)");
        } else if status == StatusCode::INTERNAL_SERVER_ERROR && body.contains("not parameterized")
        {
            err.kind = ErrorKind::Rejected;
            err.message = format!("{what}: the job is not parameterized");
        }
        Err(err)
    }

    /// Where queue item `id` stands. `NotFound` once Jenkins forgot it:
    /// items that left the queue are kept for 5 minutes only; after that,
    /// match the build by the `queue_id` of its notification.
    pub async fn queue_item(&self, id: QueueItemId) -> Result<QueueState, ApiError> {
        let url = self.url(&format!("queue/item/{id}/api/json"))?;
        let item: QueueItemJson = self.get_json(&format!("queue item {id}"), &url).await?;
        if let Some(executable) = item.executable {
            return Ok(QueueState::Started {
                number: executable.number,
                url: executable.url,
            });
        }
        if item.cancelled == Some(true) {
            return Ok(QueueState::Cancelled);
        }
        Ok(QueueState::Waiting { why: item.why })
    }

    /// Cancels queue item `id` (single attempt). `NotFound` for an unknown
    /// id, `Conflict` when the item can no longer be cancelled (it started).
    /// Older cores answer every cancel with a redirect, whatever happened;
    /// that is accepted here, so check [`JenkinsClient::queue_item`] when it
    /// matters.
    pub async fn cancel_queue_item(&self, id: QueueItemId) -> Result<(), ApiError> {
        let url = self.url(&format!("queue/cancelItem?id={id}"))?;
        let what = format!("cancel queue item {id}");
        let response = self.post(&what, || self.http.post(url.clone())).await?;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(());
        }
        let mut err = self.error_from(&what, response).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            err.kind = ErrorKind::Conflict;
        }
        Err(err)
    }

    /// Aborts build `number` of `job` (single attempt). Jenkins answers with
    /// a redirect to the build page, which counts as success.
    pub async fn stop_build(&self, job: &JobPath, number: u64) -> Result<(), ApiError> {
        let url = self.url(&format!("{}{number}/stop", job.url_path()))?;
        let what = format!("stop {job} #{number}");
        let response = self.post(&what, || self.http.post(url.clone())).await?;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(());
        }
        Err(self.error_from(&what, response).await)
    }

    /// Whether `job` exists and is visible to the bot's user (Jenkins
    /// answers 404 both for a missing job and for a missing Read permission).
    pub async fn job_exists(&self, job: &JobPath) -> Result<bool, ApiError> {
        let url = self.url(&format!("{}api/json?tree=name,buildable", job.url_path()))?;
        let what = format!("look up job {job}");
        match self.get_json::<serde_json::Value>(&what, &url).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The state of build `number` of `job`.
    pub async fn build(&self, job: &JobPath, number: u64) -> Result<BuildInfo, ApiError> {
        let url = self.url(&format!(
            "{}{number}/api/json?tree=building,result,queueId",
            job.url_path()
        ))?;
        let build: BuildJson = self
            .get_json(&format!("build {job} #{number}"), &url)
            .await?;
        Ok(BuildInfo {
            building: build.building,
            result: build.result,
            queue_id: build.queue_id,
        })
    }

    pub(super) fn url(&self, relative: &str) -> Result<Url, ApiError> {
        self.base.join(relative).map_err(|e| {
            ApiError::new(
                SERVICE,
                ErrorKind::InvalidInput,
                format!("cannot build a Jenkins URL: {e}"),
            )
        })
    }

    fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(&self.user, Some(self.token.expose()))
    }

    /// A GET with retries on passing faults, decoding a JSON answer.
    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &Url,
    ) -> Result<T, ApiError> {
        retry::retry(&self.retry, SERVICE, what, || async {
            let response = self
                .authed(self.http.get(url.clone()))
                .send()
                .await
                .map_err(|e| http::transport_error(SERVICE, what, e))?;
            if !response.status().is_success() {
                return Err(self.error_from(what, response).await);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| http::transport_error(SERVICE, what, e))?;
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    SERVICE,
                    ErrorKind::Malformed,
                    format!("{what}: unreadable JSON: {e}"),
                )
            })
        })
        .await
    }

    /// Sends a POST once (with the timeout), with the cached crumb if there
    /// is one. On 403 "No valid crumb" it fetches a fresh crumb and sends the
    /// POST one more time; if Jenkins has no crumb issuer, the 403 stands.
    /// Returns the response, whatever its status.
    async fn post(
        &self,
        what: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ApiError> {
        let cached = self.cached_crumb();
        let response = self.send_once(what, &request, cached.as_ref()).await?;
        if response.status() != StatusCode::FORBIDDEN {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| http::transport_error(SERVICE, what, e))?;
        if !body.contains(NO_VALID_CRUMB) {
            return Err(http::status_error(
                SERVICE,
                what,
                StatusCode::FORBIDDEN,
                &headers,
                &body,
            ));
        }
        let Some(crumb) = self.fetch_crumb().await? else {
            tracing::warn!(call = what, "Jenkins wants a crumb but has no crumb issuer");
            return Err(http::status_error(
                SERVICE,
                what,
                StatusCode::FORBIDDEN,
                &headers,
                &body,
            ));
        };
        tracing::debug!(call = what, "retrying the POST with a fresh CSRF crumb");
        self.send_once(what, &request, Some(&crumb)).await
    }

    async fn send_once(
        &self,
        what: &str,
        request: &impl Fn() -> RequestBuilder,
        crumb: Option<&Crumb>,
    ) -> Result<Response, ApiError> {
        let mut builder = self.authed(request());
        if let Some(crumb) = crumb {
            builder = builder.header(crumb.field.clone(), crumb.value.clone());
        }
        match tokio::time::timeout(self.timeout, builder.send()).await {
            Ok(result) => result.map_err(|e| http::transport_error(SERVICE, what, e)),
            Err(_) => Err(ApiError::new(
                SERVICE,
                ErrorKind::Transient,
                format!("{what}: no answer within {:?}", self.timeout),
            )),
        }
    }

    fn cached_crumb(&self) -> Option<Crumb> {
        self.crumb.lock().ok().and_then(|c| c.clone())
    }

    /// Fetches a crumb through the same client (so the session cookie that
    /// comes with it is kept) and caches it. `None` when the issuer is off.
    async fn fetch_crumb(&self) -> Result<Option<Crumb>, ApiError> {
        let url = self.url("crumbIssuer/api/json")?;
        let issued: CrumbJson = match self.get_json("fetch CSRF crumb", &url).await {
            Ok(issued) => issued,
            Err(err) if err.kind == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let field = HeaderName::from_bytes(issued.crumb_request_field.as_bytes());
        let value = HeaderValue::from_str(&issued.crumb);
        let (Ok(field), Ok(value)) = (field, value) else {
            return Err(ApiError::new(
                SERVICE,
                ErrorKind::Malformed,
                "fetch CSRF crumb: the crumb or its field name is not a valid header",
            ));
        };
        let crumb = Crumb { field, value };
        if let Ok(mut cached) = self.crumb.lock() {
            *cached = Some(crumb.clone());
        }
        Ok(Some(crumb))
    }

    /// The queue item id in a `Location` header, absolute or relative, with
    /// or without the trailing slash.
    fn queue_location(&self, headers: &HeaderMap) -> Option<QueueItemId> {
        let location = headers.get(LOCATION)?.to_str().ok()?;
        parse_queue_location(&self.base, location)
    }

    async fn error_from(&self, what: &str, response: Response) -> ApiError {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        http::status_error(SERVICE, what, status, &headers, &body)
    }
}

/// Reads `{root}queue/item/{id}/` (absolute, or relative to `base`).
fn parse_queue_location(base: &Url, location: &str) -> Option<QueueItemId> {
    let url = base.join(location.trim()).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "queue", "item", id] => id.parse().ok().map(QueueItemId),
        _ => None,
    }
}

#[derive(Deserialize)]
struct QueueItemJson {
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    cancelled: Option<bool>,
    #[serde(default)]
    executable: Option<ExecutableJson>,
}

#[derive(Deserialize)]
struct ExecutableJson {
    number: u64,
    url: String,
}

#[derive(Deserialize)]
struct BuildJson {
    #[serde(default)]
    building: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default, rename = "queueId")]
    queue_id: Option<u64>,
}

#[derive(Deserialize)]
struct CrumbJson {
    crumb: String,
    #[serde(rename = "crumbRequestField")]
    crumb_request_field: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_locations_absolute_relative_and_without_slash() {
        let base = Url::parse("https://ci.example.org/jenkins/").unwrap();
        let id = |l: &str| parse_queue_location(&base, l);
        assert_eq!(
            id("https://ci.example.org/jenkins/queue/item/90211/"),
            Some(QueueItemId(90211))
        );
        assert_eq!(
            id("https://ci.example.org/jenkins/queue/item/7"),
            Some(QueueItemId(7))
        );
        assert_eq!(id("/jenkins/queue/item/12/"), Some(QueueItemId(12)));
        assert_eq!(id("queue/item/13"), Some(QueueItemId(13)));
        assert_eq!(id("https://ci.example.org/jenkins/job/x/"), None);
        assert_eq!(id("queue/item/abc/"), None);
        assert_eq!(id("queue/item/"), None);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let client = JenkinsClient::new(
            Url::parse("http://127.0.0.1:1/jenkins").unwrap(),
            "bot",
            Secret::new("hunter2-token"),
            Duration::from_secs(1),
            RetryPolicy::once(Duration::from_secs(1)),
        )
        .unwrap();
        assert_eq!(client.base_url().as_str(), "http://127.0.0.1:1/jenkins/");
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn base_urls_with_credentials_or_odd_schemes_are_refused() {
        let new = |u: &str| {
            JenkinsClient::new(
                Url::parse(u).unwrap(),
                "bot",
                Secret::new("t"),
                Duration::from_secs(1),
                RetryPolicy::default(),
            )
        };
        assert!(new("https://u:p@ci.example.org/").is_err());
        assert!(new("ftp://ci.example.org/").is_err());
        assert!(new("https://ci.example.org/?x=1").is_err());
        assert!(new("https://ci.example.org").is_ok());
    }
}
