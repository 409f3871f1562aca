//! `custody rescan` on a real registry and an OCI layout: affected artifacts (tags sharing a
//! digest scanned once), artifacts without a usable SBOM, findings new since the last state,
//! `--advisory` by a CVE alias, `--policy` refusing a stranger's SBOM; and a registry that
//! answers 429 while tags are listed. `custody scan --policy/--attest` ride on the same setup.

use std::path::Path;

use custody::evidence::attach::{self, AttachOptions, AttestInput};
use custody::evidence::attest::PREDICATE_CYCLONEDX;
use custody::evidence::sign::KeySigner;
use custody::evidence::sign::keys::SigningKey;
use custody::storage::store::Store;
use serde_json::{Value, json};

use super::gates::{bom, open, policy_text, put_artifact, small_db};
use crate::support::{self, HostileServer, Response};

fn attest_sbom(store: &dyn Store, tag: &str, signer: &KeySigner, purls: &[&str]) {
    let d = put_artifact(store, tag.as_bytes(), tag);
    let components: Vec<(&str, Option<&str>)> = purls.iter().map(|p| (*p, None)).collect();
    attach::attest_artifact(
        store,
        &d,
        AttestInput::Predicate {
            predicate_type: PREDICATE_CYCLONEDX.into(),
            predicate: bom(&components),
        },
        signer,
        &AttachOptions::default(),
    )
    .unwrap();
}

/// v1 and v1-again (same digest): vulnerable smallvec; v2: clean; v3: no SBOM; v4: vulnerable,
/// SBOM signed by a stranger.
pub fn populate(store: &dyn Store, key: &KeySigner, stranger: &KeySigner) {
    attest_sbom(store, "v1", key, &["pkg:cargo/smallvec@0.6.9"]);
    let v1 = custody::storage::transfer::resolve(
        store,
        &format!("{}:v1", store.name()).parse().unwrap(),
    )
    .unwrap();
    store.tag(&"v1-again".parse().unwrap(), &v1).unwrap();
    attest_sbom(store, "v2", key, &["pkg:cargo/serde@1.0.200"]);
    put_artifact(store, b"v3", "v3");
    attest_sbom(store, "v4", stranger, &["pkg:cargo/smallvec@0.6.9"]);
}

fn rescan(args: &[&str]) -> (Value, i32) {
    let mut all = vec!["--output", "json", "rescan"];
    all.extend_from_slice(args);
    let out = support::run(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", support::stdout(&out), support::stderr(&out)));
    (json, out.status.code().unwrap())
}

/// (tags, [(advisory id, new)]) of an affected artifact.
type Affected = (Vec<String>, Vec<(String, bool)>);

fn affected(report: &Value) -> Vec<Affected> {
    report["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut tags: Vec<String> = a["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            tags.sort();
            let findings = a["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["id"].as_str().unwrap().to_owned(),
                        f["new"].as_bool().unwrap(),
                    )
                })
                .collect();
            (tags, findings)
        })
        .collect()
}

