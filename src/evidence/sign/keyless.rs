//! Keyless signing: an ephemeral ECDSA P-256 key, a short-lived Fulcio certificate for the
//! caller's OIDC identity, a Rekor transparency-log entry and an RFC 3161 timestamp, so that the
//! bundle carries every proof and verifies offline later.
//!
//! A small blocking client on custody's `reqwest`, not `sigstore-sign`: that crate signs in one
//! async call that makes its own key, certificate and bundle type, which does not fit the
//! [`Signer`] seam every custody command signs through (sign bytes, name the material, then log
//! and timestamp the finished content), and it would add an async runtime and ~20 crates.
//! Protocols: Fulcio `POST /api/v2/signingCert`; Rekor v2 `POST /api/v2/log/entries`
//! (`hashedrekord` v0.0.2, DSSE as hashedrekord over the PAE as rekor-tiles v2.3 requires);
//! Rekor v1 `POST /api/v1/log/entries` (`hashedrekord`/`dsse` v0.0.1); RFC 3161 over the
//! SHA-256 of the signature, as every Sigstore client does.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::Digest as _;

use super::bundle::{Content, Material, TlogEntry};
use super::keys::SigningKey;
use super::oidc::{IdentityToken, SIGSTORE_AUDIENCE};
use super::verify::TrustedRoot;
use super::{Evidence, SignError, Signer, dsse};

/// Public-good Sigstore signing config (services), as shipped with `sigstore-trust-root`.
pub const PUBLIC_GOOD_SIGNING_CONFIG: &str =
    sigstore_trust_root::SIGSTORE_PRODUCTION_SIGNING_CONFIG;
/// Public-good Sigstore trusted root, as shipped with `sigstore-trust-root` (a snapshot of TUF).
pub const PUBLIC_GOOD_TRUSTED_ROOT: &str = sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT;
/// `mediaType` of the signing configs read here.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";
/// Largest signing config accepted.
pub const MAX_SIGNING_CONFIG_SIZE: usize = 1024 * 1024;
/// Largest response read from any Sigstore service.
pub const MAX_RESPONSE_SIZE: usize = 4 * 1024 * 1024;

/// Which Rekor API a log speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RekorVersion {
    /// Rekor v1 (Trillian): `hashedrekord`/`dsse` 0.0.1, signed entry timestamp.
    V1,
    /// Rekor v2 (tiles): `hashedrekord` 0.0.2, checkpoint only, needs a TSA for a signing time.
    V2,
}

/// The services and trust material of one Sigstore deployment.
#[derive(Clone, Debug)]
pub struct SigstoreInstance {
    pub fulcio_url: String,
    pub rekor_url: String,
    pub rekor_version: RekorVersion,
    /// Full timestamp endpoint (`…/api/v1/timestamp`); `None` signs without a timestamp.
    pub tsa_url: Option<String>,
    /// Used to check a freshly made bundle before it is handed out; `None` skips that check.
    pub trusted_root: Option<TrustedRoot>,
}

/// Why keyless signing could not be set up or failed.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    #[error("signing config is {size} bytes, more than the {max} allowed")]
    ConfigTooLarge { size: usize, max: usize },
    #[error("{path} is {size} bytes, more than the {max} allowed")]
    FileTooLarge {
        path: String,
        size: usize,
        max: usize,
    },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid signing config: {reason}")]
    Config { reason: String },
    #[error("the signing config lists no usable {service} (valid now, supported api version)")]
    NoService { service: &'static str },
    #[error("cannot use trusted root {path}")]
    TrustedRoot {
        path: String,
        #[source]
        source: super::verify::TrustRootError,
    },
    #[error("rekor v2 gives no signing time by itself; a timestamp authority url is required")]
    TimestampAuthorityRequired,
    #[error("could not reach {service} at {url}")]
    Http {
        service: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} refused the request (HTTP {status}): {message}")]
    Refused {
        service: &'static str,
        status: u16,
        message: String,
        /// What probably went wrong, when the client can tell.
        hint: Option<String>,
    },
    #[error("unexpected {service} response: {reason}")]
    BadResponse {
        service: &'static str,
        reason: String,
    },
    #[error("the {service} url {url:?} is not http(s)")]
    BadUrl { service: &'static str, url: String },
    #[error("could not generate the ephemeral key")]
    Key(#[source] super::keys::KeyError),
}

impl KeylessError {
    /// A one-line suggestion for the person running the command, when there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            KeylessError::Refused { hint, .. } => hint.as_deref(),
            KeylessError::TimestampAuthorityRequired => {
                Some("add a tsaUrls entry to the signing config, or pass --tsa-url")
            }
            _ => None,
        }
    }
}

