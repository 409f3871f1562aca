//! What registries serve by digest, kept on disk: manifests and small blobs (signature bundles,
//! attestation envelopes, SBOMs). Content named by its digest never changes, so a second
//! `verify`, `tree` or `rescan` of the same artifact reads it from here and asks the registry
//! only what can change: tags and referrer lists. Only manifests that name a subject (signatures,
//! attestations, SBOMs) are kept: the artifact's own manifest is always asked for, so an
//! artifact deleted from its registry is not verified from here.
//!
//! The cache is never trusted. Every read hashes the file again and checks it against the
//! digest asked for (and a blob against its size as well); a file that fails is removed and the
//! content is fetched from the registry as if it had never been kept. Writes are best effort: a
//! cache that cannot be written costs speed, never a result.
//!
//! Each repository has its own folder (the first 16 hex digits of the SHA-256 of its name), so
//! content fetched from one repository with one credential is never handed out for another.
//! In it, `m/<hex>` is a manifest (the media type the registry served, a newline, the bytes)
//! and `b/<hex>` a blob's bytes. Reading a file refreshes its modification time (at most once
//! an hour), and opening the cache every ten minutes or so removes the least recently used
//! files while the whole is over its size.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::foundation::digest::Digest;
use crate::foundation::oci::Descriptor;
use crate::foundation::reference::Tag;

use super::{BlobSource, Error, FetchedManifest, Referrers, Store};

/// The size the cache is pruned back under, unless `CUSTODY_CACHE_MAX_MB` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The largest blob kept: SBOMs of a few thousand components fit, image layers do not.
pub const MAX_ITEM: u64 = 8 * 1024 * 1024;
/// The longest media type kept in front of a manifest.
const MAX_MEDIA_TYPE: usize = 255;
/// How often the cache's size is checked.
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);
/// A file read again after this long has its modification time refreshed.
const TOUCH_AFTER: Duration = Duration::from_secs(60 * 60);
/// A temporary file this old was left by a writer that died.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);
/// Pruning stops at this share of the maximum, so that it does not run again at once.
const PRUNE_TO_PERCENT: u64 = 80;
/// The most files one prune looks at.
const PRUNE_SCAN_LIMIT: usize = 2_000_000;

