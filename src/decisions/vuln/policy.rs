//! Which findings a release may carry: a maximum severity, a grace period from an advisory's
//! publication, exceptions with a reason and an expiry date, and OpenVEX `not_affected`
//! statements (or CSAF and CycloneDX VEX ones). [`VulnerabilityRules`] is the serde model a policy file embeds under
//! `vulnerabilities:`; [`evaluate`] gives one typed [`Decision`] per finding.

use serde::{Deserialize, Serialize};

use super::db::AdvisoryId;
use super::{Finding, Rating};
use crate::foundation::digest::Digest;
use crate::foundation::time::Date;

/// The vulnerability rules of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct VulnerabilityRules {
    /// The highest severity a finding may have and still be allowed. Default `none`: every
    /// finding with a known, non-zero severity is a violation.
    #[serde(default = "default_max")]
    pub max_severity: Rating,
    /// How a finding nobody scored counts against `max_severity`. Default `high`: unscored is
    /// not the same as harmless.
    #[serde(default = "default_unknown")]
    pub unknown_severity_as: Rating,
    /// Days from an advisory's `published` date during which a finding above the maximum is
    /// still allowed (time to ship a fix). Absent: no grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<Exception>,
}

fn default_max() -> Rating {
    Rating::None
}

fn default_unknown() -> Rating {
    Rating::High
}

impl Default for VulnerabilityRules {
    fn default() -> VulnerabilityRules {
        VulnerabilityRules {
            max_severity: default_max(),
            unknown_severity_as: default_unknown(),
            grace_period_days: None,
            exceptions: Vec::new(),
        }
    }
}

/// An accepted finding: the advisory (any of its ids), why, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Exception {
    pub id: AdvisoryId,
    pub reason: String,
    /// The last day the exception applies (inclusive, UTC).
    pub expires: Date,
    /// Limits the exception to one package: a purl with or without version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// The outcome for one finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Verdict {
    /// A VEX statement (OpenVEX, CSAF or CycloneDX) says the product is not affected, or has
    /// the fix (`status`).
    #[serde(rename_all = "camelCase")]
    NotAffectedByVex {
        document: String,
        vulnerability: String,
        justification: String,
        status: VexStatus,
    },
    /// An unexpired exception accepts it.
    AllowedByException {
        id: AdvisoryId,
        reason: String,
        expires: Date,
    },
    /// Its severity is within the maximum.
    #[serde(rename_all = "camelCase")]
    WithinSeverity {
        rating: Rating,
        max_severity: Rating,
    },
    /// Above the maximum, but disclosed less than the grace period ago.
    #[serde(rename_all = "camelCase")]
    WithinGrace { published: Date, grace_ends: Date },
    /// Not allowed.
    Violation {
        reason: ViolationReason,
        /// Rules that came close: expired exceptions, an ended grace period.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<Note>,
    },
}

