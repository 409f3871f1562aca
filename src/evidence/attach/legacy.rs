//! cosign's legacy `.sig` / `.att` layers as Sigstore bundles, so they verify through the same
//! path as bundles.
//!
//! The conversion follows sigstore-go's OCI example: the `dev.sigstore.cosign/certificate`
//! annotation becomes the verification material, the `dev.sigstore.cosign/bundle` Rekor
//! annotation a tlog entry with an inclusion promise (its SET), `kindVersion` from the body and
//! the decoded body as `canonicalizedBody`; the payload and signature become a `messageSignature`
//! (`.sig`) or the DSSE envelope (`.att`); `rfc3161timestamp` becomes a signed timestamp. With no
//! inclusion proof the bundle is v0.1. The Rekor body is cross-checked against the layer here,
//! so a tampered annotation is refused with its own reason before any cryptography runs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ANNOTATION_COSIGN_BUNDLE, ANNOTATION_COSIGN_CERTIFICATE, ANNOTATION_COSIGN_SIGNATURE,
    ANNOTATION_COSIGN_TIMESTAMP, LegacyKind,
};
use crate::evidence::sign::bundle::{BundleError, MessageDigest, TlogEntry};
use crate::evidence::sign::dsse::{DsseError, Envelope};
use crate::evidence::sign::{Bundle, Content, Material};
use crate::foundation::digest::Digest;

/// Largest annotation value read (a certificate is about 3 KiB, a Rekor bundle about 8 KiB).
pub const MAX_ANNOTATION_SIZE: usize = 256 * 1024;

