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
    for (reference, what) in [
        (format!("{}/team/nosuch:v1", registry.base), "repository"),
        (format!("{}/team/app:v9", registry.base), "tag"),
    ] {
        let o = support::run(&["verify", &reference, "--key", &public]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(!err.contains("could not be read"), "{what}: {err}");
        assert!(err.contains("not found"), "{what}: {err}");
        assert!(
            hint_of(&o).starts_with("check the reference"),
            "{what}: {err}"
        );
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
