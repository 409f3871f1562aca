//! The `custody` binary: the command line lives here, outside the library, and only talks to
//! it through `custody::…`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
