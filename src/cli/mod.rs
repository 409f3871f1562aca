//! The command line: parses arguments, calls one library function, prints the result (human or
//! `--output json`) and maps the outcome to an exit code: 0 ok, 1 refused or verification
//! failed, 2 could not run.

pub mod attach_cmds;
pub mod attest_cmds;
pub mod ci_output;
mod progress;
pub mod promote_cmds;
mod release_cmds;
pub mod rescan_cmds;
pub mod secops_cmds;
pub mod sign_cmds;
mod store_cmds;
pub mod tree_cmds;
pub mod verify_cmds;
pub mod vuln_cmds;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::store;

/// Exit code when a check refused the input (verification, policy, immutable tag, a lying store).
pub const EXIT_REFUSED: u8 = 1;
/// Exit code when custody could not do its job (bad input, network, missing file).
pub const EXIT_ERROR: u8 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
}

/// What `--output` accepts: the formats every command prints, and `markdown` (a GitHub job
/// summary) for the commands that have a Markdown report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputChoice {
    #[default]
    Human,
    Json,
    Markdown,
}

#[derive(Parser, Debug)]
#[command(
    name = "custody",
    version,
    about = "Keep the chain of custody of software artifacts: source, SBOM, provenance, signatures, OCI storage, verification."
)]
pub struct Cli {
    /// Output format (`markdown`: verify only).
    #[arg(long = "output", value_name = "OUTPUT", global = true, value_enum, default_value_t = OutputChoice::Human)]
    pub output_choice: OutputChoice,

    /// The format commands print in: `--output`, with `markdown` printing as `human` where a
    /// command has no Markdown report of its own (set by `run`).
    #[arg(skip)]
    pub output: OutputFormat,

    /// Allow plain HTTP to this registry host (loopback addresses always may). Repeatable;
    /// also CUSTODY_INSECURE_REGISTRIES (comma separated).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// How long to wait on a registry: to connect, for an answer, between two reads, and for a
    /// whole manifest or list (30s, 500ms, 2m; default 60s).
    #[arg(long, global = true, env = "CUSTODY_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<store::Timeout>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Release: source record, SBOM, provenance, sign, push, attach, verify, then tag.
    Release(release_cmds::ReleaseArgs),
    /// Verify an artifact's chain of custody against a policy: signatures, identities,
    /// subject binding, provenance and SBOM rules, signer thresholds.
    Verify(Box<verify_cmds::VerifyArgs>),
    /// Verify an artifact against a policy, then copy that digest with every signature and
    /// attestation to another registry; the destination tag is written last, never moved.
    Promote(Box<promote_cmds::PromoteArgs>),
    /// The chain of custody at a glance: every referrer, its signer and, with a policy, its
    /// verdict.
    Tree(Box<tree_cmds::TreeArgs>),
    /// Sign an artifact in a store (by digest) and attach the bundle as a referrer.
    Sign(attach_cmds::SignArgs),
    /// Sign an attestation (a predicate about an artifact) and attach it as a referrer.
    Attest(attach_cmds::AttestArgs),
    /// Sign a file into a Sigstore bundle, with a key or keyless (Fulcio, Rekor, TSA).
    SignBlob(sign_cmds::SignBlobArgs),
    /// Verify a Sigstore bundle against a file or digest, offline.
    VerifyBundle(sign_cmds::VerifyBundleArgs),
    /// Generate an encrypted ECDSA P-256 key pair (cosign format).
    Keygen(sign_cmds::KeygenArgs),
    /// Write or check a verification policy.
    Policy(verify_cmds::PolicyArgs),
    /// Record the source commit of the work tree (repository, commit, tree, ref, dirty state).
    Source(attest_cmds::SourceArgs),
    /// Write a CycloneDX SBOM of artifact files and the lockfiles of the source tree.
    Sbom(attest_cmds::SbomArgs),
    /// Write an unsigned SLSA provenance v1 statement for artifact files.
    Provenance(attest_cmds::ProvenanceArgs),
    /// Match an SBOM's, a lockfile's or an OCI artifact's components against an offline OSV
    /// database; exit 1 when a finding is at or above --fail-on.
    Scan(vuln_cmds::ScanArgs),
    /// Rescan every tag of repositories against today's advisories: which stored artifacts
    /// are affected, what is new since the last rescan, which have no usable SBOM.
    Rescan(rescan_cmds::RescanArgs),
    /// Dependency-confusion rules: internal package names must come from internal registries.
    #[command(subcommand)]
    Sources(secops_cmds::SourcesCommand),
    /// Delete old artifacts of a repository with all their signatures and attestations.
    Prune(secops_cmds::PruneArgs),
    /// Verify or read the tamper-evident audit log.
    #[command(subcommand)]
    Audit(secops_cmds::AuditCommand),
    /// Push files as an OCI artifact (one layer per file, empty config).
    Push(store_cmds::PushArgs),
    /// Pull an artifact's files, checking every blob.
    Pull(store_cmds::PullArgs),
    /// Print the digest a reference points to.
    Resolve(store_cmds::ResolveArgs),
    /// Copy an artifact with all its blobs and referrers between stores, digests unchanged.
    Copy(store_cmds::CopyArgs),
    /// List an artifact's referrers as a tree.
    Discover(store_cmds::DiscoverArgs),
    /// Print the SHA-256 digest and size of files, as an OCI descriptor would name them.
    Digest(store_cmds::DigestArgs),
}

