//! Attaching Sigstore bundles to artifacts in OCI stores, and finding them again.
//!
//! A bundle is stored the way cosign v3 and `@sigstore/oci` store it: a referrer manifest whose
//! `artifactType` and single layer are `application/vnd.dev.sigstore.bundle.v0.3+json`, with the
//! `dev.sigstore.bundle.*` annotations. Legacy cosign tags (`sha256-<hex>.sig` with
//! simple-signing layers, `.att` with DSSE layers) can be written too, for tools that read only
//! those, and are always read. Discovery walks every path and deduplicates.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::foundation::digest::Digest;
use crate::foundation::oci::{
    self, ANNOTATION_CREATED, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST, Manifest,
};
use crate::foundation::reference::Tag;
use crate::storage::store::referrers;
pub use crate::storage::store::referrers::Limits;
use crate::storage::store::{self, BlobSource, FetchedManifest, ReferrersPath, Store};
use crate::storage::transfer;

pub mod legacy;
pub mod recursive;
pub(crate) mod signing;

pub use signing::{
    AttachOptions, AttestInput, LegacyTags, LegacyWritten, MAX_STATEMENT_SIZE, ReferrerOutcome,
    STATEMENT_V01, SignArtifactError, SignedAttachment, attest_artifact, check_predicate_type,
    sign_artifact,
};

pub use crate::evidence::sign::bundle::MEDIA_TYPE_V0_3 as BUNDLE_MEDIA_TYPE_V03;
/// Every bundle media type starts with this.
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANNOTATION_BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const ANNOTATION_COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANNOTATION_COSIGN_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANNOTATION_COSIGN_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANNOTATION_COSIGN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANNOTATION_COSIGN_TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// Bundles larger than this are not read.
pub const MAX_BUNDLE_SIZE: u64 = 16 * 1024 * 1024;
/// More layers than this in a legacy signature image are not read (cosign's own limit).
const MAX_LEGACY_LAYERS: usize = 1000;

/// What a bundle carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleContent {
    MessageSignature,
    DsseEnvelope,
}

impl BundleContent {
    pub fn annotation(self) -> &'static str {
        match self {
            BundleContent::MessageSignature => "message-signature",
            BundleContent::DsseEnvelope => "dsse-envelope",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error("legacy signature image {tag}: {problem}")]
    BadLegacyImage {
        tag: String,
        problem: LegacyImageProblem,
    },
}

/// Why a legacy `.sig`/`.att` image cannot be read or extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LegacyImageProblem {
    #[error("it is an index, not a signature image")]
    Index,
    #[error("{layers} layers; the limit is {limit}")]
    TooManyLayers { layers: usize, limit: usize },
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Transfer(e) => e.hint(),
            Error::BadLegacyImage { .. } => None,
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            Error::Store(e) => e.is_refusal(),
            Error::Transfer(e) => e.is_refusal(),
            Error::BadLegacyImage { .. } => false,
        }
    }
}

/// Stores `bundle` as a referrer of `subject`. `created` is an RFC 3339 time.
pub fn attach_bundle(
    store: &dyn Store,
    subject: &Descriptor,
    bundle: &[u8],
    content: BundleContent,
    predicate_type: Option<&str>,
    created: &str,
) -> Result<Descriptor, Error> {
    let layer = Descriptor::of(BUNDLE_MEDIA_TYPE_V03, bundle);
    store.put_blob(
        &Descriptor::empty_config(),
        BlobSource::Bytes(oci::EMPTY_JSON),
    )?;
    store.put_blob(&layer, BlobSource::Bytes(bundle))?;
    let mut annotations = BTreeMap::from([
        (
            ANNOTATION_BUNDLE_CONTENT.to_owned(),
            content.annotation().to_owned(),
        ),
        (ANNOTATION_CREATED.to_owned(), created.to_owned()),
    ]);
    if let Some(p) = predicate_type {
        annotations.insert(ANNOTATION_BUNDLE_PREDICATE_TYPE.to_owned(), p.to_owned());
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE_V03.to_owned()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: Some(Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        )),
        annotations,
    };
    Ok(store.put_manifest(&oci::to_bytes(&manifest), MEDIA_TYPE_IMAGE_MANIFEST)?)
}

