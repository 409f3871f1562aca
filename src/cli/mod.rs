//! The command line: parses arguments, calls one library function, prints the result (human or
//! `--output json`) and maps the outcome to an exit code (0 ok, 1 refused, 2 could not run).

pub mod sign_cmds;

use std::process::ExitCode;

use clap::Parser as _;

#[derive(Debug, clap::Parser)]
#[command(
    name = "custody",
    version,
    about = "chain of custody for software artifacts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Generate an encrypted ECDSA P-256 key pair (cosign format).
    Keygen(sign_cmds::KeygenArgs),
    /// Sign a file with a key into a Sigstore bundle.
    SignBlob(sign_cmds::SignBlobArgs),
    /// Verify a Sigstore bundle against a file or digest.
    VerifyBundle(sign_cmds::VerifyBundleArgs),
}

fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match &cli.command {
        Command::Keygen(args) => sign_cmds::run_keygen(args).map(|(key, public)| {
            println!("private key written to {}", key.display());
            println!("public key written to {}", public.display());
            0
        }),
        Command::SignBlob(args) => sign_cmds::run_sign_blob(args).map(|_| {
            println!("bundle written to {}", args.bundle.display());
            0
        }),
        Command::VerifyBundle(args) => sign_cmds::run_verify_bundle(args).map(|outcome| {
            let text = sign_cmds::describe(&outcome);
            match outcome {
                sign_cmds::VerifyOutcome::Verified(_) => print!("{text}"),
                sign_cmds::VerifyOutcome::Refused(_) => eprint!("{text}"),
            }
            outcome.exit_code()
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            print_error(&err);
            ExitCode::from(2)
        }
    }
}
