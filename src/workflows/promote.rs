//! Promotion between registries: once an artifact has verified against a policy, copy it with
//! every referrer (bundles, SBOM, provenance, legacy cosign tags) by digest, write the
//! destination tag last (never moving an existing one), and optionally attach a signed
//! promotion record: a SLSA VSA of the verification, whose subject says who promoted what from
//! where to where.
//!
//! The digest verified is the digest copied: the caller resolves the source once, verifies that
//! digest with [`verify::verdict`], and hands the [`Verified`] here; [`promote`] takes nothing
//! else, so what was not verified cannot be copied.
//!
//! ```compile_fail
//! // A digest is not a verification: promote needs the `Verified` value.
//! use custody::storage::store::Store;
//! use custody::foundation::{digest::Digest, reference::Reference};
//! fn promote_unverified(src: &dyn Store, r: &Reference, dst: &dyn Store, digest: &Digest) {
//!     let now = custody::evidence::attest::Timestamp::from_unix(0);
//!     let _ = custody::workflows::promote::promote(
//!         src, r, dst, r, digest, &Default::default(), None, &now,
//!     );
//! }
//! ```

use serde::Serialize;

use crate::decisions::verify::{self, Verified};
use crate::evidence::attach::{self, BundleContent};
use crate::evidence::attest::{self, ResourceDescriptor, Timestamp, VerificationSummary};
use crate::evidence::sign::{self, Signer};
use crate::foundation::digest::Digest;
use crate::foundation::reference::Reference;
use crate::storage::store::Store;
use crate::storage::store::elsewhere::Evidence;
use crate::storage::transfer::{self, CopyOptions, CopyOutcome};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error(transparent)]
    Attach(#[from] attach::Error),
    #[error("cannot build the promotion attestation")]
    Attest(#[from] attest::AttestError),
    #[error("cannot sign the promotion attestation")]
    Sign(#[from] sign::SignError),
    #[error("{source_pinned} is not what was verified ({verified}); nothing was copied")]
    NotVerified {
        source_pinned: String,
        verified: String,
    },
}

/// Who promoted, and what the verification said.
#[derive(Clone, Debug)]
pub struct PromotionRecord {
    /// The promoter's identity: a CI builder id, or `local`.
    pub actor: String,
    /// The VSA predicate describing the verification that allowed the promotion.
    pub summary: VerificationSummary,
}

impl PromotionRecord {
    /// The record of `actor` promoting what `verified` describes, at `now`.
    pub fn of(
        verified: &Verified,
        actor: String,
        now: Timestamp,
    ) -> Result<PromotionRecord, attest::AttestError> {
        Ok(PromotionRecord {
            actor,
            summary: verify::vsa::summary(verified.report(), now)?.predicate,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteOutcome {
    /// The source, pinned to the digest that verified.
    pub source: String,
    /// The destination as promoted to (with the tag it gets).
    pub destination: String,
    pub digest: Digest,
    /// The destination pinned to the digest.
    pub pinned: String,
    /// What was (or, dry, would be) copied; `tag` and `tagOutcome` describe the destination
    /// tag, written after everything else.
    pub copy: CopyOutcome,
    /// The promotion attestation attached at the destination, if any.
    pub promotion_attestation: Option<Digest>,
    pub dry_run: bool,
}

/// Copies the digest that `verified` names from `src` to `dst` with every referrer, attaches the
/// promotion record when a signer is given, and writes the destination tag last (immutable
/// unless `options.tag_policy` forces it). A tag that would be refused is refused before
/// anything is copied, and checked again when written. A run that stops half way (a registry
/// dies) leaves no tag; running it again completes it.
#[allow(clippy::too_many_arguments)]
pub fn promote(
    src: &dyn Store,
    src_ref: &Reference,
    dst: &dyn Store,
    dst_ref: &Reference,
    verified: &Verified,
    options: &CopyOptions,
    record: Option<(&PromotionRecord, &dyn Signer)>,
    now: &Timestamp,
) -> Result<PromoteOutcome, Error> {
    promote_with(
        Evidence::new(src, None),
        src_ref,
        Evidence::new(dst, None),
        dst_ref,
        verified,
        options,
        record,
        now,
    )
}

/// [`promote`] where the source's evidence is read through `src_evidence` and the
/// destination's is written through `dst_evidence` (attestations repositories, when set): the
/// evidence is copied too, and the promotion record goes where the destination keeps it.
#[allow(clippy::too_many_arguments)]
pub fn promote_with(
    src_evidence: Evidence<'_>,
    src_ref: &Reference,
    dst_evidence: Evidence<'_>,
    dst_ref: &Reference,
    verified: &Verified,
    options: &CopyOptions,
    record: Option<(&PromotionRecord, &dyn Signer)>,
    now: &Timestamp,
) -> Result<PromoteOutcome, Error> {
    let dst = dst_evidence.artifact();
    // Copy exactly the digest that verified, from the repository it verified in, never the
    // tag again.
    let digest = verified.digest();
    let pinned_src = src_ref.with_digest(digest.clone());
    if verified.pinned() != src_ref.pinned(digest) {
        return Err(Error::NotVerified {
            source_pinned: src_ref.pinned(digest),
            verified: verified.pinned().to_owned(),
        });
    }
    let tag = match (&dst_ref.tag, &dst_ref.digest) {
        (Some(t), _) => Some(t.clone()),
        (None, None) => src_ref.tag.clone(),
        (None, Some(_)) => None,
    };
    let dst_target = match &tag {
        Some(t) => dst_ref.with_tag(t.clone()),
        None => dst_ref.clone(),
    };
    if let Some(t) = &tag {
        transfer::check_tag_free(dst, t, digest, options.tag_policy)?;
    }
    // Everything by digest first; the tag waits until the promotion is complete.
    let mut copy = transfer::copy_with(
        src_evidence,
        &pinned_src,
        dst_evidence,
        &dst_ref.with_digest(digest.clone()),
        options,
    )?;
    let mut promotion_attestation = None;
    if let (Some((record, signer)), false) = (record, options.dry_run) {
        let subject_descriptor = dst
            .get_manifest(digest)
            .map_err(transfer::Error::from)?
            .descriptor;
        let mut subject = attest::oci_subject(dst_ref.repository(), digest);
        for (k, v) in [
            ("custody.dev/promotion/from", src_ref.to_string()),
            ("custody.dev/promotion/to", dst_target.to_string()),
            ("custody.dev/promotion/actor", record.actor.clone()),
        ] {
            subject
                .annotations
                .insert(k.to_owned(), serde_json::Value::String(v));
        }
        let statement = attest::Statement::new(
            vec![subject],
            attest::PREDICATE_SLSA_VSA_V1,
            record.summary.clone(),
        );
        let bundle = sign::sign_statement(&statement.to_bytes()?, signer)?;
        let referrer = attach::attach_bundle(
            &dst_evidence,
            &subject_descriptor,
            &bundle.to_json(),
            BundleContent::DsseEnvelope,
            Some(attest::PREDICATE_SLSA_VSA_V1),
            now.as_str(),
        )?;
        promotion_attestation = Some(referrer.digest);
    }
    if let Some(t) = &tag {
        if !options.dry_run {
            let manifest = dst.get_manifest(digest).map_err(transfer::Error::from)?;
            copy.tag_outcome = Some(transfer::write_tag(dst, t, &manifest, options.tag_policy)?);
        }
        copy.tag = Some(t.to_string());
    }
    Ok(PromoteOutcome {
        source: pinned_src.to_string(),
        destination: dst_target.to_string(),
        digest: digest.clone(),
        pinned: dst_ref.pinned(digest),
        copy,
        promotion_attestation,
        dry_run: options.dry_run,
    })
}

/// The resource descriptor of a policy file, for a VSA's `policy` field.
pub fn policy_descriptor(uri: &str, bytes: &[u8]) -> ResourceDescriptor {
    ResourceDescriptor {
        uri: Some(uri.to_owned()),
        ..ResourceDescriptor::file(uri, &Digest::of(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::policy::{Pattern, Policy, Scope, SignerKind, TrustedSigner};
    use crate::decisions::verify::{Verdict, VerifyOptions};
    use crate::evidence::attach::AttachOptions;
    use crate::evidence::attest::{VerificationResult, Verifier};
    use crate::evidence::sign::KeySigner;
    use crate::evidence::sign::keys::SigningKey;
    use crate::evidence::sign::verify::TlogRequirement;
    use crate::foundation::oci::Descriptor;
    use crate::storage::store::layout::LayoutStore;
    use crate::storage::transfer::{PushOptions, TagOutcome, TagPolicy};

    struct Fixture {
        _dir: tempfile::TempDir,
        src: LayoutStore,
        src_ref: Reference,
        dst: LayoutStore,
        dst_ref: Reference,
        digest: Digest,
        root: std::path::PathBuf,
        /// The key that signed the artifact in staging.
        key: KeySigner,
    }

    /// A policy that trusts `signer`'s key for every repository, and asks nothing else.
    fn trusting(signer: &KeySigner) -> Policy {
        Policy {
            scopes: vec![Scope {
                name: "test".into(),
                repositories: vec![Pattern::parse("**").unwrap()],
                signers: vec![TrustedSigner {
                    name: "staging key".into(),
                    kind: SignerKind::Key(signer.public_key()),
                }],
                threshold: 1,
                key_tlog: TlogRequirement::Skip,
                attestations: Vec::new(),
                signature_predicate_types: Vec::new(),
                provenance: None,
                sbom: None,
                vulnerabilities: None,
                sources: None,
                trust: None,
                attestations_repository: None,
            }],
            source: "test".into(),
            digest: None,
        }
    }

    fn verdict(f: &Fixture, policy: &Policy) -> Verdict {
        verify::verdict(
            &f.src,
            &f.src_ref.with_digest(f.digest.clone()),
            policy,
            &VerifyOptions::default(),
        )
        .unwrap()
    }

    /// The staging artifact, verified against a policy that trusts the key that signed it.
    fn verified(f: &Fixture) -> Verified {
        match verdict(f, &trusting(&f.key)) {
            Verdict::Verified(v) => *v,
            Verdict::Refused(report) => panic!("refused: {:?}", report.failures()),
        }
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.bin");
        std::fs::write(&file, b"the artifact").unwrap();
        let layout = |name: &str, tag: &str| -> (LayoutStore, Reference) {
            let r: Reference = format!("oci:{}:{tag}", dir.path().join(name).display())
                .parse()
                .unwrap();
            (
                LayoutStore::open_or_create(r.layout_path().unwrap()).unwrap(),
                r,
            )
        };
        let (src, src_ref) = layout("staging", "1.0.0");
        let (dst, dst_ref) = layout("production", "1.0.0");
        let pushed =
            transfer::push_files(&src, &src_ref, &[file], &PushOptions::default()).unwrap();
        let key = KeySigner::new(SigningKey::generate_p256().unwrap());
        let subject = Descriptor::new(pushed.media_type, pushed.digest.clone(), pushed.size);
        attach::sign_artifact(&src, &subject, &key, &AttachOptions::default()).unwrap();
        Fixture {
            key,
            root: dir.path().to_owned(),
            _dir: dir,
            src,
            src_ref,
            dst,
            dst_ref,
            digest: pushed.digest,
        }
    }

    fn record() -> PromotionRecord {
        PromotionRecord {
            actor: "local:tester".into(),
            summary: VerificationSummary {
                verifier: Verifier {
                    id: "https://custody.dev/verifiers/custody@v1".into(),
                    version: Default::default(),
                },
                time_verified: None,
                resource_uri: "oci:staging@sha256:x".into(),
                policy: ResourceDescriptor {
                    uri: Some("policy.yaml".into()),
                    ..ResourceDescriptor::default()
                },
                input_attestations: None,
                verification_result: VerificationResult::Passed,
                verified_levels: vec!["SLSA_BUILD_LEVEL_1".into()],
                dependency_levels: None,
                slsa_version: Some("1.0".into()),
            },
        }
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-01-02T03:04:05Z").unwrap()
    }

    #[test]
    fn promotes_the_digest_with_a_signed_record_whose_subject_names_from_to_and_actor() {
        let f = fixture();
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let r = record();
        let out = promote(
            &f.src,
            &f.src_ref,
            &f.dst,
            &f.dst_ref,
            &verified(&f),
            &CopyOptions::default(),
            Some((&r, &signer)),
            &now(),
        )
        .unwrap();
        assert_eq!(out.copy.tag_outcome, Some(TagOutcome::Created));
        assert_eq!(out.copy.tag.as_deref(), Some("1.0.0"));
        assert_eq!(out.pinned, f.dst_ref.pinned(&f.digest));
        let tagged = f
            .dst
            .get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(tagged.descriptor.digest, f.digest);

        // The staging signature was copied along; the promotion record is the VSA.
        let found = attach::discover(&f.dst, &f.digest).unwrap();
        assert_eq!(found.bundles.len(), 2);
        let vsa = found
            .bundles
            .iter()
            .find(|b| b.claimed_predicate_type.as_deref() == Some(attest::PREDICATE_SLSA_VSA_V1))
            .expect("the promotion attestation");
        let bundle = sign::bundle::Bundle::from_json(&vsa.bundle).unwrap();
        let sign::bundle::Content::Dsse(env) = bundle.content() else {
            panic!("a DSSE envelope");
        };
        let statement: serde_json::Value = serde_json::from_slice(&env.payload).unwrap();
        assert_eq!(statement["predicateType"], attest::PREDICATE_SLSA_VSA_V1);
        let subject = &statement["subject"][0];
        assert_eq!(subject["digest"]["sha256"], f.digest.hex());
        assert_eq!(
            subject["annotations"]["custody.dev/promotion/from"],
            f.src_ref.to_string()
        );
        assert_eq!(
            subject["annotations"]["custody.dev/promotion/to"],
            f.dst_ref.to_string()
        );
        assert_eq!(
            subject["annotations"]["custody.dev/promotion/actor"],
            "local:tester"
        );
    }

    #[test]
    fn a_source_signed_by_an_untrusted_key_gives_nothing_to_promote() {
        let f = fixture();
        let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
        let Verdict::Refused(report) = verdict(&f, &trusting(&stranger)) else {
            panic!("a signature by an untrusted key verified");
        };
        assert!(
            report
                .failures()
                .iter()
                .any(|c| c.kind == verify::CheckKind::Threshold)
        );
    }

    #[test]
    fn a_verification_of_another_repository_copies_nothing() {
        let f = fixture();
        let elsewhere: Reference = format!("oci:{}:1.0.0", f.root.join("elsewhere").display())
            .parse()
            .unwrap();
        let err = promote(
            &f.src,
            &elsewhere,
            &f.dst,
            &f.dst_ref,
            &verified(&f),
            &CopyOptions::default(),
            None,
            &now(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotVerified { .. }), "{err}");
        assert!(matches!(
            f.dst.get_manifest(&f.digest),
            Err(crate::storage::store::Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_dry_run_copies_nothing() {
        let f = fixture();
        let out = promote(
            &f.src,
            &f.src_ref,
            &f.dst,
            &f.dst_ref,
            &verified(&f),
            &CopyOptions {
                dry_run: true,
                ..CopyOptions::default()
            },
            None,
            &now(),
        )
        .unwrap();
        assert!(out.dry_run);
        assert_eq!(out.copy.tag_outcome, None);
        // The artifact and the staging signature.
        assert_eq!(out.copy.manifests.len(), 2);
        assert!(matches!(
            f.dst.get_manifest(&f.digest),
            Err(crate::storage::store::Error::NotFound { .. })
        ));
        assert!(
            f.dst
                .get_tagged(&"1.0.0".parse().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_occupied_tag_is_refused_before_anything_is_copied() {
        let f = fixture();
        let other = f.root.join("other.bin");
        std::fs::write(&other, b"someone else's").unwrap();
        let squatter =
            transfer::push_files(&f.dst, &f.dst_ref, &[other], &PushOptions::default()).unwrap();
        let err = promote(
            &f.src,
            &f.src_ref,
            &f.dst,
            &f.dst_ref,
            &verified(&f),
            &CopyOptions::default(),
            None,
            &now(),
        )
        .unwrap_err();
        match err {
            Error::Transfer(transfer::Error::Store(crate::storage::store::Error::TagExists {
                existing,
                new,
                ..
            })) => {
                assert_eq!(existing, squatter.digest);
                assert_eq!(new, f.digest);
            }
            other => panic!("expected TagExists, got {other}"),
        }
        assert!(matches!(
            f.dst.get_manifest(&f.digest),
            Err(crate::storage::store::Error::NotFound { .. })
        ));
        // Forced, it moves, and says from where.
        let out = promote(
            &f.src,
            &f.src_ref,
            &f.dst,
            &f.dst_ref,
            &verified(&f),
            &CopyOptions {
                tag_policy: TagPolicy::Force,
                ..CopyOptions::default()
            },
            None,
            &now(),
        )
        .unwrap();
        assert_eq!(
            out.copy.tag_outcome,
            Some(TagOutcome::Moved {
                previous: squatter.digest
            })
        );
    }
}
