//! The chain of custody at a glance: an artifact and everything attached to it (bundle
//! referrers, legacy cosign `.sig`/`.att` layers, other referrers), each with what it claims
//! (type, predicate type, signer identity) and, when a verification report is given, the
//! verdict the policy reached on it.
//!
//! Claims are read without trusting them: a key hint or a certificate's SAN and OIDC issuer say
//! who the signer *says* it is. Only the verification report (from [`crate::decisions::verify::artifact`],
//! never re-implemented here) says who verifiably signed.

use std::ops::ControlFlow;

use serde::Serialize;

use crate::decisions::verify::{Check, PolicyRef, ReferrerReport, VerifyReport};
use crate::evidence::attach::{self, FoundBundle, FoundLegacy, LegacyKind, Origin};
use crate::evidence::buildkit::{self, UnsignedAttestations};
use crate::evidence::sign::bundle::{Bundle, Content, Material};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, Manifest};
use crate::foundation::reference::Reference;
use crate::storage::store::elsewhere::Evidence;
use crate::storage::store::{self, Store, referrers};
use crate::storage::transfer;

/// Why the tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve {reference}")]
    Resolve {
        reference: String,
        #[source]
        source: Box<transfer::Error>,
    },
    #[error("cannot list what is attached to {digest}")]
    Discover {
        digest: Digest,
        #[source]
        source: Box<attach::Error>,
    },
}

impl Error {
    /// The store error behind this one, if any (for exit codes and hints).
    pub fn store_error(&self) -> Option<&store::Error> {
        match self {
            Error::Resolve { source, .. } => match source.as_ref() {
                transfer::Error::Store(s) => Some(s),
                _ => None,
            },
            Error::Discover { source, .. } => match source.as_ref() {
                attach::Error::Store(s) | attach::Error::Transfer(transfer::Error::Store(s)) => {
                    Some(s)
                }
                _ => None,
            },
        }
    }
}

/// What a node of the tree is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// A Sigstore bundle referrer.
    Bundle,
    /// A layer of a legacy cosign `.sig` image.
    LegacySignature,
    /// A layer of a legacy cosign `.att` image.
    LegacyAttestation,
    /// A referrer that is not a signature or attestation.
    Other,
}

impl NodeKind {
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Bundle => "bundle",
            NodeKind::LegacySignature => "legacy .sig",
            NodeKind::LegacyAttestation => "legacy .att",
            NodeKind::Other => "other",
        }
    }
}

/// Who a signature says signed it (unverified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClaimedSigner {
    /// A key; the hint is the bundle's opaque key hint (cosign: base64 sha256 of the SPKI).
    Key { hint: Option<String> },
    /// A certificate: its subject alternative name and Fulcio OIDC issuer extension.
    Certificate {
        identity: Option<String>,
        issuer: Option<String>,
    },
    /// Nothing readable.
    Unreadable { reason: String },
}

impl ClaimedSigner {
    pub fn describe(&self) -> String {
        match self {
            ClaimedSigner::Key { hint: Some(h) } => format!("key {h}"),
            ClaimedSigner::Key { hint: None } => "a key (no hint)".into(),
            ClaimedSigner::Certificate { identity, issuer } => format!(
                "{} (issuer {})",
                identity.as_deref().unwrap_or("no identity"),
                issuer.as_deref().unwrap_or("none")
            ),
            ClaimedSigner::Unreadable { reason } => format!("unreadable: {reason}"),
        }
    }
}

/// The policy's verdict on one node, taken from the verification report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Signed by a trusted signer and bound to the artifact.
    pub trusted: bool,
    /// The policy's name for the trusted signer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The verified identity (key fingerprint, or certificate identity and issuer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_identity: Option<String>,
    /// The checks that failed on this node, with expected and found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Check>,
}

/// One thing attached to the artifact.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub kind: NodeKind,
    /// The referrer manifest, or the legacy signature image.
    pub manifest: Digest,
    /// How it was found (absent for other referrers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The predicate type the statement (or, unreadable, the annotation) claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// Who the signature says signed it; not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_signer: Option<ClaimedSigner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Why an other referrer is not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Present when the tree was checked against a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// An artifact and what is attached to it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tree {
    pub reference: String,
    pub digest: Digest,
    pub pinned: String,
    pub media_type: String,
    pub nodes: Vec<Node>,
    /// For an image index: each platform manifest it lists and what is attached to it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformTree>,
    /// BuildKit attestation manifests listed as referrers of this manifest (a platform
    /// manifest named directly): unsigned, shown only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsigned: Vec<UnsignedAttestations>,
    /// Present when checked against a policy: the policy, the verdict on the artifact and the
    /// artifact-level checks (threshold, provenance, SBOM, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<TreeVerification>,
    /// The repository the attachments were read from, when not beside the artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestations_repository: Option<String>,
}