/// Why a legacy layer cannot be made into a bundle: each tampering has its own reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    #[error("annotation {annotation} is {size} bytes; the limit is {MAX_ANNOTATION_SIZE}")]
    AnnotationTooLarge {
        annotation: &'static str,
        size: usize,
    },
    #[error(
        "the .sig layer has no base64 signature in {ANNOTATION_COSIGN_SIGNATURE}: found {found:?}"
    )]
    Signature { found: String },
    #[error("{ANNOTATION_COSIGN_CERTIFICATE} is not one pem certificate: {reason}")]
    Certificate { reason: String },
    #[error("{ANNOTATION_COSIGN_BUNDLE} is not a rekor bundle: {reason}")]
    RekorBundle { reason: String },
    #[error("rekor entry body is not a {expected}: {reason}")]
    RekorBody {
        expected: &'static str,
        reason: String,
    },
    #[error("rekor entry {field}: expected {expected}, found {found}")]
    RekorMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{ANNOTATION_COSIGN_TIMESTAMP} is not an rfc 3161 timestamp: {reason}")]
    Timestamp { reason: String },
    #[error(
        "a certificate-signed layer without a rekor bundle or rfc 3161 timestamp annotation: nothing proves when it was signed"
    )]
    NoSigningTime,
    #[error("the .att layer is not a dsse envelope")]
    Envelope(#[source] DsseError),
    #[error("the layer makes no valid bundle")]
    Bundle(#[source] BundleError),
}

/// A legacy layer as a bundle.
#[derive(Clone, Debug)]
pub struct LegacyBundle {
    pub bundle: Bundle,
    /// Signed with a certificate (keyless): verify it against identities only.
    pub keyless: bool,
}

/// Converts one `.sig` (simple-signing payload) or `.att` (DSSE envelope) layer and its
/// annotations into a bundle. A certificate annotation is always verification material, never
/// a bare key.
pub fn to_bundle(
    kind: LegacyKind,
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<LegacyBundle, LegacyError> {
    let get = |key: &'static str| -> Result<Option<&str>, LegacyError> {
        match annotations.get(key).map(|v| v.trim()) {
            Some(v) if v.len() > MAX_ANNOTATION_SIZE => Err(LegacyError::AnnotationTooLarge {
                annotation: key,
                size: v.len(),
            }),
            Some("") | None => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    };
    let content = match kind {
        LegacyKind::Signature => {
            let sig = get(ANNOTATION_COSIGN_SIGNATURE)?.unwrap_or_default();
            let signature = match STANDARD.decode(sig) {
                Ok(s) if !s.is_empty() => s,
                _ => {
                    return Err(LegacyError::Signature {
                        found: sig.chars().take(40).collect(),
                    });
                }
            };
            Content::MessageSignature {
                digest: Some(MessageDigest {
                    algorithm: "SHA2_256".into(),
                    digest: Digest::of(payload).raw().to_vec(),
                }),
                signature,
            }
        }
        LegacyKind::Attestation => {
            let mut env = Envelope::from_json(payload).map_err(LegacyError::Envelope)?;
            env.signatures.truncate(1);
            Content::Dsse(env)
        }
    };
    let certificate = get(ANNOTATION_COSIGN_CERTIFICATE)?
        .map(certificate_der)
        .transpose()?;
    let tlog = get(ANNOTATION_COSIGN_BUNDLE)?
        .map(|a| tlog_entry(a, kind, payload, &content, certificate.as_deref()))
        .transpose()?;
    let timestamps: Vec<Vec<u8>> = get(ANNOTATION_COSIGN_TIMESTAMP)?
        .map(timestamp)
        .transpose()?
        .into_iter()
        .collect();
    let keyless = certificate.is_some();
    if keyless && tlog.is_none() && timestamps.is_empty() {
        return Err(LegacyError::NoSigningTime);
    }
    let material = match certificate {
        // Only the leaf: intermediates and the root come from the trusted root, as in v0.3.
        Some(der) => Material::Certificate(der),
        None => Material::PublicKey { hint: None },
    };
    let tlog_entries: Vec<TlogEntry> = tlog.into_iter().collect();
    let bundle = if tlog_entries.is_empty() {
        Bundle::v0_3(material, content, tlog_entries, timestamps)
    } else {
        Bundle::v0_1(material, content, tlog_entries, timestamps)
    }
    .map_err(LegacyError::Bundle)?;
    Ok(LegacyBundle { bundle, keyless })
}

pub(crate) fn certificate_der(pem: &str) -> Result<Vec<u8>, LegacyError> {
    let bad = |reason: String| LegacyError::Certificate { reason };
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).map_err(|e| bad(format!("{e}")))?;
    if label != "CERTIFICATE" {
        return Err(bad(format!("the pem label is {label:?}")));
    }
    {
        use x509_cert::der::Decode as _;
        x509_cert::Certificate::from_der(&der).map_err(|e| bad(format!("not x.509: {e}")))?;
    }
    Ok(der)
}

/// cosign's `pkg/cosign/bundle.RekorBundle`, the `dev.sigstore.cosign/bundle` annotation: read
/// here, written by signing (Go field order; `logID` is hex, `body` base64).
#[derive(Deserialize, Serialize)]
pub(super) struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    pub payload: RekorPayload,
}

#[derive(Deserialize, Serialize)]
pub(super) struct RekorPayload {
    /// A base64 string in every bundle cosign writes; read as any JSON value to say what else
    /// came.
    pub body: Value,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    #[serde(rename = "logID")]
    pub log_id: String,
}

