//! BuildKit's attestations, read as unsigned evidence.
//!
//! `docker buildx build --provenance --sbom` stores in-toto statements in the image index
//! itself: one attestation manifest per platform manifest, listed with platform
//! `unknown/unknown` and the annotations `vnd.docker.reference.type: attestation-manifest` and
//! `vnd.docker.reference.digest: <platform manifest digest>`. Each layer of that manifest is one
//! statement (`application/vnd.in-toto+json`, annotated `in-toto.io/predicate-type`).
//!
//! Since BuildKit v0.19 (`oci-artifact=true`, the default since v0.32) the attestation manifest
//! is also an OCI artifact (`artifactType` [`ATTESTATION_ARTIFACT_TYPE`], empty config) whose
//! `subject` is the platform manifest, so a registry with the referrers API lists it as a
//! referrer of that platform too. Both ways lead here, and one manifest reached both ways is
//! shown once ([`merge`]).
//!
//! Nothing signs these statements, so they are listed for people to see and never count as
//! signed evidence or satisfy a policy requirement.

use serde::{Deserialize, Serialize};

use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, ImageIndex, Manifest};
use crate::storage::store::Store;

/// The index annotation that says what a manifest entry is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The index annotation naming the platform manifest an attestation manifest describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`REFERENCE_TYPE`] for an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The `artifactType` of an attestation manifest written with `oci-artifact=true`.
pub const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";
/// The only attestation layer media type BuildKit defines.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The layer annotation carrying the statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// Statements larger than this are listed but not read (BuildKit caps its own at 40 MiB
/// before wrapping; provenance and SBOMs worth showing are far smaller).
pub const MAX_STATEMENT_SIZE: u64 = 16 * 1024 * 1024;
/// At most this many statements are listed per attestation manifest.
pub const MAX_STATEMENTS: usize = 64;

/// Whether an index entry is a BuildKit attestation manifest rather than a runnable image.
pub fn is_attestation_manifest(d: &Descriptor) -> bool {
    d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some(ATTESTATION_MANIFEST)
}

/// Whether a referrer of this artifact type is a BuildKit attestation manifest.
pub fn is_attestation_artifact_type(artifact_type: Option<&str>) -> bool {
    artifact_type == Some(ATTESTATION_ARTIFACT_TYPE)
}

/// How an attestation manifest was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundIn {
    /// Listed in the image index, annotated with the platform manifest it describes.
    Index,
    /// Listed as a referrer of the platform manifest (its `subject`).
    Referrers,
}

/// One BuildKit attestation manifest and its statements. Unsigned: shown, never trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsignedAttestations {
    /// Always `buildkit`: who wrote the layout (not who vouches for it: nobody does).
    pub source: &'static str,
    /// Always false: these statements carry no signature.
    pub signed: bool,
    /// The attestation manifest.
    pub manifest: Digest,
    /// The platform manifest the index (or, found as a referrer, its subject) says it describes.
    pub describes: Digest,
    /// Every way it was reached; one manifest reached both ways is listed once.
    pub found_in: Vec<FoundIn>,
    pub statements: Vec<UnsignedStatement>,
    /// Why the manifest or some of its statements could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One in-toto statement of an attestation manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsignedStatement {
    pub layer: Digest,
    /// The statement's own predicate type, or the layer annotation when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// Whether the statement's subject names the platform manifest it is listed for.
    pub subject_matches: bool,
    /// Why the statement could not be read, or does not describe its platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every attestation manifest `index` lists, with its statements read from `store`. A missing
/// or malformed manifest or statement becomes a note; reading never fails as a whole.
pub fn read(store: &dyn Store, index: &ImageIndex) -> Vec<UnsignedAttestations> {
    index
        .manifests
        .iter()
        .filter(|d| is_attestation_manifest(d))
        .filter_map(|d| {
            // An entry that does not name a valid digest describes nothing we can show it under.
            let describes: Digest = d.annotations.get(REFERENCE_DIGEST)?.parse().ok()?;
            Some(read_one(store, &d.digest, describes, FoundIn::Index))
        })
        .collect()
}

/// The attestation manifest `manifest`, listed as a referrer of `describes` (its artifact type
/// said so; see [`is_attestation_artifact_type`]). A manifest whose subject is not `describes`
/// is noted, and its statements are not read.
pub fn read_referrer(
    store: &dyn Store,
    manifest: &Digest,
    describes: &Digest,
) -> UnsignedAttestations {
    read_one(store, manifest, describes.clone(), FoundIn::Referrers)
}

