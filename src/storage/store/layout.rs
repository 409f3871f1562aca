//! An OCI image layout folder (`oci-layout`, `index.json`, `blobs/sha256/`): custody's embedded
//! default store, and the air-gap format.
//!
//! Every write goes to a temporary file and is renamed into place, so a crash never leaves a
//! blob under a wrong name or a broken `index.json`. `index.json` is rewritten under an
//! exclusive file lock, so concurrent writers from several processes do not lose entries; the
//! lock file is removed with the lock, and reads ([`LayoutStore::open_existing`]) create
//! nothing, not even the folder.
//! Every manifest stored is listed in `index.json` (tagged with `org.opencontainers.image.ref.name`
//! or untagged), which is how referrers are found again.
//!
//! A layout may come from someone else (an air-gap transfer), so only regular files inside the
//! folder are read: a FIFO or device would block or never end, and a symlink pointing out of
//! the folder would pass any file on the machine off as the layout's.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::foundation::digest::{Digest, HashingReader, HashingWriter};
use crate::foundation::oci::{
    self, ANNOTATION_REF_NAME, Descriptor, ImageIndex, MAX_MANIFEST_SIZE, referrer_descriptor,
};
use crate::foundation::reference::Tag;

use super::{BlobSource, Error, FetchedManifest, Referrers, ReferrersPath, Store};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".index.json.lock";
const MAX_LAYOUT_FILE_BYTES: u64 = 64 * 1024;

pub struct LayoutStore {
    root: PathBuf,
    progress: Option<super::ProgressHandle>,
}

impl LayoutStore {
    /// Opens an existing layout folder for reading; creates nothing. A folder without an
    /// `oci-layout` file (or no folder at all) is [`Error::NoLayout`].
    pub fn open_existing(root: &Path) -> Result<LayoutStore, Error> {
        let store = LayoutStore {
            root: root.to_owned(),
            progress: None,
        };
        match store.check_layout_file()? {
            true => Ok(store),
            false => Err(Error::NoLayout {
                path: root.to_owned(),
            }),
        }
    }

