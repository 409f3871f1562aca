//! `custody verify`, `custody policy init` and `custody policy check`: arguments, turning flags
//! into policy overrides, printing the verification tree, and exit codes (0 verified, 1 refused,
//! 2 could not verify).

mod file;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{Cli, ExitStatus, Failure, Printer};
use custody::decisions::policy::{self, Overrides, Policy};
use custody::decisions::verify::{self, VerifyOptions, VerifyReport};
use custody::evidence::attach::{self, BundleContent};
use custody::evidence::attest::{PREDICATE_SLSA_VSA_V1, Timestamp};
use custody::evidence::sign::keys::PublicKey;
use custody::evidence::sign::verify::TrustedRoot;
use custody::evidence::sign::{KeyRef, sign_statement};
use custody::foundation::oci::Descriptor;
use custody::foundation::reference::Reference;
use custody::storage::store;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The artifact: `registry/repo[:tag][@digest]` or `oci:<dir>[:tag][@digest]`.
    pub reference: String,
    /// Trust this public key (PEM file or env://VAR). Repeatable. Replaces the policy's signers.
    #[arg(long, value_name = "KEY")]
    pub key: Vec<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// trusted_root.json: CAs, transparency logs and TSAs. Default: the policy scope's
    /// `trust:`, else public-good Sigstore's through TUF (`custody trust show`).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Verify only this platform of an index (`os/arch[/variant]`).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// No network at all: the artifact comes from an OCI layout (`custody copy <ref>
    /// oci:<dir>`), trust from files.
    #[arg(long)]
    pub offline: bool,
    /// Show the whole chain as a tree for a pass too (a refusal always shows it; a pass
    /// otherwise prints one summary line per artifact and the verdict).
    #[arg(long)]
    pub tree: bool,
    /// Choose the policy scope as if the artifact were in this repository (for layout copies).
    #[arg(long, value_name = "REPOSITORY")]
    pub scope_as: Option<String>,
    /// Write a SLSA Verification Summary Attestation of the result to FILE (a signed bundle
    /// with --vsa-key, else the unsigned statement).
    #[arg(long, value_name = "FILE")]
    pub vsa: Option<PathBuf>,
    /// Sign the VSA with this private key (cosign key file, PKCS#8 PEM or env://VAR).
    #[arg(long, value_name = "KEY")]
    pub vsa_key: Option<String>,
    /// Store the signed VSA as a referrer of the artifact (only when it says PASSED).
    #[arg(long, requires = "vsa_key")]
    pub attach_vsa: bool,
    /// Also write the checks as a JUnit XML test report to FILE (GitLab's test report widget).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// With --attach-vsa: attach the VSA even when it says FAILED (it never counts for the
    /// artifact; it records the refusal).
    #[arg(long, requires = "attach_vsa")]
    pub attach_failed_vsa: bool,
    /// The artifact is a local file and this is a detached Sigstore bundle for it (from
    /// `custody sign-blob`, `cosign sign-blob --bundle`, ...). Repeatable; the policy applies as
    /// to a stored artifact, with the file's sha256 as the subject.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub bundle: Vec<PathBuf>,
    /// The artifact is a local file downloaded from this stored artifact: verify that one,
    /// then check the file is one of its files (a layer, or a subject of its provenance).
    #[arg(long, value_name = "REFERENCE")]
    pub from: Option<String>,
}

