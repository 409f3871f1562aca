//! Legacy keyless cosign layers (`.sig` / `.att` with certificate, Rekor bundle and timestamp
//! annotations) verified as v0.1 bundles.
//!
//! The local Sigstore stack runs Rekor v2, which issues no signed entry timestamps, so it cannot
//! produce the `dev.sigstore.cosign/bundle` annotation a legacy layer carries. The real data are
//! the Sigstore conformance cases signed on the public-good instance (Rekor v1, with SETs):
//! their certificate, Rekor entry and signature are written as cosign's legacy annotations by
//! hand here (independently of custody's own writer) and read back through the converter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use custody::decisions::policy::{Format, Policy};
use custody::decisions::verify::{self, CheckKind, Status, VerifyOptions};
use custody::evidence::attach::legacy::{self, LegacyError};
use custody::evidence::attach::{self, LegacyKind, LegacyLayer};
use custody::evidence::sign::bundle::BundleVersion;
use custody::evidence::sign::verify::{
    Artifact, IdentityPolicy, Policy as SigPolicy, SubjectMatcher, TrustedRoot, VerifiedSigner,
    VerifyError, verify_bundle,
};
use custody::foundation::digest::Digest;
use custody::storage::store;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/sigstore-conformance")
}

fn case(name: &str) -> Value {
    let path = suite()
        .join("cases")
        .join(name)
        .join("bundle.sigstore.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the conformance cases live in ../shared/testdata)",
            path.display()
        )
    }))
    .unwrap()
}

fn a_txt() -> Vec<u8> {
    std::fs::read(suite().join("a.txt")).expect("a.txt")
}

fn root() -> TrustedRoot {
    TrustedRoot::from_json(&std::fs::read(suite().join("public-good-trusted_root.json")).unwrap())
        .unwrap()
}

fn pem(der_b64: &str) -> String {
    let der = STANDARD.decode(der_b64).unwrap();
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &der).unwrap()
}

/// cosign's Rekor bundle annotation for a bundle's first tlog entry (`logID` hex, numbers).
fn rekor_annotation(entry: &Value) -> String {
    let n = |k: &str| entry[k].as_str().unwrap().parse::<i64>().unwrap();
    let log_id = hex::encode(
        STANDARD
            .decode(entry["logId"]["keyId"].as_str().unwrap())
            .unwrap(),
    );
    json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": n("integratedTime"),
            "logIndex": n("logIndex"),
            "logID": log_id,
        }
    })
    .to_string()
}

