//! Promotion between registries: once an artifact has verified against a policy, copy it with
//! every referrer (bundles, SBOM, provenance, legacy cosign tags) by digest, write the
//! destination tag last (never moving an existing one), and optionally attach a signed
//! promotion record: a SLSA VSA of the verification, whose subject says who promoted what from
//! where to where.
//!
//! The digest verified is the digest copied: the caller resolves the source once, verifies that
//! digest, and hands it here.

use serde::Serialize;

use crate::attach::{self, BundleContent};
use crate::attest::{self, ResourceDescriptor, Timestamp, VerificationSummary};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::sign::{self, Signer};
use crate::store::Store;
use crate::transfer::{self, CopyOptions, CopyOutcome, TagPolicy};

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
}

/// Who promoted, and what the verification said.
#[derive(Clone, Debug)]
pub struct PromotionRecord {
    /// The promoter's identity: a CI builder id, or `local`.
    pub actor: String,
    /// The VSA predicate describing the verification that allowed the promotion.
    pub summary: VerificationSummary,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteOutcome {
    pub source: String,
    pub destination: String,
    pub digest: Digest,
    pub pinned: String,
    pub copy: CopyOutcome,
    /// The promotion attestation attached at the destination, if any.
    pub promotion_attestation: Option<Digest>,
    pub dry_run: bool,
}

/// Copies the verified `digest` from `src` to `dst` (tag last, immutable unless forced) and
/// attaches the promotion record when a signer is given.
#[allow(clippy::too_many_arguments)]
pub fn promote(
    src: &dyn Store,
    src_ref: &Reference,
    dst: &dyn Store,
    dst_ref: &Reference,
    digest: &Digest,
    tag_policy: TagPolicy,
    dry_run: bool,
    record: Option<(&PromotionRecord, &dyn Signer)>,
    now: &Timestamp,
) -> Result<PromoteOutcome, Error> {
    // Copy exactly the digest that verified, never the tag again.
    let pinned_src = src_ref.with_digest(digest.clone());
    let mut dst_target = dst_ref.clone();
    if dst_target.tag.is_none() && dst_target.digest.is_none() {
        dst_target.tag = src_ref.tag.clone();
    }
    let options = CopyOptions {
        tag_policy,
        dry_run,
    };
    let copy = transfer::copy(src, &pinned_src, dst, &dst_target, &options)?;
    let mut promotion_attestation = None;
    if let (Some((record, signer)), false) = (record, dry_run) {
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
            dst,
            &subject_descriptor,
            &bundle.to_json(),
            BundleContent::DsseEnvelope,
            Some(attest::PREDICATE_SLSA_VSA_V1),
            &now.to_string(),
        )?;
        promotion_attestation = Some(referrer.digest);
    }
    Ok(PromoteOutcome {
        source: pinned_src.to_string(),
        destination: dst_target.to_string(),
        digest: digest.clone(),
        pinned: dst_ref.pinned(digest),
        copy,
        promotion_attestation,
        dry_run,
    })
}

/// The resource descriptor of a policy file, for a VSA's `policy` field.
pub fn policy_descriptor(uri: &str, bytes: &[u8]) -> ResourceDescriptor {
    ResourceDescriptor {
        uri: Some(uri.to_owned()),
        ..ResourceDescriptor::file(uri, &Digest::of(bytes))
    }
}
