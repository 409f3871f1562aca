//! Content-addressed storage of OCI artifacts: the [`Store`] trait and its two implementations,
//! [`layout::LayoutStore`] (an OCI image layout folder, the embedded default) and
//! [`registry::RegistryStore`] (any OCI distribution registry over HTTP(S)).
//!
//! A store never hands out bytes it has not checked against their digest, and never trusts a
//! digest it was told without recomputing it.

pub mod auth;
pub mod cache;
pub mod elsewhere;
pub mod layout;
pub mod login;
pub mod referrers;
pub mod registry;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, Manifest, ManifestError};
use crate::foundation::reference::{Location, Reference, Tag};

/// Where a blob's bytes come from. Sources can be re-opened at an offset, so an interrupted
/// upload can be resumed or restarted.
#[derive(Clone, Copy, Debug)]
pub enum BlobSource<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl BlobSource<'_> {
    /// A reader positioned at `offset`.
    pub fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        match self {
            BlobSource::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                Ok(Box::new(&b[start..]))
            }
            BlobSource::File(p) => {
                let mut f = File::open(p)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
            }
        }
    }
}

/// A manifest as fetched: its bytes, checked against `descriptor.digest`, and parsed.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// Checks `bytes` against `expected` (when the caller asked by digest) and parses them.
    pub fn check(
        what: &str,
        bytes: Vec<u8>,
        served_media_type: Option<&str>,
        expected: Option<&Digest>,
    ) -> Result<FetchedManifest, Error> {
        let found = Digest::of(&bytes);
        if let Some(expected) = expected
            && *expected != found
        {
            return Err(Error::DigestMismatch {
                what: what.to_owned(),
                expected: expected.clone(),
                found,
            });
        }
        let (manifest, media_type) =
            Manifest::parse(&bytes, served_media_type).map_err(|source| Error::BadManifest {
                what: what.to_owned(),
                source,
            })?;
        let descriptor = Descriptor::new(media_type, found, bytes.len() as u64);
        Ok(FetchedManifest {
            descriptor,
            bytes,
            manifest,
        })
    }
}

/// How referrers were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersPath {
    /// `GET /v2/<name>/referrers/<digest>`.
    Api,
    /// The `sha256-<hex>` tag schema of distribution-spec 1.1.
    TagSchema,
    /// Scanning an OCI image layout's index.
    LayoutIndex,
}

/// Manifests whose `subject` is a given digest.
#[derive(Clone, Debug)]
pub struct Referrers {
    pub path: ReferrersPath,
    pub descriptors: Vec<Descriptor>,
}

/// Errors of every store. Variants name what was expected and what came.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: content digest is {found}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        found: Digest,
    },
    #[error(
        "{what}: registry header Docker-Content-Digest says {claimed}, but the content hashes to {found}"
    )]
    LyingDigestHeader {
        what: String,
        claimed: String,
        found: Digest,
    },
    #[error("{what}: size is {found} bytes, expected {expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{what}: manifest is larger than {limit} bytes")]
    ManifestTooLarge { what: String, limit: usize },
    #[error("{what}: not a usable manifest")]
    BadManifest {
        what: String,
        #[source]
        source: ManifestError,
    },
    #[error("{what}: not found")]
    NotFound { what: String },
    /// The registry knows no repository of this name (NAME_UNKNOWN), or nothing in it is tagged.
    #[error("no repository {repository}")]
    NoRepository { repository: String },
    /// The repository exists, the tag does not (MANIFEST_UNKNOWN).
    #[error("no tag {tag} in {repository}")]
    NoTag {
        tag: String,
        repository: String,
        /// The first few tags it has, for the hint.
        known: Vec<String>,
        more: usize,
    },
    #[error(
        "tag {tag} in {repository} already names {existing}; refusing to move it to {new} (use --force-tag to move it)"
    )]
    TagExists {
        repository: String,
        tag: Tag,
        existing: Digest,
        new: Digest,
    },
    #[error("{what}: {reason}")]
    InvalidFallbackIndex { what: String, reason: String },
    #[error("{method} {url}: registry answered {status}{detail}")]
    Http {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{method} {url}: gave up after {attempts} attempts; last answer: {last}")]
    RetriesExhausted {
        method: String,
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("could not resolve host {host} ({url}): {reason}")]
    UnknownHost {
        host: String,
        /// The request's URL (without its query): says whether HTTPS or HTTP was tried.
        url: String,
        reason: String,
    },
    #[error("{method} {url}: connection failed")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} {} ({request})", stall.describe(*after))]
    TimedOut {
        registry: String,
        /// The method and URL (without its query).
        request: String,
        stall: Stall,
        after: Timeout,
    },
    #[error("authentication to {registry} failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error(
        "registry {registry} is not on loopback; plain HTTP needs --insecure-registry {registry}"
    )]
    InsecureRefused { registry: String },
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
    #[error("no OCI layout at {}", path.display())]
    NoLayout { path: PathBuf },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// True when the content failed a check (a lie or corruption), as opposed to an
    /// operational failure (network, permissions).
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::LyingDigestHeader { .. }
                | Error::SizeMismatch { .. }
                | Error::ManifestTooLarge { .. }
                | Error::BadManifest { .. }
                | Error::InvalidFallbackIndex { .. }
        )
    }
}