impl From<KeylessError> for SignError {
    fn from(e: KeylessError) -> SignError {
        SignError::Evidence {
            reason: error_chain(&e),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl SigstoreInstance {
    /// Public-good Sigstore: the services of the shipped signing config and the shipped
    /// trusted root.
    pub fn public_good() -> Result<SigstoreInstance, KeylessError> {
        let root =
            TrustedRoot::from_json(PUBLIC_GOOD_TRUSTED_ROOT.as_bytes()).map_err(|source| {
                KeylessError::TrustedRoot {
                    path: "<public-good>".into(),
                    source,
                }
            })?;
        SigstoreInstance::from_signing_config(PUBLIC_GOOD_SIGNING_CONFIG.as_bytes(), Some(root))
    }

    /// Services from a signing config (`application/vnd.dev.sigstore.signingconfig.v0.2+json`):
    /// the first Fulcio, the highest-version Rekor and the first TSA valid now, as the
    /// `ANY` selector allows. `ALL`/`EXACT` selectors are honoured by using one service, which
    /// is what `ANY` would pick; custody does not write to several logs.
    pub fn from_signing_config(
        json: &[u8],
        trusted_root: Option<TrustedRoot>,
    ) -> Result<SigstoreInstance, KeylessError> {
        if json.len() > MAX_SIGNING_CONFIG_SIZE {
            return Err(KeylessError::ConfigTooLarge {
                size: json.len(),
                max: MAX_SIGNING_CONFIG_SIZE,
            });
        }
        let text = std::str::from_utf8(json).map_err(|_| KeylessError::Config {
            reason: "not utf-8".into(),
        })?;
        let config = sigstore_trust_root::SigningConfig::from_json(text).map_err(|e| {
            KeylessError::Config {
                reason: e.to_string(),
            }
        })?;
        let fulcio = config
            .fulcio_url()
            .ok_or(KeylessError::NoService { service: "fulcio" })?;
        let rekor = config
            .rekor_url(None)
            .ok_or(KeylessError::NoService { service: "rekor" })?;
        let rekor_version = match rekor.major_api_version {
            1 => RekorVersion::V1,
            _ => RekorVersion::V2,
        };
        Ok(SigstoreInstance {
            fulcio_url: trim_url(&fulcio.url),
            rekor_url: trim_url(&rekor.url),
            rekor_version,
            tsa_url: config.tsa_url().map(|t| trim_url(&t.url)),
            trusted_root,
        })
    }

    /// Reads a signing config file and, optionally, a trusted root file.
    pub fn from_files(
        signing_config: &Path,
        trusted_root: Option<&Path>,
    ) -> Result<SigstoreInstance, KeylessError> {
        let json = read_file(signing_config, MAX_SIGNING_CONFIG_SIZE)?;
        let root = trusted_root.map(load_trusted_root).transpose()?;
        SigstoreInstance::from_signing_config(&json, root)
    }

    fn check(&self) -> Result<(), KeylessError> {
        check_url("fulcio", &self.fulcio_url)?;
        check_url("rekor", &self.rekor_url)?;
        if let Some(tsa) = &self.tsa_url {
            check_url("timestamp authority", tsa)?;
        }
        if self.rekor_version == RekorVersion::V2 && self.tsa_url.is_none() {
            return Err(KeylessError::TimestampAuthorityRequired);
        }
        Ok(())
    }
}

/// Loads a `trusted_root.json` file.
pub fn load_trusted_root(path: &Path) -> Result<TrustedRoot, KeylessError> {
    let bytes = read_file(path, super::verify::MAX_TRUSTED_ROOT_SIZE)?;
    TrustedRoot::from_json(&bytes).map_err(|source| KeylessError::TrustedRoot {
        path: path.display().to_string(),
        source,
    })
}

fn read_file(path: &Path, max: usize) -> Result<Vec<u8>, KeylessError> {
    let err = |source| KeylessError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > max {
        return Err(KeylessError::FileTooLarge {
            path: path.display().to_string(),
            size: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

fn trim_url(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn check_url(service: &'static str, url: &str) -> Result<(), KeylessError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(KeylessError::BadUrl {
            service,
            url: url.to_string(),
        })
    }
}

/// Signs with an ephemeral key certified by Fulcio for one OIDC identity; logs every signature
/// in Rekor and timestamps it. One signer may sign several times with the same certificate
/// while it is valid (Fulcio issues ten-minute certificates).
pub struct KeylessSigner {
    key: SigningKey,
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    instance: SigstoreInstance,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for KeylessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessSigner")
            .field("key", &self.key)
            .field("certificate_len", &self.certificate.len())
            .field("instance", &self.instance)
            .finish()
    }
}

impl KeylessSigner {
    /// Makes an ephemeral key and asks Fulcio for a certificate binding it to `token`'s identity.
    pub fn new(
        instance: SigstoreInstance,
        token: &IdentityToken,
    ) -> Result<KeylessSigner, KeylessError> {
        instance.check()?;
        let http = crate::foundation::http::client().map_err(|source| KeylessError::Http {
            service: "fulcio",
            url: instance.fulcio_url.clone(),
            source,
        })?;
        let key = SigningKey::generate_p256().map_err(KeylessError::Key)?;
        let chain = request_certificate(&http, &instance.fulcio_url, &key, token)?;
        let certificate = chain.first().cloned().ok_or(KeylessError::BadResponse {
            service: "fulcio",
            reason: "empty certificate chain".into(),
        })?;
        Ok(KeylessSigner {
            key,
            certificate,
            chain,
            instance,
            http,
        })
    }

    /// The DER leaf certificate Fulcio issued.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// Fulcio's chain, leaf first, DER.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    pub fn instance(&self) -> &SigstoreInstance {
        &self.instance
    }

    /// Logs `content` in Rekor and timestamps its signature.
    pub fn log_and_timestamp(&self, content: &Content) -> Result<Evidence, KeylessError> {
        let signature = match content {
            Content::Dsse(env) => env.signatures.first().map(|s| s.sig.as_slice()),
            Content::MessageSignature { signature, .. } => Some(signature.as_slice()),
        }
        .ok_or(KeylessError::BadResponse {
            service: "signer",
            reason: "content has no signature".into(),
        })?;
        let entry = match self.instance.rekor_version {
            RekorVersion::V2 => rekor_v2_entry(
                &self.http,
                &self.instance.rekor_url,
                content,
                signature,
                &self.certificate,
            )?,
            RekorVersion::V1 => rekor_v1_entry(
                &self.http,
                &self.instance.rekor_url,
                content,
                signature,
                &self.certificate,
            )?,
        };
        let mut timestamps = Vec::new();
        if let Some(tsa) = &self.instance.tsa_url {
            timestamps.push(request_timestamp(&self.http, tsa, signature)?);
        }
        Ok(Evidence {
            tlog_entries: vec![entry],
            rfc3161_timestamps: timestamps,
        })
    }
}

impl Signer for KeylessSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(message))
    }

