//! The VSA fast path: a signed SLSA verification summary attached to the image, from a verifier
//! key serve trusts (`--vsa-verifier-key`), that says PASSED for this very resource under the
//! policy serve runs now (by digest) and is recent enough, stands for a full verification. Any
//! other summary (another policy, an untrusted key, FAILED, too old, another digest or
//! repository) is ignored and the full verification runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::Error;
use crate::decisions::policy::{Policy, SignerKind, TrustedSigner};
use crate::decisions::verify::vsa::{self, SignedSummary};
use crate::decisions::verify::{Check, CheckKind, ManifestReport, PolicyRef, VerifyReport};
use crate::evidence::sign::keys::PublicKey;
use crate::evidence::sign::verify::TrustedRoot;
use crate::foundation::digest::Digest;
use crate::foundation::reference::Reference;
use crate::storage::store::Store;

/// Largest verifier key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// How far in the future a summary's `timeVerified` may lie (clock skew between machines).
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Which verifiers' summaries count, and for how long after they were made.
#[derive(Debug, Clone)]
pub struct SummarySettings {
    /// Public keys (PEM files) of the verifiers whose summaries are trusted; none: no fast path.
    pub verifier_keys: Vec<PathBuf>,
    /// A summary older than this (by its `timeVerified`) is ignored.
    pub max_age: Duration,
}

