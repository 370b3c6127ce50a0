//! `GET /metrics`: the counters, histograms and outbox gauges of both
//! daemons, read from the shared ledger and rendered in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! The ledger is the only source: gmail-listener has no port of its own, and
//! counts survive restarts because they live in the file, not in memory. A
//! scrape reads a snapshot and encodes it with `prometheus-client`'s
//! collector API; nothing is cached between scrapes.
//!
//! Ledger counters are keyed by a plain name (see
//! [`bionicbb_core::ledger::metric_names`]) and a label string
//! `key="value",key2="value2"` (unquoted `key=value` is accepted too). Each
//! becomes a counter family `bionicbb_<name>_total`; names and label keys
//! that are not valid Prometheus identifiers are sanitised, never dropped,
//! so an unknown counter written by a newer daemon is still exported.

use std::collections::BTreeMap;

use bionicbb_core::ledger::{HistogramSnapshot, Ledger, LedgerError, metric_names as names};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The prefix of every exported metric name.
const PREFIX: &str = "bionicbb";

/// Counters always declared (with their help), in ledger-name form.
const KNOWN_COUNTERS: &[(&str, &str)] = &[
    (
        names::EVENTS_RECEIVED,
        "Events received, by source and type",
    ),
    (names::BUILDS_TRIGGERED, "Jenkins builds triggered, by job"),
    (
        names::REVIEWS_POSTED,
        "Reviews posted on Gerrit, by outcome",
    ),
    (
        names::OUTBOX_RETRIES,
        "Outbox attempts that failed and were scheduled again",
    ),
    (names::FAILURES, "Failures, by component"),
    (
        names::MAILS_PROCESSED,
        "Notification e-mails handled to the end",
    ),
    (
        names::MAILS_QUARANTINED,
        "Notification e-mails quarantined as unreadable",
    ),
    (
        names::RECONCILE_CHANGES_SCANNED,
        "Changes a reconcile pass with Gerrit looked at",
    ),
    (
        names::RECONCILE_MISSED,
        "Patch sets and commands found by reconcile that no mail had delivered, by kind",
    ),
    (
        names::RECONCILE_PASSES,
        "Reconcile passes with Gerrit, by kind and outcome",
    ),
];

/// Histograms always declared (with their help).
const KNOWN_HISTOGRAMS: &[(&str, &str)] = &[
    (
        names::MAIL_TO_TRIGGER_SECONDS,
        "Seconds from a notification e-mail's date to the Jenkins trigger",
    ),
    (
        names::BUILD_TO_REVIEW_SECONDS,
        "Seconds from a build's completion to its review on Gerrit",
    ),
    (
        names::RECONCILE_PASS_SECONDS,
        "Seconds one reconcile pass with Gerrit took, by kind",
    ),
];

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: {0}")]
    Ledger(#[from] LedgerError),
    /// The encoder refused the data (it validates nothing we do not
    /// sanitise first, so this is a bug).
    #[error("metrics: encoding the exposition text failed")]
    Encode,
}

/// A label set after parsing: sorted by key, keys unique and valid.
type Labels = Vec<(String, String)>;

/// Renders every metric in the Prometheus text format. `now` (unix
/// seconds) is used for the age of the oldest pending outbox item.
pub fn render(ledger: &Ledger, now: i64) -> Result<String, MetricsError> {
    let snapshot = Snapshot::read(ledger, now)?;
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .map_err(|_| MetricsError::Encode)?;
    Ok(out)
}

/// One family of counters: its help and its samples by label set.
#[derive(Debug, Default)]
struct CounterFamily {
    help: String,
    samples: BTreeMap<Labels, u64>,
}

/// One family of histograms.
#[derive(Debug, Default)]
struct HistogramFamily {
    help: String,
    series: BTreeMap<Labels, HistogramSnapshot>,
}

/// Everything a scrape exports, read from the ledger at once.
#[derive(Debug)]
struct Snapshot {
    /// By exported name without prefix and without `_total`.
    counters: BTreeMap<String, CounterFamily>,
    histograms: BTreeMap<String, HistogramFamily>,
    pending: i64,
    oldest_pending_age: i64,
}

