//! SARIF 2.1.0 for code-scanning dashboards: one rule per advisory, one result per (component,
//! advisory), the level from the severity, and GitHub's `security-severity` score property.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Finding, Rating};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF level of a rating: `error` for high and critical, `warning` for medium and
/// unscored findings, `note` for low and none.
pub fn level(rating: Rating) -> &'static str {
    match rating {
        Rating::Critical | Rating::High => "error",
        Rating::Medium | Rating::Unknown => "warning",
        Rating::Low | Rating::None => "note",
    }
}

/// GitHub code scanning sorts by `security-severity` (a CVSS-like number); without a score the
/// rating's usual midpoint stands in.
fn security_severity(f: &Finding) -> String {
    let score = f.severity.score.unwrap_or(match f.severity.rating {
        Rating::Critical => 9.5,
        Rating::High => 8.0,
        Rating::Medium => 5.5,
        Rating::Low => 2.0,
        Rating::None => 0.0,
        // Unscored: counted as medium so it is neither hidden nor alarming.
        Rating::Unknown => 5.5,
    });
    format!("{score:.1}")
}

/// The SARIF log. `artifact_uri` is where the components were read (the lockfile or SBOM path,
/// or the OCI reference), the location every result points at.
pub fn to_sarif(findings: &[Finding], artifact_uri: &str, tool_version: &str) -> Value {
    let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
    for f in findings {
        rules.entry(f.id.as_str()).or_insert_with(|| {
            let aliases: Vec<&str> = f.aliases.iter().map(|a| a.as_str()).collect();
            let mut help = format!("{} ({})", f.summary, f.id);
            if !aliases.is_empty() {
                help.push_str(&format!("\naliases: {}", aliases.join(", ")));
            }
            json!({
                "id": f.id.as_str(),
                "name": f.id.as_str(),
                "shortDescription": { "text": if f.summary.is_empty() { f.id.as_str() } else { f.summary.as_str() } },
                "fullDescription": { "text": help },
                "helpUri": format!("https://osv.dev/vulnerability/{}", f.id),
                "defaultConfiguration": { "level": level(f.severity.rating) },
                "properties": {
                    "tags": ["security", "vulnerability"],
                    "security-severity": security_severity(f),
                    "aliases": aliases,
                }
            })
        });
    }
    let rule_index: BTreeMap<&str, usize> =
        rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let fixed = if f.fixed.is_empty() {
                "no fixed version is known".to_owned()
            } else {
                format!("fixed in {}", f.fixed.join(", "))
            };
            json!({
                "ruleId": f.id.as_str(),
                "ruleIndex": rule_index[f.id.as_str()],
                "level": level(f.severity.rating),
                "message": { "text": format!("{} {} is affected by {}: {} ({fixed})", f.package, f.version, f.id, f.summary) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": artifact_uri } },
                    "logicalLocations": [{ "name": f.purl, "kind": "package" }],
                }],
                "partialFingerprints": { "custody/v1": format!("{}|{}", f.purl, f.id) },
                "properties": {
                    "purl": f.purl,
                    "severity": f.severity.rating.as_str(),
                    "fixedVersions": f.fixed,
                }
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "custody",
                "version": tool_version,
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::vuln::{AdvisoryId, Ecosystem, Severity, SeveritySource};

    fn finding(purl: &str, id: &str, rating: Rating, score: Option<f64>) -> Finding {
        Finding {
            purl: purl.into(),
            ecosystem: Ecosystem::CratesIo,
            package: "x".into(),
            version: "1.0.0".into(),
            id: AdvisoryId::parse(id).unwrap(),
            aliases: vec![AdvisoryId::parse("CVE-2024-1").unwrap()],
            advisories: vec![AdvisoryId::parse(id).unwrap()],
            summary: "bad".into(),
            severity: Severity {
                rating,
                score,
                vector: None,
                source: SeveritySource::Cvss,
            },
            fixed: vec!["1.0.1".into()],
            published: None,
            informational: None,
        }
    }

    #[test]
    fn one_rule_per_advisory_one_result_per_component() {
        let findings = [
            finding(
                "pkg:cargo/x@1.0.0",
                "RUSTSEC-2024-0002",
                Rating::Critical,
                Some(9.8),
            ),
            finding(
                "pkg:cargo/y@1.0.0",
                "RUSTSEC-2024-0002",
                Rating::Critical,
                Some(9.8),
            ),
            finding(
                "pkg:cargo/x@1.0.0",
                "RUSTSEC-2024-0001",
                Rating::Unknown,
                None,
            ),
        ];
        let log = to_sarif(&findings, "Cargo.lock", "0.1.0");
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["id"], "RUSTSEC-2024-0001");
        assert_eq!(rules[1]["properties"]["security-severity"], "9.8");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0]["ruleIndex"], 1);
        assert_eq!(results[0]["level"], "error");
        assert_eq!(results[2]["level"], "warning");
        assert_eq!(
            results[1]["locations"][0]["logicalLocations"][0]["name"],
            "pkg:cargo/y@1.0.0"
        );
    }

    #[test]
    fn levels_table() {
        let table = [
            (Rating::Critical, "error"),
            (Rating::High, "error"),
            (Rating::Medium, "warning"),
            (Rating::Unknown, "warning"),
            (Rating::Low, "note"),
            (Rating::None, "note"),
        ];
        for (rating, want) in table {
            assert_eq!(level(rating), want, "{rating}");
        }
    }
}
