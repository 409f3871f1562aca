//! Signing and bundle verification: cosign-compatible keys ([`keys`]), DSSE envelopes
//! ([`dsse`]), Sigstore bundles ([`bundle`]: v0.1-v0.3 read, v0.3 written), the [`Signer`] seam
//! (a key signer, and the keyless Fulcio/Rekor/TSA signer in [`keyless`] with tokens from
//! [`oidc`]) and [`verify`]. [`signer_from_options`] picks one for a command.
//!
//! Sign an in-toto statement: `sign_statement(&statement_json, &KeySigner::new(key))`.
//! Verify: `verify::verify_bundle(&bundle, Artifact::Digest(d), &policy, &trusted_root)`.

pub mod bundle;
pub mod dsse;
pub mod keyless;
pub mod keys;
pub mod kms;
pub mod oidc;
pub mod pki;
pub mod verify;

pub use bundle::{Bundle, BundleError, Content, Material};
pub use keys::{KeyError, Password, PublicKey, SigningKey};
pub use verify::{
    Artifact, IdentityPolicy, KeyPolicy, Policy, TrustedRoot, VerifiedBundle, VerifyError,
};

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::foundation::digest::Digest;
pub use keyless::{KeylessError, KeylessSigner, RekorVersion, SigstoreInstance};
pub use keys::SecretText;
pub use kms::{KeyEnv, KeyRef, KmsError};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the signer failed: {reason}")]
    Signer { reason: String },
    #[error("could not record the signature in the transparency log or timestamp it: {reason}")]
    Evidence { reason: String },
    #[error("the signer produced an invalid bundle")]
    InvalidBundle(#[from] BundleError),
    #[error("key {key} could not sign")]
    Key {
        key: String,
        #[source]
        source: KmsError,
    },
    #[error("key {key} is {algorithm}, which signs messages, not digests")]
    DigestUnsupported {
        key: String,
        algorithm: &'static str,
    },
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

/// One key, wherever it is kept: in memory (a key file or `env://`), in a cloud KMS, in Vault's
/// transit engine, or on a PKCS#11 token. Every key kind implements this; [`KeySigner`] turns
/// any of them into a bundle [`Signer`], and [`kms::open`] opens one from a cosign-style
/// reference. The private key of a remote kind never leaves its service.
pub trait KeyBackend: fmt::Debug + Send + Sync {
    /// Signs a SHA-256 digest: ECDSA, DER encoded.
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError>;
    /// Signs a message: ECDSA over SHA-256(message), DER encoded. Ed25519 keys sign the
    /// message itself and override this.
    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_digest(&Digest::of(message).raw())
    }
    /// The public half, as the service reports it (checked when the backend is opened).
    fn public_key(&self) -> &PublicKey;
    /// How reports name the key: its reference, never a secret.
    fn key_id(&self) -> String;
}

/// A private key held in memory.
#[derive(Debug)]
pub struct LocalKey {
    key: SigningKey,
    public: PublicKey,
}

impl LocalKey {
    pub fn new(key: SigningKey) -> LocalKey {
        let public = key.public_key();
        LocalKey { key, public }
    }
}

impl KeyBackend for LocalKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        self.key
            .sign_prehash(digest)
            .ok_or(SignError::DigestUnsupported {
                key: self.key_id(),
                algorithm: self.public.algorithm(),
            })
    }

    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(message))
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        format!("{} key {}", self.public.algorithm(), self.public.hint())
    }
}

/// Signs with any [`KeyBackend`]; the bundle names the key by its hint, or carries the
/// signing certificate (and chain) when one was attached with
/// [`KeySigner::with_certificates`].
#[derive(Clone, Debug)]
pub struct KeySigner {
    key: Arc<dyn KeyBackend>,
    /// DER certificates, leaf first, never a self-signed root.
    certificates: Vec<Vec<u8>>,
}

impl KeySigner {
    pub fn new(key: SigningKey) -> KeySigner {
        KeySigner::from_backend(Arc::new(LocalKey::new(key)))
    }

