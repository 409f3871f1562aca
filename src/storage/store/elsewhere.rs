//! Signatures and attestations kept in another repository than their artifact, for registries
//! where the signer may not push beside the image (cosign's `COSIGN_REPOSITORY`). Referrer
//! manifests there still name the artifact's digest as their `subject`, the fallback index
//! `sha256-<hex>` and the legacy `.sig`/`.att` tags live there too, and the artifact's own blobs
//! are never copied there. [`Evidence`] is the store evidence code reads and writes through.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;

use super::{BlobSource, Error, FetchedManifest, Options, Referrers, Store};
use crate::foundation::digest::Digest;
use crate::foundation::oci::Descriptor;
use crate::foundation::reference::{self, Reference, Tag};

/// custody's own variable naming the attestations repository; it wins over cosign's.
pub const ENV_CUSTODY: &str = "CUSTODY_ATTESTATIONS_REPOSITORY";
/// cosign's variable, honoured so that one setting serves both tools.
pub const ENV_COSIGN: &str = "COSIGN_REPOSITORY";

/// Who named the attestations repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// `--attestations-repository`.
    Flag,
    /// [`ENV_CUSTODY`] or [`ENV_COSIGN`].
    Environment { variable: String },
    /// The `attestations_repository` of a policy scope.
    Policy { scope: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("--attestations-repository"),
            Source::Environment { variable } => f.write_str(variable),
            Source::Policy { scope } => write!(f, "policy scope {scope}"),
        }
    }
}

/// A repository that holds other repositories' signatures and attestations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttestationsRepository {
    /// `host/repo` or `oci:<dir>`.
    pub repository: String,
    pub source: Source,
    #[serde(skip)]
    reference: Reference,
}

/// Why a name is not an attestations repository.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepositoryError {
    #[error("attestations repository {input:?} (from {from}) is not a repository")]
    NotAReference {
        input: String,
        from: Source,
        #[source]
        error: Box<reference::Error>,
    },
    #[error(
        "attestations repository {input:?} (from {from}) names a tag or digest; give the repository only"
    )]
    NotBare { input: String, from: Source },
}

impl AttestationsRepository {
    /// Parses a repository (`host/repo` or `oci:<dir>`, without tag or digest).
    pub fn parse(input: &str, source: Source) -> Result<AttestationsRepository, RepositoryError> {
        let reference: Reference =
            input
                .parse()
                .map_err(|error| RepositoryError::NotAReference {
                    input: input.to_owned(),
                    from: source.clone(),
                    error: Box::new(error),
                })?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(RepositoryError::NotBare {
                input: input.to_owned(),
                from: source,
            });
        }
        Ok(AttestationsRepository {
            repository: reference.repository(),
            source,
            reference,
        })
    }

    /// The repository named by the flag, else `CUSTODY_ATTESTATIONS_REPOSITORY`, else
    /// `COSIGN_REPOSITORY` (`env` looks a variable up; empty values count as unset).
    pub fn from_flag_or_env(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AttestationsRepository>, RepositoryError> {
        if let Some(flag) = flag {
            return Self::parse(flag, Source::Flag).map(Some);
        }
        for variable in [ENV_CUSTODY, ENV_COSIGN] {
            if let Some(value) = env(variable).filter(|v| !v.trim().is_empty()) {
                let source = Source::Environment {
                    variable: variable.to_owned(),
                };
                return Self::parse(value.trim(), source).map(Some);
            }
        }
        Ok(None)
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Opens the repository to write to it (a layout folder is created).
    pub fn open(&self, options: &Options) -> Result<Box<dyn Store>, Error> {
        super::open(&self.reference, options)
    }

    /// Opens the repository to read from it (a layout folder must exist).
    pub fn open_existing(&self, options: &Options) -> Result<Box<dyn Store>, Error> {
        super::open_existing(&self.reference, options)
    }
}

/// Where a verification looks for evidence: the repository given on the command line or in the
/// environment when there is one, else the policy scope's, else beside the artifact.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    /// From the flag or the environment; wins over the policy.
    pub repository: Option<AttestationsRepository>,
    /// How to open a repository (credentials, timeouts, plain-HTTP hosts).
    pub store_options: Options,
}

