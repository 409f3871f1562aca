//! Sigstore's bundle-verification conformance cases (`../shared/testdata/sigstore-conformance`):
//! every folder found at run time is verified three times (artifact bytes, the file streamed,
//! its `sha256:` digest);
//! folders ending in `_fail` must be refused, all others must verify.

use std::fs;
use std::path::{Path, PathBuf};

use custody::evidence::sign::Bundle;
use custody::evidence::sign::verify::{
    Artifact, IdentityPolicy, KeyPolicy, Policy, SubjectMatcher, TlogRequirement, TrustedRoot,
    verify_bundle,
};
use custody::foundation::digest::Digest;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/sigstore-conformance")
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[derive(Clone, Copy, Debug)]
enum Form {
    Bytes,
    File,
    Digest,
}

/// Runs one case; `Ok` means verified, `Err` carries the refusal.
fn run_case(dir: &Path, form: Form) -> Result<String, String> {
    let suite = suite();
    let bundle_bytes =
        fs::read(dir.join("bundle.sigstore.json")).map_err(|e| format!("read bundle: {e}"))?;
    let bundle = Bundle::from_json(&bundle_bytes).map_err(|e| format!("parse: {e}"))?;
    let root_path = Some(dir.join("trusted_root.json"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| suite.join("public-good-trusted_root.json"));
    let root_bytes = fs::read(&root_path).map_err(|e| format!("read root: {e}"))?;
    let root = TrustedRoot::from_json(&root_bytes).map_err(|e| format!("trusted root: {e}"))?;
    let artifact_path = Some(dir.join("artifact"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| suite.join("a.txt"));
    let artifact_bytes = fs::read(&artifact_path).map_err(|e| format!("read artifact: {e}"))?;
    let policy = if dir.join("key.pub").exists() {
        let pem = fs::read_to_string(dir.join("key.pub")).map_err(|e| format!("read key: {e}"))?;
        let key =
            custody::evidence::sign::PublicKey::from_pem(&pem).map_err(|e| format!("key: {e}"))?;
        Policy::Key(KeyPolicy {
            key,
            tlog: TlogRequirement::Required,
        })
    } else {
        Policy::Identity(IdentityPolicy {
            subject: SubjectMatcher::Exact(
                read_trimmed(&dir.join("identity")).unwrap_or_else(|| DEFAULT_IDENTITY.to_string()),
            ),
            issuer: read_trimmed(&dir.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.to_string()),
        })
    };
    let digest = Digest::of(&artifact_bytes);
    let artifact = match form {
        Form::Bytes => Artifact::Bytes(&artifact_bytes),
        Form::File => Artifact::File(&artifact_path),
        Form::Digest => Artifact::Digest(&digest),
    };
    verify_bundle(&bundle, artifact, &policy, &root)
        .map(|v| format!("{:?}", v.signer))
        .map_err(|e| format!("verify: {e}"))
}

#[test]
fn sigstore_conformance_cases() {
    let cases_dir = suite().join("cases");
    let mut cases: Vec<PathBuf> = fs::read_dir(&cases_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", cases_dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no conformance cases under {}",
        cases_dir.display()
    );

    let mut report = Vec::new();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir
            .file_name()
            .expect("case name")
            .to_string_lossy()
            .to_string();
        let must_fail = name.ends_with("_fail");
        for form in [Form::Bytes, Form::File, Form::Digest] {
            let outcome = run_case(dir, form);
            let pass = outcome.is_err() == must_fail;
            let line = format!(
                "{} {name} [{form:?}] expected {}: {:?}",
                if pass { "PASS" } else { "FAIL" },
                if must_fail { "refusal" } else { "verification" },
                outcome
            );
            if !pass {
                failures.push(line.clone());
            }
            report.push(line);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance runs failed:\n{}\n\nall runs:\n{}",
        failures.len(),
        report.len(),
        failures.join("\n"),
        report.join("\n")
    );
    eprintln!("{}", report.join("\n"));
}

/// Truncated and bit-flipped copies of every case's bundle are parsed (and, when they still
/// parse, verified) without a panic.
#[test]
fn mangled_bundles_never_panic() {
    let suite = suite();
    let root = TrustedRoot::from_json(
        &fs::read(suite.join("public-good-trusted_root.json")).expect("root"),
    )
    .expect("public-good root parses");
    let artifact = fs::read(suite.join("a.txt")).expect("a.txt");
    let policy = Policy::Identity(IdentityPolicy {
        subject: SubjectMatcher::Exact(DEFAULT_IDENTITY.to_string()),
        issuer: DEFAULT_ISSUER.to_string(),
    });
    let mut cases: Vec<PathBuf> = fs::read_dir(suite.join("cases"))
        .expect("cases")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    for dir in cases {
        let Ok(bytes) = fs::read(dir.join("bundle.sigstore.json")) else {
            continue;
        };
        let step = (bytes.len() / 64).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = Bundle::from_json(&bytes[..cut]);
        }
        for pos in (0..bytes.len()).step_by(step) {
            let mut mangled = bytes.clone();
            mangled[pos] ^= 0x01;
            if let Ok(bundle) = Bundle::from_json(&mangled) {
                let _ = verify_bundle(&bundle, Artifact::Bytes(&artifact), &policy, &root);
            }
        }
    }
}

/// The bundle that carries the root CA is refused for that reason, not by accident.
#[test]
fn root_certificate_in_bundle_is_refused_as_such() {
    let suite = suite();
    let dir = suite.join("cases/bundle-with-root-cert_fail");
    let Ok(bytes) = fs::read(dir.join("bundle.sigstore.json")) else {
        panic!(
            "conformance case bundle-with-root-cert_fail is missing from {}",
            dir.display()
        );
    };
    let bundle = Bundle::from_json(&bytes).expect("the bundle parses");
    let root = TrustedRoot::from_json(
        &fs::read(suite.join("public-good-trusted_root.json")).expect("root"),
    )
    .expect("root parses");
    let artifact = fs::read(dir.join("artifact")).expect("artifact");
    let policy = Policy::Identity(IdentityPolicy {
        subject: SubjectMatcher::Exact(DEFAULT_IDENTITY.to_string()),
        issuer: DEFAULT_ISSUER.to_string(),
    });
    let err = verify_bundle(&bundle, Artifact::Bytes(&artifact), &policy, &root).unwrap_err();
    assert!(
        matches!(
            err,
            custody::evidence::sign::VerifyError::RootInBundle { index: 1 }
        ),
        "{err:?}"
    );
}
