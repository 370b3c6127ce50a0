//! Checks and normalization that serde cannot express, the resolution of
//! `credential:NAME` file keys, and the reading of secret files. Each error
//! names its key as `[section] key`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::credential::{self, CredentialError};
use super::{Config, ConfigWarning, GmailConfig, JobRole, Secret, SecretKey};
use crate::event::ChangeKind;

/// Jenkins build results a vote may be given for.
pub const BUILD_RESULTS: [&str; 5] = ["SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"];

/// Gerrit's `notify` values for a review.
pub const NOTIFY_VALUES: [&str; 4] = ["NONE", "OWNER", "OWNER_REVIEWERS", "ALL"];

/// One invalid key.
#[derive(Debug)]
pub struct KeyError {
    key: String,
    message: String,
    /// A `credential:NAME` not found (see [`CredentialError::not_found`]).
    pub missing_credential: bool,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn fail<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError {
        key: key.into(),
        message: message.into(),
        missing_credential: false,
    })
}

fn credential_error((key, e): (&str, CredentialError)) -> KeyError {
    KeyError {
        key: key.to_string(),
        message: e.message,
        missing_credential: e.not_found,
    }
}

/// Validates and normalizes `config` in place, resolves its
/// `credential:NAME` paths in `credentials`, then reads its secrets; what
/// is accepted but should be fixed goes to `config.warnings`.
pub fn validate(config: &mut Config, credentials: Option<&Path>) -> Result<(), KeyError> {
    structure(config, credentials)?;
    for key in SecretKey::ALL {
        let warning = secret(config, key)?;
        config.warnings.extend(warning);
    }
    Ok(())
}

/// Validates and normalizes everything but the secrets, then replaces each
/// `credential:NAME` file key by its path in `credentials` (the directory
/// systemd names in `$CREDENTIALS_DIRECTORY`). Reads no file: it only
/// looks whether each credential is there.
pub fn structure(config: &mut Config, credentials: Option<&Path>) -> Result<(), KeyError> {
    if config.state_dir.as_os_str().is_empty() {
        return fail("state_dir", "must not be empty");
    }

    let gerrit = &mut config.gerrit;
    base_url(&mut gerrit.url, "[gerrit] url")?;
    let email = gerrit.bot_email.trim();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
        _ => {
            return fail(
                "[gerrit] bot_email",
                format!("{email:?} is not an e-mail address"),
            );
        }
    }
    gerrit.bot_email = email.to_string();
    positive(gerrit.timeout, "[gerrit] timeout")?;
    reconcile(gerrit)?;

    let jenkins = &mut config.jenkins;
    base_url(&mut jenkins.url, "[jenkins] url")?;
    non_empty(&jenkins.user, "[jenkins] user")?;
    positive(jenkins.timeout, "[jenkins] timeout")?;

    gmail(&config.gmail)?;

    let concurrency = config.gmail_listener.concurrency;
    if !(1..=64).contains(&concurrency) {
        return fail(
            "[gmail_listener] concurrency",
            format!("must be between 1 and 64: {concurrency}"),
        );
    }

    let listener = &config.build_listener;
    http_url(&listener.public_url, "[build_listener] public_url")?;
    if listener.body_limit == 0 {
        return fail("[build_listener] body_limit", "must be greater than 0");
    }
    if listener.catch_up_interval.is_zero() {
        return fail(
            "[build_listener] catch_up_interval",
            "must be greater than 0",
        );
    }
    if listener.catch_up_max_age <= listener.catch_up_after {
        return fail(
            "[build_listener] catch_up_max_age",
            "must be longer than catch_up_after",
        );
    }
    if listener.outbox_concurrency == 0 {
        return fail("[build_listener] outbox_concurrency", "must be at least 1");
    }
    if let Some(link_base) = &listener.link_base {
        match url::Url::parse(link_base) {
            Ok(url) => http_url(&url, "[build_listener] link_base")?,
            Err(e) => return fail("[build_listener] link_base", format!("not a URL: {e}")),
        }
    }

    jobs(config)?;
    review(config)?;
    commands(config)?;
    policy(config)?;
    credential::resolve_paths(config, credentials).map_err(credential_error)?;
    config.credentials = credentials.map(Path::to_path_buf);
    Ok(())
}

