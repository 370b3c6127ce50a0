//! The Gerrit REST client.
//!
//! - With credentials every path gets the `/a/` prefix and HTTP Basic auth
//!   (Gerrit 2.14+ has no Digest); without, calls are anonymous and writes
//!   are refused by the server (403).
//! - Every JSON answer starts with the XSSI guard `)]}'`; it is stripped only
//!   when present, since plain-text error bodies do not carry it.
//! - Reads are retried on passing faults; writes are sent once.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use url::Url;

use super::id::{ChangeRef, encode_segment};
use super::types::{
    AccountInfo, ChangeInfo, CommentInfo, CommitInfo, FileInfo, ReviewInput, ReviewResult,
};
use crate::error::{ApiError, ErrorKind, Service};
use crate::http::{excerpt, status_error, transport_error};
use crate::netrc::Credentials;
use crate::retry::{RetryPolicy, retry};

/// Gerrit's anti-XSSI prefix on JSON answers.
pub const JSON_GUARD: &str = ")]}'";

/// Characters escaped in a query value (option names are plain words, but
/// nothing unchecked goes into a URL).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'%');

/// `o=` options of the change endpoints: they decide which fields appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOption {
    Labels,
    DetailedLabels,
    CurrentRevision,
    AllRevisions,
    CurrentCommit,
    AllCommits,
    CurrentFiles,
    AllFiles,
    Messages,
    DetailedAccounts,
}

impl QueryOption {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryOption::Labels => "LABELS",
            QueryOption::DetailedLabels => "DETAILED_LABELS",
            QueryOption::CurrentRevision => "CURRENT_REVISION",
            QueryOption::AllRevisions => "ALL_REVISIONS",
            QueryOption::CurrentCommit => "CURRENT_COMMIT",
            QueryOption::AllCommits => "ALL_COMMITS",
            QueryOption::CurrentFiles => "CURRENT_FILES",
            QueryOption::AllFiles => "ALL_FILES",
            QueryOption::Messages => "MESSAGES",
            QueryOption::DetailedAccounts => "DETAILED_ACCOUNTS",
        }
    }
}

/// A `{revision-id}`: a patch set number or the current patch set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    Current,
    PatchSet(u32),
}

impl From<u32> for Revision {
    fn from(ps: u32) -> Self {
        Revision::PatchSet(ps)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::Current => f.write_str("current"),
            Revision::PatchSet(ps) => write!(f, "{ps}"),
        }
    }
}

