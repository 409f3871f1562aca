//! `gcpkms://projects/…/cryptoKeys/K[/cryptoKeyVersions/V]`: Google Cloud KMS's REST API
//! (`publicKey`, `asymmetricSign` with a SHA-256 digest and CRC32C integrity fields, as
//! sigstore sends them). Without a version, the newest enabled one is used. The access token
//! comes from `GOOGLE_OAUTH_ACCESS_TOKEN` or `CLOUDSDK_AUTH_ACCESS_TOKEN`, else the metadata
//! server (`GCE_METADATA_HOST`, default `metadata.google.internal`); the API endpoint from
//! `CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{KeyEnv, KmsError, b64_field, check_signature, field, p256_only, send_json};
use crate::evidence::sign::keys::{PublicKey, SecretText};
use crate::evidence::sign::{KeyBackend, SignError};

const SERVICE: &str = "gcp kms";

/// One enabled P-256 key version.
#[derive(Debug)]
pub struct GcpKey {
    client: reqwest::blocking::Client,
    base: String,
    token: SecretText,
    version: String,
    public: PublicKey,
}

impl GcpKey {
    pub fn open(name: &str, env: &KeyEnv) -> Result<GcpKey, KmsError> {
        let client = super::http_client(SERVICE)?;
        let token = access_token(&client, env)?;
        let base = env
            .get("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS")
            .map(|u| u.trim_end_matches('/').trim_end_matches("/v1").to_owned())
            .unwrap_or_else(|| "https://cloudkms.googleapis.com".to_owned());
        let get = |path: &str, operation| {
            let url = format!("{base}/v1/{path}");
            send_json(
                SERVICE,
                operation,
                client.get(&url).bearer_auth(token.expose()),
                &url,
            )
        };
        let version = if name.contains("/cryptoKeyVersions/") {
            name.to_owned()
        } else {
            let list = get(
                &format!("{name}/cryptoKeyVersions?filter=state%3DENABLED&orderBy=name%20desc"),
                "list versions",
            )?;
            field(
                SERVICE,
                "list versions",
                &list["cryptoKeyVersions"][0],
                "name",
            )
            .map_err(|_| KmsError::Config {
                service: SERVICE,
                reason: format!("{name} has no enabled version"),
            })?
            .to_owned()
        };
        let response = get(&format!("{version}/publicKey"), "publicKey")?;
        let algorithm = response["algorithm"].as_str().unwrap_or("unknown");
        if algorithm != "EC_SIGN_P256_SHA256" {
            return Err(KmsError::UnsupportedKey {
                service: SERVICE,
                found: algorithm.to_owned(),
            });
        }
        let pem = field(SERVICE, "publicKey", &response, "pem")?;
        check_crc(&response, "pemCrc32c", pem.as_bytes(), "publicKey")?;
        let public = PublicKey::from_pem(pem).map_err(|source| KmsError::PublicKey {
            service: SERVICE,
            source,
        })?;
        Ok(GcpKey {
            client,
            base,
            token,
            version,
            public: p256_only(SERVICE, public)?,
        })
    }
}

impl KeyBackend for GcpKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let err = |source| SignError::Key {
            key: self.key_id(),
            source,
        };
        let url = format!("{}/v1/{}:asymmetricSign", self.base, self.version);
        let body = serde_json::json!({
            "digest": { "sha256": STANDARD.encode(digest) },
            "digestCrc32c": crc32c(digest).to_string(),
        });
        let request = self
            .client
            .post(&url)
            .bearer_auth(self.token.expose())
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).expect("a json value serialises"));
        let response = send_json(SERVICE, "asymmetricSign", request, &url).map_err(err)?;
        if response["verifiedDigestCrc32c"].as_bool() != Some(true) {
            return Err(err(KmsError::Response {
                service: SERVICE,
                operation: "asymmetricSign",
                reason: "the service did not confirm the digest's crc32c".into(),
            }));
        }
        let der =
            b64_field(SERVICE, "asymmetricSign", &response, "signature", &STANDARD).map_err(err)?;
        check_crc(&response, "signatureCrc32c", &der, "asymmetricSign").map_err(err)?;
        check_signature(SERVICE, &self.public, digest, &der).map_err(err)?;
        Ok(der)
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        format!("gcpkms://{}", self.version)
    }
}

/// The bearer token: from the environment, else the metadata server.
fn access_token(client: &reqwest::blocking::Client, env: &KeyEnv) -> Result<SecretText, KmsError> {
    if let Some(t) = env
        .get("GOOGLE_OAUTH_ACCESS_TOKEN")
        .or_else(|| env.get("CLOUDSDK_AUTH_ACCESS_TOKEN"))
    {
        return Ok(SecretText::new(t.to_owned()));
    }
    let host = env
        .get("GCE_METADATA_HOST")
        .unwrap_or("metadata.google.internal");
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
    let response = send_json(
        SERVICE,
        "metadata token",
        client.get(&url).header("Metadata-Flavor", "Google"),
        &url,
    )
    .map_err(|_| KmsError::Credentials {
        service: SERVICE,
        reason: "set GOOGLE_OAUTH_ACCESS_TOKEN, or run where the metadata server answers".into(),
    })?;
    Ok(SecretText::new(
        field(SERVICE, "metadata token", &response, "access_token")?.to_owned(),
    ))
}

/// A CRC32C field (an int64 sent as a decimal string) must match `bytes`.
fn check_crc(
    response: &serde_json::Value,
    name: &str,
    bytes: &[u8],
    operation: &'static str,
) -> Result<(), KmsError> {
    let found = match &response[name] {
        serde_json::Value::String(s) => s.parse::<u64>().ok(),
        v => v.as_u64(),
    };
    if found != Some(u64::from(crc32c(bytes))) {
        return Err(KmsError::Response {
            service: SERVICE,
            operation,
            reason: format!("{name} is missing or does not match"),
        });
    }
    Ok(())
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: inputs here are tiny.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C (RFC 3720 appendix B.4 family).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn crc_fields_are_compared() {
        let ok = serde_json::json!({ "c": crc32c(b"x").to_string() });
        check_crc(&ok, "c", b"x", "t").unwrap();
        for bad in [serde_json::json!({}), serde_json::json!({ "c": "1" })] {
            assert!(matches!(
                check_crc(&bad, "c", b"x", "t"),
                Err(KmsError::Response { .. })
            ));
        }
    }
}
