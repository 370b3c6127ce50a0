//! Finding a build we may have triggered without hearing the answer.
//!
//! `buildWithParameters` is sent once: when its answer is lost (a timeout, a
//! dropped connection, a proxy's 502) the build may or may not be queued.
//! Instead of triggering again, which builds twice when the first item has
//! already left the queue (Jenkins only merges identical parameters into an
//! item that is still waiting), the caller asks Jenkins:
//!
//! 1. [`JenkinsClient::find_queued`]: an item of the job still waiting in the
//!    queue with the parameters we sent;
//! 2. [`JenkinsClient::find_build`]: a build of the job with those
//!    parameters that started after we tried.
//!
//! Parameters are read from the `ParametersAction` of the item or build
//! (`actions[].parameters[]`, one `{"name", "value"}` per parameter), not
//! from the queue item's `params` text, which cannot be split reliably when
//! a value contains a newline or `=`. Only the parameters we sent are
//! compared: Jenkins adds the job's defaults for the others. A parameter we
//! sent but the job does not define is dropped by Jenkins, so such a build
//! is never recognised (and the caller triggers again, as it would have).

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::client::JenkinsClient;
use super::job::{JobPath, QueueItemId};
use crate::error::ApiError;

/// How far a build's `timestamp` may lie before the moment we triggered it
/// and still count: the bot's and Jenkins' clocks are not the same clock.
pub const CLOCK_SLACK_MS: i64 = 60_000;

/// How many of the job's latest builds are searched.
const BUILDS_SEARCHED: u32 = 50;

