//! `azurekms://VAULT_HOST/KEY[/VERSION]`: Azure Key Vault's REST API (get key as a JWK, `sign`
//! with `ES256` over a SHA-256 digest; the raw `r‖s` answer becomes DER). The token comes from
//! the client-credentials flow (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
//! authority `AZURE_AUTHORITY_HOST`, default `https://login.microsoftonline.com`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{KeyEnv, KmsError, check_signature, endpoint_url, field, raw_to_der, send_json};
use crate::evidence::sign::keys::{PublicKey, SecretText};
use crate::evidence::sign::{KeyBackend, SignError};

const SERVICE: &str = "azure key vault";
const API_VERSION: &str = "7.4";

/// One version of a Key Vault EC P-256 key.
#[derive(Debug)]
pub struct AzureKey {
    client: reqwest::blocking::Client,
    /// `…/keys/NAME/VERSION`, from the key's `kid`.
    key_url: String,
    token: SecretText,
    public: PublicKey,
}

impl AzureKey {
    pub fn open(
        vault: &str,
        key: &str,
        version: Option<&str>,
        env: &KeyEnv,
    ) -> Result<AzureKey, KmsError> {
        let client = super::http_client(SERVICE)?;
        let token = access_token(&client, env)?;
        let vault_url = endpoint_url(vault);
        let url = match version {
            Some(v) => format!("{vault_url}/keys/{key}/{v}?api-version={API_VERSION}"),
            None => format!("{vault_url}/keys/{key}?api-version={API_VERSION}"),
        };
        let response = send_json(
            SERVICE,
            "get key",
            client.get(&url).bearer_auth(token.expose()),
            &url,
        )?;
        let jwk = &response["key"];
        let (kty, crv) = (
            jwk["kty"].as_str().unwrap_or("?"),
            jwk["crv"].as_str().unwrap_or("?"),
        );
        if !matches!(kty, "EC" | "EC-HSM") || crv != "P-256" {
            return Err(KmsError::UnsupportedKey {
                service: SERVICE,
                found: format!("{kty} {crv}"),
            });
        }
        let coordinate = |name| -> Result<Vec<u8>, KmsError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(field(SERVICE, "get key", jwk, name)?.trim_end_matches('='))
                .map_err(|_| KmsError::Response {
                    service: SERVICE,
                    operation: "get key",
                    reason: format!("{name} is not base64url"),
                })?;
            Ok(bytes)
        };
        let mut point = vec![4u8];
        point.extend(coordinate("x")?);
        point.extend(coordinate("y")?);
        let verifying =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| KmsError::Response {
                service: SERVICE,
                operation: "get key",
                reason: "x and y are not a P-256 point".into(),
            })?;
        let kid = field(SERVICE, "get key", jwk, "kid")?;
        // Sign at the version the service reported, on the vault we asked.
        let tail = kid
            .split_once("/keys/")
            .map(|(_, t)| t)
            .filter(|t| t.split('/').count() == 2 && t.starts_with(&format!("{key}/")))
            .ok_or_else(|| KmsError::Response {
                service: SERVICE,
                operation: "get key",
                reason: "kid does not name this key and a version".into(),
            })?;
        Ok(AzureKey {
            client,
            key_url: format!("{vault_url}/keys/{tail}"),
            token,
            public: PublicKey::EcdsaP256(verifying),
        })
    }
}

impl KeyBackend for AzureKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let err = |source| SignError::Key {
            key: self.key_id(),
            source,
        };
        let url = format!("{}/sign?api-version={API_VERSION}", self.key_url);
        let body = serde_json::json!({ "alg": "ES256", "value": URL_SAFE_NO_PAD.encode(digest) });
        let request = self
            .client
            .post(&url)
            .bearer_auth(self.token.expose())
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).expect("a json value serialises"));
        let response = send_json(SERVICE, "sign", request, &url).map_err(err)?;
        let raw = URL_SAFE_NO_PAD
            .decode(
                field(SERVICE, "sign", &response, "value")
                    .map_err(err)?
                    .trim_end_matches('='),
            )
            .map_err(|_| {
                err(KmsError::Response {
                    service: SERVICE,
                    operation: "sign",
                    reason: "value is not base64url".into(),
                })
            })?;
        let der = raw_to_der(SERVICE, &raw).map_err(err)?;
        check_signature(SERVICE, &self.public, digest, &der).map_err(err)?;
        Ok(der)
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        let shown = self
            .key_url
            .split_once("://")
            .map_or(self.key_url.as_str(), |(_, rest)| rest);
        format!("azurekms://{}", shown.replacen("/keys/", "/", 1))
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An access token for Key Vault by the client-credentials flow.
fn access_token(client: &reqwest::blocking::Client, env: &KeyEnv) -> Result<SecretText, KmsError> {
    let (Some(tenant), Some(id), Some(secret)) = (
        env.get("AZURE_TENANT_ID"),
        env.get("AZURE_CLIENT_ID"),
        env.get("AZURE_CLIENT_SECRET"),
    ) else {
        return Err(KmsError::Credentials {
            service: SERVICE,
            reason: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".into(),
        });
    };
    let authority = env
        .get("AZURE_AUTHORITY_HOST")
        .unwrap_or("https://login.microsoftonline.com")
        .trim_end_matches('/');
    let url = format!("{authority}/{}/oauth2/v2.0/token", form_encode(tenant));
    let form = zeroize::Zeroizing::new(format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        form_encode(id),
        form_encode(secret),
        form_encode("https://vault.azure.net/.default")
    ));
    let request = client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.as_bytes().to_vec());
    let response = send_json(SERVICE, "token", request, &url)?;
    Ok(SecretText::new(
        field(SERVICE, "token", &response, "access_token")?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn missing_credentials_are_named() {
        let err = AzureKey::open("v.vault.azure.net", "k", None, &KeyEnv::default()).unwrap_err();
        assert!(matches!(err, KmsError::Credentials { .. }), "{err:?}");
    }
}