/// What a command hands back to be printed.
pub struct Report {
    pub human: String,
    pub json: serde_json::Value,
}

/// An error with the exit code it maps to and an optional hint.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
    pub hint: Option<String>,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        let error = e.into();
        let code = exit_code_of(&error);
        let hint = hint_of(&error);
        Failure { error, code, hint }
    }
}

/// The store error behind a cause, whether bare or wrapped transparently (a transparent
/// wrapper forwards `source()`, so the store error is not a link of the chain of its own).
fn store_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a store::Error> {
    use crate::{attach, release, transfer};
    fn from_transfer(e: &transfer::Error) -> Option<&store::Error> {
        match e {
            transfer::Error::Store(s) => Some(s),
            _ => None,
        }
    }
    fn from_attach(e: &attach::Error) -> Option<&store::Error> {
        match e {
            attach::Error::Store(s) => Some(s),
            attach::Error::Transfer(t) => from_transfer(t),
            _ => None,
        }
    }
    if let Some(e) = cause.downcast_ref::<store::Error>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<transfer::Error>() {
        return from_transfer(e);
    }
    if let Some(e) = cause.downcast_ref::<attach::Error>() {
        return from_attach(e);
    }
    if let Some(e) = cause.downcast_ref::<attach::SignArtifactError>() {
        return e.store_error();
    }
    match cause.downcast_ref::<release::Error>() {
        Some(release::Error::Store(s)) => Some(s),
        Some(release::Error::Transfer(t)) => from_transfer(t),
        Some(release::Error::Attach(a)) => from_attach(a),
        Some(release::Error::Sign(e)) => e.store_error(),
        _ => None,
    }
}

fn exit_code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = store_error(cause)
            && (e.is_integrity_failure() || matches!(e, store::Error::TagExists { .. }))
        {
            return EXIT_REFUSED;
        }
        if let Some(crate::transfer::Error::UnsafeTitle { .. }) = cause.downcast_ref() {
            return EXIT_REFUSED;
        }
    }
    EXIT_ERROR
}

fn hint_of(error: &anyhow::Error) -> Option<String> {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<crate::sign::SignerSetupError>() {
            return e.hint();
        }
        if let Some(e) = store_error(cause) {
            return match e {
                store::Error::TagExists { .. } => Some(
                    "tags are immutable in custody; push under a new tag, or pass --force-tag to move it deliberately".into(),
                ),
                store::Error::DigestMismatch { .. } | store::Error::LyingDigestHeader { .. } => {
                    Some("the store returned content other than what was asked for; do not trust it, and report it to the registry's operator".into())
                }
                store::Error::InsecureRefused { registry } => Some(format!(
                    "pass --insecure-registry {registry} if this registry really has no TLS"
                )),
                store::Error::RetriesExhausted { .. } => {
                    Some("the registry kept failing; check that it is up and reachable".into())
                }
                _ => None,
            };
        }
    }
    None
}

