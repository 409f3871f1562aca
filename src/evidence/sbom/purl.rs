//! Package URLs (`pkg:type/namespace/name@version?qualifiers`), built per the purl spec's
//! percent-encoding and the type rules custody needs (cargo, npm, golang, pypi).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A package URL built by [`Purl::new`]; the string form is canonical (encoded, qualifiers
/// sorted), so equal packages give equal strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Purl(String);

/// Why a purl could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PurlError {
    #[error("package name is empty")]
    EmptyName,
    #[error("{input:?} is not a package url (pkg:type/name)")]
    Malformed { input: String },
}

/// The package types custody writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PurlType {
    Cargo,
    Npm,
    Golang,
    Pypi,
}

impl PurlType {
    pub fn as_str(self) -> &'static str {
        match self {
            PurlType::Cargo => "cargo",
            PurlType::Npm => "npm",
            PurlType::Golang => "golang",
            PurlType::Pypi => "pypi",
        }
    }
}

impl Purl {
    /// Builds a purl from a package's native full name (`@scope/pkg` for npm, the module path
    /// for Go), applying the type's normalisation and the spec's percent-encoding.
    pub fn new(
        ty: PurlType,
        full_name: &str,
        version: Option<&str>,
        qualifiers: &BTreeMap<String, String>,
    ) -> Result<Purl, PurlError> {
        let (namespace, name) = match ty {
            PurlType::Cargo => (None, full_name.to_owned()),
            PurlType::Npm => match full_name.split_once('/') {
                Some((scope, name)) if scope.starts_with('@') => {
                    (Some(scope.to_ascii_lowercase()), name.to_ascii_lowercase())
                }
                _ => (None, full_name.to_ascii_lowercase()),
            },
            // The spec asks for lowercase; the exact module path is kept as a property.
            PurlType::Golang => {
                let lower = full_name.to_ascii_lowercase();
                match lower.rsplit_once('/') {
                    Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
                    None => (None, lower),
                }
            }
            PurlType::Pypi => (None, normalise_python_name(full_name)),
        };
        if name.is_empty() {
            return Err(PurlError::EmptyName);
        }
        let mut out = format!("pkg:{}/", ty.as_str());
        if let Some(ns) = namespace {
            for segment in ns.split('/').filter(|s| !s.is_empty()) {
                out.push_str(&encode(segment));
                out.push('/');
            }
        }
        out.push_str(&encode(&name));
        if let Some(version) = version.filter(|v| !v.is_empty()) {
            out.push('@');
            out.push_str(&encode(version));
        }
        let mut sep = '?';
        for (key, value) in qualifiers.iter().filter(|(_, v)| !v.is_empty()) {
            out.push(sep);
            sep = '&';
            out.push_str(&key.to_ascii_lowercase());
            out.push('=');
            out.push_str(&encode(value));
        }
        Ok(Purl(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Purl> for String {
    fn from(value: Purl) -> String {
        value.0
    }
}

impl TryFrom<String> for Purl {
    type Error = PurlError;
    fn try_from(value: String) -> Result<Purl, PurlError> {
        let rest = value
            .strip_prefix("pkg:")
            .ok_or_else(|| PurlError::Malformed {
                input: value.clone(),
            })?;
        match rest.split_once('/') {
            Some((ty, name)) if !ty.is_empty() && !name.is_empty() => Ok(Purl(value)),
            _ => Err(PurlError::Malformed { input: value }),
        }
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalise_python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:` (which the purl spec
/// leaves as is), UTF-8 bytes as `%XX` uppercase.
fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn purl_table() {
        let table = [
            (
                PurlType::Cargo,
                "serde",
                Some("1.0.200"),
                q(&[]),
                "pkg:cargo/serde@1.0.200",
            ),
            (
                PurlType::Cargo,
                "foo",
                Some("0.1.0"),
                q(&[("vcs_url", "git+https://github.com/o/foo@abc123")]),
                "pkg:cargo/foo@0.1.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Fo%2Ffoo%40abc123",
            ),
            (
                PurlType::Npm,
                "@babel/core",
                Some("7.24.0"),
                q(&[]),
                "pkg:npm/%40babel/core@7.24.0",
            ),
            (
                PurlType::Npm,
                "left-pad",
                Some("1.3.0"),
                q(&[]),
                "pkg:npm/left-pad@1.3.0",
            ),
            (
                PurlType::Golang,
                "github.com/Sirupsen/logrus",
                Some("v1.9.3"),
                q(&[]),
                "pkg:golang/github.com/sirupsen/logrus@v1.9.3",
            ),
            (
                PurlType::Golang,
                "golang.org/x/text",
                Some("v0.3.8-0.20211004125949-5bd84dd9b33b"),
                q(&[]),
                "pkg:golang/golang.org/x/text@v0.3.8-0.20211004125949-5bd84dd9b33b",
            ),
            (
                PurlType::Pypi,
                "Django_Rest.Framework",
                Some("3.15.1"),
                q(&[]),
                "pkg:pypi/django-rest-framework@3.15.1",
            ),
            (
                PurlType::Pypi,
                "zope.interface",
                Some("6.0"),
                q(&[]),
                "pkg:pypi/zope-interface@6.0",
            ),
            (
                PurlType::Pypi,
                "requests",
                Some("2.31.0"),
                q(&[
                    ("repository_url", "https://pypi.internal/simple"),
                    ("a", ""),
                ]),
                "pkg:pypi/requests@2.31.0?repository_url=https:%2F%2Fpypi.internal%2Fsimple",
            ),
            (
                PurlType::Npm,
                "x",
                Some("1.0.0+build 1"),
                q(&[]),
                "pkg:npm/x@1.0.0%2Bbuild%201",
            ),
            (PurlType::Cargo, "ü", None, q(&[]), "pkg:cargo/%C3%BC"),
        ];
        for (ty, name, version, qualifiers, want) in table {
            assert_eq!(
                Purl::new(ty, name, version, &qualifiers).unwrap().as_str(),
                want
            );
        }
    }

    #[test]
    fn empty_name_is_refused() {
        assert_eq!(
            Purl::new(PurlType::Npm, "@scope/", None, &BTreeMap::new()),
            Err(PurlError::EmptyName)
        );
        assert!(matches!(
            Purl::try_from("npm/x".to_owned()),
            Err(PurlError::Malformed { .. })
        ));
    }
}