    pub fn from_backend(key: Arc<dyn KeyBackend>) -> KeySigner {
        KeySigner {
            key,
            certificates: Vec::new(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key().clone()
    }

    pub fn key_id(&self) -> String {
        self.key.key_id()
    }

    pub fn backend(&self) -> &Arc<dyn KeyBackend> {
        &self.key
    }

    /// Carries these DER certificates (leaf first, no root) in the bundle instead of the key
    /// hint. [`pki::attach_certificates`] checks them first.
    pub fn with_certificates(mut self, certificates: Vec<Vec<u8>>) -> KeySigner {
        self.certificates = certificates;
        self
    }
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key.sign_message(message)
    }

    fn verification_material(&self) -> Material {
        match self.certificates.as_slice() {
            [] => Material::PublicKey {
                hint: Some(self.key.public_key().hint()),
            },
            [leaf] => Material::Certificate(leaf.clone()),
            chain => Material::CertificateChain(chain.to_vec()),
        }
    }
}

/// How a command chooses its signer: the key when one is given, otherwise keyless when an
/// identity token is available (`--identity-token`, `SIGSTORE_ID_TOKEN`, GitHub Actions).
/// Keyless services come from `signing_config` (public-good Sigstore without one), then the
/// single-URL overrides; `--rekor-url` keeps the API version of the log it replaces.
#[derive(Debug, Default)]
pub struct SignerOptions {
    /// A key, already opened (reading passwords is the caller's business).
    pub key: Option<KeySigner>,
    /// `--identity-token`: the token, or the path of a file holding it.
    pub identity_token: Option<SecretText>,
    /// A signing config (`signingconfig.v0.2`) file.
    pub signing_config: Option<PathBuf>,
    /// A `trusted_root.json` the new bundle is checked against before it is handed out.
    pub trusted_root: Option<PathBuf>,
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    /// Full timestamp endpoint, e.g. `https://tsa.example/api/v1/timestamp`.
    pub tsa_url: Option<String>,
    /// A signing config and trusted root the caller read from a TUF repository
    /// (`--signing-config tuf`); the `signing_config` and `trusted_root` files win over it.
    pub published: Option<PublishedInstance>,
}

/// A Sigstore instance as its TUF repository publishes it: `signing_config.v0.2.json` (the
/// services) and the trusted root new bundles are checked against.
#[derive(Clone, Debug)]
pub struct PublishedInstance {
    pub signing_config: Vec<u8>,
    pub trusted_root: TrustedRoot,
}

/// Why no signer could be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignerSetupError {
    #[error("no key and no identity token: nothing to sign with")]
    NoSigner,
    #[error("cannot get an identity token")]
    Token(#[from] oidc::OidcError),
    #[error("keyless signing failed")]
    Keyless(#[from] KeylessError),
}

impl crate::foundation::hint::Hint for SignerSetupError {
    fn hint(&self) -> Option<String> {
        match self {
            SignerSetupError::NoSigner => Some(format!(
                "pass --key, or --identity-token, or set {} (GitLab id_tokens with aud: sigstore), or run in GitHub Actions with `permissions: id-token: write`",
                oidc::SIGSTORE_ID_TOKEN_VAR
            )),
            SignerSetupError::Keyless(e) => e.hint().map(str::to_string),
            SignerSetupError::Token(_) => None,
        }
    }
}

/// The signer [`choose_signer`] picked, with what a report needs to say about it.
#[derive(Debug)]
pub enum ChosenSigner {
    Key(KeySigner),
    Keyless {
        signer: Box<KeylessSigner>,
        source: oidc::TokenSource,
        claims: oidc::TokenClaims,
    },
}

impl ChosenSigner {
    /// The trusted root a keyless bundle can be checked against, when one is known.
    pub fn trusted_root(&self) -> Option<&TrustedRoot> {
        match self {
            ChosenSigner::Key(_) => None,
            ChosenSigner::Keyless { signer, .. } => signer.instance().trusted_root.as_ref(),
        }
    }
}

impl Signer for ChosenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            ChosenSigner::Key(s) => s.sign(message),
            ChosenSigner::Keyless { signer, .. } => signer.sign(message),
        }
    }

    fn verification_material(&self) -> Material {
        match self {
            ChosenSigner::Key(s) => s.verification_material(),
            ChosenSigner::Keyless { signer, .. } => signer.verification_material(),
        }
    }

    fn evidence(&self, content: &Content) -> Result<Evidence, SignError> {
        match self {
            ChosenSigner::Key(s) => s.evidence(content),
            ChosenSigner::Keyless { signer, .. } => signer.evidence(content),
        }
    }
}

/// The Sigstore deployment `options` describe.
pub fn keyless_instance(options: &SignerOptions) -> Result<SigstoreInstance, KeylessError> {
    let mut instance = match (&options.signing_config, &options.published) {
        (Some(path), _) => SigstoreInstance::from_files(path, options.trusted_root.as_deref())?,
        (None, Some(published)) => {
            let root = match options.trusted_root.as_deref() {
                Some(path) => keyless::load_trusted_root(path)?,
                None => published.trusted_root.clone(),
            };
            SigstoreInstance::from_signing_config(&published.signing_config, Some(root))?
        }
        (None, None) => {
            // The shipped public-good root is a snapshot that may predate a key rotation: a
            // new bundle is checked only against a root the caller names.
            let mut i = SigstoreInstance::public_good()?;
            i.trusted_root = options
                .trusted_root
                .as_deref()
                .map(keyless::load_trusted_root)
                .transpose()?;
            i
        }
    };
    let trim = |u: &String| u.trim_end_matches('/').to_string();
    if let Some(u) = &options.fulcio_url {
        instance.fulcio_url = trim(u);
    }
    if let Some(u) = &options.rekor_url {
        instance.rekor_url = trim(u);
    }
    if let Some(u) = &options.tsa_url {
        instance.tsa_url = Some(trim(u));
    }
    Ok(instance)
}

/// Picks the signer: the key if given, else keyless if a token is available, else
/// [`SignerSetupError::NoSigner`]. Keyless setup asks Fulcio for the certificate now.
pub fn choose_signer(
    options: &SignerOptions,
    env: &(impl crate::evidence::ci::Environment + ?Sized),
) -> Result<ChosenSigner, SignerSetupError> {
    if let Some(key) = &options.key {
        return Ok(ChosenSigner::Key(key.clone()));
    }
    let http = crate::foundation::http::client().map_err(|source| KeylessError::Http {
        service: "oidc",
        url: String::new(),
        source,
    })?;
    let explicit = options.identity_token.as_ref().map(|t| t.expose());
    let Some((token, source)) = oidc::ambient_token(explicit, env, &http)? else {
        return Err(SignerSetupError::NoSigner);
    };
    let instance = keyless_instance(options)?;
    let signer = KeylessSigner::new(instance, &token)?;
    Ok(ChosenSigner::Keyless {
        signer: Box::new(signer),
        source,
        claims: token.claims().clone(),
    })
}

/// [`choose_signer`] for callers that only need the [`Signer`] seam.
pub fn signer_from_options(
    options: &SignerOptions,
    env: &(impl crate::evidence::ci::Environment + ?Sized),
) -> Result<Box<dyn Signer>, SignerSetupError> {
    Ok(Box::new(choose_signer(options, env)?))
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
