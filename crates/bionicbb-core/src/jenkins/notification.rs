//! Jenkins Notification-plugin documents, turned into our own [`BuildEvent`].
//!
//! The plugin POSTs one JSON document per build phase (QUEUED, STARTED,
//! COMPLETED, FINALIZED). Its shape grew over the plugin's versions, so the
//! parser reads only the fields it needs and tolerates the rest:
//!
//! - required: `name`, `build.number` (a number, or a string of digits as some
//!   senders write it), `build.phase`, `build.url`; `url` (the job URL) is
//!   required unless it can be derived from `build.url` (`job/x/7/` →
//!   `job/x/`), and must be a job URL in one of the forms of
//!   [`super::job_url`]: the build is known by its job's full name;
//! - optional: `build.status` (absent while the result is unknown, i.e. on
//!   QUEUED and STARTED), `build.full_url` (absent without a Jenkins root URL),
//!   `build.queue_id` (plugin 1.10+), `build.timestamp` (1.12+). An optional
//!   informational field of the wrong type is treated as absent: it never
//!   costs a vote;
//! - ignored whatever their size or shape: `display_name`, `build.duration`,
//!   `build.scm`, `build.log`, `build.notes`, `build.test_summary`,
//!   `build.artifacts`, and any field a later plugin version adds.
//!
//! # Which change and patch set a build is for
//!
//! Parameter names are matched exactly as our jobs declare them (Jenkins
//! keeps declared names; a job declaring `change_id` is misconfigured and its
//! builds have no target). The change is taken, in this order, from:
//!
//! 1. `CHANGE_NUMBER`: the change number;
//! 2. the number inside `REF` (`refs/changes/56/123456/4` → 123456);
//! 3. `CHANGE_ID`: any form Gerrit accepts (bare `I...`, triplet,
//!    `project~number`, number).
//!
//! A number wins over `CHANGE_ID` because a bare Change-Id is ambiguous once a
//! change is cherry-picked to another branch. `PROJECT` is not used: our jobs
//! receive the project without its first component (`bionic` for
//! `platform/bionic`), which Gerrit cannot resolve.
//!
//! The patch set is the last component of `REF`, else `PATCHSET`.
//!
//! Every present parameter is validated even when a preferred one exists:
//! `REF` must be `refs/changes/NN/<number>/<patch set>` with `NN` the last two
//! digits of the number; `CHANGE_ID` must be a valid change id (no paths,
//! `..` or spaces). When two parameters name different changes or patch sets
//! (`CHANGE_NUMBER` vs `REF`, a numeric `CHANGE_ID` vs either, `PATCHSET` vs
//! `REF`), the document is refused: the bot never votes on a change it is not
//! sure was built. A key-form `CHANGE_ID` cannot be compared with a number
//! without asking Gerrit, so the number is used and the key is not checked.
//!
//! A build with no parameters, or without a change or a patch set among them,
//! has no [`BuildTarget`]; that is not an error here (a clean job may need
//! none), the caller decides whether the job's role requires one.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::job_url;
use crate::gerrit::ChangeRef;

/// The phase a document reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Started,
    Completed,
    Finalized,
    /// A phase name sent by a pipeline `notifyEndpoints` step.
    Other(String),
}

