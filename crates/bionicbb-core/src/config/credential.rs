//! `credential:NAME`: a secret file handed over by systemd.
//!
//! A unit with `LoadCredential=NAME:/etc/bionicbb/NAME` has systemd read the
//! file (which may then be root's alone), copy it to a private read-only
//! directory of the service, and name that directory in
//! `$CREDENTIALS_DIRECTORY`. A `*_file` key (or `gerrit.netrc`) written as
//! `"credential:NAME"` stands for `$CREDENTIALS_DIRECTORY/NAME`; any other
//! value is a plain path, as before. Resolution happens once, at load time
//! (with the rest of the file's structure, before any secret is read), so
//! every reader of the key sees an ordinary path.

use std::path::{Path, PathBuf};

use super::{Config, GmailConfig};

/// What starts a credential reference.
pub const PREFIX: &str = "credential:";

/// The variable systemd sets for a unit with `LoadCredential=`.
pub const DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// `$CREDENTIALS_DIRECTORY`, when set and not empty.
pub fn directory() -> Option<PathBuf> {
    std::env::var_os(DIRECTORY_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The credential name of `value` when it is written `credential:NAME`.
pub fn name(value: &Path) -> Option<&str> {
    value.to_str()?.strip_prefix(PREFIX)
}

/// Whether `path` lies in the credentials directory `dir`: systemd made
/// that copy and set its mode, so a mode that looks open (an ACL shows in
/// the group bits) is not the operator's to fix.
pub fn is_loaded(path: &Path, dir: Option<&Path>) -> bool {
    dir.is_some_and(|dir| path.starts_with(dir))
}

/// Why a `credential:NAME` value cannot be used. The message says what to
/// fix; it names the credential and the directory, which are not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    pub message: String,
    /// The value is a valid credential name, but the credential is not
    /// there (`$CREDENTIALS_DIRECTORY` unset, or without it): what is to
    /// fix is where the daemon runs, not the configuration file.
    pub not_found: bool,
}

impl CredentialError {
    fn in_file(message: String) -> Self {
        CredentialError {
            message,
            not_found: false,
        }
    }

    fn not_found(message: String) -> Self {
        CredentialError {
            message,
            not_found: true,
        }
    }
}

/// `value` with a `credential:NAME` form replaced by `dir/NAME`; any other
/// value unchanged.
pub fn resolve(value: &Path, dir: Option<&Path>) -> Result<PathBuf, CredentialError> {
    let Some(name) = name(value) else {
        return Ok(value.to_path_buf());
    };
    if !valid_name(name) {
        return Err(CredentialError::in_file(format!(
            "{PREFIX}{name:?}: a credential name is a file name: not empty, \
             without '/', not \".\" or \"..\""
        )));
    }
    let Some(dir) = dir else {
        return Err(CredentialError::not_found(format!(
            "{PREFIX}{name}: ${DIRECTORY_VAR} is not set (systemd sets it for a unit \
             with LoadCredential={name}:PATH; from a shell, set {DIRECTORY_VAR} to the \
             directory holding {name}, or give the file's path instead)"
        )));
    };
    let path = dir.join(name);
    if !path.exists() {
        return Err(CredentialError::not_found(format!(
            "{PREFIX}{name}: there is no credential {name} in {}: add \
             LoadCredential={name}:PATH to the unit",
            dir.display()
        )));
    }
    Ok(path)
}

/// Replaces each `credential:NAME` file key of `config` by its path in
/// `dir`; an error comes with its key, as `[section] key`.
pub(super) fn resolve_paths(
    config: &mut Config,
    dir: Option<&Path>,
) -> Result<(), (&'static str, CredentialError)> {
    let keys = [
        ("[gerrit] netrc", config.gerrit.netrc.as_mut()),
        (
            "[jenkins] api_token_file",
            config.jenkins.api_token_file.as_mut(),
        ),
        (
            "[build_listener] secret_file",
            config.build_listener.secret_file.as_mut(),
        ),
    ];
    for (key, path) in keys {
        if let Some(path) = path {
            *path = resolve(path, dir).map_err(|e| (key, e))?;
        }
    }
    resolve_gmail_paths(&mut config.gmail, dir)
}

/// [`resolve_paths`] for the `[gmail]` table alone. The token cache is
/// written by the daemon, so it cannot be a credential (systemd's copies
/// are read-only).
pub(super) fn resolve_gmail_paths(
    gmail: &mut GmailConfig,
    dir: Option<&Path>,
) -> Result<(), (&'static str, CredentialError)> {
    const CLIENT_SECRET: &str = "[gmail] client_secret_file";
    gmail.client_secret_file =
        resolve(&gmail.client_secret_file, dir).map_err(|e| (CLIENT_SECRET, e))?;
    if let Some(path) = &mut gmail.bearer_token_file {
        *path = resolve(path, dir).map_err(|e| ("[gmail] bearer_token_file", e))?;
    }
    if name(&gmail.token_cache_file).is_some() {
        return Err((
            "[gmail] token_cache_file",
            CredentialError::in_file(
                "the daemon writes the token cache, and credentials are read-only: \
                 give a path in the state directory"
                    .to_string(),
            ),
        ));
    }
    Ok(())
}

/// systemd's rule for a credential name: a valid file name.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_unchanged_with_or_without_a_directory() {
        let plain = Path::new("/etc/bionicbb/netrc");
        assert_eq!(resolve(plain, None).unwrap(), plain);
        assert_eq!(resolve(plain, Some(Path::new("/run/c"))).unwrap(), plain);
        assert_eq!(name(plain), None);
        assert_eq!(name(Path::new("credential:netrc")), Some("netrc"));
    }

    #[test]
    fn a_credential_is_found_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("netrc"), "x").unwrap();
        let path = resolve(Path::new("credential:netrc"), Some(dir.path())).unwrap();
        assert_eq!(path, dir.path().join("netrc"));
        assert!(is_loaded(&path, Some(dir.path())));
        assert!(!is_loaded(
            Path::new("/etc/bionicbb/netrc"),
            Some(dir.path())
        ));
        assert!(!is_loaded(&path, None));
    }

    #[test]
    fn without_the_directory_the_error_says_how_to_provide_it() {
        let err = resolve(Path::new("credential:jenkins-api-token"), None).unwrap_err();
        assert!(err.not_found, "where the daemon runs is to fix");
        let err = err.to_string();
        assert!(err.contains("$CREDENTIALS_DIRECTORY is not set"), "{err}");
        assert!(
            err.contains("LoadCredential=jenkins-api-token:PATH"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_credential_names_the_unit_setting() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(Path::new("credential:absent"), Some(dir.path())).unwrap_err();
        assert!(err.not_found);
        let err = err.to_string();
        assert!(err.contains("no credential absent in"), "{err}");
        assert!(err.contains("LoadCredential=absent:PATH"), "{err}");
    }

    #[test]
    fn names_that_are_not_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "credential:",
            "credential:..",
            "credential:.",
            "credential:a/b",
        ] {
            let err = resolve(Path::new(bad), Some(dir.path())).unwrap_err();
            assert!(!err.not_found, "{bad}: the file is to fix");
            assert!(
                err.message.contains("a credential name is a file name"),
                "{bad}: {err}"
            );
        }
    }
}
