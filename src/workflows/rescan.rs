//! Re-scanning what is already stored: every tag of every repository given is resolved to its
//! digest (digests shared by several tags are scanned once), each artifact's SBOM attestation is
//! read (verified against a policy when one is given) and matched against today's advisories.
//! The [`Report`] says which artifacts are affected by which advisories, which findings are new
//! since the previous rescan (a [`State`] file: digest → finding keys, written atomically), and
//! which artifacts have no SBOM or one that cannot be trusted.
//!
//! It runs in three phases: [`list`] keeps the tag names on disk and resolves them a page at a
//! time on a small pool
//! ([`Options::concurrency`]) and groups them by digest on disk ([`Grouper`]); [`scan`] reads,
//! verifies and scans each artifact's SBOM on the pool and drops it; the [`Tally`] counts the
//! results as they arrive, keeps the affected artifacts and hands the others to the caller's
//! visitor, so the report never holds them. The registry client backs off on 429 with
//! `Retry-After`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decisions::policy::Policy;
use crate::decisions::verify::gates::PolicySbomVerifier;
use crate::decisions::vuln::input::{self, InputError, SbomVerification};
use crate::decisions::vuln::{self, AdvisoryId, Database, DbIdentity, Finding, Rating};
use crate::evidence::sign::verify::TrustedRoot;
use crate::foundation::digest::Digest;
use crate::foundation::reference::{Reference, Tag};
use crate::foundation::spool::{self, Reel, Sorted, Sorter, Tape};
use crate::storage::store::elsewhere::{Evidence, Lookup};
use crate::storage::store::{self, Store, referrers};
use crate::storage::transfer;

/// The state file format version.
pub const STATE_VERSION: u32 = 1;
/// Largest state file read.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;
/// Most concurrent requests a rescan makes.
pub const MAX_CONCURRENCY: usize = referrers::MAX_JOBS;

/// How to rescan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Workers resolving tags and reading SBOMs at once (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Only this advisory (any of its ids or aliases).
    pub advisory: Option<AdvisoryId>,
    /// Referrer manifests of one artifact fetched at once (0: the default pool).
    pub jobs: usize,
    /// Where the SBOMs are read when not beside the artifacts (the flag or the environment,
    /// else the scope's `attestations_repository:`).
    pub attestations: Lookup,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 4,
            advisory: None,
            jobs: referrers::DEFAULT_JOBS,
            attestations: Lookup::default(),
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
    #[error("cannot open attestations repository {repository}")]
    Attestations {
        repository: String,
        #[source]
        source: store::Error,
    },
    #[error("cannot keep the tags of {repository} in a temporary file")]
    Spool {
        repository: String,
        #[source]
        source: std::io::Error,
    },
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
    #[error("cannot write the report")]
    Write {
        #[source]
        source: std::io::Error,
    },
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
    /// Where the SBOMs were looked up, when not beside the artifacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestations_repository: Option<String>,
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
    /// Artifacts with no SBOM, or one that was refused or could not be read: each was handed
    /// to the visitor of [`rescan`] as it was scanned, and only counted here.
    #[serde(rename = "withoutSbomCount")]
    pub without_sbom: usize,
    /// Of those, artifacts whose SBOM or manifest could not be read.
    pub unreadable: usize,
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

/// Receives each artifact left without a usable SBOM as soon as it is known; the report only
/// counts them. An error (a closed output) stops the rescan.
pub type Visit<'a> = dyn FnMut(&Artifact) -> std::io::Result<()> + 'a;