    /// Checks the `oci-layout` file; `false` when there is none.
    fn check_layout_file(&self) -> Result<bool, Error> {
        let layout_file = self.root.join(LAYOUT_FILE);
        match self.read_capped(&layout_file, MAX_LAYOUT_FILE_BYTES) {
            Ok(Some(bytes)) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|_| Error::Refused {
                        what: layout_file.display().to_string(),
                        reason: "not valid JSON; this folder is not an OCI image layout".into(),
                    })?;
                if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                    return Err(Error::Refused {
                        what: layout_file.display().to_string(),
                        reason: "imageLayoutVersion is not 1.0.0".into(),
                    });
                }
                Ok(true)
            }
            Ok(None) => Ok(false),
            // A missing parent folder reads as no layout, not as an I/O failure.
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotADirectory => Ok(false),
            Err(e) => Err(e.into_error(&layout_file.display().to_string())),
        }
    }

    /// Opens a layout folder for writing, creating it (and its `oci-layout` file) when missing,
    /// and removes temporary files a killed writer left behind ([`super::remove_stale_temp_files`]).
    pub fn open_or_create(root: &Path) -> Result<LayoutStore, Error> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(Error::io(format!(
            "cannot create the OCI layout folder {}",
            root.display()
        )))?;
        let store = LayoutStore {
            root: root.to_owned(),
            progress: None,
        };
        let layout_file = root.join(LAYOUT_FILE);
        match store.check_layout_file() {
            Ok(true) => {}
            Err(e) => return Err(e),
            Ok(false) => {
                let mut f = super::AtomicFile::create(&layout_file)?;
                f.write_all(LAYOUT_CONTENT)
                    .map_err(Error::io(format!("cannot write {}", layout_file.display())))?;
                f.commit()?;
            }
        }
        super::remove_stale_temp_files(root);
        super::remove_stale_temp_files(&blobs);
        if !root.join(INDEX_FILE).exists() {
            store.update_index(|_| Ok(()))?;
        }
        Ok(store)
    }

    /// Reports large blob transfers to `progress`.
    pub fn with_progress(mut self, progress: Option<super::ProgressHandle>) -> LayoutStore {
        self.progress = progress;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn read_index(&self) -> Result<ImageIndex, Error> {
        let path = self.root.join(INDEX_FILE);
        let bytes = match self.read_capped(&path, 64 * MAX_MANIFEST_SIZE as u64) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(ImageIndex::empty()),
            Err(e) => return Err(e.into_error(&path.display().to_string())),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Refused {
            what: path.display().to_string(),
            reason: format!("not a valid OCI image index: {e}"),
        })
    }

    /// Read-modify-write of `index.json` under an exclusive lock, renamed into place.
    fn update_index<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let lock_path = self.root.join(LOCK_FILE);
        let lock = self.lock_index(&lock_path)?;
        let result = self.change_index(change);
        // The lock file goes with the lock, so no empty file stays behind; a writer that was
        // waiting on it sees it gone and takes a new one ([`Self::lock_index`]).
        let _ = fs::remove_file(&lock_path);
        drop(lock);
        result
    }

    fn change_index<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        let mut file = super::AtomicFile::create(&self.root.join(INDEX_FILE))?;
        file.write_all(&oci::to_bytes(&index))
            .map_err(Error::io("cannot write index.json"))?;
        file.commit()?;
        Ok(out)
    }

    /// Takes the exclusive lock on `index.json`: `lock_path`, locked, and still the file at
    /// that path once locked (its holder removes it when done, so a lock taken on a file
    /// already removed is let go and taken again on the new one).
    fn lock_index(&self, lock_path: &Path) -> Result<File, Error> {
        use std::os::unix::fs::MetadataExt as _;
        for _ in 0..10_000 {
            // Opening a FIFO to write blocks until someone reads it.
            if let Ok(m) = fs::symlink_metadata(lock_path)
                && !m.is_file()
            {
                return Err(Error::Refused {
                    what: lock_path.display().to_string(),
                    reason: format!("{}, not a regular file", file_kind(&m)),
                });
            }
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_path)
                .map_err(Error::io(format!("cannot open {}", lock_path.display())))?;
            lock.lock()
                .map_err(Error::io(format!("cannot lock {}", lock_path.display())))?;
            let held = lock
                .metadata()
                .map_err(Error::io(format!("cannot inspect {}", lock_path.display())))?;
            match fs::symlink_metadata(lock_path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(lock),
                _ => continue,
            }
        }
        Err(Error::Refused {
            what: lock_path.display().to_string(),
            reason: "the lock kept being replaced; another process is misusing it".into(),
        })
    }

    fn write_blob(&self, descriptor: &Descriptor, reader: &mut dyn Read) -> Result<(), Error> {
        let target = self.blob_path(&descriptor.digest);
        let mut file = super::AtomicFile::create(&target)?;
        let what = format!("blob {}", descriptor.digest);
        let mut writer = HashingWriter::new(&mut file);
        let progress = super::ProgressHandle::track(
            &self.progress,
            || format!("store {}", descriptor.digest.short()),
            descriptor.size,
        );
        let mut reader = super::ProgressReader {
            // At most one byte more than announced, so an over-long source is caught without
            // reading it all.
            inner: reader.take(descriptor.size + 1),
            progress: progress.clone(),
        };
        let copied = io::copy(&mut reader, &mut writer);
        if let Some(p) = progress {
            p.0.end();
        }
        copied.map_err(Error::io(format!("cannot store {what}")))?;
        let (_, found, size) = writer.finish();
        if size != descriptor.size {
            return Err(Error::SizeMismatch {
                what,
                expected: descriptor.size,
                found: size,
            });
        }
        if found != descriptor.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: descriptor.digest.clone(),
                found,
            });
        }
        file.commit()
    }

    fn manifest_entries(&self) -> Result<Vec<Descriptor>, Error> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter(|d| d.is_manifest_like())
            .collect())
    }
}

