//! Keyless signing against a real local Sigstore stack ([`SigstoreStack`]): custody signs blobs
//! and in-toto statements with a Fulcio certificate, a Rekor v2 entry and an RFC 3161
//! timestamp; custody and cosign both verify the bundles offline; wrong identities, wrong
//! issuers, wrong audiences and tampering are refused.

use std::path::Path;
use std::process::Output;

use custody::sign::verify::{
    Artifact, IdentityPolicy, Policy, SubjectMatcher, VerifiedSigner, verify_bundle,
};
use custody::sign::{Bundle, Content, SignerOptions, choose_signer, sign_blob, sign_statement};

use super::sigstore_stack::{EMAIL, SigstoreStack};
use super::support;

fn options(stack: &SigstoreStack, token: String) -> SignerOptions {
    SignerOptions {
        identity_token: Some(custody::sign::SecretText::new(token)),
        signing_config: Some(stack.signing_config.clone()),
        trusted_root: Some(stack.trusted_root.clone()),
        ..SignerOptions::default()
    }
}

fn no_env() -> &'static [(&'static str, &'static str)] {
    &[]
}

fn identity(email: &str, issuer: &str) -> Policy {
    Policy::Identity(IdentityPolicy {
        subject: SubjectMatcher::Exact(email.to_string()),
        issuer: issuer.to_string(),
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cosign_verify_blob(
    stack: &SigstoreStack,
    file: &Path,
    bundle: &Path,
    id: &str,
    iss: &str,
) -> Output {
    stack
        .cosign()
        .args(["verify-blob", "--bundle"])
        .arg(bundle)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .args([
            "--certificate-identity",
            id,
            "--certificate-oidc-issuer",
            iss,
        ])
        .arg(file)
        .output()
        .expect("cosign runs")
}

#[test]
fn library_blob_bundle_verifies_with_custody_and_cosign() {
    let stack = SigstoreStack::shared();
    let signer =
        choose_signer(&options(&stack, stack.oidc.token()), no_env()).expect("keyless signer");
    let blob = b"keyless blob from the library";
    let bundle = sign_blob(blob, &signer).expect("signed");
    assert!(matches!(
        bundle.material(),
        custody::sign::Material::Certificate(_)
    ));
    assert_eq!(bundle.tlog_entries().len(), 1);
    assert_eq!(bundle.tlog_entries()[0].kind_version, "0.0.2");
    assert_eq!(bundle.rfc3161_timestamps().len(), 1);

    let root = signer.trusted_root().expect("trusted root");
    let v = verify_bundle(
        &bundle,
        Artifact::Bytes(blob),
        &identity(EMAIL, &stack.oidc.url),
        root,
    )
    .expect("custody verifies");
    assert!(
        matches!(&v.signer, VerifiedSigner::Certificate { identity, issuer }
        if identity == EMAIL && issuer == &stack.oidc.url)
    );
    assert!(v.checks.sct && v.checks.tlog && v.checks.certificate_chain);
    assert_eq!(v.checks.verified_times, 1);

    let dir = support::tempdir();
    std::fs::write(dir.path().join("blob"), blob).unwrap();
    std::fs::write(dir.path().join("blob.sigstore.json"), bundle.to_json()).unwrap();
    let out = cosign_verify_blob(
        &stack,
        &dir.path().join("blob"),
        &dir.path().join("blob.sigstore.json"),
        EMAIL,
        &stack.oidc.url,
    );
    assert!(out.status.success(), "cosign refused: {}", text(&out));
}
