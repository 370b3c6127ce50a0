//! The configuration file shared by both daemons.
//!
//! One TOML file (`--config PATH`, `BIONICBB_CONFIG`, default
//! [`DEFAULT_PATH`]). Every table refuses unknown keys, so a typo is an error
//! that names the file and the key. Durations are human-readable (`"5m"`,
//! `"30s"`). Every secret may be given inline or as `*_file` (a path whose
//! contents, minus the trailing newline, are the secret), never both; files
//! are read once, at load time (64 KiB at most). A secret file that group or
//! others can read is a [`ConfigWarning`], which the daemon logs once its
//! logging is set up. A file key written `"credential:NAME"` names a file
//! systemd hands over with `LoadCredential=` (see [`credential`]).
//! `config.example.toml` documents every key.
//!
//! A TOML error reads `FILE: line L, column C: [section] key: what is
//! wrong`, without quoting the line (it may hold a secret). Validation runs
//! after parsing and reports the first problem as
//! `FILE: [section] key: what is wrong`. Some values are normalized on the
//! way: the Gerrit and Jenkins URLs get a trailing `/`, e-mail domains and
//! trusted addresses are lowercased (a leading `@` is dropped), `notify` is
//! uppercased, skip prefixes lose their slashes at either end.

pub mod credential;
mod defaults;
mod load;
mod toml_error;
mod validate;