/// One manifest of an index and what is attached to it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformTree {
    pub digest: Digest,
    pub media_type: String,
    /// `os/architecture[/variant]` as the index states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub nodes: Vec<Node>,
    /// Why the platform's attachments could not be listed (the manifest is missing or does
    /// not match its digest, or something attached to it is malformed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Present when checked against a policy: the verdict on this platform and its checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<PlatformVerification>,
    /// BuildKit attestation manifests the index lists for this platform, or its referrers
    /// list: unsigned, shown only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsigned: Vec<UnsignedAttestations>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformVerification {
    pub verified: bool,
    pub checks: Vec<Check>,
}

/// `os/architecture[/variant]` of an index entry.
pub fn platform_label(d: &Descriptor) -> Option<String> {
    d.platform.as_ref().map(|p| match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    })
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeVerification {
    pub policy: PolicyRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub verified: bool,
    pub checks: Vec<Check>,
}

/// Resolves `reference` once and lists everything attached to that digest.
/// `jobs` referrers are fetched at once (0: the default pool).
pub fn read(store: &dyn Store, reference: &Reference, jobs: usize) -> Result<Tree, Error> {
    read_with(Evidence::new(store, None), reference, jobs)
}

/// [`read`], with the attachments read through `evidence` (another repository, say).
pub fn read_with(
    evidence: Evidence<'_>,
    reference: &Reference,
    jobs: usize,
) -> Result<Tree, Error> {
    let store = evidence.artifact();
    let limits = attach::Limits {
        jobs,
        ..attach::Limits::DEFAULT
    };
    let root = transfer::resolve(store, reference).map_err(|source| Error::Resolve {
        reference: reference.to_string(),
        source: Box::new(source),
    })?;
    let digest = root.descriptor.digest.clone();
    let (nodes, unsigned) = nodes_of(&evidence, &digest, &limits)?;
    let mut platforms = Vec::new();
    if let Manifest::Index(index) = &root.manifest {
        let attestations = buildkit::read(store, index);
        // BuildKit's attestation manifests are shown under the platform they describe, not as
        // platforms of their own.
        let children: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|c| c.is_manifest_like() && !buildkit::is_attestation_manifest(c))
            .collect();
        // Platforms are read on the pool, and the pool is shared out among them so that no
        // more than `jobs` fetches run at once in all.
        let outer = limits.jobs().min(children.len()).max(1);
        let inner = attach::Limits {
            jobs: (limits.jobs() / outer).max(1),
            ..limits
        };
        let mut failed = None;
        referrers::ordered(
            outer,
            &children,
            |child| nodes_of(&evidence, &child.digest, &inner),
            |i, read| {
                let child = children[i];
                let mut p = PlatformTree {
                    digest: child.digest.clone(),
                    media_type: child.media_type.clone(),
                    platform: platform_label(child),
                    nodes: Vec::new(),
                    note: None,
                    verification: None,
                    unsigned: buildkit::for_platform(&attestations, &child.digest)
                        .cloned()
                        .collect(),
                };
                match read {
                    Ok((nodes, referred)) => {
                        p.nodes = nodes;
                        // Reached from the index and as a referrer: shown once.
                        p.unsigned = buildkit::merge(std::mem::take(&mut p.unsigned), referred);
                    }
                    // A broken platform is shown as such; the rest of the tree still is.
                    Err(Error::Discover { source, .. }) if listable_failure(&source) => {
                        p.note = Some(source.to_string());
                    }
                    Err(e) => {
                        failed = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                platforms.push(p);
                ControlFlow::Continue(())
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(Tree {
        reference: reference.to_string(),
        pinned: reference.pinned(&digest),
        digest,
        media_type: root.descriptor.media_type,
        nodes,
        platforms,
        unsigned,
        verification: None,
        attestations_repository: evidence.is_elsewhere().then(|| evidence.repository()),
    })
}

/// Attachment errors that concern one platform's content rather than the store as a whole.
fn listable_failure(e: &attach::Error) -> bool {
    match e {
        attach::Error::BadLegacyImage { .. } => true,
        attach::Error::Store(s) | attach::Error::Transfer(transfer::Error::Store(s)) => {
            s.is_integrity_failure() || matches!(s, store::Error::Refused { .. })
        }
        attach::Error::Transfer(_) => false,
    }
}

/// Everything attached to `digest`, as nodes, and the BuildKit attestation manifests among
/// its referrers (unsigned, so not nodes).
fn nodes_of(
    store: &dyn Store,
    digest: &Digest,
    limits: &attach::Limits,
) -> Result<(Vec<Node>, Vec<UnsignedAttestations>), Error> {
    // Each bundle becomes its node on the pool as it arrives and is dropped: only the nodes
    // are held, whatever others attach.
    let mut nodes: Vec<Node> = Vec::new();
    let node = |found: attach::Found| match &found {
        attach::Found::Bundle(b) => bundle_node(b),
        attach::Found::Legacy(l) => legacy_node(l),
    };
    let found = attach::discover_map(store, digest, limits, &node, &mut |n| nodes.push(n))
        .map_err(|source| Error::Discover {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
    let (attestations, others): (Vec<_>, Vec<_>) = found
        .ignored
        .iter()
        .partition(|i| buildkit::is_attestation_artifact_type(i.artifact_type.as_deref()));
    let unsigned = buildkit::merge(
        Vec::new(),
        attestations
            .iter()
            .map(|i| buildkit::read_referrer(store, &i.digest, digest))
            .collect(),
    );
    nodes.extend(others.iter().map(|i| Node {
        kind: NodeKind::Other,
        manifest: i.digest.clone(),
        origin: None,
        artifact_type: i.artifact_type.clone(),
        predicate_type: None,
        claimed_signer: None,
        created: None,
        note: Some(i.reason.clone()),
        verdict: None,
    }));
    Ok((nodes, unsigned))
}

impl Tree {
    /// Attaches the verdicts of `report` (a verification of this tree's digest) to the nodes.
    /// A node the report does not mention (attached between the two reads) gets no verdict.
    pub fn with_report(mut self, report: &VerifyReport) -> Tree {
        judge(&mut self.nodes, &report.artifact.referrers);
        for p in &mut self.platforms {
            // Platforms the report skipped (another `--platform`) keep no verdict.
            if let Some(r) = report
                .artifact
                .platforms
                .iter()
                .find(|r| r.digest.as_ref() == Some(&p.digest))
            {
                judge(&mut p.nodes, &r.referrers);
                p.verification = Some(PlatformVerification {
                    verified: r.verified,
                    checks: r.checks.clone(),
                });
            }
        }
        self.verification = Some(TreeVerification {
            policy: report.policy.clone(),
            scope: report.scope.clone(),
            verified: report.verified,
            checks: report.artifact.checks.clone(),
        });
        self
    }
}

/// The report's verdict on each node it mentions.
fn judge(nodes: &mut [Node], referrers: &[ReferrerReport]) {
    for node in nodes {
        let Some(origin) = &node.origin else {
            continue;
        };
        if let Some(r) = referrers.iter().find(|r| &r.origin == origin) {
            node.verdict = Some(Verdict {
                trusted: r.trusted,
                signer: r.signer.clone(),
                signer_identity: r.signer_identity.clone(),
                failures: r.checks.iter().filter(|c| c.failed()).cloned().collect(),
            });
            if r.predicate_type.is_some() {
                node.predicate_type = r.predicate_type.clone();
            }
        }
    }
}

fn origin_manifest(origin: &Origin) -> Digest {
    match origin {
        Origin::Referrer { manifest, .. }
        | Origin::Legacy { manifest, .. }
        | Origin::Detached { manifest, .. } => manifest.clone(),
    }
}

fn bundle_node(found: &FoundBundle) -> Node {
    let (claimed_signer, statement_type) = match Bundle::from_json(&found.bundle) {
        Ok(b) => (
            Some(signer_of_material(b.material())),
            match b.content() {
                Content::Dsse(env) => predicate_type_of(&env.payload),
                Content::MessageSignature { .. } => None,
            },
        ),
        Err(e) => (
            Some(ClaimedSigner::Unreadable {
                reason: e.to_string(),
            }),
            None,
        ),
    };
    Node {
        kind: NodeKind::Bundle,
        manifest: origin_manifest(&found.origin),
        origin: Some(found.origin.clone()),
        artifact_type: Some(found.media_type.clone()),
        predicate_type: statement_type.or_else(|| found.claimed_predicate_type.clone()),
        claimed_signer,
        created: found.created.clone(),
        note: None,
        verdict: None,
    }
}

fn legacy_node(found: &FoundLegacy) -> Node {
    let certificate = found
        .annotations
        .get(attach::ANNOTATION_COSIGN_CERTIFICATE)
        .filter(|c| !c.trim().is_empty());
    let claimed_signer = match certificate {
        Some(pem) => match pem_rfc7468::decode_vec(pem.trim().as_bytes()) {
            Ok((_, der)) => certificate_claims(&der),
            Err(e) => ClaimedSigner::Unreadable {
                reason: format!("certificate annotation is not PEM: {e}"),
            },
        },
        None => ClaimedSigner::Key { hint: None },
    };
    let predicate_type = match found.kind {
        LegacyKind::Signature => None,
        LegacyKind::Attestation => crate::evidence::sign::dsse::Envelope::from_json(&found.payload)
            .ok()
            .and_then(|env| predicate_type_of(&env.payload)),
    };
    Node {
        kind: match found.kind {
            LegacyKind::Signature => NodeKind::LegacySignature,
            LegacyKind::Attestation => NodeKind::LegacyAttestation,
        },
        manifest: origin_manifest(&found.origin),
        origin: Some(found.origin.clone()),
        artifact_type: None,
        predicate_type,
        claimed_signer: Some(claimed_signer),
        created: None,
        note: None,
        verdict: None,
    }
}

/// The `predicateType` of an in-toto statement, read without trusting it. The payload is
/// already bounded by the bundle size limit; serde_json bounds nesting.
pub(crate) fn predicate_type_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claim {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    serde_json::from_slice::<Claim>(payload)
        .ok()
        .map(|c| c.predicate_type)
}

fn signer_of_material(material: &Material) -> ClaimedSigner {
    match material {
        Material::PublicKey { hint } => ClaimedSigner::Key { hint: hint.clone() },
        other => match other.leaf_certificate() {
            Some(der) => certificate_claims(der),
            None => ClaimedSigner::Unreadable {
                reason: "no certificate".into(),
            },
        },
    }
}

/// Fulcio's OIDC issuer extensions: v2 (DER UTF8String) and the deprecated v1 (raw bytes).
const OID_FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// The SAN (URI or email) and OIDC issuer a certificate names; nothing is verified.
pub fn certificate_claims(der: &[u8]) -> ClaimedSigner {
    use x509_cert::der::Decode as _;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = match x509_cert::Certificate::from_der(der) {
        Ok(c) => c,
        Err(e) => {
            return ClaimedSigner::Unreadable {
                reason: format!("certificate is not DER X.509: {e}"),
            };
        }
    };
    let mut identity = None;
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id.to_string().as_str() {
            OID_SUBJECT_ALT_NAME => {
                if let Ok(san) = SubjectAltName::from_der(value) {
                    identity = san.0.iter().find_map(|n| match n {
                        GeneralName::UniformResourceIdentifier(s) | GeneralName::Rfc822Name(s) => {
                            Some(s.to_string())
                        }
                        _ => None,
                    });
                }
            }
            OID_FULCIO_ISSUER_V2 => {
                issuer_v2 = x509_cert::der::asn1::Utf8StringRef::from_der(value)
                    .ok()
                    .map(|s| s.as_str().to_owned());
            }
            OID_FULCIO_ISSUER_V1 => {
                issuer_v1 = std::str::from_utf8(value).ok().map(str::to_owned);
            }
            _ => {}
        }
    }
    ClaimedSigner::Certificate {
        identity,
        issuer: issuer_v2.or(issuer_v1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_type_is_read_from_a_statement_and_nothing_else() {
        assert_eq!(
            predicate_type_of(br#"{"_type":"x","predicateType":"https://slsa.dev/provenance/v1"}"#)
                .as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        assert_eq!(predicate_type_of(b"not json"), None);
        assert_eq!(predicate_type_of(br#"{"predicateType":7}"#), None);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(predicate_type_of(deep.as_bytes()), None);
    }

    #[test]
    fn malformed_certificates_are_named_not_panicked_on() {
        for input in [&b""[..], b"\x30", b"\x30\x82\xff\xff", &[0u8; 64]] {
            assert!(
                matches!(certificate_claims(input), ClaimedSigner::Unreadable { ref reason } if reason.starts_with("certificate is not DER X.509")),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_fulcio_certificate_claims_its_san_and_issuer() {
        // Sigstore's conformance happy path: a GitHub Actions certificate (issuer extension v2).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/testdata/sigstore-conformance/cases/happy-path-v0.3-new-mediaType/bundle.sigstore.json"
        );
        let bundle = Bundle::from_json(&std::fs::read(path).expect("conformance data")).unwrap();
        assert_eq!(
            signer_of_material(bundle.material()),
            ClaimedSigner::Certificate {
                identity: Some("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main".into()),
                issuer: Some("https://token.actions.githubusercontent.com".into()),
            }
        );
    }

    #[test]
    fn key_material_claims_its_hint() {
        assert_eq!(
            signer_of_material(&Material::PublicKey {
                hint: Some("abc".into())
            }),
            ClaimedSigner::Key {
                hint: Some("abc".into())
            }
        );
        assert_eq!(
            ClaimedSigner::Certificate {
                identity: Some(
                    "https://github.com/o/r/.github/workflows/r.yml@refs/tags/v1".into()
                ),
                issuer: Some("https://token.actions.githubusercontent.com".into()),
            }
            .describe(),
            "https://github.com/o/r/.github/workflows/r.yml@refs/tags/v1 (issuer https://token.actions.githubusercontent.com)"
        );
    }
}
