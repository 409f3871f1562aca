//! Interop with real cosign (v3, built by `scripts/install-tools`): key files both ways, blob
//! bundles both ways, DSSE attestation bundles both ways. All offline: key mode without a log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody::evidence::sign::keys::{self, Password, PublicKey};
use custody::evidence::sign::verify::{
    Artifact, KeyPolicy, Policy, TlogRequirement, TrustedRoot, verify_bundle,
};
use custody::evidence::sign::{Bundle, KeySigner, sign_blob, sign_statement};
use custody::foundation::digest::Digest;

const PASSWORD: &str = "interop-password";

fn cosign() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let path = Path::new(&home).join(".cache/custody/tools/bin/cosign");
    assert!(
        path.is_file(),
        "cosign is missing at {}: run scripts/install-tools to build it",
        path.display()
    );
    path
}

/// Runs cosign offline: a private TUF root, password from the environment, no network use.
fn run_cosign(dir: &Path, args: &[&str]) -> Output {
    Command::new(cosign())
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("TUF_ROOT", dir.join("tuf"))
        .env("HOME", dir)
        .output()
        .expect("cosign runs")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_policy(public: PublicKey) -> Policy {
    Policy::Key(KeyPolicy {
        key: public,
        tlog: TlogRequirement::Skip,
    })
}

fn custody_keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let pair = keys::keygen(&Password::new(PASSWORD)).expect("keygen");
    keys::write_key_pair(&dir.join("custody"), &pair).expect("write key pair")
}

fn statement_for(artifact: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact.txt", "digest": {"sha256": Digest::of(artifact).hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://example.com/custody-test"}},
    }))
    .expect("statement serialises")
}

#[test]
fn custody_loads_a_cosign_generated_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_ok(
        &run_cosign(
            dir.path(),
            &["generate-key-pair", "--output-key-prefix", "cos"],
        ),
        "cosign generate-key-pair",
    );
    let pem = std::fs::read_to_string(dir.path().join("cos.key")).expect("cos.key");
    let key = keys::load_private_key(&pem, Some(&Password::new(PASSWORD)))
        .expect("custody decrypts cosign's key");
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("cos.pub")).expect("cos.pub"))
            .expect("cosign public key parses");
    assert_eq!(key.public_key(), public);
    let err = keys::load_private_key(&pem, Some(&Password::new("wrong"))).unwrap_err();
    assert!(matches!(err, keys::KeyError::WrongPassword), "{err:?}");
}

