//! The other formats custody writes and reads, checked by their owners' validators: SPDX 2.3
//! (spdx-tools) with the same packages, findings and origins as the CycloneDX twin of the same
//! run; CycloneDX 1.7 (cyclonedx-python-lib); SPDX SBOM attestations in the gates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use custody::decisions::policy::{Format, Policy};
use custody::decisions::verify::{self, CheckKind, Status, VerifyOptions, VerifyReport};
use custody::decisions::vuln::{Database, Limits};
use custody::evidence::attest::PREDICATE_SPDX;
use custody::evidence::sign::KeySigner;
use custody::evidence::sign::keys::SigningKey;
use custody::foundation::digest::Digest;
use custody::foundation::reference::Reference;
use custody::storage::store::Store;
use serde_json::{Value, json};

use crate::gates::{T0, attest, open, policy_text, put_artifact, shared_osv, sign, small_db};
use crate::support::{self, Registry, stderr, stdout};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `tests/it/validate.py` with the venv's python; `Err(stderr)` when it refuses.
pub fn validator(args: &[&str]) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/validate.py");
    let out = Command::new(support::venv_python())
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn run_json(args: &[&str]) -> (Value, i32) {
    let out = support::custody()
        .args(["--output", "json"])
        .args(args)
        .output()
        .expect("custody runs");
    let json = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{args:?} printed no json ({e}): {}", stderr(&out)));
    (json, out.status.code().expect("exit code"))
}

