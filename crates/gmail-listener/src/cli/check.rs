//! `gmail-listener check [--online]`: the checks both daemons share
//! ([`bionicbb_core::check`]: configuration, secrets, netrc; Gerrit,
//! Jenkins and the jobs with `--online`), plus the Gmail credentials: the
//! bearer token file, or the OAuth client secret and the token cache
//! `gmail-listener auth` wrote; and with `--online`, whether Gmail accepts
//! them and has the labels.

use std::path::Path;
use std::process::ExitCode;

use bionicbb_core::check::{Checkup, Daemon, Item, Report, private_file};
use bionicbb_core::config::GmailConfig;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::retry::RetryPolicy;
use google_gmail1::yup_oauth2;

use crate::gmail::{AUTH_HINT, Mailbox, check_token_cache};

/// Runs the checks, prints the checklist on standard output; 0 when every
/// check passed, 1 otherwise.
pub fn run(path: &Path, online: bool) -> ExitCode {
    let mut checkup = Checkup::offline(path);
    let gmail_ready = match &checkup.config {
        Some(config) => offline(&config.gmail, &mut checkup.report),
        None => false,
    };
    if online {
        checkup.block_on(async |checkup| {
            checkup.online(Daemon::GmailListener).await;
            if let Some(config) = &checkup.config {
                let items = labels(&config.gmail, gmail_ready).await;
                checkup.report.items.extend(items);
            }
        });
    }
    checkup.finish(online, "Gerrit, Jenkins and Gmail")
}

/// The Gmail credentials on disk; whether they are usable.
fn offline(gmail: &GmailConfig, report: &mut Report) -> bool {
    if let Some(file) = &gmail.bearer_token_file {
        const KEY: &str = "[gmail] bearer_token_file";
        let fix = format!("write the bearer token into {}", file.display());
        let unusable = match std::fs::read_to_string(file) {
            Err(e) => Some(format!("cannot read {}: {e}", file.display())),
            Ok(text) if text.trim().is_empty() => Some(format!("{} is empty", file.display())),
            Ok(_) => None,
        };
        return match unusable {
            Some(why) => {
                report.push(Item::fail(KEY, why, fix));
                false
            }
            None => {
                report.push(private_file(
                    KEY,
                    file,
                    format!("read from {}", file.display()),
                ));
                true
            }
        };
    }
    let secret = &gmail.client_secret_file;
    let secret_ok = match std::fs::read(secret)
        .map_err(|e| e.to_string())
        .and_then(|b| yup_oauth2::parse_application_secret(b).map_err(|e| e.to_string()))
    {
        Ok(_) => {
            report.push(Item::ok(
                "[gmail] client_secret_file",
                format!("{} is an OAuth client", secret.display()),
            ));
            true
        }
        Err(e) => {
            report.push(Item::fail(
                "[gmail] client_secret_file",
                format!("{}: {e}", secret.display()),
                format!(
                    "download the OAuth client of type \"Desktop app\" from the Google Cloud \
                     console (APIs & Services > Credentials) to {}",
                    secret.display()
                ),
            ));
            false
        }
    };
    let cache = &gmail.token_cache_file;
    let cache_ok = match check_token_cache(cache) {
        Ok(()) => {
            report.push(private_file(
                "[gmail] token_cache_file",
                cache,
                format!("{} holds a token for gmail.modify", cache.display()),
            ));
            true
        }
        Err(e) => {
            // The fix below says what the error's own hint says.
            let hint = format!("; {AUTH_HINT}");
            report.push(Item::fail(
                "[gmail] token_cache_file",
                e.to_string().replace(&hint, ""),
                "run `gmail-listener auth` as the daemon's user",
            ));
            false
        }
    };
    secret_ok && cache_ok
}

/// Whether Gmail accepts the credentials, and has the label and the
/// quarantine label. A missing quarantine label is only a warning:
/// gmail-listener creates it when it starts.
async fn labels(gmail: &GmailConfig, ready: bool) -> Vec<Item> {
    const SUBJECT: &str = "Gmail";
    if !ready {
        return vec![Item::skipped(
            SUBJECT,
            "the Gmail credentials did not pass the checks above",
        )];
    }
    let mailbox = match Mailbox::from_config(gmail).await {
        Ok(mailbox) => mailbox.with_policy(RetryPolicy::once(gmail.timeout)),
        Err(e) => return vec![Item::fail(SUBJECT, e.to_string(), AUTH_HINT)],
    };
    // One listing gives both labels; a failure to reach Gmail at all is
    // one line.
    let labels = match mailbox.labels().await {
        Ok(labels) => labels,
        Err(e) if matches!(e.kind, ErrorKind::Unauthorized | ErrorKind::Forbidden) => {
            return vec![Item::fail(SUBJECT, e.to_string(), AUTH_HINT)];
        }
        Err(e) => {
            return vec![Item::fail(
                SUBJECT,
                e.to_string(),
                "check [gmail] api_base_url and that this machine reaches Gmail",
            )];
        }
    };
    let label = &gmail.label;
    let first = match labels.id(label) {
        Some(id) => Item::ok(
            "[gmail] label",
            format!("Gmail accepts the credentials and has the label `{label}` ({id})"),
        ),
        None => Item::fail(
            "[gmail] label",
            format!("the mailbox has no label `{label}`"),
            format!(
                "create the label `{label}` in Gmail with a filter that applies it to \
                 Gerrit's mail, or fix [gmail] label"
            ),
        ),
    };
    let quarantine = &gmail.quarantine_label;
    let second = match labels.id(quarantine) {
        Some(id) => Item::ok(
            "[gmail] quarantine_label",
            format!("the mailbox has the label `{quarantine}` ({id})"),
        ),
        None => Item::warn(
            "[gmail] quarantine_label",
            format!("the mailbox has no label `{quarantine}` yet"),
            "nothing to do: gmail-listener creates it when it starts (not with --dry-run)",
        ),
    };
    vec![first, second]
}
