//! Bundle verification against a key or a certificate identity and a Sigstore trusted root.
//!
//! custody checks the bundle's structure itself ([`Bundle::from_json`]) and hands the
//! cryptographic chain to `sigstore-verify` (sigstore/sigstore-rust), which passed every case of
//! the Sigstore conformance sample: Fulcio chain to the root's CA at signing time with code-signing
//! EKU, SAN + OIDC issuer extensions, embedded SCTs, Rekor v1/v2 inclusion proofs, signed
//! checkpoints, signed entry timestamps, entry-body consistency and RFC 3161 timestamps.
//! The outcome comes back as custody's own types.

use std::path::Path;
use std::sync::Arc;

use super::bundle::{Bundle, Material};
use super::keys::PublicKey;
use crate::foundation::digest::Digest;

/// `mediaType` values of trusted roots this verifier reads.
pub const TRUSTED_ROOT_MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
];
const EMPTY_TRUSTED_ROOT: &str = r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}"#;
/// Largest trusted root accepted (the public-good one is about 10 KiB).
pub const MAX_TRUSTED_ROOT_SIZE: usize = 4 * 1024 * 1024;

/// What was signed, as the verifier receives it.
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    /// The artifact's bytes (a blob, or the subject of an in-toto statement).
    Bytes(&'a [u8]),
    /// Only the artifact's SHA-256 digest.
    Digest(&'a Digest),
    /// A file, streamed.
    File(&'a Path),
}

/// Who must have signed.
#[derive(Clone, Debug)]
pub enum Policy {
    Key(KeyPolicy),
    Identity(IdentityPolicy),
}

/// Signed by this key.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub key: PublicKey,
    pub tlog: TlogRequirement,
}

/// Whether a key-signed bundle must carry a verified transparency-log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlogRequirement {
    /// At least one tlog entry must verify against the trusted root's logs.
    Required,
    /// Tlog entries are not checked (cosign `--insecure-ignore-tlog`, private keys offline).
    Skip,
}

/// Signed by a Fulcio certificate for this identity and OIDC issuer.
#[derive(Clone, Debug)]
pub struct IdentityPolicy {
    pub subject: SubjectMatcher,
    /// The OIDC issuer, matched exactly.
    pub issuer: String,
}

/// How the certificate's SAN must match.
#[derive(Clone, Debug)]
pub enum SubjectMatcher {
    Exact(String),
    /// Unanchored, like cosign's `--certificate-identity-regexp`; anchor it with `^…$`.
    Regex(regex::Regex),
}

impl std::fmt::Display for SubjectMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectMatcher::Exact(s) => write!(f, "{s:?}"),
            SubjectMatcher::Regex(r) => write!(f, "match of /{}/", r.as_str()),
        }
    }
}

/// A Sigstore trusted root (`trusted_root.json`): CAs, transparency logs, CT logs and TSAs with
/// their validity windows.
#[derive(Clone)]
pub struct TrustedRoot {
    media_type: String,
    /// Keys and certificates prepared once, reused by every verification.
    verifier: Arc<sigstore_verify::Verifier>,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("media_type", &self.media_type)
            .finish_non_exhaustive()
    }
}

/// Why a trusted root was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    #[error("trusted root is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("trusted root is not utf-8 json")]
    NotUtf8,
    #[error("unsupported trusted root media type {found:?}, expected one of {expected:?}")]
    MediaType {
        found: String,
        expected: &'static [&'static str],
    },
    #[error("malformed trusted root: {reason}")]
    Malformed { reason: String },
}