/// A `.sig` layer (payload a.txt) from the hashedrekord conformance case.
fn sig_layer() -> (Vec<u8>, BTreeMap<String, String>) {
    let b = case("happy-path-v0.3-new-mediaType");
    let vm = &b["verificationMaterial"];
    let annotations = BTreeMap::from([
        (
            attach::ANNOTATION_COSIGN_SIGNATURE.to_owned(),
            b["messageSignature"]["signature"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        (
            attach::ANNOTATION_COSIGN_CERTIFICATE.to_owned(),
            pem(vm["certificate"]["rawBytes"].as_str().unwrap()),
        ),
        (attach::ANNOTATION_COSIGN_CHAIN.to_owned(), String::new()),
        (
            attach::ANNOTATION_COSIGN_BUNDLE.to_owned(),
            rekor_annotation(&vm["tlogEntries"][0]),
        ),
    ]);
    (a_txt(), annotations)
}

/// An `.att` layer (the envelope as cosign writes it) from the dsse conformance case.
fn att_layer() -> (Vec<u8>, BTreeMap<String, String>) {
    let b = case("happy-path-intoto-in-dsse-v3");
    let vm = &b["verificationMaterial"];
    let env = &b["dsseEnvelope"];
    // Go's json.Marshal of the envelope: payload, payloadType, signatures[{sig}], compact.
    let bytes = serde_json::to_vec(&json!({
        "payload": env["payload"],
        "payloadType": env["payloadType"],
        "signatures": [{"sig": env["signatures"][0]["sig"]}],
    }))
    .unwrap();
    let annotations = BTreeMap::from([
        (
            attach::ANNOTATION_COSIGN_SIGNATURE.to_owned(),
            String::new(),
        ),
        (
            attach::ANNOTATION_PREDICATE_TYPE.to_owned(),
            "https://slsa.dev/provenance/v1".to_owned(),
        ),
        (
            attach::ANNOTATION_COSIGN_CERTIFICATE.to_owned(),
            pem(vm["certificate"]["rawBytes"].as_str().unwrap()),
        ),
        (attach::ANNOTATION_COSIGN_CHAIN.to_owned(), String::new()),
        (
            attach::ANNOTATION_COSIGN_BUNDLE.to_owned(),
            rekor_annotation(&vm["tlogEntries"][0]),
        ),
    ]);
    (bytes, annotations)
}

fn identity(subject: &str) -> SigPolicy {
    SigPolicy::Identity(IdentityPolicy {
        subject: SubjectMatcher::Exact(subject.into()),
        issuer: ISSUER.into(),
    })
}

#[test]
fn legacy_keyless_sig_and_att_layers_verify_as_v0_1_bundles() {
    let root = root();
    let artifact = a_txt();
    let digest = Digest::of(&artifact);

    let (payload, annotations) = sig_layer();
    let converted = legacy::to_bundle(LegacyKind::Signature, &payload, &annotations).unwrap();
    assert!(converted.keyless);
    assert_eq!(converted.bundle.version(), BundleVersion::V0_1);
    assert_eq!(
        converted.bundle.media_type(),
        "application/vnd.dev.sigstore.bundle+json;version=0.1"
    );
    assert_eq!(converted.bundle.tlog_entries()[0].kind, "hashedrekord");
    let v = verify_bundle(
        &converted.bundle,
        Artifact::Bytes(&payload),
        &identity(IDENTITY),
        &root,
    )
    .unwrap();
    assert_eq!(
        v.signer,
        VerifiedSigner::Certificate {
            identity: IDENTITY.into(),
            issuer: ISSUER.into()
        }
    );
    assert!(v.checks.tlog && v.checks.certificate_chain && v.checks.sct);
    assert!(v.integrated_time.is_some());

    let (payload, annotations) = att_layer();
    let converted = legacy::to_bundle(LegacyKind::Attestation, &payload, &annotations).unwrap();
    assert_eq!(converted.bundle.tlog_entries()[0].kind, "dsse");
    let v = verify_bundle(
        &converted.bundle,
        Artifact::Digest(&digest),
        &identity(IDENTITY),
        &root,
    )
    .unwrap();
    assert!(v.checks.tlog);
    assert!(v.statement.is_some());

    // The policy's identity decides.
    let err = verify_bundle(
        &converted.bundle,
        Artifact::Digest(&digest),
        &identity("someone@else.example"),
        &root,
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::IdentityMismatch { .. }),
        "{err:?}"
    );
}

fn set(a: &mut BTreeMap<String, String>, key: &str, value: String) {
    a.insert(key.to_owned(), value);
}

fn edit_rekor(a: &mut BTreeMap<String, String>, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&a[attach::ANNOTATION_COSIGN_BUNDLE]).unwrap();
    f(&mut v);
    set(a, attach::ANNOTATION_COSIGN_BUNDLE, v.to_string());
}

fn edit_body(a: &mut BTreeMap<String, String>, f: impl FnOnce(&mut Value)) {
    edit_rekor(a, |v| {
        let raw = STANDARD
            .decode(v["Payload"]["body"].as_str().unwrap())
            .unwrap();
        let mut body: Value = serde_json::from_slice(&raw).unwrap();
        f(&mut body);
        v["Payload"]["body"] = Value::String(STANDARD.encode(body.to_string()));
    });
}

