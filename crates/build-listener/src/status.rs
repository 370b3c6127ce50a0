//! `GET /status`: what both daemons are doing, read from the shared ledger.
//!
//! One self-contained HTML page (inline CSS, no script, no external asset)
//! that refreshes itself every 10 seconds, and the same data as JSON. Every
//! value shown comes from the network at some point (change subjects,
//! comments, error texts), so every value is HTML-escaped, and only
//! `http(s)` URLs ever become links.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bionicbb_core::config::Config;
use bionicbb_core::ledger::{EventRecord, Ledger, LedgerError, OutboxItem};
use serde_json::{Value, json};

use crate::redact;

/// How many recent events the page lists.
pub const EVENT_LIMIT: usize = 50;
/// How many recently failed outbox items it lists.
const FAILED_LIMIT: usize = 20;
/// The components always shown, even before they recorded anything.
const COMPONENTS: &[&str] = &["gmail-listener", "build-listener"];

/// Why the status could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("status page: {0}")]
pub struct StatusError(#[from] LedgerError);

/// A build decision found in the recent events.
#[derive(Debug, Clone, serde::Serialize)]
struct BuildRow {
    at: i64,
    change_number: Option<u64>,
    patch_set: Option<u32>,
    /// The decision object as recorded (job, params, queue/build URLs...).
    decision: Value,
}

/// Everything the page shows, read from the ledger at once.
#[derive(Debug, serde::Serialize)]
struct StatusData {
    now: i64,
    components: BTreeMap<String, BTreeMap<String, Value>>,
    builds: Vec<BuildRow>,
    pending_count: u64,
    oldest_pending_age: Option<i64>,
    pending: Vec<OutboxItem>,
    failed: Vec<OutboxItem>,
    events: Vec<EventRecord>,
}

impl StatusData {
    fn read(ledger: &Ledger, now: i64) -> Result<StatusData, StatusError> {
        let mut components = ledger.all_status()?;
        for name in COMPONENTS {
            components.entry((*name).to_owned()).or_default();
        }
        let events = ledger.recent_events(EVENT_LIMIT)?;
        let builds = events
            .iter()
            .flat_map(|event| {
                decisions_of(&event.decisions)
                    .filter(|d| is_build(d))
                    .map(|d| BuildRow {
                        at: event.at,
                        change_number: event.change_number,
                        patch_set: event.patch_set,
                        decision: d.clone(),
                    })
            })
            .collect();
        Ok(StatusData {
            now,
            components,
            builds,
            pending_count: ledger.pending_count()?,
            oldest_pending_age: ledger.oldest_pending_age(now)?,
            pending: ledger.pending()?,
            failed: ledger.failed_recent(FAILED_LIMIT)?,
            events,
        })
    }
}

/// The status as JSON (for `Accept: application/json`): the same data as
/// the page, with times as unix seconds.
pub fn render_json(ledger: &Ledger, now: i64) -> Result<Value, StatusError> {
    let data = StatusData::read(ledger, now)?;
    // Serialising plain data into a Value cannot fail (string keys only).
    let mut value =
        serde_json::to_value(&data).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    redact::scrub_json(&mut value);
    Ok(value)
}

/// The status page as HTML.
pub fn render(ledger: &Ledger, config: &Config, now: i64) -> Result<String, StatusError> {
    let data = StatusData::read(ledger, now)?;
    let page = Page { config, now };
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(HEAD);
    let _ = writeln!(
        out,
        "<p class=meta>Generated {} · Gerrit {} · Jenkins {} · Gmail label <code>{}</code>, \
         polled every {} s</p>",
        utc(now),
        link(config.gerrit.url.as_str(), config.gerrit.url.as_str()),
        link(config.jenkins.url.as_str(), config.jenkins.url.as_str()),
        esc(&config.gmail.label),
        config.gmail.poll_interval.as_secs(),
    );
    page.components(&mut out, &data.components);
    page.builds(&mut out, &data.builds);
    page.outbox(&mut out, &data);
    page.events(&mut out, &data.events);
    out.push_str("</body>\n</html>\n");
    Ok(mask_config_secrets(out, config))
}

/// The page with any literal occurrence of the configuration's secrets
/// (the listener's shared secret, the Jenkins API token) masked: a last
/// guard for a secret quoted in a recorded text under no recognisable
/// name. Secrets shorter than 4 characters are left alone (masking them
/// would mangle the page; such a secret is no protection anyway).
fn mask_config_secrets(mut page: String, config: &Config) -> String {
    let secrets = [
        config.build_listener.secret().expose(),
        config.jenkins.api_token().expose(),
    ];
    for secret in secrets {
        if secret.chars().count() >= 4 {
            for form in [secret.to_owned(), esc(secret)] {
                if page.contains(&form) {
                    page = page.replace(&form, redact::MASK);
                }
            }
        }
    }
    page
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bionicbb status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { text-align: left; vertical-align: top; padding: 0.25em 0.6em; border-bottom: 1px solid #eee; }
th { background: #f4f4f4; }
td.err, span.err { color: #a00; }
code { font-size: 0.95em; }
.meta, .empty { color: #666; }
.ago { color: #666; font-size: 0.85em; }
ul.kv { list-style: none; margin: 0; padding: 0; }
</style>
</head>
<body>
<h1>bionicbb status</h1>
"#;

/// Rendering context: links need the config, times need `now`.
struct Page<'a> {
    config: &'a Config,
    now: i64,
}

impl Page<'_> {
    fn components(&self, out: &mut String, components: &BTreeMap<String, BTreeMap<String, Value>>) {
        for (name, values) in components {
            let _ = writeln!(out, "<h2>{}</h2>", esc(name));
            if values.is_empty() {
                out.push_str("<p class=empty>Nothing recorded yet.</p>\n");
                continue;
            }
            out.push_str("<table>\n");
            for (key, value) in values {
                let class = if key.contains("error") {
                    " class=err"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "<tr><th>{}</th><td{class}>{}</td></tr>",
                    esc(key),
                    if redact::is_secret_key(key) {
                        redact::MASK.to_owned()
                    } else {
                        self.value(key, value)
                    }
                );
            }
            out.push_str("</table>\n");
        }
    }

    fn builds(&self, out: &mut String, builds: &[BuildRow]) {
        out.push_str("<h2>Builds triggered recently</h2>\n");
        if builds.is_empty() {
            out.push_str("<p class=empty>No build decision in the recent events.</p>\n");
            return;
        }
        out.push_str(
            "<table>\n<tr><th>When</th><th>Change</th><th>Job</th><th>Parameters</th>\
             <th>Details</th></tr>\n",
        );
        for b in builds {
            let d = &b.decision;
            let job = d.get("job").and_then(Value::as_str).unwrap_or("?");
            let params = d
                .get("params")
                .map(|p| self.value("params", p))
                .unwrap_or_default();
            let rest = without(d, &["decision", "job", "params"]);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                self.time(b.at),
                self.change(b.change_number, b.patch_set),
                esc(job),
                params,
                self.value("", &rest),
            );
        }
        out.push_str("</table>\n");
    }

    fn outbox(&self, out: &mut String, data: &StatusData) {
        let _ = writeln!(out, "<h2>Pending reviews ({})</h2>", data.pending_count);
        if let Some(age) = data.oldest_pending_age {
            let _ = writeln!(out, "<p class=meta>Oldest waiting for {age} s.</p>");
        }
        self.items(out, &data.pending, "Next attempt");
        out.push_str("<h2>Recently failed outbox items</h2>\n");
        self.items(out, &data.failed, "Given up");
    }

    fn items(&self, out: &mut String, items: &[OutboxItem], when: &str) {
        if items.is_empty() {
            out.push_str("<p class=empty>None.</p>\n");
            return;
        }
        let _ = writeln!(
            out,
            "<table>\n<tr><th>#</th><th>Kind</th><th>Change</th><th>Attempts</th>\
             <th>{when}</th><th>In flight since</th><th>Last error</th></tr>"
        );
        for item in items {
            let change = find_u64(&item.payload, &["change_number", "change"])
                .or_else(|| item.order_key.parse().ok());
            let patch_set =
                find_u64(&item.payload, &["patch_set"]).and_then(|n| u32::try_from(n).ok());
            let at = if item.finished_at.is_some() {
                item.finished_at
            } else {
                Some(item.next_attempt_at)
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=err>{}</td></tr>",
                item.id,
                esc(&item.kind),
                self.change(change, patch_set),
                item.attempts,
                at.map(|t| self.time(t)).unwrap_or_default(),
                item.in_flight_since
                    .map(|t| self.time(t))
                    .unwrap_or_default(),
                esc(item.last_error.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</table>\n");
    }

    fn events(&self, out: &mut String, events: &[EventRecord]) {
        let _ = writeln!(out, "<h2>Last {EVENT_LIMIT} events</h2>");
        if events.is_empty() {
            out.push_str("<p class=empty>No event recorded yet.</p>\n");
            return;
        }
        out.push_str(
            "<table>\n<tr><th>When</th><th>Source</th><th>Change</th><th>Summary</th>\
             <th>Decisions</th></tr>\n",
        );
        for e in events {
            let decisions: Vec<String> = decisions_of(&e.decisions)
                .map(|d| {
                    let kind = d.get("decision").and_then(Value::as_str).unwrap_or("");
                    let rest = without(d, &["decision"]);
                    format!("<li><b>{}</b> {}</li>", esc(kind), self.value("", &rest))
                })
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><ul class=kv>{}</ul></td></tr>",
                self.time(e.at),
                esc(&e.source),
                self.change(e.change_number, e.patch_set),
                esc(&e.summary),
                decisions.concat(),
            );
        }
        out.push_str("</table>\n");
    }

    /// A link to a change (and patch set) on Gerrit.
    fn change(&self, change: Option<u64>, patch_set: Option<u32>) -> String {
        let Some(n) = change else {
            return String::new();
        };
        let base = self.config.gerrit.url.as_str().trim_end_matches('/');
        match patch_set {
            Some(ps) => link(&format!("{base}/c/{n}/{ps}"), &format!("{n},{ps}")),
            None => link(&format!("{base}/c/{n}"), &n.to_string()),
        }
    }

    /// A unix time as UTC, with how long ago (or how soon) it is.
    fn time(&self, t: i64) -> String {
        let delta = self.now.saturating_sub(t);
        let rel = if delta >= 0 {
            format!("{delta} s ago")
        } else {
            format!("in {} s", delta.unsigned_abs())
        };
        format!("{} <span class=ago>({rel})</span>", utc(t))
    }

    /// A JSON value as HTML: times (keys `at`, `due`, `*_at`, `*_due`) as
    /// dates, URLs as links, objects as `key: value` lists.
    fn value(&self, key: &str, value: &Value) -> String {
        match value {
            Value::Number(n) if is_time_key(key) => match n.as_i64() {
                Some(t) => self.time(t),
                None => esc(&n.to_string()),
            },
            Value::String(s) if is_http_url(s) => link(s, s),
            Value::String(s) => esc(s),
            Value::Null => String::new(),
            Value::Object(map) => {
                let items: Vec<String> = map
                    .iter()
                    .map(|(k, v)| {
                        let shown = if redact::is_secret_key(k) && !v.is_null() {
                            redact::MASK.to_owned()
                        } else {
                            self.value(k, v)
                        };
                        format!("<li>{}: {}</li>", esc(k), shown)
                    })
                    .collect();
                format!("<ul class=kv>{}</ul>", items.concat())
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.value(key, v))
                .collect::<Vec<_>>()
                .join(", "),
            other => esc(&other.to_string()),
        }
    }
}

/// The decision objects of an event (recorded as an array, or one object).
fn decisions_of(decisions: &Value) -> impl Iterator<Item = &Value> {
    let list: &[Value] = match decisions {
        Value::Array(items) => items,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    list.iter()
}

/// Whether a decision triggers a Jenkins build (`build` or `clean`).
fn is_build(decision: &Value) -> bool {
    matches!(
        decision.get("decision").and_then(Value::as_str),
        Some("build" | "clean")
    )
}

/// An object without some keys (a non-object is returned as is).
fn without(value: &Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The first of `keys` holding a number (or numeric string), searched in
/// the object and the objects inside it (a few levels deep).
fn find_u64(value: &Value, keys: &[&str]) -> Option<u64> {
    fn walk(value: &Value, keys: &[&str], depth: u8) -> Option<u64> {
        let map = value.as_object()?;
        for key in keys {
            match map.get(*key) {
                Some(Value::Number(n)) => return n.as_u64(),
                Some(Value::String(s)) => {
                    if let Ok(n) = s.parse() {
                        return Some(n);
                    }
                }
                _ => {}
            }
        }
        if depth == 0 {
            return None;
        }
        map.values().find_map(|v| walk(v, keys, depth - 1))
    }
    walk(value, keys, 3)
}

fn is_time_key(key: &str) -> bool {
    matches!(key, "at" | "due" | "since") || key.ends_with("_at") || key.ends_with("_due")
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// A link; `href` must already be known to be http(s).
fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// Escapes text for HTML content and attribute values, after masking
/// what looks secret in it (see [`crate::redact`]): every text the page
/// shows goes through here.
pub fn esc(s: &str) -> String {
    let s = redact::scrub(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn only_http_urls_are_links() {
        assert!(is_http_url("https://jenkins.example.org/job/x/1/"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("not a url"));
    }

    #[test]
    fn finds_change_numbers_in_nested_payloads() {
        let payload = json!({ "target": { "change": "1234", "patch_set": 3 } });
        assert_eq!(find_u64(&payload, &["change_number", "change"]), Some(1234));
        assert_eq!(find_u64(&payload, &["patch_set"]), Some(3));
        assert_eq!(find_u64(&json!([1]), &["change"]), None);
    }
}
