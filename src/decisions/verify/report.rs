//! The typed outcome of a verification: every check with its status, what was expected, what was
//! found, a hint when it failed, and the referrer it is about. `--output json` serialises these
//! types as they are (`schemas/verify-report.schema.json`).

use crate::storage::store::elsewhere::AttestationsRepository;
use serde::Serialize;

use crate::foundation::digest::Digest;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not evaluated: nothing to check, or an earlier check made it moot.
    Skip,
}

/// What a check is about, so reports and tests can find it without parsing words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Resolve,
    Manifest,
    Discover,
    Scope,
    BundleFormat,
    PayloadType,
    Signature,
    Identity,
    Subject,
    Statement,
    Threshold,
    RequiredAttestation,
    ProvenancePresent,
    BuilderId,
    SourceRepository,
    SourceRef,
    BuildType,
    Commit,
    CleanTree,
    BuildLevel,
    MaxAge,
    SbomPresent,
    Platform,
    /// The verified SBOM the security gates read.
    GateSbom,
    /// The known-vulnerability scan of that SBOM (or why it was skipped).
    Vulnerabilities,
    /// The policy's decision on one finding.
    Vulnerability,
    /// An OpenVEX attestation used or ignored.
    Vex,
    /// Dependency-confusion rules (`sources:`).
    Sources,
    /// The verdict a signed predicate carries (a VSA's `verificationResult`).
    Verdict,
    /// A local file: its digest (`verify FILE --bundle`), or that it is one of the verified
    /// artifact's files (`verify FILE --from`).
    File,
}

/// One check. `expected` and `found` are set whenever there is something to compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub kind: CheckKind,
    pub name: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The referrer manifest (or legacy signature image) the check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Digest>,
}

impl Check {
    pub fn pass(kind: CheckKind, name: impl Into<String>) -> Check {
        Check {
            kind,
            name: name.into(),
            status: Status::Pass,
            expected: None,
            found: None,
            hint: None,
            referrer: None,
        }
    }

    pub fn fail(kind: CheckKind, name: impl Into<String>) -> Check {
        Check {
            status: Status::Fail,
            ..Check::pass(kind, name)
        }
    }

    pub fn skip(kind: CheckKind, name: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            ..Check::pass(kind, name)
        }
    }

    /// A pass or a fail, by `ok`.
    pub fn of(ok: bool, kind: CheckKind, name: impl Into<String>) -> Check {
        if ok {
            Check::pass(kind, name)
        } else {
            Check::fail(kind, name)
        }
    }

    pub fn expected(mut self, v: impl Into<String>) -> Check {
        self.expected = Some(v.into());
        self
    }

    pub fn found(mut self, v: impl Into<String>) -> Check {
        self.found = Some(v.into());
        self
    }

    /// A hint, kept only on failures.
    pub fn hint(mut self, v: impl Into<String>) -> Check {
        if self.status == Status::Fail {
            self.hint = Some(v.into());
        }
        self
    }

    pub fn on(mut self, referrer: &Digest) -> Check {
        self.referrer = Some(referrer.clone());
        self
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

/// Where a signature or attestation came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrerKind {
    /// A Sigstore bundle referrer.
    Bundle,
    /// A layer of a legacy `.sig` image (simple signing).
    LegacySignature,
    /// A layer of a legacy `.att` image (DSSE envelope).
    LegacyAttestation,
}

/// One signature or attestation found attached to the artifact, and what became of it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerReport {
    pub kind: ReferrerKind,
    /// The referrer manifest, or the legacy signature image.
    pub manifest: Digest,
    /// How it was found.
    pub origin: crate::evidence::attach::Origin,
    /// The statement's predicate type (as signed), when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The trusted signer that verified it (policy name), when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The signer's identity: key fingerprint, or certificate identity and issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_identity: Option<String>,
    /// Authenticated signing times (Unix seconds): tlog integrated time, RFC 3161 timestamps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_times: Vec<i64>,
    /// True when signed by a trusted signer and bound to the artifact.
    pub trusted: bool,
    pub checks: Vec<Check>,
}

/// A referrer that is not a signature or attestation: listed, not used.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredReferrer {
    pub digest: Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub reason: String,
}

/// The verification of one manifest (the artifact, or one platform of an index).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReport {
    /// The manifest's digest; absent only when the reference could not be resolved to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub verified: bool,
    /// Resolve, fetch, discovery, and the policy checks (threshold, provenance, SBOM).
    pub checks: Vec<Check>,
    pub referrers: Vec<ReferrerReport>,
    pub ignored: Vec<IgnoredReferrer>,
    /// The SLSA build level the trusted provenance supports, when it was evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_level: Option<u8>,
    /// Platform manifests of an index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<ManifestReport>,
    /// BuildKit attestations the index lists for this platform, or its referrers list:
    /// unsigned, shown only, never counted by a policy check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsigned: Vec<crate::evidence::buildkit::UnsignedAttestations>,
}

impl ManifestReport {
    /// Every failed check, here and in referrers and platforms.
    pub fn failures(&self) -> Vec<&Check> {
        let mut out: Vec<&Check> = self.checks.iter().filter(|c| c.failed()).collect();
        for p in &self.platforms {
            out.extend(p.failures());
        }
        out
    }
}

/// The whole verification.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The reference as given.
    pub reference: String,
    /// The digest every step used (the tag was resolved once); absent when the reference could
    /// not be resolved to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The reference pinned to that digest.
    pub pinned: String,
    /// The policy scope that applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The policy's source and digest.
    pub policy: PolicyRef,
    pub verified: bool,
    pub artifact: ManifestReport,
    /// The trusted root keyless checks used: source, TUF versions, age (absent: none needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<crate::evidence::trust::RootOrigin>,
    /// Where signatures and attestations were read, when not beside the artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestations_repository: Option<AttestationsRepository>,
}

/// Which policy was applied.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// The policy file, or `flags` when the command line alone made it.
    pub source: String,
    /// sha256 of the policy file's bytes (absent for flags alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

impl VerifyReport {
    /// Every failed check, of the artifact and all its referrers and platforms.
    pub fn failures(&self) -> Vec<&Check> {
        fn walk<'a>(m: &'a ManifestReport, out: &mut Vec<&'a Check>) {
            out.extend(m.checks.iter().filter(|c| c.failed()));
            for r in &m.referrers {
                out.extend(r.checks.iter().filter(|c| c.failed()));
            }
            for p in &m.platforms {
                walk(p, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.artifact, &mut out);
        out
    }

    /// True when some check of `kind` failed anywhere in the report.
    pub fn failed(&self, kind: CheckKind) -> bool {
        self.failures().iter().any(|c| c.kind == kind)
    }
}
