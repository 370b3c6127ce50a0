//! The command line: the daemon (`gmail-listener [--once] [--dry-run]`),
//! `auth` (the one interactive Gmail authorization) and `parse FILE...`
//! (what the daemon would read in a mail, without any network).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bionicbb_core::config::{CommandsConfig, Config, config_path};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::health::Health;
use crate::poll::Listener;

/// Polls the Gmail label Gerrit notifications land in, triggers Jenkins
/// builds and runs `bionicbb:` commands.
#[derive(Debug, Parser)]
#[command(name = "gmail-listener", version)]
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
    /// Authorize the Gmail account once, interactively, and cache the token.
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
    if let Some(Command::Parse { files }) = &cli.command {
        return parse_files(cli.config.clone(), files);
    }
    let path = config_path(cli.config.clone());
    let config = match Config::load(&path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("gmail-listener: {e}");
            return ExitCode::from(2);
        }
    };
    bionicbb_core::runtime::init_logging(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gmail-listener: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Some(Command::Auth) => match crate::gmail::authorize(&config.gmail).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gmail-listener auth: {e}");
                    ExitCode::FAILURE
                }
            },
            _ => daemon(config, cli.once, cli.dry_run).await,
        }
    })
}

async fn daemon(config: Arc<Config>, once: bool, dry_run: bool) -> ExitCode {
    let started = std::time::Instant::now();
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
                    tracing::error!("cannot listen on {addr} for the health endpoint: {e}");
                    return ExitCode::from(2);
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
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(once, dry_run, "gmail-listener started");
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
