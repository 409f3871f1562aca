//! Keyless signing against a real local Sigstore stack ([`SigstoreStack`]): custody signs blobs
//! and in-toto statements with a Fulcio certificate, a Rekor v2 entry and an RFC 3161
//! timestamp; custody and cosign both verify the bundles offline; wrong identities, wrong
//! issuers, wrong audiences and tampering are refused.

use std::path::Path;
use std::process::Output;

use custody::evidence::sign::verify::{
    Artifact, IdentityPolicy, Policy, SubjectMatcher, VerifiedSigner, verify_bundle,
};
use custody::evidence::sign::{SignerOptions, choose_signer, sign_blob, sign_statement};
use custody::foundation::digest::Digest;

use super::sigstore_stack::{EMAIL, SigstoreStack};
use super::support::{self, HostileServer, Response};

fn options(stack: &SigstoreStack, token: String) -> SignerOptions {
    SignerOptions {
        identity_token: Some(custody::evidence::sign::SecretText::new(token)),
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
        custody::evidence::sign::Material::Certificate(_)
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

/// custody with no token variables from the surrounding environment.
fn custody(stack: &SigstoreStack) -> std::process::Command {
    let mut c = support::custody();
    for var in custody::evidence::sign::oidc::TOKEN_ENV_VARS {
        c.env_remove(var);
    }
    c.env("HOME", stack.dir());
    c
}

fn verify_cli(stack: &SigstoreStack, file: &Path, bundle: &Path, id: &str, iss: &str) -> Output {
    custody(stack)
        .arg("verify-bundle")
        .arg(file)
        .arg("--bundle")
        .arg(bundle)
        .args([
            "--certificate-identity",
            id,
            "--certificate-oidc-issuer",
            iss,
        ])
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .output()
        .expect("custody runs")
}

fn sign_cli(stack: &SigstoreStack, file: &Path, bundle: &Path, extra: &[&str]) -> Output {
    custody(stack)
        .args(["--output", "json", "sign-blob"])
        .arg(file)
        .arg("--bundle")
        .arg(bundle)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .args(extra)
        .output()
        .expect("custody runs")
}

#[test]
fn library_statement_bundle_verifies_with_custody_and_cosign() {
    let stack = SigstoreStack::shared();
    let signer =
        choose_signer(&options(&stack, stack.oidc.token()), no_env()).expect("keyless signer");
    let artifact = b"the artifact the statement is about";
    let digest = Digest::of(artifact);
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://custody.dev/test/v1",
        "predicate": {"hello": "keyless"},
    });
    let bundle = sign_statement(&serde_json::to_vec(&statement).unwrap(), &signer).expect("signed");
    // rekor-tiles v2.3 logs DSSE as hashedrekord over the PAE.
    let entry = &bundle.tlog_entries()[0];
    assert_eq!(
        (entry.kind.as_str(), entry.kind_version.as_str()),
        ("hashedrekord", "0.0.2")
    );

    let root = signer.trusted_root().expect("trusted root");
    let v = verify_bundle(
        &bundle,
        Artifact::Bytes(artifact),
        &identity(EMAIL, &stack.oidc.url),
        root,
    )
    .expect("custody verifies the statement");
    assert_eq!(
        v.statement.as_deref(),
        Some(&serde_json::to_vec(&statement).unwrap()[..])
    );
    let err = verify_bundle(
        &bundle,
        Artifact::Bytes(b"another artifact"),
        &identity(EMAIL, &stack.oidc.url),
        root,
    )
    .expect_err("another artifact is not the subject");
    assert!(
        err.to_string().contains("subject") || err.to_string().contains("digest"),
        "{err}"
    );

    let dir = support::tempdir();
    let file = dir.path().join("artifact");
    let bundle_path = dir.path().join("att.sigstore.json");
    std::fs::write(&file, artifact).unwrap();
    std::fs::write(&bundle_path, bundle.to_json()).unwrap();
    let out = stack
        .cosign()
        .args(["verify-blob-attestation", "--bundle"])
        .arg(&bundle_path)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .args([
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            &stack.oidc.url,
        ])
        .args(["--type", "https://custody.dev/test/v1"])
        .arg(&file)
        .output()
        .expect("cosign runs");
    assert!(
        out.status.success(),
        "cosign refused the attestation: {}",
        text(&out)
    );
}

