//! What verification is judged by, loaded from files and reloaded when they change: the
//! policy, the trusted root and the vulnerability database. Each load is one [`Snapshot`] with
//! the digests the verdict cache is keyed on; a request uses one snapshot from start to end.
//!
//! A policy scope's own `trust:` (a `trusted_root.json` or a TUF mirror) is loaded with the
//! policy and re-read every interval, and chosen as `custody verify` chooses it: the
//! `--trusted-root` file when one is given, else the scope's, else the empty root.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::Error;
use super::Event;
use super::cache::Key;
use crate::decisions::policy::{Format, MAX_POLICY_SIZE, Policy, ScopeTrust};
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
    /// How scopes that name a TUF mirror obtain their root (cache folder, network); `None`:
    /// such a scope cannot be served.
    pub tuf: Option<trust::Options>,
}

/// The trusted root a policy scope names, loaded.
pub struct ScopeRoot {
    pub root: TrustedRoot,
    pub origin: RootOrigin,
    /// sha256 of the `trusted_root.json` bytes.
    pub digest: Digest,
}

/// The root, its origin and its digest one verification uses.
pub struct Trust<'a> {
    pub root: &'a TrustedRoot,
    pub origin: Option<&'a RootOrigin>,
    pub digest: Option<&'a Digest>,
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
    /// The roots of the policy's scopes, index for index; `None` for a scope without `trust:`.
    pub scope_roots: Vec<Option<Arc<ScopeRoot>>>,
}

impl Snapshot {
    /// The trusted root for verifying `repository`: the `--trusted-root` file, else the
    /// scope's `trust:`, else the empty root (as `custody verify` chooses).
    pub fn trust_for(&self, repository: &str) -> Trust<'_> {
        let flag = Trust {
            root: &self.root,
            origin: self.root_origin.as_ref(),
            digest: self.root_digest.as_ref(),
        };
        // Most policies name no scope roots: no scope lookup on the cached path then.
        if self.root_digest.is_some() || self.scope_roots.iter().all(Option::is_none) {
            return flag;
        }
        let scope_root = self.policy.scope_for(repository).and_then(|scope| {
            let i = self
                .policy
                .scopes
                .iter()
                .position(|s| std::ptr::eq(s, scope))?;
            self.scope_roots.get(i)?.as_deref()
        });
        match scope_root {
            Some(r) => Trust {
                root: &r.root,
                origin: Some(&r.origin),
                digest: Some(&r.digest),
            },
            None => flag,
        }
    }

    /// The cache key of `reference` at `digest` under this snapshot: the trusted root in it is
    /// the one the scope verifies with.
    pub fn key(&self, reference: &Reference, scope: Option<&str>, digest: Digest) -> Key {
        let repository = scope.map_or_else(|| reference.repository(), str::to_owned);
        let trusted_root = self.trust_for(&repository).digest.cloned();
        Key {
            repository,
            digest,
            policy: self.policy_digest.clone(),
            trusted_root,
            vulnerability_db: self.db_digest.clone(),
        }
    }
}

/// Loads the trusted root of every scope that names one; the first that fails stops it.
fn load_scope_roots(
    policy: &Policy,
    tuf: Option<&trust::Options>,
) -> Result<Vec<Option<Arc<ScopeRoot>>>, Error> {
    policy
        .scopes
        .iter()
        .map(|scope| {
            let failed = |source| Error::ScopeTrust {
                scope: scope.name.clone(),
                source: Box::new(source),
            };
            let obtained = match &scope.trust {
                None => return Ok(None),
                Some(ScopeTrust::TrustedRoot(path)) => trust::from_file(path).map_err(failed)?,
                Some(ScopeTrust::Tuf { mirror, root }) => {
                    let Some(options) = tuf else {
                        return Err(failed(trust::TrustError::Read {
                            path: root.clone(),
                            source: std::io::Error::other(
                                "no tuf cache folder to obtain the scope's root into",
                            ),
                        }));
                    };
                    let initial =
                        trust::read_bounded(root, trust::MAX_ROOT_SIZE).map_err(failed)?;
                    let options = trust::Options {
                        now: jiff::Timestamp::now(),
                        ..options.clone()
                    };
                    trust::obtain(&trust::Mirror::new(mirror, initial), &options).map_err(failed)?
                }
            };
            Ok(Some(Arc::new(ScopeRoot {
                digest: Digest::of(&obtained.json),
                root: obtained.root,
                origin: obtained.origin,
            })))
        })
        .collect()
}

fn same_roots(a: &[Option<Arc<ScopeRoot>>], b: &[Option<Arc<ScopeRoot>>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.as_ref().map(|r| &r.digest) == b.as_ref().map(|r| &r.digest))
}

/// What was last read of each file, to see a change.
#[derive(Default)]
struct Seen {
    policy: Option<Digest>,
    root: Option<Digest>,
    db: Option<Vec<(PathBuf, u64, Option<SystemTime>)>>,
    /// The last failure to re-read the scopes' roots, reported once.
    scope_roots_failed: Option<String>,
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
        let scope_roots = load_scope_roots(&policy, paths.tuf.as_ref())?;
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
            scope_roots_failed: None,
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
                scope_roots,
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
            scope_roots: old.scope_roots.clone(),
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
                // A policy whose scopes' roots do not load is not used either.
                let loaded = read_policy(policy_path).and_then(|(policy, digest)| {
                    let roots = load_scope_roots(&policy, self.paths.tuf.as_ref())?;
                    Ok((policy, digest, roots))
                });
                match loaded {
                    Ok((policy, digest, roots)) => {
                        seen.policy = Some(digest.clone());
                        next.policy = policy;
                        next.policy_digest = digest;
                        next.scope_roots = roots;
                        changed = true;
                        events.push(Event::Reloaded { what });
                    }
                    Err(e) => events.push(failed(&what, &e)),
                }
            }
            Ok(_) => {
                // The policy is unchanged; the roots its scopes name may have changed.
                if next.scope_roots.iter().any(Option::is_some) {
                    match load_scope_roots(&next.policy, self.paths.tuf.as_ref()) {
                        Ok(roots) if !same_roots(&roots, &next.scope_roots) => {
                            next.scope_roots = roots;
                            changed = true;
                            events.push(Event::Reloaded {
                                what: format!("trusted roots of the scopes of {what}"),
                            });
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if seen.scope_roots_failed.as_ref() != Some(&super::chain(&e)) {
                                seen.scope_roots_failed = Some(super::chain(&e));
                                events.push(failed(&format!("trusted roots of {what}"), &e));
                            }
                        }
                    }
                }
            }
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
