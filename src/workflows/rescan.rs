//! Re-scanning what is already stored: every tag of every repository given is resolved to its
//! digest (digests shared by several tags are scanned once), each artifact's SBOM attestation is
//! read (verified against a policy when one is given) and matched against today's advisories.
//! The [`Report`] says which artifacts are affected by which advisories, which findings are new
//! since the previous rescan (a [`State`] file: digest → finding keys, written atomically), and
//! which artifacts have no SBOM or one that cannot be trusted.
//!
//! Memory stays bounded by the number of artifacts, never by SBOM sizes: each SBOM is read,
//! scanned and dropped by one worker of a small pool ([`Options::concurrency`]); the registry
//! client backs off on 429 with `Retry-After`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::decisions::policy::Policy;
use crate::decisions::verify::gates::PolicySbomVerifier;
use crate::decisions::vuln::input::{self, InputError, SbomVerification};
use crate::decisions::vuln::{self, AdvisoryId, Database, DbIdentity, Finding, Rating};
use crate::evidence::sign::verify::TrustedRoot;
use crate::foundation::digest::Digest;
use crate::foundation::reference::Reference;
use crate::storage::store::{self, Store};

/// The state file format version.
pub const STATE_VERSION: u32 = 1;
/// Largest state file read.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;
/// Most concurrent requests a rescan makes.
pub const MAX_CONCURRENCY: usize = 64;

/// How to rescan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Workers resolving tags and reading SBOMs at once (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Only this advisory (any of its ids or aliases).
    pub advisory: Option<AdvisoryId>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 4,
            advisory: None,
        }
    }
}

/// Why a rescan could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{reference} names a tag or digest; rescan takes repositories (registry/repo or oci:<dir>)"
    )]
    NotARepository { reference: String },
    #[error("cannot list the tags of {repository}")]
    Tags {
        repository: String,
        #[source]
        source: store::Error,
    },
    #[error("advisory {id} is in none of the {advisories} advisories of the database")]
    UnknownAdvisory { id: AdvisoryId, advisories: usize },
    #[error("cannot read state file {path}")]
    ReadState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not a custody rescan state: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error("cannot write state file {path}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A repository to rescan and the store it lives in.
pub struct Target {
    pub reference: Reference,
    pub store: Box<dyn Store>,
}

/// What became of an artifact's SBOM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SbomStatus {
    /// Verified against the policy's scope.
    Verified { signer: String },
    /// Read without a policy: its signature was not checked.
    Unverified { reason: String },
    /// A policy was given and the SBOM did not verify: not scanned.
    Refused { reason: String },
    /// No SBOM referrer.
    Missing,
    /// The SBOM or the artifact could not be read.
    Unreadable { reason: String },
}

/// One finding on one artifact.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    pub id: AdvisoryId,
    pub aliases: Vec<AdvisoryId>,
    pub purl: String,
    pub package: String,
    pub version: String,
    pub severity: Rating,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub fixed: Vec<String>,
    /// Not in the previous state for this artifact.
    pub new: bool,
}

impl Impact {
    fn of(f: &Finding, new: bool) -> Impact {
        Impact {
            id: f.id.clone(),
            aliases: f.aliases.clone(),
            purl: f.purl.clone(),
            package: f.package.clone(),
            version: f.version.clone(),
            severity: f.severity.rating,
            score: f.severity.score,
            fixed: f.fixed.clone(),
            new,
        }
    }
}

/// The state key of a finding: advisory id and purl.
fn key(f: &Finding) -> String {
    format!("{} {}", f.id, f.purl)
}

/// An artifact (one digest) and what the rescan found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    pub sbom: SbomStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Impact>,
}

