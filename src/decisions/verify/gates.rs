//! The security gates over the verified SBOM: its components matched against an OSV database
//! and judged by the scope's `vulnerabilities:` rules (severity maximum, grace period,
//! exceptions, VEX `not_affected` or `fixed` from *signed* OpenVEX, CSAF or CycloneDX
//! attestations), and its components' origins
//! checked against the `sources:` dependency-confusion rules.
//!
//! Only an SBOM attestation that verified against a trusted signer and is bound to the artifact
//! is used: an unsigned SBOM proves nothing about what was shipped. Every decision is a check
//! with what was expected, what was found and why.

use std::path::Path;

use serde_json::Value;

use super::{
    Binding, CheckKind, ReferrerKind, ReferrerReport, SBOM_PREDICATE_TYPES, Trusted, allowed,
    evaluate_signed, untrusted_note,
};
use crate::decisions::policy::{Scope, VulnerabilityGate};
use crate::decisions::sources;
use crate::decisions::verify::Check;
use crate::decisions::vuln::input::SbomVerifier;
use crate::decisions::vuln::policy::{self as vpolicy, Note, Verdict, VexDocument, VexFormat};
use crate::decisions::vuln::{self, Database, Date, Finding};
use crate::evidence::attach;
use crate::evidence::attest::{PREDICATE_CYCLONEDX, PREDICATE_SPDX};
use crate::evidence::sign::bundle::Bundle;
use crate::evidence::sign::verify::TrustedRoot;
use crate::foundation::digest::Digest;
use crate::storage::store::ReferrersPath;

/// Predicate types of OpenVEX attestations (cosign's `--type openvex`, and the versioned URI).
pub const VEX_PREDICATE_PREFIX: &str = "https://openvex.dev/ns";

/// Whether a predicate type names a CycloneDX SBOM.
pub fn is_cyclonedx(predicate_type: &str) -> bool {
    crate::evidence::attest::is_cyclonedx_predicate(predicate_type)
}

/// Whether a predicate type names an SBOM the gates read: CycloneDX or SPDX 2.
pub fn is_sbom(predicate_type: &str) -> bool {
    crate::evidence::attest::is_sbom_predicate(predicate_type)
}

/// Whether a predicate type names an OpenVEX document.
pub fn is_openvex(predicate_type: &str) -> bool {
    predicate_type == VEX_PREDICATE_PREFIX || predicate_type.starts_with("https://openvex.dev/ns/")
}

