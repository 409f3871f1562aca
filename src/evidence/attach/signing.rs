//! Signing and attesting artifacts that live in an OCI store, the way cosign v3 does it.
//!
//! A signature is an in-toto Statement v1 about the manifest digest with predicate type
//! `https://sigstore.dev/cosign/sign/v1`, an attestation is a Statement v1 with the caller's
//! predicate; each is signed into its own Sigstore bundle v0.3 and stored as its own referrer.
//! With [`LegacyTags::Write`] the cosign v2 `.sig` / `.att` images are written as well.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::legacy::{RekorBundle, RekorPayload};
use super::{
    ANNOTATION_COSIGN_BUNDLE, ANNOTATION_COSIGN_CERTIFICATE, ANNOTATION_COSIGN_CHAIN,
    ANNOTATION_COSIGN_SIGNATURE, ANNOTATION_COSIGN_TIMESTAMP, ANNOTATION_PREDICATE_TYPE,
    BUNDLE_MEDIA_TYPE_PREFIX, BundleContent, LegacyKind, LegacyLayer, append_legacy, attach_bundle,
    simple_signing_payload_with,
};
use crate::evidence::attest::{
    DigestSet, PREDICATE_COSIGN_SIGN_V1, ResourceDescriptor, STATEMENT_V1, Statement, Timestamp,
};
use crate::evidence::sign::bundle::{MessageDigest, TlogEntry};
use crate::evidence::sign::{self, Bundle, Content, Material, SignError, Signer};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{Descriptor, MEDIA_TYPE_EMPTY, Manifest};
use crate::storage::store::{self, Store};

pub use crate::evidence::attest::STATEMENT_V01;
/// Statements and predicates larger than this are refused.
pub const MAX_STATEMENT_SIZE: usize = 16 * 1024 * 1024;

/// Whether to also write cosign's legacy `sha256-<hex>.sig` / `.att` images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LegacyTags {
    /// Referrers only: what cosign v3, oras and `gh --bundle-from-oci` read.
    #[default]
    Skip,
    /// Also append a layer to the legacy image, for cosign v2 and tools that read only tags.
    Write,
}

/// How to sign or attest.
#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    pub legacy_tags: LegacyTags,
    /// `cosign -a key=value`: the statement subject's annotations (signatures only) and the
    /// simple-signing `optional` object of a legacy `.sig`.
    pub annotations: BTreeMap<String, String>,
    /// The repository named in statements and simple-signing payloads (`registry/repo`);
    /// `None` uses the store's name.
    pub repository: Option<String>,
    /// `org.opencontainers.image.created` of the referrer; `None` is now.
    pub created: Option<Timestamp>,
}

/// What to attest.
#[derive(Clone, Debug)]
pub enum AttestInput {
    /// A predicate: custody writes the Statement v1 around it, its subject the artifact.
    Predicate {
        predicate_type: String,
        predicate: Value,
    },
    /// A complete in-toto statement (JSON bytes), signed as given after checking that one of
    /// its subjects is the artifact.
    Statement(Vec<u8>),
}

/// A legacy cosign image a layer was appended to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegacyWritten {
    pub kind: LegacyKind,
    pub tag: String,
    pub manifest: Digest,
}

/// Whether the referrer was written now or was already there with the same bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrerOutcome {
    Created,
    AlreadyPresent,
}

/// A signature or attestation stored next to its artifact.
#[derive(Clone, Debug)]
pub struct SignedAttachment {
    /// The artifact signed: always a digest, with its real media type and size.
    pub subject: Descriptor,
    pub predicate_type: String,
    /// The statement bytes inside the DSSE envelope.
    pub statement: Vec<u8>,
    pub bundle: Bundle,
    /// The referrer manifest holding the bundle.
    pub referrer: Descriptor,
    pub outcome: ReferrerOutcome,
    pub legacy: Vec<LegacyWritten>,
}