impl Artifact {
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// A repository's tag count.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySummary {
    pub repository: String,
    pub tags: usize,
    /// Distinct digests those tags resolve to.
    pub artifacts: usize,
    /// Tags that could not be resolved, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// The policy scope that verified SBOMs (when a policy was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The impact report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub database: DbIdentity,
    /// `--advisory`: the id asked for and the advisories it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory: Option<AdvisoryFilter>,
    pub repositories: Vec<RepositorySummary>,
    /// Artifacts scanned (digests with a usable SBOM).
    pub scanned: usize,
    /// Artifacts with at least one finding, and findings.
    pub affected: Vec<Artifact>,
    /// Findings not in the previous state.
    pub new_findings: usize,
    /// Whether a previous state was read.
    pub previous_state: bool,
    /// Artifacts with no SBOM, or one that was refused or could not be read.
    pub without_sbom: Vec<Artifact>,
    /// Artifacts whose SBOM was scanned unverified (no policy given).
    pub unverified: usize,
    /// With a policy: artifacts left without an SBOM that verified against it (missing, every
    /// candidate refused, or unreadable), listed in `without_sbom`. Nothing can be said about
    /// what affects them, so `--fail-on-new` and `--fail-on-unverified` fail on them.
    pub without_verified_sbom: usize,
}

/// The advisory `--advisory` asked for.
#[derive(Clone, Debug, Serialize)]
pub struct AdvisoryFilter {
    pub id: AdvisoryId,
    pub matched: Vec<AdvisoryId>,
}

/// What the previous rescan found: digest → finding keys (`<advisory id> <purl>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub database: Option<String>,
    pub findings: BTreeMap<Digest, BTreeSet<String>>,
}

impl State {
    /// Reads a state file; a missing file is `None` (the first rescan).
    pub fn read(path: &Path) -> Result<Option<State>, Error> {
        use std::io::Read as _;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::ReadState {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::ReadState {
                path: path.to_owned(),
                source,
            })?;
        State::parse(&bytes, path).map(Some)
    }

