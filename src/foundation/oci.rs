//! OCI image-spec types custody reads and writes: descriptors, image manifests (including
//! artifacts with `artifactType` and `subject`) and image indexes, with their media types.
//!
//! Manifests come from untrusted stores: [`Manifest::parse`] bounds the size and rejects what
//! does not have the shape the spec requires.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::foundation::digest::Digest;

pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MEDIA_TYPE_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The layer media type ORAS gives files pushed without one.
pub const MEDIA_TYPE_DEFAULT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The artifact type custody gives files pushed without one.
pub const ARTIFACT_TYPE_DEFAULT: &str = "application/vnd.custody.artifact.v1";

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// The empty JSON object `{}`, used as the config of artifacts.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Manifests and indexes larger than this are refused (the distribution spec's limit).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// More entries than this in one manifest or index are refused.
const MAX_ENTRIES: usize = 10_000;

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
            urls: None,
            data: None,
        }
    }

    /// The descriptor of `bytes`.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The empty config descriptor (`{}`).
    pub fn empty_config() -> Descriptor {
        Descriptor::of(MEDIA_TYPE_EMPTY, EMPTY_JSON)
    }

    pub fn title(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_TITLE).map(String::as_str)
    }

    pub fn is_manifest_like(&self) -> bool {
        is_manifest_media_type(&self.media_type)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// An image manifest (images and artifacts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (multi-platform images, referrers lists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// A parsed manifest of either kind. Manifests are handled one or a few at a time, so the size
/// difference between the variants does not matter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Why manifest bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size} bytes; the limit is {MAX_MANIFEST_SIZE}")]
    TooLarge { size: usize },
    #[error("manifest media type {0:?} is not an OCI or Docker image manifest or index")]
    UnsupportedMediaType(String),
    #[error("manifest declares media type {declared:?} but was served as {served:?}")]
    MediaTypeMismatch { declared: String, served: String },
    #[error("manifest has schemaVersion {0}; expected 2")]
    SchemaVersion(u32),
    #[error("manifest lists {0} entries; the limit is {MAX_ENTRIES}")]
    TooManyEntries(usize),
    #[error("manifest is not valid JSON of its media type")]
    Json(#[source] serde_json::Error),
}

pub fn is_manifest_media_type(media_type: &str) -> bool {
    is_index_media_type(media_type)
        || matches!(
            media_type,
            MEDIA_TYPE_IMAGE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST
        )
}

pub fn is_index_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        MEDIA_TYPE_IMAGE_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Parses manifest bytes. `served` is the media type the store reported, if any; the
    /// document's own `mediaType` wins and must agree with it when both are present.
    pub fn parse(bytes: &[u8], served: Option<&str>) -> Result<(Manifest, String), ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge { size: bytes.len() });
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        let served = served
            .map(|s| s.split(';').next().unwrap_or(s).trim())
            .filter(|s| is_manifest_media_type(s));
        let media_type = match (probe.media_type, served) {
            (Some(declared), Some(served)) if declared != served => {
                return Err(ManifestError::MediaTypeMismatch {
                    declared,
                    served: served.to_owned(),
                });
            }
            (Some(declared), _) => declared,
            (None, Some(served)) => served.to_owned(),
            (None, None) if probe.manifests.is_some() => MEDIA_TYPE_IMAGE_INDEX.to_owned(),
            (None, None) => MEDIA_TYPE_IMAGE_MANIFEST.to_owned(),
        };
        let manifest = if is_index_media_type(&media_type) {
            let index: ImageIndex = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
            check_schema(index.schema_version, index.manifests.len())?;
            Manifest::Index(index)
        } else if is_manifest_media_type(&media_type) {
            let image: ImageManifest =
                serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
            check_schema(image.schema_version, image.layers.len())?;
            Manifest::Image(image)
        } else {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        };
        Ok((manifest, media_type))
    }

    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type as the referrers API reports it: `artifactType`, else the config's
    /// media type.
    pub fn artifact_type(&self) -> Option<String> {
        match self {
            Manifest::Image(m) => m
                .artifact_type
                .clone()
                .or_else(|| Some(m.config.media_type.clone())),
            Manifest::Index(i) => i.artifact_type.clone(),
        }
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Manifest::Image(m) => &m.annotations,
            Manifest::Index(i) => &i.annotations,
        }
    }

    /// Everything this manifest points at: config and layers, or child manifests.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
            Manifest::Index(i) => i.manifests.iter().collect(),
        }
    }
}

