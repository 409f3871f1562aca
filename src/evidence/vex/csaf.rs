//! CSAF 2.0 documents of the VEX profile (`document.category: csaf_vex`): each vulnerability's
//! `product_status` lists become statements about the products of the `product_tree`, identified
//! by their `product_identification_helper` purl and hashes; a relationship ("X as a component
//! of Y") makes X's purl a subcomponent of Y. A `known_not_affected` product's justification is
//! its VEX flag, its impact statement the `impact` threat that names it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    MAX_DEPTH, MAX_VEX_STATEMENTS, VexError, VexProduct, VexStatement, VexStatus, VexVulnerability,
    array_at, str_at,
};

const FORMAT: &str = "csaf";

/// Most products (branches, full product names and relationships) a product tree may hold.
pub const MAX_PRODUCTS: usize = 100_000;

fn invalid(name: &str, reason: impl Into<String>) -> VexError {
    VexError::Invalid {
        name: name.to_owned(),
        format: FORMAT,
        reason: reason.into(),
    }
}

/// A product of the tree: its purls and SHA-256 hashes, and for a relationship the product it is
/// a component of.
#[derive(Default)]
struct TreeProduct {
    purls: Vec<String>,
    sha256: Vec<String>,
    component_of: Option<(String, String)>,
}

pub(super) fn statements(value: &Value, name: &str) -> Result<Vec<VexStatement>, VexError> {
    let document = value
        .get("document")
        .ok_or_else(|| invalid(name, "no document"))?;
    match str_at(document, "csaf_version") {
        Some("2.0") => {}
        other => {
            return Err(invalid(
                name,
                format!("csaf_version is {other:?}, custody reads 2.0"),
            ));
        }
    }
    match str_at(document, "category") {
        Some("csaf_vex") => {}
        other => {
            return Err(invalid(
                name,
                format!("document.category is {other:?}, not csaf_vex (the VEX profile)"),
            ));
        }
    }
    let tree = value
        .get("product_tree")
        .ok_or_else(|| invalid(name, "no product_tree (the VEX profile requires one)"))?;
    let mut products: BTreeMap<String, TreeProduct> = BTreeMap::new();
    let mut count = 0usize;
    walk_branches(
        array_at(tree, "branches", name, FORMAT)?,
        0,
        name,
        &mut products,
        &mut count,
    )?;
    for p in array_at(tree, "full_product_names", name, FORMAT)? {
        add_product(p, name, &mut products, &mut count)?;
    }
    for r in array_at(tree, "relationships", name, FORMAT)? {
        let fpn = r
            .get("full_product_name")
            .ok_or_else(|| invalid(name, "a relationship has no full_product_name"))?;
        let id = add_product(fpn, name, &mut products, &mut count)?;
        let (Some(component), Some(parent)) = (
            str_at(r, "product_reference"),
            str_at(r, "relates_to_product_reference"),
        ) else {
            return Err(invalid(
                name,
                format!(
                    "relationship {id} lacks product_reference or relates_to_product_reference"
                ),
            ));
        };
        if let Some(p) = products.get_mut(&id) {
            p.component_of = Some((component.to_owned(), parent.to_owned()));
        }
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in array_at(tree, "product_groups", name, FORMAT)? {
        let id = str_at(g, "group_id")
            .ok_or_else(|| invalid(name, "a product group has no group_id"))?;
        groups.insert(id.to_owned(), strings(g, "product_ids", name)?);
    }

    let mut out = Vec::new();
    let vulnerabilities = array_at(value, "vulnerabilities", name, FORMAT)?;
    if vulnerabilities.is_empty() {
        return Err(invalid(
            name,
            "no vulnerabilities (the VEX profile requires them)",
        ));
    }
    for (i, v) in vulnerabilities.iter().enumerate() {
        let mut ids: Vec<String> = str_at(v, "cve").map(str::to_owned).into_iter().collect();
        for id in array_at(v, "ids", name, FORMAT)? {
            if let Some(text) = str_at(id, "text") {
                ids.push(text.to_owned());
            }
        }
        if ids.is_empty() {
            return Err(invalid(
                name,
                format!("vulnerabilities[{i}] has neither cve nor ids"),
            ));
        }
        let vulnerability = VexVulnerability {
            name: ids[0].clone(),
            aliases: ids[1..].to_vec(),
        };
        let Some(product_status) = v.get("product_status") else {
            return Err(invalid(
                name,
                format!("vulnerabilities[{i}] has no product_status"),
            ));
        };
        // Which products (directly or through a group) a flag or threat names.
        let names_product = |item: &Value, product: &str| -> Result<bool, VexError> {
            let direct = strings(item, "product_ids", name)?;
            let via_group = strings(item, "group_ids", name)?.iter().any(|g| {
                groups
                    .get(g)
                    .is_some_and(|ps| ps.iter().any(|p| p == product))
            });
            Ok(direct.iter().any(|p| p == product) || via_group)
        };
        let flags = array_at(v, "flags", name, FORMAT)?;
        let threats = array_at(v, "threats", name, FORMAT)?;
        for (list, status) in [
            ("known_not_affected", VexStatus::NotAffected),
            ("fixed", VexStatus::Fixed),
            ("first_fixed", VexStatus::Fixed),
            ("known_affected", VexStatus::Affected),
            ("first_affected", VexStatus::Affected),
            ("last_affected", VexStatus::Affected),
            ("under_investigation", VexStatus::UnderInvestigation),
        ] {
            for product_id in strings(product_status, list, name)? {
                let mut justification = None;
                let mut impact_statement = None;
                if status == VexStatus::NotAffected {
                    for f in flags {
                        if names_product(f, &product_id)? {
                            justification = str_at(f, "label").map(str::to_owned);
                        }
                    }
                    for t in threats {
                        if str_at(t, "category") == Some("impact") && names_product(t, &product_id)?
                        {
                            impact_statement = str_at(t, "details").map(str::to_owned);
                        }
                    }
                }
                out.push(VexStatement {
                    vulnerability: vulnerability.clone(),
                    products: vec![product(&product_id, &products)],
                    status,
                    justification,
                    impact_statement,
                });
                if out.len() > MAX_VEX_STATEMENTS {
                    return Err(VexError::TooManyStatements {
                        name: name.to_owned(),
                        limit: MAX_VEX_STATEMENTS,
                    });
                }
            }
        }
    }
    if out.len() > MAX_VEX_STATEMENTS {
        return Err(VexError::TooManyStatements {
            name: name.to_owned(),
            limit: MAX_VEX_STATEMENTS,
        });
    }
    Ok(out)
}

/// The product a status list names: a relationship is its parent product with the component's
/// purls as subcomponents; a product the tree does not list is known by its id only.
fn product(id: &str, products: &BTreeMap<String, TreeProduct>) -> VexProduct {
    let Some(p) = products.get(id) else {
        return VexProduct {
            id: id.to_owned(),
            ..VexProduct::default()
        };
    };
    match &p.component_of {
        Some((component, parent)) => {
            let parent_product = products.get(parent);
            VexProduct {
                id: parent.clone(),
                purls: parent_product.map(|p| p.purls.clone()).unwrap_or_default(),
                sha256: parent_product.map(|p| p.sha256.clone()).unwrap_or_default(),
                subcomponents: products
                    .get(component)
                    .map(|c| c.purls.clone())
                    .unwrap_or_default(),
            }
        }
        None => VexProduct {
            id: id.to_owned(),
            purls: p.purls.clone(),
            sha256: p.sha256.clone(),
            subcomponents: Vec::new(),
        },
    }
}

fn walk_branches(
    branches: &[Value],
    depth: usize,
    name: &str,
    products: &mut BTreeMap<String, TreeProduct>,
    count: &mut usize,
) -> Result<(), VexError> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            name,
            format!("product_tree branches nest deeper than {MAX_DEPTH}"),
        ));
    }
    for b in branches {
        if let Some(p) = b.get("product") {
            add_product(p, name, products, count)?;
        }
        walk_branches(
            array_at(b, "branches", name, FORMAT)?,
            depth + 1,
            name,
            products,
            count,
        )?;
    }
    Ok(())
}