fn tlog_entry(
    annotation: &str,
    kind: LegacyKind,
    payload: &[u8],
    content: &Content,
    certificate: Option<&[u8]>,
) -> Result<TlogEntry, LegacyError> {
    let bad = |reason: String| LegacyError::RekorBundle { reason };
    let rb: RekorBundle = serde_json::from_str(annotation).map_err(|e| bad(e.to_string()))?;
    let Value::String(body) = rb.payload.body else {
        return Err(bad("Payload.body is not a string".into()));
    };
    let body = STANDARD
        .decode(body)
        .map_err(|e| bad(format!("Payload.body is not base64: {e}")))?;
    let set = STANDARD
        .decode(&rb.signed_entry_timestamp)
        .map_err(|e| bad(format!("SignedEntryTimestamp is not base64: {e}")))?;
    if set.is_empty() {
        return Err(bad("SignedEntryTimestamp is empty".into()));
    }
    let log_id = hex::decode(&rb.payload.log_id)
        .ok()
        .filter(|id| id.len() == 32)
        .ok_or_else(|| bad(format!("logID {:?} is not a hex sha256", rb.payload.log_id)))?;
    if rb.payload.integrated_time < 0 || rb.payload.log_index < 0 {
        return Err(bad(
            "integratedTime and logIndex must not be negative".into()
        ));
    }
    let (entry_kind, version) = check_body(&body, kind, payload, content, certificate)?;
    Ok(TlogEntry {
        log_index: rb.payload.log_index,
        log_id,
        kind: entry_kind,
        kind_version: version,
        integrated_time: rb.payload.integrated_time,
        inclusion_promise: Some(set),
        inclusion_proof: None,
        canonicalized_body: body,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of(bytes).hex().to_owned()
}

/// The Rekor body must describe this very layer: the same signature, the same signer, the hash
/// of the same payload. Returns its kind and version.
fn check_body(
    body: &[u8],
    kind: LegacyKind,
    payload: &[u8],
    content: &Content,
    certificate: Option<&[u8]>,
) -> Result<(String, String), LegacyError> {
    let not = |expected: &'static str, reason: String| LegacyError::RekorBody { expected, reason };
    let v: Value = serde_json::from_slice(body).map_err(|e| not("json document", e.to_string()))?;
    let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str);
    let entry_kind = s("/kind").unwrap_or_default().to_owned();
    let version = s("/apiVersion").unwrap_or_default().to_owned();
    let mismatch =
        |field: &'static str, expected: String, found: Option<&str>| LegacyError::RekorMismatch {
            field,
            expected,
            found: found.unwrap_or("nothing").chars().take(120).collect(),
        };
    let (sig, verifier) = match (kind, entry_kind.as_str(), version.as_str()) {
        (LegacyKind::Signature, "hashedrekord", "0.0.1") => {
            let want = sha256_hex(payload);
            let found = s("/spec/data/hash/value");
            if s("/spec/data/hash/algorithm") != Some("sha256") || found != Some(want.as_str()) {
                return Err(mismatch("spec.data.hash", format!("sha256 {want}"), found));
            }
            (
                s("/spec/signature/content"),
                s("/spec/signature/publicKey/content"),
            )
        }
        (LegacyKind::Attestation, "dsse", "0.0.1") => {
            let Content::Dsse(env) = content else {
                unreachable!(".att content is a dsse envelope")
            };
            // cosign submits the layer bytes, so the entry hashes exactly them.
            let want = sha256_hex(payload);
            let found = s("/spec/envelopeHash/value");
            if found != Some(want.as_str()) {
                return Err(mismatch(
                    "spec.envelopeHash",
                    format!("sha256 {want}"),
                    found,
                ));
            }
            let want = sha256_hex(&env.payload);
            let found = s("/spec/payloadHash/value");
            if found != Some(want.as_str()) {
                return Err(mismatch(
                    "spec.payloadHash",
                    format!("sha256 {want}"),
                    found,
                ));
            }
            (
                s("/spec/signatures/0/signature"),
                s("/spec/signatures/0/verifier"),
            )
        }
        (LegacyKind::Signature, ..) => {
            return Err(not(
                "hashedrekord 0.0.1 entry",
                format!("kind {entry_kind:?} version {version:?}"),
            ));
        }
        (LegacyKind::Attestation, ..) => {
            return Err(not(
                "dsse 0.0.1 entry",
                format!("kind {entry_kind:?} version {version:?}"),
            ));
        }
    };
    let signature = match content {
        Content::MessageSignature { signature, .. } => signature.as_slice(),
        Content::Dsse(env) => env.signatures[0].sig.as_slice(),
    };
    if sig.and_then(|b| STANDARD.decode(b).ok()).as_deref() != Some(signature) {
        return Err(mismatch(
            "signature",
            format!("the layer's {}", STANDARD.encode(signature)),
            sig,
        ));
    }
    if let Some(der) = certificate {
        // The verifier is base64 of a PEM certificate: it must be the annotation's certificate.
        let found = verifier
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|pem| pem_rfc7468::decode_vec(&pem).ok().map(|(_, d)| d));
        if found.as_deref() != Some(der) {
            return Err(mismatch(
                "signer certificate",
                format!("the {ANNOTATION_COSIGN_CERTIFICATE} annotation"),
                Some(if found.is_some() {
                    "another certificate or key"
                } else {
                    "no pem certificate"
                }),
            ));
        }
    }
    Ok((entry_kind, version))
}

