//! Moving artifacts in and out of stores: push files as an OCI artifact the way ORAS does, pull
//! them back checked, resolve tags, copy a manifest with every blob and referrer between any two
//! stores, and list referrers as a tree.
//!
//! Tags are immutable unless the caller says otherwise, and a tag is always written last, after
//! everything it points at is in place.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::foundation::digest::{self, Digest};
use crate::foundation::oci::{
    self, ANNOTATION_TITLE, ARTIFACT_TYPE_DEFAULT, Descriptor, ImageManifest,
    MEDIA_TYPE_DEFAULT_LAYER, MEDIA_TYPE_IMAGE_MANIFEST, Manifest,
};
use crate::foundation::reference::{Reference, Tag};
use crate::storage::store::elsewhere::Evidence;
pub use crate::storage::store::referrers::ReferrerNode;
use crate::storage::store::referrers::{self, Limits};
use crate::storage::store::{self, AtomicFile, BlobSource, FetchedManifest, ReferrersPath, Store};

/// Legacy cosign tag suffixes copied along with an artifact.
pub const LEGACY_COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// Errors of transfers: a store failed, a local file could not be used, or the content was
/// refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("two files would have the same title {title:?} in one artifact")]
    DuplicateTitle { title: String },
    #[error("layer title {title:?} would escape the output folder: {reason}")]
    UnsafeTitle { title: String, reason: String },
    #[error(
        "{reference} names an image index; pull needs a single artifact manifest (pick a platform digest)"
    )]
    NotAnArtifact { reference: String },
    #[error("reference {reference} has neither a tag nor a digest")]
    NoTagOrDigest { reference: String },
    #[error("annotation {input:?} is not key=value")]
    BadAnnotation { input: String },
    #[error("cannot write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Store(e) => e.hint(),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            Error::Store(e) => e.is_refusal(),
            Error::UnsafeTitle { .. } => true,
            _ => false,
        }
    }
}

/// What to do when a tag already names another digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TagPolicy {
    /// Refuse (the default): tags are immutable.
    #[default]
    Immutable,
    /// Move the tag; the outcome records the digest it used to name.
    Force,
}

/// What happened to a tag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum TagOutcome {
    Created,
    /// The tag already named this digest: nothing to do.
    Unchanged,
    /// `--force-tag` moved it.
    Moved {
        previous: Digest,
    },
}

/// Points `tag` at `manifest` unless it names another digest and the policy forbids moving it.
pub fn write_tag(
    store: &dyn Store,
    tag: &Tag,
    manifest: &FetchedManifest,
    policy: TagPolicy,
) -> Result<TagOutcome, Error> {
    let outcome = match store.get_tagged(tag)? {
        Some(existing) if existing.descriptor.digest == manifest.descriptor.digest => {
            return Ok(TagOutcome::Unchanged);
        }
        Some(existing) => match policy {
            TagPolicy::Immutable => {
                return Err(store::Error::TagExists {
                    repository: store.name(),
                    tag: tag.clone(),
                    existing: existing.descriptor.digest,
                    new: manifest.descriptor.digest.clone(),
                }
                .into());
            }
            TagPolicy::Force => TagOutcome::Moved {
                previous: existing.descriptor.digest,
            },
        },
        None => TagOutcome::Created,
    };
    store.tag(tag, manifest)?;
    Ok(outcome)
}

/// Refuses early when `tag` names a digest other than `digest` and may not move.
pub fn check_tag_free(
    store: &dyn Store,
    tag: &Tag,
    digest: &Digest,
    policy: TagPolicy,
) -> Result<(), Error> {
    if policy == TagPolicy::Force {
        return Ok(());
    }
    if let Some(existing) = store.get_tagged(tag)?
        && existing.descriptor.digest != *digest
    {
        return Err(store::Error::TagExists {
            repository: store.name(),
            tag: tag.clone(),
            existing: existing.descriptor.digest,
            new: digest.clone(),
        }
        .into());
    }
    Ok(())
}

