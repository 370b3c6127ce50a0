//! Credentials for the Gmail API: a bearer token read from a file, or the
//! OAuth 2.0 installed-application flow with a token cache on disk.
//!
//! The daemon never runs the interactive flow: it only uses a cache that
//! `gmail-listener auth` wrote, and its flow delegate refuses to show a
//! consent URL, so a missing or revoked token fails loudly instead of
//! blocking on standard input.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use google_gmail1::common::GetToken;
use google_gmail1::yup_oauth2;
use yup_oauth2::authenticator_delegate::InstalledFlowDelegate;

use super::errors::{AUTH_HINT, MailboxError};

/// The one scope every call asks for: read, relabel and trash mail (not
/// permanent deletion). Asking for one scope string everywhere lets the
/// cached token serve every call.
pub const MODIFY_SCOPE: &str = "https://www.googleapis.com/auth/gmail.modify";

/// Where Google sends the browser after consent. Nothing listens there: the
/// operator copies the `code` from the address bar of the failed redirect.
/// (The out-of-band `urn:ietf:wg:oauth:2.0:oob` redirect is no longer
/// accepted by Google.)
pub const REDIRECT_URI: &str = "http://localhost:8085";

type TokenFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// A bearer token minted elsewhere and kept in a file. The file is read
/// again whenever its modification time or size changes, so a rotated token
/// is picked up without a restart.
#[derive(Clone)]
pub struct TokenFile {
    path: Arc<PathBuf>,
    cache: Arc<Mutex<Option<CachedToken>>>,
}

struct CachedToken {
    modified: Option<SystemTime>,
    len: u64,
    token: String,
}

impl std::fmt::Debug for TokenFile {
    // The token itself stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish()
    }
}

impl TokenFile {
    /// Reads the token once, so that a missing or empty file is reported at
    /// startup rather than at the first call.
    pub async fn open(path: &Path) -> Result<TokenFile, MailboxError> {
        let file = TokenFile {
            path: Arc::new(path.to_path_buf()),
            cache: Arc::new(Mutex::new(None)),
        };
        file.token().await.map_err(MailboxError::Auth)?;
        Ok(file)
    }

    /// The current token, re-read if the file changed.
    pub async fn token(&self) -> Result<String, String> {
        let path = self.path.as_path();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("bearer token file {}: {e}", path.display()))?;
        let modified = meta.modified().ok();
        if let Ok(cache) = self.cache.lock()
            && let Some(cached) = cache.as_ref()
            && cached.modified == modified
            && cached.len == meta.len()
        {
            return Ok(cached.token.clone());
        }
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("bearer token file {}: {e}", path.display()))?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err(format!("bearer token file {} is empty", path.display()));
        }
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(CachedToken {
                modified,
                len: meta.len(),
                token: token.clone(),
            });
        }
        Ok(token)
    }
}

impl GetToken for TokenFile {
    fn get_token<'a>(&'a self, _scopes: &'a [&str]) -> TokenFuture<'a> {
        Box::pin(async move { self.token().await.map(Some).map_err(Into::into) })
    }
}

/// The daemon's flow delegate: the cache must already hold a token, so any
/// request to show a consent URL is an error.
#[derive(Debug, Clone, Copy)]
struct RefuseInteractive;

impl InstalledFlowDelegate for RefuseInteractive {
    fn redirect_uri(&self) -> Option<&str> {
        Some(REDIRECT_URI)
    }

    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async {
            Err(format!(
                "the Gmail token cache has no usable token for {MODIFY_SCOPE}; {AUTH_HINT}"
            ))
        })
    }
}

/// The `auth` subcommand's delegate: prints the consent URL and reads the
/// code (or the whole redirect URL) from standard input.
#[derive(Debug, Clone, Copy)]
struct AskOperator;

impl InstalledFlowDelegate for AskOperator {
    fn redirect_uri(&self) -> Option<&str> {
        Some(REDIRECT_URI)
    }

    fn present_user_url<'a>(
        &'a self,
        url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            use tokio::io::AsyncBufReadExt;
            eprintln!(
                "Open this URL in a browser, sign in as the bot's Gmail account and allow access:\n\n  {url}\n\n\
                 The browser then fails to load {REDIRECT_URI}/?...&code=...; paste that whole \
                 address (or just the code) here and press Enter:"
            );
            let mut line = String::new();
            tokio::io::BufReader::new(tokio::io::stdin())
                .read_line(&mut line)
                .await
                .map_err(|e| format!("cannot read the code: {e}"))?;
            extract_code(&line).ok_or_else(|| "no authorization code given".to_string())
        })
    }
}

/// The authorization code from what the operator pasted: either the bare
/// code or the redirect URL carrying it in its `code` parameter.
pub fn extract_code(input: &str) -> Option<String> {
    let input = input.trim();
    if input.is_empty() {
        return None;
    }
    if input.starts_with("http://") || input.starts_with("https://") {
        let url = url::Url::parse(input).ok()?;
        return url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .filter(|c| !c.is_empty());
    }
    Some(input.to_string())
}

/// Checks, without any network call, that `path` is a yup-oauth2 token cache
/// holding a token for [`MODIFY_SCOPE`] that can be used or refreshed.
pub fn check_token_cache(path: &Path) -> Result<(), MailboxError> {
    let unusable = |why: String| {
        MailboxError::Auth(format!(
            "token cache {}: {why}; {AUTH_HINT}",
            path.display()
        ))
    };
    let bytes = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|_| unusable("not a token cache written by `gmail-listener auth`".into()))?;
    let usable = entries.iter().any(|entry| {
        let covers = entry["scopes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(MODIFY_SCOPE)));
        let token = &entry["token"];
        let has = |key: &str| token[key].as_str().is_some_and(|t| !t.is_empty());
        covers && (has("refresh_token") || has("access_token"))
    });
    if usable {
        Ok(())
    } else {
        Err(unusable(format!("no token for {MODIFY_SCOPE}")))
    }
}

