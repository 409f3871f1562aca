//! Signing keys in the formats cosign reads and writes: the scrypt + NaCl secretbox encrypted
//! PKCS#8 file (`ENCRYPTED SIGSTORE PRIVATE KEY`, legacy `ENCRYPTED COSIGN PRIVATE KEY`),
//! unencrypted PKCS#8 PEM, and `PUBLIC KEY` (SPKI) PEM. ECDSA P-256 is the default; Ed25519 loads.
//!
//! Secrets (passwords, private keys, decrypted DER) live in types whose `Debug` redacts them and
//! which are wiped on drop; they never appear in errors.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use salsa20::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::foundation::digest::Digest;

/// PEM label cosign writes for new encrypted private keys.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of older cosign encrypted private keys (still accepted on read).
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of an unencrypted PKCS#8 private key.
pub const PKCS8_PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of a SubjectPublicKeyInfo public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Largest key file we accept; real ones are well under 1 KiB.
const MAX_KEY_FILE: usize = 64 * 1024;
/// scrypt log2(N) written by `keygen` (N = 65536, cosign's "standard").
const WRITE_LOG_N: u8 = 16;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// Errors from generating, loading or writing keys. Never carries key bytes or passwords.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key data is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("key is not valid pem")]
    NotPem(#[source] pem_rfc7468::Error),
    #[error("unsupported pem type {label:?}")]
    UnsupportedPemType { label: String },
    #[error("encrypted key body is not valid json: {reason}")]
    MalformedEnvelope { reason: String },
    #[error("unsupported kdf {name:?}, expected \"scrypt\"")]
    UnsupportedKdf { name: String },
    #[error("unsupported cipher {name:?}, expected \"nacl/secretbox\"")]
    UnsupportedCipher { name: String },
    #[error("unsupported scrypt parameters N={n} r={r} p={p}")]
    UnsupportedScryptParams { n: u64, r: u64, p: u64 },
    #[error("{field} has {found} bytes, expected {expected}")]
    BadLength {
        field: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{field} is not valid base64")]
    BadBase64 { field: &'static str },
    #[error("wrong password, or the encrypted key is corrupted")]
    WrongPassword,
    #[error("encrypted key is truncated")]
    Truncated,
    #[error("key file is corrupted: {what}")]
    Corrupted { what: &'static str },
    #[error("private key is encrypted and no password was given")]
    PasswordRequired,
    #[error("unsupported key type: algorithm {algorithm}, parameters {parameters}")]
    UnsupportedKeyType {
        algorithm: String,
        parameters: String,
    },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    #[error("the system random number generator failed")]
    Random,
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists")]
    Exists { path: PathBuf },
}

impl crate::foundation::hint::Hint for KeyError {
    fn hint(&self) -> Option<String> {
        match self {
            // Verification reads public keys, signing private ones: say which file to give.
            KeyError::UnsupportedPemType { label } if label.contains("PRIVATE KEY") => Some(
                "this is a private key; verification needs its public key (the .pub file keygen wrote next to it)"
                    .to_owned(),
            ),
            KeyError::UnsupportedPemType { label } if label == "PUBLIC KEY" => Some(
                "this is a public key; signing needs the private key (the .key file keygen wrote next to it)"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// A password for an encrypted key. `Debug` prints `Password(***)`; the bytes are wiped on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Password {
        Password(Zeroizing::new(bytes.into()))
    }

    /// The empty password, which cosign allows.
    pub fn empty() -> Password {
        Password::new(Vec::new())
    }

    fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality (for "enter it again" prompts).
    pub fn ct_eq(&self, other: &Password) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(self.expose(), other.expose()))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Text that must not be printed (a private key PEM). `Debug` redacts it.
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(text: String) -> SecretText {
        SecretText(Zeroizing::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(***)")
    }
}

/// A private signing key. `Debug` shows only the algorithm.
#[derive(Clone)]
pub enum SigningKey {
    EcdsaP256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKey::EcdsaP256(_) => f.write_str("SigningKey::EcdsaP256(***)"),
            SigningKey::Ed25519(_) => f.write_str("SigningKey::Ed25519(***)"),
        }
    }
}

/// A public verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The signature did not verify with the key.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("signature does not verify with the {algorithm} key")]
pub struct BadSignature {
    pub algorithm: &'static str,
}

impl SigningKey {
    /// A fresh ECDSA P-256 key from the operating system's random source.
    pub fn generate_p256() -> Result<SigningKey, KeyError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut()).map_err(|_| KeyError::Random)?;
            let field = p256::FieldBytes::from(*bytes);
            // Out-of-range scalars are astronomically rare; draw again.
            if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&field) {
                return Ok(SigningKey::EcdsaP256(key));
            }
        }
    }

    /// A fresh Ed25519 key from the operating system's random source.
    pub fn generate_ed25519() -> Result<SigningKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// Unencrypted PKCS#8 `PRIVATE KEY` PEM (for import into other tools).
    pub fn to_pkcs8_pem(&self) -> Result<SecretText, KeyError> {
        let der = self.to_pkcs8_der()?;
        let pem =
            pem_rfc7468::encode_string(PKCS8_PRIVATE_KEY_LABEL, pem_rfc7468::LineEnding::LF, &der)
                .map_err(KeyError::NotPem)?;
        Ok(SecretText(Zeroizing::new(pem)))
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `message`: ECDSA P-256 over SHA-256(message), DER encoded; Ed25519 (pure) raw.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigningKey::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }

    /// Signs a SHA-256 digest (ECDSA P-256, DER). Ed25519 signs messages, not digests: `None`.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Option<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        match self {
            SigningKey::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(sig.to_der().as_bytes().to_vec())
            }
            SigningKey::Ed25519(_) => None,
        }
    }

    /// PKCS#8 DER of the key, wiped on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let doc = match self {
            SigningKey::EcdsaP256(k) => k.to_pkcs8_der(),
            SigningKey::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|_| KeyError::Malformed {
            what: "private key encoding",
        })?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Parses a PKCS#8 DER private key (P-256 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey::EcdsaP256(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey::Ed25519(k));
        }
        Err(unsupported_or_malformed_private(der))
    }
}