/// [`structure`]'s resolution of `credential:NAME` for the `[gmail]`
/// table alone (`gmail-listener auth`).
pub fn gmail_credentials(
    gmail: &mut GmailConfig,
    credentials: Option<&Path>,
) -> Result<(), KeyError> {
    credential::resolve_gmail_paths(gmail, credentials).map_err(credential_error)
}

/// Validates the `[gmail]` table (all `gmail-listener auth` reads).
pub fn gmail(gmail: &GmailConfig) -> Result<(), KeyError> {
    non_empty(&gmail.label, "[gmail] label")?;
    non_empty(&gmail.quarantine_label, "[gmail] quarantine_label")?;
    if gmail.label == gmail.quarantine_label {
        return fail("[gmail] quarantine_label", "must differ from label");
    }
    if gmail.poll_interval < Duration::from_secs(1) {
        return fail("[gmail] poll_interval", "must be at least 1s");
    }
    positive(gmail.timeout, "[gmail] timeout")?;
    if gmail.max_mail_size == 0 {
        return fail("[gmail] max_mail_size", "must be greater than 0");
    }
    if let Some(url) = &gmail.api_base_url {
        http_url(url, "[gmail] api_base_url")?;
        if !url.as_str().ends_with('/') {
            return fail(
                "[gmail] api_base_url",
                format!("must end with '/' (the API paths are appended to it): {url}"),
            );
        }
    }
    Ok(())
}

/// Reads the secret `key` into `config` (inline or from its file); the
/// warning for a file that group or others may read is returned.
pub fn secret(config: &mut Config, key: SecretKey) -> Result<Option<ConfigWarning>, KeyError> {
    let mut warnings = Vec::new();
    let credentials = config.credentials.clone();
    let found = (&mut warnings, credentials.as_deref());
    match key {
        SecretKey::JenkinsApiToken => {
            let jenkins = &mut config.jenkins;
            jenkins.resolved_api_token = resolve_secret(
                "jenkins",
                ("api_token", &jenkins.api_token),
                ("api_token_file", &jenkins.api_token_file),
                found,
            )?;
        }
        SecretKey::BuildListenerSecret => {
            let listener = &mut config.build_listener;
            listener.resolved_secret = resolve_secret(
                "build_listener",
                ("secret", &listener.secret),
                ("secret_file", &listener.secret_file),
                found,
            )?;
        }
    }
    Ok(warnings.pop())
}

fn jobs(config: &Config) -> Result<(), KeyError> {
    let jobs = &config.jobs;
    for (project, job) in &jobs.projects {
        non_empty(project, "[jobs.projects] (a project name)")?;
        non_empty(job, format!("[jobs.projects] {project:?}"))?;
    }
    if let Some(job) = &jobs.default {
        non_empty(job, "[jobs] default")?;
    }
    if let Some(clean) = &jobs.clean {
        non_empty(clean, "[jobs] clean")?;
        if jobs.is_presubmit_job(clean) {
            return fail("[jobs] clean", format!("{clean:?} is also a presubmit job"));
        }
    }
    for (job, role) in &jobs.roles {
        non_empty(job, "[jobs.roles] (a job name)")?;
        let key = format!("[jobs.roles] {job:?}");
        if *role == JobRole::Clean && jobs.is_presubmit_job(job) {
            return fail(key, "a presubmit job cannot have the role \"clean\"");
        }
        if *role == JobRole::Verify && jobs.clean.as_deref() == Some(job.as_str()) {
            return fail(key, "the clean job cannot have the role \"verify\"");
        }
    }
    Ok(())
}

