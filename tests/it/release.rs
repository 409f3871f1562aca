//! `custody release` end to end on a real registry, checked by real cosign; and what a failed
//! run leaves behind.

use std::path::Path;
use std::process::Command;

use custody::foundation::reference::Reference;
use custody::storage::store;

use crate::support::{self, stderr, tool};

/// A git work tree with one committed source file and an ignored `dist/` artifact.
pub fn work_tree(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("dist")).unwrap();
    std::fs::write(repo.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "dist/\n").unwrap();
    std::fs::write(repo.join("dist/app.bin"), b"the built artifact\n").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["remote", "add", "origin", "https://github.com/acme/app.git"],
        &["add", "-A"],
        &["commit", "-q", "-m", "source"],
    ] {
        let o = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}");
    }
    repo
}

/// A cosign-format key pair made by `custody keygen`; returns (private, public).
pub fn keypair(dir: &Path) -> (String, String) {
    let prefix = dir.join("release");
    let o = support::custody()
        .args(["keygen", "--output-key-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    )
}

pub fn release_in(repo: &Path, args: &[&str]) -> std::process::Output {
    support::custody()
        .arg("--output")
        .arg("json")
        .arg("release")
        .args(args)
        .current_dir(repo)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("HOME", repo.parent().unwrap())
        .env("XDG_CONFIG_HOME", repo.parent().unwrap().join(".config"))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap()
}

fn cosign(args: &[&str]) -> std::process::Output {
    Command::new(tool("cosign")).args(args).output().unwrap()
}

#[test]
fn release_to_a_registry_is_accepted_by_cosign() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    let (key, public) = keypair(dir.path());
    let to = format!("{}/acme/app:1.0.0", registry.base);
    let o = release_in(
        &repo,
        &[
            "dist/app.bin",
            "--to",
            &to,
            "--key",
            &key,
            "--legacy-cosign-tags",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let digest = out["digest"].as_str().unwrap();
    assert_eq!(out["tag"], "1.0.0");
    assert_eq!(out["localBuild"], true);
    assert_eq!(
        out["verified"], true,
        "release verified what it published: {out}"
    );
    assert_eq!(
        out["source"]["repository"],
        "git+https://github.com/acme/app"
    );
    let kinds: Vec<&str> = out["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signature", "provenance", "sbom"]);

    // cosign v3 reads the bundles from the referrers (tag-schema fallback here).
    let pinned = format!("{}/acme/app@{digest}", registry.base);
    let common = [
        "--key",
        &public,
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
    ];
    let o = cosign(&[&["verify"][..], &common, &[&pinned]].concat());
    assert!(o.status.success(), "cosign verify: {}", stderr(&o));
    for kind in ["slsaprovenance1", "cyclonedx"] {
        let o = cosign(
            &[
                &["verify-attestation", "--type", kind][..],
                &common,
                &[&pinned],
            ]
            .concat(),
        );
        assert!(
            o.status.success(),
            "cosign verify-attestation {kind}: {}",
            stderr(&o)
        );
    }
    // Someone else's key is refused.
    let other = support::tempdir();
    let (_, other_public) = keypair(other.path());
    let o = cosign(&[
        "verify",
        "--key",
        &other_public,
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &pinned,
    ]);
    assert!(!o.status.success());

    // The legacy tags exist for cosign v2-era readers.
    let store = store::open(
        &to.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap();
    let d: custody::foundation::digest::Digest = digest.parse().unwrap();
    for suffix in ["sig", "att"] {
        let tag = format!("{}.{suffix}", d.fallback_tag()).parse().unwrap();
        assert!(
            store.get_tagged(&tag).unwrap().is_some(),
            "{suffix} tag written"
        );
    }

    // Running the same release again finishes without error and lands on the same digest.
    let o = release_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["digest"], digest);
    assert_eq!(again["tagOutcome"]["result"], "unchanged");
}

#[test]
fn a_failed_release_leaves_no_tag_and_a_rerun_completes() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    let (key, _) = keypair(dir.path());
    // The digest the release will have (pushing is deterministic): push the same file elsewhere,
    // created at the commit's time as a release records it.
    let probe = support::ok_json(&[
        "push",
        repo.join("dist/app.bin").to_str().unwrap(),
        "--to",
        &format!("{}/probe/app:x", registry.base),
        "--annotation",
        "org.opencontainers.image.created=2026-01-01T00:00:00Z",
    ]);
    let digest: custody::foundation::digest::Digest =
        probe["digest"].as_str().unwrap().parse().unwrap();
    // Sabotage: something that is not an index under the subject's referrers fallback tag.
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, b"junk").unwrap();
    let fallback = format!("{}/acme/app:{}", registry.base, digest.fallback_tag());
    support::ok(&["push", junk.to_str().unwrap(), "--to", &fallback]);

    let to = format!("{}/acme/app:2.0.0", registry.base);
    let o = release_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not an image index"), "{}", stderr(&o));
    let store = store::open(
        &to.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap();
    let tag = "2.0.0".parse().unwrap();
    assert!(
        store.get_tagged(&tag).unwrap().is_none(),
        "no tag after a failed release"
    );

    // Clear the sabotage, run again: the release completes on the same digest.
    let junk_digest = store
        .get_tagged(&digest.fallback_tag().parse().unwrap())
        .unwrap()
        .unwrap()
        .descriptor
        .digest;
    store.delete_manifest(&junk_digest).unwrap();
    let o = release_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        store.get_tagged(&tag).unwrap().unwrap().descriptor.digest,
        digest
    );
}

