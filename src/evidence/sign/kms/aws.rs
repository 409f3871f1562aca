//! `awskms://` keys: AWS KMS's JSON 1.1 API (`TrentService.GetPublicKey`, `TrentService.Sign`
//! with `MessageType=DIGEST`), requests signed with [`super::sigv4`]. Credentials and region come
//! from the SDKs' standard sources: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN`, then the shared credentials file for `AWS_PROFILE`; the endpoint from
//! the reference's host, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, else the regional one.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{KeyEnv, KmsError, b64_field, check_signature, endpoint_url, p256_only, send_json};
use crate::evidence::sign::keys::{PublicKey, SecretText};
use crate::evidence::sign::{KeyBackend, SignError};

const SERVICE: &str = "aws kms";
/// Shared config and credentials files are small; more is not one.
const MAX_PROFILE_FILE: u64 = 256 * 1024;

pub use super::sigv4::Credentials;

/// An AWS KMS key: signs digests remotely, verifies each signature with its public key.
#[derive(Debug)]
pub struct AwsKey {
    conn: Connection,
    key: String,
    reference: String,
    public: PublicKey,
}

/// Where and as whom requests go.
#[derive(Debug)]
struct Connection {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    region: String,
    credentials: Credentials,
}

impl AwsKey {
    /// Resolves credentials, region and endpoint, then fetches the public key.
    pub fn open(endpoint: Option<&str>, key: &str, env: &KeyEnv) -> Result<AwsKey, KmsError> {
        let profile = env
            .get("AWS_PROFILE")
            .or_else(|| env.get("AWS_DEFAULT_PROFILE"))
            .unwrap_or("default")
            .to_owned();
        let credentials = credentials(env, &profile)?;
        // A key ARN names its region; otherwise the environment or the profile does.
        let region = key
            .strip_prefix("arn:")
            .and_then(|a| a.split(':').nth(2))
            .map(str::to_owned)
            .or_else(|| env.get("AWS_REGION").map(str::to_owned))
            .or_else(|| env.get("AWS_DEFAULT_REGION").map(str::to_owned))
            .or_else(|| {
                let path = env
                    .get("AWS_CONFIG_FILE")
                    .map(PathBuf::from)
                    .or_else(|| env.home_file(".aws/config"))?;
                let section = match profile.as_str() {
                    "default" => "default".to_owned(),
                    p => format!("profile {p}"),
                };
                profile_value(&path, &section, "region")
            })
            .ok_or_else(|| KmsError::Config {
                service: SERVICE,
                reason: "no region: set AWS_REGION, use a key arn, or set region in the profile"
                    .into(),
            })?;
        let base = match endpoint {
            Some(host) => endpoint_url(host),
            None => env
                .get("AWS_ENDPOINT_URL_KMS")
                .or_else(|| env.get("AWS_ENDPOINT_URL"))
                .map(endpoint_url)
                .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com")),
        };
        let url = reqwest::Url::parse(&format!("{base}/")).map_err(|_| KmsError::Config {
            service: SERVICE,
            reason: format!("endpoint {base} is not a url"),
        })?;
        let conn = Connection {
            client: super::http_client(SERVICE)?,
            url,
            region,
            credentials,
        };
        let response = conn.call("GetPublicKey", &serde_json::json!({ "KeyId": key }))?;
        // moto omits KeySpec; CustomerMasterKeySpec is the older name of the same field.
        let spec = response["KeySpec"]
            .as_str()
            .or_else(|| response["CustomerMasterKeySpec"].as_str())
            .unwrap_or("unknown");
        if spec != "ECC_NIST_P256" {
            return Err(KmsError::UnsupportedKey {
                service: SERVICE,
                found: spec.to_owned(),
            });
        }
        let der = b64_field(SERVICE, "GetPublicKey", &response, "PublicKey", &STANDARD)?;
        let public = PublicKey::from_spki_der(&der).map_err(|source| KmsError::PublicKey {
            service: SERVICE,
            source,
        })?;
        Ok(AwsKey {
            conn,
            key: key.to_owned(),
            reference: format!("awskms://{}/{key}", endpoint.unwrap_or("")),
            public: p256_only(SERVICE, public)?,
        })
    }
}