/// Why a file of the layout could not be read.
enum ReadError {
    /// Not a regular file inside the layout folder.
    Refused {
        path: PathBuf,
        reason: String,
    },
    TooLarge,
    Io(io::Error),
}

impl ReadError {
    fn into_error(self, what: &str) -> Error {
        match self {
            ReadError::Refused { path, reason } => Error::Refused {
                what: path.display().to_string(),
                reason,
            },
            ReadError::TooLarge => Error::Refused {
                what: what.to_owned(),
                reason: "larger than custody reads".into(),
            },
            ReadError::Io(e) => Error::io(format!("cannot read {what}"))(e),
        }
    }
}

fn file_kind(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = m.file_type();
    if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

impl LayoutStore {
    /// Opens a file of the layout for reading, `None` when it does not exist. Only a regular
    /// file whose real path is inside the layout folder is opened; anything else is refused
    /// naming the path, before an `open` that could block (a FIFO) or read outside the folder.
    fn open_regular(&self, path: &Path) -> Result<Option<File>, ReadError> {
        // A writer replaces `index.json` and `oci-layout` by rename, so the file checked may be
        // swapped for a newer one before it is opened: check again a few times before refusing.
        for _ in 0..4 {
            match self.open_regular_once(path)? {
                Opened::File(file) => return Ok(Some(file)),
                Opened::Missing => return Ok(None),
                Opened::Changed => {}
            }
        }
        Err(ReadError::Refused {
            path: path.to_owned(),
            reason: "changed while being opened, again and again; not read".into(),
        })
    }

    fn open_regular_once(&self, path: &Path) -> Result<Opened, ReadError> {
        let refused = |reason: String| ReadError::Refused {
            path: path.to_owned(),
            reason,
        };
        let link = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(e) => return Err(ReadError::Io(e)),
        };
        let real = if link.file_type().is_symlink() {
            let real = fs::canonicalize(path)
                .map_err(|e| refused(format!("a symlink that does not resolve ({e}); not read")))?;
            let root = fs::canonicalize(&self.root).map_err(ReadError::Io)?;
            if !real.starts_with(&root) {
                return Err(refused(format!(
                    "a symlink to {}, outside the layout folder; not read",
                    real.display()
                )));
            }
            real
        } else {
            path.to_owned()
        };
        let meta = fs::metadata(&real).map_err(ReadError::Io)?;
        if !meta.is_file() {
            return Err(refused(format!(
                "{}, not a regular file; not read",
                file_kind(&meta)
            )));
        }
        // A folder on the way (`blobs/` itself) may be a symlink too: the real path decides.
        let root = fs::canonicalize(&self.root).map_err(ReadError::Io)?;
        let resolved = fs::canonicalize(&real).map_err(ReadError::Io)?;
        if !resolved.starts_with(&root) {
            return Err(refused(format!(
                "resolves to {}, outside the layout folder; not read",
                resolved.display()
            )));
        }
        let file = File::open(&resolved).map_err(ReadError::Io)?;
        // The file opened is the one checked (not swapped for a FIFO in between).
        let opened = file.metadata().map_err(ReadError::Io)?;
        {
            use std::os::unix::fs::MetadataExt as _;
            if !opened.is_file() || opened.dev() != meta.dev() || opened.ino() != meta.ino() {
                return Ok(Opened::Changed);
            }
        }
        Ok(Opened::File(file))
    }

    /// The whole of a layout file of at most `limit` bytes; `None` when it does not exist.
    fn read_capped(&self, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(file) = self.open_regular(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        Ok(Some(bytes))
    }
}

impl Store for LayoutStore {
    fn name(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("cannot inspect blob {digest}"))(e)),
        }
    }

    fn put_blob(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error> {
        if self.blob_exists(&descriptor.digest)? == Some(descriptor.size) {
            return Ok(());
        }
        let mut reader = source.open_at(0).map_err(Error::io(format!(
            "cannot read the source of {}",
            descriptor.digest
        )))?;
        self.write_blob(descriptor, &mut reader)
    }

    fn get_blob(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error> {
        let what = format!("blob {} in {}", descriptor.digest, self.name());
        let file = match self.open_regular(&self.blob_path(&descriptor.digest)) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Error::NotFound { what }),
            Err(e) => return Err(e.into_error(&what)),
        };
        let mut reader = HashingReader::new(file.take(descriptor.size + 1));
        let progress = super::ProgressHandle::track(
            &self.progress,
            || format!("read {}", descriptor.digest.short()),
            descriptor.size,
        );
        let mut sink = super::ProgressWriter {
            inner: sink,
            progress: progress.clone(),
        };
        let copied = io::copy(&mut reader, &mut sink);
        if let Some(p) = progress {
            p.0.end();
        }
        copied.map_err(Error::io(format!("cannot copy {what}")))?;
        let (found, size) = reader.finish();
        if size != descriptor.size {
            return Err(Error::SizeMismatch {
                what,
                expected: descriptor.size,
                found: size,
            });
        }
        if found != descriptor.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: descriptor.digest.clone(),
                found,
            });
        }
        Ok(())
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor, Error> {
        let checked = FetchedManifest::check("manifest", bytes.to_vec(), Some(media_type), None)?;
        let descriptor = referrer_descriptor(&checked.manifest, media_type, bytes);
        self.put_blob(&descriptor, BlobSource::Bytes(bytes))?;
        self.update_index(|index| {
            let present = index
                .manifests
                .iter()
                .any(|d| d.digest == descriptor.digest);
            if !present {
                index.manifests.push(descriptor.clone());
            }
            Ok(())
        })?;
        Ok(descriptor)
    }

    fn tag(&self, tag: &Tag, manifest: &FetchedManifest) -> Result<(), Error> {
        let mut descriptor = referrer_descriptor(
            &manifest.manifest,
            &manifest.descriptor.media_type,
            &manifest.bytes,
        );
        descriptor
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), tag.as_str().to_owned());
        self.update_index(|index| {
            index.manifests.retain(|d| {
                let same_tag = d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
                    == Some(tag.as_str());
                let untagged_twin = d.digest == descriptor.digest
                    && !d.annotations.contains_key(ANNOTATION_REF_NAME);
                !same_tag && !untagged_twin
            });
            index.manifests.push(descriptor);
            Ok(())
        })
    }

    fn get_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Error> {
        let what = format!("manifest {digest} in {}", self.name());
        let bytes = match self.read_capped(&self.blob_path(digest), MAX_MANIFEST_SIZE as u64) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(Error::NotFound { what }),
            Err(ReadError::TooLarge) => {
                return Err(Error::ManifestTooLarge {
                    what,
                    limit: MAX_MANIFEST_SIZE,
                });
            }
            Err(e) => return Err(e.into_error(&what)),
        };
        let served = self
            .manifest_entries()?
            .into_iter()
            .find(|d| d.digest == *digest)
            .map(|d| d.media_type);
        FetchedManifest::check(&what, bytes, served.as_deref(), Some(digest))
    }

    fn get_tagged(&self, tag: &Tag) -> Result<Option<FetchedManifest>, Error> {
        let entry = self.manifest_entries()?.into_iter().find(|d| {
            d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag.as_str())
        });
        match entry {
            Some(d) => self.get_manifest(&d.digest).map(Some),
            None => Ok(None),
        }
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers, Error> {
        let mut seen = std::collections::BTreeSet::new();
        let mut descriptors = Vec::new();
        for entry in self.manifest_entries()? {
            if !seen.insert(entry.digest.clone()) || entry.digest == *subject {
                continue;
            }
            let fetched = self.get_manifest(&entry.digest)?;
            if fetched.manifest.subject().map(|s| &s.digest) == Some(subject) {
                descriptors.push(referrer_descriptor(
                    &fetched.manifest,
                    &fetched.descriptor.media_type,
                    &fetched.bytes,
                ));
            }
        }
        Ok(Referrers {
            path: ReferrersPath::LayoutIndex,
            descriptors,
        })
    }

    fn tags(&self) -> Result<Vec<Tag>, Error> {
        let mut tags: Vec<Tag> = self
            .manifest_entries()?
            .iter()
            .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME))
            .filter_map(|t| t.parse().ok())
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        let removed = self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| d.digest != *digest);
            Ok(before != index.manifests.len())
        })?;
        if !removed {
            return Err(Error::NotFound {
                what: format!("manifest {digest} in {}", self.name()),
            });
        }
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cannot delete manifest {digest}"))(e)),
        }
    }
}

