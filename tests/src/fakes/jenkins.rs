//! A fake Jenkins that speaks the remote API and sends Notification-plugin
//! documents.
//!
//! Remote API (the parts bionicbb uses), with Jenkins' answers:
//! - `POST job/{a}/job/{b}/buildWithParameters`: 201 + `Location:
//!   {root}queue/item/{id}/`; only the parameters the job declares are
//!   kept, undeclared ones dropped, missing ones defaulted (SECURITY-170);
//!   identical parameters to a waiting item return
//!   that item; a disabled job redirects (302) to the job page; a job without
//!   parameters gives 500 "This build is not parameterized!"; unknown job 404;
//!   GET 405. `POST .../build` queues with default parameters.
//! - `GET queue/item/{id}/api/json` (`Queue$WaitingItem` / `Queue$LeftItem`,
//!   forgotten 5 minutes after leaving), `POST queue/cancelItem?id=` (204,
//!   404 `Provided id (N) not found`, 422 once started; every cancelled
//!   item is kept, [`JenkinsFake::cancelled`]).
//! - `GET queue/api/json` (the waiting items), `GET job/.../api/json` (with
//!   the declared `property[parameterDefinitions]` and `builds`, newest
//!   first, each with its `ParametersAction`, `timestamp` and `queueId`), `GET job/.../{n}/api/json`; all honour `tree=` with
//!   nested selections and `{M,N}` ranges. `POST job/.../{n}/stop` (302 to
//!   the build).
//! - `GET crumbIssuer/api/json`: a crumb bound to a new `JSESSIONID.*` cookie.
//!
//! Authentication: Basic with a user's API token needs no crumb; Basic with a
//! password needs the crumb of its session on every POST (403 "No valid
//! crumb was included in the request" otherwise); wrong credentials 401;
//! anonymous POSTs 403.
//!
//! Faults of its own: [`JenkinsFake::lose_next_trigger_answer`] (queued,
//! answered 502), [`JenkinsFake::hold_next_trigger`] (queued late,
//! after the caller may have given up), and notifications not sent
//! ([`JenkinsFake::clear_notification_endpoint`]) then sent late
//! ([`JenkinsFake::resend_completion`]).
//!
//! Starting a build sends QUEUED then STARTED, finishing it COMPLETED then
//! FINALIZED, to the endpoint set with
//! [`JenkinsFake::set_notification_endpoint`].

mod model;
mod notify;
mod routes;
mod tree;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::fault::{self, Dice, Faults};
use model::{Job, Model};

/// An item waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: u64,
    pub job: String,
    pub params: BTreeMap<String, String>,
}

/// A build, running (`result: None`) or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub job: String,
    pub number: u64,
    pub params: BTreeMap<String, String>,
    pub result: Option<String>,
    pub queue_id: u64,
}

/// One notification POST the fake made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The job's URL relative to the root (`job/a/job/b/`), as in the document.
    pub job_url: String,
    pub number: u64,
    pub phase: String,
    /// The endpoint's status, or the transport error.
    pub outcome: Result<u16, String>,
}

/// What a random fault does to one notification POST. The plugin does not
/// retry by default and ignores the status it gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFault {
    /// Never reaches the endpoint (the connection failed): the document is lost.
    Lost,
    /// Sent twice, as the plugin's retry loop does after one failed attempt.
    Twice,
    /// Sent after this delay (a slow network; later phases wait behind it).
    Delay(Duration),
}

/// Picks a build's result (`SUCCESS`, `FAILURE`, ...) from its job and
/// parameters.
pub type Outcome = Arc<dyn Fn(&str, &BTreeMap<String, String>) -> String + Send + Sync>;

/// Automatic mode: each new queue item starts `delay` after it was queued
/// and finishes `delay` after it started, with the result `outcome` picks.
#[derive(Clone)]
pub struct AutoRun {
    pub delay: Duration,
    pub outcome: Outcome,
}

impl std::fmt::Debug for AutoRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoRun")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

