//! `custody verify FILE`: a local file under the same policy as a stored artifact, with detached
//! bundles made by custody and cosign (`--bundle`), or as one of the files of an artifact
//! verified in its store (`--from`).

use std::path::Path;
use std::process::{Command, Output};

use crate::support;

const PASSWORD: &str = "verify-file-pw";

fn run_in(dir: &Path, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .expect("custody runs")
}

fn json_in(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = run_in(dir, &all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            support::stdout(&out),
            support::stderr(&out)
        )
    });
    (out.status.code().expect("exit code"), json)
}

/// A key pair made by `custody keygen` in `dir` (cosign.key, cosign.pub).
fn keypair(dir: &Path) {
    let out = run_in(dir, &["keygen"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
}

fn failed_kinds(report: &serde_json::Value) -> Vec<String> {
    report["artifact"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["kind"].as_str().expect("kind").to_owned())
        .collect()
}

const POLICY: &str = "version: 1
scopes:
  - name: downloads
    repositories: [\"**\"]
    signers:
      - name: release-key
        key: cosign.pub
    threshold: 1
    provenance:
      required: true
      builders:
        - id: https://ci.example.com/builders/release@v1
      require_commit: false
";

#[test]
fn a_file_with_detached_bundles_is_verified_under_the_policy() {
    let dir = support::tempdir();
    let d = dir.path();
    keypair(d);
    std::fs::write(d.join("app.tar"), b"the released application\n").unwrap();
    std::fs::write(d.join("policy.yaml"), POLICY).unwrap();
    let out = run_in(
        d,
        &[
            "sign-blob",
            "--key",
            "cosign.key",
            "--bundle",
            "app.sig.json",
            "app.tar",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));

    // Signed, but the policy requires provenance: refused, and the report says why.
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./app.tar",
            "--bundle",
            "app.sig.json",
            "--policy",
            "policy.yaml",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed_kinds(&report), ["provenance-present"], "{report:#}");
    assert_eq!(report["scope"], "downloads");
    assert_eq!(
        report["artifact"]["referrers"][0]["origin"]["kind"],
        "detached"
    );
    support::validate_against_schema("verify-report.schema.json", &report);

    // cosign attest-blob writes the provenance for the same file with the same key.
    std::fs::write(
        d.join("predicate.json"),
        br#"{"buildDefinition":{"buildType":"https://ci.example.com/build/v1","externalParameters":{}},"runDetails":{"builder":{"id":"https://ci.example.com/builders/release@v1"}}}"#,
    )
    .unwrap();
    let cosign = Command::new(support::tool("cosign"))
        .args([
            "attest-blob",
            "--key",
            "cosign.key",
            "--predicate",
            "predicate.json",
            "--type",
            "slsaprovenance1",
            "--bundle",
            "app.provenance.json",
            "--new-bundle-format",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--yes",
            "app.tar",
        ])
        .current_dir(d)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("TUF_ROOT", d.join("tuf"))
        .env("HOME", d)
        .output()
        .expect("cosign runs");
    assert!(cosign.status.success(), "{}", support::stderr(&cosign));

    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./app.tar",
            "--bundle",
            "app.sig.json",
            "--bundle",
            "app.provenance.json",
            "--policy",
            "policy.yaml",
        ],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verified"], true);
    assert_eq!(
        report["digest"],
        format!(
            "sha256:{}",
            custody::foundation::digest::Digest::of(b"the released application\n").hex()
        )
    );
    support::validate_against_schema("verify-report.schema.json", &report);

    // The same bundles for another file: nothing is bound to it.
    std::fs::write(d.join("other.tar"), b"something else\n").unwrap();
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./other.tar",
            "--bundle",
            "app.sig.json",
            "--bundle",
            "app.provenance.json",
            "--policy",
            "policy.yaml",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        failed_kinds(&report),
        ["threshold", "provenance-present"],
        "{report:#}"
    );

    // A builder the policy does not allow refuses the provenance.
    std::fs::write(
        d.join("strict.yaml"),
        POLICY.replace("builders/release@v1", "builders/other@v1"),
    )
    .unwrap();
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./app.tar",
            "--bundle",
            "app.sig.json",
            "--bundle",
            "app.provenance.json",
            "--policy",
            "strict.yaml",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    assert!(
        failed_kinds(&report).contains(&"builder-id".to_owned()),
        "{report:#}"
    );
}

#[test]
fn a_local_file_without_bundle_or_from_gets_a_hint() {
    let dir = support::tempdir();
    std::fs::write(dir.path().join("app.tar"), b"x").unwrap();
    let out = run_in(dir.path(), &["verify", "./app.tar", "--key", "cosign.pub"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out)
            .contains("hint: a local file is verified with its bundles (--bundle B)"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn a_downloaded_file_is_checked_against_the_verified_artifact_it_came_from() {
    let dir = support::tempdir();
    let d = dir.path();
    keypair(d);
    std::fs::write(d.join("app.tar"), b"release asset\n").unwrap();
    std::fs::write(d.join("notes.txt"), b"release notes\n").unwrap();
    let out = run_in(d, &["push", "--to", "oci:store:v1", "app.tar", "notes.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));

    // Not signed yet: the artifact is refused and the file check is skipped.
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./app.tar",
            "--from",
            "oci:store:v1",
            "--key",
            "cosign.pub",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    let file_check = |r: &serde_json::Value| {
        r["artifact"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "file")
            .cloned()
            .expect("a file check")
    };
    assert_eq!(file_check(&report)["status"], "skip");

    let out = run_in(d, &["sign", "oci:store:v1", "--key", "cosign.key"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./app.tar",
            "--from",
            "oci:store:v1",
            "--key",
            "cosign.pub",
        ],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(file_check(&report)["status"], "pass");
    support::validate_against_schema("verify-report.schema.json", &report);

    // A file that is not one of the artifact's: refused on that check alone.
    std::fs::write(d.join("tampered.tar"), b"release asset, modified\n").unwrap();
    let (code, report) = json_in(
        d,
        &[
            "verify",
            "./tampered.tar",
            "--from",
            "oci:store:v1",
            "--key",
            "cosign.pub",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed_kinds(&report), ["file"], "{report:#}");
    assert!(
        file_check(&report)["hint"]
            .as_str()
            .unwrap()
            .contains("this file is not what was verified")
    );
}
