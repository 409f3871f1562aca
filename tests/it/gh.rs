//! `gh attestation verify` (the GitHub CLI, built by `scripts/install-gh`) accepts what `custody
//! release` attaches when the Fulcio certificate carries a GitHub Actions identity.
//!
//! The local Sigstore stack's Fulcio has a second issuer of type `github-workflow`
//! ([`OidcIssuer::github_url`](crate::sigstore_stack::OidcIssuer)) whose tokens carry GitHub's
//! claims, so the certificate gets SAN `https://github.com/<job_workflow_ref>` and the GitHub
//! extensions gh checks (source repository owner URI, issuer). gh reads the referrers with
//! `--bundle-from-oci` over plain HTTP: go-containerregistry falls back to `http` for loopback
//! registries. `--custom-trusted-root` takes a JSON-lines file, one trusted root per line.
//! With a custom root whose Fulcio CA is neither `sigstore.dev` nor `GitHub, Inc.`, gh applies
//! its "custom" policy: a transparency-log entry and an observer timestamp, both of which
//! custody's keyless bundles carry (Rekor v2 entry + RFC 3161 timestamp).

use std::path::Path;
use std::process::{Command, Output};

use crate::release::{release_in, work_tree};
use crate::sigstore_stack::SigstoreStack;
use crate::support::{self, ReferrersRegistry, Registry};

const REPOSITORY: &str = "acme/app";

/// gh with a private config folder, no docker credentials and a placeholder token: gh refuses
/// to run `attestation verify --bundle-from-oci` unauthenticated, though this path never calls
/// the GitHub API (the bundles come from the registry, the trust from the custom root).
fn gh(home: &Path) -> Command {
    let mut c = Command::new(support::tools_bin().join("gh"));
    assert!(
        support::tools_bin().join("gh").is_file(),
        "gh is not installed at {}: run scripts/install-gh (scripts/test does)",
        support::tools_bin().join("gh").display()
    );
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GH_CONFIG_DIR", home.join("gh"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("GH_TOKEN", "placeholder-token-never-sent")
        .env("GH_NO_UPDATE_NOTIFIER", "1")
        .env("GH_PROMPT_DISABLED", "1")
        .env("NO_COLOR", "1");
    c
}