fn unsupported_or_malformed_private(der: &[u8]) -> KeyError {
    match p256::pkcs8::PrivateKeyInfoRef::try_from(der) {
        Ok(info) => unsupported_algorithm(
            info.algorithm.oid.to_string(),
            info.algorithm.parameters_oid().ok().map(|o| o.to_string()),
        ),
        Err(_) => KeyError::Malformed {
            what: "pkcs#8 private key",
        },
    }
}

fn unsupported_algorithm(algorithm: String, parameters: Option<String>) -> KeyError {
    let parameters = parameters.unwrap_or_else(|| "none".to_string());
    if (algorithm == OID_EC_PUBLIC_KEY && parameters == OID_P256) || algorithm == OID_ED25519 {
        // A supported algorithm that still failed to parse: the key itself is bad.
        return KeyError::Malformed { what: "key" };
    }
    KeyError::UnsupportedKeyType {
        algorithm,
        parameters,
    }
}

impl PublicKey {
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "ecdsa-p256",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::EcdsaP256(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
        };
        // Encoding a valid in-memory key into SPKI cannot fail.
        doc.expect("a valid public key encodes as spki")
            .as_bytes()
            .to_vec()
    }

    /// `PUBLIC KEY` PEM with LF line endings.
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string(
            PUBLIC_KEY_LABEL,
            pem_rfc7468::LineEnding::LF,
            &self.to_spki_der(),
        )
        .expect("spki of a valid key encodes as pem")
    }

    /// The opaque key hint cosign and sigstore-go write: base64std(sha256(DER SPKI)).
    pub fn hint(&self) -> String {
        STANDARD.encode(Digest::of(&self.to_spki_der()).raw())
    }

    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::EcdsaP256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::Ed25519(k));
        }
        match p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der) {
            Ok(info) => Err(unsupported_algorithm(
                info.algorithm.oid.to_string(),
                info.algorithm.parameters_oid().ok().map(|o| o.to_string()),
            )),
            Err(_) => Err(KeyError::Malformed {
                what: "subject public key info",
            }),
        }
    }

    /// Parses a `PUBLIC KEY` PEM.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        check_size(pem.len())?;
        let (label, der) =
            pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(KeyError::NotPem)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(KeyError::UnsupportedPemType {
                label: label.to_string(),
            });
        }
        PublicKey::from_spki_der(&der)
    }

    /// Verifies `signature` over `message` (ECDSA: DER over SHA-256(message); Ed25519: pure).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        use p256::ecdsa::signature::Verifier as _;
        let bad = BadSignature {
            algorithm: self.algorithm(),
        };
        match self {
            // ring checks the same ASN.1 DER signature over SHA-256(message) as p256 would
            // (tests::ring_and_p256_agree_on_every_signature), in a quarter of the time: verify
            // checks one signature per referrer.
            PublicKey::EcdsaP256(k) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                k.to_sec1_point(false).as_bytes(),
            )
            .verify(message, signature)
            .map_err(|_| bad),
            PublicKey::Ed25519(k) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad.clone())?;
                k.verify(message, &sig).map_err(|_| bad)
            }
        }
    }
}

