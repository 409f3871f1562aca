//! What verification is judged by, loaded from files and reloaded when they change: the
//! policy, the trusted root and the vulnerability database. Each load is one [`Snapshot`] with
//! the digests the verdict cache is keyed on; a request uses one snapshot from start to end.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::Error;
use super::Event;
use super::cache::Key;
use crate::decisions::policy::{Format, MAX_POLICY_SIZE, Policy};
use crate::decisions::vuln::{Database, Limits};
use crate::evidence::sign::verify::{MAX_TRUSTED_ROOT_SIZE, TrustedRoot};
use crate::evidence::trust::{self, RootOrigin};
use crate::foundation::digest::Digest;
use crate::foundation::reference::Reference;

/// Files a database folder may hold before its change check stops counting (it is loaded whole
/// anyway; this bounds the stat walk done every interval).
const MAX_DB_ENTRIES: usize = 500_000;

/// The files to watch.
#[derive(Debug, Clone)]
pub struct Paths {
    pub policy: PathBuf,
    pub trusted_root: Option<PathBuf>,
    pub vulnerability_dbs: Vec<PathBuf>,
}

/// One consistent set of inputs.
pub struct Snapshot {
    pub policy: Policy,
    /// sha256 of the policy file's bytes.
    pub policy_digest: Digest,
    pub root: TrustedRoot,
    pub root_origin: Option<RootOrigin>,
    pub root_digest: Option<Digest>,
    pub db: Option<Arc<Database>>,
    pub db_digest: Option<Digest>,
}

impl Snapshot {
    /// The cache key of `reference` at `digest` under this snapshot.
    pub fn key(&self, reference: &Reference, scope: Option<&str>, digest: Digest) -> Key {
        Key {
            repository: scope.map_or_else(|| reference.repository(), str::to_owned),
            digest,
            policy: self.policy_digest.clone(),
            trusted_root: self.root_digest.clone(),
            vulnerability_db: self.db_digest.clone(),
        }
    }
}

/// What was last read of each file, to see a change.
#[derive(Default)]
struct Seen {
    policy: Option<Digest>,
    root: Option<Digest>,
    db: Option<Vec<(PathBuf, u64, Option<SystemTime>)>>,
}

/// The current snapshot and the files it came from.
pub struct Watched {
    paths: Paths,
    current: RwLock<Arc<Snapshot>>,
    seen: Mutex<Seen>,
}

fn read_policy(path: &Path) -> Result<(Policy, Digest), Error> {
    let bytes = trust::read_bounded(path, MAX_POLICY_SIZE).map_err(|e| Error::Policy {
        path: path.to_owned(),
        source: crate::decisions::policy::PolicyError::Read {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        },
    })?;
    let digest = Digest::of(&bytes);
    let format = if path.extension().is_some_and(|e| e == "json") {
        Format::Json
    } else {
        Format::Yaml
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let policy =
        Policy::parse(&bytes, format, base, &path.display().to_string()).map_err(|source| {
            Error::Policy {
                path: path.to_owned(),
                source,
            }
        })?;
    Ok((policy, digest))
}

fn root_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    trust::read_bounded(path, MAX_TRUSTED_ROOT_SIZE).map_err(|source| Error::TrustedRoot {
        path: path.to_owned(),
        source,
    })
}

fn parse_root(path: &Path, bytes: &[u8]) -> Result<TrustedRoot, Error> {
    TrustedRoot::from_json(bytes).map_err(|source| Error::TrustedRoot {
        path: path.to_owned(),
        source: trust::TrustError::TrustedRoot {
            source_name: path.display().to_string(),
            source,
        },
    })
}

/// A loaded database and its content digest.
type LoadedDb = (Arc<Database>, Option<Digest>);

fn load_db(paths: &[PathBuf]) -> Result<Option<LoadedDb>, Error> {
    if paths.is_empty() {
        return Ok(None);
    }
    let db = Database::load(paths, &Limits::default()).map_err(Error::Database)?;
    let digest = db.identity().content_digest.clone();
    Ok(Some((Arc::new(db), digest)))
}

/// Size and modification time of every file under `paths` (bounded).
fn db_stamp(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        if out.len() >= MAX_DB_ENTRIES {
            break;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            out.push((path, 0, None));
            continue;
        };
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
        out.push((path, meta.len(), meta.modified().ok()));
    }
    out.sort();
    out
}

