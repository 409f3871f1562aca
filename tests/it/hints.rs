//! Issue 12, item 7: hints that point the right way for the mistakes people make.

use crate::support::{self, stderr};

/// A layout with one pushed artifact and a key pair: (dir, store reference, key prefix).
fn artifact_and_keys() -> (tempfile::TempDir, String, String) {
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "artifact\n").unwrap();
    let store = format!("oci:{}:v1", dir.path().join("layout").display());
    support::ok(&["push", file.to_str().unwrap(), "--to", &store]);
    let prefix = dir.path().join("k").to_str().unwrap().to_owned();
    let keygen = support::custody()
        .args(["keygen", "--output-key-prefix", &prefix])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    (dir, store, prefix)
}

fn hint_of(o: &std::process::Output) -> String {
    stderr(o)
        .lines()
        .find_map(|l| l.trim().strip_prefix("hint: ").map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn a_private_key_given_to_verify_asks_for_the_public_one() {
    let (_dir, store, prefix) = artifact_and_keys();
    let o = support::run(&["verify", &store, "--key", &format!("{prefix}.key")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        hint_of(&o).starts_with("this is a private key; verification needs its public key"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_public_key_given_to_sign_asks_for_the_private_one() {
    let (_dir, store, prefix) = artifact_and_keys();
    let o = support::custody()
        .args(["sign", &store, "--key", &format!("{prefix}.pub")])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        hint_of(&o).starts_with("this is a public key; signing needs the private key"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_without_trust_flags_names_the_flags_to_give() {
    let (_dir, store, _prefix) = artifact_and_keys();
    let o = support::run(&["verify", &store]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let hint = hint_of(&o);
    assert!(
        hint.starts_with("give --key PUB, --certificate-identity with --certificate-oidc-issuer, or --policy FILE"),
        "{}",
        stderr(&o)
    );
    assert!(!hint.contains("check the policy"), "{hint}");
}

#[test]
fn an_unknown_tag_or_repository_says_so_and_points_at_the_reference() {
    let registry = support::shared_registry();
    let (_dir, store, prefix) = artifact_and_keys();
    let pushed = format!("{}/team/app:v1", registry.base);
    support::ok(&["copy", &store, &pushed]);
    let public = format!("{prefix}.pub");
    // NAME_UNKNOWN and MANIFEST_UNKNOWN are told apart, and the hint says which name to check.
    let base = &registry.base;
    for (reference, message, hint) in [
        (
            format!("{base}/team/nosuch:v1"),
            format!("no repository {base}/team/nosuch"),
            "check the repository name".to_owned(),
        ),
        (
            format!("{base}/team/app:v9"),
            format!("no tag v9 in {base}/team/app"),
            format!("check the tag; {base}/team/app has v1"),
        ),
    ] {
        let o = support::run(&["verify", &reference, "--key", &public]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(!err.contains("could not be read"), "{reference}: {err}");
        assert!(err.contains(&message), "{reference}: {err}");
        assert!(hint_of(&o).starts_with(&hint), "{reference}: {err}");
    }
}

#[test]
fn an_unknown_policy_field_gets_did_you_mean() {
    let dir = support::tempdir();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nscopes:\n  - name: a\n    repositorys: [\"**\"]\n",
    )
    .unwrap();
    let o = support::run(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        hint_of(&o),
        format!(
            "did you mean `repositories`? (see line 4 of {})",
            policy.display()
        )
    );
}

#[test]
fn verify_with_a_misspelt_policy_field_gets_did_you_mean() {
    let (dir, store, _prefix) = artifact_and_keys();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nscopes:\n  - name: a\n    repositories: [\"**\"]\n    treshold: 1\n",
    )
    .unwrap();
    let o = support::run(&["verify", &store, "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(hint_of(&o), "did you mean `threshold`?", "{}", stderr(&o));
}

#[test]
fn a_policy_gate_without_a_database_asks_for_db_not_the_registry() {
    let (dir, store, prefix) = artifact_and_keys();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nscopes:\n  - name: all\n    repositories: [\"**\"]\n    signers:\n      - name: k\n        key: {prefix}.pub\n    vulnerabilities:\n      max_severity: medium\n"
        ),
    )
    .unwrap();
    let o = support::run(&["verify", &store, "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("could not be read"), "{err}");
    assert!(err.contains("no osv database was given"), "{err}");
    assert!(
        hint_of(&o).starts_with("give --db PATH (a folder of OSV JSON files or osv.dev's all.zip)"),
        "{err}"
    );
}

/// The hint after a missing (or wrongly signed) SBOM is a command line that works: run as
/// written, with its placeholders filled in, it makes the artifact pass.
#[test]
fn the_missing_sbom_hint_is_a_command_line_that_works() {
    let (dir, store, prefix) = artifact_and_keys();
    let public = format!("{prefix}.pub");
    let signed = support::custody()
        .args(["sign", &store, "--key", &format!("{prefix}.key")])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let o = support::run(&[
        "--output",
        "json",
        "verify",
        &store,
        "--key",
        &public,
        "--require-sbom",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hint = report["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "sbom-present")
        .and_then(|c| c["hint"].as_str())
        .unwrap()
        .to_owned();
    assert!(!hint.contains("--sbom"), "{hint}");
    let commands = hint
        .split_once(": ")
        .unwrap()
        .1
        .trim_end_matches(" (or keyless)");
    let (sbom, attest) = commands.split_once(", then ").unwrap();
    let file = dir.path().join("a.txt");
    let fill = |line: &str| -> Vec<String> {
        line.split(' ')
            .skip(1)
            .map(|w| match w {
                "FILES" => file.to_str().unwrap().to_owned(),
                "REF" => store.clone(),
                "KEY" => format!("{prefix}.key"),
                other => other.to_owned(),
            })
            .collect()
    };
    for line in [sbom, attest] {
        assert!(line.starts_with("custody "), "{line}");
        let args = fill(line);
        let o = support::custody()
            .args(&args)
            .current_dir(dir.path())
            .env("COSIGN_PASSWORD", "pw")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{line}: {}", stderr(&o));
    }
    let o = support::run(&["verify", &store, "--key", &public, "--require-sbom"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_host_that_does_not_resolve_is_named_and_not_retried() {
    let (_dir, _store, prefix) = artifact_and_keys();
    let o = support::run(&[
        "verify",
        "registry.nosuchhost.invalid/team/app:v1",
        "--key",
        &format!("{prefix}.pub"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("could not resolve host registry.nosuchhost.invalid"),
        "{err}"
    );
    assert!(!err.contains("error sending request"), "{err}");
    assert!(!err.contains("attempts"), "{err}");
    assert!(
        hint_of(&o).starts_with("check the registry name registry.nosuchhost.invalid"),
        "{err}"
    );
}