/// One attempt at opening a layout file.
enum Opened {
    File(File),
    Missing,
    /// Another file took the path between the check and the open.
    Changed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::oci::MEDIA_TYPE_IMAGE_MANIFEST;
    use crate::storage::store::testing::artifact;

    #[test]
    fn blobs_round_trip_and_bad_sources_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let d = Descriptor::of("text/plain", b"hello");
        store.put_blob(&d, BlobSource::Bytes(b"hello")).unwrap();
        let mut out = Vec::new();
        store.get_blob(&d, &mut out).unwrap();
        assert_eq!(out, b"hello");

        let wrong = Descriptor::of("text/plain", b"other");
        let err = store
            .put_blob(&wrong, BlobSource::Bytes(b"hellx"))
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let err = store
            .put_blob(&wrong, BlobSource::Bytes(b"longer input"))
            .unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert_eq!(store.blob_exists(&wrong.digest).unwrap(), None);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn tampered_blob_is_refused_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let d = Descriptor::of("text/plain", b"hello");
        store.put_blob(&d, BlobSource::Bytes(b"hello")).unwrap();
        fs::write(store.blob_path(&d.digest), b"jello").unwrap();
        let err = store.get_blob(&d, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn manifests_tags_and_referrers() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let layer = Descriptor::of("text/plain", b"a");
        let bytes = artifact(&layer, None);
        let d = store
            .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        let fetched = store.get_manifest(&d.digest).unwrap();
        let tag: Tag = "v1".parse().unwrap();
        store.tag(&tag, &fetched).unwrap();
        assert_eq!(
            store.get_tagged(&tag).unwrap().unwrap().descriptor.digest,
            d.digest
        );
        assert_eq!(store.tags().unwrap(), vec![tag.clone()]);

        let referrer = artifact(&layer, Some(d.clone()));
        let r = store
            .put_manifest(&referrer, MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        let found = store.referrers(&d.digest).unwrap();
        assert_eq!(found.descriptors.len(), 1);
        assert_eq!(found.descriptors[0].digest, r.digest);
        assert_eq!(
            found.descriptors[0].artifact_type.as_deref(),
            Some("application/test")
        );
        // index.json has one entry per manifest: the tagged one and the untagged referrer.
        assert_eq!(store.read_index().unwrap().manifests.len(), 2);
    }

    #[test]
    fn concurrent_index_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        LayoutStore::open_or_create(&root).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let store = LayoutStore::open_or_create(&root).unwrap();
                    for i in 0..10 {
                        let layer = Descriptor::of("text/plain", format!("{t}-{i}").as_bytes());
                        let bytes = artifact(&layer, None);
                        store
                            .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = LayoutStore::open_or_create(&root).unwrap();
        assert_eq!(store.read_index().unwrap().manifests.len(), 80);
        // Each writer removed the lock file with its lock: none is left behind.
        assert!(!root.join(LOCK_FILE).exists());
    }

    #[test]
    fn refuses_a_folder_that_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LAYOUT_FILE), b"nope").unwrap();
        let err = LayoutStore::open_or_create(dir.path()).err().unwrap();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
    }

    /// Replaces `path` with a FIFO and starts a writer that puts `content` into it once
    /// someone opens it for reading; `drain` lets that writer finish.
    fn fifo_with_writer(path: &Path, content: Vec<u8>) -> std::thread::JoinHandle<()> {
        fs::remove_file(path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
        let path = path.to_owned();
        std::thread::spawn(move || {
            // Blocks until a reader opens the FIFO: the old code, or `drain`.
            let mut f = OpenOptions::new().write(true).open(&path).unwrap();
            let _ = f.write_all(&content);
        })
    }

    fn drain(path: &Path, writer: std::thread::JoinHandle<()>) {
        // Opening a FIFO for reading and writing does not wait (Linux) and releases the writer.
        let release = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        writer.join().unwrap();
        drop(release);
    }

    fn refused_naming(err: &Error, path: &Path, why: &str) {
        let Error::Refused { what, reason } = err else {
            panic!("not refused: {err:?}");
        };
        assert_eq!(what, &path.display().to_string(), "{err}");
        assert!(reason.contains(why), "{reason:?} lacks {why:?}");
    }

    /// Issue 10, finding 10: a FIFO among the blobs is refused, naming its path, without
    /// opening it (opening a FIFO waits for a writer: `verify --offline` hung). The writer
    /// here feeds the right bytes, so only a refusal to open passes.
    #[test]
    fn a_fifo_blob_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let d = Descriptor::of("text/plain", b"hello");
        store.put_blob(&d, BlobSource::Bytes(b"hello")).unwrap();
        let path = store.blob_path(&d.digest);
        let writer = fifo_with_writer(&path, b"hello".to_vec());
        let err = store.get_blob(&d, &mut Vec::new()).unwrap_err();
        refused_naming(&err, &path, "a FIFO, not a regular file");
        drain(&path, writer);

        let bytes = artifact(&d, None);
        let m = store
            .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        let path = store.blob_path(&m.digest);
        let writer = fifo_with_writer(&path, bytes);
        let err = store.get_manifest(&m.digest).unwrap_err();
        refused_naming(&err, &path, "a FIFO, not a regular file");
        drain(&path, writer);

        // index.json too: every file of the layout is read the same way.
        let index = dir.path().join(INDEX_FILE);
        let writer = fifo_with_writer(&index, br#"{"schemaVersion":2,"manifests":[]}"#.to_vec());
        let err = store.tags().unwrap_err();
        refused_naming(&err, &index, "a FIFO");
        drain(&index, writer);
    }

    /// A blob that is a symlink out of the layout is refused, even when the file it points to
    /// has the right digest; a symlink to another file inside the layout is read.
    #[test]
    fn a_symlink_out_of_the_layout_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, b"hello").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let d = Descriptor::of("text/plain", b"hello");
        let path = store.blob_path(&d.digest);
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let err = store.get_blob(&d, &mut Vec::new()).unwrap_err();
        refused_naming(&err, &path, "outside the layout folder");

        // Inside the layout: fine.
        fs::remove_file(&path).unwrap();
        fs::write(dir.path().join("copy"), b"hello").unwrap();
        std::os::unix::fs::symlink(dir.path().join("copy"), &path).unwrap();
        let mut out = Vec::new();
        store.get_blob(&d, &mut out).unwrap();
        assert_eq!(out, b"hello");

        // A device, through a symlink: refused before it is opened.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let err = store.get_blob(&d, &mut Vec::new()).unwrap_err();
        refused_naming(&err, &path, "outside the layout folder");

        // The blobs folder itself pointing elsewhere.
        let other = tempfile::tempdir().unwrap();
        let sha = other.path().join("sha256");
        fs::create_dir_all(&sha).unwrap();
        fs::write(sha.join(d.digest.hex()), b"hello").unwrap();
        fs::remove_dir_all(dir.path().join("blobs")).unwrap();
        std::os::unix::fs::symlink(other.path(), dir.path().join("blobs")).unwrap();
        let err = store.get_blob(&d, &mut Vec::new()).unwrap_err();
        refused_naming(&err, &path, "outside the layout folder");
    }
}
