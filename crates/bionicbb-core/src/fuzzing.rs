//! The entry points of the fuzz targets (`fuzz/fuzz_targets/`), one per
//! parser of network or operator input. The stable regression test
//! (`tests/fuzz_regressions.rs`) runs the committed corpus through the same
//! functions, so a crash the fuzzer found stays fixed on the stable
//! toolchain. They live in the library (hidden from its documentation)
//! rather than in a file both include, so that there is one copy, compiled
//! and linted with the rest.
//!
//! Each function parses one input and panics when a property that must
//! hold for every input does not; errors are expected results, not failures.

use std::path::Path;

use crate::command;
use crate::config::{CommandsConfig, Config};
use crate::jenkins::notification;
use crate::mail;

/// A raw mail through the parser and the `parse` report built from it.
pub fn mail(data: &[u8]) {
    if let Ok(parsed) = mail::parse(data) {
        for c in &parsed.event.commands {
            assert_valid_name(&c.name);
        }
    }
    let _ = mail::report(data, &CommandsConfig::default());
}

/// Text through the `bionicbb:` command parser, line by line. A command
/// it reads has a valid name, and written back as a line it reads the same.
pub fn command(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for c in command::parse_all(text.lines()) {
        assert_valid_name(&c.name);
        let line = format!("{}{} {}", command::PREFIX, c.name, c.args.join(" "));
        assert_eq!(command::parse_line(&line), Some(c), "{line:?}");
    }
}

/// A Jenkins Notification-plugin document through its parser.
pub fn notification(data: &[u8]) {
    if let Ok(event) = notification::parse(data) {
        let _ = event.is_completion();
    }
}

/// A configuration file's text through the loader. Its error never shows
/// the value of a secret key the text gives.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(err) = Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let message = err.to_string();
    assert!(message.starts_with("fuzz.toml: "), "{message}");
    for secret in inline_secrets(text) {
        // Short values may occur in the message by chance (a key name, a
        // number); longer ones can only come from the value itself.
        if secret.len() >= 8 && text.matches(secret.as_str()).count() == 1 {
            assert!(!message.contains(&secret), "{message}");
        }
    }
}

/// The inline secrets of a configuration text that is valid TOML.
fn inline_secrets(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    [("jenkins", "api_token"), ("build_listener", "secret")]
        .into_iter()
        .filter_map(|(section, key)| table.get(section)?.get(key)?.as_str())
        .map(str::to_string)
        .collect()
}

fn assert_valid_name(name: &str) {
    assert!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "{name:?}"
    );
}
