//! The one-shot pipeline a CI step runs: source record ► SBOM ► provenance ► sign ► push ►
//! attach ► verify, then the tag.
//!
//! Order matters for re-runs: blobs and the manifest go up by digest, the signature and the
//! attestations are attached, and only then is the tag written. A run that dies half-way leaves
//! nothing that looks finished (no tag), and running it again finishes the job: the push is
//! deterministic, so it finds what is already there and the tag lands on the same digest.
//!
//! "Verify, then tag" is in the types: [`tag`] takes the [`Verified`] that only
//! [`verify::verdict`] makes, so what is tagged is always the digest that verified.
//!
//! ```compile_fail
//! // A report is not a verification: tagging needs the `Verified` value.
//! use custody::workflows::release::{self, ReleaseOutcome};
//! fn tag_unverified(
//!     store: &dyn custody::storage::store::Store,
//!     outcome: &mut ReleaseOutcome,
//!     report: &custody::decisions::verify::VerifyReport,
//!     tag: &custody::foundation::reference::Tag,
//! ) {
//!     let _ = release::tag(store, report, outcome, tag, Default::default());
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decisions::policy::{self, Pattern, Policy, Scope, SignerKind, TrustedSigner};
use crate::decisions::verify::report::{Check, CheckKind, ReferrerKind};
use crate::decisions::verify::{self, Verdict, Verified, VerifyOptions, VerifyReport};
use crate::evidence::attach::{
    self, AttachOptions, AttestInput, LegacyTags, SignArtifactError, recursive,
};
use crate::evidence::attest::{self, AttestError, ProvenanceInput, ResourceDescriptor, Timestamp};
use crate::evidence::buildkit;
use crate::evidence::ci::{self, CiContext};
use crate::evidence::sbom::{self, Artifact, SbomOptions, SpecVersion};
use crate::evidence::sign::verify::{SubjectMatcher, TlogRequirement, TrustedRoot};
use crate::evidence::sign::{ChosenSigner, Signer};
use crate::evidence::source::{self, DirtyPolicy, SourceOptions, SourceRecord};
use crate::foundation::digest::Digest;
use crate::foundation::glob::PatternError;
use crate::foundation::oci::{Descriptor, Manifest, is_index_media_type};
use crate::foundation::reference::{Reference, Tag};
use crate::storage::store::elsewhere::{self, Lookup};
use crate::storage::store::{self, Store};
use crate::storage::transfer::{self, PushOptions, TagOutcome, TagPolicy};

/// What to release.
#[derive(Clone, Debug)]
pub enum Subject {
    /// Files pushed as one OCI artifact.
    Files(Vec<PathBuf>),
    /// An image a container build already pushed; it is attested where it is.
    Image(Reference),
}

/// The manifest annotation retention (`prune --keep-last`) orders releases by (defined once,
/// in `oci`).
pub use crate::foundation::oci::ANNOTATION_CREATED;

/// Whether a release records the git commit it was built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceMode {
    /// Record the work tree's commit; refuse outside git.
    #[default]
    Git,
    /// Release without a source record (outside git); the provenance says so.
    Untracked,
}

/// Everything a release needs besides the store and the signer.
#[derive(Clone, Debug)]
pub struct ReleaseRequest {
    pub subject: Subject,
    /// Where the artifact goes (ignored for images, which stay where they are). The tag, if
    /// any, is written last.
    pub destination: Reference,
    /// A folder inside the work tree the artifact was built from.
    pub source_dir: PathBuf,
    /// Lockfiles for the SBOM; empty means those found at the top of the work tree.
    pub lockfiles: Vec<PathBuf>,
    pub dirty: DirtyPolicy,
    pub source_mode: SourceMode,
    /// Manifest annotations of the pushed files.
    pub annotations: BTreeMap<String, String>,
    /// `org.opencontainers.image.created` unless the annotations set it (`SOURCE_DATE_EPOCH`);
    /// `None` takes the commit's time, or without a source the files' newest modification, so
    /// a re-run pushes the same manifest.
    pub created: Option<Timestamp>,
    pub sbom_spec: SpecVersion,
    pub legacy_tags: LegacyTags,
    pub tag_policy: TagPolicy,
    pub artifact_type: Option<String>,
    pub now: Timestamp,
    /// Referrers fetched and verified at once by the self-check (0: the default pool).
    pub jobs: usize,
    /// What to do with BuildKit's unsigned statements in an image index.
    pub buildkit: BuildkitStatements,
    /// Where the signature, provenance and SBOM go when not beside the artifact; the
    /// self-check reads them there.
    pub attestations: Lookup,
}