/// Options of [`push_files`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// Media type of each file's layer; ORAS's default when unset.
    pub layer_media_type: Option<String>,
    pub tag_policy: TagPolicy,
}

/// The result of a push.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcome {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub pinned: String,
    pub tag: Option<String>,
    pub tag_outcome: Option<TagOutcome>,
    pub layers: Vec<Descriptor>,
}

/// Parses `key=value` annotations.
pub fn parse_annotations(items: &[String]) -> Result<BTreeMap<String, String>, Error> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(Error::BadAnnotation {
                input: item.clone(),
            }),
        })
        .collect()
}

/// Pushes files as one OCI artifact: empty config, one layer per file titled with its file
/// name. The manifest is deterministic, so pushing the same files again is a no-op.
pub fn push_files(
    store: &dyn Store,
    reference: &Reference,
    files: &[PathBuf],
    options: &PushOptions,
) -> Result<PushOutcome, Error> {
    let mut layers = Vec::with_capacity(files.len());
    let mut titles = BTreeSet::new();
    for path in files {
        let meta = std::fs::metadata(path).map_err(|source| Error::ReadFile {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(Error::NotAFile { path: path.clone() });
        }
        let title = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::NotAFile { path: path.clone() })?;
        if !titles.insert(title.clone()) {
            return Err(Error::DuplicateTitle { title });
        }
        let (digest, size) = digest::of_file(path).map_err(|source| Error::ReadFile {
            path: path.clone(),
            source,
        })?;
        let mut layer = Descriptor::new(
            options
                .layer_media_type
                .clone()
                .unwrap_or_else(|| MEDIA_TYPE_DEFAULT_LAYER.to_owned()),
            digest,
            size,
        );
        layer.annotations.insert(ANNOTATION_TITLE.to_owned(), title);
        layers.push(layer);
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: Some(
            options
                .artifact_type
                .clone()
                .unwrap_or_else(|| ARTIFACT_TYPE_DEFAULT.to_owned()),
        ),
        config: Descriptor::empty_config(),
        layers: layers.clone(),
        subject: None,
        annotations: options.annotations.clone(),
    };
    let bytes = oci::to_bytes(&manifest);
    let digest = Digest::of(&bytes);
    if let Some(tag) = &reference.tag {
        check_tag_free(store, tag, &digest, options.tag_policy)?;
    }
    store.put_blob(
        &Descriptor::empty_config(),
        BlobSource::Bytes(oci::EMPTY_JSON),
    )?;
    for (layer, path) in layers.iter().zip(files) {
        store.put_blob(layer, BlobSource::File(path))?;
    }
    let descriptor = store.put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)?;
    let tag_outcome = match &reference.tag {
        Some(tag) => {
            let fetched = FetchedManifest::check(
                "pushed manifest",
                bytes.clone(),
                Some(MEDIA_TYPE_IMAGE_MANIFEST),
                Some(&descriptor.digest),
            )?;
            Some(write_tag(store, tag, &fetched, options.tag_policy)?)
        }
        None => None,
    };
    Ok(PushOutcome {
        pinned: reference.pinned(&descriptor.digest),
        digest: descriptor.digest,
        media_type: MEDIA_TYPE_IMAGE_MANIFEST.to_owned(),
        size: bytes.len() as u64,
        tag: reference.tag.as_ref().map(|t| t.to_string()),
        tag_outcome,
        layers,
    })
}

