//! The metrics text, rendered from a real ledger file (the status page has
//! its own tests, `status_page.rs`).

use std::collections::{BTreeMap, BTreeSet};

use bionicbb_core::ledger::{Ledger, NewOutboxItem, metric_names as names};
use build_listener::metrics;
use serde_json::json;

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).expect("open ledger");
    (dir, ledger)
}

// ---------------------------------------------------------------------------
// A strict parser of the Prometheus text format (0.0.4), enough to check
// what a scraper would accept.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    /// Family name -> type.
    types: BTreeMap<String, String>,
    helps: BTreeSet<String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    valid_name(s) && !s.contains(':') && !s.starts_with("__")
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<(&'a str, String)> {
    if let Some(t) = types.get(name) {
        return Some((name, t.clone()));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(stem) = name.strip_suffix(suffix)
            && types.get(stem).is_some_and(|t| t == "histogram")
        {
            return Some((stem, "histogram".into()));
        }
    }
    None
}

fn parse_exposition(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut out = Exposition::default();
    let mut seen_families_closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(valid_name(name), "HELP name {name:?}");
            assert!(
                out.helps.insert(name.to_owned()),
                "one HELP per family: {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE has a name and a type");
            assert!(valid_name(name), "TYPE name {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "type {ty:?}"
            );
            assert!(out.helps.contains(name), "HELP before TYPE for {name}");
            assert!(
                out.types.insert(name.into(), ty.into()).is_none(),
                "one TYPE per family"
            );
            if let Some(prev) = current.replace(name.to_owned()) {
                seen_families_closed.insert(prev);
            }
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let sample = parse_sample(line);
        let (family, _) = family_of(&sample.name, &out.types)
            .unwrap_or_else(|| panic!("sample {line:?} belongs to no declared family"));
        assert_eq!(
            current.as_deref(),
            Some(family),
            "samples grouped under their TYPE: {line}"
        );
        assert!(!seen_families_closed.contains(family));
        out.samples.push(sample);
    }
    // No duplicate series.
    let mut series = BTreeSet::new();
    for s in &out.samples {
        assert!(
            series.insert((s.name.clone(), s.labels.clone())),
            "duplicate {s:?}"
        );
    }
    check_histograms(&out);
    out
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("sample has a value");
    let name = &line[..name_end];
    assert!(valid_name(name), "metric name {name:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end;
        loop {
            // key
            let start = chars.peek().map(|(i, _)| *i).expect("label key");
            if after[start..].starts_with('}') {
                end = Some(start + 1);
                break;
            }
            let eq = after[start..].find('=').expect("label =") + start;
            let key = &after[start..eq];
            assert!(valid_label_name(key), "label name {key:?} in {line}");
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "quoted value in {line}"
            );
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value") {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    (_, '\n') => panic!("raw newline"),
                    (_, c) => value.push(c),
                }
            }
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "duplicate label {key}"
            );
            match chars.next().expect("after label") {
                (_, ',') => continue,
                (i, '}') => {
                    end = Some(i + 1);
                    break;
                }
                (_, c) => panic!("unexpected {c:?} in {line}"),
            }
        }
        rest = &after[end.expect("closing brace")..];
    }
    let value_text = rest.strip_prefix(' ').expect("space before value");
    assert!(!value_text.contains(' '), "no timestamp expected: {line}");
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("value {v:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Buckets cumulative, ascending, ending with `+Inf` equal to `_count`.
fn check_histograms(e: &Exposition) {
    for (family, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = key.remove("le").expect("bucket has le");
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            series.entry(key).or_default().push((le, s.value));
        }
        for (labels, buckets) in series {
            for w in buckets.windows(2) {
                assert!(w[0].0 < w[1].0, "{family} bounds ascending: {buckets:?}");
                assert!(w[0].1 <= w[1].1, "{family} cumulative: {buckets:?}");
            }
            let last = buckets.last().expect("buckets");
            assert_eq!(last.0, f64::INFINITY, "{family} ends with +Inf");
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let count = e.value(&format!("{family}_count"), &l).expect("_count");
            assert_eq!(last.1, count, "{family}: +Inf bucket equals _count");
            assert!(e.value(&format!("{family}_sum"), &l).is_some(), "_sum");
        }
    }
}

