//! The client side of TUF's conformance suite (`theupdateframework/tuf-conformance`, its
//! CLIENT-CLI protocol): `init` trusts a root, `refresh` updates the top-level metadata,
//! `download` fetches verified targets. The metadata folder holds exactly the trusted set under
//! unversioned names, as the suite inspects it; targets are written under their paths.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256, Sha512};
use sigstore_tuf::Updater;

use super::{MAX_ROOT_SIZE, TrustError, block_on, http::HttpRepository, read_bounded};

/// Where the suite's client keeps its state and fetches from.
#[derive(Clone, Debug)]
pub struct Client {
    pub metadata_dir: PathBuf,
    pub metadata_url: String,
    /// Default: `<metadata_url>/targets`.
    pub target_base_url: Option<String>,
}

/// `init ROOT`: the given root becomes the trusted `root.json`.
pub fn init(metadata_dir: &Path, root: &Path) -> Result<(), TrustError> {
    let bytes = read_bounded(root, MAX_ROOT_SIZE)?;
    let path = metadata_dir.join("root.json");
    std::fs::create_dir_all(metadata_dir)
        .and_then(|()| std::fs::write(&path, bytes))
        .map_err(|source| TrustError::Write { path, source })
}

/// The trusted set only: versioned copies and cached targets are not kept here.
struct TrustedSet(PathBuf);

impl sigstore_tuf::MetadataStore for TrustedSet {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if name.contains('/') {
            return Ok(None);
        }
        match std::fs::read(self.0.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sigstore_tuf::Error::io(format!("reading {name}"), e)),
        }
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        let versioned = name
            .split('.')
            .next()
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if name.contains('/') || versioned {
            return Ok(());
        }
        std::fs::write(self.0.join(name), bytes)
            .map_err(|e| sigstore_tuf::Error::io(format!("writing {name}"), e))
    }
}

impl Client {
    fn updater(&self) -> Result<Updater, TrustError> {
        let err = |source| TrustError::Update {
            mirror: self.metadata_url.clone(),
            source,
        };
        let root = read_bounded(&self.metadata_dir.join("root.json"), MAX_ROOT_SIZE)?;
        let client = crate::foundation::http::client().map_err(TrustError::Http)?;
        let mut repo = HttpRepository::new(&self.metadata_url, client);
        if let Some(t) = &self.target_base_url {
            repo = repo.with_targets(t);
        }
        Ok(Updater::new(repo, &root)
            .map_err(err)?
            .with_store(TrustedSet(self.metadata_dir.clone())))
    }

    /// `refresh`: root chain, timestamp, snapshot, targets.
    pub fn refresh(&self, now: jiff::Timestamp) -> Result<(), TrustError> {
        let mut updater = self.updater()?;
        block_on(updater.refresh(now)).map_err(|source| TrustError::Update {
            mirror: self.metadata_url.clone(),
            source,
        })
    }

    /// `download`: refresh, then each target (through delegations) into `target_dir`, kept
    /// when a byte-identical copy is already there.
    pub fn download(
        &self,
        names: &[String],
        target_dir: &Path,
        now: jiff::Timestamp,
    ) -> Result<(), TrustError> {
        let err = |source| TrustError::Update {
            mirror: self.metadata_url.clone(),
            source,
        };
        let mut updater = self.updater()?;
        block_on(updater.refresh(now)).map_err(err)?;
        for name in names {
            let info = block_on(updater.get_target_info(name, now))
                .map_err(err)?
                .ok_or_else(|| err(sigstore_tuf::Error::TargetNotFound(name.clone())))?;
            let out = target_dir.join(local_name(name));
            if std::fs::read(&out).is_ok_and(|b| matches(&b, &info)) {
                continue;
            }
            let bytes = block_on(updater.download_target(&info, name)).map_err(err)?;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|source| TrustError::Write {
                    path: parent.into(),
                    source,
                })?;
            }
            std::fs::write(&out, bytes)
                .map_err(|source| TrustError::Write { path: out, source })?;
        }
        Ok(())
    }
}

/// A target path as a relative path under the target folder; one that would climb out is
/// reduced to its last component.
fn local_name(name: &str) -> PathBuf {
    let path = Path::new(name.trim_start_matches('/'));
    if path.components().all(|c| matches!(c, Component::Normal(_))) {
        return path.to_path_buf();
    }
    PathBuf::from(path.file_name().unwrap_or(path.as_os_str()))
}

fn matches(bytes: &[u8], info: &sigstore_tuf::TargetFile) -> bool {
    bytes.len() as u64 == info.length
        && !info.hashes.is_empty()
        && info.hashes.iter().all(|(algorithm, expected)| {
            let found = match algorithm.as_str() {
                "sha256" => hex::encode(Sha256::digest(bytes)),
                "sha512" => hex::encode(Sha512::digest(bytes)),
                _ => return false,
            };
            found.eq_ignore_ascii_case(expected)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_stay_under_the_target_folder() {
        assert_eq!(local_name("a/b.txt"), PathBuf::from("a/b.txt"));
        assert_eq!(local_name("/a.txt"), PathBuf::from("a.txt"));
        assert_eq!(local_name("../../etc/passwd"), PathBuf::from("passwd"));
        assert_eq!(local_name("a/../b"), PathBuf::from("b"));
    }
}
