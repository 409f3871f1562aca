//! Every JSON document custody writes of its own, produced by real commands (real registries,
//! OCI layouts, git work trees) and validated against its schema in `schemas/` by an independent
//! validator; for each schema family a real output with one thing broken must fail, so a schema
//! that accepts anything would be caught. And every file of `schemas/` is used by some test.

use std::path::{Path, PathBuf};
use std::process::Output;

use custody::evidence::sign::KeySigner;
use custody::evidence::sign::keys::SigningKey;
use serde_json::{Value, json};

use crate::e2e::policy_file;
use crate::release::{keypair, release_in, work_tree};
use crate::support::{self, Registry, schema_violations, stderr, stdout, validate_against_schema};

/// Runs `custody --output json <args>` in `dir` with the release key's password, an audit log
/// (`dir/audit.log`) with a checkpoint signed by `audit_key` every 3 records, and a fixed actor.
fn custody(dir: &Path, audit_key: &str, args: &[&str]) -> Output {
    support::custody()
        .args(["--output", "json"])
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("CUSTODY_AUDIT_LOG", dir.join("audit.log"))
        .env("CUSTODY_AUDIT_KEY", audit_key)
        .env("CUSTODY_AUDIT_CHECKPOINT_EVERY", "3")
        .env("USER", "tester")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .expect("custody runs")
}