    fn verification_material(&self) -> Material {
        Material::Certificate(self.certificate.clone())
    }

    fn evidence(&self, content: &Content) -> Result<Evidence, SignError> {
        Ok(self.log_and_timestamp(content)?)
    }
}

// ---- Fulcio ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulcioResponse {
    signed_certificate_embedded_sct: Option<FulcioChain>,
    signed_certificate_detached_sct: Option<FulcioChain>,
}

#[derive(Deserialize)]
struct FulcioChain {
    chain: Option<FulcioCertificates>,
}

#[derive(Deserialize)]
struct FulcioCertificates {
    #[serde(default)]
    certificates: Vec<String>,
}

/// gRPC-gateway error body (`{"code": 16, "message": "..."}`).
#[derive(Deserialize)]
struct ServiceError {
    message: Option<String>,
}

/// How many times a certificate is asked for when Fulcio fails for a moment.
const FULCIO_ATTEMPTS: u32 = 4;

fn request_certificate(
    http: &reqwest::blocking::Client,
    fulcio_url: &str,
    key: &SigningKey,
    token: &IdentityToken,
) -> Result<Vec<Vec<u8>>, KeylessError> {
    let proof = key.sign(token.challenge().as_bytes());
    let request = serde_json::json!({
        "credentials": {"oidcIdentityToken": token.expose_secret()},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": key.public_key().to_pem()},
            "proofOfPossession": STANDARD.encode(proof),
        }
    });
    let url = format!("{fulcio_url}/api/v2/signingCert");
    // Asking again for a certificate is harmless, so a Fulcio that fails for a moment (a 5xx,
    // say its CT log is busy, or a dropped connection) is retried with backoff; a refusal of the
    // request itself (4xx) is final.
    let mut attempt = 0;
    let body = loop {
        attempt += 1;
        match post_json(http, "fulcio", &url, &request, |status, message| {
            fulcio_hint(status, message, token)
        }) {
            Err(KeylessError::Refused { status, .. })
                if attempt < FULCIO_ATTEMPTS && (status >= 500 || status == 429) => {}
            Err(KeylessError::Http { .. }) if attempt < FULCIO_ATTEMPTS => {}
            other => break other?,
        }
        std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
    };
    let response: FulcioResponse =
        serde_json::from_slice(&body).map_err(|e| KeylessError::BadResponse {
            service: "fulcio",
            reason: e.to_string(),
        })?;
    // A detached SCT cannot be carried in a v0.3 bundle; private Fulcios without a CT log send
    // an empty one. Verifiers then need their "ignore SCT" option, as with cosign.
    let chain = response
        .signed_certificate_embedded_sct
        .or(response.signed_certificate_detached_sct)
        .and_then(|c| c.chain)
        .ok_or(KeylessError::BadResponse {
            service: "fulcio",
            reason: "no signedCertificateEmbeddedSct or signedCertificateDetachedSct chain".into(),
        })?;
    chain
        .certificates
        .iter()
        .map(|pem| {
            let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| {
                KeylessError::BadResponse {
                    service: "fulcio",
                    reason: format!("certificate is not pem: {e}"),
                }
            })?;
            if label != "CERTIFICATE" {
                return Err(KeylessError::BadResponse {
                    service: "fulcio",
                    reason: format!("expected a CERTIFICATE pem block, found {label}"),
                });
            }
            Ok(der)
        })
        .collect()
}