/// What a release of an image index does with BuildKit's attestation manifests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuildkitStatements {
    /// Leave them as they are: listed as unsigned evidence, never trusted.
    #[default]
    Leave,
    /// Check that each statement is about the platform manifest it is listed for, then sign it
    /// as given and attach it to that manifest (all or none: one that is about something else
    /// refuses the release before anything is signed).
    Adopt,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot record the source commit")]
    Source(#[from] source::SourceError),
    #[error("cannot build the SBOM")]
    Sbom(#[from] sbom::SbomError),
    #[error("cannot build the attestations")]
    Attest(#[from] AttestError),
    #[error("cannot sign and attach")]
    Sign(#[from] SignArtifactError),
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error(transparent)]
    Attach(#[from] attach::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot catalog the contents of image {reference}")]
    ImageSbom {
        reference: String,
        #[source]
        source: Box<sbom::image::ImageError>,
    },
    #[error(
        "{reference} is an image to attest in place; it cannot be released to another repository {destination}"
    )]
    ImageElsewhere {
        reference: String,
        destination: String,
    },
    #[error("a release with --no-source needs a tag in --to: there is no commit to name it after")]
    UntrackedWithoutTag,
    #[error(
        "keyless release needs --trusted-root (or a signing config) to check what it published"
    )]
    NoTrustedRoot,
    #[error("cannot use the builder id {builder_id:?} as a pattern")]
    BuilderId {
        builder_id: String,
        #[source]
        source: PatternError,
    },
    #[error("cannot verify what was released at {pinned}")]
    Verify {
        pinned: String,
        #[source]
        source: verify::Error,
    },
    #[error("{pinned} is not what was verified ({verified}); it is not tagged")]
    NotVerified { pinned: String, verified: String },
    #[error("cannot tag {pinned}")]
    Tag {
        pinned: String,
        #[source]
        source: transfer::Error,
    },
    #[error("cannot release every manifest of {reference}")]
    Recursive {
        reference: String,
        #[source]
        source: Box<recursive::Error>,
    },
    #[error("cannot adopt the buildkit attestations of {reference}")]
    Adopt {
        reference: String,
        #[source]
        source: Box<buildkit::AdoptError>,
    },
    #[error(
        "{reference} is a single manifest; BuildKit keeps its attestations in an image index, so there is nothing to adopt"
    )]
    AdoptNotAnIndex { reference: String },
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Sign(e) => e.hint(),
            Error::Transfer(e) => e.hint(),
            Error::Attach(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::Verify { source, .. } => source.hint(),
            Error::Tag { source, .. } => source.hint(),
            Error::Recursive { source, .. } => source.hint(),
            Error::UntrackedWithoutTag => Some("pass --to REPOSITORY:TAG".into()),
            Error::Adopt { .. } | Error::AdoptNotAnIndex { .. } => Some(
                "nothing was signed; release without --adopt-buildkit to leave BuildKit's statements unsigned"
                    .into(),
            ),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            Error::Sign(e) => e.is_refusal(),
            Error::Transfer(e) => e.is_refusal(),
            Error::Attach(e) => e.is_refusal(),
            Error::Store(e) => e.is_refusal(),
            Error::Verify { source, .. } => source.is_refusal(),
            Error::Tag { source, .. } => source.is_refusal(),
            Error::Recursive { source, .. } => source.is_refusal(),
            // A statement about another artifact is refused, as a lie would be.
            Error::Adopt { source, .. } => !matches!(
                **source,
                buildkit::AdoptError::NoAttestations | buildkit::AdoptError::Read { .. }
            ),
            _ => false,
        }
    }
}

/// One referrer the release attached.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attached {
    pub kind: AttachedKind,
    pub digest: Digest,
    pub predicate_type: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachedKind {
    Signature,
    Provenance,
    Sbom,
}

/// One manifest an image index lists, released with evidence of its own.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformRelease {
    pub digest: Digest,
    /// `os/arch[/variant]` as the index lists it.
    pub platform: Option<String>,
    /// The index listing it.
    pub parent: Option<Digest>,
    /// Components in this platform's SBOM (0 for a nested index, which has none).
    pub sbom_components: usize,
    pub referrers: Vec<Attached>,
}

/// A BuildKit statement signed as given and attached to the platform manifest it describes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedStatement {
    /// The platform manifest it is attached to.
    pub platform: Digest,
    /// BuildKit's attestation manifest and the layer that held the statement.
    pub attestation_manifest: Digest,
    pub layer: Digest,
    pub predicate_type: String,
    /// The referrer holding the signed bundle.
    pub referrer: Digest,
}

/// What a release did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseOutcome {
    pub digest: Digest,
    pub pinned: String,
    pub tag: Option<String>,
    pub tag_outcome: Option<TagOutcome>,
    /// `None` for a release with [`SourceMode::Untracked`].
    pub source: Option<SourceRecord>,
    pub builder_id: String,
    pub local_build: bool,
    pub sbom_components: usize,
    pub lockfiles: Vec<PathBuf>,
    pub referrers: Vec<Attached>,
    pub legacy_tags: Vec<String>,
    /// The artifact already carried a verified signature, provenance and SBOM from this signer
    /// for this commit; nothing new was attached.
    pub already_released: bool,
    /// For an image index: every manifest it lists (BuildKit attestation manifests aside),
    /// each signed with its own provenance and, for an image, the SBOM of what it contains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformRelease>,
    /// BuildKit statements adopted ([`BuildkitStatements::Adopt`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<AdoptedStatement>,
}

