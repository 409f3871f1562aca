//! `login` and `logout`: keep a registry credential where docker keeps it, so custody, docker,
//! oras and cosign all find it.

use std::fmt::Write as _;
use std::io::Read as _;

use anyhow::Context as _;

use super::{Failure, Printer, Report};
use custody::storage::store::auth::Secret;
use custody::storage::store::login::{self, Storage};

/// The longest password or token read from stdin.
const MAX_PASSWORD: u64 = 64 * 1024;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Registry host, e.g. ghcr.io or localhost:5000.
    pub registry: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Read the password or token from stdin (one line).
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// The password on the command line: insecure (shell history, process list); prefer
    /// --password-stdin.
    #[arg(short = 'p', long)]
    pub password: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry host, e.g. ghcr.io or localhost:5000.
    pub registry: String,
}

fn config_path() -> anyhow::Result<std::path::PathBuf> {
    login::config_path(|k| std::env::var(k).ok())
        .context("neither DOCKER_CONFIG nor HOME is set: cannot tell where docker's config.json is")
}

fn describe(storage: &Storage) -> String {
    match storage {
        Storage::Helper(h) => format!("docker-credential-{h}"),
        Storage::File(p) => p.display().to_string(),
    }
}

pub fn login(args: &LoginArgs, printer: &Printer) -> Result<Report, Failure> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => {
            printer.stderr(
                "warning: a password on the command line is insecure (shell history, process list); use --password-stdin\n",
            );
            Secret::new(p.clone())
        }
        (None, true) => {
            let mut text = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .take(MAX_PASSWORD + 1)
                .read_to_string(&mut text)
                .context("cannot read the password from stdin")?;
            if text.len() as u64 > MAX_PASSWORD {
                return Err(anyhow::anyhow!("the password on stdin is longer than 64 KiB").into());
            }
            let trimmed = text.trim_end_matches(['\n', '\r']);
            Secret::new(trimmed)
        }
        (None, false) => {
            return Err(Failure {
                error: anyhow::anyhow!("no password given for {}", args.registry),
                status: super::ExitStatus::Error,
                hint: Some(format!(
                    "pipe it in: echo \"$TOKEN\" | custody login {} -u {} --password-stdin",
                    args.registry, args.username
                )),
            });
        }
    };
    if password.expose().is_empty() {
        return Err(anyhow::anyhow!("the password for {} is empty", args.registry).into());
    }
    let config = config_path()?;
    let stored = login::login(&config, &args.registry, &args.username, &password)
        .with_context(|| format!("cannot store the credential for {}", args.registry))?;
    let mut human = String::new();
    let _ = writeln!(
        human,
        "logged in to {} as {}; credential stored in {}",
        args.registry,
        args.username,
        describe(&stored)
    );
    Ok(Report {
        human,
        json: serde_json::json!({
            "registry": args.registry,
            "username": args.username,
            "storedIn": stored,
        }),
    })
}

pub fn logout(args: &LogoutArgs) -> Result<Report, Failure> {
    let config = config_path()?;
    let removed = login::logout(&config, &args.registry)
        .with_context(|| format!("cannot remove the credential for {}", args.registry))?;
    let human = if removed.is_empty() {
        format!("not logged in to {}\n", args.registry)
    } else {
        let places: Vec<String> = removed.iter().map(describe).collect();
        format!(
            "logged out of {}; removed from {}\n",
            args.registry,
            places.join(" and ")
        )
    };
    Ok(Report {
        human,
        json: serde_json::json!({ "registry": args.registry, "removedFrom": removed }),
    })
}