// ---------------------------------------------------------------------------

#[test]
fn empty_ledger_renders_declared_families_and_zero_gauges() {
    let (_dir, ledger) = ledger();
    let text = metrics::render(&ledger, 1_000).unwrap();
    let e = parse_exposition(&text);
    for family in [
        "bionicbb_events_received_total",
        "bionicbb_builds_triggered_total",
        "bionicbb_reviews_posted_total",
        "bionicbb_outbox_retries_total",
        "bionicbb_failures_total",
        "bionicbb_mails_processed_total",
        "bionicbb_mails_quarantined_total",
        "bionicbb_reconcile_changes_scanned_total",
        "bionicbb_reconcile_missed_total",
        "bionicbb_reconcile_passes_total",
    ] {
        assert_eq!(
            e.types.get(family).map(String::as_str),
            Some("counter"),
            "{family}\n{text}"
        );
    }
    for family in [
        "bionicbb_mail_to_trigger_seconds",
        "bionicbb_build_to_review_seconds",
        "bionicbb_reconcile_pass_seconds",
    ] {
        assert_eq!(
            e.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}"
        );
    }
    assert_eq!(e.value("bionicbb_outbox_pending", &[]), Some(0.0));
    assert_eq!(
        e.value("bionicbb_outbox_oldest_pending_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(e.value("bionicbb_mails_processed_total", &[]), Some(0.0));
    assert_eq!(
        e.value("bionicbb_reconcile_changes_scanned_total", &[]),
        Some(0.0)
    );
    assert!(text.contains("# TYPE bionicbb_outbox_pending gauge\n"));
}

#[test]
fn counters_histograms_and_gauges_follow_the_ledger() {
    let (_dir, ledger) = ledger();
    let ev = names::labels(&[("source", "gmail"), ("type", "comment")]);
    ledger.bump_counter(names::EVENTS_RECEIVED, &ev, 2).unwrap();
    ledger
        .bump_counter(names::EVENTS_RECEIVED, "source=jenkins,type=completed", 1)
        .unwrap();
    ledger
        .bump_counter(
            names::BUILDS_TRIGGERED,
            &names::labels(&[("job", "bionic-presubmit")]),
            3,
        )
        .unwrap();
    ledger
        .bump_counter(
            names::REVIEWS_POSTED,
            &names::labels(&[("outcome", "posted")]),
            1,
        )
        .unwrap();
    ledger.bump_counter(names::OUTBOX_RETRIES, "", 4).unwrap();
    ledger
        .bump_counter(
            names::FAILURES,
            &names::labels(&[("component", "gmail-listener")]),
            1,
        )
        .unwrap();
    ledger.bump_counter(names::MAILS_PROCESSED, "", 7).unwrap();
    ledger
        .bump_counter(names::MAILS_QUARANTINED, "", 1)
        .unwrap();
    // Unknown counters and hostile label values are exported, escaped.
    ledger
        .bump_counter("some.new-thing", "who=\"a \\\"b\\\"\\nc\"", 5)
        .unwrap();
    ledger.bump_counter("garbled", "no equals sign", 1).unwrap();
    for s in [2.0, 40.0, 40.0, 5000.0] {
        ledger
            .observe(names::MAIL_TO_TRIGGER_SECONDS, "", s)
            .unwrap();
    }
    ledger
        .observe(
            names::BUILD_TO_REVIEW_SECONDS,
            &names::labels(&[("job", "j")]),
            0.5,
        )
        .unwrap();
    for n in 0..2 {
        ledger
            .enqueue(
                NewOutboxItem {
                    kind: "review".into(),
                    order_key: format!("{n}"),
                    payload: json!({}),
                },
                100 + n,
            )
            .unwrap();
    }

    let text = metrics::render(&ledger, 400).unwrap();
    let e = parse_exposition(&text);
    let v = |name: &str, labels: &[(&str, &str)]| {
        e.value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{text}"))
    };
    assert_eq!(
        v(
            "bionicbb_events_received_total",
            &[("source", "gmail"), ("type", "comment")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "bionicbb_events_received_total",
            &[("source", "jenkins"), ("type", "completed")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "bionicbb_builds_triggered_total",
            &[("job", "bionic-presubmit")]
        ),
        3.0
    );
    assert_eq!(
        v("bionicbb_reviews_posted_total", &[("outcome", "posted")]),
        1.0
    );
    assert_eq!(v("bionicbb_outbox_retries_total", &[]), 4.0);
    assert_eq!(
        v(
            "bionicbb_failures_total",
            &[("component", "gmail-listener")]
        ),
        1.0
    );
    assert_eq!(v("bionicbb_mails_processed_total", &[]), 7.0);
    assert_eq!(v("bionicbb_mails_quarantined_total", &[]), 1.0);
    assert_eq!(
        v("bionicbb_some_new_thing_total", &[("who", "a \"b\"\nc")]),
        5.0
    );
    assert_eq!(
        v("bionicbb_garbled_total", &[("labels", "no equals sign")]),
        1.0
    );
    assert_eq!(e.types["bionicbb_some_new_thing_total"], "counter");

    assert_eq!(v("bionicbb_mail_to_trigger_seconds_count", &[]), 4.0);
    assert_eq!(v("bionicbb_mail_to_trigger_seconds_sum", &[]), 5082.0);
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "1")]),
        0.0
    );
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "5")]),
        1.0
    );
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "60")]),
        3.0
    );
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "3600")]),
        3.0
    );
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "7200")]),
        4.0
    );
    assert_eq!(
        v("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "+Inf")]),
        4.0
    );
    assert_eq!(
        v(
            "bionicbb_build_to_review_seconds_bucket",
            &[("job", "j"), ("le", "1")]
        ),
        1.0
    );

    assert_eq!(v("bionicbb_outbox_pending", &[]), 2.0);
    assert_eq!(v("bionicbb_outbox_oldest_pending_age_seconds", &[]), 300.0);

    // The counts move with the ledger.
    ledger
        .bump_counter(
            names::BUILDS_TRIGGERED,
            &names::labels(&[("job", "bionic-presubmit")]),
            1,
        )
        .unwrap();
    ledger.bump_counter(names::MAILS_PROCESSED, "", 1).unwrap();
    ledger
        .observe(names::MAIL_TO_TRIGGER_SECONDS, "", 10_000.0)
        .unwrap();
    let e = parse_exposition(&metrics::render(&ledger, 400).unwrap());
    assert_eq!(
        e.value(
            "bionicbb_builds_triggered_total",
            &[("job", "bionic-presubmit")]
        ),
        Some(4.0)
    );
    assert_eq!(e.value("bionicbb_mails_processed_total", &[]), Some(8.0));
    assert_eq!(
        e.value("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "7200")]),
        Some(4.0)
    );
    assert_eq!(
        e.value("bionicbb_mail_to_trigger_seconds_bucket", &[("le", "+Inf")]),
        Some(5.0)
    );
}

#[test]
fn the_strict_parser_rejects_what_a_scraper_would() {
    // Guards the guard: the checks above would catch these.
    for bad in [
        "foo 1\n",                                    // no TYPE
        "# HELP a x\n# TYPE a counter\na{b=\"1} 1\n", // unterminated
        "# HELP a x\n# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_count 1\na_sum 0\n",
        "# HELP a x\n# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_count 1\na_sum 0\n",
        "# HELP a x\n# TYPE a counter\na{1b=\"x\"} 1\n",
    ] {
        let result = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(result.is_err(), "accepted {bad:?}");
    }
}
