//! Verification at consumption: from a reference to a verdict under a [`Policy`], as a typed
//! [`VerifyReport`] that says, for every check, what was expected and what was found.
//!
//! The chain, in order: resolve a tag to a digest once (every later step uses the digest);
//! fetch the manifest by digest and check it; pick the policy scope; discover signatures and
//! attestations by every path (referrers API, tag-schema fallback, legacy cosign tags); verify
//! each one (key or certificate identity, chain, log, timestamps) and bind it (in-toto payload
//! type, subject digest = artifact digest); then the policy: distinct trusted signers against the
//! threshold, required attestations, provenance rules, SBOM rules. For an index, each platform
//! manifest is checked too.
//!
//! [`Error`] means custody could not verify (exit 2); a report with `verified == false` means
//! the artifact was refused (exit 1).

pub mod file;
pub mod gates;
pub mod render;
pub mod report;
pub mod rules;
mod verdict;
pub mod vsa;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use self::rules::SignerEvidence;
use crate::decisions::policy::{
    Policy, ProvenanceRules, SbomRules, Scope, SignerKind, TrustedSigner,
};
use crate::evidence::attach::{self, FoundBundle, FoundLegacy, LegacyKind};
use crate::evidence::attest::{
    PREDICATE_COSIGN_SIGN_V1, PREDICATE_CYCLONEDX, PREDICATE_SLSA_PROVENANCE_V1,
};
use crate::evidence::sign::bundle::{Bundle, Content, Material};
use crate::evidence::sign::dsse;
use crate::evidence::sign::verify::{
    Artifact, IdentityPolicy, KeyPolicy, Policy as SigPolicy, TrustedRoot, VerifiedBundle,
    VerifiedSigner, VerifyError, verify_bundle,
};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, ImageIndex, Manifest};
use crate::foundation::reference::Reference;
use crate::storage::store::elsewhere::{self, Evidence, Lookup};
use crate::storage::store::{self, Store};
use crate::storage::transfer;
pub use report::{
    Check, CheckKind, IgnoredReferrer, ManifestReport, PolicyRef, ReferrerKind, ReferrerReport,
    Status, VerifyReport,
};
pub use verdict::{Verdict, Verified};

/// Largest in-toto statement read (the bundle holding it is bounded too).
pub const MAX_STATEMENT_SIZE: usize = 16 * 1024 * 1024;
/// Deepest JSON nesting accepted in a statement (serde_json stops at 128 on its own).
pub const MAX_STATEMENT_DEPTH: usize = 64;
/// At most this many signatures and attestations are verified per manifest.
pub const MAX_REFERRERS: usize = 1000;
/// What to run when no trusted SBOM is there: a command line that works as given.
pub const SBOM_HINT: &str = "attest an SBOM with a signer the policy trusts: custody sbom FILES -o sbom.cdx.json, then custody attest REF --type cyclonedx --predicate sbom.cdx.json --key KEY (or keyless)";
/// What to run when no trusted provenance is there.
pub const PROVENANCE_HINT: &str = "attest the build's provenance with a signer the policy trusts: custody release does it, or custody attest REF --type slsaprovenance1 --predicate PREDICATE.json --key KEY (or keyless)";
/// Predicate types that count as an SBOM.
pub const SBOM_PREDICATE_TYPES: &[&str] = &[PREDICATE_CYCLONEDX, "https://spdx.dev/Document"];
/// in-toto statement `_type` values accepted (cosign attest still writes v0.1).
pub const STATEMENT_TYPES: &[&str] = &[
    crate::evidence::attest::STATEMENT_V1,
    crate::evidence::attest::STATEMENT_V01,
];

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// CAs, logs and TSAs for certificate-signed bundles (and for keys with a required log).
    pub trusted_root: TrustedRoot,
    /// Verify only this platform of an index (`os/arch[/variant]`).
    pub platform: Option<String>,
    /// The time rules like `max_age` compare against (Unix seconds); `None` = now.
    pub now: Option<i64>,
    /// Match scopes as if the artifact lived in this repository (an air-gapped copy in an OCI
    /// layout stands for the registry repository it came from).
    pub scope_repository: Option<String>,
    /// The OSV database the `vulnerabilities:` gate matches the verified SBOM against; a scope
    /// with that section and no database cannot be verified ([`Error::NoVulnerabilityDatabase`]).
    pub vulnerability_db: Option<std::sync::Arc<crate::decisions::vuln::Database>>,
    /// Referrer manifests and bundles fetched and verified at once (0: the default pool).
    pub jobs: usize,
    /// Where signatures and attestations are read when not beside the artifact.
    pub attestations: Lookup,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            trusted_root: TrustedRoot::empty(),
            platform: None,
            now: None,
            scope_repository: None,
            vulnerability_db: None,
            jobs: attach::Limits::DEFAULT.jobs,
            attestations: Lookup::default(),
        }
    }
}

/// Why verification could not run (as opposed to a refusal, which is a report).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve {reference}")]
    Resolve {
        reference: String,
        #[source]
        source: Box<transfer::Error>,
    },
    #[error("cannot fetch manifest {digest}")]
    Fetch {
        digest: Digest,
        #[source]
        source: Box<store::Error>,
    },
    #[error(
        "scope {scope} has a vulnerabilities: section but no osv database was given (--db, or vulnerabilities.databases)"
    )]
    NoVulnerabilityDatabase { scope: String },
    #[error("cannot open attestations repository {repository} (from {source_of})")]
    OpenAttestations {
        repository: String,
        source_of: elsewhere::Source,
        #[source]
        source: Box<store::Error>,
    },
    #[error("cannot list what is attached to {digest}")]
    Discover {
        digest: Digest,
        #[source]
        source: Box<attach::Error>,
    },
}

/// The advice of the store error underneath (a boxed source hides it from a downcast).
impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Resolve { source, .. } => source.hint(),
            Error::Fetch { source, .. } => source.hint(),
            Error::Discover { source, .. } => source.hint(),
            Error::OpenAttestations { source, .. } => source.hint(),
            Error::NoVulnerabilityDatabase { .. } => Some(
                "give --db PATH (a folder of OSV JSON files or osv.dev's all.zip), or list it under the scope's vulnerabilities.databases".into(),
            ),
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            Error::Resolve { source, .. } => source.is_refusal(),
            Error::Fetch { source, .. } => source.is_refusal(),
            Error::Discover { source, .. } => source.is_refusal(),
            Error::OpenAttestations { source, .. } => source.is_refusal(),
            Error::NoVulnerabilityDatabase { .. } => false,
        }
    }
}

/// A signature or attestation that verified against a trusted signer and is bound to the
/// artifact.
#[derive(Clone, Debug)]
struct Trusted {
    signer: String,
    /// One per key or identity: what the threshold counts.
    fingerprint: String,
    evidence: SignerEvidence,
    predicate_type: Option<String>,
    predicate: Option<Value>,
    referrer: Digest,
    /// A signature (cosign's signature statement, simple signing, a message signature, or a
    /// predicate type the scope names as one): only these count toward the threshold. An
    /// attestation is a claim about the artifact, not a signature of it.
    signature: bool,
}

/// Verifies the artifact `reference` names in `store` against `policy`, and says whether a
/// workflow may act on it: the only way to a [`Verified`].
pub fn verdict(
    store: &dyn Store,
    reference: &Reference,
    policy: &Policy,
    options: &VerifyOptions,
) -> Result<Verdict, Error> {
    artifact(store, reference, policy, options).map(Verdict::of)
}