#[test]
fn release_refuses_a_dirty_tree_unless_told() {
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    std::fs::write(repo.join("main.c"), "int main(void) { return 1; }\n").unwrap();
    let o = release_in(&repo, &["dist/app.bin"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("main.c"),
        "names the dirty path: {}",
        stderr(&o)
    );
    let o = release_in(&repo, &["dist/app.bin", "--allow-dirty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["source"]["dirty"], true);
    assert!(
        out["pinned"]
            .as_str()
            .unwrap()
            .starts_with("oci:.custody/store@sha256:"),
        "{out}"
    );
    // The embedded store ignores itself: the tree is no dirtier than before.
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "M main.c");
}

/// Keyless end to end: a release signed with a Fulcio certificate from the local Sigstore
/// stack verifies it published, `custody verify` accepts it for the right identity and issuer
/// only, and `cosign verify` accepts it with the stack's trusted root.
#[test]
fn keyless_release_verifies_for_its_identity_only() {
    use crate::sigstore_stack::{EMAIL, SigstoreStack};
    let stack = SigstoreStack::shared();
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    let to = format!("{}/acme/keyless:1.0.0", registry.base);
    let token = stack.oidc.token();
    let o = release_in(
        &repo,
        &[
            "dist/app.bin",
            "--to",
            &to,
            "--identity-token",
            &token,
            "--signing-config",
            stack.signing_config.to_str().unwrap(),
            "--trusted-root",
            stack.trusted_root.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["verified"], true, "{out}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&token[token.len() - 30..]));

    let verify = |identity: &str| {
        support::custody()
            .args(["verify", &to, "--require-provenance", "--require-sbom"])
            .args(["--certificate-identity", identity])
            .args(["--certificate-oidc-issuer", &stack.oidc.url])
            .arg("--trusted-root")
            .arg(&stack.trusted_root)
            .output()
            .unwrap()
    };
    let o = verify(EMAIL);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        support::stdout(&o),
        stderr(&o)
    );
    let o = verify("mallory@custody.test");
    assert_eq!(o.status.code(), Some(1), "{}", support::stdout(&o));

    let o = stack
        .cosign()
        .args(["verify", "--allow-http-registry", "--trusted-root"])
        .arg(&stack.trusted_root)
        .args([
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            &stack.oidc.url,
        ])
        .arg(&to)
        .output()
        .unwrap();
    assert!(o.status.success(), "cosign verify: {}", stderr(&o));
}