pub use load::{ConfigError, GmailOnly, SecretKey, config_path};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where the daemons look when neither `--config` nor `BIONICBB_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/bionicbb/config.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the durable state (the ledger database).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub log: LogConfig,
    pub gerrit: GerritConfig,
    pub jenkins: JenkinsConfig,
    #[serde(default)]
    pub gmail: GmailConfig,
    pub build_listener: BuildListenerConfig,
    pub jobs: JobsConfig,
    #[serde(default)]
    pub review: ReviewConfig,
    #[serde(default)]
    pub commands: CommandsConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub gmail_listener: GmailListenerConfig,
    /// What the load accepted but should be fixed, for the daemon to log
    /// once its logging is set up (the logging settings are in this file).
    #[serde(skip)]
    warnings: Vec<ConfigWarning>,
    /// The directory `credential:NAME` keys were resolved in
    /// (`$CREDENTIALS_DIRECTORY`), when set: a secret file in it is
    /// systemd's copy, whose mode is not the operator's to fix.
    #[serde(skip)]
    credentials: Option<PathBuf>,
}

/// Settings only the gmail-listener daemon reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailListenerConfig {
    /// Address of an optional health/status HTTP endpoint; none when unset.
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
    /// Mails of different changes handled at once (1..=64); mails of one
    /// change are always handled one after the other, in arrival order.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
}

impl Default for GmailListenerConfig {
    fn default() -> Self {
        GmailListenerConfig {
            health_listen: None,
            concurrency: defaults::concurrency(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// One JSON object per log line instead of text.
    #[serde(default)]
    pub json: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GerritConfig {
    /// Base URL of the Gerrit server, e.g. `https://review.example.org/`.
    pub url: url::Url,
    /// E-mail of the bot's Gerrit account: its comments are never commands,
    /// its votes are the ones `/drop-rejection` may remove.
    pub bot_email: String,
    /// netrc file holding the bot's HTTP password for the Gerrit host.
    /// Default: `$NETRC`, else `~/.netrc`.
    #[serde(default)]
    pub netrc: Option<PathBuf>,
    /// Limit on one HTTP request.
    #[serde(default = "defaults::http_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How often gmail-listener reconciles with Gerrit: asks for the open
    /// changes updated since its last pass and acts on what no mail
    /// reported. Zero turns reconciling off.
    #[serde(
        default = "defaults::reconcile_interval",
        deserialize_with = "duration"
    )]
    pub reconcile_interval: Duration,
    /// How often a reconcile pass looks at every open change, not only
    /// those updated since the last pass (one such pass always runs at
    /// start). Zero: only at start.
    #[serde(
        default = "defaults::reconcile_full_interval",
        deserialize_with = "duration"
    )]
    pub reconcile_full_interval: Duration,
    /// The most changes one reconcile pass looks at (the most recently
    /// updated first).
    #[serde(default = "defaults::reconcile_limit")]
    pub reconcile_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// Base URL of Jenkins, e.g. `https://jenkins.example.org/`.
    pub url: url::Url,
    /// Jenkins user the bot triggers builds as.
    pub user: String,
    /// The user's API token (not its password: tokens need no CSRF crumb),
    /// inline or in `api_token_file`; read it with [`JenkinsConfig::api_token`].
    #[serde(default)]
    api_token: Option<Secret>,
    #[serde(default)]
    api_token_file: Option<PathBuf>,
    /// The token from either key, resolved at load time.
    #[serde(skip)]
    resolved_api_token: Secret,
    /// Limit on one HTTP request.
    #[serde(default = "defaults::http_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailConfig {
    /// The Gmail label Gerrit's notification mails land in.
    #[serde(default = "defaults::label")]
    pub label: String,
    /// Label that mails the bot cannot parse are moved to.
    #[serde(default = "defaults::quarantine_label")]
    pub quarantine_label: String,
    #[serde(default = "defaults::poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// OAuth client secret (installed application) from the Google console.
    #[serde(default = "defaults::client_secret_file")]
    pub client_secret_file: PathBuf,
    /// Where the OAuth token is cached (written with mode 0600).
    #[serde(default = "defaults::token_cache_file")]
    pub token_cache_file: PathBuf,
    /// Override of `https://gmail.googleapis.com/` (tests, proxies). Must end with `/`.
    #[serde(default)]
    pub api_base_url: Option<url::Url>,
    /// A file holding a bearer token minted elsewhere; replaces OAuth.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Limit on one Gmail API call.
    #[serde(default = "defaults::http_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest mail read, in bytes (Gmail's `sizeEstimate`, asked before
    /// the mail is downloaded). A larger mail is quarantined unread: Gerrit's
    /// notifications weigh a few kilobytes, a huge one is crafted.
    #[serde(default = "defaults::max_mail_size")]
    pub max_mail_size: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildListenerConfig {
    /// Address build-listener listens on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// URL at which gmail-listener reaches build-listener.
    #[serde(default = "defaults::public_url")]
    pub public_url: url::Url,
    /// Shared secret every POST must carry (token query parameter, Basic-auth
    /// password or Bearer token), inline or in `secret_file`; read it with
    /// [`BuildListenerConfig::secret`]. Required: the listener never runs open.
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// The secret from either key, resolved at load time.
    #[serde(skip)]
    resolved_secret: Secret,
    /// Largest request body accepted, in bytes.
    #[serde(default = "defaults::body_limit")]
    pub body_limit: usize,
    /// Link in review messages: `link_base + build.url` when set, else the
    /// build's `full_url`.
    #[serde(default)]
    pub link_base: Option<String>,
    /// Post a message when a build starts.
    #[serde(default)]
    pub post_started: bool,
    /// How often build-listener asks Jenkins about the builds the bot
    /// triggered whose result never reached it (a lost notification).
    #[serde(default = "defaults::catch_up_interval", deserialize_with = "duration")]
    pub catch_up_interval: Duration,
    /// How long after its trigger a build is first asked about: until
    /// then its notification is expected.
    #[serde(default = "defaults::catch_up_after", deserialize_with = "duration")]
    pub catch_up_after: Duration,
    /// How long after its trigger a build is no longer asked about.
    #[serde(default = "defaults::catch_up_max_age", deserialize_with = "duration")]
    pub catch_up_max_age: Duration,
    /// How many reviews the outbox posts at once (each of a different
    /// change: one change's reviews are posted one at a time, in order).
    #[serde(default = "defaults::outbox_concurrency")]
    pub outbox_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Job for projects not in `projects`; none means such projects are skipped.
    #[serde(default)]
    pub default: Option<String>,
    /// The job `bionicbb:clean` runs.
    #[serde(default)]
    pub clean: Option<String>,
    /// Gerrit project → presubmit job.
    #[serde(default)]
    pub projects: BTreeMap<String, String>,
    /// Jenkins job name → what build-listener does with its results.
    #[serde(default)]
    pub roles: BTreeMap<String, JobRole>,
    /// Cancel the bot's own queued items and stop its running builds of a
    /// change's older patch sets when a newer one is built, and all of
    /// them when the change is merged or abandoned.
    #[serde(default = "defaults::cancel_superseded")]
    pub cancel_superseded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobRole {
    /// Post the result and vote.
    Verify,
    /// Post "out/ directory removed (<job> #<number>: <link>)".
    Clean,
    /// Log and post nothing.
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// The label the bot votes on.
    #[serde(default = "defaults::label_name")]
    pub label: String,
    /// Vote per build result; a result not listed posts its message without a vote.
    #[serde(default = "defaults::votes")]
    pub votes: BTreeMap<String, i32>,
    /// Gerrit `notify` for the bot's reviews.
    #[serde(default = "defaults::notify")]
    pub notify: String,
    /// Post one line ("<job> #<n> stopped: superseded by patch set N.")
    /// for a build the bot cancelled as superseded; false posts nothing.
    /// Such a build never votes either way.
    #[serde(default = "defaults::superseded_message")]
    pub superseded_message: bool,
    /// Post one message on a patch set whose automatic build was skipped
    /// for a reason its uploader can act on (an untrusted committer, a
    /// skipped file or directory), saying which rule and how to proceed;
    /// false posts nothing.
    #[serde(default = "defaults::explain_skips")]
    pub explain_skips: bool,
    /// Reply once to a command that starts something (`retry`, a target,
    /// `clean`) when Jenkins accepted its trigger: "bionicbb:retry by Sam
    /// Reviewer: bionic-presubmit queued (<queue item>)". Automatic builds
    /// of new patch sets stay quiet.
    #[serde(default = "defaults::acknowledge_commands")]
    pub acknowledge_commands: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// Per-target commands: `bionicbb:<name>` rebuilds with `LUNCH_TARGET = <value>`.
    #[serde(default = "defaults::targets")]
    pub targets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Committer e-mail domains whose changes are built (exact domain match).
    #[serde(default = "defaults::trusted_domains")]
    pub trusted_committer_domains: Vec<String>,
    /// Commenter e-mail domains whose `bionicbb:` commands are honoured.
    #[serde(default = "defaults::trusted_domains")]
    pub trusted_commenter_domains: Vec<String>,
    /// Individual commenter e-mails honoured whatever their domain.
    #[serde(default)]
    pub trusted_commenters: Vec<String>,
    /// A change touching a file with one of these names (any directory) is skipped.
    #[serde(default = "defaults::skip_file_names")]
    pub skip_file_names: Vec<String>,
    /// A change touching a path under one of these directories is skipped.
    #[serde(default = "defaults::skip_path_prefixes")]
    pub skip_path_prefixes: Vec<String>,
    /// Patch set kinds (Gerrit's `kind`: `NO_CODE_CHANGE`, ...) not built
    /// when the previous patch set has the bot's verdict: the verdict is
    /// carried over instead. Never `REWORK`.
    #[serde(default = "defaults::skip_kinds")]
    pub skip_kinds: Vec<String>,
    /// Build patch sets of work-in-progress changes.
    #[serde(default = "defaults::build_wip")]
    pub build_wip: bool,
    /// Build patch sets of private changes.
    #[serde(default = "defaults::build_private")]
    pub build_private: bool,
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Something the load accepted but the operator should fix, e.g. a secret
/// file others can read. It names the key and the file, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key, as `[section] key`.
    pub key: String,
    /// The file the key names.
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.key, self.file.display(), self.message)
    }
}

