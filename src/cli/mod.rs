//! The command line: parses arguments, calls one library function, prints the result (human or
//! `--output json`) and maps the outcome to an exit code: 0 ok, 1 refused or verification
//! failed, 2 could not run.

pub mod attach_cmds;
pub mod attest_cmds;
pub mod ci_output;
mod diagnostics;
mod login_cmds;
mod meta_cmds;
mod printer;
mod progress;
pub mod promote_cmds;
mod release_cmds;
pub mod rescan_cmds;
pub mod secops_cmds;
mod serve_cmds;
pub mod sign_cmds;
mod stdio;
mod store_cmds;
pub mod tree_cmds;
pub mod trust_cmds;
pub mod verify_cmds;
pub mod vuln_cmds;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use self::diagnostics::{ExitStatus, Failure};
pub use self::printer::Printer;
use custody::storage::store;

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
    version = meta_cmds::LONG_VERSION,
    about = "Keep the chain of custody of software artifacts: source, SBOM, provenance, signatures, OCI storage, verification."
)]
pub struct Cli {
    /// Output format (`markdown`: verify, tree, release, promote, scan).
    #[arg(long = "output", value_name = "OUTPUT", global = true, value_enum, default_value_t = OutputChoice::Human)]
    pub output_choice: OutputChoice,

    /// The format commands print in: `--output`, with `markdown` printing as `human` where a
    /// command has no Markdown report of its own (set by `run`).
    #[arg(skip)]
    pub output: OutputFormat,

    /// Allow plain HTTP to this registry host (loopback addresses always may); only for
    /// commands that talk to a registry. Repeatable; also CUSTODY_INSECURE_REGISTRIES (comma
    /// separated).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// How long to wait on a registry: to connect, for an answer, between two reads, and for a
    /// whole manifest or list (30s, 500ms, 2m; default 60s).
    #[arg(long, global = true, env = "CUSTODY_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<store::Timeout>,

    /// Where manifests, signature bundles, attestations and SBOMs fetched from registries by
    /// digest are kept, so that a second verify of the same artifact only lists its referrers
    /// (default $XDG_CACHE_HOME/custody/oci, else ~/.cache/custody/oci; `off` for none). Every
    /// file is hashed again when read. Its size is kept under CUSTODY_CACHE_MAX_MB (256). Also
    /// CUSTODY_CACHE.
    // CUSTODY_CACHE is read by hand: clap would print a value from the environment in every
    // usage line.
    #[arg(long, global = true, value_name = "DIR|off")]
    pub cache: Option<String>,

    /// Referrer manifests and bundles fetched at once (1 to 32; default 4).
    #[arg(long, global = true, env = "CUSTODY_JOBS", value_name = "N")]
    pub jobs: Option<usize>,

    /// Write and look up signatures and attestations in this repository instead of beside the
    /// artifact, for registries where the image repository is read-only to the signer (cosign's
    /// COSIGN_REPOSITORY). Also CUSTODY_ATTESTATIONS_REPOSITORY, then COSIGN_REPOSITORY; the
    /// flag wins, and any of them wins over a policy scope's attestations_repository.
    #[arg(long, global = true, value_name = "REPO")]
    pub attestations_repository: Option<String>,

