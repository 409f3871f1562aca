//! SPDX 2.3 JSON: the document custody writes as CycloneDX ([`super::Bom`]) converted package
//! for package ([`from_bom`]), and a bounded reader of the packages of any SPDX 2.x JSON
//! document ([`read`]): their purls and where each was resolved from.
//!
//! SPDX 2.3 packages have no properties, so custody's (`custody:resolved-from`,
//! `custody:source-kind`, the image layer and path, ...) travel as `OTHER` annotations whose
//! comment is `name=value`; the distribution URL, when it is one SPDX accepts, is the package's
//! `downloadLocation`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Bom, Component, ComponentScope, ComponentType};

/// `spdxVersion` of what custody writes.
pub const SPDX_VERSION: &str = "SPDX-2.3";
/// The `SPDXID` of every document.
pub const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
/// The one data licence SPDX allows for the document itself.
pub const DATA_LICENSE: &str = "CC0-1.0";
/// `downloadLocation` when nothing is known.
pub const NOASSERTION: &str = "NOASSERTION";
/// Most packages one SPDX document may list.
pub const MAX_PACKAGES: usize = 500_000;
/// Most relationships and annotations read, each.
pub const MAX_RELATIONSHIPS: usize = 4_000_000;

/// An SPDX 2.3 JSON document (the part custody writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_info: Option<String>,
    pub download_location: String,
    pub files_analyzed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub annotation_date: String,
    pub annotation_type: String,
    pub annotator: String,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

impl Document {
    /// Pretty JSON with a trailing newline.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }
}

// ------------------------------------------------------------------------------- writing

/// The SPDX 2.3 form of `bom`: the artifact (`metadata.component`) is the package the document
/// describes and contains its files (packages of purpose `FILE`: SPDX files need a SHA-1 custody
/// does not compute); every component is a package with its purl, hashes and custody's
/// properties; `dependencies` become `DEPENDS_ON` (`DEPENDS_ON NONE` for a package known to
/// have none). The namespace is the BOM's serial number, so both documents of one run name each
/// other.
pub fn from_bom(bom: &Bom) -> Document {
    let created = bom.metadata.timestamp.as_str().to_owned();
    let annotator = format!("Tool: custody-{}", env!("CARGO_PKG_VERSION"));
    let mut writer = Writer {
        created: created.clone(),
        annotator: annotator.clone(),
        ids: BTreeMap::new(),
        used: BTreeSet::new(),
        packages: Vec::new(),
        relationships: Vec::new(),
    };
    let root = writer.package(&bom.metadata.component, None);
    writer.relationships.push(Relationship {
        spdx_element_id: DOCUMENT_ID.to_owned(),
        relationship_type: "DESCRIBES".to_owned(),
        related_spdx_element: root,
    });
    for c in &bom.components {
        writer.package(c, None);
    }
    for d in &bom.dependencies {
        let Some(from) = writer.ids.get(&d.dependency_ref).cloned() else {
            continue;
        };
        if d.depends_on.is_empty() {
            writer.relationships.push(Relationship {
                spdx_element_id: from,
                relationship_type: "DEPENDS_ON".to_owned(),
                related_spdx_element: "NONE".to_owned(),
            });
            continue;
        }
        for to in &d.depends_on {
            if let Some(to) = writer.ids.get(to).cloned() {
                writer.relationships.push(Relationship {
                    spdx_element_id: from.clone(),
                    relationship_type: "DEPENDS_ON".to_owned(),
                    related_spdx_element: to,
                });
            }
        }
    }
    let name = match &bom.metadata.component.version {
        Some(v) => format!("{}-{v}", bom.metadata.component.name),
        None => bom.metadata.component.name.clone(),
    };
    Document {
        spdx_version: SPDX_VERSION.to_owned(),
        data_license: DATA_LICENSE.to_owned(),
        spdx_id: DOCUMENT_ID.to_owned(),
        name,
        document_namespace: bom.serial_number.as_str().to_owned(),
        creation_info: CreationInfo {
            created,
            creators: vec![annotator],
        },
        packages: writer.packages,
        relationships: writer.relationships,
    }
}

