//! The OSV advisory database, loaded offline from folders of OSV JSON files or the per-ecosystem
//! `all.zip` archives osv.dev publishes, with bounds on every input, and indexed by
//! (ecosystem, package name).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::version::Ecosystem;
use crate::foundation::digest::Digest;
use crate::foundation::time::Date;

/// Bounds on what one database may hold; input past a bound is refused with an error naming
/// the file, never truncated silently.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest advisory file (or zip entry, uncompressed).
    pub max_file_bytes: u64,
    /// Most advisories over all sources.
    pub max_advisories: usize,
    /// Most `affected` entries in one advisory.
    pub max_affected: usize,
    /// Most `ranges` in one `affected` entry.
    pub max_ranges: usize,
    /// Most `events` in one range.
    pub max_events: usize,
    /// Most explicit `versions` in one `affected` entry.
    pub max_versions: usize,
    /// Most aliases or severity entries in one advisory.
    pub max_aliases: usize,
    /// Deepest folder recursion when reading a folder.
    pub max_folder_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_bytes: 8 * 1024 * 1024,
            max_advisories: 2_000_000,
            max_affected: 10_000,
            max_ranges: 1_000,
            max_events: 10_000,
            max_versions: 100_000,
            max_aliases: 1_000,
            max_folder_depth: 4,
        }
    }
}

/// An advisory identifier such as `RUSTSEC-2019-0009`, `GHSA-mm7v-vpv8-xfc3` or `CVE-2019-15551`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdvisoryId(String);

/// A string that cannot be an advisory id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not an advisory id (1 to 128 letters, digits, '-', '_', '.', ':')")]
pub struct AdvisoryIdError {
    pub input: String,
}

impl AdvisoryId {
    pub fn parse(input: &str) -> Result<AdvisoryId, AdvisoryIdError> {
        let ok = !input.is_empty()
            && input.len() <= 128
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            Ok(AdvisoryId(input.to_owned()))
        } else {
            Err(AdvisoryIdError {
                input: input.chars().take(200).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdvisoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AdvisoryId {
    type Error = AdvisoryIdError;
    fn try_from(value: String) -> Result<AdvisoryId, AdvisoryIdError> {
        AdvisoryId::parse(&value)
    }
}

impl From<AdvisoryId> for String {
    fn from(value: AdvisoryId) -> String {
        value.0
    }
}

/// A CVSS vector an advisory carries, as written (`CVSS_V3`, `CVSS_V4`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeverityVector {
    pub kind: String,
    pub vector: String,
}

/// How the versions of a range are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RangeKind {
    Semver,
    Ecosystem,
    /// Commit ranges: custody matches released versions only, so these are not evaluated.
    Git,
}

/// One OSV range event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub kind: RangeKind,
    pub events: Vec<Event>,
}

/// One `affected` entry for a package custody can match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub ecosystem: Ecosystem,
    /// An OS ecosystem's release (`Debian:12` → `12`), keyed by [`super::distro`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The name as the advisory writes it.
    pub name: String,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
    /// Severity given for this package only (OSV `affected[].severity`).
    pub severity: Vec<SeverityVector>,
    /// RustSec's `database_specific.informational` (`unmaintained`, `unsound`, `notice`).
    pub informational: Option<String>,
}

/// One advisory, as much of it as custody reports and matches on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    pub id: AdvisoryId,
    pub aliases: Vec<AdvisoryId>,
    pub summary: Option<String>,
    pub published: Option<Date>,
    pub modified: String,
    pub severity: Vec<SeverityVector>,
    /// A textual rating from `database_specific.severity` (GitHub's `HIGH`, `MODERATE`, ...),
    /// used only when no CVSS vector can be scored.
    pub database_severity: Option<String>,
    /// The entries for ecosystems custody matches; the others are dropped at load.
    pub affected: Vec<Affected>,
}

