//! The online checks: one cheap authenticated question per server, asked
//! once (no retries: a check reports, it does not wait out an outage).
//!
//! - Gerrit `GET /a/accounts/self`: the netrc credentials are accepted and
//!   belong to the configured bot account (`[gerrit] bot_email`).
//! - Jenkins `GET /api/json`: the user and API token are accepted.
//! - For gmail-listener, each job it triggers:
//!   `job/X/api/json?tree=buildable,property[parameterDefinitions[name]]`:
//!   it exists, is enabled, and declares what the bot sends ([`params`]).

use std::collections::BTreeMap;

use super::params::{self, JobUse};
use super::{Checkup, Daemon, Item};
use crate::config::Config;
use crate::error::{ApiError, ErrorKind};
use crate::gerrit::GerritClient;
use crate::jenkins::{JenkinsClient, JobPath};
use crate::netrc::Credentials;
use crate::retry::RetryPolicy;

pub async fn check(checkup: &mut Checkup, daemon: Daemon) {
    let Some(config) = checkup.config.as_ref() else {
        checkup
            .report
            .push(Item::skipped("servers", "the configuration does not load"));
        return;
    };
    let mut items = Vec::new();
    match checkup.credentials.clone() {
        Some(credentials) => items.push(gerrit(config, credentials).await),
        None => items.push(Item::skipped(
            "Gerrit",
            "no usable netrc entry for the Gerrit host",
        )),
    }
    if checkup.jenkins_token {
        items.extend(jenkins(config, daemon).await);
    } else {
        items.push(Item::skipped(
            "Jenkins",
            "the API token ([jenkins] api_token_file) could not be read",
        ));
    }
    checkup.report.items.extend(items);
}

/// `GET /a/accounts/self` with the netrc credentials.
async fn gerrit(config: &Config, credentials: Credentials) -> Item {
    const SUBJECT: &str = "Gerrit";
    let login = credentials.login.clone();
    let netrc = crate::netrc::netrc_path(config.gerrit.netrc.as_deref())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the netrc file".into());
    let url = &config.gerrit.url;
    let client = match GerritClient::new(
        url.clone(),
        Some(credentials),
        config.gerrit.timeout,
        RetryPolicy::once(config.gerrit.timeout),
    ) {
        Ok(client) => client,
        Err(e) => return Item::fail(SUBJECT, e.message, "fix [gerrit] url"),
    };
    let account = match client.account("self").await {
        Ok(account) => account,
        Err(e) if e.kind == ErrorKind::Unauthorized => {
            return Item::fail(
                SUBJECT,
                format!("{url} refused login {login} from {netrc} (HTTP 401)"),
                format!(
                    "put the bot account's HTTP password (Gerrit: Settings > HTTP Credentials) \
                     for login {login} in {netrc}"
                ),
            );
        }
        Err(e) => return no_answer(SUBJECT, url, "[gerrit] url", &e),
    };
    let who = format!(
        "{url}a/accounts/self is {} <{}> (account {}, login {login})",
        account.name.as_deref().unwrap_or("(no name)"),
        account.email.as_deref().unwrap_or("no e-mail"),
        account.account_id
    );
    match account.email.as_deref() {
        Some(email) if config.gerrit.is_bot(email) => Item::ok(SUBJECT, who),
        Some(email) => Item::fail(
            SUBJECT,
            format!(
                "{who}, not the configured bot account {}",
                config.gerrit.bot_email
            ),
            format!(
                "set [gerrit] bot_email = \"{email}\" if this is the bot, else put the bot's \
                 own login and HTTP password in {netrc}"
            ),
        ),
        None => Item::fail(
            SUBJECT,
            format!("{who}: Gerrit shows no e-mail, so the bot cannot tell its own votes"),
            format!(
                "give the account the preferred e-mail {}",
                config.gerrit.bot_email
            ),
        ),
    }
}

