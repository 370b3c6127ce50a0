//! The Notification plugin's HTTP sender: the JSON document of one build
//! phase, serialized the way the plugin's Gson does it, and its POST.
//!
//! Gson writes fields in their Java declaration order and omits null fields,
//! so the document is built from structs (not a JSON map, which would sort
//! its keys) with `None` fields skipped: `status` is absent on QUEUED and
//! STARTED. `parameters` comes from Jenkins' `EnvVars`, a map ordered by
//! name, case-insensitively.

use serde::Serialize;
use serde::ser::SerializeMap;

/// One phase of one build, ready to serialize.
#[derive(Debug, Clone, Serialize)]
pub(super) struct JobState {
    pub name: String,
    pub display_name: String,
    pub url: String,
    pub build: BuildState,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct BuildState {
    pub full_url: String,
    pub number: u64,
    pub queue_id: u64,
    pub timestamp: u64,
    pub duration: u64,
    pub phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub url: String,
    pub scm: ScmState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<EnvVars>,
    pub log: String,
    pub artifacts: Artifacts,
}

/// `ScmState` of a build without git data: empty change and culprit lists.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct ScmState {
    pub changes: Vec<String>,
    pub culprits: Vec<String>,
}

/// No archived artifacts: `{}`.
#[derive(Debug, Clone, Default)]
pub(super) struct Artifacts;

impl Serialize for Artifacts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// Build parameters in `EnvVars` order (by name, ignoring case).
#[derive(Debug, Clone)]
pub(super) struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    pub fn new(mut params: Vec<(String, String)>) -> Self {
        params.sort_by_key(|(name, _)| name.to_uppercase());
        EnvVars(params)
    }
}

impl Serialize for EnvVars {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// POSTs `doc` to `endpoint` like the plugin's HTTP protocol does:
/// `Content-Type: application/json;charset=UTF-8`, a fixed-length body, and
/// Basic auth taken from `user:secret@` in the URL (removed from the URL
/// itself). Returns the status, or the transport error as text; the plugin
/// does not look at the status (except for 307) and does not retry.
pub(super) async fn post(
    http: &reqwest::Client,
    endpoint: &str,
    doc: &JobState,
) -> Result<u16, String> {
    let mut url = reqwest::Url::parse(endpoint).map_err(|e| format!("bad endpoint URL: {e}"))?;
    let user = decode(url.username());
    let password = url.password().map(decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let body = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
    let mut request = http
        .post(url)
        .header("content-type", "application/json;charset=UTF-8")
        .body(body);
    if !user.is_empty() || password.is_some() {
        request = request.basic_auth(user, password);
    }
    match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(e.without_url().to_string()),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(phase: &'static str, status: Option<&str>) -> JobState {
        JobState {
            name: "bionic-presubmit".into(),
            display_name: "bionic-presubmit".into(),
            url: "job/bionic-presubmit/".into(),
            build: BuildState {
                full_url: "https://jenkins.example.org/job/bionic-presubmit/1842/".into(),
                number: 1842,
                queue_id: 90211,
                timestamp: 1764050000123,
                duration: if status.is_some() { 1864022 } else { 0 },
                phase,
                status: status.map(str::to_string),
                url: "job/bionic-presubmit/1842/".into(),
                scm: ScmState::default(),
                parameters: Some(EnvVars::new(vec![
                    ("REF".into(), "refs/changes/56/123456/4".into()),
                    (
                        "CHANGE_ID".into(),
                        "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b".into(),
                    ),
                    ("PROJECT".into(), "bionic".into()),
                ])),
                log: String::new(),
                artifacts: Artifacts,
            },
        }
    }

    #[test]
    fn field_order_and_null_omission_follow_gson() {
        let queued = serde_json::to_string(&doc("QUEUED", None)).unwrap();
        assert_eq!(
            queued,
            concat!(
                r#"{"name":"bionic-presubmit","display_name":"bionic-presubmit","#,
                r#""url":"job/bionic-presubmit/","build":{"#,
                r#""full_url":"https://jenkins.example.org/job/bionic-presubmit/1842/","#,
                r#""number":1842,"queue_id":90211,"timestamp":1764050000123,"duration":0,"#,
                r#""phase":"QUEUED","url":"job/bionic-presubmit/1842/","#,
                r#""scm":{"changes":[],"culprits":[]},"#,
                r#""parameters":{"CHANGE_ID":"I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b","#,
                r#""PROJECT":"bionic","REF":"refs/changes/56/123456/4"},"#,
                r#""log":"","artifacts":{}}}"#
            )
        );
        let finalized = serde_json::to_string(&doc("FINALIZED", Some("SUCCESS"))).unwrap();
        assert!(finalized.contains(r#""phase":"FINALIZED","status":"SUCCESS","url""#));
    }
}
