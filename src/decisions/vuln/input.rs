//! What a scan reads: the purls of a CycloneDX or SPDX 2.x JSON SBOM (bare, as an in-toto
//! statement's predicate, or inside a Sigstore bundle's DSSE envelope), of a lockfile custody
//! parses, or of the SBOM attached to an OCI artifact as a referrer.
//!
//! An SBOM read out of a Sigstore bundle here is **not verified**: checking the bundle's
//! signature belongs to `verify`. The seam is [`SbomVerifier`]: until a verifier is passed,
//! the report says `unverified`.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::evidence::attest::{MEDIA_TYPE_CYCLONEDX_JSON, MEDIA_TYPE_SPDX_JSON, is_sbom_predicate};
use crate::evidence::sbom::{self, spdx};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, Manifest};
use crate::foundation::reference::Reference;
use crate::storage::store::referrers::Limits;
use crate::storage::store::{self, Store};
use crate::storage::transfer;

/// Largest SBOM (file or blob) read.
pub const MAX_SBOM_BYTES: u64 = 64 * 1024 * 1024;
/// Most components one SBOM may list (nested ones included).
pub const MAX_COMPONENTS: usize = 500_000;

/// The annotation naming a bundle referrer's in-toto predicate type.
pub use crate::evidence::attach::ANNOTATION_BUNDLE_PREDICATE_TYPE as ANNOTATION_PREDICATE_TYPE;
/// The artifact type of a Sigstore bundle v0.3 referrer.
pub use crate::evidence::sign::bundle::MEDIA_TYPE_V0_3 as SIGSTORE_BUNDLE_V03;
use crate::evidence::sign::dsse::IN_TOTO_PAYLOAD_TYPE;

/// How the SBOM was wrapped where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomEnvelope {
    /// A bare CycloneDX or SPDX document.
    Plain,
    /// The predicate of an unsigned in-toto statement.
    InTotoStatement,
    /// The predicate of the statement in a Sigstore bundle's DSSE envelope.
    SigstoreBundle,
}

/// Whether the SBOM's signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SbomVerification {
    /// A local file or lockfile: nothing to verify, the user vouches for it.
    NotApplicable,
    /// Found in a signed envelope whose signature custody has not checked (yet): the findings
    /// are only as trustworthy as the registry.
    Unverified { reason: String },
    /// Checked by the verifier passed to [`from_oci`].
    Verified { signer: String },
}

/// Checks a Sigstore bundle that carried the SBOM. Implemented by `verify` (another module's
/// work); [`from_oci`] reports `unverified` when none is given.
pub trait SbomVerifier {
    /// Verifies `bundle` (the bundle JSON bytes) as an attestation about `subject`; returns the
    /// signer identity.
    fn verify_sbom_bundle(&self, bundle: &[u8], subject: &Digest) -> Result<String, String>;
}

/// Where the components came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    Sbom {
        path: PathBuf,
        envelope: SbomEnvelope,
    },
    Lockfile {
        path: PathBuf,
        format: String,
    },
    #[serde(rename_all = "camelCase")]
    Oci {
        reference: String,
        digest: Digest,
        /// The SBOMs read: the artifact's own, or (for an index without one) one per platform
        /// manifest that has one.
        sboms: Vec<OciSbom>,
    },
}

/// One SBOM referrer read from a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSbom {
    /// The manifest the SBOM is attached to.
    pub subject: Digest,
    /// `os/architecture[/variant]` when the subject is a platform manifest of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub referrer: Digest,
    pub envelope: SbomEnvelope,
    pub verification: SbomVerification,
    /// Other SBOM referrers of the same subject, found and not used (not read, or, with a
    /// verifier, refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<Digest>,
}

/// The components to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    pub source: Source,
    pub verification: SbomVerification,
    pub purls: Vec<String>,
    /// Components with no purl (by name), which cannot be matched.
    pub without_purl: Vec<String>,
}

