//! The security gates of `custody verify` on a real registry: a vulnerable signed SBOM refused
//! with the advisory named, allowed by an unexpired exception, refused once it expired, allowed
//! by a signed OpenVEX statement and not by an unsigned one, allowed within the grace period;
//! a dependency-confusion violation named with both locations; an unsigned SBOM never used.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody::decisions::policy::{Format, Policy};
use custody::decisions::verify::{self, CheckKind, Status, VerifyOptions, VerifyReport};
use custody::decisions::vuln::{Database, Limits};
use custody::evidence::attach::{self, BundleContent};
use custody::evidence::attest::PREDICATE_CYCLONEDX;
use custody::evidence::sign::keys::PublicKey;
use custody::evidence::sign::keys::SigningKey;
use custody::evidence::sign::{KeySigner, sign_statement};
use custody::foundation::digest::Digest;
use custody::foundation::oci::Descriptor;
use custody::foundation::reference::Reference;
use custody::storage::store::{self, Store};
use serde_json::{Value, json};

use crate::support;

pub const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const OPENVEX_V020: &str = "https://openvex.dev/ns/v0.2.0";

pub fn shared_osv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/osv/crates.io")
}

/// A database of the given shared advisories only (copied into `dir`).
pub fn small_db(dir: &Path, ids: &[&str]) -> PathBuf {
    let db = dir.join("osv");
    std::fs::create_dir_all(&db).unwrap();
    for id in ids {
        std::fs::copy(
            shared_osv().join(format!("{id}.json")),
            db.join(format!("{id}.json")),
        )
        .unwrap();
    }
    db
}

pub fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

pub use crate::verify::put_artifact;

pub fn statement(subject: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": subject.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

pub fn attest(
    store: &dyn Store,
    subject: &Descriptor,
    signer: &KeySigner,
    predicate_type: &str,
    predicate: Value,
) {
    let bundle = sign_statement(
        &statement(&subject.digest, predicate_type, predicate),
        signer,
    )
    .unwrap()
    .to_json();
    attach::attach_bundle(
        store,
        subject,
        &bundle,
        BundleContent::DsseEnvelope,
        Some(predicate_type),
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
}

/// Signs `subject` (cosign's signature statement): attestations alone do not count as signatures.
pub fn sign(store: &dyn Store, subject: &Descriptor, signer: &KeySigner) {
    attest(
        store,
        subject,
        signer,
        custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1,
        json!({}),
    );
}

/// A CycloneDX SBOM with these components (purl, optional distribution URL).
pub fn bom(components: &[(&str, Option<&str>)]) -> Value {
    let components: Vec<Value> = components
        .iter()
        .map(|(purl, from)| {
            let mut c = json!({"type": "library", "name": purl, "purl": purl});
            if let Some(url) = from {
                c["externalReferences"] = json!([{"type": "distribution", "url": url}]);
            }
            c
        })
        .collect();
    json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": components})
}

pub fn vex(vulnerability: &str, purl: &str) -> Value {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "security@example.com",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": vulnerability},
            "products": [{"@id": "pkg:oci/app", "subcomponents": [{"@id": purl}]}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        }],
    })
}

