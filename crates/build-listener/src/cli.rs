//! The command line: the daemon (`build-listener`) and `check [--online]`
//! (the operator's checklist: configuration, secrets, netrc entry; with
//! `--online`, Gerrit and Jenkins; see [`bionicbb_core::check`]). The clap
//! types live in the library so that man pages and shell completions can
//! be generated from them; the binary only calls [`main`].
//!
//! A daemon that cannot start prints one plain line naming what to fix and
//! exits with [`EXIT_CONFIG`](bionicbb_core::runtime::EXIT_CONFIG) when the
//! operator must act, 1 when the cause may pass (see [`StartupFailure`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bionicbb_core::check::{Checkup, Daemon};
use bionicbb_core::runtime::StartupFailure;
use clap::{Parser, Subcommand};

use crate::outbox::Settings;

/// The name start-up failures are printed under.
const NAME: &str = "build-listener";

/// Receives Jenkins Notification-plugin documents and votes on Gerrit.
#[derive(Debug, Parser)]
#[command(name = "build-listener", version = env!("BIONICBB_VERSION"))]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "BIONICBB_CONFIG", default_value = bionicbb_core::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Delay before the first retry of an outbox item, in milliseconds
    /// (default 2000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_BASE_DELAY_MS", hide = true)]
    pub outbox_base_delay_ms: Option<u64>,
    /// How long after the listener gave up on a post Gerrit may still apply
    /// it, in milliseconds (default 30000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_SETTLE_MS", hide = true)]
    pub outbox_settle_ms: Option<u64>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, secrets and netrc entry; print a checklist;
    /// exit 0 only when every check passes.
    Check {
        /// Also ask Gerrit and Jenkins one question each.
        #[arg(long)]
        online: bool,
    },
}

/// Runs the command line; the exit status of the process.
pub fn main() -> ExitCode {
    bionicbb_core::tls::install_crypto_provider();
    let cli = Cli::parse();
    if let Some(Command::Check { online }) = cli.command {
        return check(&cli.config, online);
    }
    let config = match bionicbb_core::config::Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => return StartupFailure::config(e.to_string()).report(NAME),
    };
    bionicbb_core::runtime::init_logging(&config);
    let mut settings = Settings::default();
    if let Some(ms) = cli.outbox_base_delay_ms {
        settings.base_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.outbox_settle_ms {
        settings.settle = Duration::from_millis(ms);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            return StartupFailure::passing(format!("cannot start the async runtime: {e}"))
                .report(NAME);
        }
    };
    let run = runtime.block_on(async {
        bionicbb_core::runtime::ignore_hangup();
        tracing::info!(
            version = env!("BIONICBB_VERSION"),
            "build-listener starting"
        );
        crate::server::run(config, settings).await
    });
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<StartupFailure>() {
            Some(failure) => failure.report(NAME),
            None => {
                eprintln!("{NAME}: {}", bionicbb_core::runtime::error_line(e.chain()));
                ExitCode::FAILURE
            }
        },
    }
}

/// `check [--online]`: prints the checklist; 0 when every check passed.
fn check(path: &Path, online: bool) -> ExitCode {
    let mut checkup = Checkup::offline(path);
    if online {
        checkup.block_on(async |checkup| checkup.online(Daemon::BuildListener).await);
    }
    checkup.finish(online, "Gerrit and Jenkins")
}