impl Watched {
    /// Loads every file once; any failure is an error (nothing to fall back on yet).
    pub fn load(paths: Paths) -> Result<Watched, Error> {
        let (policy, policy_digest) = read_policy(&paths.policy)?;
        let (root, root_origin, root_digest) = match &paths.trusted_root {
            None => (TrustedRoot::empty(), None, None),
            Some(path) => {
                let bytes = root_bytes(path)?;
                (
                    parse_root(path, &bytes)?,
                    Some(trust::file_origin(path, &bytes)),
                    Some(Digest::of(&bytes)),
                )
            }
        };
        let db_seen = db_stamp(&paths.vulnerability_dbs);
        let (db, db_digest) = match load_db(&paths.vulnerability_dbs)? {
            Some((db, digest)) => (Some(db), digest),
            None => (None, None),
        };
        let seen = Seen {
            policy: Some(policy_digest.clone()),
            root: root_digest.clone(),
            db: Some(db_seen),
        };
        Ok(Watched {
            paths,
            current: RwLock::new(Arc::new(Snapshot {
                policy,
                policy_digest,
                root,
                root_origin,
                root_digest,
                db,
                db_digest,
            })),
            seen: Mutex::new(seen),
        })
    }

    /// The snapshot in use now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .expect("snapshot lock is never poisoned")
            .clone()
    }

    /// Rereads the files; a changed one that loads replaces its part of the snapshot, one that
    /// does not is reported and the previous content stays. Blocking.
    pub fn poll(&self) -> Vec<Event> {
        let mut seen = self.seen.lock().expect("seen lock is never poisoned");
        let mut events = Vec::new();
        let old = self.current();
        let mut next = Snapshot {
            policy: old.policy.clone(),
            policy_digest: old.policy_digest.clone(),
            root: old.root.clone(),
            root_origin: old.root_origin.clone(),
            root_digest: old.root_digest.clone(),
            db: old.db.clone(),
            db_digest: old.db_digest.clone(),
        };
        let mut changed = false;
        let failed = |what: &str, error: &Error| Event::ReloadFailed {
            what: what.to_owned(),
            error: super::chain(error),
        };

        let policy_path = &self.paths.policy;
        let what = format!("policy {}", policy_path.display());
        match trust::read_bounded(policy_path, MAX_POLICY_SIZE) {
            Ok(bytes) if seen.policy.as_ref() != Some(&Digest::of(&bytes)) => {
                seen.policy = Some(Digest::of(&bytes));
                match read_policy(policy_path) {
                    Ok((policy, digest)) => {
                        seen.policy = Some(digest.clone());
                        next.policy = policy;
                        next.policy_digest = digest;
                        changed = true;
                        events.push(Event::Reloaded { what });
                    }
                    Err(e) => events.push(failed(&what, &e)),
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Reported once per change: a missing file is a change too.
                if seen.policy.take().is_some() {
                    events.push(Event::ReloadFailed {
                        what,
                        error: e.to_string(),
                    });
                }
            }
        }

        if let Some(path) = &self.paths.trusted_root {
            let what = format!("trusted root {}", path.display());
            match root_bytes(path) {
                Ok(bytes) if seen.root.as_ref() != Some(&Digest::of(&bytes)) => {
                    let digest = Digest::of(&bytes);
                    seen.root = Some(digest.clone());
                    match parse_root(path, &bytes) {
                        Ok(root) => {
                            next.root = root;
                            next.root_origin = Some(trust::file_origin(path, &bytes));
                            next.root_digest = Some(digest);
                            changed = true;
                            events.push(Event::Reloaded { what });
                        }
                        Err(e) => events.push(failed(&what, &e)),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if seen.root.take().is_some() {
                        events.push(failed(&what, &e));
                    }
                }
            }
        }

        if !self.paths.vulnerability_dbs.is_empty() {
            let stamp = db_stamp(&self.paths.vulnerability_dbs);
            if seen.db.as_ref() != Some(&stamp) {
                seen.db = Some(stamp);
                let what = "vulnerability database".to_owned();
                match load_db(&self.paths.vulnerability_dbs) {
                    Ok(Some((db, digest))) => {
                        if digest != next.db_digest {
                            next.db = Some(db);
                            next.db_digest = digest;
                            changed = true;
                            events.push(Event::Reloaded { what });
                        }
                    }
                    Ok(None) => {}
                    Err(e) => events.push(failed(&what, &e)),
                }
            }
        }

        if changed {
            *self
                .current
                .write()
                .expect("snapshot lock is never poisoned") = Arc::new(next);
        }
        events
    }
}