fn indent(pem: &str, n: usize) -> String {
    pem.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Policy text: one scope over `**` trusting `key` as `release`, plus `rules`.
pub fn policy_text(key: &PublicKey, rules: &str) -> String {
    format!(
        "version: 1\nscopes:\n  - name: gated\n    repositories: [\"**\"]\n    signers:\n      - name: release\n        key: |\n{}\n{rules}",
        indent(&key.to_pem(), 10)
    )
}

fn policy(key: &PublicKey, rules: &str) -> Policy {
    let text = policy_text(key, rules);
    Policy::parse(text.as_bytes(), Format::Yaml, Path::new("."), "gates.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn verify_with(store: &dyn Store, r: &str, policy: &Policy, db: &Path) -> VerifyReport {
    let db = Database::load(&[db.to_owned()], &Limits::default()).unwrap();
    let options = VerifyOptions {
        now: Some(T0),
        vulnerability_db: Some(Arc::new(db)),
        ..VerifyOptions::default()
    };
    verify::artifact(store, &r.parse().unwrap(), policy, &options).unwrap()
}

fn checks(report: &VerifyReport, kind: CheckKind) -> Vec<verify::Check> {
    report
        .artifact
        .checks
        .iter()
        .filter(|c| c.kind == kind)
        .cloned()
        .collect()
}

fn human(report: &VerifyReport) -> String {
    custody::decisions::verify::render::human(report)
}

const SMALLVEC: &str = "pkg:cargo/smallvec@0.6.9";

#[test]
fn vulnerability_gate_outcomes_on_a_signed_sbom() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/gates/app", registry.base));
    let at = |tag: &str| format!("{}/gates/app:{tag}", registry.base);

    // v1: signed, with a signed SBOM with a critical finding.
    let d = put_artifact(store.as_ref(), b"v1", "v1");
    sign(store.as_ref(), &d, &key);
    attest(
        store.as_ref(),
        &d,
        &key,
        PREDICATE_CYCLONEDX,
        bom(&[(SMALLVEC, None)]),
    );

    let strict = policy(
        &key.public_key(),
        "    vulnerabilities:\n      max_severity: medium\n",
    );
    let report = verify_with(store.as_ref(), &at("v1"), &strict, &db);
    assert!(!report.verified, "{}", human(&report));
    let v = checks(&report, CheckKind::Vulnerability);
    assert_eq!(v.len(), 1, "{}", human(&report));
    assert_eq!(v[0].status, Status::Fail);
    assert_eq!(v[0].name, "RUSTSEC-2019-0009 in smallvec 0.6.9");
    let found = v[0].found.as_deref().unwrap();
    assert!(
        found.contains("CVE-2019-15551")
            && found.contains("critical 9.8")
            && found.contains("fixed in 0.6.10")
            && found.contains("refused: critical is above the maximum medium"),
        "{found}"
    );
    assert!(v[0].hint.as_deref().unwrap().contains("exception"));
    assert!(v[0].expected.as_deref().unwrap().contains("at most medium"));
    let summary = &checks(&report, CheckKind::Vulnerabilities)[0];
    assert_eq!(summary.status, Status::Pass);
    assert!(
        summary
            .found
            .as_deref()
            .unwrap()
            .contains("1 finding(s), 1 violation(s)")
    );

    // An unexpired exception (by alias) allows it; the same one expired refuses again.
    let exception = |expires: &str| {
        format!(
            "    vulnerabilities:\n      max_severity: medium\n      exceptions:\n        - id: CVE-2019-15551\n          reason: never called on untrusted input\n          expires: {expires}\n"
        )
    };
    let report = verify_with(
        store.as_ref(),
        &at("v1"),
        &policy(&key.public_key(), &exception("2026-06-30")),
        &db,
    );
    assert!(report.verified, "{}", human(&report));
    let v = &checks(&report, CheckKind::Vulnerability)[0];
    assert_eq!(v.status, Status::Pass);
    assert!(
        v.found.as_deref().unwrap().contains(
            "allowed: exception for CVE-2019-15551 until 2026-06-30: never called on untrusted input"
        ),
        "{v:?}"
    );
    let report = verify_with(
        store.as_ref(),
        &at("v1"),
        &policy(&key.public_key(), &exception("2025-12-31")),
        &db,
    );
    assert!(!report.verified);
    let v = &checks(&report, CheckKind::Vulnerability)[0];
    assert!(
        v.found
            .as_deref()
            .unwrap()
            .contains("the exception for CVE-2019-15551 expired on 2025-12-31"),
        "{v:?}"
    );

    // Within the grace period (published 2019-06-06; 3000 days later is in 2027).
    let grace = policy(
        &key.public_key(),
        "    vulnerabilities:\n      max_severity: medium\n      grace_period_days: 3000\n",
    );
    let report = verify_with(store.as_ref(), &at("v1"), &grace, &db);
    assert!(report.verified, "{}", human(&report));
    assert!(
        checks(&report, CheckKind::Vulnerability)[0]
            .found
            .as_deref()
            .unwrap()
            .contains("published 2019-06-06, within the grace period until 2027-08-23")
    );

    // An OpenVEX attestation signed by someone else is ignored, and said so.
    attest(
        store.as_ref(),
        &d,
        &stranger,
        OPENVEX_V020,
        vex("CVE-2019-15551", SMALLVEC),
    );
    let report = verify_with(store.as_ref(), &at("v1"), &strict, &db);
    assert!(!report.verified, "{}", human(&report));
    let vex_checks = checks(&report, CheckKind::Vex);
    assert_eq!(vex_checks.len(), 1);
    assert_eq!(vex_checks[0].status, Status::Skip);
    assert!(
        vex_checks[0]
            .found
            .as_deref()
            .unwrap()
            .contains("ignored, not signed by a trusted signer")
    );

    // Signed by the trusted key, it marks the finding not affected.
    attest(
        store.as_ref(),
        &d,
        &key,
        OPENVEX_V020,
        vex("CVE-2019-15551", SMALLVEC),
    );
    let report = verify_with(store.as_ref(), &at("v1"), &strict, &db);
    assert!(report.verified, "{}", human(&report));
    let v = &checks(&report, CheckKind::Vulnerability)[0];
    assert_eq!(v.status, Status::Pass);
    assert!(
        v.found
            .as_deref()
            .unwrap()
            .contains("allowed: not affected per signed VEX")
            && v.found
                .as_deref()
                .unwrap()
                .contains("vulnerable_code_not_in_execute_path"),
        "{v:?}"
    );
    // ... unless the policy names other VEX signers.
    let other = policy(
        &key.public_key(),
        "    vulnerabilities:\n      max_severity: medium\n      vex_signers: []\n",
    );
    let report = verify_with(store.as_ref(), &at("v1"), &other, &db);
    assert!(!report.verified, "{}", human(&report));
}

#[test]
fn an_unsigned_sbom_is_never_gated_and_no_section_is_said() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/gates/other", registry.base));
    let d = put_artifact(store.as_ref(), b"v2", "v2");
    let r = format!("{}/gates/other:v2", registry.base);
    attest(
        store.as_ref(),
        &d,
        &key,
        custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1,
        json!({}),
    );
    // A clean SBOM signed by a stranger: not used, even though it would pass.
    attest(
        store.as_ref(),
        &d,
        &stranger,
        PREDICATE_CYCLONEDX,
        bom(&[("pkg:cargo/serde@1.0.200", None)]),
    );
    let gated = policy(
        &key.public_key(),
        "    vulnerabilities:\n      max_severity: high\n",
    );
    let report = verify_with(store.as_ref(), &r, &gated, &db);
    assert!(!report.verified);
    let sbom = &checks(&report, CheckKind::GateSbom)[0];
    assert_eq!(sbom.status, Status::Fail);
    assert!(
        sbom.found.as_deref().unwrap().contains("none trusted"),
        "{sbom:?}"
    );
    assert!(
        sbom.hint
            .as_deref()
            .unwrap()
            .contains("unsigned one proves nothing")
    );

    // No vulnerabilities: section: skipped, and said so.
    let plain = policy(&key.public_key(), "");
    let report = verify_with(store.as_ref(), &r, &plain, &db);
    assert!(report.verified, "{}", human(&report));
    let skip = &checks(&report, CheckKind::Vulnerabilities)[0];
    assert_eq!(skip.status, Status::Skip);
    assert_eq!(
        skip.found.as_deref(),
        Some("not checked: scope gated has no vulnerabilities: section")
    );

    // A vulnerabilities: section without a database cannot be verified (exit 2, not a pass).
    let err = verify::artifact(
        store.as_ref(),
        &r.parse().unwrap(),
        &gated,
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, verify::Error::NoVulnerabilityDatabase { scope } if scope == "gated"),
        "{err}"
    );
}

