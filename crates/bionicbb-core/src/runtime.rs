//! What both daemons do at start-up and shutdown: logging, the clients
//! built from the configuration, and the shutdown signal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;
use crate::gerrit::GerritClient;
use crate::jenkins::JenkinsClient;
use crate::retry::RetryPolicy;

/// Installs the log subscriber as `config` says, then logs the warnings of
/// its load: they could not be logged earlier, since the logging settings
/// come from the same file. Safe to call twice (the second call installs
/// nothing and logs the warnings again).
pub fn init_logging(config: &Config) {
    install_subscriber(config.log.json);
    for w in config.warnings() {
        tracing::warn!(key = %w.key, file = %w.file.display(), "{}", w.message);
    }
}

/// Installs the log subscriber: `RUST_LOG` filtering (default `info`), plain
/// text (ANSI colours only on a terminal) or one JSON object per line.
fn install_subscriber(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
}

/// An error building a client from the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The retry policy for calls made while handling one mail or request:
/// a few quick retries; longer outages are left to the next poll or the
/// outbox.
pub fn request_policy(timeout: std::time::Duration) -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        attempt_timeout: timeout,
        ..RetryPolicy::default()
    }
}

/// The Gerrit client, authenticated with the bot's HTTP password from the
/// netrc file (exact host, then `default`).
pub fn gerrit_client(config: &Config) -> Result<GerritClient, SetupError> {
    let host = config.gerrit.url.host_str().unwrap_or_default().to_string();
    let credentials = crate::netrc::credentials_for(config.gerrit.netrc.as_deref(), &host)
        .map_err(|e| SetupError(format!("Gerrit credentials: {e}")))?
        .ok_or_else(|| {
            SetupError(format!(
                "Gerrit credentials: the netrc file has no entry for {host} and no default entry"
            ))
        })?;
    GerritClient::new(
        config.gerrit.url.clone(),
        Some(credentials),
        config.gerrit.timeout,
        request_policy(config.gerrit.timeout),
    )
    .map_err(|e| SetupError(format!("Gerrit client: {e}")))
}

/// The Jenkins client, authenticated with the user's API token.
pub fn jenkins_client(config: &Config) -> Result<JenkinsClient, SetupError> {
    JenkinsClient::new(
        config.jenkins.url.clone(),
        &config.jenkins.user,
        config.jenkins.api_token().clone(),
        config.jenkins.timeout,
        request_policy(config.jenkins.timeout),
    )
    .map_err(|e| SetupError(format!("Jenkins client: {e}")))
}

/// A future that resolves when the process receives SIGTERM or SIGINT
/// (Ctrl-C). The handlers are installed when this function is called, not
/// when the future is first polled, so a signal that arrives between start-up
/// and the first await is not lost (and does not kill the process).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match terminate.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match interrupt.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => tracing::info!("SIGTERM received: shutting down"),
                _ = int => tracing::info!("SIGINT received: shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received: shutting down");
        }
    }
}

/// Tells systemd (`Type=notify`) that the daemon is ready, and starts the
/// watchdog pings when the unit sets `WatchdogSec=`. Outside systemd
/// (`NOTIFY_SOCKET` unset) it does nothing. Call it once the daemon really
/// serves: after the listener is bound, or once the Gmail labels are resolved.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        let interval = timeout / 2;
        tracing::info!(?interval, "systemd watchdog enabled");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// Tells systemd what the daemon is doing, in one line that `systemctl
/// status` shows (`STATUS=`). Outside systemd it does nothing.
pub fn notify_status(text: &str) {
    // One line: systemd keeps the whole value, a newline would end it.
    let line = text.replace(['\n', '\r'], " ");
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]) {
        tracing::debug!(error = %e, "cannot send the status to systemd");
    }
}

/// Tells systemd that the daemon is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
