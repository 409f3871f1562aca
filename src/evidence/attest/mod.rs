//! Attestation content: in-toto Statement v1, SLSA Provenance v1 and SLSA Verification Summary
//! v1 as serde types, the predicate type constants, and the [`provenance`] builder.
//!
//! Envelopes and signatures (DSSE, Sigstore bundles) live in `sign`; this module only says what
//! is claimed and serializes it deterministically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::foundation::time::{Timestamp, TimestampError};

use crate::evidence::ci::{CiContext, Platform};
use crate::evidence::source::{ObjectId, SourceRecord};
use crate::foundation::digest::{self, Digest};

/// `_type` of every Statement custody writes.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// in-toto Statement v0.1, which `cosign attest` still writes; accepted in a given statement.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// SLSA build provenance v1.
pub const PREDICATE_SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// A CycloneDX BOM as predicate (unversioned, as `actions/attest-sbom` and in-toto-golang write).
pub const PREDICATE_CYCLONEDX: &str = "https://cyclonedx.org/bom";
/// SLSA verification summary v1.
pub const PREDICATE_SLSA_VSA_V1: &str = "https://slsa.dev/verification_summary/v1";
/// Predicate types of SLSA Verification Summary Attestations (v1 and the older v0.2).
pub const VSA_PREDICATE_TYPES: &[&str] = &[
    PREDICATE_SLSA_VSA_V1,
    "https://slsa.dev/verification_summary/v0.2",
];

/// Whether a predicate type is a VSA, whose predicate carries a verdict.
pub fn is_vsa(predicate_type: &str) -> bool {
    VSA_PREDICATE_TYPES.contains(&predicate_type)
}
/// cosign's predicate type for a plain signature statement.
pub const PREDICATE_COSIGN_SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";
/// DSSE `payloadType` of an in-toto Statement (defined with DSSE).
pub use crate::evidence::sign::dsse::IN_TOTO_PAYLOAD_TYPE as PAYLOAD_TYPE_IN_TOTO;
/// Media type recorded for a CycloneDX JSON byproduct.
pub const MEDIA_TYPE_CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
/// An SPDX 2 document as predicate (BuildKit, cosign `--type spdxjson`, in-toto's spdx2).
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";
/// Media type of an SPDX JSON document.
pub const MEDIA_TYPE_SPDX_JSON: &str = "application/spdx+json";

/// Whether a predicate type names a CycloneDX BOM (any version suffix).
pub fn is_cyclonedx_predicate(predicate_type: &str) -> bool {
    predicate_type == PREDICATE_CYCLONEDX
        || predicate_type.starts_with("https://cyclonedx.org/bom/")
}

/// Whether a predicate type names an SPDX 2 document (`https://spdx.dev/Document`, or with a
/// `/v2.x` suffix); SPDX 3 (`/v3`) is another format.
pub fn is_spdx_predicate(predicate_type: &str) -> bool {
    predicate_type == PREDICATE_SPDX
        || predicate_type
            .strip_prefix("https://spdx.dev/Document/v2")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether a predicate type names an SBOM custody reads (CycloneDX or SPDX 2).
pub fn is_sbom_predicate(predicate_type: &str) -> bool {
    is_cyclonedx_predicate(predicate_type) || is_spdx_predicate(predicate_type)
}

/// `{"sha256": "<hex>", "gitCommit": "<hex>", ...}`: algorithm name → lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSet(pub BTreeMap<String, String>);

impl DigestSet {
    pub fn sha256(digest: &Digest) -> DigestSet {
        DigestSet(BTreeMap::from([(
            digest::SHA256.to_owned(),
            digest.hex().to_owned(),
        )]))
    }

    pub fn git_commit(id: &ObjectId) -> DigestSet {
        DigestSet(BTreeMap::from([(
            "gitCommit".to_owned(),
            id.as_str().to_owned(),
        )]))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// in-toto ResourceDescriptor. At least one of `uri`, `digest` (or `content`, not used here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "DigestSet::is_empty")]
    pub digest: DigestSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
}

impl ResourceDescriptor {
    /// A named file with its sha256, as a subject or byproduct.
    pub fn file(name: impl Into<String>, digest: &Digest) -> ResourceDescriptor {
        ResourceDescriptor {
            name: Some(name.into()),
            digest: DigestSet::sha256(digest),
            ..ResourceDescriptor::default()
        }
    }
}

/// An in-toto Statement v1 over predicate `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    pub predicate_type: String,
    pub predicate: P,
}

impl<P: Serialize> Statement<P> {
    pub fn new(subject: Vec<ResourceDescriptor>, predicate_type: &str, predicate: P) -> Self {
        Statement {
            statement_type: STATEMENT_V1.to_owned(),
            subject,
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }

    /// Compact JSON; the same statement always gives the same bytes (struct fields in
    /// declaration order, maps sorted by key).
    pub fn to_bytes(&self) -> Result<Vec<u8>, AttestError> {
        serde_json::to_vec(self).map_err(|source| AttestError::Serialize { source })
    }
}

/// SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub internal_parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builder_dependencies: Vec<ResourceDescriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_on: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<Timestamp>,
}

/// `verificationResult` of a VSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerificationResult {
    Passed,
    Failed,
}

