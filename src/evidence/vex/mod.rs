//! VEX documents in the three formats custody reads, OpenVEX 0.2.0 ([`openvex`]), CSAF 2.0 with
//! the VEX profile ([`csaf`]) and CycloneDX VEX ([`cyclonedx`]), as one model of statements:
//! a vulnerability, the products it speaks of, a status and its justification. Deciding which
//! finding a statement covers belongs to `decisions::vuln::policy`.

pub mod csaf;
pub mod cyclonedx;
pub mod openvex;

use std::io::Read as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::foundation::digest::Digest;

/// The predicate type custody writes for OpenVEX (cosign's `--type openvex`, found by cosign
/// and trivy users); versioned forms under it are read too.
pub const PREDICATE_OPENVEX: &str = "https://openvex.dev/ns";
/// No predicate type is registered for CSAF; custody reads this one, and any under
/// `https://docs.oasis-open.org/csaf/`.
pub const PREDICATE_CSAF: &str = "https://docs.oasis-open.org/csaf/csaf/v2.0";
/// A CycloneDX document carrying VEX; a CycloneDX BOM predicate that lists vulnerabilities
/// is read as VEX too.
pub const PREDICATE_CYCLONEDX_VEX: &str = "https://cyclonedx.org/vex";

/// Largest VEX document read.
pub const MAX_VEX_BYTES: u64 = 16 * 1024 * 1024;
/// Most statements one document may yield.
pub const MAX_VEX_STATEMENTS: usize = 100_000;
/// Deepest CSAF product tree branch or CycloneDX component nesting followed.
pub const MAX_DEPTH: usize = 32;

/// Which format a document was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VexFormat {
    OpenVex,
    Csaf,
    CycloneDx,
}

impl VexFormat {
    /// How reports name it.
    pub fn label(self) -> &'static str {
        match self {
            VexFormat::OpenVex => "openvex",
            VexFormat::Csaf => "csaf vex",
            VexFormat::CycloneDx => "cyclonedx vex",
        }
    }

    /// The format an attestation's predicate type (and, for a CycloneDX BOM, its content)
    /// announces; `None` when it is not VEX.
    pub fn of_predicate(predicate_type: &str, predicate: Option<&Value>) -> Option<VexFormat> {
        if predicate_type == PREDICATE_OPENVEX
            || predicate_type.starts_with("https://openvex.dev/ns/")
        {
            return Some(VexFormat::OpenVex);
        }
        if predicate_type == PREDICATE_CSAF
            || predicate_type.starts_with("https://docs.oasis-open.org/csaf/")
        {
            return Some(VexFormat::Csaf);
        }
        if predicate_type == PREDICATE_CYCLONEDX_VEX {
            return Some(VexFormat::CycloneDx);
        }
        let lists_vulnerabilities = predicate
            .and_then(|p| p.get("vulnerabilities"))
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
        (crate::evidence::attest::is_cyclonedx_predicate(predicate_type) && lists_vulnerabilities)
            .then_some(VexFormat::CycloneDx)
    }
}

/// What a statement says of its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }
}

/// One VEX document in custody's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexDocument {
    /// The file or attestation it came from, for reports.
    pub name: String,
    pub format: VexFormat,
    pub statements: Vec<VexStatement>,
    /// The artifact the document is attached to, when it came as an attestation bound to it:
    /// statements without products speak of it, and products named by digest must be it.
    pub subject: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexVulnerability {
    pub name: String,
    pub aliases: Vec<String>,
}

/// A product: its identifier (often a purl), other purls it is known by, the SHA-256 digests
/// (hex) that identify it, and the packages inside it the statement is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VexProduct {
    pub id: String,
    pub purls: Vec<String>,
    pub sha256: Vec<String>,
    pub subcomponents: Vec<String>,
}