/// What to trust and what to require: the policy file and the flags that override it. Shared
/// by `verify`, `promote` and `tree`. Public keys to trust and the trusted root are named by
/// each command: `promote` also signs, so its `--key` is the signing key (trusted keys are
/// `--trust-key`) and its one `--trusted-root` serves both verifying and keyless signing.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    /// Policy file (YAML or JSON, schemas/policy.schema.json). Flags below override it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Trust certificates for this identity (SAN), exact. Needs --certificate-oidc-issuer.
    #[arg(long, value_name = "ID")]
    pub certificate_identity: Option<String>,
    /// Trust certificates whose identity matches this regular expression (unanchored).
    #[arg(long, value_name = "REGEX", conflicts_with = "certificate_identity")]
    pub certificate_identity_regexp: Option<String>,
    /// OIDC issuer the certificate must name.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Distinct trusted signers needed.
    #[arg(long, value_name = "N")]
    pub threshold: Option<u32>,
    /// Key-signed bundles must carry a verified transparency-log entry.
    #[arg(long)]
    pub require_tlog: bool,
    /// Require a trusted attestation of this predicate type. Repeatable.
    #[arg(long, value_name = "URI")]
    pub require_attestation: Vec<String>,
    /// Require trusted SLSA provenance.
    #[arg(long)]
    pub require_provenance: bool,
    /// Allowed provenance builder id (glob). Repeatable.
    #[arg(long, value_name = "ID")]
    pub builder_id: Vec<String>,
    /// Allowed source repository (glob). Repeatable.
    #[arg(long, value_name = "URL")]
    pub source_repository: Vec<String>,
    /// Allowed source ref, e.g. `refs/tags/v*` (glob). Repeatable.
    #[arg(long, value_name = "REF")]
    pub source_ref: Vec<String>,
    /// Allowed build type (glob). Repeatable.
    #[arg(long, value_name = "URI")]
    pub build_type: Vec<String>,
    /// Minimum SLSA build level (0-3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub min_build_level: Option<u8>,
    /// Maximum age of the build (`30d`, `12h`).
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Accept provenance of a build from a dirty work tree.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Require a trusted SBOM attestation.
    #[arg(long)]
    pub require_sbom: bool,
    /// OSV database for the policy's `vulnerabilities:` gate: a folder of OSV JSON files or an
    /// osv.dev `all.zip`. Repeatable; replaces the policy's `vulnerabilities.databases`.
    #[arg(long = "db", value_name = "PATH")]
    pub db: Vec<PathBuf>,
}

