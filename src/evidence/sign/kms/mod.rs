//! Keys kept elsewhere: AWS KMS ([`aws`], requests signed with [`sigv4`]), Google Cloud KMS
//! ([`gcp`]), Azure Key Vault ([`azure`]), Vault/OpenBao transit ([`vault`]) and PKCS#11 tokens
//! ([`pkcs11`]), each a [`KeyBackend`](super::KeyBackend) opened from a cosign-style
//! [`KeyRef`]. Credentials come from a [`KeyEnv`] the caller hands in (the library reads no
//! process environment) and never reach errors or output.

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod keyref;
pub mod pkcs11;
pub mod pkcs11_uri;
pub mod sigv4;
pub mod vault;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use keyref::{KeyRef, KeyRefError};
pub use pkcs11_uri::Pkcs11Uri;

use super::KeyBackend;
use super::keys::{KeyError, PublicKey};

/// Environment variables the key backends read, for callers building a [`KeyEnv`].
pub const ENV_VARS: &[&str] = &[
    "HOME",
    // AWS: the SDKs' standard chain, endpoint overrides.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    // Vault / OpenBao transit.
    "VAULT_ADDR",
    "BAO_ADDR",
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "TRANSIT_SECRET_ENGINE_PATH",
    // Google Cloud KMS.
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    "GCE_METADATA_HOST",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS",
    // Azure Key Vault.
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "AZURE_ACCESS_TOKEN",
    // PKCS#11 (cosign's names).
    "COSIGN_PKCS11_MODULE_PATH",
    "COSIGN_PKCS11_PIN",
];