fn timestamp(annotation: &str) -> Result<Vec<u8>, LegacyError> {
    #[derive(Deserialize)]
    struct Tsa {
        #[serde(rename = "SignedRFC3161Timestamp")]
        signed: String,
    }
    let bad = |reason: String| LegacyError::Timestamp { reason };
    let t: Tsa = serde_json::from_str(annotation).map_err(|e| bad(e.to_string()))?;
    let der = STANDARD
        .decode(t.signed)
        .map_err(|e| bad(format!("SignedRFC3161Timestamp is not base64: {e}")))?;
    if der.is_empty() {
        return Err(bad("SignedRFC3161Timestamp is empty".into()));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn malformed_annotations_are_refused_without_panicking() {
        let sig = STANDARD.encode(b"sig");
        type Row<'a> = (LegacyKind, &'a [u8], BTreeMap<String, String>, &'a str);
        let rows: Vec<Row> = vec![
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[]),
                "no base64 signature",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[(ANNOTATION_COSIGN_SIGNATURE, "%%%")]),
                "no base64 signature",
            ),
            (
                LegacyKind::Attestation,
                b"{",
                annotations(&[]),
                "not a dsse envelope",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (ANNOTATION_COSIGN_BUNDLE, "["),
                ]),
                "not a rekor bundle",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (
                        ANNOTATION_COSIGN_BUNDLE,
                        r#"{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":-1,"logIndex":0,"logID":"00"}}"#,
                    ),
                ]),
                "not a hex sha256",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (
                        ANNOTATION_COSIGN_BUNDLE,
                        &format!(
                            r#"{{"SignedEntryTimestamp":"AA==","Payload":{{"body":"e30=","integratedTime":1,"logIndex":0,"logID":"{}"}}}}"#,
                            "00".repeat(32)
                        ),
                    ),
                ]),
                "not a hashedrekord 0.0.1 entry",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (ANNOTATION_COSIGN_CERTIFICATE, "not pem"),
                ]),
                "not one pem certificate",
            ),
            (
                LegacyKind::Signature,
                b"p",
                annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (
                        ANNOTATION_COSIGN_TIMESTAMP,
                        r#"{"SignedRFC3161Timestamp":""}"#,
                    ),
                ]),
                "is empty",
            ),
        ];
        for (kind, payload, a, want) in rows {
            let err = to_bundle(kind, payload, &a).unwrap_err().to_string();
            assert!(err.contains(want), "{err} does not say {want}");
        }
        let huge = "A".repeat(MAX_ANNOTATION_SIZE + 1);
        assert_eq!(
            to_bundle(
                LegacyKind::Signature,
                b"p",
                &annotations(&[
                    (ANNOTATION_COSIGN_SIGNATURE, &sig),
                    (ANNOTATION_COSIGN_BUNDLE, &huge)
                ])
            )
            .unwrap_err(),
            LegacyError::AnnotationTooLarge {
                annotation: ANNOTATION_COSIGN_BUNDLE,
                size: MAX_ANNOTATION_SIZE + 1
            }
        );
        // Every prefix of a plausible annotation is refused or read, never a panic.
        let full = format!(
            r#"{{"SignedEntryTimestamp":"AA==","Payload":{{"body":"e30=","integratedTime":1,"logIndex":0,"logID":"{}"}}}}"#,
            "00".repeat(32)
        );
        for end in 0..full.len() {
            let a = annotations(&[
                (ANNOTATION_COSIGN_SIGNATURE, &sig),
                (ANNOTATION_COSIGN_BUNDLE, &full[..end]),
            ]);
            let _ = to_bundle(LegacyKind::Signature, b"p", &a);
        }
    }

    #[test]
    fn a_key_signed_layer_without_annotations_stays_a_key_bundle() {
        let sig = STANDARD.encode(b"sig");
        let b = to_bundle(
            LegacyKind::Signature,
            b"payload",
            &annotations(&[(ANNOTATION_COSIGN_SIGNATURE, &sig)]),
        )
        .unwrap();
        assert!(!b.keyless);
        assert_eq!(b.bundle.material(), &Material::PublicKey { hint: None });
        assert!(b.bundle.tlog_entries().is_empty());
    }
}