/// Builds the SBOM of `artifacts` from the lockfiles of the work tree around `source_dir` (or
/// the ones named).
pub fn build_sbom(
    artifacts: &[Artifact],
    source_dir: &Path,
    lockfiles: &[PathBuf],
    source: Option<SourceRecord>,
    spec: SpecVersion,
    now: Timestamp,
) -> Result<(sbom::Bom, Vec<PathBuf>), sbom::SbomError> {
    let lockfiles = if lockfiles.is_empty() {
        sbom::discover_lockfiles(&workdir_root(source_dir))
    } else {
        lockfiles.to_vec()
    };
    let locks = lockfiles
        .iter()
        .map(|p| sbom::read_lockfile(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = SbomOptions::new(now);
    options.spec_version = spec;
    options.version = source
        .as_ref()
        .and_then(|s| s.tags.first())
        .map(|t| version_from_tag(t));
    options.source = source;
    Ok((sbom::generate(artifacts, &locks, &options)?, lockfiles))
}

/// `v1.2.3` → `1.2.3`; other tags as they are.
pub fn version_from_tag(tag: &str) -> String {
    match tag.strip_prefix('v') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest.to_owned(),
        _ => tag.to_owned(),
    }
}

/// The top of the work tree containing `dir`, or `dir` when it is not in one.
pub fn workdir_root(dir: &Path) -> PathBuf {
    gix::discover(dir)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_owned))
        .unwrap_or_else(|| dir.to_owned())
}

/// The tag a release gets when none is given: the version tag at HEAD, else `git-<commit>`.
pub fn default_tag(source: &SourceRecord) -> Tag {
    source
        .tags
        .iter()
        .find_map(|t| t.parse::<Tag>().ok())
        .unwrap_or_else(|| {
            let commit = source.commit.to_string();
            format!("git-{}", &commit[..commit.len().min(12)])
                .parse()
                .expect("git-<hex> is a valid tag")
        })
}

/// The subject of a release, pushed (or found) by digest, before anything is attached.
#[derive(Clone, Debug)]
struct Prepared {
    source: Option<SourceRecord>,
    subject: Descriptor,
    artifacts: Vec<Artifact>,
    file_subjects: Vec<ResourceDescriptor>,
    /// For an image index: every manifest to release, walked (and bounded) before anything
    /// is signed.
    plan: Option<recursive::Plan>,
    /// BuildKit statements to adopt, checked before anything is signed.
    adoptions: Vec<buildkit::Adoptable>,
}

/// The `created` annotation of a release: the request's, else the commit's time, else the
/// newest modification time of the files (deterministic for unchanged inputs).
fn created_of(request: &ReleaseRequest, files: &[PathBuf]) -> Option<Timestamp> {
    if let Some(t) = &request.created {
        return Some(t.clone());
    }
    if request.source_mode == SourceMode::Git
        && let Some(secs) = source::commit_time(&request.source_dir)
    {
        return Some(Timestamp::from_unix(secs));
    }
    newest_mtime(files)
}

/// The newest modification time of `files`, as a timestamp.
pub fn newest_mtime(files: &[PathBuf]) -> Option<Timestamp> {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
        .map(Timestamp::from_system_time)
}

/// Records the source and pushes the files by digest (no tag), or resolves the image.
fn prepare(store: &dyn Store, ci: &CiContext, request: &ReleaseRequest) -> Result<Prepared, Error> {
    let excluded = match &request.subject {
        Subject::Files(files) => files.clone(),
        Subject::Image(_) => Vec::new(),
    };
    let source = match request.source_mode {
        SourceMode::Git => Some(source::record(
            &request.source_dir,
            &SourceOptions {
                dirty: request.dirty,
                hints: ci.source_hints.clone(),
                exclude: excluded,
            },
        )?),
        SourceMode::Untracked => None,
    };
    let repository = request.destination.repository();
    let mut plan = None;
    let mut adoptions = Vec::new();

    // The subject: files pushed by digest (no tag yet), or an image already there.
    let (subject, artifacts, file_subjects) = match &request.subject {
        Subject::Files(files) => {
            let untagged = Reference {
                tag: None,
                ..request.destination.clone()
            };
            let mut annotations = request.annotations.clone();
            if !annotations.contains_key(ANNOTATION_CREATED)
                && let Some(created) = created_of(request, files)
            {
                annotations.insert(ANNOTATION_CREATED.to_owned(), created.to_string());
            }
            let options = PushOptions {
                artifact_type: request.artifact_type.clone(),
                annotations,
                tag_policy: request.tag_policy,
                ..Default::default()
            };
            let pushed = transfer::push_files(store, &untagged, files, &options)?;
            let descriptor = Descriptor::new(pushed.media_type, pushed.digest, pushed.size);
            let artifacts = sbom::artifacts_from_files(files)?;
            (descriptor, artifacts, attest::file_subjects(files)?)
        }
        Subject::Image(image) => {
            if image.repository() != request.destination.repository() {
                return Err(Error::ImageElsewhere {
                    reference: image.to_string(),
                    destination: request.destination.to_string(),
                });
            }
            let fetched = transfer::resolve(store, image)?;
            let artifact = Artifact {
                name: repository.clone(),
                digest: fetched.descriptor.digest.clone(),
            };
            if let Manifest::Index(index) = &fetched.manifest {
                let reference = request.destination.pinned(&fetched.descriptor.digest);
                plan = Some(
                    recursive::plan(store, &fetched.descriptor).map_err(|source| {
                        Error::Recursive {
                            reference: reference.clone(),
                            source: Box::new(source),
                        }
                    })?,
                );
                if request.buildkit == BuildkitStatements::Adopt {
                    adoptions =
                        buildkit::adoptable(store, index).map_err(|source| Error::Adopt {
                            reference,
                            source: Box::new(source),
                        })?;
                }
            } else if request.buildkit == BuildkitStatements::Adopt {
                return Err(Error::AdoptNotAnIndex {
                    reference: image.to_string(),
                });
            }
            (fetched.descriptor, vec![artifact], Vec::new())
        }
    };
    Ok(Prepared {
        source,
        subject,
        artifacts,
        file_subjects,
        plan,
        adoptions,
    })
}

