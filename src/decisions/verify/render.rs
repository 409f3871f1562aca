//! The human form of a verification report: the chain as a tree with a mark per check, the
//! failing checks with what was expected and found, and the verdict on the last line.

use super::{Check, CheckKind, ManifestReport, ReferrerKind, Status, VerifyReport};

fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✓",
        Status::Fail => "✗",
        Status::Skip => "-",
    }
}

fn check_lines(out: &mut String, c: &Check, indent: &str) {
    out.push_str(&format!("{indent}{} {}", mark(c.status), c.name));
    match (c.status, &c.found) {
        (Status::Fail, _) => out.push('\n'),
        (_, Some(found)) => out.push_str(&format!(": {found}\n")),
        (_, None) => out.push('\n'),
    }
    if c.status == Status::Fail {
        if let Some(e) = &c.expected {
            out.push_str(&format!("{indent}    expected: {e}\n"));
        }
        if let Some(f) = &c.found {
            out.push_str(&format!("{indent}    found:    {f}\n"));
        }
        if let Some(h) = &c.hint {
            out.push_str(&format!("{indent}    hint:     {h}\n"));
        }
    }
}

fn manifest_tree(out: &mut String, m: &ManifestReport, indent: &str) {
    for c in &m.checks {
        if matches!(c.kind, CheckKind::Threshold) {
            // Referrers first, then the policy checks over them.
            for r in &m.referrers {
                out.push_str(&format!(
                    "{indent}├─ {} {} {}{}\n",
                    match r.kind {
                        ReferrerKind::Bundle => "bundle",
                        ReferrerKind::LegacySignature => "legacy .sig",
                        ReferrerKind::LegacyAttestation => "legacy .att",
                    },
                    r.manifest.short(),
                    r.predicate_type.as_deref().unwrap_or("signature"),
                    if r.trusted {
                        format!(
                            " — trusted, signed by {}",
                            r.signer.as_deref().unwrap_or("?")
                        )
                    } else {
                        " — not trusted, ignored".to_string()
                    }
                ));
                for rc in &r.checks {
                    check_lines(out, rc, &format!("{indent}│  "));
                }
            }
            for i in &m.ignored {
                out.push_str(&format!(
                    "{indent}├─ other {} {}: {}\n",
                    i.digest.short(),
                    i.artifact_type.as_deref().unwrap_or("no artifact type"),
                    i.reason
                ));
            }
        }
        check_lines(out, c, indent);
    }
    for a in &m.unsigned {
        let types: Vec<&str> = a
            .statements
            .iter()
            .filter_map(|s| s.predicate_type.as_deref())
            .collect();
        out.push_str(&format!(
            "{indent}├─ unsigned {} attestations {} (not trusted, not counted): {}\n",
            a.source,
            a.manifest.short(),
            if types.is_empty() {
                "none readable".to_string()
            } else {
                types.join(", ")
            }
        ));
    }
    for p in &m.platforms {
        out.push_str(&format!(
            "{indent}platform {} {} — {}\n",
            p.platform.as_deref().unwrap_or("unknown"),
            p.digest
                .as_ref()
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            if p.verified { "verified" } else { "REFUSED" }
        ));
        manifest_tree(out, p, &format!("{indent}   "));
    }
}

/// One line for a verified manifest: its checks, its trusted referrers and their signers.
fn summary_lines(out: &mut String, m: &ManifestReport, indent: &str) {
    let passed = m.checks.iter().filter(|c| c.status == Status::Pass).count()
        + m.referrers
            .iter()
            .flat_map(|r| &r.checks)
            .filter(|c| c.status == Status::Pass)
            .count();
    let trusted: Vec<&super::ReferrerReport> = m.referrers.iter().filter(|r| r.trusted).collect();
    let mut signers: Vec<&str> = trusted
        .iter()
        .map(|r| r.signer.as_deref().unwrap_or("?"))
        .collect();
    signers.sort_unstable();
    signers.dedup();
    let what = match &m.platform {
        Some(p) => format!("platform {p}"),
        None => "artifact".to_owned(),
    };
    out.push_str(&format!(
        "{indent}{} {what} {}: {passed} checks passed, {} trusted referrer(s){}{}\n",
        mark(if m.verified {
            Status::Pass
        } else {
            Status::Fail
        }),
        m.digest
            .as_ref()
            .map_or_else(|| "-".to_owned(), |d| d.short().to_string()),
        trusted.len(),
        if signers.is_empty() {
            String::new()
        } else {
            format!(", signed by {}", signers.join(", "))
        },
        m.build_level
            .map(|l| format!(", SLSA build L{l}"))
            .unwrap_or_default(),
    ));
    for p in &m.platforms {
        summary_lines(out, p, &format!("{indent}   "));
    }
}

/// The human report: the chain as a tree with a mark per check.
pub fn human(report: &VerifyReport) -> String {
    human_with(report, true)
}

/// The human report, with the tree for a pass only when `tree`: otherwise one summary line per
/// artifact (and platform) before the verdict. A refusal always shows the whole tree.
pub fn human_with(report: &VerifyReport, tree: bool) -> String {
    let mut out = header(report);
    if tree || !report.verified {
        manifest_tree(&mut out, &report.artifact, "");
    } else {
        summary_lines(&mut out, &report.artifact, "");
    }
    out.push_str(&verdict(report));
    out
}

fn header(report: &VerifyReport) -> String {
    let mut out = format!("{}\n", report.reference);
    out.push_str(&format!(
        "policy {}{}{}\n",
        report.policy.source,
        report
            .policy
            .digest
            .as_ref()
            .map(|d| format!(" ({})", d.short()))
            .unwrap_or_default(),
        report
            .scope
            .as_ref()
            .map(|s| format!(", scope {s}"))
            .unwrap_or_default()
    ));
    if let Some(origin) = &report.trusted_root {
        out.push_str(&origin.describe());
    }
    if let Some(r) = &report.attestations_repository {
        out.push_str(&format!(
            "evidence in {} (from {})\n",
            r.repository, r.source
        ));
    }
    out
}

fn verdict(report: &VerifyReport) -> String {
    let mut out = String::new();
    let failures = report
        .failures()
        .iter()
        .filter(|c| c.referrer.is_none() || report.artifact.checks.contains(c))
        .count();
    if report.verified {
        out.push_str(&format!("verified {}\n", report.pinned));
    } else {
        out.push_str(&format!(
            "REFUSED {}: {} check(s) failed\n",
            report.pinned,
            failures.max(1)
        ));
    }
    out
}