/// `GET /api/json`, then each job gmail-listener triggers.
async fn jenkins(config: &Config, daemon: Daemon) -> Vec<Item> {
    const SUBJECT: &str = "Jenkins";
    let user = &config.jenkins.user;
    let url = &config.jenkins.url;
    let client = match JenkinsClient::new(
        url.clone(),
        user,
        config.jenkins.api_token().clone(),
        config.jenkins.timeout,
        RetryPolicy::once(config.jenkins.timeout),
    ) {
        Ok(client) => client,
        Err(e) => return vec![Item::fail(SUBJECT, e.message, "fix [jenkins] url")],
    };
    let token = match config.secret_file(crate::config::SecretKey::JenkinsApiToken) {
        Some(file) => format!("the API token in {}", file.display()),
        None => "the API token of [jenkins] api_token".into(),
    };
    let first = match client.ping().await {
        Ok(()) => Item::ok(SUBJECT, format!("{url} accepts user {user}")),
        Err(e) if e.kind == ErrorKind::Unauthorized => Item::fail(
            SUBJECT,
            format!("{url} refused user {user} with {token} (HTTP 401)"),
            format!(
                "create an API token for {user} (Jenkins: {user} > Security > API Token) and \
                 put it in [jenkins] api_token_file, or fix [jenkins] user"
            ),
        ),
        Err(e) if e.kind == ErrorKind::Forbidden => Item::fail(
            SUBJECT,
            format!("{url}: user {user} lacks the Overall/Read permission (HTTP 403)"),
            format!("grant {user} Overall/Read, Job/Read, Job/Build and Job/Cancel"),
        ),
        Err(e) => no_answer(SUBJECT, url, "[jenkins] url", &e),
    };
    let passed = first.status == super::Status::Ok;
    let mut items = vec![first];
    if daemon != Daemon::GmailListener {
        return items;
    }
    for (job, (job_use, keys)) in jobs(config) {
        if !passed {
            items.push(Item::skipped(
                format!("job {job}"),
                "Jenkins did not accept the bot's user",
            ));
            continue;
        }
        items.push(job_item(&client, config, &job, job_use, &keys).await);
    }
    items
}

/// Every job gmail-listener triggers, with its use and the keys naming it.
fn jobs(config: &Config) -> BTreeMap<String, (JobUse, Vec<String>)> {
    let mut jobs: BTreeMap<String, (JobUse, Vec<String>)> = BTreeMap::new();
    let mut add = |job: &str, job_use: JobUse, key: String| {
        jobs.entry(job.to_string())
            .or_insert_with(|| (job_use, Vec::new()))
            .1
            .push(key);
    };
    if let Some(job) = &config.jobs.default {
        add(job, JobUse::Presubmit, "[jobs] default".into());
    }
    for (project, job) in &config.jobs.projects {
        add(
            job,
            JobUse::Presubmit,
            format!("[jobs.projects] {project:?}"),
        );
    }
    if let Some(job) = &config.jobs.clean {
        add(job, JobUse::Clean, "[jobs] clean".into());
    }
    jobs
}

async fn job_item(
    client: &JenkinsClient,
    config: &Config,
    job: &str,
    job_use: JobUse,
    keys: &[String],
) -> Item {
    let subject = format!("job {job}");
    let keys = keys.join(", ");
    let user = &config.jenkins.user;
    let path = match JobPath::parse(job) {
        Ok(path) => path,
        Err(e) => return Item::fail(subject, e.message, format!("fix {keys}")),
    };
    let declaration = match client.job_declaration(&path).await {
        Ok(Some(declaration)) => declaration,
        Ok(None) => {
            return Item::fail(
                subject,
                format!("Jenkins has no job {job} that user {user} can see (HTTP 404)"),
                format!("create the job, grant {user} Job/Read and Job/Build on it, or fix {keys}"),
            );
        }
        Err(e) => return no_answer(&subject, &config.jenkins.url, "[jenkins] url", &e),
    };
    let lunch_targets = !config.commands.targets.is_empty();
    let Some(declared) = declaration.parameters else {
        let all = params::sent(job_use, lunch_targets).join(", ");
        return Item::fail(
            subject,
            "is not parameterized: the bot's trigger (buildWithParameters) fails",
            format!("tick \"This project is parameterized\" and add String parameters {all}"),
        );
    };
    if !declaration.buildable {
        return Item::fail(
            subject,
            "is disabled: Jenkins refuses its builds",
            "enable the job",
        );
    }
    params::judge(job, job_use, &declared, lunch_targets)
}

/// A failure to get an answer at all (or an unexpected one).
fn no_answer(subject: &str, url: &url::Url, key: &str, e: &ApiError) -> Item {
    let status = e.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    Item::fail(
        subject,
        format!("{}{status}", e.message),
        format!("check {key} ({url}) and that this machine reaches it"),
    )
}