/// Builds the SBOM and provenance of a prepared subject, signs them and attaches them with a
/// signature of the subject. An image index gets a signature and a provenance of its own, and
/// every manifest it lists gets its own signature, provenance and SBOM.
fn attach_evidence(
    store: &dyn Store,
    signer: &dyn Signer,
    ci: &CiContext,
    request: &ReleaseRequest,
    prepared: Prepared,
) -> Result<ReleaseOutcome, Error> {
    let Prepared {
        source,
        subject,
        artifacts,
        file_subjects,
        plan,
        adoptions: _,
    } = prepared;
    let Some(plan) = plan else {
        let contents = match request.subject {
            Subject::Files(_) => Contents::Source,
            Subject::Image(_) => Contents::Image,
        };
        let one = OneManifest {
            subject: &subject,
            artifacts: &artifacts,
            file_subjects,
            contents,
        };
        let evidence = attest_manifest(store, signer, ci, request, source.as_ref(), one)?;
        return Ok(outcome(ci, request, &subject, source, evidence, Vec::new()));
    };
    let repository = request.destination.repository();
    let mut top = None;
    let mut platforms = Vec::new();
    let mut legacy_tags: Vec<String> = Vec::new();
    for planned in &plan.manifests {
        let artifacts = [Artifact {
            name: repository.clone(),
            digest: planned.descriptor.digest.clone(),
        }];
        // An index's platforms carry their own SBOMs: verification defers to them.
        let contents = if is_index_media_type(&planned.descriptor.media_type) {
            Contents::Nothing
        } else {
            Contents::Image
        };
        let one = OneManifest {
            subject: &planned.descriptor,
            artifacts: &artifacts,
            file_subjects: Vec::new(),
            contents,
        };
        let evidence = attest_manifest(store, signer, ci, request, source.as_ref(), one)?;
        for t in &evidence.legacy_tags {
            if !legacy_tags.contains(t) {
                legacy_tags.push(t.clone());
            }
        }
        if planned.parent.is_none() {
            top = Some(evidence);
        } else {
            platforms.push(PlatformRelease {
                digest: planned.descriptor.digest.clone(),
                platform: planned.platform.clone(),
                parent: planned.parent.clone(),
                sbom_components: evidence.sbom_components,
                referrers: evidence.referrers,
            });
        }
    }
    let mut evidence = top.expect("a plan starts with the manifest named");
    evidence.legacy_tags = legacy_tags;
    evidence.sbom_components = platforms.iter().map(|p| p.sbom_components).sum();
    Ok(outcome(ci, request, &subject, source, evidence, platforms))
}

/// What goes into the SBOM of one manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contents {
    /// The source tree's lockfiles (released files).
    Source,
    /// The lockfiles and what the image at the subject's digest contains.
    Image,
    /// No SBOM: an index whose manifests carry their own.
    Nothing,
}

/// One manifest to attest.
struct OneManifest<'a> {
    subject: &'a Descriptor,
    artifacts: &'a [Artifact],
    file_subjects: Vec<ResourceDescriptor>,
    contents: Contents,
}

/// What was attached to one manifest.
struct Evidence {
    referrers: Vec<Attached>,
    legacy_tags: Vec<String>,
    sbom_components: usize,
    lockfiles: Vec<PathBuf>,
}

/// The outcome of a release that attached `evidence` to `subject` (and to `platforms`).
fn outcome(
    ci: &CiContext,
    request: &ReleaseRequest,
    subject: &Descriptor,
    source: Option<SourceRecord>,
    evidence: Evidence,
    platforms: Vec<PlatformRelease>,
) -> ReleaseOutcome {
    ReleaseOutcome {
        pinned: request.destination.pinned(&subject.digest),
        digest: subject.digest.clone(),
        tag: None,
        tag_outcome: None,
        builder_id: ci.builder_id.clone(),
        local_build: ci.platform == ci::Platform::Local,
        sbom_components: evidence.sbom_components,
        lockfiles: evidence.lockfiles,
        referrers: evidence.referrers,
        legacy_tags: evidence.legacy_tags,
        source,
        already_released: false,
        platforms,
        adopted: Vec::new(),
    }
}

