//! A SLSA Verification Summary Attestation v1 of a [`VerifyReport`]: what was verified, against
//! which policy (by digest), from which attestations, with which result and build level.

use crate::attest::{
    self, AttestError, DigestSet, ResourceDescriptor, Statement, Timestamp, VerificationResult,
    VerificationSummary, Verifier,
};

use super::VerifyReport;

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
    let subject = attest::oci_subject(name, &report.digest);
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