impl VexProduct {
    /// Every SHA-256 digest (hex) the product names: its hashes, and `sha256:<hex>` (or its
    /// percent-encoded form, as in a `pkg:oci` purl) in its identifiers.
    pub fn digests(&self) -> Vec<String> {
        let mut out = self.sha256.clone();
        for id in std::iter::once(&self.id).chain(&self.purls) {
            let lower = id.to_ascii_lowercase();
            for marker in ["sha256:", "sha256%3a"] {
                let mut rest = lower.as_str();
                while let Some(at) = rest.find(marker) {
                    rest = &rest[at + marker.len()..];
                    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
                    if hex.len() == 64 {
                        out.push(hex);
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexStatement {
    pub vulnerability: VexVulnerability,
    pub products: Vec<VexProduct>,
    pub status: VexStatus,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
}

impl VexStatement {
    /// The justification and impact statement, as a report shows them.
    pub fn justification_text(&self) -> String {
        match (&self.justification, &self.impact_statement) {
            (Some(j), Some(i)) => format!("{j}: {i}"),
            (Some(j), None) => j.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Why a VEX document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VexError {
    #[error("could not read vex document {name}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("vex document {name} is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("vex document {name} is not valid {format} json")]
    Json {
        name: String,
        format: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("vex document {name} has @context {context:?}, not an openvex one")]
    NotOpenVex { name: String, context: String },
    #[error(
        "vex document {name} is neither openvex (@context), csaf (document.csaf_version) nor cyclonedx (bomFormat)"
    )]
    UnknownFormat { name: String },
    #[error("vex document {name} is not usable {format}: {reason}")]
    Invalid {
        name: String,
        format: &'static str,
        reason: String,
    },
    #[error("vex document {name} has more than {limit} statements")]
    TooManyStatements { name: String, limit: usize },
}

impl VexDocument {
    /// Parses a VEX document of any of the three formats, told apart by their marker fields.
    pub fn parse(bytes: &[u8], name: &str) -> Result<VexDocument, VexError> {
        if bytes.len() as u64 > MAX_VEX_BYTES {
            return Err(VexError::TooLarge {
                name: name.to_owned(),
                limit: MAX_VEX_BYTES,
            });
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|source| VexError::Json {
            name: name.to_owned(),
            format: "vex",
            source,
        })?;
        let format = Self::detect(&value).ok_or_else(|| VexError::UnknownFormat {
            name: name.to_owned(),
        })?;
        Self::from_value(format, &value, name)
    }

    /// The format a parsed document's marker fields say.
    pub fn detect(value: &Value) -> Option<VexFormat> {
        if value.get("@context").is_some() {
            Some(VexFormat::OpenVex)
        } else if value
            .get("document")
            .is_some_and(|d| d.get("csaf_version").is_some())
        {
            Some(VexFormat::Csaf)
        } else if value.get("bomFormat").is_some() {
            Some(VexFormat::CycloneDx)
        } else {
            None
        }
    }

    /// Reads a document known to be `format` (an attestation's predicate).
    pub fn from_value(
        format: VexFormat,
        value: &Value,
        name: &str,
    ) -> Result<VexDocument, VexError> {
        let statements = match format {
            VexFormat::OpenVex => openvex::statements(value, name)?,
            VexFormat::Csaf => csaf::statements(value, name)?,
            VexFormat::CycloneDx => cyclonedx::statements(value, name)?,
        };
        if statements.len() > MAX_VEX_STATEMENTS {
            return Err(VexError::TooManyStatements {
                name: name.to_owned(),
                limit: MAX_VEX_STATEMENTS,
            });
        }
        Ok(VexDocument {
            name: name.to_owned(),
            format,
            statements,
            subject: None,
        })
    }

    /// Reads and parses a VEX file (at most [`MAX_VEX_BYTES`]).
    pub fn read(path: &Path) -> Result<VexDocument, VexError> {
        let name = path.display().to_string();
        let io = |source| VexError::Io {
            name: name.clone(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_VEX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        VexDocument::parse(&bytes, &name)
    }
}

/// The string at `field` of `value`, if it is one.
fn str_at<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// The array at `field` of `value`: empty when absent, an error when something else.
fn array_at<'a>(
    value: &'a Value,
    field: &str,
    name: &str,
    format: &'static str,
) -> Result<&'a [Value], VexError> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(VexError::Invalid {
            name: name.to_owned(),
            format,
            reason: format!("{field} is not an array"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_and_unknown_ones_named() {
        let table: &[(&str, Option<VexFormat>)] = &[
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0"}"#,
                Some(VexFormat::OpenVex),
            ),
            (
                r#"{"document":{"csaf_version":"2.0"}}"#,
                Some(VexFormat::Csaf),
            ),
            (r#"{"bomFormat":"CycloneDX"}"#, Some(VexFormat::CycloneDx)),
            (r#"{"statements":[]}"#, None),
        ];
        for (text, want) in table {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(VexDocument::detect(&v), *want, "{text}");
        }
        assert!(matches!(
            VexDocument::parse(br#"{"statements":[]}"#, "v.json"),
            Err(VexError::UnknownFormat { name }) if name == "v.json"
        ));
        assert!(matches!(
            VexDocument::parse(b"{", "v.json"),
            Err(VexError::Json { .. })
        ));
        let big = vec![b' '; MAX_VEX_BYTES as usize + 1];
        assert!(matches!(
            VexDocument::parse(&big, "v.json"),
            Err(VexError::TooLarge { .. })
        ));
    }

    #[test]
    fn predicate_types_say_the_format() {
        let bom_with_vulns = serde_json::json!({"bomFormat": "CycloneDX", "vulnerabilities": [{}]});
        let table = [
            ("https://openvex.dev/ns", None, Some(VexFormat::OpenVex)),
            (
                "https://openvex.dev/ns/v0.2.0",
                None,
                Some(VexFormat::OpenVex),
            ),
            ("https://openvex.dev/nsx", None, None),
            (PREDICATE_CSAF, None, Some(VexFormat::Csaf)),
            (PREDICATE_CYCLONEDX_VEX, None, Some(VexFormat::CycloneDx)),
            (
                "https://cyclonedx.org/bom",
                Some(&bom_with_vulns),
                Some(VexFormat::CycloneDx),
            ),
            ("https://cyclonedx.org/bom", None, None),
            ("https://spdx.dev/Document", Some(&bom_with_vulns), None),
        ];
        for (t, p, want) in table {
            assert_eq!(VexFormat::of_predicate(t, p), want, "{t}");
        }
    }

    #[test]
    fn product_digests_come_from_hashes_and_identifiers() {
        let hex = "a".repeat(64);
        let p = VexProduct {
            id: format!("pkg:oci/app@sha256%3A{hex}?repository_url=r/app"),
            purls: vec![format!("sha256:{}", "b".repeat(64)), "sha256:short".into()],
            sha256: vec!["c".repeat(64)],
            subcomponents: vec![],
        };
        assert_eq!(p.digests(), vec!["c".repeat(64), hex, "b".repeat(64)]);
    }
}