impl Lookup {
    /// The repository for an artifact in a scope whose policy names `scope_repository`.
    pub fn pick(
        &self,
        scope_repository: Option<&AttestationsRepository>,
    ) -> Option<AttestationsRepository> {
        self.repository
            .clone()
            .or_else(|| scope_repository.cloned())
    }
}

/// The store one artifact's evidence is read from and written to: its attestations
/// repository when it has one, else its own repository. Everything goes there, except that a
/// manifest it does not hold is looked up in the artifact's repository (the subject itself,
/// which signing checks), and the name stays the artifact's (statements and cosign's
/// `docker-reference` name where the artifact lives, not where its evidence is).
#[derive(Clone, Copy)]
pub struct Evidence<'a> {
    artifact: &'a dyn Store,
    elsewhere: Option<&'a dyn Store>,
}

impl<'a> Evidence<'a> {
    pub fn new(artifact: &'a dyn Store, elsewhere: Option<&'a dyn Store>) -> Evidence<'a> {
        Evidence {
            artifact,
            elsewhere,
        }
    }

    /// The artifact's own store.
    pub fn artifact(&self) -> &'a dyn Store {
        self.artifact
    }

    /// The store evidence really lives in.
    pub fn target(&self) -> &'a dyn Store {
        self.elsewhere.unwrap_or(self.artifact)
    }

    /// The repository evidence lives in: `host/repo` or `oci:<dir>`.
    pub fn repository(&self) -> String {
        self.target().name()
    }

    /// Whether evidence lives in another repository than the artifact.
    pub fn is_elsewhere(&self) -> bool {
        self.elsewhere.is_some()
    }
}