/// A CycloneDX document that lists vulnerabilities and no components is a VEX, not an SBOM:
/// taken as the SBOM it would let the gates pass over nothing.
fn is_vex_only_bom(predicate: Option<&Value>) -> bool {
    let Some(p) = predicate else { return false };
    let listed = |field: &str| {
        p.get(field)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    p.get("bomFormat").is_some() && listed("vulnerabilities") && !listed("components")
}

/// The gate checks for one manifest, after the SBOM rules.
pub(super) fn checks(
    subject: &Digest,
    scope: &Scope,
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
    db: Option<&Database>,
    today: Date,
) -> Vec<Check> {
    if scope.vulnerabilities.is_none() && scope.sources.is_none() {
        return vec![not_checked(scope)];
    }
    let input = match GateInput::read(scope, trusted, referrers) {
        Ok(input) => input,
        Err(refused) => return vec![*refused],
    };
    let mut out = vec![input.check()];
    match (&scope.vulnerabilities, db) {
        (None, _) => out.push(not_checked(scope)),
        (Some(_), None) => out.push(
            Check::fail(CheckKind::Vulnerabilities, "known vulnerabilities")
                .expected("an OSV database to match the SBOM against")
                .found("none given")
                .hint("pass --db PATH or list vulnerabilities.databases in the policy"),
        ),
        (Some(gate), Some(db)) => {
            out.extend(vulnerability_checks(
                gate, db, &input, trusted, referrers, subject, today,
            ));
        }
    }
    if let Some(rules) = &scope.sources {
        out.extend(source_checks(rules, &input));
    }
    out
}

fn not_checked(scope: &Scope) -> Check {
    Check::skip(CheckKind::Vulnerabilities, "known vulnerabilities").found(format!(
        "not checked: scope {} has no vulnerabilities: section",
        scope.name
    ))
}

/// What the gates read from the trusted SBOM attestations: their component purls and where
/// each component was resolved from.
struct GateInput {
    purls: Vec<String>,
    located: Vec<sources::Located>,
    /// The SBOM attestations read, as `<referrer> signed by <signer>`.
    names: Vec<String>,
    /// The referrer the gate checks are reported on (the first SBOM).
    on: Digest,
}

impl GateInput {
    /// Reads every SBOM attestation that a signer the scope allows signed; a failed check when
    /// there is none or one cannot be read.
    fn read(
        scope: &Scope,
        trusted: &[Trusted],
        referrers: &[ReferrerReport],
    ) -> Result<GateInput, Box<Check>> {
        let sbom_signers = scope.sbom.as_ref().and_then(|s| s.signers.clone());
        let sboms: Vec<&Trusted> = trusted
            .iter()
            .filter(|t| t.predicate_type.as_deref().is_some_and(is_sbom))
            .filter(|t| !is_vex_only_bom(t.predicate.as_ref()))
            .filter(|t| allowed(&sbom_signers, &t.signer))
            .collect();
        let Some(first) = sboms.first() else {
            return Err(Box::new(missing_sbom(scope, &sbom_signers, referrers)));
        };
        let unreadable =
            |t: &Trusted, e: String| {
                Box::new(Check::fail(CheckKind::GateSbom, "sbom for the security gates")
                .expected("a CycloneDX or SPDX SBOM whose components can be read")
                .found(e)
                .hint("the signed SBOM cannot be read; nothing can be said about its components")
                .on(&t.referrer))
            };
        let mut input = GateInput {
            purls: Vec::new(),
            located: Vec::new(),
            names: Vec::new(),
            on: first.referrer.clone(),
        };
        for t in &sboms {
            let predicate = t.predicate.as_ref().unwrap_or(&Value::Null);
            let what = format!("sbom referrer {}", t.referrer);
            let (purls, _) = vuln::input::purls_of(predicate, &what)
                .map_err(|e| unreadable(t, e.to_string()))?;
            input.purls.extend(purls);
            let bytes = serde_json::to_vec(predicate).map_err(|e| unreadable(t, e.to_string()))?;
            let located = sources::parse_sbom(Path::new(&what), &bytes)
                .map_err(|e| unreadable(t, e.to_string()))?;
            input.located.extend(located);
            input
                .names
                .push(format!("{} signed by {}", t.referrer.short(), t.signer));
        }
        input.purls.sort();
        input.purls.dedup();
        Ok(input)
    }

    fn check(&self) -> Check {
        Check::pass(CheckKind::GateSbom, "sbom for the security gates")
            .found(format!(
                "{} component purl(s) from {}",
                self.purls.len(),
                self.names.join(", ")
            ))
            .on(&self.on)
    }
}

/// The failed check when no SBOM attestation the gates may read is there.
fn missing_sbom(
    scope: &Scope,
    signers: &Option<Vec<String>>,
    referrers: &[ReferrerReport],
) -> Check {
    let gates = [
        scope.vulnerabilities.as_ref().map(|_| "vulnerabilities"),
        scope.sources.as_ref().map(|_| "sources"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" and ");
    Check::fail(CheckKind::GateSbom, "sbom for the security gates")
        .expected(format!(
            "a CycloneDX ({PREDICATE_CYCLONEDX}) or SPDX ({PREDICATE_SPDX}) SBOM attestation signed by {} and bound to the artifact, for the {gates} rules",
            signers
                .as_ref()
                .map_or("a trusted signer".to_string(), |s| s.join(" or "))
        ))
        .found(untrusted_note(referrers, SBOM_PREDICATE_TYPES))
        .hint(format!("the gates read only a verified SBOM: an unsigned one proves nothing about what shipped; {}", super::SBOM_HINT))
}

/// The SBOM's components matched against `db` and judged by the scope's rules: a summary
/// check, the VEX checks, then one check per finding.
fn vulnerability_checks(
    gate: &VulnerabilityGate,
    db: &Database,
    input: &GateInput,
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
    subject: &Digest,
    today: Date,
) -> Vec<Check> {
    let result = vuln::scan(input.purls.iter().map(String::as_str), db);
    let (vex, vex_checks) = vex_documents(trusted, referrers, &gate.vex_signers, subject);
    let report = vpolicy::check(&result.findings, &gate.rules, &vex, today);
    let id = db.identity();
    let mut out = vec![
        Check::pass(CheckKind::Vulnerabilities, "known vulnerabilities")
            .found(format!(
                "{} package(s) matched against {} advisories (database {}, newest modified {}): {} finding(s), {} violation(s){}",
                result.scanned,
                id.advisories,
                id.content_digest.as_ref().map_or("-".into(), |d| d.short()),
                id.newest_modified.as_deref().unwrap_or("-"),
                result.findings.len(),
                report.violations,
                if result.not_scanned.is_empty() {
                    String::new()
                } else {
                    format!(", {} component(s) not matchable", result.not_scanned.len())
                }
            ))
            .on(&input.on),
    ];
    out.extend(vex_checks);
    let expected = format!(
        "severity at most {} (unscored counts as {}){}, an unexpired exception, or a signed OpenVEX not_affected",
        gate.rules.max_severity,
        gate.rules.unknown_severity_as,
        gate.rules
            .grace_period_days
            .map_or(String::new(), |d| format!(
                ", or published less than {d} day(s) ago"
            ))
    );
    for (f, d) in result.findings.iter().zip(&report.decisions) {
        out.push(decision_check(f, &d.verdict, &expected).on(&input.on));
    }
    out
}

/// The `sources:` dependency-confusion rules over where each component was resolved from: a
/// summary check and one failed check per violation.
fn source_checks(rules: &sources::SourcesRules, input: &GateInput) -> Vec<Check> {
    let report = rules.evaluate(&input.located);
    let mut out = vec![
        Check::of(
            report.violations.is_empty(),
            CheckKind::Sources,
            "package sources",
        )
        .expected(format!(
            "internal packages from their registries ({} rule(s))",
            rules.internal.len()
        ))
        .found(format!(
            "{} component(s) checked, {} internal, {} from elsewhere",
            report.checked,
            report.internal,
            report.violations.len()
        ))
        .hint("see the violations below")
        .on(&input.on),
    ];
    for v in &report.violations {
        out.push(
            Check::fail(CheckKind::Sources, format!("source of {}", v.purl))
                .expected(format!(
                    "{} (internal namespace {}) from {}",
                    v.purl,
                    v.pattern,
                    if v.allowed.is_empty() {
                        "a local path".to_string()
                    } else {
                        v.allowed.join(" or ")
                    }
                ))
                .found(format!("resolved from {}", v.resolved))
                .hint("an internal package name came from another registry: dependency confusion, or a missing registry pin; rebuild resolving it from the internal registry")
                .on(&input.on),
        );
    }
    out
}

/// The VEX documents (OpenVEX, CSAF, CycloneDX) signed by a trusted (and allowed) signer and
/// bound to `subject`, and checks that say which VEX attestations were used and which were
/// ignored, unsigned ones included.
fn vex_documents(
    trusted: &[Trusted],
    referrers: &[ReferrerReport],
    signers: &Option<Vec<String>>,
    subject: &Digest,
) -> (Vec<VexDocument>, Vec<Check>) {
    let mut docs = Vec::new();
    let mut checks = Vec::new();
    for t in trusted {
        let Some(format) = t
            .predicate_type
            .as_deref()
            .and_then(|p| VexFormat::of_predicate(p, t.predicate.as_ref()))
        else {
            continue;
        };
        let what = format!("{} attestation", format.label());
        let name = format!("{} signed by {}", t.referrer.short(), t.signer);
        if !allowed(signers, &t.signer) {
            checks.push(
                Check::skip(CheckKind::Vex, what)
                    .found(format!(
                        "{name}: ignored, {} is not among vulnerabilities.vex_signers",
                        t.signer
                    ))
                    .on(&t.referrer),
            );
            continue;
        }
        let predicate = t.predicate.as_ref().unwrap_or(&Value::Null);
        match VexDocument::from_value(format, predicate, &name) {
            Ok(mut doc) => {
                // The attestation is bound to this artifact: its statements speak of it.
                doc.subject = Some(subject.clone());
                checks.push(
                    Check::pass(CheckKind::Vex, what)
                        .found(format!("{name}: {} statement(s)", doc.statements.len()))
                        .on(&t.referrer),
                );
                docs.push(doc);
            }
            Err(e) => checks.push(
                Check::skip(CheckKind::Vex, what)
                    .found(format!("{name}: ignored, {e}"))
                    .on(&t.referrer),
            ),
        }
    }
    for r in referrers.iter().filter(|r| !r.trusted) {
        if let Some(format) = r
            .predicate_type
            .as_deref()
            .and_then(|p| VexFormat::of_predicate(p, None))
        {
            checks.push(
                Check::skip(CheckKind::Vex, format!("{} attestation", format.label()))
                    .found(format!(
                        "{}: ignored, not signed by a trusted signer",
                        r.manifest.short()
                    ))
                    .on(&r.manifest),
            );
        }
    }
    (docs, checks)
}

fn decision_check(f: &Finding, verdict: &Verdict, expected: &str) -> Check {
    let aliases = if f.aliases.is_empty() {
        String::new()
    } else {
        format!(
            " (aliases {})",
            f.aliases
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let severity = match f.severity.score {
        Some(s) => format!("{} {s:.1}", f.severity.rating),
        None => f.severity.rating.to_string(),
    };
    let why = match verdict {
        Verdict::NotAffectedByVex {
            document,
            justification,
            status,
            ..
        } => match status {
            vpolicy::VexStatus::Fixed => {
                format!("allowed: fixed in this artifact per signed VEX {document}")
            }
            _ => format!("allowed: not affected per signed VEX {document} ({justification})"),
        },
        Verdict::AllowedByException {
            id,
            reason,
            expires,
        } => format!("allowed: exception for {id} until {expires}: {reason}"),
        Verdict::WithinSeverity { max_severity, .. } => {
            format!("allowed: within the maximum severity {max_severity}")
        }
        Verdict::WithinGrace {
            published,
            grace_ends,
        } => format!("allowed: published {published}, within the grace period until {grace_ends}"),
        Verdict::Violation { reason, notes } => {
            let vpolicy::ViolationReason::SeverityAboveMaximum {
                counted_as,
                max_severity,
                ..
            } = reason;
            let mut s = format!("refused: {counted_as} is above the maximum {max_severity}");
            for n in notes {
                s.push_str(&match n {
                    Note::ExceptionExpired { id, expired } => {
                        format!("; the exception for {id} expired on {expired}")
                    }
                    Note::GraceEnded { grace_ended, .. } => {
                        format!("; the grace period ended on {grace_ended}")
                    }
                    Note::NoPublishedDate => "; no published date, so no grace period".into(),
                });
            }
            s
        }
    };
    let fixed = if f.fixed.is_empty() {
        "no fixed version is known".to_string()
    } else {
        format!("fixed in {}", f.fixed.join(", "))
    };
    Check::of(
        !verdict.is_violation(),
        CheckKind::Vulnerability,
        format!("{} in {} {}", f.id, f.package, f.version),
    )
    .expected(expected)
    .found(format!(
        "{}{aliases}: {severity} in {}, {fixed}; {why}",
        f.id, f.purl
    ))
    .hint(format!(
        "upgrade {} ({fixed}); or add an exception with a reason and an expiry date to the policy; or attach a signed OpenVEX not_affected statement",
        f.package
    ))
}

/// Verifies an SBOM bundle for `custody scan` and `custody rescan` the way `custody verify`
/// does: the signature against the scope's signers (and its SBOM signers, when named), an
/// in-toto statement with a CycloneDX predicate, and a subject that is the artifact.
pub struct PolicySbomVerifier<'a> {
    pub scope: &'a Scope,
    pub trusted_root: &'a TrustedRoot,
}

impl SbomVerifier for PolicySbomVerifier<'_> {
    fn verify_sbom_bundle(&self, bundle: &[u8], subject: &Digest) -> Result<String, String> {
        let parsed = Bundle::from_json(bundle).map_err(|e| format!("not a usable bundle: {e}"))?;
        let manifest = Digest::of(bundle);
        let mut report = ReferrerReport {
            kind: ReferrerKind::Bundle,
            manifest: manifest.clone(),
            origin: attach::Origin::Referrer {
                path: ReferrersPath::Api,
                manifest,
            },
            predicate_type: None,
            signer: None,
            signer_identity: None,
            signing_times: Vec::new(),
            trusted: false,
            checks: Vec::new(),
        };
        let trusted = evaluate_signed(
            &parsed,
            Binding::Statement,
            subject,
            self.scope,
            self.trusted_root,
            &mut report,
        );
        let Some(t) = trusted else {
            let why = report
                .checks
                .iter()
                .filter(|c| c.failed())
                .map(|c| {
                    format!(
                        "{}: expected {}, found {}",
                        c.name,
                        c.expected.as_deref().unwrap_or("-"),
                        c.found.as_deref().unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(if why.is_empty() {
                "not signed by a signer of the policy scope".into()
            } else {
                why
            });
        };
        if !t.predicate_type.as_deref().is_some_and(is_sbom) {
            return Err(format!(
                "the signed statement's predicate type is {:?}, not CycloneDX or SPDX",
                t.predicate_type.unwrap_or_default()
            ));
        }
        let sbom_signers = self.scope.sbom.as_ref().and_then(|s| s.signers.clone());
        if !allowed(&sbom_signers, &t.signer) {
            return Err(format!(
                "signed by {}, who is not among the scope's sbom.signers {:?}",
                t.signer,
                sbom_signers.unwrap_or_default()
            ));
        }
        Ok(format!(
            "{} ({})",
            t.signer,
            report.signer_identity.unwrap_or_default()
        ))
    }
}

/// The UTC day of a Unix time, for grace periods and exception expiry.
pub fn day_of(unix: i64) -> Date {
    let secs = u64::try_from(unix).unwrap_or(0);
    Date::from_system_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_types_are_recognised() {
        assert!(is_cyclonedx("https://cyclonedx.org/bom"));
        assert!(is_cyclonedx("https://cyclonedx.org/bom/v1.6"));
        assert!(!is_cyclonedx("https://spdx.dev/Document"));
        assert!(is_openvex("https://openvex.dev/ns"));
        assert!(is_openvex("https://openvex.dev/ns/v0.2.0"));
        assert!(!is_openvex("https://openvex.dev/nsx"));
        assert_eq!(day_of(0), Date::parse("1970-01-01").unwrap());
        assert_eq!(day_of(1_767_225_600), Date::parse("2026-01-01").unwrap());
        assert_eq!(day_of(-5), Date::parse("1970-01-01").unwrap());
    }

    #[test]
    fn the_sbom_verifier_refuses_what_is_not_a_trusted_sbom() {
        use crate::evidence::sign::keys::SigningKey;
        use crate::evidence::sign::{KeySigner, sign_statement};
        let key = KeySigner::new(SigningKey::generate_p256().unwrap());
        let pem: String = key
            .public_key()
            .to_pem()
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect();
        let text = format!(
            "version: 1\nscopes:\n  - name: s\n    repositories: [\"**\"]\n    signers:\n      - name: k\n        key: |\n{pem}"
        );
        let policy = crate::decisions::policy::Policy::parse(
            text.as_bytes(),
            crate::decisions::policy::Format::Yaml,
            Path::new("."),
            "p",
        )
        .unwrap();
        let root = TrustedRoot::empty();
        let v = PolicySbomVerifier {
            scope: &policy.scopes[0],
            trusted_root: &root,
        };
        let subject = Digest::of(b"artifact");
        let statement = |predicate_type: &str, subject: &Digest| {
            serde_json::to_vec(&serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"digest": {"sha256": subject.hex()}}],
                "predicateType": predicate_type,
                "predicate": {"bomFormat": "CycloneDX", "specVersion": "1.6"},
            }))
            .unwrap()
        };
        let signed = |s: Vec<u8>, k: &KeySigner| sign_statement(&s, k).unwrap().to_json();
        let ok = signed(statement(PREDICATE_CYCLONEDX, &subject), &key);
        assert!(
            v.verify_sbom_bundle(&ok, &subject)
                .unwrap()
                .starts_with("k (key ")
        );
        for junk in [&b""[..], b"{", b"[]", &[0xff; 64]] {
            let err = v.verify_sbom_bundle(junk, &subject).unwrap_err();
            assert!(err.starts_with("not a usable bundle"), "{err}");
        }
        let other = KeySigner::new(SigningKey::generate_p256().unwrap());
        let err = v
            .verify_sbom_bundle(
                &signed(statement(PREDICATE_CYCLONEDX, &subject), &other),
                &subject,
            )
            .unwrap_err();
        assert!(err.contains("signature"), "{err}");
        let err = v
            .verify_sbom_bundle(&ok, &Digest::of(b"another artifact"))
            .unwrap_err();
        assert!(err.contains("statement subject"), "{err}");
        let err = v
            .verify_sbom_bundle(
                &signed(statement("https://slsa.dev/provenance/v1", &subject), &key),
                &subject,
            )
            .unwrap_err();
        assert!(err.contains("not CycloneDX"), "{err}");
    }
}