    /// No output except errors; the exit code is unchanged.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr: each registry request made.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress of long transfers on stderr.
    #[arg(long, global = true)]
    pub no_progress: bool,

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
    /// Sign an OpenVEX statement about an artifact (by digest) and attach it, as vexctl does.
    Vex(attach_cmds::VexArgs),
    /// Sign a file into a Sigstore bundle, with a key or keyless (Fulcio, Rekor, TSA).
    SignBlob(sign_cmds::SignBlobArgs),
    /// Verify a Sigstore bundle against a file or digest, offline.
    VerifyBundle(sign_cmds::VerifyBundleArgs),
    /// The trusted root of keyless verification: public-good Sigstore (or a private mirror)
    /// through TUF, cached; update, show, export for an air gap.
    #[command(subcommand)]
    Trust(trust_cmds::TrustCommand),
    /// The client of TUF's conformance suite (its CLIENT-CLI protocol); for testing.
    #[command(name = "__tuf-conformance-client", hide = true)]
    TufConformanceClient(trust_cmds::ConformanceArgs),
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
    /// Store a registry credential in docker's config.json (or its credential helper).
    Login(login_cmds::LoginArgs),
    /// Remove a registry credential stored by `login` (or docker login).
    Logout(login_cmds::LogoutArgs),
    /// Serve verification over HTTPS: POST /v1/verify and Kubernetes admission webhooks that
    /// verify every image of a pod and pin tags to the verified digests.
    Serve(Box<serve_cmds::ServeArgs>),
    /// Print custody's version, git commit, build date and target.
    Version(meta_cmds::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completion(meta_cmds::CompletionArgs),
    /// Write man pages generated from the command definition into a folder; for packagers.
    #[command(name = "__man", hide = true)]
    Man(meta_cmds::ManArgs),
}

/// What a command hands back to be printed.
pub struct Report {
    pub human: String,
    pub json: serde_json::Value,
}

/// Store options from flags and the environment.
/// `--jobs`: referrer fetches a walk runs at once, handed to each library call that walks.
pub(crate) fn jobs(cli: &Cli) -> usize {
    cli.jobs.unwrap_or(store::referrers::DEFAULT_JOBS)
}

/// `--attestations-repository`, else `CUSTODY_ATTESTATIONS_REPOSITORY`, else `COSIGN_REPOSITORY`.
pub(crate) fn attestations_repository(
    cli: &Cli,
) -> Result<Option<store::elsewhere::AttestationsRepository>, Failure> {
    store::elsewhere::AttestationsRepository::from_flag_or_env(
        cli.attestations_repository.as_deref(),
        |k| std::env::var(k).ok(),
    )
    .map_err(|e| Failure::from(anyhow::Error::new(e)))
}

/// Where verification reads evidence: [`attestations_repository`], else the policy scope's.
pub(crate) fn attestations_lookup(cli: &Cli) -> Result<store::elsewhere::Lookup, Failure> {
    Ok(store::elsewhere::Lookup {
        repository: attestations_repository(cli)?,
        store_options: store_options(cli),
    })
}

/// Opens the attestations repository evidence is written to, if one is set.
pub(crate) fn open_attestations_repository(
    cli: &Cli,
) -> Result<Option<Box<dyn store::Store>>, Failure> {
    let Some(repository) = attestations_repository(cli)? else {
        return Ok(None);
    };
    let store = repository.open(&store_options(cli)).map_err(|e| {
        Failure::from(anyhow::Error::new(e).context(format!(
            "cannot open attestations repository {} (from {})",
            repository.repository, repository.source
        )))
    })?;
    Ok(Some(store))
}

/// Opens `--to-attestations-repository REPO` (a destination's), if given.
pub(crate) fn open_named_attestations_repository(
    cli: &Cli,
    name: Option<&str>,
) -> Result<Option<Box<dyn store::Store>>, Failure> {
    let Some(name) = name else {
        return Ok(None);
    };
    let repository =
        store::elsewhere::AttestationsRepository::parse(name, store::elsewhere::Source::Flag)
            .map_err(|e| Failure::from(anyhow::Error::new(e)))?;
    let store = repository.open(&store_options(cli)).map_err(|e| {
        Failure::from(
            anyhow::Error::new(e).context(format!("cannot open attestations repository {name}")),
        )
    })?;
    Ok(Some(store))
}

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
        .map(|h| custody::foundation::reference::canonical_host(&h).unwrap_or(h))
        .collect();
    store::Options {
        insecure_registries: insecure,
        credentials: store::auth::CredentialSources::from_env(|k| std::env::var(k).ok()),
        retry,
        timeout: cli.timeout.unwrap_or_default(),
        progress: progress_handle(cli),
        cache: open_cache(
            cli.cache
                .clone()
                .or_else(|| std::env::var("CUSTODY_CACHE").ok()),
            |k| std::env::var(k).ok(),
        ),
        short_lived: true,
    }
}

/// The cache `--cache` (else `CUSTODY_CACHE`) names (`off`: none), else the default one. A
/// cache that cannot be made only costs speed, so it is then left out rather than failing the
/// command.
fn open_cache(
    flag: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<std::sync::Arc<store::cache::Cache>> {
    use store::cache::{Cache, DEFAULT_MAX_BYTES};
    let root = match flag.as_deref().map(str::trim) {
        Some("off") => return None,
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ => Cache::default_root(&env)?,
    };
    let max = env("CUSTODY_CACHE_MAX_MB")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_MAX_BYTES, |mb| mb.saturating_mul(1024 * 1024));
    Cache::open(&root, max).ok().map(std::sync::Arc::new)
}

/// For commands that draw no progress bars (verify, tree, rescan): each registry request with
/// `-v`, nothing otherwise.
pub(crate) fn request_log(cli: &Cli) -> Option<store::ProgressHandle> {
    (cli.verbose > 0).then(|| {
        store::ProgressHandle(std::sync::Arc::new(progress::StderrProgress::new(
            false, true,
        )))
    })
}