/// Largest response body read from a key service; real ones are a few hundred bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// The environment the key backends see: the variables in [`ENV_VARS`] the caller chose to
/// pass. `Debug` shows only the names.
#[derive(Clone, Default)]
pub struct KeyEnv {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for KeyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyEnv")
            .field(&self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyEnv {
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> KeyEnv {
        KeyEnv {
            vars: vars.into_iter().collect(),
        }
    }

    /// A set, non-empty variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn home_file(&self, rest: &str) -> Option<PathBuf> {
        self.get("HOME").map(|h| PathBuf::from(h).join(rest))
    }
}

/// Why a remote key could not be used. Never carries a credential, token or PIN.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("cannot reach {service} at {url}")]
    Http {
        service: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} answered {status} to {operation}: {message}")]
    Status {
        service: &'static str,
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("{service} sent a malformed {operation} response: {reason}")]
    Response {
        service: &'static str,
        operation: &'static str,
        reason: String,
    },
    #[error("no {service} credentials: {reason}")]
    Credentials {
        service: &'static str,
        reason: String,
    },
    #[error("{service} is not configured: {reason}")]
    Config {
        service: &'static str,
        reason: String,
    },
    #[error("{service} key is {found}; only ECDSA P-256 keys sign here")]
    UnsupportedKey {
        service: &'static str,
        found: String,
    },
    #[error("the public key {service} returned does not load")]
    PublicKey {
        service: &'static str,
        #[source]
        source: KeyError,
    },
    #[error("{service} returned a signature that does not verify with the key's public key")]
    BadSignature { service: &'static str },
    #[error("pkcs#11: {operation} failed")]
    Pkcs11 {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("pkcs#11: {reason}")]
    Token { reason: String },
    #[error("key reference {reference} is a key file, not a remote key")]
    NotRemote { reference: String },
}

/// Opens the remote key `reference` names: fetches (and checks) its public key, so a wrong
/// reference or missing credentials fail before anything is signed.
pub fn open(reference: &KeyRef, env: &KeyEnv) -> Result<Arc<dyn KeyBackend>, KmsError> {
    Ok(match reference {
        KeyRef::AwsKms { endpoint, key } => {
            Arc::new(aws::AwsKey::open(endpoint.as_deref(), key, env)?)
        }
        KeyRef::GcpKms { name } => Arc::new(gcp::GcpKey::open(name, env)?),
        KeyRef::AzureKms {
            vault,
            key,
            version,
        } => Arc::new(azure::AzureKey::open(vault, key, version.as_deref(), env)?),
        KeyRef::HashiVault { key } => Arc::new(vault::VaultKey::open(key, env)?),
        KeyRef::Pkcs11(uri) => Arc::new(pkcs11::Pkcs11Key::open(uri, env)?),
        KeyRef::File(_) | KeyRef::Env(_) => {
            return Err(KmsError::NotRemote {
                reference: reference.to_string(),
            });
        }
    })
}

/// The public key of the remote key `reference` names (for verification).
pub fn public_key(reference: &KeyRef, env: &KeyEnv) -> Result<PublicKey, KmsError> {
    Ok(open(reference, env)?.public_key().clone())
}

/// Checks a service's ECDSA signature with the public key it reported: a service (or an
/// emulator) that signs the wrong bytes is caught here, not by a later verifier.
fn check_signature(
    service: &'static str,
    public: &PublicKey,
    digest: &[u8; 32],
    der: &[u8],
) -> Result<(), KmsError> {
    public
        .verify_sha256_prehash(digest, der)
        .map_err(|_| KmsError::BadSignature { service })
}

/// A raw `r‖s` P-256 signature (PKCS#11, Azure, JWS) as DER.
fn raw_to_der(service: &'static str, raw: &[u8]) -> Result<Vec<u8>, KmsError> {
    let sig = p256::ecdsa::Signature::from_slice(raw).map_err(|_| KmsError::Response {
        service,
        operation: "sign",
        reason: format!("signature is {} bytes, not a P-256 r||s pair", raw.len()),
    })?;
    Ok(sig.to_der().as_bytes().to_vec())
}

fn p256_only(service: &'static str, public: PublicKey) -> Result<PublicKey, KmsError> {
    match public {
        PublicKey::EcdsaP256(_) => Ok(public),
        other => Err(KmsError::UnsupportedKey {
            service,
            found: other.algorithm().to_owned(),
        }),
    }
}

/// Sends `request`, reads a bounded body, and maps a non-2xx status to [`KmsError::Status`]
/// with the service's own error message (bounded, never the request).
fn send_json(
    service: &'static str,
    operation: &'static str,
    request: reqwest::blocking::RequestBuilder,
    url: &str,
) -> Result<serde_json::Value, KmsError> {
    let response = request.send().map_err(|source| KmsError::Http {
        service,
        url: url.to_owned(),
        source: source.without_url(),
    })?;
    let status = response.status();
    let body = crate::foundation::http::read_body(response, MAX_RESPONSE).map_err(|e| {
        KmsError::Response {
            service,
            operation,
            reason: e.to_string(),
        }
    })?;
    if !status.is_success() {
        return Err(KmsError::Status {
            service,
            operation,
            status: status.as_u16(),
            message: error_message(&body),
        });
    }
    serde_json::from_slice(&body).map_err(|e| KmsError::Response {
        service,
        operation,
        reason: format!("not json: {e}"),
    })
}

/// The message in a JSON error body (AWS `message`/`Message`, Google/Azure `error.message`,
/// Vault `errors[0]`), cut to 200 characters.
fn error_message(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = [
        &json["message"],
        &json["Message"],
        &json["error"]["message"],
        &json["errors"][0],
        &json["__type"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
    .map(str::to_owned)
    .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn field<'a>(
    service: &'static str,
    operation: &'static str,
    json: &'a serde_json::Value,
    name: &str,
) -> Result<&'a str, KmsError> {
    json[name].as_str().ok_or_else(|| KmsError::Response {
        service,
        operation,
        reason: format!("no {name}"),
    })
}

fn b64_field(
    service: &'static str,
    operation: &'static str,
    json: &serde_json::Value,
    name: &str,
    engine: &base64::engine::GeneralPurpose,
) -> Result<Vec<u8>, KmsError> {
    use base64::Engine as _;
    engine
        .decode(field(service, operation, json, name)?)
        .map_err(|_| KmsError::Response {
            service,
            operation,
            reason: format!("{name} is not base64"),
        })
}

fn http_client(service: &'static str) -> Result<reqwest::blocking::Client, KmsError> {
    crate::foundation::http::client().map_err(|source| KmsError::Http {
        service,
        url: String::new(),
        source,
    })
}

/// The base URL for an explicit endpoint: `http://` only for a loopback host (emulators and
/// stand-ins), otherwise `https://`. A full URL is taken as given.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return endpoint.trim_end_matches('/').to_owned();
    }
    let host = endpoint
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(endpoint, |(h, _)| h);
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    format!("{scheme}://{}", endpoint.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_use_https_except_on_loopback() {
        assert_eq!(endpoint_url("kms.example.com"), "https://kms.example.com");
        assert_eq!(endpoint_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(endpoint_url("localhost:1"), "http://localhost:1");
        assert_eq!(endpoint_url("[::1]:9"), "http://[::1]:9");
        assert_eq!(
            endpoint_url("127.0.0.1.evil.com"),
            "https://127.0.0.1.evil.com"
        );
        assert_eq!(endpoint_url("http://h:1/"), "http://h:1");
    }

    #[test]
    fn error_messages_are_bounded_and_plain() {
        assert_eq!(
            error_message(br#"{"__type":"NotFoundException","message":"no key"}"#),
            "no key"
        );
        assert_eq!(
            error_message(br#"{"errors":["permission denied"]}"#),
            "permission denied"
        );
        assert_eq!(error_message(b"\x1b[31mred").as_str(), "[31mred");
        assert_eq!(error_message(&[b'a'; 1000]).len(), 200);
    }

    #[test]
    fn key_env_debug_shows_names_only() {
        let env = KeyEnv::new([("AWS_SECRET_ACCESS_KEY".to_owned(), "s3cret".to_owned())]);
        assert!(!format!("{env:?}").contains("s3cret"));
        assert_eq!(env.get("AWS_SECRET_ACCESS_KEY"), Some("s3cret"));
        assert_eq!(
            KeyEnv::new([("X".to_owned(), String::new())]).get("X"),
            None
        );
    }

    #[test]
    fn raw_signatures_become_der() {
        let key = crate::evidence::sign::SigningKey::generate_p256().unwrap();
        let digest = [7u8; 32];
        let der = key.sign_prehash(&digest).unwrap();
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert_eq!(raw_to_der("t", &raw).unwrap(), der);
        check_signature("t", &key.public_key(), &digest, &der).unwrap();
        assert!(matches!(
            check_signature("t", &key.public_key(), &[8u8; 32], &der),
            Err(KmsError::BadSignature { service: "t" })
        ));
        assert!(matches!(
            raw_to_der("t", &raw[..63]),
            Err(KmsError::Response { .. })
        ));
    }
}