fn review(config: &mut Config) -> Result<(), KeyError> {
    let review = &mut config.review;
    non_empty(&review.label, "[review] label")?;
    for (result, vote) in &review.votes {
        let key = format!("[review.votes] {result}");
        if !BUILD_RESULTS.contains(&result.as_str()) {
            let expected = BUILD_RESULTS.join(", ");
            return fail(
                key,
                format!("not a Jenkins build result; expected one of {expected}"),
            );
        }
        if !(-2..=2).contains(vote) {
            return fail(key, format!("vote {vote} is outside -2..=2"));
        }
    }
    let notify = review.notify.trim().to_ascii_uppercase();
    if !NOTIFY_VALUES.contains(&notify.as_str()) {
        let expected = NOTIFY_VALUES.join(", ");
        return fail(
            "[review] notify",
            format!("{:?}: expected one of {expected}", review.notify),
        );
    }
    review.notify = notify;
    Ok(())
}

fn commands(config: &Config) -> Result<(), KeyError> {
    for (name, lunch_target) in &config.commands.targets {
        let key = format!("[commands.targets] {name}");
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if name.is_empty() || !name.chars().all(valid) {
            return fail(key, "a command name is made of a-z, 0-9, '_' and '-'");
        }
        if crate::command::BUILT_IN.contains(&name.as_str()) {
            return fail(key, "is a built-in command");
        }
        non_empty(lunch_target, key)?;
    }
    Ok(())
}

fn policy(config: &mut Config) -> Result<(), KeyError> {
    let policy = &mut config.policy;
    domains(
        &mut policy.trusted_committer_domains,
        "[policy] trusted_committer_domains",
    )?;
    domains(
        &mut policy.trusted_commenter_domains,
        "[policy] trusted_commenter_domains",
    )?;
    for email in &mut policy.trusted_commenters {
        let normalized = email.trim().to_ascii_lowercase();
        match normalized.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => {
                return fail(
                    "[policy] trusted_commenters",
                    format!("{email:?} is not an e-mail address"),
                );
            }
        }
        *email = normalized;
    }
    for name in &policy.skip_file_names {
        if name.trim().is_empty() || name.contains('/') {
            return fail(
                "[policy] skip_file_names",
                format!("{name:?} must be a file name without '/'"),
            );
        }
    }
    for prefix in &mut policy.skip_path_prefixes {
        let trimmed = prefix.trim().trim_matches('/');
        if trimmed.is_empty() {
            return fail("[policy] skip_path_prefixes", "an entry is empty");
        }
        *prefix = trimmed.to_string();
    }
    for name in &mut policy.skip_kinds {
        let key = "[policy] skip_kinds";
        match ChangeKind::from_name(&name.trim().to_ascii_uppercase()) {
            Some(ChangeKind::Rework) => {
                return fail(
                    key,
                    "REWORK cannot be skipped: only a build judges new code",
                );
            }
            Some(kind) => *name = kind.as_str().to_string(),
            None => {
                let known = ChangeKind::ALL
                    .into_iter()
                    .filter(|k| *k != ChangeKind::Rework);
                let expected = known.map(ChangeKind::as_str).collect::<Vec<_>>().join(", ");
                return fail(
                    key,
                    format!("{name:?} is not a Gerrit change kind; expected one of {expected}"),
                );
            }
        }
    }
    Ok(())
}

/// Lowercases each domain and drops a leading `@`; rejects empty entries
/// and entries that still contain `@` or whitespace.
fn domains(list: &mut [String], key: &str) -> Result<(), KeyError> {
    for domain in list {
        let normalized = domain.trim().trim_start_matches('@').to_ascii_lowercase();
        if normalized.is_empty()
            || normalized.contains('@')
            || normalized.contains(char::is_whitespace)
        {
            return fail(
                key,
                format!("{domain:?} is not a domain like \"example.org\""),
            );
        }
        *domain = normalized;
    }
    Ok(())
}

fn non_empty(value: &str, key: impl Into<String>) -> Result<(), KeyError> {
    if value.trim().is_empty() {
        return fail(key, "must not be empty");
    }
    Ok(())
}