/// `more` added to `all`, one entry per attestation manifest and platform: a manifest already
/// in `all` only gains the ways `more` reached it.
pub fn merge(
    mut all: Vec<UnsignedAttestations>,
    more: Vec<UnsignedAttestations>,
) -> Vec<UnsignedAttestations> {
    for m in more {
        match all
            .iter_mut()
            .find(|a| a.manifest == m.manifest && a.describes == m.describes)
        {
            Some(a) => {
                for way in m.found_in {
                    if !a.found_in.contains(&way) {
                        a.found_in.push(way);
                    }
                }
                a.found_in.sort();
            }
            None => all.push(m),
        }
    }
    all
}

/// The attestations of `index` that describe `platform`.
pub fn for_platform<'a>(
    all: &'a [UnsignedAttestations],
    platform: &'a Digest,
) -> impl Iterator<Item = &'a UnsignedAttestations> + 'a {
    all.iter().filter(move |a| &a.describes == platform)
}

fn read_one(
    store: &dyn Store,
    digest: &Digest,
    describes: Digest,
    found_in: FoundIn,
) -> UnsignedAttestations {
    let mut out = UnsignedAttestations {
        source: "buildkit",
        signed: false,
        manifest: digest.clone(),
        describes,
        found_in: vec![found_in],
        statements: Vec::new(),
        note: None,
    };
    let manifest = match store.get_manifest(digest) {
        Ok(m) => m,
        Err(e) => {
            out.note = Some(format!("cannot read attestation manifest: {e}"));
            return out;
        }
    };
    let Manifest::Image(image) = manifest.manifest else {
        out.note = Some("attestation manifest is an index, not an image manifest".into());
        return out;
    };
    // The OCI-artifact form names its platform twice (index annotation and subject); a
    // referrer names it only by its subject, which must then be the platform it is shown under.
    match (&image.subject, found_in) {
        (Some(subject), _) if subject.digest != out.describes => {
            out.note = Some(format!(
                "attestation manifest's subject is {}, not {}",
                subject.digest, out.describes
            ));
            return out;
        }
        (None, FoundIn::Referrers) => {
            out.note = Some("attestation manifest has no subject".into());
            return out;
        }
        _ => {}
    }
    let layers: Vec<&Descriptor> = image
        .layers
        .iter()
        .filter(|l| l.media_type == IN_TOTO_MEDIA_TYPE)
        .collect();
    if layers.len() > MAX_STATEMENTS {
        out.note = Some(format!(
            "lists {} statements; only the first {MAX_STATEMENTS} are shown",
            layers.len()
        ));
    }
    for layer in layers.into_iter().take(MAX_STATEMENTS) {
        out.statements
            .push(read_statement(store, layer, &out.describes));
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementHead {
    #[serde(rename = "_type")]
    statement_type: String,
    predicate_type: String,
    #[serde(default)]
    subject: Vec<SubjectHead>,
}

#[derive(Debug, Deserialize)]
struct SubjectHead {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

fn read_statement(store: &dyn Store, layer: &Descriptor, describes: &Digest) -> UnsignedStatement {
    let annotated = layer.annotations.get(PREDICATE_TYPE_ANNOTATION).cloned();
    let unread = |note: String| UnsignedStatement {
        layer: layer.digest.clone(),
        predicate_type: annotated.clone(),
        subject_matches: false,
        note: Some(note),
    };
    if layer.size > MAX_STATEMENT_SIZE {
        return unread(format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_SIZE}",
            layer.size
        ));
    }
    let mut bytes = Vec::new();
    if let Err(e) = store.get_blob(layer, &mut bytes) {
        return unread(format!("cannot read statement: {e}"));
    }
    match parse_head(&bytes) {
        Ok(head) => {
            let subject_matches = head.subject.iter().any(|s| {
                s.digest.get(describes.algorithm()).map(String::as_str) == Some(describes.hex())
            });
            let mut note = None;
            if !subject_matches {
                note = Some(format!("statement's subject does not name {describes}"));
            } else if annotated
                .as_deref()
                .is_some_and(|a| a != head.predicate_type)
            {
                note = Some("layer annotation names another predicate type".into());
            }
            UnsignedStatement {
                layer: layer.digest.clone(),
                predicate_type: Some(head.predicate_type),
                subject_matches,
                note,
            }
        }
        Err(reason) => unread(reason),
    }
}

fn parse_head(bytes: &[u8]) -> Result<StatementHead, String> {
    if bytes.len() as u64 > MAX_STATEMENT_SIZE {
        return Err(format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_SIZE}",
            bytes.len()
        ));
    }
    let head: StatementHead = serde_json::from_slice(bytes)
        .map_err(|e| format!("statement is not an in-toto statement: {e}"))?;
    if !head
        .statement_type
        .starts_with("https://in-toto.io/Statement/")
    {
        return Err(format!(
            "statement _type is {:?}, not an in-toto statement",
            head.statement_type
        ));
    }
    Ok(head)
}