fn without(report: &Value) -> Vec<(String, String)> {
    report["withoutSbom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["tags"][0].as_str().unwrap().to_owned(),
                a["sbom"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn check_repository(repo: &str, dir: &Path) {
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(repo);
    populate(store.as_ref(), &key, &stranger);
    let db = small_db(&dir.join("one"), &["RUSTSEC-2019-0009"]);
    let db = db.to_str().unwrap();
    let state = dir.join("state.json");
    let state = state.to_str().unwrap();

    // First rescan: every finding is new; v1's two tags are one artifact.
    let (report, code) = rescan(&[repo, "--db", db, "--state", state]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["repositories"][0]["tags"], 5);
    assert_eq!(report["repositories"][0]["artifacts"], 4);
    assert_eq!(report["previousState"], false);
    assert_eq!(
        affected(&report),
        vec![
            (
                vec![s("v1"), s("v1-again")],
                vec![(s("RUSTSEC-2019-0009"), true)]
            ),
            (vec![s("v4")], vec![(s("RUSTSEC-2019-0009"), true)]),
        ]
    );
    assert_eq!(report["scanned"], 3);
    assert_eq!(report["unverified"], 3);
    assert_eq!(without(&report), vec![(s("v3"), s("missing"))]);
    assert_eq!(report["stateWritten"], state);

    // Same data again: nothing new; --fail-on-new passes.
    let (report, code) = rescan(&[repo, "--db", db, "--state", state, "--fail-on-new"]);
    assert_eq!(code, 0);
    assert_eq!(report["previousState"], true);
    assert_eq!(report["newFindings"], 0);

    // A new advisory: only it is new, and --fail-on-new exits 1.
    let db2 = small_db(
        &dir.join("two"),
        &["RUSTSEC-2019-0009", "RUSTSEC-2021-0003"],
    );
    let db2 = db2.to_str().unwrap();
    let (report, code) = rescan(&[repo, "--db", db2, "--state", state, "--fail-on-new"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["newFindings"], 2);
    assert_eq!(
        affected(&report)[0].1,
        vec![
            (s("RUSTSEC-2019-0009"), false),
            (s("RUSTSEC-2021-0003"), true)
        ]
    );

    // --advisory by a CVE alias: only that advisory; the state is not rewritten.
    let before = std::fs::read(state).unwrap();
    let (report, code) = rescan(&[
        repo,
        "--db",
        db2,
        "--state",
        state,
        "--advisory",
        "CVE-2021-25900",
    ]);
    assert_eq!(code, 0);
    assert_eq!(report["advisory"]["matched"], json!(["RUSTSEC-2021-0003"]));
    assert_eq!(
        affected(&report)
            .iter()
            .map(|a| a.1.clone())
            .collect::<Vec<_>>(),
        vec![
            vec![(s("RUSTSEC-2021-0003"), false)],
            vec![(s("RUSTSEC-2021-0003"), false)]
        ]
    );
    assert_eq!(report["stateWritten"], Value::Null);
    assert_eq!(std::fs::read(state).unwrap(), before);
    let out = support::run(&["rescan", repo, "--db", db2, "--advisory", "CVE-1999-0001"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("advisory CVE-1999-0001 is in none of the 2 advisories"),
        "{}",
        support::stderr(&out)
    );

    // With a policy: the stranger's SBOM is refused and not scanned.
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_text(&key.public_key(), "")).unwrap();
    let (report, code) = rescan(&[repo, "--db", db, "--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        affected(&report),
        vec![(
            vec![s("v1"), s("v1-again")],
            vec![(s("RUSTSEC-2019-0009"), true)]
        )]
    );
    assert_eq!(report["unverified"], 0);
    assert_eq!(
        without(&report),
        vec![(s("v3"), s("missing")), (s("v4"), s("refused"))]
    );
    assert!(
        report["withoutSbom"][1]["sbom"]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{report:#}"
    );

    // Human output names tags, advisories and what is missing.
    let out = support::run(&["rescan", repo, "--db", db]);
    let text = support::stdout(&out);
    assert!(
        text.contains("[v1, v1-again] — 1 finding(s), sbom UNVERIFIED")
            && text.contains("NEW critical RUSTSEC-2019-0009 (CVE-2019-15551, GHSA-mm7v-vpv8-xfc3) smallvec 0.6.9 fixed in 0.6.10")
            && text.contains("[v3] — no SBOM"),
        "{text}"
    );
}

#[test]
fn rescan_reports_impact_on_a_registry() {
    let dir = support::tempdir();
    let registry = support::shared_registry();
    check_repository(&format!("{}/rescan/app", registry.base), dir.path());
}

#[test]
fn rescan_reports_impact_on_an_oci_layout() {
    let dir = support::tempdir();
    check_repository(
        &format!("oci:{}", dir.path().join("layout").display()),
        dir.path(),
    );
}

#[test]
fn rescan_backs_off_when_the_registry_says_429_while_listing_tags() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = AtomicUsize::new(0);
    let server = HostileServer::start(move |r| {
        if r.path == "/v2/" {
            return Response::new(200);
        }
        if r.path.starts_with("/v2/slow/app/tags/list") {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                return Response::new(429)
                    .header("Retry-After", "0")
                    .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#);
            }
            return Response::new(200)
                .header("Content-Type", "application/json")
                .body(r#"{"name":"slow/app","tags":[]}"#);
        }
        Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#)
    });
    let dir = support::tempdir();
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let (report, code) = rescan(&[
        &format!("{}/slow/app", server.host),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["repositories"][0]["tags"], 0);
    assert_eq!(server.count("GET", "/v2/slow/app/tags/list"), 3);
}

#[test]
fn scan_verifies_the_sbom_against_a_policy_and_attests_the_result() {
    let dir = support::tempdir();
    let registry = support::shared_registry();
    let repo = format!("{}/scan/app", registry.base);
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&repo);
    populate(store.as_ref(), &key, &stranger);
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let db = db.to_str().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, policy_text(&key.public_key(), "")).unwrap();
    let policy = policy.to_str().unwrap();

    let scan = |tag: &str, extra: &[&str]| {
        let r = format!("{repo}:{tag}");
        let mut args = vec!["--output", "json", "scan", &r, "--db", db];
        args.extend_from_slice(extra);
        support::run(&args)
    };
    let out = scan("v1", &["--policy", policy]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sbomVerification"]["status"], "verified");
    assert!(
        json["sbomVerification"]["signer"]
            .as_str()
            .unwrap()
            .starts_with("release (key ")
    );
    // A stranger's SBOM is refused: exit 1, nothing scanned.
    let out = scan("v4", &["--policy", policy]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    assert!(
        support::stderr(&out).contains("the sbom of"),
        "{}",
        support::stderr(&out)
    );

    // --attest: a signed cosign vuln/v1 attestation about v1, verifiable by custody verify.
    let (private, public) = super::release::keypair(dir.path());
    let out = support::custody()
        .args([
            "--output",
            "json",
            "scan",
            &format!("{repo}:v1"),
            "--db",
            db,
        ])
        .args(["--attest", "--key", &private])
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["attestation"]["predicateType"],
        "https://cosign.sigstore.dev/attestation/vuln/v1"
    );
    let out = support::run(&[
        "--output",
        "json",
        "verify",
        &format!("{repo}:v1"),
        "--key",
        &public,
        "--require-attestation",
        "https://cosign.sigstore.dev/attestation/vuln/v1",
    ]);
    // The attestation is found and trusted, but it is not a signature: v1 is still unsigned by
    // that key (issue 10, finding 1).
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |kind: &str| {
        report["artifact"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        check("required-attestation")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(check("threshold")["status"], "fail", "{report:#}");
    // cosign reads it as its own vuln attestation.
    let o = std::process::Command::new(support::tool("cosign"))
        .args(["verify-attestation", "--type", "vuln", "--key", &public])
        .args(["--insecure-ignore-tlog=true", "--allow-http-registry"])
        .arg(json["attestation"]["subject"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cosign verify-attestation --type vuln: {}",
        support::stderr(&o)
    );
    // The attested predicate names the database and the findings.
    let subject = json["attestation"]["subject"].as_str().unwrap();
    let digest = subject.rsplit_once('@').unwrap().1.parse().unwrap();
    let found = attach::discover(store.as_ref(), &digest).unwrap();
    let bundle = found
        .bundles
        .iter()
        .find(|b| {
            b.claimed_predicate_type.as_deref()
                == Some("https://cosign.sigstore.dev/attestation/vuln/v1")
        })
        .unwrap();
    let b: Value = serde_json::from_slice(&bundle.bundle).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let scanner = &statement["predicate"]["scanner"];
    assert!(
        scanner["db"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("osv:sha256:")
    );
    let advisory: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("osv/RUSTSEC-2019-0009.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(scanner["db"]["version"], advisory["modified"]);
    assert_eq!(scanner["result"]["findings"][0]["id"], "RUSTSEC-2019-0009");
    assert!(statement["predicate"]["metadata"]["scanFinishedOn"].is_string());
}

/// Issue 10, finding 6: a stranger's SBOM that sorts first no longer hides the real signed one.
/// Every candidate is tried and those that verify are scanned; an artifact left with no SBOM
/// that verifies fails `--fail-on-new` and `--fail-on-unverified`, and is listed as refused.
#[test]
fn a_decoy_sbom_does_not_silence_rescan() {
    let dir = support::tempdir();
    let registry = support::shared_registry();
    let repo = format!("{}/decoy/app", registry.base);
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&repo);
    let sbom =
        |d: &custody::foundation::oci::Descriptor, signer: &KeySigner, purl: &str, n: usize| {
            let mut predicate = bom(&[(purl, None)]);
            predicate["serialNumber"] = json!(format!("urn:uuid:00000000-0000-0000-0000-{n:012}"));
            attach::attest_artifact(
                store.as_ref(),
                d,
                AttestInput::Predicate {
                    predicate_type: PREDICATE_CYCLONEDX.into(),
                    predicate,
                },
                signer,
                &AttachOptions::default(),
            )
            .unwrap()
            .referrer
            .digest
        };
    // A clean decoy, signed by a stranger, whose referrer sorts before the real one. Each try
    // has even odds, so each takes a fresh artifact with one real SBOM and one decoy; the tag
    // `v1` moves to the next try, and the untagged ones are never listed.
    for attempt in 0.. {
        assert!(attempt < 64, "no decoy sorted first");
        let v1 = put_artifact(
            store.as_ref(),
            format!("decoyed {attempt}").as_bytes(),
            "v1",
        );
        let real = sbom(&v1, &key, "pkg:cargo/smallvec@0.6.9", 0);
        if sbom(&v1, &stranger, "pkg:cargo/serde@1.0.200", 1) < real {
            break;
        }
    }
    // v2 has only a decoy.
    let v2 = put_artifact(store.as_ref(), b"only a decoy", "v2");
    sbom(&v2, &stranger, "pkg:cargo/serde@1.0.200", 100);

    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let db = db.to_str().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, policy_text(&key.public_key(), "")).unwrap();
    let policy = policy.to_str().unwrap();
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();

    let args = [
        repo.as_str(),
        "--db",
        db,
        "--policy",
        policy,
        "--state",
        state,
    ];
    let (report, code) = rescan(&[&args[..], &["--fail-on-new"]].concat());
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        affected(&report),
        vec![(vec![s("v1")], vec![(s("RUSTSEC-2019-0009"), true)])]
    );
    assert_eq!(report["affected"][0]["sbom"]["status"], "verified");
    assert_eq!(without(&report), vec![(s("v2"), s("refused"))]);
    assert!(
        report["withoutSbom"][0]["sbom"]["reason"]
            .as_str()
            .unwrap()
            .contains("none of the 1 sbom referrer(s) verified"),
        "{report:#}"
    );
    assert_eq!(report["withoutVerifiedSbom"], 1);
    support::validate_against_schema("rescan-report.schema.json", &report);

    // Nothing new since the state: v2 alone still fails both flags, and is named.
    let (report, code) = rescan(&[&args[..], &["--fail-on-new"]].concat());
    assert_eq!(report["newFindings"], 0);
    assert_eq!(code, 1, "{report:#}");
    let (_, code) = rescan(&[&args[..], &["--fail-on-unverified"]].concat());
    assert_eq!(code, 1);
    let out = support::run(&[&["rescan"], &args[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let human = support::stdout(&out);
    assert!(human.contains(":v2") || human.contains("[v2]"), "{human}");
    assert!(
        human.contains("1 artifact(s) without a verified SBOM"),
        "{human}"
    );
}

/// Issue 16: the report is streamed. Each artifact without a usable SBOM is written as one
/// compact JSON element on its own line as soon as it is scanned; the whole still parses as one
/// document that matches its schema, with the right counts and the affected artifacts listed.
/// The library hands those artifacts to the caller's visitor in tag order and keeps only their
/// count; a visitor that cannot write stops the rescan.
#[test]
fn the_rescan_report_is_streamed_one_artifact_per_line() {
    use custody::decisions::vuln::{Database, Limits};
    use custody::evidence::sign::verify::TrustedRoot;
    use custody::workflows::rescan::{self, Options, Target};

    let dir = support::tempdir();
    let layout = format!("oci:{}", dir.path().join("layout").display());
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    let store = open(&layout);
    populate(store.as_ref(), &key, &stranger);
    for i in 0..7 {
        put_artifact(
            store.as_ref(),
            format!("bare {i}").as_bytes(),
            &format!("w{i}"),
        );
    }
    let db = small_db(dir.path(), &["RUSTSEC-2019-0009"]);

    let out = support::run(&[
        "--output",
        "json",
        "--jobs",
        "2",
        "rescan",
        &layout,
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["{", r#"  "withoutSbom": ["#], "{text}");
    let end = lines.iter().position(|l| *l == "  ],").unwrap();
    let streamed: Vec<Value> = lines[2..end]
        .iter()
        .map(|l| serde_json::from_str(l.trim().trim_end_matches(',')).unwrap())
        .collect();
    let tags: Vec<&str> = streamed
        .iter()
        .map(|a| a["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v3", "w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    assert!(streamed.iter().all(|a| a["sbom"]["status"] == "missing"));

    let report: Value = serde_json::from_str(&text).unwrap();
    support::validate_against_schema("rescan-report.schema.json", &report);
    assert_eq!(report["withoutSbom"].as_array().unwrap(), &streamed);
    assert_eq!(report["withoutSbomCount"], 8);
    assert_eq!(report["unreadable"], 0);
    assert_eq!(report["repositories"][0]["tags"], 12);
    assert_eq!(report["repositories"][0]["artifacts"], 11);
    assert_eq!(report["scanned"], 3);
    assert_eq!(report["newFindings"], 2);
    assert_eq!(
        affected(&report),
        vec![
            (
                vec![s("v1"), s("v1-again")],
                vec![(s("RUSTSEC-2019-0009"), true)]
            ),
            (vec![s("v4")], vec![(s("RUSTSEC-2019-0009"), true)]),
        ]
    );

    // The library: the visitor sees each artifact without an SBOM once, in tag order.
    let db = Database::load(&[db], &Limits::default()).unwrap();
    let targets = [Target {
        reference: layout.parse().unwrap(),
        store: open(&layout),
    }];
    let root = TrustedRoot::empty();
    let mut seen = Vec::new();
    let (summary, state) = rescan::rescan(
        &targets,
        &db,
        None,
        &root,
        None,
        &Options::default(),
        &mut |a| {
            seen.push(a.tags.join(","));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen, ["v3", "w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    assert_eq!(summary.without_sbom, 8);
    assert_eq!(summary.affected.len(), 2);
    assert_eq!(state.findings.len(), 3);

    // A closed output stops the rescan with the write error.
    let err = rescan::rescan(
        &targets,
        &db,
        None,
        &root,
        None,
        &Options::default(),
        &mut |_| Err(std::io::ErrorKind::BrokenPipe.into()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, rescan::Error::Write { source } if source.kind() == std::io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
}
