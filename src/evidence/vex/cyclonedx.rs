//! CycloneDX VEX: each of a BOM's `vulnerabilities` with an `analysis` is a statement about the
//! components its `affects[].ref` names, a `bom-ref` in the same document or a BOM-Link
//! (`urn:cdx:<serial>/<version>#<bom-ref>`) into the SBOM; the component's purl and SHA-256 hashes
//! identify the product. A ref that resolves to nothing here is kept as given (custody's bom-refs
//! are purls).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    MAX_DEPTH, VexError, VexProduct, VexStatement, VexStatus, VexVulnerability, array_at, str_at,
};

const FORMAT: &str = "cyclonedx";

/// Most components indexed.
pub const MAX_COMPONENTS: usize = 500_000;

fn invalid(name: &str, reason: impl Into<String>) -> VexError {
    VexError::Invalid {
        name: name.to_owned(),
        format: FORMAT,
        reason: reason.into(),
    }
}

pub(super) fn statements(value: &Value, name: &str) -> Result<Vec<VexStatement>, VexError> {
    if str_at(value, "bomFormat") != Some("CycloneDX") {
        return Err(invalid(name, "bomFormat is not CycloneDX"));
    }
    let vulnerabilities = array_at(value, "vulnerabilities", name, FORMAT)?;
    if vulnerabilities.is_empty() {
        return Err(invalid(
            name,
            "it lists no vulnerabilities, so it is not a VEX",
        ));
    }
    let mut index: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut count = 0usize;
    if let Some(c) = value.get("metadata").and_then(|m| m.get("component")) {
        index_components(std::slice::from_ref(c), 0, name, &mut index, &mut count)?;
    }
    index_components(
        array_at(value, "components", name, FORMAT)?,
        0,
        name,
        &mut index,
        &mut count,
    )?;

    let mut out = Vec::new();
    for (i, v) in vulnerabilities.iter().enumerate() {
        let id = str_at(v, "id")
            .ok_or_else(|| invalid(name, format!("vulnerabilities[{i}] has no id")))?;
        let Some(analysis) = v.get("analysis") else {
            // A vulnerability without analysis reports, it states nothing.
            continue;
        };
        let status = match str_at(analysis, "state") {
            Some("not_affected" | "false_positive") => VexStatus::NotAffected,
            Some("resolved" | "resolved_with_pedigree") => VexStatus::Fixed,
            Some("exploitable") => VexStatus::Affected,
            Some("in_triage") => VexStatus::UnderInvestigation,
            other => {
                return Err(invalid(
                    name,
                    format!(
                        "vulnerabilities[{i}].analysis.state {other:?} is not a cyclonedx analysis state"
                    ),
                ));
            }
        };
        let mut aliases = Vec::new();
        for r in array_at(v, "references", name, FORMAT)? {
            if let Some(a) = str_at(r, "id") {
                aliases.push(a.to_owned());
            }
        }
        let mut products = Vec::new();
        for a in array_at(v, "affects", name, FORMAT)? {
            let r = str_at(a, "ref").ok_or_else(|| {
                invalid(
                    name,
                    format!("vulnerabilities[{i}].affects has an item without ref"),
                )
            })?;
            products.push(product(r, &index));
        }
        if products.is_empty() {
            return Err(invalid(
                name,
                format!("vulnerabilities[{i}] ({id}) affects nothing"),
            ));
        }
        // CycloneDX does not require a justification; the state itself is the reason given.
        let justification = str_at(analysis, "justification")
            .or_else(|| str_at(analysis, "state"))
            .map(str::to_owned);
        out.push(VexStatement {
            vulnerability: VexVulnerability {
                name: id.to_owned(),
                aliases,
            },
            products,
            status,
            justification: (status == VexStatus::NotAffected)
                .then_some(justification)
                .flatten(),
            impact_statement: str_at(analysis, "detail").map(str::to_owned),
        });
    }
    Ok(out)
}

/// The product a ref names: the component it resolves to (directly, or as a BOM-Link's
/// fragment), else the ref itself.
fn product(r: &str, index: &BTreeMap<String, (Vec<String>, Vec<String>)>) -> VexProduct {
    let local = match r
        .strip_prefix("urn:cdx:")
        .and_then(|rest| rest.split_once('#'))
    {
        Some((_, fragment)) => percent_decode(fragment),
        None => r.to_owned(),
    };
    match index.get(&local) {
        Some((purls, sha256)) => VexProduct {
            id: local,
            purls: purls.clone(),
            sha256: sha256.clone(),
            subcomponents: Vec::new(),
        },
        None => VexProduct {
            id: local,
            ..VexProduct::default()
        },
    }
}