/// Verifies the artifact `reference` names in `store` against `policy`.
pub fn artifact(
    store: &dyn Store,
    reference: &Reference,
    policy: &Policy,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let now = options.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let policy_ref = PolicyRef {
        source: policy.source.clone(),
        digest: policy.digest.clone(),
    };
    let mut checks = Vec::new();
    let (fetched, scope) = match locate(store, reference, policy, options, &mut checks) {
        Ok(located) => located,
        Err(Halt::Error(e)) => return Err(e),
        Err(Halt::Refused { digest, media_type }) => {
            let mut report = refused(reference, digest, policy_ref, checks);
            report.artifact.media_type = media_type;
            return Ok(report);
        }
    };
    let digest = fetched.descriptor.digest.clone();
    let attestations_repository = options
        .attestations
        .pick(scope.attestations_repository.as_ref());
    let elsewhere = match &attestations_repository {
        None => None,
        Some(r) => Some(
            r.open_existing(&options.attestations.store_options)
                .map_err(|source| Error::OpenAttestations {
                    repository: r.repository.clone(),
                    source_of: r.source.clone(),
                    source: Box::new(source),
                })?,
        ),
    };
    let ctx = Ctx {
        store,
        evidence: Evidence::new(store, elsewhere.as_deref()),
        scope,
        options,
        now,
    };
    let mut artifact = ctx.manifest(&fetched)?;
    checks.append(&mut artifact.checks);
    artifact.checks = checks;
    if let Manifest::Index(index) = &fetched.manifest {
        ctx.platforms(index, &digest, &mut artifact)?;
    }
    Ok(VerifyReport {
        reference: reference.to_string(),
        pinned: reference.pinned(&digest),
        digest: Some(digest),
        scope: Some(scope.name.clone()),
        policy: policy_ref,
        verified: artifact.verified,
        artifact,
        trusted_root: None,
        attestations_repository,
    })
}

/// Why [`locate`] stopped before the referrers: a refusal (the report is built from the checks
/// so far) or an error.
enum Halt {
    Refused {
        digest: Option<Digest>,
        media_type: String,
    },
    Error(Error),
}

/// Resolve once, fetch by digest, pick the scope: the first three steps of the chain, each
/// adding its check.
fn locate<'p>(
    store: &dyn Store,
    reference: &Reference,
    policy: &'p Policy,
    options: &VerifyOptions,
    checks: &mut Vec<Check>,
) -> Result<(store::FetchedManifest, &'p Scope), Halt> {
    let digest = resolve_once(store, reference, checks)?;
    let fetched = fetch(store, digest, checks)?;
    let scope = pick_scope(policy, options, reference, &fetched, checks)?;
    Ok((fetched, scope))
}

/// Step 1: resolve a tag once; every later step uses the digest.
fn resolve_once(
    store: &dyn Store,
    reference: &Reference,
    checks: &mut Vec<Check>,
) -> Result<Digest, Halt> {
    let resolved = match transfer::resolve(store, reference) {
        Ok(m) => m,
        Err(transfer::Error::Store(e)) if e.is_integrity_failure() => {
            // Nothing was resolved: the report names the digest the reference pinned, if any,
            // never a made-up one.
            checks.push(
                Check::fail(CheckKind::Resolve, "resolve")
                    .expected(reference.to_string())
                    .found(e.to_string())
                    .hint("the registry served content that does not match its digest; do not trust it"),
            );
            return Err(Halt::Refused {
                digest: reference.digest.clone(),
                media_type: String::new(),
            });
        }
        Err(source) => {
            return Err(Halt::Error(Error::Resolve {
                reference: reference.to_string(),
                source: Box::new(source),
            }));
        }
    };
    let digest = resolved.descriptor.digest;
    checks.push(match (&reference.digest, &reference.tag) {
        (Some(_), _) => Check::pass(CheckKind::Resolve, "resolve")
            .expected("the digest given")
            .found(digest.to_string()),
        (None, tag) => Check::pass(CheckKind::Resolve, "resolve tag once")
            .expected(format!(
                "tag {}",
                tag.as_ref().map_or("latest".to_string(), |t| t.to_string())
            ))
            .found(digest.to_string()),
    });
    Ok(digest)
}

/// Step 2: fetch the manifest by digest and check it.
fn fetch(
    store: &dyn Store,
    digest: Digest,
    checks: &mut Vec<Check>,
) -> Result<store::FetchedManifest, Halt> {
    let fetched = match store.get_manifest(&digest) {
        Ok(f) => f,
        Err(e) if e.is_integrity_failure() => {
            checks.push(
                Check::fail(CheckKind::Manifest, "manifest digest")
                    .expected(digest.to_string())
                    .found(e.to_string())
                    .hint("the registry served a manifest that does not match the digest"),
            );
            return Err(Halt::Refused {
                digest: Some(digest),
                media_type: String::new(),
            });
        }
        Err(source) => {
            return Err(Halt::Error(Error::Fetch {
                digest,
                source: Box::new(source),
            }));
        }
    };
    checks.push(
        Check::pass(CheckKind::Manifest, "manifest digest")
            .expected(digest.to_string())
            .found(fetched.descriptor.digest.to_string()),
    );
    Ok(fetched)
}