/// The stack's trusted root as gh wants it: one compact JSON document per line.
fn trusted_root_jsonl(stack: &SigstoreStack, dir: &Path) -> std::path::PathBuf {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stack.trusted_root).unwrap()).unwrap();
    let path = dir.join("trusted_root.jsonl");
    std::fs::write(&path, format!("{root}\n")).unwrap();
    path
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn head_commit(repo: &Path) -> String {
    let o = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Releases `dist/app.bin` to `<host>/acme/app:1.0.0` keyless with `token`; returns the digest.
fn keyless_release(stack: &SigstoreStack, repo: &Path, host: &str, token: &str) -> String {
    let to = format!("{host}/{REPOSITORY}:1.0.0");
    let o = release_in(
        repo,
        &[
            "dist/app.bin",
            "--to",
            &to,
            "--identity-token",
            token,
            "--signing-config",
            stack.signing_config.to_str().unwrap(),
            "--trusted-root",
            stack.trusted_root.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "custody release: {}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["verified"], true, "{out}");
    out["digest"].as_str().expect("digest").to_owned()
}

struct Verify<'a> {
    image: String,
    /// `--owner <owner>` or `--repo <owner>/<repo>`.
    scope: [&'a str; 2],
    issuer: &'a str,
    predicate_type: Option<&'a str>,
    extra: Vec<String>,
}

fn gh_verify(home: &Path, root: &Path, v: &Verify) -> Output {
    let mut c = gh(home);
    c.args(["attestation", "verify"])
        .arg(format!("oci://{}", v.image))
        .arg("--bundle-from-oci")
        .arg("--custom-trusted-root")
        .arg(root)
        .args(v.scope)
        .args(["--cert-oidc-issuer", v.issuer])
        .args(["--format", "json"]);
    if let Some(p) = v.predicate_type {
        c.args(["--predicate-type", p]);
    }
    c.args(&v.extra).output().expect("gh runs")
}

/// The verified attestations gh printed: (predicate type, SAN, source repository owner URI).
fn verified(o: &Output) -> Vec<(String, String, String)> {
    let results: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("gh printed no JSON ({e}): {}", text(o)));
    results
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            let result = &r["verificationResult"];
            let cert = &result["signature"]["certificate"];
            (
                result["statement"]["predicateType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                cert["subjectAlternativeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                cert["sourceRepositoryOwnerURI"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn gh_accepts_a_github_identity_release(host: &str) {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    let sha = head_commit(&repo);
    let token = stack.oidc.github_token(REPOSITORY, &sha);
    let digest = keyless_release(&stack, &repo, host, &token);
    let root = trusted_root_jsonl(&stack, dir.path());
    let image = format!("{host}/{REPOSITORY}@{digest}");
    let san =
        format!("https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/heads/main");

    // The provenance (gh's default predicate type), with the source commit pinned as well.
    let o = gh_verify(
        dir.path(),
        &root,
        &Verify {
            image: image.clone(),
            scope: ["--owner", "acme"],
            issuer: &stack.oidc.github_url,
            predicate_type: None,
            extra: vec![
                "--source-digest".into(),
                sha.clone(),
                "--deny-self-hosted-runners".into(),
            ],
        },
    );
    assert_eq!(o.status.code(), Some(0), "gh refused: {}", text(&o));
    assert_eq!(
        verified(&o),
        vec![(
            custody::evidence::attest::PREDICATE_SLSA_PROVENANCE_V1.to_owned(),
            san.clone(),
            "https://github.com/acme".to_owned()
        )]
    );

    // The SBOM attestation, by its predicate type, scoped to the repository.
    let o = gh_verify(
        dir.path(),
        &root,
        &Verify {
            image: image.clone(),
            scope: ["--repo", REPOSITORY],
            issuer: &stack.oidc.github_url,
            predicate_type: Some(custody::evidence::attest::PREDICATE_CYCLONEDX),
            extra: vec![],
        },
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "gh refused the SBOM: {}",
        text(&o)
    );
    assert_eq!(
        verified(&o),
        vec![(
            custody::evidence::attest::PREDICATE_CYCLONEDX.to_owned(),
            san,
            "https://github.com/acme".to_owned()
        )]
    );

    // gh's policy still bites: another owner (the SAN does not match `https://github.com/mallory/`,
    // so sigstore-go's identity check fails), another issuer, another commit are refused.
    let wrong_issuer = format!(
        "expected Issuer to be {}, got {}",
        stack.oidc.url, stack.oidc.github_url
    );
    let wrong_commit = format!(
        "expected SourceRepositoryDigest to be {}, got {sha}",
        "0".repeat(40)
    );
    for (owner, issuer, extra, refusal) in [
        (
            "mallory",
            stack.oidc.github_url.as_str(),
            vec![],
            r#"verifying with issuer "sigstore""#,
        ),
        (
            "acme",
            stack.oidc.url.as_str(),
            vec![],
            wrong_issuer.as_str(),
        ),
        (
            "acme",
            stack.oidc.github_url.as_str(),
            vec!["--source-digest".to_owned(), "0".repeat(40)],
            wrong_commit.as_str(),
        ),
    ] {
        let o = gh_verify(
            dir.path(),
            &root,
            &Verify {
                image: image.clone(),
                scope: ["--owner", owner],
                issuer,
                predicate_type: None,
                extra,
            },
        );
        assert_eq!(o.status.code(), Some(1), "gh accepted: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(refusal),
            "expected {refusal:?}: {}",
            text(&o)
        );
    }
}

/// The OCI 1.1 referrers API (go-containerregistry's registry).
#[test]
fn gh_attestation_verify_accepts_custody_release_via_referrers_api() {
    // Its own registry: the image is `{host}/acme/app`, the repository the GitHub identity names.
    let registry = ReferrersRegistry::start();
    gh_accepts_a_github_identity_release(&registry.host);
}

/// Distribution 2.8: gh finds the bundles through the `sha256-<hex>` tag-schema fallback index.
#[test]
fn gh_attestation_verify_accepts_custody_release_via_tag_schema_fallback() {
    // Its own registry: the image is `{host}/acme/app`, the repository the GitHub identity names.
    let registry = Registry::start();
    gh_accepts_a_github_identity_release(&registry.host);
}

/// An e-mail identity (the stack's default issuer) is not a GitHub workflow: gh refuses it even
/// with the right trusted root, because its SAN is no `https://github.com/<owner>/` URI.
#[test]
fn gh_refuses_a_release_signed_by_an_email_identity() {
    let stack = SigstoreStack::shared();
    // Its own registry: the image is `{host}/acme/app`, the repository the GitHub identity names.
    let registry = ReferrersRegistry::start();
    let dir = support::tempdir();
    let repo = work_tree(dir.path());
    let digest = keyless_release(&stack, &repo, &registry.host, &stack.oidc.token());
    let root = trusted_root_jsonl(&stack, dir.path());
    let o = gh_verify(
        dir.path(),
        &root,
        &Verify {
            image: format!("{}/{REPOSITORY}@{digest}", registry.host),
            scope: ["--owner", "acme"],
            issuer: &stack.oidc.url,
            predicate_type: None,
            extra: vec![],
        },
    );
    assert_eq!(o.status.code(), Some(1), "gh accepted: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(r#"verifying with issuer "sigstore""#),
        "{}",
        text(&o)
    );

    // Told the exact e-mail SAN, gh gets past the signature and stops at the GitHub extensions
    // such a certificate lacks.
    let o = gh_verify(
        dir.path(),
        &root,
        &Verify {
            image: format!("{}/{REPOSITORY}@{digest}", registry.host),
            scope: ["--owner", "acme"],
            issuer: &stack.oidc.url,
            predicate_type: None,
            extra: vec![
                "--cert-identity".into(),
                crate::sigstore_stack::EMAIL.into(),
            ],
        },
    );
    assert_eq!(o.status.code(), Some(1), "gh accepted: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("expected SourceRepositoryOwnerURI to be https://github.com/acme, got "),
        "{}",
        text(&o)
    );
}