/// Signs one manifest and attaches its provenance and (unless [`Contents::Nothing`]) its SBOM.
fn attest_manifest(
    store: &dyn Store,
    signer: &dyn Signer,
    ci: &CiContext,
    request: &ReleaseRequest,
    source: Option<&SourceRecord>,
    manifest: OneManifest<'_>,
) -> Result<Evidence, Error> {
    let OneManifest {
        subject,
        artifacts,
        file_subjects,
        contents,
    } = manifest;
    let repository = request.destination.repository();
    let oci_subject = attest::oci_subject(repository.clone(), &subject.digest);

    let (mut bom, lockfiles) = build_sbom(
        artifacts,
        &request.source_dir,
        &request.lockfiles,
        source.cloned(),
        request.sbom_spec,
        request.now.clone(),
    )?;
    if let (Subject::Image(image), Contents::Image) = (&request.subject, contents) {
        // What the image contains joins what its source declares, each component with the
        // layer and path it was found at. The subject's digest pins what is read.
        let pinned = Reference {
            tag: None,
            digest: Some(subject.digest.clone()),
            ..image.clone()
        };
        let options = sbom::image::ImageSbomOptions {
            spec_version: request.sbom_spec,
            platform: sbom::image::PlatformChoice::All,
            timestamp: request.now.clone(),
            serial_number: None,
        };
        let contents =
            sbom::image::sbom(store, &pinned, &options).map_err(|e| Error::ImageSbom {
                reference: pinned.to_string(),
                source: Box::new(e),
            })?;
        sbom::image::merge_into(&mut bom, contents);
    }
    let bom_bytes = bom.to_json_bytes()?;
    let with_sbom = contents != Contents::Nothing;

    let mut subjects = vec![oci_subject.clone()];
    subjects.extend(file_subjects);
    let mut input = ProvenanceInput::new(subjects, ci);
    input.source = source;
    if with_sbom {
        input.sbom = Some(ResourceDescriptor {
            media_type: Some(attest::MEDIA_TYPE_CYCLONEDX_JSON.to_owned()),
            ..ResourceDescriptor::file(
                "sbom.cdx.json",
                &crate::foundation::digest::Digest::of(&bom_bytes),
            )
        });
    }
    input.finished_on = Some(request.now.clone());
    let provenance = attest::provenance(input)?;

    let options = AttachOptions {
        legacy_tags: request.legacy_tags,
        repository: Some(repository.clone()),
        created: Some(request.now.clone()),
        ..Default::default()
    };
    let elsewhere = open_elsewhere(request)?;
    let store = &elsewhere::Evidence::new(store, elsewhere.as_deref());
    let mut attached = vec![
        (
            AttachedKind::Signature,
            attach::sign_artifact(store, subject, signer, &options)?,
        ),
        (
            AttachedKind::Provenance,
            attach::attest_artifact(
                store,
                subject,
                AttestInput::Statement(provenance.to_bytes()?),
                signer,
                &options,
            )?,
        ),
    ];
    if with_sbom {
        let bom_value: serde_json::Value =
            serde_json::from_slice(&bom_bytes).expect("the SBOM was just serialised");
        let sbom_statement = attest::sbom_statement(vec![oci_subject], bom_value)?;
        attached.push((
            AttachedKind::Sbom,
            attach::attest_artifact(
                store,
                subject,
                AttestInput::Statement(sbom_statement.to_bytes()?),
                signer,
                &options,
            )?,
        ));
    }
    let mut referrers = Vec::new();
    let mut legacy_tags = Vec::new();
    for (kind, attached) in attached {
        for legacy in &attached.legacy {
            if !legacy_tags.contains(&legacy.tag) {
                legacy_tags.push(legacy.tag.clone());
            }
        }
        referrers.push(Attached {
            kind,
            digest: attached.referrer.digest,
            predicate_type: attached.predicate_type,
        });
    }
    Ok(Evidence {
        referrers,
        legacy_tags,
        sbom_components: if with_sbom { bom.components.len() } else { 0 },
        lockfiles,
    })
}

/// The attestations repository the request names, opened; `None` when the evidence goes
/// beside the artifact.
fn open_elsewhere(request: &ReleaseRequest) -> Result<Option<Box<dyn Store>>, Error> {
    Ok(match &request.attestations.repository {
        Some(r) => Some(r.open(&request.attestations.store_options)?),
        None => None,
    })
}

/// Signs each BuildKit statement as given and attaches it to the platform manifest it
/// describes.
fn adopt(
    store: &dyn Store,
    signer: &dyn Signer,
    request: &ReleaseRequest,
    adoptions: &[buildkit::Adoptable],
) -> Result<Vec<AdoptedStatement>, Error> {
    let options = AttachOptions {
        legacy_tags: request.legacy_tags,
        repository: Some(request.destination.repository()),
        created: Some(request.now.clone()),
        ..Default::default()
    };
    let elsewhere = open_elsewhere(request)?;
    let store = &elsewhere::Evidence::new(store, elsewhere.as_deref());
    adoptions
        .iter()
        .map(|a| {
            let attached = attach::attest_artifact(
                store,
                &a.platform,
                AttestInput::Statement(a.statement.clone()),
                signer,
                &options,
            )?;
            Ok(AdoptedStatement {
                platform: a.platform.digest.clone(),
                attestation_manifest: a.manifest.clone(),
                layer: a.layer.clone(),
                predicate_type: attached.predicate_type,
                referrer: attached.referrer.digest,
            })
        })
        .collect()
}

/// The outcome of a release whose subject already carried the verified set: `referrers` are
/// the ones found, nothing was attached.
fn already_released(
    ci: &CiContext,
    request: &ReleaseRequest,
    prepared: Prepared,
    referrers: Vec<Attached>,
) -> ReleaseOutcome {
    ReleaseOutcome {
        pinned: request.destination.pinned(&prepared.subject.digest),
        digest: prepared.subject.digest,
        tag: None,
        tag_outcome: None,
        builder_id: ci.builder_id.clone(),
        local_build: ci.platform == ci::Platform::Local,
        sbom_components: 0,
        lockfiles: Vec::new(),
        referrers,
        legacy_tags: Vec::new(),
        source: prepared.source,
        already_released: true,
        platforms: Vec::new(),
        adopted: Vec::new(),
    }
}

