//! The command line (`build-listener --config PATH`), in the library so
//! that man pages and shell completions can be generated from it.

use std::path::PathBuf;

use clap::Parser;

/// Receives Jenkins Notification-plugin documents and votes on Gerrit.
#[derive(Debug, Parser)]
#[command(name = "build-listener", version)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, env = "BIONICBB_CONFIG", default_value = bionicbb_core::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Delay before the first retry of an outbox item, in milliseconds
    /// (default 2000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_BASE_DELAY_MS", hide = true)]
    pub outbox_base_delay_ms: Option<u64>,
    /// How long after the listener gave up on a post Gerrit may still apply
    /// it, in milliseconds (default 30000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_SETTLE_MS", hide = true)]
    pub outbox_settle_ms: Option<u64>,
}