struct Writer {
    created: String,
    annotator: String,
    /// bom-ref → SPDXID.
    ids: BTreeMap<String, String>,
    used: BTreeSet<String>,
    packages: Vec<Package>,
    relationships: Vec<Relationship>,
}

impl Writer {
    /// Adds `c` and (recursively) its nested components, which it `CONTAINS`; returns its id.
    fn package(&mut self, c: &Component, parent: Option<&str>) -> String {
        let id = self.fresh_id(c.bom_ref.as_deref().unwrap_or(&c.name));
        if let Some(r) = &c.bom_ref {
            self.ids.entry(r.clone()).or_insert_with(|| id.clone());
        }
        let mut annotations: Vec<String> = c
            .properties
            .iter()
            .map(|p| format!("{}={}", p.name, p.value))
            .collect();
        if let Some(scope) = c.scope {
            let scope = match scope {
                ComponentScope::Required => "required",
                ComponentScope::Optional => "optional",
                ComponentScope::Excluded => "excluded",
            };
            annotations.push(format!("custody:scope={scope}"));
        }
        let mut download = None;
        for r in &c.external_references {
            annotations.push(format!("custody:{}={}", r.reference_type, r.url));
            if r.reference_type == "distribution"
                && download.is_none()
                && download_location_ok(&r.url)
            {
                download = Some(r.url.clone());
            }
        }
        let name = match &c.group {
            Some(g) if !g.is_empty() => format!("{g}/{}", c.name),
            _ => c.name.clone(),
        };
        self.packages.push(Package {
            spdx_id: id.clone(),
            name,
            version_info: c.version.clone(),
            download_location: download.unwrap_or_else(|| NOASSERTION.to_owned()),
            files_analyzed: false,
            checksums: c
                .hashes
                .iter()
                .filter_map(|h| {
                    spdx_algorithm(&h.alg).map(|algorithm| Checksum {
                        algorithm: algorithm.to_owned(),
                        checksum_value: h.content.to_ascii_lowercase(),
                    })
                })
                .collect(),
            primary_package_purpose: Some(
                match c.component_type {
                    ComponentType::Application => "APPLICATION",
                    ComponentType::Library => "LIBRARY",
                    ComponentType::File => "FILE",
                }
                .to_owned(),
            ),
            external_refs: c
                .purl
                .iter()
                .map(|p| ExternalRef {
                    reference_category: "PACKAGE-MANAGER".to_owned(),
                    reference_type: "purl".to_owned(),
                    reference_locator: p.to_string(),
                })
                .collect(),
            annotations: annotations
                .into_iter()
                .map(|comment| Annotation {
                    annotation_date: self.created.clone(),
                    annotation_type: "OTHER".to_owned(),
                    annotator: self.annotator.clone(),
                    comment,
                })
                .collect(),
        });
        if let Some(parent) = parent {
            self.relationships.push(Relationship {
                spdx_element_id: parent.to_owned(),
                relationship_type: "CONTAINS".to_owned(),
                related_spdx_element: id.clone(),
            });
        }
        for child in &c.components {
            self.package(child, Some(&id));
        }
        id
    }

    /// `SPDXRef-` and the bom-ref with every character SPDX ids do not allow as `-`; a suffix
    /// keeps ids unique.
    fn fresh_id(&mut self, seed: &str) -> String {
        let body: String = seed
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        let body = match body.trim_matches('-') {
            "" => "package",
            b => b,
        };
        let base = format!("SPDXRef-{body}");
        let mut id = base.clone();
        let mut n = 1;
        while !self.used.insert(id.clone()) || id == DOCUMENT_ID {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }
}

/// CycloneDX hash algorithm names in SPDX's spelling; `None` for those SPDX does not list.
fn spdx_algorithm(cdx: &str) -> Option<&'static str> {
    Some(match cdx {
        "MD5" => "MD5",
        "SHA-1" => "SHA1",
        "SHA-256" => "SHA256",
        "SHA-384" => "SHA384",
        "SHA-512" => "SHA512",
        "SHA3-256" => "SHA3-256",
        "SHA3-384" => "SHA3-384",
        "SHA3-512" => "SHA3-512",
        "BLAKE2b-256" => "BLAKE2b-256",
        "BLAKE2b-384" => "BLAKE2b-384",
        "BLAKE2b-512" => "BLAKE2b-512",
        "BLAKE3" => "BLAKE3",
        _ => return None,
    })
}