impl TrustedRoot {
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, TrustRootError> {
        if bytes.len() > MAX_TRUSTED_ROOT_SIZE {
            return Err(TrustRootError::TooLarge {
                size: bytes.len(),
                max: MAX_TRUSTED_ROOT_SIZE,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| TrustRootError::NotUtf8)?;
        let inner = sigstore_trust_root::TrustedRoot::from_json(text).map_err(|e| {
            TrustRootError::Malformed {
                reason: e.to_string(),
            }
        })?;
        if !TRUSTED_ROOT_MEDIA_TYPES.contains(&inner.media_type.as_str()) {
            return Err(TrustRootError::MediaType {
                found: inner.media_type,
                expected: TRUSTED_ROOT_MEDIA_TYPES,
            });
        }
        // Unusable keys or validity windows are reported here, as a trusted-root problem.
        let verifier =
            sigstore_verify::Verifier::new(&inner).map_err(|e| TrustRootError::Malformed {
                reason: e.to_string(),
            })?;
        Ok(TrustedRoot {
            media_type: inner.media_type,
            verifier: Arc::new(verifier),
        })
    }

    /// A root that trusts no CA, log or TSA: enough for key-signed bundles without tlog checks.
    pub fn empty() -> TrustedRoot {
        TrustedRoot::from_json(EMPTY_TRUSTED_ROOT.as_bytes())
            .expect("the empty trusted root is valid")
    }

    pub fn media_type(&self) -> &str {
        &self.media_type
    }
}

/// Who signed, as established by verification.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum VerifiedSigner {
    Key {
        algorithm: &'static str,
        /// base64(sha256(SPKI DER)) of the key that verified.
        hint: String,
    },
    Certificate {
        /// The certificate's SAN (URI or email).
        identity: String,
        /// The OIDC issuer extension.
        issuer: String,
    },
}

/// Which checks ran and passed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    pub signature: bool,
    pub artifact_binding: bool,
    pub certificate_chain: bool,
    pub sct: bool,
    pub tlog: bool,
    pub identity: bool,
    /// Number of verified signing times (tlog integrated time and RFC 3161 timestamps).
    pub verified_times: usize,
}

/// A bundle that verified. Serialises (camelCase, without the statement) for `--output json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedBundle {
    pub signer: VerifiedSigner,
    /// Rekor v1 integrated time (Unix seconds), when a log entry verified.
    pub integrated_time: Option<i64>,
    /// All authenticated signing times (Unix seconds).
    pub signing_times: Vec<i64>,
    pub checks: Checks,
    /// The DSSE payload (the in-toto statement) for DSSE bundles.
    #[serde(skip)]
    pub statement: Option<Vec<u8>>,
}

/// Why verification refused the bundle, with what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "bundle carries a trusted root ca certificate (certificate {index} of its chain); bundles must not include the root"
    )]
    RootInBundle { index: usize },
    #[error("policy expects a {expected} but the bundle carries a {found}")]
    MaterialMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("certificate identity: expected {expected}, found {found:?}")]
    IdentityMismatch {
        expected: String,
        found: Option<String>,
    },
    #[error("certificate oidc issuer: expected {expected:?}, found {found:?}")]
    IssuerMismatch {
        expected: String,
        found: Option<String>,
    },
    #[error("signature does not verify: {detail}")]
    Signature { detail: String },
    #[error("bundle does not describe the artifact: {detail}")]
    ArtifactMismatch { detail: String },
    #[error("artifact cannot be used: {detail}")]
    Artifact { detail: String },
    #[error("signing certificate refused: {detail}")]
    Certificate { detail: String },
    #[error("transparency log evidence refused: {detail}")]
    TransparencyLog { detail: String },
    #[error("timestamp refused: {detail}")]
    Timestamp { detail: String },
    #[error("bundle refused: {detail}")]
    Bundle { detail: String },
    #[error("trusted root cannot be used: {detail}")]
    TrustedRoot { detail: String },
    #[error("statement predicate type is {found:?}, expected {expected:?}")]
    PredicateType { expected: String, found: String },
    #[error("statement of type {predicate_type:?} carries a failing verdict: {said}")]
    Verdict {
        predicate_type: String,
        said: String,
    },
    #[error("could not read the artifact")]
    Read(#[source] std::io::Error),
}

fn material_name(m: &Material) -> &'static str {
    match m {
        Material::PublicKey { .. } => "public key",
        Material::Certificate(_) | Material::CertificateChain(_) => "certificate",
    }
}