/// The exact simple-signing payload cosign signs for an image digest.
pub fn simple_signing_payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    simple_signing_payload_with(docker_reference, digest, &BTreeMap::new())
}

/// The simple-signing payload with `cosign sign -a` annotations in `optional` (keys sorted, as
/// Go marshals a map; `null` when there are none).
pub fn simple_signing_payload_with(
    docker_reference: &str,
    digest: &Digest,
    optional: &BTreeMap<String, String>,
) -> Vec<u8> {
    // Field order and the literal `null` follow cosign's Go structs; serde_json::json! would
    // sort keys, so the document is assembled by hand from escaped strings.
    let reference = serde_json::to_string(docker_reference).expect("strings serialise");
    let optional = if optional.is_empty() {
        "null".to_owned()
    } else {
        serde_json::to_string(optional).expect("string maps serialise")
    };
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{reference}}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{SIMPLE_SIGNING_TYPE}"}},"optional":{optional}}}"#
    )
    .into_bytes()
}

/// The digest a simple-signing payload names, accepting both spellings of the key.
pub fn simple_signing_digest(payload: &[u8]) -> Option<Digest> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let critical = v.get("critical")?;
    if critical.get("type")?.as_str()? != SIMPLE_SIGNING_TYPE {
        return None;
    }
    let image = critical.get("image")?.as_object()?;
    let digest = image
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("docker-manifest-digest"))?
        .1
        .as_str()?;
    digest.parse().ok()
}

/// One layer to add to a legacy `.sig` or `.att` image.
#[derive(Clone, Debug)]
pub struct LegacyLayer {
    /// The payload: simple-signing JSON for `.sig`, the DSSE envelope JSON for `.att`.
    pub bytes: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// Which legacy tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegacyKind {
    Signature,
    Attestation,
}

impl LegacyKind {
    pub fn suffix(self) -> &'static str {
        match self {
            LegacyKind::Signature => "sig",
            LegacyKind::Attestation => "att",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            LegacyKind::Signature => SIMPLE_SIGNING_MEDIA_TYPE,
            LegacyKind::Attestation => DSSE_ENVELOPE_MEDIA_TYPE,
        }
    }

    pub fn tag(self, subject: &Digest) -> Tag {
        format!("{}.{}", subject.fallback_tag(), self.suffix())
            .parse()
            .expect("legacy cosign tags are valid tags")
    }
}

/// The image config cosign writes for signature images: one diff_id per layer.
fn legacy_config(layers: &[Descriptor]) -> Vec<u8> {
    let zero = "0001-01-01T00:00:00Z";
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|_| serde_json::json!({ "created": zero }))
        .collect();
    let config = serde_json::json!({
        "architecture": "",
        "created": zero,
        "history": history,
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    });
    serde_json::to_vec(&config).expect("json serialises")
}

/// Appends a layer to the legacy `.sig`/`.att` image of `subject` (read-modify-write, as
/// cosign does). A layer with the same bytes and annotations is not added twice.
pub fn append_legacy(
    store: &dyn Store,
    subject: &Digest,
    kind: LegacyKind,
    layer: LegacyLayer,
) -> Result<Descriptor, Error> {
    let tag = kind.tag(subject);
    let mut layers = match store.get_tagged(&tag)? {
        Some(existing) => match existing.manifest {
            Manifest::Image(m) => m.layers,
            Manifest::Index(_) => {
                return Err(Error::BadLegacyImage {
                    tag: tag.to_string(),
                    problem: LegacyImageProblem::Index,
                });
            }
        },
        None => Vec::new(),
    };
    let mut descriptor = Descriptor::of(kind.media_type(), &layer.bytes);
    descriptor.annotations = layer.annotations;
    if !layers.contains(&descriptor) {
        store.put_blob(&descriptor, BlobSource::Bytes(&layer.bytes))?;
        layers.push(descriptor);
    }
    let config_bytes = legacy_config(&layers);
    let config = Descriptor::of(MEDIA_TYPE_IMAGE_CONFIG, &config_bytes);
    store.put_blob(&config, BlobSource::Bytes(&config_bytes))?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = oci::to_bytes(&manifest);
    let stored = store.put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)?;
    let fetched = FetchedManifest::check(
        &format!("legacy {tag}"),
        bytes,
        Some(MEDIA_TYPE_IMAGE_MANIFEST),
        Some(&stored.digest),
    )?;
    transfer::write_tag(store, &tag, &fetched, transfer::TagPolicy::Force)?;
    Ok(stored)
}