/// Rescans `targets` against `db`. `policy` verifies SBOMs (with `root` for keyless signers);
/// `previous` is the last state. Artifacts without a usable SBOM go to `visit` one by one as
/// they are scanned, ordered by repository and first tag; the report keeps their count and the
/// affected artifacts. Returns the report and the new state.
///
/// Memory does not grow with the tags: what is kept of each (its name and digest) is grouped in
/// temporary files, and the report keeps only counts and the affected artifacts.
pub fn rescan(
    targets: &[Target],
    db: &Database,
    policy: Option<&Policy>,
    root: &TrustedRoot,
    previous: Option<&State>,
    options: &Options,
    visit: &mut Visit<'_>,
) -> Result<(Report, State), Error> {
    let (filtered, advisory) = select(db, options.advisory.as_ref())?;
    // With --advisory the full database's identity is reported, and the filter beside it.
    let identity = db.identity().clone();
    let db = filtered.as_ref().unwrap_or(db);
    if let Some(r) = targets
        .iter()
        .map(|t| &t.reference)
        .find(|r| r.tag.is_some() || r.digest.is_some())
    {
        return Err(Error::NotARepository {
            reference: r.to_string(),
        });
    }
    let mut listed = targets
        .iter()
        .map(|target| list(target, options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = Tally::new(identity, advisory, previous, policy.is_some());
    for repository in &mut listed {
        let scope = policy.and_then(|p| p.scope_for(&repository.name));
        let elsewhere = options
            .attestations
            .pick(scope.and_then(|s| s.attestations_repository.as_ref()));
        repository.evidence = match &elsewhere {
            Some(r) => Some(
                r.open_existing(&options.attestations.store_options)
                    .map_err(|source| Error::Attestations {
                        repository: r.repository.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        tally.report.repositories.push(RepositorySummary {
            repository: repository.name.clone(),
            tags: repository.tags,
            artifacts: repository.groups.artifacts,
            unresolved: repository.unresolved.clone(),
            scope: scope.map(|s| s.name.clone()),
            attestations_repository: elsewhere.map(|r| r.repository),
        });
        let sbom = match (policy, scope) {
            (Some(_), None) => Sbom::NoScope,
            (_, Some(scope)) => Sbom::Verify(PolicySbomVerifier {
                scope,
                trusted_root: root,
            }),
            (None, None) => Sbom::Unverified,
        };
        scan(repository, &sbom, db, options, &mut tally, visit)?;
    }
    Ok(tally.finish())
}

/// The database `--advisory` narrows the scan to (`None`: the whole one), and the filter to
/// report.
fn select(
    db: &Database,
    advisory: Option<&AdvisoryId>,
) -> Result<(Option<Database>, Option<AdvisoryFilter>), Error> {
    let Some(id) = advisory else {
        return Ok((None, None));
    };
    let selected = select_advisories(db, id);
    if selected.is_empty() {
        return Err(Error::UnknownAdvisory {
            id: id.clone(),
            advisories: db.advisories().len(),
        });
    }
    let matched = selected.iter().map(|a| a.id.clone()).collect();
    Ok((
        Some(Database::from_advisories(selected)),
        Some(AdvisoryFilter {
            id: id.clone(),
            matched,
        }),
    ))
}

/// Tags resolved at once, between two pages of the tag list.
const PAGE: usize = 1000;
/// Artifacts scanned between two reads of the artifact order.
const BATCH: usize = 256;
/// The longest tag name (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`), zero-padded in records: no tag
/// holds a zero byte, so padded names sort as the names do.
const NAME: usize = 128;
/// A resolved tag, sorted by digest then name: digest, padded name, 1 if an index.
const TAG_RECORD: usize = 32 + NAME + 1;
/// An artifact, sorted by its first tag: padded first tag, digest, 1 if an index, where its
/// tags start on the tape, how many.
const ARTIFACT_RECORD: usize = NAME + 32 + 1 + 8 + 4;

/// A tag name zero-padded to [`NAME`] bytes, as records hold it.
fn padded(tag: &Tag) -> [u8; NAME] {
    let mut name = [0; NAME];
    let bytes = tag.as_str().as_bytes();
    name[..bytes.len()].copy_from_slice(bytes);
    name
}

/// The tag name in a padded record field.
fn unpadded(name: &[u8]) -> std::borrow::Cow<'_, str> {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..len])
}

/// One artifact to scan: a digest and where its tags are on the tape.
struct Entry {
    digest: Digest,
    index: bool,
    start: u64,
    count: u32,
}

/// Groups resolved tags by digest on disk, so that memory stays flat however many tags a
/// repository holds: the tags are sorted by digest (one run in memory, the rest spooled), the
/// names go on a tape in that order, and one record per artifact is sorted by its first tag.
struct Grouper {
    by_digest: Sorter,
    run_bytes: usize,
}

impl Grouper {
    fn new(run_bytes: usize) -> Grouper {
        Grouper {
            by_digest: Sorter::with_run_bytes(TAG_RECORD, run_bytes),
            run_bytes,
        }
    }

    fn add(&mut self, digest: [u8; 32], tag: &Tag, index: bool) -> std::io::Result<()> {
        let mut record = [0; TAG_RECORD];
        record[..32].copy_from_slice(&digest);
        record[32..32 + NAME].copy_from_slice(&padded(tag));
        record[32 + NAME] = u8::from(index);
        self.by_digest.push(&record)
    }

    fn finish(self) -> std::io::Result<Groups> {
        let mut tags = self.by_digest.finish()?;
        let mut tape = Tape::new(NAME)?;
        let mut order = Sorter::with_run_bytes(ARTIFACT_RECORD, self.run_bytes);
        let mut artifacts = 0;
        // The artifact being gathered: its record, and the digest to compare the next tag with.
        let mut open: Option<[u8; ARTIFACT_RECORD]> = None;
        while let Some(tag) = tags.next_record()? {
            let at = tape.push(&tag[32..32 + NAME])?;
            match &mut open {
                Some(a) if a[NAME..NAME + 32] == tag[..32] => {
                    let count = u32::from_be_bytes(a[NAME + 41..].try_into().expect("4 bytes"));
                    a[NAME + 41..].copy_from_slice(&(count + 1).to_be_bytes());
                }
                _ => {
                    if let Some(a) = open.take() {
                        order.push(&a)?;
                    }
                    // Sorted by name within a digest: the first tag seen is the artifact's first.
                    let mut a = [0; ARTIFACT_RECORD];
                    a[..NAME].copy_from_slice(&tag[32..32 + NAME]);
                    a[NAME..NAME + 32].copy_from_slice(&tag[..32]);
                    a[NAME + 32] = tag[32 + NAME];
                    a[NAME + 33..NAME + 41].copy_from_slice(&at.to_be_bytes());
                    a[NAME + 41..].copy_from_slice(&1u32.to_be_bytes());
                    open = Some(a);
                    artifacts += 1;
                }
            }
        }
        if let Some(a) = open {
            order.push(&a)?;
        }
        Ok(Groups {
            artifacts,
            tape: tape.finish()?,
            order: order.finish()?,
        })
    }
}

/// A repository's artifacts, one per digest, in the order of their first tag.
struct Groups {
    artifacts: usize,
    tape: Reel,
    order: Sorted,
}

impl Groups {
    fn next(&mut self) -> std::io::Result<Option<Entry>> {
        let Some(a) = self.order.next_record()? else {
            return Ok(None);
        };
        let digest: [u8; 32] = a[NAME..NAME + 32].try_into().expect("32 bytes");
        Ok(Some(Entry {
            digest: Digest::from_raw(digest),
            index: a[NAME + 32] == 1,
            start: u64::from_be_bytes(a[NAME + 33..NAME + 41].try_into().expect("8 bytes")),
            count: u32::from_be_bytes(a[NAME + 41..].try_into().expect("4 bytes")),
        }))
    }

    /// The tags of `entry`, in name order.
    fn tags(&self, entry: &Entry) -> std::io::Result<Vec<String>> {
        let mut tags = Vec::with_capacity(entry.count as usize);
        self.tape
            .read(entry.start, u64::from(entry.count), &mut |name| {
                tags.push(unpadded(name).into_owned());
            })?;
        Ok(tags)
    }
}

/// One repository's tags resolved and grouped by digest: each group is one artifact.
struct Listed<'a> {
    target: &'a Target,
    /// The attestations repository its SBOMs are read from, when not beside the artifacts.
    evidence: Option<Box<dyn Store>>,
    name: String,
    /// Tags listed (attachment tags left out).
    tags: usize,
    groups: Groups,
    /// Tags that could not be resolved, with why.
    unresolved: Vec<String>,
}

/// Phase 1: writes a repository's tag names to disk as they are listed, then resolves them a
/// page at a time on the pool; what is kept of each tag goes to disk.
fn list<'a>(target: &'a Target, options: &Options) -> Result<Listed<'a>, Error> {
    let r = &target.reference;
    let name = r.repository();
    let spool = |source| Error::Spool {
        repository: name.clone(),
        source,
    };
    let mut grouper = Grouper::new(spool::RUN_BYTES);
    let mut unresolved = Vec::new();
    let mut failed = None;
    let mut resolve = |page: &mut Vec<Tag>| {
        referrers::ordered(
            options.concurrency,
            page,
            |tag| {
                let reference: Reference = format!("{r}:{tag}")
                    .parse()
                    .map_err(|e| format!("{tag}: {e}"))?;
                transfer::resolve(target.store.as_ref(), &reference)
                    .map(|m| {
                        let index =
                            matches!(m.manifest, crate::foundation::oci::Manifest::Index(_));
                        (m.descriptor.digest.raw(), index)
                    })
                    .map_err(|e| format!("{tag}: {e}"))
            },
            |i, digest| {
                match digest {
                    Ok((d, index)) => {
                        if let Err(e) = grouper.add(d, &page[i], index) {
                            failed = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                    Err(e) => unresolved.push(e),
                }
                ControlFlow::Continue(())
            },
        );
        page.clear();
        failed.is_none()
    };
    // The names go to disk as the registry lists them (quickly: a registry that sends every
    // tag in one page wants it read within the timeout), then are resolved a page at a time.
    let mut names = Tape::new(NAME).map_err(spool)?;
    let mut kept = Ok(());
    target
        .store
        .each_tag(&mut |t| {
            if kept.is_ok() && !is_attachment_tag(t.as_str()) {
                kept = names.push(&padded(&t)).map(drop);
            }
        })
        .map_err(|source| Error::Tags {
            repository: name.clone(),
            source,
        })?;
    kept.map_err(spool)?;
    let names = names.finish().map_err(spool)?;
    let mut page = Vec::with_capacity(PAGE);
    for start in (0..names.len()).step_by(PAGE) {
        let count = names.len().min(start + PAGE as u64) - start;
        names
            .read(start, count, &mut |record| {
                if let Ok(tag) = unpadded(record).parse() {
                    page.push(tag);
                }
            })
            .map_err(spool)?;
        if !resolve(&mut page) {
            break;
        }
    }
    let tags = usize::try_from(names.len()).unwrap_or(usize::MAX);
    if let Some(e) = failed {
        return Err(spool(e));
    }
    let groups = grouper.finish().map_err(spool)?;
    Ok(Listed {
        target,
        evidence: None,
        tags,
        name,
        groups,
        unresolved,
    })
}

/// How the SBOMs of one repository are read.
enum Sbom<'a> {
    /// No policy: read without checking signatures.
    Unverified,
    /// Verified against the policy scope of the repository.
    Verify(PolicySbomVerifier<'a>),
    /// A policy was given and no scope of it matches the repository: nothing is read.
    NoScope,
}

/// Phase 2: reads each artifact's SBOM on the pool, scans it and drops it; results are handed
/// to the tally in order, so at most `concurrency` are held at once. Artifacts are read from
/// disk [`BATCH`] at a time.
fn scan(
    listed: &mut Listed<'_>,
    sbom: &Sbom<'_>,
    db: &Database,
    options: &Options,
    tally: &mut Tally<'_>,
    visit: &mut Visit<'_>,
) -> Result<(), Error> {
    let spool = |source| Error::Spool {
        repository: listed.name.clone(),
        source,
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        while batch.len() < BATCH {
            match listed.groups.next().map_err(spool)? {
                Some(entry) => batch.push(entry),
                None => break,
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let listed = &*listed;
        let mut failed = None;
        referrers::ordered(
            options.concurrency,
            &batch,
            |entry| scan_one(listed, entry, sbom, db, options.jobs),
            |i, (status, findings)| {
                let tags = match listed.groups.tags(&batch[i]) {
                    Ok(tags) => tags,
                    Err(e) => {
                        failed = Some(spool(e));
                        return ControlFlow::Break(());
                    }
                };
                let artifact = Artifact {
                    repository: listed.name.clone(),
                    digest: batch[i].digest.clone(),
                    tags,
                    sbom: status,
                    findings: Vec::new(),
                };
                match tally.add(artifact, &findings, visit) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(source) => {
                        failed = Some(Error::Write { source });
                        ControlFlow::Break(())
                    }
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
    }
}

/// Reads, verifies and scans one artifact's SBOM.
fn scan_one(
    listed: &Listed<'_>,
    entry: &Entry,
    sbom: &Sbom<'_>,
    db: &Database,
    jobs: usize,
) -> (SbomStatus, Vec<Finding>) {
    let digest = &entry.digest;
    let unreadable = |reason: String| (SbomStatus::Unreadable { reason }, Vec::new());
    let verifier = match sbom {
        Sbom::NoScope => {
            let reason = format!("no scope of the policy matches {}", listed.name);
            return (SbomStatus::Refused { reason }, Vec::new());
        }
        Sbom::Verify(v) => Some(v as &dyn input::SbomVerifier),
        Sbom::Unverified => None,
    };
    let reference: Reference = match format!("{}@{digest}", listed.target.reference).parse() {
        Ok(r) => r,
        Err(e) => return unreadable(e.to_string()),
    };
    let limits = referrers::Limits {
        jobs,
        ..referrers::Limits::DEFAULT
    };
    let evidence = Evidence::new(listed.target.store.as_ref(), listed.evidence.as_deref());
    let store = &evidence;
    let read = if entry.index {
        input::from_oci(store, &reference, verifier, &limits)
    } else {
        input::from_oci_manifest(store, &reference, digest, verifier, &limits)
    };
    match read {
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
        Err(e) => unreadable(error_chain(&e)),
    }
}

/// Phase 3: the report and the new state, built as artifacts are scanned.
struct Tally<'a> {
    report: Report,
    state: State,
    previous: Option<&'a State>,
    with_policy: bool,
}

impl<'a> Tally<'a> {
    fn new(
        database: DbIdentity,
        advisory: Option<AdvisoryFilter>,
        previous: Option<&'a State>,
        with_policy: bool,
    ) -> Tally<'a> {
        let state = State {
            version: STATE_VERSION,
            database: database.content_digest.as_ref().map(Digest::to_string),
            findings: BTreeMap::new(),
        };
        Tally {
            report: Report {
                database,
                advisory,
                repositories: Vec::new(),
                scanned: 0,
                affected: Vec::new(),
                new_findings: 0,
                previous_state: previous.is_some(),
                without_sbom: 0,
                unreadable: 0,
                unverified: 0,
                without_verified_sbom: 0,
            },
            state,
            previous,
            with_policy,
        }
    }

    /// Counts `artifact`; keeps it when affected, hands it to `visit` when it has no usable SBOM.
    fn add(
        &mut self,
        mut artifact: Artifact,
        findings: &[Finding],
        visit: &mut Visit<'_>,
    ) -> std::io::Result<()> {
        let report = &mut self.report;
        if self.with_policy && !matches!(artifact.sbom, SbomStatus::Verified { .. }) {
            report.without_verified_sbom += 1;
        }
        match artifact.sbom {
            SbomStatus::Verified { .. } | SbomStatus::Unverified { .. } => {
                report.scanned += 1;
                if matches!(artifact.sbom, SbomStatus::Unverified { .. }) {
                    report.unverified += 1;
                }
                let before = self.previous.and_then(|p| p.findings.get(&artifact.digest));
                artifact.findings = findings
                    .iter()
                    .map(|f| Impact::of(f, before.is_none_or(|b| !b.contains(&key(f)))))
                    .collect();
                report.new_findings += artifact.findings.iter().filter(|i| i.new).count();
                self.state
                    .findings
                    .insert(artifact.digest.clone(), findings.iter().map(key).collect());
                if !artifact.findings.is_empty() {
                    report.affected.push(artifact);
                }
                Ok(())
            }
            SbomStatus::Unreadable { .. } => {
                report.without_sbom += 1;
                report.unreadable += 1;
                visit(&artifact)
            }
            SbomStatus::Missing | SbomStatus::Refused { .. } => {
                report.without_sbom += 1;
                visit(&artifact)
            }
        }
    }

    fn finish(self) -> (Report, State) {
        (self.report, self.state)
    }
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

    /// Grouping on disk gives what grouping in memory would: one artifact per digest, in the
    /// order of its first tag, with its tags in name order, however small the runs.
    #[test]
    fn tags_grouped_on_disk_match_a_grouping_in_memory() {
        let tags: Vec<(Tag, [u8; 32], bool)> = (0u32..3000)
            .map(|i| {
                let name = format!("v{}", i.wrapping_mul(2_654_435_761) % 100_000);
                let digest = Digest::of(&(i % 1000).to_be_bytes()).raw();
                (name.parse().unwrap(), digest, i % 1000 == 7)
            })
            .collect();
        let mut model: BTreeMap<[u8; 32], (BTreeSet<String>, bool)> = BTreeMap::new();
        for (tag, digest, index) in &tags {
            let e = model.entry(*digest).or_default();
            e.0.insert(tag.to_string());
            e.1 = *index;
        }
        let mut want: Vec<(Vec<String>, [u8; 32], bool)> = model
            .into_iter()
            .map(|(d, (tags, index))| (tags.into_iter().collect(), d, index))
            .collect();
        want.sort_by(|a, b| a.0[0].cmp(&b.0[0]));
        let longest = "a".repeat(128).parse::<Tag>().unwrap();
        for run_bytes in [1, TAG_RECORD * 100, spool::RUN_BYTES] {
            let mut grouper = Grouper::new(run_bytes);
            for (tag, digest, index) in &tags {
                grouper.add(*digest, tag, *index).unwrap();
            }
            grouper.add([0xff; 32], &longest, false).unwrap();
            let mut groups = grouper.finish().unwrap();
            assert_eq!(groups.artifacts, want.len() + 1);
            let mut got = Vec::new();
            while let Some(entry) = groups.next().unwrap() {
                got.push((
                    groups.tags(&entry).unwrap(),
                    entry.digest.raw(),
                    entry.index,
                ));
            }
            let mut expected = want.clone();
            expected.insert(0, (vec![longest.to_string()], [0xff; 32], false));
            assert_eq!(got, expected, "runs of {run_bytes} bytes");
        }
    }
}
