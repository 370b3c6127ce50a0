//! The checks made on this machine: the configuration file, each secret
//! (readable, not empty, private) and the netrc entry for the Gerrit host.

use std::path::Path;

use super::{Checkup, Item, Report, private_file};
use crate::config::{Config, SecretKey, credential};
use crate::netrc::{self, NetrcError};

/// Runs the offline checks of the configuration at `path`.
pub fn check(path: &Path) -> Checkup {
    let mut checkup = Checkup {
        report: Report::default(),
        config: None,
        credentials: None,
        jenkins_token: false,
    };
    let report = &mut checkup.report;
    let mut config = match Config::load_without_secrets(path) {
        Ok(config) => config,
        Err(e) => {
            let fix = if e.missing_credential {
                format!(
                    "run the check where the daemon runs, with {var} naming the directory \
                     that holds the credentials (systemd sets it for the unit; from a shell, \
                     {var}=/etc/bionicbb as a user who may read them, for the units shipped)",
                    var = credential::DIRECTORY_VAR
                )
            } else {
                format!(
                    "edit {} (config.example.toml documents every key)",
                    path.display()
                )
            };
            report.push(Item::fail("config", e.to_string(), fix));
            return checkup;
        }
    };
    report.push(Item::ok("config", format!("{} is valid", path.display())));
    let mut inline = false;
    for key in SecretKey::ALL {
        let (item, read) = secret(&mut config, key, path);
        if key == SecretKey::JenkinsApiToken {
            checkup.jenkins_token = read;
        }
        inline |= config.secret_file(key).is_none();
        report.push(item);
    }
    if inline {
        report.push(private_file(
            "config",
            path,
            format!("{} holds a secret and is private", path.display()),
        ));
    }
    let (item, credentials) = gerrit_netrc(&config);
    report.push(item);
    checkup.credentials = credentials;
    checkup.config = Some(config);
    checkup
}

/// The mode bits of `path` when group or others may access it (a file that
/// holds a secret should be 0600); `None` when private or unreadable.
pub fn open_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        netrc::too_open(mode).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// One secret: read (the configuration's own error names the key and the
/// file), then its file's mode; and whether it was read.
fn secret(config: &mut Config, key: SecretKey, config_path: &Path) -> (Item, bool) {
    let subject = key.file_key();
    let file = config.secret_file(key).map(Path::to_path_buf);
    if let Err(e) = config.resolve_secret(key, config_path) {
        let fix = match &file {
            Some(file) => format!(
                "write the secret, on one line, into {} (readable by the daemon's user, chmod 600)",
                file.display()
            ),
            None => format!("set {subject} in {}", config_path.display()),
        };
        return (Item::fail(subject, e.message, fix), false);
    }
    let item = match file {
        Some(file) => private_file(subject, &file, format!("read from {}", file.display())),
        None => Item::ok(subject, "given inline"),
    };
    (item, true)
}

/// The netrc entry for the Gerrit host, and the credentials when usable.
fn gerrit_netrc(config: &Config) -> (Item, Option<netrc::Credentials>) {
    const SUBJECT: &str = "[gerrit] netrc";
    let host = config.gerrit.url.host_str().unwrap_or_default().to_string();
    let entry = format!("machine {host} login USER password HTTP-PASSWORD");
    let Some(path) = netrc::netrc_path(config.gerrit.netrc.as_deref()) else {
        return (
            Item::fail(
                SUBJECT,
                NetrcError::NoFile.to_string(),
                "set [gerrit] netrc to the file holding the bot's Gerrit HTTP password",
            ),
            None,
        );
    };
    let shown = path.display();
    match netrc::credentials_for(Some(&path), &host) {
        Err(e) => {
            let fix = match &e {
                NetrcError::Syntax { line, .. } => format!("correct line {line} of {shown}"),
                NetrcError::Incomplete { missing, .. } => {
                    format!("add the {missing} to the entry for {host} in {shown}")
                }
                _ => format!(
                    "create {shown}, readable by the daemon's user (chmod 600), with `{entry}`"
                ),
            };
            (Item::fail(SUBJECT, e.to_string(), fix), None)
        }
        Ok(None) => (
            Item::fail(
                SUBJECT,
                format!("{shown} has no entry for {host} and no default entry"),
                format!("add `{entry}` to {shown}"),
            ),
            None,
        ),
        Ok(Some(credentials)) => {
            let item = private_file(
                SUBJECT,
                &path,
                format!(
                    "{shown} has credentials for {host} (login {})",
                    credentials.login
                ),
            );
            (item, Some(credentials))
        }
    }
}