fn map_error(e: sigstore_verify::Error) -> VerifyError {
    use sigstore_verify::Error as E;
    let detail = e.to_string();
    match e {
        E::IdentityMismatch { expected, actual } => VerifyError::IdentityMismatch {
            expected: format!("{:?}", expected.to_string()),
            found: actual.map(|a| a.as_str().to_string()),
        },
        E::IssuerMismatch { expected, actual } => VerifyError::IssuerMismatch {
            expected,
            found: actual,
        },
        E::SignatureInvalid(_) => VerifyError::Signature { detail },
        E::ArtifactMismatch(_) => VerifyError::ArtifactMismatch { detail },
        E::UnsupportedArtifact(_) => VerifyError::Artifact { detail },
        E::Certificate(_) | E::TrustedCertificate(_) => VerifyError::Certificate { detail },
        E::TransparencyLog(_) => VerifyError::TransparencyLog { detail },
        E::Timestamp(_) => VerifyError::Timestamp { detail },
        E::InvalidTrustRoot(_) | E::TrustRoot(_) => VerifyError::TrustedRoot { detail },
        E::ArtifactRead(io) => VerifyError::Read(io),
        _ => VerifyError::Bundle { detail },
    }
}

/// Verifies `bundle` over `artifact` for `policy` against `root`.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &Policy,
    root: &TrustedRoot,
) -> Result<VerifiedBundle, VerifyError> {
    match (policy, bundle.material()) {
        (Policy::Key(_), Material::Certificate(_) | Material::CertificateChain(_)) => {
            return Err(VerifyError::MaterialMismatch {
                expected: "public key",
                found: "certificate",
            });
        }
        (Policy::Identity(_), Material::CertificateChain(_))
            if bundle.version() >= super::bundle::BundleVersion::V0_3 =>
        {
            return Err(VerifyError::Bundle {
                detail: super::BundleError::ChainForbidden.to_string(),
            });
        }
        (Policy::Identity(_), Material::PublicKey { .. }) => {
            return Err(VerifyError::MaterialMismatch {
                expected: "certificate",
                found: material_name(bundle.material()),
            });
        }
        _ => {}
    }
    // Only the trusted root may supply the root CA; a bundle that carries one is refused
    // (sigstore conformance `bundle-with-root-cert`).
    if let Some(index) = self_issued_certificate(bundle.material()) {
        return Err(VerifyError::RootInBundle { index });
    }
    if let Policy::Key(kp) = policy
        && kp.tlog == TlogRequirement::Skip
    {
        return verify_key_offline(bundle, artifact, kp);
    }
    let json = String::from_utf8(bundle.to_json()).expect("bundle json is utf-8");
    let theirs = sigstore_types::Bundle::from_json(&json).map_err(|e| VerifyError::Bundle {
        detail: e.to_string(),
    })?;
    let verifier = &root.verifier;

    let (result, signer, identity_checked) = match policy {
        Policy::Key(kp) => {
            let der = sigstore_types::DerPublicKey::new(kp.key.to_spki_der());
            // TlogRequirement::Skip returned above: here the log evidence is required.
            let p = sigstore_verify::PublicKeyVerificationPolicy::new(der);
            let result = call(verifier, artifact, &theirs, &p).map_err(map_error)?;
            let signer = VerifiedSigner::Key {
                algorithm: kp.key.algorithm(),
                hint: kp.key.hint(),
            };
            (result, signer, false)
        }
        Policy::Identity(ip) => {
            let p = match &ip.subject {
                SubjectMatcher::Exact(s) => {
                    sigstore_verify::VerificationPolicy::new(s.as_str(), ip.issuer.as_str())
                }
                SubjectMatcher::Regex(_) => sigstore_verify::VerificationPolicy::any_identity()
                    .require_issuer(ip.issuer.as_str()),
            };
            let result = call(verifier, artifact, &theirs, &p).map_err(map_error)?;
            let identity = result.identity().map(|s| s.as_str().to_string());
            if let SubjectMatcher::Regex(re) = &ip.subject
                && !identity.as_deref().is_some_and(|id| re.is_match(id))
            {
                return Err(VerifyError::IdentityMismatch {
                    expected: ip.subject.to_string(),
                    found: identity,
                });
            }
            let signer = VerifiedSigner::Certificate {
                identity: identity.unwrap_or_default(),
                issuer: result.issuer().unwrap_or_default().to_string(),
            };
            (result, signer, true)
        }
    };

    let integrated_time = result.integrated_time().map(|t| t.as_second());
    let signing_times: Vec<i64> = result
        .verified_timestamps()
        .iter()
        .map(|t| t.as_second())
        .collect();
    Ok(VerifiedBundle {
        signer,
        integrated_time,
        checks: Checks {
            signature: true,
            artifact_binding: true,
            certificate_chain: result.certificate_verified(),
            sct: result.sct_verified(),
            tlog: result.tlog_verified(),
            identity: identity_checked && result.identity_policy_checked(),
            verified_times: signing_times.len(),
        },
        signing_times,
        statement: match bundle.content() {
            super::Content::Dsse(env) => Some(env.payload.clone()),
            super::Content::MessageSignature { .. } => None,
        },
    })
}