impl Config {
    /// What the load accepted but should be fixed; [`crate::runtime::init_logging`]
    /// logs them.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The ledger database: `state_dir/bionicbb.sqlite3`.
    pub fn ledger_path(&self) -> PathBuf {
        self.state_dir.join("bionicbb.sqlite3")
    }
}

impl GerritConfig {
    /// Whether `email` is the bot's own account (case-insensitive).
    pub fn is_bot(&self, email: &str) -> bool {
        email.trim().eq_ignore_ascii_case(&self.bot_email)
    }
}

impl JenkinsConfig {
    /// The API token, from `api_token` or `api_token_file`.
    pub fn api_token(&self) -> &Secret {
        &self.resolved_api_token
    }
}

impl BuildListenerConfig {
    /// The shared secret, from `secret` or `secret_file`.
    pub fn secret(&self) -> &Secret {
        &self.resolved_secret
    }
}

impl JobsConfig {
    /// The presubmit job for a Gerrit project: its entry in `projects`, else
    /// `default`; `None` means the project is not built.
    pub fn job_for_project(&self, project: &str) -> Option<&str> {
        self.projects
            .get(project)
            .or(self.default.as_ref())
            .map(String::as_str)
    }

    /// What build-listener does with a job's results: its entry in `roles`
    /// when listed, else `Verify` for a presubmit job (a value of `projects`
    /// or `default`), `Clean` for the `clean` job, and `None` (an unknown
    /// job) otherwise.
    pub fn role(&self, job: &str) -> Option<JobRole> {
        if let Some(role) = self.roles.get(job) {
            return Some(*role);
        }
        if self.is_presubmit_job(job) {
            Some(JobRole::Verify)
        } else if self.clean.as_deref() == Some(job) {
            Some(JobRole::Clean)
        } else {
            None
        }
    }

