//! A SLSA Verification Summary Attestation v1 of a [`VerifyReport`]: what was verified, against
//! which policy (by digest), from which attestations, with which result and build level.

use crate::evidence::attest::{
    self, AttestError, DigestSet, ResourceDescriptor, Statement, Timestamp, VerificationResult,
    VerificationSummary, Verifier,
};

use super::VerifyReport;
use crate::decisions::policy::VsaExpectation;

/// custody's verifier id in the VSAs it writes.
pub const VERIFIER_ID: &str = "https://custody.dev/verifiers/custody@v1";

/// The VSA statement for `report`, verified at `time`.
pub fn summary(
    report: &VerifyReport,
    time: Timestamp,
) -> Result<Statement<VerificationSummary>, AttestError> {
    let name = report
        .pinned
        .rsplit_once('@')
        .map_or(report.pinned.as_str(), |(repo, _)| repo)
        .to_string();
    // A refusal before resolution has no digest: the statement has no subject and is refused.
    let Some(digest) = &report.digest else {
        return Err(AttestError::NoSubjects);
    };
    let subject = attest::oci_subject(name, digest);
    let policy = ResourceDescriptor {
        uri: Some(report.policy.source.clone()),
        digest: report
            .policy
            .digest
            .as_ref()
            .map(DigestSet::sha256)
            .unwrap_or_default(),
        ..ResourceDescriptor::default()
    };
    let mut inputs: Vec<ResourceDescriptor> = Vec::new();
    let mut walk = vec![&report.artifact];
    while let Some(m) = walk.pop() {
        for r in m.referrers.iter().filter(|r| r.trusted) {
            if !inputs
                .iter()
                .any(|i| i.digest == DigestSet::sha256(&r.manifest))
            {
                inputs.push(ResourceDescriptor {
                    uri: Some(format!(
                        "{}@{}",
                        report.pinned.rsplit_once('@').map_or("", |(repo, _)| repo),
                        r.manifest
                    )),
                    digest: DigestSet::sha256(&r.manifest),
                    ..ResourceDescriptor::default()
                });
            }
        }
        walk.extend(m.platforms.iter());
    }
    let verified_levels = if !report.verified {
        vec!["FAILED".to_string()]
    } else {
        match report.artifact.build_level {
            Some(level) => vec![format!("SLSA_BUILD_LEVEL_{level}")],
            None => vec!["SLSA_BUILD_LEVEL_UNEVALUATED".to_string()],
        }
    };
    let predicate = VerificationSummary {
        verifier: Verifier {
            id: VERIFIER_ID.to_string(),
            version: [("custody".to_string(), env!("CARGO_PKG_VERSION").to_string())].into(),
        },
        time_verified: Some(time),
        resource_uri: report.pinned.clone(),
        policy,
        input_attestations: Some(inputs),
        verification_result: if report.verified {
            VerificationResult::Passed
        } else {
            VerificationResult::Failed
        },
        verified_levels,
        dependency_levels: None,
        slsa_version: Some("1.0".to_string()),
    };
    attest::verification_summary(vec![subject], predicate)
}

pub use crate::evidence::attest::{VSA_PREDICATE_TYPES, is_vsa};

/// The verdict a predicate carries: `Ok` when it passed or carries none, `Err` saying what it
/// says instead. A VSA counts only when its `verificationResult` is `PASSED`: a signed summary of
/// a failed verification is evidence against the artifact, never for it.
pub fn verdict(predicate_type: &str, predicate: &serde_json::Value) -> Result<(), String> {
    if !is_vsa(predicate_type) {
        return Ok(());
    }
    match predicate
        .get("verificationResult")
        .and_then(serde_json::Value::as_str)
    {
        Some("PASSED") => Ok(()),
        Some(other) => Err(format!("verificationResult {:?}", truncate(other))),
        None => Err("no verificationResult".into()),
    }
}

/// `Ok` when the VSA predicate names the policy and resource the policy's attestation rule
/// expects, else what it names instead.
pub fn meets(expectation: &VsaExpectation, predicate: &serde_json::Value) -> Result<(), String> {
    if let Some(want) = &expectation.policy_uri {
        let found = predicate
            .get("policy")
            .and_then(|p| p.get("uri"))
            .and_then(serde_json::Value::as_str);
        if found != Some(want.as_str()) {
            return Err(format!(
                "policy {:?}, not {want:?}",
                truncate(found.unwrap_or("none"))
            ));
        }
    }
    if let Some(want) = &expectation.resource_uri {
        let found = predicate
            .get("resourceUri")
            .and_then(serde_json::Value::as_str);
        if !found.is_some_and(|f| want.matches(f)) {
            return Err(format!(
                "resource {:?}, not {}",
                truncate(found.unwrap_or("none")),
                want.as_str()
            ));
        }
    }
    Ok(())
}

