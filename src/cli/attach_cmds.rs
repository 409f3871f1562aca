//! `custody sign` and `custody attest`: resolve the reference to a digest, load the signer,
//! call `attach::sign_artifact` / `attach::attest_artifact`, print what was stored.
//!
//! [`signer_from_args`] is the one seam where a signer is chosen: a key today; the keyless
//! signer plugs in there when no `--key` is given.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::secops_cmds::Audited;
use super::{Cli, ExitStatus, Failure, Report, store_options};
use custody::evidence::attach::{
    self, AttachOptions, AttestInput, LegacyTags, SignArtifactError, SignedAttachment, recursive,
};
use custody::evidence::attest::Timestamp;
use custody::evidence::vex::VexStatus;
use custody::foundation::hint::Hint as _;
use custody::foundation::oci::{Descriptor, is_index_media_type};
use custody::foundation::reference::Reference;
use custody::storage::store::elsewhere::Evidence;
use custody::storage::store::{self, Store};
use custody::storage::transfer;
use custody::workflows::audit;

/// Predicate files larger than this are refused.
pub const MAX_PREDICATE_SIZE: u64 = attach::MAX_STATEMENT_SIZE as u64;

/// The predicate type cosign gives `--type custom`, whose predicate wraps the file as text.
pub const PREDICATE_COSIGN_CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

/// cosign's `--type` shortcuts (`cmd/cosign/cli/options/predicate.go`).
pub const PREDICATE_TYPE_SHORTCUTS: &[(&str, &str)] = &[
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
    ("vsa", "https://slsa.dev/verification_summary/v1"),
    ("custom", PREDICATE_COSIGN_CUSTOM),
];

/// Who signs. Shared by every command that signs.
#[derive(clap::Args, Debug, Clone)]
pub struct SignerArgs {
    /// Private key: a cosign key file, a PKCS#8 PEM file, or env://VAR. The password comes
    /// from COSIGN_PASSWORD or CUSTODY_PASSWORD, else a terminal prompt. Without a key,
    /// custody signs keyless with an OIDC identity token (--identity-token, SIGSTORE_ID_TOKEN,
    /// or the GitHub Actions token service).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    #[command(flatten)]
    pub keyless: super::sign_cmds::KeylessArgs,
}

/// Builds the signer the arguments ask for: the key when one is given, else keyless with the
/// identity token the environment offers.
pub fn signer_from_args(
    args: &SignerArgs,
) -> Result<custody::evidence::sign::ChosenSigner, Failure> {
    let options = super::sign_cmds::signer_options(args.key.as_deref(), &args.keyless)?;
    custody::evidence::sign::choose_signer(&options, &super::sign_cmds::token_env()).map_err(|e| {
        let hint = e.hint();
        Failure {
            error: anyhow::Error::new(e).context("cannot set up signing"),
            status: ExitStatus::Error,
            hint,
        }
    })
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The artifact: registry/repo[:tag][@digest] or oci:<dir>[:tag][@digest]. A tag is
    /// resolved to its digest first; the digest is what gets signed.
    pub reference: String,
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Also write cosign's legacy `sha256-<hex>.sig` image, for cosign v2 and tag-only tools.
    #[arg(long)]
    pub legacy_cosign_tags: bool,
    /// Annotation key=value in the signed statement's subject (and a legacy `.sig`'s
    /// `optional`), as `cosign sign -a` (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Also write the Sigstore bundle to this file.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// On an index, also sign every manifest it lists, recursing into nested indexes; each
    /// gets its own signature. Unlike cosign, BuildKit attestation manifests (platform
    /// unknown/unknown) are skipped and listed as such: they are evidence about a platform,
    /// not a platform. An index listing more than 128 manifests in all, or nesting indexes
    /// more than 3 deep, is refused before anything is signed.
    #[arg(long, conflicts_with = "bundle")]
    pub recursive: bool,
}