impl PublicKey {
    /// Verifies an ECDSA signature given only SHA-256(message). Ed25519 signs the message itself,
    /// so it cannot be checked from a digest and is refused.
    pub fn verify_sha256_prehash(
        &self,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), BadSignature> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let bad = BadSignature {
            algorithm: self.algorithm(),
        };
        match self {
            PublicKey::EcdsaP256(k) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| bad.clone())?;
                k.verify_prehash(digest, &sig).map_err(|_| bad)
            }
            PublicKey::Ed25519(_) => Err(bad),
        }
    }
}

fn check_size(size: usize) -> Result<(), KeyError> {
    if size > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            size,
            max: MAX_KEY_FILE,
        });
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// A freshly generated key pair, as the two files cosign writes.
#[derive(Debug)]
pub struct GeneratedKeyPair {
    /// `ENCRYPTED SIGSTORE PRIVATE KEY` PEM.
    pub private_pem: SecretText,
    /// `PUBLIC KEY` PEM.
    pub public_pem: String,
    pub public_key: PublicKey,
}

/// Generates an ECDSA P-256 key pair encrypted with `password` in cosign's format.
pub fn keygen(password: &Password) -> Result<GeneratedKeyPair, KeyError> {
    let key = SigningKey::generate_p256()?;
    let private_pem = encrypt_private_key(&key, password)?;
    let public_key = key.public_key();
    Ok(GeneratedKeyPair {
        private_pem,
        public_pem: public_key.to_pem(),
        public_key,
    })
}

fn scrypt_key(
    password: &Password,
    salt: &[u8],
    log_n: u8,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params =
        scrypt::Params::new(log_n, 8, 1).map_err(|_| KeyError::UnsupportedScryptParams {
            n: 1u64 << log_n,
            r: 8,
            p: 1,
        })?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.expose(), salt, &params, out.as_mut()).map_err(|_| {
        KeyError::Malformed {
            what: "scrypt output",
        }
    })?;
    Ok(out)
}

/// NaCl secretbox keystream: the first 32 bytes key Poly1305, the rest encrypt the message.
fn secretbox_stream(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    buf: &mut [u8],
) -> Zeroizing<[u8; 32]> {
    let mut cipher = salsa20::XSalsa20::new(key.into(), nonce.into());
    let mut poly_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(poly_key.as_mut());
    cipher.apply_keystream(buf);
    poly_key
}

fn poly1305_tag(poly_key: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    use poly1305::universal_hash::KeyInit as _;
    let mac = poly1305::Poly1305::new(poly_key.into());
    mac.compute_unpadded(data).into()
}

/// Encrypts `key` as cosign does: scrypt(N=65536, r=8, p=1) then XSalsa20-Poly1305 of PKCS#8 DER.
pub fn encrypt_private_key(key: &SigningKey, password: &Password) -> Result<SecretText, KeyError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|_| KeyError::Random)?;
    getrandom::fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let box_key = scrypt_key(password, &salt, WRITE_LOG_N)?;
    let mut body = key.to_pkcs8_der()?;
    let poly_key = secretbox_stream(&box_key, &nonce, &mut body);
    let tag = poly1305_tag(&poly_key, &body);
    let mut sealed = Vec::with_capacity(TAG_LEN + body.len());
    sealed.extend_from_slice(&tag);
    sealed.extend_from_slice(&body);
    let envelope = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << WRITE_LOG_N,
                r: 8,
                p: 1,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(&sealed),
    };
    let json = serde_json::to_vec(&envelope).map_err(|e| KeyError::MalformedEnvelope {
        reason: e.to_string(),
    })?;
    let pem = pem_rfc7468::encode_string(
        SIGSTORE_PRIVATE_KEY_LABEL,
        pem_rfc7468::LineEnding::LF,
        &json,
    )
    .map_err(KeyError::NotPem)?;
    Ok(SecretText(Zeroizing::new(pem)))
}