impl Verdict {
    pub fn is_violation(&self) -> bool {
        matches!(self, Verdict::Violation { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ViolationReason {
    /// `rating` (or `unknown`, counted as `counted_as`) is above `max_severity`.
    #[serde(rename_all = "camelCase")]
    SeverityAboveMaximum {
        rating: Rating,
        counted_as: Rating,
        max_severity: Rating,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Note {
    ExceptionExpired {
        id: AdvisoryId,
        expired: Date,
    },
    #[serde(rename_all = "camelCase")]
    GraceEnded {
        published: Date,
        grace_ended: Date,
    },
    /// The advisory has no publication date, so no grace period could start.
    NoPublishedDate,
}

/// The decision for one finding (same order as the findings given).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub purl: String,
    pub id: AdvisoryId,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Decides every finding, in this order: VEX `not_affected`, an unexpired exception, the
/// severity maximum, the grace period; otherwise a violation that names the rule and any
/// expired exception or ended grace period.
pub fn evaluate(
    findings: &[Finding],
    rules: &VulnerabilityRules,
    vex: &[VexDocument],
    now: Date,
) -> Vec<Decision> {
    findings
        .iter()
        .map(|f| Decision {
            purl: f.purl.clone(),
            id: f.id.clone(),
            verdict: decide(f, rules, vex, now),
        })
        .collect()
}

/// The decisions over a scan's findings and how many are violations: what `verify` and
/// `promote` put in their reports and gate on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub decisions: Vec<Decision>,
    pub violations: usize,
}

impl PolicyReport {
    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// [`evaluate`], counted.
pub fn check(
    findings: &[Finding],
    rules: &VulnerabilityRules,
    vex: &[VexDocument],
    now: Date,
) -> PolicyReport {
    let decisions = evaluate(findings, rules, vex, now);
    let violations = decisions
        .iter()
        .filter(|d| d.verdict.is_violation())
        .count();
    PolicyReport {
        decisions,
        violations,
    }
}

/// The first VEX document whose statements say the finding's product is `not_affected` (or
/// `fixed`).
pub fn vex_not_affected(f: &Finding, vex: &[VexDocument]) -> Option<Verdict> {
    vex.iter().find_map(|doc| {
        suppressing(doc, f).map(|s| Verdict::NotAffectedByVex {
            document: doc.name.clone(),
            vulnerability: s.vulnerability.name.clone(),
            justification: match s.status {
                VexStatus::Fixed => "fixed".to_owned(),
                _ => s.justification_text(),
            },
            status: s.status,
        })
    })
}

fn decide(f: &Finding, rules: &VulnerabilityRules, vex: &[VexDocument], now: Date) -> Verdict {
    if let Some(verdict) = vex_not_affected(f, vex) {
        return verdict;
    }
    let mut notes = Vec::new();
    let all_ids: Vec<&AdvisoryId> = f.ids().chain(&f.advisories).collect();
    for e in &rules.exceptions {
        let id_matches = all_ids.contains(&&e.id);
        let purl_matches = e.purl.as_deref().is_none_or(|p| purl_matches(p, &f.purl));
        if !(id_matches && purl_matches) {
            continue;
        }
        if now <= e.expires {
            return Verdict::AllowedByException {
                id: e.id.clone(),
                reason: e.reason.clone(),
                expires: e.expires,
            };
        }
        notes.push(Note::ExceptionExpired {
            id: e.id.clone(),
            expired: e.expires,
        });
    }
    let rating = f.severity.rating;
    let counted_as = if rating == Rating::Unknown {
        rules.unknown_severity_as
    } else {
        rating
    };
    if counted_as.rank() <= rules.max_severity.rank() {
        return Verdict::WithinSeverity {
            rating,
            max_severity: rules.max_severity,
        };
    }
    if let Some(days) = rules.grace_period_days {
        match f.published {
            Some(published) => {
                let grace_ends = published.plus_days(days);
                if now < grace_ends {
                    return Verdict::WithinGrace {
                        published,
                        grace_ends,
                    };
                }
                notes.push(Note::GraceEnded {
                    published,
                    grace_ended: grace_ends,
                });
            }
            None => notes.push(Note::NoPublishedDate),
        }
    }
    Verdict::Violation {
        reason: ViolationReason::SeverityAboveMaximum {
            rating,
            counted_as,
            max_severity: rules.max_severity,
        },
        notes,
    }
}

/// `pattern` matches `purl` when equal, or when `pattern` has no version and names the same
/// package (qualifiers and subpath ignored on both sides). The type is compared without regard to
/// case; namespace and name are case-insensitive only for the types whose registries fold case
/// (the purl spec's types list): Go module paths, Maven coordinates, crates and the rest compare
/// exactly, so an exception or VEX statement for `github.com/Foo/bar` does not cover
/// `github.com/foo/bar`, a different module.
pub fn purl_matches(pattern: &str, purl: &str) -> bool {
    if pattern == purl {
        return true;
    }
    let (pn, pv) = purl_base(&pattern.replace("%40", "@"));
    let (n, v) = purl_base(&purl.replace("%40", "@"));
    pn == n && (pv.is_none() || pv == v)
}

/// Types whose namespace and name are case-insensitive (lower-cased) per the purl types list.
const CASE_FOLDED_PURL_TYPES: &[&str] = &[
    "alpm",
    "apk",
    "bitbucket",
    "composer",
    "deb",
    "github",
    "hex",
    "npm",
    "pypi",
];

/// The comparable package part of a purl (`pkg:type/namespace/name`, normalised per type) and
/// its version.
fn purl_base(p: &str) -> (String, Option<String>) {
    let p = p.split(['?', '#']).next().unwrap_or(p);
    let (name, version) = match p.rsplit_once('@') {
        Some((name, version)) if !name.ends_with('/') && name.contains('/') => {
            (name, Some(version.to_owned()))
        }
        _ => (p, None),
    };
    let Some((head, rest)) = name.split_once('/') else {
        return (name.to_ascii_lowercase(), version);
    };
    let head = head.to_ascii_lowercase();
    let ty = head.strip_prefix("pkg:").unwrap_or(&head);
    let rest = if CASE_FOLDED_PURL_TYPES.contains(&ty) {
        let lower = rest.to_ascii_lowercase();
        if ty == "pypi" {
            lower.replace('_', "-")
        } else {
            lower
        }
    } else {
        rest.to_owned()
    };
    (format!("{head}/{rest}"), version)
}

// ---------------------------------------------------------------------------------- VEX

pub use crate::evidence::vex::{
    VexDocument, VexError, VexFormat, VexProduct, VexStatement, VexStatus, VexVulnerability,
};

impl VexStatement {
    fn names(&self, f: &Finding) -> bool {
        std::iter::once(&self.vulnerability.name)
            .chain(&self.vulnerability.aliases)
            .any(|n| f.ids().chain(&f.advisories).any(|id| id.as_str() == n))
    }

    /// The statement speaks of the finding's package: as a product (its id or purl), as a
    /// subcomponent of a product (the product is then the artifact the VEX speaks for; a product
    /// naming another digest than `subject` does not), or, with a `subject`, through a product
    /// that is the artifact by digest or through no products at all (OpenVEX: they are the
    /// attestation's subject).
    fn covers(&self, purl: &str, subject: Option<&Digest>) -> bool {
        if self.products.is_empty() {
            return subject.is_some();
        }
        self.products.iter().any(|p| {
            let digests = p.digests();
            let is_subject = subject.is_some_and(|d| digests.iter().any(|h| h == d.hex()));
            if p.subcomponents.is_empty() {
                std::iter::once(&p.id)
                    .chain(&p.purls)
                    .any(|id| purl_matches(id, purl))
                    || is_subject
            } else {
                let other_artifact = subject.is_some() && !digests.is_empty() && !is_subject;
                !other_artifact && p.subcomponents.iter().any(|s| purl_matches(s, purl))
            }
        })
    }
}

/// The last statement (document order is time order in OpenVEX) about a finding, if it
/// suppresses it: `fixed`, or `not_affected` with a justification or impact statement, as the
/// spec requires.
fn suppressing<'a>(doc: &'a VexDocument, f: &Finding) -> Option<&'a VexStatement> {
    let last = doc
        .statements
        .iter()
        .rev()
        .find(|s| s.names(f) && s.covers(&f.purl, doc.subject.as_ref()))?;
    let honoured = match last.status {
        VexStatus::Fixed => true,
        VexStatus::NotAffected => last.justification.is_some() || last.impact_statement.is_some(),
        VexStatus::Affected | VexStatus::UnderInvestigation => false,
    };
    honoured.then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::vuln::{Ecosystem, Severity, SeveritySource};

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn id(s: &str) -> AdvisoryId {
        AdvisoryId::parse(s).unwrap()
    }

    fn finding(rating: Rating, published: Option<&str>) -> Finding {
        Finding {
            purl: "pkg:cargo/smallvec@0.6.9".into(),
            ecosystem: Ecosystem::CratesIo,
            package: "smallvec".into(),
            version: "0.6.9".into(),
            id: id("RUSTSEC-2019-0009"),
            aliases: vec![id("CVE-2019-15551"), id("GHSA-mm7v-vpv8-xfc3")],
            advisories: vec![id("RUSTSEC-2019-0009")],
            summary: "double free".into(),
            severity: Severity {
                rating,
                score: None,
                vector: None,
                source: SeveritySource::Cvss,
            },
            fixed: vec!["0.6.10".into()],
            published: published.map(d),
            informational: None,
        }
    }

    fn rules(max: Rating) -> VulnerabilityRules {
        VulnerabilityRules {
            max_severity: max,
            ..VulnerabilityRules::default()
        }
    }

    fn verdict(f: &Finding, r: &VulnerabilityRules, vex: &[VexDocument], now: &str) -> Verdict {
        evaluate(std::slice::from_ref(f), r, vex, d(now))
            .remove(0)
            .verdict
    }

    #[test]
    fn severity_threshold_table() {
        let table = [
            (Rating::Medium, Rating::Medium, false),
            (Rating::High, Rating::Medium, true),
            (Rating::Low, Rating::None, true),
            (Rating::None, Rating::None, false),
            (Rating::Critical, Rating::Critical, false),
            (Rating::Critical, Rating::High, true),
            // Unknown counts as high by default.
            (Rating::Unknown, Rating::Medium, true),
            (Rating::Unknown, Rating::High, false),
        ];
        for (rating, max, violates) in table {
            let v = verdict(&finding(rating, None), &rules(max), &[], "2026-01-01");
            assert_eq!(
                v.is_violation(),
                violates,
                "{rating} under max {max}: {v:?}"
            );
            if !violates {
                assert!(matches!(v, Verdict::WithinSeverity { .. }));
            }
        }
        let lenient = VulnerabilityRules {
            unknown_severity_as: Rating::Low,
            ..rules(Rating::Medium)
        };
        assert!(
            !verdict(&finding(Rating::Unknown, None), &lenient, &[], "2026-01-01").is_violation()
        );
    }

    #[test]
    fn grace_period_table() {
        let r = VulnerabilityRules {
            grace_period_days: Some(30),
            ..rules(Rating::Low)
        };
        let f = finding(Rating::High, Some("2026-01-01"));
        assert_eq!(
            verdict(&f, &r, &[], "2026-01-30"),
            Verdict::WithinGrace {
                published: d("2026-01-01"),
                grace_ends: d("2026-01-31")
            }
        );
        // The grace period ends on the 30th day after publication.
        assert_eq!(
            verdict(&f, &r, &[], "2026-01-31"),
            Verdict::Violation {
                reason: ViolationReason::SeverityAboveMaximum {
                    rating: Rating::High,
                    counted_as: Rating::High,
                    max_severity: Rating::Low
                },
                notes: vec![Note::GraceEnded {
                    published: d("2026-01-01"),
                    grace_ended: d("2026-01-31")
                }]
            }
        );
        let undated = finding(Rating::High, None);
        assert!(matches!(
            verdict(&undated, &r, &[], "2026-01-02"),
            Verdict::Violation { notes, .. } if notes == vec![Note::NoPublishedDate]
        ));
    }

    #[test]
    fn exceptions_table() {
        let exception = |ident: &str, expires: &str, purl: Option<&str>| VulnerabilityRules {
            exceptions: vec![Exception {
                id: id(ident),
                reason: "not reachable from our code".into(),
                expires: d(expires),
                purl: purl.map(str::to_owned),
            }],
            ..rules(Rating::None)
        };
        let f = finding(Rating::Critical, Some("2019-06-06"));
        let table = [
            (
                exception("RUSTSEC-2019-0009", "2026-03-01", None),
                "2026-03-01",
                false,
            ),
            (
                exception("CVE-2019-15551", "2026-03-01", None),
                "2026-02-01",
                false,
            ),
            (
                exception(
                    "RUSTSEC-2019-0009",
                    "2026-03-01",
                    Some("pkg:cargo/smallvec"),
                ),
                "2026-02-01",
                false,
            ),
            (
                exception(
                    "RUSTSEC-2019-0009",
                    "2026-03-01",
                    Some("pkg:cargo/smallvec@0.6.9"),
                ),
                "2026-02-01",
                false,
            ),
            (
                exception(
                    "RUSTSEC-2019-0009",
                    "2026-03-01",
                    Some("pkg:cargo/smallvec@1.0.0"),
                ),
                "2026-02-01",
                true,
            ),
            (
                exception("RUSTSEC-2019-0009", "2026-03-01", Some("pkg:cargo/other")),
                "2026-02-01",
                true,
            ),
            (
                exception("RUSTSEC-2020-0001", "2026-03-01", None),
                "2026-02-01",
                true,
            ),
            (
                exception("RUSTSEC-2019-0009", "2026-03-01", None),
                "2026-03-02",
                true,
            ),
        ];
        for (r, now, violates) in table {
            let v = verdict(&f, &r, &[], now);
            assert_eq!(
                v.is_violation(),
                violates,
                "{:?} at {now}: {v:?}",
                r.exceptions[0]
            );
        }
        let expired = verdict(
            &f,
            &exception("CVE-2019-15551", "2026-03-01", None),
            &[],
            "2026-03-02",
        );
        assert!(matches!(
            expired,
            Verdict::Violation { notes, .. } if notes == vec![Note::ExceptionExpired { id: id("CVE-2019-15551"), expired: d("2026-03-01") }]
        ));
    }

    fn vex(statement: &str) -> VexDocument {
        let doc = format!(
            r#"{{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex-1","author":"a","timestamp":"2026-01-01T00:00:00Z","version":1,
               "statements":[{statement}]}}"#
        );
        VexDocument::parse(doc.as_bytes(), "vex.json").unwrap()
    }

    #[test]
    fn vex_table() {
        let f = finding(Rating::Critical, None);
        let r = rules(Rating::None);
        let table = [
            // The vulnerability by alias, the package as a subcomponent of the image.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:oci/app@sha256:ab","subcomponents":[{"@id":"pkg:cargo/smallvec@0.6.9"}]}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}"#,
                false,
            ),
            // The package itself as the product, without version.
            (
                r#"{"vulnerability":{"name":"RUSTSEC-2019-0009"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"not_affected","impact_statement":"grow is never called"}"#,
                false,
            ),
            // v0.0.1 string forms.
            (
                r#"{"vulnerability":"GHSA-mm7v-vpv8-xfc3","products":["pkg:cargo/smallvec@0.6.9"],"status":"not_affected","justification":"inline_mitigations_already_exist"}"#,
                false,
            ),
            // An alias list that names it.
            (
                r#"{"vulnerability":{"name":"OTHER-1","aliases":["CVE-2019-15551"]},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"not_affected","justification":"component_not_present"}"#,
                false,
            ),
            // Another vulnerability.
            (
                r#"{"vulnerability":{"name":"CVE-2000-1"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"not_affected","justification":"component_not_present"}"#,
                true,
            ),
            // Another package or version.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:cargo/smallvec@1.0.0"}],"status":"not_affected","justification":"component_not_present"}"#,
                true,
            ),
            // Affected, not not_affected.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"affected","action_statement":"upgrade"}"#,
                true,
            ),
            // not_affected without a justification is not honoured.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"not_affected"}"#,
                true,
            ),
            // A later statement supersedes an earlier one.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"not_affected","justification":"component_not_present"},
                {"vulnerability":{"name":"CVE-2019-15551"},"products":[{"@id":"pkg:cargo/smallvec"}],"status":"affected"}"#,
                true,
            ),
        ];
        for (statement, violates) in table {
            let v = verdict(&f, &r, &[vex(statement)], "2026-01-01");
            assert_eq!(v.is_violation(), violates, "{statement}: {v:?}");
            if !violates {
                assert!(
                    matches!(v, Verdict::NotAffectedByVex { ref document, .. } if document == "vex.json")
                );
            }
        }
    }

    #[test]
    fn vex_of_an_attached_artifact_covers_it_by_digest() {
        let f = finding(Rating::Critical, None);
        let r = rules(Rating::None);
        let artifact = Digest::of(b"artifact");
        let other = Digest::of(b"other");
        let on = |statement: &str, subject: Option<&Digest>| {
            let mut doc = vex(statement);
            doc.subject = subject.cloned();
            verdict(&f, &r, &[doc], "2026-01-01")
        };
        let by_digest = |d: &Digest, sub: &str| {
            format!(
                r#"{{"vulnerability":{{"name":"CVE-2019-15551"}},"products":[{{"@id":"pkg:oci/app@sha256%3A{}"{sub}}}],"status":"not_affected","justification":"component_not_present"}}"#,
                d.hex()
            )
        };
        let sub = r#","subcomponents":[{"@id":"pkg:cargo/smallvec"}]"#;
        let table: Vec<(String, Option<&Digest>, bool)> = vec![
            // The artifact by digest, whole or through the package.
            (by_digest(&artifact, ""), Some(&artifact), false),
            (by_digest(&artifact, sub), Some(&artifact), false),
            // Another artifact's digest does not speak for this one.
            (by_digest(&other, ""), Some(&artifact), true),
            (by_digest(&other, sub), Some(&artifact), true),
            // Without a subject (a local --vex file) a digest product cannot be checked.
            (by_digest(&artifact, ""), None, true),
            // No products: the attestation's subject, only when there is one.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"status":"fixed"}"#.into(),
                Some(&artifact),
                false,
            ),
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"status":"fixed"}"#.into(),
                None,
                true,
            ),
            // under_investigation never suppresses.
            (
                r#"{"vulnerability":{"name":"CVE-2019-15551"},"status":"under_investigation"}"#
                    .into(),
                Some(&artifact),
                true,
            ),
        ];
        for (statement, subject, violates) in table {
            let v = on(&statement, subject);
            assert_eq!(v.is_violation(), violates, "{statement} {subject:?}: {v:?}");
        }
        let v = on(
            r#"{"vulnerability":{"name":"CVE-2019-15551"},"status":"fixed"}"#,
            Some(&artifact),
        );
        assert!(
            matches!(&v, Verdict::NotAffectedByVex { status: VexStatus::Fixed, justification, .. } if justification == "fixed"),
            "{v:?}"
        );
    }

    #[test]
    fn csaf_and_cyclonedx_vex_suppress_like_openvex() {
        let f = finding(Rating::Critical, None);
        let r = rules(Rating::None);
        let csaf = br#"{"document":{"category":"csaf_vex","csaf_version":"2.0"},
            "product_tree":{"full_product_names":[{"product_id":"SV","name":"smallvec",
              "product_identification_helper":{"purl":"pkg:cargo/smallvec@0.6.9"}}]},
            "vulnerabilities":[{"cve":"CVE-2019-15551","product_status":{"known_not_affected":["SV"]},
              "flags":[{"label":"vulnerable_code_not_present","product_ids":["SV"]}]}]}"#;
        let cdx = br#"{"bomFormat":"CycloneDX","specVersion":"1.6",
            "components":[{"type":"library","name":"smallvec","bom-ref":"sv","purl":"pkg:cargo/smallvec@0.6.9"}],
            "vulnerabilities":[{"id":"RUSTSEC-2019-0009","analysis":{"state":"not_affected","justification":"code_not_reachable"},
              "affects":[{"ref":"sv"}]}]}"#;
        for (bytes, format) in [
            (&csaf[..], VexFormat::Csaf),
            (&cdx[..], VexFormat::CycloneDx),
        ] {
            let doc = VexDocument::parse(bytes, "v.json").unwrap();
            assert_eq!(doc.format, format);
            let v = verdict(&f, &r, &[doc], "2026-01-01");
            assert!(
                matches!(v, Verdict::NotAffectedByVex { .. }),
                "{format:?}: {v:?}"
            );
        }
        // A CSAF not_affected without a flag or impact threat is not honoured.
        let mut bare: serde_json::Value = serde_json::from_slice(csaf).unwrap();
        bare["vulnerabilities"][0]
            .as_object_mut()
            .unwrap()
            .remove("flags");
        let bare = serde_json::to_vec(&bare).unwrap();
        let doc = VexDocument::parse(&bare, "v.json").unwrap();
        assert!(verdict(&f, &r, &[doc], "2026-01-01").is_violation());
    }

    #[test]
    fn check_counts_violations() {
        let findings = [finding(Rating::Critical, None), finding(Rating::Low, None)];
        let report = check(&findings, &rules(Rating::Medium), &[], d("2026-01-01"));
        assert_eq!(report.violations, 1);
        assert!(!report.passed());
        assert!(check(&findings[1..], &rules(Rating::Medium), &[], d("2026-01-01")).passed());
    }

    #[test]
    fn bad_vex_documents_are_named() {
        assert!(matches!(
            VexDocument::parse(
                br#"{"@context":"https://example.com","statements":[]}"#,
                "v.json"
            ),
            Err(VexError::NotOpenVex { .. })
        ));
        assert!(matches!(
            VexDocument::parse(b"{", "v.json"),
            Err(VexError::Json { name, .. }) if name == "v.json"
        ));
        assert!(matches!(
            VexDocument::parse(br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":5,"status":"x"}]}"#, "v.json"),
            Err(VexError::Json { .. })
        ));
    }

    #[test]
    fn the_json_schema_names_exactly_the_serde_fields() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../../schemas/vulnerability-rules.schema.json"
        ))
        .unwrap();
        let full = VulnerabilityRules {
            grace_period_days: Some(1),
            exceptions: vec![Exception {
                id: id("X-1"),
                reason: "r".into(),
                expires: d("2026-01-01"),
                purl: Some("pkg:cargo/x".into()),
            }],
            ..VulnerabilityRules::default()
        };
        let value = serde_json::to_value(&full).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&value), keys(&schema["properties"]));
        assert_eq!(
            keys(&value["exceptions"][0]),
            keys(&schema["properties"]["exceptions"]["items"]["properties"])
        );
        let ratings: Vec<String> = [
            Rating::Unknown,
            Rating::None,
            Rating::Low,
            Rating::Medium,
            Rating::High,
            Rating::Critical,
        ]
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(
            schema["$defs"]["rating"]["enum"],
            serde_json::json!(ratings)
        );
    }

    #[test]
    fn rules_read_from_yaml_like_json_with_defaults() {
        let r: VulnerabilityRules = serde_json::from_str(
            r#"{"max_severity":"medium","grace_period_days":14,
                "exceptions":[{"id":"RUSTSEC-2019-0009","reason":"r","expires":"2026-06-30"}]}"#,
        )
        .unwrap();
        assert_eq!(r.max_severity, Rating::Medium);
        assert_eq!(r.unknown_severity_as, Rating::High);
        assert_eq!(r.exceptions[0].expires, d("2026-06-30"));
        let defaults: VulnerabilityRules = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults, VulnerabilityRules::default());
        assert!(serde_json::from_str::<VulnerabilityRules>(r#"{"max_sev":"low"}"#).is_err());
        assert!(
            serde_json::from_str::<VulnerabilityRules>(
                r#"{"exceptions":[{"id":"X","reason":"r","expires":"soon"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn purl_case_folds_only_where_the_type_does() {
        let rows = [
            // Go module paths are case-sensitive: another case is another module.
            (
                "pkg:golang/github.com/Foo/bar",
                "pkg:golang/github.com/foo/bar@v1.0.0",
                false,
            ),
            (
                "pkg:golang/github.com/foo/bar",
                "pkg:golang/github.com/Foo/bar@v1.0.0",
                false,
            ),
            (
                "pkg:golang/github.com/Foo/bar",
                "pkg:golang/github.com/Foo/bar@v1.0.0",
                true,
            ),
            (
                "pkg:GOLANG/github.com/Foo/bar",
                "pkg:golang/github.com/Foo/bar@v1.0.0",
                true,
            ),
            (
                "pkg:maven/org.Example/Lib",
                "pkg:maven/org.example/lib@1.0",
                false,
            ),
            ("pkg:cargo/Serde", "pkg:cargo/serde@1.0.0", false),
            // Types whose registries fold case.
            ("pkg:npm/Left-Pad", "pkg:npm/left-pad@1.3.0", true),
            ("pkg:pypi/Django", "pkg:pypi/django@4.2.0", true),
            ("pkg:pypi/my_package", "pkg:pypi/my-package@1.0", true),
            ("pkg:github/Octo/Hello", "pkg:github/octo/hello@v1", true),
            (
                "pkg:deb/debian/OpenSSL",
                "pkg:deb/debian/openssl@3.0.11-1?arch=amd64",
                true,
            ),
            // Versions compare exactly when the pattern has one.
            ("pkg:npm/left-pad@1.3.0", "pkg:npm/left-pad@1.3.1", false),
            ("pkg:npm/%40scope/x", "pkg:npm/@scope/x@1.0.0", true),
        ];
        for (pattern, purl, want) in rows {
            assert_eq!(purl_matches(pattern, purl), want, "{pattern} vs {purl}");
        }
    }
}