/// A client for one Gerrit server.
#[derive(Debug, Clone)]
pub struct GerritClient {
    http: reqwest::Client,
    /// Ends with `/`; may carry a path (`https://host/gerrit/`).
    base: Url,
    credentials: Option<Credentials>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl GerritClient {
    /// `base_url` is the server root (a path is allowed, a query is not).
    /// `timeout` limits one request; `retry` governs reads.
    pub fn new(
        base_url: Url,
        credentials: Option<Credentials>,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, ApiError> {
        let invalid = |m: &str| ApiError::new(Service::Gerrit, ErrorKind::InvalidInput, m);
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(invalid("Gerrit URL must be http or https"));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(invalid("Gerrit URL must not have a query or fragment"));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(invalid(
                "Gerrit URL must not carry credentials (use the netrc file)",
            ));
        }
        let mut base = base_url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = crate::http::client(Service::Gerrit, timeout, false)?;
        Ok(GerritClient {
            http,
            base,
            credentials,
            timeout,
            retry,
        })
    }

    /// The server root this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// True when calls are authenticated (and go through `/a/`).
    pub fn is_authenticated(&self) -> bool {
        self.credentials.is_some()
    }

    /// `GET /changes/{id}` with the given options.
    pub async fn change(
        &self,
        change: &ChangeRef,
        options: &[QueryOption],
    ) -> Result<ChangeInfo, ApiError> {
        let path = format!("changes/{}", change.url_segment());
        self.get(&format!("get change {change}"), &path, options)
            .await
    }

    /// `GET /changes/{id}/detail`: labels with every reviewer, detailed
    /// accounts and the messages, plus the given options.
    pub async fn detail(
        &self,
        change: &ChangeRef,
        options: &[QueryOption],
    ) -> Result<ChangeInfo, ApiError> {
        let path = format!("changes/{}/detail", change.url_segment());
        self.get(&format!("get detail of {change}"), &path, options)
            .await
    }

    /// `GET .../revisions/{rev}/review`. The labels in the answer are always
    /// those of the **current** patch set, whatever `revision` is.
    pub async fn review(
        &self,
        change: &ChangeRef,
        revision: Revision,
    ) -> Result<ChangeInfo, ApiError> {
        let path = revision_path(change, revision, "review");
        self.get(&format!("get review of {change}/{revision}"), &path, &[])
            .await
    }

    /// `GET .../revisions/{rev}/files`: path → file, including `/COMMIT_MSG`.
    pub async fn files(
        &self,
        change: &ChangeRef,
        revision: Revision,
    ) -> Result<BTreeMap<String, FileInfo>, ApiError> {
        let path = revision_path(change, revision, "files");
        self.get(&format!("get files of {change}/{revision}"), &path, &[])
            .await
    }

    /// `GET .../revisions/{rev}/commit`.
    pub async fn commit(
        &self,
        change: &ChangeRef,
        revision: Revision,
    ) -> Result<CommitInfo, ApiError> {
        let path = revision_path(change, revision, "commit");
        self.get(&format!("get commit of {change}/{revision}"), &path, &[])
            .await
    }

    /// `GET /changes/{id}/comments`: the published comments of every patch
    /// set, path → comments (the path is the key, not repeated in each
    /// entry; `/PATCHSET_LEVEL` holds patchset-level comments).
    pub async fn comments(
        &self,
        change: &ChangeRef,
    ) -> Result<BTreeMap<String, Vec<CommentInfo>>, ApiError> {
        let path = format!("changes/{}/comments", change.url_segment());
        self.get(&format!("get comments of {change}"), &path, &[])
            .await
    }

    /// `GET /changes/?q={query}&o=...&n={limit}&S={start}`: one page of the
    /// changes matching `query` (Gerrit's search syntax), most recently
    /// updated first. A page holds at most `limit` changes, fewer when the
    /// server caps it (its `queryLimit`); when more exist, the last change
    /// has [`ChangeInfo::more_changes`] set: ask again with `start` = the
    /// number read so far. Retried like every read.
    pub async fn query_changes(
        &self,
        query: &str,
        options: &[QueryOption],
        limit: usize,
        start: usize,
    ) -> Result<Vec<ChangeInfo>, ApiError> {
        let (limit, start) = (limit.to_string(), start.to_string());
        let mut pairs = vec![("q", query)];
        pairs.extend(options.iter().map(|o| ("o", o.as_str())));
        pairs.extend([("n", limit.as_str()), ("S", start.as_str())]);
        let url = self.url("changes/", &pairs)?;
        let what = format!("query changes {query:?} from {start}");
        retry(&self.retry, Service::Gerrit, &what, || {
            self.send(&what, self.http.get(url.clone()))
        })
        .await
    }

    /// `GET /accounts/{account}`: a numeric id, username, e-mail or `self`.
    pub async fn account(&self, account: &str) -> Result<AccountInfo, ApiError> {
        if account.is_empty()
            || account.len() > 255
            || account.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ApiError::new(
                Service::Gerrit,
                ErrorKind::InvalidInput,
                format!("invalid Gerrit account {account:?}"),
            ));
        }
        let path = format!("accounts/{}", encode_segment(account));
        self.get(&format!("get account {account}"), &path, &[])
            .await
    }

    /// `POST .../revisions/{rev}/review`, then checks that every requested
    /// label was applied with the requested value: Gerrit silently drops an
    /// unknown label or an out-of-range value and still answers 200, which
    /// is reported here as [`ErrorKind::Rejected`] naming the label.
    ///
    /// Sent **once**, with the client's timeout and no retry: a retried
    /// request whose first attempt did reach the server would post the
    /// review twice. Callers retry through their own durable outbox, after
    /// checking whether the first attempt landed.
    pub async fn post_review(
        &self,
        change: &ChangeRef,
        revision: Revision,
        input: &ReviewInput,
    ) -> Result<ReviewResult, ApiError> {
        let what = format!("post review on {change}/{revision}");
        let path = revision_path(change, revision, "review");
        let url = self.url(&path, &[])?;
        let body = serde_json::to_vec(input).map_err(|e| {
            ApiError::new(
                Service::Gerrit,
                ErrorKind::InvalidInput,
                format!("{what}: cannot encode the review: {e}"),
            )
        })?;
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .body(body);
        let attempt = self.send::<ReviewResult>(&what, request);
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ApiError::new(
                    Service::Gerrit,
                    ErrorKind::Transient,
                    format!("{what}: no answer within {:?}", self.timeout),
                ));
            }
        };
        check_label_echo(&what, input, &result)?;
        Ok(result)
    }

    /// A GET with the retry policy.
    async fn get<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        options: &[QueryOption],
    ) -> Result<T, ApiError> {
        let query: Vec<(&str, &str)> = options.iter().map(|o| ("o", o.as_str())).collect();
        let url = self.url(path, &query)?;
        retry(&self.retry, Service::Gerrit, what, || {
            self.send(what, self.http.get(url.clone()))
        })
        .await
    }

    /// Builds the URL of `path` (relative, already encoded) under the base,
    /// with `/a/` when authenticated.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ApiError> {
        let prefix = if self.credentials.is_some() { "a/" } else { "" };
        let mut text = format!("{}{prefix}{path}", self.base.as_str());
        for (i, (key, value)) in query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(key);
            text.push('=');
            text.extend(utf8_percent_encode(value, QUERY_VALUE));
        }
        Url::parse(&text).map_err(|e| {
            ApiError::new(
                Service::Gerrit,
                ErrorKind::InvalidInput,
                format!("cannot build a Gerrit URL for {path}: {e}"),
            )
        })
    }

    /// One request: auth, status mapping, guard stripping, JSON decoding.
    async fn send<T: DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let request = match &self.credentials {
            Some(c) => request.basic_auth(&c.login, Some(c.password.expose())),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(Service::Gerrit, what, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| transport_error(Service::Gerrit, what, e))?;
        if !status.is_success() {
            let text = error_text(&body);
            return Err(status_error(Service::Gerrit, what, status, &headers, &text));
        }
        parse_json(what, &body)
    }
}

