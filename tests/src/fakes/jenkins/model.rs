//! The in-memory state of the fake Jenkins: jobs, users and sessions, the
//! queue, builds, and how each is rendered by the remote API.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::notify::{Artifacts, BuildState, EnvVars, JobState, ScmState};
use super::{AutoRun, Delivery, NotifyFault};
use crate::fault::Dice;

/// How long Jenkins keeps items that left the queue (`leftItems` cache).
pub(super) const LEFT_ITEM_TTL: Duration = Duration::from_secs(300);

/// Characters Jenkins leaves unencoded in a job's URL segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `folder/name` → `job/folder/job/name/`.
pub(super) fn job_url(job: &str) -> String {
    job.split('/')
        .map(|c| format!("job/{}/", utf8_percent_encode(c, SEGMENT)))
        .collect()
}

fn short_name(job: &str) -> &str {
    job.rsplit('/').next().unwrap_or(job)
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) struct Job {
    /// Declared parameters and their defaults, in declaration order;
    /// `None` for a job that is not parameterized.
    pub params: Option<Vec<(String, String)>>,
    pub disabled: bool,
    pub next_build: u64,
}

/// A user's secrets: Basic auth with the token needs no crumb, with the
/// password it does.
#[derive(Default)]
pub(super) struct Cred {
    pub tokens: Vec<String>,
    pub passwords: Vec<String>,
}

/// A web session (`JSESSIONID`) and the crumb issued in it.
pub(super) struct Session {
    pub user: Option<String>,
    pub crumb: String,
}

#[derive(Clone)]
pub(super) struct Waiting {
    pub id: u64,
    pub job: String,
    pub params: Vec<(String, String)>,
    pub since_ms: u64,
}

pub(super) struct Left {
    pub item: Waiting,
    pub executable: Option<u64>,
    pub cancelled: bool,
    pub left_at: Instant,
}

pub(super) struct BuildRec {
    pub job: String,
    pub number: u64,
    pub params: Vec<(String, String)>,
    pub result: Option<String>,
    pub queue_id: u64,
    pub queued_ms: u64,
    pub start_ms: u64,
    pub duration_ms: u64,
}

pub(super) enum ScheduleError {
    UnknownJob,
    Disabled,
    NotParameterized,
}

pub(super) enum CancelOutcome {
    Cancelled,
    NotFound,
    NotCancellable,
}

pub(super) struct Model {
    pub jobs: BTreeMap<String, Job>,
    pub users: HashMap<String, Cred>,
    pub sessions: HashMap<String, Session>,
    pub queue: Vec<Waiting>,
    pub left: Vec<Left>,
    pub builds: Vec<BuildRec>,
    pub next_queue_id: u64,
    pub triggers: usize,
    pub endpoint: Option<String>,
    pub auto: Option<AutoRun>,
    pub deliveries: Vec<Delivery>,
    pub left_ttl: Duration,
    /// Triggers still to be answered with a 502 after queuing the build.
    pub lose_answers: usize,
    /// Gates of the next triggers: each reaches the queue when its gate
    /// opens.
    pub late_triggers: VecDeque<Arc<Notify>>,
    /// Whether a trigger identical to a waiting item returns that item
    /// (Jenkins' quiet-period coalescing); on by default.
    pub coalesce: bool,
    /// Random faults of the Notification plugin's POSTs.
    pub notify_faults: Option<Dice<NotifyFault>>,
    /// Every item `queue/cancelItem` cancelled, kept for good (unlike the
    /// left items Jenkins forgets).
    pub cancelled: Vec<Waiting>,
}

impl Model {
    pub fn new() -> Self {
        Model {
            jobs: BTreeMap::new(),
            users: HashMap::new(),
            sessions: HashMap::new(),
            queue: Vec::new(),
            left: Vec::new(),
            builds: Vec::new(),
            next_queue_id: 1,
            triggers: 0,
            endpoint: None,
            auto: None,
            deliveries: Vec::new(),
            left_ttl: LEFT_ITEM_TTL,
            lose_answers: 0,
            late_triggers: VecDeque::new(),
            coalesce: true,
            notify_faults: None,
            cancelled: Vec::new(),
        }
    }

    /// Queues a build of `job`. `supplied` are the request's parameters
    /// (query string first, then form body); only defined ones are kept,
    /// missing ones take their defaults. `parameterized` tells whether the
    /// call was `buildWithParameters` (refused for a job without
    /// parameters) or `build` (defaults only). An identical item still
    /// waiting is returned instead of a new one: `(id, created)`.
    pub fn schedule(
        &mut self,
        job: &str,
        supplied: &[(String, String)],
        parameterized: bool,
    ) -> Result<(u64, bool), ScheduleError> {
        let def = self.jobs.get(job).ok_or(ScheduleError::UnknownJob)?;
        let params = match (&def.params, parameterized) {
            (None, true) => return Err(ScheduleError::NotParameterized),
            (None, false) => Vec::new(),
            (Some(defs), _) => defs
                .iter()
                .map(|(name, default)| {
                    let value = supplied
                        .iter()
                        .filter(|_| parameterized)
                        .find(|(k, _)| k == name)
                        .map_or(default, |(_, v)| v);
                    (name.clone(), value.clone())
                })
                .collect(),
        };
        if def.disabled {
            return Err(ScheduleError::Disabled);
        }
        if let Some(same) = self
            .queue
            .iter()
            .filter(|_| self.coalesce)
            .find(|w| w.job == job && w.params == params)
        {
            return Ok((same.id, false));
        }
        let id = self.next_queue_id;
        self.next_queue_id += 1;
        self.queue.push(Waiting {
            id,
            job: job.to_string(),
            params,
            since_ms: now_ms(),
        });
        Ok((id, true))
    }