/// Where a signature or attestation was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// A bundle referrer, found through the referrers API, the tag schema or a layout's index.
    Referrer {
        path: ReferrersPath,
        manifest: Digest,
    },
    /// A layer of a legacy cosign tag.
    Legacy {
        tag: String,
        manifest: Digest,
        layer: usize,
    },
    /// A bundle given beside a local file (`verify FILE --bundle B`); `manifest` is the
    /// bundle's own digest.
    Detached { file: String, manifest: Digest },
}

/// A Sigstore bundle found attached to an artifact (not yet verified).
#[derive(Clone, Debug)]
pub struct FoundBundle {
    pub origin: Origin,
    pub media_type: String,
    pub bundle: Vec<u8>,
    /// The predicate type the referrer's annotation claims (the statement decides).
    pub claimed_predicate_type: Option<String>,
    pub created: Option<String>,
}

/// A legacy signature or attestation layer (not yet verified).
#[derive(Clone, Debug)]
pub struct FoundLegacy {
    pub origin: Origin,
    pub kind: LegacyKind,
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// A referrer that is not a bundle: listed, not used.
#[derive(Clone, Debug, Serialize)]
pub struct Ignored {
    pub digest: Digest,
    pub artifact_type: Option<String>,
    pub reason: String,
}

/// Everything attached to one artifact.
#[derive(Clone, Debug, Default)]
pub struct Attachments {
    pub bundles: Vec<FoundBundle>,
    pub legacy: Vec<FoundLegacy>,
    pub ignored: Vec<Ignored>,
    pub paths: Vec<ReferrersPath>,
    /// What was listed but not read because a [`Limits`] was reached.
    pub skipped: Skipped,
}

/// What a discovery left unread because of its [`Limits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Listed referrers beyond [`Limits::referrers`].
    pub referrers: usize,
    /// Bundle and legacy layers beyond [`Limits::total_bytes`].
    pub layers: usize,
}

impl Skipped {
    pub fn any(&self) -> bool {
        self.referrers + self.layers > 0
    }
}

/// One signature or attestation, handed over as soon as it is read.
#[derive(Clone, Debug)]
pub enum Found {
    Bundle(FoundBundle),
    Legacy(FoundLegacy),
}

/// What a discovery saw besides what it handed over.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub paths: Vec<ReferrersPath>,
    pub ignored: Vec<Ignored>,
    pub bundles: usize,
    pub legacy: usize,
    pub skipped: Skipped,
}

/// Counts the bytes a discovery reads against its limits.
struct Budget {
    limits: Limits,
    read: u64,
}

impl Budget {
    /// Whether `d` may be read: refuses one larger than a layer may be, and says false when it
    /// no longer fits in what is left.
    fn admit(&mut self, d: &Descriptor) -> Result<bool, Error> {
        if d.size > self.limits.blob_bytes {
            return Err(store::Error::Refused {
                what: format!("blob {}", d.digest),
                reason: format!(
                    "it is {} bytes; the limit is {}",
                    d.size, self.limits.blob_bytes
                ),
            }
            .into());
        }
        if self.read.saturating_add(d.size) > self.limits.total_bytes {
            return Ok(false);
        }
        self.read += d.size;
        Ok(true)
    }
}