#[test]
fn a_sources_violation_names_both_locations() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/gates/web", registry.base));
    let d = put_artifact(store.as_ref(), b"web", "v1");
    attest(
        store.as_ref(),
        &d,
        &key,
        PREDICATE_CYCLONEDX,
        bom(&[
            (
                "pkg:npm/%40acme/ui@1.0.0",
                Some("https://npm.acme.internal/@acme/ui/-/ui-1.0.0.tgz"),
            ),
            (
                "pkg:npm/%40acme/auth@2.0.0",
                Some("https://registry.npmjs.org/@acme/auth/-/auth-2.0.0.tgz"),
            ),
            (
                "pkg:npm/left-pad@1.3.0",
                Some("https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"),
            ),
        ]),
    );
    let rules = "    sources:\n      internal:\n        - packages: [\"pkg:npm/@acme/*\"]\n          registries: [https://npm.acme.internal/]\n";
    let report = verify_with(
        store.as_ref(),
        &format!("{}/gates/web:v1", registry.base),
        &policy(&key.public_key(), rules),
        &db,
    );
    assert!(!report.verified, "{}", human(&report));
    let s = checks(&report, CheckKind::Sources);
    assert_eq!(s.len(), 2, "{}", human(&report));
    assert_eq!(
        s[0].found.as_deref(),
        Some("3 component(s) checked, 2 internal, 1 from elsewhere")
    );
    assert_eq!(s[1].name, "source of pkg:npm/%40acme/auth@2.0.0");
    assert_eq!(
        s[1].found.as_deref(),
        Some("resolved from https://registry.npmjs.org/@acme/auth/-/auth-2.0.0.tgz")
    );
    assert!(
        s[1].expected
            .as_deref()
            .unwrap()
            .contains("from https://npm.acme.internal/"),
        "{:?}",
        s[1]
    );
    // The vulnerabilities gate was not asked for: said so.
    assert_eq!(
        checks(&report, CheckKind::Vulnerabilities)[0].status,
        Status::Skip
    );
}