/// Which part of an exchange with a registry ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// The TCP (or TLS) connection was not established.
    Connect,
    /// The request went out and no response headers came back.
    Response,
    /// The headers came, then the body stopped arriving.
    Body,
    /// A small body (manifest, list, token) kept trickling in, too slowly to finish in time.
    TooSlow,
    /// A blob kept trickling in at less than a KiB a second.
    Drip,
}

impl Stall {
    fn describe(self, after: Timeout) -> String {
        match self {
            Stall::Connect => format!("did not accept a connection within {after}"),
            Stall::Response => format!("sent no response within {after}"),
            Stall::Body => format!("stalled after the response headers: no data for {after}"),
            Stall::TooSlow => {
                format!("sent its response too slowly to finish within {after}")
            }
            Stall::Drip => format!("sent a blob at less than 1 KiB/s over {after}"),
        }
    }
}

/// How long custody waits on a registry: to connect, for response headers, between two reads
/// of a body, and for the whole body of a manifest, referrers list, tag list or token. Blob
/// streams are bounded by the idle time and a minimum rate instead, so large blobs still work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub std::time::Duration);

impl Timeout {
    /// One minute, as `docker` and `crane` wait by default.
    pub const DEFAULT: Timeout = Timeout(std::time::Duration::from_secs(60));
    /// A longer wait than this is a typo, not a wish.
    pub const MAX: Timeout = Timeout(std::time::Duration::from_secs(24 * 60 * 60));
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout::DEFAULT
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl std::str::FromStr for Timeout {
    type Err = String;

    /// `30`, `30s`, `500ms` or `2m`; between 1ms and 24h.
    fn from_str(s: &str) -> Result<Timeout, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let bad = || format!("timeout {s:?} is not a duration like 30s, 500ms or 2m");
        if number.is_empty() || number.len() > 9 {
            return Err(bad());
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        let duration = match unit {
            "" | "s" => std::time::Duration::from_secs(n),
            "ms" => std::time::Duration::from_millis(n),
            "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
            _ => return Err(bad()),
        };
        if duration.is_zero() || duration > Timeout::MAX.0 {
            return Err(format!(
                "timeout {s:?} must be more than 0 and at most {}",
                Timeout::MAX
            ));
        }
        Ok(Timeout(duration))
    }
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::TagExists { .. } => Some(
                "tags are immutable in custody; push under a new tag, or pass --force-tag to move it deliberately".into(),
            ),
            Error::DigestMismatch { .. } | Error::LyingDigestHeader { .. } => Some(
                "the store returned content other than what was asked for; do not trust it, and report it to the registry's operator".into(),
            ),
            Error::InsecureRefused { registry } => Some(format!(
                "pass --insecure-registry {registry} if this registry really has no TLS"
            )),
            Error::Auth { registry, .. } => Some(format!(
                "log in first: echo \"$TOKEN\" | custody login {registry} -u USER --password-stdin"
            )),
            Error::TimedOut { .. } => Some(
                "if the registry is only slow, wait longer with --timeout or CUSTODY_TIMEOUT".into(),
            ),
            Error::RetriesExhausted { .. } => {
                Some("the registry kept failing; check that it is up and reachable".into())
            }
            Error::UnknownHost { host, .. } => Some(format!(
                "check the registry name {host} (a typo?) and that this machine can resolve it (DNS, /etc/hosts, a proxy)"
            )),
            Error::NoRepository { repository } => Some(format!(
                "check the repository name: the registry has no {repository} with a tag in it (a typo, or not pushed yet?)"
            )),
            Error::NoTag {
                repository,
                known,
                more,
                ..
            } => Some(if known.is_empty() {
                format!("check the tag; {repository} has no tags yet")
            } else {
                format!(
                    "check the tag; {repository} has {}{}",
                    known.join(", "),
                    if *more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            }),
            // The registry answered (NAME_UNKNOWN, MANIFEST_UNKNOWN): it is the name that is wrong.
            Error::NotFound { .. } => Some(
                "check the reference: no such repository, tag or digest in that store (a typo, or not pushed yet?)".into(),
            ),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        self.is_integrity_failure() || matches!(self, Error::TagExists { .. })
    }
}

/// One repository of OCI content.
pub trait Store: Send + Sync {
    /// The repository as a reference string: `host/repo` or `oci:<dir>`.
    fn name(&self) -> String;