/// Whether SPDX's download-location grammar (a URL on a host with a top-level domain of two to
/// five letters, optionally `git+`) accepts `url`; other locations stay in annotations only.
fn download_location_ok(url: &str) -> bool {
    let rest = url
        .strip_prefix("git+")
        .unwrap_or(url)
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or_default();
    let Some((name, tld)) = host.rsplit_once('.') else {
        return false;
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && (2..=5).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_lowercase())
        && !url.chars().any(char::is_whitespace)
}

// ------------------------------------------------------------------------------- reading

/// Why an SPDX document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpdxError {
    #[error("{what} is not spdx 2 json: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what} is spdx {version:?}; custody reads spdx 2.2 and 2.3 json")]
    UnsupportedVersion { what: String, version: String },
    #[error("{what} lists more than {limit} {items}")]
    TooMany {
        what: String,
        items: &'static str,
        limit: usize,
    },
}

/// One package of an SPDX document as a scanner and the sources rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPackage {
    pub name: String,
    /// Every `PACKAGE-MANAGER` `purl` reference.
    pub purls: Vec<String>,
    /// `downloadLocation`, unless `NOASSERTION` or `NONE`.
    pub download_location: Option<String>,
    /// `name=value` annotations custody wrote (`custody:*`), by name.
    pub properties: BTreeMap<String, String>,
    /// The package the document describes when it describes some packages and not others: the
    /// artifact, as CycloneDX's `metadata.component` (its contents are the other packages).
    pub is_subject: bool,
    /// `primaryPackagePurpose: FILE`.
    pub is_file: bool,
}

/// Whether a JSON value looks like an SPDX document (2.x: `spdxVersion`; 3: a JSON-LD context
/// naming spdx.org).
pub fn is_spdx(value: &serde_json::Value) -> bool {
    value.get("spdxVersion").is_some()
        || value
            .get("@context")
            .and_then(|c| c.as_str())
            .is_some_and(|c| c.contains("spdx.org/rdf/3"))
}