/// Where transfers and requests are reported: bars unless `--no-progress`, `-q` or JSON
/// output; requests with `-v`.
fn progress_handle(cli: &Cli) -> Option<store::ProgressHandle> {
    let bars = cli.output == OutputFormat::Human && !cli.quiet && !cli.no_progress;
    let requests = cli.verbose > 0;
    (bars || requests).then(|| {
        store::ProgressHandle(std::sync::Arc::new(progress::StderrProgress::new(
            bars, requests,
        )))
    })
}

/// Commands that never talk to a registry: `--insecure-registry` is refused on their command
/// line (clap shows global flags on every command; hiding one after the build corrupts the
/// parser, so the help says where it applies instead).
pub const NO_REGISTRY_COMMANDS: &[&str] = &[
    "sign-blob",
    "verify-bundle",
    "trust",
    "keygen",
    "policy",
    "source",
    "provenance",
    "sources",
    "audit",
    "digest",
    "logout",
    "version",
    "completion",
];

/// `--insecure-registry` given to a command that talks to no registry: a usage error.
fn misplaced_insecure_registry(cli: &Cli) -> Option<Failure> {
    use clap::CommandFactory as _;
    if cli.insecure_registries.is_empty() {
        return None;
    }
    let name = Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()?
        .subcommand_name()
        .map(str::to_owned)?;
    NO_REGISTRY_COMMANDS.contains(&name.as_str()).then(|| Failure {
        error: anyhow::anyhow!("--insecure-registry: `custody {name}` talks to no registry"),
        status: ExitStatus::Error,
        hint: Some("give --insecure-registry only to commands that read or write a registry (push, pull, copy, verify, release, ...)".into()),
    })
}

pub fn run() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    cli.output = match cli.output_choice {
        OutputChoice::Json => OutputFormat::Json,
        OutputChoice::Human | OutputChoice::Markdown => OutputFormat::Human,
    };
    let printer = Printer::new(cli.output).quiet(cli.quiet);
    if let Some(failure) = misplaced_insecure_registry(&cli) {
        printer.failure(&failure);
        return printer.exit(failure.status);
    }
    if let Err(failure) = ci_output::check_markdown_support(&cli) {
        printer.failure(&failure);
        return printer.exit(failure.status);
    }
    let status = dispatch(&cli, &printer);
    printer.exit(status)
}

/// Help, version, or a usage error from clap. Help and version go to stdout (a closed pipe is
/// fine); a usage error goes to stderr, and with `--output json` the error document follows on
/// stdout, as for any other failure.
fn usage(e: &clap::Error) -> ExitCode {
    let printer = Printer::new(output_in_args(std::env::args_os()));
    if !e.use_stderr() {
        return match e.print() {
            Err(io) if io.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            _ => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
        };
    }
    let _ = e.print();
    if printer.format() == OutputFormat::Json {
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        let message = first.strip_prefix("error: ").unwrap_or(first);
        let tip = rendered
            .lines()
            .find_map(|l| l.trim().strip_prefix("tip: "))
            .map(str::to_owned);
        let failure = Failure {
            error: anyhow::anyhow!("{message}"),
            status: ExitStatus::Error,
            hint: tip,
        };
        printer.json(&diagnostics::document(&failure));
    }
    printer.exit(ExitStatus::Error)
}

/// `--output json` (or `--output=json`) among raw arguments clap refused.
fn output_in_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> OutputFormat {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let json = args.iter().enumerate().any(|(i, a)| {
        a == "--output=json" || (a == "--output" && args.get(i + 1).is_some_and(|v| v == "json"))
    });
    if json {
        OutputFormat::Json
    } else {
        OutputFormat::Human
    }
}

