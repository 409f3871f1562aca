//! Key references in the syntax cosign takes wherever a key is given: a file path, `env://VAR`,
//! `awskms://`, `gcpkms://`, `azurekms://`, `hashivault://` (and `openbao://`), and RFC 7512
//! `pkcs11:` URIs. Parsing is pure and bounded; opening a reference is [`super::open`]'s job.

use std::fmt;
use std::path::PathBuf;

use super::pkcs11_uri::Pkcs11Uri;

/// Longest key reference accepted; real ones are well under 1 KiB.
pub const MAX_KEY_REF: usize = 4096;

/// A parsed key reference.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A PEM file: cosign's encrypted key, PKCS#8, or (for verification) a public key.
    File(PathBuf),
    /// `env://VAR`: the PEM text is in an environment variable.
    Env(String),
    /// `awskms://[HOST[:PORT]]/KEY`: key id, key ARN, `alias/NAME` or alias ARN.
    AwsKms {
        endpoint: Option<String>,
        key: String,
    },
    /// `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]`.
    GcpKms { name: String },
    /// `azurekms://VAULT_HOST/KEY[/VERSION]`.
    AzureKms {
        vault: String,
        key: String,
        version: Option<String>,
    },
    /// `hashivault://KEY` or `openbao://KEY`: a transit key; the server comes from the
    /// environment.
    HashiVault { key: String },
    /// An RFC 7512 `pkcs11:` URI.
    Pkcs11(Pkcs11Uri),
}

impl fmt::Debug for KeyRef {
    // A pkcs11 URI may carry `pin-value`: Debug shows the redacted form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({self})")
    }
}

impl fmt::Display for KeyRef {
    /// The reference as a user would write it, with any PIN removed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Env(var) => write!(f, "env://{var}"),
            KeyRef::AwsKms { endpoint, key } => {
                write!(f, "awskms://{}/{key}", endpoint.as_deref().unwrap_or(""))
            }
            KeyRef::GcpKms { name } => write!(f, "gcpkms://{name}"),
            KeyRef::AzureKms {
                vault,
                key,
                version,
            } => match version {
                Some(v) => write!(f, "azurekms://{vault}/{key}/{v}"),
                None => write!(f, "azurekms://{vault}/{key}"),
            },
            KeyRef::HashiVault { key } => write!(f, "hashivault://{key}"),
            KeyRef::Pkcs11(uri) => write!(f, "{uri}"),
        }
    }
}

/// Why a key reference does not parse. Never carries a PIN.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRefError {
    #[error("key reference is {size} bytes, more than the {max} allowed")]
    TooLong { size: usize, max: usize },
    #[error("key reference is empty")]
    Empty,
    #[error("{scheme} key reference {reference:?} is malformed: {reason}")]
    Malformed {
        scheme: &'static str,
        reference: String,
        reason: &'static str,
    },
    #[error("pkcs11 uri is malformed: {reason}")]
    Pkcs11 { reason: String },
}

impl KeyRef {
    /// Parses a key reference. Anything without a known scheme is a file path, as before.
    pub fn parse(reference: &str) -> Result<KeyRef, KeyRefError> {
        if reference.len() > MAX_KEY_REF {
            return Err(KeyRefError::TooLong {
                size: reference.len(),
                max: MAX_KEY_REF,
            });
        }
        if reference.is_empty() {
            return Err(KeyRefError::Empty);
        }
        if let Some(var) = reference.strip_prefix("env://") {
            return match var.is_empty() {
                true => Err(malformed("env", reference, "no variable name")),
                false => Ok(KeyRef::Env(var.to_owned())),
            };
        }
        if let Some(rest) = reference.strip_prefix("awskms://") {
            return parse_aws(reference, rest);
        }
        if let Some(rest) = reference.strip_prefix("gcpkms://") {
            return parse_gcp(reference, rest);
        }
        if let Some(rest) = reference.strip_prefix("azurekms://") {
            return parse_azure(reference, rest);
        }
        for scheme in ["hashivault://", "openbao://"] {
            if let Some(rest) = reference.strip_prefix(scheme) {
                return parse_vault(reference, rest);
            }
        }
        if reference.starts_with("pkcs11:") {
            return Pkcs11Uri::parse(reference)
                .map(KeyRef::Pkcs11)
                .map_err(|e| KeyRefError::Pkcs11 { reason: e.reason });
        }
        Ok(KeyRef::File(PathBuf::from(reference)))
    }

    /// Whether the private key stays in a service or token (everything but files and env).
    pub fn is_remote(&self) -> bool {
        !matches!(self, KeyRef::File(_) | KeyRef::Env(_))
    }
}