impl JenkinsClient {
    /// The id of an item of `job` still in the queue whose parameters
    /// include `params` (same names, same values), or `None`. When several
    /// match, the newest (highest id).
    pub async fn find_queued(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<QueueItemId>, ApiError> {
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

    /// The newest of the last 50 builds of `job` whose parameters include
    /// `params` and which started no earlier than `since_ms` (unix
    /// milliseconds) minus [`CLOCK_SLACK_MS`]: its number and URL.
    pub async fn find_build(
        &self,
        job: &JobPath,
        params: &BTreeMap<String, String>,
        since_ms: i64,
    ) -> Result<Option<(u64, String)>, ApiError> {
        let mut url = self.url(&format!("{}api/json", job.url_path()))?;
        url.query_pairs_mut().append_pair(
            "tree",
            &format!(
                "builds[number,url,timestamp,actions[parameters[name,value]]]{{0,{BUILDS_SEARCHED}}}"
            ),
        );
        let found: JobBuildsJson = self
            .get_json(&format!("look for a build of {job}"), &url)
            .await?;
        Ok(match_build(&found, params, since_ms))
    }
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
) -> Option<QueueItemId> {
    queue
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
        .map(|item| item.id)
        .max()
        .map(QueueItemId)
}

pub(crate) fn match_build(
    found: &JobBuildsJson,
    params: &BTreeMap<String, String>,
    since_ms: i64,
) -> Option<(u64, String)> {
    let earliest = since_ms.saturating_sub(CLOCK_SLACK_MS);
    found
        .builds
        .iter()
        .filter(|b| b.timestamp.is_some_and(|t| t >= earliest))
        .filter(|b| has_params(&b.actions, params))
        .max_by_key(|b| b.number)
        .and_then(|b| Some((b.number, b.url.clone()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sent() -> BTreeMap<String, String> {
        params(&[
            ("REF", "refs/changes/56/123456/4"),
            ("CHANGE_ID", "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"),
        ])
    }

    /// A queue as Jenkins renders it under the lookup's `tree`: the
    /// presubmit item (with a default the bot did not send), the same job
    /// for another patch set, and a job in a folder with equal parameters.
    const QUEUE: &str = r#"{
      "_class": "hudson.model.Queue",
      "items": [
        {"_class": "hudson.model.Queue$WaitingItem",
         "actions": [
           {"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"},
             {"_class": "hudson.model.BooleanParameterValue", "name": "CLEAN", "value": false}
           ]},
           {"_class": "hudson.model.CauseAction"},
           {}
         ],
         "id": 90211,
         "params": "\nREF=refs/changes/56/123456/4\nCHANGE_ID=I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c\nCLEAN=false",
         "task": {"_class": "hudson.model.FreeStyleProject", "name": "bionic-presubmit",
                  "url": "https://jenkins.example.org/job/bionic-presubmit/"}},
        {"_class": "hudson.model.Queue$BlockedItem",
         "actions": [{"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/3"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
         ]}],
         "id": 90210,
         "params": "\nREF=refs/changes/56/123456/3\nCHANGE_ID=I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c",
         "task": {"_class": "hudson.model.FreeStyleProject", "name": "bionic-presubmit",
                  "url": "https://jenkins.example.org/job/bionic-presubmit/"}},
        {"_class": "hudson.model.Queue$BuildableItem",
         "actions": [{"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
         ]}],
         "id": 90199,
         "params": "\nREF=refs/changes/56/123456/4",
         "task": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": "bionic presubmit",
                  "url": "https://jenkins.example.org/job/android/job/bionic%20presubmit/"}}
      ]
    }"#;

    fn queue() -> QueueJson {
        serde_json::from_str(QUEUE).unwrap()
    }

    fn base() -> Url {
        Url::parse("https://jenkins.example.org/").unwrap()
    }

    fn job(name: &str) -> JobPath {
        JobPath::parse(name).unwrap()
    }

    #[test]
    fn the_queued_item_of_the_job_with_our_parameters_is_found() {
        let found = match_queued(&queue(), &base(), &job("bionic-presubmit"), &sent());
        assert_eq!(found, Some(QueueItemId(90211)));
    }

    #[test]
    fn a_job_in_a_folder_is_matched_by_its_full_path() {
        let folder = job("android/bionic presubmit");
        assert_eq!(
            match_queued(&queue(), &base(), &folder, &sent()),
            Some(QueueItemId(90199))
        );
        // The same short name at the top level is another job.
        let top = job("bionic presubmit");
        assert_eq!(match_queued(&queue(), &base(), &top, &sent()), None);
    }

    #[test]
    fn other_parameters_or_another_job_do_not_match() {
        let other_ps = params(&[
            ("REF", "refs/changes/56/123456/5"),
            ("CHANGE_ID", "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"),
        ]);
        let presubmit = job("bionic-presubmit");
        assert_eq!(match_queued(&queue(), &base(), &presubmit, &other_ps), None);
        assert_eq!(
            match_queued(&queue(), &base(), &job("bionic-lint"), &sent()),
            None
        );
        // A parameter the item does not carry is not "equal".
        let mut extra = sent();
        extra.insert("LUNCH".into(), "aosp_arm64-eng".into());
        assert_eq!(match_queued(&queue(), &base(), &presubmit, &extra), None);
    }

    #[test]
    fn non_string_parameters_compare_by_their_json_text() {
        let mut with_clean = sent();
        with_clean.insert("CLEAN".into(), "false".into());
        let presubmit = job("bionic-presubmit");
        assert_eq!(
            match_queued(&queue(), &base(), &presubmit, &with_clean),
            Some(QueueItemId(90211))
        );
        with_clean.insert("CLEAN".into(), "true".into());
        assert_eq!(
            match_queued(&queue(), &base(), &presubmit, &with_clean),
            None
        );
    }

    #[test]
    fn a_jenkins_under_a_path_and_relative_task_urls() {
        let base = Url::parse("http://10.0.0.5:8080/jenkins/").unwrap();
        assert_eq!(
            job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/job/a/job/b%2Fc/"),
            Some(vec!["a".to_string(), "b/c".to_string()])
        );
        assert_eq!(
            job_of_task_url(&base, "job/x/"),
            Some(vec!["x".to_string()])
        );
        // Jenkins' configured root URL is another host and path.
        assert_eq!(
            job_of_task_url(&base, "https://ci.example.org/ci/job/x/job/y/"),
            Some(vec!["x".to_string(), "y".to_string()])
        );
        let bare = Url::parse("http://10.0.0.5:8080/").unwrap();
        assert_eq!(
            job_of_task_url(&bare, "https://ci.example.org/ci/job/x/"),
            Some(vec!["x".to_string()])
        );
        assert_eq!(
            job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/"),
            None
        );
        assert_eq!(
            job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/view/all/"),
            None
        );
    }

    #[test]
    fn an_empty_queue_and_items_without_task_or_actions() {
        let empty: QueueJson =
            serde_json::from_str(r#"{"_class":"hudson.model.Queue","items":[]}"#).unwrap();
        assert_eq!(
            match_queued(&empty, &base(), &job("bionic-presubmit"), &sent()),
            None
        );
        let odd: QueueJson = serde_json::from_str(
            r#"{"items":[{"id":1},{"id":2,"task":{"name":"bionic-presubmit"},"actions":[null]}]}"#,
        )
        .unwrap();
        assert_eq!(
            match_queued(&odd, &base(), &job("bionic-presubmit"), &sent()),
            None
        );
    }

    /// The job's last builds under the lookup's `tree`, newest first: a
    /// build of another patch set, our build (with a default the bot did not
    /// send), and an old build of the same parameters (an earlier `retry`).
    const BUILDS: &str = r#"{
      "_class": "hudson.model.FreeStyleProject",
      "builds": [
        {"_class": "hudson.model.FreeStyleBuild",
         "actions": [
           {"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/99/123499/1"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "Iffff"}
           ]},
           {"_class": "hudson.model.CauseAction"}, {}, {}
         ],
         "number": 1843, "timestamp": 1678813990000,
         "url": "https://jenkins.example.org/job/bionic-presubmit/1843/"},
        {"_class": "hudson.model.FreeStyleBuild",
         "actions": [
           {"_class": "hudson.model.CauseAction"},
           {"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"},
             {"_class": "hudson.model.StringParameterValue", "name": "LUNCH", "value": "aosp_arm64-eng"}
           ]},
           {}
         ],
         "number": 1842, "timestamp": 1678813905123,
         "url": "https://jenkins.example.org/job/bionic-presubmit/1842/"},
        {"_class": "hudson.model.FreeStyleBuild",
         "actions": [
           {"_class": "hudson.model.ParametersAction", "parameters": [
             {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
             {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
           ]}
         ],
         "number": 1801, "timestamp": 1678700000000,
         "url": "https://jenkins.example.org/job/bionic-presubmit/1801/"}
      ]
    }"#;

    fn builds() -> JobBuildsJson {
        serde_json::from_str(BUILDS).unwrap()
    }

    #[test]
    fn the_build_with_our_parameters_since_we_triggered_is_found() {
        // Triggered at ..900000: the build started 5 s later.
        assert_eq!(
            match_build(&builds(), &sent(), 1_678_813_900_000),
            Some((
                1842,
                "https://jenkins.example.org/job/bionic-presubmit/1842/".to_string()
            ))
        );
    }

    #[test]
    fn a_build_is_allowed_a_minute_of_clock_skew_and_no_more() {
        let started = 1_678_813_905_123;
        assert_eq!(
            match_build(&builds(), &sent(), started + CLOCK_SLACK_MS).map(|b| b.0),
            Some(1842)
        );
        assert_eq!(
            match_build(&builds(), &sent(), started + CLOCK_SLACK_MS + 1),
            None
        );
    }

    #[test]
    fn an_older_build_with_the_same_parameters_is_found_only_when_recent_enough() {
        // Long ago: both builds qualify, the newest wins.
        assert_eq!(
            match_build(&builds(), &sent(), 1_678_000_000_000).map(|b| b.0),
            Some(1842)
        );
        let other = params(&[("REF", "refs/changes/56/123456/5")]);
        assert_eq!(match_build(&builds(), &other, 0), None);
    }

    #[test]
    fn builds_without_timestamp_or_url_are_skipped() {
        let odd: JobBuildsJson = serde_json::from_str(
            r#"{"builds":[{"number":3,"actions":[{"parameters":[{"name":"REF","value":"r"}]}]},
                          {"number":2,"timestamp":5,"actions":[{"parameters":[{"name":"REF","value":"r"}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(match_build(&odd, &params(&[("REF", "r")]), 0), None);
        let none: JobBuildsJson = serde_json::from_str(r#"{"_class":"x"}"#).unwrap();
        assert_eq!(match_build(&none, &sent(), 0), None);
    }
}