fn check_schema(version: u32, entries: usize) -> Result<(), ManifestError> {
    if version != 2 {
        return Err(ManifestError::SchemaVersion(version));
    }
    if entries > MAX_ENTRIES {
        return Err(ManifestError::TooManyEntries(entries));
    }
    Ok(())
}

/// Serialises a manifest canonically enough to be stable: serde field order, no whitespace.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("manifest types always serialise")
}

/// The descriptor a referrers list carries for a manifest: its artifact type and annotations.
pub fn referrer_descriptor(manifest: &Manifest, media_type: &str, bytes: &[u8]) -> Descriptor {
    let mut d = Descriptor::of(media_type, bytes);
    d.artifact_type = manifest.artifact_type();
    d.annotations = manifest.annotations().clone();
    d
}

/// Whether a tag names attachments rather than an artifact: `sha256-<64 hex>` (the referrers tag
/// schema of distribution-spec 1.1) or `sha256-<64 hex>.<suffix>` (legacy cosign `.sig`, `.att`,
/// `.sbom`).
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at_checked(64).unwrap_or(("", ""));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && (suffix.is_empty() || suffix.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_tags() {
        let hex = "ab".repeat(32);
        for (tag, attachment) in [
            (format!("sha256-{hex}"), true),
            (format!("sha256-{hex}.sig"), true),
            (format!("sha256-{hex}.att"), true),
            (format!("sha256-{hex}x"), false),
            (format!("sha256-{}", "a".repeat(63)), false),
            (format!("sha256-{}g", "a".repeat(63)), false),
            (format!("sha256-{}é.sig", "a".repeat(63)), false),
            ("sha256-".to_owned(), false),
            ("v1.0.0".to_owned(), false),
        ] {
            assert_eq!(is_attachment_tag(&tag), attachment, "{tag}");
        }
    }

    #[test]
    fn parses_an_artifact_manifest_with_subject() {
        let subject = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, b"x");
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/example".into()),
            config: Descriptor::empty_config(),
            layers: vec![Descriptor::of("text/plain", b"hello")],
            subject: Some(subject.clone()),
            annotations: BTreeMap::new(),
        };
        let bytes = to_bytes(&m);
        let (parsed, mt) = Manifest::parse(&bytes, Some(MEDIA_TYPE_IMAGE_MANIFEST)).unwrap();
        assert_eq!(mt, MEDIA_TYPE_IMAGE_MANIFEST);
        assert_eq!(parsed.subject(), Some(&subject));
        assert_eq!(
            parsed.artifact_type().as_deref(),
            Some("application/example")
        );
        assert_eq!(parsed.children().len(), 2);
    }

    #[test]
    fn refuses_malformed_manifests() {
        assert!(matches!(
            Manifest::parse(&vec![b' '; MAX_MANIFEST_SIZE + 1], None),
            Err(ManifestError::TooLarge { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"{not json", None),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":1,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                None
            ),
            Err(ManifestError::SchemaVersion(1))
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                Some(MEDIA_TYPE_IMAGE_MANIFEST)
            ),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1}}"#,
                None
            ),
            Err(ManifestError::Json(_))
        ));
        // Deep nesting is stopped by serde_json's recursion limit, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(
            Manifest::parse(deep.as_bytes(), None),
            Err(ManifestError::Json(_))
        ));
    }
}
