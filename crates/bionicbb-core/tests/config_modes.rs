//! The two partial loads of the configuration file: without its secrets
//! (for `check`, which reads each secret itself) and the `[gmail]` table
//! alone (for `gmail-listener auth`).

use std::path::{Path, PathBuf};

use bionicbb_core::config::{Config, GmailOnly, SecretKey};

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A full configuration whose secrets are files in `dir`.
fn full(dir: &Path) -> PathBuf {
    let d = dir.display();
    write(
        dir,
        "config.toml",
        &format!(
            r#"
[gerrit]
url = "https://review.example.org"
bot_email = "bot@example.org"

[jenkins]
url = "https://jenkins.example.org/"
user = "bot"
api_token_file = "{d}/jenkins-token"

[build_listener]
secret_file = "{d}/listener-secret"

[jobs]
"#
        ),
        0o600,
    )
}

#[test]
fn without_secrets_no_secret_file_is_read_until_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = full(dir.path());
    // Neither secret file exists: a full load fails on the first.
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("[jenkins] api_token_file"), "{err}");

    let mut config = Config::load_without_secrets(&path).unwrap();
    assert_eq!(config.jenkins.api_token().expose(), "");
    assert_eq!(
        config.secret_file(SecretKey::JenkinsApiToken),
        Some(dir.path().join("jenkins-token").as_path())
    );

    let err = config
        .resolve_secret(SecretKey::JenkinsApiToken, &path)
        .unwrap_err();
    assert!(
        err.message
            .starts_with("[jenkins] api_token_file: cannot read"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );

    write(dir.path(), "jenkins-token", "t0ken\n", 0o600);
    let warning = config
        .resolve_secret(SecretKey::JenkinsApiToken, &path)
        .unwrap();
    assert_eq!(warning, None);
    assert_eq!(config.jenkins.api_token().expose(), "t0ken");

    // A secret file others can read is read, with its warning.
    let secret = write(dir.path(), "listener-secret", "s3cret\n", 0o644);
    let warning = config
        .resolve_secret(SecretKey::BuildListenerSecret, &path)
        .unwrap()
        .expect("a warning");
    assert_eq!(warning.key, "[build_listener] secret_file");
    assert_eq!(warning.file, secret);
    assert_eq!(config.build_listener.secret().expose(), "s3cret");
    assert_eq!(config.warnings(), [warning]);
}

#[test]
fn without_secrets_the_rest_is_still_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = full(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("bot@example.org", "not-an-address")).unwrap();
    let err = Config::load_without_secrets(&path).unwrap_err().to_string();
    assert!(err.contains("[gerrit] bot_email"), "{err}");
}

#[test]
fn the_gmail_table_alone_is_enough_for_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.toml",
        "[gmail]\nclient_secret_file = \"/etc/x/client.json\"\ntoken_cache_file = \"/var/x/token.json\"\n",
        0o644,
    );
    let only = GmailOnly::load(&path).unwrap();
    assert_eq!(
        only.gmail.client_secret_file,
        Path::new("/etc/x/client.json")
    );
    assert_eq!(only.gmail.token_cache_file, Path::new("/var/x/token.json"));
    assert_eq!(only.gmail.label, "gerrit");
    assert!(!only.log.json);
    // The daemon needs the other tables.
    assert!(Config::load(&path).is_err());
}

#[test]
fn the_gmail_table_is_validated_and_other_tables_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    // Unfinished tables elsewhere do not matter to auth.
    let path = write(
        dir.path(),
        "config.toml",
        "[log]\njson = true\n[jenkins]\nuser = \"bot\"\n[gmail]\nlabel = \"gerrit\"\n",
        0o644,
    );
    let only = GmailOnly::load(&path).unwrap();
    assert!(only.log.json);

    // A typo in [gmail] is named, with the file.
    std::fs::write(&path, "[gmail]\nlable = \"gerrit\"\n").unwrap();
    let err = GmailOnly::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("[gmail] lable"), "{err}");

    // So is a value validation refuses.
    std::fs::write(
        &path,
        "[gmail]\nlabel = \"same\"\nquarantine_label = \"same\"\n",
    )
    .unwrap();
    let err = GmailOnly::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("[gmail] quarantine_label: must differ from label"),
        "{err}"
    );
}