/// The policy and trusted root a release checks itself against before the tag.
#[derive(Clone, Debug)]
pub struct SelfCheck {
    pub policy: Policy,
    pub trusted_root: TrustedRoot,
}

/// How a release ended, short of an error.
#[derive(Debug)]
#[must_use]
pub enum Released {
    /// Published, verified with the checks a consumer runs, and (files) tagged.
    Verified {
        outcome: Box<ReleaseOutcome>,
        verified: Box<Verified>,
    },
    /// Published by digest, but what was published does not verify: nothing was tagged.
    Refused {
        outcome: Box<ReleaseOutcome>,
        report: Box<VerifyReport>,
    },
}

/// Refuses a request that could never be tagged, before anything is pushed: files without a
/// source record have no commit to name the tag after, so the destination must carry one.
pub fn check_request(request: &ReleaseRequest) -> Result<(), Error> {
    match (
        &request.subject,
        request.source_mode,
        &request.destination.tag,
    ) {
        (Subject::Files(_), SourceMode::Untracked, None) => Err(Error::UntrackedWithoutTag),
        _ => Ok(()),
    }
}

/// Releases `request` signed by `signer`: publishes by digest, verifies what was published
/// against the signer that released it ([`self_check`]), and only then writes the tag.
pub fn release(
    store: &dyn Store,
    signer: &ChosenSigner,
    ci: &CiContext,
    request: &ReleaseRequest,
) -> Result<Released, Error> {
    check_request(request)?;
    let check = self_check(signer, ci, request)?;
    release_checked(store, signer, ci, request, &check)
}

/// [`release`] against a given self-check: publish, verify, then tag what verified.
pub fn release_checked(
    store: &dyn Store,
    signer: &dyn Signer,
    ci: &CiContext,
    request: &ReleaseRequest,
    check: &SelfCheck,
) -> Result<Released, Error> {
    check_request(request)?;
    let mut prepared = prepare(store, ci, request)?;
    let adoptions = std::mem::take(&mut prepared.adoptions);
    let options = VerifyOptions {
        trusted_root: check.trusted_root.clone(),
        jobs: request.jobs,
        attestations: request.attestations.clone(),
        ..VerifyOptions::default()
    };
    // A re-run of a finished release: the artifact already carries the verified set from this
    // signer for this commit (on every platform of an index), so attaching another would only
    // add copies.
    let previous = verify::artifact(
        store,
        &request
            .destination
            .with_digest(prepared.subject.digest.clone()),
        &check.policy,
        &options,
    )
    .ok()
    .filter(|r| {
        r.verified
            && same_commit(r, prepared.source.as_ref())
            && covered_only_by_index(r).is_empty()
    });
    let mut outcome = match previous {
        Some(previous) => already_released(ci, request, prepared, verified_referrers(&previous)),
        None => attach_evidence(store, signer, ci, request, prepared)?,
    };
    // BuildKit's statements were checked before anything was signed; signing the same
    // statement again with a key finds the referrer already there.
    outcome.adopted = adopt(store, signer, request, &adoptions)?;
    // Verify what was just published with the checks a consumer runs, before the tag.
    let published = request.destination.with_digest(outcome.digest.clone());
    let verdict = verify::verdict(store, &published, &check.policy, &options).map(every_platform);
    let verified = match verdict {
        Ok(Verdict::Verified(verified)) => verified,
        Ok(Verdict::Refused(report)) => {
            return Ok(Released::Refused {
                outcome: Box::new(outcome),
                report,
            });
        }
        Err(source) => {
            return Err(Error::Verify {
                pinned: outcome.pinned,
                source,
            });
        }
    };
    if let Subject::Files(_) = request.subject {
        let name = match (&request.destination.tag, &outcome.source) {
            (Some(t), _) => t.clone(),
            (None, Some(source)) => default_tag(source),
            (None, None) => return Err(Error::UntrackedWithoutTag),
        };
        tag(store, &verified, &mut outcome, &name, request.tag_policy)?;
    }
    Ok(Released::Verified {
        outcome: Box::new(outcome),
        verified,
    })
}

/// Writes the release tag, last, on the digest that verified. `verified` must be the
/// verification of the outcome's own repository and digest.
pub fn tag(
    store: &dyn Store,
    verified: &Verified,
    outcome: &mut ReleaseOutcome,
    tag: &Tag,
    policy: TagPolicy,
) -> Result<(), Error> {
    if verified.pinned() != outcome.pinned {
        return Err(Error::NotVerified {
            pinned: outcome.pinned.clone(),
            verified: verified.pinned().to_owned(),
        });
    }
    let failed = |source| Error::Tag {
        pinned: outcome.pinned.clone(),
        source,
    };
    let fetched = store
        .get_manifest(verified.digest())
        .map_err(|e| failed(e.into()))?;
    let written = transfer::write_tag(store, tag, &fetched, policy).map_err(failed)?;
    outcome.tag_outcome = Some(written);
    outcome.tag = Some(tag.to_string());
    Ok(())
}