/// Step 3: the policy scope for the repository (or the one `scope_repository` stands for).
fn pick_scope<'p>(
    policy: &'p Policy,
    options: &VerifyOptions,
    reference: &Reference,
    fetched: &store::FetchedManifest,
    checks: &mut Vec<Check>,
) -> Result<&'p Scope, Halt> {
    let repository = options
        .scope_repository
        .clone()
        .unwrap_or_else(|| reference.repository());
    let Some(scope) = policy.scope_for(&repository) else {
        checks.push(
            Check::fail(CheckKind::Scope, "policy scope")
                .expected(format!(
                    "a scope whose repositories match {repository}; scopes: {}",
                    policy
                        .scopes
                        .iter()
                        .map(|s| format!(
                            "{} {:?}",
                            s.name,
                            s.repositories
                                .iter()
                                .map(|p| p.as_str())
                                .collect::<Vec<_>>()
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .found("no scope matches")
                .hint(
                    "add a scope for this repository to the policy; nothing is trusted by default",
                ),
        );
        return Err(Halt::Refused {
            digest: Some(fetched.descriptor.digest.clone()),
            media_type: fetched.descriptor.media_type.clone(),
        });
    };
    checks.push(
        Check::pass(CheckKind::Scope, "policy scope")
            .expected(format!("a scope matching {repository}"))
            .found(scope.name.clone()),
    );
    if scope.vulnerabilities.is_some() && options.vulnerability_db.is_none() {
        return Err(Halt::Error(Error::NoVulnerabilityDatabase {
            scope: scope.name.clone(),
        }));
    }
    Ok(scope)
}

/// `os/arch[/variant]` of an index entry.
fn platform_name(child: &Descriptor) -> Option<String> {
    child.platform.as_ref().map(|p| {
        let mut s = format!("{}/{}", p.os, p.architecture);
        if let Some(v) = &p.variant {
            s.push('/');
            s.push_str(v);
        }
        s
    })
}

/// An index with no SBOM of its own, otherwise verified: the SBOM checks move to its platforms
/// (each image has its own SBOM), everything else is still covered by the index. Only the
/// absence of an SBOM moves: a finding in the index's own verified SBOM refuses.
fn sbom_deferrable(index: &ManifestReport) -> bool {
    !index.verified
        && index.checks.iter().filter(|c| c.failed()).all(sbom_absent)
        && !index
            .checks
            .iter()
            .any(|c| c.kind == CheckKind::GateSbom && c.status == Status::Pass)
}

/// The name of the check a platform gets when it passes only because the verified index
/// lists it.
pub const COVERED_BY_INDEX: &str = "covered by the index";

/// A platform the verified index lists: its own failed policy checks become skips (the
/// index's signature covers the digests it lists), except a finding in its own verified SBOM,
/// and a missing SBOM when the index has none either.
fn cover_by_index(platform: &mut ManifestReport, index: &Digest, sbom_deferred: bool) {
    for c in &mut platform.checks {
        let kept = matches!(
            c.kind,
            CheckKind::Manifest | CheckKind::Vulnerability | CheckKind::Sources
        ) || (sbom_deferred && is_sbom_kind(c.kind));
        if c.failed() && !kept {
            c.status = Status::Skip;
            c.hint = None;
        }
    }
    platform.checks.push(
        Check::pass(CheckKind::Platform, COVERED_BY_INDEX)
            .expected("signed itself, or listed by a verified index")
            .found(format!("listed by verified index {index}")),
    );
    platform.verified = !platform.checks.iter().any(Check::failed);
}

/// A platform manifest as read: checked, or unreadable (refused without its own checks).
enum PlatformRead {
    Checked(ManifestReport),
    Unreadable(ManifestReport),
}

impl Ctx<'_> {
    /// Step 4, for an index: every platform (or the one asked for), each verified itself or
    /// covered by the verified index.
    fn platforms(
        &self,
        index: &ImageIndex,
        digest: &Digest,
        artifact: &mut ManifestReport,
    ) -> Result<(), Error> {
        let wanted = self.options.platform.as_deref();
        let sbom_deferred = sbom_deferrable(artifact);
        let covered = artifact.verified || sbom_deferred;
        let mut matched = 0;
        let attestations = crate::evidence::buildkit::read(self.store, index);
        // BuildKit's attestation manifests are unsigned evidence about a platform, not a platform.
        for child in index
            .manifests
            .iter()
            .filter(|c| !crate::evidence::buildkit::is_attestation_manifest(c))
        {
            let platform = platform_name(child);
            if let Some(w) = wanted
                && platform.as_deref() != Some(w)
            {
                continue;
            }
            if !child.is_manifest_like() {
                continue;
            }
            matched += 1;
            match self.platform(child, platform)? {
                PlatformRead::Unreadable(r) => artifact.platforms.push(r),
                PlatformRead::Checked(mut r) => {
                    // Reached from the index and as a referrer: shown once.
                    r.unsigned = crate::evidence::buildkit::merge(
                        crate::evidence::buildkit::for_platform(&attestations, &child.digest)
                            .cloned()
                            .collect(),
                        std::mem::take(&mut r.unsigned),
                    );
                    if !r.verified && covered {
                        cover_by_index(&mut r, digest, sbom_deferred);
                    }
                    artifact.platforms.push(r);
                }
            }
        }
        if let Some(w) = wanted
            && matched == 0
        {
            artifact.checks.push(
                Check::fail(CheckKind::Platform, "platform")
                    .expected(w.to_string())
                    .found(format!(
                        "the index lists {}",
                        index
                            .manifests
                            .iter()
                            .filter(|m| !crate::evidence::buildkit::is_attestation_manifest(m))
                            .filter_map(|m| m.platform.as_ref())
                            .map(|p| format!("{}/{}", p.os, p.architecture))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .hint("pick one of the platforms the index lists"),
            );
            artifact.verified = false;
        }
        if sbom_deferred && matched > 0 {
            defer_sbom_to_platforms(artifact);
        }
        artifact.verified = artifact.verified && artifact.platforms.iter().all(|p| p.verified);
        Ok(())
    }

    /// One platform manifest of an index, fetched by the digest the index lists and checked.
    fn platform(
        &self,
        child: &Descriptor,
        platform: Option<String>,
    ) -> Result<PlatformRead, Error> {
        let child_manifest = match self.store.get_manifest(&child.digest) {
            Ok(m) => m,
            Err(e) if e.is_integrity_failure() || matches!(e, store::Error::NotFound { .. }) => {
                let mut r = empty_manifest(child.digest.clone(), child.media_type.clone());
                r.platform = platform;
                r.checks.push(
                    Check::fail(CheckKind::Manifest, "platform manifest")
                        .expected(child.digest.to_string())
                        .found(e.to_string())
                        .hint("the index names a manifest the store cannot serve intact"),
                );
                return Ok(PlatformRead::Unreadable(r));
            }
            Err(source) => {
                return Err(Error::Fetch {
                    digest: child.digest.clone(),
                    source: Box::new(source),
                });
            }
        };
        let mut r = self.manifest(&child_manifest)?;
        r.platform = platform;
        r.checks.insert(
            0,
            Check::pass(CheckKind::Manifest, "platform manifest digest")
                .expected(child.digest.to_string())
                .found(child_manifest.descriptor.digest.to_string()),
        );
        Ok(PlatformRead::Checked(r))
    }
}

/// Checks about the SBOM and the gates that read it.
fn is_sbom_kind(kind: CheckKind) -> bool {
    matches!(
        kind,
        CheckKind::SbomPresent
            | CheckKind::GateSbom
            | CheckKind::Vulnerabilities
            | CheckKind::Vulnerability
            | CheckKind::Vex
            | CheckKind::Sources
    )
}

/// A failed check that says only that no verified SBOM is there (as opposed to a finding in
/// one, or one that cannot be read, which always names its referrer).
fn sbom_absent(c: &Check) -> bool {
    match c.kind {
        CheckKind::SbomPresent => true,
        CheckKind::GateSbom => c.referrer.is_none(),
        _ => false,
    }
}

/// An index refused only for its SBOM checks is accepted when every platform checked passed
/// its own: the index's SBOM failures become skips, and one check says which platforms' SBOMs
/// stood in. Otherwise the index stays refused and the check says which platform lacks one.
fn defer_sbom_to_platforms(index: &mut ManifestReport) {
    let label = |p: &ManifestReport| {
        p.platform
            .clone()
            .or_else(|| p.digest.as_ref().map(Digest::to_string))
            .unwrap_or_default()
    };
    let with_sbom = |p: &ManifestReport| {
        p.checks.iter().any(|c| {
            c.status == Status::Pass
                && matches!(c.kind, CheckKind::SbomPresent | CheckKind::GateSbom)
        }) && !p.checks.iter().any(|c| c.failed() && is_sbom_kind(c.kind))
    };
    let lacking: Vec<String> = index
        .platforms
        .iter()
        .filter(|p| !p.verified || !with_sbom(p))
        .map(label)
        .collect();
    let expected = "an SBOM attached to the index, or a verified SBOM on every platform it lists";
    if lacking.is_empty() {
        for c in &mut index.checks {
            if c.failed() && sbom_absent(c) {
                c.status = Status::Skip;
                c.hint = None;
                c.found = Some(format!(
                    "{}; deferred to the platforms",
                    c.found.as_deref().unwrap_or("none on the index")
                ));
            }
        }
        let found: Vec<String> = index
            .platforms
            .iter()
            .map(|p| {
                let sbom = p
                    .checks
                    .iter()
                    .find(|c| c.kind == CheckKind::SbomPresent && c.status == Status::Pass)
                    .and_then(|c| c.found.clone())
                    .unwrap_or_else(|| "gates passed".into());
                format!("{}: {sbom}", label(p))
            })
            .collect();
        index.checks.push(
            Check::pass(CheckKind::SbomPresent, "sbom of every platform")
                .expected(expected)
                .found(format!(
                    "none on the index; every platform has its own and passed its gates ({})",
                    found.join("; ")
                )),
        );
        index.verified = !index.checks.iter().any(Check::failed);
    } else {
        index.checks.push(
            Check::fail(CheckKind::SbomPresent, "sbom of every platform")
                .expected(expected)
                .found(format!(
                    "none on the index, and these platforms lack a verified SBOM or failed: {}",
                    lacking.join(", ")
                ))
                .hint("attest an SBOM to the index, or to each platform manifest"),
        );
    }
}

fn empty_manifest(digest: Digest, media_type: String) -> ManifestReport {
    ManifestReport {
        digest: Some(digest),
        media_type,
        platform: None,
        verified: false,
        checks: Vec::new(),
        referrers: Vec::new(),
        ignored: Vec::new(),
        build_level: None,
        platforms: Vec::new(),
        unsigned: Vec::new(),
    }
}

fn refused(
    reference: &Reference,
    digest: Option<Digest>,
    policy: PolicyRef,
    checks: Vec<Check>,
) -> VerifyReport {
    let artifact = ManifestReport {
        digest: digest.clone(),
        media_type: String::new(),
        platform: None,
        verified: false,
        checks,
        referrers: Vec::new(),
        ignored: Vec::new(),
        build_level: None,
        platforms: Vec::new(),
        unsigned: Vec::new(),
    };
    VerifyReport {
        reference: reference.to_string(),
        pinned: match &digest {
            Some(d) => reference.pinned(d),
            None => reference.to_string(),
        },
        digest,
        scope: None,
        policy,
        verified: false,
        artifact,
        trusted_root: None,
        attestations_repository: None,
    }
}

struct Ctx<'a> {
    store: &'a dyn Store,
    /// Where this artifact's signatures and attestations are read.
    evidence: Evidence<'a>,
    scope: &'a Scope,
    options: &'a VerifyOptions,
    now: i64,
}

impl Ctx<'_> {
    /// Discovery, each referrer, and the policy checks for one manifest.
    fn manifest(&self, fetched: &store::FetchedManifest) -> Result<ManifestReport, Error> {
        let digest = &fetched.descriptor.digest;
        let mut report = empty_manifest(digest.clone(), fetched.descriptor.media_type.clone());
        // Each bundle is verified on the pool as soon as it is read and only the verdict is
        // kept, so memory stays flat whatever others attach.
        let limits = attach::Limits {
            referrers: MAX_REFERRERS,
            jobs: self.options.jobs,
            ..attach::Limits::DEFAULT
        };
        let mut trusted = Vec::new();
        let mut referrers = Vec::new();
        let evaluate = |found: attach::Found| match &found {
            attach::Found::Bundle(b) => {
                evaluate_bundle(b, digest, self.scope, &self.options.trusted_root)
            }
            attach::Found::Legacy(l) => {
                evaluate_legacy(l, digest, self.scope, &self.options.trusted_root)
            }
        };
        let discovered =
            attach::discover_map(&self.evidence, digest, &limits, &evaluate, &mut |(r, t)| {
                referrers.push(r);
                trusted.extend(t);
            });
        let found = match discovered {
            Ok(f) => f,
            Err(e) if refusable(&e) => {
                report.checks.push(
                    Check::fail(CheckKind::Discover, "discover signatures and attestations")
                        .expected("referrers and legacy signature images within custody's limits")
                        .found(e.to_string())
                        .hint("something attached to this artifact is oversized or malformed; whoever can push to the repository can attach anything, so inspect it with `custody discover`"),
                );
                return Ok(report);
            }
            Err(source) => {
                return Err(Error::Discover {
                    digest: digest.clone(),
                    source: Box::new(source),
                });
            }
        };
        let paths: Vec<String> = found
            .paths
            .iter()
            .map(|p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .chain(std::iter::once("legacy cosign tags".to_string()))
            .collect();
        let place = if self.evidence.is_elsewhere() {
            format!(" in {}", self.evidence.repository())
        } else {
            String::new()
        };
        let skipped = if found.skipped.any() {
            format!(
                "; {} listed referrer(s) and {} layer(s) skipped over the limits ({} referrers, {} MiB)",
                found.skipped.referrers,
                found.skipped.layers,
                limits.referrers,
                limits.total_bytes / (1024 * 1024)
            )
        } else {
            String::new()
        };
        // BuildKit's attestation manifests are unsigned evidence: shown, never a referrer that
        // counts, and not "other" either.
        let (buildkit, ignored): (Vec<_>, Vec<_>) = found.ignored.iter().partition(|i| {
            crate::evidence::buildkit::is_attestation_artifact_type(i.artifact_type.as_deref())
        });
        report.unsigned = crate::evidence::buildkit::merge(
            Vec::new(),
            buildkit
                .iter()
                .map(|i| crate::evidence::buildkit::read_referrer(self.store, &i.digest, digest))
                .collect(),
        );
        let unsigned = if report.unsigned.is_empty() {
            String::new()
        } else {
            format!(
                ", {} unsigned BuildKit attestation manifest(s) shown, not counted",
                report.unsigned.len()
            )
        };
        report.checks.push(
            Check::pass(CheckKind::Discover, "discover signatures and attestations")
                .expected(format!("every path{place}: {}", paths.join(", ")))
                .found(format!(
                    "{} bundle(s), {} legacy layer(s), {} other referrer(s) ignored{unsigned}{skipped}",
                    found.bundles,
                    found.legacy,
                    ignored.len()
                )),
        );
        report.ignored = ignored
            .iter()
            .map(|i| IgnoredReferrer {
                digest: i.digest.clone(),
                artifact_type: i.artifact_type.clone(),
                reason: i.reason.clone(),
            })
            .collect();
        report.referrers = referrers;
        let (mut policy_checks, level) =
            policy_checks(self.scope, &trusted, &report.referrers, self.now);
        report.checks.append(&mut policy_checks);
        report.checks.extend(gates::checks(
            digest,
            self.scope,
            &trusted,
            &report.referrers,
            self.options.vulnerability_db.as_deref(),
            gates::day_of(self.now),
        ));
        report.build_level = level;
        report.verified = !report.checks.iter().any(Check::failed);
        Ok(report)
    }
}

/// Discovery errors that mean "refused" rather than "could not run": oversized or malformed
/// content somebody attached.
fn refusable(e: &attach::Error) -> bool {
    match e {
        attach::Error::BadLegacyImage { .. } => true,
        attach::Error::Store(s) => {
            s.is_integrity_failure() || matches!(s, store::Error::Refused { .. })
        }
        attach::Error::Transfer(transfer::Error::Store(s)) => {
            s.is_integrity_failure() || matches!(s, store::Error::Refused { .. })
        }
        attach::Error::Transfer(_) => false,
    }
}

/// What a signature must be checked over, and how it is bound to the artifact.
enum Binding {
    /// An in-toto statement in a DSSE envelope: its subjects must include the artifact.
    Statement,
    /// A simple-signing payload: `docker-manifest-digest` must be the artifact.
    SimpleSigning(Vec<u8>),
    /// A message signature straight over the artifact digest.
    Message,
}

fn evaluate_bundle(
    found: &FoundBundle,
    artifact: &Digest,
    scope: &Scope,
    root: &TrustedRoot,
) -> (ReferrerReport, Option<Trusted>) {
    let manifest = match &found.origin {
        attach::Origin::Referrer { manifest, .. }
        | attach::Origin::Legacy { manifest, .. }
        | attach::Origin::Detached { manifest, .. } => manifest.clone(),
    };
    let mut report = ReferrerReport {
        kind: ReferrerKind::Bundle,
        manifest: manifest.clone(),
        origin: found.origin.clone(),
        predicate_type: None,
        signer: None,
        signer_identity: None,
        signing_times: Vec::new(),
        trusted: false,
        checks: Vec::new(),
    };
    let bundle = match Bundle::from_json(&found.bundle) {
        Ok(b) => b,
        Err(e) => {
            report.checks.push(
                Check::fail(CheckKind::BundleFormat, "sigstore bundle")
                    .expected("a Sigstore bundle v0.1-v0.3")
                    .found(e.to_string())
                    .hint("this referrer is not a usable bundle; it is ignored")
                    .on(&manifest),
            );
            return (report, None);
        }
    };
    report.checks.push(
        Check::pass(CheckKind::BundleFormat, "sigstore bundle")
            .found(bundle.media_type().to_string())
            .on(&manifest),
    );
    let binding = match bundle.content() {
        Content::Dsse(_) => Binding::Statement,
        Content::MessageSignature { .. } => Binding::Message,
    };
    let trusted = evaluate_signed(&bundle, binding, artifact, scope, root, &mut report);
    (report, trusted)
}

fn evaluate_legacy(
    found: &FoundLegacy,
    artifact: &Digest,
    scope: &Scope,
    root: &TrustedRoot,
) -> (ReferrerReport, Option<Trusted>) {
    let manifest = match &found.origin {
        attach::Origin::Referrer { manifest, .. }
        | attach::Origin::Legacy { manifest, .. }
        | attach::Origin::Detached { manifest, .. } => manifest.clone(),
    };
    let mut report = ReferrerReport {
        kind: match found.kind {
            LegacyKind::Signature => ReferrerKind::LegacySignature,
            LegacyKind::Attestation => ReferrerKind::LegacyAttestation,
        },
        manifest: manifest.clone(),
        origin: found.origin.clone(),
        predicate_type: None,
        signer: None,
        signer_identity: None,
        signing_times: Vec::new(),
        trusted: false,
        checks: Vec::new(),
    };
    let fail = |report: &mut ReferrerReport,
                kind,
                name: &str,
                expected: &str,
                found: String,
                hint: &str| {
        report.checks.push(
            Check::fail(kind, name)
                .expected(expected)
                .found(found)
                .hint(hint)
                .on(&manifest),
        );
    };
    // A certificate annotation is verification material (chain, identity, log), never a bare
    // key (cosign GHSA-fx35-mq7g-6g98): the converted bundle carries it as a certificate, and
    // only identity signers are tried against it.
    match attach::legacy::to_bundle(found.kind, &found.payload, &found.annotations) {
        Ok(converted) => {
            let binding = match found.kind {
                LegacyKind::Signature => Binding::SimpleSigning(found.payload.clone()),
                LegacyKind::Attestation => Binding::Statement,
            };
            report.checks.push(
                Check::pass(CheckKind::BundleFormat, "legacy layer")
                    .found(format!(
                        "{} layer{}, read as a {} bundle",
                        found.kind.suffix(),
                        if converted.keyless {
                            " with a certificate"
                        } else {
                            ""
                        },
                        converted.bundle.version().as_str()
                    ))
                    .on(&manifest),
            );
            let trusted = evaluate_signed(
                &converted.bundle,
                binding,
                artifact,
                scope,
                root,
                &mut report,
            );
            (report, trusted)
        }
        Err(e) => {
            let hint = match &e {
                attach::legacy::LegacyError::RekorMismatch { .. } => {
                    "the layer's Rekor entry describes another signature, signer or payload: the annotations were tampered with or mixed up"
                }
                attach::legacy::LegacyError::NoSigningTime => {
                    "custody does not look entries up in Rekor online; re-sign with a transparency log or timestamp (cosign v3 bundles carry both)"
                }
                _ => "the legacy layer's annotations cannot be read; it is ignored",
            };
            fail(
                &mut report,
                CheckKind::BundleFormat,
                "legacy layer",
                "a cosign legacy layer with consistent annotations",
                e.to_string(),
                hint,
            );
            (report, None)
        }
    }
}

/// Depth of JSON nesting, iteratively (never recurses on untrusted input).
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A parsed statement's predicate type, subjects' sha256 digests and predicate.
pub(crate) struct Statement {
    predicate_type: String,
    subjects: Vec<String>,
    predicate: Value,
}

pub(crate) fn parse_statement(payload: &[u8]) -> Result<Statement, String> {
    if payload.len() > MAX_STATEMENT_SIZE {
        return Err(format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_SIZE}",
            payload.len()
        ));
    }
    let depth = json_depth(payload);
    if depth > MAX_STATEMENT_DEPTH {
        return Err(format!(
            "statement nests {depth} levels deep; the limit is {MAX_STATEMENT_DEPTH}"
        ));
    }
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("statement is not json: {e}"))?;
    let ty = v.get("_type").and_then(Value::as_str).unwrap_or("none");
    if !STATEMENT_TYPES.contains(&ty) {
        return Err(format!(
            "statement _type is {ty:?}, not an in-toto statement"
        ));
    }
    let predicate_type = v
        .get("predicateType")
        .and_then(Value::as_str)
        .ok_or("statement has no predicateType")?
        .to_owned();
    let subjects = v
        .get("subject")
        .and_then(Value::as_array)
        .ok_or("statement has no subject list")?
        .iter()
        .filter_map(|s| s.get("digest")?.get("sha256")?.as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    let predicate = v.get("predicate").cloned().unwrap_or(Value::Null);
    Ok(Statement {
        predicate_type,
        subjects,
        predicate,
    })
}

/// Fulcio's Source Repository URI extension (DER UTF8String).
const OID_FULCIO_SOURCE_REPOSITORY_URI: &str = "1.3.6.1.4.1.57264.1.12";

/// The Source Repository URI a Fulcio certificate names, when it parses and has one. Read from
/// the leaf certificate of a bundle that verified: what the CI platform told Fulcio.
fn certificate_source_repository(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_FULCIO_SOURCE_REPOSITORY_URI)
        .and_then(|e| {
            x509_cert::der::asn1::Utf8StringRef::from_der(e.extn_value.as_bytes())
                .ok()
                .map(|s| s.as_str().to_owned())
        })
}

