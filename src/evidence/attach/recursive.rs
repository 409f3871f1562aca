//! Signing and attesting an index together with every manifest it lists (`--recursive`).
//!
//! [`plan`] walks the index first and refuses, before anything is signed, an index too wide or
//! too deep to be a real multi-platform image; [`sign_plan`] and [`attest_plan`] then sign each
//! manifest into its own bundle, stored as a referrer of that manifest. BuildKit attestation
//! manifests (`vnd.docker.reference.type: attestation-manifest`, platform `unknown/unknown`) are
//! left out and listed as skipped: they are evidence about a platform, not something that runs
//! (cosign's `--recursive` signs them too).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::signing::{
    AttachOptions, AttestInput, SignArtifactError, SignedAttachment, attest_artifact, sign_artifact,
};
use crate::evidence::buildkit;
use crate::evidence::sign::Signer;
use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, Manifest, Platform, is_index_media_type};
use crate::storage::store::{self, Store};

/// At most this many manifests are signed by one recursive run, the index included, and no
/// index may list more entries than this. Real multi-platform images list a few dozen (one
/// manifest per platform, plus BuildKit's attestation manifests); thousands mean a hostile
/// or broken index.
pub const MAX_MANIFESTS: usize = 128;
/// Indexes nest at most this deep below the one named: an index of platform images is depth
/// 0's children; an index listing indexes of images uses depth 1. Deeper nesting is refused.
pub const MAX_DEPTH: usize = 3;

/// Why a recursive signing was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("index {index} lists {entries} manifests; the limit is {limit}")]
    TooManyEntries {
        index: Digest,
        entries: usize,
        limit: usize,
    },
    #[error("index {index} and the indexes it lists name more than {limit} manifests to sign")]
    TooManyManifests { index: Digest, limit: usize },
    #[error("index {index} nests indexes {depth} deep below the one named; the limit is {limit}")]
    TooDeep {
        index: Digest,
        depth: usize,
        limit: usize,
    },
    #[error("cannot read index {digest}")]
    Read {
        digest: Digest,
        #[source]
        source: store::Error,
    },
    #[error("cannot sign {digest}{}", platform_suffix(.platform))]
    Sign {
        digest: Digest,
        platform: Option<String>,
        #[source]
        source: Box<SignArtifactError>,
    },
}

fn platform_suffix(platform: &Option<String>) -> String {
    platform
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default()
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::TooManyEntries { .. }
            | Error::TooManyManifests { .. }
            | Error::TooDeep { .. } => Some(
                "nothing was signed; sign the manifests you mean one by one, without --recursive"
                    .into(),
            ),
            Error::Read { source, .. } => source.hint(),
            Error::Sign { source, .. } => source.hint(),
        }
    }

    /// An index past the limits is refused as hostile input (exit 1), like a lying store.
    fn is_refusal(&self) -> bool {
        match self {
            Error::TooManyEntries { .. }
            | Error::TooManyManifests { .. }
            | Error::TooDeep { .. } => true,
            Error::Read { source, .. } => source.is_refusal(),
            Error::Sign { source, .. } => source.is_refusal(),
        }
    }
}

impl Error {
    /// The store error underneath, if a store failed.
    pub fn store_error(&self) -> Option<&store::Error> {
        match self {
            Error::Read { source, .. } => Some(source),
            Error::Sign { source, .. } => source.store_error(),
            _ => None,
        }
    }
}

/// One manifest a recursive run signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedManifest {
    /// The manifest, with the media type and size its index lists.
    pub descriptor: Descriptor,
    /// `os/arch[/variant]` from the index entry; `None` for the index named and entries
    /// without a platform.
    pub platform: Option<String>,
    /// The index that lists it; `None` for the one named.
    pub parent: Option<Digest>,
}

/// Why an index entry is not signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// A BuildKit attestation manifest: unsigned statements about `describes`, not a platform.
    BuildkitAttestation { describes: Option<Digest> },
    /// The entry is a blob, not a manifest.
    NotAManifest {
        #[serde(rename = "mediaType")]
        media_type: String,
    },
    /// Listed again (by this index or another): signed once.
    Duplicate,
}