fn parse(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

/// The JSON of a run that exited with `code`.
fn exits(o: &Output, code: i32) -> Value {
    assert_eq!(o.status.code(), Some(code), "{}\n{}", stdout(o), stderr(o));
    parse(o)
}

/// Asserts that `instance` with `break_it` applied no longer validates against `schema`, and
/// that the validator names `needle` (the broken field or the broken rule).
fn refused(schema: &str, instance: &Value, needle: &str, break_it: impl FnOnce(&mut Value)) {
    let mut broken = instance.clone();
    break_it(&mut broken);
    assert_ne!(&broken, instance, "the edit must change something");
    match schema_violations(schema, &broken) {
        Some(errors) => assert!(
            errors.contains(needle),
            "{schema}: expected a violation naming {needle:?}, got:\n{errors}"
        ),
        None => panic!("{schema} accepted a broken document:\n{broken:#}"),
    }
}

fn remove(field: &'static str) -> impl FnOnce(&mut Value) {
    move |v| {
        v.as_object_mut()
            .expect("an object")
            .remove(field)
            .unwrap_or_else(|| panic!("{field} is present"));
    }
}

const BAD_DIGEST: &str = "sha256:NOT-A-DIGEST";

#[test]
fn release_store_promote_tree_policy_and_audit_outputs_follow_their_schemas() {
    // Two registries of their own: promotion crosses hosts (staging to production).
    let staging = Registry::start();
    let production = Registry::start();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    let (key, public) = keypair(d);
    let policy = policy_file(d, &public);
    let policy = policy.to_str().unwrap();
    let run = |args: &[&str]| custody(d, &key, args);
    let ok = |args: &[&str]| exits(&run(args), 0);

    // release
    let src = format!("{}/acme/app:1.0.0", staging.host);
    let o = release_in(&repo, &["dist/app.bin", "--to", &src, "--key", &key]);
    let released = exits(&o, 0);
    validate_against_schema("release-report.schema.json", &released);
    refused(
        "release-report.schema.json",
        &released,
        "'digest' is a required property",
        remove("digest"),
    );

    // source, sbom, provenance
    let repo_s = repo.to_str().unwrap();
    let artifact = repo.join("dist/app.bin");
    let artifact = artifact.to_str().unwrap();
    let source = ok(&["source", "--dir", repo_s]);
    assert_eq!(source["dirty"], false);
    validate_against_schema("attest-reports.schema.json#/$defs/source", &source);
    validate_against_schema("attest-reports.schema.json", &source);
    refused(
        "attest-reports.schema.json#/$defs/source",
        &source,
        "does not match",
        |v| v["commit"] = json!("not-a-commit"),
    );
    let sbom_file = d.join("app.cdx.json");
    let sbom = ok(&[
        "sbom",
        artifact,
        "--source",
        repo_s,
        "-o",
        sbom_file.to_str().unwrap(),
    ]);
    assert_eq!(sbom["specVersion"], "1.6");
    validate_against_schema("attest-reports.schema.json#/$defs/sbom", &sbom);
    refused(
        "attest-reports.schema.json#/$defs/sbom",
        &sbom,
        "is not one of",
        |v| v["specVersion"] = json!("2.0"),
    );
    let provenance = ok(&[
        "provenance",
        artifact,
        "--source",
        repo_s,
        "-o",
        d.join("app.prov.json").to_str().unwrap(),
    ]);
    validate_against_schema("attest-reports.schema.json#/$defs/provenance", &provenance);
    refused(
        "attest-reports.schema.json#/$defs/provenance",
        &provenance,
        "'builderId' is a required property",
        remove("builderId"),
    );

    // digest, push, resolve, pull, sign, attest, discover, copy
    let extra = d.join("extra.txt");
    std::fs::write(&extra, b"extra artifact\n").unwrap();
    let extra = extra.to_str().unwrap();
    let digested = ok(&["digest", extra]);
    validate_against_schema("store-reports.schema.json#/$defs/digest", &digested);
    validate_against_schema("store-reports.schema.json", &digested);
    refused(
        "store-reports.schema.json#/$defs/digest",
        &digested,
        "does not match",
        |v| v[0]["digest"] = json!(BAD_DIGEST),
    );

    let extra_ref = format!("{}/acme/extra:v1", staging.host);
    let pushed = ok(&["push", extra, "--to", &extra_ref]);
    assert_eq!(pushed["tagOutcome"]["result"], "created");
    validate_against_schema("store-reports.schema.json#/$defs/push", &pushed);
    validate_against_schema("store-reports.schema.json", &pushed);
    let again = ok(&["push", extra, "--to", &extra_ref]);
    assert_eq!(again["tagOutcome"]["result"], "unchanged");
    validate_against_schema("store-reports.schema.json#/$defs/push", &again);
    refused(
        "store-reports.schema.json#/$defs/push",
        &pushed,
        "does not match",
        |v| v["digest"] = json!(BAD_DIGEST),
    );
    refused(
        "store-reports.schema.json#/$defs/push",
        &pushed,
        "Additional properties are not allowed ('tag_outcome' was unexpected)",
        |v| {
            let outcome = v.as_object_mut().unwrap().remove("tagOutcome").unwrap();
            v["tag_outcome"] = outcome;
        },
    );

    let resolved = ok(&["resolve", &extra_ref]);
    validate_against_schema("store-reports.schema.json#/$defs/resolve", &resolved);
    let pulled = ok(&["pull", &extra_ref, "-o", d.join("pulled").to_str().unwrap()]);
    assert_eq!(pulled["files"].as_array().unwrap().len(), 1);
    validate_against_schema("store-reports.schema.json#/$defs/pull", &pulled);
    refused(
        "store-reports.schema.json#/$defs/pull",
        &pulled,
        "'skipped' is a required property",
        remove("skipped"),
    );

    let signed = ok(&["sign", &extra_ref, "--key", &key, "--legacy-cosign-tags"]);
    assert_eq!(signed["legacy"].as_array().unwrap().len(), 1);
    validate_against_schema("sign-report.schema.json#/$defs/attachment", &signed);
    validate_against_schema("sign-report.schema.json", &signed);
    refused(
        "sign-report.schema.json#/$defs/attachment",
        &signed,
        "'referrer' is a required property",
        remove("referrer"),
    );
    let predicate = d.join("predicate.json");
    std::fs::write(&predicate, br#"{"reviewed": true}"#).unwrap();
    let attested = ok(&[
        "attest",
        &extra_ref,
        "--key",
        &key,
        "--predicate",
        predicate.to_str().unwrap(),
        "--type",
        "https://example.com/review/v1",
        "--bundle",
        d.join("review.bundle").to_str().unwrap(),
    ]);
    validate_against_schema("sign-report.schema.json#/$defs/attachment", &attested);
    refused(
        "sign-report.schema.json#/$defs/attachment",
        &attested,
        "is not one of",
        |v| v["referrerOutcome"] = json!("written"),
    );

    let discovered = ok(&["discover", &extra_ref]);
    assert_eq!(discovered["path"], "tag-schema");
    assert_eq!(discovered["referrers"].as_array().unwrap().len(), 2);
    validate_against_schema("store-reports.schema.json#/$defs/discover", &discovered);
    refused(
        "store-reports.schema.json#/$defs/discover",
        &discovered,
        "is not one of",
        |v| v["path"] = json!("guessed"),
    );

    let layout = format!("oci:{}:v1", d.join("layout").display());
    let copied = ok(&["copy", &extra_ref, &layout]);
    assert_eq!(copied["referrers"], 2);
    assert_eq!(copied["legacyTags"].as_array().unwrap().len(), 1);
    validate_against_schema("store-reports.schema.json#/$defs/copy", &copied);
    validate_against_schema("store-reports.schema.json", &copied);
    let dry = ok(&[
        "copy",
        &extra_ref,
        &format!("{}/acme/extra:v1", production.host),
        "--dry-run",
    ]);
    assert_eq!(dry["dryRun"], true);
    assert!(dry["tagOutcome"].is_null());
    validate_against_schema("store-reports.schema.json#/$defs/copy", &dry);
    refused(
        "store-reports.schema.json#/$defs/copy",
        &copied,
        "'blobsCopied' is a required property",
        remove("blobsCopied"),
    );

    // error: an immutable tag refuses another digest (exit 1)
    let other = d.join("other.txt");
    std::fs::write(&other, b"something else\n").unwrap();
    let error = exits(
        &run(&["push", other.to_str().unwrap(), "--to", &extra_ref]),
        1,
    );
    assert_eq!(error["exitCode"], 1);
    assert!(error["hint"].as_str().unwrap().contains("--force-tag"));
    validate_against_schema("error.schema.json", &error);
    refused("error.schema.json", &error, "is not one of", |v| {
        v["exitCode"] = json!(0)
    });
    let cannot = exits(&run(&["resolve", "not a reference"]), 2);
    validate_against_schema("error.schema.json", &cannot);
    refused(
        "error.schema.json",
        &cannot,
        "'causes' is a required property",
        remove("causes"),
    );

    // verify, promote (dry, real, refused), tree
    let verified = ok(&["verify", &src, "--policy", policy]);
    validate_against_schema("verify-report.schema.json", &verified);
    refused(
        "verify-report.schema.json",
        &verified,
        "does not match",
        |v| v["digest"] = json!(BAD_DIGEST),
    );
    let dst = format!("{}/acme/app:1.0.0", production.host);
    let dry = ok(&["promote", &src, &dst, "--policy", policy, "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    validate_against_schema("promote-report.schema.json", &dry);
    let promoted = ok(&[
        "promote",
        &src,
        &dst,
        "--policy",
        policy,
        "--key",
        &key,
        "--attest-promotion",
    ]);
    assert_eq!(promoted["copy"]["tagOutcome"]["result"], "created");
    assert!(promoted["promotionAttestation"].is_string());
    validate_against_schema("promote-report.schema.json", &promoted);
    refused(
        "promote-report.schema.json",
        &promoted,
        "None is not of type 'object'",
        |v| v["copy"] = Value::Null,
    );
    refused(
        "promote-report.schema.json",
        &promoted,
        "'blobsMounted' is a required property",
        |v| {
            v["copy"].as_object_mut().unwrap().remove("blobsMounted");
        },
    );
    let stranger_dir = d.join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let (_, stranger) = keypair(&stranger_dir);
    let not_promoted = exits(
        &run(&[
            "promote",
            &src,
            &format!("{}/acme/app:never", production.host),
            "--trust-key",
            &stranger,
        ]),
        1,
    );
    assert_eq!(not_promoted["verified"], false);
    assert!(not_promoted["copy"].is_null());
    validate_against_schema("promote-report.schema.json", &not_promoted);
    refused(
        "promote-report.schema.json",
        &not_promoted,
        "is not of type 'null'",
        |v| v["copy"] = promoted["copy"].clone(),
    );

    let tree = ok(&["tree", &dst, "--policy", policy]);
    assert_eq!(tree["verification"]["verified"], true);
    assert!(tree["nodes"].as_array().unwrap().len() >= 4, "{tree:#}");
    validate_against_schema("tree-report.schema.json", &tree);
    let bare_tree = ok(&["tree", &extra_ref]);
    assert!(bare_tree.get("verification").is_none());
    validate_against_schema("tree-report.schema.json", &bare_tree);
    refused("tree-report.schema.json", &tree, "is not one of", |v| {
        v["nodes"][0]["kind"] = json!("mystery")
    });

    // policy init, policy check
    let init = ok(&["policy", "init", d.join("starter.yaml").to_str().unwrap()]);
    validate_against_schema("policy-report.schema.json#/$defs/init", &init);
    validate_against_schema("policy-report.schema.json", &init);
    let check = ok(&["policy", "check", policy]);
    assert_eq!(check["scopes"][0]["name"], "acme");
    validate_against_schema("policy-report.schema.json#/$defs/check", &check);
    refused(
        "policy-report.schema.json#/$defs/check",
        &check,
        "'scopes' is a required property",
        remove("scopes"),
    );

    // the audit log, its checkpoint sidecar, audit verify and audit show
    let log = d.join("audit.log");
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    for needed in [
        "push",
        "sign",
        "attest",
        "copy",
        "verify",
        "promote",
        "checkpoint",
    ] {
        assert!(actions.contains(&needed), "{needed} in {actions:?}");
    }
    assert!(
        lines.iter().any(|l| l["outcome"] == "refused"),
        "{actions:?}"
    );
    for line in &lines {
        validate_against_schema("audit-record.schema.json", line);
    }
    let checkpoint = lines.iter().find(|l| l["action"] == "checkpoint").unwrap();
    let push = lines.iter().find(|l| l["action"] == "push").unwrap();
    refused(
        "audit-record.schema.json",
        push,
        "'prev' is a required property",
        remove("prev"),
    );
    refused(
        "audit-record.schema.json",
        checkpoint,
        "'checkpoint' is a required property",
        remove("checkpoint"),
    );
    refused(
        "audit-record.schema.json",
        push,
        "is not a 'date-time'",
        |v| v["time"] = json!("yesterday at noon Z"),
    );
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(d.join("audit.log.checkpoint")).unwrap()).unwrap();
    validate_against_schema("audit-checkpoint.schema.json", &sidecar);
    refused(
        "audit-checkpoint.schema.json",
        &sidecar,
        "Additional properties are not allowed",
        |v| v["note"] = json!("unsigned"),
    );
    let log_s = log.to_str().unwrap();
    let audit = exits(
        &support::run(&[
            "--output", "json", "audit", "verify", log_s, "--key", &public,
        ]),
        0,
    );
    assert!(
        audit["checkpointsVerified"].as_u64().unwrap() >= 1,
        "{audit}"
    );
    validate_against_schema("audit-reports.schema.json#/$defs/verify", &audit);
    validate_against_schema("audit-reports.schema.json", &audit);
    refused(
        "audit-reports.schema.json#/$defs/verify",
        &audit,
        "'lastSeq' is a required property",
        remove("lastSeq"),
    );
    // A tampered log: the same report, its problem named, exit 1.
    let tampered = d.join("tampered.log");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &tampered,
        text.replacen("\"outcome\":\"ok\"", "\"outcome\":\"refused\"", 1),
    )
    .unwrap();
    let bad = exits(
        &support::run(&[
            "--output",
            "json",
            "audit",
            "verify",
            tampered.to_str().unwrap(),
            "--key",
            &public,
        ]),
        1,
    );
    assert_eq!(bad["problem"]["kind"], "edited", "{bad}");
    validate_against_schema("audit-reports.schema.json#/$defs/verify", &bad);
    validate_against_schema("audit-reports.schema.json", &bad);
    refused(
        "audit-reports.schema.json#/$defs/verify",
        &bad,
        "is not valid under any of the given schemas",
        |v| v["problem"]["kind"] = json!("rewritten"),
    );
    let shown = exits(
        &support::run(&["--output", "json", "audit", "show", log_s]),
        0,
    );
    assert_eq!(shown.as_array().unwrap().len(), lines.len());
    validate_against_schema("audit-reports.schema.json#/$defs/show", &shown);
    refused(
        "audit-reports.schema.json#/$defs/show",
        &shown,
        "is not one of",
        |v| v[0]["outcome"] = json!("maybe"),
    );
}

/// A dirty tree is recorded with the paths that differ, as `dirtyPaths` in both the source
/// record and the release report (the record once wrote `dirty_paths`, which the release schema
/// did not name).
#[test]
fn a_dirty_release_and_its_source_record_follow_their_schemas() {
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    std::fs::write(repo.join("main.c"), "int main(void) { return 1; }\n").unwrap();
    let o = release_in(&repo, &["dist/app.bin", "--allow-dirty"]);
    let released = exits(&o, 0);
    assert_eq!(released["source"]["dirtyPaths"], json!(["main.c"]));
    assert!(released["tag"].is_null() || released["tag"].is_string());
    validate_against_schema("release-report.schema.json", &released);
    refused(
        "release-report.schema.json",
        &released,
        "Additional properties are not allowed ('dirty_paths' was unexpected)",
        |v| {
            let paths = v["source"]
                .as_object_mut()
                .unwrap()
                .remove("dirtyPaths")
                .unwrap();
            v["source"]["dirty_paths"] = paths;
        },
    );
    let source = exits(
        &support::run(&[
            "--output",
            "json",
            "source",
            "--dir",
            repo.to_str().unwrap(),
            "--allow-dirty",
        ]),
        0,
    );
    assert_eq!(source["dirtyPaths"], json!(["main.c"]));
    validate_against_schema("attest-reports.schema.json#/$defs/source", &source);
}

#[test]
fn a_recover_record_follows_the_audit_record_schema() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, _) = keypair(d);
    let file = d.join("f");
    std::fs::write(&file, b"f").unwrap();
    let layout = format!("oci:{}", d.join("layout").display());
    let push = |tag: &str| {
        exits(
            &custody(
                d,
                &key,
                &[
                    "push",
                    file.to_str().unwrap(),
                    "--to",
                    &format!("{layout}:{tag}"),
                ],
            ),
            0,
        )
    };
    push("a");
    // A crash in the middle of a write leaves a torn last line.
    let log = d.join("audit.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"type":"custody.audit/v1","seq":2,"ti"#);
    std::fs::write(&log, bytes).unwrap();
    push("b");
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let recover = lines
        .iter()
        .find(|l| l["action"] == "recover")
        .unwrap_or_else(|| panic!("a recover record: {lines:#?}"));
    validate_against_schema("audit-record.schema.json", recover);
    refused(
        "audit-record.schema.json",
        recover,
        "'tornSha256' is a required property",
        |v| {
            v["details"].as_object_mut().unwrap().remove("tornSha256");
        },
    );
}

#[test]
fn keygen_sign_blob_and_verify_bundle_outputs_follow_their_schemas() {
    let dir = support::tempdir();
    let d = dir.path();
    let prefix = d.join("k");
    let run = |args: &[&str]| {
        let mut c = support::custody();
        c.args(["--output", "json"])
            .args(args)
            .env("COSIGN_PASSWORD", "pw");
        c.output().unwrap()
    };
    let keys = exits(
        &run(&["keygen", "--output-key-prefix", prefix.to_str().unwrap()]),
        0,
    );
    validate_against_schema("sign-report.schema.json#/$defs/keygen", &keys);
    validate_against_schema("sign-report.schema.json", &keys);
    refused(
        "sign-report.schema.json#/$defs/keygen",
        &keys,
        "'publicKey' is a required property",
        remove("publicKey"),
    );
    let blob = d.join("blob.txt");
    std::fs::write(&blob, b"hello\n").unwrap();
    let bundle = d.join("blob.bundle");
    let key = format!("{}.key", prefix.display());
    let public = format!("{}.pub", prefix.display());
    let signed = exits(
        &run(&[
            "sign-blob",
            blob.to_str().unwrap(),
            "--key",
            &key,
            "--bundle",
            bundle.to_str().unwrap(),
        ]),
        0,
    );
    validate_against_schema("sign-report.schema.json#/$defs/signBlob", &signed);
    validate_against_schema("sign-report.schema.json", &signed);
    refused(
        "sign-report.schema.json#/$defs/signBlob",
        &signed,
        "'bundle' is a required property",
        remove("bundle"),
    );
    let verified = exits(
        &run(&[
            "verify-bundle",
            "--bundle",
            bundle.to_str().unwrap(),
            "--key",
            &public,
            blob.to_str().unwrap(),
        ]),
        0,
    );
    assert_eq!(verified["result"]["signer"]["kind"], "key");
    validate_against_schema("sign-report.schema.json#/$defs/verifyBundle", &verified);
    validate_against_schema("sign-report.schema.json", &verified);
    refused(
        "sign-report.schema.json#/$defs/verifyBundle",
        &verified,
        "'verifiedTimes' is a required property",
        |v| {
            v["result"]["checks"]
                .as_object_mut()
                .unwrap()
                .remove("verifiedTimes");
        },
    );
    // A bundle for other bytes is refused: the error document, exit 1.
    std::fs::write(&blob, b"tampered\n").unwrap();
    let refusal = exits(
        &run(&[
            "verify-bundle",
            "--bundle",
            bundle.to_str().unwrap(),
            "--key",
            &public,
            blob.to_str().unwrap(),
        ]),
        1,
    );
    validate_against_schema("error.schema.json", &refusal);
}

fn osv_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/osv/crates.io")
}

