//! `custody trust update|show|export`, and the default trusted root of keyless verification:
//! public-good Sigstore (or the mirror `trust update --mirror` made the default) through TUF.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{Failure, Report};
use custody::evidence::trust::{self, Mirror, Network, Obtained, Options, Refresh};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TrustCommand {
    /// Fetch and verify the newest trusted root over TUF now, and cache it.
    Update {
        /// TUF mirror (metadata at its top, targets under /targets); becomes the default.
        #[arg(long, value_name = "URL", requires = "root")]
        mirror: Option<String>,
        /// The mirror's initial root.json (public-good's is built in).
        #[arg(long, value_name = "FILE", requires = "mirror")]
        root: Option<PathBuf>,
    },
    /// Where the trusted root comes from, its TUF versions and expiry, and every CA, log and
    /// TSA with its validity window.
    Show {
        /// Use the cache (or the built-in root) only.
        #[arg(long)]
        offline: bool,
    },
    /// Write the trusted root to FILE (a trusted_root.json for an air gap: --trusted-root FILE).
    Export {
        /// Where to write the `trusted_root.json` (`--trusted-root FILE` on the air-gapped side).
        file: PathBuf,
        /// Use the cache (or the built-in root) only.
        #[arg(long)]
        offline: bool,
    },
}

/// Environment variable: accept expired cached TUF metadata offline when it was fetched at
/// most this long ago (`30d`, `12h`).
pub const MAX_CACHE_AGE_VAR: &str = "CUSTODY_TRUST_MAX_AGE";

fn cache() -> anyhow::Result<PathBuf> {
    trust::default_cache(|k| std::env::var(k).ok())
        .context("no cache folder: set XDG_CACHE_HOME or HOME")
}

fn options(network: Network, refresh: Refresh) -> anyhow::Result<Options> {
    let max_cache_age = match std::env::var(MAX_CACHE_AGE_VAR) {
        Ok(v) => {
            let d = custody::foundation::time::parse_duration(&v)
                .map_err(|e| anyhow::anyhow!("{MAX_CACHE_AGE_VAR}={v:?}: {e}"))?;
            Some(jiff::SignedDuration::from_secs(
                i64::try_from(d).unwrap_or(i64::MAX),
            ))
        }
        Err(_) => None,
    };
    Ok(Options {
        cache: cache()?,
        network,
        refresh,
        now: jiff::Timestamp::now(),
        max_cache_age,
    })
}

/// How `custody serve` obtains the roots of policy scopes that name a TUF mirror (online,
/// refreshed when stale); `None` without a cache folder.
pub fn serve_tuf_options() -> Option<Options> {
    options(Network::Online, Refresh::WhenStale).ok()
}

fn network(offline: bool) -> Network {
    if offline {
        Network::Offline
    } else {
        Network::Online
    }
}

/// The trusted root used when none is named: a `trusted_root.json` from flag or policy wins;
/// else the default mirror's, through TUF (never the network with `offline`).
pub fn default_root(offline: bool) -> anyhow::Result<Obtained> {
    let options = options(network(offline), Refresh::WhenStale)?;
    let mirror = Mirror::from_cache(&options.cache, &trust::default_mirror_url(&options.cache))?;
    trust::obtain(&mirror, &options).context("no trusted root for keyless verification")
}

/// `--signing-config tuf`: the signing config and trusted root the default mirror publishes
/// (public-good, or the one `custody trust update --mirror` chose), through TUF, on-line.
pub fn published_instance() -> anyhow::Result<custody::evidence::sign::PublishedInstance> {
    let options = options(Network::Online, Refresh::Always)?;
    let mirror = Mirror::from_cache(&options.cache, &trust::default_mirror_url(&options.cache))?;
    let (signing_config, obtained) =
        trust::signing_material(&mirror, &options).with_context(|| {
            format!(
                "cannot read {} from the tuf mirror {}",
                trust::SIGNING_CONFIG_TARGET,
                mirror.url
            )
        })?;
    Ok(custody::evidence::sign::PublishedInstance {
        signing_config,
        trusted_root: obtained.root,
    })
}