#[derive(clap::Args, Debug)]
pub struct AttestArgs {
    /// The artifact: registry/repo[:tag][@digest] or oci:<dir>[:tag][@digest].
    pub reference: String,
    /// The predicate: a JSON file (any text for --type custom).
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
    /// Predicate type: slsaprovenance1, slsaprovenance, slsaprovenance02, cyclonedx, spdx,
    /// spdxjson, vsa, openvex, vuln, link, custom, or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    pub predicate_type: String,
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Also write cosign's legacy `sha256-<hex>.att` image.
    #[arg(long)]
    pub legacy_cosign_tags: bool,
    /// Also write the Sigstore bundle to this file.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// On an index, also attest every manifest it lists, recursing into nested indexes; each
    /// gets its own statement naming it. Unlike cosign, BuildKit attestation manifests
    /// (platform unknown/unknown) are skipped and listed as such. An index listing more than
    /// 128 manifests in all, or nesting indexes more than 3 deep, is refused before anything
    /// is attested.
    #[arg(long, conflicts_with = "bundle")]
    pub recursive: bool,
}

/// Why a predicate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PredicateError {
    #[error(
        "--type {given:?} is neither a known shortcut ({known}) nor a URI",
        known = shortcut_names()
    )]
    UnknownType { given: String },
    #[error("predicate {path} is more than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("predicate {path} is not JSON")]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("predicate {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("cannot read predicate {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn shortcut_names() -> String {
    PREDICATE_TYPE_SHORTCUTS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The predicate type a `--type` value names.
pub fn predicate_type_of(given: &str) -> Result<String, PredicateError> {
    if let Some((_, uri)) = PREDICATE_TYPE_SHORTCUTS.iter().find(|(n, _)| *n == given) {
        return Ok((*uri).to_owned());
    }
    attach::check_predicate_type(given).map_err(|_| PredicateError::UnknownType {
        given: given.to_owned(),
    })?;
    Ok(given.to_owned())
}

