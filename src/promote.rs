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
use crate::transfer::{self, CopyOptions, CopyOutcome};

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

/// Copies the verified `digest` from `src` to `dst` with every referrer, attaches the
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
    digest: &Digest,
    options: &CopyOptions,
    record: Option<(&PromotionRecord, &dyn Signer)>,
    now: &Timestamp,
) -> Result<PromoteOutcome, Error> {
    // Copy exactly the digest that verified, never the tag again.
    let pinned_src = src_ref.with_digest(digest.clone());
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
    let mut copy = transfer::copy(
        src,
        &pinned_src,
        dst,
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
            dst,
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