impl Connection {
    fn call(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, KmsError> {
        let body = serde_json::to_vec(body).expect("a json value serialises");
        let amz_date = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let host = match (self.url.host_str(), self.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let target = format!("TrentService.{operation}");
        let mut headers = vec![
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Host", host.as_str()),
            ("X-Amz-Date", amz_date.as_str()),
            ("X-Amz-Target", target.as_str()),
        ];
        if let Some(token) = &self.credentials.session_token {
            headers.push(("X-Amz-Security-Token", token.expose()));
        }
        let authorization = super::sigv4::authorization(
            &self.credentials,
            &super::sigv4::Scope {
                amz_date: &amz_date,
                region: &self.region,
                service: "kms",
            },
            &super::sigv4::Request {
                method: "POST",
                path: self.url.path(),
                query: "",
                headers: &headers,
                body: &body,
            },
        );
        let mut request = self
            .client
            .post(self.url.clone())
            .header("Authorization", authorization);
        for (name, value) in headers.iter().filter(|(n, _)| *n != "Host") {
            request = request.header(*name, *value);
        }
        send_json(SERVICE, operation, request.body(body), self.url.as_str())
    }
}

impl KeyBackend for AwsKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let err = |source| SignError::Key {
            key: self.reference.clone(),
            source,
        };
        let response = self
            .conn
            .call(
                "Sign",
                &serde_json::json!({
                    "KeyId": self.key,
                    "Message": STANDARD.encode(digest),
                    "MessageType": "DIGEST",
                    "SigningAlgorithm": "ECDSA_SHA_256",
                }),
            )
            .map_err(err)?;
        let der = b64_field(SERVICE, "Sign", &response, "Signature", &STANDARD).map_err(err)?;
        check_signature(SERVICE, &self.public, digest, &der).map_err(err)?;
        Ok(der)
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        self.reference.clone()
    }
}

/// Environment credentials first, then the shared credentials file's profile.
fn credentials(env: &KeyEnv, profile: &str) -> Result<Credentials, KmsError> {
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: SecretText::new(secret.to_owned()),
            session_token: env
                .get("AWS_SESSION_TOKEN")
                .map(|t| SecretText::new(t.to_owned())),
        });
    }
    let path = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".aws/credentials"));
    let value = |name| {
        path.as_deref()
            .and_then(|p| profile_value(p, profile, name))
    };
    match (value("aws_access_key_id"), value("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: SecretText::new(secret),
            session_token: value("aws_session_token").map(SecretText::new),
        }),
        _ => Err(KmsError::Credentials {
            service: SERVICE,
            reason: format!(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile {profile} keys in the shared credentials file"
            ),
        }),
    }
}

/// `key` in `[section]` of an INI-style AWS file; unreadable or oversized files count as
/// absent.
fn profile_value(path: &Path, section: &str, key: &str) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_PROFILE_FILE)
        .read_to_string(&mut text)
        .ok()?;
    let text = zeroize::Zeroizing::new(text);
    let mut current = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
        } else if current == Some(section)
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> KeyEnv {
        KeyEnv::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn credentials_from_env_then_profile_file() {
        let c = credentials(
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "sec"),
            ]),
            "default",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(format!("{c:?}"), "Credentials(AKID, ***)");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = D\naws_secret_access_key = d\n[ci]\naws_access_key_id=C\naws_secret_access_key=c\naws_session_token = t\n",
        )
        .unwrap();
        let e = env(&[("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())]);
        let c = credentials(&e, "ci").unwrap();
        assert_eq!(c.access_key_id, "C");
        assert_eq!(c.secret_access_key.expose(), "c");
        assert_eq!(c.session_token.as_ref().map(SecretText::expose), Some("t"));
        assert_eq!(credentials(&e, "default").unwrap().access_key_id, "D");
        let err = credentials(&e, "missing").unwrap_err();
        assert!(matches!(err, KmsError::Credentials { .. }), "{err:?}");
    }

    #[test]
    fn open_without_region_says_so() {
        let e = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        let err = AwsKey::open(None, "alias/x", &e).unwrap_err();
        assert!(matches!(err, KmsError::Config { .. }), "{err:?}");
    }
}