fn read_blob(store: &dyn Store, d: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(usize::try_from(d.size).unwrap_or(0));
    store.get_blob(d, &mut bytes)?;
    Ok(bytes)
}

/// Finds every bundle and legacy signature attached to `subject`, by every path, deduplicated
/// by content, and collects them. Referrers that are not bundles are listed in `ignored`.
pub fn discover(store: &dyn Store, subject: &Digest) -> Result<Attachments, Error> {
    discover_within(store, subject, &Limits::DEFAULT)
}

/// [`discover`] within `limits`.
pub fn discover_within(
    store: &dyn Store,
    subject: &Digest,
    limits: &Limits,
) -> Result<Attachments, Error> {
    let mut bundles = Vec::new();
    let mut legacy = Vec::new();
    let summary = discover_each(store, subject, limits, &mut |found| match found {
        Found::Bundle(b) => bundles.push(b),
        Found::Legacy(l) => legacy.push(l),
    })?;
    Ok(Attachments {
        bundles,
        legacy,
        ignored: summary.ignored,
        paths: summary.paths,
        skipped: summary.skipped,
    })
}

/// What a listed referrer turned out to be, once its manifest was fetched.
enum Referrer {
    /// Gone since it was listed, or naming another subject.
    Gone,
    Ignored(Ignored),
    Bundle(Box<BundleReferrer>),
}

/// A bundle referrer: its manifest and the one layer to read.
struct BundleReferrer {
    manifest: Digest,
    layer: Descriptor,
    predicate_type: Option<String>,
    created: Option<String>,
}

fn bundle_referrer(
    store: &dyn Store,
    subject: &Digest,
    listed: &Descriptor,
) -> Result<Referrer, store::Error> {
    let Some(referrer) = referrers::fetch_checked(store, subject, listed)? else {
        return Ok(Referrer::Gone);
    };
    let digest = referrer.descriptor.digest.clone();
    let artifact_type = referrer.manifest.artifact_type();
    let Manifest::Image(m) = referrer.manifest else {
        return Ok(Referrer::Ignored(Ignored {
            digest,
            artifact_type,
            reason: "an index, not a bundle".into(),
        }));
    };
    let is_bundle =
        m.layers.len() == 1 && m.layers[0].media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX);
    if !is_bundle {
        return Ok(Referrer::Ignored(Ignored {
            digest,
            artifact_type,
            reason: format!(
                "not a Sigstore bundle referrer ({} layer(s), first {})",
                m.layers.len(),
                m.layers.first().map_or("none", |l| l.media_type.as_str())
            ),
        }));
    }
    let mut annotations = m.annotations;
    Ok(Referrer::Bundle(Box::new(BundleReferrer {
        manifest: digest,
        layer: m
            .layers
            .into_iter()
            .next()
            .expect("one layer, checked above"),
        predicate_type: annotations.remove(ANNOTATION_BUNDLE_PREDICATE_TYPE),
        created: annotations.remove(ANNOTATION_CREATED),
    })))
}

/// [`discover`] one at a time: each bundle or legacy layer is read and handed to `visit`
/// before the next is read, so a caller that keeps only its verdict holds one bundle at a
/// time. The listed referrers are capped before any is fetched, every size is checked on its
/// descriptor before a byte is read, and the bytes read in all are bounded.
pub fn discover_each(
    store: &dyn Store,
    subject: &Digest,
    limits: &Limits,
    visit: &mut dyn FnMut(Found),
) -> Result<Summary, Error> {
    discover_map(store, subject, limits, &|found| found, visit)
}

