//! The command line of the gmail-listener binary, without any server: help,
//! the offline `parse` tool, and start-up errors. (Having an integration test
//! here also makes `cargo test --workspace` build the binary that the
//! end-to-end tests in `tests/` run.)

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gmail-listener"))
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/emails")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn help_lists_the_subcommands_and_flags() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["auth", "parse", "--once", "--dry-run", "--config"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn parse_prints_one_json_object_per_file() {
    let out = bin()
        .env_remove("BIONICBB_CONFIG")
        .args([
            "parse",
            &fixture("04-comment-retry-2.x.eml"),
            &fixture("02-newpatchset-2.x.eml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 2, "{text}");
    assert_eq!(objects[0]["message_type"], "comment");
    assert_eq!(objects[0]["commands"][0]["name"], "retry");
    assert_eq!(objects[1]["message_type"], "newpatchset");
    assert_eq!(objects[1]["patch_set"], 2);
}

#[test]
fn parse_reports_a_non_gerrit_mail_and_fails() {
    let out = bin()
        .env_remove("BIONICBB_CONFIG")
        .args(["parse", &fixture("27-not-gerrit.eml")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let object: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(
        object["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{object}"
    );
}

#[test]
fn a_missing_config_is_a_clear_startup_error() {
    let out = bin()
        .args(["--config", "/nonexistent/bionicbb.toml", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bionicbb.toml"), "{err}");
}