/// Reads at most `limit` bytes of `path`, refusing larger files without reading them whole.
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, PredicateError> {
    let read = |source| PredicateError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > limit {
        return Err(PredicateError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// The predicate for `--type`: the file's JSON, or for `custom` cosign's wrapper
/// `{"Data": <file text>, "Timestamp": <now>}`.
pub fn load_predicate(
    path: &Path,
    predicate_type: &str,
    now: &Timestamp,
) -> Result<serde_json::Value, PredicateError> {
    let bytes = read_capped(path, MAX_PREDICATE_SIZE)?;
    if predicate_type == PREDICATE_COSIGN_CUSTOM {
        let text = String::from_utf8(bytes).map_err(|_| PredicateError::NotText {
            path: path.to_owned(),
        })?;
        return Ok(serde_json::json!({ "Data": text, "Timestamp": now.as_str() }));
    }
    serde_json::from_slice(&bytes).map_err(|source| PredicateError::NotJson {
        path: path.to_owned(),
        source,
    })
}

/// The store and the subject descriptor (digest, real media type and size) a reference names.
fn resolve_subject(
    cli: &Cli,
    input: &str,
) -> Result<(Reference, Box<dyn Store>, Descriptor), Failure> {
    let reference = input
        .parse::<Reference>()
        .with_context(|| format!("cannot use {input:?} as a reference"))?;
    let store = store::open(&reference, &store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    let fetched = transfer::resolve(store.as_ref(), &reference)
        .with_context(|| format!("cannot resolve {reference}"))?;
    Ok((reference, store, fetched.descriptor))
}

/// A failed signing: exit 1 when a store returned content that does not match its digest
/// (the store error sits inside the attach error, out of reach of the generic mapping).
fn signing_failure(error: SignArtifactError, context: String) -> Failure {
    let integrity = error
        .store_error()
        .is_some_and(store::Error::is_integrity_failure);
    let mut failure = Failure::from(anyhow::Error::new(error).context(context));
    if integrity {
        failure.status = ExitStatus::Failure;
        failure.hint = Some(
            "the store returned content other than what was asked for; nothing was signed next to it"
                .into(),
        );
    }
    failure
}

/// `--bundle -` is refused before anything is signed: the report is standard output.
fn refuse_dash_bundle(path: &Option<PathBuf>) -> Result<(), Failure> {
    if let Some(path) = path {
        super::stdio::refuse_dash(
            path,
            "--bundle",
            "the report is standard output; give a file",
        )?;
    }
    Ok(())
}

fn write_bundle(path: &Option<PathBuf>, attachment: &SignedAttachment) -> Result<(), Failure> {
    if let Some(path) = path {
        std::fs::write(path, attachment.bundle.to_json())
            .with_context(|| format!("cannot write bundle {}", path.display()))?;
    }
    Ok(())
}

/// Says where the evidence went when that is not beside the artifact.
fn written_elsewhere(report: &mut Report, evidence: &Evidence<'_>) {
    if evidence.is_elsewhere() {
        let _ = writeln!(report.human, "evidence in {}", evidence.repository());
        report.json["attestationsRepository"] = serde_json::json!(evidence.repository());
    }
}

fn legacy(flag: bool) -> LegacyTags {
    if flag {
        LegacyTags::Write
    } else {
        LegacyTags::Skip
    }
}

fn report(
    verb: &str,
    reference: &Reference,
    attachment: &SignedAttachment,
    bundle: &Option<PathBuf>,
) -> Report {
    let subject = &attachment.subject;
    let pinned = reference.pinned(&subject.digest);
    let mut human = format!("{verb} {pinned}\n");
    if let Some(tag) = &reference.tag
        && reference.digest.is_none()
    {
        let _ = writeln!(human, "  (tag {tag} resolved to this digest)");
    }
    let _ = writeln!(human, "predicate type: {}", attachment.predicate_type);
    let outcome = match attachment.outcome {
        attach::ReferrerOutcome::Created => "created",
        attach::ReferrerOutcome::AlreadyPresent => "already present, not written again",
    };
    let _ = writeln!(
        human,
        "referrer: {} ({outcome})",
        attachment.referrer.digest
    );
    for l in &attachment.legacy {
        let _ = writeln!(human, "legacy cosign tag: {} ({})", l.tag, l.manifest);
    }
    if let Some(path) = bundle {
        let _ = writeln!(human, "bundle written to {}", path.display());
    }
    let json = serde_json::json!({
        "subject": {
            "digest": subject.digest,
            "mediaType": subject.media_type,
            "size": subject.size,
        },
        "pinned": pinned,
        "predicateType": attachment.predicate_type,
        "referrer": attachment.referrer.digest,
        "referrerOutcome": attachment.outcome,
        "legacy": attachment.legacy,
        "bundle": bundle,
    });
    Report { human, json }
}

/// The report of a signature or attestation, with the record of what was written.
fn audited(
    verb: &str,
    reference: &Reference,
    attachment: &SignedAttachment,
    bundle: &Option<PathBuf>,
) -> Audited {
    Audited {
        report: report(verb, reference, attachment, bundle),
        done: audit::Done::attached(reference.pinned(&attachment.subject.digest), attachment),
    }
}

/// `custody sign`.
pub fn sign(cli: &Cli, args: &SignArgs) -> Result<Audited, Failure> {
    refuse_dash_bundle(&args.bundle)?;
    let annotations = transfer::parse_annotations(&args.annotations)?;
    let signer = signer_from_args(&args.signer)?;
    let (reference, store, subject) = resolve_subject(cli, &args.reference)?;
    let options = AttachOptions {
        legacy_tags: legacy(args.legacy_cosign_tags),
        annotations,
        repository: Some(reference.repository()),
        created: None,
    };
    let elsewhere = super::open_attestations_repository(cli)?;
    let evidence = Evidence::new(store.as_ref(), elsewhere.as_deref());
    if args.recursive {
        let plan = plan(store.as_ref(), &reference, &subject)?;
        let signed = recursive::sign_plan(&evidence, &plan, &signer, &options)
            .map_err(|e| recursive_failure(e, "cannot sign every manifest of", &reference))?;
        let mut audited = audited_recursive("signed", &reference, &signed, &plan);
        written_elsewhere(&mut audited.report, &evidence);
        return Ok(audited);
    }
    let attachment =
        attach::sign_artifact(&evidence, &subject, &signer, &options).map_err(|e| {
            signing_failure(
                e,
                format!("cannot sign {}", reference.pinned(&subject.digest)),
            )
        })?;
    write_bundle(&args.bundle, &attachment)?;
    let mut audited = audited("signed", &reference, &attachment, &args.bundle);
    written_elsewhere(&mut audited.report, &evidence);
    Ok(audited)
}

/// `custody attest`.
pub fn attest(cli: &Cli, args: &AttestArgs) -> Result<Audited, Failure> {
    refuse_dash_bundle(&args.bundle)?;
    let predicate_type = predicate_type_of(&args.predicate_type)?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let predicate = load_predicate(&args.predicate, &predicate_type, &now)?;
    let signer = signer_from_args(&args.signer)?;
    let (reference, store, subject) = resolve_subject(cli, &args.reference)?;
    let options = AttachOptions {
        legacy_tags: legacy(args.legacy_cosign_tags),
        repository: Some(reference.repository()),
        created: Some(now),
        ..AttachOptions::default()
    };
    let elsewhere = super::open_attestations_repository(cli)?;
    let evidence = Evidence::new(store.as_ref(), elsewhere.as_deref());
    if args.recursive {
        let plan = plan(store.as_ref(), &reference, &subject)?;
        let attested = recursive::attest_plan(
            &evidence,
            &plan,
            &predicate_type,
            &predicate,
            &signer,
            &options,
        )
        .map_err(|e| recursive_failure(e, "cannot attest every manifest of", &reference))?;
        let mut audited = audited_recursive("attested", &reference, &attested, &plan);
        written_elsewhere(&mut audited.report, &evidence);
        return Ok(audited);
    }
    let input = AttestInput::Predicate {
        predicate_type,
        predicate,
    };
    let attachment = attach::attest_artifact(&evidence, &subject, input, &signer, &options)
        .map_err(|e| {
            signing_failure(
                e,
                format!("cannot attest {}", reference.pinned(&subject.digest)),
            )
        })?;
    write_bundle(&args.bundle, &attachment)?;
    let mut audited = audited("attested", &reference, &attachment, &args.bundle);
    written_elsewhere(&mut audited.report, &evidence);
    Ok(audited)
}

/// What `--recursive` signs below `subject`, refused as a whole when the index is past the
/// limits.
fn plan(
    store: &dyn Store,
    reference: &Reference,
    subject: &Descriptor,
) -> Result<recursive::Plan, Failure> {
    recursive::plan(store, subject).map_err(|e| {
        recursive_failure(
            e,
            "cannot walk the manifests of",
            &reference.with_digest(subject.digest.clone()),
        )
    })
}

/// A failed recursive run: a hostile index and a lying store are refusals (exit 1).
fn recursive_failure(error: recursive::Error, what: &str, reference: &Reference) -> Failure {
    let pinned = match &reference.digest {
        Some(d) => reference.pinned(d),
        None => reference.to_string(),
    };
    Failure::from(anyhow::Error::new(error).context(format!("{what} {pinned}")))
}

/// The report of a recursive signature or attestation: the fields of the manifest named (as
/// without `--recursive`), then every manifest signed and every entry skipped.
fn audited_recursive(
    verb: &str,
    reference: &Reference,
    signed: &[recursive::SignedManifest],
    plan: &recursive::Plan,
) -> Audited {
    let top = &signed
        .first()
        .expect("a plan always holds the manifest named")
        .attachment;
    let mut audited = audited(verb, reference, top, &None);
    let report = &mut audited.report;
    let _ = writeln!(
        report.human,
        "{verb} {} manifest(s) in all, each with its own referrer:",
        signed.len()
    );
    let mut manifests = Vec::new();
    for s in signed {
        let a = &s.attachment;
        let what = s.manifest.platform.clone().unwrap_or_else(|| {
            if is_index_media_type(&a.subject.media_type) {
                "index".into()
            } else {
                "manifest".into()
            }
        });
        let outcome = match a.outcome {
            attach::ReferrerOutcome::Created => "created",
            attach::ReferrerOutcome::AlreadyPresent => "already present",
        };
        let _ = writeln!(
            report.human,
            "  {} {what}: referrer {} ({outcome})",
            a.subject.digest, a.referrer.digest
        );
        for l in &a.legacy {
            let _ = writeln!(report.human, "    legacy cosign tag: {}", l.tag);
        }
        manifests.push(serde_json::json!({
            "digest": a.subject.digest,
            "mediaType": a.subject.media_type,
            "platform": s.manifest.platform,
            "parent": s.manifest.parent,
            "referrer": a.referrer.digest,
            "referrerOutcome": a.outcome,
            "legacy": a.legacy,
        }));
    }
    for skipped in &plan.skipped {
        let _ = writeln!(
            report.human,
            "  skipped {}: {}",
            skipped.digest,
            skipped.reason.describe()
        );
    }
    report.json["manifests"] = serde_json::Value::Array(manifests);
    report.json["skipped"] = serde_json::to_value(&plan.skipped).expect("json serialises");
    audited
}

/// The statuses `custody vex --status` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum VexStatusArg {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl From<VexStatusArg> for VexStatus {
    fn from(s: VexStatusArg) -> VexStatus {
        match s {
            VexStatusArg::NotAffected => VexStatus::NotAffected,
            VexStatusArg::Affected => VexStatus::Affected,
            VexStatusArg::Fixed => VexStatus::Fixed,
            VexStatusArg::UnderInvestigation => VexStatus::UnderInvestigation,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct VexArgs {
    /// The artifact: registry/repo[:tag][@digest] or oci:<dir>[:tag][@digest]. The statement
    /// names it by digest.
    pub reference: String,
    /// The vulnerability (CVE, GHSA, RUSTSEC, ... id).
    #[arg(long)]
    pub vulnerability: String,
    #[arg(long, value_enum)]
    pub status: VexStatusArg,
    /// With not_affected: component_not_present, vulnerable_code_not_present,
    /// vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary
    /// or inline_mitigations_already_exist.
    #[arg(long)]
    pub justification: Option<String>,
    /// With not_affected: why, in words.
    #[arg(long)]
    pub impact_statement: Option<String>,
    /// With affected: what users should do.
    #[arg(long)]
    pub action_statement: Option<String>,
    /// A package inside the artifact the statement is about, by purl (repeatable); none: the
    /// whole artifact.
    #[arg(long = "subcomponent", value_name = "PURL")]
    pub subcomponents: Vec<String>,
    /// Who makes the statement.
    #[arg(long, default_value = "custody")]
    pub author: String,
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Also write the OpenVEX document to this file.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the Sigstore bundle to this file.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
}

/// `custody vex`: the OpenVEX document for one statement, signed as an attestation
/// (predicate type `https://openvex.dev/ns`, as cosign's `--type openvex`) and attached.
pub fn vex(cli: &Cli, args: &VexArgs) -> Result<Report, Failure> {
    use custody::evidence::vex::{PREDICATE_OPENVEX, openvex};
    refuse_dash_bundle(&args.bundle)?;
    if let Some(path) = &args.out {
        super::stdio::refuse_dash(path, "--out", "the report is standard output; give a file")?;
    }
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let signer = signer_from_args(&args.signer)?;
    let (reference, store, subject) = resolve_subject(cli, &args.reference)?;
    let statement = openvex::NewStatement {
        repository: reference.repository(),
        digest: subject.digest.clone(),
        vulnerability: args.vulnerability.clone(),
        status: args.status.into(),
        justification: args.justification.clone(),
        impact_statement: args.impact_statement.clone(),
        action_statement: args.action_statement.clone(),
        subcomponents: args.subcomponents.clone(),
        author: args.author.clone(),
        timestamp: now.clone(),
    };
    let document = openvex::document(&statement).map_err(|e| Failure {
        error: anyhow::Error::new(e).context("cannot write the vex statement"),
        status: ExitStatus::Error,
        hint: None,
    })?;
    let predicate = serde_json::to_value(&document).expect("json values serialise");
    if let Some(path) = &args.out {
        let mut bytes = serde_json::to_vec_pretty(&predicate).expect("json values serialise");
        bytes.push(b'\n');
        super::stdio::write(path, &bytes)?;
    }
    let options = AttachOptions {
        repository: Some(reference.repository()),
        created: Some(now),
        ..AttachOptions::default()
    };
    let input = AttestInput::Predicate {
        predicate_type: PREDICATE_OPENVEX.to_owned(),
        predicate,
    };
    let elsewhere = super::open_attestations_repository(cli)?;
    let evidence = Evidence::new(store.as_ref(), elsewhere.as_deref());
    let attachment = attach::attest_artifact(&evidence, &subject, input, &signer, &options)
        .map_err(|e| {
            signing_failure(
                e,
                format!("cannot attach vex to {}", reference.pinned(&subject.digest)),
            )
        })?;
    write_bundle(&args.bundle, &attachment)?;
    let mut report = report("vex attested on", &reference, &attachment, &args.bundle);
    written_elsewhere(&mut report, &evidence);
    let _ = writeln!(
        report.human,
        "statement: {} is {} in {}",
        args.vulnerability,
        VexStatus::from(args.status).as_str(),
        reference.pinned(&subject.digest)
    );
    report.json["vex"] = serde_json::json!({
        "id": document.id,
        "vulnerability": args.vulnerability,
        "status": VexStatus::from(args.status).as_str(),
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_shortcuts_follow_cosign_and_uris_pass_through() {
        assert_eq!(
            predicate_type_of("slsaprovenance1").unwrap(),
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(
            predicate_type_of("slsaprovenance").unwrap(),
            "https://slsa.dev/provenance/v0.2"
        );
        assert_eq!(
            predicate_type_of("custom").unwrap(),
            PREDICATE_COSIGN_CUSTOM
        );
        assert_eq!(
            predicate_type_of("https://example.com/p/v1").unwrap(),
            "https://example.com/p/v1"
        );
        assert!(matches!(
            predicate_type_of("slsa"),
            Err(PredicateError::UnknownType { given }) if given == "slsa"
        ));
    }

    #[test]
    fn predicates_are_bounded_json_or_custom_text() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_unix(0);
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not json").unwrap();
        assert!(matches!(
            load_predicate(&text, "https://slsa.dev/provenance/v1", &now),
            Err(PredicateError::NotJson { path, .. }) if path == text
        ));
        assert_eq!(
            load_predicate(&text, PREDICATE_COSIGN_CUSTOM, &now).unwrap(),
            serde_json::json!({"Data": "not json", "Timestamp": "1970-01-01T00:00:00Z"})
        );
        let big = dir.path().join("big.json");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_PREDICATE_SIZE + 1).unwrap();
        assert!(matches!(
            load_predicate(&big, "https://slsa.dev/provenance/v1", &now),
            Err(PredicateError::TooLarge { limit, .. }) if limit == MAX_PREDICATE_SIZE
        ));
        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            load_predicate(&binary, PREDICATE_COSIGN_CUSTOM, &now),
            Err(PredicateError::NotText { .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            load_predicate(&missing, PREDICATE_COSIGN_CUSTOM, &now),
            Err(PredicateError::Read { .. })
        ));
    }
}