/// Resolves a reference to its manifest: by digest when it has one (the tag is then only
/// informative), else by tag. The digest is always computed from the bytes.
pub fn resolve(store: &dyn Store, reference: &Reference) -> Result<FetchedManifest, Error> {
    if let Some(digest) = &reference.digest {
        return Ok(store.get_manifest(digest)?);
    }
    let tag = reference
        .tag
        .clone()
        .unwrap_or_else(|| "latest".parse().expect("latest is a valid tag"));
    if reference.tag.is_none() && reference.layout_path().is_some() {
        return Err(Error::NoTagOrDigest {
            reference: reference.to_string(),
        });
    }
    match store.get_tagged(&tag)? {
        Some(m) => Ok(m),
        None => Err(missing_tag(store, reference, &tag).into()),
    }
}

/// Why a tag is not there: a registry answers 404 both for an unknown repository
/// (NAME_UNKNOWN) and for an unknown tag (MANIFEST_UNKNOWN); its tag list tells them apart
/// (a repository with no tag at all reads as unknown: nothing can be resolved there either).
fn missing_tag(store: &dyn Store, reference: &Reference, tag: &Tag) -> store::Error {
    let repository = store.name();
    let known = store.tags().unwrap_or_default();
    if known.is_empty() && reference.layout_path().is_none() {
        return store::Error::NoRepository { repository };
    }
    store::Error::NoTag {
        tag: tag.to_string(),
        repository,
        known: known.iter().take(5).map(|t| t.to_string()).collect(),
        more: known.len().saturating_sub(5),
    }
}

/// A file written by [`pull`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct PulledFile {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullOutcome {
    pub digest: Digest,
    pub pinned: String,
    pub files: Vec<PulledFile>,
    /// Layers without a title, not written (as ORAS does).
    pub skipped: Vec<Digest>,
}

/// Checks a layer title and returns the relative path it may be written to.
pub fn safe_relative_path(title: &str) -> Result<PathBuf, Error> {
    let unsafe_title = |reason: &str| Error::UnsafeTitle {
        title: title.to_owned(),
        reason: reason.to_owned(),
    };
    if title.is_empty() {
        return Err(unsafe_title("it is empty"));
    }
    if title.contains('\0') || title.contains('\\') {
        return Err(unsafe_title("it contains a NUL or backslash"));
    }
    let path = Path::new(title);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_title("it contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_title("it is an absolute path"));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(unsafe_title("it names no file"));
    }
    Ok(out)
}

/// Refuses to write through a symbolic link anywhere between `dir` and `target`.
fn check_no_links(dir: &Path, relative: &Path, title: &str) -> Result<(), Error> {
    let mut current = dir.to_owned();
    for component in relative.components() {
        current.push(component);
        if let Ok(meta) = std::fs::symlink_metadata(&current)
            && meta.file_type().is_symlink()
        {
            return Err(Error::UnsafeTitle {
                title: title.to_owned(),
                reason: format!("{} is a symbolic link", current.display()),
            });
        }
    }
    Ok(())
}

/// Fetches an artifact by digest and writes its titled layers into `dir`, each checked before
/// it appears under its final name.
pub fn pull(store: &dyn Store, reference: &Reference, dir: &Path) -> Result<PullOutcome, Error> {
    let fetched = resolve(store, reference)?;
    let Manifest::Image(manifest) = &fetched.manifest else {
        return Err(Error::NotAnArtifact {
            reference: reference.to_string(),
        });
    };
    // Check every title before writing anything.
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    let mut titles = BTreeSet::new();
    for layer in &manifest.layers {
        let Some(title) = layer.title() else {
            skipped.push(layer.digest.clone());
            continue;
        };
        let relative = safe_relative_path(title)?;
        if !titles.insert(relative.clone()) {
            return Err(Error::DuplicateTitle {
                title: title.to_owned(),
            });
        }
        check_no_links(dir, &relative, title)?;
        planned.push((layer, relative));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    // A pull killed earlier left its temporary files next to the files it was writing.
    store::remove_stale_temp_files(dir);
    let mut cleaned = BTreeSet::new();
    let mut files = Vec::new();
    for (layer, relative) in planned {
        let target = dir.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
                path: parent.to_owned(),
                source,
            })?;
            if parent != dir && cleaned.insert(parent.to_owned()) {
                store::remove_stale_temp_files(parent);
            }
        }
        let mut file = AtomicFile::create(&target)?;
        store.get_blob(layer, &mut file)?;
        file.commit()?;
        files.push(PulledFile {
            path: target,
            digest: layer.digest.clone(),
            size: layer.size,
        });
    }
    Ok(PullOutcome {
        pinned: reference.pinned(&fetched.descriptor.digest),
        digest: fetched.descriptor.digest,
        files,
        skipped,
    })
}