    /// Moves queue item `id` to a running build: its number, and the QUEUED
    /// and STARTED documents the Notification plugin sends at that moment.
    pub fn start(&mut self, id: u64, root: &str) -> Option<(u64, Vec<JobState>)> {
        let index = self.queue.iter().position(|w| w.id == id)?;
        let item = self.queue.remove(index);
        let job = self.jobs.get_mut(&item.job)?;
        let number = job.next_build;
        job.next_build += 1;
        let build = BuildRec {
            job: item.job.clone(),
            number,
            params: item.params.clone(),
            result: None,
            queue_id: item.id,
            queued_ms: item.since_ms,
            start_ms: now_ms(),
            duration_ms: 0,
        };
        let docs = vec![
            document(&build, root, "QUEUED", build.queued_ms),
            document(&build, root, "STARTED", build.start_ms),
        ];
        self.builds.push(build);
        self.left.push(Left {
            item,
            executable: Some(number),
            cancelled: false,
            left_at: Instant::now(),
        });
        Some((number, docs))
    }

    /// Ends a running build with `result`: the COMPLETED and FINALIZED
    /// documents, or `None` if no such build is running.
    pub fn finish(
        &mut self,
        job: &str,
        number: u64,
        result: &str,
        root: &str,
    ) -> Option<Vec<JobState>> {
        let build = self
            .builds
            .iter_mut()
            .find(|b| b.job == job && b.number == number && b.result.is_none())?;
        build.result = Some(result.to_string());
        build.duration_ms = now_ms().saturating_sub(build.start_ms).max(1);
        let completed_ms = build.start_ms + build.duration_ms;
        Some(vec![
            document(build, root, "COMPLETED", completed_ms),
            document(build, root, "FINALIZED", now_ms()),
        ])
    }

    /// The COMPLETED and FINALIZED documents of a finished build, as
    /// [`Model::finish`] made them (a late re-delivery). `None` while it
    /// runs or if there is no such build.
    pub fn completion_documents(
        &self,
        job: &str,
        number: u64,
        root: &str,
    ) -> Option<Vec<JobState>> {
        let build = self
            .builds
            .iter()
            .find(|b| b.job == job && b.number == number && b.result.is_some())?;
        let completed_ms = build.start_ms + build.duration_ms;
        Some(vec![
            document(build, root, "COMPLETED", completed_ms),
            document(build, root, "FINALIZED", now_ms()),
        ])
    }

    pub fn cancel(&mut self, id: u64) -> CancelOutcome {
        self.expire_left();
        if let Some(index) = self.queue.iter().position(|w| w.id == id) {
            let item = self.queue.remove(index);
            self.cancelled.push(item.clone());
            self.left.push(Left {
                item,
                executable: None,
                cancelled: true,
                left_at: Instant::now(),
            });
            CancelOutcome::Cancelled
        } else if self.left.iter().any(|l| l.item.id == id) {
            CancelOutcome::NotCancellable
        } else {
            CancelOutcome::NotFound
        }
    }

    fn expire_left(&mut self) {
        let ttl = self.left_ttl;
        self.left.retain(|l| l.left_at.elapsed() < ttl);
    }

    /// `queue/item/{id}/api/json`, or `None` (404) for an unknown or expired id.
    pub fn queue_item_json(&mut self, id: u64, root: &str) -> Option<Value> {
        self.expire_left();
        if let Some(w) = self.queue.iter().find(|w| w.id == id) {
            let mut v = item_json(w, root, "hudson.model.Queue$WaitingItem");
            v["why"] = json!("In the quiet period. Expires in 4.9 sec");
            v["timestamp"] = json!(w.since_ms + 5000);
            return Some(v);
        }
        let left = self.left.iter().find(|l| l.item.id == id)?;
        let mut v = item_json(&left.item, root, "hudson.model.Queue$LeftItem");
        v["why"] = Value::Null;
        v["cancelled"] = json!(left.cancelled);
        v["executable"] = match left.executable {
            Some(n) => json!({
                "_class": "hudson.model.FreeStyleBuild",
                "number": n,
                "url": format!("{root}{}{n}/", job_url(&left.item.job)),
            }),
            None => Value::Null,
        };
        Some(v)
    }