    /// The size of a stored blob, if present.
    fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, Error>;

    /// Stores a blob. The bytes are hashed while they are written and refused unless they match
    /// `descriptor`. A blob already present is not written again.
    fn put_blob(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error>;

    /// Streams a blob into `sink`, checking size and digest while streaming. On error the sink
    /// holds partial data: the caller discards it.
    fn get_blob(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error>;

    /// Stores a manifest by digest (no tag). A manifest with a `subject` is made discoverable
    /// as a referrer of that subject.
    fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor, Error>;

    /// When the store already has this manifest, makes sure it is discoverable as a referrer of
    /// its subject and returns true; returns false, having written nothing, when it is absent.
    /// A copy asks this first: most of what a copy run again pushes is already there, and a
    /// manifest the store has is not pushed again (nor, with it, its blobs). Stores for which
    /// pushing is as cheap as asking keep the default: absent.
    fn adopt_manifest(&self, _bytes: &[u8], _media_type: &str) -> Result<bool, Error> {
        Ok(false)
    }

    /// The referrers of `subject` this store is known to hold, when one listing proves it: a
    /// registry's referrers API lists only manifests it has. `None` when a listing cannot
    /// prove it (a fallback index can name manifests garbage-collected since), and then each
    /// is asked for with [`Store::adopt_manifest`]. A copy asks this once per subject instead
    /// of once per referrer.
    fn present_referrers(&self, _subject: &Digest) -> Result<Option<BTreeSet<Digest>>, Error> {
        Ok(None)
    }

    /// Points `tag` at a stored manifest.
    fn tag(&self, tag: &Tag, manifest: &FetchedManifest) -> Result<(), Error>;

    /// Fetches a manifest by digest, checked.
    fn get_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Error>;

    /// Fetches the manifest a tag points to; the digest is computed from the bytes.
    fn get_tagged(&self, tag: &Tag) -> Result<Option<FetchedManifest>, Error>;

    /// The manifests whose subject is `subject`.
    fn referrers(&self, subject: &Digest) -> Result<Referrers, Error>;

    /// Every tag of the repository.
    fn tags(&self) -> Result<Vec<Tag>, Error>;

    /// Every tag of the repository, handed to `visit` as it is read (a registry's page at a
    /// time), so that a caller keeping less than the whole list never holds it.
    fn each_tag(&self, visit: &mut dyn FnMut(Tag)) -> Result<(), Error> {
        self.tags()?.into_iter().for_each(visit);
        Ok(())
    }

    /// Deletes a manifest (not the blobs it points at).
    fn delete_manifest(&self, digest: &Digest) -> Result<(), Error>;

    /// Deletes a tag, leaving the manifest. Registries that drop tags with their manifest
    /// (distribution) need not support it; the default says so.
    fn delete_tag(&self, tag: &Tag) -> Result<(), Error> {
        Err(Error::Unsupported {
            what: format!("{}:{tag}", self.name()),
            reason: "this store cannot delete a tag on its own".into(),
        })
    }

    /// Whether `other` is a repository of the same registry, so blobs can be mounted from it.
    fn mount_source(&self, _other: &dyn Store) -> Option<String> {
        None
    }

    /// Makes a blob present by cross-repository mount from `from`. Returns false when the
    /// registry did not mount it and the caller must upload.
    fn mount_blob(&self, _descriptor: &Descriptor, _from: &str) -> Result<bool, Error> {
        Ok(false)
    }

    /// The registry host, for registry stores.
    fn registry_host(&self) -> Option<String> {
        None
    }
}

/// Receives the progress of large blob transfers. The CLI draws it; the library only reports.
pub trait Progress: Send + Sync {
    fn begin(&self, label: &str, total: u64);
    fn advance(&self, bytes: u64);
    fn end(&self);
    /// One registry request answered with `status` (`url` without its query); for `-v`.
    fn request(&self, _method: &str, _url: &str, _status: u16) {}
}

/// Blobs smaller than this are not worth a progress report.
pub const PROGRESS_THRESHOLD: u64 = 16 * 1024 * 1024;

/// A shared [`Progress`] receiver.
#[derive(Clone)]
pub struct ProgressHandle(pub std::sync::Arc<dyn Progress>);

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

impl ProgressHandle {
    /// Reports a transfer of `total` bytes when it is large enough to be worth it.
    pub(crate) fn track(
        handle: &Option<ProgressHandle>,
        label: impl FnOnce() -> String,
        total: u64,
    ) -> Option<ProgressHandle> {
        let handle = handle.as_ref().filter(|_| total >= PROGRESS_THRESHOLD)?;
        handle.0.begin(&label(), total);
        Some(handle.clone())
    }
}

/// Counts bytes read through it into a progress receiver.
pub(crate) struct ProgressReader<R> {
    pub inner: R,
    pub progress: Option<ProgressHandle>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.0.advance(n as u64);
        }
        Ok(n)
    }
}

/// Counts bytes written through it into a progress receiver.
pub(crate) struct ProgressWriter<'a> {
    pub inner: &'a mut dyn Write,
    pub progress: Option<ProgressHandle>,
}

