//! OpenVEX: the reader (v0.2.0, and v0.0.1's string forms) and the one-statement document
//! `custody vex` writes (product by digest, as vexctl does).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{VexError, VexProduct, VexStatement, VexStatus, VexVulnerability};
use crate::evidence::attest::Timestamp;
use crate::foundation::digest::Digest;

/// The `@context` custody writes.
pub const CONTEXT_V0_2_0: &str = "https://openvex.dev/ns/v0.2.0";

/// The justifications OpenVEX defines for `not_affected`.
pub const JUSTIFICATIONS: &[&str] = &[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

pub(super) fn statements(value: &Value, name: &str) -> Result<Vec<VexStatement>, VexError> {
    let context = super::str_at(value, "@context").unwrap_or_default();
    if !context.starts_with("https://openvex.dev/ns") {
        return Err(VexError::NotOpenVex {
            name: name.to_owned(),
            context: context.to_owned(),
        });
    }
    if super::array_at(value, "statements", name, "openvex")?.len() > super::MAX_VEX_STATEMENTS {
        return Err(VexError::TooManyStatements {
            name: name.to_owned(),
            limit: super::MAX_VEX_STATEMENTS,
        });
    }
    let doc = raw::Document::deserialize(value).map_err(|source| VexError::Json {
        name: name.to_owned(),
        format: "openvex",
        source,
    })?;
    doc.statements
        .into_iter()
        .map(|s| {
            let status = match s.status.as_str() {
                "not_affected" => VexStatus::NotAffected,
                "affected" => VexStatus::Affected,
                "fixed" => VexStatus::Fixed,
                "under_investigation" => VexStatus::UnderInvestigation,
                other => {
                    return Err(VexError::Invalid {
                        name: name.to_owned(),
                        format: "openvex",
                        reason: format!(
                            "status {other:?} is not not_affected, affected, fixed or under_investigation"
                        ),
                    });
                }
            };
            Ok(VexStatement {
                vulnerability: match s.vulnerability {
                    raw::Vulnerability::Name(name) => VexVulnerability {
                        name,
                        aliases: Vec::new(),
                    },
                    raw::Vulnerability::Object { name, aliases } => VexVulnerability {
                        name,
                        aliases: aliases.unwrap_or_default(),
                    },
                },
                products: s
                    .products
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| match p {
                        raw::Product::Id(id) => VexProduct {
                            id,
                            ..VexProduct::default()
                        },
                        raw::Product::Object {
                            id,
                            identifiers,
                            hashes,
                            subcomponents,
                        } => VexProduct {
                            id,
                            purls: identifiers.and_then(|i| i.purl).into_iter().collect(),
                            sha256: hashes
                                .and_then(|h| h.sha256)
                                .map(|h| h.to_ascii_lowercase())
                                .into_iter()
                                .collect(),
                            subcomponents: subcomponents
                                .unwrap_or_default()
                                .into_iter()
                                .map(|c| match c {
                                    raw::Subcomponent::Id(id)
                                    | raw::Subcomponent::Object { id } => id,
                                })
                                .collect(),
                        },
                    })
                    .collect(),
                status,
                justification: s.justification.filter(|j| !j.is_empty()),
                impact_statement: s.impact_statement.filter(|i| !i.is_empty()),
            })
        })
        .collect()
}

mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Document {
        pub statements: Vec<Statement>,
    }

    #[derive(Deserialize)]
    pub struct Statement {
        pub vulnerability: Vulnerability,
        pub products: Option<Vec<Product>>,
        pub status: String,
        pub justification: Option<String>,
        pub impact_statement: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Vulnerability {
        Name(String),
        Object {
            name: String,
            aliases: Option<Vec<String>>,
        },
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Product {
        Id(String),
        Object {
            #[serde(rename = "@id")]
            id: String,
            identifiers: Option<Identifiers>,
            hashes: Option<Hashes>,
            subcomponents: Option<Vec<Subcomponent>>,
        },
    }

    #[derive(Deserialize)]
    pub struct Identifiers {
        pub purl: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Hashes {
        #[serde(rename = "sha-256")]
        pub sha256: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Subcomponent {
        Id(String),
        Object {
            #[serde(rename = "@id")]
            id: String,
        },
    }
}

// ------------------------------------------------------------------------------- writing

/// What `custody vex` states about one artifact.
#[derive(Debug, Clone)]
pub struct NewStatement {
    /// The artifact's repository, `registry/path` (for the `pkg:oci` product id).
    pub repository: String,
    pub digest: Digest,
    pub vulnerability: String,
    pub status: VexStatus,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    /// Packages inside the artifact the statement is about (purls); none: the whole artifact.
    pub subcomponents: Vec<String>,
    pub author: String,
    pub timestamp: Timestamp,
}

/// Why a statement cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error(
        "a not_affected statement needs --justification ({}) or --impact-statement",
        JUSTIFICATIONS.join(", ")
    )]
    NotAffectedWithoutReason,
    #[error("justification {given:?} is not one of {}", JUSTIFICATIONS.join(", "))]
    UnknownJustification { given: String },
    #[error("an affected statement needs --action-statement (what users should do)")]
    AffectedWithoutAction,
    #[error("a justification is only given with not_affected, not {status}")]
    JustificationWithoutNotAffected { status: &'static str },
    #[error("subcomponent {given:?} is not a purl (pkg:type/name@version)")]
    BadSubcomponent { given: String },
}

/// An OpenVEX v0.2.0 document as custody writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    #[serde(rename = "@context")]
    pub context: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub author: String,
    pub timestamp: String,
    pub version: u32,
    pub tooling: String,
    pub statements: Vec<Value>,
}