/// Fingerprint and evidence of a verified signer.
fn identity_of(v: &VerifiedBundle) -> (String, SignerEvidence, String) {
    match &v.signer {
        VerifiedSigner::Key { hint, .. } => (
            format!("key:{hint}"),
            SignerEvidence::Key {
                fingerprint: hint.clone(),
            },
            format!("key {hint}"),
        ),
        VerifiedSigner::Certificate { identity, issuer } => (
            format!("identity:{identity}|{issuer}"),
            SignerEvidence::Certificate {
                identity: identity.clone(),
                issuer: issuer.clone(),
                source_repository: None,
            },
            format!("{identity} (issuer {issuer})"),
        ),
    }
}

/// Payload type, statement, signature against the scope's signers, and binding.
fn evaluate_signed(
    bundle: &Bundle,
    binding: Binding,
    artifact: &Digest,
    scope: &Scope,
    root: &TrustedRoot,
    report: &mut ReferrerReport,
) -> Option<Trusted> {
    let on = report.manifest.clone();
    // Payload type and statement (read before the signature so the report can say what the
    // referrer claims; nothing from it is trusted until the signature verifies).
    let (statement, readable) = read_statement(bundle, report, &on);

    // What the signature is checked over: the statement's own subject (binding is a separate
    // check below), the simple-signing payload, or the artifact digest.
    let subject = match (&binding, &statement) {
        (Binding::Statement, Some(s)) => signed_subject(s, artifact),
        _ => artifact.clone(),
    };
    let signed_over = match &binding {
        Binding::SimpleSigning(payload) => Artifact::Bytes(payload),
        Binding::Statement | Binding::Message => Artifact::Digest(&subject),
    };
    let verified = check_signature(bundle, signed_over, scope, root, report, &on);
    let bound = check_binding(&binding, statement.as_ref(), artifact, report, &on);

    let signed = verified?;
    if !(readable && bound) {
        return None;
    }
    trust(bundle, &binding, statement, signed, scope, report)
}