/// The daemon's authenticator: reads the client secret and the token cache,
/// refreshes tokens as needed, and never prompts.
pub async fn daemon_authenticator(
    client_secret_file: &Path,
    token_cache_file: &Path,
) -> Result<impl GetToken + 'static, MailboxError> {
    check_token_cache(token_cache_file)?;
    let secret = read_secret(client_secret_file).await?;
    yup_oauth2::InstalledFlowAuthenticator::builder(
        secret,
        yup_oauth2::InstalledFlowReturnMethod::Interactive,
    )
    .flow_delegate(Box::new(RefuseInteractive))
    .persist_tokens_to_disk(token_cache_file)
    .build()
    .await
    .map_err(|e| MailboxError::Auth(format!("token cache {}: {e}", token_cache_file.display())))
}

async fn read_secret(path: &Path) -> Result<yup_oauth2::ApplicationSecret, MailboxError> {
    yup_oauth2::read_application_secret(path)
        .await
        .map_err(|e| {
            MailboxError::Config(format!(
                "OAuth client secret {}: {e} (download the installed-application client JSON \
                 from the Google Cloud console)",
                path.display()
            ))
        })
}

/// The `auth` subcommand: runs the consent flow on the terminal (always
/// with the consent screen, so a refresh token is issued) and writes a
/// fresh token cache (mode 0600). The new cache is written next to the old
/// one and renamed over it only once a token was obtained, so a failed or
/// abandoned run leaves the working cache alone.
pub async fn authorize(config: &bionicbb_core::config::GmailConfig) -> Result<(), MailboxError> {
    bionicbb_core::tls::install_crypto_provider();
    let secret = read_secret(&config.client_secret_file).await?;
    let target = &config.token_cache_file;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| MailboxError::Config(format!("{}: {e}", dir.display())))?;
    }
    let mut staging = target.clone().into_os_string();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    // A leftover from an abandoned run must not satisfy the flow.
    let _ = std::fs::remove_file(&staging);

    let auth = yup_oauth2::InstalledFlowAuthenticator::builder(
        secret,
        yup_oauth2::InstalledFlowReturnMethod::Interactive,
    )
    .flow_delegate(Box::new(AskOperator))
    // `prompt=select_account consent` (with yup-oauth2's `access_type=
    // offline`): Google issues a refresh token only with a consent, and
    // skips the consent screen for an account that already granted the
    // scope, so without it a re-authorization yields a cache without a
    // refresh token, which stops working within the hour.
    .force_account_selection(true)
    .persist_tokens_to_disk(&staging)
    .build()
    .await
    .map_err(|e| MailboxError::Auth(format!("{}: {e}", staging.display())))?;
    auth.token(&[MODIFY_SCOPE])
        .await
        .map_err(|e| MailboxError::Auth(format!("authorization failed: {e}")))?;

    restrict_to_owner(&staging)?;
    check_token_cache(&staging)?;
    std::fs::rename(&staging, target).map_err(|e| {
        MailboxError::Config(format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            target.display()
        ))
    })?;
    eprintln!("Token cache written to {}", target.display());
    Ok(())
}

/// The cache holds a refresh token: readable by its owner only.
fn restrict_to_owner(path: &Path) -> Result<(), MailboxError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| MailboxError::Config(format!("chmod 600 {}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_from_redirect_url_or_bare() {
        assert_eq!(
            extract_code("http://localhost:8085/?state=x&code=4%2F0AbC-d&scope=s\n").as_deref(),
            Some("4/0AbC-d")
        );
        assert_eq!(extract_code("  4/0AbC  ").as_deref(), Some("4/0AbC"));
        assert_eq!(
            extract_code("http://localhost:8085/?error=access_denied"),
            None
        );
        assert_eq!(extract_code("\n"), None);
    }

    #[test]
    fn token_cache_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let err = check_token_cache(&path).unwrap_err().to_string();
        assert!(err.contains("gmail-listener auth"), "{err}");

        std::fs::write(&path, b"{\"installed\":{}}").unwrap();
        let err = check_token_cache(&path).unwrap_err().to_string();
        assert!(err.contains("not a token cache"), "{err}");

        let other = r#"[{"scopes":["https://www.googleapis.com/auth/gmail.readonly"],
            "token":{"access_token":"a","refresh_token":"r","expires_at":null,"id_token":null}}]"#;
        std::fs::write(&path, other).unwrap();
        let err = check_token_cache(&path).unwrap_err().to_string();
        assert!(err.contains("no token for"), "{err}");

        let good = format!(
            r#"[{{"scopes":["{MODIFY_SCOPE}"],
            "token":{{"access_token":null,"refresh_token":"r","expires_at":null,"id_token":null}}}}]"#
        );
        std::fs::write(&path, good).unwrap();
        check_token_cache(&path).unwrap();
    }

    #[tokio::test]
    async fn token_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bearer");
        std::fs::write(&path, "first\n").unwrap();
        let file = TokenFile::open(&path).await.unwrap();
        assert_eq!(file.token().await.unwrap(), "first");
        std::fs::write(&path, "second-token\n").unwrap();
        assert_eq!(file.token().await.unwrap(), "second-token");
        assert!(!format!("{file:?}").contains("second"));
        std::fs::write(&path, "  \n").unwrap();
        assert!(file.token().await.unwrap_err().contains("empty"));
    }
}
