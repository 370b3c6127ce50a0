//! What a job declares: since SECURITY-170 a build keeps only the parameters
//! its job declares (undeclared ones sent with `buildWithParameters` are
//! dropped), so a build is matched to a trigger on the declared subset of
//! what was sent.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::super::client::JenkinsClient;
use super::super::job::JobPath;
use crate::error::ApiError;

impl JenkinsClient {
    /// The names of the parameters `job` declares
    /// (`job/X/api/json?tree=property[parameterDefinitions[name]]`); empty
    /// for a job without parameters.
    pub async fn declared_parameters(&self, job: &JobPath) -> Result<BTreeSet<String>, ApiError> {
        let mut url = self.url(&format!("{}api/json", job.url_path()))?;
        url.query_pairs_mut()
            .append_pair("tree", "property[parameterDefinitions[name]]");
        let found: JobPropertiesJson = self
            .get_json(&format!("read the parameters {job} declares"), &url)
            .await?;
        Ok(declared(&found))
    }
}

/// `job/.../api/json?tree=property[parameterDefinitions[name]]`: one entry
/// per job property; only a `ParametersDefinitionProperty` has
/// `parameterDefinitions`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobPropertiesJson {
    #[serde(default)]
    property: Vec<Option<PropertyJson>>,
}

#[derive(Debug, Deserialize)]
struct PropertyJson {
    #[serde(default, rename = "parameterDefinitions")]
    parameter_definitions: Vec<Option<DefinitionJson>>,
}

#[derive(Debug, Deserialize)]
struct DefinitionJson {
    #[serde(default)]
    name: Option<String>,
}

pub(crate) fn declared(found: &JobPropertiesJson) -> BTreeSet<String> {
    found
        .property
        .iter()
        .flatten()
        .flat_map(|p| p.parameter_definitions.iter().flatten())
        .filter_map(|d| d.name.clone())
        .collect()
}

/// The parameters sent that the job declares: what its builds can show.
pub fn comparable(
    sent: &BTreeMap<String, String>,
    declared: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    sent.iter()
        .filter(|(name, _)| declared.contains(*name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_names_are_read_from_the_parameters_property() {
        let found: JobPropertiesJson = serde_json::from_str(
            r#"{"_class": "hudson.model.FreeStyleProject", "property": [
                 {"_class": "jenkins.model.BuildDiscarderProperty"},
                 {"_class": "hudson.model.ParametersDefinitionProperty",
                  "parameterDefinitions": [
                    {"_class": "hudson.model.StringParameterDefinition", "name": "REF"},
                    {"_class": "hudson.model.StringParameterDefinition", "name": "CHANGE_ID"},
                    {"_class": "hudson.model.StringParameterDefinition", "name": "PROJECT"},
                    {"_class": "hudson.model.ChoiceParameterDefinition", "name": "LUNCH_TARGET"},
                    null, {}
                  ]},
                 null
               ]}"#,
        )
        .unwrap();
        let names = declared(&found);
        assert_eq!(
            names.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["CHANGE_ID", "LUNCH_TARGET", "PROJECT", "REF"]
        );
        let sent = BTreeMap::from([
            ("REF".to_string(), "refs/changes/56/123456/2".to_string()),
            ("PATCHSET".to_string(), "2".to_string()),
            ("CHANGE_NUMBER".to_string(), "123456".to_string()),
        ]);
        assert_eq!(
            comparable(&sent, &names),
            BTreeMap::from([("REF".to_string(), "refs/changes/56/123456/2".to_string())])
        );
        let bare: JobPropertiesJson =
            serde_json::from_str(r#"{"_class": "hudson.model.FreeStyleProject", "property": []}"#)
                .unwrap();
        assert!(declared(&bare).is_empty());
        assert!(comparable(&sent, &declared(&bare)).is_empty());
    }
}