fn fulcio_hint(status: u16, message: &str, token: &IdentityToken) -> Option<String> {
    let claims = token.claims();
    if !token.has_audience(SIGSTORE_AUDIENCE) {
        return Some(format!(
            "the token's audience is {:?}; Sigstore's Fulcio expects {SIGSTORE_AUDIENCE:?} (in GitHub Actions custody asks for it; elsewhere request a token for that audience)",
            claims.audience
        ));
    }
    if let Some(exp) = claims.expires_at {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if exp <= now {
            return Some(format!(
                "the token expired {}s ago; get a fresh one",
                now - exp
            ));
        }
    }
    if status == 401 || status == 403 || message.contains("identity token") {
        return Some(format!(
            "check that Fulcio trusts the issuer {:?} and that the token is meant for it",
            claims.issuer
        ));
    }
    None
}

fn post_json(
    http: &reqwest::blocking::Client,
    service: &'static str,
    url: &str,
    body: &serde_json::Value,
    hint: impl Fn(u16, &str) -> Option<String>,
) -> Result<Vec<u8>, KeylessError> {
    let http_err = |source: reqwest::Error| KeylessError::Http {
        service,
        url: url.to_string(),
        source: source.without_url(),
    };
    let response = http
        .post(url)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(body).expect("json values serialise"))
        .send()
        .map_err(http_err)?;
    let status = response.status();
    let bytes = crate::foundation::http::read_body(response, MAX_RESPONSE_SIZE).map_err(|e| {
        KeylessError::BadResponse {
            service,
            reason: e.to_string(),
        }
    })?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ServiceError>(&bytes)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into());
        let message = message.trim().to_string();
        return Err(KeylessError::Refused {
            service,
            status: status.as_u16(),
            hint: hint(status.as_u16(), &message),
            message,
        });
    }
    Ok(bytes)
}

// ---- Rekor ----

/// What a hashedrekord entry records: the SHA-256 the signature covers, and the signature.
fn signed_digest(content: &Content) -> Result<[u8; 32], KeylessError> {
    match content {
        Content::MessageSignature {
            digest: Some(d), ..
        } if d.algorithm == "SHA2_256" && d.digest.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&d.digest);
            Ok(out)
        }
        Content::MessageSignature { .. } => Err(KeylessError::BadResponse {
            service: "signer",
            reason: "a message signature needs its SHA2_256 digest to be logged".into(),
        }),
        Content::Dsse(env) => {
            Ok(sha2::Sha256::digest(dsse::pae(&env.payload_type, &env.payload)).into())
        }
    }
}

