//! Throughput of the pure hot paths: parsing Gerrit mails and Jenkins
//! notifications, and deciding. Run with
//! `cargo bench -p bionicbb-core --bench parse`; it prints one line per case
//! (time per item and items per second). No external harness: each case runs
//! for about a second after a warm-up, and the median of five rounds is shown.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bionicbb_core::config::Config;
use bionicbb_core::event::{ChangeFacts, ChangeStatus, CommentFacts};

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(kind)
}

fn files(kind: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(data_dir(kind))
        .expect("test data directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read fixture"))
        })
        .collect();
    out.sort();
    out
}

/// Runs `f` repeatedly; returns the median time per call over five rounds.
fn measure(mut f: impl FnMut()) -> Duration {
    let warm = Instant::now();
    let mut calls = 0u64;
    while warm.elapsed() < Duration::from_millis(200) {
        f();
        calls += 1;
    }
    let per_round = (calls * 5).max(1);
    let mut rounds: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            start.elapsed() / per_round as u32
        })
        .collect();
    rounds.sort();
    rounds[2]
}

fn report(name: &str, per_item: Duration, bytes: Option<usize>) {
    let per_sec = 1.0 / per_item.as_secs_f64();
    let mb = bytes
        .map(|b| format!("  {:>8.1} MB/s", b as f64 * per_sec / 1e6))
        .unwrap_or_default();
    println!(
        "{name:<58} {:>10.2} µs/item {:>12.0} items/s{mb}",
        per_item.as_secs_f64() * 1e6,
        per_sec
    );
}

/// About 1 MB each, aimed at the paths that used to be superlinear or
/// unbounded (see `tests/hostile_mail.rs`, which asserts the bounds).
fn hostile_mails() -> Vec<(&'static str, Vec<u8>)> {
    fn mail(content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "From: \"Dana Dev (Code Review)\" <gerrit@example.org>\n\
             Subject: hostile\nX-Gerrit-MessageType: comment\nMIME-Version: 1.0\n\
             Content-Type: {content_type}\n\n{body}"
        )
        .into_bytes()
    }
    let footers = "\n-- \nGerrit-MessageType: comment\n\
                   Gerrit-Change-Id: I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b\n\
                   Gerrit-PatchSet: 2\nGerrit-Project: platform/bionic\nGerrit-Branch: master\n";
    let deep = format!(
        "{}{}",
        "<blockquote>".repeat(80_000),
        "bionicbb:retry<br>".repeat(1_000)
    );
    let branches: String = (0..60_000)
        .map(|i| format!("Gerrit-Branch: b{i}\n"))
        .collect();
    let mut nested =
        String::from("Subject: x\nX-Gerrit-MessageType: comment\nContent-Type: message/rfc822\n\n");
    nested.push_str(&"Subject: x\nContent-Type: message/rfc822\n\n".repeat(20_000));
    nested.push_str("Subject: end\n\nhello\n");
    let mut headers = "X-H: v\n".repeat(140_000);
    headers.push_str(
        &String::from_utf8(mail("text/plain", &format!("Patch Set 2:{footers}"))).unwrap(),
    );
    vec![
        (
            "80,000 nested blockquotes, 1,000 lines",
            mail("text/html", &deep),
        ),
        ("1 MB of '&'", mail("text/html", &"&".repeat(1_000_000))),
        (
            "60,000 contradicting footers",
            mail("text/plain", &format!("Patch Set 2:{footers}{branches}")),
        ),
        ("20,000 nested attached messages", nested.into_bytes()),
        ("140,000 headers", headers.into_bytes()),
    ]
}

fn main() {
    println!("bionicbb-core parse bench (median of 5 rounds, release build)");
    let mails = files("emails", "eml");
    let mut total = 0usize;
    for (name, raw) in &mails {
        let t = measure(|| {
            let _ = black_box(bionicbb_core::mail::parse(black_box(raw)));
        });
        total += raw.len();
        report(&format!("mail::parse {name}"), t, Some(raw.len()));
    }
    let all = measure(|| {
        for (_, raw) in &mails {
            let _ = black_box(bionicbb_core::mail::parse(black_box(raw)));
        }
    });
    report(
        &format!("mail::parse all {} fixtures", mails.len()),
        all / mails.len() as u32,
        Some(total / mails.len()),
    );

    for (name, raw) in hostile_mails() {
        let t = measure(|| {
            let _ = black_box(bionicbb_core::mail::parse(black_box(&raw)));
        });
        report(&format!("mail::parse hostile: {name}"), t, Some(raw.len()));
    }

    let docs = files("jenkins", "json");
    let all = measure(|| {
        for (_, raw) in &docs {
            let _ = black_box(bionicbb_core::jenkins::notification::parse(black_box(raw)));
        }
    });
    report(
        &format!("notification::parse all {} documents", docs.len()),
        all / docs.len() as u32,
        None,
    );

    let config = Config::parse(
        include_str!("../../../tests/data/bench-config.toml"),
        Path::new("bench-config.toml"),
    )
    .expect("bench config");
    let (_, raw) = mails
        .iter()
        .find(|(n, _)| n.starts_with("23-"))
        .expect("the two-commands fixture");
    let event = bionicbb_core::mail::parse(raw)
        .expect("fixture parses")
        .event;
    let facts = ChangeFacts {
        number: 123456,
        project: event.project.clone(),
        branch: event.branch.clone(),
        status: ChangeStatus::New,
        current_patch_set: event.patch_set,
        patch_set_ref: Some(format!("refs/changes/56/123456/{}", event.patch_set)),
        committer_email: Some("dana@example.com".into()),
        files: (0..200)
            .map(|i| format!("libc/bionic/file{i}.cpp"))
            .collect(),
        comment: Some(CommentFacts {
            message_id: "Zq3-Kd".into(),
            author_account_id: Some(1000097),
            author_email: Some("sam@example.com".into()),
            author_name: Some("Sam Reviewer".into()),
            message: "Patch Set 2:\n\nbionicbb:retry".into(),
        }),
        subject: "Fix strtod rounding for denormals".into(),
        owner: Some("Dana Dev".into()),
        upload: Default::default(),
        vouch: None,
    };
    let t = measure(|| {
        black_box(bionicbb_core::decide::decide(
            black_box(&event),
            Some(&facts),
            &config,
        ));
    });
    report("decide (comment, 2 commands + unknown, 200 files)", t, None);
}