/// A BuildKit statement checked for adoption: its index entry names a platform manifest the
/// index lists, and every subject of the statement is that manifest. Signing it is up to the
/// caller; until then it is as unsigned as ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adoptable {
    /// The platform manifest, as the index lists it.
    pub platform: Descriptor,
    /// The attestation manifest holding the statement.
    pub manifest: Digest,
    pub layer: Digest,
    pub predicate_type: String,
    /// The statement exactly as BuildKit wrote it.
    pub statement: Vec<u8>,
}

/// Why BuildKit's statements cannot be adopted. Adoption is all or nothing: one statement
/// that does not describe its platform refuses them all.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("the index lists no buildkit attestation manifests; there is nothing to adopt")]
    NoAttestations,
    #[error(
        "buildkit attestation manifest {manifest} does not name a platform manifest digest in {REFERENCE_DIGEST}"
    )]
    NoPlatform { manifest: Digest },
    #[error(
        "buildkit attestation manifest {manifest} describes {describes}, which the index does not list as a platform"
    )]
    Unlisted { manifest: Digest, describes: Digest },
    #[error("cannot read buildkit attestation manifest {manifest}")]
    Read {
        manifest: Digest,
        #[source]
        source: crate::storage::store::Error,
    },
    #[error("buildkit attestation manifest {manifest} is an index, not an image manifest")]
    NotAnImage { manifest: Digest },
    #[error(
        "buildkit attestation manifest {manifest} lists {count} statements; the limit is {MAX_STATEMENTS}"
    )]
    TooManyStatements { manifest: Digest, count: usize },
    #[error("buildkit statement {layer} of {manifest} cannot be adopted: {reason}")]
    Unreadable {
        manifest: Digest,
        layer: Digest,
        reason: String,
    },
    #[error(
        "buildkit statement {layer} of {manifest} is about {found:?}, not only the platform manifest {platform} its index entry names; it is not adopted"
    )]
    SubjectMismatch {
        manifest: Digest,
        layer: Digest,
        platform: Digest,
        found: Vec<String>,
    },
}

/// Every BuildKit statement `index` carries, each checked against the platform manifest its
/// attestation manifest describes, ready to be signed and attached to that manifest. Refuses
/// all of them when one does not describe its platform: signing it would vouch for a claim
/// about something else.
pub fn adoptable(store: &dyn Store, index: &ImageIndex) -> Result<Vec<Adoptable>, AdoptError> {
    let entries: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_attestation_manifest(d))
        .collect();
    if entries.is_empty() {
        return Err(AdoptError::NoAttestations);
    }
    let mut out = Vec::new();
    for entry in entries {
        let manifest = entry.digest.clone();
        let describes: Digest = entry
            .annotations
            .get(REFERENCE_DIGEST)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| AdoptError::NoPlatform {
                manifest: manifest.clone(),
            })?;
        let platform = index
            .manifests
            .iter()
            .find(|d| d.digest == describes && !is_attestation_manifest(d) && d.is_manifest_like())
            .ok_or_else(|| AdoptError::Unlisted {
                manifest: manifest.clone(),
                describes: describes.clone(),
            })?;
        let fetched = store
            .get_manifest(&manifest)
            .map_err(|source| AdoptError::Read {
                manifest: manifest.clone(),
                source,
            })?;
        let Manifest::Image(image) = fetched.manifest else {
            return Err(AdoptError::NotAnImage { manifest });
        };
        let layers: Vec<&Descriptor> = image
            .layers
            .iter()
            .filter(|l| l.media_type == IN_TOTO_MEDIA_TYPE)
            .collect();
        if layers.len() > MAX_STATEMENTS {
            return Err(AdoptError::TooManyStatements {
                manifest,
                count: layers.len(),
            });
        }
        for layer in layers {
            out.push(adopt_one(store, &manifest, platform, layer)?);
        }
    }
    Ok(out)
}

