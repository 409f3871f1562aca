//! The one-shot pipeline a CI step runs: source record ► SBOM ► provenance ► sign ► push ►
//! attach ► verify, then the tag.
//!
//! Order matters for re-runs: blobs and the manifest go up by digest, the signature and the
//! attestations are attached, and only then is the tag written. A run that dies half-way leaves
//! nothing that looks finished (no tag), and running it again finishes the job: the push is
//! deterministic, so it finds what is already there and the tag lands on the same digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence::attach::{self, AttachOptions, AttestInput, LegacyTags, SignArtifactError};
use crate::evidence::attest::{self, AttestError, ProvenanceInput, ResourceDescriptor, Timestamp};
use crate::evidence::ci::{self, CiContext};
use crate::evidence::sbom::{self, Artifact, SbomOptions, SpecVersion};
use crate::evidence::sign::Signer;
use crate::evidence::source::{self, DirtyPolicy, SourceOptions, SourceRecord};
use crate::foundation::digest::Digest;
use crate::foundation::oci::Descriptor;
use crate::foundation::reference::{Reference, Tag};
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

/// The manifest annotation retention (`prune --keep-last`) orders releases by.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

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
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Sign(e) => e.hint(),
            Error::Transfer(e) => e.hint(),
            Error::Attach(e) => e.hint(),
            Error::Store(e) => e.hint(),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            Error::Sign(e) => e.is_refusal(),
            Error::Transfer(e) => e.is_refusal(),
            Error::Attach(e) => e.is_refusal(),
            Error::Store(e) => e.is_refusal(),
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
pub struct Prepared {
    pub source: Option<SourceRecord>,
    pub subject: Descriptor,
    artifacts: Vec<Artifact>,
    file_subjects: Vec<ResourceDescriptor>,
}

/// Runs the pipeline up to (not including) the tag: everything is attached by digest. The
/// caller verifies what was published, then calls [`finish`] to write the tag.
pub fn publish(
    store: &dyn Store,
    signer: &dyn Signer,
    ci: &CiContext,
    request: &ReleaseRequest,
) -> Result<ReleaseOutcome, Error> {
    let prepared = prepare(store, ci, request)?;
    attach_evidence(store, signer, ci, request, prepared)
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
pub fn prepare(
    store: &dyn Store,
    ci: &CiContext,
    request: &ReleaseRequest,
) -> Result<Prepared, Error> {
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
            (fetched.descriptor, vec![artifact], Vec::new())
        }
    };
    Ok(Prepared {
        source,
        subject,
        artifacts,
        file_subjects,
    })
}

/// Builds the SBOM and provenance of a prepared subject, signs them and attaches them with a
/// signature of the subject.
pub fn attach_evidence(
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
    } = prepared;
    let repository = request.destination.repository();
    let oci_subject = attest::oci_subject(repository.clone(), &subject.digest);

    let (mut bom, lockfiles) = build_sbom(
        &artifacts,
        &request.source_dir,
        &request.lockfiles,
        source.clone(),
        request.sbom_spec,
        request.now.clone(),
    )?;
    if let Subject::Image(image) = &request.subject {
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
                reference: image.to_string(),
                source: Box::new(e),
            })?;
        sbom::image::merge_into(&mut bom, contents);
    }
    let bom_bytes = bom.to_json_bytes()?;
    let bom_value: serde_json::Value =
        serde_json::from_slice(&bom_bytes).expect("the SBOM was just serialised");
    let sbom_statement = attest::sbom_statement(vec![oci_subject.clone()], bom_value)?;

    let mut subjects = vec![oci_subject.clone()];
    subjects.extend(file_subjects);
    let mut input = ProvenanceInput::new(subjects, ci);
    input.source = source.as_ref();
    input.sbom = Some(ResourceDescriptor {
        media_type: Some(attest::MEDIA_TYPE_CYCLONEDX_JSON.to_owned()),
        ..ResourceDescriptor::file(
            "sbom.cdx.json",
            &crate::foundation::digest::Digest::of(&bom_bytes),
        )
    });
    input.finished_on = Some(request.now.clone());
    let provenance = attest::provenance(input)?;

    let options = AttachOptions {
        legacy_tags: request.legacy_tags,
        repository: Some(repository.clone()),
        created: Some(request.now.clone()),
        ..Default::default()
    };
    let mut referrers = Vec::new();
    let mut legacy_tags = Vec::new();
    let signed = attach::sign_artifact(store, &subject, signer, &options)?;
    let provenance = attach::attest_artifact(
        store,
        &subject,
        AttestInput::Statement(provenance.to_bytes()?),
        signer,
        &options,
    )?;
    let sbom = attach::attest_artifact(
        store,
        &subject,
        AttestInput::Statement(sbom_statement.to_bytes()?),
        signer,
        &options,
    )?;
    for (kind, attached) in [
        (AttachedKind::Signature, signed),
        (AttachedKind::Provenance, provenance),
        (AttachedKind::Sbom, sbom),
    ] {
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

    Ok(ReleaseOutcome {
        pinned: request.destination.pinned(&subject.digest),
        digest: subject.digest,
        tag: None,
        tag_outcome: None,
        builder_id: ci.builder_id.clone(),
        local_build: ci.platform == ci::Platform::Local,
        sbom_components: bom.components.len(),
        lockfiles,
        referrers,
        legacy_tags,
        source,
        already_released: false,
    })
}

/// The outcome of a release whose subject already carried the verified set: `referrers` are
/// the ones found, nothing was attached.
pub fn already_released(
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
    }
}

/// Writes the release tag, last, once the caller has verified what was published.
pub fn finish(
    store: &dyn Store,
    outcome: &mut ReleaseOutcome,
    tag: &Tag,
    policy: TagPolicy,
) -> Result<(), Error> {
    let fetched = store.get_manifest(&outcome.digest)?;
    outcome.tag_outcome = Some(transfer::write_tag(store, tag, &fetched, policy)?);
    outcome.tag = Some(tag.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_tags() {
        assert_eq!(version_from_tag("v1.2.3"), "1.2.3");
        assert_eq!(version_from_tag("release-7"), "release-7");
        assert_eq!(version_from_tag("v"), "v");
    }
}