/// A VSA attached to an artifact that verified against one of the given verifier signers and
/// is bound to the artifact's digest; what it says is not judged here.
#[derive(Clone, Debug)]
pub struct SignedSummary {
    /// The referrer manifest that carries it.
    pub referrer: crate::foundation::digest::Digest,
    /// The verifier signer's name.
    pub signer: String,
    pub predicate: serde_json::Value,
}

/// Referrers read when looking for summaries (a VSA is one small bundle per verification).
const SUMMARY_REFERRERS: usize = 64;

/// The VSAs attached to `digest` (referrers and the tag-schema fallback) that are signed by one
/// of `verifiers` and bound to `digest`; other referrers are read within small limits and
/// skipped. Key signers need no transparency log here: the verifier's key is trusted itself.
pub fn signed_summaries(
    store: &dyn crate::storage::store::Store,
    digest: &crate::foundation::digest::Digest,
    verifiers: &[crate::decisions::policy::TrustedSigner],
    root: &crate::evidence::sign::verify::TrustedRoot,
) -> Result<Vec<SignedSummary>, super::Error> {
    use crate::evidence::attach;
    let scope = crate::decisions::policy::Scope {
        name: "vsa verifiers".into(),
        repositories: Vec::new(),
        signers: verifiers.to_vec(),
        threshold: 1,
        key_tlog: crate::evidence::sign::verify::TlogRequirement::Skip,
        attestations: Vec::new(),
        signature_predicate_types: Vec::new(),
        provenance: None,
        sbom: None,
        vulnerabilities: None,
        sources: None,
        trust: None,
        attestations_repository: None,
    };
    let limits = attach::Limits {
        referrers: SUMMARY_REFERRERS,
        total_bytes: 16 * 1024 * 1024,
        jobs: 4,
        ..attach::Limits::DEFAULT
    };
    let evaluate = |found: attach::Found| match &found {
        attach::Found::Bundle(b) if b.claimed_predicate_type.as_deref().is_some_and(is_vsa) => {
            super::evaluate_bundle(b, digest, &scope, root).1
        }
        _ => None,
    };
    let mut out = Vec::new();
    attach::discover_map(store, digest, &limits, &evaluate, &mut |trusted| {
        if let Some(t) = trusted
            && t.predicate_type.as_deref().is_some_and(is_vsa)
            && let Some(predicate) = t.predicate
        {
            out.push(SignedSummary {
                referrer: t.referrer,
                signer: t.signer,
                predicate,
            });
        }
    })
    .map_err(|source| super::Error::Discover {
        digest: digest.clone(),
        source: Box::new(source),
    })?;
    Ok(out)
}

/// At most 200 characters of an attacker-chosen string, for reports.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_passed_vsa_has_a_passing_verdict() {
        let vsa = crate::evidence::attest::PREDICATE_SLSA_VSA_V1;
        assert_eq!(
            verdict(vsa, &json!({"verificationResult": "PASSED"})),
            Ok(())
        );
        assert_eq!(
            verdict(vsa, &json!({"verificationResult": "FAILED"})),
            Err("verificationResult \"FAILED\"".to_string())
        );
        assert_eq!(
            verdict(vsa, &json!({"verificationResult": "passed"})),
            Err("verificationResult \"passed\"".to_string())
        );
        assert_eq!(
            verdict(vsa, &json!({"verificationResult": true})),
            Err("no verificationResult".to_string())
        );
        assert_eq!(
            verdict(vsa, &json!(null)),
            Err("no verificationResult".to_string())
        );
        let long = "x".repeat(10_000);
        assert!(verdict(vsa, &json!({ "verificationResult": long })).is_err_and(|e| e.len() < 300));
        // Predicates without a verdict pass through.
        assert_eq!(
            verdict(
                crate::evidence::attest::PREDICATE_SLSA_PROVENANCE_V1,
                &json!({})
            ),
            Ok(())
        );
    }

    #[test]
    fn expectations_compare_policy_and_resource() {
        let e = VsaExpectation {
            policy_uri: Some("https://example.com/policy.yaml".into()),
            resource_uri: Some(
                crate::decisions::policy::Pattern::parse("localhost:5000/prod/app@*").unwrap(),
            ),
        };
        let good = json!({"policy": {"uri": "https://example.com/policy.yaml"},
            "resourceUri": "localhost:5000/prod/app@sha256:00"});
        assert_eq!(meets(&e, &good), Ok(()));
        let other_policy = json!({"policy": {"uri": "flags"},
            "resourceUri": "localhost:5000/prod/app@sha256:00"});
        assert!(meets(&e, &other_policy).is_err_and(|m| m.contains("policy \"flags\"")));
        let other_resource = json!({"policy": {"uri": "https://example.com/policy.yaml"},
            "resourceUri": "localhost:5000/dev/app@sha256:00"});
        assert!(meets(&e, &other_resource).is_err_and(|m| m.contains("dev/app")));
        assert_eq!(meets(&VsaExpectation::default(), &json!(null)), Ok(()));
    }
}