/// `custody sbom` of one file and `lockfiles` in `format` (and CycloneDX `spec`).
fn sbom(dir: &Path, lockfiles: &[PathBuf], format: &str, spec: &str, out: &str) -> PathBuf {
    let artifact = dir.join("app");
    std::fs::write(&artifact, b"the artifact").unwrap();
    let path = dir.join(out);
    let mut args = vec![
        "sbom".to_owned(),
        artifact.display().to_string(),
        "--format".to_owned(),
        format.to_owned(),
        "--spec-version".to_owned(),
        spec.to_owned(),
        "--source".to_owned(),
        dir.display().to_string(),
        "-o".to_owned(),
        path.display().to_string(),
    ];
    for l in lockfiles {
        args.push("--lockfile".to_owned());
        args.push(l.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (report, code) = run_json(&args);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["format"], format);
    path
}

fn every_lockfile_fixture() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("lockfiles")).unwrap() {
        for file in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if custody::evidence::sbom::LOCKFILE_NAMES.contains(&name.as_str())
                || (name.starts_with("requirements") && name.ends_with(".txt"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn spdx_of_every_lockfile_validates_with_spdx_tools() {
    let dir = support::tempdir();
    let locks = every_lockfile_fixture();
    assert!(locks.len() >= 6, "{locks:?}");
    let all = sbom(dir.path(), &locks, "spdx-json", "1.6", "all.spdx.json");
    validator(&["spdx", all.to_str().unwrap()]).unwrap();
    for (i, lock) in locks.iter().enumerate() {
        let one = sbom(
            dir.path(),
            std::slice::from_ref(lock),
            "spdx-json",
            "1.6",
            &format!("{i}.spdx.json"),
        );
        validator(&["spdx", one.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    }

    // The validator is not vacuous: a namespace with a fragment, or two packages with one id.
    let doc: Value = serde_json::from_slice(&std::fs::read(&all).unwrap()).unwrap();
    let broken = dir.path().join("broken.spdx.json");
    let mut fragment = doc.clone();
    fragment["documentNamespace"] = json!("https://example.org/spdx#x");
    std::fs::write(&broken, serde_json::to_vec(&fragment).unwrap()).unwrap();
    let err = validator(&["spdx", broken.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("documentNamespace") || err.contains("fragment"),
        "{err}"
    );
    let mut duplicate = doc;
    duplicate["packages"][2]["SPDXID"] = duplicate["packages"][3]["SPDXID"].clone();
    std::fs::write(&broken, serde_json::to_vec(&duplicate).unwrap()).unwrap();
    let err = validator(&["spdx", broken.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("unique"), "{err}");
}

#[test]
fn spdx_carries_what_the_cyclonedx_twin_carries() {
    let dir = support::tempdir();
    let mut locks = every_lockfile_fixture();
    locks.push(fixtures().join("vuln/Cargo.lock"));
    let spdx = sbom(dir.path(), &locks, "spdx-json", "1.6", "all.spdx.json");
    let cdx = sbom(dir.path(), &locks, "cyclonedx-json", "1.6", "all.cdx.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&spdx).unwrap()).unwrap();
    let bom: Value = serde_json::from_slice(&std::fs::read(&cdx).unwrap()).unwrap();

    // Every component, by purl, once; the dependency edges the same.
    let purl_of = |p: &Value| {
        p["externalRefs"]
            .as_array()
            .and_then(|r| r.first())
            .map(|r| r["referenceLocator"].as_str().unwrap().to_owned())
    };
    let packages = doc["packages"].as_array().unwrap();
    let mut spdx_purls: Vec<String> = packages.iter().skip(1).filter_map(purl_of).collect();
    spdx_purls.sort();
    let mut cdx_purls: Vec<String> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap().to_owned())
        .collect();
    cdx_purls.sort();
    assert_eq!(spdx_purls, cdx_purls);
    // The described package is the artifact, CycloneDX's metadata.component.
    let mut id_to_purl: std::collections::BTreeMap<&str, String> = packages
        .iter()
        .filter_map(|p| Some((p["SPDXID"].as_str().unwrap(), purl_of(p)?)))
        .collect();
    id_to_purl.insert(
        packages[0]["SPDXID"].as_str().unwrap(),
        bom["metadata"]["component"]["bom-ref"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let mut spdx_edges: Vec<(String, String)> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON" && r["relatedSpdxElement"] != "NONE")
        .map(|r| {
            (
                id_to_purl[r["spdxElementId"].as_str().unwrap()].clone(),
                id_to_purl[r["relatedSpdxElement"].as_str().unwrap()].clone(),
            )
        })
        .collect();
    spdx_edges.sort();
    let mut cdx_edges: Vec<(String, String)> = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            let from = d["ref"].as_str().unwrap().to_owned();
            d["dependsOn"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (from.clone(), t.as_str().unwrap().to_owned()))
        })
        .collect();
    cdx_edges.sort();
    assert_eq!(spdx_edges, cdx_edges);
    assert!(!cdx_edges.is_empty());

    // scan reads both to the same findings.
    let db = shared_osv().display().to_string();
    let (a, _) = run_json(&["scan", spdx.to_str().unwrap(), "--db", &db]);
    let (b, _) = run_json(&["scan", cdx.to_str().unwrap(), "--db", &db]);
    assert_eq!(a["input"]["envelope"], "plain");
    assert!(!a["findings"].as_array().unwrap().is_empty(), "{a}");
    for field in ["scanned", "findings", "notScanned", "componentsWithoutPurl"] {
        assert_eq!(a[field], b[field], "{field}");
    }

    // sources check reads both to the same origins and violations.
    let sources = fixtures().join("sources");
    let policy = sources.join("policy.json").display().to_string();
    let locks = [
        sources.join("cargo/Cargo.lock"),
        sources.join("npm/package-lock.json"),
    ];
    let spdx = sbom(dir.path(), &locks, "spdx-json", "1.6", "s.spdx.json");
    let cdx = sbom(dir.path(), &locks, "cyclonedx-json", "1.6", "s.cdx.json");
    let (a, code_a) = run_json(&[
        "sources",
        "check",
        spdx.to_str().unwrap(),
        "--policy",
        &policy,
    ]);
    let (b, code_b) = run_json(&[
        "sources",
        "check",
        cdx.to_str().unwrap(),
        "--policy",
        &policy,
    ]);
    assert_eq!((code_a, code_b), (1, 1));
    for field in ["checked", "internal", "violations"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert_eq!(
        a["violations"][0]["resolved"]["location"],
        "registry+https://github.com/rust-lang/crates.io-index"
    );
}

#[test]
fn cyclonedx_1_7_validates_with_cyclonedx_python_lib() {
    let dir = support::tempdir();
    let path = sbom(
        dir.path(),
        &every_lockfile_fixture(),
        "cyclonedx-json",
        "1.7",
        "all.cdx.json",
    );
    let bom: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(bom["specVersion"], "1.7");
    assert_eq!(
        bom["$schema"],
        "http://cyclonedx.org/schema/bom-1.7.schema.json"
    );
    validator(&["sbom", path.to_str().unwrap(), "1.7"]).unwrap();
}

fn policy(key: &KeySigner, rules: &str) -> Policy {
    let text = policy_text(&key.public_key(), rules);
    Policy::parse(
        text.as_bytes(),
        Format::Yaml,
        Path::new("."),
        "formats.yaml",
    )
    .unwrap()
}

pub fn verify_with(store: &dyn Store, r: &str, policy: &Policy, db: &Path) -> VerifyReport {
    let db = Database::load(&[db.to_owned()], &Limits::default()).unwrap();
    let options = VerifyOptions {
        now: Some(T0),
        vulnerability_db: Some(Arc::new(db)),
        ..VerifyOptions::default()
    };
    verify::artifact(store, &r.parse::<Reference>().unwrap(), policy, &options).unwrap()
}

pub fn checks(report: &VerifyReport, kind: CheckKind) -> Vec<verify::Check> {
    report
        .artifact
        .checks
        .iter()
        .filter(|c| c.kind == kind)
        .cloned()
        .collect()
}

/// An SPDX 2.3 document with one package per purl, described by a root package.
pub fn spdx_doc(purls: &[&str]) -> Value {
    let mut packages = vec![json!({"SPDXID": "SPDXRef-root", "name": "app",
        "downloadLocation": "NOASSERTION"})];
    let mut relationships = vec![json!({"spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-root"})];
    for (i, purl) in purls.iter().enumerate() {
        packages.push(json!({"SPDXID": format!("SPDXRef-p{i}"), "name": purl,
            "downloadLocation": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl}]}));
        relationships.push(json!({"spdxElementId": "SPDXRef-root",
            "relationshipType": "DEPENDS_ON", "relatedSpdxElement": format!("SPDXRef-p{i}")}));
    }
    json!({"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "app", "documentNamespace": "https://example.org/spdx/app-1",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": packages, "relationships": relationships})
}

#[test]
fn the_gates_read_a_signed_spdx_sbom() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = Registry::start();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/formats/spdx", registry.host));
    let d = put_artifact(store.as_ref(), b"v1", "v1");
    sign(store.as_ref(), &d, &key);
    attest(
        store.as_ref(),
        &d,
        &key,
        PREDICATE_SPDX,
        spdx_doc(&["pkg:cargo/smallvec@0.6.9"]),
    );
    let strict = policy(&key, "    vulnerabilities:\n      max_severity: medium\n");
    let at = format!("{}/formats/spdx:v1", registry.host);
    let report = verify_with(store.as_ref(), &at, &strict, &db);
    assert!(!report.verified);
    let sbom = &checks(&report, CheckKind::GateSbom)[0];
    assert_eq!(sbom.status, Status::Pass);
    assert!(
        sbom.found
            .as_deref()
            .unwrap()
            .starts_with("1 component purl(s)")
    );
    let v = checks(&report, CheckKind::Vulnerability);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].status, Status::Fail);
    assert_eq!(v[0].name, "RUSTSEC-2019-0009 in smallvec 0.6.9");
}

// ------------------------------------------------------------------------------------ VEX

const SMALLVEC: &str = "pkg:cargo/smallvec@0.6.9";

/// OpenVEX: not_affected for the artifact by digest, the package as its subcomponent.
pub fn openvex_doc(artifact: &Digest) -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/app-1",
        "author": "security@example.com",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2019-15551"},
            "products": [{"@id": format!("pkg:oci/app@sha256%3A{}", artifact.hex()),
                          "hashes": {"sha-256": artifact.hex()},
                          "subcomponents": [{"@id": SMALLVEC}]}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        }],
    })
}

/// CSAF 2.0 VEX: smallvec as a component of the artifact (by its SHA-256) is known not
/// affected, with a VEX flag and an impact threat.
pub fn csaf_doc(artifact: &Digest) -> Value {
    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "title": "smallvec double free does not affect app",
            "publisher": {"category": "vendor", "name": "Example", "namespace": "https://example.com"},
            "tracking": {
                "id": "EXAMPLE-VEX-2026-0001", "status": "final", "version": "1",
                "initial_release_date": "2026-01-01T00:00:00.000Z",
                "current_release_date": "2026-01-01T00:00:00.000Z",
                "generator": {"engine": {"name": "custody tests"}},
                "revision_history": [{"date": "2026-01-01T00:00:00.000Z", "number": "1", "summary": "Initial version."}],
            },
        },
        "product_tree": {
            "branches": [{"category": "vendor", "name": "Example", "branches": [
                {"category": "product_name", "name": "app", "product": {
                    "product_id": "APP", "name": "Example app",
                    "product_identification_helper": {"hashes": [{"filename": "app",
                        "file_hashes": [{"algorithm": "sha256", "value": artifact.hex()}]}]}}},
                {"category": "product_name", "name": "smallvec", "branches": [
                    {"category": "product_version", "name": "0.6.9", "product": {
                        "product_id": "SMALLVEC-0.6.9", "name": "smallvec 0.6.9",
                        "product_identification_helper": {"purl": SMALLVEC}}}]}],
            }],
            "relationships": [{"category": "default_component_of",
                "product_reference": "SMALLVEC-0.6.9", "relates_to_product_reference": "APP",
                "full_product_name": {"product_id": "APP:SMALLVEC-0.6.9", "name": "smallvec 0.6.9 in app"}}],
        },
        "vulnerabilities": [{
            "cve": "CVE-2019-15551",
            "notes": [{"category": "description", "text": "Double free in SmallVec::grow."}],
            "product_status": {"known_not_affected": ["APP:SMALLVEC-0.6.9"]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "product_ids": ["APP:SMALLVEC-0.6.9"]}],
            "threats": [{"category": "impact", "details": "app never grows a SmallVec from input.",
                         "product_ids": ["APP:SMALLVEC-0.6.9"]}],
        }],
    })
}

