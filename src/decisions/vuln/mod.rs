//! Known-vulnerability scanning: components named by purl are matched against an offline OSV
//! database ([`db`]) with each ecosystem's version order ([`version`]); advisories that are
//! aliases of one another are reported once. [`policy`] decides which findings a release may
//! carry; [`input`] reads the components of a CycloneDX SBOM, a lockfile or an OCI artifact's
//! SBOM referrer; [`sarif`] writes SARIF 2.1.0.

pub mod apkversion;
pub mod db;
pub mod debversion;
pub mod distro;
pub mod input;
pub mod policy;
pub mod rpmversion;
pub mod sarif;
pub mod version;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::foundation::time::Date;
pub use db::{Advisory, AdvisoryId, Affected, Database, DbError, DbIdentity, Limits};
pub use version::{Ecosystem, Version};

use db::{Event, RangeKind};
use version::Bound;

// ------------------------------------------------------------------------------- severity

/// A qualitative severity rating (CVSS v3/v4 scale), plus `unknown` when nothing could be scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Unknown,
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Unknown => "unknown",
            Rating::None => "none",
            Rating::Low => "low",
            Rating::Medium => "medium",
            Rating::High => "high",
            Rating::Critical => "critical",
        }
    }

    /// The rank of a known rating; `unknown` has none (callers decide how to treat it).
    pub(crate) fn rank(self) -> Option<u8> {
        match self {
            Rating::Unknown => None,
            Rating::None => Some(0),
            Rating::Low => Some(1),
            Rating::Medium => Some(2),
            Rating::High => Some(3),
            Rating::Critical => Some(4),
        }
    }

    /// Whether this rating is at or above `threshold`, `unknown` counting as `unknown_as`.
    pub fn at_least(self, threshold: Rating, unknown_as: Rating) -> bool {
        let own = self.rank().or(unknown_as.rank()).unwrap_or(u8::MAX);
        match threshold.rank() {
            Some(t) => own >= t,
            // A threshold of `unknown` means every finding.
            None => true,
        }
    }

    fn from_cvss(s: cvss::Severity) -> Rating {
        match s {
            cvss::Severity::None => Rating::None,
            cvss::Severity::Low => Rating::Low,
            cvss::Severity::Medium => Rating::Medium,
            cvss::Severity::High => Rating::High,
            cvss::Severity::Critical => Rating::Critical,
        }
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a severity rating.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a severity (unknown, none, low, medium, high, critical)")]
pub struct RatingError {
    pub input: String,
}

impl FromStr for Rating {
    type Err = RatingError;
    fn from_str(s: &str) -> Result<Rating, RatingError> {
        match s.to_ascii_lowercase().as_str() {
            "unknown" => Ok(Rating::Unknown),
            "none" => Ok(Rating::None),
            "low" => Ok(Rating::Low),
            "medium" | "moderate" => Ok(Rating::Medium),
            "high" => Ok(Rating::High),
            "critical" => Ok(Rating::Critical),
            _ => Err(RatingError {
                input: s.to_owned(),
            }),
        }
    }
}

/// Where a finding's severity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeveritySource {
    /// Scored from a CVSS vector by the `cvss` crate.
    Cvss,
    /// The database's own word (GitHub's `database_specific.severity`), no vector scored.
    Database,
    None,
}

/// A finding's severity: the rating, and the CVSS score and vector it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    pub rating: Rating,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    pub source: SeveritySource,
}

impl Severity {
    pub const UNKNOWN: Severity = Severity {
        rating: Rating::Unknown,
        score: None,
        vector: None,
        source: SeveritySource::None,
    };

    /// Scores one CVSS vector (v3.0, v3.1, v4.0); `None` when the crate cannot read it.
    pub fn from_cvss_vector(vector: &str) -> Option<Severity> {
        let parsed = cvss::Cvss::from_str(vector.trim()).ok()?;
        let score = parsed.score();
        Some(Severity {
            rating: Rating::from_cvss(parsed.severity()),
            score: Some(score),
            vector: Some(vector.trim().to_owned()),
            source: SeveritySource::Cvss,
        })
    }