/// SLSA Verification Summary v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    pub verifier: Verifier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_verified: Option<Timestamp>,
    pub resource_uri: String,
    /// MUST have `uri`, SHOULD have `digest`.
    pub policy: ResourceDescriptor,
    /// When present, lists every attestation used, each with a digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_attestations: Option<Vec<ResourceDescriptor>>,
    pub verification_result: VerificationResult,
    /// `SLSA_BUILD_LEVEL_2`, ...; at most one per track.
    pub verified_levels: Vec<String>,
    /// Unset means no claim; empty means no dependencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency_levels: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slsa_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verifier {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// Why an attestation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("a statement needs at least one subject")]
    NoSubjects,
    #[error("subject {name:?} has no digest")]
    SubjectWithoutDigest { name: String },
    #[error("subject names must be unique; {name:?} appears twice")]
    DuplicateSubject { name: String },
    #[error("could not read artifact {path}")]
    ReadArtifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact path {path} has no file name")]
    NoFileName { path: PathBuf },
    #[error("could not serialize statement")]
    Serialize {
        #[source]
        source: serde_json::Error,
    },
}

/// One subject per file: its file name and sha256 (streamed, not read into memory).
pub fn file_subjects(paths: &[impl AsRef<Path>]) -> Result<Vec<ResourceDescriptor>, AttestError> {
    paths
        .iter()
        .map(|path| {
            let path = path.as_ref();
            let name = path
                .file_name()
                .ok_or_else(|| AttestError::NoFileName {
                    path: path.to_owned(),
                })?
                .to_string_lossy()
                .into_owned();
            let (digest, _) =
                digest::of_file(path).map_err(|source| AttestError::ReadArtifact {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(ResourceDescriptor::file(name, &digest))
        })
        .collect()
}

/// The subject for an OCI artifact or image: its manifest digest, named by its repository.
pub fn oci_subject(name: impl Into<String>, manifest: &Digest) -> ResourceDescriptor {
    ResourceDescriptor::file(name, manifest)
}

/// Everything [`provenance`] needs; unknown values stay `None` and are left out.
#[derive(Debug, Clone)]
pub struct ProvenanceInput<'a> {
    pub subjects: Vec<ResourceDescriptor>,
    pub ci: &'a CiContext,
    pub source: Option<&'a SourceRecord>,
    /// Further inputs the user names (toolchains, base images, ...).
    pub materials: Vec<ResourceDescriptor>,
    /// The SBOM written for this build, recorded as a byproduct.
    pub sbom: Option<ResourceDescriptor>,
    pub started_on: Option<Timestamp>,
    pub finished_on: Option<Timestamp>,
}

impl<'a> ProvenanceInput<'a> {
    pub fn new(subjects: Vec<ResourceDescriptor>, ci: &'a CiContext) -> Self {
        ProvenanceInput {
            subjects,
            ci,
            source: None,
            materials: Vec::new(),
            sbom: None,
            started_on: None,
            finished_on: None,
        }
    }
}

/// Builds the SLSA Provenance v1 statement.
pub fn provenance(input: ProvenanceInput<'_>) -> Result<Statement<Provenance>, AttestError> {
    check_subjects(&input.subjects)?;
    let ci = input.ci;

    let mut external_parameters = ci.external_parameters.clone();
    if ci.platform == Platform::Local
        && let Some(source) = input.source
    {
        if let Some(repo) = &source.repository {
            external_parameters.insert("repository".into(), Value::from(repo.web_url()));
        }
        if let Some(r) = &source.git_ref {
            external_parameters.insert("ref".into(), Value::from(r.as_str()));
        }
    }

    let mut resolved_dependencies = Vec::new();
    if let Some(source) = input.source {
        let mut annotations = Map::new();
        if source.dirty {
            // The built tree differs from the commit: say so next to the commit.
            annotations.insert("dirty".into(), Value::Bool(true));
            annotations.insert("dirtyPaths".into(), Value::from(source.dirty_paths.clone()));
        }
        resolved_dependencies.push(ResourceDescriptor {
            uri: source.dependency_uri(),
            digest: DigestSet::git_commit(&source.commit),
            annotations,
            ..ResourceDescriptor::default()
        });
    }
    resolved_dependencies.extend(input.materials);

    let metadata = BuildMetadata {
        invocation_id: ci.invocation_id.clone(),
        started_on: input.started_on,
        finished_on: input.finished_on,
    };
    let metadata = (metadata != BuildMetadata::default()).then_some(metadata);

    let predicate = Provenance {
        build_definition: BuildDefinition {
            build_type: ci.build_type.clone(),
            external_parameters,
            internal_parameters: ci.internal_parameters.clone(),
            resolved_dependencies,
        },
        run_details: RunDetails {
            builder: Builder {
                id: ci.builder_id.clone(),
                builder_dependencies: Vec::new(),
                version: BTreeMap::from([(
                    "custody".to_owned(),
                    env!("CARGO_PKG_VERSION").to_owned(),
                )]),
            },
            metadata,
            byproducts: input.sbom.into_iter().collect(),
        },
    };
    Ok(Statement::new(
        input.subjects,
        PREDICATE_SLSA_PROVENANCE_V1,
        predicate,
    ))
}

/// A statement whose predicate is the CycloneDX BOM itself.
pub fn sbom_statement(
    subjects: Vec<ResourceDescriptor>,
    bom: Value,
) -> Result<Statement<Value>, AttestError> {
    check_subjects(&subjects)?;
    Ok(Statement::new(subjects, PREDICATE_CYCLONEDX, bom))
}

/// A VSA statement about `subjects`.
pub fn verification_summary(
    subjects: Vec<ResourceDescriptor>,
    summary: VerificationSummary,
) -> Result<Statement<VerificationSummary>, AttestError> {
    check_subjects(&subjects)?;
    Ok(Statement::new(subjects, PREDICATE_SLSA_VSA_V1, summary))
}

fn check_subjects(subjects: &[ResourceDescriptor]) -> Result<(), AttestError> {
    if subjects.is_empty() {
        return Err(AttestError::NoSubjects);
    }
    let mut seen = std::collections::BTreeSet::new();
    for subject in subjects {
        let name = subject.name.clone().unwrap_or_default();
        if subject.digest.is_empty() {
            return Err(AttestError::SubjectWithoutDigest { name });
        }
        if !name.is_empty() && name != "_" && !seen.insert(name.clone()) {
            return Err(AttestError::DuplicateSubject { name });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ci;
    use crate::evidence::source::RepoUri;
    use serde_json::json;

    fn source() -> SourceRecord {
        SourceRecord {
            repository: Some(RepoUri::parse("git@github.com:octo/hello.git").unwrap()),
            commit: ObjectId::parse("7fd1a60b01f91b314f59955a4e4d4e80d8edf11d").unwrap(),
            tree: ObjectId::parse(&"b".repeat(40)).unwrap(),
            git_ref: Some("refs/heads/main".into()),
            tags: vec![],
            signed: false,
            detached: false,
            shallow: false,
            dirty: false,
            dirty_paths: vec![],
        }
    }

    #[test]
    fn local_provenance_has_required_fields_and_source() {
        let ctx = ci::local();
        let src = source();
        let subject = ResourceDescriptor::file("app.tar.gz", &Digest::of(b"app"));
        let mut input = ProvenanceInput::new(vec![subject], &ctx);
        input.source = Some(&src);
        input.sbom = Some(ResourceDescriptor {
            media_type: Some(MEDIA_TYPE_CYCLONEDX_JSON.into()),
            ..ResourceDescriptor::file("sbom.cdx.json", &Digest::of(b"{}"))
        });
        input.finished_on = Some(Timestamp::from_unix(0));
        let statement = provenance(input).unwrap();
        let value: Value = serde_json::from_slice(&statement.to_bytes().unwrap()).unwrap();
        assert_eq!(value["_type"], STATEMENT_V1);
        assert_eq!(value["predicateType"], PREDICATE_SLSA_PROVENANCE_V1);
        assert_eq!(
            value["subject"][0],
            json!({"name": "app.tar.gz", "digest": {"sha256": Digest::of(b"app").hex()}})
        );
        let predicate = &value["predicate"];
        assert_eq!(
            predicate["runDetails"]["builder"]["id"],
            ci::LOCAL_BUILDER_ID
        );
        assert_eq!(
            predicate["runDetails"]["builder"]["version"]["custody"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            predicate["buildDefinition"]["externalParameters"],
            json!({"repository": "https://github.com/octo/hello", "ref": "refs/heads/main"})
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][0],
            json!({"uri": "git+https://github.com/octo/hello@refs/heads/main",
                   "digest": {"gitCommit": "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"}})
        );
        assert_eq!(
            predicate["runDetails"]["metadata"],
            json!({"finishedOn": "1970-01-01T00:00:00Z"})
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["mediaType"],
            MEDIA_TYPE_CYCLONEDX_JSON
        );
        // Unknown fields are left out, never written as null.
        assert!(
            !String::from_utf8(statement.to_bytes().unwrap())
                .unwrap()
                .contains("null")
        );
        assert!(
            predicate["buildDefinition"]
                .get("internalParameters")
                .is_none()
        );
    }

    #[test]
    fn dirty_source_is_annotated() {
        let ctx = ci::local();
        let mut src = source();
        src.dirty = true;
        src.dirty_paths = vec!["src/main.rs".into()];
        let mut input =
            ProvenanceInput::new(vec![ResourceDescriptor::file("a", &Digest::of(b"a"))], &ctx);
        input.source = Some(&src);
        let value = serde_json::to_value(provenance(input).unwrap()).unwrap();
        assert_eq!(
            value["predicate"]["buildDefinition"]["resolvedDependencies"][0]["annotations"],
            json!({"dirty": true, "dirtyPaths": ["src/main.rs"]})
        );
    }

    #[test]
    fn subjects_are_checked() {
        let ctx = ci::local();
        assert!(matches!(
            provenance(ProvenanceInput::new(vec![], &ctx)),
            Err(AttestError::NoSubjects)
        ));
        let nameless = ResourceDescriptor {
            name: Some("x".into()),
            ..ResourceDescriptor::default()
        };
        assert!(matches!(
            provenance(ProvenanceInput::new(vec![nameless], &ctx)),
            Err(AttestError::SubjectWithoutDigest { name }) if name == "x"
        ));
        let a = ResourceDescriptor::file("a", &Digest::of(b"1"));
        let b = ResourceDescriptor::file("a", &Digest::of(b"2"));
        assert!(matches!(
            provenance(ProvenanceInput::new(vec![a, b], &ctx)),
            Err(AttestError::DuplicateSubject { name }) if name == "a"
        ));
    }

    #[test]
    fn file_subjects_hash_files_and_name_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"hello").unwrap();
        let subjects = file_subjects(&[&path]).unwrap();
        assert_eq!(subjects[0].name.as_deref(), Some("bin"));
        assert_eq!(subjects[0].digest, DigestSet::sha256(&Digest::of(b"hello")));
        let missing = dir.path().join("nope");
        assert!(matches!(
            file_subjects(&[&missing]),
            Err(AttestError::ReadArtifact { path, .. }) if path == missing
        ));
    }

    #[test]
    fn vsa_serializes_spec_field_names() {
        let summary = VerificationSummary {
            verifier: Verifier {
                id: "https://custody.dev/verifier".into(),
                version: BTreeMap::from([("custody".into(), "0.1.0".into())]),
            },
            time_verified: Some(Timestamp::from_unix(0)),
            resource_uri: "oci://registry/app".into(),
            policy: ResourceDescriptor {
                uri: Some("https://example.com/policy.json".into()),
                ..ResourceDescriptor::default()
            },
            input_attestations: None,
            verification_result: VerificationResult::Passed,
            verified_levels: vec!["SLSA_BUILD_LEVEL_2".into()],
            dependency_levels: None,
            slsa_version: Some("1.0".into()),
        };
        let st = verification_summary(
            vec![ResourceDescriptor::file("app", &Digest::of(b"x"))],
            summary,
        )
        .unwrap();
        let value = serde_json::to_value(&st).unwrap();
        assert_eq!(value["predicateType"], PREDICATE_SLSA_VSA_V1);
        assert_eq!(value["predicate"]["verificationResult"], "PASSED");
        assert_eq!(value["predicate"]["timeVerified"], "1970-01-01T00:00:00Z");
        assert_eq!(value["predicate"]["resourceUri"], "oci://registry/app");
        let back: Statement<VerificationSummary> = serde_json::from_value(value).unwrap();
        assert_eq!(back, st);
    }

    #[test]
    fn github_provenance_matches_github_shape() {
        let env = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "octo/hello"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"),
            (
                "GITHUB_WORKFLOW_REF",
                "octo/hello/.github/workflows/r.yml@refs/heads/main",
            ),
            ("GITHUB_RUN_ID", "1"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_EVENT_NAME", "push"),
            ("RUNNER_ENVIRONMENT", "github-hosted"),
        ];
        let ctx = ci::detect(env.as_slice()).unwrap();
        let src = source();
        let mut input =
            ProvenanceInput::new(vec![ResourceDescriptor::file("a", &Digest::of(b"a"))], &ctx);
        input.source = Some(&src);
        let value = serde_json::to_value(provenance(input).unwrap()).unwrap();
        let bd = &value["predicate"]["buildDefinition"];
        assert_eq!(bd["buildType"], ci::GITHUB_BUILD_TYPE);
        assert_eq!(
            bd["resolvedDependencies"][0]["uri"],
            "git+https://github.com/octo/hello@refs/heads/main"
        );
        assert_eq!(
            value["predicate"]["runDetails"]["metadata"]["invocationId"],
            "https://github.com/octo/hello/actions/runs/1/attempts/1"
        );
    }
}
