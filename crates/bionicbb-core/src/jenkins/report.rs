//! What Jenkins says about one finished (or running) build, enough to
//! write the Notification-plugin document it would have sent: for a
//! build whose notification was lost.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::JenkinsClient;
use super::job::JobPath;
use crate::error::ApiError;

/// A build as the remote API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub number: u64,
    pub building: bool,
    /// `SUCCESS`, `FAILURE`...; `None` while it runs.
    pub result: Option<String>,
    /// The absolute build URL (with Jenkins' configured root).
    pub url: Option<String>,
    pub queue_id: Option<u64>,
    /// When it started, unix milliseconds.
    pub timestamp_ms: Option<i64>,
    /// How long it ran, milliseconds (0 while it runs).
    pub duration_ms: Option<i64>,
    /// Its `ParametersAction`'s parameters; non-string values by their JSON
    /// text, null values left out.
    pub parameters: BTreeMap<String, String>,
}

impl BuildReport {
    /// When it completed (start + duration), unix milliseconds, when known.
    pub fn completed_at_ms(&self) -> Option<i64> {
        let start = self.timestamp_ms?;
        Some(start.saturating_add(self.duration_ms.unwrap_or(0)))
    }

    /// The COMPLETED document the Notification plugin sends for this build
    /// of `job`, with the fields build-listener reads (see
    /// [`super::notification`]); `None` while the build has no result. The
    /// parameters are the build's, or `sent` (those of the trigger) when
    /// Jenkins shows none.
    pub fn completion_document(
        &self,
        job: &JobPath,
        sent: &BTreeMap<String, String>,
    ) -> Option<Value> {
        let status = self.result.as_ref()?;
        let job_url = job.url_path();
        let parameters = if self.parameters.is_empty() {
            sent
        } else {
            &self.parameters
        };
        let mut build = json!({
            "number": self.number,
            "phase": "COMPLETED",
            "status": status,
            "url": format!("{job_url}{}/", self.number),
            "parameters": parameters,
        });
        if let Some(url) = &self.url {
            build["full_url"] = json!(url);
        }
        if let Some(id) = self.queue_id {
            build["queue_id"] = json!(id);
        }
        if let Some(at) = self.completed_at_ms() {
            build["timestamp"] = json!(at);
        }
        Some(json!({ "name": job.name(), "url": job_url, "build": build }))
    }
}

impl JenkinsClient {
    /// Build `number` of `job` with its result and parameters. `NotFound`
    /// when Jenkins has no such build (deleted, or never existed).
    pub async fn build_report(&self, job: &JobPath, number: u64) -> Result<BuildReport, ApiError> {
        let mut url = self.url(&format!("{}{number}/api/json", job.url_path()))?;
        url.query_pairs_mut().append_pair(
            "tree",
            "number,result,building,url,queueId,timestamp,duration,\
             actions[parameters[name,value]]",
        );
        let build: ReportJson = self
            .get_json(&format!("build {job} #{number}"), &url)
            .await?;
        let parameters = build
            .actions
            .iter()
            .flatten()
            .flat_map(|a| a.parameters.iter().flatten())
            .filter_map(|p| {
                let value = match &p.value {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((p.name.clone()?, value))
            })
            .collect();
        Ok(BuildReport {
            number: build.number.unwrap_or(number),
            building: build.building,
            result: build.result,
            url: build.url,
            queue_id: build.queue_id,
            timestamp_ms: build.timestamp,
            duration_ms: build.duration,
            parameters,
        })
    }
}

#[derive(Deserialize)]
struct ReportJson {
    #[serde(default)]
    number: Option<u64>,
    #[serde(default)]
    building: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "queueId")]
    queue_id: Option<u64>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    actions: Vec<Option<ActionJson>>,
}

#[derive(Deserialize)]
struct ActionJson {
    #[serde(default)]
    parameters: Vec<Option<ParameterJson>>,
}

#[derive(Deserialize)]
struct ParameterJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jenkins::notification::{self, BuildStatus, Phase};

    #[test]
    fn a_finished_build_reads_as_its_completed_document() {
        let job = JobPath::parse("team/bionic presubmit").unwrap();
        let report = BuildReport {
            number: 12,
            building: false,
            result: Some("FAILURE".into()),
            url: Some("https://ci.example.org/job/team/job/bionic%20presubmit/12/".into()),
            queue_id: Some(90211),
            timestamp_ms: Some(1_700_000_000_000),
            duration_ms: Some(5_000),
            parameters: BTreeMap::from([(
                "REF".to_string(),
                "refs/changes/56/123456/4".to_string(),
            )]),
        };
        let doc = report.completion_document(&job, &BTreeMap::new()).unwrap();
        let event = notification::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(event.job, "team/bionic presubmit");
        assert_eq!(event.build_key(), "job:team/bionic presubmit#12");
        assert_eq!(event.phase, Phase::Completed);
        assert_eq!(event.status, Some(BuildStatus::Failure));
        assert_eq!(event.queue_id, Some(90211));
        assert_eq!(event.timestamp_ms, Some(1_700_000_005_000));
        let target = event.target.unwrap();
        assert_eq!(target.change.to_string(), "123456");
        assert_eq!(target.patch_set, 4);

        // No parameters on Jenkins: those sent with the trigger.
        let bare = BuildReport {
            parameters: BTreeMap::new(),
            url: None,
            ..report.clone()
        };
        let doc = bare.completion_document(&job, &report.parameters).unwrap();
        let event = notification::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(event.target.unwrap().patch_set, 4);
        assert_eq!(event.full_url, None);

        let running = BuildReport {
            building: true,
            result: None,
            ..report
        };
        assert_eq!(running.completion_document(&job, &BTreeMap::new()), None);
    }
}