    /// The highest-scoring of the advisory's and the affected entry's CVSS vectors (a gate
    /// errs on the side of the worse reading), else the database's rating, else unknown.
    fn of(advisory: &Advisory, affected: &Affected) -> Severity {
        let best = advisory
            .severity
            .iter()
            .chain(&affected.severity)
            .filter_map(|s| Severity::from_cvss_vector(&s.vector))
            .max_by(|a, b| a.score.partial_cmp(&b.score).unwrap_or(Ordering::Equal));
        if let Some(best) = best {
            return best;
        }
        match advisory
            .database_severity
            .as_deref()
            .and_then(|s| Rating::from_str(s).ok())
        {
            Some(rating) => Severity {
                rating,
                score: None,
                vector: None,
                source: SeveritySource::Database,
            },
            None => Severity::UNKNOWN,
        }
    }

    /// The worse of two severities.
    fn worse(self, other: Severity) -> Severity {
        let key = |s: &Severity| {
            (
                s.rating.rank().map_or(-1, i16::from),
                s.score.unwrap_or(-1.0),
            )
        };
        let (a, b) = (key(&self), key(&other));
        if b.0 > a.0 || (b.0 == a.0 && b.1 > a.1) {
            other
        } else {
            self
        }
    }
}

// ---------------------------------------------------------------------------------- purls

/// A package a purl names, in a form the database is indexed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PackageRef {
    pub purl: String,
    pub ecosystem: Ecosystem,
    /// The full name: `@scope/name` for npm, the module path for Go, the source package for
    /// Debian, Ubuntu and Alpine.
    pub name: String,
    /// The version the ecosystem's advisories order (for Debian, the source version when the
    /// purl gives it).
    pub version: String,
    /// An OS package's distribution release, keyed as [`distro`] keys advisories' releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Why a component was not matched against the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum NotScanned {
    /// The component has no purl.
    NoPurl { name: String },
    /// The purl is malformed.
    BadPurl { purl: String },
    /// A purl type with no OSV ecosystem custody matches.
    UnsupportedType { purl: String },
    /// The purl carries no version.
    NoVersion { purl: String },
    /// The version cannot be read in the ecosystem's scheme.
    BadVersion { purl: String, message: String },
    /// An OS package whose purl names no distribution release (`distro=`): OS advisories are
    /// per release.
    NoRelease { purl: String },
}