/// Index of the first self-issued (root) certificate in the bundle's material. Certificates that
/// do not parse are left for the chain verification to refuse.
fn self_issued_certificate(material: &Material) -> Option<usize> {
    use x509_cert::der::Decode as _;
    let certs: &[Vec<u8>] = match material {
        Material::PublicKey { .. } => return None,
        Material::Certificate(der) => std::slice::from_ref(der),
        Material::CertificateChain(chain) => chain,
    };
    certs.iter().position(|der| {
        x509_cert::Certificate::from_der(der)
            .is_ok_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
    })
}

/// Key-mode verification without any log or timestamp (cosign `--insecure-ignore-tlog`): the
/// signature over the content and the content's binding to the artifact.
pub(crate) fn verify_key_offline(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    kp: &KeyPolicy,
) -> Result<VerifiedBundle, VerifyError> {
    let sig_err = |e: super::keys::BadSignature| VerifyError::Signature {
        detail: e.to_string(),
    };
    let artifact_digest = || -> Result<Digest, VerifyError> {
        Ok(match artifact {
            Artifact::Bytes(b) => Digest::of(b),
            Artifact::Digest(d) => d.clone(),
            Artifact::File(path) => {
                crate::foundation::digest::of_file(path)
                    .map_err(VerifyError::Read)?
                    .0
            }
        })
    };
    let statement = match bundle.content() {
        super::Content::Dsse(env) => {
            let sig = &env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle {
                    detail: "dsse envelope has no signature".into(),
                })?
                .sig;
            kp.key.verify(&env.pae(), sig).map_err(sig_err)?;
            if env.payload_type != super::dsse::IN_TOTO_PAYLOAD_TYPE {
                return Err(VerifyError::ArtifactMismatch {
                    detail: format!(
                        "payload type is {:?}, expected {:?}",
                        env.payload_type,
                        super::dsse::IN_TOTO_PAYLOAD_TYPE
                    ),
                });
            }
            let want = artifact_digest()?;
            let subjects = statement_sha256_subjects(&env.payload)?;
            if !subjects.iter().any(|s| s.eq_ignore_ascii_case(want.hex())) {
                return Err(VerifyError::ArtifactMismatch {
                    detail: format!(
                        "no statement subject has sha256 {}; found {:?}",
                        want.hex(),
                        subjects
                    ),
                });
            }
            Some(env.payload.clone())
        }
        super::Content::MessageSignature { digest, signature } => {
            let want = artifact_digest()?;
            if let Some(d) = digest
                && (d.algorithm != "SHA2_256" || d.digest != want.raw())
            {
                return Err(VerifyError::ArtifactMismatch {
                    detail: format!(
                        "message digest is {} {}, artifact is sha256 {}",
                        d.algorithm,
                        hex::encode(&d.digest),
                        want.hex()
                    ),
                });
            }
            match (&kp.key, artifact) {
                (PublicKey::Ed25519(_), Artifact::Bytes(b)) => {
                    kp.key.verify(b, signature).map_err(sig_err)?
                }
                (PublicKey::Ed25519(_), Artifact::File(path)) => {
                    let bytes = std::fs::read(path).map_err(VerifyError::Read)?;
                    kp.key.verify(&bytes, signature).map_err(sig_err)?
                }
                (PublicKey::Ed25519(_), Artifact::Digest(_)) => {
                    return Err(VerifyError::Artifact {
                        detail:
                            "an ed25519 message signature needs the artifact bytes, not its digest"
                                .into(),
                    });
                }
                (PublicKey::EcdsaP256(_), _) => kp
                    .key
                    .verify_sha256_prehash(&want.raw(), signature)
                    .map_err(sig_err)?,
            }
            None
        }
    };
    Ok(VerifiedBundle {
        signer: VerifiedSigner::Key {
            algorithm: kp.key.algorithm(),
            hint: kp.key.hint(),
        },
        integrated_time: None,
        signing_times: Vec::new(),
        checks: Checks {
            signature: true,
            artifact_binding: true,
            ..Checks::default()
        },
        statement,
    })
}