/// The policy a release checks itself against: the signer that released it, a provenance from
/// this builder with the commit, and an SBOM. A keyless release trusts its token's issuer;
/// consumers pin the exact identity in their own policy.
pub fn self_check(
    signer: &ChosenSigner,
    ci: &CiContext,
    request: &ReleaseRequest,
) -> Result<SelfCheck, Error> {
    let (kind, trusted_root) = match signer {
        ChosenSigner::Key(k) => (SignerKind::Key(k.public_key()), TrustedRoot::empty()),
        ChosenSigner::Keyless { claims, .. } => (
            SignerKind::Identity {
                issuer: claims.issuer.clone(),
                subject: SubjectMatcher::Regex(regex::Regex::new("^.+$").expect("valid")),
            },
            signer.trusted_root().cloned().ok_or(Error::NoTrustedRoot)?,
        ),
    };
    // Builder ids are URIs without `*`, so the pattern matches exactly this one.
    let builder = Pattern::parse(&ci.builder_id).map_err(|source| Error::BuilderId {
        builder_id: ci.builder_id.clone(),
        source,
    })?;
    let scope = Scope {
        name: "release self-check".into(),
        repositories: vec![Pattern::parse("**").expect("a valid pattern")],
        signers: vec![TrustedSigner {
            name: "release signer".into(),
            kind,
        }],
        threshold: 1,
        key_tlog: TlogRequirement::Skip,
        attestations: Vec::new(),
        signature_predicate_types: Vec::new(),
        provenance: Some(policy::ProvenanceRules {
            required: true,
            builders: vec![policy::BuilderRule {
                id: builder,
                level: None,
            }],
            require_commit: request.source_mode == SourceMode::Git,
            allow_dirty: request.dirty == DirtyPolicy::Allow,
            ..Default::default()
        }),
        sbom: Some(policy::SbomRules {
            required: true,
            signers: None,
        }),
        // The consumer's policy decides on vulnerabilities and sources; the self-check is
        // about the chain of custody.
        vulnerabilities: None,
        sources: None,
        trust: None,
        attestations_repository: None,
    };
    Ok(SelfCheck {
        policy: Policy {
            scopes: vec![scope],
            source: "release self-check".into(),
            digest: None,
        },
        trusted_root,
    })
}

/// The platforms of a verified index that passed only because the index covers them, not on
/// their own signature, provenance and SBOM.
fn covered_only_by_index(report: &VerifyReport) -> Vec<String> {
    report
        .artifact
        .platforms
        .iter()
        .filter(|p| {
            p.checks
                .iter()
                .any(|c| c.kind == CheckKind::Platform && c.name == verify::COVERED_BY_INDEX)
        })
        .map(|p| {
            p.platform
                .clone()
                .or_else(|| p.digest.as_ref().map(Digest::to_string))
                .unwrap_or_default()
        })
        .collect()
}

/// A release of an index verifies every platform on its own evidence: a verified index whose
/// platforms are only covered by it is refused, with a check naming them.
fn every_platform(verdict: Verdict) -> Verdict {
    let Verdict::Verified(verified) = verdict else {
        return verdict;
    };
    let covered = covered_only_by_index(verified.report());
    if covered.is_empty() {
        return Verdict::Verified(verified);
    }
    let mut report = verified.into_report();
    report.artifact.checks.push(
        Check::fail(CheckKind::Platform, "every platform released")
            .expected("each platform manifest signed, with a provenance and an SBOM of its own")
            .found(format!("covered only by the index: {}", covered.join(", ")))
            .hint("release the index again: each platform gets its own evidence"),
    );
    report.artifact.verified = false;
    report.verified = false;
    Verdict::Refused(Box::new(report))
}

/// Whether a verified report's provenance names the commit being released (or, without a
/// source, no commit).
fn same_commit(report: &VerifyReport, source: Option<&SourceRecord>) -> bool {
    let expected = source.map_or_else(|| "none".to_owned(), |s| s.commit.to_string());
    report
        .artifact
        .referrers
        .iter()
        .filter(|r| r.trusted)
        .flat_map(|r| &r.checks)
        .chain(&report.artifact.checks)
        .any(|c| c.kind == CheckKind::Commit && c.found.as_deref() == Some(expected.as_str()))
}