#[test]
fn scan_rescan_and_rescan_state_follow_their_schemas() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = format!("{}/acme/service", registry.base);
    let store = crate::gates::open(&repo);
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let stranger = KeySigner::new(SigningKey::generate_p256().unwrap());
    crate::rescan::populate(store.as_ref(), &key, &stranger);

    // scan: a lockfile, and an OCI artifact through its SBOM referrer
    let lockfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vuln/Cargo.lock");
    let db = osv_db();
    let db = db.to_str().unwrap();
    let scanned = exits(
        &support::run(&[
            "--output",
            "json",
            "scan",
            lockfile.to_str().unwrap(),
            "--db",
            db,
        ]),
        0,
    );
    assert!(!scanned["findings"].as_array().unwrap().is_empty());
    validate_against_schema("scan-report.schema.json", &scanned);
    refused("scan-report.schema.json", &scanned, "is not one of", |v| {
        v["findings"][0]["severity"]["rating"] = json!("severe")
    });
    refused(
        "scan-report.schema.json",
        &scanned,
        "'contentDigest' is a required property",
        |v| {
            v["database"]
                .as_object_mut()
                .unwrap()
                .remove("contentDigest");
        },
    );
    let failing = exits(
        &support::run(&[
            "--output",
            "json",
            "scan",
            &format!("{repo}:v1"),
            "--db",
            db,
            "--fail-on",
            "low",
        ]),
        1,
    );
    assert_eq!(failing["input"]["kind"], "oci");
    assert_eq!(failing["failOn"], "low");
    validate_against_schema("scan-report.schema.json", &failing);
    refused("scan-report.schema.json", &failing, "does not match", |v| {
        v["input"]["sboms"][0]["referrer"] = json!(BAD_DIGEST)
    });

    // rescan with a state file, twice
    let db = crate::gates::small_db(&d.join("one"), &["RUSTSEC-2019-0009"]);
    let db = db.to_str().unwrap();
    let state = d.join("state.json");
    let state_s = state.to_str().unwrap();
    let rescan = || {
        exits(
            &support::run(&[
                "--output", "json", "rescan", &repo, "--db", db, "--state", state_s,
            ]),
            0,
        )
    };
    let first = rescan();
    assert_eq!(first["previousState"], false);
    assert_eq!(first["affected"].as_array().unwrap().len(), 2);
    validate_against_schema("rescan-report.schema.json", &first);
    let second = rescan();
    assert_eq!(second["previousState"], true);
    assert_eq!(second["newFindings"], 0);
    validate_against_schema("rescan-report.schema.json", &second);
    refused("rescan-report.schema.json", &first, "is not one of", |v| {
        v["withoutSbom"][0]["sbom"]["status"] = json!("lost")
    });
    refused(
        "rescan-report.schema.json",
        &first,
        "'new' is a required property",
        |v| {
            v["affected"][0]["findings"][0]
                .as_object_mut()
                .unwrap()
                .remove("new");
        },
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved["findings"].as_object().unwrap().len(),
        3,
        "v1, v2 (clean) and v4: {saved}"
    );
    validate_against_schema("rescan-state.schema.json", &saved);
    refused("rescan-state.schema.json", &saved, "does not match", |v| {
        let findings = v["findings"].as_object_mut().unwrap();
        let (k, x) = findings
            .iter()
            .next()
            .map(|(k, x)| (k.clone(), x.clone()))
            .unwrap();
        findings.remove(&k);
        findings.insert(BAD_DIGEST.into(), x);
    });
}