/// The `sha256` digests of an in-toto statement's subjects.
pub(crate) fn statement_sha256_subjects(payload: &[u8]) -> Result<Vec<String>, VerifyError> {
    #[derive(serde::Deserialize)]
    struct Statement {
        #[serde(default)]
        subject: Vec<Subject>,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        #[serde(default)]
        digest: std::collections::BTreeMap<String, String>,
    }
    let st: Statement =
        serde_json::from_slice(payload).map_err(|e| VerifyError::ArtifactMismatch {
            detail: format!("dsse payload is not an in-toto statement: {e}"),
        })?;
    Ok(st
        .subject
        .into_iter()
        .filter_map(|mut s| s.digest.remove("sha256"))
        .collect())
}

fn call(
    verifier: &sigstore_verify::Verifier,
    artifact: Artifact<'_>,
    bundle: &sigstore_types::Bundle,
    policy: &(impl sigstore_verify::Policy + ?Sized),
) -> sigstore_verify::Result<sigstore_verify::VerificationResult> {
    match artifact {
        Artifact::Bytes(bytes) => verifier.verify(bytes, bundle, policy),
        Artifact::Digest(d) => {
            let hash = sigstore_types::Sha256Hash::try_from(&d.raw()[..])
                .map_err(sigstore_verify::Error::Types)?;
            verifier.verify(hash, bundle, policy)
        }
        Artifact::File(path) => {
            let file = std::fs::File::open(path).map_err(sigstore_verify::Error::ArtifactRead)?;
            verifier.verify_reader(std::io::BufReader::new(file), bundle, policy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::sign::{KeySigner, SigningKey, sign_blob, sign_statement};

    fn key_policy(signer: &KeySigner) -> Policy {
        Policy::Key(KeyPolicy {
            key: signer.public_key(),
            tlog: TlogRequirement::Skip,
        })
    }

    #[test]
    fn key_signed_blob_verifies_from_bytes_and_digest() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let bundle = sign_blob(b"artifact", &signer).unwrap();
        let root = TrustedRoot::empty();
        let ok = verify_bundle(
            &bundle,
            Artifact::Bytes(b"artifact"),
            &key_policy(&signer),
            &root,
        )
        .unwrap();
        assert!(matches!(
            ok.signer,
            VerifiedSigner::Key {
                algorithm: "ecdsa-p256",
                ..
            }
        ));
        assert!(!ok.checks.tlog);
        let d = Digest::of(b"artifact");
        verify_bundle(&bundle, Artifact::Digest(&d), &key_policy(&signer), &root).unwrap();
    }

    #[test]
    fn key_signed_blob_refuses_other_artifact_and_key() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let other = KeySigner::new(SigningKey::generate_p256().unwrap());
        let bundle = sign_blob(b"artifact", &signer).unwrap();
        let root = TrustedRoot::empty();
        let err = verify_bundle(
            &bundle,
            Artifact::Bytes(b"other"),
            &key_policy(&signer),
            &root,
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::ArtifactMismatch { .. }),
            "{err:?}"
        );
        let err = verify_bundle(
            &bundle,
            Artifact::Bytes(b"artifact"),
            &key_policy(&other),
            &root,
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::Signature { .. }), "{err:?}");
    }

    #[test]
    fn key_signed_statement_verifies_subject_digest() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let d = Digest::of(b"the artifact");
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": d.hex()}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        });
        let bundle = sign_statement(&serde_json::to_vec(&statement).unwrap(), &signer).unwrap();
        let root = TrustedRoot::empty();
        let ok = verify_bundle(&bundle, Artifact::Digest(&d), &key_policy(&signer), &root).unwrap();
        assert!(ok.statement.is_some());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["signer"]["kind"], "key");
        assert_eq!(json["checks"]["signature"], true);
        let wrong = Digest::of(b"something else");
        let err = verify_bundle(
            &bundle,
            Artifact::Digest(&wrong),
            &key_policy(&signer),
            &root,
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::ArtifactMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn key_bundle_with_identity_policy_is_a_material_mismatch() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let bundle = sign_blob(b"x", &signer).unwrap();
        let policy = Policy::Identity(IdentityPolicy {
            subject: SubjectMatcher::Exact("me".into()),
            issuer: "https://issuer".into(),
        });
        let err = verify_bundle(
            &bundle,
            Artifact::Bytes(b"x"),
            &policy,
            &TrustedRoot::empty(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            VerifyError::MaterialMismatch {
                expected: "certificate",
                found: "public key"
            }
        ));
    }

    #[test]
    fn keyless_verification_still_refuses_a_chain_in_a_v0_3_bundle() {
        // Private-PKI bundles may carry a chain (pki::verify_bundle checks it); a keyless
        // (Fulcio) bundle v0.3 never does, as before.
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap())
            .with_certificates(vec![vec![0x30, 0x00], vec![0x30, 0x00]]);
        let bundle = sign_blob(b"x", &signer).unwrap();
        let policy = Policy::Identity(IdentityPolicy {
            subject: SubjectMatcher::Exact("me".into()),
            issuer: "https://issuer".into(),
        });
        let err = verify_bundle(
            &bundle,
            Artifact::Bytes(b"x"),
            &policy,
            &TrustedRoot::empty(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, VerifyError::Bundle { detail } if detail.contains("x509CertificateChain for keyless")),
            "{err:?}"
        );
    }

    #[test]
    fn required_tlog_without_entries_is_refused() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let bundle = sign_blob(b"x", &signer).unwrap();
        let policy = Policy::Key(KeyPolicy {
            key: signer.public_key(),
            tlog: TlogRequirement::Required,
        });
        let err = verify_bundle(
            &bundle,
            Artifact::Bytes(b"x"),
            &policy,
            &TrustedRoot::empty(),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::Bundle { .. }), "{err:?}");
    }

    #[test]
    fn verification_types_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TrustedRoot>();
        send_sync::<Policy>();
        send_sync::<VerifiedBundle>();
        send_sync::<VerifyError>();
    }

    #[test]
    fn trusted_root_media_type_and_size_are_checked() {
        let err = TrustedRoot::from_json(br#"{"mediaType":"application/json","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}"#).unwrap_err();
        assert!(matches!(err, TrustRootError::MediaType { .. }), "{err:?}");
        let err = TrustedRoot::from_json(b"{").unwrap_err();
        assert!(matches!(err, TrustRootError::Malformed { .. }), "{err:?}");
        let err = TrustedRoot::from_json(&vec![b' '; MAX_TRUSTED_ROOT_SIZE + 1]).unwrap_err();
        assert!(matches!(err, TrustRootError::TooLarge { .. }), "{err:?}");
    }
}