impl Snapshot {
    fn read(ledger: &Ledger, now: i64) -> Result<Snapshot, MetricsError> {
        let mut counters: BTreeMap<String, CounterFamily> = BTreeMap::new();
        for (name, help) in KNOWN_COUNTERS {
            let family = counters.entry(counter_family_name(name)).or_default();
            family.help = (*help).to_owned();
        }
        for (name, labels, value) in ledger.counters()? {
            let family = counters.entry(counter_family_name(&name)).or_default();
            if family.help.is_empty() {
                family.help = format!("Ledger counter {name}");
            }
            let sample = family
                .samples
                .entry(parse_or_keep(&name, &labels))
                .or_default();
            *sample = sample.saturating_add(value);
        }
        // Label-less known counters read 0 before their first bump, so a
        // rate() over a restart of the scrape target sees the start.
        for name in [
            names::OUTBOX_RETRIES,
            names::MAILS_PROCESSED,
            names::MAILS_QUARANTINED,
            names::RECONCILE_CHANGES_SCANNED,
        ] {
            if let Some(family) = counters.get_mut(&counter_family_name(name)) {
                family.samples.entry(Vec::new()).or_default();
            }
        }

        let mut histograms: BTreeMap<String, HistogramFamily> = BTreeMap::new();
        for (name, help) in KNOWN_HISTOGRAMS {
            histograms.entry(metric_name(name)).or_default().help = (*help).to_owned();
        }
        for h in ledger.histograms()? {
            let family = histograms.entry(metric_name(&h.name)).or_default();
            if family.help.is_empty() {
                family.help = format!("Ledger histogram {}", h.name);
            }
            let labels = parse_or_keep(&h.name, &h.labels);
            // Two label strings parsing to the same set: keep the fuller one.
            match family.series.get(&labels) {
                Some(existing) if existing.count >= h.count => {}
                _ => {
                    family.series.insert(labels, h);
                }
            }
        }

        let pending = i64::try_from(ledger.pending_count()?).unwrap_or(i64::MAX);
        let oldest_pending_age = ledger.oldest_pending_age(now)?.unwrap_or(0).max(0);
        Ok(Snapshot {
            counters,
            histograms,
            pending,
            oldest_pending_age,
        })
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.counters {
            let mut metric =
                encoder.encode_descriptor(name, &family.help, None, MetricType::Counter)?;
            for (labels, value) in &family.samples {
                ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
            }
        }
        let gauges = [
            (
                "outbox_pending",
                "Outbox items (reviews and other Gerrit work) waiting to be done",
                self.pending,
            ),
            (
                "outbox_oldest_pending_age_seconds",
                "Age in seconds of the oldest pending outbox item (0 when none)",
                self.oldest_pending_age,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        for (name, family) in &self.histograms {
            let mut metric =
                encoder.encode_descriptor(name, &family.help, None, MetricType::Histogram)?;
            for (labels, h) in &family.series {
                // The ledger stores cumulative counts; the encoder wants the
                // count of each bucket alone and accumulates it again.
                let mut previous = 0;
                let per_bucket: Vec<(f64, u64)> = h
                    .buckets
                    .iter()
                    .map(|&(le, cumulative)| {
                        let own = cumulative.saturating_sub(previous);
                        previous = previous.max(cumulative);
                        (le, own)
                    })
                    .collect();
                metric
                    .encode_family(labels)?
                    .encode_histogram::<NoLabelSet>(h.sum, h.count, &per_bucket, None)?;
            }
        }
        Ok(())
    }
}

/// The label set of a ledger row; a string that does not parse is kept
/// whole as the value of a `labels` label rather than lost.
fn parse_or_keep(name: &str, labels: &str) -> Labels {
    parse_labels(labels).unwrap_or_else(|e| {
        tracing::warn!(metric = name, labels, error = %e, "unreadable metric labels in the ledger");
        vec![("labels".to_owned(), labels.to_owned())]
    })
}

/// The exported name (without prefix) of a ledger metric name: sanitised,
/// any `bionicbb_` prefix removed (the registry adds it).
fn metric_name(name: &str) -> String {
    let name = name.strip_prefix("bionicbb_").unwrap_or(name);
    sanitize(name)
}

/// As [`metric_name`], without the `_total` the encoder appends to counters.
fn counter_family_name(name: &str) -> String {
    let name = metric_name(name);
    match name.strip_suffix("_total") {
        Some(stem) if !stem.is_empty() => stem.to_owned(),
        _ => name,
    }
}

/// Makes `s` a valid metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`):
/// other characters become `_`, a leading digit gets a `_` before it, and
/// the `__` prefix reserved by Prometheus is avoided.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.starts_with("__") {
        out.insert(0, 'x');
    }
    out
}

