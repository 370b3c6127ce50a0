//! build-listener: turns Jenkins build notifications into Gerrit reviews.
//! The command line is in the library ([`build_listener::cli`]).

fn main() -> std::process::ExitCode {
    build_listener::cli::main()
}
