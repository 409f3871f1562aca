//! Signing and bundle verification: cosign-compatible keys ([`keys`]), DSSE envelopes
//! ([`dsse`]), Sigstore bundles ([`bundle`]: v0.1-v0.3 read, v0.3 written), the [`Signer`] seam
//! (a key signer now, a keyless Fulcio/Rekor/TSA signer later) and [`verify`].
//!
//! Sign an in-toto statement: `sign_statement(&statement_json, &KeySigner::new(key))`.
//! Verify: `verify::verify_bundle(&bundle, Artifact::Digest(d), &policy, &trusted_root)`.

pub mod bundle;
pub mod dsse;
pub mod keys;
pub mod verify;

pub use bundle::{Bundle, BundleError, Content, Material};
pub use keys::{KeyError, Password, PublicKey, SigningKey};
pub use verify::{
    Artifact, IdentityPolicy, KeyPolicy, Policy, TrustedRoot, VerifiedBundle, VerifyError,
};

use crate::digest::Digest;

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the signer failed: {reason}")]
    Signer { reason: String },
    #[error("could not record the signature in the transparency log or timestamp it: {reason}")]
    Evidence { reason: String },
    #[error("the signer produced an invalid bundle")]
    InvalidBundle(#[from] BundleError),
}

/// Proof gathered after signing: transparency-log entries and RFC 3161 timestamps. A key signer
/// that does not upload anything returns none.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub tlog_entries: Vec<bundle::TlogEntry>,
    pub rfc3161_timestamps: Vec<Vec<u8>>,
}

/// Something that signs bytes and says how to verify it.
///
/// A keyless signer implements this by holding a Fulcio certificate for an ephemeral key
/// (`verification_material` = `Material::Certificate`) and by uploading to Rekor and asking a
/// TSA in [`Signer::evidence`].
pub trait Signer {
    /// Signs `message`. ECDSA signers return a DER signature over SHA-256(message).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
    /// What the bundle carries to identify the signer.
    fn verification_material(&self) -> Material;
    /// Logs and timestamps the finished content. The default records nothing.
    fn evidence(&self, _content: &Content) -> Result<Evidence, SignError> {
        Ok(Evidence::default())
    }
}

/// Signs with a private key held in memory; the bundle names the key by its hint.
#[derive(Debug)]
pub struct KeySigner {
    key: SigningKey,
}

impl KeySigner {
    pub fn new(key: SigningKey) -> KeySigner {
        KeySigner { key }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(message))
    }

    fn verification_material(&self) -> Material {
        Material::PublicKey {
            hint: Some(self.key.public_key().hint()),
        }
    }
}

fn finish(content: Content, signer: &dyn Signer) -> Result<Bundle, SignError> {
    let evidence = signer.evidence(&content)?;
    Ok(Bundle::v0_3(
        signer.verification_material(),
        content,
        evidence.tlog_entries,
        evidence.rfc3161_timestamps,
    )?)
}

/// Signs an in-toto statement (JSON bytes) into a v0.3 bundle holding a DSSE envelope with
/// exactly one signature over PAE(`application/vnd.in-toto+json`, statement).
pub fn sign_statement(statement: &[u8], signer: &dyn Signer) -> Result<Bundle, SignError> {
    let pae = dsse::pae(dsse::IN_TOTO_PAYLOAD_TYPE, statement);
    let sig = signer.sign(&pae)?;
    let envelope = dsse::Envelope {
        payload: statement.to_vec(),
        payload_type: dsse::IN_TOTO_PAYLOAD_TYPE.to_string(),
        signatures: vec![dsse::Signature { sig, keyid: None }],
    };
    finish(Content::Dsse(envelope), signer)
}

/// Signs a blob into a v0.3 bundle with a `messageSignature` (SHA2_256 digest of the blob), as
/// `cosign sign-blob --bundle` writes.
pub fn sign_blob(blob: &[u8], signer: &dyn Signer) -> Result<Bundle, SignError> {
    let signature = signer.sign(blob)?;
    let content = Content::MessageSignature {
        digest: Some(bundle::MessageDigest {
            algorithm: "SHA2_256".to_string(),
            digest: Digest::of(blob).raw().to_vec(),
        }),
        signature,
    };
    finish(content, signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_bundle_has_one_dsse_signature_over_pae() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let b = sign_statement(statement, &signer).unwrap();
        let Content::Dsse(env) = b.content() else {
            panic!("expected dsse content")
        };
        assert_eq!(env.signatures.len(), 1);
        assert_eq!(env.payload_type, dsse::IN_TOTO_PAYLOAD_TYPE);
        signer
            .public_key()
            .verify(
                &dsse::pae(&env.payload_type, statement),
                &env.signatures[0].sig,
            )
            .unwrap();
        assert_eq!(
            b.material(),
            &Material::PublicKey {
                hint: Some(signer.public_key().hint())
            }
        );
        let reparsed = Bundle::from_json(&b.to_json()).unwrap();
        assert_eq!(reparsed, b);
    }

    #[test]
    fn blob_bundle_carries_sha256_digest() {
        let signer = KeySigner::new(SigningKey::generate_p256().unwrap());
        let b = sign_blob(b"hello", &signer).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(json["mediaType"], bundle::MEDIA_TYPE_V0_3);
        assert_eq!(
            json["messageSignature"]["messageDigest"]["algorithm"],
            "SHA2_256"
        );
        assert_eq!(
            json["verificationMaterial"]["publicKey"]["hint"],
            signer.public_key().hint()
        );
    }
}