/// Why signing or attesting an artifact failed.
#[derive(Debug, thiserror::Error)]
pub enum SignArtifactError {
    #[error("{digest} is a {media_type}, not a manifest or index; sign the manifest instead")]
    NotAManifest { digest: Digest, media_type: String },
    #[error(
        "subject {digest} is stored as {found_media_type} ({found_size} bytes), not as the {expected_media_type} ({expected_size} bytes) given"
    )]
    SubjectMismatch {
        digest: Digest,
        expected_media_type: String,
        expected_size: u64,
        found_media_type: String,
        found_size: u64,
    },
    #[error("predicate type {found:?} is not a URI")]
    BadPredicateType { found: String },
    #[error("the statement is {size} bytes; the limit is {MAX_STATEMENT_SIZE}")]
    StatementTooLarge { size: usize },
    #[error("the statement is not JSON")]
    StatementNotJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("the statement's _type is {found:?}; expected {STATEMENT_V1} or {STATEMENT_V01}")]
    NotAStatement { found: String },
    #[error("the statement has no predicateType string")]
    NoPredicateType,
    #[error("no subject of the statement has sha256 {expected}; found {found:?}")]
    StatementSubjectMismatch {
        expected: Digest,
        found: Vec<String>,
    },
    #[error("signing failed")]
    Sign(#[from] SignError),
    #[error(transparent)]
    Attach(#[from] super::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl crate::foundation::hint::Hint for SignArtifactError {
    fn hint(&self) -> Option<String> {
        match self {
            SignArtifactError::Store(e) => e.hint(),
            SignArtifactError::Attach(e) => e.hint(),
            _ => None,
        }
    }

    fn is_refusal(&self) -> bool {
        match self {
            SignArtifactError::Store(e) => e.is_refusal(),
            SignArtifactError::Attach(e) => e.is_refusal(),
            _ => false,
        }
    }
}

impl SignArtifactError {
    /// The store error underneath, if a store failed (to tell a lying store from bad input).
    pub fn store_error(&self) -> Option<&store::Error> {
        match self {
            SignArtifactError::Store(e)
            | SignArtifactError::Attach(super::Error::Store(e))
            | SignArtifactError::Attach(super::Error::Transfer(
                crate::storage::transfer::Error::Store(e),
            )) => Some(e),
            _ => None,
        }
    }
}

/// Signs `subject` the way `cosign sign` v3 does and stores the bundle as a referrer.
///
/// The statement names the digest only (no `name`), so the signature does not depend on
/// where the artifact is stored and survives a copy to another registry.
pub fn sign_artifact(
    store: &dyn Store,
    subject: &Descriptor,
    signer: &dyn Signer,
    options: &AttachOptions,
) -> Result<SignedAttachment, SignArtifactError> {
    check_subject(store, subject)?;
    let annotations: Map<String, Value> = options
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let statement = Statement::new(
        vec![ResourceDescriptor {
            digest: DigestSet::sha256(&subject.digest),
            annotations,
            ..ResourceDescriptor::default()
        }],
        PREDICATE_COSIGN_SIGN_V1,
        Value::Object(Map::new()),
    );
    let statement = serde_json::to_vec(&statement).expect("statements serialise");
    let mut attachment = attach_statement(
        store,
        subject,
        statement,
        PREDICATE_COSIGN_SIGN_V1,
        signer,
        options,
    )?;
    if options.legacy_tags == LegacyTags::Write {
        let repository = repository(store, options);
        let payload =
            simple_signing_payload_with(&repository, &subject.digest, &options.annotations);
        let signature = signer.sign(&payload)?;
        let evidence = signer.evidence(&Content::MessageSignature {
            digest: Some(MessageDigest {
                algorithm: "SHA2_256".into(),
                digest: Digest::of(&payload).raw().to_vec(),
            }),
            signature: signature.clone(),
        })?;
        let mut annotations = material_annotations(&signer.verification_material());
        annotations.insert(
            ANNOTATION_COSIGN_SIGNATURE.into(),
            STANDARD.encode(&signature),
        );
        evidence_annotations(
            &mut annotations,
            &evidence.tlog_entries,
            &evidence.rfc3161_timestamps,
        );
        let layer = LegacyLayer {
            bytes: payload,
            annotations,
        };
        let manifest = append_legacy(store, &subject.digest, LegacyKind::Signature, layer)?;
        attachment.legacy.push(LegacyWritten {
            kind: LegacyKind::Signature,
            tag: LegacyKind::Signature.tag(&subject.digest).to_string(),
            manifest: manifest.digest,
        });
    }
    Ok(attachment)
}

/// Attests `subject`: signs a Statement v1 carrying `input`'s predicate (or the statement
/// given) into its own bundle and stores it as its own referrer.
pub fn attest_artifact(
    store: &dyn Store,
    subject: &Descriptor,
    input: AttestInput,
    signer: &dyn Signer,
    options: &AttachOptions,
) -> Result<SignedAttachment, SignArtifactError> {
    check_subject(store, subject)?;
    let (statement, predicate_type) = match input {
        AttestInput::Predicate {
            predicate_type,
            predicate,
        } => {
            check_predicate_type(&predicate_type)?;
            let name = repository(store, options);
            let statement = Statement::new(
                vec![ResourceDescriptor::file(name, &subject.digest)],
                &predicate_type,
                predicate,
            );
            let bytes = serde_json::to_vec(&statement).expect("statements serialise");
            if bytes.len() > MAX_STATEMENT_SIZE {
                return Err(SignArtifactError::StatementTooLarge { size: bytes.len() });
            }
            (bytes, predicate_type)
        }
        AttestInput::Statement(bytes) => {
            let predicate_type = check_statement(&bytes, &subject.digest)?;
            (bytes, predicate_type)
        }
    };
    let mut attachment =
        attach_statement(store, subject, statement, &predicate_type, signer, options)?;
    if options.legacy_tags == LegacyTags::Write {
        let Content::Dsse(envelope) = attachment.bundle.content() else {
            unreachable!("sign_statement always makes a DSSE bundle")
        };
        let mut annotations = material_annotations(attachment.bundle.material());
        annotations.insert(ANNOTATION_COSIGN_SIGNATURE.into(), String::new());
        annotations.insert(ANNOTATION_PREDICATE_TYPE.into(), predicate_type.clone());
        evidence_annotations(
            &mut annotations,
            attachment.bundle.tlog_entries(),
            attachment.bundle.rfc3161_timestamps(),
        );
        let layer = LegacyLayer {
            // The same envelope bytes a keyless signer submitted to the log.
            bytes: envelope.to_json(),
            annotations,
        };
        let manifest = append_legacy(store, &subject.digest, LegacyKind::Attestation, layer)?;
        attachment.legacy.push(LegacyWritten {
            kind: LegacyKind::Attestation,
            tag: LegacyKind::Attestation.tag(&subject.digest).to_string(),
            manifest: manifest.digest,
        });
    }
    Ok(attachment)
}

fn repository(store: &dyn Store, options: &AttachOptions) -> String {
    options.repository.clone().unwrap_or_else(|| store.name())
}

/// The subject must be a manifest the store holds, exactly as described (cosign HEADs it).
fn check_subject(store: &dyn Store, subject: &Descriptor) -> Result<(), SignArtifactError> {
    if !subject.is_manifest_like() {
        return Err(SignArtifactError::NotAManifest {
            digest: subject.digest.clone(),
            media_type: subject.media_type.clone(),
        });
    }
    let found = store.get_manifest(&subject.digest)?.descriptor;
    if found.media_type != subject.media_type || found.size != subject.size {
        return Err(SignArtifactError::SubjectMismatch {
            digest: subject.digest.clone(),
            expected_media_type: subject.media_type.clone(),
            expected_size: subject.size,
            found_media_type: found.media_type,
            found_size: found.size,
        });
    }
    Ok(())
}

/// A predicate type is an absolute URI: a scheme, a colon, no whitespace.
pub fn check_predicate_type(predicate_type: &str) -> Result<(), SignArtifactError> {
    let bad = || SignArtifactError::BadPredicateType {
        found: predicate_type.to_owned(),
    };
    let (scheme, rest) = predicate_type.split_once(':').ok_or_else(bad)?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let rest_ok = !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
    if scheme_ok && rest_ok && predicate_type.len() <= 2048 {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks a caller's statement: bounded, JSON, an in-toto statement, naming `digest`.
pub(crate) fn check_statement(bytes: &[u8], digest: &Digest) -> Result<String, SignArtifactError> {
    if bytes.len() > MAX_STATEMENT_SIZE {
        return Err(SignArtifactError::StatementTooLarge { size: bytes.len() });
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|source| SignArtifactError::StatementNotJson { source })?;
    let kind = value.get("_type").and_then(Value::as_str).unwrap_or("");
    if kind != STATEMENT_V1 && kind != STATEMENT_V01 {
        return Err(SignArtifactError::NotAStatement {
            found: kind.to_owned(),
        });
    }
    let predicate_type = value
        .get("predicateType")
        .and_then(Value::as_str)
        .ok_or(SignArtifactError::NoPredicateType)?
        .to_owned();
    check_predicate_type(&predicate_type)?;
    let found: Vec<String> = value
        .get("subject")
        .and_then(Value::as_array)
        .map(|subjects| {
            subjects
                .iter()
                .filter_map(|s| s.pointer("/digest/sha256").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !found
        .iter()
        .any(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    {
        return Err(SignArtifactError::StatementSubjectMismatch {
            expected: digest.clone(),
            found,
        });
    }
    Ok(predicate_type)
}

/// Signs `statement` into a bundle and stores it as a referrer of `subject`, unless a referrer
/// with the very same bundle is already there.
fn attach_statement(
    store: &dyn Store,
    subject: &Descriptor,
    statement: Vec<u8>,
    predicate_type: &str,
    signer: &dyn Signer,
    options: &AttachOptions,
) -> Result<SignedAttachment, SignArtifactError> {
    let bundle = sign::sign_statement(&statement, signer)?;
    let bytes = bundle.to_json();
    let (referrer, outcome) = match existing_referrer(store, &subject.digest, &bytes)? {
        Some(existing) => (existing, ReferrerOutcome::AlreadyPresent),
        None => {
            let created = options
                .created
                .clone()
                .unwrap_or_else(|| Timestamp::from_system_time(SystemTime::now()));
            let referrer = attach_bundle(
                store,
                subject,
                &bytes,
                BundleContent::DsseEnvelope,
                Some(predicate_type),
                created.as_str(),
            )?;
            (referrer, ReferrerOutcome::Created)
        }
    };
    Ok(SignedAttachment {
        subject: subject.clone(),
        predicate_type: predicate_type.to_owned(),
        statement,
        bundle,
        referrer,
        outcome,
        legacy: Vec::new(),
    })
}

/// A bundle referrer of `subject` whose single layer is exactly `bundle`. ECDSA signatures
/// are deterministic (RFC 6979), so signing the same statement with the same key twice finds
/// the first referrer instead of adding one that differs only in its creation time.
fn existing_referrer(
    store: &dyn Store,
    subject: &Digest,
    bundle: &[u8],
) -> Result<Option<Descriptor>, SignArtifactError> {
    let layer = Digest::of(bundle);
    for d in store.referrers(subject)?.descriptors {
        // Some registries (ggcr's) report the config media type as artifactType, so only a
        // descriptor that names some third type is known not to be a bundle.
        let maybe_bundle = match d.artifact_type.as_deref() {
            None | Some(MEDIA_TYPE_EMPTY) => true,
            Some(t) => t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX),
        };
        if !maybe_bundle || !d.is_manifest_like() {
            continue;
        }
        let fetched = match store.get_manifest(&d.digest) {
            Ok(f) => f,
            Err(store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Manifest::Image(m) = &fetched.manifest
            && m.subject.as_ref().map(|s| &s.digest) == Some(subject)
            && m.layers.len() == 1
            && m.layers[0].digest == layer
        {
            return Ok(Some(fetched.descriptor));
        }
    }
    Ok(None)
}

fn pem(label: &'static str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .expect("pem encoding of bytes cannot fail")
}

/// `dev.sigstore.cosign/certificate` and `…/chain` when the signer holds a certificate; cosign
/// always writes the chain key next to a certificate, empty when there is only a leaf.
fn material_annotations(material: &Material) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let (leaf, rest): (&[u8], &[Vec<u8>]) = match material {
        Material::PublicKey { .. } => return out,
        Material::Certificate(der) => (der, &[]),
        Material::CertificateChain(chain) => match chain.split_first() {
            Some((leaf, rest)) => (leaf, rest),
            None => return out,
        },
    };
    out.insert(
        ANNOTATION_COSIGN_CERTIFICATE.into(),
        pem("CERTIFICATE", leaf),
    );
    let chain: String = rest.iter().map(|c| pem("CERTIFICATE", c)).collect();
    out.insert(ANNOTATION_COSIGN_CHAIN.into(), chain);
    out
}

/// The Rekor bundle annotation (only from an entry with an inclusion promise) and the RFC 3161
/// timestamp annotation. A key signer has neither, and none is written.
fn evidence_annotations(
    out: &mut BTreeMap<String, String>,
    tlog: &[TlogEntry],
    timestamps: &[Vec<u8>],
) {
    if let Some((entry, promise)) = tlog
        .iter()
        .find_map(|e| e.inclusion_promise.as_ref().map(|p| (e, p)))
    {
        let bundle = RekorBundle {
            signed_entry_timestamp: STANDARD.encode(promise),
            payload: RekorPayload {
                body: Value::String(STANDARD.encode(&entry.canonicalized_body)),
                integrated_time: entry.integrated_time,
                log_index: entry.log_index,
                log_id: hex::encode(&entry.log_id),
            },
        };
        out.insert(
            ANNOTATION_COSIGN_BUNDLE.into(),
            serde_json::to_string(&bundle).expect("rekor bundle serialises"),
        );
    }
    if let Some(ts) = timestamps.first() {
        out.insert(
            ANNOTATION_COSIGN_TIMESTAMP.into(),
            serde_json::json!({ "SignedRFC3161Timestamp": STANDARD.encode(ts) }).to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::attach::{self, BUNDLE_MEDIA_TYPE_V03, LegacyKind};
    use crate::evidence::sign::{KeySigner, SigningKey, dsse};
    use crate::foundation::oci;
    use crate::storage::store::layout::LayoutStore;

    use crate::evidence::attach::tests::subject as image;

    fn options(legacy: LegacyTags) -> AttachOptions {
        AttachOptions {
            legacy_tags: legacy,
            repository: Some("registry.example/team/app".into()),
            created: Some(Timestamp::from_unix(0)),
            ..AttachOptions::default()
        }
    }

    fn statement_of(a: &SignedAttachment) -> Value {
        let Content::Dsse(env) = a.bundle.content() else {
            panic!("dsse")
        };
        assert_eq!(env.payload, a.statement);
        serde_json::from_slice(&env.payload).unwrap()
    }

    #[test]
    fn signature_is_cosigns_statement_without_name_and_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject = image(&store);
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let mut opts = options(LegacyTags::Write);
        opts.annotations.insert("env".into(), "prod".into());
        let first = sign_artifact(&store, &subject, &signer, &opts).unwrap();
        assert_eq!(first.outcome, ReferrerOutcome::Created);
        assert_eq!(
            statement_of(&first),
            serde_json::json!({
                "_type": STATEMENT_V1,
                "subject": [{"digest": {"sha256": subject.digest.hex()}, "annotations": {"env": "prod"}}],
                "predicateType": PREDICATE_COSIGN_SIGN_V1,
                "predicate": {},
            })
        );
        let second = sign_artifact(&store, &subject, &signer, &opts).unwrap();
        assert_eq!(second.outcome, ReferrerOutcome::AlreadyPresent);
        assert_eq!(second.referrer.digest, first.referrer.digest);

        let found = attach::discover(&store, &subject.digest).unwrap();
        assert_eq!(found.bundles.len(), 1);
        assert_eq!(found.bundles[0].media_type, BUNDLE_MEDIA_TYPE_V03);
        assert_eq!(found.legacy.len(), 1, "the same .sig layer is stored once");
        let legacy = &found.legacy[0];
        assert_eq!(legacy.kind, LegacyKind::Signature);
        assert_eq!(
            String::from_utf8(legacy.payload.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"registry.example/team/app"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":{{"env":"prod"}}}}"#,
                subject.digest
            )
        );
        let sig = STANDARD
            .decode(&legacy.annotations[ANNOTATION_COSIGN_SIGNATURE])
            .unwrap();
        signer.public_key().verify(&legacy.payload, &sig).unwrap();
        assert_eq!(
            legacy.annotations.keys().collect::<Vec<_>>(),
            vec![ANNOTATION_COSIGN_SIGNATURE],
            "key mode: no certificate, chain, rekor bundle or timestamp"
        );
    }

    #[test]
    fn attestation_names_the_repository_and_writes_an_att_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject = image(&store);
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let input = AttestInput::Predicate {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            predicate: serde_json::json!({"buildDefinition": {"buildType": "x"}}),
        };
        let a = attest_artifact(
            &store,
            &subject,
            input,
            &signer,
            &options(LegacyTags::Write),
        )
        .unwrap();
        let st = statement_of(&a);
        assert_eq!(
            st["subject"],
            serde_json::json!([{"name": "registry.example/team/app", "digest": {"sha256": subject.digest.hex()}}])
        );
        assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
        let referrer = store.get_manifest(&a.referrer.digest).unwrap();
        assert_eq!(
            referrer.manifest.annotations()[attach::ANNOTATION_BUNDLE_PREDICATE_TYPE],
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(
            referrer.manifest.annotations()[oci::ANNOTATION_CREATED],
            "1970-01-01T00:00:00Z"
        );
        let found = attach::discover(&store, &subject.digest).unwrap();
        let att = &found.legacy[0];
        assert_eq!(att.kind, LegacyKind::Attestation);
        assert_eq!(att.annotations[ANNOTATION_COSIGN_SIGNATURE], "");
        assert_eq!(
            att.annotations[ANNOTATION_PREDICATE_TYPE],
            "https://slsa.dev/provenance/v1"
        );
        let env = dsse::Envelope::from_json(&att.payload).unwrap();
        assert_eq!(env.payload, a.statement);
        assert_eq!(
            a.legacy[0].tag,
            format!("{}.att", subject.digest.fallback_tag())
        );
    }

    #[test]
    fn given_statements_must_name_the_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject = image(&store);
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let attest = |bytes: &[u8]| {
            attest_artifact(
                &store,
                &subject,
                AttestInput::Statement(bytes.to_vec()),
                &signer,
                &options(LegacyTags::Skip),
            )
        };
        let other = Digest::of(b"other");
        let wrong = serde_json::json!({"_type": STATEMENT_V1, "subject": [{"digest": {"sha256": other.hex()}}], "predicateType": "https://x.example/p", "predicate": {}});
        assert!(matches!(
            attest(&serde_json::to_vec(&wrong).unwrap()),
            Err(SignArtifactError::StatementSubjectMismatch { expected, found })
                if expected == subject.digest && found == vec![other.hex().to_owned()]
        ));
        assert!(matches!(
            attest(b"{not json"),
            Err(SignArtifactError::StatementNotJson { .. })
        ));
        assert!(matches!(
            attest(br#"{"_type":"https://example.com/other"}"#),
            Err(SignArtifactError::NotAStatement { found }) if found == "https://example.com/other"
        ));
        let right = serde_json::json!({"_type": STATEMENT_V01, "subject": [{"name": "x", "digest": {"sha256": subject.digest.hex()}}], "predicateType": "https://x.example/p", "predicate": {}});
        let a = attest(&serde_json::to_vec(&right).unwrap()).unwrap();
        assert_eq!(a.predicate_type, "https://x.example/p");
        let huge = vec![b' '; MAX_STATEMENT_SIZE + 1];
        assert!(matches!(
            attest(&huge),
            Err(SignArtifactError::StatementTooLarge { size }) if size == MAX_STATEMENT_SIZE + 1
        ));
    }

    #[test]
    fn subjects_are_manifests_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject = image(&store);
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let blob = Descriptor::of("application/octet-stream", b"x");
        assert!(matches!(
            sign_artifact(&store, &blob, &signer, &options(LegacyTags::Skip)),
            Err(SignArtifactError::NotAManifest { media_type, .. }) if media_type == "application/octet-stream"
        ));
        let mut lying = subject.clone();
        lying.size += 1;
        assert!(matches!(
            sign_artifact(&store, &lying, &signer, &options(LegacyTags::Skip)),
            Err(SignArtifactError::SubjectMismatch { found_size, .. }) if found_size == subject.size
        ));
    }

    #[test]
    fn predicate_types_must_be_uris() {
        for good in [
            "https://slsa.dev/provenance/v1",
            "urn:example:thing",
            "https://in-toto.io/Link/v1",
        ] {
            assert!(check_predicate_type(good).is_ok(), "{good}");
        }
        for bad in ["slsa", "", ":x", "1http://x", "https://a b", "https:"] {
            assert!(
                matches!(check_predicate_type(bad), Err(SignArtifactError::BadPredicateType { found }) if found == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn keyless_material_and_evidence_become_cosign_annotations() {
        let mut out = material_annotations(&Material::Certificate(vec![1, 2, 3]));
        assert_eq!(
            out[ANNOTATION_COSIGN_CERTIFICATE],
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(out[ANNOTATION_COSIGN_CHAIN], "");
        let entry = TlogEntry {
            log_index: 7,
            log_id: vec![0xab, 0xcd],
            kind: "hashedrekord".into(),
            kind_version: "0.0.1".into(),
            integrated_time: 1_700_000_000,
            inclusion_promise: Some(vec![9]),
            inclusion_proof: None,
            canonicalized_body: b"{}".to_vec(),
        };
        evidence_annotations(&mut out, &[entry], &[vec![5]]);
        assert_eq!(
            out[ANNOTATION_COSIGN_BUNDLE],
            r#"{"SignedEntryTimestamp":"CQ==","Payload":{"body":"e30=","integratedTime":1700000000,"logIndex":7,"logID":"abcd"}}"#
        );
        assert_eq!(
            out[ANNOTATION_COSIGN_TIMESTAMP],
            r#"{"SignedRFC3161Timestamp":"BQ=="}"#
        );
        assert!(material_annotations(&Material::PublicKey { hint: None }).is_empty());
    }
}
