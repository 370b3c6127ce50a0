use std::path::PathBuf;

use clap::Parser;

/// Skeleton: loads the configuration and exits.
#[derive(Parser)]
struct Args {
    /// Configuration file.
    #[arg(long, env = "BIONICBB_CONFIG", default_value = bionicbb_core::config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    bionicbb_core::tls::install_crypto_provider();
    let args = Args::parse();
    let _config = bionicbb_core::config::Config::load(&args.config)?;
    Ok(())
}