/// Reads `pkg:type/namespace/name@version?qualifiers#subpath` for the types custody matches.
pub fn package_from_purl(purl: &str) -> Result<PackageRef, NotScanned> {
    let bad = || NotScanned::BadPurl {
        purl: purl.to_owned(),
    };
    if let Some(os) = distro::package_from_os_purl(purl) {
        return os;
    }
    let rest = purl.strip_prefix("pkg:").ok_or_else(bad)?;
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let (ty, path) = rest.split_once('/').ok_or_else(bad)?;
    let ecosystem = match ty.to_ascii_lowercase().as_str() {
        "cargo" => Ecosystem::CratesIo,
        "npm" => Ecosystem::Npm,
        "golang" => Ecosystem::Go,
        "pypi" => Ecosystem::PyPi,
        _ => {
            return Err(NotScanned::UnsupportedType {
                purl: purl.to_owned(),
            });
        }
    };
    let path = path.trim_matches('/');
    let (path, version) = match path.rsplit_once('@') {
        // An npm scope's `@` is percent-encoded in a canonical purl, but not always.
        Some((p, v)) if !p.is_empty() && !p.ends_with('/') => (p, Some(v)),
        _ => (path, None),
    };
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    if segments.is_empty() {
        return Err(bad());
    }
    let name = segments.join("/");
    let version = match version.map(percent_decode) {
        Some(Some(v)) if !v.is_empty() => v,
        Some(None) => return Err(bad()),
        _ => {
            return Err(NotScanned::NoVersion {
                purl: purl.to_owned(),
            });
        }
    };
    Ok(PackageRef {
        purl: purl.to_owned(),
        ecosystem,
        name,
        version,
        release: None,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ------------------------------------------------------------------------------- matching

/// Why an advisory's entry could not be fully evaluated for a package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub advisory: AdvisoryId,
    pub purl: String,
    pub message: String,
}

/// Whether `version` is affected by one `affected` entry (its `SEMVER` and `ECOSYSTEM` ranges as
/// the OSV schema evaluates them, or its explicit `versions`) and, if so, the versions that fix
/// it: for each matching range, the first `fixed` event above the version. `GIT` ranges name
/// commits, which a released version does not carry: they are skipped with a warning. A range
/// whose events cannot be read in the package's scheme is reported as a warning, not counted.
fn affects(
    affected: &Affected,
    ecosystem: Ecosystem,
    raw_version: &str,
    version: &Version,
    warn: &mut dyn FnMut(String),
) -> Option<Vec<String>> {
    let listed = affected.versions.iter().any(|v| {
        v == raw_version
            || Version::parse(ecosystem, v)
                .ok()
                .and_then(|p| p.compare(version))
                == Some(Ordering::Equal)
    });
    let mut matched = false;
    let mut fixes = Vec::new();
    for range in &affected.ranges {
        let parse: fn(Ecosystem, &str) -> Result<Version, version::VersionError> = match range.kind
        {
            RangeKind::Git => {
                warn(
                    "a GIT range names commits; custody matches released versions, so it was \
                      not evaluated (the entry's explicit versions were)"
                        .to_owned(),
                );
                continue;
            }
            RangeKind::Semver => |_, s| Version::parse_semver(s),
            RangeKind::Ecosystem => Version::parse,
        };
        // The version under test must be read the way the range's versions are.
        let subject = match range.kind {
            RangeKind::Semver => match Version::parse_semver(raw_version) {
                Ok(v) => v,
                Err(e) => {
                    warn(format!("a SEMVER range cannot order this version: {e}"));
                    continue;
                }
            },
            _ => version.clone(),
        };
        match in_range(&range.events, ecosystem, &subject, parse) {
            Ok(Some(fix)) => {
                matched = true;
                fixes.extend(fix);
            }
            Ok(None) => {}
            Err(message) => warn(message),
        }
    }
    (matched || listed).then_some(fixes)
}

/// The OSV schema's evaluation: events sorted by version, `introduced` opens, `fixed` (at or
/// after) and `last_affected` (strictly after) close; a version at or past any `limit` is
/// outside. `Some(fix)` when affected, with the `fixed` event that closes its window, if any.
fn in_range(
    events: &[Event],
    ecosystem: Ecosystem,
    version: &Version,
    parse: fn(Ecosystem, &str) -> Result<Version, version::VersionError>,
) -> Result<Option<Option<String>>, String> {
    let bound = |s: &str| -> Result<Bound, String> {
        if s == "0" {
            Ok(Bound::Zero)
        } else {
            parse(ecosystem, s)
                .map(Bound::At)
                .map_err(|e| format!("range event cannot be read: {e}"))
        }
    };
    let mut sorted: Vec<(Bound, &Event)> = Vec::with_capacity(events.len());
    for e in events {
        let v = match e {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        };
        sorted.push((bound(v)?, e));
    }
    let cmp_bounds = |a: &Bound, b: &Bound| match (a, b) {
        (Bound::Zero, Bound::Zero) => Ordering::Equal,
        (Bound::Zero, _) => Ordering::Less,
        (_, Bound::Zero) => Ordering::Greater,
        (Bound::At(x), Bound::At(y)) => x.compare(y).unwrap_or(Ordering::Equal),
    };
    sorted.sort_by(|a, b| cmp_bounds(&a.0, &b.0));
    let order = |b: &Bound| {
        b.compare_version(version)
            .ok_or_else(|| "range and version use different schemes".to_owned())
    };
    let mut affected = false;
    for (b, e) in &sorted {
        match e {
            Event::Introduced(_) => {
                if order(b)? != Ordering::Less {
                    affected = true;
                }
            }
            Event::Fixed(_) => {
                if order(b)? != Ordering::Less {
                    affected = false;
                }
            }
            Event::LastAffected(_) => {
                if order(b)? == Ordering::Greater {
                    affected = false;
                }
            }
            Event::Limit(_) => {
                if order(b)? != Ordering::Less {
                    return Ok(None);
                }
            }
        }
    }
    if !affected {
        return Ok(None);
    }
    for (b, e) in &sorted {
        if let Event::Fixed(v) = e
            && order(b)? == Ordering::Less
        {
            return Ok(Some(Some(v.clone())));
        }
    }
    Ok(Some(None))
}

/// One problem in one component: advisories that are aliases of one another are merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub purl: String,
    pub ecosystem: Ecosystem,
    pub package: String,
    pub version: String,
    /// The id the finding is reported under (an ecosystem database's own id before GHSA, GHSA
    /// before CVE).
    pub id: AdvisoryId,
    /// Every other id of the same problem.
    pub aliases: Vec<AdvisoryId>,
    /// The database records that matched (more than one when aliases were merged).
    pub advisories: Vec<AdvisoryId>,
    pub summary: String,
    pub severity: Severity,
    /// Versions that fix it, from the matched entries' `fixed` events, in version order.
    pub fixed: Vec<String>,
    /// The earliest publication date of the merged advisories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Date>,
    /// RustSec's informational kind (`unmaintained`, `unsound`, `notice`), when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub informational: Option<String>,
}

impl Finding {
    /// Every id this finding is known by.
    pub fn ids(&self) -> impl Iterator<Item = &AdvisoryId> {
        std::iter::once(&self.id).chain(&self.aliases)
    }
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// Distinct packages matched against the database.
    pub scanned: usize,
    pub findings: Vec<Finding>,
    pub not_scanned: Vec<NotScanned>,
    pub warnings: Vec<Warning>,
}

/// Matches every purl (duplicates scanned once) against the database. Findings are ordered by
/// purl, then id.
pub fn scan<'a>(purls: impl IntoIterator<Item = &'a str>, db: &Database) -> ScanResult {
    let mut result = ScanResult::default();
    let mut packages = BTreeSet::new();
    let mut not_scanned = BTreeSet::new();
    for purl in purls {
        match package_from_purl(purl) {
            Ok(p) => {
                packages.insert(p);
            }
            Err(n) => {
                not_scanned.insert(n);
            }
        }
    }
    let mut warnings = BTreeSet::new();
    for package in &packages {
        let version = match Version::parse(package.ecosystem, &package.version) {
            Ok(v) => v,
            Err(e) => {
                not_scanned.insert(NotScanned::BadVersion {
                    purl: package.purl.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        result.scanned += 1;
        let mut matched: Vec<Matched> = Vec::new();
        for (advisory, affected) in db
            .lookup(package.ecosystem, &package.name)
            .filter(|(_, f)| f.release.is_none() || f.release == package.release)
        {
            let mut warn = |message| {
                warnings.insert(Warning {
                    advisory: advisory.id.clone(),
                    purl: package.purl.clone(),
                    message,
                });
            };
            if let Some(fixes) = affects(
                affected,
                package.ecosystem,
                &package.version,
                &version,
                &mut warn,
            ) {
                matched.push((advisory, affected, fixes));
            }
        }
        result.findings.extend(merge(package, &matched));
    }
    result.not_scanned = not_scanned.into_iter().collect();
    result.warnings = warnings.into_iter().collect();
    result
}

/// Groups the matched advisories of one package by shared ids (union-find over ids and
/// aliases) and makes one finding per group.
/// An advisory entry that matched, with the versions that fix it.
type Matched<'a> = (&'a Advisory, &'a Affected, Vec<String>);

fn merge(package: &PackageRef, matched: &[Matched]) -> Vec<Finding> {
    let mut ids: BTreeMap<&AdvisoryId, usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    fn slot<'a>(
        id: &'a AdvisoryId,
        ids: &mut BTreeMap<&'a AdvisoryId, usize>,
        parent: &mut Vec<usize>,
    ) -> usize {
        *ids.entry(id).or_insert_with(|| {
            parent.push(parent.len());
            parent.len() - 1
        })
    }
    for (advisory, _, _) in matched {
        let a = slot(&advisory.id, &mut ids, &mut parent);
        for alias in &advisory.aliases {
            let b = slot(alias, &mut ids, &mut parent);
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[rb] = ra;
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<&Matched>> = BTreeMap::new();
    for m in matched {
        let root = find(&mut parent, ids[&m.0.id]);
        groups.entry(root).or_default().push(m);
    }
    let mut findings: Vec<Finding> = groups
        .into_iter()
        .map(|(root, members)| {
            let group_ids: BTreeSet<&AdvisoryId> = ids
                .iter()
                .filter(|&(_, &i)| find(&mut parent, i) == root)
                .map(|(id, _)| *id)
                .collect();
            finding(package, &members, group_ids)
        })
        .collect();
    findings.sort_by(|a, b| a.id.cmp(&b.id));
    findings
}

/// Which id names a merged finding: a matched record's own id, ecosystem databases (RUSTSEC,
/// PYSEC, GO, ...) before GHSA before CVE, then alphabetical.
fn id_rank(id: &AdvisoryId) -> (u8, &str) {
    let s = id.as_str();
    let rank = if s.starts_with("CVE-") {
        2
    } else if s.starts_with("GHSA-") {
        1
    } else {
        0
    };
    (rank, s)
}

fn finding(
    package: &PackageRef,
    members: &[&Matched],
    group_ids: BTreeSet<&AdvisoryId>,
) -> Finding {
    let primary = members
        .iter()
        .map(|(a, _, _)| &a.id)
        .min_by(|a, b| id_rank(a).cmp(&id_rank(b)))
        .expect("a group has at least one member")
        .clone();
    let advisories: BTreeSet<AdvisoryId> = members.iter().map(|(a, _, _)| a.id.clone()).collect();
    let aliases = group_ids
        .into_iter()
        .filter(|id| **id != primary)
        .cloned()
        .collect();
    let mut ordered = members.to_vec();
    ordered.sort_by(|a, b| id_rank(&a.0.id).cmp(&id_rank(&b.0.id)));
    let summary = ordered
        .iter()
        .find_map(|(a, _, _)| a.summary.clone())
        .unwrap_or_default();
    let severity = members
        .iter()
        .map(|(a, f, _)| Severity::of(a, f))
        .reduce(Severity::worse)
        .unwrap_or(Severity::UNKNOWN);
    let published = members.iter().filter_map(|(a, _, _)| a.published).min();
    let informational = ordered.iter().find_map(|(_, f, _)| f.informational.clone());
    Finding {
        purl: package.purl.clone(),
        ecosystem: package.ecosystem,
        package: package.name.clone(),
        version: package.version.clone(),
        id: primary,
        aliases,
        advisories: advisories.into_iter().collect(),
        summary,
        severity,
        fixed: fixed_versions(package.ecosystem, members),
        published,
        informational,
    }
}

fn fixed_versions(ecosystem: Ecosystem, members: &[&Matched]) -> Vec<String> {
    let mut fixed: Vec<String> = Vec::new();
    for (_, _, fixes) in members {
        for v in fixes {
            if !fixed.contains(v) {
                fixed.push(v.clone());
            }
        }
    }
    fixed.sort_by(|a, b| {
        match (
            Version::parse(ecosystem, a).or_else(|_| Version::parse_semver(a)),
            Version::parse(ecosystem, b).or_else(|_| Version::parse_semver(b)),
        ) {
            (Ok(x), Ok(y)) => x.compare(&y).unwrap_or(Ordering::Equal).then(a.cmp(b)),
            _ => a.cmp(b),
        }
    });
    fixed
}

/// A scan's full outcome, as `custody scan --output json` prints it and `verify`/`promote` can
/// embed it: what was read, against which database, what was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub input: input::Source,
    /// Whether the SBOM's signature was checked (see [`input::SbomVerification`]).
    pub sbom_verification: input::SbomVerification,
    pub database: DbIdentity,
    #[serde(flatten)]
    pub result: ScanResult,
    /// Components listed without a purl, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components_without_purl: Vec<String>,
}

/// Scans components read by [`input`] against `db`.
pub fn scan_components(components: input::Components, db: &Database) -> ScanReport {
    let result = scan(components.purls.iter().map(String::as_str), db);
    ScanReport {
        input: components.source,
        sbom_verification: components.verification,
        database: db.identity().clone(),
        result,
        components_without_purl: components.without_purl,
    }
}

#[cfg(test)]
mod tests {
    use super::db::{Range, SeverityVector};
    use super::*;

    fn id(s: &str) -> AdvisoryId {
        AdvisoryId::parse(s).unwrap()
    }

    fn range(kind: RangeKind, events: &[(&str, &str)]) -> Range {
        Range {
            kind,
            events: events
                .iter()
                .map(|(k, v)| match *k {
                    "introduced" => Event::Introduced(v.to_string()),
                    "fixed" => Event::Fixed(v.to_string()),
                    "last_affected" => Event::LastAffected(v.to_string()),
                    "limit" => Event::Limit(v.to_string()),
                    _ => unreachable!(),
                })
                .collect(),
        }
    }

    fn advisory(
        ident: &str,
        aliases: &[&str],
        eco: Ecosystem,
        name: &str,
        ranges: Vec<Range>,
        versions: &[&str],
    ) -> Advisory {
        Advisory {
            id: id(ident),
            aliases: aliases.iter().map(|a| id(a)).collect(),
            summary: Some(format!("summary of {ident}")),
            published: Some(Date::parse("2024-01-01").unwrap()),
            modified: "2024-02-01T00:00:00Z".into(),
            severity: vec![],
            database_severity: None,
            affected: vec![Affected {
                ecosystem: eco,
                release: None,
                name: name.into(),
                ranges,
                versions: versions.iter().map(|v| v.to_string()).collect(),
                severity: vec![],
                informational: None,
            }],
        }
    }

    fn affected_by(a: &Advisory, version: &str) -> bool {
        let eco = a.affected[0].ecosystem;
        let v = Version::parse(eco, version).unwrap();
        affects(&a.affected[0], eco, version, &v, &mut |m| panic!("{m}")).is_some()
    }

    #[test]
    fn range_evaluation_table() {
        use RangeKind::{Ecosystem as E, Semver as S};
        let c = Ecosystem::CratesIo;
        let table: Vec<(Advisory, &str, bool)> = vec![
            (
                advisory(
                    "A-1",
                    &[],
                    c,
                    "x",
                    vec![range(S, &[("introduced", "0"), ("fixed", "1.2.0")])],
                    &[],
                ),
                "1.1.9",
                true,
            ),
            (
                advisory(
                    "A-1",
                    &[],
                    c,
                    "x",
                    vec![range(S, &[("introduced", "0"), ("fixed", "1.2.0")])],
                    &[],
                ),
                "1.2.0",
                false,
            ),
            (
                advisory(
                    "A-1",
                    &[],
                    c,
                    "x",
                    vec![range(S, &[("introduced", "0"), ("fixed", "1.2.0")])],
                    &[],
                ),
                "1.2.0-rc.1",
                true,
            ),
            (
                advisory(
                    "A-2",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[("introduced", "1.0.0"), ("last_affected", "1.4.0")],
                    )],
                    &[],
                ),
                "1.4.0",
                true,
            ),
            (
                advisory(
                    "A-2",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[("introduced", "1.0.0"), ("last_affected", "1.4.0")],
                    )],
                    &[],
                ),
                "1.4.1",
                false,
            ),
            (
                advisory(
                    "A-2",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[("introduced", "1.0.0"), ("last_affected", "1.4.0")],
                    )],
                    &[],
                ),
                "0.9.0",
                false,
            ),
            // Two windows in one range, given out of order.
            (
                advisory(
                    "A-3",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[
                            ("introduced", "2.0.0"),
                            ("fixed", "2.1.0"),
                            ("introduced", "0"),
                            ("fixed", "1.5.0"),
                        ],
                    )],
                    &[],
                ),
                "1.7.0",
                false,
            ),
            (
                advisory(
                    "A-3",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[
                            ("introduced", "2.0.0"),
                            ("fixed", "2.1.0"),
                            ("introduced", "0"),
                            ("fixed", "1.5.0"),
                        ],
                    )],
                    &[],
                ),
                "2.0.5",
                true,
            ),
            (
                advisory(
                    "A-3",
                    &[],
                    c,
                    "x",
                    vec![range(
                        S,
                        &[
                            ("introduced", "2.0.0"),
                            ("fixed", "2.1.0"),
                            ("introduced", "0"),
                            ("fixed", "1.5.0"),
                        ],
                    )],
                    &[],
                ),
                "1.0.0",
                true,
            ),
            // Several ranges.
            (
                advisory(
                    "A-4",
                    &[],
                    c,
                    "x",
                    vec![
                        range(S, &[("introduced", "0.6.5"), ("fixed", "0.6.10")]),
                        range(S, &[("introduced", "1.0.0"), ("fixed", "1.6.1")]),
                    ],
                    &[],
                ),
                "1.6.0",
                true,
            ),
            (
                advisory(
                    "A-4",
                    &[],
                    c,
                    "x",
                    vec![
                        range(S, &[("introduced", "0.6.5"), ("fixed", "0.6.10")]),
                        range(S, &[("introduced", "1.0.0"), ("fixed", "1.6.1")]),
                    ],
                    &[],
                ),
                "0.7.0",
                false,
            ),
            // A limit closes the range.
            (
                advisory(
                    "A-5",
                    &[],
                    c,
                    "x",
                    vec![range(E, &[("introduced", "1.0.0"), ("limit", "1.3.0")])],
                    &[],
                ),
                "1.2.0",
                true,
            ),
            (
                advisory(
                    "A-5",
                    &[],
                    c,
                    "x",
                    vec![range(E, &[("introduced", "1.0.0"), ("limit", "1.3.0")])],
                    &[],
                ),
                "1.3.0",
                false,
            ),
            // No fix: open ended.
            (
                advisory(
                    "A-6",
                    &[],
                    c,
                    "x",
                    vec![range(S, &[("introduced", "0")])],
                    &[],
                ),
                "99.0.0",
                true,
            ),
            // Explicit versions.
            (
                advisory("A-7", &[], c, "x", vec![], &["1.0.0", "1.0.1"]),
                "1.0.1",
                true,
            ),
            (
                advisory("A-7", &[], c, "x", vec![], &["1.0.0", "1.0.1"]),
                "1.0.2",
                false,
            ),
        ];
        for (a, version, want) in table {
            assert_eq!(affected_by(&a, version), want, "{} at {version}", a.id);
        }
    }

    #[test]
    fn ecosystem_ranges_use_the_ecosystem_order() {
        use RangeKind::Ecosystem as E;
        let py = advisory(
            "PYSEC-1",
            &[],
            Ecosystem::PyPi,
            "Django",
            vec![range(E, &[("introduced", "0"), ("fixed", "4.2.post1")])],
            &[],
        );
        assert!(affected_by(&py, "4.2"));
        assert!(affected_by(&py, "4.2rc1"));
        assert!(!affected_by(&py, "4.2.post1"));
        assert!(!affected_by(&py, "4.3.dev0"));
        let go = advisory(
            "GO-1",
            &[],
            Ecosystem::Go,
            "golang.org/x/net",
            vec![range(E, &[("introduced", "0"), ("fixed", "0.7.0")])],
            &[],
        );
        assert!(affected_by(&go, "v0.0.0-20220127200216-cd36cc0744dd"));
        assert!(!affected_by(&go, "v0.7.0"));
        let npm = advisory(
            "GHSA-aaaa-bbbb-cccc",
            &[],
            Ecosystem::Npm,
            "@scope/pkg",
            vec![range(E, &[("introduced", "1.0.0"), ("fixed", "1.0.1")])],
            &[],
        );
        assert!(affected_by(&npm, "1.0.1-beta.1"));
    }

    #[test]
    fn git_ranges_are_not_evaluated_and_say_so() {
        let a = advisory(
            "A-8",
            &[],
            Ecosystem::CratesIo,
            "x",
            vec![range(RangeKind::Git, &[("introduced", "0")])],
            &["1.0.1"],
        );
        let mut warnings = Vec::new();
        for (version, want) in [("1.0.0", false), ("1.0.1", true)] {
            let v = Version::parse(Ecosystem::CratesIo, version).unwrap();
            let got = affects(&a.affected[0], Ecosystem::CratesIo, version, &v, &mut |m| {
                warnings.push(m)
            });
            assert_eq!(got.is_some(), want, "{version}");
        }
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("GIT range"), "{warnings:?}");
    }

    #[test]
    fn unreadable_range_events_warn_and_do_not_match() {
        let a = advisory(
            "A-9",
            &[],
            Ecosystem::CratesIo,
            "x",
            vec![range(RangeKind::Semver, &[("introduced", "not-a-version")])],
            &[],
        );
        let v = Version::parse(Ecosystem::CratesIo, "1.0.0").unwrap();
        let mut warnings = Vec::new();
        assert!(
            affects(&a.affected[0], Ecosystem::CratesIo, "1.0.0", &v, &mut |m| {
                warnings.push(m)
            })
            .is_none()
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not-a-version"), "{warnings:?}");
    }

    #[test]
    fn purls_table() {
        let ok = [
            (
                "pkg:cargo/smallvec@0.6.9",
                Ecosystem::CratesIo,
                "smallvec",
                "0.6.9",
            ),
            (
                "pkg:npm/%40babel/core@7.24.0",
                Ecosystem::Npm,
                "@babel/core",
                "7.24.0",
            ),
            (
                "pkg:npm/@babel/core@7.24.0",
                Ecosystem::Npm,
                "@babel/core",
                "7.24.0",
            ),
            (
                "pkg:golang/golang.org/x/text@v0.3.7?type=module",
                Ecosystem::Go,
                "golang.org/x/text",
                "v0.3.7",
            ),
            (
                "pkg:pypi/django@4.2#sub/path",
                Ecosystem::PyPi,
                "django",
                "4.2",
            ),
            (
                "pkg:npm/x@1.0.0%2Bbuild",
                Ecosystem::Npm,
                "x",
                "1.0.0+build",
            ),
        ];
        for (purl, eco, name, version) in ok {
            let p = package_from_purl(purl).unwrap();
            assert_eq!(
                (p.ecosystem, p.name.as_str(), p.version.as_str()),
                (eco, name, version),
                "{purl}"
            );
        }
        assert!(matches!(
            package_from_purl("pkg:cargo/serde"),
            Err(NotScanned::NoVersion { .. })
        ));
        assert!(matches!(
            package_from_purl("pkg:conan/curl@7"),
            Err(NotScanned::UnsupportedType { .. })
        ));
        assert!(matches!(
            package_from_purl("cargo/serde@1"),
            Err(NotScanned::BadPurl { .. })
        ));
        assert!(matches!(
            package_from_purl("pkg:cargo/se%zzrde@1"),
            Err(NotScanned::BadPurl { .. })
        ));
    }

    #[test]
    fn aliases_merge_into_one_finding() {
        use RangeKind::Semver as S;
        let c = Ecosystem::CratesIo;
        let r = || vec![range(S, &[("introduced", "0"), ("fixed", "2.0.0")])];
        let mut ghsa = advisory("GHSA-xxxx-yyyy-zzzz", &["CVE-2024-9"], c, "x", r(), &[]);
        ghsa.severity = vec![SeverityVector {
            kind: "CVSS_V3".into(),
            vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
        }];
        ghsa.published = Some(Date::parse("2023-01-01").unwrap());
        let db = Database::from_advisories(vec![
            advisory("RUSTSEC-2024-0001", &["CVE-2024-9"], c, "x", r(), &[]),
            ghsa,
            advisory("RUSTSEC-2024-0002", &[], c, "x", r(), &[]),
            advisory("RUSTSEC-2024-0003", &[], c, "other", r(), &[]),
        ]);
        let result = scan(["pkg:cargo/x@1.0.0", "pkg:cargo/x@1.0.0"], &db);
        assert_eq!(result.scanned, 1);
        let got: Vec<(&str, Vec<&str>)> = result
            .findings
            .iter()
            .map(|f| {
                (
                    f.id.as_str(),
                    f.aliases.iter().map(|a| a.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "RUSTSEC-2024-0001",
                    vec!["CVE-2024-9", "GHSA-xxxx-yyyy-zzzz"]
                ),
                ("RUSTSEC-2024-0002", vec![]),
            ]
        );
        let merged = &result.findings[0];
        assert_eq!(merged.advisories.len(), 2);
        assert_eq!(merged.severity.rating, Rating::Critical);
        assert_eq!(merged.severity.score, Some(9.8));
        assert_eq!(merged.published.unwrap().to_string(), "2023-01-01");
        assert_eq!(merged.fixed, vec!["2.0.0"]);
        assert_eq!(result.findings[1].severity, Severity::UNKNOWN);
    }

    #[test]
    fn severities_from_cvss_vectors() {
        let table = [
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                Rating::Critical,
                9.8,
            ),
            (
                "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
                Rating::Low,
                1.8,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                Rating::Critical,
                9.3,
            ),
        ];
        for (vector, rating, score) in table {
            let s = Severity::from_cvss_vector(vector).unwrap();
            assert_eq!((s.rating, s.score), (rating, Some(score)), "{vector}");
        }
        assert_eq!(
            Severity::from_cvss_vector("AV:N/AC:L/Au:N/C:P/I:P/A:P"),
            None
        );
        assert_eq!(Severity::from_cvss_vector("garbage"), None);
    }

    #[test]
    fn thresholds_table() {
        let table = [
            (Rating::High, Rating::High, Rating::High, true),
            (Rating::Medium, Rating::High, Rating::High, false),
            (Rating::Critical, Rating::Low, Rating::High, true),
            (Rating::Unknown, Rating::High, Rating::High, true),
            (Rating::Unknown, Rating::High, Rating::Low, false),
            (Rating::None, Rating::Unknown, Rating::High, true),
        ];
        for (rating, threshold, unknown_as, want) in table {
            assert_eq!(
                rating.at_least(threshold, unknown_as),
                want,
                "{rating} vs {threshold}"
            );
        }
    }
}
