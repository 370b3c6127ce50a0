//! `credential:NAME`: a secret file handed over by systemd.
//!
//! A unit with `LoadCredential=NAME:/etc/bionicbb/NAME` has systemd read the
//! file (which may then be root's alone), copy it to a private read-only
//! directory of the service, and name that directory in
//! `$CREDENTIALS_DIRECTORY`. A `*_file` key (or `gerrit.netrc`) written as
//! `"credential:NAME"` stands for `$CREDENTIALS_DIRECTORY/NAME`; any other
//! value is a plain path, as before. Resolution happens once, at load time,
//! so every reader of the key sees an ordinary path.

use std::path::{Path, PathBuf};

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

/// `value` with a `credential:NAME` form replaced by `dir/NAME`; any other
/// value unchanged. The message of an error says what to fix; it names the
/// credential and the directory, which are not secret.
pub fn resolve(value: &Path, dir: Option<&Path>) -> Result<PathBuf, String> {
    let Some(name) = name(value) else {
        return Ok(value.to_path_buf());
    };
    if !valid_name(name) {
        return Err(format!(
            "{PREFIX}{name:?}: a credential name is a file name: not empty, \
             without '/', not \".\" or \"..\""
        ));
    }
    let Some(dir) = dir else {
        return Err(format!(
            "{PREFIX}{name}: ${DIRECTORY_VAR} is not set (systemd sets it for a unit \
             with LoadCredential={name}:PATH; from a shell, set {DIRECTORY_VAR} to the \
             directory holding {name}, or give the file's path instead)"
        ));
    };
    let path = dir.join(name);
    if !path.exists() {
        return Err(format!(
            "{PREFIX}{name}: there is no credential {name} in {}: add \
             LoadCredential={name}:PATH to the unit",
            dir.display()
        ));
    }
    Ok(path)
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
            assert!(
                err.contains("a credential name is a file name"),
                "{bad}: {err}"
            );
        }
    }
}