/// The document for one statement: the product is the artifact by `pkg:oci` purl with its
/// digest and `sha-256` hash; its `@id` names the content (the same statement twice is one
/// document).
pub fn document(s: &NewStatement) -> Result<Document, WriteError> {
    match s.status {
        VexStatus::NotAffected if s.justification.is_none() && s.impact_statement.is_none() => {
            return Err(WriteError::NotAffectedWithoutReason);
        }
        VexStatus::Affected if s.action_statement.is_none() => {
            return Err(WriteError::AffectedWithoutAction);
        }
        VexStatus::NotAffected => {}
        other if s.justification.is_some() => {
            return Err(WriteError::JustificationWithoutNotAffected {
                status: other.as_str(),
            });
        }
        _ => {}
    }
    if let Some(j) = &s.justification
        && !JUSTIFICATIONS.contains(&j.as_str())
    {
        return Err(WriteError::UnknownJustification { given: j.clone() });
    }
    if let Some(bad) = s
        .subcomponents
        .iter()
        .find(|c| !c.starts_with("pkg:") || !c[4..].contains('/'))
    {
        return Err(WriteError::BadSubcomponent { given: bad.clone() });
    }
    let name = s.repository.rsplit('/').next().unwrap_or(&s.repository);
    let product_id = format!(
        "pkg:oci/{name}@sha256%3A{}?repository_url={}",
        s.digest.hex(),
        s.repository
    );
    let mut product = serde_json::json!({
        "@id": product_id,
        "hashes": {"sha-256": s.digest.hex()},
    });
    if !s.subcomponents.is_empty() {
        product["subcomponents"] = s
            .subcomponents
            .iter()
            .map(|c| serde_json::json!({"@id": c}))
            .collect();
    }
    let mut statement = serde_json::json!({
        "vulnerability": {"name": s.vulnerability},
        "timestamp": s.timestamp.as_str(),
        "products": [product],
        "status": s.status.as_str(),
    });
    for (field, value) in [
        ("justification", &s.justification),
        ("impact_statement", &s.impact_statement),
        ("action_statement", &s.action_statement),
    ] {
        if let Some(v) = value {
            statement[field] = Value::String(v.clone());
        }
    }
    let content = Digest::of(
        serde_json::to_string(&(&s.author, &statement))
            .expect("json values serialise")
            .as_bytes(),
    );
    Ok(Document {
        context: CONTEXT_V0_2_0.to_owned(),
        id: format!("https://openvex.dev/docs/public/vex-{}", content.hex()),
        author: s.author.clone(),
        timestamp: s.timestamp.as_str().to_owned(),
        version: 1,
        tooling: format!("custody {}", env!("CARGO_PKG_VERSION")),
        statements: vec![statement],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(status: VexStatus) -> NewStatement {
        NewStatement {
            repository: "reg.example/team/app".into(),
            digest: Digest::of(b"app"),
            vulnerability: "CVE-2019-15551".into(),
            status,
            justification: Some("vulnerable_code_not_in_execute_path".into()),
            impact_statement: None,
            action_statement: None,
            subcomponents: vec!["pkg:cargo/smallvec@0.6.9".into()],
            author: "security@example.com".into(),
            timestamp: Timestamp::from_unix(0),
        }
    }

    #[test]
    fn the_written_document_reads_back() {
        let doc = document(&new(VexStatus::NotAffected)).unwrap();
        let v = serde_json::to_value(&doc).unwrap();
        let product = &v["statements"][0]["products"][0];
        let hex = Digest::of(b"app").hex().to_owned();
        assert_eq!(
            product["@id"],
            format!("pkg:oci/app@sha256%3A{hex}?repository_url=reg.example/team/app")
        );
        assert_eq!(product["hashes"]["sha-256"], hex);
        let read = statements(&v, "x").unwrap();
        assert_eq!(read[0].status, VexStatus::NotAffected);
        assert_eq!(read[0].products[0].digests(), vec![hex.clone(), hex]);
        assert_eq!(
            read[0].products[0].subcomponents,
            ["pkg:cargo/smallvec@0.6.9"]
        );
        // The same statement is the same document.
        assert_eq!(document(&new(VexStatus::NotAffected)).unwrap().id, doc.id);
    }

    #[test]
    fn statements_that_openvex_forbids_are_not_written() {
        let mut s = new(VexStatus::NotAffected);
        s.justification = None;
        assert_eq!(document(&s), Err(WriteError::NotAffectedWithoutReason));
        s.justification = Some("because".into());
        assert!(matches!(
            document(&s),
            Err(WriteError::UnknownJustification { given }) if given == "because"
        ));
        let s = new(VexStatus::Affected);
        assert_eq!(document(&s), Err(WriteError::AffectedWithoutAction));
        let s = new(VexStatus::Fixed);
        assert_eq!(
            document(&s),
            Err(WriteError::JustificationWithoutNotAffected { status: "fixed" })
        );
        let mut s = new(VexStatus::NotAffected);
        s.subcomponents = vec!["smallvec".into()];
        assert!(matches!(
            document(&s),
            Err(WriteError::BadSubcomponent { .. })
        ));
    }

    #[test]
    fn malformed_openvex_is_refused_with_the_reason() {
        let table: &[(&str, &str)] = &[
            (
                r#"{"@context":"https://example.com","statements":[]}"#,
                "not an openvex one",
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0"}"#,
                "not valid openvex json",
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":{}}"#,
                "not an array",
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":5,"status":"fixed"}]}"#,
                "not valid openvex json",
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":"CVE-1","status":"maybe"}]}"#,
                "status \"maybe\"",
            ),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":"CVE-1","status":"fixed","products":[{"@id":"p","hashes":{"sha-256":7}}]}]}"#,
                "not valid openvex json",
            ),
        ];
        for (text, needle) in table {
            let v: Value = serde_json::from_str(text).unwrap();
            let err = statements(&v, "v.json").unwrap_err();
            assert!(
                err.to_string().contains(needle) && err.to_string().contains("v.json"),
                "{text}: {err}"
            );
        }
    }
}