/// The DSSE payload type and the in-toto statement of an envelope, with their checks; `false`
/// when either is unusable. A message signature has neither.
fn read_statement(
    bundle: &Bundle,
    report: &mut ReferrerReport,
    on: &Digest,
) -> (Option<Statement>, bool) {
    let Content::Dsse(env) = bundle.content() else {
        return (None, true);
    };
    let type_ok = env.payload_type == dsse::IN_TOTO_PAYLOAD_TYPE;
    report.checks.push(
        Check::of(type_ok, CheckKind::PayloadType, "dsse payload type")
            .expected(dsse::IN_TOTO_PAYLOAD_TYPE)
            .found(env.payload_type.clone())
            .hint("only in-toto statements are accepted as attestations")
            .on(on),
    );
    match parse_statement(&env.payload) {
        Ok(s) => {
            report.predicate_type = Some(s.predicate_type.clone());
            report.checks.push(
                Check::pass(CheckKind::Statement, "in-toto statement")
                    .found(s.predicate_type.clone())
                    .on(on),
            );
            (Some(s), type_ok)
        }
        Err(e) => {
            report.checks.push(
                Check::fail(CheckKind::Statement, "in-toto statement")
                    .expected(format!(
                        "an in-toto statement within {MAX_STATEMENT_SIZE} bytes and {MAX_STATEMENT_DEPTH} levels"
                    ))
                    .found(e)
                    .hint("the attestation cannot be read; it is ignored")
                    .on(on),
            );
            (None, false)
        }
    }
}