#[test]
fn sources_and_prune_outputs_follow_their_schemas() {
    let dir = support::tempdir();
    let d = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources");
    let policy = fixtures.join("policy.json");
    let policy = policy.to_str().unwrap();

    // sources check: clean, then a violation (refused: the same report, exit 1)
    let clean = d.join("Cargo.lock");
    let text = std::fs::read_to_string(fixtures.join("cargo/Cargo.lock")).unwrap();
    std::fs::write(
        &clean,
        text.replace(
            "name = \"acme_core\"\nversion = \"9.9.9\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"",
            "name = \"acme_core\"\nversion = \"9.9.9\"\nsource = \"sparse+https://cargo.acme.internal/index/\"",
        ),
    )
    .unwrap();
    let report = support::ok_json(&[
        "sources",
        "check",
        clean.to_str().unwrap(),
        "--policy",
        policy,
    ]);
    assert_eq!(report["internal"], 2);
    validate_against_schema("sources-report.schema.json", &report);
    refused(
        "sources-report.schema.json",
        &report,
        "'internal' is a required property",
        remove("internal"),
    );
    refused(
        "sources-report.schema.json",
        &report,
        "'registry' is not one of",
        |v| {
            v["violations"] = json!([{
                "purl": "pkg:cargo/acme_core@9.9.9",
                "resolved": {"kind": "registry", "location": "https://crates.io"},
                "pattern": "pkg:cargo/acme-*",
                "allowed": ["sparse+https://cargo.acme.internal/index/"]
            }])
        },
    );
    let violation = exits(
        &support::run(&[
            "--output",
            "json",
            "sources",
            "check",
            fixtures.join("npm/package-lock.json").to_str().unwrap(),
            "--policy",
            policy,
        ]),
        1,
    );
    assert_eq!(violation["violations"][0]["pattern"], "pkg:npm/@acme/*");
    validate_against_schema("sources-report.schema.json", &violation);
    refused(
        "sources-report.schema.json",
        &violation,
        "should be non-empty",
        |v| v["violations"][0]["allowed"] = json!([]),
    );

    // prune: the plan, then the execution, on an OCI layout
    let layout = format!("oci:{}", d.join("layout").display());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (i, days) in [30u64, 20, 10].iter().enumerate() {
        let f = d.join(format!("build-{i}"));
        std::fs::write(&f, format!("build {i}")).unwrap();
        let created = custody::evidence::attest::Timestamp::from_unix(now - days * 86_400);
        support::ok_json(&[
            "push",
            f.to_str().unwrap(),
            "--to",
            &format!("{layout}:build-{i}"),
            "--annotation",
            &format!("org.opencontainers.image.created={created}"),
        ]);
    }
    let plan = support::ok_json(&[
        "prune",
        &layout,
        "--keep-last",
        "1",
        "--protect-tag",
        "build-0",
    ]);
    assert_eq!(plan["executed"], false);
    let rules: Vec<&str> = plan["plan"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"]["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"among-last")
            && rules.contains(&"no-rule-keeps")
            && rules.contains(&"protected-tag"),
        "{rules:?}"
    );
    validate_against_schema("prune-plan.schema.json", &plan);
    refused(
        "prune-plan.schema.json",
        &plan,
        "is not valid under any of the given schemas",
        |v| v["plan"]["candidates"][0]["reason"]["rule"] = json!("whim"),
    );
    refused(
        "prune-plan.schema.json",
        &plan,
        "'deletions' is a required property",
        |v| v["executed"] = json!(true),
    );
    let done = support::ok_json(&[
        "prune",
        &layout,
        "--keep-last",
        "1",
        "--protect-tag",
        "build-0",
        "--yes",
    ]);
    assert_eq!(done["executed"], true);
    assert_eq!(done["deletions"].as_array().unwrap().len(), 1);
    validate_against_schema("prune-plan.schema.json", &done);
    refused(
        "prune-plan.schema.json",
        &done,
        "'attachmentTags' is a required property",
        |v| {
            v["deletions"][0]
                .as_object_mut()
                .unwrap()
                .remove("attachmentTags");
        },
    );
}

/// Every schema in `schemas/` is named in a validating call of some test (or loaded by a unit
/// test with `include_str!`): a schema no test checks real output against would drift.
#[test]
fn every_schema_is_validated_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    let mut stack = vec![root.join("tests/it"), root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path != root.join("tests/it/schemas.rs")
            {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    // This file's own calls, without this test (whose list would otherwise count itself).
    let own = include_str!("schemas.rs");
    let own = &own[..own
        .find("fn every_schema_is_validated_by_a_test")
        .expect("this test")];
    sources.push_str(own);
    let sources: String = sources.split_whitespace().collect();
    let mut schemas: Vec<String> = std::fs::read_dir(root.join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    schemas.sort();
    assert!(schemas.len() >= 18, "{schemas:?}");
    let unused: Vec<&String> = schemas
        .iter()
        .filter(|name| {
            let validated = ["validate_against_schema(\"", "validate_schema(\""]
                .iter()
                .any(|call| {
                    sources.contains(&format!("{call}{name}\""))
                        || sources.contains(&format!("{call}{name}#"))
                });
            let loaded = sources.contains(&format!("schemas/{name}\")"));
            !validated && !loaded
        })
        .collect();
    assert!(unused.is_empty(), "schemas no test validates: {unused:?}");
}