/// Why the components could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("could not read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what} is not json")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} is not a cyclonedx or spdx sbom: {reason}")]
    NotCycloneDx { what: String, reason: String },
    #[error("{what} lists more than {limit} components")]
    TooManyComponents { what: String, limit: usize },
    #[error(transparent)]
    Spdx(#[from] spdx::SpdxError),
    #[error(transparent)]
    Lock(#[from] sbom::LockError),
    #[error("could not read artifact {reference}")]
    Transfer {
        reference: String,
        #[source]
        source: transfer::Error,
    },
    #[error("could not fetch the sbom referrer {digest}")]
    Store {
        digest: Digest,
        #[source]
        source: store::Error,
    },
    #[error("{reference} has no cyclonedx sbom referrer")]
    NoSbomReferrer { reference: String },
    #[error("sbom referrer {digest} has no layer to read")]
    NoLayer { digest: Digest },
    #[error("the sbom bundle on {digest} failed verification: {reason}")]
    Verification { digest: Digest, reason: String },
}

/// Reads a local file: a lockfile by its name (as `custody sbom` does), anything else as a
/// CycloneDX JSON document.
pub fn from_file(path: &Path) -> Result<Components, InputError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_lock = sbom::LOCKFILE_NAMES.contains(&name.as_str())
        || (name.starts_with("requirements") && name.ends_with(".txt"));
    if is_lock {
        return from_lockfile(path);
    }
    let bytes = read_file(path)?;
    from_sbom_bytes(&bytes, path)
}

/// Reads a CycloneDX JSON document (or a bundle or DSSE envelope holding one) already in
/// memory; `path` names where it came from (`-` for standard input).
pub fn from_sbom_bytes(bytes: &[u8], path: &Path) -> Result<Components, InputError> {
    if bytes.len() as u64 > MAX_SBOM_BYTES {
        return Err(InputError::TooLarge {
            what: path.display().to_string(),
            limit: MAX_SBOM_BYTES,
        });
    }
    let what = path.display().to_string();
    let (envelope, bom) = unwrap_sbom(bytes, &what)?;
    let (purls, without_purl) = purls_of(&bom, &what)?;
    Ok(Components {
        source: Source::Sbom {
            path: path.to_owned(),
            envelope,
        },
        verification: match envelope {
            SbomEnvelope::SigstoreBundle => SbomVerification::Unverified {
                reason: "custody scan does not verify bundle signatures; run custody verify".into(),
            },
            _ => SbomVerification::NotApplicable,
        },
        purls,
        without_purl,
    })
}