    /// `queue/api/json`: every item still waiting, oldest first.
    pub fn queue_json(&self, root: &str) -> Value {
        let items: Vec<Value> = self
            .queue
            .iter()
            .map(|w| {
                let mut v = item_json(w, root, "hudson.model.Queue$WaitingItem");
                v["why"] = json!("In the quiet period. Expires in 4.9 sec");
                v
            })
            .collect();
        json!({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items})
    }

    /// The root `api/json`: the controller and its top-level jobs (folder
    /// contents are not listed at the root, as in Jenkins).
    pub fn root_json(&self, root: &str) -> Value {
        let jobs: Vec<Value> = self
            .jobs
            .iter()
            .filter(|(name, _)| !name.contains('/'))
            .map(|(name, def)| {
                json!({
                    "_class": "hudson.model.FreeStyleProject",
                    "name": name,
                    "url": format!("{root}{}", job_url(name)),
                    "color": if def.disabled { "disabled" } else { "blue" },
                })
            })
            .collect();
        json!({
            "_class": "hudson.model.Hudson",
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller",
            "nodeName": "",
            "numExecutors": 2,
            "quietingDown": false,
            "useSecurity": true,
            "url": root,
            "jobs": jobs,
        })
    }

    /// `job/.../api/json` for a job, with its builds newest first.
    pub fn job_json(&self, job: &str, root: &str) -> Option<Value> {
        let def = self.jobs.get(job)?;
        let mut v = json!({
            "_class": "hudson.model.FreeStyleProject",
            "name": short_name(job),
            "fullName": job,
            "displayName": short_name(job),
            "url": format!("{root}{}", job_url(job)),
            "buildable": !def.disabled,
            "color": if def.disabled { "disabled" } else { "blue" },
            "inQueue": self.queue.iter().any(|w| w.job == job),
            "nextBuildNumber": def.next_build,
            "property": [],
            "builds": self
                .builds
                .iter()
                .rev()
                .filter(|b| b.job == job)
                .filter_map(|b| self.build_json(job, b.number, root))
                .collect::<Vec<Value>>(),
        });
        if let Some(params) = &def.params {
            let defs: Vec<Value> = params
                .iter()
                .map(|(name, default)| {
                    json!({
                        "_class": "hudson.model.StringParameterDefinition",
                        "name": name,
                        "type": "StringParameterDefinition",
                        "defaultParameterValue": {
                            "_class": "hudson.model.StringParameterValue",
                            "name": name,
                            "value": default,
                        },
                    })
                })
                .collect();
            v["property"] = json!([{
                "_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": defs,
            }]);
        }
        Some(v)
    }

    /// `job/.../{n}/api/json` for a build.
    pub fn build_json(&self, job: &str, number: u64, root: &str) -> Option<Value> {
        let b = self
            .builds
            .iter()
            .find(|b| b.job == job && b.number == number)?;
        Some(json!({
            "_class": "hudson.model.FreeStyleBuild",
            "actions": [parameters_action(&b.params)],
            "building": b.result.is_none(),
            "duration": b.duration_ms,
            "fullDisplayName": format!("{} #{number}", short_name(job)),
            "id": number.to_string(),
            "number": number,
            "queueId": b.queue_id,
            "result": b.result,
            "timestamp": b.start_ms,
            "url": format!("{root}{}{number}/", job_url(job)),
        }))
    }
}

fn parameters_action(params: &[(String, String)]) -> Value {
    let values: Vec<Value> = params
        .iter()
        .map(|(name, value)| {
            json!({"_class": "hudson.model.StringParameterValue", "name": name, "value": value})
        })
        .collect();
    json!({"_class": "hudson.model.ParametersAction", "parameters": values})
}

/// The fields every queue item shares.
fn item_json(w: &Waiting, root: &str, class: &str) -> Value {
    let params: String = w.params.iter().map(|(k, v)| format!("\n{k}={v}")).collect();
    json!({
        "_class": class,
        "actions": [parameters_action(&w.params)],
        "blocked": false,
        "buildable": false,
        "id": w.id,
        "inQueueSince": w.since_ms,
        "params": params,
        "stuck": false,
        "task": {
            "_class": "hudson.model.FreeStyleProject",
            "name": short_name(&w.job),
            "url": format!("{root}{}", job_url(&w.job)),
            "color": "blue",
        },
        "url": format!("queue/item/{}/", w.id),
    })
}

/// The Notification plugin's document for `build` in `phase`.
fn document(build: &BuildRec, root: &str, phase: &'static str, timestamp: u64) -> JobState {
    let job_url = job_url(&build.job);
    let build_url = format!("{job_url}{}/", build.number);
    let parameterized = !build.params.is_empty();
    JobState {
        name: short_name(&build.job).to_string(),
        display_name: short_name(&build.job).to_string(),
        url: job_url,
        build: BuildState {
            full_url: format!("{root}{build_url}"),
            number: build.number,
            queue_id: build.queue_id,
            timestamp,
            duration: build.duration_ms,
            phase,
            status: build.result.clone(),
            url: build_url,
            scm: ScmState::default(),
            parameters: parameterized.then(|| EnvVars::new(build.params.clone())),
            log: String::new(),
            artifacts: Artifacts,
        },
    }
}