fn malformed(scheme: &'static str, reference: &str, reason: &'static str) -> KeyRefError {
    KeyRefError::Malformed {
        scheme,
        reference: reference.to_owned(),
        reason,
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')
}

fn parse_aws(reference: &str, rest: &str) -> Result<KeyRef, KeyRefError> {
    let bad = |reason| malformed("awskms", reference, reason);
    let (host, key) = rest
        .split_once('/')
        .ok_or_else(|| bad("expected awskms://[HOST[:PORT]]/KEY"))?;
    if key.is_empty() {
        return Err(bad("no key id, alias or arn"));
    }
    if !key.chars().all(is_key_char) {
        return Err(bad(
            "the key has characters a key id, alias or arn never has",
        ));
    }
    let uuidish = |s: &str| {
        let s = s.strip_prefix("mrk-").unwrap_or(s);
        !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    };
    let valid = if let Some(arn) = key.strip_prefix("arn:") {
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        parts.len() == 5
            && matches!(parts[0], "aws" | "aws-us-gov" | "aws-cn")
            && parts[1] == "kms"
            && (parts[4].strip_prefix("key/").is_some_and(uuidish)
                || parts[4]
                    .strip_prefix("alias/")
                    .is_some_and(|a| !a.is_empty()))
    } else if let Some(alias) = key.strip_prefix("alias/") {
        !alias.is_empty() && !alias.contains('/')
    } else {
        uuidish(key)
    };
    if !valid {
        return Err(bad("expected a key id, alias/NAME, or a key or alias arn"));
    }
    if host.contains(['@', '?', '#', ' ']) {
        return Err(bad("the endpoint must be HOST[:PORT]"));
    }
    Ok(KeyRef::AwsKms {
        endpoint: (!host.is_empty()).then(|| host.to_owned()),
        key: key.to_owned(),
    })
}

fn parse_gcp(reference: &str, rest: &str) -> Result<KeyRef, KeyRefError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let shape_ok = matches!(parts.len(), 8 | 10)
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "keyRings"
        && parts[6] == "cryptoKeys"
        && (parts.len() == 8 || matches!(parts[8], "cryptoKeyVersions" | "versions"))
        && parts
            .iter()
            .skip(1)
            .step_by(2)
            .all(|p| !p.is_empty() && p.chars().all(is_key_char));
    if !shape_ok {
        return Err(malformed(
            "gcpkms",
            reference,
            "expected gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]",
        ));
    }
    // cosign accepts `/versions/V`; the API spells it `cryptoKeyVersions`.
    let name = match parts.len() {
        10 => format!("{}/cryptoKeyVersions/{}", parts[..8].join("/"), parts[9]),
        _ => rest.to_owned(),
    };
    Ok(KeyRef::GcpKms { name })
}

fn parse_azure(reference: &str, rest: &str) -> Result<KeyRef, KeyRefError> {
    let bad = |reason| malformed("azurekms", reference, reason);
    let parts: Vec<&str> = rest.split('/').collect();
    let (vault, key, version) = match parts.as_slice() {
        [vault, key] => (*vault, *key, None),
        [vault, key, version] => (*vault, *key, (!version.is_empty()).then_some(*version)),
        _ => return Err(bad("expected azurekms://VAULT_HOST/KEY[/VERSION]")),
    };
    if vault.is_empty()
        || !vault
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
    {
        return Err(bad(
            "the vault host is empty or has characters a host never has",
        ));
    }
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(bad("a key name is letters, digits and dashes"));
    }
    if version.is_some_and(|v| {
        !v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }) {
        return Err(bad("a key version is lower-case letters and digits"));
    }
    Ok(KeyRef::AzureKms {
        vault: vault.to_owned(),
        key: key.to_owned(),
        version: version.map(str::to_owned),
    })
}