    /// Parses state bytes; `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<State, Error> {
        let bad = |reason: String| Error::BadState {
            path: path.to_owned(),
            reason,
        };
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(bad(format!("larger than {MAX_STATE_BYTES} bytes")));
        }
        let state: State = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(bad(format!(
                "version {} (this custody writes {STATE_VERSION})",
                state.version
            )));
        }
        Ok(state)
    }

    /// Writes the state atomically: a temporary file in the same folder, synced, renamed over.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write as _;
        let err = |source| Error::WriteState {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        let bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        tmp.write_all(&bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

pub use crate::foundation::oci::is_attachment_tag;

/// The advisories `id` names: those with that id or alias, and their alias group.
pub fn select_advisories(db: &Database, id: &AdvisoryId) -> Vec<vuln::Advisory> {
    let mut ids: BTreeSet<&AdvisoryId> = BTreeSet::from([id]);
    // Two passes reach advisories that share an alias with the one named.
    for _ in 0..2 {
        for a in db.advisories() {
            if ids.contains(&a.id) || a.aliases.iter().any(|x| ids.contains(x)) {
                ids.insert(&a.id);
                ids.extend(a.aliases.iter());
            }
        }
    }
    db.advisories()
        .iter()
        .filter(|a| ids.contains(&a.id))
        .cloned()
        .collect()
}

/// Runs `f` over `items` on `workers` threads; results in input order.
fn pool<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, MAX_CONCURRENCY).min(items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock().expect("no worker panics holding the lock")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no worker panics holding the lock")
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

/// Rescans `targets` against `db`. `policy` verifies SBOMs (with `root` for keyless signers);
/// `previous` is the last state. Returns the report and the new state.
pub fn rescan(
    targets: &[Target],
    db: &Database,
    policy: Option<&Policy>,
    root: &TrustedRoot,
    previous: Option<&State>,
    options: &Options,
) -> Result<(Report, State), Error> {
    let filtered;
    let (db, advisory) = match &options.advisory {
        None => (db, None),
        Some(id) => {
            let selected = select_advisories(db, id);
            if selected.is_empty() {
                return Err(Error::UnknownAdvisory {
                    id: id.clone(),
                    advisories: db.advisories().len(),
                });
            }
            let matched = selected.iter().map(|a| a.id.clone()).collect();
            filtered = Database::from_advisories(selected);
            (
                &filtered,
                Some(AdvisoryFilter {
                    id: id.clone(),
                    matched,
                }),
            )
        }
    };
    let identity = if advisory.is_some() {
        // The full database's identity: the filter is reported beside it.
        DbIdentity::clone(db.identity())
    } else {
        db.identity().clone()
    };

    // 1. Tags to digests, per repository, deduplicated.
    struct Work<'a> {
        target: &'a Target,
        repository: String,
        digest: Digest,
        tags: Vec<String>,
        verifier: Option<PolicySbomVerifier<'a>>,
        no_scope: bool,
    }
    let mut repositories = Vec::new();
    let mut work: Vec<Work> = Vec::new();
    for target in targets {
        let r = &target.reference;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(Error::NotARepository {
                reference: r.to_string(),
            });
        }
        let repository = r.repository();
        let tags: Vec<String> = target
            .store
            .tags()
            .map_err(|source| Error::Tags {
                repository: repository.clone(),
                source,
            })?
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .filter(|t| !is_attachment_tag(t))
            .collect();
        let resolved = pool(&tags, options.concurrency, |tag| {
            let reference: Result<Reference, _> = format!("{r}:{tag}").parse();
            match reference {
                Ok(reference) => {
                    crate::storage::transfer::resolve(target.store.as_ref(), &reference)
                        .map(|m| m.descriptor.digest)
                        .map_err(|e| format!("{tag}: {e}"))
                }
                Err(e) => Err(format!("{tag}: {e}")),
            }
        });
        let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let mut unresolved = Vec::new();
        for (tag, d) in tags.iter().zip(resolved) {
            match d {
                Ok(d) => by_digest.entry(d).or_default().push(tag.clone()),
                Err(e) => unresolved.push(e),
            }
        }
        let scope = policy.and_then(|p| p.scope_for(&repository));
        repositories.push(RepositorySummary {
            repository: repository.clone(),
            tags: tags.len(),
            artifacts: by_digest.len(),
            unresolved,
            scope: scope.map(|s| s.name.clone()),
        });
        for (digest, mut tags) in by_digest {
            tags.sort();
            work.push(Work {
                target,
                repository: repository.clone(),
                digest,
                tags,
                verifier: scope.map(|scope| PolicySbomVerifier {
                    scope,
                    trusted_root: root,
                }),
                no_scope: policy.is_some() && scope.is_none(),
            });
        }
    }

    // 2. Each artifact's SBOM, scanned and dropped.
    let scanned = pool(&work, options.concurrency, |w| {
        if w.no_scope {
            return (
                SbomStatus::Refused {
                    reason: format!("no scope of the policy matches {}", w.repository),
                },
                Vec::new(),
            );
        }
        let reference: Reference = match format!("{}@{}", w.target.reference, w.digest).parse() {
            Ok(r) => r,
            Err(e) => {
                return (
                    SbomStatus::Unreadable {
                        reason: e.to_string(),
                    },
                    Vec::new(),
                );
            }
        };
        let verifier = w.verifier.as_ref().map(|v| v as &dyn input::SbomVerifier);
        match input::from_oci(w.target.store.as_ref(), &reference, verifier) {
            Ok(components) => {
                let status = match components.verification {
                    SbomVerification::Verified { signer } => SbomStatus::Verified { signer },
                    SbomVerification::Unverified { reason } => SbomStatus::Unverified { reason },
                    SbomVerification::NotApplicable => SbomStatus::Unverified {
                        reason: "not signed".into(),
                    },
                };
                let result = vuln::scan(components.purls.iter().map(String::as_str), db);
                (status, result.findings)
            }
            Err(InputError::NoSbomReferrer { .. }) => (SbomStatus::Missing, Vec::new()),
            Err(InputError::Verification { reason, .. }) => {
                (SbomStatus::Refused { reason }, Vec::new())
            }
            Err(e) => (
                SbomStatus::Unreadable {
                    reason: error_chain(&e),
                },
                Vec::new(),
            ),
        }
    });

    // 3. The report and the new state.
    let mut report = Report {
        database: identity,
        advisory,
        repositories,
        scanned: 0,
        affected: Vec::new(),
        new_findings: 0,
        previous_state: previous.is_some(),
        without_sbom: Vec::new(),
        unverified: 0,
        without_verified_sbom: 0,
    };
    let mut state = State {
        version: STATE_VERSION,
        database: report
            .database
            .content_digest
            .as_ref()
            .map(Digest::to_string),
        findings: BTreeMap::new(),
    };
    for (w, (status, findings)) in work.into_iter().zip(scanned) {
        let before = previous.and_then(|p| p.findings.get(&w.digest));
        let impacts: Vec<Impact> = findings
            .iter()
            .map(|f| Impact::of(f, before.is_none_or(|b| !b.contains(&key(f)))))
            .collect();
        let artifact = Artifact {
            repository: w.repository,
            digest: w.digest.clone(),
            tags: w.tags,
            sbom: status,
            findings: impacts,
        };
        if policy.is_some() && !matches!(artifact.sbom, SbomStatus::Verified { .. }) {
            report.without_verified_sbom += 1;
        }
        match &artifact.sbom {
            SbomStatus::Verified { .. } | SbomStatus::Unverified { .. } => {
                report.scanned += 1;
                if matches!(artifact.sbom, SbomStatus::Unverified { .. }) {
                    report.unverified += 1;
                }
                state
                    .findings
                    .insert(w.digest, findings.iter().map(key).collect());
                report.new_findings += artifact.findings.iter().filter(|i| i.new).count();
                if !artifact.findings.is_empty() {
                    report.affected.push(artifact);
                }
            }
            _ => report.without_sbom.push(artifact),
        }
    }
    let order = |a: &Artifact, b: &Artifact| {
        (&a.repository, a.tags.first()).cmp(&(&b.repository, b.tags.first()))
    };
    report.affected.sort_by(order);
    report.without_sbom.sort_by(order);
    Ok((report, state))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_tags_are_not_artifacts() {
        let hex = "a".repeat(64);
        for (tag, attachment) in [
            (format!("sha256-{hex}"), true),
            (format!("sha256-{hex}.sig"), true),
            (format!("sha256-{hex}.att"), true),
            ("sha256-abc".to_string(), false),
            ("v1.0.0".to_string(), false),
            (format!("sha256-{}", "g".repeat(64)), false),
        ] {
            assert_eq!(is_attachment_tag(&tag), attachment, "{tag}");
        }
    }

    #[test]
    fn state_files_round_trip_atomically_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(State::read(&path).unwrap(), None);
        let mut state = State {
            version: STATE_VERSION,
            database: Some("sha256:00".into()),
            findings: BTreeMap::new(),
        };
        state.findings.insert(
            Digest::of(b"a"),
            BTreeSet::from(["RUSTSEC-2019-0009 pkg:cargo/smallvec@0.6.9".to_string()]),
        );
        state.write(&path).unwrap();
        assert_eq!(State::read(&path).unwrap(), Some(state.clone()));
        // Overwriting leaves exactly the one file.
        state.findings.clear();
        state.write(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(State::read(&path).unwrap(), Some(state));

        let rows: &[(&[u8], &str)] = &[
            (b"", "EOF"),
            (b"[]", "invalid length 0"),
            (br#"{"version":2,"findings":{}}"#, "version 2"),
            (br#"{"version":1,"findings":{"md5:x":[]}}"#, "digest"),
            (br#"{"version":1}"#, "findings"),
        ];
        for (bytes, needle) in rows {
            let err = State::parse(bytes, &path).unwrap_err();
            assert!(
                matches!(&err, Error::BadState { reason, .. } if reason.contains(needle)),
                "{}: {err:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn the_pool_keeps_order_and_runs_everything() {
        let items: Vec<usize> = (0..100).collect();
        for workers in [1, 4, 200] {
            assert_eq!(
                pool(&items, workers, |i| i * 2),
                (0..100).map(|i| i * 2).collect::<Vec<_>>()
            );
        }
        assert!(pool(&Vec::<u8>::new(), 4, |i| *i).is_empty());
    }
}