/// Options of [`copy`].
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    pub tag_policy: TagPolicy,
    /// Only say what would be copied.
    pub dry_run: bool,
    /// Referrer manifests fetched at once (0: [`referrers::DEFAULT_JOBS`]).
    pub jobs: usize,
}

/// What a copy moved.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyOutcome {
    pub digest: Option<Digest>,
    pub pinned: Option<String>,
    pub tag: Option<String>,
    pub tag_outcome: Option<TagOutcome>,
    /// Every manifest that is (or would be) at the destination, in the order written.
    pub manifests: Vec<Descriptor>,
    pub blobs_copied: usize,
    pub blobs_mounted: usize,
    pub blobs_present: usize,
    pub bytes_copied: u64,
    pub referrers: usize,
    pub legacy_tags: Vec<String>,
    pub dry_run: bool,
}

struct Copier<'a> {
    src: &'a dyn Store,
    dst: &'a dyn Store,
    mount_from: Option<String>,
    /// Where referrers and legacy tags are read and written: the attestations repositories
    /// when set, else `src` and `dst` themselves.
    src_evidence: Evidence<'a>,
    dst_evidence: Evidence<'a>,
    evidence_mount_from: Option<String>,
    dry_run: bool,
    /// Manifests whose copy is complete (or, in a dry run, counted).
    done: Mutex<BTreeSet<Digest>>,
    /// Blobs already at a destination or copied there, by destination: every referrer shares
    /// the empty config, and it is checked once, not once per referrer.
    blobs: Mutex<BTreeSet<(String, Digest)>>,
    limits: Limits,
}

/// Whether a copy step may start the pool for the referrers below it. Only the outermost
/// step does: inside a worker everything runs in turn, so a copy never has more than
/// [`Limits::jobs`] requests in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pool {
    Free,
    InUse,
}

impl CopyOutcome {
    /// Adds what a referrer's copy moved, in listing order.
    fn absorb(&mut self, other: CopyOutcome) {
        self.manifests.extend(other.manifests);
        self.blobs_copied += other.blobs_copied;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_present += other.blobs_present;
        self.bytes_copied += other.bytes_copied;
        self.referrers += other.referrers;
    }
}

impl<'a> Copier<'a> {
    /// The source, destination and mount source for a manifest `depth` levels below the
    /// artifact: the artifact's own repositories at 0, the evidence repositories below.
    fn side(&self, depth: usize) -> (&'a dyn Store, &'a dyn Store, Option<String>) {
        if depth == 0 {
            (self.src, self.dst, self.mount_from.clone())
        } else {
            (
                self.src_evidence.target(),
                self.dst_evidence.target(),
                self.evidence_mount_from.clone(),
            )
        }
    }