/// The trusted signature, provenance and SBOM referrers a report found, in the order a
/// release attaches them.
fn verified_referrers(report: &VerifyReport) -> Vec<Attached> {
    let mut found: Vec<Attached> = report
        .artifact
        .referrers
        .iter()
        .filter(|r| r.trusted && r.kind == ReferrerKind::Bundle)
        .filter_map(|r| {
            let predicate = r.predicate_type.clone();
            let kind = match predicate.as_deref() {
                None => AttachedKind::Signature,
                Some(p) if p.contains("cosign/sign") => AttachedKind::Signature,
                Some(p) if p.contains("slsa.dev/provenance") => AttachedKind::Provenance,
                Some(p) if p.contains("cyclonedx") => AttachedKind::Sbom,
                Some(_) => return None,
            };
            Some(Attached {
                kind,
                digest: r.manifest.clone(),
                predicate_type: predicate.unwrap_or_default(),
            })
        })
        .collect();
    found.sort_by_key(|a| match a.kind {
        AttachedKind::Signature => 0,
        AttachedKind::Provenance => 1,
        AttachedKind::Sbom => 2,
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::sign::KeySigner;
    use crate::evidence::sign::keys::SigningKey;
    use crate::storage::store::layout::LayoutStore;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: LayoutStore,
        request: ReleaseRequest,
        signer: ChosenSigner,
    }

    /// One file released without a source record to `oci:<dir>:v1`, signed with a new key.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.bin");
        std::fs::write(&file, b"the artifact").unwrap();
        let destination: Reference = format!("oci:{}:v1", dir.path().join("store").display())
            .parse()
            .unwrap();
        let store = LayoutStore::open_or_create(destination.layout_path().unwrap()).unwrap();
        let now = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        let request = ReleaseRequest {
            subject: Subject::Files(vec![file]),
            destination,
            source_dir: dir.path().to_owned(),
            lockfiles: Vec::new(),
            dirty: DirtyPolicy::Refuse,
            source_mode: SourceMode::Untracked,
            annotations: BTreeMap::new(),
            created: Some(now.clone()),
            sbom_spec: SpecVersion::V1_6,
            legacy_tags: LegacyTags::Skip,
            tag_policy: TagPolicy::Immutable,
            artifact_type: None,
            now,
            jobs: 0,
            buildkit: BuildkitStatements::Leave,
            attestations: Lookup::default(),
        };
        let signer = ChosenSigner::Key(KeySigner::new(SigningKey::generate_p256().unwrap()));
        Fixture {
            _dir: dir,
            store,
            request,
            signer,
        }
    }

    fn v1(store: &LayoutStore) -> Option<Digest> {
        store
            .get_tagged(&"v1".parse().unwrap())
            .unwrap()
            .map(|m| m.descriptor.digest)
    }

    #[test]
    fn a_release_that_verifies_is_tagged_last() {
        let f = fixture();
        let ci = ci::local();
        let Released::Verified { outcome, verified } =
            release(&f.store, &f.signer, &ci, &f.request).unwrap()
        else {
            panic!("the release did not verify against its own signer");
        };
        assert_eq!(outcome.tag.as_deref(), Some("v1"));
        assert_eq!(outcome.tag_outcome, Some(TagOutcome::Created));
        assert_eq!(verified.digest(), &outcome.digest);
        assert_eq!(v1(&f.store).as_ref(), Some(verified.digest()));
        assert_eq!(outcome.referrers.len(), 3);
    }

    #[test]
    fn a_release_that_does_not_verify_is_published_by_digest_and_not_tagged() {
        let f = fixture();
        let ci = ci::local();
        // The self-check trusts another key than the one that signs.
        let stranger = ChosenSigner::Key(KeySigner::new(SigningKey::generate_p256().unwrap()));
        let check = self_check(&stranger, &ci, &f.request).unwrap();
        let Released::Refused { outcome, report } =
            release_checked(&f.store, &f.signer, &ci, &f.request, &check).unwrap()
        else {
            panic!("a release signed by an untrusted key verified");
        };
        assert!(!report.verified);
        assert!(
            report
                .failures()
                .iter()
                .any(|c| c.kind == CheckKind::Threshold),
            "{:?}",
            report.failures()
        );
        assert_eq!(outcome.tag, None);
        assert_eq!(v1(&f.store), None, "nothing was tagged");
        // Everything else went up by digest: a fixed re-run finishes the job.
        assert!(f.store.get_manifest(&outcome.digest).is_ok());
    }

    #[test]
    fn a_verification_of_something_else_tags_nothing() {
        let f = fixture();
        let ci = ci::local();
        let Released::Verified {
            mut outcome,
            verified,
        } = release(&f.store, &f.signer, &ci, &f.request).unwrap()
        else {
            panic!("the release did not verify");
        };
        outcome.pinned = "oci:elsewhere@sha256:00".into();
        let err = tag(
            &f.store,
            &verified,
            &mut outcome,
            &"v2".parse().unwrap(),
            TagPolicy::Immutable,
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotVerified { .. }), "{err}");
        assert!(
            f.store
                .get_tagged(&"v2".parse().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn files_without_a_source_need_a_tag_before_anything_is_pushed() {
        let mut f = fixture();
        f.request.destination.tag = None;
        let err = release(&f.store, &f.signer, &ci::local(), &f.request).unwrap_err();
        assert!(matches!(err, Error::UntrackedWithoutTag), "{err}");
    }

    #[test]
    fn platforms_only_the_index_covers_are_named() {
        let platform = |name: &str, covered: bool| {
            let mut checks = vec![Check::pass(CheckKind::Manifest, "platform manifest digest")];
            if covered {
                checks.push(Check::pass(CheckKind::Platform, verify::COVERED_BY_INDEX));
            }
            verify::ManifestReport {
                digest: None,
                media_type: String::new(),
                platform: Some(name.into()),
                verified: true,
                checks,
                referrers: Vec::new(),
                ignored: Vec::new(),
                build_level: None,
                platforms: Vec::new(),
                unsigned: Vec::new(),
            }
        };
        let mut index = platform("index", false);
        index.platforms = vec![
            platform("linux/amd64", false),
            platform("linux/arm64", true),
        ];
        let report = VerifyReport {
            reference: "r".into(),
            pinned: "r@sha256:00".into(),
            digest: None,
            scope: None,
            policy: verify::PolicyRef {
                source: "test".into(),
                digest: None,
            },
            verified: true,
            artifact: index,
            trusted_root: None,
            attestations_repository: None,
        };
        assert_eq!(covered_only_by_index(&report), ["linux/arm64"]);
    }

    #[test]
    fn versions_from_tags() {
        assert_eq!(version_from_tag("v1.2.3"), "1.2.3");
        assert_eq!(version_from_tag("release-7"), "release-7");
        assert_eq!(version_from_tag("v"), "v");
    }
}