impl SkipReason {
    /// What a person reads.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::BuildkitAttestation { describes } => format!(
                "buildkit attestation manifest{}; evidence about a platform, not a platform (cosign --recursive signs it, custody does not)",
                describes
                    .as_ref()
                    .map(|d| format!(" for {d}"))
                    .unwrap_or_default()
            ),
            SkipReason::NotAManifest { media_type } => {
                format!("a {media_type}, not a manifest")
            }
            SkipReason::Duplicate => "listed more than once; signed once".into(),
        }
    }
}

/// An index entry left unsigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedManifest {
    pub digest: Digest,
    pub parent: Digest,
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// What a recursive run signs, in order: the manifest named first, then what each index lists
/// in listing order (depth first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub manifests: Vec<PlannedManifest>,
    pub skipped: Vec<SkippedManifest>,
}

/// `os/arch[/variant]`.
pub fn platform_label(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Walks `top` (an index, or a single manifest, which is its own plan) within [`MAX_MANIFESTS`]
/// and [`MAX_DEPTH`]. Only indexes are fetched; the limits are checked on each index's listing
/// before any of its entries is fetched, so a hostile index costs one manifest read.
pub fn plan(store: &dyn Store, top: &Descriptor) -> Result<Plan, Error> {
    let mut out = Plan::default();
    let mut seen = BTreeSet::from([top.digest.clone()]);
    out.manifests.push(PlannedManifest {
        descriptor: top.clone(),
        platform: None,
        parent: None,
    });
    if is_index_media_type(&top.media_type) {
        walk(store, &top.digest, &top.digest, 0, &mut seen, &mut out)?;
    }
    Ok(out)
}

fn walk(
    store: &dyn Store,
    top: &Digest,
    index: &Digest,
    depth: usize,
    seen: &mut BTreeSet<Digest>,
    out: &mut Plan,
) -> Result<(), Error> {
    let read = |source| Error::Read {
        digest: index.clone(),
        source,
    };
    let fetched = store.get_manifest(index).map_err(read)?;
    let Manifest::Index(listing) = fetched.manifest else {
        // Listed as an index but stored as an image manifest: it is signed as what it is.
        return Ok(());
    };
    if listing.manifests.len() > MAX_MANIFESTS {
        return Err(Error::TooManyEntries {
            index: index.clone(),
            entries: listing.manifests.len(),
            limit: MAX_MANIFESTS,
        });
    }
    for entry in listing.manifests {
        let skip = |reason| SkippedManifest {
            digest: entry.digest.clone(),
            parent: index.clone(),
            reason,
        };
        if buildkit::is_attestation_manifest(&entry) {
            let describes = entry
                .annotations
                .get(buildkit::REFERENCE_DIGEST)
                .and_then(|d| d.parse().ok());
            out.skipped
                .push(skip(SkipReason::BuildkitAttestation { describes }));
            continue;
        }
        if !entry.is_manifest_like() {
            out.skipped.push(skip(SkipReason::NotAManifest {
                media_type: entry.media_type.clone(),
            }));
            continue;
        }
        if !seen.insert(entry.digest.clone()) {
            out.skipped.push(skip(SkipReason::Duplicate));
            continue;
        }
        if out.manifests.len() == MAX_MANIFESTS {
            return Err(Error::TooManyManifests {
                index: top.clone(),
                limit: MAX_MANIFESTS,
            });
        }
        let nested = is_index_media_type(&entry.media_type);
        if nested && depth + 1 > MAX_DEPTH {
            return Err(Error::TooDeep {
                index: top.clone(),
                depth: depth + 1,
                limit: MAX_DEPTH,
            });
        }
        let digest = entry.digest.clone();
        out.manifests.push(PlannedManifest {
            platform: entry.platform.as_ref().map(platform_label),
            descriptor: Descriptor {
                platform: None,
                annotations: Default::default(),
                ..entry
            },
            parent: Some(index.clone()),
        });
        if nested {
            walk(store, top, &digest, depth + 1, seen, out)?;
        }
    }
    Ok(())
}

/// One manifest of a plan, signed or attested.
#[derive(Clone, Debug)]
pub struct SignedManifest {
    pub manifest: PlannedManifest,
    pub attachment: SignedAttachment,
}

/// Signs every manifest of `plan` (as `cosign sign` does one), each into its own referrer.
pub fn sign_plan(
    store: &dyn Store,
    plan: &Plan,
    signer: &dyn Signer,
    options: &AttachOptions,
) -> Result<Vec<SignedManifest>, Error> {
    each(plan, |m| {
        sign_artifact(store, &m.descriptor, signer, options)
    })
}

/// Attests every manifest of `plan` with the same predicate, each statement naming its own
/// manifest.
pub fn attest_plan(
    store: &dyn Store,
    plan: &Plan,
    predicate_type: &str,
    predicate: &Value,
    signer: &dyn Signer,
    options: &AttachOptions,
) -> Result<Vec<SignedManifest>, Error> {
    each(plan, |m| {
        let input = AttestInput::Predicate {
            predicate_type: predicate_type.to_owned(),
            predicate: predicate.clone(),
        };
        attest_artifact(store, &m.descriptor, input, signer, options)
    })
}

fn each(
    plan: &Plan,
    mut sign: impl FnMut(&PlannedManifest) -> Result<SignedAttachment, SignArtifactError>,
) -> Result<Vec<SignedManifest>, Error> {
    plan.manifests
        .iter()
        .map(|m| {
            sign(m)
                .map(|attachment| SignedManifest {
                    manifest: m.clone(),
                    attachment,
                })
                .map_err(|source| Error::Sign {
                    digest: m.descriptor.digest.clone(),
                    platform: m.platform.clone(),
                    source: Box::new(source),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::evidence::attach::tests::subject;
    use crate::evidence::attach::{self, LegacyTags};
    use crate::evidence::sign::{KeySigner, SigningKey};
    use crate::foundation::oci::{self, ImageIndex, MEDIA_TYPE_IMAGE_INDEX};
    use crate::storage::store::layout::LayoutStore;

    fn linux(arch: &str) -> Platform {
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }

    fn put_index(store: &dyn Store, manifests: Vec<Descriptor>) -> Descriptor {
        let index = ImageIndex {
            manifests,
            ..ImageIndex::empty()
        };
        store
            .put_manifest(&oci::to_bytes(&index), MEDIA_TYPE_IMAGE_INDEX)
            .unwrap()
    }

    /// A distinct image manifest per `n`.
    fn image(store: &dyn Store, n: usize) -> Descriptor {
        let m = oci::ImageManifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some(format!("application/x-{n}")),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: None,
            annotations: BTreeMap::new(),
        };
        store
            .put_manifest(&oci::to_bytes(&m), oci::MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap()
    }

    fn on(mut d: Descriptor, platform: Platform) -> Descriptor {
        d.platform = Some(platform);
        d
    }

    fn attestation_for(store: &dyn Store, platform: &Descriptor) -> Descriptor {
        let mut d = image(store, 9999);
        d.platform = Some(Platform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            variant: None,
            os_version: None,
        });
        d.annotations.insert(
            buildkit::REFERENCE_TYPE.into(),
            buildkit::ATTESTATION_MANIFEST.into(),
        );
        d.annotations.insert(
            buildkit::REFERENCE_DIGEST.into(),
            platform.digest.to_string(),
        );
        d
    }

    #[test]
    fn a_nested_index_is_planned_depth_first_without_buildkit_attestations() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        subject(&store);
        let amd = image(&store, 1);
        let arm = image(&store, 2);
        let att = attestation_for(&store, &amd);
        let inner = put_index(&store, vec![on(arm.clone(), linux("arm64"))]);
        let blob = Descriptor::of("application/octet-stream", b"x");
        let top = put_index(
            &store,
            vec![
                on(amd.clone(), linux("amd64")),
                att.clone(),
                inner.clone(),
                on(amd.clone(), linux("amd64")),
                blob.clone(),
            ],
        );
        let plan = plan(&store, &top).unwrap();
        let planned: Vec<(&Digest, Option<&str>, Option<&Digest>)> = plan
            .manifests
            .iter()
            .map(|m| {
                (
                    &m.descriptor.digest,
                    m.platform.as_deref(),
                    m.parent.as_ref(),
                )
            })
            .collect();
        assert_eq!(
            planned,
            [
                (&top.digest, None, None),
                (&amd.digest, Some("linux/amd64"), Some(&top.digest)),
                (&inner.digest, None, Some(&top.digest)),
                (&arm.digest, Some("linux/arm64"), Some(&inner.digest)),
            ]
        );
        let skipped: Vec<(&Digest, &SkipReason)> = plan
            .skipped
            .iter()
            .map(|s| (&s.digest, &s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    &att.digest,
                    &SkipReason::BuildkitAttestation {
                        describes: Some(amd.digest.clone())
                    }
                ),
                (&amd.digest, &SkipReason::Duplicate),
                (
                    &blob.digest,
                    &SkipReason::NotAManifest {
                        media_type: "application/octet-stream".into()
                    }
                ),
            ]
        );

        // Each manifest gets its own signature, whose statement names it.
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let options = AttachOptions {
            legacy_tags: LegacyTags::Write,
            ..AttachOptions::default()
        };
        let signed = sign_plan(&store, &plan, &signer, &options).unwrap();
        assert_eq!(signed.len(), 4);
        for s in &signed {
            let found = attach::discover(&store, &s.manifest.descriptor.digest).unwrap();
            assert_eq!(found.bundles.len(), 1, "{}", s.manifest.descriptor.digest);
            assert_eq!(found.legacy.len(), 1);
            assert_eq!(s.attachment.subject.digest, s.manifest.descriptor.digest);
        }
        assert!(
            attach::discover(&store, &att.digest)
                .unwrap()
                .bundles
                .is_empty(),
            "the attestation manifest is not signed"
        );
    }

    #[test]
    fn a_single_manifest_is_its_own_plan() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let s = subject(&store);
        let plan = plan(&store, &s).unwrap();
        assert_eq!(plan.manifests.len(), 1);
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn hostile_indexes_are_refused_before_anything_is_signed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        subject(&store);

        // Too wide: refused on the listing, no entry fetched (they do not even exist).
        let phantom: Vec<Descriptor> = (0..=MAX_MANIFESTS)
            .map(|i| {
                Descriptor::new(
                    oci::MEDIA_TYPE_IMAGE_MANIFEST,
                    Digest::of(i.to_string().as_bytes()),
                    10,
                )
            })
            .collect();
        let wide = put_index(&store, phantom);
        assert!(matches!(
            plan(&store, &wide),
            Err(Error::TooManyEntries { index, entries, limit })
                if index == wide.digest && entries == MAX_MANIFESTS + 1 && limit == MAX_MANIFESTS
        ));

        // Many indexes each under the limit, adding up past it.
        let images: Vec<Descriptor> = (0..100).map(|i| image(&store, i)).collect();
        let a = put_index(&store, images[..60].to_vec());
        let b = put_index(&store, images[40..].to_vec());
        let c = put_index(&store, (100..160).map(|i| image(&store, i)).collect());
        let many = put_index(&store, vec![a, b, c]);
        assert!(matches!(
            plan(&store, &many),
            Err(Error::TooManyManifests { index, limit }) if index == many.digest && limit == MAX_MANIFESTS
        ));

        // Too deep: indexes of indexes.
        let mut nested = put_index(&store, vec![image(&store, 1)]);
        for _ in 0..MAX_DEPTH {
            nested = put_index(&store, vec![nested]);
        }
        assert!(plan(&store, &nested).is_ok(), "exactly at the limit");
        let deep = put_index(&store, vec![nested]);
        assert!(matches!(
            plan(&store, &deep),
            Err(Error::TooDeep { index, depth, limit })
                if index == deep.digest && depth == MAX_DEPTH + 1 && limit == MAX_DEPTH
        ));
        let refusal = crate::foundation::hint::Hint::is_refusal(&plan(&store, &deep).unwrap_err());
        assert!(refusal, "a hostile index is a refusal (exit 1)");
    }
}