/// What a loaded database is, for reports: a scan is reproducible "as of" this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbIdentity {
    pub sources: Vec<PathBuf>,
    /// Advisories loaded (withdrawn ones not counted).
    pub advisories: usize,
    pub withdrawn_skipped: usize,
    /// Advisories that touch no ecosystem custody matches.
    pub other_ecosystems_skipped: usize,
    /// The newest `modified` timestamp over all advisories.
    pub newest_modified: Option<String>,
    /// SHA-256 of the sorted `id modified` lines of the loaded advisories: the same advisories
    /// give the same digest wherever and however they are stored (folder or zip).
    pub content_digest: Option<Digest>,
    /// Advisories per ecosystem.
    pub ecosystems: BTreeMap<String, usize>,
}

/// Why a database could not be loaded. Each variant names the file (a zip entry as
/// `archive.zip!entry.json`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not read osv database {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("osv database {path} is neither a folder, a .json file nor a .zip archive")]
    UnknownSource { path: PathBuf },
    #[error("osv database {path} holds no advisories")]
    Empty { path: PathBuf },
    #[error("could not read zip archive {path}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("advisory file {file} is larger than {limit} bytes")]
    TooLarge { file: String, limit: u64 },
    #[error("advisory file {file} is not a valid osv record")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("advisory file {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("advisory file {file} has more than {limit} {what}")]
    TooMany {
        file: String,
        what: &'static str,
        limit: usize,
    },
    #[error("osv database has more than {limit} advisories")]
    TooManyAdvisories { limit: usize },
}

/// The advisories, indexed by (ecosystem, normalised package name).
#[derive(Debug, Default)]
pub struct Database {
    advisories: Vec<Advisory>,
    index: HashMap<(Ecosystem, String), Vec<(usize, usize)>>,
    identity: DbIdentity,
}

impl Database {
    /// Loads every source: a folder (its `*.json` and `*.zip` files, subfolders included), one
    /// `.json` advisory or one `.zip` archive. An advisory id met twice keeps the record with
    /// the newer `modified`.
    pub fn load(sources: &[PathBuf], limits: &Limits) -> Result<Database, DbError> {
        let mut loader = Loader {
            limits,
            by_id: HashMap::new(),
            db: Database::default(),
        };
        for source in sources {
            let before = loader.seen();
            loader.source(source, 0)?;
            if loader.seen() == before {
                return Err(DbError::Empty {
                    path: source.clone(),
                });
            }
            loader.db.identity.sources.push(source.clone());
        }
        let mut db = loader.db;
        db.build_index();
        Ok(db)
    }

    /// Builds a database from advisories already in memory (tests, other loaders).
    pub fn from_advisories(advisories: Vec<Advisory>) -> Database {
        let mut db = Database::default();
        for a in advisories {
            db.note_modified(&a.modified);
            db.advisories.push(a);
        }
        db.build_index();
        db
    }

    fn note_modified(&mut self, modified: &str) {
        let newer = match &self.identity.newest_modified {
            Some(m) => modified > m.as_str(),
            None => true,
        };
        if newer {
            self.identity.newest_modified = Some(modified.to_owned());
        }
    }

    fn build_index(&mut self) {
        self.index.clear();
        self.identity.ecosystems.clear();
        for (ai, advisory) in self.advisories.iter().enumerate() {
            let mut ecosystems: Vec<Ecosystem> = Vec::new();
            for (fi, affected) in advisory.affected.iter().enumerate() {
                let key = (
                    affected.ecosystem,
                    affected.ecosystem.normalise_name(&affected.name),
                );
                self.index.entry(key).or_default().push((ai, fi));
                if !ecosystems.contains(&affected.ecosystem) {
                    ecosystems.push(affected.ecosystem);
                }
            }
            for e in ecosystems {
                *self
                    .identity
                    .ecosystems
                    .entry(e.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        self.identity.advisories = self.advisories.len();
        let mut lines: Vec<String> = self
            .advisories
            .iter()
            .map(|a| format!("{} {}\n", a.id, a.modified))
            .collect();
        lines.sort();
        self.identity.content_digest = Some(Digest::of(lines.concat().as_bytes()));
    }

    pub fn identity(&self) -> &DbIdentity {
        &self.identity
    }

    pub fn advisories(&self) -> &[Advisory] {
        &self.advisories
    }

    /// The advisories with an `affected` entry for this package, with that entry.
    pub fn lookup(
        &self,
        ecosystem: Ecosystem,
        name: &str,
    ) -> impl Iterator<Item = (&Advisory, &Affected)> {
        self.index
            .get(&(ecosystem, ecosystem.normalise_name(name)))
            .into_iter()
            .flatten()
            .map(|&(ai, fi)| {
                let a = &self.advisories[ai];
                (a, &a.affected[fi])
            })
    }
}

struct Loader<'a> {
    limits: &'a Limits,
    by_id: HashMap<AdvisoryId, usize>,
    db: Database,
}

impl Loader<'_> {
    fn seen(&self) -> usize {
        self.db.advisories.len()
            + self.db.identity.withdrawn_skipped
            + self.db.identity.other_ecosystems_skipped
    }

    fn source(&mut self, path: &Path, depth: usize) -> Result<(), DbError> {
        let io = |source| DbError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(path).map_err(io)? {
                entries.push(entry.map_err(io)?.path());
            }
            entries.sort();
            for entry in entries {
                let is_dir = entry.is_dir();
                if is_dir && depth < self.limits.max_folder_depth {
                    self.source(&entry, depth + 1)?;
                } else if !is_dir && has_extension(&entry, "json") {
                    self.json_file(&entry)?;
                } else if !is_dir && has_extension(&entry, "zip") {
                    self.zip(&entry)?;
                }
            }
            Ok(())
        } else if has_extension(path, "zip") {
            self.zip(path)
        } else if has_extension(path, "json") {
            self.json_file(path)
        } else {
            Err(DbError::UnknownSource {
                path: path.to_owned(),
            })
        }
    }