fn revision_path(change: &ChangeRef, revision: Revision, view: &str) -> String {
    format!(
        "changes/{}/revisions/{revision}/{view}",
        change.url_segment()
    )
}

/// Removes the `)]}'` guard line when (and only when) the body starts with it.
pub fn strip_guard(body: &str) -> &str {
    match body.strip_prefix(JSON_GUARD) {
        Some(rest) => rest
            .strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .unwrap_or(rest),
        None => body,
    }
}

/// Decodes a successful answer; anything but the expected JSON is `Malformed`.
pub fn parse_json<T: DeserializeOwned>(what: &str, body: &str) -> Result<T, ApiError> {
    serde_json::from_str(strip_guard(body)).map_err(|e| {
        ApiError::new(
            Service::Gerrit,
            ErrorKind::Malformed,
            format!(
                "{what}: unexpected answer ({e}): {}",
                excerpt(strip_guard(body))
            ),
        )
    })
}

/// The server's message from an error body: plain text as it is, or a
/// guarded JSON string (GET errors whose text contains `<` or `&`) decoded.
pub fn error_text(body: &str) -> String {
    if body.starts_with(JSON_GUARD)
        && let Ok(text) = serde_json::from_str::<String>(strip_guard(body))
    {
        return text;
    }
    strip_guard(body).to_string()
}