    fn blob(&self, blob: &Descriptor, depth: usize, out: &mut CopyOutcome) -> Result<(), Error> {
        let (src, dst, mount_from) = self.side(depth);
        let key = (dst.name(), blob.digest.clone());
        let seen = self
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key);
        if seen || dst.blob_exists(&blob.digest)?.is_some() {
            out.blobs_present += 1;
            self.blob_done(dst, blob);
            return Ok(());
        }
        if self.dry_run {
            out.blobs_copied += 1;
            out.bytes_copied += blob.size;
            self.blob_done(dst, blob);
            return Ok(());
        }
        if let Some(from) = &mount_from
            && dst.mount_blob(blob, from)?
        {
            out.blobs_mounted += 1;
            self.blob_done(dst, blob);
            return Ok(());
        }
        if blob.size <= 4 * 1024 * 1024 {
            let mut bytes = Vec::with_capacity(blob.size as usize);
            src.get_blob(blob, &mut bytes)?;
            dst.put_blob(blob, BlobSource::Bytes(&bytes))?;
        } else {
            // Large blobs go through a checked temporary file: memory stays flat and the
            // upload can be resumed from it.
            let mut temp = tempfile::NamedTempFile::new().map_err(|source| Error::WriteFile {
                path: std::env::temp_dir(),
                source,
            })?;
            src.get_blob(blob, temp.as_file_mut())?;
            dst.put_blob(blob, BlobSource::File(temp.path()))?;
        }
        out.blobs_copied += 1;
        out.bytes_copied += blob.size;
        self.blob_done(dst, blob);
        Ok(())
    }

    /// Marks a blob as in place only once it is: a manifest is never written before its blobs.
    fn blob_done(&self, dst: &dyn Store, blob: &Descriptor) {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((dst.name(), blob.digest.clone()));
    }

    /// Copies a manifest, everything below it, then (recursively) its referrers: on the pool
    /// when `pool` is free, one referrer's whole subtree per worker, merged in listing order.
    fn manifest(
        &self,
        fetched: &FetchedManifest,
        depth: usize,
        pool: Pool,
        listed: bool,
        out: &mut CopyOutcome,
    ) -> Result<(), Error> {
        let digest = fetched.descriptor.digest.clone();
        let lock = || self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if lock().contains(&digest) {
            return Ok(());
        }
        let (src, dst, _) = self.side(depth);
        // A manifest the destination has is not pushed again, nor are its blobs checked (as
        // `oras cp` does): a copy writes blobs before their manifest, and distribution refuses
        // a manifest whose blobs it lacks. An index's child manifests are still walked, for
        // the referrers each may have gained. `listed`: the destination's referrers API listed
        // it, which it does only for manifests it has.
        let adopted = !self.dry_run
            && (listed || dst.adopt_manifest(&fetched.bytes, &fetched.descriptor.media_type)?);
        match &fetched.manifest {
            Manifest::Image(_) if adopted => {}
            Manifest::Image(m) => {
                self.blob(&m.config, depth, out)?;
                for layer in &m.layers {
                    self.blob(layer, depth, out)?;
                }
            }
            Manifest::Index(index) => {
                for child in &index.manifests {
                    if child.is_manifest_like() {
                        let child_manifest = src.get_manifest(&child.digest)?;
                        self.manifest(&child_manifest, depth, Pool::InUse, false, out)?;
                    } else if !adopted {
                        self.blob(child, depth, out)?;
                    }
                }
            }
        }
        if !self.dry_run && !adopted {
            dst.put_manifest(&fetched.bytes, &fetched.descriptor.media_type)?;
        }
        // Two workers can reach one manifest (an index child two referrers share); it is
        // written by both, which is harmless, and reported once.
        if !lock().insert(digest.clone()) {
            return Ok(());
        }
        out.manifests.push(fetched.descriptor.clone());
        if depth >= self.limits.depth {
            return Ok(());
        }
        let limits = match pool {
            Pool::Free => self.limits,
            Pool::InUse => Limits {
                jobs: 1,
                ..self.limits
            },
        };
        let found = referrers::checked(self.src_evidence.target(), &digest, &limits)?;
        if found.skipped > 0 {
            // A copy that left referrers behind would look complete and not be.
            return Err(store::Error::Refused {
                what: format!("referrers of {digest}"),
                reason: format!(
                    "{} are listed; the limit is {}",
                    found.manifests.len() + found.skipped,
                    self.limits.referrers
                ),
            }
            .into());
        }
        // One listing at the destination can stand for a question per referrer.
        let present = if found.manifests.is_empty() || self.dry_run {
            None
        } else {
            self.side(depth + 1).1.present_referrers(&digest)?
        }
        .unwrap_or_default();
        let mut failed = None;
        referrers::ordered(
            limits.jobs(),
            &found.manifests,
            |referrer| {
                let mut below = CopyOutcome::default();
                let listed = present.contains(&referrer.descriptor.digest);
                self.manifest(referrer, depth + 1, Pool::InUse, listed, &mut below)
                    .map(|()| below)
            },
            |_, copied| match copied {
                Ok(below) => {
                    out.referrers += 1;
                    out.absorb(below);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            },
        );
        failed.map_or(Ok(()), Err)
    }
}

