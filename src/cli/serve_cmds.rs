//! `custody serve`: flags into a [`serve::Config`], one line when listening, one line per
//! reload; SIGTERM and SIGINT ask the server to drain and stop (exit 0); the server itself is
//! the library's.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use super::{Cli, ExitStatus, Failure, Printer};
use custody::storage::store::Timeout;
use custody::workflows::serve::{self, CacheSettings, Event, SummarySettings};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain to serve (reloaded when it changes).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate (reloaded when it changes).
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// The policy every verification uses (reloaded when it changes).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// trusted_root.json for keyless signers and log checks (reloaded when it changes).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// OSV database for the policy's `vulnerabilities:` gate. Repeatable.
    #[arg(long = "db", value_name = "PATH")]
    pub db: Vec<PathBuf>,
    /// How long a verified artifact's verdict is reused (30s, 10m, 1h...).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub cache_ttl: Timeout,
    /// How long a refusal is reused.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub refusal_ttl: Timeout,
    /// Most verdicts kept in the cache (0: no cache).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub cache_size: usize,
    /// Verifications run at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// How often the policy, trust, database and TLS files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub reload_interval: Timeout,
    /// Public key (PEM) of a verifier whose signed VSAs stand for a full verification: a
    /// PASSED summary of the same image digest, under this policy's digest, at most
    /// --vsa-max-age old. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub vsa_verifier_key: Vec<PathBuf>,
    /// How old a verifier's summary may be (by its timeVerified).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = age)]
    pub vsa_max_age: std::time::Duration,
    /// After SIGTERM, how long requests in flight may take to finish before the server exits.
    #[arg(long, value_name = "DURATION", default_value = "20s")]
    pub drain_timeout: Timeout,
    /// Folder of pods' image pull secrets: one file per secret, named
    /// `<namespace>.<secret name>`, holding its `.dockerconfigjson`.
    #[arg(long, value_name = "DIR")]
    pub pull_secrets: Option<PathBuf>,
}

/// Runs the server; returns only when it cannot start or stops (exit 2).
pub fn serve(cli: &Cli, args: &ServeArgs, printer: &Printer) -> ExitStatus {
    let mut store = super::store_options(cli);
    store.progress = None;
    let config = serve::Config {
        listen: args.listen,
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        policy: args.policy.clone(),
        trusted_root: args.trusted_root.clone(),
        vulnerability_dbs: args.db.clone(),
        store,
        cache: CacheSettings {
            ttl: args.cache_ttl.0,
            refusal_ttl: args.refusal_ttl.0,
            max_entries: args.cache_size,
        },
        workers: usize::from(args.workers),
        reload_interval: args.reload_interval.0,
        on_event: Some(Arc::new(log_event)),
        summaries: SummarySettings {
            verifier_keys: args.vsa_verifier_key.clone(),
            max_age: args.vsa_max_age,
        },
        drain_timeout: args.drain_timeout.0,
        pull_secrets: args.pull_secrets.clone(),
        tuf: super::trust_cmds::serve_tuf_options(),
    };
    let result = serve::Server::bind(config)
        .and_then(|server| {
            let addr = server.local_addr()?;
            printer.stderr(&format!("custody serve: listening on https://{addr}\n"));
            server.run(serve::Stop::on_signals())
        })
        .context("custody serve stopped");
    match result {
        Ok(()) => {
            printer.stderr("custody serve: stopped\n");
            ExitStatus::Success
        }
        Err(error) => {
            let failure = Failure::from(error);
            printer.failure(&failure);
            ExitStatus::Error
        }
    }
}

/// An age like `24h`, `7d` or `1d12h`.
fn age(text: &str) -> Result<std::time::Duration, String> {
    custody::foundation::time::parse_duration(text).map(std::time::Duration::from_secs)
}

/// One line on standard error per reload (the printer stays on the main thread).
fn log_event(event: &Event) {
    let line = match event {
        Event::Reloaded { what } => format!("custody serve: reloaded {what}\n"),
        Event::ReloadFailed { what, error } => {
            format!("custody serve: kept the previous {what}: {error}\n")
        }
        Event::Draining { timeout } => format!(
            "custody serve: stopping: draining the requests in flight (at most {} s)\n",
            timeout.as_secs()
        ),
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