fn decode_b64(field: &'static str, text: &str) -> Result<Vec<u8>, KeyError> {
    STANDARD
        .decode(text)
        .map_err(|_| KeyError::BadBase64 { field })
}

fn decrypt_envelope(json: &[u8], password: &Password) -> Result<SigningKey, KeyError> {
    let envelope: EncryptedKey = serde_json::from_slice(json).map_err(|e| {
        if e.is_eof() {
            KeyError::Truncated
        } else {
            KeyError::MalformedEnvelope {
                reason: e.to_string(),
            }
        }
    })?;
    if envelope.kdf.name != "scrypt" {
        return Err(KeyError::UnsupportedKdf {
            name: envelope.kdf.name,
        });
    }
    if envelope.cipher.name != "nacl/secretbox" {
        return Err(KeyError::UnsupportedCipher {
            name: envelope.cipher.name,
        });
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let log_n = match (n, r, p) {
        (32768, 8, 1) => 15,
        (65536, 8, 1) => 16,
        (131072, 8, 1) => 17,
        _ => return Err(KeyError::UnsupportedScryptParams { n, r, p }),
    };
    let salt = decode_b64("kdf.salt", &envelope.kdf.salt)?;
    let nonce = decode_b64("cipher.nonce", &envelope.cipher.nonce)?;
    let nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::BadLength {
            field: "cipher.nonce",
            expected: NONCE_LEN,
            found: nonce.len(),
        })?;
    let sealed = decode_b64("ciphertext", &envelope.ciphertext)?;
    if sealed.len() <= TAG_LEN {
        return Err(KeyError::Truncated);
    }
    let (tag, body) = sealed.split_at(TAG_LEN);
    let box_key = scrypt_key(password, &salt, log_n)?;
    let mut plain = Zeroizing::new(body.to_vec());
    let poly_key = secretbox_stream(&box_key, &nonce, &mut plain);
    let expected = poly1305_tag(&poly_key, body);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)) {
        plain.zeroize();
        return Err(KeyError::WrongPassword);
    }
    SigningKey::from_pkcs8_der(&plain)
}

/// Loads a private key from PEM text: a cosign encrypted key (needs `password`) or an
/// unencrypted PKCS#8 key. The text may come from a file or an environment variable (the
/// caller reads either; the library never reads the environment).
pub fn load_private_key(pem: &str, password: Option<&Password>) -> Result<SigningKey, KeyError> {
    check_size(pem.len())?;
    if pem.contains("-----BEGIN ") && !pem.contains("-----END ") {
        return Err(KeyError::Truncated);
    }
    let (label, body) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| match e {
        pem_rfc7468::Error::PostEncapsulationBoundary => KeyError::Truncated,
        pem_rfc7468::Error::Base64(_) | pem_rfc7468::Error::CharacterEncoding => {
            KeyError::Corrupted {
                what: "pem body is not valid base64",
            }
        }
        other => KeyError::NotPem(other),
    })?;
    let body = Zeroizing::new(body);
    match label {
        SIGSTORE_PRIVATE_KEY_LABEL | COSIGN_PRIVATE_KEY_LABEL => {
            let password = password.ok_or(KeyError::PasswordRequired)?;
            decrypt_envelope(&body, password)
        }
        PKCS8_PRIVATE_KEY_LABEL => SigningKey::from_pkcs8_der(&body),
        other => Err(KeyError::UnsupportedPemType {
            label: other.to_string(),
        }),
    }
}