impl Store for Evidence<'_> {
    fn name(&self) -> String {
        self.artifact.name()
    }

    fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        self.target().blob_exists(digest)
    }

    fn put_blob(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error> {
        self.target().put_blob(descriptor, source)
    }

    fn get_blob(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error> {
        self.target().get_blob(descriptor, sink)
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor, Error> {
        self.target().put_manifest(bytes, media_type)
    }

    fn tag(&self, tag: &Tag, manifest: &FetchedManifest) -> Result<(), Error> {
        self.target().tag(tag, manifest)
    }

    fn get_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Error> {
        let Some(elsewhere) = self.elsewhere else {
            return self.artifact.get_manifest(digest);
        };
        match elsewhere.get_manifest(digest) {
            Err(Error::NotFound { .. } | Error::NoRepository { .. }) => {
                self.artifact.get_manifest(digest)
            }
            found => found,
        }
    }

    fn get_tagged(&self, tag: &Tag) -> Result<Option<FetchedManifest>, Error> {
        self.target().get_tagged(tag)
    }

    fn adopt_manifest(&self, bytes: &[u8], media_type: &str) -> Result<bool, Error> {
        self.target().adopt_manifest(bytes, media_type)
    }

    fn present_referrers(&self, subject: &Digest) -> Result<Option<BTreeSet<Digest>>, Error> {
        self.target().present_referrers(subject)
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers, Error> {
        self.target().referrers(subject)
    }

    fn tags(&self) -> Result<Vec<Tag>, Error> {
        self.target().tags()
    }

    fn each_tag(&self, visit: &mut dyn FnMut(Tag)) -> Result<(), Error> {
        self.target().each_tag(visit)
    }

    fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        self.target().delete_manifest(digest)
    }

    fn delete_tag(&self, tag: &Tag) -> Result<(), Error> {
        self.target().delete_tag(tag)
    }

    fn mount_source(&self, other: &dyn Store) -> Option<String> {
        self.target().mount_source(other)
    }

    fn mount_blob(&self, descriptor: &Descriptor, from: &str) -> Result<bool, Error> {
        self.target().mount_blob(descriptor, from)
    }

    fn registry_host(&self) -> Option<String> {
        self.target().registry_host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::attach;
    use crate::foundation::oci::{self, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
    use crate::storage::store::layout::LayoutStore;

    fn subject(store: &dyn Store) -> Descriptor {
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/x".into()),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: None,
            annotations: Default::default(),
        };
        store
            .put_blob(&Descriptor::empty_config(), BlobSource::Bytes(b"{}"))
            .unwrap();
        store
            .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap()
    }

    #[test]
    fn the_flag_wins_then_custodys_variable_then_cosigns() {
        let env = |k: &str| match k {
            ENV_CUSTODY => Some("reg.example/custody-sigs".to_owned()),
            ENV_COSIGN => Some("reg.example/cosign-sigs".to_owned()),
            _ => None,
        };
        let flag = AttestationsRepository::from_flag_or_env(Some("reg.example/flag"), env)
            .unwrap()
            .unwrap();
        assert_eq!(
            (flag.repository.as_str(), flag.source),
            ("reg.example/flag", Source::Flag)
        );
        let custody = AttestationsRepository::from_flag_or_env(None, env)
            .unwrap()
            .unwrap();
        assert_eq!(custody.repository, "reg.example/custody-sigs");
        let cosign = AttestationsRepository::from_flag_or_env(None, |k: &str| {
            (k == ENV_COSIGN).then(|| "reg.example/cosign-sigs".to_owned())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            cosign.source,
            Source::Environment {
                variable: ENV_COSIGN.into()
            }
        );
        let empty = AttestationsRepository::from_flag_or_env(None, |_: &str| Some(" ".into()));
        assert_eq!(empty, Ok(None));
    }

    #[test]
    fn a_tag_digest_or_malformed_name_is_refused() {
        assert!(matches!(
            AttestationsRepository::parse("reg.example/sigs:v1", Source::Flag),
            Err(RepositoryError::NotBare { .. })
        ));
        let pinned = format!("reg.example/sigs@{}", Digest::of(b"x"));
        assert!(matches!(
            AttestationsRepository::parse(&pinned, Source::Flag),
            Err(RepositoryError::NotBare { .. })
        ));
        assert!(matches!(
            AttestationsRepository::parse("reg.example/UPPER case", Source::Flag),
            Err(RepositoryError::NotAReference { .. })
        ));
    }

    /// Evidence written through the view lands in the other repository, names the artifact's
    /// digest as its subject, and is found there again; the artifact's repository gets nothing.
    #[test]
    fn evidence_goes_to_the_other_repository_and_is_found_there() {
        let dir = tempfile::tempdir().unwrap();
        let images = LayoutStore::open_or_create(&dir.path().join("images")).unwrap();
        let sigs = LayoutStore::open_or_create(&dir.path().join("sigs")).unwrap();
        let subject = subject(&images);
        let view = Evidence::new(&images, Some(&sigs));
        attach::attach_bundle(
            &view,
            &subject,
            b"{}",
            attach::BundleContent::DsseEnvelope,
            None,
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        // The subject is still reachable through the view (signing checks it).
        assert_eq!(
            view.get_manifest(&subject.digest)
                .unwrap()
                .descriptor
                .digest,
            subject.digest
        );
        assert!(
            images
                .referrers(&subject.digest)
                .unwrap()
                .descriptors
                .is_empty()
        );
        let found = attach::discover(&view, &subject.digest).unwrap();
        assert_eq!(found.bundles.len(), 1);
        assert_eq!(
            attach::discover(&sigs, &subject.digest)
                .unwrap()
                .bundles
                .len(),
            1
        );
        assert_eq!(view.name(), images.name());
        assert_eq!(view.repository(), sigs.name());
    }
}