/// CycloneDX 1.6 VEX: the smallvec component not affected, with the advisory's id.
pub fn cyclonedx_vex_doc(artifact: &Digest) -> Value {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "metadata": {"timestamp": "2026-01-01T00:00:00Z",
            "component": {"type": "application", "name": "app", "bom-ref": "app",
                "hashes": [{"alg": "SHA-256", "content": artifact.hex()}]}},
        "components": [{"type": "library", "name": "smallvec", "version": "0.6.9",
            "bom-ref": SMALLVEC, "purl": SMALLVEC}],
        "vulnerabilities": [{
            "bom-ref": "vex-1", "id": "RUSTSEC-2019-0009",
            "source": {"name": "RustSec", "url": "https://rustsec.org/advisories/RUSTSEC-2019-0009"},
            "references": [{"id": "CVE-2019-15551", "source": {"name": "NVD"}}],
            "analysis": {"state": "not_affected", "justification": "code_not_reachable",
                "detail": "app never grows a SmallVec from input."},
            "affects": [{"ref": SMALLVEC}],
        }],
    })
}

type VexCase = (&'static str, &'static str, fn(&Digest) -> Value);

fn vex_cases() -> [VexCase; 3] {
    [
        ("openvex", "https://openvex.dev/ns/v0.2.0", openvex_doc),
        ("csaf vex", custody::evidence::vex::PREDICATE_CSAF, csaf_doc),
        (
            "cyclonedx vex",
            custody::evidence::vex::PREDICATE_CYCLONEDX_VEX,
            cyclonedx_vex_doc,
        ),
    ]
}

