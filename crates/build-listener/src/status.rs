//! `GET /status`: what both daemons are doing, read from the shared ledger.
//!
//! It answers the operator's question, "is the bot healthy, what is
//! waiting?" (a header with a card per daemon and the outbox, in colour),
//! and the developer's, "what happened to my change?" (a row per change
//! with its builds as badges and the verdict posted, then the recent events
//! in words). `?change=N` and `?project=NAME` narrow it ([`Filter`]).
//!
//! One self-contained HTML page (inline CSS, no script, no external asset)
//! that refreshes itself every 10 seconds (its filter kept: the refresh
//! reloads the same URL), readable from a phone's 390 px to a desktop; and
//! the same data as JSON. The steps, one file each: [`snapshot`] reads the
//! ledger (the only I/O); [`health`] (with the [`reconcile`] card),
//! [`changes`], [`waiting`] and [`words`] turn it into what is shown
//! (pure); [`page`] renders the template `templates/status.html` (askama,
//! which escapes every value).
//!
//! Every value shown comes from the network at some point (change
//! subjects, comments, error texts): each is a [`text::Text`], masked of
//! secret-looking parts when made and escaped when shown, and only `http(s)`
//! URLs ever become links ([`text::Href`]).

pub mod changes;
pub mod filter;
pub mod health;
pub mod page;
pub mod reconcile;
pub mod snapshot;
pub mod text;
pub mod waiting;
pub mod words;

use askama::Template;
use bionicbb_core::config::Config;
use bionicbb_core::ledger::{EventRecord, Ledger, LedgerError};
use serde_json::{Value, json};

pub use filter::Filter;
use snapshot::Snapshot;
pub use words::EVENT_LIMIT;

use crate::redact;

/// Why the status could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status page: {0}")]
    Ledger(#[from] LedgerError),
    #[error("status page: rendering the template: {0}")]
    Template(#[from] askama::Error),
}

/// The status page as HTML, narrowed by `filter`.
pub fn render(
    ledger: &Ledger,
    config: &Config,
    filter: &Filter,
    now: i64,
) -> Result<String, StatusError> {
    let snapshot = Snapshot::read(ledger, filter, now)?;
    let page = page::StatusPage::new(&snapshot, config, filter);
    Ok(mask_config_secrets(page.render()?, config))
}

/// The status as JSON (for `Accept: application/json`): the ledger's data
/// as recorded (times as unix seconds), and the page's view of the changes,
/// narrowed by `filter` like the page.
pub fn render_json(
    ledger: &Ledger,
    config: &Config,
    filter: &Filter,
    now: i64,
) -> Result<Value, StatusError> {
    let s = Snapshot::read(ledger, filter, now)?;
    let changes = changes::changes(&page::change_inputs(&s, config, filter));
    let events: Vec<&EventRecord> = page::shown_events(&s, filter, &changes).collect();
    let builds: Vec<Value> = events
        .iter()
        .flat_map(|e| {
            words::decisions_of(&e.decisions)
                .into_iter()
                .filter(|d| is_build(d))
                .map(|d| {
                    json!({
                        "at": e.at,
                        "change_number": e.change_number,
                        "patch_set": e.patch_set,
                        "decision": d,
                    })
                })
        })
        .collect();
    let mut value = json!({
        "now": now,
        "filter": filter,
        "components": s.components,
        "changes": changes,
        "builds": builds,
        "pending_count": s.pending_count,
        "oldest_pending_age": s.oldest_pending_age,
        "pending": s.pending,
        "failed": s.failed,
        "events": events,
    });
    redact::scrub_json(&mut value);
    Ok(mask_json_secrets(value, config))
}

/// Whether a decision triggers a Jenkins build (`build` or `clean`).
fn is_build(decision: &Value) -> bool {
    matches!(
        decision.get("decision").and_then(Value::as_str),
        Some("build" | "clean")
    )
}

/// The configuration's secrets worth masking: the listener's shared secret
/// and the Jenkins API token. Secrets shorter than 4 characters are left
/// alone (masking them would mangle the page; such a secret is no
/// protection anyway).
fn config_secrets(config: &Config) -> impl Iterator<Item = &str> {
    [
        config.build_listener.secret().expose(),
        config.jenkins.api_token().expose(),
    ]
    .into_iter()
    .filter(|s| s.chars().count() >= 4)
}

/// The page with any literal occurrence of the configuration's secrets
/// masked: a last guard for a secret quoted in a recorded text under no
/// recognisable name.
fn mask_config_secrets(mut page: String, config: &Config) -> String {
    for secret in config_secrets(config) {
        for form in [secret.to_owned(), esc(secret)] {
            if page.contains(&form) {
                page = page.replace(&form, redact::MASK);
            }
        }
    }
    page
}

/// [`mask_config_secrets`] for the JSON variant.
fn mask_json_secrets(value: Value, config: &Config) -> Value {
    let text = value.to_string();
    if !config_secrets(config).any(|s| text.contains(s)) {
        return value;
    }
    fn walk(value: &mut Value, secrets: &[&str]) {
        match value {
            Value::String(s) => {
                for secret in secrets {
                    if s.contains(secret) {
                        *s = s.replace(secret, redact::MASK);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, secrets)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, secrets)),
            _ => {}
        }
    }
    let secrets: Vec<&str> = config_secrets(config).collect();
    let mut value = value;
    walk(&mut value, &secrets);
    value
}

/// Escapes text for HTML content and attribute values exactly as the
/// template does, after masking what looks secret in it (see
/// [`crate::redact`]).
pub fn esc(s: &str) -> String {
    let s = redact::scrub(s);
    match askama::filters::escape(&*s, askama::filters::Html) {
        Ok(escaped) => escaped.to_string(),
        Err(never) => match never {},
    }
}

/// Unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc(t: i64) -> String {
    bionicbb_core::timefmt::format_utc(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&#60;a href=&#34;x&#34;&#62;&#38;&#39;"
        );
    }
}