fn rekor_v2_entry(
    http: &reqwest::blocking::Client,
    rekor_url: &str,
    content: &Content,
    signature: &[u8],
    certificate: &[u8],
) -> Result<TlogEntry, KeylessError> {
    let digest = signed_digest(content)?;
    let request = serde_json::json!({
        "hashedRekordRequestV002": {
            "digest": STANDARD.encode(digest),
            "signature": {
                "content": STANDARD.encode(signature),
                "verifier": {
                    "x509Certificate": {"rawBytes": STANDARD.encode(certificate)},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                }
            }
        }
    });
    let url = format!("{rekor_url}/api/v2/log/entries");
    let body = post_json(http, "rekor", &url, &request, |_, _| None)?;
    let entry = TlogEntry::from_json(&body).map_err(|e| KeylessError::BadResponse {
        service: "rekor",
        reason: e.to_string(),
    })?;
    if entry.inclusion_proof.is_none() {
        return Err(KeylessError::BadResponse {
            service: "rekor",
            reason: "the entry has no inclusion proof".into(),
        });
    }
    Ok(entry)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Entry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: i64,
    verification: Option<RekorV1Verification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Verification {
    inclusion_proof: Option<RekorV1Proof>,
    signed_entry_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Proof {
    checkpoint: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    log_index: i64,
    root_hash: String,
    tree_size: i64,
}

fn rekor_v1_entry(
    http: &reqwest::blocking::Client,
    rekor_url: &str,
    content: &Content,
    signature: &[u8],
    certificate: &[u8],
) -> Result<TlogEntry, KeylessError> {
    let cert_pem =
        pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, certificate)
            .map_err(|e| KeylessError::BadResponse {
                service: "signer",
                reason: format!("cannot encode the certificate: {e}"),
            })?;
    let (kind, request) = match content {
        Content::Dsse(env) => {
            let envelope =
                serde_json::to_string(&env.to_wire()).map_err(|e| KeylessError::BadResponse {
                    service: "signer",
                    reason: e.to_string(),
                })?;
            (
                "dsse",
                serde_json::json!({
                    "apiVersion": "0.0.1", "kind": "dsse",
                    "spec": {"proposedContent": {
                        "envelope": envelope,
                        "verifiers": [STANDARD.encode(cert_pem.as_bytes())],
                    }}
                }),
            )
        }
        Content::MessageSignature { .. } => {
            let digest = signed_digest(content)?;
            (
                "hashedrekord",
                serde_json::json!({
                    "apiVersion": "0.0.1", "kind": "hashedrekord",
                    "spec": {
                        "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}},
                        "signature": {
                            "content": STANDARD.encode(signature),
                            "publicKey": {"content": STANDARD.encode(cert_pem.as_bytes())},
                        }
                    }
                }),
            )
        }
    };
    let url = format!("{rekor_url}/api/v1/log/entries");
    let body = post_json(http, "rekor", &url, &request, |_, _| None)?;
    parse_rekor_v1_response(&body, kind)
}

pub(crate) fn parse_rekor_v1_response(body: &[u8], kind: &str) -> Result<TlogEntry, KeylessError> {
    let bad = |reason: String| KeylessError::BadResponse {
        service: "rekor",
        reason,
    };
    let entries: std::collections::BTreeMap<String, RekorV1Entry> =
        serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if entries.len() != 1 {
        return Err(bad(format!("expected one entry, found {}", entries.len())));
    }
    let (_, entry) = entries.into_iter().next().expect("one entry");
    let verification = entry
        .verification
        .ok_or_else(|| bad("the entry has no verification".into()))?;
    let proof = verification
        .inclusion_proof
        .ok_or_else(|| bad("the entry has no inclusion proof".into()))?;
    let hex_field =
        |field: &str, v: &str| hex::decode(v).map_err(|_| bad(format!("{field} is not hex")));
    let b64_field = |field: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|_| bad(format!("{field} is not base64")))
    };
    let non_negative = |field: &str, v: i64| {
        if v < 0 {
            Err(bad(format!("{field} is negative")))
        } else {
            Ok(v)
        }
    };
    Ok(TlogEntry {
        log_index: non_negative("logIndex", entry.log_index)?,
        log_id: hex_field("logID", &entry.log_id)?,
        kind: kind.to_string(),
        kind_version: "0.0.1".to_string(),
        integrated_time: non_negative("integratedTime", entry.integrated_time)?,
        inclusion_promise: verification
            .signed_entry_timestamp
            .as_deref()
            .map(|s| b64_field("signedEntryTimestamp", s))
            .transpose()?,
        inclusion_proof: Some(super::bundle::InclusionProof {
            log_index: non_negative("inclusionProof.logIndex", proof.log_index)?,
            root_hash: hex_field("inclusionProof.rootHash", &proof.root_hash)?,
            tree_size: non_negative("inclusionProof.treeSize", proof.tree_size)?,
            hashes: proof
                .hashes
                .iter()
                .map(|h| hex_field("inclusionProof.hashes", h))
                .collect::<Result<_, _>>()?,
            checkpoint: proof.checkpoint,
        }),
        canonicalized_body: b64_field("body", &entry.body)?,
    })
}