/// What the server tasks share with the test-facing handle.
#[derive(Clone)]
pub(crate) struct Shared {
    model: Arc<Mutex<Model>>,
    /// The root URL, ending with `/`.
    root: String,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Model> {
        // A test that panicked while holding the lock must not hide the
        // original failure behind a poisoned-lock panic.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts queue item `id`; sends QUEUED and STARTED. `None` if the item
    /// is no longer waiting.
    async fn start_item(&self, id: u64) -> Option<u64> {
        let (number, docs, endpoint) = {
            let mut model = self.lock();
            let (number, docs) = model.start(id, &self.root)?;
            (number, docs, model.endpoint.clone())
        };
        self.notify(endpoint, docs).await;
        Some(number)
    }

    /// Finishes a running build; sends COMPLETED and FINALIZED.
    async fn finish(&self, job: &str, number: u64, result: &str) -> bool {
        let finished = {
            let mut model = self.lock();
            let endpoint = model.endpoint.clone();
            model
                .finish(job, number, result, &self.root)
                .map(|docs| (docs, endpoint))
        };
        match finished {
            Some((docs, endpoint)) => {
                self.notify(endpoint, docs).await;
                true
            }
            None => false,
        }
    }

    /// Sends `docs` in order, one POST each, like the plugin (no retries).
    async fn notify(&self, endpoint: Option<String>, docs: Vec<notify::JobState>) {
        let Some(endpoint) = endpoint else { return };
        for doc in docs {
            let fault = self.lock().notify_faults.as_mut().and_then(Dice::roll);
            let outcome = match fault {
                Some(NotifyFault::Lost) => Err("fault injection: notification lost".to_string()),
                Some(NotifyFault::Twice) => {
                    let _ = notify::post(&self.http, &endpoint, &doc).await;
                    notify::post(&self.http, &endpoint, &doc).await
                }
                Some(NotifyFault::Delay(d)) => {
                    tokio::time::sleep(d).await;
                    notify::post(&self.http, &endpoint, &doc).await
                }
                None => notify::post(&self.http, &endpoint, &doc).await,
            };
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, phase = doc.build.phase, "fake Jenkins: notification failed");
            }
            self.lock().deliveries.push(Delivery {
                job_url: doc.url.clone(),
                number: doc.build.number,
                phase: doc.build.phase.to_string(),
                outcome,
            });
        }
    }

    /// In automatic mode, runs a new queue item to completion in the
    /// background.
    fn auto_run(&self, id: u64) {
        let Some(auto) = self.lock().auto.clone() else {
            return;
        };
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(auto.delay).await;
            let params = {
                let model = shared.lock();
                model
                    .queue
                    .iter()
                    .find(|w| w.id == id)
                    .map(|w| (w.job.clone(), w.params.iter().cloned().collect()))
            };
            let Some((job, params)) = params else { return };
            let Some(number) = shared.start_item(id).await else {
                return;
            };
            tokio::time::sleep(auto.delay).await;
            let result = (auto.outcome)(&job, &params);
            shared.finish(&job, number, &result).await;
        });
    }
}

/// The fake Jenkins server. Stops when dropped.
pub struct JenkinsFake {
    shared: Shared,
    faults: Faults,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl JenkinsFake {
    /// Starts the server on `127.0.0.1:0`.
    pub async fn start() -> JenkinsFake {
        bionicbb_core::tls::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let faults = Faults::default();
        let shared = Shared {
            model: Arc::new(Mutex::new(Model::new())),
            root: format!("http://{addr}/"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("notification HTTP client"),
        };
        let app = routes::router(shared.clone()).layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            fault::inject,
        ));
        let server = tokio::spawn(async move {
            let _ = axum::serve(crate::fault::no_delay(listener), app).await;
        });
        JenkinsFake {
            shared,
            faults,
            addr,
            server,
        }
    }