/// Reads a lockfile with custody's parsers.
pub fn from_lockfile(path: &Path) -> Result<Components, InputError> {
    let lock = sbom::read_lockfile(path)?;
    let purls = lock.packages.iter().map(|p| p.purl.to_string()).collect();
    Ok(Components {
        source: Source::Lockfile {
            path: path.to_owned(),
            format: lock.format.to_owned(),
        },
        verification: SbomVerification::NotApplicable,
        purls,
        without_purl: Vec::new(),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_SBOM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SBOM_BYTES {
        return Err(InputError::TooLarge {
            what: path.display().to_string(),
            limit: MAX_SBOM_BYTES,
        });
    }
    Ok(bytes)
}

/// The SBOM referrer of an OCI artifact: a Sigstore bundle whose predicate type is CycloneDX
/// or SPDX (preferred; lowest digest among equals, for a stable choice), else a plain CycloneDX
/// or SPDX artifact. An index with no SBOM of its own is read through its platform manifests' SBOMs
/// (as BuildKit attaches them), and their components are scanned together.
pub fn from_oci(
    store: &dyn Store,
    reference: &Reference,
    verifier: Option<&dyn SbomVerifier>,
    limits: &Limits,
) -> Result<Components, InputError> {
    let root = transfer::resolve(store, reference).map_err(|source| InputError::Transfer {
        reference: reference.to_string(),
        source,
    })?;
    let platforms = match &root.manifest {
        Manifest::Index(index) => index.manifests.as_slice(),
        Manifest::Image(_) => &[],
    };
    collect(
        store,
        reference,
        &root.descriptor.digest,
        platforms,
        verifier,
        limits,
    )
}

/// [`from_oci`] of `digest`, which the caller has already resolved to a single manifest (not
/// an index): its SBOM referrers are read without fetching the manifest again, so a rescan
/// spends two round trips per artifact (its tag, its referrers) instead of three.
pub fn from_oci_manifest(
    store: &dyn Store,
    reference: &Reference,
    digest: &Digest,
    verifier: Option<&dyn SbomVerifier>,
    limits: &Limits,
) -> Result<Components, InputError> {
    collect(store, reference, digest, &[], verifier, limits)
}

/// The SBOMs of `subject`, else of the `platforms` its index lists.
fn collect(
    store: &dyn Store,
    reference: &Reference,
    subject: &Digest,
    platforms: &[Descriptor],
    verifier: Option<&dyn SbomVerifier>,
    limits: &Limits,
) -> Result<Components, InputError> {
    let subject = subject.clone();
    let mut reads = read_sbom_of(store, reference, &subject, None, verifier, limits)?;
    if reads.is_empty() {
        for child in platforms.iter().filter(|d| d.is_manifest_like()) {
            let platform = child.platform.as_ref().map(|p| {
                let mut s = format!("{}/{}", p.os, p.architecture);
                if let Some(v) = &p.variant {
                    s.push('/');
                    s.push_str(v);
                }
                s
            });
            reads.extend(read_sbom_of(
                store,
                reference,
                &child.digest,
                platform,
                verifier,
                limits,
            )?);
        }
    }
    let mut sboms = Vec::new();
    let mut purls = Vec::new();
    let mut without_purl = Vec::new();
    for read in reads {
        sboms.push(read.sbom);
        purls.extend(read.purls);
        without_purl.extend(read.without_purl);
    }
    if sboms.is_empty() {
        return Err(InputError::NoSbomReferrer {
            reference: reference.to_string(),
        });
    }
    // The weakest link speaks for all: one unverified SBOM makes the input unverified.
    let verification = sboms
        .iter()
        .find(|s| matches!(s.verification, SbomVerification::Unverified { .. }))
        .or_else(|| sboms.first())
        .map(|s| s.verification.clone())
        .expect("at least one sbom");
    purls.sort();
    purls.dedup();
    without_purl.sort();
    Ok(Components {
        source: Source::Oci {
            reference: reference.to_string(),
            digest: subject,
            sboms,
        },
        verification,
        purls,
        without_purl,
    })
}

struct ReadSbom {
    sbom: OciSbom,
    purls: Vec<String>,
    without_purl: Vec<String>,
}

/// Most SBOM candidates of one manifest tried against a verifier: anyone with push access can
/// attach SBOMs, so the number read is bounded.
pub const MAX_SBOM_CANDIDATES: usize = 64;

/// Reads the SBOM referrers of `subject`: without a verifier the preferred one; with one, every
/// candidate that verifies (as `custody verify` does), so a decoy signed by someone else that
/// sorts first neither hides the real SBOM nor stands in for it. `Ok(empty)` when there is none;
/// [`InputError::Verification`] when there are candidates and none verifies.
fn read_sbom_of(
    store: &dyn Store,
    reference: &Reference,
    subject: &Digest,
    platform: Option<String>,
    verifier: Option<&dyn SbomVerifier>,
    limits: &Limits,
) -> Result<Vec<ReadSbom>, InputError> {
    let referrers = transfer::checked_referrers(store, subject, limits).map_err(|source| {
        InputError::Transfer {
            reference: reference.to_string(),
            source,
        }
    })?;
    let mut candidates: Vec<(u8, Digest, &Manifest)> = referrers
        .iter()
        .filter_map(|r| {
            sbom_kind(&r.manifest).map(|k| (k, r.descriptor.digest.clone(), &r.manifest))
        })
        .collect();
    candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let all: Vec<Digest> = candidates.iter().map(|c| c.1.clone()).collect();
    let read = |digest: &Digest,
                manifest: &Manifest,
                verifier: Option<&dyn SbomVerifier>|
     -> Result<ReadSbom, InputError> {
        let (envelope, verification, purls, without_purl) =
            read_referrer(store, subject, digest, manifest, verifier)?;
        Ok(ReadSbom {
            sbom: OciSbom {
                subject: subject.clone(),
                platform: platform.clone(),
                referrer: digest.clone(),
                envelope,
                verification,
                others: all.iter().filter(|d| *d != digest).cloned().collect(),
            },
            purls,
            without_purl,
        })
    };
    let Some(verifier) = verifier else {
        return match candidates.first() {
            Some((_, digest, manifest)) => Ok(vec![read(digest, manifest, None)?]),
            None => Ok(Vec::new()),
        };
    };
    let mut verified = Vec::new();
    let mut refusals = Vec::new();
    for (_, digest, manifest) in candidates.iter().take(MAX_SBOM_CANDIDATES) {
        match read(digest, manifest, Some(verifier)) {
            Ok(r) if matches!(r.sbom.verification, SbomVerification::Verified { .. }) => {
                verified.push(r);
            }
            Ok(_) => refusals.push(format!("{}: not a signed sbom bundle", digest.short())),
            // The registry failing is not a verdict on the artifact.
            Err(InputError::Store { source, .. })
                if !source.is_integrity_failure()
                    && !matches!(source, store::Error::Refused { .. }) =>
            {
                return Err(InputError::Store {
                    digest: digest.clone(),
                    source,
                });
            }
            // Whatever someone attached and cannot be read or verified is passed over; the
            // artifact is refused only when no candidate verifies.
            Err(e) => refusals.push(format!("{}: {e}", digest.short())),
        }
    }
    let used: Vec<Digest> = verified.iter().map(|r| r.sbom.referrer.clone()).collect();
    for r in &mut verified {
        r.sbom.others.retain(|d| !used.contains(d));
    }
    match (verified.is_empty(), candidates.first()) {
        (false, _) | (true, None) => Ok(verified),
        (true, Some((_, digest, _))) => Err(InputError::Verification {
            digest: digest.clone(),
            reason: format!(
                "none of the {} sbom referrer(s) verified: {}",
                candidates.len(),
                refusals.join("; ")
            ),
        }),
    }
}

type ReadReferrer = (SbomEnvelope, SbomVerification, Vec<String>, Vec<String>);

fn read_referrer(
    store: &dyn Store,
    subject: &Digest,
    digest: &Digest,
    manifest: &Manifest,
    verifier: Option<&dyn SbomVerifier>,
) -> Result<ReadReferrer, InputError> {
    // The layer whose media type says SBOM or bundle, else the first one.
    let layer = layers(manifest)
        .iter()
        .find(|l| {
            l.media_type == MEDIA_TYPE_CYCLONEDX_JSON
                || l.media_type == MEDIA_TYPE_SPDX_JSON
                || l.media_type == SIGSTORE_BUNDLE_V03
        })
        .or_else(|| layers(manifest).first())
        .ok_or_else(|| InputError::NoLayer {
            digest: digest.clone(),
        })?;
    let what = format!("sbom referrer {digest}");
    if layer.size > MAX_SBOM_BYTES {
        return Err(InputError::TooLarge {
            what,
            limit: MAX_SBOM_BYTES,
        });
    }
    let bytes = fetch_blob(store, layer).map_err(|source| InputError::Store {
        digest: digest.clone(),
        source,
    })?;
    let (envelope, bom) = unwrap_sbom(&bytes, &what)?;
    let verification = match (envelope, verifier) {
        (SbomEnvelope::SigstoreBundle, Some(v)) => match v.verify_sbom_bundle(&bytes, subject) {
            Ok(signer) => SbomVerification::Verified { signer },
            Err(reason) => {
                return Err(InputError::Verification {
                    digest: digest.clone(),
                    reason,
                });
            }
        },
        (SbomEnvelope::SigstoreBundle, None) => SbomVerification::Unverified {
            reason: "the bundle's signature is not checked by custody scan; run custody verify"
                .into(),
        },
        _ => SbomVerification::Unverified {
            reason: "the sbom referrer is not signed".into(),
        },
    };
    let (purls, without_purl) = purls_of(&bom, &what)?;
    Ok((envelope, verification, purls, without_purl))
}

fn layers(manifest: &Manifest) -> &[Descriptor] {
    match manifest {
        Manifest::Image(m) => &m.layers,
        Manifest::Index(_) => &[],
    }
}

/// 0: a CycloneDX or SPDX Sigstore bundle; 1: a plain CycloneDX or SPDX artifact; `None`: not
/// an SBOM.
fn sbom_kind(manifest: &Manifest) -> Option<u8> {
    let artifact_type = manifest.artifact_type();
    let predicate = manifest.annotations().get(ANNOTATION_PREDICATE_TYPE);
    if artifact_type.as_deref() == Some(SIGSTORE_BUNDLE_V03)
        && predicate.is_some_and(|p| is_sbom_predicate(p))
    {
        return Some(0);
    }
    let is_sbom_type = |t: &str| t == MEDIA_TYPE_CYCLONEDX_JSON || t == MEDIA_TYPE_SPDX_JSON;
    let sbom_layer = layers(manifest).iter().any(|l| is_sbom_type(&l.media_type));
    if artifact_type.as_deref().is_some_and(is_sbom_type) || sbom_layer {
        return Some(1);
    }
    None
}

fn fetch_blob(store: &dyn Store, layer: &Descriptor) -> Result<Vec<u8>, store::Error> {
    let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
    store.get_blob(layer, &mut bytes)?;
    Ok(bytes)
}

/// Finds the CycloneDX or SPDX document in a bare SBOM, an in-toto statement or a Sigstore
/// bundle.
pub fn unwrap_sbom(
    bytes: &[u8],
    what: &str,
) -> Result<(SbomEnvelope, serde_json::Value), InputError> {
    let not_cdx = |reason: &str| InputError::NotCycloneDx {
        what: what.to_owned(),
        reason: reason.to_owned(),
    };
    let json = |source| InputError::Json {
        what: what.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(json)?;
    if value.get("bomFormat").is_some() || spdx::is_spdx(&value) {
        return Ok((SbomEnvelope::Plain, check_cdx(value, what)?));
    }
    if value.get("predicateType").is_some() {
        let bom = predicate_of(value, what)?;
        return Ok((SbomEnvelope::InTotoStatement, bom));
    }
    if let Some(envelope) = value.get("dsseEnvelope") {
        let payload_type = envelope.get("payloadType").and_then(|p| p.as_str());
        if payload_type != Some(IN_TOTO_PAYLOAD_TYPE) {
            return Err(not_cdx(
                "the bundle's dsse payload is not an in-toto statement",
            ));
        }
        let payload = envelope
            .get("payload")
            .and_then(|p| p.as_str())
            .ok_or_else(|| not_cdx("the bundle's dsse envelope has no payload"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| not_cdx("the bundle's dsse payload is not base64"))?;
        let statement: serde_json::Value = serde_json::from_slice(&decoded).map_err(json)?;
        return Ok((SbomEnvelope::SigstoreBundle, predicate_of(statement, what)?));
    }
    Err(not_cdx(
        "no bomFormat, in-toto predicateType or sigstore dsseEnvelope",
    ))
}

fn predicate_of(statement: serde_json::Value, what: &str) -> Result<serde_json::Value, InputError> {
    let not_cdx = |reason: String| InputError::NotCycloneDx {
        what: what.to_owned(),
        reason,
    };
    let predicate_type = statement
        .get("predicateType")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    if !is_sbom_predicate(predicate_type) {
        return Err(not_cdx(format!(
            "the statement's predicate type is {predicate_type:?}"
        )));
    }
    let mut statement = statement;
    let predicate = statement
        .get_mut("predicate")
        .map(serde_json::Value::take)
        .ok_or_else(|| not_cdx("the statement has no predicate".into()))?;
    check_cdx(predicate, what)
}

/// A CycloneDX document, or an SPDX one (whose version [`purls_of`] checks).
fn check_cdx(value: serde_json::Value, what: &str) -> Result<serde_json::Value, InputError> {
    if spdx::is_spdx(&value) {
        return Ok(value);
    }
    match value.get("bomFormat").and_then(|b| b.as_str()) {
        Some("CycloneDX") => Ok(value),
        other => Err(InputError::NotCycloneDx {
            what: what.to_owned(),
            reason: format!("bomFormat is {other:?}"),
        }),
    }
}

/// The purls of every component, nested ones included (not `metadata.component`: that is the
/// artifact itself), and the names of components without one. For SPDX: every package's purls,
/// except the package the document describes (the artifact) and custody's artifact files.
pub fn purls_of(
    bom: &serde_json::Value,
    what: &str,
) -> Result<(Vec<String>, Vec<String>), InputError> {
    if spdx::is_spdx(bom) {
        let mut purls = Vec::new();
        let mut without = Vec::new();
        for p in spdx::read(bom, what)? {
            if p.is_subject || p.is_file {
                continue;
            }
            if p.purls.is_empty() {
                without.push(p.name);
            }
            purls.extend(p.purls);
        }
        purls.sort();
        purls.dedup();
        without.sort();
        return Ok((purls, without));
    }
    #[derive(Deserialize)]
    struct Bom {
        #[serde(default)]
        components: Vec<Component>,
    }
    #[derive(Deserialize)]
    struct Component {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        purl: Option<String>,
        #[serde(default)]
        components: Vec<Component>,
    }
    let bom = Bom::deserialize(bom).map_err(|source| InputError::Json {
        what: what.to_owned(),
        source,
    })?;
    let mut purls = Vec::new();
    let mut without = Vec::new();
    let mut stack: Vec<&Component> = bom.components.iter().collect();
    let mut count = 0usize;
    while let Some(c) = stack.pop() {
        count += 1;
        if count > MAX_COMPONENTS {
            return Err(InputError::TooManyComponents {
                what: what.to_owned(),
                limit: MAX_COMPONENTS,
            });
        }
        match &c.purl {
            Some(p) if !p.is_empty() => purls.push(p.clone()),
            _ => without.push(c.name.clone().unwrap_or_default()),
        }
        stack.extend(c.components.iter());
    }
    purls.sort();
    purls.dedup();
    without.sort();
    Ok((purls, without))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOM: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
        {"type":"library","name":"smallvec","version":"0.6.9","purl":"pkg:cargo/smallvec@0.6.9",
         "components":[{"type":"library","name":"inner","purl":"pkg:cargo/inner@1.0.0"}]},
        {"type":"library","name":"nopurl"}]}"#;

    #[test]
    fn reads_bare_statement_and_bundle_sboms() {
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://cyclonedx.org/bom","predicate":{BOM}}}"#
        );
        let payload = base64::engine::general_purpose::STANDARD.encode(&statement);
        let bundle = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{}},
               "dsseEnvelope":{{"payload":"{payload}","payloadType":"application/vnd.in-toto+json","signatures":[]}}}}"#
        );
        for (bytes, envelope) in [
            (BOM.to_owned(), SbomEnvelope::Plain),
            (statement, SbomEnvelope::InTotoStatement),
            (bundle, SbomEnvelope::SigstoreBundle),
        ] {
            let (got, bom) = unwrap_sbom(bytes.as_bytes(), "x").unwrap();
            assert_eq!(got, envelope);
            let (purls, without) = purls_of(&bom, "x").unwrap();
            assert_eq!(
                purls,
                vec!["pkg:cargo/inner@1.0.0", "pkg:cargo/smallvec@0.6.9"]
            );
            assert_eq!(without, vec!["nopurl"]);
        }
    }

    #[test]
    fn reads_spdx_bare_and_as_a_statement() {
        let spdx = r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT",
            "documentDescribes":["SPDXRef-app"],"packages":[
            {"SPDXID":"SPDXRef-app","name":"app","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER",
              "referenceType":"purl","referenceLocator":"pkg:cargo/app@1.0.0"}]},
            {"SPDXID":"SPDXRef-a","name":"smallvec","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER",
              "referenceType":"purl","referenceLocator":"pkg:cargo/smallvec@0.6.9"}]},
            {"SPDXID":"SPDXRef-b","name":"nopurl"}]}"#;
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://spdx.dev/Document/v2.3","predicate":{spdx}}}"#
        );
        for (bytes, envelope) in [
            (spdx.to_owned(), SbomEnvelope::Plain),
            (statement, SbomEnvelope::InTotoStatement),
        ] {
            let (got, doc) = unwrap_sbom(bytes.as_bytes(), "x").unwrap();
            assert_eq!(got, envelope);
            let (purls, without) = purls_of(&doc, "x").unwrap();
            // The described package is the artifact, as CycloneDX's metadata.component.
            assert_eq!(purls, vec!["pkg:cargo/smallvec@0.6.9"]);
            assert_eq!(without, vec!["nopurl"]);
        }
        let old = r#"{"spdxVersion":"SPDX-2.1","packages":[]}"#;
        let (_, doc) = unwrap_sbom(old.as_bytes(), "x").unwrap();
        assert!(matches!(
            purls_of(&doc, "x"),
            Err(InputError::Spdx(spdx::SpdxError::UnsupportedVersion { version, .. })) if version == "SPDX-2.1"
        ));
        let spdx3 = r#"{"predicateType":"https://spdx.dev/Document/v3","predicate":{}}"#;
        assert!(matches!(
            unwrap_sbom(spdx3.as_bytes(), "x"),
            Err(InputError::NotCycloneDx { reason, .. }) if reason.contains("Document/v3")
        ));
    }

    #[test]
    fn non_sboms_are_refused() {
        let table: &[(&str, &str)] = &[
            (r#"{"bomFormat":"SPDX"}"#, "bomFormat"),
            (
                r#"{"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#,
                "predicate type",
            ),
            (
                r#"{"dsseEnvelope":{"payloadType":"text/plain","payload":""}}"#,
                "not an in-toto",
            ),
            (
                r#"{"dsseEnvelope":{"payloadType":"application/vnd.in-toto+json","payload":"!!"}}"#,
                "base64",
            ),
            (r#"{"hello":1}"#, "no bomFormat"),
        ];
        for (text, needle) in table {
            let err = unwrap_sbom(text.as_bytes(), "x").unwrap_err();
            assert!(
                matches!(&err, InputError::NotCycloneDx { reason, .. } if reason.contains(needle)),
                "{text}: {err:?}"
            );
        }
        assert!(matches!(
            unwrap_sbom(b"\xff", "x"),
            Err(InputError::Json { .. })
        ));
        let wrong = r#"{"bomFormat":"CycloneDX","components":{"a":1}}"#;
        let (_, bom) = unwrap_sbom(wrong.as_bytes(), "x").unwrap();
        assert!(matches!(purls_of(&bom, "x"), Err(InputError::Json { .. })));
    }
}