/// The subject a statement's signature is checked over: the artifact when the statement names
/// it, else its first subject (the binding check then refuses it).
fn signed_subject(statement: &Statement, artifact: &Digest) -> Digest {
    if statement.subjects.iter().any(|d| d == artifact.hex()) {
        return artifact.clone();
    }
    statement
        .subjects
        .first()
        .and_then(|h| Digest::from_hex(h).ok())
        .unwrap_or_else(|| artifact.clone())
}

/// The signature against each trusted signer whose kind fits the bundle's material (a key, or
/// a certificate for identities), with the check that says which one signed, or why none did.
fn check_signature<'s>(
    bundle: &Bundle,
    signed_over: Artifact<'_>,
    scope: &'s Scope,
    root: &TrustedRoot,
    report: &mut ReferrerReport,
    on: &Digest,
) -> Option<(&'s TrustedSigner, VerifiedBundle)> {
    let is_cert = !matches!(bundle.material(), Material::PublicKey { .. });
    let candidates: Vec<&TrustedSigner> = scope
        .signers
        .iter()
        .filter(|s| !matches!(s.kind, SignerKind::Key(_)) == is_cert)
        .collect();
    let mut verified = None;
    let mut errors: Vec<(&TrustedSigner, VerifyError)> = Vec::new();
    for signer in &candidates {
        let policy = match &signer.kind {
            SignerKind::Key(key) => SigPolicy::Key(KeyPolicy {
                key: key.clone(),
                tlog: scope.key_tlog,
            }),
            SignerKind::Identity { issuer, subject } => SigPolicy::Identity(IdentityPolicy {
                subject: subject.clone(),
                issuer: issuer.clone(),
            }),
            // A private PKI's chain, identity and revocation; no trusted root involved.
            SignerKind::Pki(pki_policy) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                match crate::evidence::sign::pki::verify_bundle(
                    bundle,
                    signed_over,
                    pki_policy,
                    now,
                ) {
                    Ok((v, _)) => {
                        verified = Some((*signer, v));
                        break;
                    }
                    Err(e) => errors.push((signer, e)),
                }
                continue;
            }
        };
        match verify_bundle(bundle, signed_over, &policy, root) {
            Ok(v) => {
                verified = Some((*signer, v));
                break;
            }
            Err(e) => errors.push((signer, e)),
        }
    }
    let material = if is_cert { "certificate" } else { "key" };
    let expected = if candidates.is_empty() {
        format!("a trusted {material} signer (the scope has none)")
    } else {
        candidates
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match &verified {
        Some((signer, v)) => {
            let (_, _, shown) = identity_of(v);
            report.signer = Some(signer.name.clone());
            report.signer_identity = Some(shown.clone());
            report.signing_times = v.signing_times.clone();
            if is_cert {
                report.checks.push(
                    Check::pass(CheckKind::Identity, "certificate identity and issuer")
                        .expected(signer.describe())
                        .found(shown.clone())
                        .on(on),
                );
            }
            report.checks.push(
                Check::pass(CheckKind::Signature, "signature")
                    .expected(expected)
                    .found(format!("signed by {shown}{}", evidence_note(&v.checks)))
                    .on(on),
            );
        }
        None if candidates.is_empty() => {
            let found = format!("a bundle signed with a {material}");
            report
                .checks
                .push(signature_failure(is_cert, expected, found, on));
        }
        None => report_unsigned(&errors, is_cert, expected, report, on),
    }
    verified
}

/// The checks of a bundle no candidate signer verified: the identities its certificate named
/// instead, if that was the reason, and each signer's error.
fn report_unsigned(
    errors: &[(&TrustedSigner, VerifyError)],
    is_cert: bool,
    expected: String,
    report: &mut ReferrerReport,
    on: &Digest,
) {
    let identity_errors: Vec<String> = errors
        .iter()
        .filter_map(|(_, e)| match e {
            VerifyError::IdentityMismatch { found, .. } => {
                Some(format!("identity {}", found.as_deref().unwrap_or("none")))
            }
            VerifyError::IssuerMismatch { found, .. } => {
                Some(format!("issuer {}", found.as_deref().unwrap_or("none")))
            }
            _ => None,
        })
        .collect();
    if !identity_errors.is_empty() {
        report.checks.push(
            Check::fail(CheckKind::Identity, "certificate identity and issuer")
                .expected(expected.clone())
                .found(identity_errors.join("; "))
                .hint("the certificate is valid but names someone this policy does not trust")
                .on(on),
        );
    }
    let found = errors
        .iter()
        .map(|(s, e)| format!("{}: {e}", s.name))
        .collect::<Vec<_>>()
        .join("; ");
    report
        .checks
        .push(signature_failure(is_cert, expected, found, on));
}

