//! CycloneDX 1.6 (or 1.5, 1.7) JSON SBOMs: the artifact files with their SHA-256 as
//! `metadata.component`, and the components read from lockfiles with purls, hashes, scope,
//! where each was resolved from, and the dependency graph.
//!
//! The serde types here cover the part of CycloneDX custody writes. `cyclonedx-bom` 0.8.1 (the
//! newest release) models specs 1.3 to 1.5 only, so it cannot write 1.6.

pub(crate) mod cargo;
pub(crate) mod golang;
pub mod image;
pub mod lockfile;
pub(crate) mod npm;
pub mod purl;
pub(crate) mod python;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use lockfile::{Lock, LockError, Origin, Package, Scope};
pub use purl::{Purl, PurlError, PurlType};

use crate::evidence::attest::Timestamp;
use crate::evidence::source::SourceRecord;
use crate::foundation::digest::{self, Digest};

/// The CycloneDX version to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecVersion {
    #[serde(rename = "1.5")]
    V1_5,
    #[default]
    #[serde(rename = "1.6")]
    V1_6,
    /// ECMA-424 2nd edition; custody writes nothing 1.7 added, so the document differs from 1.6
    /// only in its version and schema.
    #[serde(rename = "1.7")]
    V1_7,
}

impl SpecVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V1_5 => "1.5",
            SpecVersion::V1_6 => "1.6",
            SpecVersion::V1_7 => "1.7",
        }
    }
}

