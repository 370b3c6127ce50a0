//! The command line: the daemon (`gmail-listener [--once] [--dry-run]`),
//! `check [--online]` (the operator's checklist, see [`check`]), `auth`
//! (the one interactive Gmail authorization; it reads only the `[gmail]`
//! table) and `parse FILE...` (what the daemon would read in a mail,
//! without any network).
//!
//! A daemon that cannot start prints one plain line naming what to fix and
//! exits with [`EXIT_CONFIG`] when the operator must act, 1 when the cause
//! may pass (see [`StartupFailure`]).

mod check;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bionicbb_core::config::{CommandsConfig, Config, GmailOnly, config_path};
use bionicbb_core::runtime::{EXIT_CONFIG, StartupFailure};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::health::Health;
use crate::poll::Listener;

/// The name start-up failures are printed under.
const NAME: &str = "gmail-listener";

/// Polls the Gmail label Gerrit notifications land in, triggers Jenkins
/// builds and runs `bionicbb:` commands.
#[derive(Debug, Parser)]
#[command(name = "gmail-listener", version = env!("BIONICBB_VERSION"))]
pub struct Cli {
    /// Configuration file (default: $BIONICBB_CONFIG, else /etc/bionicbb/config.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Poll once and exit: 0 when every mail was handled, 1 when a mail hit
    /// a passing fault or Gmail could not be listed.
    #[arg(long)]
    pub once: bool,
    /// Read and decide, log each decision, change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, secrets, netrc entry and Gmail credentials;
    /// print a checklist; exit 0 only when every check passes.
    Check {
        /// Also ask Gerrit, Jenkins and Gmail one question each (and
        /// whether each job declares the parameters the bot sends).
        #[arg(long)]
        online: bool,
    },
    /// Authorize the Gmail account once, interactively, and cache the
    /// token. Reads only the gmail (and log) tables of the configuration.
    Auth,
    /// Print what each mail file says, as one JSON object per line (no network).
    Parse {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the command line; the exit status of the process.
pub fn main() -> ExitCode {
    bionicbb_core::tls::install_crypto_provider();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Parse { files }) => return parse_files(cli.config.clone(), files),
        Some(Command::Check { online }) => {
            return check::run(&config_path(cli.config.clone()), *online);
        }
        Some(Command::Auth) => return auth(&config_path(cli.config.clone())),
        None => {}
    }
    let path = config_path(cli.config.clone());
    let config = match Config::load(&path) {
        Ok(c) => Arc::new(c),
        Err(e) => return StartupFailure::config(e.to_string()).report(NAME),
    };
    bionicbb_core::runtime::init_logging(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            return StartupFailure::passing(format!("cannot start the async runtime: {e}"))
                .report(NAME);
        }
    };
    runtime.block_on(daemon(config, cli.once, cli.dry_run))
}

/// `auth`: the consent flow on the terminal, with the `[gmail]` table only.
fn auth(path: &Path) -> ExitCode {
    let fail = |message: String| {
        eprintln!("gmail-listener auth: {message}");
        ExitCode::FAILURE
    };
    let only = match GmailOnly::load(path) {
        Ok(only) => only,
        Err(e) => {
            eprintln!("gmail-listener auth: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    bionicbb_core::runtime::install_logging(&only.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(crate::gmail::authorize(&only.gmail)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
    }
}

async fn daemon(config: Arc<Config>, once: bool, dry_run: bool) -> ExitCode {
    let started = std::time::Instant::now();
    bionicbb_core::runtime::ignore_hangup();
    // Installed before anything slow, so an early SIGTERM stops the daemon
    // cleanly instead of killing it.
    let signal = bionicbb_core::runtime::shutdown_signal();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        bionicbb_core::runtime::notify_stopping();
        let _ = stop_tx.send(true);
    });
    let health = Health::default();
    // The health endpoint stops with the daemon: on the signal, or when the
    // poll loop returns by itself (`--once`).
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = match config.gmail_listener.health_listen {
        Some(addr) => {
            let mut signalled = stop_rx.clone();
            let shutdown = async move {
                tokio::select! {
                    _ = signalled.wait_for(|s| *s) => {}
                    _ = done_rx => {}
                }
            };
            match crate::health::serve(addr, health.clone(), shutdown).await {
                Ok(task) => Some(task),
                Err(e) => {
                    return StartupFailure::bind("[gmail_listener] health_listen", addr, &e)
                        .report(NAME);
                }
            }
        }
        None => None,
    };
    let code = run_listener(config, once, dry_run, stop_rx, &health, started).await;
    let _ = done_tx.send(());
    if let Some(task) = server
        && tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
    {
        tracing::warn!("the health endpoint did not stop within 5 seconds");
    }
    code
}

async fn run_listener(
    config: Arc<Config>,
    once: bool,
    dry_run: bool,
    stop: tokio::sync::watch::Receiver<bool>,
    health: &Health,
    started: std::time::Instant,
) -> ExitCode {
    let listener = match Listener::start(config, dry_run, once).await {
        Ok(l) => l,
        Err(e) => return e.report(NAME),
    };
    let version = env!("BIONICBB_VERSION");
    tracing::info!(once, dry_run, version, "gmail-listener started");
    let ok = listener.run(once, stop.clone(), health, started).await;
    if *stop.borrow() {
        tracing::info!("stopped");
        return ExitCode::SUCCESS;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `parse FILE...`: one JSON object per file and line; non-zero when a
/// file is unreadable or not a Gerrit change notification.
fn parse_files(cli_config: Option<PathBuf>, files: &[PathBuf]) -> ExitCode {
    let commands = commands_table(cli_config);
    let mut all_ok = true;
    for file in files {
        let line = report_file(file, &commands);
        all_ok &= line.get("error").is_none();
        println!("{line}");
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The command table of the configuration when one is named and loads,
/// else the defaults (parsing needs no configuration).
fn commands_table(cli_config: Option<PathBuf>) -> CommandsConfig {
    let named =
        cli_config.is_some() || std::env::var_os("BIONICBB_CONFIG").is_some_and(|v| !v.is_empty());
    if !named {
        return CommandsConfig::default();
    }
    let path = config_path(cli_config);
    match Config::load(&path) {
        Ok(c) => {
            for w in c.warnings() {
                eprintln!("gmail-listener parse: warning: {w}");
            }
            c.commands
        }
        Err(e) => {
            eprintln!("gmail-listener parse: {e}; using the default command table");
            CommandsConfig::default()
        }
    }
}

/// The report of one file, with its path.
pub fn report_file(file: &Path, commands: &CommandsConfig) -> Value {
    let mut out = match std::fs::read(file) {
        Ok(raw) => bionicbb_core::mail::report(&raw, commands),
        Err(e) => json!({ "error": format!("cannot read: {e}") }),
    };
    if let Value::Object(map) = &mut out {
        map.insert("file".into(), json!(file.display().to_string()));
    }
    out
}