/// Records a `full_product_name` (its id, purl and SHA-256 file hashes); returns its id.
fn add_product(
    p: &Value,
    name: &str,
    products: &mut BTreeMap<String, TreeProduct>,
    count: &mut usize,
) -> Result<String, VexError> {
    *count += 1;
    if *count > MAX_PRODUCTS {
        return Err(invalid(
            name,
            format!("product_tree lists more than {MAX_PRODUCTS} products"),
        ));
    }
    let id = str_at(p, "product_id")
        .ok_or_else(|| invalid(name, "a product in product_tree has no product_id"))?;
    let entry = products.entry(id.to_owned()).or_default();
    if let Some(helper) = p.get("product_identification_helper") {
        if let Some(purl) = str_at(helper, "purl") {
            entry.purls.push(purl.to_owned());
        }
        for h in array_at(helper, "hashes", name, FORMAT)? {
            for fh in array_at(h, "file_hashes", name, FORMAT)? {
                if str_at(fh, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("sha256"))
                    && let Some(value) = str_at(fh, "value")
                {
                    entry.sha256.push(value.to_ascii_lowercase());
                }
            }
        }
    }
    Ok(id.to_owned())
}

/// The strings of the array at `field` (empty when absent); anything else in it is an error.
fn strings(value: &Value, field: &str, name: &str) -> Result<Vec<String>, VexError> {
    array_at(value, field, name, FORMAT)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(name, format!("{field} holds a non-string")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Edit = Box<dyn Fn(&mut Value)>;

    pub fn vex_doc(vulnerability: Value) -> Value {
        json!({
            "document": {
                "category": "csaf_vex", "csaf_version": "2.0", "title": "t",
                "publisher": {"category": "vendor", "name": "Example", "namespace": "https://example.com"},
                "tracking": {"id": "EX-1", "status": "final", "version": "1",
                    "initial_release_date": "2026-01-01T00:00:00Z",
                    "current_release_date": "2026-01-01T00:00:00Z",
                    "revision_history": [{"date": "2026-01-01T00:00:00Z", "number": "1", "summary": "first"}]},
            },
            "product_tree": {
                "branches": [{"category": "vendor", "name": "Example", "branches": [
                    {"category": "product_name", "name": "app", "product": {"product_id": "APP", "name": "app",
                        "product_identification_helper": {"hashes": [{"file_hashes": [{"algorithm": "sha256", "value": "A".repeat(64)}], "filename": "app"}]}}},
                    {"category": "product_name", "name": "smallvec", "product": {"product_id": "SV", "name": "smallvec 0.6.9",
                        "product_identification_helper": {"purl": "pkg:cargo/smallvec@0.6.9"}}},
                ]}],
                "relationships": [{"category": "default_component_of", "product_reference": "SV",
                    "relates_to_product_reference": "APP",
                    "full_product_name": {"product_id": "APP:SV", "name": "smallvec in app"}}],
                "product_groups": [{"group_id": "G", "product_ids": ["APP:SV"]}],
            },
            "vulnerabilities": [vulnerability],
        })
    }

    #[test]
    fn statuses_products_flags_and_threats_become_statements() {
        let doc = vex_doc(json!({
            "cve": "CVE-2019-15551", "ids": [{"system_name": "RustSec", "text": "RUSTSEC-2019-0009"}],
            "notes": [{"category": "description", "text": "double free"}],
            "product_status": {"known_not_affected": ["APP:SV"], "fixed": ["SV"], "under_investigation": ["NOPE"]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "group_ids": ["G"]}],
            "threats": [{"category": "impact", "details": "grow is never called", "product_ids": ["APP:SV"]}],
        }));
        let s = statements(&doc, "c.json").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].vulnerability.name, "CVE-2019-15551");
        assert_eq!(s[0].vulnerability.aliases, ["RUSTSEC-2019-0009"]);
        assert_eq!(s[0].status, VexStatus::NotAffected);
        assert_eq!(
            s[0].justification.as_deref(),
            Some("vulnerable_code_not_in_execute_path")
        );
        assert_eq!(
            s[0].impact_statement.as_deref(),
            Some("grow is never called")
        );
        assert_eq!(s[0].products[0].id, "APP");
        assert_eq!(s[0].products[0].sha256, ["a".repeat(64)]);
        assert_eq!(s[0].products[0].subcomponents, ["pkg:cargo/smallvec@0.6.9"]);
        assert_eq!(s[1].status, VexStatus::Fixed);
        assert_eq!(s[1].products[0].purls, ["pkg:cargo/smallvec@0.6.9"]);
        assert_eq!(s[2].products[0].id, "NOPE");
    }

    #[test]
    fn malformed_csaf_is_refused_with_the_reason() {
        let ok = vex_doc(json!({"cve": "CVE-1", "product_status": {"fixed": ["SV"]}}));
        let table: Vec<(Edit, &str)> = vec![
            (
                Box::new(|d| d["document"]["category"] = json!("csaf_security_advisory")),
                "not csaf_vex",
            ),
            (
                Box::new(|d| d["document"]["csaf_version"] = json!("2.1")),
                "custody reads 2.0",
            ),
            (
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("product_tree");
                }),
                "no product_tree",
            ),
            (
                Box::new(|d| d["vulnerabilities"] = json!([])),
                "no vulnerabilities",
            ),
            (
                Box::new(|d| d["vulnerabilities"] = json!({})),
                "not an array",
            ),
            (
                Box::new(|d| d["vulnerabilities"][0] = json!({"product_status": {}})),
                "neither cve nor ids",
            ),
            (
                Box::new(|d| d["vulnerabilities"][0] = json!({"cve": "CVE-1"})),
                "no product_status",
            ),
            (
                Box::new(|d| d["vulnerabilities"][0]["product_status"]["fixed"] = json!([1])),
                "non-string",
            ),
            (
                Box::new(|d| d["product_tree"]["full_product_names"] = json!([{"name": "x"}])),
                "no product_id",
            ),
            (
                Box::new(|d| {
                    d["product_tree"]["relationships"][0] =
                        json!({"full_product_name": {"product_id": "R"}})
                }),
                "lacks product_reference",
            ),
        ];
        for (break_it, needle) in table {
            let mut doc = ok.clone();
            break_it(&mut doc);
            let err = statements(&doc, "c.json").unwrap_err();
            assert!(
                matches!(&err, VexError::Invalid { name, .. } if name == "c.json")
                    && err.to_string().contains(needle),
                "{needle}: {err}"
            );
        }
        // Branches nested beyond the limit are refused, not followed.
        let mut deep = json!([{"product": {"product_id": "X"}}]);
        for _ in 0..MAX_DEPTH + 2 {
            deep = json!([{"branches": deep}]);
        }
        let mut doc = ok;
        doc["product_tree"]["branches"] = deep;
        assert!(
            statements(&doc, "c.json")
                .unwrap_err()
                .to_string()
                .contains("nest deeper")
        );
    }
}
