//! Finding what a trigger whose answer was lost may have left on Jenkins.
//!
//! `buildWithParameters` is sent once: when its answer is lost (a timeout, a
//! dropped connection, a proxy's 502) the build may or may not be queued.
//! Instead of triggering again, which builds twice when the first item has
//! already left the queue (Jenkins only merges identical parameters into an
//! item that is still waiting), the caller asks Jenkins with
//! [`JenkinsClient::find_candidates`] for every queue item of the job still
//! waiting with the parameters we sent, and every build of the job with
//! them that started since we tried, each with the queue item it came from.
//!
//! These are only *candidates*: the same job and parameters legitimately
//! run more than once (an upload and a `retry` of the same patch set), so
//! the caller must still rule out what another of its triggers owns (the
//! ledger's `jenkins_owned`) before it adopts one.
//!
//! Parameters are read from the `ParametersAction` of the item or build
//! (`actions[].parameters[]`, one `{"name", "value"}` per parameter), not
//! from the queue item's `params` text, which cannot be split reliably when
//! a value contains a newline or `=`. Only the parameters we sent *and the
//! job declares* are compared: Jenkins adds the job's defaults for the
//! others, and drops what the job does not declare (see `declared`). When
//! the job declares none of what we sent, nothing tells our build from
//! another and no candidate is returned (the caller triggers again).

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::client::JenkinsClient;
use super::job::{JobPath, QueueItemId};
use crate::error::{ApiError, ErrorKind, Service};

mod declared;

pub use declared::comparable;

/// How far a build's `timestamp` may lie before the moment we triggered it
/// and still count: the bot's and Jenkins' clocks are not the same clock.
pub const CLOCK_SLACK_MS: i64 = 60_000;

/// The job's builds are read this many at a time, newest first, until a
/// page reaches builds older than the trigger (a busy job may have started
/// many builds since).
const BUILDS_PAGE: usize = 50;

/// The most builds searched: a job that started more since the trigger was
/// sent cannot be searched for it, and the lookup fails (a passing fault:
/// the mail waits) rather than conclude that nothing was built.
const BUILDS_SEARCHED_MAX: usize = 2000;

/// A build a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundBuild {
    pub number: u64,
    pub url: String,
    /// The queue item it came from (`queueId`), when Jenkins says.
    pub queue_id: Option<u64>,
}

/// Something on Jenkins a lost trigger may have left: a queue item still
/// waiting (`build` is `None`), or a build with the item it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub queue_id: Option<QueueItemId>,
    pub build: Option<FoundBuild>,
}

impl JenkinsClient {
    /// Every item of `job` waiting in the queue and every build of it that
    /// started no earlier than `since_ms` (unix milliseconds) minus
    /// [`CLOCK_SLACK_MS`], whose parameters include those of `params` the
    /// job declares; oldest first.
    /// The queue is asked first, so an item that starts between the two
    /// questions is found as a build (one candidate, not two).
    pub async fn find_candidates(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
        since_ms: i64,
    ) -> Result<Vec<Candidate>, ApiError> {
        let declared = self.declared_parameters(job).await?;
        let compared = comparable(params, &declared);
        if compared.is_empty() {
            tracing::warn!(
                %job,
                "the job declares none of the parameters the bot sends: no build of it can be \
                 told apart from another"
            );
            return Ok(Vec::new());
        }
        let queued = self.find_queued(job, &compared).await?;
        let built = self.find_builds(job, &compared, since_ms).await?;
        Ok(candidates(queued, built))
    }

    /// The ids of the items of `job` still in the queue whose parameters
    /// include `params` (same names, same values), oldest first.
    pub async fn find_queued(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<QueueItemId>, ApiError> {
        let mut url = self.url("queue/api/json")?;
        url.query_pairs_mut().append_pair(
            "tree",
            "items[id,task[name,url],params,actions[parameters[name,value]]]",
        );
        let queue: QueueJson = self
            .get_json(&format!("look for {job} in the queue"), &url)
            .await?;
        Ok(match_queued(&queue, self.base_url(), job, params))
    }

    /// The builds of `job` whose parameters include `params` and which
    /// started no earlier than `since_ms` (unix milliseconds) minus
    /// [`CLOCK_SLACK_MS`], oldest first. The job's builds are read a page
    /// at a time, newest first, until a page reaches an older build or the
    /// job's first; more than [`BUILDS_SEARCHED_MAX`] builds since then is
    /// an error (the search could not see far enough back).
    pub async fn find_builds(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
        since_ms: i64,
    ) -> Result<Vec<FoundBuild>, ApiError> {
        let earliest = since_ms.saturating_sub(CLOCK_SLACK_MS);
        let mut found = Vec::new();
        let mut start = 0;
        loop {
            if start >= BUILDS_SEARCHED_MAX {
                return Err(ApiError::new(
                    Service::Jenkins,
                    ErrorKind::Transient,
                    format!(
                        "look for a build of {job}: more than {BUILDS_SEARCHED_MAX} builds \
                         started since the trigger was sent; cannot tell whether it built"
                    ),
                ));
            }
            let mut url = self.url(&format!("{}api/json", job.url_path()))?;
            url.query_pairs_mut().append_pair(
                "tree",
                &format!(
                    "builds[number,url,timestamp,queueId,actions[parameters[name,value]]]{{{start},{}}}",
                    start + BUILDS_PAGE
                ),
            );
            let page: JobBuildsJson = self
                .get_json(&format!("look for a build of {job}"), &url)
                .await?;
            let last_page = page.builds.len() < BUILDS_PAGE
                || page
                    .builds
                    .iter()
                    .any(|b| b.timestamp.is_some_and(|t| t < earliest));
            found.extend(match_builds(&page, params, since_ms));
            if last_page {
                break;
            }
            start += BUILDS_PAGE;
        }
        // Builds that started while the pages were read shift the list:
        // one seen on two pages is one build.
        found.sort_by_key(|b| b.number);
        found.dedup_by_key(|b| b.number);
        Ok(found)
    }
}

/// Queue items and builds as one list, oldest first: a build that came
/// from one of the queue items is that item (it left the queue between the
/// two questions).
pub fn candidates(queued: Vec<QueueItemId>, built: Vec<FoundBuild>) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = queued
        .into_iter()
        .map(|id| Candidate {
            queue_id: Some(id),
            build: None,
        })
        .collect();
    for build in built {
        let queue_id = build.queue_id.map(QueueItemId);
        match all
            .iter_mut()
            .find(|c| queue_id.is_some() && c.queue_id == queue_id)
        {
            Some(same) => same.build = Some(build),
            None => all.push(Candidate {
                queue_id,
                build: Some(build),
            }),
        }
    }
    all.sort_by_key(|c| (c.queue_id.map(|q| q.0), c.build.as_ref().map(|b| b.number)));
    all
}