/// A folder of content kept by digest.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// Opens (creating if need be) the cache at `root`, pruning it when a prune is due.
    pub fn open(root: &Path, max_bytes: u64) -> io::Result<Cache> {
        fs::create_dir_all(root)?;
        let cache = Cache {
            // Absolute, so that writing a file does not look up the working directory.
            root: std::path::absolute(root)?,
            max_bytes,
        };
        if cache.prune_due() {
            cache.prune();
        }
        Ok(cache)
    }

    /// `$XDG_CACHE_HOME/custody/oci`, else `$HOME/.cache/custody/oci`; `None` without either.
    pub fn default_root(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        crate::foundation::cache_home(env).map(|c| c.join("oci"))
    }

    /// Whether a blob of `size` bytes is small enough to keep.
    pub fn holds(size: u64) -> bool {
        size <= MAX_ITEM
    }

    /// The folder of the repository named `scope`.
    fn scope(&self, scope: &str) -> PathBuf {
        self.root.join(&Digest::of(scope.as_bytes()).hex()[..16])
    }

    /// The manifest kept for `digest` in `scope`, checked and parsed as if fetched, with the
    /// media type it was served as.
    pub fn manifest(&self, scope: &str, digest: &Digest) -> Option<FetchedManifest> {
        let path = self.scope(scope).join("m").join(digest.hex());
        let mut bytes = self.read(&path, MAX_ITEM + MAX_MEDIA_TYPE as u64 + 1)?;
        let checked = bytes.iter().position(|&b| b == b'\n').and_then(|newline| {
            let body = bytes.split_off(newline + 1);
            let media_type = std::str::from_utf8(&bytes[..newline]).ok()?;
            let what = format!("kept manifest {}", path.display());
            FetchedManifest::check(&what, body, Some(media_type), Some(digest)).ok()
        });
        if checked.is_none() {
            self.forget(&path);
        }
        checked
    }

    /// The blob kept for `descriptor` in `scope`, checked against its digest and size.
    pub fn blob(&self, scope: &str, descriptor: &Descriptor) -> Option<Vec<u8>> {
        if !Cache::holds(descriptor.size) {
            return None;
        }
        let path = self.scope(scope).join("b").join(descriptor.digest.hex());
        let bytes = self.read(&path, descriptor.size)?;
        if bytes.len() as u64 == descriptor.size && Digest::of(&bytes) == descriptor.digest {
            Some(bytes)
        } else {
            self.forget(&path);
            None
        }
    }

    /// Keeps a manifest as fetched (its digest was computed from its bytes).
    pub fn keep_manifest(&self, scope: &str, fetched: &FetchedManifest) {
        let media_type = &fetched.descriptor.media_type;
        if fetched.bytes.len() as u64 > MAX_ITEM
            || media_type.len() > MAX_MEDIA_TYPE
            || media_type.contains('\n')
        {
            return;
        }
        let path = self
            .scope(scope)
            .join("m")
            .join(fetched.descriptor.digest.hex());
        if !path.exists() {
            self.write(&path, &[media_type.as_bytes(), b"\n", &fetched.bytes]);
        }
    }

    /// Keeps a blob, if it is small enough and its bytes match `descriptor`.
    pub fn keep_blob(&self, scope: &str, descriptor: &Descriptor, bytes: &[u8]) {
        if !Cache::holds(descriptor.size)
            || bytes.len() as u64 != descriptor.size
            || Digest::of(bytes) != descriptor.digest
        {
            return;
        }
        let path = self.scope(scope).join("b").join(descriptor.digest.hex());
        if !path.exists() {
            self.write(&path, &[bytes]);
        }
    }

    /// Forgets the manifest kept for `digest` in `scope` (it was deleted from the registry).
    pub fn forget_manifest(&self, scope: &str, digest: &Digest) {
        self.forget(&self.scope(scope).join("m").join(digest.hex()));
    }

    /// Reads a whole file of at most `limit` bytes; `None` when absent or larger.
    fn read(&self, path: &Path, limit: u64) -> Option<Vec<u8>> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > limit {
            self.forget(path);
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(limit + 1).read_to_end(&mut bytes).ok()?;
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age > TOUCH_AFTER);
        if stale {
            // Best effort: a read-only cache is still read.
            let _ = File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        Some(bytes)
    }

    /// Writes a file whole under a temporary name beside it, then renames it into place, so a
    /// reader never sees part of one. (A rename within one folder also takes no lock of the
    /// whole file system, which several workers writing at once would queue on.)
    fn write(&self, path: &Path, parts: &[&[u8]]) {
        let Some(dir) = path.parent() else {
            return;
        };
        let temp = || {
            tempfile::Builder::new()
                .prefix(super::TEMP_PREFIX)
                .tempfile_in(dir)
        };
        let Ok(mut temp) = temp().or_else(|_| {
            fs::create_dir_all(dir)?;
            temp()
        }) else {
            return;
        };
        if parts.iter().all(|p| temp.write_all(p).is_ok()) {
            let _ = temp.persist(path);
        }
    }

    fn forget(&self, path: &Path) {
        let _ = fs::remove_file(path);
    }

    fn stamp(&self) -> PathBuf {
        self.root.join("pruned")
    }

    fn prune_due(&self) -> bool {
        fs::metadata(self.stamp())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age > PRUNE_EVERY)
    }

    /// Removes the least recently used files until the cache is under [`PRUNE_TO_PERCENT`] of
    /// its maximum, and temporary files a dead writer left. Best effort.
    pub fn prune(&self) {
        let _ = File::create(self.stamp());
        let now = SystemTime::now();
        let mut files = Vec::new();
        let mut total = 0u64;
        let scopes = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().len() == 16);
        let folders = scopes.flat_map(|s| ["m", "b"].map(|kind| s.path().join(kind)));
        for dir in folders {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if files.len() >= PRUNE_SCAN_LIMIT {
                    break;
                }
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(super::TEMP_PREFIX)
                {
                    // What a writer left when it died; one still writing is younger.
                    if now
                        .duration_since(modified)
                        .is_ok_and(|age| age > STALE_TEMP)
                    {
                        let _ = fs::remove_file(entry.path());
                    }
                    continue;
                }
                total = total.saturating_add(meta.len());
                files.push((modified, meta.len(), entry.path()));
            }
        }
        if total <= self.max_bytes {
            return;
        }
        let target = self.max_bytes / 100 * PRUNE_TO_PERCENT;
        files.sort_unstable_by_key(|(modified, _, _)| *modified);
        for (_, len, path) in files {
            if total <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// A registry store whose content by digest goes through a [`Cache`]: referrer manifests and
/// blobs asked for by digest are read from it when kept there, and kept there when fetched.
/// Tags, referrer lists and the artifact's own manifest always come from the registry.
pub struct Cached {
    inner: Box<dyn Store>,
    cache: Arc<Cache>,
    /// The store's name: what the cache's folder is chosen by.
    scope: String,
}

impl Cached {
    pub fn new(inner: Box<dyn Store>, cache: Arc<Cache>) -> Cached {
        let scope = inner.name();
        Cached {
            inner,
            cache,
            scope,
        }
    }
}

/// Writes through to a sink while keeping a copy of what passed.
struct Tee<'a> {
    sink: &'a mut dyn Write,
    kept: Vec<u8>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sink.write(buf)?;
        self.kept.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl Store for Cached {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        self.inner.blob_exists(digest)
    }

    fn put_blob(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error> {
        self.inner.put_blob(descriptor, source)
    }

    fn get_blob(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error> {
        if let Some(bytes) = self.cache.blob(&self.scope, descriptor) {
            return sink.write_all(&bytes).map_err(Error::io(format!(
                "cannot write blob {}",
                descriptor.digest.short()
            )));
        }
        if !Cache::holds(descriptor.size) {
            return self.inner.get_blob(descriptor, sink);
        }
        let mut tee = Tee {
            sink,
            kept: Vec::with_capacity(descriptor.size as usize),
        };
        self.inner.get_blob(descriptor, &mut tee)?;
        self.cache.keep_blob(&self.scope, descriptor, &tee.kept);
        Ok(())
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor, Error> {
        self.inner.put_manifest(bytes, media_type)
    }

    fn adopt_manifest(&self, bytes: &[u8], media_type: &str) -> Result<bool, Error> {
        self.inner.adopt_manifest(bytes, media_type)
    }

    fn present_referrers(&self, subject: &Digest) -> Result<Option<BTreeSet<Digest>>, Error> {
        self.inner.present_referrers(subject)
    }

    fn tag(&self, tag: &Tag, manifest: &FetchedManifest) -> Result<(), Error> {
        self.inner.tag(tag, manifest)
    }

    /// Only a manifest that names a subject (a referrer) is kept and read back: the artifact's
    /// own is always asked for, so one deleted from its registry is not found here.
    fn get_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Error> {
        let kept = self.cache.manifest(&self.scope, digest);
        if let Some(kept) = kept.filter(|m| m.manifest.subject().is_some()) {
            return Ok(kept);
        }
        let fetched = self.inner.get_manifest(digest)?;
        if fetched.manifest.subject().is_some() {
            self.cache.keep_manifest(&self.scope, &fetched);
        }
        Ok(fetched)
    }

    fn get_tagged(&self, tag: &Tag) -> Result<Option<FetchedManifest>, Error> {
        self.inner.get_tagged(tag)
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers, Error> {
        self.inner.referrers(subject)
    }

    fn tags(&self) -> Result<Vec<Tag>, Error> {
        self.inner.tags()
    }

    fn each_tag(&self, visit: &mut dyn FnMut(Tag)) -> Result<(), Error> {
        self.inner.each_tag(visit)
    }

    fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        self.cache.forget_manifest(&self.scope, digest);
        self.inner.delete_manifest(digest)
    }

    fn delete_tag(&self, tag: &Tag) -> Result<(), Error> {
        self.inner.delete_tag(tag)
    }

    fn mount_source(&self, other: &dyn Store) -> Option<String> {
        self.inner.mount_source(other)
    }

    fn mount_blob(&self, descriptor: &Descriptor, from: &str) -> Result<bool, Error> {
        self.inner.mount_blob(descriptor, from)
    }

    fn registry_host(&self) -> Option<String> {
        self.inner.registry_host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::oci::MEDIA_TYPE_IMAGE_MANIFEST;
    use crate::storage::store::layout::LayoutStore;
    use crate::storage::store::testing::artifact;

    /// A referrer (it names a subject) with one layer.
    fn manifest(layer: &Descriptor) -> Vec<u8> {
        let subject = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, b"{}");
        artifact(layer, Some(subject))
    }

    /// A layout holding one manifest and its layer, behind a cache; the layout's own copy of a
    /// blob can be removed to see where an answer came from.
    struct Fixture {
        _dir: tempfile::TempDir,
        layout: PathBuf,
        cache_root: PathBuf,
        store: Cached,
        layer: Descriptor,
        manifest: Descriptor,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let layout = dir.path().join("layout");
            let inner = LayoutStore::open_or_create(&layout).unwrap();
            let layer = Descriptor::of("application/test", b"a bundle");
            inner
                .put_blob(&layer, BlobSource::Bytes(b"a bundle"))
                .unwrap();
            let empty = Descriptor::empty_config();
            inner.put_blob(&empty, BlobSource::Bytes(b"{}")).unwrap();
            let manifest = inner
                .put_manifest(&manifest(&layer), MEDIA_TYPE_IMAGE_MANIFEST)
                .unwrap();
            let cache_root = dir.path().join("cache");
            let cache = Arc::new(Cache::open(&cache_root, DEFAULT_MAX_BYTES).unwrap());
            Fixture {
                store: Cached::new(Box::new(inner), cache),
                _dir: dir,
                layout,
                cache_root,
                layer,
                manifest,
            }
        }

        /// Removes the layout's copy of `digest`: only the cache can answer for it now.
        fn lose(&self, digest: &Digest) {
            fs::remove_file(self.layout.join("blobs/sha256").join(digest.hex())).unwrap();
        }

        fn kept(&self, kind: &str, digest: &Digest) -> PathBuf {
            self.cache_root
                .join(&Digest::of(self.store.name().as_bytes()).hex()[..16])
                .join(kind)
                .join(digest.hex())
        }

        fn blob(&self) -> Result<Vec<u8>, Error> {
            let mut out = Vec::new();
            self.store.get_blob(&self.layer, &mut out).map(|()| out)
        }
    }

    #[test]
    fn what_was_fetched_by_digest_is_read_from_the_cache() {
        let f = Fixture::new();
        let first = f.store.get_manifest(&f.manifest.digest).unwrap();
        assert_eq!(f.blob().unwrap(), b"a bundle");
        f.lose(&f.manifest.digest);
        f.lose(&f.layer.digest);
        let again = f.store.get_manifest(&f.manifest.digest).unwrap();
        assert_eq!(again.bytes, first.bytes);
        assert_eq!(again.descriptor, first.descriptor);
        assert_eq!(f.blob().unwrap(), b"a bundle");
    }

    #[test]
    fn an_artifacts_own_manifest_is_always_asked_for() {
        let f = Fixture::new();
        let bytes = artifact(&f.layer, None);
        let pushed = f
            .store
            .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        f.store.get_manifest(&pushed.digest).unwrap();
        assert!(!f.kept("m", &pushed.digest).exists());
        // Even one put there by hand is not read: a deleted artifact is not found.
        let cache = Cache::open(&f.cache_root, DEFAULT_MAX_BYTES).unwrap();
        let path = f.kept("m", &pushed.digest);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            [MEDIA_TYPE_IMAGE_MANIFEST.as_bytes(), b"\n", &bytes].concat(),
        )
        .unwrap();
        assert!(cache.manifest(&f.store.name(), &pushed.digest).is_some());
        f.lose(&pushed.digest);
        assert!(f.store.get_manifest(&pushed.digest).is_err());
    }

    #[test]
    fn a_kept_file_that_does_not_hash_to_its_name_is_removed_and_refetched() {
        let f = Fixture::new();
        f.store.get_manifest(&f.manifest.digest).unwrap();
        f.blob().unwrap();
        let (m, b) = (
            f.kept("m", &f.manifest.digest),
            f.kept("b", &f.layer.digest),
        );
        let mut kept = fs::read(&m).unwrap();
        *kept.last_mut().unwrap() ^= 1;
        fs::write(&m, &kept).unwrap();
        fs::write(&b, b"a bundlE").unwrap();
        // The store still has both: they come from it, and the cache is mended.
        assert_eq!(
            f.store
                .get_manifest(&f.manifest.digest)
                .unwrap()
                .descriptor
                .digest,
            f.manifest.digest
        );
        assert_eq!(f.blob().unwrap(), b"a bundle");
        assert_eq!(Digest::of(&fs::read(&b).unwrap()), f.layer.digest);
        // Tampered again, with the store's copies gone: nothing is handed out.
        fs::write(&m, &kept).unwrap();
        fs::write(&b, b"a bundlE").unwrap();
        f.lose(&f.manifest.digest);
        f.lose(&f.layer.digest);
        assert!(f.store.get_manifest(&f.manifest.digest).is_err());
        assert!(f.blob().is_err());
        assert!(!m.exists() && !b.exists(), "refused files are removed");
    }

    #[test]
    fn malformed_kept_files_are_refused() {
        let f = Fixture::new();
        let cache = Cache::open(&f.cache_root, DEFAULT_MAX_BYTES).unwrap();
        let scope = f.store.name();
        let d = &f.manifest.digest;
        let path = f.kept("m", d);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = manifest(&f.layer);
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            body.clone(),                                       // no media type line
            [b"\xff\xfe\n".as_slice(), &body].concat(),         // media type not UTF-8
            [b"text/plain\n".as_slice(), &body[1..]].concat(),  // truncated
            [b"text/plain\n".as_slice(), &body, b" "].concat(), // trailing byte
            vec![b'x'; (MAX_ITEM + 1024) as usize],             // too large
        ];
        for (i, case) in cases.into_iter().enumerate() {
            fs::write(&path, &case).unwrap();
            assert!(cache.manifest(&scope, d).is_none(), "case {i}");
            assert!(!path.exists(), "case {i} is removed");
        }
        // A blob whose size is not the descriptor's is refused even if it hashes right.
        let short = Descriptor::new("x", f.layer.digest.clone(), f.layer.size + 1);
        cache.keep_blob(&scope, &f.layer, b"a bundle");
        assert!(cache.blob(&scope, &short).is_none());
        // Nothing is kept that does not match what it is kept as, nor a media type that would
        // not read back as one line.
        cache.keep_blob(&scope, &f.layer, b"a bundlE");
        let mut two_lines =
            FetchedManifest::check("m", body, Some(MEDIA_TYPE_IMAGE_MANIFEST), Some(d)).unwrap();
        two_lines.descriptor.media_type = "two\nlines".into();
        cache.keep_manifest(&scope, &two_lines);
        assert!(cache.blob(&scope, &f.layer).is_none());
        assert!(!path.exists());
    }

    #[test]
    fn repositories_do_not_share_what_they_keep() {
        let f = Fixture::new();
        f.store.get_manifest(&f.manifest.digest).unwrap();
        let cache = Cache::open(&f.cache_root, DEFAULT_MAX_BYTES).unwrap();
        assert!(
            cache
                .manifest(&f.store.name(), &f.manifest.digest)
                .is_some()
        );
        assert!(
            cache
                .manifest("other/repository", &f.manifest.digest)
                .is_none()
        );
    }

    #[test]
    fn a_deleted_manifest_is_forgotten_and_a_tag_is_always_resolved_by_the_store() {
        let f = Fixture::new();
        let fetched = f.store.get_manifest(&f.manifest.digest).unwrap();
        let tag: Tag = "v1".parse().unwrap();
        f.store.tag(&tag, &fetched).unwrap();
        f.store.delete_manifest(&f.manifest.digest).unwrap();
        assert!(!f.kept("m", &f.manifest.digest).exists(), "forgotten");
        assert!(f.store.get_manifest(&f.manifest.digest).is_err());
        assert!(f.store.get_tagged(&tag).unwrap().is_none());
    }

    #[test]
    fn large_blobs_pass_through_uncached() {
        let f = Fixture::new();
        let big = vec![7u8; (MAX_ITEM + 1) as usize];
        let d = Descriptor::of("application/octet-stream", &big);
        f.store.put_blob(&d, BlobSource::Bytes(&big)).unwrap();
        let mut out = Vec::new();
        f.store.get_blob(&d, &mut out).unwrap();
        assert_eq!(out.len(), big.len());
        assert!(!f.kept("b", &d.digest).exists());
    }

    #[test]
    fn pruning_removes_the_least_recently_used_until_under_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 10_000).unwrap();
        let now = SystemTime::now();
        let mut kept = Vec::new();
        for i in 0..10u8 {
            let bytes = vec![i; 2_000];
            let d = Descriptor::of("x", &bytes);
            cache.keep_blob("r", &d, &bytes);
            let path = cache.scope("r").join("b").join(d.digest.hex());
            let age = Duration::from_secs(1_000 * (10 - u64::from(i)));
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(now - age)
                .unwrap();
            kept.push(path);
        }
        let stale = cache.scope("r").join("b").join(".custody-tmp-dead");
        fs::write(&stale, b"x").unwrap();
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(now - 2 * STALE_TEMP)
            .unwrap();
        cache.prune();
        // 20,000 bytes against a maximum of 10,000: pruned to 8,000, the oldest first.
        let left: Vec<bool> = kept.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [vec![false; 6], vec![true; 4]].concat());
        assert!(!stale.exists());
        // A second open within the interval does not prune again.
        assert!(!Cache::open(dir.path(), 1).unwrap().prune_due());
    }
}
