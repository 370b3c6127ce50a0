//! build-listener: turns Jenkins build notifications into Gerrit reviews.
use std::process::ExitCode;
use std::time::Duration;

use bionicbb_core::runtime::SetupError;
use build_listener::cli::Cli;
use build_listener::outbox::Settings;
use clap::Parser;

fn main() -> ExitCode {
    bionicbb_core::tls::install_crypto_provider();
    let args = Cli::parse();
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
            // A client the configuration cannot make (no netrc entry for the
            // Gerrit host) is the operator's to fix, like a configuration
            // error: 2, which the unit does not restart. Anything else
            // (the port taken, the ledger unavailable) may pass: 1.
            if e.downcast_ref::<SetupError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
