//! The questions `check --online` asks Jenkins: does it accept the bot's
//! user and token, and what does a job declare (protocols: a build keeps
//! only the parameters its job declares, so one the bot sends but the job
//! does not declare is silently dropped).

use serde_json::Value;

use super::client::JenkinsClient;
use super::job::JobPath;
use crate::error::{ApiError, ErrorKind};

/// What a job declares, as far as triggering it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDeclaration {
    /// False for a disabled job: the queue refuses its builds.
    pub buildable: bool,
    /// The names of its parameters; `None` when the job is not
    /// parameterized (`buildWithParameters` fails on it).
    pub parameters: Option<Vec<String>>,
}

impl JobDeclaration {
    /// Reads `job/X/api/json?tree=buildable,property[parameterDefinitions[name]]`.
    /// Only property entries that carry `parameterDefinitions` count (the
    /// others are unrelated job properties); a job without any is not
    /// parameterized. A missing `buildable` (a job type without it) counts
    /// as buildable.
    pub fn from_json(value: &Value) -> JobDeclaration {
        let buildable = value["buildable"].as_bool().unwrap_or(true);
        let definitions: Vec<&Value> = value["property"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("parameterDefinitions"))
            .filter_map(Value::as_array)
            .flatten()
            .collect();
        let parameters = (!definitions.is_empty()).then(|| {
            definitions
                .iter()
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect()
        });
        JobDeclaration {
            buildable,
            parameters,
        }
    }
}

impl JenkinsClient {
    /// `GET api/json`: whether Jenkins answers the bot's user (401 for a
    /// wrong user or token, 403 without the Overall/Read permission).
    pub async fn ping(&self) -> Result<(), ApiError> {
        let url = self.url("api/json?tree=mode")?;
        self.get_json::<Value>("ask Jenkins api/json", &url)
            .await
            .map(drop)
    }

    /// What `job` declares; `None` when Jenkins has no such job or does not
    /// let the bot's user see it (both are a 404).
    pub async fn job_declaration(&self, job: &JobPath) -> Result<Option<JobDeclaration>, ApiError> {
        let url = self.url(&format!(
            "{}api/json?tree=buildable,property[parameterDefinitions[name]]",
            job.url_path()
        ))?;
        match self
            .get_json::<Value>(&format!("look up job {job}"), &url)
            .await
        {
            Ok(value) => Ok(Some(JobDeclaration::from_json(&value))),
            Err(err) if err.kind == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_come_from_the_parameters_property_only() {
        let value = json!({
            "_class": "hudson.model.FreeStyleProject",
            "buildable": true,
            "property": [
                {"_class": "jenkins.model.BuildDiscarderProperty"},
                {"_class": "hudson.model.ParametersDefinitionProperty",
                 "parameterDefinitions": [{"name": "REF"}, {"name": "CHANGE_ID"}]},
            ],
        });
        let d = JobDeclaration::from_json(&value);
        assert!(d.buildable);
        assert_eq!(d.parameters, Some(vec!["REF".into(), "CHANGE_ID".into()]));
    }

    #[test]
    fn a_job_without_parameter_definitions_is_not_parameterized() {
        let d = JobDeclaration::from_json(&json!({"buildable": false, "property": []}));
        assert_eq!(
            d,
            JobDeclaration {
                buildable: false,
                parameters: None
            }
        );
        let d = JobDeclaration::from_json(&json!({}));
        assert!(d.buildable);
        assert_eq!(d.parameters, None);
    }
}