fn parse_vault(reference: &str, key: &str) -> Result<KeyRef, KeyRefError> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = key.starts_with(word)
        && key.ends_with(word)
        && key.chars().all(|c| word(c) || c == '-' || c == '.');
    if !ok {
        return Err(malformed(
            "hashivault",
            reference,
            "a transit key name is letters, digits, '_', '-' and '.', with no slashes",
        ));
    }
    Ok(KeyRef::HashiVault {
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> KeyRef {
        KeyRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn files_and_env_keep_their_meaning() {
        assert_eq!(ok("cosign.key"), KeyRef::File("cosign.key".into()));
        assert_eq!(
            ok("./k/with://inside"),
            KeyRef::File("./k/with://inside".into())
        );
        assert_eq!(ok("env://KEY"), KeyRef::Env("KEY".into()));
        assert!(!ok("env://KEY").is_remote());
        assert_eq!(
            KeyRef::parse("env://"),
            Err(malformed("env", "env://", "no variable name"))
        );
        assert_eq!(KeyRef::parse(""), Err(KeyRefError::Empty));
    }

    #[test]
    fn aws_references() {
        let table = [
            ("awskms:///alias/release", None, "alias/release"),
            (
                "awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab",
                Some("localhost:4566"),
                "1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            (
                "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab",
                None,
                "mrk-1234abcd12ab34cd56ef1234567890ab",
            ),
            (
                "awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab",
                None,
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab",
            ),
            (
                "awskms:///arn:aws-cn:kms:cn-north-1:111122223333:alias/x",
                None,
                "arn:aws-cn:kms:cn-north-1:111122223333:alias/x",
            ),
        ];
        for (s, endpoint, key) in table {
            assert_eq!(
                ok(s),
                KeyRef::AwsKms {
                    endpoint: endpoint.map(str::to_owned),
                    key: key.to_owned()
                },
                "{s}"
            );
            assert_eq!(ok(s).to_string(), s);
        }
        for bad in [
            "awskms://",
            "awskms:///",
            "awskms:///alias/",
            "awskms:///alias/a/b",
            "awskms:///not-a-key!",
            "awskms:///arn:aws:s3:eu-west-1:1:key/ab",
            "awskms:///arn:aws:kms:eu-west-1:1:key/zz",
            "awskms://user@host/alias/x",
        ] {
            assert!(
                matches!(
                    KeyRef::parse(bad),
                    Err(KeyRefError::Malformed {
                        scheme: "awskms",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn gcp_references() {
        let base = "projects/p/locations/global/keyRings/r/cryptoKeys/k";
        assert_eq!(
            ok(&format!("gcpkms://{base}")),
            KeyRef::GcpKms { name: base.into() }
        );
        assert_eq!(
            ok(&format!("gcpkms://{base}/versions/3")),
            KeyRef::GcpKms {
                name: format!("{base}/cryptoKeyVersions/3")
            }
        );
        for bad in [
            "gcpkms://projects/p",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/other/1",
            "gcpkms://projects/p?x/locations/l/keyRings/r/cryptoKeys/k",
        ] {
            assert!(
                matches!(
                    KeyRef::parse(bad),
                    Err(KeyRefError::Malformed {
                        scheme: "gcpkms",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn azure_references() {
        assert_eq!(
            ok("azurekms://v.vault.azure.net/key-1"),
            KeyRef::AzureKms {
                vault: "v.vault.azure.net".into(),
                key: "key-1".into(),
                version: None
            }
        );
        assert_eq!(
            ok("azurekms://v.vault.azure.net/key-1/abc123"),
            KeyRef::AzureKms {
                vault: "v.vault.azure.net".into(),
                key: "key-1".into(),
                version: Some("abc123".into())
            }
        );
        for bad in [
            "azurekms://",
            "azurekms://host",
            "azurekms:///key",
            "azurekms://host/key_1",
            "azurekms://host/key/ABC",
            "azurekms://host/key/v/extra",
            "azurekms://ho@st/key",
        ] {
            assert!(
                matches!(
                    KeyRef::parse(bad),
                    Err(KeyRefError::Malformed {
                        scheme: "azurekms",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn vault_references() {
        assert_eq!(
            ok("hashivault://release.key-1"),
            KeyRef::HashiVault {
                key: "release.key-1".into()
            }
        );
        assert_eq!(ok("openbao://k"), KeyRef::HashiVault { key: "k".into() });
        for bad in [
            "hashivault://",
            "hashivault://a/b",
            "hashivault://-a",
            "hashivault://a.",
        ] {
            assert!(
                matches!(
                    KeyRef::parse(bad),
                    Err(KeyRefError::Malformed {
                        scheme: "hashivault",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn too_long_is_refused_before_parsing() {
        let long = format!("awskms:///alias/{}", "a".repeat(MAX_KEY_REF));
        assert!(matches!(
            KeyRef::parse(&long),
            Err(KeyRefError::TooLong {
                max: MAX_KEY_REF,
                ..
            })
        ));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for s in [
            "awskms:/",
            "awskms://:/",
            "gcpkms://////////",
            "azurekms://a/b/c/d/e",
            "pkcs11:",
            "pkcs11:%",
            "pkcs11:id=%zz",
            "pkcs11:?",
            "pkcs11:token=a?module-path=%",
            "hashivault://\u{1F600}",
            "awskms:///\u{1F600}",
        ] {
            let _ = KeyRef::parse(s);
        }
    }
}