/// The referrers of `subject` whose manifests really name it as their subject, fetched on the
/// pool within `limits`; more listed than its cap is refused. A fallback index can list
/// anything; what does not point back is ignored.
pub fn checked_referrers(
    store: &dyn Store,
    subject: &Digest,
    limits: &Limits,
) -> Result<Vec<FetchedManifest>, Error> {
    let found = referrers::checked(store, subject, limits)?;
    if found.skipped > 0 {
        return Err(store::Error::Refused {
            what: format!("referrers of {subject}"),
            reason: format!(
                "{} are listed; the limit is {}",
                found.manifests.len() + found.skipped,
                limits.referrers
            ),
        }
        .into());
    }
    Ok(found.manifests)
}

/// Copies the manifest `src_ref` names, with all its blobs, child manifests, referrers and
/// legacy cosign tags, to `dst`, keeping every digest. The destination tag is written last.
pub fn copy(
    src: &dyn Store,
    src_ref: &Reference,
    dst: &dyn Store,
    dst_ref: &Reference,
    options: &CopyOptions,
) -> Result<CopyOutcome, Error> {
    copy_with(
        Evidence::new(src, None),
        src_ref,
        Evidence::new(dst, None),
        dst_ref,
        options,
    )
}

/// [`copy`] where the source keeps its referrers and legacy tags in `src`'s attestations
/// repository and the destination gets them in `dst`'s (each beside its artifact when none is
/// set); the artifact's own content goes between the artifact repositories.
pub fn copy_with(
    src_evidence: Evidence<'_>,
    src_ref: &Reference,
    dst_evidence: Evidence<'_>,
    dst_ref: &Reference,
    options: &CopyOptions,
) -> Result<CopyOutcome, Error> {
    let (src, dst) = (src_evidence.artifact(), dst_evidence.artifact());
    let root = resolve(src, src_ref)?;
    let digest = root.descriptor.digest.clone();
    if let Some(expected) = &dst_ref.digest
        && *expected != digest
    {
        return Err(store::Error::DigestMismatch {
            what: format!("copy of {src_ref} to {dst_ref}"),
            expected: expected.clone(),
            found: digest,
        }
        .into());
    }
    let dst_tag = dst_ref.tag.clone().or_else(|| {
        if dst_ref.digest.is_none() {
            src_ref.tag.clone()
        } else {
            None
        }
    });
    if let Some(tag) = &dst_tag {
        check_tag_free(dst, tag, &digest, options.tag_policy)?;
    }
    let copier = Copier {
        src,
        dst,
        mount_from: dst.mount_source(src),
        src_evidence,
        dst_evidence,
        evidence_mount_from: dst_evidence.target().mount_source(src_evidence.target()),
        dry_run: options.dry_run,
        done: Mutex::new(BTreeSet::new()),
        blobs: Mutex::new(BTreeSet::new()),
        limits: Limits {
            jobs: options.jobs,
            ..Limits::DEFAULT
        },
    };
    let mut outcome = CopyOutcome {
        dry_run: options.dry_run,
        ..Default::default()
    };
    copier.manifest(&root, 0, Pool::Free, false, &mut outcome)?;
    for suffix in LEGACY_COSIGN_SUFFIXES {
        let tag: Tag = format!("{}.{suffix}", digest.fallback_tag())
            .parse()
            .expect("legacy cosign tags are valid tags");
        if let Some(legacy) = src_evidence.target().get_tagged(&tag)? {
            copier.manifest(&legacy, 1, Pool::Free, false, &mut outcome)?;
            if !options.dry_run {
                // Legacy signature tags are append-only images that cosign rewrites: follow
                // the source.
                write_tag(dst_evidence.target(), &tag, &legacy, TagPolicy::Force)?;
            }
            outcome.legacy_tags.push(tag.to_string());
        }
    }
    if let Some(tag) = &dst_tag {
        if !options.dry_run {
            outcome.tag_outcome = Some(write_tag(dst, tag, &root, options.tag_policy)?);
        }
        outcome.tag = Some(tag.to_string());
    }
    outcome.pinned = Some(dst_ref.pinned(&digest));
    outcome.digest = Some(digest);
    Ok(outcome)
}