#[test]
fn cosign_signs_with_a_custody_key_and_custody_verifies_cosigns_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, pub_path) = custody_keypair(dir.path());
    let artifact = b"artifact signed by cosign\n";
    std::fs::write(dir.path().join("artifact.txt"), artifact).expect("write artifact");
    let out = run_cosign(
        dir.path(),
        &[
            "sign-blob",
            "--key",
            key_path.to_str().expect("utf-8 path"),
            "--bundle",
            "cosign.bundle",
            "--new-bundle-format",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--yes",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign sign-blob with a custody key");
    let bundle =
        Bundle::from_json(&std::fs::read(dir.path().join("cosign.bundle")).expect("bundle"))
            .expect("parses");
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(pub_path).expect("pub")).expect("pub parses");
    let verified = verify_bundle(
        &bundle,
        Artifact::Bytes(artifact),
        &key_policy(public.clone()),
        &TrustedRoot::empty(),
    )
    .expect("custody verifies cosign's bundle");
    assert!(verified.checks.signature && verified.checks.artifact_binding);
    let d = Digest::of(artifact);
    verify_bundle(
        &bundle,
        Artifact::Digest(&d),
        &key_policy(public.clone()),
        &TrustedRoot::empty(),
    )
    .expect("custody verifies cosign's bundle by digest");
    let err = verify_bundle(
        &bundle,
        Artifact::Bytes(b"other"),
        &key_policy(public),
        &TrustedRoot::empty(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            custody::evidence::sign::VerifyError::ArtifactMismatch { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn cosign_verifies_a_custody_blob_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, pub_path) = custody_keypair(dir.path());
    let artifact = b"artifact signed by custody\n";
    std::fs::write(dir.path().join("artifact.txt"), artifact).expect("write artifact");
    let key = keys::load_private_key(
        &std::fs::read_to_string(key_path).expect("key"),
        Some(&Password::new(PASSWORD)),
    )
    .expect("load");
    let bundle = sign_blob(artifact, &KeySigner::new(key)).expect("sign");
    std::fs::write(dir.path().join("custody.bundle"), bundle.to_json()).expect("write bundle");
    let out = run_cosign(
        dir.path(),
        &[
            "verify-blob",
            "--key",
            pub_path.to_str().expect("utf-8 path"),
            "--bundle",
            "custody.bundle",
            "--insecure-ignore-tlog",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign verify-blob of custody's bundle");
    // And cosign refuses it for another file: the bundle is really checked.
    std::fs::write(dir.path().join("other.txt"), b"other").expect("write other");
    let out = run_cosign(
        dir.path(),
        &[
            "verify-blob",
            "--key",
            pub_path.to_str().expect("utf-8 path"),
            "--bundle",
            "custody.bundle",
            "--insecure-ignore-tlog",
            "other.txt",
        ],
    );
    assert!(
        !out.status.success(),
        "cosign accepted custody's bundle for the wrong file"
    );
}

#[test]
fn cosign_verifies_a_custody_attestation_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, pub_path) = custody_keypair(dir.path());
    let artifact = b"attested artifact\n";
    std::fs::write(dir.path().join("artifact.txt"), artifact).expect("write artifact");
    let key = keys::load_private_key(
        &std::fs::read_to_string(key_path).expect("key"),
        Some(&Password::new(PASSWORD)),
    )
    .expect("load");
    let bundle = sign_statement(&statement_for(artifact), &KeySigner::new(key)).expect("sign");
    std::fs::write(dir.path().join("att.bundle"), bundle.to_json()).expect("write bundle");
    let out = run_cosign(
        dir.path(),
        &[
            "verify-blob-attestation",
            "--key",
            pub_path.to_str().expect("utf-8 path"),
            "--bundle",
            "att.bundle",
            "--new-bundle-format",
            "--insecure-ignore-tlog",
            "--type",
            "https://slsa.dev/provenance/v1",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign verify-blob-attestation of custody's bundle");
}

#[test]
fn custody_verifies_a_cosign_attestation_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, pub_path) = custody_keypair(dir.path());
    let artifact = b"artifact attested by cosign\n";
    std::fs::write(dir.path().join("artifact.txt"), artifact).expect("write artifact");
    std::fs::write(
        dir.path().join("predicate.json"),
        br#"{"buildDefinition":{"buildType":"https://example.com/t"}}"#,
    )
    .expect("write predicate");
    let out = run_cosign(
        dir.path(),
        &[
            "attest-blob",
            "--key",
            key_path.to_str().expect("utf-8 path"),
            "--predicate",
            "predicate.json",
            "--type",
            "slsaprovenance1",
            "--bundle",
            "att.bundle",
            "--new-bundle-format",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--yes",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign attest-blob with a custody key");
    let bundle = Bundle::from_json(&std::fs::read(dir.path().join("att.bundle")).expect("bundle"))
        .expect("parses");
    assert!(matches!(
        bundle.content(),
        custody::evidence::sign::Content::Dsse(_)
    ));
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(pub_path).expect("pub")).expect("pub parses");
    let verified = verify_bundle(
        &bundle,
        Artifact::Bytes(artifact),
        &key_policy(public.clone()),
        &TrustedRoot::empty(),
    )
    .expect("custody verifies cosign's attestation");
    assert!(verified.statement.is_some());
    let err = verify_bundle(
        &bundle,
        Artifact::Bytes(b"other"),
        &key_policy(public),
        &TrustedRoot::empty(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            custody::evidence::sign::VerifyError::ArtifactMismatch { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn ed25519_blob_bundles_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = custody::evidence::sign::SigningKey::generate_ed25519().expect("ed25519 key");
    std::fs::write(d.join("ed.pem"), key.to_pkcs8_pem().expect("pem").expose()).expect("write key");
    let artifact = b"ed25519 artifact\n";
    std::fs::write(d.join("artifact.txt"), artifact).expect("write artifact");
    assert_ok(
        &run_cosign(d, &["import-key-pair", "--key", "ed.pem", "--yes"]),
        "cosign import-key-pair",
    );
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(d.join("import-cosign.pub")).expect("pub"))
            .expect("cosign's ed25519 public key parses");
    assert_eq!(public, key.public_key());

    let out = run_cosign(
        d,
        &[
            "sign-blob",
            "--key",
            "import-cosign.key",
            "--bundle",
            "cosign.bundle",
            "--new-bundle-format",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--yes",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign sign-blob with an ed25519 key");
    let bundle = Bundle::from_json(&std::fs::read(d.join("cosign.bundle")).expect("bundle"))
        .expect("parses");
    verify_bundle(
        &bundle,
        Artifact::Bytes(artifact),
        &key_policy(public.clone()),
        &TrustedRoot::empty(),
    )
    .expect("custody verifies cosign's ed25519 bundle");

    let ours = sign_blob(artifact, &KeySigner::new(key)).expect("sign");
    std::fs::write(d.join("custody.bundle"), ours.to_json()).expect("write bundle");
    let out = run_cosign(
        d,
        &[
            "verify-blob",
            "--key",
            "import-cosign.pub",
            "--bundle",
            "custody.bundle",
            "--insecure-ignore-tlog",
            "artifact.txt",
        ],
    );
    assert_ok(&out, "cosign verify-blob of custody's ed25519 bundle");
}