impl Phase {
    fn parse(s: &str) -> Phase {
        match s.to_ascii_uppercase().as_str() {
            "QUEUED" => Phase::Queued,
            "STARTED" => Phase::Started,
            "COMPLETED" => Phase::Completed,
            "FINALIZED" => Phase::Finalized,
            _ => Phase::Other(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Phase::Queued => "QUEUED",
            Phase::Started => "STARTED",
            Phase::Completed => "COMPLETED",
            Phase::Finalized => "FINALIZED",
            Phase::Other(s) => s,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A build result (`Result.toString()` in Jenkins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    Success,
    Unstable,
    Failure,
    NotBuilt,
    Aborted,
    Other(String),
}

impl BuildStatus {
    pub fn parse(s: &str) -> BuildStatus {
        match s.to_ascii_uppercase().as_str() {
            "SUCCESS" => BuildStatus::Success,
            "UNSTABLE" => BuildStatus::Unstable,
            "FAILURE" => BuildStatus::Failure,
            "NOT_BUILT" => BuildStatus::NotBuilt,
            "ABORTED" => BuildStatus::Aborted,
            _ => BuildStatus::Other(s.to_string()),
        }
    }

    /// The Jenkins spelling, also the key of `[review.votes]`.
    pub fn as_str(&self) -> &str {
        match self {
            BuildStatus::Success => "SUCCESS",
            BuildStatus::Unstable => "UNSTABLE",
            BuildStatus::Failure => "FAILURE",
            BuildStatus::NotBuilt => "NOT_BUILT",
            BuildStatus::Aborted => "ABORTED",
            BuildStatus::Other(s) => s,
        }
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Gerrit patch set a build was for, from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    pub change: ChangeRef,
    pub patch_set: u32,
    /// `REF` as given, when the build had one.
    pub ref_name: Option<String>,
}

/// One Notification-plugin document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEvent {
    /// The job's short name (not unique across folders).
    pub job_name: String,
    /// The job URL as sent (relative to the Jenkins root, e.g. `job/a/job/b/`).
    pub job_url: String,
    /// The job's full name from its URL (`a/b`), whatever form the URL was
    /// written in (see [`super::job_url`]).
    pub job: String,
    pub number: u64,
    pub phase: Phase,
    /// `None` while the result is unknown.
    pub status: Option<BuildStatus>,
    /// The build URL relative to the Jenkins root.
    pub build_url: String,
    pub full_url: Option<String>,
    pub queue_id: Option<u64>,
    pub timestamp_ms: Option<i64>,
    pub target: Option<BuildTarget>,
}

impl BuildEvent {
    /// Identifies the build across its documents: the same job (by its full
    /// name, whatever the form of its URL) and number are the same build
    /// (`job:a/b#12`).
    pub fn build_key(&self) -> String {
        job_url::build_key(&self.job, self.number, "")
    }

    /// Whether the document carries the build's result. The first such
    /// document of a build is acted on; later ones are duplicates.
    pub fn is_completion(&self) -> bool {
        self.status.is_some()
    }

    /// The job's folder path from its URL (`job/a/job/b/` → `a/b`), the
    /// unique name of a job inside folders: [`BuildEvent::job`].
    pub fn job_path(&self) -> Option<String> {
        Some(self.job.clone())
    }
}

/// Why a document was refused. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("not a Notification-plugin document: {0}")]
    NotADocument(String),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl NotificationError {
    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NotificationError::Missing(f) | NotificationError::Invalid { field: f, .. } => Some(f),
            _ => None,
        }
    }

    pub(crate) fn from_serde(e: serde_json::Error) -> Self {
        if e.is_data() {
            NotificationError::NotADocument(e.to_string())
        } else {
            NotificationError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> NotificationError {
    NotificationError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// An input value quoted for an error message: escaped and cut short, so a
/// hostile document cannot flood or forge log lines.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// The wire document. Fields are read as raw values so that a wrong type is
/// reported with the field's name; fields not listed are skipped by serde
/// without being stored (a multi-megabyte `log` costs nothing).
#[derive(Deserialize)]
struct Wire {
    name: Option<Value>,
    url: Option<Value>,
    build: Option<WireBuild>,
}

#[derive(Deserialize)]
struct WireBuild {
    full_url: Option<Value>,
    number: Option<Value>,
    queue_id: Option<Value>,
    timestamp: Option<Value>,
    phase: Option<Value>,
    status: Option<Value>,
    url: Option<Value>,
    parameters: Option<Value>,
}

/// Parses one Notification-plugin JSON document.
pub fn parse(body: &[u8]) -> Result<BuildEvent, NotificationError> {
    let wire: Wire = serde_json::from_slice(body).map_err(NotificationError::from_serde)?;
    let job_name = required_str(wire.name, "name")?;
    let build = wire.build.ok_or(NotificationError::Missing("build"))?;
    let number = build
        .number
        .ok_or(NotificationError::Missing("build.number"))
        .and_then(|v| {
            unsigned(&v).ok_or_else(|| invalid("build.number", "not a non-negative integer"))
        })?;
    let phase = Phase::parse(&required_str(build.phase, "build.phase")?);
    let build_url = required_str(build.url, "build.url")?;
    let job_url = match wire.url {
        Some(v) => string_value(v, "url")?,
        None => derive_job_url(&build_url, number).ok_or(NotificationError::Missing("url"))?,
    };
    let job = job_url::canonical_job(&job_url).ok_or_else(|| {
        invalid(
            "url",
            format!("{} is not a Jenkins job URL (job/<name>/)", shown(&job_url)),
        )
    })?;
    let status = build
        .status
        .map(|v| string_value(v, "build.status"))
        .transpose()?
        .map(|s| BuildStatus::parse(&s));
    let full_url = build
        .full_url
        .map(|v| string_value(v, "build.full_url"))
        .transpose()?
        .filter(|s| !s.is_empty());
    let queue_id = build.queue_id.as_ref().and_then(unsigned);
    let timestamp_ms = build.timestamp.as_ref().and_then(signed);
    let target = match build.parameters {
        None => None,
        Some(Value::Object(params)) => target(&params)?,
        Some(_) => return Err(invalid("build.parameters", "not a JSON object")),
    };
    Ok(BuildEvent {
        job_name,
        job_url,
        job,
        number,
        phase,
        status,
        build_url,
        full_url,
        queue_id,
        timestamp_ms,
        target,
    })
}

fn required_str(v: Option<Value>, field: &'static str) -> Result<String, NotificationError> {
    let s = string_value(v.ok_or(NotificationError::Missing(field))?, field)?;
    if s.is_empty() {
        return Err(invalid(field, "empty"));
    }
    Ok(s)
}

fn string_value(v: Value, field: &'static str) -> Result<String, NotificationError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(invalid(field, "not a string")),
    }
}

/// A non-negative integer given as a JSON number or a string of digits.
fn unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

fn signed(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `job/x/7/` with number 7 → `job/x/` (old documents without `url`).
fn derive_job_url(build_url: &str, number: u64) -> Option<String> {
    let trimmed = build_url.strip_suffix('/').unwrap_or(build_url);
    let job = trimmed.strip_suffix(&number.to_string())?;
    (job.ends_with('/') && job.len() > 1).then(|| job.to_string())
}

/// A parameter read as a string; JSON numbers are accepted for numeric
/// parameters. Absent and empty parameters are `None`.
fn param(
    params: &Map<String, Value>,
    name: &'static str,
    field: &'static str,
) -> Result<Option<String>, NotificationError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(field, "not a string")),
    }
}

fn positive<T: std::str::FromStr + PartialEq + Default>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n != T::default())
}

/// Splits `refs/changes/NN/<number>/<patch set>`.
fn parse_ref(r: &str) -> Result<(u64, u32), NotificationError> {
    const FIELD: &str = "build.parameters.REF";
    let bad = |why: &str| invalid(FIELD, format!("{} {why}", shown(r)));
    let parts: Vec<&str> = r.split('/').collect();
    let [refs, changes, shard, number, patch_set] = parts.as_slice() else {
        return Err(bad(
            "is not of the form refs/changes/NN/<change number>/<patch set>",
        ));
    };
    if *refs != "refs" || *changes != "changes" {
        return Err(bad(
            "is not of the form refs/changes/NN/<change number>/<patch set>",
        ));
    }
    let number: u64 = positive(number).ok_or_else(|| bad("has no change number"))?;
    let patch_set: u32 =
        positive(patch_set).ok_or_else(|| bad("does not end with a patch set number"))?;
    if *shard != format!("{:02}", number % 100) {
        return Err(bad(
            "has a shard that is not the last two digits of the change number",
        ));
    }
    Ok((number, patch_set))
}

/// Reads the build's target from its parameters (see the module doc).
fn target(params: &Map<String, Value>) -> Result<Option<BuildTarget>, NotificationError> {
    const NUMBER: &str = "build.parameters.CHANGE_NUMBER";
    const ID: &str = "build.parameters.CHANGE_ID";
    const PATCHSET: &str = "build.parameters.PATCHSET";

    let ref_name = param(params, "REF", "build.parameters.REF")?;
    let from_ref = ref_name.as_deref().map(parse_ref).transpose()?;
    let change_number = param(params, "CHANGE_NUMBER", NUMBER)?
        .map(|s| {
            positive::<u64>(&s)
                .ok_or_else(|| invalid(NUMBER, format!("{} is not a change number", shown(&s))))
        })
        .transpose()?;
    let change_id = param(params, "CHANGE_ID", ID)?
        .map(|s| {
            ChangeRef::parse(&s).map_err(|e| {
                invalid(
                    ID,
                    format!("{} is not a valid change id: {}", shown(&s), e.reason),
                )
            })
        })
        .transpose()?;
    let patch_set_param = param(params, "PATCHSET", PATCHSET)?
        .map(|s| {
            positive::<u32>(&s).ok_or_else(|| {
                invalid(PATCHSET, format!("{} is not a patch set number", shown(&s)))
            })
        })
        .transpose()?;

    // Cross-checks: every number given must name the same change and patch set.
    let ref_number = from_ref.map(|(n, _)| n);
    if let (Some(a), Some(b)) = (change_number, ref_number)
        && a != b
    {
        return Err(invalid(
            NUMBER,
            format!("change {a} disagrees with REF, which names change {b}"),
        ));
    }
    let id_number = match &change_id {
        Some(ChangeRef::Number(n)) | Some(ChangeRef::ProjectNumber { number: n, .. }) => Some(*n),
        _ => None,
    };
    if let (Some(id), Some(other)) = (id_number, change_number.or(ref_number))
        && id != other
    {
        return Err(invalid(
            ID,
            format!("change {id} disagrees with change {other} named by CHANGE_NUMBER or REF"),
        ));
    }
    if let (Some(p), Some((_, r))) = (patch_set_param, from_ref)
        && p != r
    {
        return Err(invalid(
            PATCHSET,
            format!("patch set {p} disagrees with REF, which names patch set {r}"),
        ));
    }

    let change = match (change_number.or(ref_number), change_id) {
        (Some(n), _) => ChangeRef::Number(n),
        (None, Some(id)) => id,
        (None, None) => return Ok(None),
    };
    let Some(patch_set) = from_ref.map(|(_, p)| p).or(patch_set_param) else {
        return Ok(None);
    };
    Ok(Some(BuildTarget {
        change,
        patch_set,
        ref_name,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";

    fn doc(params: &str) -> String {
        format!(
            r#"{{"name":"j","url":"job/j/","build":{{"number":7,"phase":"FINALIZED","status":"SUCCESS","url":"job/j/7/","parameters":{params}}}}}"#
        )
    }

    fn target_of(params: &str) -> Result<Option<BuildTarget>, NotificationError> {
        parse(doc(params).as_bytes()).map(|e| e.target)
    }

    #[test]
    fn ref_gives_number_and_patch_set() {
        let t = target_of(&format!(
            r#"{{"REF":"refs/changes/56/123456/4","CHANGE_ID":"{KEY}"}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(t.change, ChangeRef::Number(123456));
        assert_eq!(t.patch_set, 4);
        assert_eq!(t.ref_name.as_deref(), Some("refs/changes/56/123456/4"));
    }

    #[test]
    fn change_number_wins_and_must_agree_with_ref() {
        let t = target_of(r#"{"REF":"refs/changes/56/123456/4","CHANGE_NUMBER":"123456"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(t.change, ChangeRef::Number(123456));
        let e = target_of(r#"{"REF":"refs/changes/56/123456/4","CHANGE_NUMBER":"123457"}"#)
            .unwrap_err();
        assert_eq!(e.field(), Some("build.parameters.CHANGE_NUMBER"));
    }

    #[test]
    fn change_id_alone_needs_a_patch_set() {
        assert_eq!(
            target_of(&format!(r#"{{"CHANGE_ID":"{KEY}"}}"#)).unwrap(),
            None
        );
        let t = target_of(&format!(
            r#"{{"CHANGE_ID":"platform/bionic~master~{KEY}","PATCHSET":3}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            t.change,
            ChangeRef::parse(&format!("platform/bionic~master~{KEY}")).unwrap()
        );
        assert_eq!((t.patch_set, t.ref_name), (3, None));
    }

    #[test]
    fn numeric_change_id_must_agree() {
        let e = target_of(r#"{"REF":"refs/changes/56/123456/4","CHANGE_ID":"platform/bionic~99"}"#)
            .unwrap_err();
        assert_eq!(e.field(), Some("build.parameters.CHANGE_ID"));
        let e = target_of(r#"{"REF":"refs/changes/56/123456/4","PATCHSET":"5"}"#).unwrap_err();
        assert_eq!(e.field(), Some("build.parameters.PATCHSET"));
    }

    #[test]
    fn malformed_refs_are_refused() {
        for bad in [
            "refs/changes/56/123456/meta",
            "refs/changes/56/123456",
            "refs/changes/55/123456/4",
            "refs/heads/master",
            "refs/changes/56/123456/4/5",
            "refs/changes/56/0/4",
            "refs/changes/56/123456/0",
            "../../56/123456/4",
        ] {
            let e = target_of(&format!(r#"{{"REF":"{bad}"}}"#)).unwrap_err();
            assert_eq!(e.field(), Some("build.parameters.REF"), "{bad}");
        }
        // A one-digit change number has a zero-padded shard.
        let t = target_of(r#"{"REF":"refs/changes/07/7/1"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(t.change, ChangeRef::Number(7));
    }

    #[test]
    fn parameters_of_wrong_type_name_the_field() {
        let e = target_of(r#"{"REF":["x"]}"#).unwrap_err();
        assert_eq!(e.field(), Some("build.parameters.REF"));
        let e = target_of(r#""REF""#).unwrap_err();
        assert_eq!(e.field(), Some("build.parameters"));
        let e = target_of(r#"{"CHANGE_NUMBER":"12x"}"#).unwrap_err();
        assert_eq!(e.field(), Some("build.parameters.CHANGE_NUMBER"));
    }

    #[test]
    fn job_url_is_derived_when_absent() {
        let e = parse(
            br#"{"name":"j","build":{"number":"12","phase":"STARTED","url":"job/f/job/j/12/"}}"#,
        )
        .unwrap();
        assert_eq!(e.job_url, "job/f/job/j/");
        assert_eq!(e.build_key(), "job:f/j#12");
        assert_eq!(e.job_path().as_deref(), Some("f/j"));
        let e =
            parse(br#"{"name":"j","build":{"number":12,"phase":"STARTED","url":"elsewhere/"}}"#)
                .unwrap_err();
        assert_eq!(e, NotificationError::Missing("url"));
    }

    #[test]
    fn number_must_be_a_non_negative_integer() {
        for n in ["-1", "1.5", "\"-1\"", "\"\"", "\"7a\"", "true", "null"] {
            let body = format!(
                r#"{{"name":"j","url":"job/j/","build":{{"number":{n},"phase":"STARTED","url":"job/j/1/"}}}}"#
            );
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.field(), Some("build.number"), "{n}");
        }
    }

    #[test]
    fn not_an_object_is_not_a_document() {
        assert!(matches!(
            parse(b"42"),
            Err(NotificationError::NotADocument(_))
        ));
        assert!(matches!(
            parse(b""),
            Err(NotificationError::Malformed { .. })
        ));
    }

    #[test]
    fn shown_cuts_and_escapes() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        assert_eq!(shown(&"x".repeat(100)), format!("{:?}...", "x".repeat(80)));
    }

    #[test]
    fn phases_and_statuses_round_trip() {
        for p in ["QUEUED", "STARTED", "COMPLETED", "FINALIZED", "DEPLOYED"] {
            assert_eq!(Phase::parse(p).as_str(), p);
        }
        for s in [
            "SUCCESS",
            "UNSTABLE",
            "FAILURE",
            "NOT_BUILT",
            "ABORTED",
            "WEIRD",
        ] {
            assert_eq!(BuildStatus::parse(s).as_str(), s);
        }
        assert_eq!(BuildStatus::parse("NOT_BUILT"), BuildStatus::NotBuilt);
    }
}