// ---- RFC 3161 ----

/// DER `TimeStampReq` for a SHA-256 imprint with a 64-bit nonce, asking for the TSA's certificate.
fn timestamp_request(imprint: &[u8; 32], nonce: &[u8; 8]) -> Vec<u8> {
    let mut req = vec![0x30, 0x43, 0x02, 0x01, 0x01];
    // messageImprint: AlgorithmIdentifier(sha256, NULL), OCTET STRING(32)
    req.extend_from_slice(&[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ]);
    req.extend_from_slice(imprint);
    req.extend_from_slice(&[0x02, 0x08]);
    req.extend_from_slice(nonce);
    req.extend_from_slice(&[0x01, 0x01, 0xff]);
    debug_assert_eq!(req.len(), 0x45);
    req
}

fn request_timestamp(
    http: &reqwest::blocking::Client,
    tsa_url: &str,
    signature: &[u8],
) -> Result<Vec<u8>, KeylessError> {
    let imprint: [u8; 32] = sha2::Sha256::digest(signature).into();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| KeylessError::Key(super::keys::KeyError::Random))?;
    // Positive and minimally encoded: top bit clear, first byte non-zero.
    nonce[0] = (nonce[0] & 0x7f) | 0x01;
    let response = http
        .post(tsa_url)
        .header("Content-Type", "application/timestamp-query")
        .header("Accept", "application/timestamp-reply")
        .body(timestamp_request(&imprint, &nonce))
        .send()
        .map_err(|source| KeylessError::Http {
            service: "timestamp authority",
            url: tsa_url.to_string(),
            source: source.without_url(),
        })?;
    let status = response.status();
    let body = crate::foundation::http::read_body(response, MAX_RESPONSE_SIZE).map_err(|e| {
        KeylessError::BadResponse {
            service: "timestamp authority",
            reason: e.to_string(),
        }
    })?;
    if !status.is_success() {
        return Err(KeylessError::Refused {
            service: "timestamp authority",
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_string(),
            hint: None,
        });
    }
    check_timestamp_response(&body, &imprint, &nonce).map_err(|reason| {
        KeylessError::BadResponse {
            service: "timestamp authority",
            reason: reason.to_string(),
        }
    })?;
    Ok(body)
}