/// The reconcile keys: an interval of zero turns reconciling off, else it
/// is at least a second; full passes come no more often than passes.
fn reconcile(gerrit: &super::GerritConfig) -> Result<(), KeyError> {
    let interval = gerrit.reconcile_interval;
    if !interval.is_zero() && interval < Duration::from_secs(1) {
        return fail(
            "[gerrit] reconcile_interval",
            "must be \"0\" (off) or at least 1s",
        );
    }
    let full = gerrit.reconcile_full_interval;
    if !interval.is_zero() && !full.is_zero() && full < interval {
        return fail(
            "[gerrit] reconcile_full_interval",
            "must be \"0\" (only at start) or at least reconcile_interval",
        );
    }
    if gerrit.reconcile_limit == 0 {
        return fail("[gerrit] reconcile_limit", "must be at least 1");
    }
    Ok(())
}

fn positive(value: Duration, key: &str) -> Result<(), KeyError> {
    if value.is_zero() {
        return fail(key, "must be greater than 0");
    }
    Ok(())
}

fn http_url(url: &url::Url, key: &str) -> Result<(), KeyError> {
    if !url.username().is_empty() || url.password().is_some() {
        return fail(
            key,
            "must not hold credentials (user:password@): they belong in the netrc file or the secret keys",
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        return fail(
            key,
            format!("{url}: only http and https URLs are supported"),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return fail(key, format!("{url}: has no host"));
    }
    Ok(())
}

/// A server's base URL: http(s), and ending with `/` so that API paths
/// join below it rather than replacing its last segment.
fn base_url(url: &mut url::Url, key: &str) -> Result<(), KeyError> {
    http_url(url, key)?;
    if url.query().is_some() || url.fragment().is_some() {
        return fail(key, format!("{url}: a base URL has no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(())
}

/// The secret given inline (`inline.0 = "..."`) or in a file
/// (`file.0 = "/path"`): exactly one of the two. A file that group or
/// others may read adds a warning, unless it is a credential in the
/// `credentials` directory (systemd made that copy and chose its mode).
fn resolve_secret(
    section: &str,
    inline: (&str, &Option<Secret>),
    file: (&str, &Option<PathBuf>),
    (warnings, credentials): (&mut Vec<ConfigWarning>, Option<&Path>),
) -> Result<Secret, KeyError> {
    let (inline_key, inline) = inline;
    let (file_key, file) = file;
    match (inline, file) {
        (Some(_), Some(_)) => fail(
            format!("[{section}] {inline_key}, {file_key}"),
            "give one of the two, not both",
        ),
        (None, None) => fail(
            format!("[{section}] {inline_key}, {file_key}"),
            format!("missing: set {file_key} (a file holding the secret) or {inline_key}"),
        ),
        (Some(secret), None) => {
            if secret.expose().is_empty() {
                return fail(format!("[{section}] {inline_key}"), "must not be empty");
            }
            Ok(secret.clone())
        }
        (None, Some(path)) => {
            let key = format!("[{section}] {file_key}");
            let secret = read_secret_file(path).or_else(|message| fail(&key, message))?;
            if !credential::is_loaded(path, credentials) {
                warnings.extend(open_file_warning(&key, path));
            }
            Ok(secret)
        }
    }
}

/// The largest secret file read: a secret is a line, and a path to an
/// endless file (`/dev/zero`) must not fill the memory.
const SECRET_FILE_LIMIT: u64 = 64 * 1024;

/// Reads a secret file: its contents minus trailing `\n` / `\r\n`.
fn read_secret_file(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(SECRET_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > SECRET_FILE_LIMIT {
        return Err(format!(
            "{} is larger than {SECRET_FILE_LIMIT} bytes",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("cannot read {}: not UTF-8 text", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(secret))
}

/// The warning for a secret file that group or others may access.
#[cfg(unix)]
fn open_file_warning(key: &str, path: &Path) -> Option<ConfigWarning> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    crate::netrc::too_open(mode).then(|| ConfigWarning {
        key: key.to_string(),
        file: path.to_path_buf(),
        message: format!(
            "secret file is accessible by group or others (mode {:o}): chmod 600 it",
            mode & 0o777
        ),
    })
}

#[cfg(not(unix))]
fn open_file_warning(_key: &str, _path: &Path) -> Option<ConfigWarning> {
    None
}