impl FromStr for SpecVersion {
    type Err = SbomError;
    fn from_str(s: &str) -> Result<Self, SbomError> {
        match s {
            "1.5" => Ok(SpecVersion::V1_5),
            "1.6" => Ok(SpecVersion::V1_6),
            "1.7" => Ok(SpecVersion::V1_7),
            other => Err(SbomError::UnsupportedSpecVersion {
                version: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `urn:uuid:<random v4 uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SerialNumber(String);

impl SerialNumber {
    /// A fresh random (version 4) UUID URN.
    pub fn random() -> SerialNumber {
        let mut bytes: [u8; 16] = fastrand::u128(..).to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        SerialNumber::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> SerialNumber {
        let h = hex::encode(bytes);
        SerialNumber(format!(
            "urn:uuid:{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ------------------------------------------------------------------------- CycloneDX model

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    #[serde(rename = "$schema")]
    pub schema: String,
    pub bom_format: String,
    pub spec_version: SpecVersion,
    pub serial_number: SerialNumber,
    pub version: u32,
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub timestamp: Timestamp,
    pub lifecycles: Vec<Lifecycle>,
    pub tools: Tools,
    pub component: Component,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub phase: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tools {
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    Application,
    Library,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentScope {
    Required,
    Optional,
    Excluded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<HashEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ComponentScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<Purl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

impl Component {
    fn new(component_type: ComponentType, name: impl Into<String>) -> Component {
        Component {
            component_type,
            bom_ref: None,
            group: None,
            name: name.into(),
            version: None,
            hashes: Vec::new(),
            scope: None,
            purl: None,
            external_references: Vec::new(),
            properties: Vec::new(),
            components: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HashEntry {
    pub alg: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExternalReference {
    #[serde(rename = "type")]
    pub reference_type: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(rename = "ref")]
    pub dependency_ref: String,
    pub depends_on: Vec<String>,
}

// ------------------------------------------------------------------------------ generating

/// An artifact file the SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub digest: Digest,
}

/// Options for [`generate`].
#[derive(Debug, Clone)]
pub struct SbomOptions {
    pub spec_version: SpecVersion,
    /// Artifact name; default: the lockfile root package, else the first file name.
    pub name: Option<String>,
    /// Artifact version; default: the lockfile root package's version.
    pub version: Option<String>,
    /// Default: a random one.
    pub serial_number: Option<SerialNumber>,
    pub timestamp: Timestamp,
    /// Adds the repository as a `vcs` reference and the commit as a property.
    pub source: Option<SourceRecord>,
}

impl SbomOptions {
    pub fn new(timestamp: Timestamp) -> SbomOptions {
        SbomOptions {
            spec_version: SpecVersion::default(),
            name: None,
            version: None,
            serial_number: None,
            timestamp,
            source: None,
        }
    }
}

/// Why an SBOM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("an sbom needs at least one artifact file")]
    NoArtifacts,
    #[error("could not read artifact {path}")]
    ReadArtifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact path {path} has no file name")]
    NoFileName { path: PathBuf },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cyclonedx spec version {version:?} is not supported; use 1.5, 1.6 or 1.7")]
    UnsupportedSpecVersion { version: String },
    #[error("could not serialize sbom")]
    Serialize {
        #[source]
        source: serde_json::Error,
    },
}

/// Hashes each file (streamed) and names it by its file name.
pub fn artifacts_from_files(paths: &[impl AsRef<Path>]) -> Result<Vec<Artifact>, SbomError> {
    paths
        .iter()
        .map(|p| {
            let path = p.as_ref();
            let name = path
                .file_name()
                .ok_or_else(|| SbomError::NoFileName {
                    path: path.to_owned(),
                })?
                .to_string_lossy()
                .into_owned();
            let (digest, _) = digest::of_file(path).map_err(|source| SbomError::ReadArtifact {
                path: path.to_owned(),
                source,
            })?;
            Ok(Artifact { name, digest })
        })
        .collect()
}

/// File names custody reads as lockfiles.
pub const LOCKFILE_NAMES: [&str; 7] = [
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "go.mod",
    "uv.lock",
    "poetry.lock",
    "requirements.txt",
];

/// The lockfiles directly in `dir` (not in subfolders: a monorepo names its lockfiles
/// explicitly), in [`LOCKFILE_NAMES`] order. `npm-shrinkwrap.json` wins over
/// `package-lock.json`, as in npm.
pub fn discover_lockfiles(dir: &Path) -> Vec<PathBuf> {
    let found: Vec<PathBuf> = LOCKFILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    let shrinkwrap = found.iter().any(|p| p.ends_with("npm-shrinkwrap.json"));
    found
        .into_iter()
        .filter(|p| !(shrinkwrap && p.ends_with("package-lock.json")))
        .collect()
}

/// Reads one lockfile, choosing the parser by file name.
pub fn read_lockfile(path: &Path) -> Result<Lock, LockError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "Cargo.lock" => cargo::parse(path),
        "package-lock.json" | "npm-shrinkwrap.json" => npm::parse(path),
        "go.mod" => golang::parse(path),
        "uv.lock" => python::parse_uv(path),
        "poetry.lock" => python::parse_poetry(path),
        n if n.starts_with("requirements") && n.ends_with(".txt") => {
            python::parse_requirements(path)
        }
        _ => Err(LockError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// The bom-ref of the artifact when no lockfile names it.
const ARTIFACT_REF: &str = "artifact";

/// Builds the BOM. Components are ordered by bom-ref and every list is sorted, so two runs give
/// the same document except `serialNumber` and `timestamp`.
pub fn generate(
    artifacts: &[Artifact],
    locks: &[Lock],
    options: &SbomOptions,
) -> Result<Bom, SbomError> {
    let first = artifacts.first().ok_or(SbomError::NoArtifacts)?;
    let root = locks.iter().find_map(|l| l.root.as_ref());
    let name = options
        .name
        .clone()
        .or_else(|| root.map(|r| r.name.clone()))
        .unwrap_or_else(|| first.name.clone());
    let version = options
        .version
        .clone()
        .or_else(|| root.and_then(|r| r.version.clone()));

    let mut artifact = Component::new(ComponentType::Application, name.clone());
    artifact.version = version.clone();
    // The lockfile root's purl names the artifact only when name and version are that root's.
    // ... and when no lockfile lists that purl as a component (bom-refs must be unique).
    let root_purl = root
        .filter(|r| r.name == name && r.version == version)
        .and_then(|r| r.purl.clone())
        .filter(|p| {
            !locks
                .iter()
                .flat_map(|l| &l.packages)
                .any(|pkg| pkg.purl == *p)
        });
    let artifact_ref = root_purl
        .as_ref()
        .map_or_else(|| ARTIFACT_REF.to_owned(), |p| p.to_string());
    artifact.bom_ref = Some(artifact_ref.clone());
    artifact.purl = root_purl;
    if let [only] = artifacts {
        artifact.hashes = vec![sha256(&only.digest)];
    }
    let mut seen_files = BTreeSet::new();
    for file in artifacts {
        let mut c = Component::new(ComponentType::File, file.name.clone());
        let mut file_ref = format!("file:{}", file.name);
        let mut n = 1;
        while !seen_files.insert(file_ref.clone()) {
            n += 1;
            file_ref = format!("file:{}#{n}", file.name);
        }
        c.bom_ref = Some(file_ref);
        c.hashes = vec![sha256(&file.digest)];
        artifact.components.push(c);
    }
    if let Some(source) = &options.source {
        if let Some(repo) = &source.repository {
            artifact.external_references.push(ExternalReference {
                reference_type: "vcs".to_owned(),
                url: repo.web_url().to_owned(),
            });
        }
        artifact.properties.push(Property {
            name: "custody:source:commit".to_owned(),
            value: source.commit.to_string(),
        });
        if source.dirty {
            artifact.properties.push(Property {
                name: "custody:source:dirty".to_owned(),
                value: "true".to_owned(),
            });
        }
    }

    // Components keyed by bom-ref (the purl); the same purl from two places is one component.
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut edges: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut root_edges: BTreeSet<String> = BTreeSet::new();
    for lock in locks {
        let refs: Vec<String> = lock.packages.iter().map(|p| p.purl.to_string()).collect();
        for (package, bom_ref) in lock.packages.iter().zip(&refs) {
            let component = components
                .entry(bom_ref.clone())
                .or_insert_with(|| component(package, bom_ref, lock));
            // The widest scope wins when the same package appears twice.
            if let (Some(have), Some(new)) = (component.scope, package.scope.map(scope)) {
                component.scope = Some(widest(have, new));
            }
            if let Some(deps) = &package.dependencies {
                let set = edges
                    .entry(bom_ref.clone())
                    .or_insert_with(|| Some(BTreeSet::new()));
                let set = set.get_or_insert_with(BTreeSet::new);
                set.extend(deps.iter().map(|d| refs[*d].clone()));
            } else {
                edges.entry(bom_ref.clone()).or_insert(None);
            }
        }
        if let Some(direct) = &lock.direct {
            root_edges.extend(direct.iter().map(|d| refs[*d].clone()));
        }
    }

    let mut dependencies = vec![Dependency {
        dependency_ref: artifact_ref,
        depends_on: root_edges.into_iter().collect(),
    }];
    // A package whose lockfile records no graph gets no entry: an empty `dependsOn` would
    // claim it has none.
    dependencies.extend(edges.into_iter().filter_map(|(r, deps)| {
        deps.map(|d| Dependency {
            dependency_ref: r,
            depends_on: d.into_iter().collect(),
        })
    }));

    let mut tool = Component::new(ComponentType::Application, "custody");
    tool.version = Some(env!("CARGO_PKG_VERSION").to_owned());

    Ok(Bom {
        schema: format!(
            "http://cyclonedx.org/schema/bom-{}.schema.json",
            options.spec_version
        ),
        bom_format: "CycloneDX".to_owned(),
        spec_version: options.spec_version,
        serial_number: options
            .serial_number
            .clone()
            .unwrap_or_else(SerialNumber::random),
        version: 1,
        metadata: Metadata {
            timestamp: options.timestamp.clone(),
            lifecycles: vec![Lifecycle {
                phase: "build".to_owned(),
            }],
            tools: Tools {
                components: vec![tool],
            },
            component: artifact,
            properties: Vec::new(),
        },
        components: components.into_values().collect(),
        dependencies,
    })
}

impl Bom {
    /// Pretty JSON with a trailing newline.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, SbomError> {
        let mut out =
            serde_json::to_vec_pretty(self).map_err(|source| SbomError::Serialize { source })?;
        out.push(b'\n');
        Ok(out)
    }
}

fn sha256(digest: &Digest) -> HashEntry {
    HashEntry {
        alg: "SHA-256".to_owned(),
        content: digest.hex().to_owned(),
    }
}

fn scope(s: Scope) -> ComponentScope {
    match s {
        Scope::Required => ComponentScope::Required,
        Scope::Optional => ComponentScope::Optional,
        Scope::Excluded => ComponentScope::Excluded,
    }
}

fn widest(a: ComponentScope, b: ComponentScope) -> ComponentScope {
    use ComponentScope::*;
    match (a, b) {
        (Required, _) | (_, Required) => Required,
        (Optional, _) | (_, Optional) => Optional,
        _ => Excluded,
    }
}

fn component(package: &Package, bom_ref: &str, lock: &Lock) -> Component {
    let mut c = Component::new(ComponentType::Library, package.name.clone());
    c.bom_ref = Some(bom_ref.to_owned());
    c.group = package.group.clone();
    c.version = Some(package.version.clone());
    c.purl = Some(package.purl.clone());
    c.scope = package.scope.map(scope);
    let mut hashes: Vec<HashEntry> = package
        .hashes
        .iter()
        .map(|h| HashEntry {
            alg: h.alg.to_owned(),
            content: h.hex.clone(),
        })
        .collect();
    hashes.sort();
    hashes.dedup();
    c.hashes = hashes;

    let mut properties = vec![Property {
        name: "custody:source-kind".to_owned(),
        value: package.origin.kind().to_owned(),
    }];
    let resolved = match &package.origin {
        Origin::Registry { url, artifact } => {
            if let Some(a) = artifact {
                c.external_references.push(ExternalReference {
                    reference_type: "distribution".to_owned(),
                    url: a.clone(),
                });
            }
            Some(url.clone())
        }
        Origin::Git { url, rev } => {
            c.external_references.push(ExternalReference {
                reference_type: "vcs".to_owned(),
                url: url.clone(),
            });
            Some(match rev {
                Some(r) => format!("{url}#{r}"),
                None => url.clone(),
            })
        }
        Origin::Url { url } => {
            c.external_references.push(ExternalReference {
                reference_type: "distribution".to_owned(),
                url: url.clone(),
            });
            Some(url.clone())
        }
        Origin::Path { path } => Some(path.clone()),
        Origin::Unrecorded => None,
    };
    if let Some(r) = resolved {
        properties.push(Property {
            name: "custody:resolved-from".to_owned(),
            value: r,
        });
    }
    properties.push(Property {
        name: "custody:lockfile".to_owned(),
        value: lock.format.to_owned(),
    });
    properties.extend(package.properties.iter().map(|(n, v)| Property {
        name: n.clone(),
        value: v.clone(),
    }));
    properties.sort();
    c.properties = properties;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cargo_lock() -> Lock {
        cargo::parse_str(
            Path::new("Cargo.lock"),
            r#"
version = 4
[[package]]
name = "app"
version = "1.0.0"
dependencies = ["serde"]
[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"
"#,
        )
        .unwrap()
    }

    fn options() -> SbomOptions {
        let mut o = SbomOptions::new(Timestamp::from_unix(0));
        o.serial_number = Some(SerialNumber::from_bytes([0; 16]));
        o
    }

    #[test]
    fn bom_shape() {
        let artifacts = [Artifact {
            name: "app".into(),
            digest: Digest::of(b"bin"),
        }];
        let bom = generate(&artifacts, &[cargo_lock()], &options()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bom.to_json_bytes().unwrap()).unwrap();
        assert_eq!(v["specVersion"], "1.6");
        assert_eq!(
            v["$schema"],
            "http://cyclonedx.org/schema/bom-1.6.schema.json"
        );
        assert_eq!(v["metadata"]["component"]["bom-ref"], "pkg:cargo/app@1.0.0");
        assert_eq!(
            v["metadata"]["component"]["hashes"][0]["content"],
            Digest::of(b"bin").hex()
        );
        assert_eq!(v["metadata"]["tools"]["components"][0]["name"], "custody");
        assert_eq!(v["components"][0]["purl"], "pkg:cargo/serde@1.0.200");
        assert_eq!(
            v["dependencies"],
            serde_json::json!([
                {"ref": "pkg:cargo/app@1.0.0", "dependsOn": ["pkg:cargo/serde@1.0.200"]},
                {"ref": "pkg:cargo/serde@1.0.200", "dependsOn": []}
            ])
        );
    }

    #[test]
    fn artifact_ref_never_collides_with_a_component() {
        let mut other = cargo_lock();
        // A second lockfile that lists the first one's root as an ordinary package.
        other.root = None;
        other.packages[0].purl =
            Purl::new(PurlType::Cargo, "app", Some("1.0.0"), &Default::default()).unwrap();
        let artifacts = [Artifact {
            name: "app".into(),
            digest: Digest::of(b"bin"),
        }];
        let bom = generate(&artifacts, &[cargo_lock(), other], &options()).unwrap();
        assert_eq!(
            bom.metadata.component.bom_ref.as_deref(),
            Some(ARTIFACT_REF)
        );
        assert!(
            bom.components
                .iter()
                .any(|c| c.bom_ref.as_deref() == Some("pkg:cargo/app@1.0.0"))
        );
    }

    #[test]
    fn serial_numbers_are_v4_uuids() {
        let s = SerialNumber::random();
        let text = s.as_str();
        assert_eq!(text.len(), "urn:uuid:".len() + 36);
        assert_eq!(&text[23..24], "4", "{text}");
        assert!(matches!(&text[28..29], "8" | "9" | "a" | "b"), "{text}");
        assert_ne!(SerialNumber::random(), s);
    }

    #[test]
    fn spec_version_parse() {
        assert_eq!("1.5".parse::<SpecVersion>().unwrap(), SpecVersion::V1_5);
        assert!(matches!(
            "1.4".parse::<SpecVersion>(),
            Err(SbomError::UnsupportedSpecVersion { version }) if version == "1.4"
        ));
    }

    #[test]
    fn no_artifacts_and_unknown_lockfile_are_errors() {
        assert!(matches!(
            generate(&[], &[], &options()),
            Err(SbomError::NoArtifacts)
        ));
        assert!(matches!(
            read_lockfile(Path::new("/x/yarn.lock")),
            Err(LockError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn oversized_lockfile_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.lock");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(lockfile::MAX_LOCKFILE_BYTES + 1).unwrap();
        assert!(matches!(
            read_lockfile(&path),
            Err(LockError::TooLarge { path: p, .. }) if p == path
        ));
    }
}