/// Store options from flags and the environment.
pub(crate) fn store_options(cli: &Cli) -> store::Options {
    let mut insecure = cli.insecure_registries.clone();
    if let Ok(list) = std::env::var("CUSTODY_INSECURE_REGISTRIES") {
        insecure.extend(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    let mut retry = store::registry::RetryPolicy::default();
    if let Some(ms) = std::env::var("CUSTODY_RETRY_BASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        retry.base_delay = std::time::Duration::from_millis(ms);
        retry.max_delay = std::time::Duration::from_millis(ms.saturating_mul(8));
    }
    // References carry canonical hosts; compare in that spelling (`Reg.Example:443` too).
    let insecure = insecure
        .into_iter()
        .map(|h| crate::reference::canonical_host(&h).unwrap_or(h))
        .collect();
    store::Options {
        insecure_registries: insecure,
        credentials: store::auth::CredentialSources::from_env(|k| std::env::var(k).ok()),
        retry,
        timeout: cli.timeout.unwrap_or_default(),
        progress: (cli.output == OutputFormat::Human)
            .then(|| store::ProgressHandle(std::sync::Arc::new(progress::StderrProgress::new()))),
    }
}

pub fn run() -> ExitCode {
    let mut cli = Cli::parse();
    cli.output = match cli.output_choice {
        OutputChoice::Json => OutputFormat::Json,
        OutputChoice::Human | OutputChoice::Markdown => OutputFormat::Human,
    };
    if let Err(failure) = ci_output::check_markdown_support(&cli) {
        print_failure(cli.output, &failure);
        return ExitCode::from(failure.code);
    }
    let output = cli.output;
    // These print their own reports (and can refuse with exit 1 after printing).
    match &cli.command {
        Command::Scan(args) => return vuln_cmds::run(&cli, args),
        Command::Rescan(args) => return rescan_cmds::run(&cli, args),
        Command::Verify(args) => return verify_cmds::verify(&cli, args),
        Command::Policy(args) => return verify_cmds::policy(&cli, args),
        Command::Promote(args) => return promote_cmds::promote(&cli, args),
        Command::Sources(cmd) => return secops_cmds::run_sources(&cli, cmd),
        Command::Audit(cmd) => return secops_cmds::run_audit(&cli, cmd),
        _ => {}
    }
    // The attestation commands print their own results.
    let printed = match &cli.command {
        Command::Source(args) => Some(attest_cmds::source_cmd::run(args.clone(), output).map(drop)),
        Command::Sbom(args) => {
            Some(attest_cmds::sbom_cmd::run(args.clone(), output, store_options(&cli)).map(drop))
        }
        Command::Provenance(args) => {
            Some(attest_cmds::provenance_cmd::run(args.clone(), output).map(drop))
        }
        _ => None,
    };
    if let Some(result) = printed {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                let failure = Failure::from(error);
                print_failure(output, &failure);
                ExitCode::from(failure.code)
            }
        };
    }
    let result = match &cli.command {
        Command::Push(args) => store_cmds::push(&cli, args),
        Command::Pull(args) => store_cmds::pull(&cli, args),
        Command::Resolve(args) => store_cmds::resolve(&cli, args),
        Command::Copy(args) => store_cmds::copy(&cli, args),
        Command::Discover(args) => store_cmds::discover(&cli, args),
        Command::Digest(args) => store_cmds::digest(args),
        Command::Keygen(args) => keygen(args),
        Command::SignBlob(args) => sign_blob(args),
        Command::VerifyBundle(args) => verify_bundle(args),
        Command::Release(args) => release_cmds::release(&cli, args),
        Command::Sign(args) => attach_cmds::sign(&cli, args),
        Command::Attest(args) => attach_cmds::attest(&cli, args),
        Command::Prune(args) => secops_cmds::prune(&cli, args),
        Command::Tree(args) => tree_cmds::tree(&cli, args),
        Command::Source(_)
        | Command::Sbom(_)
        | Command::Provenance(_)
        | Command::Scan(_)
        | Command::Rescan(_)
        | Command::Verify(_)
        | Command::Policy(_)
        | Command::Promote(_)
        | Command::Sources(_)
        | Command::Audit(_) => {
            unreachable!("handled above")
        }
    };
    let result = secops_cmds::audited(&cli.command, result);
    match result {
        Ok(report) => {
            print_report(output, &report);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            print_failure(output, &failure);
            ExitCode::from(failure.code)
        }
    }
}

fn keygen(args: &sign_cmds::KeygenArgs) -> Result<Report, Failure> {
    let (key, public) = sign_cmds::run_keygen(args)?;
    Ok(Report {
        human: format!(
            "private key written to {}\npublic key written to {}\n",
            key.display(),
            public.display()
        ),
        json: serde_json::json!({ "privateKey": key, "publicKey": public }),
    })
}

fn sign_blob(args: &sign_cmds::SignBlobArgs) -> Result<Report, Failure> {
    let signed = sign_cmds::run_sign_blob(args)?;
    let (human, json) = sign_cmds::describe_signed(&signed, &args.bundle);
    Ok(Report { human, json })
}

fn verify_bundle(args: &sign_cmds::VerifyBundleArgs) -> Result<Report, Failure> {
    let outcome = sign_cmds::run_verify_bundle(args)?;
    let human = sign_cmds::describe(&outcome);
    match outcome {
        sign_cmds::VerifyOutcome::Verified(verified) => Ok(Report {
            human,
            json: serde_json::json!({ "verified": true, "result": verified }),
        }),
        sign_cmds::VerifyOutcome::Refused(error) => Err(Failure {
            error: anyhow::Error::new(error).context("the bundle does not verify"),
            code: EXIT_REFUSED,
            hint: None,
        }),
    }
}

pub(crate) fn print_report(output: OutputFormat, report: &Report) {
    let mut stdout = std::io::stdout().lock();
    let _ = match output {
        OutputFormat::Human => write!(stdout, "{}", report.human),
        OutputFormat::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&report.json).expect("reports serialise")
        ),
    };
}

pub(crate) fn print_failure(output: OutputFormat, failure: &Failure) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", failure.error);
    for cause in failure.error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = &failure.hint {
        let _ = writeln!(stderr, "  hint: {hint}");
    }
    if output == OutputFormat::Json {
        let causes: Vec<String> = failure.error.chain().map(|c| c.to_string()).collect();
        let json = serde_json::json!({
            "error": failure.error.to_string(),
            "causes": causes,
            "hint": failure.hint,
            "exitCode": failure.code,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("json serialises")
        );
    }
}