/// The referrers of an artifact, as a tree.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    pub digest: Digest,
    pub pinned: String,
    pub media_type: String,
    pub path: ReferrersPath,
    pub referrers: Vec<ReferrerNode>,
}

/// The referrers of the artifact `reference` names, as a tree within `limits`; more listed
/// below one manifest than its cap is refused.
pub fn discover(
    store: &dyn Store,
    reference: &Reference,
    limits: &Limits,
) -> Result<Discovery, Error> {
    let root = resolve(store, reference)?;
    let path = store.referrers(&root.descriptor.digest)?.path;
    let (referrers, skipped) = referrers::tree(store, &root.descriptor.digest, limits)?;
    if skipped > 0 {
        return Err(store::Error::Refused {
            what: format!("referrers of {}", root.descriptor.digest),
            reason: format!(
                "{skipped} listed beyond the limit of {} per manifest",
                limits.referrers
            ),
        }
        .into());
    }
    Ok(Discovery {
        pinned: reference.pinned(&root.descriptor.digest),
        digest: root.descriptor.digest,
        media_type: root.descriptor.media_type,
        path,
        referrers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::layout::LayoutStore;

    #[test]
    fn titles_that_escape_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\b", "."] {
            assert!(
                matches!(safe_relative_path(bad), Err(Error::UnsafeTitle { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            safe_relative_path("a/b.txt").unwrap(),
            PathBuf::from("a/b.txt")
        );
        assert_eq!(safe_relative_path("./x").unwrap(), PathBuf::from("x"));
    }

    #[test]
    fn push_pull_round_trip_in_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, b"hello").unwrap();
        let reference: Reference = format!("oci:{}:v1", dir.path().join("store").display())
            .parse()
            .unwrap();
        let store = LayoutStore::open_or_create(reference.layout_path().unwrap()).unwrap();
        let pushed = push_files(
            &store,
            &reference,
            std::slice::from_ref(&file),
            &PushOptions::default(),
        )
        .unwrap();
        assert_eq!(pushed.tag_outcome, Some(TagOutcome::Created));
        let again = push_files(
            &store,
            &reference,
            std::slice::from_ref(&file),
            &PushOptions::default(),
        )
        .unwrap();
        assert_eq!(again.digest, pushed.digest, "pushing is deterministic");
        assert_eq!(again.tag_outcome, Some(TagOutcome::Unchanged));

        let out = dir.path().join("out");
        let pulled = pull(&store, &reference, &out).unwrap();
        assert_eq!(pulled.digest, pushed.digest);
        assert_eq!(std::fs::read(out.join("hello.txt")).unwrap(), b"hello");

        std::fs::write(&file, b"changed").unwrap();
        let err = push_files(&store, &reference, &[file], &PushOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Store(store::Error::TagExists { .. })),
            "{err}"
        );
    }
}
