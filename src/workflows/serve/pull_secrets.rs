//! Pods' `imagePullSecrets` without a cluster client: serve reads them from a folder the
//! Deployment mounts (`--pull-secrets DIR`), one file per secret named
//! `<namespace>.<secret name>` whose content is the secret's `.dockerconfigjson`. A namespace
//! never holds a dot, so the name splits at the first one. Only `auths` entries with a username
//! and password (or `auth`) are used; credential helpers named in a secret are never run.
//!
//! Nothing read here reaches an error, a log line or a metric: a file that is missing,
//! oversized or malformed counts as "no credential", and serve falls back to its own.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::foundation::digest::Digest;
use crate::storage::store::auth::{CredentialSources, EnvCredential, Secret};

/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Longest namespace (a DNS label) and secret name (a DNS subdomain).
const MAX_NAMESPACE: usize = 63;
const MAX_NAME: usize = 253;

/// A pull secret of one namespace, by name; both are checked names, so the file name made of
/// them cannot leave the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    namespace: String,
    name: String,
}

impl SecretRef {
    /// `None` unless `namespace` is a DNS label and `name` a DNS subdomain.
    pub fn new(namespace: &str, name: &str) -> Option<SecretRef> {
        let label = |s: &str, max: usize, dots: bool| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
                })
                && !s.starts_with(['-', '.'])
                && !s.ends_with(['-', '.'])
        };
        (label(namespace, MAX_NAMESPACE, false) && label(name, MAX_NAME, true)).then(|| SecretRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    fn file_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

/// A credential found in a pod's pull secret: the sources to open a store with, and an
/// identity for keeping that store apart from others (the secret and a digest of its content,
/// never the content).
pub struct Found {
    pub sources: CredentialSources,
    pub identity: String,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The host an `auths` key names (`host`, `https://host/v1/`, ...), in canonical spelling.
fn key_host(key: &str) -> Option<String> {
    let key = key.trim();
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    crate::foundation::reference::canonical_host(host).ok()
}

/// The username and password `content` (a `.dockerconfigjson`) holds for `registry`.
fn credential_in(content: &[u8], registry: &str) -> Option<(String, Secret)> {
    let config: DockerConfig = serde_json::from_slice(content).ok()?;
    config
        .auths
        .iter()
        .filter(|(key, _)| key_host(key).as_deref() == Some(registry))
        .find_map(
            |(_, entry)| match (&entry.username, &entry.password, &entry.auth) {
                (Some(u), Some(p), _) if !u.is_empty() => Some((u.clone(), Secret::new(p.clone()))),
                (_, _, Some(auth)) => {
                    let decoded = String::from_utf8(STANDARD.decode(auth.trim()).ok()?).ok()?;
                    let (u, p) = decoded.split_once(':')?;
                    (!u.is_empty()).then(|| (u.to_owned(), Secret::new(p)))
                }
                _ => None,
            },
        )
}

/// The first of `secrets` (in the pod's order) in `dir` that holds a credential for
/// `registry` (a canonical host), if any.
pub fn lookup(dir: &Path, secrets: &[SecretRef], registry: &str) -> Option<Found> {
    secrets.iter().find_map(|secret| {
        let path = dir.join(secret.file_name());
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
            return None;
        }
        let content = std::fs::read(&path).ok()?;
        let (username, password) = credential_in(&content, registry)?;
        Some(Found {
            sources: CredentialSources {
                env: vec![EnvCredential {
                    registry: registry.to_owned(),
                    username,
                    password,
                    source: "imagePullSecrets",
                }],
                env_error: None,
                auth_files: Vec::new(),
            },
            identity: format!(
                "{}/{}@{}",
                secret.namespace,
                secret.name,
                Digest::of(&content)
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_checked_so_the_file_stays_in_the_folder() {
        assert!(SecretRef::new("shop", "regcred").is_some());
        assert!(SecretRef::new("shop", "reg.cred-1").is_some());
        for (ns, name) in [
            ("", "a"),
            ("shop", ""),
            ("shop", "../etc"),
            ("sh/op", "a"),
            ("shop.x", "a"),
            ("Shop", "a"),
            ("shop", "a/b"),
            ("shop", ".hidden"),
            ("-shop", "a"),
        ] {
            assert_eq!(SecretRef::new(ns, name), None, "{ns:?} {name:?}");
        }
        assert!(SecretRef::new(&"a".repeat(64), "x").is_none());
        assert!(SecretRef::new("a", &"b".repeat(254)).is_none());
    }

    #[test]
    fn credentials_are_read_from_auths_in_either_spelling_and_garbage_is_none() {
        let auth = STANDARD.encode("alice:s3cret");
        let config = format!(
            r#"{{"auths": {{"https://reg.example:5000/v1/": {{"auth": "{auth}"}},
                "other.example": {{"username": "bob", "password": "pw"}}}}}}"#
        );
        let (u, p) = credential_in(config.as_bytes(), "reg.example:5000").unwrap();
        assert_eq!((u.as_str(), p.expose()), ("alice", "s3cret"));
        let (u, p) = credential_in(config.as_bytes(), "other.example").unwrap();
        assert_eq!((u.as_str(), p.expose()), ("bob", "pw"));
        assert!(credential_in(config.as_bytes(), "third.example").is_none());
        for garbage in [
            &b"{"[..],
            b"[]",
            b"{\"auths\": 1}",
            b"{\"auths\": {\"r.example\": {\"auth\": \"not base64!\"}}}",
            b"{\"auths\": {\"r.example\": {\"auth\": \"bm9jb2xvbg==\"}}}",
            b"{\"credsStore\": \"evil\"}",
            b"\xff\xfe",
        ] {
            assert!(credential_in(garbage, "r.example").is_none());
        }
        let deep = "[".repeat(10_000);
        assert!(credential_in(deep.as_bytes(), "r.example").is_none());
    }
}
