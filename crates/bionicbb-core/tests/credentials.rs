//! `credential:NAME` file keys: secrets systemd hands over with
//! `LoadCredential=`, found in `$CREDENTIALS_DIRECTORY`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bionicbb_core::config::Config;

const PATH: &str = "/etc/bionicbb/config.toml";

/// Every secret as a credential.
const WITH_CREDENTIALS: &str = r#"
[gerrit]
url = "https://review.example.org"
bot_email = "bot@example.org"
netrc = "credential:netrc"

[jenkins]
url = "https://jenkins.example.org/"
user = "bot"
api_token_file = "credential:jenkins-api-token"

[gmail]
client_secret_file = "credential:client_secret.json"
bearer_token_file = "credential:gmail-bearer-token"

[build_listener]
secret_file = "credential:build-listener-secret"

[jobs]
"#;

/// A credentials directory as systemd lays it out, every file present.
/// The files are mode 0640, as a copy with an ACL for the service user
/// shows: that is systemd's doing, not an open secret.
fn credentials_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "netrc",
            "machine review.example.org login bot password pw\n",
        ),
        ("jenkins-api-token", "jenkins-credential-token\n"),
        ("client_secret.json", "{}\n"),
        ("gmail-bearer-token", "bearer\n"),
        ("build-listener-secret", "listener-credential-secret\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    dir
}

fn parse(text: &str, dir: Option<&Path>) -> Result<Config, String> {
    Config::parse_with_credentials(text, Path::new(PATH), dir).map_err(|e| e.to_string())
}

#[test]
fn credentials_resolve_in_the_directory_and_their_mode_is_not_a_warning() {
    let dir = credentials_dir();
    let c = parse(WITH_CREDENTIALS, Some(dir.path())).unwrap();
    assert_eq!(c.jenkins.api_token().expose(), "jenkins-credential-token");
    assert_eq!(
        c.build_listener.secret().expose(),
        "listener-credential-secret"
    );
    assert_eq!(c.gerrit.netrc, Some(dir.path().join("netrc")));
    assert_eq!(
        c.gmail.client_secret_file,
        dir.path().join("client_secret.json")
    );
    assert_eq!(
        c.gmail.bearer_token_file,
        Some(dir.path().join("gmail-bearer-token"))
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn plain_paths_still_warn_about_their_mode_beside_credentials() {
    let dir = credentials_dir();
    let plain = tempfile::tempdir().unwrap();
    let token = plain.path().join("token");
    std::fs::write(&token, "plain-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = WITH_CREDENTIALS.replace(
        "\"credential:jenkins-api-token\"",
        &format!("{:?}", token.display().to_string()),
    );
    let c = parse(&text, Some(dir.path())).unwrap();
    assert_eq!(c.jenkins.api_token().expose(), "plain-token");
    let keys: Vec<&str> = c.warnings().iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["[jenkins] api_token_file"]);
}

#[test]
fn without_the_directory_the_first_credential_key_is_named_with_the_fix() {
    let err = parse(WITH_CREDENTIALS, None).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{PATH}: [gerrit] netrc: credential:netrc: $CREDENTIALS_DIRECTORY is not set"
        )),
        "{err}"
    );
    assert!(err.contains("LoadCredential=netrc:PATH"), "{err}");
}

#[test]
fn a_credential_the_unit_does_not_load_is_named_with_its_key() {
    let dir = credentials_dir();
    std::fs::remove_file(dir.path().join("build-listener-secret")).unwrap();
    let err = parse(WITH_CREDENTIALS, Some(dir.path())).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{PATH}: [build_listener] secret_file: credential:build-listener-secret: \
             there is no credential build-listener-secret in {}",
            dir.path().display()
        )),
        "{err}"
    );
    assert!(
        err.contains("add LoadCredential=build-listener-secret:PATH to the unit"),
        "{err}"
    );
}

#[test]
fn an_empty_credential_is_refused_without_showing_anything_of_it() {
    let dir = credentials_dir();
    std::fs::write(dir.path().join("jenkins-api-token"), "\n").unwrap();
    let err = parse(WITH_CREDENTIALS, Some(dir.path())).unwrap_err();
    assert!(
        err.contains("[jenkins] api_token_file: ") && err.ends_with("jenkins-api-token is empty"),
        "{err}"
    );
}

#[test]
fn the_token_cache_cannot_be_a_credential() {
    let dir = credentials_dir();
    let text = WITH_CREDENTIALS.replace(
        "[gmail]\n",
        "[gmail]\ntoken_cache_file = \"credential:gmail-token.json\"\n",
    );
    let err = parse(&text, Some(dir.path())).unwrap_err();
    assert!(
        err.starts_with(&format!("{PATH}: [gmail] token_cache_file: ")),
        "{err}"
    );
    assert!(err.contains("credentials are read-only"), "{err}");
}

#[test]
fn a_credential_name_with_a_slash_is_refused() {
    let dir = credentials_dir();
    let text = WITH_CREDENTIALS.replace("credential:netrc", "credential:../netrc");
    let err = parse(&text, Some(dir.path())).unwrap_err();
    assert!(
        err.starts_with(&format!("{PATH}: [gerrit] netrc: credential:\"../netrc\"")),
        "{err}"
    );
}