#[test]
fn custody_verify_applies_the_policy_gates_with_db_from_flag_or_policy() {
    let dir = support::tempdir();
    small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&format!("{}/gates/cli", registry.base));
    let d = put_artifact(store.as_ref(), b"cli", "v1");
    sign(store.as_ref(), &d, &key);
    attest(
        store.as_ref(),
        &d,
        &key,
        PREDICATE_CYCLONEDX,
        bom(&[(SMALLVEC, None)]),
    );
    let r = format!("{}/gates/cli:v1", registry.base);
    let file = dir.path().join("policy.yaml");
    // `databases` is relative to the policy file.
    std::fs::write(
        &file,
        policy_text(
            &key.public_key(),
            "    vulnerabilities:\n      databases: [osv]\n      max_severity: high\n",
        ),
    )
    .unwrap();
    let out = support::run(&["verify", &r, "--policy", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    assert!(
        text.contains("✗ RUSTSEC-2019-0009 in smallvec 0.6.9") && text.contains("CVE-2019-15551"),
        "{text}"
    );
    // --db replaces the policy's databases: an empty-of-smallvec database passes.
    let clean = dir.path().join("clean");
    small_db(&clean, &["RUSTSEC-2016-0001"]);
    let out = support::run(&[
        "--output",
        "json",
        "verify",
        &r,
        "--policy",
        file.to_str().unwrap(),
        "--db",
        clean.join("osv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stdout(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = json["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"gate-sbom") && kinds.contains(&"vulnerabilities"));
    // A database that is not there: could not verify.
    let out = support::run(&[
        "verify",
        &r,
        "--policy",
        file.to_str().unwrap(),
        "--db",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
}

#[test]
fn a_policy_with_both_gates_is_valid_against_the_schema_and_the_verify_report_too() {
    let dir = support::tempdir();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let text = policy_text(
        &key.public_key(),
        "    vulnerabilities:\n      databases: [osv]\n      max_severity: medium\n      unknown_severity_as: critical\n      grace_period_days: 7\n      vex_signers: [release]\n      exceptions:\n        - id: CVE-2019-15551\n          reason: not reachable\n          expires: \"2026-06-30\"\n          purl: pkg:cargo/smallvec\n    sources:\n      internal:\n        - packages: [\"pkg:npm/@acme/*\"]\n          registries: [https://npm.acme.internal/]\n          allow_local_paths: false\n",
    );
    let as_json = serde_json::to_vec(&super::verify::yaml_to_json(&text)).unwrap();
    super::verify::validate_schema("policy.schema.json", &as_json);

    // A refused report with every gate check kind validates against the report schema.
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let store = open(&format!("{}/gates/schema", registry.base));
    let d = put_artifact(store.as_ref(), b"schema", "v1");
    attest(
        store.as_ref(),
        &d,
        &key,
        PREDICATE_CYCLONEDX,
        bom(&[
            (SMALLVEC, None),
            (
                "pkg:npm/%40acme/auth@2.0.0",
                Some("https://registry.npmjs.org/@acme/auth/-/auth-2.0.0.tgz"),
            ),
        ]),
    );
    attest(
        store.as_ref(),
        &d,
        &key,
        OPENVEX_V020,
        vex("CVE-1999-0001", SMALLVEC),
    );
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = support::run(&[
        "--output",
        "json",
        "verify",
        &format!("{}/gates/schema:v1", registry.base),
        "--policy",
        file.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    super::verify::validate_schema("verify-report.schema.json", &out.stdout);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = json["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    for k in [
        "gate-sbom",
        "vulnerabilities",
        "vex",
        "vulnerability",
        "sources",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

/// Issue 10, finding 3: only the absence of an index SBOM is deferred to the platforms. An
/// index whose own signed SBOM fails the vulnerability gate is refused, even when every platform
/// has a clean SBOM of its own; without an SBOM on the index, the same platforms are accepted.
#[test]
fn a_vulnerable_index_sbom_is_not_deferred_to_the_platforms() {
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let registry = support::shared_registry();
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let repo = format!("{}/gates/multi", registry.base);
    let store = open(&repo);
    let sign = |d: &Descriptor| {
        attest(
            store.as_ref(),
            d,
            &key,
            custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1,
            json!({}),
        )
    };
    let amd = put_artifact(store.as_ref(), b"amd64", "amd64");
    let arm = put_artifact(store.as_ref(), b"arm64", "arm64");
    for p in [&amd, &arm] {
        sign(p);
        attest(
            store.as_ref(),
            p,
            &key,
            PREDICATE_CYCLONEDX,
            bom(&[("pkg:cargo/serde@1.0.200", None)]),
        );
    }
    let children = [(&amd, "linux", "amd64"), (&arm, "linux", "arm64")];
    let clean = super::verify::put_index(store.as_ref(), &children, "clean");
    sign(&clean);
    let strict = policy(
        &key.public_key(),
        "    sbom:\n      required: true\n    vulnerabilities:\n      max_severity: medium\n",
    );
    let report = verify_with(store.as_ref(), &format!("{repo}:clean"), &strict, &db);
    assert!(report.verified, "{}", human(&report));

    // Same platforms, another index (an annotation tells them apart) with a vulnerable SBOM.
    let index = custody::foundation::oci::ImageIndex {
        manifests: children
            .iter()
            .map(|(d, os, arch)| {
                let mut c = (*d).clone();
                c.platform = Some(custody::foundation::oci::Platform {
                    architecture: (*arch).into(),
                    os: (*os).into(),
                    variant: None,
                    os_version: None,
                });
                c
            })
            .collect(),
        annotations: [("org.example.build".to_string(), "2".to_string())].into(),
        ..custody::foundation::oci::ImageIndex::empty()
    };
    let bytes = custody::foundation::oci::to_bytes(&index);
    let vulnerable = store
        .put_manifest(&bytes, custody::foundation::oci::MEDIA_TYPE_IMAGE_INDEX)
        .unwrap();
    sign(&vulnerable);
    attest(
        store.as_ref(),
        &vulnerable,
        &key,
        PREDICATE_CYCLONEDX,
        bom(&[(SMALLVEC, None)]),
    );
    let report = verify_with(
        store.as_ref(),
        &format!("{repo}@{}", vulnerable.digest),
        &strict,
        &db,
    );
    assert!(!report.verified, "{}", human(&report));
    let v = checks(&report, CheckKind::Vulnerability);
    assert_eq!(v.len(), 1, "{}", human(&report));
    assert_eq!(v[0].status, Status::Fail, "{}", human(&report));
    assert_eq!(v[0].name, "RUSTSEC-2019-0009 in smallvec 0.6.9");
    assert!(
        report
            .artifact
            .checks
            .iter()
            .all(|c| c.name != "sbom of every platform"),
        "nothing was deferred: {}",
        human(&report)
    );
}