fn dispatch(cli: &Cli, printer: &Printer) -> ExitStatus {
    // These print their own reports (and can refuse with exit 1 after printing).
    match &cli.command {
        Command::Scan(args) => return vuln_cmds::run(cli, args, printer),
        Command::Rescan(args) => return rescan_cmds::run(cli, args, printer),
        Command::Verify(args) => return verify_cmds::verify(cli, args, printer),
        Command::Policy(args) => return verify_cmds::policy(args, printer),
        Command::Promote(args) => return promote_cmds::promote(cli, args, printer),
        Command::Serve(args) => return serve_cmds::serve(cli, args, printer),
        Command::Tree(args) => return tree_cmds::run(cli, args, printer),
        Command::Sources(cmd) => return secops_cmds::run_sources(cmd, printer),
        Command::Audit(cmd) => return secops_cmds::run_audit(cmd, printer),
        Command::TufConformanceClient(args) => {
            return trust_cmds::conformance_client(args, printer);
        }
        Command::Completion(args) => {
            printer.stdout(&meta_cmds::completion(args));
            return ExitStatus::Success;
        }
        _ => {}
    }
    let result = match &cli.command {
        Command::Source(args) => attest_cmds::source_cmd::run(args.clone()).map_err(Failure::from),
        Command::Sbom(args) => {
            attest_cmds::sbom_cmd::run(args.clone(), store_options(cli)).map_err(Failure::from)
        }
        Command::Provenance(args) => {
            attest_cmds::provenance_cmd::run(args.clone()).map_err(Failure::from)
        }
        Command::Push(args) => secops_cmds::audited(&cli.command, store_cmds::push(cli, args)),
        Command::Pull(args) => store_cmds::pull(cli, args),
        Command::Resolve(args) => store_cmds::resolve(cli, args),
        Command::Copy(args) => secops_cmds::audited(&cli.command, store_cmds::copy(cli, args)),
        Command::Discover(args) => store_cmds::discover(cli, args),
        Command::Digest(args) => store_cmds::digest(args),
        Command::Keygen(args) => keygen(args),
        Command::SignBlob(args) => sign_blob(args, printer),
        Command::VerifyBundle(args) => verify_bundle(args),
        Command::Release(args) => {
            secops_cmds::audited(&cli.command, release_cmds::release(cli, args, printer))
        }
        Command::Sign(args) => secops_cmds::audited(&cli.command, attach_cmds::sign(cli, args)),
        Command::Attest(args) => secops_cmds::audited(&cli.command, attach_cmds::attest(cli, args)),
        Command::Prune(args) => secops_cmds::audited(&cli.command, secops_cmds::prune(cli, args)),
        Command::Vex(args) => attach_cmds::vex(cli, args),
        Command::Login(args) => login_cmds::login(args, printer),
        Command::Logout(args) => login_cmds::logout(args),
        Command::Trust(cmd) => trust_cmds::run(cmd),
        Command::Version(_) => Ok(meta_cmds::version()),
        Command::Man(args) => meta_cmds::man(args).map_err(Failure::from),
        Command::Scan(_)
        | Command::Rescan(_)
        | Command::Verify(_)
        | Command::Policy(_)
        | Command::Promote(_)
        | Command::Serve(_)
        | Command::Tree(_)
        | Command::Sources(_)
        | Command::Audit(_)
        | Command::TufConformanceClient(_)
        | Command::Completion(_) => {
            unreachable!("handled above")
        }
    };
    match result {
        // A document written to standard output (`sbom -o -`) leaves stdout to the document:
        // the summary goes to stderr.
        Ok(report) if writes_document_to_stdout(&cli.command) => {
            printer.report_to_stderr(&report.human, &report.json);
            ExitStatus::Success
        }
        Ok(report) => {
            if !ci_output::print_report_markdown(cli, printer, &report) {
                printer.report(&report.human, &report.json);
            }
            ExitStatus::Success
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

/// Whether the command's document goes to standard output (`-o -`).
fn writes_document_to_stdout(command: &Command) -> bool {
    match command {
        Command::Sbom(args) => stdio::is_dash(&args.out),
        Command::Provenance(args) => stdio::is_dash(&args.out),
        _ => false,
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

fn sign_blob(args: &sign_cmds::SignBlobArgs, printer: &Printer) -> Result<Report, Failure> {
    let signed = sign_cmds::run_sign_blob(args)?;
    let (human, json) = sign_cmds::describe_signed(&signed, &args.bundle, printer);
    Ok(Report { human, json })
}

fn verify_bundle(args: &sign_cmds::VerifyBundleArgs) -> Result<Report, Failure> {
    let (outcome, origin) = sign_cmds::run_verify_bundle(args)?;
    let mut human = sign_cmds::describe(&outcome);
    if let Some(o) = &origin {
        human.push_str(&trust_cmds::origin_line(o));
    }
    match outcome {
        sign_cmds::VerifyOutcome::Verified(verified) => {
            let mut json = serde_json::json!({ "verified": true, "result": verified });
            if let Some(o) = origin {
                json["trustedRoot"] = serde_json::json!(o);
            }
            Ok(Report { human, json })
        }
        sign_cmds::VerifyOutcome::Refused(error) => Err(Failure {
            error: anyhow::Error::new(error).context("the bundle does not verify"),
            status: ExitStatus::Failure,
            hint: None,
        }),
    }
}
