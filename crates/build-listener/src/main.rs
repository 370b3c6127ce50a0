//! build-listener: turns Jenkins build notifications into Gerrit reviews.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
