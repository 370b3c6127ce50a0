//! Reading the file: the whole configuration as the daemons need it, the
//! same without its secrets (for `check`, which reads each secret itself to
//! report on each), and the `[gmail]` table alone (for `gmail-listener
//! auth`, which needs nothing else). Each resolves the `credential:NAME`
//! file keys it reads in `$CREDENTIALS_DIRECTORY` (see [`credential`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    Config, ConfigWarning, DEFAULT_PATH, GmailConfig, LogConfig, credential, toml_error, validate,
};

/// A configuration error; its message names the file and, where it can, the key.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
    /// The file names a `credential:NAME` that is not there
    /// (`$CREDENTIALS_DIRECTORY` unset, or without it): what is to fix is
    /// where the daemon runs, not the file.
    pub missing_credential: bool,
}

/// The configuration file to read: `cli` (`--config`), else the
/// `BIONICBB_CONFIG` environment variable when set and not empty, else
/// [`DEFAULT_PATH`].
pub fn config_path(cli: Option<PathBuf>) -> PathBuf {
    cli.or_else(|| {
        std::env::var_os("BIONICBB_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// A secret of the configuration, given inline or as a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKey {
    /// `[jenkins] api_token` / `api_token_file`.
    JenkinsApiToken,
    /// `[build_listener] secret` / `secret_file`.
    BuildListenerSecret,
}

impl SecretKey {
    pub const ALL: [SecretKey; 2] = [SecretKey::JenkinsApiToken, SecretKey::BuildListenerSecret];

    /// The key naming its file, as `[section] key`.
    pub fn file_key(self) -> &'static str {
        match self {
            SecretKey::JenkinsApiToken => "[jenkins] api_token_file",
            SecretKey::BuildListenerSecret => "[build_listener] secret_file",
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
        missing_credential: false,
    })
}

impl Config {
    /// Reads and validates the file at `path`, and the secret files it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&read(path)?, path)
    }

    /// Parses and validates `text`, reading the secret files it names;
    /// `path` names the file in errors. `credential:NAME` values are looked
    /// up in `$CREDENTIALS_DIRECTORY`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with_credentials(text, path, credential::directory().as_deref())
    }

    /// [`Config::parse`] with `credential:NAME` values looked up in
    /// `credentials` (`None`: such values are errors).
    pub fn parse_with_credentials(
        text: &str,
        path: &Path,
        credentials: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut config = Self::parse_structure(text, path)?;
        validate::validate(&mut config, credentials).map_err(|e| error(path, e))?;
        Ok(config)
    }

    /// Reads and validates the file at `path` like [`Config::load`], its
    /// `credential:NAME` keys resolved, but reads no secret: each stays
    /// empty until [`Config::resolve_secret`]. For `check`, which reports
    /// on each secret separately.
    pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let mut config = Self::parse_structure(&text, path)?;
        validate::structure(&mut config, credential::directory().as_deref())
            .map_err(|e| error(path, e))?;
        Ok(config)
    }

    fn parse_structure(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            message: toml_error::describe(text, &e),
            missing_credential: false,
        })
    }

    /// Reads the secret `key` (inline, or from its file) of a configuration
    /// loaded by [`Config::load_without_secrets`]. The error names the key
    /// and the file; a file that group or others may read is accepted, and
    /// its warning returned (and kept in [`Config::warnings`]).
    pub fn resolve_secret(
        &mut self,
        key: SecretKey,
        path: &Path,
    ) -> Result<Option<ConfigWarning>, ConfigError> {
        let warning = validate::secret(self, key).map_err(|e| error(path, e))?;
        self.warnings.extend(warning.clone());
        Ok(warning)
    }

    /// The file the secret `key` is read from, when it is not inline.
    pub fn secret_file(&self, key: SecretKey) -> Option<&Path> {
        match key {
            SecretKey::JenkinsApiToken => self.jenkins.api_token_file.as_deref(),
            SecretKey::BuildListenerSecret => self.build_listener.secret_file.as_deref(),
        }
    }
}

fn error(path: &Path, e: validate::KeyError) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        message: e.to_string(),
        missing_credential: e.missing_credential,
    }
}

/// The part of the file `gmail-listener auth` reads: `[log]` and `[gmail]`,
/// validated (and its credentials resolved) as [`Config::load`] would. The other tables are not read: they
/// may be missing or unfinished while the Gmail account is being set up.
#[derive(Debug, Clone, Deserialize)]
pub struct GmailOnly {
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub gmail: GmailConfig,
}

impl GmailOnly {
    pub fn load(path: &Path) -> Result<GmailOnly, ConfigError> {
        let text = read(path)?;
        let mut only: GmailOnly = toml::from_str(&text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            message: toml_error::describe(&text, &e),
            missing_credential: false,
        })?;
        validate::gmail(&only.gmail).map_err(|e| error(path, e))?;
        validate::gmail_credentials(&mut only.gmail, credential::directory().as_deref())
            .map_err(|e| error(path, e))?;
        Ok(only)
    }
}