impl TrustArgs {
    /// True when any of these flags was given.
    pub fn given(&self) -> bool {
        let TrustArgs {
            policy,
            certificate_identity,
            certificate_identity_regexp,
            certificate_oidc_issuer,
            threshold,
            require_tlog,
            require_attestation,
            require_provenance,
            builder_id,
            source_repository,
            source_ref,
            build_type,
            min_build_level,
            max_age,
            allow_dirty,
            require_sbom,
            db,
        } = self;
        policy.is_some()
            || certificate_identity.is_some()
            || certificate_identity_regexp.is_some()
            || certificate_oidc_issuer.is_some()
            || threshold.is_some()
            || *require_tlog
            || !require_attestation.is_empty()
            || *require_provenance
            || !builder_id.is_empty()
            || !source_repository.is_empty()
            || !source_ref.is_empty()
            || !build_type.is_empty()
            || min_build_level.is_some()
            || max_age.is_some()
            || *allow_dirty
            || *require_sbom
            || !db.is_empty()
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum PolicyCommand {
    /// Write a commented starting policy.
    Init {
        /// Where to write it (default, or `-`: standard output).
        file: Option<PathBuf>,
    },
    /// Validate a policy file; errors name the line.
    Check {
        /// The policy file, or `-` to read it from standard input.
        file: PathBuf,
    },
}

fn key_text(reference: &str) -> anyhow::Result<String> {
    if let Some(var) = reference.strip_prefix(super::sign_cmds::ENV_KEY_PREFIX) {
        return std::env::var(var)
            .with_context(|| format!("environment variable {var} is not set"));
    }
    if KeyRef::parse(reference).is_ok_and(|r| r.is_remote()) {
        // A KMS/HSM key: its public half, as PEM.
        return Ok(super::sign_cmds::load_public_key(reference)?.to_pem());
    }
    let meta =
        std::fs::metadata(reference).with_context(|| format!("cannot read key {reference}"))?;
    if meta.len() > 64 * 1024 {
        bail!("{reference} is {} bytes; not a key file", meta.len());
    }
    std::fs::read_to_string(reference).with_context(|| format!("cannot read key {reference}"))
}

/// The policy file (if any) with the trust flags applied ([`Overrides`]).
pub fn effective_policy(args: &TrustArgs, keys: &[String]) -> anyhow::Result<Policy> {
    let policy = match &args.policy {
        Some(path) => Some(
            Policy::load_with_keys(path, &super::sign_cmds::key_env())
                .with_context(|| format!("policy {} cannot be used", path.display()))?,
        ),
        None => None,
    };
    let mut public_keys = Vec::new();
    for k in keys {
        let pem = key_text(k)?;
        if pem.contains("CERTIFICATE") {
            bail!(
                "--key {k} is a certificate; trust certificates with --certificate-identity and --certificate-oidc-issuer"
            );
        }
        public_keys.push(
            PublicKey::from_pem(&pem).with_context(|| format!("cannot load public key {k}"))?,
        );
    }
    let overrides = Overrides {
        keys: public_keys,
        certificate_identity: args.certificate_identity.clone(),
        certificate_identity_regexp: args.certificate_identity_regexp.clone(),
        certificate_oidc_issuer: args.certificate_oidc_issuer.clone(),
        threshold: args.threshold,
        require_tlog: args.require_tlog,
        require_attestation: args.require_attestation.clone(),
        require_provenance: args.require_provenance,
        builder_id: args.builder_id.clone(),
        source_repository: args.source_repository.clone(),
        source_ref: args.source_ref.clone(),
        build_type: args.build_type.clone(),
        min_build_level: args.min_build_level,
        max_age: args.max_age.clone(),
        allow_dirty: args.allow_dirty,
        require_sbom: args.require_sbom,
    };
    Ok(overrides.apply(policy)?)
}

pub(crate) fn load_root(path: Option<&Path>) -> anyhow::Result<TrustedRoot> {
    match path {
        None => Ok(TrustedRoot::empty()),
        Some(p) => {
            let meta = std::fs::metadata(p)
                .with_context(|| format!("cannot read trusted root {}", p.display()))?;
            if meta.len() > custody::evidence::sign::verify::MAX_TRUSTED_ROOT_SIZE as u64 {
                bail!("trusted root {} is too large", p.display());
            }
            let bytes = std::fs::read(p)
                .with_context(|| format!("cannot read trusted root {}", p.display()))?;
            TrustedRoot::from_json(&bytes)
                .with_context(|| format!("cannot use trusted root {}", p.display()))
        }
    }
}

/// `custody verify`: prints the report and returns 0 verified, 1 refused, 2 could not verify.
pub fn verify(cli: &Cli, args: &VerifyArgs, printer: &Printer) -> ExitStatus {
    // Report files cannot be `-`: the report itself is standard output.
    for (flag, path) in [("--vsa", &args.vsa), ("--junit", &args.junit)] {
        if let Some(path) = path
            && let Err(e) =
                super::stdio::refuse_dash(path, flag, "the report is standard output; give a file")
        {
            let failure = could_not(e, None);
            printer.failure(&failure);
            return failure.status;
        }
    }
    let result = if file::wanted(args) {
        file::run(cli, args, printer)
    } else {
        run_verify(cli, args, printer)
    };
    // The verdict (or why there is none) goes to the audit log before anything is printed.
    let record = match &result {
        Ok(report) => super::secops_cmds::verdict_record("verify", &args.reference, report),
        Err(f) => super::secops_cmds::failure_record("verify", &args.reference, f),
    };
    let written = super::secops_cmds::append_audit(record);
    let result = super::secops_cmds::with_audit("verify", result, written);
    if let Err(failure) =
        super::ci_output::verify_extras(cli, printer, args.junit.as_deref(), &result)
    {
        printer.failure(&failure);
        return failure.status;
    }
    match result {
        Ok(report) => {
            if !super::ci_output::print_verify_markdown(cli, printer, &report) {
                printer.report(&verify::render::human_with(&report, args.tree), &report);
            }
            ExitStatus::refused_unless(report.verified)
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

/// The effective policy and the trusted root, or why they cannot be used (exit 2).
pub(crate) fn policy_and_root(
    trust: &TrustArgs,
    keys: &[String],
    trusted_root: Option<&Path>,
) -> Result<(Policy, TrustedRoot), Failure> {
    let policy = effective_policy(trust, keys).map_err(|e| policy_failure(e, trust, keys))?;
    let root = match trusted_root {
        // promote and tree: keyless signers are checked against the default root (TUF).
        None if policy
            .scopes
            .iter()
            .any(super::trust_cmds::scope_needs_root) =>
        {
            super::trust_cmds::default_root(false)
                .map_err(|e| could_not(e, Some(super::trust_cmds::NO_ROOT_HINT)))?
                .root
        }
        _ => load_root(trusted_root).map_err(|e| could_not(e, None))?,
    };
    Ok((policy, root))
}

/// Why the trust flags give no usable policy, with the hint that points at the fix: the
/// error's own (a private key given as a public one), the missing trust flags, or the policy.
fn policy_failure(error: anyhow::Error, trust: &TrustArgs, keys: &[String]) -> Failure {
    let own = Failure::from(error);
    let hint = own.hint.clone().unwrap_or_else(|| {
        let no_trust = trust.policy.is_none()
            && keys.is_empty()
            && trust.certificate_identity.is_none()
            && trust.certificate_identity_regexp.is_none()
            && trust.certificate_oidc_issuer.is_none();
        if no_trust {
            "give --key PUB, --certificate-identity with --certificate-oidc-issuer, or --policy FILE (`custody policy init` writes one)".to_owned()
        } else if trust.policy.is_some() {
            "check the policy with `custody policy check FILE`".to_owned()
        } else {
            "check the trust flags: --key takes a public key file, keyless signers need both --certificate-identity and --certificate-oidc-issuer".to_owned()
        }
    });
    could_not(own.error, Some(&hint))
}

pub(crate) fn could_not(error: anyhow::Error, hint: Option<&str>) -> Failure {
    Failure {
        error,
        status: ExitStatus::Error,
        hint: hint.map(str::to_owned),
    }
}

fn run_verify(cli: &Cli, args: &VerifyArgs, printer: &Printer) -> Result<VerifyReport, Failure> {
    let reference: Reference = args
        .reference
        .parse()
        .with_context(|| format!("bad reference {:?}", args.reference))
        .map_err(|e| could_not(e, file::hint_for(&args.reference)))?;
    let policy = effective_policy(&args.trust, &args.key)
        .map_err(|e| policy_failure(e, &args.trust, &args.key))?;
    let (root, trusted_root) = super::trust_cmds::root_for(
        &policy,
        &args
            .scope_as
            .clone()
            .unwrap_or_else(|| reference.repository()),
        args.trusted_root.as_deref(),
        args.offline,
    )?;
    let store: Box<dyn store::Store> = if args.offline {
        let Some(path) = reference.layout_path() else {
            return Err(could_not(
                anyhow::anyhow!(
                    "--offline verifies an OCI layout, not the registry reference {reference}"
                ),
                Some(
                    "copy it first: custody copy <ref> oci:<dir>, then verify oci:<dir>@<digest> --offline",
                ),
            ));
        };
        // Only the layout store: no registry client is ever built.
        Box::new(
            store::layout::LayoutStore::open_existing(path)
                .with_context(|| format!("cannot open layout {}", path.display()))
                .map_err(|e| could_not(e, None))?,
        )
    } else {
        let mut options = super::store_options(cli);
        options.progress = super::request_log(cli);
        store::open_existing(&reference, &options)
            .with_context(|| format!("cannot open {}", reference.repository()))
            .map_err(|e| could_not(e, None))?
    };
    // Parsed like any reference, so the scope is chosen on its canonical spelling.
    let scope_as = match &args.scope_as {
        None => None,
        Some(text) => Some(scope_repository(text).map_err(|e| could_not(e, None))?),
    };
    let repository = scope_as.clone().unwrap_or_else(|| reference.repository());
    let options = VerifyOptions {
        trusted_root: root,
        platform: args.platform.clone(),
        now: None,
        scope_repository: scope_as,
        vulnerability_db: load_vulnerability_db(&policy, &repository, &args.trust.db)
            .map_err(|e| could_not(e, None))?,
        jobs: super::jobs(cli),
        attestations: super::attestations_lookup(cli)?,
    };
    let mut report =
        verify::artifact(store.as_ref(), &reference, &policy, &options).map_err(|e| {
            let own = Failure::from(anyhow::Error::new(e).context("could not verify"));
            let hint = own
                .hint
                .unwrap_or_else(|| "the registry could not be read; nothing was verified".into());
            could_not(own.error, Some(&hint))
        })?;
    report.trusted_root = trusted_root;
    match (&args.vsa, &report.digest) {
        (Some(path), None) => printer.stderr(&format!(
            "note: {} did not resolve to a digest; no vsa was written to {}\n",
            args.reference,
            path.display()
        )),
        (Some(path), Some(_)) => {
            write_vsa(store.as_ref(), &report, args, path, printer)
                .map_err(|e| could_not(e, None))?;
        }
        (None, _) => {}
    }
    Ok(report)
}

/// A `--scope-as` repository in its canonical spelling; a tag or digest has no place there.
fn scope_repository(text: &str) -> anyhow::Result<String> {
    let r: Reference = text
        .parse()
        .with_context(|| format!("bad --scope-as repository {text:?}"))?;
    if r.tag.is_some() || r.digest.is_some() {
        anyhow::bail!("--scope-as takes a repository; {text:?} names a tag or digest");
    }
    Ok(r.repository())
}

/// The OSV database for the scope that will apply to `repository`, when it has a
/// `vulnerabilities:` section: `--db` if given, else the section's `databases`.
pub fn load_vulnerability_db(
    policy: &Policy,
    repository: &str,
    db: &[PathBuf],
) -> anyhow::Result<Option<std::sync::Arc<custody::decisions::vuln::Database>>> {
    let Some(gate) = policy
        .scope_for(repository)
        .and_then(|s| s.vulnerabilities.as_ref())
    else {
        return Ok(None);
    };
    let paths = if db.is_empty() { &gate.databases } else { db };
    if paths.is_empty() {
        return Ok(None);
    }
    let db = custody::decisions::vuln::Database::load(
        paths,
        &custody::decisions::vuln::Limits::default(),
    )
    .context("could not load the vulnerability database")?;
    Ok(Some(std::sync::Arc::new(db)))
}

fn write_vsa(
    store: &dyn store::Store,
    report: &VerifyReport,
    args: &VerifyArgs,
    path: &Path,
    printer: &Printer,
) -> anyhow::Result<()> {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let statement = verify::vsa::summary(report, now.clone()).context("cannot build the vsa")?;
    let bytes = statement.to_bytes().context("cannot serialise the vsa")?;
    let Some(key) = &args.vsa_key else {
        std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(());
    };
    let key = super::sign_cmds::open_signing_key(key)?;
    let bundle = sign_statement(&bytes, &key).context("cannot sign the vsa")?;
    let json = bundle.to_json();
    std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    if args.attach_vsa && !report.verified && !args.attach_failed_vsa {
        printer.stderr(&format!(
            "note: the vsa says FAILED; it was written to {} but not attached (--attach-failed-vsa attaches it)\n",
            path.display()
        ));
        return Ok(());
    }
    if args.attach_vsa {
        let digest = report
            .digest
            .as_ref()
            .context("the reference did not resolve to a digest; there is nothing to attach to")?;
        let m = store
            .get_manifest(digest)
            .context("cannot fetch the artifact to attach the vsa")?;
        let subject = Descriptor::new(
            m.descriptor.media_type.clone(),
            m.descriptor.digest.clone(),
            m.descriptor.size,
        );
        attach::attach_bundle(
            store,
            &subject,
            &json,
            BundleContent::DsseEnvelope,
            Some(PREDICATE_SLSA_VSA_V1),
            now.as_str(),
        )
        .context("cannot attach the vsa")?;
    }
    Ok(())
}

/// `custody policy init|check`.
pub fn policy(args: &PolicyArgs, printer: &Printer) -> ExitStatus {
    match &args.command {
        PolicyCommand::Init { file } => match file.as_deref().filter(|f| !super::stdio::is_dash(f))
        {
            None => {
                printer.stdout(policy::STARTER_POLICY);
                ExitStatus::Success
            }
            Some(path) => {
                if path.exists() {
                    let failure = could_not(
                        anyhow::anyhow!("{} exists; not overwriting it", path.display()),
                        None,
                    );
                    printer.failure(&failure);
                    return failure.status;
                }
                match std::fs::write(path, policy::STARTER_POLICY) {
                    Ok(()) => {
                        printer.report(
                            &format!("policy written to {}\n", path.display()),
                            &serde_json::json!({"policy": path}),
                        );
                        ExitStatus::Success
                    }
                    Err(e) => {
                        let failure = could_not(
                            anyhow::Error::new(e)
                                .context(format!("cannot write {}", path.display())),
                            None,
                        );
                        printer.failure(&failure);
                        failure.status
                    }
                }
            }
        },
        PolicyCommand::Check { file } => match load_policy_argument(file) {
            Ok(p) => {
                let scopes: Vec<serde_json::Value> = p
                    .scopes
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "signers": s.signers.len(), "threshold": s.threshold}))
                    .collect();
                printer.report(
                    &format!(
                        "{} is a valid policy: {} scope(s): {}\n",
                        super::stdio::name(file),
                        p.scopes.len(),
                        p.scopes
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    &serde_json::json!({"valid": true, "scopes": scopes, "digest": p.digest}),
                );
                ExitStatus::Success
            }
            Err(e) => {
                let status = match e {
                    policy::PolicyError::Read { .. } => ExitStatus::Error,
                    _ => ExitStatus::Failure,
                };
                let line = e
                    .line()
                    .map(|l| format!("see line {l} of {}", super::stdio::name(file)));
                let hint = match (e.suggestion(), line) {
                    (Some(guess), Some(line)) => Some(format!("{guess} ({line})")),
                    (guess, line) => guess.or(line),
                };
                let failure = Failure {
                    error: anyhow::Error::new(e).context(format!(
                        "{} is not a valid policy",
                        super::stdio::name(file)
                    )),
                    status,
                    hint,
                };
                printer.failure(&failure);
                status
            }
        },
    }
}

/// The policy `policy check` names: a file, or `-` for standard input (YAML, or JSON when it
/// starts with `{`; key paths relative to the current folder).
fn load_policy_argument(file: &Path) -> Result<Policy, policy::PolicyError> {
    use std::io::Read as _;
    if !super::stdio::is_dash(file) {
        return Policy::load_with_keys(file, &super::sign_cmds::key_env());
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(policy::MAX_POLICY_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| policy::PolicyError::Read {
            path: file.to_owned(),
            source,
        })?;
    let format = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => policy::Format::Json,
        _ => policy::Format::Yaml,
    };
    Policy::parse(&bytes, format, Path::new("."), "standard input")
}
