//! `hashivault://KEY` (and `openbao://KEY`): a key in Vault's or OpenBao's transit engine. The
//! server is `VAULT_ADDR` (or `BAO_ADDR`), the token `VAULT_TOKEN` (or `BAO_TOKEN`, else
//! `~/.vault-token`), the mount `TRANSIT_SECRET_ENGINE_PATH` (default `transit`). Signs
//! `prehashed` SHA-256 digests with `marshaling_algorithm=asn1` at the key's latest version.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{KeyEnv, KmsError, check_signature, field, p256_only, send_json};
use crate::evidence::sign::keys::{PublicKey, SecretText};
use crate::evidence::sign::{KeyBackend, SignError};

const SERVICE: &str = "vault transit";
/// The token file is one line.
const MAX_TOKEN_FILE: u64 = 16 * 1024;

/// A transit key at its latest version when opened.
#[derive(Debug)]
pub struct VaultKey {
    client: reqwest::blocking::Client,
    base: String,
    token: SecretText,
    name: String,
    version: u64,
    public: PublicKey,
}

impl VaultKey {
    pub fn open(name: &str, env: &KeyEnv) -> Result<VaultKey, KmsError> {
        let addr = env
            .get("VAULT_ADDR")
            .or_else(|| env.get("BAO_ADDR"))
            .ok_or_else(|| KmsError::Config {
                service: SERVICE,
                reason: "set VAULT_ADDR (or BAO_ADDR)".into(),
            })?;
        let token = match env.get("VAULT_TOKEN").or_else(|| env.get("BAO_TOKEN")) {
            Some(t) => SecretText::new(t.to_owned()),
            None => token_file(env).ok_or_else(|| KmsError::Credentials {
                service: SERVICE,
                reason: "set VAULT_TOKEN (or BAO_TOKEN), or log in so ~/.vault-token exists".into(),
            })?,
        };
        let mount = env
            .get("TRANSIT_SECRET_ENGINE_PATH")
            .unwrap_or("transit")
            .trim_matches('/');
        let base = format!("{}/v1/{mount}", addr.trim_end_matches('/'));
        let client = super::http_client(SERVICE)?;
        let url = format!("{base}/keys/{name}");
        let response = send_json(
            SERVICE,
            "read key",
            client.get(&url).header("X-Vault-Token", token.expose()),
            &url,
        )?;
        let data = &response["data"];
        let kind = data["type"].as_str().unwrap_or("unknown");
        if kind != "ecdsa-p256" {
            return Err(KmsError::UnsupportedKey {
                service: SERVICE,
                found: kind.to_owned(),
            });
        }
        let version = data["latest_version"]
            .as_u64()
            .ok_or_else(|| KmsError::Response {
                service: SERVICE,
                operation: "read key",
                reason: "no latest_version".into(),
            })?;
        let pem = field(
            SERVICE,
            "read key",
            &data["keys"][version.to_string()],
            "public_key",
        )?;
        let public = PublicKey::from_pem(pem).map_err(|source| KmsError::PublicKey {
            service: SERVICE,
            source,
        })?;
        Ok(VaultKey {
            client,
            base,
            token,
            name: name.to_owned(),
            version,
            public: p256_only(SERVICE, public)?,
        })
    }
}

fn token_file(env: &KeyEnv) -> Option<SecretText> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(env.home_file(".vault-token")?)
        .ok()?
        .take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .ok()?;
    let token = SecretText::new(text.trim().to_owned());
    (!token.expose().is_empty()).then_some(token)
}

impl KeyBackend for VaultKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let err = |source| SignError::Key {
            key: self.key_id(),
            source,
        };
        let url = format!("{}/sign/{}/sha2-256", self.base, self.name);
        let body = serde_json::json!({
            "input": STANDARD.encode(digest),
            "prehashed": true,
            "marshaling_algorithm": "asn1",
            "key_version": self.version,
        });
        let request = self
            .client
            .post(&url)
            .header("X-Vault-Token", self.token.expose())
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).expect("a json value serialises"));
        let response = send_json(SERVICE, "sign", request, &url).map_err(err)?;
        let text = field(SERVICE, "sign", &response["data"], "signature").map_err(err)?;
        let der = parse_signature(text).map_err(err)?;
        check_signature(SERVICE, &self.public, digest, &der).map_err(err)?;
        Ok(der)
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        format!("hashivault://{} (version {})", self.name, self.version)
    }
}

/// `vault:vN:BASE64` → DER bytes.
fn parse_signature(text: &str) -> Result<Vec<u8>, KmsError> {
    let bad = |reason: &str| KmsError::Response {
        service: SERVICE,
        operation: "sign",
        reason: reason.to_owned(),
    };
    let mut parts = text.splitn(3, ':');
    let (Some(prefix), Some(version), Some(b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("signature is not vault:vN:BASE64"));
    };
    let versioned = version
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if prefix.is_empty() || !versioned {
        return Err(bad("signature is not vault:vN:BASE64"));
    }
    STANDARD
        .decode(b64)
        .map_err(|_| bad("signature is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_prefix_is_checked_and_stripped() {
        assert_eq!(parse_signature("vault:v2:AQI=").unwrap(), vec![1, 2]);
        assert_eq!(parse_signature("bao:v1:AQI=").unwrap(), vec![1, 2]);
        for bad in [
            "AQI=",
            "vault:AQI=",
            "vault:x1:AQI=",
            "vault:v:AQI=",
            "vault:v1:%%",
        ] {
            assert!(
                matches!(parse_signature(bad), Err(KmsError::Response { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_address_and_token_are_named() {
        let err = VaultKey::open("k", &KeyEnv::default()).unwrap_err();
        assert!(matches!(err, KmsError::Config { .. }), "{err:?}");
        let env = KeyEnv::new([("VAULT_ADDR".to_owned(), "http://127.0.0.1:1".to_owned())]);
        let err = VaultKey::open("k", &env).unwrap_err();
        assert!(matches!(err, KmsError::Credentials { .. }), "{err:?}");
    }
}
