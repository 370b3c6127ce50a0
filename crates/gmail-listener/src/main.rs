fn main() -> std::process::ExitCode {
    gmail_listener::cli::main()
}