/// Reads the packages of an SPDX 2.2/2.3 JSON document; `what` names it in errors.
pub fn read(value: &serde_json::Value, what: &str) -> Result<Vec<ReadPackage>, SpdxError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        spdx_version: Option<String>,
        #[serde(default)]
        packages: Vec<Pkg>,
        #[serde(default)]
        relationships: Vec<Rel>,
        #[serde(default)]
        document_describes: Vec<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Pkg {
        #[serde(rename = "SPDXID")]
        spdx_id: String,
        name: String,
        download_location: Option<String>,
        primary_package_purpose: Option<String>,
        #[serde(default)]
        external_refs: Vec<Ref>,
        #[serde(default)]
        annotations: Vec<Ann>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ref {
        reference_category: String,
        reference_type: String,
        reference_locator: String,
    }
    #[derive(Deserialize)]
    struct Ann {
        comment: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Rel {
        spdx_element_id: String,
        relationship_type: String,
        related_spdx_element: String,
    }

    if value.get("@context").is_some() && value.get("spdxVersion").is_none() {
        return Err(SpdxError::UnsupportedVersion {
            what: what.to_owned(),
            version: "3 (json-ld)".to_owned(),
        });
    }
    // Count before deserialising: the limits bound the work, not only the result.
    for (field, items, limit) in [
        ("packages", "packages", MAX_PACKAGES),
        ("relationships", "relationships", MAX_RELATIONSHIPS),
    ] {
        if value
            .get(field)
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.len() > limit)
        {
            return Err(SpdxError::TooMany {
                what: what.to_owned(),
                items,
                limit,
            });
        }
    }
    let doc = Doc::deserialize(value).map_err(|e| SpdxError::Malformed {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    let version = doc.spdx_version.unwrap_or_default();
    if !matches!(version.as_str(), "SPDX-2.2" | "SPDX-2.3") {
        return Err(SpdxError::UnsupportedVersion {
            what: what.to_owned(),
            version,
        });
    }
    let annotations: usize = doc.packages.iter().map(|p| p.annotations.len()).sum();
    if annotations > MAX_RELATIONSHIPS {
        return Err(SpdxError::TooMany {
            what: what.to_owned(),
            items: "annotations",
            limit: MAX_RELATIONSHIPS,
        });
    }
    let mut described: BTreeSet<&str> = doc.document_describes.iter().map(String::as_str).collect();
    for r in &doc.relationships {
        match r.relationship_type.as_str() {
            "DESCRIBES" if r.spdx_element_id == DOCUMENT_ID => {
                described.insert(&r.related_spdx_element);
            }
            "DESCRIBED_BY" if r.related_spdx_element == DOCUMENT_ID => {
                described.insert(&r.spdx_element_id);
            }
            _ => {}
        }
    }
    // A document that describes every package it lists has no separate subject.
    let some_not_described = doc
        .packages
        .iter()
        .any(|p| !described.contains(p.spdx_id.as_str()));
    Ok(doc
        .packages
        .iter()
        .map(|p| ReadPackage {
            name: p.name.clone(),
            purls: p
                .external_refs
                .iter()
                .filter(|r| {
                    matches!(
                        r.reference_category.as_str(),
                        "PACKAGE-MANAGER" | "PACKAGE_MANAGER"
                    ) && r.reference_type == "purl"
                })
                .map(|r| r.reference_locator.clone())
                .collect(),
            download_location: p
                .download_location
                .clone()
                .filter(|l| l != NOASSERTION && l != "NONE" && !l.is_empty()),
            properties: p
                .annotations
                .iter()
                .filter_map(|a| a.comment.as_deref()?.split_once('='))
                .filter(|(k, _)| k.starts_with("custody:"))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            is_subject: some_not_described && described.contains(p.spdx_id.as_str()),
            is_file: p.primary_package_purpose.as_deref() == Some("FILE"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::attest::Timestamp;
    use crate::evidence::sbom::{Artifact, SbomOptions, SerialNumber, cargo, generate};
    use crate::foundation::digest::Digest;
    use std::path::Path;

    fn bom() -> Bom {
        let lock = cargo::parse_str(
            Path::new("Cargo.lock"),
            r#"
version = 4
[[package]]
name = "app"
version = "1.0.0"
dependencies = ["serde"]
[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"
"#,
        )
        .unwrap();
        let mut o = SbomOptions::new(Timestamp::from_unix(0));
        o.serial_number = Some(SerialNumber::from_bytes([7; 16]));
        let artifacts = [Artifact {
            name: "app".into(),
            digest: Digest::of(b"bin"),
        }];
        generate(&artifacts, &[lock], &o).unwrap()
    }

    #[test]
    fn the_spdx_form_carries_the_same_packages_and_graph() {
        let doc = from_bom(&bom());
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["spdxVersion"], "SPDX-2.3");
        assert_eq!(v["documentNamespace"], bom().serial_number.as_str());
        assert_eq!(v["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        let ids: Vec<&str> = doc.packages.iter().map(|p| p.spdx_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "SPDXRef-pkg-cargo-app-1.0.0",
                "SPDXRef-file-app",
                "SPDXRef-pkg-cargo-serde-1.0.200"
            ]
        );
        let serde = &doc.packages[2];
        assert_eq!(
            serde.external_refs[0].reference_locator,
            "pkg:cargo/serde@1.0.200"
        );
        assert_eq!(serde.checksums[0].algorithm, "SHA256");
        let rels: Vec<(&str, &str, &str)> = doc
            .relationships
            .iter()
            .map(|r| {
                (
                    r.spdx_element_id.as_str(),
                    r.relationship_type.as_str(),
                    r.related_spdx_element.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rels,
            [
                (
                    "SPDXRef-pkg-cargo-app-1.0.0",
                    "CONTAINS",
                    "SPDXRef-file-app"
                ),
                (
                    "SPDXRef-DOCUMENT",
                    "DESCRIBES",
                    "SPDXRef-pkg-cargo-app-1.0.0"
                ),
                (
                    "SPDXRef-pkg-cargo-app-1.0.0",
                    "DEPENDS_ON",
                    "SPDXRef-pkg-cargo-serde-1.0.200"
                ),
                ("SPDXRef-pkg-cargo-serde-1.0.200", "DEPENDS_ON", "NONE"),
            ]
        );
        // Read back: the subject and its file are set apart, the rest keeps its origin.
        let read = read(&v, "x").unwrap();
        let lib: Vec<&ReadPackage> = read
            .iter()
            .filter(|p| !p.is_subject && !p.is_file)
            .collect();
        assert_eq!(lib.len(), 1);
        assert_eq!(lib[0].purls, ["pkg:cargo/serde@1.0.200"]);
        assert_eq!(
            lib[0].properties["custody:resolved-from"],
            "registry+https://github.com/rust-lang/crates.io-index"
        );
        assert_eq!(lib[0].properties["custody:source-kind"], "registry");
        assert!(read[0].is_subject && read[1].is_file);
    }

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut w = Writer {
            created: String::new(),
            annotator: String::new(),
            ids: BTreeMap::new(),
            used: BTreeSet::new(),
            packages: Vec::new(),
            relationships: Vec::new(),
        };
        assert_eq!(w.fresh_id("pkg:npm/%40a/b@1"), "SPDXRef-pkg-npm--40a-b-1");
        assert_eq!(w.fresh_id("pkg:npm/%40a/b@1"), "SPDXRef-pkg-npm--40a-b-1-2");
        assert_eq!(w.fresh_id("DOCUMENT"), "SPDXRef-DOCUMENT-2");
        assert_eq!(w.fresh_id("ü"), "SPDXRef-package");
    }

    #[test]
    fn download_locations_follow_the_spdx_grammar() {
        for (url, ok) in [
            ("https://static.crates.io/crates/x/x-1.crate", true),
            ("git+https://github.com/a/b", true),
            ("http://127.0.0.1:8080/x.tgz", false),
            ("file:///tmp/x", false),
            ("https://localhost/x", false),
            ("https://exa mple.com/x", false),
        ] {
            assert_eq!(download_location_ok(url), ok, "{url}");
        }
    }

    #[test]
    fn malformed_spdx_is_refused_with_the_reason() {
        let table: &[(&str, &str)] = &[
            (r#"{"spdxVersion":"SPDX-2.1","packages":[]}"#, "SPDX-2.1"),
            (r#"{"packages":[]}"#, "\"\""),
            (
                r#"{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}"#,
                "3 (json-ld)",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"x"}]}"#,
                "SPDXID",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","packages":{"a":1}}"#,
                "invalid type",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"a","name":"x","externalRefs":[{"referenceCategory":1}]}]}"#,
                "invalid type",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","relationships":[{"spdxElementId":"a"}]}"#,
                "relationshipType",
            ),
        ];
        for (text, needle) in table {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let err = read(&v, "doc").unwrap_err();
            assert!(
                err.to_string().contains(needle) && err.to_string().starts_with("doc "),
                "{text}: {err}"
            );
        }
        let many = serde_json::json!({
            "spdxVersion": "SPDX-2.3",
            "packages": vec![serde_json::json!(1); MAX_PACKAGES + 1],
        });
        assert!(matches!(
            read(&many, "doc"),
            Err(SpdxError::TooMany {
                items: "packages",
                ..
            })
        ));
    }

    #[test]
    fn foreign_documents_read_purls_and_the_described_package() {
        let v = serde_json::json!({
            "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT",
            "documentDescribes": ["SPDXRef-img"],
            "packages": [
                {"SPDXID": "SPDXRef-img", "name": "img", "downloadLocation": "NOASSERTION"},
                {"SPDXID": "SPDXRef-a", "name": "a", "downloadLocation": "https://e.org/a.tgz",
                 "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
                                   "referenceLocator": "pkg:npm/a@1"},
                                  {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                                   "referenceLocator": "cpe:2.3:a:a:a:1:*:*:*:*:*:*:*"}]},
            ],
        });
        let read = read(&v, "x").unwrap();
        assert!(read[0].is_subject);
        assert_eq!(read[1].purls, ["pkg:npm/a@1"]);
        assert_eq!(
            read[1].download_location.as_deref(),
            Some("https://e.org/a.tgz")
        );
        // A lone described package is the content itself.
        let one = serde_json::json!({"spdxVersion": "SPDX-2.2", "documentDescribes": ["SPDXRef-a"],
            "packages": [{"SPDXID": "SPDXRef-a", "name": "a"}]});
        assert!(!super::read(&one, "x").unwrap()[0].is_subject);
    }
}