#[test]
fn each_vex_format_signed_suppresses_and_an_unsigned_one_is_listed_not_applied() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = Registry::start();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/formats/vex", registry.host));
    let strict = policy(&key, "    vulnerabilities:\n      max_severity: medium\n");
    for (i, (label, predicate_type, doc)) in vex_cases().into_iter().enumerate() {
        let tag = format!("v{i}");
        let at = format!("{}/formats/vex:{tag}", registry.host);
        let d = put_artifact(store.as_ref(), tag.as_bytes(), &tag);
        sign(store.as_ref(), &d, &key);
        attest(
            store.as_ref(),
            &d,
            &key,
            custody::evidence::attest::PREDICATE_CYCLONEDX,
            crate::gates::bom(&[(SMALLVEC, None)]),
        );
        // Unsigned by a trusted key: listed, never applied.
        attest(
            store.as_ref(),
            &d,
            &stranger,
            predicate_type,
            doc(&d.digest),
        );
        let report = verify_with(store.as_ref(), &at, &strict, &db);
        assert!(!report.verified, "{label}");
        let vex = checks(&report, CheckKind::Vex);
        assert_eq!(vex.len(), 1, "{label}: {vex:?}");
        assert_eq!(vex[0].status, Status::Skip);
        assert_eq!(vex[0].name, format!("{label} attestation"));
        assert!(
            vex[0]
                .found
                .as_deref()
                .unwrap()
                .ends_with("ignored, not signed by a trusted signer"),
            "{vex:?}"
        );
        assert_eq!(
            checks(&report, CheckKind::Vulnerability)[0].status,
            Status::Fail
        );

        // Signed by the release key and bound to the artifact: the finding is suppressed, with
        // the justification shown.
        attest(store.as_ref(), &d, &key, predicate_type, doc(&d.digest));
        let report = verify_with(store.as_ref(), &at, &strict, &db);
        assert!(report.verified, "{label}");
        let v = &checks(&report, CheckKind::Vulnerability)[0];
        assert_eq!(v.status, Status::Pass);
        let found = v.found.as_deref().unwrap();
        assert!(
            found.contains("allowed: not affected per signed VEX")
                && (found.contains("vulnerable_code_not_in_execute_path")
                    || found.contains("code_not_reachable")),
            "{label}: {found}"
        );
        let used = checks(&report, CheckKind::Vex);
        assert!(
            used.iter().any(|c| c.status == Status::Pass
                && c.found.as_deref().unwrap().ends_with("1 statement(s)")),
            "{label}: {used:?}"
        );
    }

    // The same statement about another artifact's digest does not apply here.
    let d = put_artifact(store.as_ref(), b"elsewhere", "elsewhere");
    sign(store.as_ref(), &d, &key);
    attest(
        store.as_ref(),
        &d,
        &key,
        custody::evidence::attest::PREDICATE_CYCLONEDX,
        crate::gates::bom(&[(SMALLVEC, None)]),
    );
    attest(
        store.as_ref(),
        &d,
        &key,
        custody::evidence::vex::PREDICATE_CSAF,
        csaf_doc(&Digest::of(b"another artifact")),
    );
    let at = format!("{}/formats/vex:elsewhere", registry.host);
    assert!(!verify_with(store.as_ref(), &at, &strict, &db).verified);
}