/// Why a label string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelParseError {
    #[error("expected `=` after label key {0:?}")]
    MissingEquals(String),
    #[error("empty label key")]
    EmptyKey,
    #[error("unterminated quoted value for label {0:?}")]
    Unterminated(String),
    #[error("unknown escape `\\{0}` in the value of label {1:?}")]
    BadEscape(char, String),
    #[error("expected `,` after the value of label {0:?}")]
    MissingComma(String),
}

/// Parses a ledger label string: `key=value` pairs separated by `,`,
/// values either bare (up to the next `,`) or double-quoted with `\\`,
/// `\"` and `\n` escapes. Whitespace around keys and bare values is
/// trimmed. Keys are sanitised; a repeated key keeps its first value. The
/// result is sorted by key.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, LabelParseError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| LabelParseError::MissingEquals(rest.trim().to_owned()))?;
        let key = rest[..eq].trim();
        if key.is_empty() {
            return Err(LabelParseError::EmptyKey);
        }
        let key = sanitize(key);
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, '\\')) => v.push('\\'),
                        Some((_, '"')) => v.push('"'),
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, other)) => return Err(LabelParseError::BadEscape(other, key)),
                        None => return Err(LabelParseError::Unterminated(key)),
                    },
                    c => v.push(c),
                }
            }
            let end = end.ok_or_else(|| LabelParseError::Unterminated(key.clone()))?;
            value = v;
            rest = quoted[end..].trim_start();
            if !rest.is_empty() {
                rest = rest
                    .strip_prefix(',')
                    .ok_or_else(|| LabelParseError::MissingComma(key.clone()))?
                    .trim_start();
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = rest.get(end + 1..).unwrap_or("").trim_start();
        }
        out.entry(key).or_insert(value);
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_quoted_and_bare_labels() {
        assert_eq!(parse_labels(""), Ok(vec![]));
        assert_eq!(
            parse_labels("type=comment, source=gmail"),
            Ok(pairs(&[("source", "gmail"), ("type", "comment")]))
        );
        assert_eq!(
            parse_labels(r#"job="a,b",why="say \"hi\"\\\n""#),
            Ok(pairs(&[("job", "a,b"), ("why", "say \"hi\"\\\n")]))
        );
        assert_eq!(
            parse_labels(&names::labels(&[("job", "x=\"y\", z")])),
            Ok(pairs(&[("job", "x=\"y\", z")]))
        );
        // Invalid keys are sanitised, repeated keys keep the first value.
        assert_eq!(
            parse_labels("my-key=1,my-key=2,9x=3"),
            Ok(pairs(&[("_9x", "3"), ("my_key", "1")]))
        );
    }

    #[test]
    fn rejects_malformed_labels() {
        assert_eq!(
            parse_labels("job"),
            Err(LabelParseError::MissingEquals("job".into()))
        );
        assert_eq!(parse_labels("=x"), Err(LabelParseError::EmptyKey));
        assert!(matches!(
            parse_labels("a=\"x"),
            Err(LabelParseError::Unterminated(_))
        ));
        assert!(matches!(
            parse_labels("a=\"x\\"),
            Err(LabelParseError::Unterminated(_))
        ));
        assert!(matches!(
            parse_labels(r#"a="\t""#),
            Err(LabelParseError::BadEscape('t', _))
        ));
        assert!(matches!(
            parse_labels(r#"a="x" b=1"#),
            Err(LabelParseError::MissingComma(_))
        ));
    }

    #[test]
    fn names_are_sanitised_and_suffixes_handled() {
        assert_eq!(
            counter_family_name("events_received_total"),
            "events_received"
        );
        assert_eq!(counter_family_name("bionicbb_x_total"), "x");
        assert_eq!(counter_family_name("_total"), "_total");
        assert_eq!(counter_family_name("weird name.v2"), "weird_name_v2");
        assert_eq!(metric_name("2fast"), "_2fast");
        assert_eq!(metric_name("__internal"), "x__internal");
        assert_eq!(metric_name(""), "_");
    }
}