/// The trusted root a policy scope names: a file, or a TUF mirror with its initial root.
pub fn scope_root(
    trust_rule: &custody::decisions::policy::ScopeTrust,
    offline: bool,
) -> anyhow::Result<Obtained> {
    match trust_rule {
        custody::decisions::policy::ScopeTrust::TrustedRoot(path) => trust::from_file(path)
            .with_context(|| format!("the policy's trusted root {}", path.display())),
        custody::decisions::policy::ScopeTrust::Tuf { mirror, root } => {
            let options = options(network(offline), Refresh::WhenStale)?;
            let initial = trust::read_bounded(root, trust::MAX_ROOT_SIZE)?;
            trust::obtain(&Mirror::new(mirror, initial), &options)
                .with_context(|| format!("the policy's tuf mirror {mirror}"))
        }
    }
}

/// The hint for a keyless verification that has no usable trusted root.
pub use custody::evidence::trust::NO_ROOT_HINT;

pub fn run(command: &TrustCommand) -> Result<Report, Failure> {
    match command {
        TrustCommand::Update { mirror, root } => {
            let options = options(Network::Online, Refresh::Always)?;
            let mirror = match (mirror, root) {
                (Some(url), Some(path)) => {
                    check_url(url)?;
                    let initial = trust::read_bounded(path, trust::MAX_ROOT_SIZE)?;
                    Mirror::new(url, initial)
                }
                _ => {
                    Mirror::from_cache(&options.cache, &trust::default_mirror_url(&options.cache))?
                }
            };
            let obtained = trust::obtain(&mirror, &options).map_err(|e| Failure {
                error: anyhow::Error::new(e).context("trust update failed"),
                status: super::ExitStatus::Error,
                hint: None,
            })?;
            mirror.remember(&options.cache)?;
            trust::set_default_mirror(&options.cache, &mirror.url)?;
            Ok(describe(&obtained, "updated"))
        }
        TrustCommand::Show { offline } => {
            let obtained = default_root(*offline)?;
            Ok(describe(&obtained, "trusted root"))
        }
        TrustCommand::Export { file, offline } => {
            let obtained = default_root(*offline)?;
            write_new(file, &obtained.json)?;
            let mut report = describe(&obtained, "exported");
            report.human = format!(
                "trusted root written to {}\n{}",
                file.display(),
                report.human
            );
            report.json["file"] = serde_json::json!(file);
            Ok(report)
        }
    }
}