/// One DER TLV: (tag, content, rest). Lengths up to 4 bytes; indefinite lengths refused.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Checks a `TimeStampResp`: status granted, and a token whose TSTInfo carries our imprint and
/// nonce. The signature is checked when the bundle is verified against the trusted root.
pub(crate) fn check_timestamp_response(
    der: &[u8],
    imprint: &[u8; 32],
    nonce: &[u8; 8],
) -> Result<(), &'static str> {
    const SEQ: u8 = 0x30;
    fn take<'a>(
        input: &'a [u8],
        tag: u8,
        what: &'static str,
    ) -> Result<(&'a [u8], &'a [u8]), &'static str> {
        match tlv(input) {
            Some((t, c, r)) if t == tag => Ok((c, r)),
            _ => Err(what),
        }
    }
    let (resp, _) = take(der, SEQ, "response is not a DER sequence")?;
    let (status_info, rest) = take(resp, SEQ, "response has no status")?;
    let (status, _) = take(status_info, 0x02, "response status is not an integer")?;
    if status != [0] && status != [1] {
        return Err("the timestamp authority did not grant the request");
    }
    let (content_info, _) = take(rest, SEQ, "granted response has no timestamp token")?;
    let (_oid, rest) = take(content_info, 0x06, "token has no content type")?;
    let (explicit, _) = take(rest, 0xa0, "token has no signed data")?;
    let (signed_data, _) = take(explicit, SEQ, "signed data is not a sequence")?;
    let (_version, rest) = take(signed_data, 0x02, "signed data has no version")?;
    let (_algs, rest) = take(rest, 0x31, "signed data has no digest algorithms")?;
    let (encap, _) = take(rest, SEQ, "signed data has no content")?;
    let (_ctype, rest) = take(encap, 0x06, "content has no type")?;
    let (explicit, _) = take(rest, 0xa0, "content is missing")?;
    let (tst_der, _) = take(explicit, 0x04, "content is not an octet string")?;
    let (tst, _) = take(tst_der, SEQ, "TSTInfo is not a sequence")?;
    let (_version, rest) = take(tst, 0x02, "TSTInfo has no version")?;
    let (_policy, rest) = take(rest, 0x06, "TSTInfo has no policy")?;
    let (message_imprint, rest) = take(rest, SEQ, "TSTInfo has no message imprint")?;
    let (_alg, mi_rest) = take(message_imprint, SEQ, "message imprint has no algorithm")?;
    let (hashed, _) = take(mi_rest, 0x04, "message imprint has no hash")?;
    if hashed != imprint {
        return Err("the timestamp covers another message imprint");
    }
    let (_serial, rest) = take(rest, 0x02, "TSTInfo has no serial number")?;
    let (_gen_time, mut rest) = take(rest, 0x18, "TSTInfo has no generation time")?;
    // accuracy (SEQUENCE) and ordering (BOOLEAN) are optional, then the nonce.
    while let Some((tag, content, next)) = tlv(rest) {
        match tag {
            0x30 | 0x01 => rest = next,
            0x02 => {
                return if content == nonce {
                    Ok(())
                } else {
                    Err("the timestamp answers another request (nonce differs)")
                };
            }
            _ => break,
        }
    }
    Err("the timestamp has no nonce")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_instance_uses_the_shipped_config() {
        let i = SigstoreInstance::public_good().unwrap();
        assert_eq!(i.fulcio_url, "https://fulcio.sigstore.dev");
        assert_eq!(i.rekor_url, "https://rekor.sigstore.dev");
        assert_eq!(i.rekor_version, RekorVersion::V1);
        assert_eq!(
            i.tsa_url.as_deref(),
            Some("https://timestamp.sigstore.dev/api/v1/timestamp")
        );
        assert!(i.trusted_root.is_some());
    }

    const LOCAL_CONFIG: &str = r#"{
      "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
      "caUrls": [{"url": "http://127.0.0.1:5555/", "majorApiVersion": 1, "validFor": {"start": "2024-01-01T00:00:00Z"}}],
      "rekorTlogUrls": [
        {"url": "http://127.0.0.1:3000", "majorApiVersion": 1, "validFor": {"start": "2024-01-01T00:00:00Z"}},
        {"url": "http://127.0.0.1:3003", "majorApiVersion": 2, "validFor": {"start": "2024-01-01T00:00:00Z"}}
      ],
      "tsaUrls": [{"url": "http://127.0.0.1:3004/api/v1/timestamp", "majorApiVersion": 1, "validFor": {"start": "2024-01-01T00:00:00Z"}}],
      "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}
    }"#;

    #[test]
    fn signing_config_picks_rekor_v2_and_trims_urls() {
        let i = SigstoreInstance::from_signing_config(LOCAL_CONFIG.as_bytes(), None).unwrap();
        assert_eq!(i.fulcio_url, "http://127.0.0.1:5555");
        assert_eq!(i.rekor_url, "http://127.0.0.1:3003");
        assert_eq!(i.rekor_version, RekorVersion::V2);
        assert_eq!(
            i.tsa_url.as_deref(),
            Some("http://127.0.0.1:3004/api/v1/timestamp")
        );
    }

    #[test]
    fn signing_config_errors_name_the_problem() {
        assert!(matches!(
            SigstoreInstance::from_signing_config(b"{", None),
            Err(KeylessError::Config { .. })
        ));
        let wrong_type = LOCAL_CONFIG.replace("signingconfig.v0.2", "signingconfig.v0.9");
        assert!(matches!(
            SigstoreInstance::from_signing_config(wrong_type.as_bytes(), None),
            Err(KeylessError::Config { .. })
        ));
        let no_ca = r#"{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"}"#;
        assert!(matches!(
            SigstoreInstance::from_signing_config(no_ca.as_bytes(), None),
            Err(KeylessError::NoService { service: "fulcio" })
        ));
        let huge = vec![b' '; MAX_SIGNING_CONFIG_SIZE + 1];
        assert!(matches!(
            SigstoreInstance::from_signing_config(&huge, None),
            Err(KeylessError::ConfigTooLarge { .. })
        ));
    }

    #[test]
    fn rekor_v2_without_a_timestamp_authority_is_refused_before_any_request() {
        let mut i = SigstoreInstance::from_signing_config(LOCAL_CONFIG.as_bytes(), None).unwrap();
        i.tsa_url = None;
        assert!(matches!(
            i.check(),
            Err(KeylessError::TimestampAuthorityRequired)
        ));
        i.tsa_url = Some("ftp://x".into());
        assert!(matches!(
            i.check(),
            Err(KeylessError::BadUrl {
                service: "timestamp authority",
                ..
            })
        ));
    }

    #[test]
    fn timestamp_request_is_well_formed_der() {
        let req = timestamp_request(&[7; 32], &[0x11; 8]);
        let (tag, body, rest) = tlv(&req).unwrap();
        assert_eq!((tag, body.len(), rest.len()), (0x30, 0x43, 0));
        let (tag, version, body) = tlv(body).unwrap();
        assert_eq!((tag, version), (0x02, &[1u8][..]));
        let (tag, imprint, body) = tlv(body).unwrap();
        assert_eq!(tag, 0x30);
        assert_eq!(&imprint[imprint.len() - 32..], &[7u8; 32]);
        let (tag, nonce, body) = tlv(body).unwrap();
        assert_eq!((tag, nonce), (0x02, &[0x11u8; 8][..]));
        assert_eq!(body, &[0x01, 0x01, 0xff]);
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn fake_response(status: u8, imprint: &[u8], nonce: &[u8]) -> Vec<u8> {
        let alg = der(
            0x30,
            &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
            ],
        );
        let mi = der(0x30, &[alg, der(0x04, imprint)].concat());
        let tst = der(
            0x30,
            &[
                der(0x02, &[1]),
                der(0x06, &[0x2a, 0x03]),
                mi,
                der(0x02, &[5]),
                der(0x18, b"20260101000000Z"),
                der(0x30, &[]),
                der(0x02, nonce),
            ]
            .concat(),
        );
        let encap = der(
            0x30,
            &[der(0x06, &[0x2a]), der(0xa0, &der(0x04, &tst))].concat(),
        );
        let signed = der(0x30, &[der(0x02, &[3]), der(0x31, &[]), encap].concat());
        let token = der(0x30, &[der(0x06, &[0x2a]), der(0xa0, &signed)].concat());
        der(0x30, &[der(0x30, &der(0x02, &[status])), token].concat())
    }

    #[test]
    fn timestamp_response_checks_status_imprint_and_nonce() {
        let ok = fake_response(0, &[7; 32], &[9; 8]);
        assert_eq!(check_timestamp_response(&ok, &[7; 32], &[9; 8]), Ok(()));
        assert_eq!(
            check_timestamp_response(&fake_response(2, &[7; 32], &[9; 8]), &[7; 32], &[9; 8]),
            Err("the timestamp authority did not grant the request")
        );
        assert_eq!(
            check_timestamp_response(&ok, &[8; 32], &[9; 8]),
            Err("the timestamp covers another message imprint")
        );
        assert_eq!(
            check_timestamp_response(&ok, &[7; 32], &[1; 8]),
            Err("the timestamp answers another request (nonce differs)")
        );
        // Every truncation fails cleanly, never panics.
        for n in 0..ok.len() {
            assert!(check_timestamp_response(&ok[..n], &[7; 32], &[9; 8]).is_err());
        }
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(tlv(&[0x30, 0x80]).is_none());
    }

    #[test]
    fn rekor_v1_response_becomes_a_bundle_entry() {
        let body = br#"{"24296fb24b8ad77a": {
            "body": "eyJhIjoxfQ==", "integratedTime": 1700000000,
            "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
            "logIndex": 42,
            "verification": {
              "inclusionProof": {"checkpoint": "cp\n", "hashes": ["00ff"], "logIndex": 41,
                                 "rootHash": "abcd", "treeSize": 50},
              "signedEntryTimestamp": "c2V0"
            }}}"#;
        let e = parse_rekor_v1_response(body, "hashedrekord").unwrap();
        assert_eq!((e.log_index, e.integrated_time), (42, 1700000000));
        assert_eq!(
            (e.kind.as_str(), e.kind_version.as_str()),
            ("hashedrekord", "0.0.1")
        );
        assert_eq!(e.log_id[0], 0xc0);
        assert_eq!(e.inclusion_promise.as_deref(), Some(&b"set"[..]));
        let p = e.inclusion_proof.unwrap();
        assert_eq!((p.log_index, p.tree_size), (41, 50));
        assert_eq!(p.hashes, vec![vec![0x00, 0xff]]);
        assert_eq!(e.canonicalized_body, br#"{"a":1}"#);
        for bad in [
            &b"{}"[..],
            br#"{"a": {"body": "!", "integratedTime": 1, "logID": "00", "logIndex": 1}}"#,
            br#"{"a": {"body": "", "integratedTime": -1, "logID": "00", "logIndex": 1, "verification": {"inclusionProof": {"logIndex": 0, "rootHash": "", "treeSize": 1}}}}"#,
            b"[",
        ] {
            assert!(
                matches!(
                    parse_rekor_v1_response(bad, "dsse"),
                    Err(KeylessError::BadResponse { service: "rekor", .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