/// `queue/api/json` filtered to what the lookup needs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueJson {
    #[serde(default)]
    items: Vec<QueueEntryJson>,
}

#[derive(Debug, Deserialize)]
struct QueueEntryJson {
    id: u64,
    #[serde(default)]
    task: Option<TaskJson>,
    #[serde(default)]
    actions: Vec<Option<ActionJson>>,
}

#[derive(Debug, Deserialize)]
struct TaskJson {
    #[serde(default)]
    url: Option<String>,
}

/// One entry of `actions`: only a `ParametersAction` has `parameters`;
/// the others render as `{}` or `{"_class": ...}` under a `tree` filter.
#[derive(Debug, Deserialize)]
struct ActionJson {
    #[serde(default)]
    parameters: Vec<Option<ParameterJson>>,
}

#[derive(Debug, Deserialize)]
struct ParameterJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Value,
}

/// `job/.../api/json?tree=builds[...]`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobBuildsJson {
    #[serde(default)]
    builds: Vec<BuildEntryJson>,
}

#[derive(Debug, Deserialize)]
struct BuildEntryJson {
    number: u64,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default, rename = "queueId")]
    queue_id: Option<u64>,
    #[serde(default)]
    actions: Vec<Option<ActionJson>>,
}

/// True when every parameter we sent is among `actions`' parameters with
/// the same value. Non-string values (a boolean parameter) compare by their
/// JSON text (`true`).
fn has_params(actions: &[Option<ActionJson>], sent: &BTreeMap<String, String>) -> bool {
    let present: BTreeMap<&str, String> = actions
        .iter()
        .flatten()
        .flat_map(|a| a.parameters.iter().flatten())
        .filter_map(|p| {
            let name = p.name.as_deref()?;
            let value = match &p.value {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((name, value))
        })
        .collect();
    sent.iter()
        .all(|(name, value)| present.get(name.as_str()) == Some(value))
}

/// The job a queue item's `task.url` names, as its components (`folder`,
/// `name`). The URL may be absolute (Jenkins' configured root, which need
/// not be the address we reach it by) or relative to `base`.
fn job_of_task_url(base: &Url, task_url: &str) -> Option<Vec<String>> {
    let url = base.join(task_url.trim()).ok()?;
    let segments: Vec<String> = url
        .path_segments()?
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let root: Vec<&str> = base
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    // Under our own root, the rest must be `job/a/job/b`. Otherwise (Jenkins'
    // root URL has another path), take the longest `job/x` chain that ends
    // the path.
    let under_root =
        segments.len() >= root.len() && segments.iter().zip(&root).all(|(a, b)| a == b);
    if under_root && let Some(job) = job_chain(&segments[root.len()..]) {
        return Some(job);
    }
    let mut start = segments.len();
    while start >= 2 && segments[start - 2] == "job" {
        start -= 2;
    }
    job_chain(&segments[start..])
}

/// `job/a/job/b` → `[a, b]`; anything else → `None`.
fn job_chain(rest: &[String]) -> Option<Vec<String>> {
    if rest.is_empty() || rest.len() % 2 != 0 {
        return None;
    }
    rest.chunks(2)
        .map(|pair| (pair[0] == "job").then(|| pair[1].clone()))
        .collect()
}

pub(crate) fn match_queued(
    queue: &QueueJson,
    base: &Url,
    job: &JobPath,
    params: &BTreeMap<String, String>,
) -> Vec<QueueItemId> {
    let mut ids: Vec<QueueItemId> = queue
        .items
        .iter()
        .filter(|item| {
            item.task
                .as_ref()
                .and_then(|t| t.url.as_deref())
                .and_then(|u| job_of_task_url(base, u))
                .is_some_and(|components| components == job.components())
        })
        .filter(|item| has_params(&item.actions, params))
        .map(|item| QueueItemId(item.id))
        .collect();
    ids.sort();
    ids
}

pub(crate) fn match_builds(
    found: &JobBuildsJson,
    params: &BTreeMap<String, String>,
    since_ms: i64,
) -> Vec<FoundBuild> {
    let earliest = since_ms.saturating_sub(CLOCK_SLACK_MS);
    let mut builds: Vec<FoundBuild> = found
        .builds
        .iter()
        .filter(|b| b.timestamp.is_some_and(|t| t >= earliest))
        .filter(|b| has_params(&b.actions, params))
        .filter_map(|b| {
            Some(FoundBuild {
                number: b.number,
                url: b.url.clone()?,
                queue_id: b.queue_id,
            })
        })
        .collect();
    builds.sort_by_key(|b| b.number);
    builds
}

#[cfg(test)]
mod tests;