/// Writes `<prefix>.key` (mode 0600, atomically: temporary file then rename) and `<prefix>.pub`.
/// Refuses to overwrite existing files, as cosign asks before doing so.
pub fn write_key_pair(
    prefix: &Path,
    pair: &GeneratedKeyPair,
) -> Result<(PathBuf, PathBuf), KeyError> {
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    write_atomic(&key_path, pair.private_pem.expose().as_bytes(), 0o600)?;
    write_atomic(&pub_path, pair.public_pem.as_bytes(), 0o644)?;
    Ok((key_path, pub_path))
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix, so the secret is never world-readable.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.persist_noclobber(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password() -> Password {
        Password::new("correct horse")
    }

    /// What p256 says of `signature` over `message`: the verifier ring replaced.
    fn p256_verifies(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        let PublicKey::EcdsaP256(k) = key else {
            unreachable!("a P-256 key")
        };
        p256::ecdsa::Signature::from_der(signature).is_ok_and(|sig| k.verify(message, &sig).is_ok())
    }

    /// DER of ECDSA (r, s): a SEQUENCE of two INTEGERs, minimal, with a zero byte before a high
    /// bit, as `pad` bytes of zeros more before r when asked (which DER forbids).
    fn der(r: &[u8], s: &[u8], pad: usize) -> Vec<u8> {
        let int = |v: &[u8], pad: usize| {
            let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
            let mut body = vec![0; pad + usize::from(v[0] & 0x80 != 0)];
            body.extend_from_slice(v);
            let mut out = vec![0x02, body.len() as u8];
            out.extend(body);
            out
        };
        let mut body = int(r, pad);
        body.extend(int(s, 0));
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    /// ring replaced p256 for checking signatures: over valid, high-S, mangled, cut, padded
    /// and foreign signatures both say the same.
    #[test]
    fn ring_and_p256_agree_on_every_signature() {
        use p256::elliptic_curve::ff::PrimeField as _;
        let signer = SigningKey::generate_p256().unwrap();
        let key = signer.public_key();
        let other = SigningKey::generate_p256().unwrap();
        let message = b"in-toto payload";
        let good = signer.sign(message);
        let sig = p256::ecdsa::Signature::from_der(&good).unwrap();
        let (r, s) = sig.split_scalars();
        let (r, s, high_s) = (r.to_repr(), s.to_repr(), (-*s).to_repr());
        let mut cases: Vec<(String, Vec<u8>)> = vec![
            ("valid".into(), good.clone()),
            ("re-encoded".into(), der(&r, &s, 0)),
            ("high S".into(), der(&r, &high_s, 0)),
            ("r padded with a zero".into(), der(&r, &s, 1)),
            (
                "fixed-width r||s".into(),
                [r.as_slice(), s.as_slice()].concat(),
            ),
            ("another key's".into(), other.sign(message)),
            ("empty".into(), Vec::new()),
            ("trailing zero".into(), [good.as_slice(), &[0]].concat()),
        ];
        for cut in 0..good.len() {
            cases.push((format!("cut to {cut}"), good[..cut].to_vec()));
        }
        for i in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut flipped = good.clone();
                flipped[i] ^= bit;
                cases.push((format!("byte {i} ^ {bit:#x}"), flipped));
            }
        }
        let mut accepted = Vec::new();
        for (name, signature) in &cases {
            for m in [&message[..], b"another payload"] {
                let ring = key.verify(m, signature).is_ok();
                assert_eq!(ring, p256_verifies(&key, m, signature), "{name}");
                if ring {
                    accepted.push(name.as_str());
                }
            }
        }
        // Each accepted once, over the message signed: both take high S, as cosign does.
        assert_eq!(accepted, ["valid", "re-encoded", "high S"]);
    }

    fn replace_envelope(pem: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let (label, body) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        edit(&mut json);
        pem_rfc7468::encode_string(
            label,
            pem_rfc7468::LineEnding::LF,
            &serde_json::to_vec(&json).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn keygen_round_trip_signs_and_verifies() {
        let pair = keygen(&password()).unwrap();
        assert!(
            pair.private_pem
                .expose()
                .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
        );
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let key = load_private_key(pair.private_pem.expose(), Some(&password())).unwrap();
        assert_eq!(key.public_key(), pair.public_key);
        let sig = key.sign(b"hello");
        let public = PublicKey::from_pem(&pair.public_pem).unwrap();
        public.verify(b"hello", &sig).unwrap();
        assert_eq!(
            public.verify(b"hellO", &sig),
            Err(BadSignature {
                algorithm: "ecdsa-p256"
            })
        );
    }

    #[test]
    fn envelope_has_cosign_shape() {
        let pair = keygen(&Password::empty()).unwrap();
        let (_, body) = pem_rfc7468::decode_vec(pair.private_pem.expose().as_bytes()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["kdf"]["name"], "scrypt");
        assert_eq!(json["kdf"]["params"]["N"], 65536);
        assert_eq!(json["kdf"]["params"]["r"], 8);
        assert_eq!(json["kdf"]["params"]["p"], 1);
        assert_eq!(
            STANDARD
                .decode(json["kdf"]["salt"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");
        assert_eq!(
            STANDARD
                .decode(json["cipher"]["nonce"].as_str().unwrap())
                .unwrap()
                .len(),
            24
        );
        // Empty password is allowed, as in cosign.
        load_private_key(pair.private_pem.expose(), Some(&Password::empty())).unwrap();
    }

    #[test]
    fn wrong_password_is_reported() {
        let pair = keygen(&password()).unwrap();
        let err =
            load_private_key(pair.private_pem.expose(), Some(&Password::new("nope"))).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword), "{err:?}");
        let err = load_private_key(pair.private_pem.expose(), None).unwrap_err();
        assert!(matches!(err, KeyError::PasswordRequired), "{err:?}");
    }

    #[test]
    fn corrupted_ciphertext_is_refused() {
        let pair = keygen(&password()).unwrap();
        let pem = replace_envelope(pair.private_pem.expose(), |j| {
            let mut ct = STANDARD.decode(j["ciphertext"].as_str().unwrap()).unwrap();
            let last = ct.len() - 1;
            ct[last] ^= 1;
            j["ciphertext"] = STANDARD.encode(ct).into();
        });
        let err = load_private_key(&pem, Some(&password())).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword), "{err:?}");
    }

    #[test]
    fn truncated_key_is_refused() {
        let pair = keygen(&password()).unwrap();
        let pem = pair.private_pem.expose();
        let cut = &pem[..pem.len() / 2];
        let err = load_private_key(cut, Some(&password())).unwrap_err();
        assert!(matches!(err, KeyError::Truncated), "{err:?}");
        let mut lines: Vec<&str> = pem.lines().collect();
        lines.remove(lines.len() - 2);
        let err = load_private_key(&lines.join("\n"), Some(&password())).unwrap_err();
        assert!(matches!(err, KeyError::Truncated), "{err:?}");
        let short = replace_envelope(pem, |j| j["ciphertext"] = STANDARD.encode([0u8; 10]).into());
        let err = load_private_key(&short, Some(&password())).unwrap_err();
        assert!(matches!(err, KeyError::Truncated), "{err:?}");
    }

    #[test]
    fn corrupted_pem_body_is_refused() {
        let pair = keygen(&password()).unwrap();
        let pem = pair.private_pem.expose().replacen("eyJ", "e*J", 1);
        let err = load_private_key(&pem, Some(&password())).unwrap_err();
        assert!(matches!(err, KeyError::Corrupted { .. }), "{err:?}");
    }

    #[test]
    fn unsupported_scrypt_params_are_refused() {
        let pair = keygen(&password()).unwrap();
        for (n, r, p) in [
            (1024, 8, 1),
            (65536, 16, 1),
            (65536, 8, 2),
            (u64::MAX, 8, 1),
        ] {
            let pem = replace_envelope(pair.private_pem.expose(), |j| {
                j["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            });
            let err = load_private_key(&pem, Some(&password())).unwrap_err();
            assert!(
                matches!(err, KeyError::UnsupportedScryptParams { n: en, r: er, p: ep } if (en, er, ep) == (n, r, p)),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("unsupported scrypt parameters N={n} r={r} p={p}")
            );
        }
    }

    #[test]
    fn accepted_scrypt_params_decrypt() {
        // Re-encrypt with N=32768 (legacy cosign keys) and check it loads.
        let key = SigningKey::generate_p256().unwrap();
        let mut salt = [7u8; 32];
        salt[0] = 1;
        let nonce = [9u8; 24];
        let box_key = scrypt_key(&password(), &salt, 15).unwrap();
        let mut body = key.to_pkcs8_der().unwrap();
        let poly_key = secretbox_stream(&box_key, &nonce, &mut body);
        let tag = poly1305_tag(&poly_key, &body);
        let sealed = [&tag[..], &body[..]].concat();
        let json = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": STANDARD.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode(nonce)},
            "ciphertext": STANDARD.encode(sealed),
        });
        let pem = pem_rfc7468::encode_string(
            COSIGN_PRIVATE_KEY_LABEL,
            pem_rfc7468::LineEnding::LF,
            &serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        let loaded = load_private_key(&pem, Some(&password())).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
    }

    #[test]
    fn bad_kdf_cipher_and_base64_are_refused() {
        let pair = keygen(&password()).unwrap();
        let pem = pair.private_pem.expose();
        let kdf = replace_envelope(pem, |j| j["kdf"]["name"] = "pbkdf2".into());
        assert!(
            matches!(load_private_key(&kdf, Some(&password())), Err(KeyError::UnsupportedKdf { name }) if name == "pbkdf2")
        );
        let cipher = replace_envelope(pem, |j| j["cipher"]["name"] = "aes".into());
        assert!(matches!(
            load_private_key(&cipher, Some(&password())),
            Err(KeyError::UnsupportedCipher { .. })
        ));
        let b64 = replace_envelope(pem, |j| j["kdf"]["salt"] = "!!!".into());
        assert!(matches!(
            load_private_key(&b64, Some(&password())),
            Err(KeyError::BadBase64 { field: "kdf.salt" })
        ));
        let nonce = replace_envelope(pem, |j| {
            j["cipher"]["nonce"] = STANDARD.encode([1u8; 12]).into()
        });
        assert!(matches!(
            load_private_key(&nonce, Some(&password())),
            Err(KeyError::BadLength {
                field: "cipher.nonce",
                expected: 24,
                found: 12
            })
        ));
        let not_json = pem_rfc7468::encode_string(
            SIGSTORE_PRIVATE_KEY_LABEL,
            pem_rfc7468::LineEnding::LF,
            b"{nope",
        )
        .unwrap();
        assert!(matches!(
            load_private_key(&not_json, Some(&password())),
            Err(KeyError::MalformedEnvelope { .. })
        ));
    }

    #[test]
    fn unencrypted_pkcs8_and_other_pem_types() {
        let key = SigningKey::generate_p256().unwrap();
        let der = key.to_pkcs8_der().unwrap();
        let pem =
            pem_rfc7468::encode_string(PKCS8_PRIVATE_KEY_LABEL, pem_rfc7468::LineEnding::LF, &der)
                .unwrap();
        let loaded = load_private_key(&pem, None).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());

        let rsa = pem_rfc7468::encode_string("RSA PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
            .unwrap();
        assert!(
            matches!(load_private_key(&rsa, None), Err(KeyError::UnsupportedPemType { label }) if label == "RSA PRIVATE KEY")
        );
        assert!(matches!(
            load_private_key("not a pem", None),
            Err(KeyError::NotPem(_))
        ));
        let huge = "A".repeat(MAX_KEY_FILE + 1);
        assert!(matches!(
            load_private_key(&huge, None),
            Err(KeyError::TooLarge { .. })
        ));
    }

    #[test]
    fn ed25519_pkcs8_loads_and_signs() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let der = key.to_pkcs8_der().unwrap();
        let loaded = SigningKey::from_pkcs8_der(der.as_bytes()).unwrap();
        let sig = loaded.sign(b"msg");
        loaded.public_key().verify(b"msg", &sig).unwrap();
        let public = PublicKey::from_pem(&loaded.public_key().to_pem()).unwrap();
        assert_eq!(public.algorithm(), "ed25519");
    }

    #[test]
    fn unsupported_curve_is_named() {
        // PKCS#8 of a P-384 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384).
        let p384 = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCKFhIuTt+L9msfi9xF
n8t+yBITJsOXhd26q9w4+rhpkVJ8y429e+PQ2kljAMbup4ahZANiAAStp6Tg4Gr4
LhhgTfiZZNufxmH6MXj4CibYhAripzpj3+Cyeu5B2vPisuhjZy8m1dYF882W8JQT
hiWY4zNSYy8KhrJsnFVz+NBVTiW9ZCOm3H6YCIybyT4IB5NFi1LaO3U=
-----END PRIVATE KEY-----";
        let err = load_private_key(p384, None).unwrap_err();
        assert!(
            matches!(&err, KeyError::UnsupportedKeyType { algorithm, parameters } if algorithm == OID_EC_PUBLIC_KEY && parameters == "1.3.132.0.34"),
            "{err:?}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let pair = keygen(&password()).unwrap();
        let dbg = format!("{pair:?} {:?}", password());
        assert!(!dbg.contains("correct horse"));
        assert!(!dbg.contains("BEGIN ENCRYPTED"));
        let key = load_private_key(pair.private_pem.expose(), Some(&password())).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey::EcdsaP256(***)");
    }

    #[test]
    fn write_key_pair_uses_0600_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keygen(&password()).unwrap();
        let (key_path, pub_path) = write_key_pair(&dir.path().join("cosign"), &pair).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            std::fs::read_to_string(pub_path)
                .unwrap()
                .contains("PUBLIC KEY")
        );
        let err = write_key_pair(&dir.path().join("cosign"), &pair).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }));
    }
}