impl Default for SummarySettings {
    fn default() -> Self {
        SummarySettings {
            verifier_keys: Vec::new(),
            max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The loaded verifier keys.
pub(crate) struct Verifiers {
    signers: Vec<TrustedSigner>,
    max_age: Duration,
}

impl Verifiers {
    pub(crate) fn load(settings: &SummarySettings) -> Result<Verifiers, Error> {
        let signers = settings
            .verifier_keys
            .iter()
            .map(|path| {
                Ok(TrustedSigner {
                    name: format!("verifier {}", path.display()),
                    kind: SignerKind::Key(read_key(path)?),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Verifiers {
            signers,
            max_age: settings.max_age,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The report of an accepted summary for `reference` at `digest`, if one is attached.
    /// A registry that cannot be read gives `None` too: the full verification says why.
    pub(crate) fn accept(
        &self,
        store: &dyn Store,
        reference: &Reference,
        digest: &Digest,
        policy: &Policy,
        root: &TrustedRoot,
        now: jiff::Timestamp,
    ) -> Option<VerifyReport> {
        if self.signers.is_empty() {
            return None;
        }
        let policy_digest = policy.digest.as_ref()?;
        let pinned = reference.pinned(digest);
        let scope = policy.scope_for(&reference.repository())?;
        let found = vsa::signed_summaries(store, digest, &self.signers, root).ok()?;
        let accepted = found
            .iter()
            .find(|s| self.acceptable(s, &pinned, policy_digest, now).is_ok())?;
        let time = accepted
            .predicate
            .get("timeVerified")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let check = Check::pass(CheckKind::Verdict, "verification summary")
            .expected(format!(
                "a PASSED summary of {pinned} under policy {policy_digest} from a trusted verifier, at most {} s old",
                self.max_age.as_secs()
            ))
            .found(format!("{}, verified at {time}", accepted.signer))
            .on(&accepted.referrer);
        Some(VerifyReport {
            reference: reference.to_string(),
            pinned,
            digest: Some(digest.clone()),
            scope: Some(scope.name.clone()),
            policy: PolicyRef {
                source: policy.source.clone(),
                digest: policy.digest.clone(),
            },
            verified: true,
            artifact: ManifestReport {
                digest: Some(digest.clone()),
                media_type: String::new(),
                platform: None,
                verified: true,
                checks: vec![check],
                referrers: Vec::new(),
                ignored: Vec::new(),
                build_level: None,
                platforms: Vec::new(),
                unsigned: Vec::new(),
            },
            trusted_root: None,
            attestations_repository: None,
        })
    }

    /// `Ok` when the summary says PASSED, for `pinned`, under `policy_digest`, and is recent;
    /// else what it says instead.
    fn acceptable(
        &self,
        summary: &SignedSummary,
        pinned: &str,
        policy_digest: &Digest,
        now: jiff::Timestamp,
    ) -> Result<(), String> {
        let p = &summary.predicate;
        vsa::verdict(crate::evidence::attest::PREDICATE_SLSA_VSA_V1, p)?;
        let named = p
            .get("policy")
            .and_then(|p| p.get("digest"))
            .and_then(|d| d.get("sha256"))
            .and_then(Value::as_str);
        if named != Some(policy_digest.hex()) {
            return Err("another policy".into());
        }
        if p.get("resourceUri").and_then(Value::as_str) != Some(pinned) {
            return Err("another resource".into());
        }
        let verified: jiff::Timestamp = p
            .get("timeVerified")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or("no timeVerified")?;
        let age = now.duration_since(verified);
        let max = jiff::SignedDuration::try_from(self.max_age).unwrap_or(jiff::SignedDuration::MAX);
        let skew = jiff::SignedDuration::try_from(CLOCK_SKEW).unwrap_or_default();
        if age > max {
            return Err("expired".into());
        }
        if age < -skew {
            return Err("verified in the future".into());
        }
        Ok(())
    }
}

fn read_key(path: &Path) -> Result<PublicKey, Error> {
    let bad = |reason: String| Error::VerifierKey {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(bad(format!(
            "{} bytes; a key file is at most {MAX_KEY_FILE}",
            meta.len()
        )));
    }
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if pem.contains("CERTIFICATE") {
        return Err(bad("a certificate, not a public key".into()));
    }
    PublicKey::from_pem(&pem).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(predicate: Value) -> SignedSummary {
        SignedSummary {
            referrer: Digest::of(b"referrer"),
            signer: "verifier".into(),
            predicate,
        }
    }

    #[test]
    fn only_a_recent_passed_summary_of_this_resource_and_policy_is_acceptable() {
        let verifiers = Verifiers {
            signers: Vec::new(),
            max_age: Duration::from_secs(3600),
        };
        let policy = Digest::of(b"policy");
        let pinned = "r.example/app@sha256:00";
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let good = json!({
            "verificationResult": "PASSED",
            "policy": {"uri": "policy.yaml", "digest": {"sha256": policy.hex()}},
            "resourceUri": pinned,
            "timeVerified": "2026-01-01T11:30:00Z",
        });
        assert_eq!(
            verifiers.acceptable(&summary(good.clone()), pinned, &policy, now),
            Ok(())
        );
        let with = |pointer: &str, value: Value| {
            let mut p = good.clone();
            *p.pointer_mut(pointer).unwrap() = value;
            verifiers.acceptable(&summary(p), pinned, &policy, now)
        };
        assert_eq!(
            with("/verificationResult", json!("FAILED")),
            Err("verificationResult \"FAILED\"".into())
        );
        assert_eq!(
            with("/policy/digest/sha256", json!(Digest::of(b"other").hex())),
            Err("another policy".into())
        );
        assert_eq!(
            with("/resourceUri", json!("r.example/app@sha256:11")),
            Err("another resource".into())
        );
        assert_eq!(
            with("/resourceUri", json!("r.example/other@sha256:00")),
            Err("another resource".into())
        );
        assert_eq!(
            with("/timeVerified", json!("2026-01-01T10:59:59Z")),
            Err("expired".into())
        );
        assert_eq!(
            with("/timeVerified", json!("2026-01-01T13:00:00Z")),
            Err("verified in the future".into())
        );
        assert_eq!(
            with("/timeVerified", json!("yesterday")),
            Err("no timeVerified".into())
        );
        assert_eq!(with("/policy", json!(null)), Err("another policy".into()));
    }
}
