//! An OCI image layout folder (`oci-layout`, `index.json`, `blobs/sha256/`): custody's embedded
//! default store, and the air-gap format.
//!
//! Every write goes to a temporary file and is renamed into place, so a crash never leaves a
//! blob under a wrong name or a broken `index.json`. `index.json` is rewritten under an
//! exclusive file lock, so concurrent writers from several processes do not lose entries.
//! Every manifest stored is listed in `index.json` (tagged with `org.opencontainers.image.ref.name`
//! or untagged), which is how referrers are found again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::oci::{
    self, ANNOTATION_REF_NAME, Descriptor, ImageIndex, MAX_MANIFEST_SIZE, referrer_descriptor,
};
use crate::reference::Tag;

use super::{BlobSource, Error, FetchedManifest, Referrers, ReferrersPath, Store};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".index.json.lock";

pub struct LayoutStore {
    root: PathBuf,
}

impl LayoutStore {
    /// Opens a layout folder, creating it (and its `oci-layout` file) when missing.
    pub fn open_or_create(root: &Path) -> Result<LayoutStore, Error> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(Error::io(format!(
            "cannot create the OCI layout folder {}",
            root.display()
        )))?;
        let store = LayoutStore {
            root: root.to_owned(),
        };
        let layout_file = root.join(LAYOUT_FILE);
        match fs::read(&layout_file) {
            Ok(bytes) => {
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
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut f = super::AtomicFile::create(&layout_file)?;
                f.write_all(LAYOUT_CONTENT)
                    .map_err(Error::io(format!("cannot write {}", layout_file.display())))?;
                f.commit()?;
            }
            Err(e) => {
                return Err(Error::io(format!("cannot read {}", layout_file.display()))(
                    e,
                ));
            }
        }
        if !root.join(INDEX_FILE).exists() {
            store.update_index(|_| Ok(()))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn read_index(&self) -> Result<ImageIndex, Error> {
        let path = self.root.join(INDEX_FILE);
        let bytes = match read_capped(&path, 64 * MAX_MANIFEST_SIZE as u64) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ImageIndex::empty()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()))(e)),
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
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(format!("cannot open {}", lock_path.display())))?;
        lock.lock()
            .map_err(Error::io(format!("cannot lock {}", lock_path.display())))?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        let mut file = super::AtomicFile::create(&self.root.join(INDEX_FILE))?;
        file.write_all(&oci::to_bytes(&index))
            .map_err(Error::io("cannot write index.json"))?;
        file.commit()?;
        drop(lock);
        Ok(out)
    }

    fn write_blob(&self, descriptor: &Descriptor, reader: &mut dyn Read) -> Result<(), Error> {
        let target = self.blob_path(&descriptor.digest);
        let mut file = super::AtomicFile::create(&target)?;
        let what = format!("blob {}", descriptor.digest);
        let mut writer = HashingWriter::new(&mut file);
        // Copy at most one byte more than announced, so an over-long source is caught without
        // reading it all.
        io::copy(&mut reader.take(descriptor.size + 1), &mut writer)
            .map_err(Error::io(format!("cannot store {what}")))?;
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

fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(bytes)
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
        let file = match File::open(self.blob_path(&descriptor.digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what });
            }
            Err(e) => return Err(Error::io(format!("cannot open {what}"))(e)),
        };
        let mut reader = HashingReader::new(file.take(descriptor.size + 1));
        io::copy(&mut reader, sink).map_err(Error::io(format!("cannot copy {what}")))?;
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
        let bytes = match read_capped(&self.blob_path(digest), MAX_MANIFEST_SIZE as u64) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what });
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Error::ManifestTooLarge {
                    what,
                    limit: MAX_MANIFEST_SIZE,
                });
            }
            Err(e) => return Err(Error::io(format!("cannot read {what}"))(e)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};

    fn artifact(layer: &Descriptor, subject: Option<Descriptor>) -> Vec<u8> {
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
    }

    #[test]
    fn refuses_a_folder_that_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LAYOUT_FILE), b"nope").unwrap();
        let err = LayoutStore::open_or_create(dir.path()).err().unwrap();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
    }
}