fn adopt_one(
    store: &dyn Store,
    manifest: &Digest,
    platform: &Descriptor,
    layer: &Descriptor,
) -> Result<Adoptable, AdoptError> {
    let unreadable = |reason: String| AdoptError::Unreadable {
        manifest: manifest.clone(),
        layer: layer.digest.clone(),
        reason,
    };
    if layer.size > MAX_STATEMENT_SIZE {
        return Err(unreadable(format!(
            "it is {} bytes; the limit is {MAX_STATEMENT_SIZE}",
            layer.size
        )));
    }
    let mut statement = Vec::new();
    store
        .get_blob(layer, &mut statement)
        .map_err(|e| unreadable(e.to_string()))?;
    let head = parse_head(&statement).map_err(unreadable)?;
    let names_platform = |s: &SubjectHead| {
        s.digest
            .get(platform.digest.algorithm())
            .is_some_and(|hex| hex.eq_ignore_ascii_case(platform.digest.hex()))
    };
    if head.subject.is_empty() || !head.subject.iter().all(names_platform) {
        return Err(AdoptError::SubjectMismatch {
            manifest: manifest.clone(),
            layer: layer.digest.clone(),
            platform: platform.digest.clone(),
            found: head
                .subject
                .iter()
                .flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}")))
                .collect(),
        });
    }
    Ok(Adoptable {
        platform: Descriptor::new(
            platform.media_type.clone(),
            platform.digest.clone(),
            platform.size,
        ),
        manifest: manifest.clone(),
        layer: layer.digest.clone(),
        predicate_type: head.predicate_type,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_heads_are_parsed_within_bounds_and_never_panic() {
        let ok = br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{"name":"_","digest":{"sha256":"ab"}}],"predicate":{}}"#;
        let head = parse_head(ok).unwrap();
        assert_eq!(head.predicate_type, "https://slsa.dev/provenance/v0.2");
        assert_eq!(head.subject[0].digest["sha256"], "ab");

        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            br#"{"_type":"x","predicateType":"p"}"#,
            br#"{"_type":"https://in-toto.io/Statement/v1"}"#,
            br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":7}"#,
            deep.as_bytes(),
        ] {
            let err = parse_head(bad).unwrap_err();
            assert!(err.starts_with("statement"), "{err}");
        }
    }

    fn shown(manifest: char, describes: char, found_in: FoundIn) -> UnsignedAttestations {
        let digest = |c: char| {
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        UnsignedAttestations {
            source: "buildkit",
            signed: false,
            manifest: digest(manifest),
            describes: digest(describes),
            found_in: vec![found_in],
            statements: Vec::new(),
            note: None,
        }
    }

    #[test]
    fn one_manifest_reached_from_the_index_and_as_a_referrer_is_listed_once() {
        let index = vec![
            shown('a', 'e', FoundIn::Index),
            shown('b', 'f', FoundIn::Index),
        ];
        let referrers = vec![
            shown('b', 'f', FoundIn::Referrers),
            shown('c', 'f', FoundIn::Referrers),
            // Listed twice by a registry: still one.
            shown('c', 'f', FoundIn::Referrers),
        ];
        let merged = merge(index, referrers);
        let seen: Vec<(String, Vec<FoundIn>)> = merged
            .iter()
            .map(|a| (a.manifest.hex()[..1].to_string(), a.found_in.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a".to_string(), vec![FoundIn::Index]),
                ("b".to_string(), vec![FoundIn::Index, FoundIn::Referrers]),
                ("c".to_string(), vec![FoundIn::Referrers]),
            ]
        );
        // The same manifest said to describe another platform is another entry.
        let merged = merge(merged, vec![shown('a', 'f', FoundIn::Referrers)]);
        assert_eq!(merged.len(), 4);
    }

    #[test]
    fn only_the_docker_attestation_artifact_type_is_an_attestation_referrer() {
        assert!(is_attestation_artifact_type(Some(
            ATTESTATION_ARTIFACT_TYPE
        )));
        for other in [
            None,
            Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
            Some("application/vnd.docker.attestation.manifest.v1+json; x=y"),
            Some(""),
        ] {
            assert!(!is_attestation_artifact_type(other), "{other:?}");
        }
    }

    #[test]
    fn only_annotated_entries_are_attestation_manifests() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let mut d = Descriptor::new("application/vnd.oci.image.manifest.v1+json", digest, 1);
        assert!(!is_attestation_manifest(&d));
        d.annotations
            .insert(REFERENCE_TYPE.into(), "something-else".into());
        assert!(!is_attestation_manifest(&d));
        d.annotations
            .insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
        assert!(is_attestation_manifest(&d));
    }
}
