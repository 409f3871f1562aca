//! The command line: parses arguments, calls one library function, prints the result (human or
//! `--output json`) and maps the outcome to an exit code (0 ok, 1 refused, 2 could not run).

pub mod attest_cmds;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "custody",
    version,
    about = "Chain of custody for software artifacts"
)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Source(attest_cmds::SourceArgs),
    Sbom(attest_cmds::SbomArgs),
    Provenance(attest_cmds::ProvenanceArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Source(args) => attest_cmds::source_cmd::run(args, cli.output).map(drop),
        Command::Sbom(args) => attest_cmds::sbom_cmd::run(args, cli.output).map(drop),
        Command::Provenance(args) => attest_cmds::provenance_cmd::run(args, cli.output).map(drop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