/// [`discover_each`] with `map` run on the pool as each bundle arrives (verifying it, say), so
/// that checking 50 bundles takes the time of 50 / jobs; `visit` gets what `map` made in listing
/// order. At most one bundle per job is held at once.
pub fn discover_map<R: Send>(
    store: &dyn Store,
    subject: &Digest,
    limits: &Limits,
    map: &(dyn Fn(Found) -> R + Sync),
    visit: &mut dyn FnMut(R),
) -> Result<Summary, Error> {
    let mut out = Summary::default();
    let mut budget = Budget {
        limits: *limits,
        read: 0,
    };
    let mut seen: BTreeSet<Digest> = BTreeSet::new();
    let listing = referrers::list(store, subject)?;
    let path = listing.path;
    out.paths.push(path);
    let mut wanted = Vec::new();
    for listed in listing.descriptors {
        // The listing says what a referrer is: one that says it is not a bundle is not fetched.
        if let Some(artifact_type) = &listed.artifact_type
            && !artifact_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
        {
            out.ignored.push(Ignored {
                digest: listed.digest,
                artifact_type: Some(artifact_type.clone()),
                reason: "its listed artifact type is not a Sigstore bundle".into(),
            });
            continue;
        }
        if wanted.len() == limits.referrers {
            out.skipped.referrers += 1;
            continue;
        }
        wanted.push(listed);
    }
    // The manifests are fetched on the pool; of each, only what names its bundle is kept, and
    // the byte budget is spent in listing order, so what is skipped does not depend on timing.
    let mut admitted = Vec::new();
    let mut failed = None;
    referrers::ordered(
        limits.jobs(),
        &wanted,
        |listed| bundle_referrer(store, subject, listed),
        |_, classified| {
            let step = match classified {
                Ok(Referrer::Gone) => Ok(()),
                Ok(Referrer::Ignored(i)) => {
                    out.ignored.push(i);
                    Ok(())
                }
                Ok(Referrer::Bundle(b)) if seen.contains(&b.layer.digest) => Ok(()),
                Ok(Referrer::Bundle(b)) => match budget.admit(&b.layer) {
                    Ok(true) => {
                        seen.insert(b.layer.digest.clone());
                        admitted.push(*b);
                        Ok(())
                    }
                    Ok(false) => {
                        out.skipped.layers += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.into()),
            };
            match step {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    std::ops::ControlFlow::Break(())
                }
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    // Bundles are read and mapped on the pool and handed over in listing order as they
    // arrive: at most one per job is held at once.
    referrers::ordered(
        limits.jobs(),
        &admitted,
        |b| {
            read_blob(store, &b.layer).map(|bundle| {
                map(Found::Bundle(FoundBundle {
                    origin: Origin::Referrer {
                        path,
                        manifest: b.manifest.clone(),
                    },
                    media_type: b.layer.media_type.clone(),
                    bundle,
                    claimed_predicate_type: b.predicate_type.clone(),
                    created: b.created.clone(),
                }))
            })
        },
        |_, mapped| match mapped {
            Ok(mapped) => {
                out.bundles += 1;
                visit(mapped);
                std::ops::ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                std::ops::ControlFlow::Break(())
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    for kind in [LegacyKind::Signature, LegacyKind::Attestation] {
        let tag = kind.tag(subject);
        let Some(image) = store.get_tagged(&tag)? else {
            continue;
        };
        let Manifest::Image(m) = &image.manifest else {
            out.ignored.push(Ignored {
                digest: image.descriptor.digest.clone(),
                artifact_type: None,
                reason: format!("legacy tag {tag} holds an index"),
            });
            continue;
        };
        if m.layers.len() > MAX_LEGACY_LAYERS {
            return Err(Error::BadLegacyImage {
                tag: tag.to_string(),
                problem: LegacyImageProblem::TooManyLayers {
                    layers: m.layers.len(),
                    limit: MAX_LEGACY_LAYERS,
                },
            });
        }
        let mut admitted = Vec::new();
        for (i, layer) in m.layers.iter().enumerate() {
            if layer.media_type != kind.media_type() || seen.contains(&layer.digest) {
                continue;
            }
            if !budget.admit(layer)? {
                out.skipped.layers += 1;
                continue;
            }
            seen.insert(layer.digest.clone());
            admitted.push((i, layer));
        }
        // Like bundles, the layers are read and mapped on the pool and handed over in order.
        referrers::ordered(
            limits.jobs(),
            &admitted,
            |&(i, layer)| {
                read_blob(store, layer).map(|payload| {
                    map(Found::Legacy(FoundLegacy {
                        origin: Origin::Legacy {
                            tag: tag.to_string(),
                            manifest: image.descriptor.digest.clone(),
                            layer: i,
                        },
                        kind,
                        payload,
                        annotations: layer.annotations.clone(),
                    }))
                })
            },
            |_, mapped| match mapped {
                Ok(mapped) => {
                    out.legacy += 1;
                    visit(mapped);
                    std::ops::ControlFlow::Continue(())
                }
                Err(e) => {
                    failed = Some(e);
                    std::ops::ControlFlow::Break(())
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::layout::LayoutStore;

    /// An empty artifact to attach to; `attach::signing`'s tests use it too.
    pub(super) fn subject(store: &dyn Store) -> Descriptor {
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/x".into()),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: None,
            annotations: BTreeMap::new(),
        };
        store
            .put_blob(&Descriptor::empty_config(), BlobSource::Bytes(b"{}"))
            .unwrap();
        store
            .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap()
    }

    /// A store that counts the blobs read through it.
    struct Counting<'a> {
        inner: &'a dyn Store,
        blobs_read: std::sync::atomic::AtomicUsize,
    }

    impl Store for Counting<'_> {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn blob_exists(&self, d: &Digest) -> Result<Option<u64>, store::Error> {
            self.inner.blob_exists(d)
        }
        fn put_blob(&self, d: &Descriptor, s: BlobSource<'_>) -> Result<(), store::Error> {
            self.inner.put_blob(d, s)
        }
        fn get_blob(
            &self,
            d: &Descriptor,
            sink: &mut dyn std::io::Write,
        ) -> Result<(), store::Error> {
            self.blobs_read
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.get_blob(d, sink)
        }
        fn put_manifest(&self, b: &[u8], m: &str) -> Result<Descriptor, store::Error> {
            self.inner.put_manifest(b, m)
        }
        fn tag(&self, t: &Tag, m: &FetchedManifest) -> Result<(), store::Error> {
            self.inner.tag(t, m)
        }
        fn get_manifest(&self, d: &Digest) -> Result<FetchedManifest, store::Error> {
            self.inner.get_manifest(d)
        }
        fn get_tagged(&self, t: &Tag) -> Result<Option<FetchedManifest>, store::Error> {
            self.inner.get_tagged(t)
        }
        fn referrers(&self, d: &Digest) -> Result<store::Referrers, store::Error> {
            self.inner.referrers(d)
        }
        fn tags(&self) -> Result<Vec<Tag>, store::Error> {
            self.inner.tags()
        }
        fn delete_manifest(&self, d: &Digest) -> Result<(), store::Error> {
            self.inner.delete_manifest(d)
        }
    }

    #[test]
    fn bundles_are_handed_over_one_at_a_time_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LayoutStore::open_or_create(dir.path()).unwrap();
        let s = subject(&layout);
        for i in 0..5u8 {
            let bundle = vec![b'a' + i; 1000];
            attach_bundle(
                &layout,
                &s,
                &bundle,
                BundleContent::DsseEnvelope,
                None,
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
        }
        let store = Counting {
            inner: &layout,
            blobs_read: Default::default(),
        };
        let read = || store.blobs_read.load(std::sync::atomic::Ordering::SeqCst);

        // With one job each bundle reaches the visitor before the next one is read; with more,
        // no more than one per job is read ahead of the visitor.
        for jobs in [1, 2, 4] {
            let limits = Limits {
                jobs,
                ..Limits::DEFAULT
            };
            let before = read();
            let mut visits = 0;
            let summary = discover_each(&store, &s.digest, &limits, &mut |found| {
                visits += 1;
                assert!(matches!(found, Found::Bundle(b) if b.bundle.len() == 1000));
                let ahead = read() - before - visits;
                assert!(
                    ahead < jobs,
                    "{ahead} read ahead of the visitor with {jobs} jobs"
                );
            })
            .unwrap();
            assert_eq!((visits, summary.bundles), (5, 5));
            assert_eq!(summary.skipped, Skipped::default());
        }

        // The byte budget: what no longer fits is counted, not read.
        let before = read();
        let limits = Limits {
            total_bytes: 2500,
            ..Limits::DEFAULT
        };
        let summary = discover_each(&store, &s.digest, &limits, &mut |_| {}).unwrap();
        assert_eq!(summary.bundles, 2);
        assert_eq!(
            summary.skipped,
            Skipped {
                referrers: 0,
                layers: 3
            }
        );
        assert_eq!(read() - before, 2);

        // The referrer cap comes before any manifest is fetched or blob read.
        let before = read();
        let limits = Limits {
            referrers: 1,
            ..Limits::DEFAULT
        };
        let summary = discover_each(&store, &s.digest, &limits, &mut |_| {}).unwrap();
        assert_eq!(summary.bundles, 1);
        assert_eq!(
            summary.skipped,
            Skipped {
                referrers: 4,
                layers: 0
            }
        );
        assert_eq!(read() - before, 1);

        // A layer larger than a bundle may be is refused on its descriptor, unread.
        let before = read();
        let limits = Limits {
            blob_bytes: 999,
            ..Limits::DEFAULT
        };
        let err = discover_each(&store, &s.digest, &limits, &mut |_| {}).unwrap_err();
        assert!(
            matches!(&err, Error::Store(store::Error::Refused { reason, .. }) if reason.contains("the limit is 999")),
            "{err}"
        );
        assert_eq!(read(), before);
    }

    #[test]
    fn simple_signing_payload_is_cosigns_exact_shape() {
        let d = Digest::of(b"x");
        let p = simple_signing_payload("ghcr.io/o/r", &d);
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"ghcr.io/o/r"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(simple_signing_digest(&p), Some(d.clone()));
        let other_spelling = String::from_utf8(p)
            .unwrap()
            .replace("docker-manifest-digest", "Docker-manifest-digest");
        assert_eq!(simple_signing_digest(other_spelling.as_bytes()), Some(d));
        assert_eq!(simple_signing_digest(b"{\"critical\":{}}"), None);
        assert_eq!(simple_signing_digest(b"not json"), None);
    }

    #[test]
    fn bundles_and_legacy_layers_are_found_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let s = subject(&store);
        let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        attach_bundle(
            &store,
            &s,
            bundle,
            BundleContent::DsseEnvelope,
            Some("https://slsa.dev/provenance/v1"),
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        // A referrer that is not a bundle.
        let other = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/vnd.example.notes".into()),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: Some(s.clone()),
            annotations: BTreeMap::new(),
        };
        store
            .put_manifest(&oci::to_bytes(&other), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        let payload = simple_signing_payload("example/app", &s.digest);
        let layer = LegacyLayer {
            bytes: payload.clone(),
            annotations: BTreeMap::from([(ANNOTATION_COSIGN_SIGNATURE.into(), "MEUC".into())]),
        };
        append_legacy(&store, &s.digest, LegacyKind::Signature, layer.clone()).unwrap();
        append_legacy(&store, &s.digest, LegacyKind::Signature, layer).unwrap();

        let found = discover(&store, &s.digest).unwrap();
        assert_eq!(found.bundles.len(), 1);
        assert_eq!(found.bundles[0].bundle, bundle);
        assert_eq!(
            found.bundles[0].claimed_predicate_type.as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        assert_eq!(found.legacy.len(), 1, "the same layer twice is stored once");
        assert_eq!(found.legacy[0].payload, payload);
        assert_eq!(found.ignored.len(), 1);
        assert_eq!(
            found.ignored[0].artifact_type.as_deref(),
            Some("application/vnd.example.notes")
        );
    }
}
