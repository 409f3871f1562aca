fn main() -> std::process::ExitCode {
    custody::cli::run()
}