#[test]
fn cli_keyless_sign_blob_then_verify_and_refuse_wrong_identity_or_issuer() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("release.tar");
    support::write_data(&file, 100_000, 7);
    let bundle = dir.path().join("release.tar.sigstore.json");
    // The token from a file, as cosign accepts it too.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, stack.oidc.token()).unwrap();
    let out = sign_cli(
        &stack,
        &file,
        &bundle,
        &["--identity-token", token_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "sign-blob failed: {}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(json["keyless"]["email"], EMAIL);
    assert_eq!(json["keyless"]["issuer"], stack.oidc.url.as_str());
    assert_eq!(json["keyless"]["tokenSource"], "explicit");
    assert_eq!(json["keyless"]["timestamps"], 1);
    assert_eq!(json["checked"]["signer"]["identity"], EMAIL);
    // The token never reaches the output.
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(!text(&out).contains(&token[token.len() - 40..]));

    let ok = verify_cli(&stack, &file, &bundle, EMAIL, &stack.oidc.url);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains(&format!("verified: signed by {EMAIL}")),
        "{}",
        text(&ok)
    );
    let out = cosign_verify_blob(&stack, &file, &bundle, EMAIL, &stack.oidc.url);
    assert!(out.status.success(), "cosign refused: {}", text(&out));

    let wrong_id = verify_cli(
        &stack,
        &file,
        &bundle,
        "mallory@custody.test",
        &stack.oidc.url,
    );
    assert_eq!(wrong_id.status.code(), Some(1), "{}", text(&wrong_id));
    let wrong_iss = verify_cli(&stack, &file, &bundle, EMAIL, "https://accounts.google.com");
    assert_eq!(wrong_iss.status.code(), Some(1), "{}", text(&wrong_iss));
    let out = cosign_verify_blob(
        &stack,
        &file,
        &bundle,
        "mallory@custody.test",
        &stack.oidc.url,
    );
    assert!(!out.status.success(), "cosign accepted a wrong identity");
    assert!(
        text(&out).contains("mallory@custody.test")
            || text(&out).to_lowercase().contains("identit"),
        "{}",
        text(&out)
    );
    let out = cosign_verify_blob(&stack, &file, &bundle, EMAIL, "https://accounts.google.com");
    assert!(!out.status.success(), "cosign accepted a wrong issuer");
}

#[test]
fn tampered_keyless_bundles_fail_offline() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"tamper target").unwrap();
    let bundle = dir.path().join("blob.sigstore.json");
    let out = sign_cli(
        &stack,
        &file,
        &bundle,
        &["--identity-token", &stack.oidc.token()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();

    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 6] = [
        ("artifact digest", |b| {
            b["messageSignature"]["messageDigest"]["digest"] =
                serde_json::json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        }),
        ("signature", |b| {
            let sig = b["messageSignature"]["signature"]
                .as_str()
                .unwrap()
                .to_string();
            // Flip one base64 character in the middle of the DER signature.
            let mut chars: Vec<char> = sig.chars().collect();
            let i = chars.len() / 2;
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            b["messageSignature"]["signature"] =
                serde_json::json!(chars.into_iter().collect::<String>());
        }),
        ("checkpoint", |b| {
            let proof = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
            let cp = proof["checkpoint"]["envelope"].as_str().unwrap();
            // The second line is the tree size.
            let mut lines: Vec<String> = cp.split('\n').map(str::to_string).collect();
            lines[1] = format!("{}", lines[1].parse::<u64>().unwrap() + 1);
            proof["checkpoint"]["envelope"] = serde_json::json!(lines.join("\n"));
        }),
        ("canonicalized body", |b| {
            b["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"] =
                serde_json::json!("eyJhIjoxfQ==")
        }),
        ("top-level log index", |b| {
            b["verificationMaterial"]["tlogEntries"][0]["logIndex"] = serde_json::json!("999")
        }),
        ("timestamp", |b| {
            b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"] =
                serde_json::json!("MAA=")
        }),
    ];
    for (what, edit) in edits {
        let mut tampered = original.clone();
        edit(&mut tampered);
        let path = dir.path().join("tampered.sigstore.json");
        std::fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let out = verify_cli(&stack, &file, &path, EMAIL, &stack.oidc.url);
        assert_eq!(
            out.status.code(),
            Some(1),
            "custody accepted a tampered {what}: {}",
            text(&out)
        );
        let out = cosign_verify_blob(&stack, &file, &path, EMAIL, &stack.oidc.url);
        assert!(!out.status.success(), "cosign accepted a tampered {what}");
    }
    // The untampered bundle still verifies, so the refusals above are the edits' doing.
    let out = verify_cli(&stack, &file, &bundle, EMAIL, &stack.oidc.url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn token_for_another_audience_is_refused_by_fulcio_with_a_clear_hint() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"x").unwrap();
    let bundle = dir.path().join("b.json");
    let token = stack.oidc.token_for(EMAIL, "not-sigstore");
    let out = custody(&stack)
        .arg("sign-blob")
        .arg(&file)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .args(["--identity-token", &token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fulcio refused the request (HTTP 400): There was an error processing the identity token"),
        "{err}"
    );
    assert!(
        err.contains(r#"the token's audience is ["not-sigstore"]"#),
        "{err}"
    );
    assert!(
        !err.contains(&token[token.len() - 30..]),
        "the token leaked: {err}"
    );
    assert!(!bundle.exists());
}

#[test]
fn gitlab_style_sigstore_id_token_variable_signs() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"from gitlab").unwrap();
    let bundle = dir.path().join("b.json");
    let out = custody(&stack)
        .env("SIGSTORE_ID_TOKEN", stack.oidc.token())
        .args(["--output", "json", "sign-blob"])
        .arg(&file)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keyless"]["tokenSource"], "sigstore-id-token");
    // No --trusted-root: nothing checked at signing time, but it verifies afterwards.
    assert!(json.get("checked").is_none());
    let out = verify_cli(&stack, &file, &bundle, EMAIL, &stack.oidc.url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The GitHub Actions runner's token service is not something that can run here; an
/// in-process stand-in answers like it (`{"value": <jwt>}`) with a token of the local issuer.
#[test]
fn github_actions_token_is_requested_for_audience_sigstore() {
    let stack = SigstoreStack::shared();
    let token = stack.oidc.token();
    let runner = HostileServer::start(move |req| {
        let authorised = req.header("authorization") == Some("bearer runner-request-token");
        if authorised && req.path.contains("audience=sigstore") {
            Response::new(200)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&serde_json::json!({"value": token})).unwrap())
        } else {
            Response::new(403)
        }
    });
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"from github actions").unwrap();
    let bundle = dir.path().join("b.json");
    let out = custody(&stack)
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("http://{}/token?api-version=2.0", runner.host),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
        .args(["--output", "json", "sign-blob"])
        .arg(&file)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keyless"]["tokenSource"], "github-actions");
    let requests = runner.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/token?api-version=2.0&audience=sigstore");
    assert!(!text(&out).contains("runner-request-token"));
}