fn signature_failure(is_cert: bool, expected: String, found: String, on: &Digest) -> Check {
    Check::fail(CheckKind::Signature, "signature")
        .expected(expected)
        .found(found)
        .hint(if is_cert {
            "not signed by a trusted identity, or the certificate, log entry or timestamp does not verify against the trusted root"
        } else {
            "not signed by a trusted key: anyone with push access can attach signatures, only trusted ones count"
        })
        .on(on)
}

/// Whether what was signed is about the artifact: a statement's subjects, or a simple-signing
/// payload's `docker-manifest-digest`. A message signature was checked over the artifact
/// digest itself.
fn check_binding(
    binding: &Binding,
    statement: Option<&Statement>,
    artifact: &Digest,
    report: &mut ReferrerReport,
    on: &Digest,
) -> bool {
    match (binding, statement) {
        (Binding::Statement, Some(s)) => {
            let bound = s.subjects.iter().any(|d| d == artifact.hex());
            report.checks.push(
                Check::of(bound, CheckKind::Subject, "statement subject")
                    .expected(artifact.to_string())
                    .found(if s.subjects.is_empty() {
                        "no sha256 subject".to_string()
                    } else {
                        s.subjects
                            .iter()
                            .map(|h| format!("sha256:{h}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .hint(
                        "this attestation is about another artifact; it was moved or replayed here",
                    )
                    .on(on),
            );
            bound
        }
        (Binding::SimpleSigning(payload), _) => {
            let named = attach::simple_signing_digest(payload);
            let bound = named.as_ref() == Some(artifact);
            report.checks.push(
                Check::of(bound, CheckKind::Subject, "signed manifest digest")
                    .expected(artifact.to_string())
                    .found(
                        named
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "no docker-manifest-digest".into()),
                    )
                    .hint("this signature is for another artifact; it was moved or replayed here")
                    .on(on),
            );
            bound
        }
        (Binding::Message, _) | (Binding::Statement, None) => true,
    }
}

/// A referrer whose signature verified, which is readable and bound to the artifact, as the
/// policy counts it: refused when its predicate carries a failed verdict, else trusted.
fn trust(
    bundle: &Bundle,
    binding: &Binding,
    statement: Option<Statement>,
    (signer, verified): (&TrustedSigner, VerifiedBundle),
    scope: &Scope,
    report: &mut ReferrerReport,
) -> Option<Trusted> {
    let on = report.manifest.clone();
    // A predicate that carries a verdict counts only when it passed: a signed summary of a
    // failed verification is evidence against the artifact.
    if let Some(s) = &statement
        && let Err(said) = vsa::verdict(&s.predicate_type, &s.predicate)
    {
        report.checks.push(
            Check::fail(CheckKind::Verdict, "verdict")
                .expected("verificationResult PASSED")
                .found(said)
                .hint("a summary of a failed verification never counts for the artifact")
                .on(&on),
        );
        return None;
    }
    report.trusted = true;
    let (fingerprint, mut evidence, _) = identity_of(&verified);
    if let SignerEvidence::Certificate {
        source_repository, ..
    } = &mut evidence
    {
        *source_repository = bundle
            .material()
            .leaf_certificate()
            .and_then(certificate_source_repository);
    }
    let signature = match (binding, &statement) {
        (Binding::SimpleSigning(_) | Binding::Message, _) => true,
        (Binding::Statement, Some(s)) => {
            s.predicate_type == PREDICATE_COSIGN_SIGN_V1
                || scope.signature_predicate_types.contains(&s.predicate_type)
        }
        (Binding::Statement, None) => false,
    };
    Some(Trusted {
        signer: signer.name.clone(),
        fingerprint,
        evidence,
        predicate_type: statement.as_ref().map(|s| s.predicate_type.clone()),
        predicate: statement.map(|s| s.predicate),
        referrer: on,
        signature,
    })
}

fn evidence_note(c: &crate::evidence::sign::verify::Checks) -> String {
    let mut parts = Vec::new();
    if c.certificate_chain {
        parts.push("certificate chain");
    }
    if c.sct {
        parts.push("sct");
    }
    if c.tlog {
        parts.push("transparency log");
    }
    if c.verified_times > 0 {
        parts.push("verified signing time");
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({} verified)", parts.join(", "))
    }
}

fn allowed(list: &Option<Vec<String>>, signer: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|n| n == signer))
}

/// Why untrusted referrers with a given predicate type were not counted, for the report.
fn untrusted_note(referrers: &[ReferrerReport], types: &[&str]) -> String {
    let bad: Vec<String> = referrers
        .iter()
        .filter(|r| !r.trusted)
        .filter(|r| {
            r.predicate_type
                .as_deref()
                .is_some_and(|p| types.contains(&p))
        })
        .map(|r| {
            let why = r
                .checks
                .iter()
                .find(|c| c.failed())
                .map_or("not trusted".to_string(), |c| c.name.clone() + " failed");
            format!("{} ({why})", r.manifest.short())
        })
        .collect();
    if bad.is_empty() {
        "none".into()
    } else {
        format!("none trusted; refused: {}", bad.join(", "))
    }
}

/// Threshold, required attestations, provenance and SBOM rules over the trusted referrers.
fn policy_checks(
    scope: &Scope,
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
    now: i64,
) -> (Vec<Check>, Option<u8>) {
    let mut checks = vec![threshold_check(scope, trusted)];
    checks.extend(required_attestation_checks(scope, trusted, referrers));
    let level = match &scope.provenance {
        Some(rules) => provenance_checks(rules, trusted, referrers, now, &mut checks),
        None => None,
    };
    if let Some(rules) = &scope.sbom {
        checks.push(sbom_check(rules, trusted, referrers));
    }
    (checks, level)
}

/// Distinct trusted signers against the scope's threshold; attestations do not count.
fn threshold_check(scope: &Scope, trusted: &[Trusted]) -> Check {
    let mut distinct: BTreeMap<&str, &str> = BTreeMap::new();
    let signatures: Vec<&Trusted> = trusted.iter().filter(|t| t.signature).collect();
    for t in &signatures {
        distinct.entry(&t.fingerprint).or_insert(&t.signer);
    }
    let attestations_only = signatures.is_empty() && !trusted.is_empty();
    let signer_names: BTreeSet<&str> = distinct.values().copied().collect();
    Check::of(
        distinct.len() >= scope.threshold as usize,
        CheckKind::Threshold,
        "trusted signers",
    )
    .expected(format!(
        "at least {} distinct trusted signer(s)",
        scope.threshold
    ))
    .found(format!(
        "{} distinct ({} trusted signature(s)){}{}",
        distinct.len(),
        signatures.len(),
        if signer_names.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                signer_names.iter().copied().collect::<Vec<_>>().join(", ")
            )
        },
        if trusted.len() > signatures.len() {
            format!(
                "; {} trusted attestation(s) are not signatures",
                trusted.len() - signatures.len()
            )
        } else {
            String::new()
        }
    ))
    .hint(if attestations_only {
        "attestations do not count as signatures: sign the artifact itself (custody sign), or name the predicate type in the scope's signature_predicate_types"
    } else if trusted.is_empty() {
        "nothing attached to this artifact is signed by a signer this policy trusts"
    } else {
        "one key or identity counts once however many signatures it made; more distinct signers are needed"
    })
}