    fn json_file(&mut self, path: &Path) -> Result<(), DbError> {
        let file = std::fs::File::open(path).map_err(|source| DbError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path.display().to_string();
        let bytes = read_capped(file, self.limits.max_file_bytes, &name).map_err(|e| match e {
            CapError::Io(source) => DbError::Io {
                path: path.to_owned(),
                source,
            },
            CapError::Db(e) => e,
        })?;
        self.record(&bytes, &name)
    }

    fn zip(&mut self, path: &Path) -> Result<(), DbError> {
        let zip_err = |source| DbError::Zip {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(|source| DbError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
        if archive.len() > self.limits.max_advisories {
            return Err(DbError::TooManyAdvisories {
                limit: self.limits.max_advisories,
            });
        }
        for i in 0..archive.len() {
            let entry = archive.by_index(i).map_err(zip_err)?;
            let entry_name = entry.name().map_err(zip_err)?.into_owned();
            if !entry.is_file() || !entry_name.ends_with(".json") {
                continue;
            }
            let name = format!("{}!{entry_name}", path.display());
            if entry.size() > self.limits.max_file_bytes {
                return Err(DbError::TooLarge {
                    file: name,
                    limit: self.limits.max_file_bytes,
                });
            }
            // The declared size can lie: the read itself is capped too.
            let bytes =
                read_capped(entry, self.limits.max_file_bytes, &name).map_err(|e| match e {
                    CapError::Io(source) => DbError::Io {
                        path: path.to_owned(),
                        source,
                    },
                    CapError::Db(e) => e,
                })?;
            self.record(&bytes, &name)?;
        }
        Ok(())
    }

    fn record(&mut self, bytes: &[u8], file: &str) -> Result<(), DbError> {
        let raw: raw::Record = serde_json::from_slice(bytes).map_err(|source| DbError::Json {
            file: file.to_owned(),
            source,
        })?;
        let Some(advisory) = convert(raw, file, self.limits)? else {
            self.db.identity.withdrawn_skipped += 1;
            return Ok(());
        };
        if advisory.affected.is_empty() {
            self.db.identity.other_ecosystems_skipped += 1;
            return Ok(());
        }
        self.db.note_modified(&advisory.modified);
        match self.by_id.get(&advisory.id) {
            Some(&i) => {
                if advisory.modified > self.db.advisories[i].modified {
                    self.db.advisories[i] = advisory;
                }
            }
            None => {
                if self.db.advisories.len() >= self.limits.max_advisories {
                    return Err(DbError::TooManyAdvisories {
                        limit: self.limits.max_advisories,
                    });
                }
                self.by_id
                    .insert(advisory.id.clone(), self.db.advisories.len());
                self.db.advisories.push(advisory);
            }
        }
        Ok(())
    }
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

enum CapError {
    Io(std::io::Error),
    Db(DbError),
}

fn read_capped(reader: impl Read, limit: u64, name: &str) -> Result<Vec<u8>, CapError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(CapError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(CapError::Db(DbError::TooLarge {
            file: name.to_owned(),
            limit,
        }));
    }
    Ok(bytes)
}

/// Checks a raw record against the schema and the limits; `None` for a withdrawn advisory.
fn convert(raw: raw::Record, file: &str, limits: &Limits) -> Result<Option<Advisory>, DbError> {
    let invalid = |message: String| DbError::Invalid {
        file: file.to_owned(),
        message,
    };
    let too_many = |what, limit| DbError::TooMany {
        file: file.to_owned(),
        what,
        limit,
    };
    let id = AdvisoryId::parse(&raw.id).map_err(|e| invalid(e.to_string()))?;
    if raw.withdrawn.is_some() {
        return Ok(None);
    }
    let modified = raw
        .modified
        .ok_or_else(|| invalid("no \"modified\" date".to_owned()))?;
    Date::parse(&modified).map_err(|e| invalid(format!("modified: {e}")))?;
    let published = raw
        .published
        .as_deref()
        .map(Date::parse)
        .transpose()
        .map_err(|e| invalid(format!("published: {e}")))?;
    let aliases = raw.aliases.unwrap_or_default();
    if aliases.len() > limits.max_aliases {
        return Err(too_many("aliases", limits.max_aliases));
    }
    let aliases = aliases
        .iter()
        .map(|a| AdvisoryId::parse(a).map_err(|e| invalid(format!("alias: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let severity = severities(raw.severity.unwrap_or_default(), limits)
        .map_err(|limit| too_many("severity entries", limit))?;
    let affected_raw = raw.affected.unwrap_or_default();
    if affected_raw.len() > limits.max_affected {
        return Err(too_many("affected entries", limits.max_affected));
    }
    let mut affected = Vec::new();
    for a in affected_raw {
        let Some(package) = a.package else { continue };
        let Some((ecosystem, release)) = super::distro::parse_osv_ecosystem(&package.ecosystem)
        else {
            continue;
        };
        if package.name.is_empty() {
            return Err(invalid("an affected package has an empty name".to_owned()));
        }
        let ranges_raw = a.ranges.unwrap_or_default();
        if ranges_raw.len() > limits.max_ranges {
            return Err(too_many("ranges", limits.max_ranges));
        }
        let mut ranges = Vec::new();
        for r in ranges_raw {
            let kind = match r.kind.as_str() {
                "SEMVER" => RangeKind::Semver,
                "ECOSYSTEM" => RangeKind::Ecosystem,
                "GIT" => RangeKind::Git,
                other => return Err(invalid(format!("unknown range type {other:?}"))),
            };
            if r.events.len() > limits.max_events {
                return Err(too_many("range events", limits.max_events));
            }
            let events = r
                .events
                .into_iter()
                .map(|e| event(e).map_err(&invalid))
                .collect::<Result<Vec<_>, _>>()?;
            ranges.push(Range { kind, events });
        }
        let versions = a.versions.unwrap_or_default();
        if versions.len() > limits.max_versions {
            return Err(too_many("versions", limits.max_versions));
        }
        let informational = a
            .database_specific
            .and_then(|d| d.informational)
            .filter(|s| !s.is_empty());
        affected.push(Affected {
            ecosystem,
            release,
            name: package.name,
            ranges,
            versions,
            severity: severities(a.severity.unwrap_or_default(), limits)
                .map_err(|limit| too_many("severity entries", limit))?,
            informational,
        });
    }
    Ok(Some(Advisory {
        id,
        aliases,
        summary: raw.summary.filter(|s| !s.is_empty()),
        published,
        modified,
        severity,
        database_severity: raw.database_specific.and_then(|d| d.severity),
        affected,
    }))
}

fn severities(raw: Vec<raw::Severity>, limits: &Limits) -> Result<Vec<SeverityVector>, usize> {
    if raw.len() > limits.max_aliases {
        return Err(limits.max_aliases);
    }
    Ok(raw
        .into_iter()
        .map(|s| SeverityVector {
            kind: s.kind,
            vector: s.score,
        })
        .collect())
}

fn event(raw: raw::Event) -> Result<Event, String> {
    let raw::Event {
        introduced,
        fixed,
        last_affected,
        limit,
    } = raw;
    let mut found = [
        introduced.map(Event::Introduced),
        fixed.map(Event::Fixed),
        last_affected.map(Event::LastAffected),
        limit.map(Event::Limit),
    ]
    .into_iter()
    .flatten();
    match (found.next(), found.next()) {
        (Some(e), None) => Ok(e),
        (None, _) => {
            Err("a range event has none of introduced, fixed, last_affected, limit".into())
        }
        (Some(_), Some(_)) => Err("a range event has more than one kind".into()),
    }
}

/// The OSV JSON shapes as serde reads them. Fields custody does not use are not read (nor
/// type-checked); `null` is accepted wherever OSV producers write it.
mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Record {
        pub id: String,
        pub modified: Option<String>,
        pub published: Option<String>,
        pub withdrawn: Option<String>,
        pub aliases: Option<Vec<String>>,
        pub summary: Option<String>,
        pub severity: Option<Vec<Severity>>,
        pub affected: Option<Vec<Affected>>,
        pub database_specific: Option<DatabaseSpecific>,
    }

    #[derive(Deserialize)]
    pub struct Severity {
        #[serde(rename = "type")]
        pub kind: String,
        pub score: String,
    }

    #[derive(Deserialize)]
    pub struct Affected {
        pub package: Option<Package>,
        pub severity: Option<Vec<Severity>>,
        pub ranges: Option<Vec<Range>>,
        pub versions: Option<Vec<String>>,
        pub database_specific: Option<AffectedDatabaseSpecific>,
    }

    #[derive(Deserialize)]
    pub struct Package {
        pub ecosystem: String,
        pub name: String,
    }

    #[derive(Deserialize)]
    pub struct Range {
        #[serde(rename = "type")]
        pub kind: String,
        pub events: Vec<Event>,
    }

    #[derive(Deserialize)]
    pub struct Event {
        pub introduced: Option<String>,
        pub fixed: Option<String>,
        pub last_affected: Option<String>,
        pub limit: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct DatabaseSpecific {
        // GitHub writes a string; other databases may write anything here.
        #[serde(default, deserialize_with = "string_or_ignore")]
        pub severity: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct AffectedDatabaseSpecific {
        #[serde(default, deserialize_with = "string_or_ignore")]
        pub informational: Option<String>,
    }

    fn string_or_ignore<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn shared_crates() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/osv/crates.io")
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    const GOOD: &str = r#"{"id":"TEST-1","modified":"2024-01-02T00:00:00Z","published":"2023-05-06T00:00:00Z",
      "aliases":["CVE-2024-1"],"summary":"bad","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
      "affected":[{"package":{"ecosystem":"crates.io","name":"foo"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}],
        "database_specific":{"informational":"unsound"}},
        {"package":{"ecosystem":"Hex","name":"foo"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}"#;

    fn load_one(bytes: &[u8]) -> Result<Database, DbError> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.json", bytes);
        Database::load(&[p], &Limits::default())
    }

    #[test]
    fn loads_the_shared_rustsec_data() {
        let db = Database::load(&[shared_crates()], &Limits::default()).unwrap();
        let id = db.identity();
        assert_eq!(id.advisories + id.withdrawn_skipped, 1185);
        assert_eq!(id.withdrawn_skipped, 13);
        assert_eq!(id.ecosystems.get("crates.io"), Some(&1172));
        assert!(id.newest_modified.is_some());
        let smallvec: Vec<_> = db
            .lookup(Ecosystem::CratesIo, "smallvec")
            .map(|(a, _)| a.id.as_str())
            .collect();
        assert!(smallvec.contains(&"RUSTSEC-2019-0009"), "{smallvec:?}");
    }

    #[test]
    fn reads_a_record_and_drops_other_ecosystems() {
        let db = load_one(GOOD.as_bytes()).unwrap();
        let a = &db.advisories()[0];
        assert_eq!(a.id.as_str(), "TEST-1");
        assert_eq!(a.aliases, vec![AdvisoryId::parse("CVE-2024-1").unwrap()]);
        assert_eq!(a.published.unwrap().to_string(), "2023-05-06");
        assert_eq!(a.affected.len(), 1);
        assert_eq!(a.affected[0].informational.as_deref(), Some("unsound"));
        assert_eq!(
            a.affected[0].ranges[0].events,
            vec![Event::Introduced("0".into()), Event::Fixed("1.2.3".into())]
        );
        assert_eq!(db.lookup(Ecosystem::CratesIo, "foo").count(), 1);
        assert_eq!(db.lookup(Ecosystem::CratesIo, "bar").count(), 0);
    }

    #[test]
    fn withdrawn_advisories_are_skipped() {
        let text = GOOD.replace(
            r#""id":"TEST-1","#,
            r#""id":"TEST-1","withdrawn":"2024-01-01T00:00:00Z","#,
        );
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", text.as_bytes());
        write(
            dir.path(),
            "b.json",
            GOOD.replace("TEST-1", "TEST-2").as_bytes(),
        );
        let db = Database::load(&[dir.path().to_owned()], &Limits::default()).unwrap();
        assert_eq!(db.identity().withdrawn_skipped, 1);
        assert_eq!(db.identity().advisories, 1);
        assert_eq!(db.advisories()[0].id.as_str(), "TEST-2");
    }

    #[test]
    fn the_newer_record_of_an_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", GOOD.as_bytes());
        write(
            dir.path(),
            "b.json",
            GOOD.replace("2024-01-02T00:00:00Z", "2025-01-01T00:00:00Z")
                .replace("\"bad\"", "\"newer\"")
                .as_bytes(),
        );
        let db = Database::load(&[dir.path().to_owned()], &Limits::default()).unwrap();
        assert_eq!(db.advisories().len(), 1);
        assert_eq!(db.advisories()[0].summary.as_deref(), Some("newer"));
        assert_eq!(
            db.identity().newest_modified.as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
    }

    #[test]
    fn reads_zip_archives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("TEST-1.json", opts).unwrap();
        zip.write_all(GOOD.as_bytes()).unwrap();
        zip.start_file("README.txt", opts).unwrap();
        zip.write_all(b"not an advisory").unwrap();
        zip.finish().unwrap();
        let db = Database::load(&[path], &Limits::default()).unwrap();
        assert_eq!(db.advisories().len(), 1);
        // The same advisory from a folder has the same content digest.
        let folder = load_one(GOOD.as_bytes()).unwrap();
        assert_eq!(
            db.identity().content_digest,
            folder.identity().content_digest
        );
        assert!(db.identity().content_digest.is_some());
    }

    #[test]
    fn a_zip_entry_over_the_cap_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("BIG.json", opts).unwrap();
        // Compresses to almost nothing: a zip bomb in miniature.
        zip.write_all(&vec![b' '; 2 * 1024 * 1024]).unwrap();
        zip.finish().unwrap();
        let limits = Limits {
            max_file_bytes: 1024 * 1024,
            ..Limits::default()
        };
        let err = Database::load(&[path], &limits).unwrap_err();
        assert!(
            matches!(&err, DbError::TooLarge { file, limit: 1048576 } if file.ends_with("all.zip!BIG.json")),
            "{err:?}"
        );
    }

    #[test]
    fn a_huge_file_is_refused() {
        let mut text = GOOD.to_owned();
        text.push_str(&" ".repeat(9 * 1024 * 1024));
        let err = load_one(text.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, DbError::TooLarge { file, .. } if file.ends_with("a.json")),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_records_give_errors_naming_the_file() {
        let table: &[(&str, &[u8])] = &[
            ("invalid json", b"{\"id\": "),
            (
                "wrong type",
                br#"{"id": 5, "modified": "2024-01-01T00:00:00Z"}"#,
            ),
            (
                "wrong type in affected",
                br#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":{"a":1}}"#,
            ),
            (
                "invalid utf-8",
                b"{\"id\":\"X-1\",\"summary\":\"\xff\xfe\",\"modified\":\"2024-01-01T00:00:00Z\"}",
            ),
        ];
        for (what, bytes) in table {
            let err = load_one(bytes).unwrap_err();
            assert!(
                matches!(&err, DbError::Json { file, .. } if file.ends_with("a.json")),
                "{what}: {err:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_json_never_overflows_the_stack() {
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // In a field custody does not read: skipped without recursion.
        let ignored = GOOD.replace(
            r#""summary":"bad","#,
            &format!(r#""summary":"bad","details":{nested},"#),
        );
        assert!(load_one(ignored.as_bytes()).is_ok());
        // In a field custody reads as a value: serde_json's recursion limit refuses it.
        let read = GOOD.replace(
            r#""published":"#,
            &format!(r#""database_specific":{{"severity":{nested}}},"published":"#),
        );
        let err = load_one(read.as_bytes()).unwrap_err();
        assert!(matches!(err, DbError::Json { .. }), "{err:?}");
    }

    #[test]
    fn truncated_and_bit_flipped_records_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in [
            "RUSTSEC-2019-0009.json",
            "RUSTSEC-2021-0003.json",
            "RUSTSEC-2020-0071.json",
        ] {
            let original = std::fs::read(shared_crates().join(name)).unwrap();
            for cut in (0..original.len()).step_by(97) {
                let p = write(dir.path(), "t.json", &original[..cut]);
                let _ = Database::load(&[p], &Limits::default());
            }
            for _ in 0..300 {
                let mut bytes = original.clone();
                let i = (next() as usize) % bytes.len();
                bytes[i] ^= 1 << (next() % 8);
                let p = write(dir.path(), "f.json", &bytes);
                if let Ok(db) = Database::load(&[p], &Limits::default()) {
                    // Whatever loaded can be matched against without panicking.
                    let _ = crate::decisions::vuln::scan(
                        ["pkg:cargo/smallvec@0.6.9", "pkg:cargo/time@0.1.0"],
                        &db,
                    );
                }
            }
        }
    }

    #[test]
    fn schema_violations_are_invalid() {
        let table = [
            (
                GOOD.replace("\"TEST-1\"", "\"bad id with spaces\""),
                "advisory id",
            ),
            (
                GOOD.replace("\"modified\":\"2024-01-02T00:00:00Z\",", ""),
                "modified",
            ),
            (
                GOOD.replace("\"SEMVER\"", "\"WEIRD\""),
                "unknown range type",
            ),
            (
                GOOD.replace(
                    r#"{"fixed":"1.2.3"}"#,
                    r#"{"fixed":"1.2.3","introduced":"1"}"#,
                ),
                "more than one kind",
            ),
            (GOOD.replace(r#"{"fixed":"1.2.3"}"#, "{}"), "none of"),
            (
                GOOD.replace("2023-05-06T00:00:00Z", "yesterday"),
                "published",
            ),
        ];
        for (text, needle) in table {
            let err = load_one(text.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, DbError::Invalid { file, message } if file.ends_with("a.json") && message.contains(needle)),
                "{needle}: {err:?}"
            );
        }
    }

    #[test]
    fn counts_past_the_limits_are_refused() {
        let limits = Limits {
            max_events: 1,
            ..Limits::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.json", GOOD.as_bytes());
        let err = Database::load(std::slice::from_ref(&p), &limits).unwrap_err();
        assert!(matches!(
            err,
            DbError::TooMany {
                what: "range events",
                limit: 1,
                ..
            }
        ));
        let limits = Limits {
            max_advisories: 0,
            ..Limits::default()
        };
        let err = Database::load(&[p], &limits).unwrap_err();
        assert!(matches!(err, DbError::TooManyAdvisories { limit: 0 }));
    }

    #[test]
    fn bad_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Database::load(&[dir.path().to_owned()], &Limits::default()).unwrap_err();
        assert!(matches!(err, DbError::Empty { .. }));
        let p = write(dir.path(), "db.tar", b"");
        let err = Database::load(&[p], &Limits::default()).unwrap_err();
        assert!(matches!(err, DbError::UnknownSource { .. }));
        let p = write(dir.path(), "broken.zip", b"PK not really");
        let err = Database::load(&[p], &Limits::default()).unwrap_err();
        assert!(matches!(err, DbError::Zip { .. }));
        let err = Database::load(&[dir.path().join("missing")], &Limits::default()).unwrap_err();
        assert!(matches!(err, DbError::Io { .. }));
    }
}
