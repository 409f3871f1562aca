//! The real `custody` binary: keygen, sign-blob and verify-bundle, and their exit codes
//! (0 verified, 1 refused, 2 could not run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn custody(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "cli-password")
        .env_remove("CUSTODY_PASSWORD")
        .output()
        .expect("custody runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn conformance_case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/sigstore-conformance/cases")
        .join(name)
}

#[test]
fn keygen_sign_verify_round_trip_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("a.txt"), b"hello\n").expect("write");
    std::fs::write(d.join("b.txt"), b"bye\n").expect("write");

    let out = custody(d, &["keygen", "--output-key-prefix", "k"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = custody(d, &["keygen", "--output-key-prefix", "k"]);
    assert_eq!(
        code(&out),
        2,
        "overwriting a key must fail: {}",
        describe(&out)
    );

    let out = custody(
        d,
        &[
            "sign-blob",
            "a.txt",
            "--key",
            "k.key",
            "--bundle",
            "a.bundle",
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));

    let out = custody(
        d,
        &[
            "verify-bundle",
            "--bundle",
            "a.bundle",
            "--key",
            "k.pub",
            "a.txt",
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified: signed by key ecdsa-p256"));

    let digest = format!(
        "sha256:{}",
        custody::foundation::digest::Digest::of(b"hello\n").hex()
    );
    let out = custody(
        d,
        &[
            "verify-bundle",
            "--bundle",
            "a.bundle",
            "--key",
            "k.pub",
            &digest,
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));

    let out = custody(
        d,
        &[
            "verify-bundle",
            "--bundle",
            "a.bundle",
            "--key",
            "k.pub",
            "b.txt",
        ],
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));

    let out = custody(
        d,
        &[
            "verify-bundle",
            "--bundle",
            "missing.bundle",
            "--key",
            "k.pub",
            "a.txt",
        ],
    );
    assert_eq!(code(&out), 2, "{}", describe(&out));

    std::fs::write(d.join("bad.bundle"), b"{\"mediaType\":").expect("write");
    let out = custody(
        d,
        &[
            "verify-bundle",
            "--bundle",
            "bad.bundle",
            "--key",
            "k.pub",
            "a.txt",
        ],
    );
    assert_eq!(
        code(&out),
        1,
        "a malformed bundle is refused: {}",
        describe(&out)
    );
}

#[test]
fn wrong_password_cannot_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("a.txt"), b"hello\n").expect("write");
    assert_eq!(
        code(&custody(d, &["keygen", "--output-key-prefix", "k"])),
        0
    );
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args([
            "sign-blob",
            "a.txt",
            "--key",
            "k.key",
            "--bundle",
            "a.bundle",
        ])
        .current_dir(d)
        .env("COSIGN_PASSWORD", "not the password")
        .output()
        .expect("custody runs");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(
        !stderr.contains("not the password"),
        "the password leaked: {stderr}"
    );
}

#[test]
fn verify_bundle_by_identity_exact_and_regex() {
    let case = conformance_case("happy-path-v0.3-new-mediaType");
    let suite = case.join("../..");
    let root = suite.join("public-good-trusted_root.json");
    let artifact = suite.join("a.txt");
    let identity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
    let issuer = "https://token.actions.githubusercontent.com";
    let bundle = case.join("bundle.sigstore.json");
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = |id_flag: &str, id: &str, iss: &str| {
        custody(
            dir.path(),
            &[
                "verify-bundle",
                "--bundle",
                &s(&bundle),
                id_flag,
                id,
                "--certificate-oidc-issuer",
                iss,
                "--trusted-root",
                &s(&root),
                &s(&artifact),
            ],
        )
    };
    let out = base("--certificate-identity", identity, issuer);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = base(
        "--certificate-identity-regexp",
        "^https://github\\.com/sigstore-conformance/",
        issuer,
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = base(
        "--certificate-identity-regexp",
        "^https://github\\.com/someone-else/",
        issuer,
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let out = base(
        "--certificate-identity",
        "https://example.com/other",
        issuer,
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected"),
        "{}",
        describe(&out)
    );
    let out = base(
        "--certificate-identity",
        identity,
        "https://accounts.google.com",
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let out = base("--certificate-identity-regexp", "(", issuer);
    assert_eq!(code(&out), 2, "a bad regex cannot run: {}", describe(&out));
}