#[test]
fn malformed_signed_vex_is_refused_with_the_reason() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = Registry::start();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/formats/badvex", registry.host));
    let strict = policy(&key, "    vulnerabilities:\n      max_severity: medium\n");
    let d = put_artifact(store.as_ref(), b"bad", "bad");
    sign(store.as_ref(), &d, &key);
    attest(
        store.as_ref(),
        &d,
        &key,
        custody::evidence::attest::PREDICATE_CYCLONEDX,
        crate::gates::bom(&[(SMALLVEC, None)]),
    );
    let mut advisory = csaf_doc(&d.digest);
    advisory["document"]["category"] = json!("csaf_security_advisory");
    let mut openvex = openvex_doc(&d.digest);
    openvex["statements"][0]["status"] = json!("probably_fine");
    let mut cdx = cyclonedx_vex_doc(&d.digest);
    cdx["vulnerabilities"][0]["affects"] = json!([]);
    for (predicate_type, doc) in [
        (custody::evidence::vex::PREDICATE_CSAF, advisory),
        ("https://openvex.dev/ns", openvex),
        (custody::evidence::vex::PREDICATE_CYCLONEDX_VEX, cdx),
    ] {
        attest(store.as_ref(), &d, &key, predicate_type, doc);
    }
    let at = format!("{}/formats/badvex:bad", registry.host);
    let report = verify_with(store.as_ref(), &at, &strict, &db);
    assert!(!report.verified);
    let mut found: Vec<String> = checks(&report, CheckKind::Vex)
        .into_iter()
        .map(|c| {
            assert_eq!(c.status, Status::Skip);
            c.found.unwrap()
        })
        .collect();
    found.sort();
    let needles = [
        "not usable csaf: document.category is Some(\"csaf_security_advisory\"), not csaf_vex",
        "not usable cyclonedx: vulnerabilities[0] (RUSTSEC-2019-0009) affects nothing",
        "not usable openvex: status \"probably_fine\"",
    ];
    assert_eq!(found.len(), 3, "{found:?}");
    for needle in needles {
        assert!(
            found.iter().any(|f| f.contains(needle)),
            "{needle}: {found:?}"
        );
    }
}

fn node_validate_csaf(path: &Path) -> Result<(), String> {
    let home = std::env::var_os("CUSTODY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/custody/tools")
        });
    let lib = home.join("npm-csaf/node_modules/@secvisogram/csaf-validator-lib");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/csaf_validate.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(lib)
        .arg(path)
        .output()
        .expect("node runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn openvex_schema() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas/external")
        .join("openvex_json_schema.json")
        .display()
        .to_string()
}