#[test]
fn without_key_or_token_sign_blob_explains_what_to_pass() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"x").unwrap();
    let out = custody(&stack)
        .arg("sign-blob")
        .arg(&file)
        .arg("--bundle")
        .arg(dir.path().join("b.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no key and no identity token"), "{err}");
    assert!(err.contains("--identity-token"), "{err}");
}

#[test]
fn cosign_keyless_bundle_from_the_same_stack_verifies_with_custody() {
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    std::fs::write(&file, b"signed by cosign").unwrap();
    let bundle = dir.path().join("cosign.sigstore.json");
    // cosign v3 reads --identity-token as a file path.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, stack.oidc.token()).unwrap();
    let out = stack
        .cosign()
        .args(["sign-blob", "-y", "--identity-token"])
        .arg(&token_file)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .arg("--bundle")
        .arg(&bundle)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "cosign sign-blob: {}", text(&out));
    let out = verify_cli(&stack, &file, &bundle, EMAIL, &stack.oidc.url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Rekor v1 needs Trillian and MariaDB, which this stack does not run; an in-process stand-in
/// records the request and answers with a canned entry, so the v1 request shape and the parsing
/// of its answer are checked against the real Fulcio and TSA.
#[test]
fn rekor_v1_stand_in_receives_a_hashedrekord_with_the_fulcio_certificate() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let stack = SigstoreStack::shared();
    let answer = serde_json::json!({"3f0d": {
        "body": STANDARD.encode(br#"{"kind":"hashedrekord"}"#),
        "integratedTime": 1_795_000_000,
        "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
        "logIndex": 7,
        "verification": {
            "inclusionProof": {"checkpoint": "rekor.test - 1\n8\nAAAA\n", "hashes": [],
                               "logIndex": 7, "rootHash": "00", "treeSize": 8},
            "signedEntryTimestamp": STANDARD.encode(b"set"),
        }
    }});
    let rekor = HostileServer::start(move |req| {
        if req.method == "POST" && req.path == "/api/v1/log/entries" {
            Response::new(201)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&answer).unwrap())
        } else {
            Response::new(404)
        }
    });
    let instance = custody::evidence::sign::SigstoreInstance {
        fulcio_url: stack.fulcio_url.clone(),
        rekor_url: format!("http://{}", rekor.host),
        rekor_version: custody::evidence::sign::RekorVersion::V1,
        tsa_url: Some(stack.tsa_url.clone()),
        trusted_root: None,
    };
    let token = custody::evidence::sign::oidc::IdentityToken::parse(&stack.oidc.token()).unwrap();
    let signer =
        custody::evidence::sign::KeylessSigner::new(instance, &token).expect("fulcio certificate");
    let blob = b"for rekor v1";
    let bundle = sign_blob(blob, &signer).expect("signed");
    let entry = &bundle.tlog_entries()[0];
    assert_eq!((entry.log_index, entry.integrated_time), (7, 1_795_000_000));
    assert_eq!(
        (entry.kind.as_str(), entry.kind_version.as_str()),
        ("hashedrekord", "0.0.1")
    );
    assert_eq!(entry.inclusion_promise.as_deref(), Some(&b"set"[..]));

    let requests = rekor.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let sent: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sent["kind"], "hashedrekord");
    assert_eq!(sent["apiVersion"], "0.0.1");
    assert_eq!(sent["spec"]["data"]["hash"]["algorithm"], "sha256");
    assert_eq!(
        sent["spec"]["data"]["hash"]["value"],
        Digest::of(blob).hex()
    );
    let custody::evidence::sign::Content::MessageSignature { signature, .. } = bundle.content()
    else {
        panic!("a blob bundle holds a message signature")
    };
    assert_eq!(
        sent["spec"]["signature"]["content"],
        STANDARD.encode(signature)
    );
    let pem = STANDARD
        .decode(
            sent["spec"]["signature"]["publicKey"]["content"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let (label, der) = pem_rfc7468::decode_vec(&pem).unwrap();
    assert_eq!(label, "CERTIFICATE");
    assert_eq!(der, signer.certificate());
}

/// A Fulcio that answers with garbage or an endless body is reported, never trusted.
#[test]
fn misbehaving_fulcio_is_reported_as_such() {
    let stack = SigstoreStack::shared();
    let token = custody::evidence::sign::oidc::IdentityToken::parse(&stack.oidc.token()).unwrap();
    let cases: [(&str, Response, &str); 3] = [
        (
            "not json",
            Response::new(200).body("<html>"),
            "unexpected fulcio response",
        ),
        (
            "no chain",
            Response::new(200).body(r#"{"signedCertificateEmbeddedSct": {}}"#),
            "no signedCertificateEmbeddedSct or signedCertificateDetachedSct chain",
        ),
        (
            "huge",
            Response::new(200).body(vec![b' '; 5 * 1024 * 1024]),
            "response is larger than",
        ),
    ];
    for (what, response, expected) in cases {
        let response = std::sync::Mutex::new(Some(response));
        let fulcio = HostileServer::start(move |_| {
            response
                .lock()
                .unwrap()
                .take()
                .unwrap_or(Response::new(500))
        });
        let instance = custody::evidence::sign::SigstoreInstance {
            fulcio_url: format!("http://{}", fulcio.host),
            rekor_url: stack.rekor_url.clone(),
            rekor_version: custody::evidence::sign::RekorVersion::V2,
            tsa_url: Some(stack.tsa_url.clone()),
            trusted_root: None,
        };
        let err = custody::evidence::sign::KeylessSigner::new(instance, &token).expect_err(what);
        assert!(
            matches!(
                err,
                custody::evidence::sign::KeylessError::BadResponse {
                    service: "fulcio",
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
}

/// Not a check: times keyless `sign-blob` of custody and cosign against the same local stack
/// and prints medians and their ratio. Run by `scripts/bench-keyless`.
#[test]
#[ignore = "benchmark; run scripts/bench-keyless"]
fn bench_keyless_sign_blob_against_cosign() {
    let runs: usize = std::env::var("CUSTODY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let stack = SigstoreStack::shared();
    let dir = support::tempdir();
    let file = dir.path().join("blob");
    support::write_data(&file, 1 << 20, 3);
    let token_file = dir.path().join("token");
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs {
        std::fs::write(&token_file, stack.oidc.token()).unwrap();
        let start = std::time::Instant::now();
        let out = sign_cli(
            &stack,
            &file,
            &dir.path().join("c.json"),
            &["--identity-token", token_file.to_str().unwrap()],
        );
        ours.push(start.elapsed().as_secs_f64());
        assert!(out.status.success(), "{}", text(&out));
        let start = std::time::Instant::now();
        let out = stack
            .cosign()
            .args(["sign-blob", "-y", "--identity-token"])
            .arg(&token_file)
            .arg("--signing-config")
            .arg(&stack.signing_config)
            .arg("--trusted-root")
            .arg(&stack.trusted_root)
            .arg("--bundle")
            .arg(dir.path().join("s.json"))
            .arg(&file)
            .output()
            .unwrap();
        theirs.push(start.elapsed().as_secs_f64());
        assert!(out.status.success(), "{}", text(&out));
    }
    let (c, s) = (median(ours), median(theirs));
    println!(
        "keyless sign-blob, 1 MiB, median of {runs}: custody {c:.3}s (includes verifying against the trusted root), cosign {s:.3}s, ratio custody/cosign {:.2}",
        c / s
    );
}