impl Write for ProgressWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(p) = &self.progress {
            p.0.advance(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Options that apply to every store opened.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Hosts reachable over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from.
    pub credentials: auth::CredentialSources,
    /// Retry policy for idempotent requests.
    pub retry: registry::RetryPolicy,
    /// Where large transfers report progress.
    pub progress: Option<ProgressHandle>,
    /// How long to wait on a registry.
    pub timeout: Timeout,
    /// Where manifests and small blobs fetched from registries by digest are kept; `None`
    /// fetches everything every time.
    pub cache: Option<std::sync::Arc<cache::Cache>>,
    /// The store serves one command, which sees the registry as it was when it read it: it may
    /// answer from what it read earlier in the command (a list of the repository's tags instead
    /// of asking about each `sha256-<hex>` fallback or legacy tag; a manifest it fetched by digest
    /// moments ago). A long-running server leaves this off, so that a signature pushed a second
    /// ago is seen and a deleted artifact is not verified from memory.
    pub short_lived: bool,
}

/// Opens the repository a reference names.
pub fn open(reference: &Reference, options: &Options) -> Result<Box<dyn Store>, Error> {
    match &reference.location {
        Location::Layout { path } => Ok(Box::new(
            layout::LayoutStore::open_or_create(path)?.with_progress(options.progress.clone()),
        )),
        Location::Registry {
            registry,
            repository,
        } => {
            let store = Box::new(registry::RegistryStore::new(registry, repository, options)?);
            Ok(match &options.cache {
                Some(cache) => Box::new(cache::Cached::new(store, cache.clone())),
                None => store,
            })
        }
    }
}

/// Opens the repository a reference names, to read from it only: a layout folder must exist
/// already ([`Error::NoLayout`] otherwise) and nothing is created in it.
pub fn open_existing(reference: &Reference, options: &Options) -> Result<Box<dyn Store>, Error> {
    match &reference.location {
        Location::Layout { path } => Ok(Box::new(
            layout::LayoutStore::open_existing(path)?.with_progress(options.progress.clone()),
        )),
        Location::Registry { .. } => open(reference, options),
    }
}

/// The prefix of [`AtomicFile`]'s temporary files.
const TEMP_PREFIX: &str = ".custody-tmp-";

/// How old a temporary file must be before a later run removes it. A writer touches its file
/// with every chunk it writes, so only a writer that was killed (or stalled for this long)
/// leaves one this old; the age is used rather than the writer's pid because a pid may be
/// reused, or belong to another machine sharing the folder.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Removes `.custody-tmp-*` regular files in `dir` (not below it) last modified more than
/// [`STALE_TEMP_AGE`] ago: what a killed pull or push left behind. Best effort: a file that
/// cannot be inspected or removed is left alone.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten().take(100_000) {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if meta.is_file() && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file that appears under its final name only once it is complete. It is created with mode
/// `0666` less the process umask, as any other tool's output is; secrets are not written
/// through it (keys have their own `0600` writer).
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile, Error> {
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(dir).map_err(Error::io(format!(
            "cannot create a temporary file in {}",
            dir.display()
        )))?;
        Ok(AtomicFile {
            temp,
            target: target.to_owned(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Flushes to disk and renames into place.
    pub fn commit(self) -> Result<(), Error> {
        let target = self.target;
        self.temp
            .as_file()
            .sync_all()
            .map_err(Error::io(format!("cannot flush {}", target.display())))?;
        self.temp.persist(&target).map_err(|e| Error::Io {
            context: format!("cannot move the finished file to {}", target.display()),
            source: e.error,
        })?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// What the unit tests of more than one store build.
#[cfg(test)]
pub(crate) mod testing {
    use crate::foundation::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};

    /// A manifest of artifact type `application/test` with one layer, a referrer of `subject`
    /// when there is one.
    pub fn artifact(layer: &Descriptor, subject: Option<Descriptor>) -> Vec<u8> {
        oci::to_bytes(&ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/test".into()),
            config: Descriptor::empty_config(),
            layers: vec![layer.clone()],
            subject,
            annotations: Default::default(),
        })
    }
}
