//! The command line of the gmail-listener binary, without any server: help,
//! `--version`, the offline `parse` tool, `auth` up to the consent URL, and
//! start-up errors. (Having an integration test
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
    for word in ["check", "auth", "parse", "--once", "--dry-run", "--config"] {
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
fn a_missing_config_is_exit_2() {
    let out = bin()
        .args(["--config", "/nonexistent/bionicbb.toml", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("gmail-listener: cannot start: /nonexistent/bionicbb.toml: cannot read"),
        "{err}"
    );
}

/// The commit `git` says the checkout is at, when there is a checkout.
fn head_commit() -> Option<String> {
    if let Ok(commit) = std::env::var("BIONICBB_GIT_COMMIT") {
        return Some(commit);
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_shows_the_git_commit() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = match head_commit() {
        Some(commit) => format!("gmail-listener {} ({commit})", env!("CARGO_PKG_VERSION")),
        None => format!("gmail-listener {}", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text.trim(), expected);
}

/// A configuration with the `[gmail]` table alone, and an OAuth client whose
/// Google endpoints are unreachable (the test stops before any call).
fn gmail_only(dir: &Path, gmail_extra: &str) -> std::path::PathBuf {
    let secret = dir.join("client_secret.json");
    std::fs::write(
        &secret,
        r#"{"installed":{"client_id":"bot.apps.googleusercontent.com","client_secret":"cs",
            "auth_uri":"http://127.0.0.1:9/o/oauth2/auth","token_uri":"http://127.0.0.1:9/token",
            "redirect_uris":["http://localhost"]}}"#,
    )
    .unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gmail]\nclient_secret_file = \"{}\"\ntoken_cache_file = \"{}\"\n{gmail_extra}",
            secret.display(),
            dir.join("token.json").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn auth_needs_only_the_gmail_table_and_always_asks_for_consent() {
    let dir = tempfile::tempdir().unwrap();
    let config = gmail_only(dir.path(), "");
    // No code is pasted (standard input is empty): the flow stops after
    // printing the consent URL.
    let out = bin()
        .arg("--config")
        .arg(&config)
        .arg("auth")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let url = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http://127.0.0.1:9/o/oauth2/auth?"))
        .unwrap_or_else(|| panic!("no consent URL:\n{err}"));
    assert!(url.contains("access_type=offline"), "{url}");
    assert!(url.contains("prompt=select_account+consent"), "{url}");
    assert!(url.contains("gmail.modify"), "{url}");
    assert!(err.contains("no authorization code given"), "{err}");
    assert!(!dir.path().join("token.json").exists());
}

#[test]
fn auth_reports_a_bad_gmail_key_naming_it_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = gmail_only(dir.path(), "lable = \"gerrit\"\n");
    let out = bin()
        .arg("--config")
        .arg(&config)
        .arg("auth")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("gmail-listener auth: "), "{err}");
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("[gmail] lable"), "{err}");
}

/// `auth` reads the OAuth client from `$CREDENTIALS_DIRECTORY` when the
/// configuration names it `credential:NAME`, as the daemon does; without
/// the directory it names the key and the variable, exit 2.
#[test]
fn auth_finds_a_credential_client_secret_in_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let plain = gmail_only(dir.path(), "");
    let text = std::fs::read_to_string(&plain).unwrap();
    let secret = format!("\"{}\"", dir.path().join("client_secret.json").display());
    assert!(text.contains(&secret), "{text}");
    let config = dir.path().join("config-credentials.toml");
    std::fs::write(
        &config,
        text.replace(&secret, "\"credential:client_secret.json\""),
    )
    .unwrap();
    let auth = |credentials: Option<&Path>| {
        let mut cmd = bin();
        cmd.arg("--config")
            .arg(&config)
            .arg("auth")
            .stdin(std::process::Stdio::null());
        match credentials {
            Some(credentials) => cmd.env("CREDENTIALS_DIRECTORY", credentials),
            None => cmd.env_remove("CREDENTIALS_DIRECTORY"),
        };
        cmd.output().unwrap()
    };

    let out = auth(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "[gmail] client_secret_file: credential:client_secret.json: \
             $CREDENTIALS_DIRECTORY is not set"
        ),
        "{err}"
    );

    // With the directory, the client is read: the flow reaches the consent
    // URL and stops there (no code is pasted).
    let out = auth(Some(dir.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.trim().starts_with("http://127.0.0.1:9/o/oauth2/auth?")),
        "no consent URL:\n{err}"
    );
}