/// Fails when a requested label is missing from Gerrit's echo or has another value.
fn check_label_echo(
    what: &str,
    input: &ReviewInput,
    result: &ReviewResult,
) -> Result<(), ApiError> {
    let problems: Vec<String> = input
        .labels
        .iter()
        .filter_map(|(label, wanted)| match result.labels.get(label) {
            Some(applied) if applied == wanted => None,
            Some(applied) => Some(format!("{label}: asked {wanted:+}, applied {applied:+}")),
            None => Some(format!(
                "{label}: asked {wanted:+}, not applied (unknown label or value out of range)"
            )),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            Service::Gerrit,
            ErrorKind::Rejected,
            format!("{what}: Gerrit ignored a vote: {}", problems.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_is_stripped_only_when_present() {
        assert_eq!(strip_guard(")]}'\n{\"a\":1}"), "{\"a\":1}");
        assert_eq!(strip_guard(")]}'\r\n[]"), "[]");
        assert_eq!(strip_guard("change is closed\n"), "change is closed\n");
        // A short plain-text error must not lose characters to a blind cut.
        assert_eq!(strip_guard("Gone"), "Gone");
        assert_eq!(strip_guard(""), "");
    }

    #[test]
    fn error_bodies_are_read_with_or_without_guard() {
        assert_eq!(
            error_text(")]}'\n\"Not found: Dana <dana@example.com>\"\n"),
            "Not found: Dana <dana@example.com>"
        );
        assert_eq!(
            error_text("Multiple changes found for I4c1b\n"),
            "Multiple changes found for I4c1b\n"
        );
    }

    #[test]
    fn non_json_success_bodies_are_malformed() {
        let err = parse_json::<ReviewResult>("x", "<html>proxy login</html>").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert!(err.message.contains("proxy login"), "{err}");
        let ok: ReviewResult = parse_json("x", ")]}'\n{\"labels\":{\"Verified\":1}}").unwrap();
        assert_eq!(ok.labels.get("Verified"), Some(&1));
    }

    #[test]
    fn label_echo_must_match_the_request() {
        let mut input = ReviewInput::default();
        input.labels.insert("Verified".into(), 1);
        input.labels.insert("Verifed".into(), 1);
        let mut result = ReviewResult::default();
        result.labels.insert("Verified".into(), 1);
        let err = check_label_echo("post", &input, &result).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(err.message.contains("Verifed"), "{err}");
        assert!(!err.message.contains("Verified:"), "{err}");
        input.labels.remove("Verifed");
        assert!(check_label_echo("post", &input, &result).is_ok());
        result.labels.insert("Verified".into(), -1);
        assert!(check_label_echo("post", &input, &result).is_err());
    }

    fn client(base: &str, creds: bool) -> GerritClient {
        crate::tls::install_crypto_provider();
        let creds = creds.then(|| Credentials {
            login: "bot".into(),
            password: crate::config::Secret::new("pw"),
        });
        GerritClient::new(
            Url::parse(base).unwrap(),
            creds,
            Duration::from_secs(1),
            RetryPolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_add_the_auth_prefix() {
        let id = ChangeRef::parse("platform/bionic~123456").unwrap();
        let path = revision_path(&id, Revision::PatchSet(4), "review");
        let anon = client("https://host/gerrit", false);
        assert_eq!(
            anon.url(&path, &[]).unwrap().as_str(),
            "https://host/gerrit/changes/platform%2Fbionic~123456/revisions/4/review"
        );
        let auth = client("https://host/", true);
        assert_eq!(
            auth.url("changes/1", &[("o", "MESSAGES"), ("o", "LABELS")])
                .unwrap()
                .as_str(),
            "https://host/a/changes/1?o=MESSAGES&o=LABELS"
        );
    }

    #[test]
    fn query_values_are_encoded_whole() {
        let auth = client("https://host/", true);
        let query = r#"status:open project:platform/bionic after:"2026-11-30 10:00:00""#;
        assert_eq!(
            auth.url(
                "changes/",
                &[("q", query), ("o", "MESSAGES"), ("n", "500"), ("S", "0")]
            )
            .unwrap()
            .as_str(),
            "https://host/a/changes/?q=status:open%20project:platform/bionic%20\
             after:%222026-11-30%2010:00:00%22&o=MESSAGES&n=500&S=0"
        );
        let plus = auth.url("changes/", &[("q", "a+b&c=d#e")]).unwrap();
        assert_eq!(plus.query(), Some("q=a%2Bb%26c%3Dd%23e"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!("{:?}", client("https://host/", true));
        assert!(!text.contains("\"pw\""), "{text}");
    }

    #[test]
    fn base_urls_with_query_or_credentials_are_refused() {
        crate::tls::install_crypto_provider();
        for bad in ["https://host/?x=1", "https://u:p@host/", "ftp://host/"] {
            let err = GerritClient::new(
                Url::parse(bad).unwrap(),
                None,
                Duration::from_secs(1),
                RetryPolicy::default(),
            )
            .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
        }
    }
}