#[test]
fn tampered_legacy_annotations_are_refused_each_with_its_reason() {
    let other_cert = {
        let b = case("happy-path-v0.2");
        pem(
            b["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]
                .as_str()
                .unwrap(),
        )
    };
    type Tamper = Box<dyn Fn(&mut Vec<u8>, &mut BTreeMap<String, String>)>;
    type Row = (&'static str, LegacyKind, Tamper, fn(&LegacyError) -> bool);
    let rows: Vec<Row> = vec![
        (
            "another signature in the annotation",
            LegacyKind::Signature,
            Box::new(|_, a| {
                let mut sig = STANDARD
                    .decode(&a[attach::ANNOTATION_COSIGN_SIGNATURE])
                    .unwrap();
                let last = sig.len() - 1;
                sig[last] ^= 1;
                set(a, attach::ANNOTATION_COSIGN_SIGNATURE, STANDARD.encode(sig));
            }),
            |e| {
                matches!(
                    e,
                    LegacyError::RekorMismatch {
                        field: "signature",
                        ..
                    }
                )
            },
        ),
        (
            "another payload",
            LegacyKind::Signature,
            Box::new(|p, _| p.push(b'\n')),
            |e| {
                matches!(
                    e,
                    LegacyError::RekorMismatch {
                        field: "spec.data.hash",
                        ..
                    }
                )
            },
        ),
        (
            "another certificate",
            LegacyKind::Signature,
            Box::new(move |_, a| set(a, attach::ANNOTATION_COSIGN_CERTIFICATE, other_cert.clone())),
            |e| {
                matches!(
                    e,
                    LegacyError::RekorMismatch {
                        field: "signer certificate",
                        ..
                    }
                )
            },
        ),
        (
            "a certificate that is not one",
            LegacyKind::Signature,
            Box::new(|_, a| {
                set(
                    a,
                    attach::ANNOTATION_COSIGN_CERTIFICATE,
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                )
            }),
            |e| matches!(e, LegacyError::Certificate { .. }),
        ),
        (
            "a body that is not a string",
            LegacyKind::Signature,
            Box::new(|_, a| edit_rekor(a, |v| v["Payload"]["body"] = json!({"kind": "x"}))),
            |e| matches!(e, LegacyError::RekorBundle { reason } if reason.contains("not a string")),
        ),
        (
            "a log id that is not hex",
            LegacyKind::Signature,
            Box::new(|_, a| edit_rekor(a, |v| v["Payload"]["logID"] = json!("zz"))),
            |e| matches!(e, LegacyError::RekorBundle { reason } if reason.contains("logID")),
        ),
        (
            "an intoto entry for a .sig",
            LegacyKind::Signature,
            Box::new(|_, a| edit_body(a, |b| b["kind"] = json!("intoto"))),
            |e| matches!(e, LegacyError::RekorBody { .. }),
        ),
        (
            "a timestamp that is not one",
            LegacyKind::Signature,
            Box::new(|_, a| set(a, attach::ANNOTATION_COSIGN_TIMESTAMP, "{}".into())),
            |e| matches!(e, LegacyError::Timestamp { .. }),
        ),
        (
            "no rekor bundle and no timestamp",
            LegacyKind::Signature,
            Box::new(|_, a| {
                a.remove(attach::ANNOTATION_COSIGN_BUNDLE);
            }),
            |e| matches!(e, LegacyError::NoSigningTime),
        ),
        (
            "an envelope re-serialised",
            LegacyKind::Attestation,
            Box::new(|p, _| {
                let v: Value = serde_json::from_slice(p).unwrap();
                *p = serde_json::to_vec_pretty(&v).unwrap();
            }),
            |e| {
                matches!(
                    e,
                    LegacyError::RekorMismatch {
                        field: "spec.envelopeHash",
                        ..
                    }
                )
            },
        ),
        (
            "a dsse entry naming another payload",
            LegacyKind::Attestation,
            Box::new(|_, a| {
                edit_body(a, |b| {
                    b["spec"]["payloadHash"]["value"] = json!("00".repeat(32))
                })
            }),
            |e| {
                matches!(
                    e,
                    LegacyError::RekorMismatch {
                        field: "spec.payloadHash",
                        ..
                    }
                )
            },
        ),
    ];
    for (name, kind, tamper, want) in rows {
        let (mut payload, mut annotations) = match kind {
            LegacyKind::Signature => sig_layer(),
            LegacyKind::Attestation => att_layer(),
        };
        tamper(&mut payload, &mut annotations);
        match legacy::to_bundle(kind, &payload, &annotations) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(want(&e), "{name}: refused for another reason: {e:?}"),
        }
    }

    // What only the cryptography can see: a forged SET, a moved integrated time.
    let root = root();
    for (name, tamper) in [
        (
            "a forged signed entry timestamp",
            Box::new(|v: &mut Value| {
                let mut set = STANDARD
                    .decode(v["SignedEntryTimestamp"].as_str().unwrap())
                    .unwrap();
                let i = set.len() - 2;
                set[i] ^= 1;
                v["SignedEntryTimestamp"] = json!(STANDARD.encode(set));
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "a moved integrated time",
            Box::new(|v: &mut Value| {
                let t = v["Payload"]["integratedTime"].as_i64().unwrap();
                v["Payload"]["integratedTime"] = json!(t + 1);
            }),
        ),
    ] {
        let (payload, mut annotations) = sig_layer();
        edit_rekor(&mut annotations, tamper);
        let converted = legacy::to_bundle(LegacyKind::Signature, &payload, &annotations)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = verify_bundle(
            &converted.bundle,
            Artifact::Bytes(&payload),
            &identity(IDENTITY),
            &root,
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::TransparencyLog { .. }),
            "{name}: {err:?}"
        );
    }
}

/// Through `custody verify`'s library path: the legacy layers are found on the `.sig`/`.att`
/// tags, their signatures verify for the policy's identity, and binding is checked as for any
/// bundle (the conformance material signs a.txt, not this image, so binding refuses).
#[test]
fn legacy_keyless_layers_go_through_the_verify_path() {
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("oci:{}", dir.path().display());
    let store = store::open(&reference.parse().unwrap(), &store::Options::default()).unwrap();
    let image = super::verify::put_artifact(store.as_ref(), b"legacy keyless", "v1");
    for (kind, (bytes, annotations)) in [
        (LegacyKind::Signature, sig_layer()),
        (LegacyKind::Attestation, att_layer()),
    ] {
        attach::append_legacy(
            store.as_ref(),
            &image.digest,
            kind,
            LegacyLayer { bytes, annotations },
        )
        .unwrap();
    }
    let policy = |signers: &str| {
        let text = format!(
            "version: 1\nscopes:\n  - name: t\n    repositories: [\"**\"]\n    signers:\n{signers}"
        );
        Policy::parse(text.as_bytes(), Format::Yaml, Path::new("."), "p.yaml").unwrap()
    };
    let options = VerifyOptions {
        trusted_root: root(),
        ..VerifyOptions::default()
    };
    let by_identity = policy(&format!(
        "      - name: beacon\n        issuer: {ISSUER}\n        subject: {IDENTITY}\n"
    ));
    let report = verify::artifact(
        store.as_ref(),
        &format!("{reference}:v1").parse().unwrap(),
        &by_identity,
        &options,
    )
    .unwrap();
    assert!(!report.verified);
    let refs = &report.artifact.referrers;
    assert_eq!(
        refs.len(),
        2,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
    for r in refs {
        let sig = r
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Signature)
            .unwrap_or_else(|| panic!("{:?}", r.checks));
        assert_eq!(sig.status, Status::Pass, "{sig:?}");
        assert_eq!(r.signer.as_deref(), Some("beacon"));
        let subject = r
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Subject)
            .unwrap();
        assert_eq!(subject.status, Status::Fail);
        assert!(!r.trusted);
    }
    assert_eq!(
        refs[1].predicate_type.as_deref(),
        Some("https://slsa.dev/provenance/v1")
    );

    // A policy that trusts only a key never uses the certificate's key as one.
    let key = custody::evidence::sign::SigningKey::generate_p256()
        .unwrap()
        .public_key();
    let by_key = policy(&format!(
        "      - name: k\n        key: |\n{}\n",
        key.to_pem()
            .lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    let report = verify::artifact(
        store.as_ref(),
        &format!("{reference}:v1").parse().unwrap(),
        &by_key,
        &options,
    )
    .unwrap();
    for r in &report.artifact.referrers {
        let sig = r
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Signature)
            .unwrap();
        assert_eq!(sig.status, Status::Fail);
        assert!(
            sig.expected
                .as_deref()
                .is_some_and(|e| e.contains("the scope has none")),
            "{sig:?}"
        );
    }
}