#[test]
fn vex_documents_validate_against_their_owners_schemas() {
    let dir = support::tempdir();
    let artifact = Digest::of(b"app");
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p
    };
    let schema = openvex_schema();
    let openvex = write("o.json", &openvex_doc(&artifact));
    validator(&["schema", &schema, openvex.to_str().unwrap()]).unwrap();
    let csaf = write("c.json", &csaf_doc(&artifact));
    node_validate_csaf(&csaf).unwrap();
    let cdx = write("x.json", &cyclonedx_vex_doc(&artifact));
    validator(&["sbom", cdx.to_str().unwrap(), "1.6"]).unwrap();

    // The validators are not vacuous.
    let mut bad = openvex_doc(&artifact);
    bad["statements"][0]["status"] = json!("probably_fine");
    let p = write("o-bad.json", &bad);
    let err = validator(&["schema", &schema, p.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("status"), "{err}");
    let mut bad = csaf_doc(&artifact);
    bad["vulnerabilities"][0]["product_status"]["known_not_affected"] = json!(["NOT-IN-TREE"]);
    let p = write("c-bad.json", &bad);
    let err = node_validate_csaf(&p).unwrap_err();
    assert!(err.contains("mandatoryTest_6_1_1"), "{err}");
    let mut bad = cyclonedx_vex_doc(&artifact);
    bad["vulnerabilities"][0]["analysis"]["state"] = json!("fine");
    let p = write("x-bad.json", &bad);
    assert!(validator(&["sbom", p.to_str().unwrap(), "1.6"]).is_err());
}

fn custody_with_key(args: &[&str]) -> std::process::Output {
    support::custody()
        .args(["--output", "json"])
        .args(args)
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .expect("custody runs")
}

#[test]
fn custody_vex_signs_an_openvex_statement_that_verify_applies() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let (key, public) = crate::release::keypair(dir.path());
    let public = custody::evidence::sign::keys::PublicKey::from_pem(
        &std::fs::read_to_string(&public).unwrap(),
    )
    .unwrap();
    let registry = Registry::start();
    let store = open(&format!("{}/formats/cli", registry.host));
    let d = put_artifact(store.as_ref(), b"cli", "v1");
    let at = format!("{}/formats/cli:v1", registry.host);
    let bom = dir.path().join("bom.json");
    std::fs::write(
        &bom,
        serde_json::to_vec(&crate::gates::bom(&[(SMALLVEC, None)])).unwrap(),
    )
    .unwrap();
    for args in [
        vec!["sign", &at, "--key", &key],
        vec![
            "attest",
            &at,
            "--type",
            "cyclonedx",
            "--predicate",
            bom.to_str().unwrap(),
            "--key",
            &key,
        ],
    ] {
        let out = custody_with_key(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let text = policy_text(
        &public,
        "    vulnerabilities:\n      max_severity: medium\n",
    );
    let strict = Policy::parse(text.as_bytes(), Format::Yaml, Path::new("."), "p.yaml").unwrap();
    assert!(!verify_with(store.as_ref(), &at, &strict, &db).verified);

    // A not_affected statement without a reason is refused before anything is signed.
    let out = custody_with_key(&[
        "vex",
        &at,
        "--vulnerability",
        "CVE-2019-15551",
        "--status",
        "not_affected",
        "--key",
        &key,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs --justification"),
        "{}",
        stderr(&out)
    );

    let doc = dir.path().join("vex.json");
    let out = custody_with_key(&[
        "vex",
        &at,
        "--vulnerability",
        "CVE-2019-15551",
        "--status",
        "not_affected",
        "--justification",
        "vulnerable_code_not_in_execute_path",
        "--subcomponent",
        SMALLVEC,
        "--author",
        "security@example.com",
        "--key",
        &key,
        "-o",
        doc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["predicateType"], "https://openvex.dev/ns");
    assert_eq!(report["subject"]["digest"], d.digest.to_string());
    assert_eq!(report["vex"]["status"], "not_affected");
    validator(&["schema", &openvex_schema(), doc.to_str().unwrap()]).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&doc).unwrap()).unwrap();
    assert_eq!(
        written["statements"][0]["products"][0]["hashes"]["sha-256"],
        d.digest.hex()
    );

    let report = verify_with(store.as_ref(), &at, &strict, &db);
    assert!(report.verified);
    let v = &checks(&report, CheckKind::Vulnerability)[0];
    assert!(
        v.found
            .as_deref()
            .unwrap()
            .contains("allowed: not affected per signed VEX"),
        "{v:?}"
    );
}