    fn is_presubmit_job(&self, job: &str) -> bool {
        self.default.as_deref() == Some(job) || self.projects.values().any(|j| j == job)
    }
}

impl ReviewConfig {
    /// The vote for a Jenkins build result (`SUCCESS`, `FAILURE`, ...);
    /// `None` means post the message without a vote.
    pub fn vote_for(&self, result: &str) -> Option<i32> {
        self.votes.get(result).copied()
    }
}

impl CommandsConfig {
    /// The `LUNCH_TARGET` value of the per-target command `name`.
    pub fn lunch_target(&self, name: &str) -> Option<&str> {
        self.targets.get(name).map(String::as_str)
    }
}

impl PolicyConfig {
    /// Whether changes committed by `email` are built: the domain after the
    /// last `@` equals a trusted domain exactly (case-insensitive), so
    /// `x@google.com.fake.com` is not `google.com`.
    pub fn committer_trusted(&self, email: &str) -> bool {
        domain_in(email, &self.trusted_committer_domains)
    }

    /// Whether `bionicbb:` commands from `email` are honoured: a trusted
    /// commenter domain (exact match) or a listed address (case-insensitive).
    pub fn commenter_trusted(&self, email: &str) -> bool {
        let email = email.trim();
        domain_in(email, &self.trusted_commenter_domains)
            || self
                .trusted_commenters
                .iter()
                .any(|c| c.eq_ignore_ascii_case(email))
    }

    /// Whether a patch set of `kind` keeps the previous patch set's
    /// verdict instead of being built (validation normalized the names).
    pub fn skips_kind(&self, kind: crate::event::ChangeKind) -> bool {
        self.skip_kinds.iter().any(|k| k == kind.as_str())
    }

    /// Why a change touching `path` (relative to the repository root) is
    /// skipped: the configured file name it matches (in any directory) or
    /// the directory prefix it lies under; `None` if it does not matter.
    /// `tools/bionicbb/x` is under `tools/bionicbb`; `tools/bionicbbx/y` is not.
    pub fn skipped_path(&self, path: &str) -> Option<&str> {
        self.skip_rule(path).map(|rule| match rule {
            SkipRule::FileName(name) | SkipRule::Directory(name) => name,
        })
    }

    /// The rule that skips a change touching `path`, if one does; see
    /// [`PolicyConfig::skipped_path`].
    pub fn skip_rule(&self, path: &str) -> Option<SkipRule<'_>> {
        let path = path.trim_start_matches('/');
        let file_name = path.rsplit('/').next().unwrap_or(path);
        if let Some(name) = self.skip_file_names.iter().find(|n| *n == file_name) {
            return Some(SkipRule::FileName(name));
        }
        self.skip_path_prefixes
            .iter()
            .find(|prefix| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|prefix| SkipRule::Directory(prefix))
    }
}

/// Which rule of the policy skips a change touching a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipRule<'a> {
    /// A file name of `policy.skip_file_names`, in any directory (`CleanSpec.mk`).
    FileName(&'a str),
    /// A directory of `policy.skip_path_prefixes`, with all it holds (`tools/bionicbb`).
    Directory(&'a str),
}

/// Whether the domain of `email` (after its last `@`) is in `domains`,
/// which validation has lowercased.
fn domain_in(email: &str, domains: &[String]) -> bool {
    match email.trim().rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let domain = domain.to_ascii_lowercase();
            domains.contains(&domain)
        }
        _ => false,
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\" or \"5m\": {e}"
        ))
    })
}

impl Default for GmailConfig {
    fn default() -> Self {
        toml::from_str("").expect("every gmail key has a default")
    }
}

impl Default for ReviewConfig {
    fn default() -> Self {
        toml::from_str("").expect("every review key has a default")
    }
}

impl Default for CommandsConfig {
    fn default() -> Self {
        toml::from_str("").expect("every commands key has a default")
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        toml::from_str("").expect("every policy key has a default")
    }
}
