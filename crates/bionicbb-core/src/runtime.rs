//! What both daemons do at start-up and shutdown: logging, the clients
//! built from the configuration, and the shutdown signal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogConfig};
use crate::gerrit::GerritClient;
use crate::jenkins::JenkinsClient;
use crate::retry::RetryPolicy;

/// Installs the log subscriber as `config` says, then logs the warnings of
/// its load: they could not be logged earlier, since the logging settings
/// come from the same file. Safe to call twice (the second call installs
/// nothing and logs the warnings again).
pub fn init_logging(config: &Config) {
    install_logging(&config.log);
    for w in config.warnings() {
        tracing::warn!(key = %w.key, file = %w.file.display(), "{}", w.message);
    }
}

/// Installs the log subscriber: `RUST_LOG` filtering (default `info`), plain
/// text (ANSI colours only on a terminal) or one JSON object per line, both
/// on standard error, where the start-up failure line goes too (journald
/// takes either stream; one stream keeps one order).
pub fn install_logging(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if log.json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
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

/// The exit status of a daemon that cannot start because of what the
/// operator gave it (the configuration file, a secret or netrc file, the
/// state directory, the Gmail authorization): restarting cannot help, so
/// the systemd units do not restart on it (`RestartPreventExitStatus=2`).
pub const EXIT_CONFIG: u8 = 2;

/// Why a daemon cannot start, and whether a restart may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StartupFailure {
    /// True when the operator must fix something first (exit
    /// [`EXIT_CONFIG`]); false when the cause may pass (an address in use,
    /// a server unreachable at boot: exit 1, and systemd restarts).
    pub config: bool,
    /// What to fix, naming the file or key; never a secret.
    pub message: String,
}

impl StartupFailure {
    /// A failure the operator must fix.
    pub fn config(message: impl Into<String>) -> Self {
        StartupFailure {
            config: true,
            message: message.into(),
        }
    }

    /// A failure that may pass by itself.
    pub fn passing(message: impl Into<String>) -> Self {
        StartupFailure {
            config: false,
            message: message.into(),
        }
    }

    /// The failure of binding `addr`, the value of `key`: an address in
    /// use may be released; any other cause (an address this host does not
    /// have, a privileged port) needs the configuration changed.
    pub fn bind(key: &str, addr: std::net::SocketAddr, err: &std::io::Error) -> Self {
        let message = format!("cannot listen on {addr} ({key}): {err}");
        if err.kind() == std::io::ErrorKind::AddrInUse {
            Self::passing(message)
        } else {
            Self::config(message)
        }
    }

    /// The exit status: [`EXIT_CONFIG`] or 1.
    pub fn exit_code(&self) -> std::process::ExitCode {
        std::process::ExitCode::from(if self.config { EXIT_CONFIG } else { 1 })
    }

    /// Prints the one line `DAEMON: cannot start: MESSAGE` on standard
    /// error (plain text whatever the log format: it is read by a person)
    /// and returns the exit status.
    pub fn report(&self, daemon: &str) -> std::process::ExitCode {
        eprintln!("{daemon}: cannot start: {}", self.message);
        self.exit_code()
    }
}

/// An error and its causes on one line, each said once: a cause whose text
/// the line already holds is left out (a message built with `{source}` and
/// that also returns it as its `source()` would otherwise print it twice,
/// as in `cannot read x: Permission denied (os error 13): Permission
/// denied (os error 13)`).
pub fn error_line<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// [`error_line`] of `err` and its `source()` chain.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    error_line(std::iter::successors(Some(err), |e| e.source()))
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
/// netrc file (exact host, then `default`). Every error names the netrc
/// file.
pub fn gerrit_client(config: &Config) -> Result<GerritClient, SetupError> {
    let host = config.gerrit.url.host_str().unwrap_or_default().to_string();
    let path = crate::netrc::netrc_path(config.gerrit.netrc.as_deref()).ok_or_else(|| {
        SetupError(format!(
            "Gerrit credentials: {}",
            crate::netrc::NetrcError::NoFile
        ))
    })?;
    let credentials = crate::netrc::credentials_for(Some(&path), &host)
        .map_err(|e| SetupError(format!("Gerrit credentials: {e}")))?
        .ok_or_else(|| {
            SetupError(format!(
                "Gerrit credentials: {}: no entry for {host} and no default entry: add \
                 `machine {host} login USER password HTTP-PASSWORD`",
                path.display()
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

/// The line logged for each SIGHUP.
pub const SIGHUP_IGNORED: &str = "SIGHUP ignored: restart to reload the configuration";

/// Makes SIGHUP harmless for the rest of the process's life: by default it
/// kills the process, with a status systemd counts as a clean stop. Each
/// SIGHUP is logged ([`SIGHUP_IGNORED`]) and otherwise ignored: the
/// configuration and secrets are read at start only. Call it first thing
/// inside the runtime.
pub fn ignore_hangup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::warn!("{SIGHUP_IGNORED}");
                    }
                });
            }
            Err(e) => tracing::warn!("cannot handle SIGHUP: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says its cause and also returns it, as thiserror
    /// errors with `{source}` in their message do.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /etc/x: {source}")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let err = Read {
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let line = describe(&err);
        assert_eq!(line.matches("permission denied").count(), 1, "{line}");
        assert!(line.starts_with("cannot read /etc/x: "), "{line}");
    }

    #[test]
    fn causes_not_in_the_message_are_appended() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the ledger")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(describe(&err), "cannot open the ledger: disk on fire");
    }

    #[test]
    fn only_an_address_in_use_may_pass() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let failure = StartupFailure::bind("[build_listener] listen", addr, &in_use);
        assert!(!failure.config);
        assert!(
            failure
                .message
                .starts_with("cannot listen on 127.0.0.1:8080 ([build_listener] listen): "),
            "{}",
            failure.message
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(StartupFailure::bind("[build_listener] listen", addr, &denied).config);
        let gone = std::io::Error::from(std::io::ErrorKind::AddrNotAvailable);
        assert!(StartupFailure::bind("[build_listener] listen", addr, &gone).config);
    }
}
