//! build-listener: turns Jenkins build notifications into Gerrit reviews.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use build_listener::outbox::Settings;
use clap::Parser;

/// Receives Jenkins Notification-plugin documents and votes on Gerrit.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, env = "BIONICBB_CONFIG", default_value = bionicbb_core::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Delay before the first retry of an outbox item, in milliseconds
    /// (default 2000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_BASE_DELAY_MS", hide = true)]
    outbox_base_delay_ms: Option<u64>,
    /// How long after the listener gave up on a post Gerrit may still apply
    /// it, in milliseconds (default 30000); for tests.
    #[arg(long, env = "BIONICBB_OUTBOX_SETTLE_MS", hide = true)]
    outbox_settle_ms: Option<u64>,
}

fn main() -> ExitCode {
    bionicbb_core::tls::install_crypto_provider();
    let args = Args::parse();
    let config = match bionicbb_core::config::Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("build-listener: {e}");
            return ExitCode::from(2);
        }
    };
    bionicbb_core::runtime::init_logging(&config);
    let mut settings = Settings::default();
    if let Some(ms) = args.outbox_base_delay_ms {
        settings.base_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = args.outbox_settle_ms {
        settings.settle = Duration::from_millis(ms);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("build-listener: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(build_listener::server::run(config, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("build-listener: {e:#}");
            ExitCode::FAILURE
        }
    }
}