/// One check per attestation the scope requires.
fn required_attestation_checks(
    scope: &Scope,
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
) -> Vec<Check> {
    let mut checks = Vec::new();
    for req in &scope.attestations {
        let candidates: Vec<&Trusted> = trusted
            .iter()
            .filter(|t| {
                t.predicate_type.as_deref() == Some(req.predicate_type.as_str())
                    && allowed(&req.signers, &t.signer)
            })
            .collect();
        let mut mismatches = Vec::new();
        let hit = candidates.iter().copied().find(|t| {
            match vsa::meets(&req.vsa, t.predicate.as_ref().unwrap_or(&Value::Null)) {
                Ok(()) => true,
                Err(why) => {
                    mismatches.push(format!("{} names {why}", t.referrer.short()));
                    false
                }
            }
        });
        checks.push(
            Check::of(
                hit.is_some(),
                CheckKind::RequiredAttestation,
                format!("attestation {}", req.predicate_type),
            )
            .expected(format!("a trusted {} attestation", req.predicate_type))
            .found(match hit {
                Some(t) => format!("signed by {}", t.signer),
                None if !mismatches.is_empty() => {
                    format!("trusted but not as expected: {}", mismatches.join("; "))
                }
                None => untrusted_note(referrers, &[req.predicate_type.as_str()]),
            })
            .hint("attach the attestation, signed by a signer the policy names"),
        );
    }
    checks
}

/// The provenance rules: a trusted provenance, then the rules of the best candidate, and the
/// build level it reached.
fn provenance_checks(
    rules: &ProvenanceRules,
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
    now: i64,
    checks: &mut Vec<Check>,
) -> Option<u8> {
    let mut level = None;
    let candidates: Vec<&Trusted> = trusted
        .iter()
        .filter(|t| {
            t.predicate_type.as_deref() == Some(PREDICATE_SLSA_PROVENANCE_V1)
                && allowed(&rules.signers, &t.signer)
        })
        .collect();
    if candidates.is_empty() {
        checks.push(if rules.required {
            Check::fail(CheckKind::ProvenancePresent, "slsa provenance")
                .expected(format!(
                    "a {PREDICATE_SLSA_PROVENANCE_V1} attestation signed by {}",
                    rules
                        .signers
                        .as_ref()
                        .map_or("a trusted signer".to_string(), |s| s.join(" or "))
                ))
                .found(untrusted_note(referrers, &[PREDICATE_SLSA_PROVENANCE_V1]))
                .hint(PROVENANCE_HINT)
        } else {
            Check::skip(CheckKind::ProvenancePresent, "slsa provenance").found("none")
        });
    } else {
        // The first provenance that meets every rule; else the one with the fewest failures.
        let mut best: Option<(Vec<Check>, u8, &Trusted)> = None;
        for t in candidates {
            let facts = rules::provenance_facts(t.predicate.as_ref().unwrap_or(&Value::Null));
            let (cs, l) = rules::evaluate_provenance(rules, &facts, &t.evidence, now);
            let fails = cs.iter().filter(|c| c.failed()).count();
            if best
                .as_ref()
                .is_none_or(|(b, _, _)| fails < b.iter().filter(|c| c.failed()).count())
            {
                best = Some((cs, l, t));
            }
            if fails == 0 {
                break;
            }
        }
        let (cs, l, t) = best.expect("at least one candidate");
        checks.push(
            Check::pass(CheckKind::ProvenancePresent, "slsa provenance")
                .found(format!("signed by {}", t.signer))
                .on(&t.referrer),
        );
        checks.extend(cs.into_iter().map(|c| c.on(&t.referrer)));
        level = Some(l);
    }
    level
}

/// The SBOM rule: a trusted SBOM attestation from an allowed signer.
fn sbom_check(rules: &SbomRules, trusted: &[Trusted], referrers: &[ReferrerReport]) -> Check {
    let hit = trusted.iter().find(|t| {
        t.predicate_type
            .as_deref()
            .is_some_and(|p| SBOM_PREDICATE_TYPES.contains(&p) || gates::is_sbom(p))
            && allowed(&rules.signers, &t.signer)
    });
    match (hit, rules.required) {
        (Some(t), _) => Check::pass(CheckKind::SbomPresent, "sbom")
            .found(format!(
                "{} signed by {}",
                t.predicate_type.as_deref().unwrap_or_default(),
                t.signer
            ))
            .on(&t.referrer),
        (None, true) => Check::fail(CheckKind::SbomPresent, "sbom")
            .expected(format!(
                "an SBOM attestation ({}) signed by {}",
                SBOM_PREDICATE_TYPES.join(" or "),
                rules
                    .signers
                    .as_ref()
                    .map_or("a trusted signer".to_string(), |s| s.join(" or "))
            ))
            .found(untrusted_note(referrers, SBOM_PREDICATE_TYPES))
            .hint(SBOM_HINT),
        (None, false) => Check::skip(CheckKind::SbomPresent, "sbom").found("none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a":[{"b":1}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"[[[[\"[["}"#), 1);
        assert_eq!(json_depth(b"]]]]"), 0);
        assert_eq!(json_depth(&b"[".repeat(10_000)), 10_000);
    }

    #[test]
    fn statements_are_parsed_within_bounds_and_never_panic() {
        let d = Digest::of(b"x");
        let ok = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","subject":[{{"digest":{{"sha256":"{}"}}}},{{"name":"no digest"}}],"predicateType":"p","predicate":{{"a":1}}}}"#,
            d.hex().to_uppercase()
        );
        let s = parse_statement(ok.as_bytes()).unwrap();
        assert_eq!(s.predicate_type, "p");
        assert_eq!(s.subjects, vec![d.hex().to_string()]);
        assert_eq!(s.predicate["a"], 1);
        let rows: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not json"),
            (b"\xff\xfe".to_vec(), "not json"),
            (
                br#"{"_type":"https://example.com/Other"}"#.to_vec(),
                "not an in-toto statement",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#.to_vec(),
                "no predicateType",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":{}}"#
                    .to_vec(),
                "no subject list",
            ),
            ([b"[".repeat(100), b"]".repeat(100)].concat(), "levels deep"),
            (vec![b' '; MAX_STATEMENT_SIZE + 1], "bytes; the limit"),
        ];
        for (input, want) in rows {
            let err = match parse_statement(&input) {
                Ok(_) => panic!(
                    "accepted {:?}",
                    String::from_utf8_lossy(&input[..input.len().min(40)])
                ),
                Err(e) => e,
            };
            assert!(err.contains(want), "{err} does not say {want}");
        }
    }

    #[test]
    fn source_repository_is_read_from_the_fulcio_certificate() {
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/testdata/sigstore-conformance/cases/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
        ))
        .unwrap();
        let bundle = Bundle::from_json(&json).unwrap();
        let der = bundle.material().leaf_certificate().unwrap();
        assert_eq!(
            certificate_source_repository(der).as_deref(),
            Some("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon")
        );
        assert_eq!(certificate_source_repository(b"not a certificate"), None);
        assert_eq!(certificate_source_repository(&der[..der.len() / 2]), None);
    }

    #[test]
    fn discovery_errors_split_into_refusals_and_failures_to_run() {
        let refused = attach::Error::Store(store::Error::Refused {
            what: "blob".into(),
            reason: "too big".into(),
        });
        assert!(refusable(&refused));
        let down = attach::Error::Store(store::Error::NotFound { what: "x".into() });
        assert!(!refusable(&down));
        let bad = attach::Error::BadLegacyImage {
            tag: "t".into(),
            problem: attach::LegacyImageProblem::Index,
        };
        assert!(refusable(&bad));
    }
}