fn check_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("mirror {url:?} is not an http(s) URL");
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn describe(obtained: &Obtained, what: &str) -> Report {
    let o = &obtained.origin;
    let mut human = format!(
        "{what}: {}{}\n",
        serde_json::to_value(o.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        o.mirror
            .as_deref()
            .or(o.path.as_deref())
            .map(|m| format!(" {m}"))
            .unwrap_or_default()
    );
    if let Some(t) = &o.tuf {
        human.push_str(&format!(
            "tuf: root v{} (expires {}), timestamp v{}, snapshot v{}, targets v{}; valid until {}\n",
            t.root, t.root_expires, t.timestamp, t.snapshot, t.targets, t.expires
        ));
    }
    if let Some(f) = &o.fetched {
        human.push_str(&format!(
            "fetched {f} ({}s ago){}\n",
            o.age_seconds.unwrap_or(0),
            if o.stale {
                ", expired: allowed by age"
            } else {
                ""
            }
        ));
    }
    human.push_str(&format!("sha256 {}\n", o.sha256));
    let authorities = trust::authorities(&obtained.json);
    for a in &authorities {
        human.push_str(&format!(
            "  {:<22} {}  {} .. {}\n",
            a.kind,
            a.name,
            a.valid_from.as_deref().unwrap_or("?"),
            a.valid_until.as_deref().unwrap_or("open")
        ));
    }
    Report {
        human,
        json: serde_json::json!({ "trustedRoot": o, "authorities": authorities }),
    }
}

/// The trusted root for verifying `repository` under `policy`: `--trusted-root`, else the
/// scope's `trust:`, else the default through TUF when the scope trusts keyless identities or
/// needs log entries; a key-only scope needs none and gets the empty root (no network).
pub fn root_for(
    policy: &custody::decisions::policy::Policy,
    repository: &str,
    flag: Option<&Path>,
    offline: bool,
) -> Result<
    (
        custody::evidence::sign::verify::TrustedRoot,
        Option<trust::RootOrigin>,
    ),
    Failure,
> {
    let could_not = |e: anyhow::Error, hint: Option<&str>| Failure {
        error: e,
        status: super::ExitStatus::Error,
        hint: hint.map(str::to_owned),
    };
    let scope = policy.scope_for(repository);
    let obtained = match (flag, scope.and_then(|s| s.trust.as_ref())) {
        (Some(path), _) => trust::from_file(path)
            .with_context(|| format!("cannot use trusted root {}", path.display()))
            .map_err(|e| could_not(e, None))?,
        (None, Some(rule)) => {
            scope_root(rule, offline).map_err(|e| could_not(e, Some(NO_ROOT_HINT)))?
        }
        (None, None) => {
            if !scope.is_some_and(scope_needs_root) {
                return Ok((custody::evidence::sign::verify::TrustedRoot::empty(), None));
            }
            default_root(offline).map_err(|e| could_not(e, Some(NO_ROOT_HINT)))?
        }
    };
    Ok((obtained.root, Some(obtained.origin)))
}

/// One line saying which trusted root a verification used.
pub fn origin_line(o: &trust::RootOrigin) -> String {
    o.describe()
}

/// A scope with keyless signers, or one that requires log entries, needs a trusted root.
pub fn scope_needs_root(scope: &custody::decisions::policy::Scope) -> bool {
    scope.key_tlog == custody::evidence::sign::verify::TlogRequirement::Required
        || scope.signers.iter().any(|t| {
            matches!(
                t.kind,
                custody::decisions::policy::SignerKind::Identity { .. }
            )
        })
}

/// `custody __tuf-conformance-client`: the CLIENT-CLI protocol of TUF's conformance suite.
#[derive(Debug, Clone, clap::Args)]
pub struct ConformanceArgs {
    #[arg(long, value_name = "DIR")]
    pub metadata_dir: PathBuf,
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub target_name: Vec<String>,
    #[arg(long, value_name = "URL")]
    pub target_base_url: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// `init ROOT`, `refresh` or `download`.
    pub command: String,
    pub root: Option<PathBuf>,
}

/// Exit 0 on success, 1 on any failure, the error on standard error.
pub fn conformance_client(args: &ConformanceArgs, printer: &super::Printer) -> super::ExitStatus {
    match run_conformance(args) {
        Ok(()) => super::ExitStatus::Success,
        Err(e) => {
            printer.stderr(&format!("error: {e:#}\n"));
            // The suite's protocol: any failure is exit 1.
            super::ExitStatus::Failure
        }
    }
}

fn run_conformance(args: &ConformanceArgs) -> anyhow::Result<()> {
    use custody::evidence::trust::conformance::{Client, init};
    let client = || -> anyhow::Result<Client> {
        Ok(Client {
            metadata_dir: args.metadata_dir.clone(),
            metadata_url: args
                .metadata_url
                .clone()
                .context("--metadata-url is required")?,
            target_base_url: args.target_base_url.clone(),
        })
    };
    let now = jiff::Timestamp::now();
    match (args.command.as_str(), &args.root) {
        ("init", Some(root)) => Ok(init(&args.metadata_dir, root)?),
        ("refresh", None) => Ok(client()?.refresh(now)?),
        ("download", None) => {
            let dir = args
                .target_dir
                .as_ref()
                .context("--target-dir is required")?;
            if args.target_name.is_empty() {
                bail!("--target-name is required");
            }
            Ok(client()?.download(&args.target_name, dir, now)?)
        }
        (other, _) => bail!("unknown or malformed command {other:?}: init ROOT, refresh, download"),
    }
}