    /// The root URL, ending with `/`.
    pub fn url(&self) -> String {
        self.shared.root.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Adds a job with string parameters and their defaults, in declaration
    /// order. `path` is the full name: `name` or `folder/name`.
    pub fn add_job(&self, path: &str, params: &[(&str, &str)]) {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.insert_job(path, Some(params));
    }

    /// Adds a job without parameters (`buildWithParameters` fails on it).
    pub fn add_unparameterized_job(&self, path: &str) {
        self.insert_job(path, None);
    }

    fn insert_job(&self, path: &str, params: Option<Vec<(String, String)>>) {
        self.shared.lock().jobs.insert(
            path.to_string(),
            Job {
                params,
                disabled: false,
                next_build: 1,
            },
        );
    }

    /// Disables a job: the queue refuses its builds.
    pub fn disable_job(&self, path: &str) {
        if let Some(job) = self.shared.lock().jobs.get_mut(path) {
            job.disabled = true;
        }
    }

    /// A user authenticating with an API token (no crumb needed).
    pub fn add_user(&self, user: &str, api_token: &str) {
        let mut model = self.shared.lock();
        let cred = model.users.entry(user.to_string()).or_default();
        cred.tokens.push(api_token.to_string());
    }

    /// A user authenticating with a password (POSTs need a crumb).
    pub fn add_password_user(&self, user: &str, password: &str) {
        let mut model = self.shared.lock();
        let cred = model.users.entry(user.to_string()).or_default();
        cred.passwords.push(password.to_string());
    }

    /// Items waiting in the queue, oldest first.
    pub fn queue(&self) -> Vec<QueueItem> {
        self.shared
            .lock()
            .queue
            .iter()
            .map(|w| QueueItem {
                id: w.id,
                job: w.job.clone(),
                params: w.params.iter().cloned().collect(),
            })
            .collect()
    }

    /// Every item cancelled while it waited in the queue, oldest first.
    pub fn cancelled(&self) -> Vec<QueueItem> {
        self.shared
            .lock()
            .cancelled
            .iter()
            .map(|w| QueueItem {
                id: w.id,
                job: w.job.clone(),
                params: w.params.iter().cloned().collect(),
            })
            .collect()
    }

    /// Every build, in the order they started.
    pub fn builds(&self) -> Vec<Build> {
        self.shared
            .lock()
            .builds
            .iter()
            .map(|b| Build {
                job: b.job.clone(),
                number: b.number,
                params: b.params.iter().cloned().collect(),
                result: b.result.clone(),
                queue_id: b.queue_id,
            })
            .collect()
    }

    /// How many `buildWithParameters` / `build` POSTs reached a job.
    pub fn triggers(&self) -> usize {
        self.shared.lock().triggers
    }

    /// Starts the oldest waiting item of `job` (sending QUEUED and STARTED
    /// when an endpoint is set) and returns the build number.
    pub async fn start_next(&self, job: &str) -> Option<u64> {
        let id = self.shared.lock().queue.iter().find(|w| w.job == job)?.id;
        self.shared.start_item(id).await
    }

    /// Finishes a running build with `result` (sending COMPLETED and
    /// FINALIZED). False if that build is not running.
    pub async fn finish(&self, job: &str, number: u64, result: &str) -> bool {
        self.shared.finish(job, number, result).await
    }

    /// Sends the COMPLETED and FINALIZED documents of a finished build
    /// again, to the endpoint set now: a notification that arrives late
    /// (or one that was not sent while no endpoint was set). False if the
    /// build is not finished.
    pub async fn resend_completion(&self, job: &str, number: u64) -> bool {
        let (docs, endpoint) = {
            let model = self.shared.lock();
            let Some(docs) = model.completion_documents(job, number, &self.shared.root) else {
                return false;
            };
            (docs, model.endpoint.clone())
        };
        self.shared.notify(endpoint, docs).await;
        true
    }

    /// Deletes a build (as an operator or a build-discarder does): its
    /// pages answer 404 from now on. False if there is no such build.
    pub fn delete_build(&self, job: &str, number: u64) -> bool {
        let mut model = self.shared.lock();
        let before = model.builds.len();
        model
            .builds
            .retain(|b| !(b.job == job && b.number == number));
        model.builds.len() < before
    }

    /// Stops sending build notifications (as if the plugin had no
    /// endpoint): builds run and finish, and nobody is told.
    pub fn clear_notification_endpoint(&self) {
        self.shared.lock().endpoint = None;
    }

    /// Where build notifications go, as configured in the plugin: any URL,
    /// with a `?token=` query or `user:secret@` Basic credentials.
    pub fn set_notification_endpoint(&self, url: String) {
        self.shared.lock().endpoint = Some(url);
    }

    /// Every notification POST made so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Turns automatic mode on (`Some`) or off. Applies to items queued
    /// from now on.
    pub fn set_auto_run(&self, auto: Option<AutoRun>) {
        self.shared.lock().auto = auto;
    }

    /// The next trigger queues its build as usual, but its answer is lost:
    /// the caller gets a 502 Bad Gateway, as from a reverse proxy that gave
    /// up waiting for Jenkins. Calls add up.
    pub fn lose_next_trigger_answer(&self) {
        self.shared.lock().lose_answers += 1;
    }

    /// The next trigger is held on its way (a slow network, a busy
    /// Jenkins): it reaches the queue, and is answered, only when the
    /// returned gate is opened (`notify_one`), so a client that gave up
    /// meanwhile still gets its build queued. Calls add up, one trigger each.
    pub fn hold_next_trigger(&self) -> Arc<tokio::sync::Notify> {
        let gate = Arc::new(tokio::sync::Notify::new());
        self.shared.lock().late_triggers.push_back(gate.clone());
        gate
    }

    /// Turns Jenkins' coalescing of identical waiting triggers off (every
    /// trigger that reaches the queue becomes its own build) or back on.
    pub fn set_coalesce(&self, coalesce: bool) {
        self.shared.lock().coalesce = coalesce;
    }

    /// Random faults of the notification POSTs from now on (`None`: none).
    pub fn set_notify_faults(&self, dice: Option<Dice<NotifyFault>>) {
        self.shared.lock().notify_faults = dice;
    }

    /// Stops (or resumes) the notification faults, keeping their counts.
    pub fn set_notify_faults_enabled(&self, enabled: bool) {
        if let Some(dice) = self.shared.lock().notify_faults.as_mut() {
            dice.set_enabled(enabled);
        }
    }

    /// How many notification faults of each kind were injected.
    pub fn notify_fault_counts(&self) -> BTreeMap<&'static str, u64> {
        self.shared
            .lock()
            .notify_faults
            .as_ref()
            .map(Dice::counts)
            .unwrap_or_default()
    }

    /// How long items that left the queue stay visible (5 minutes by default).
    pub fn set_left_item_ttl(&self, ttl: Duration) {
        self.shared.lock().left_ttl = ttl;
    }
}

impl Drop for JenkinsFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}