fn index_components(
    components: &[Value],
    depth: usize,
    name: &str,
    index: &mut BTreeMap<String, (Vec<String>, Vec<String>)>,
    count: &mut usize,
) -> Result<(), VexError> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            name,
            format!("components nest deeper than {MAX_DEPTH}"),
        ));
    }
    for c in components {
        *count += 1;
        if *count > MAX_COMPONENTS {
            return Err(invalid(
                name,
                format!("it lists more than {MAX_COMPONENTS} components"),
            ));
        }
        if let Some(r) = str_at(c, "bom-ref") {
            let purls: Vec<String> = str_at(c, "purl").map(str::to_owned).into_iter().collect();
            let mut sha256 = Vec::new();
            for h in array_at(c, "hashes", name, FORMAT)? {
                if str_at(h, "alg") == Some("SHA-256")
                    && let Some(content) = str_at(h, "content")
                {
                    sha256.push(content.to_ascii_lowercase());
                }
            }
            index.insert(r.to_owned(), (purls, sha256));
        }
        index_components(
            array_at(c, "components", name, FORMAT)?,
            depth + 1,
            name,
            index,
            count,
        )?;
    }
    Ok(())
}

/// `%XX` decoded; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Edit = Box<dyn Fn(&mut Value)>;

    pub fn vex_bom(analysis: Value, r: &str) -> Value {
        json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "metadata": {"component": {"type": "application", "name": "app", "bom-ref": "app",
                "hashes": [{"alg": "SHA-256", "content": "A".repeat(64)}]}},
            "components": [{"type": "library", "name": "smallvec", "version": "0.6.9",
                "bom-ref": "sv", "purl": "pkg:cargo/smallvec@0.6.9"}],
            "vulnerabilities": [{"id": "CVE-2019-15551",
                "references": [{"id": "RUSTSEC-2019-0009", "source": {"name": "RustSec"}}],
                "analysis": analysis, "affects": [{"ref": r}]}],
        })
    }

    #[test]
    fn states_and_refs_become_statements() {
        let table = [
            (
                json!({"state": "not_affected", "justification": "code_not_reachable", "detail": "never called"}),
                "sv",
                VexStatus::NotAffected,
            ),
            (
                json!({"state": "false_positive"}),
                "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#sv",
                VexStatus::NotAffected,
            ),
            (json!({"state": "resolved"}), "app", VexStatus::Fixed),
            (json!({"state": "exploitable"}), "sv", VexStatus::Affected),
            (
                json!({"state": "in_triage"}),
                "sv",
                VexStatus::UnderInvestigation,
            ),
        ];
        for (analysis, r, want) in table {
            let s = statements(&vex_bom(analysis.clone(), r), "b.json").unwrap();
            assert_eq!(s[0].status, want, "{analysis}");
            assert_eq!(s[0].vulnerability.aliases, ["RUSTSEC-2019-0009"]);
            if r == "app" {
                assert_eq!(s[0].products[0].sha256, ["a".repeat(64)]);
            } else {
                assert_eq!(s[0].products[0].purls, ["pkg:cargo/smallvec@0.6.9"]);
            }
        }
        let s = statements(&vex_bom(json!({"state": "not_affected", "justification": "code_not_reachable", "detail": "never called"}), "sv"), "b.json").unwrap();
        assert_eq!(s[0].justification.as_deref(), Some("code_not_reachable"));
        assert_eq!(s[0].impact_statement.as_deref(), Some("never called"));
        // An unknown ref is kept as given; a purl-shaped one matches by purl later.
        let s = statements(
            &vex_bom(json!({"state": "not_affected"}), "pkg:cargo/x@1"),
            "b.json",
        )
        .unwrap();
        assert_eq!(s[0].products[0].id, "pkg:cargo/x@1");
    }

    #[test]
    fn malformed_cyclonedx_vex_is_refused_with_the_reason() {
        let ok = vex_bom(json!({"state": "not_affected"}), "sv");
        let table: Vec<(Edit, &str)> = vec![
            (Box::new(|d| d["bomFormat"] = json!("SPDX")), "bomFormat"),
            (Box::new(|d| d["vulnerabilities"] = json!([])), "not a VEX"),
            (
                Box::new(|d| d["vulnerabilities"][0]["analysis"]["state"] = json!("fine")),
                "\"fine\"",
            ),
            (
                Box::new(|d| {
                    d["vulnerabilities"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("id");
                }),
                "has no id",
            ),
            (
                Box::new(|d| d["vulnerabilities"][0]["affects"] = json!([])),
                "affects nothing",
            ),
            (
                Box::new(|d| d["vulnerabilities"][0]["affects"] = json!([{}])),
                "without ref",
            ),
            (Box::new(|d| d["components"] = json!("x")), "not an array"),
        ];
        for (break_it, needle) in table {
            let mut doc = ok.clone();
            break_it(&mut doc);
            let err = statements(&doc, "b.json").unwrap_err();
            assert!(
                err.to_string().contains(needle) && err.to_string().contains("b.json"),
                "{needle}: {err}"
            );
        }
        let mut deep = json!([]);
        for _ in 0..MAX_DEPTH + 2 {
            deep = json!([{"type": "library", "name": "x", "components": deep}]);
        }
        let mut doc = ok;
        doc["components"] = deep;
        assert!(
            statements(&doc, "b.json")
                .unwrap_err()
                .to_string()
                .contains("nest deeper")
        );
        assert_eq!(percent_decode("pkg%3Acargo%2x"), "pkg:cargo%2x");
    }
}
