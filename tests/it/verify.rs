//! `custody verify` against real registries: the honest chain from each CI identity, every
//! attack of the catalogue refused with its own reason, legacy cosign formats, indexes, cosign
//! interop, the CLI's exit codes, JSON report and VSA, and `--offline` without a socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::decisions::policy::{Format, Policy};
use custody::decisions::verify::{self, CheckKind, Status, VerifyOptions, VerifyReport};
use custody::evidence::attach::{self, BundleContent, LegacyKind, LegacyLayer};
use custody::evidence::attest::{
    self, PREDICATE_CYCLONEDX, PREDICATE_SLSA_PROVENANCE_V1, ResourceDescriptor,
};
use custody::evidence::ci;
use custody::evidence::sign::keys::{self, Password, PublicKey, SigningKey};
use custody::evidence::sign::{KeySigner, sign_statement};
use custody::evidence::source::{ObjectId, RepoUri, SourceRecord};
use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST, Manifest, Platform,
};
use custody::foundation::reference::{Reference, Tag};
use custody::storage::store::{self, BlobSource, FetchedManifest, Store};

use crate::support;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

/// Pushes a small artifact (one layer) and tags it; returns its descriptor.
pub fn put_artifact(store: &dyn Store, content: &[u8], tag: &str) -> Descriptor {
    let layer = Descriptor::of("application/octet-stream", content);
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    store.put_blob(&layer, BlobSource::Bytes(content)).unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/vnd.custody.test".into()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = oci::to_bytes(&m);
    let d = store
        .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap();
    let fetched = FetchedManifest::check(
        "test",
        bytes,
        Some(MEDIA_TYPE_IMAGE_MANIFEST),
        Some(&d.digest),
    )
    .unwrap();
    store.tag(&tag.parse::<Tag>().unwrap(), &fetched).unwrap();
    d
}

fn signer() -> KeySigner {
    KeySigner::new(SigningKey::generate_p256().unwrap())
}

fn statement(subject: &Digest, predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": subject.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

fn attach_signed(
    store: &dyn Store,
    subject: &Descriptor,
    statement: &[u8],
    signer: &KeySigner,
    predicate_type: &str,
) -> Vec<u8> {
    let bundle = sign_statement(statement, signer).unwrap().to_json();
    attach_raw(store, subject, &bundle, predicate_type);
    bundle
}

fn attach_raw(store: &dyn Store, subject: &Descriptor, bundle: &[u8], predicate_type: &str) {
    attach::attach_bundle(
        store,
        subject,
        bundle,
        BundleContent::DsseEnvelope,
        Some(predicate_type),
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
}

fn source(repo: &str, git_ref: &str, dirty: bool) -> SourceRecord {
    SourceRecord {
        repository: Some(RepoUri::parse(repo).unwrap()),
        commit: ObjectId::parse("7fd1a60b01f91b314f59955a4e4d4e80d8edf11d").unwrap(),
        tree: ObjectId::parse(&"b".repeat(40)).unwrap(),
        git_ref: Some(git_ref.into()),
        tags: vec![],
        signed: false,
        detached: false,
        shallow: false,
        dirty,
        dirty_paths: if dirty { vec!["src/x".into()] } else { vec![] },
    }
}

/// Provenance for `subject` as custody's own builder writes it, from the given CI context.
fn provenance(subject: &Digest, ctx: &ci::CiContext, src: Option<&SourceRecord>) -> Vec<u8> {
    let mut input =
        attest::ProvenanceInput::new(vec![ResourceDescriptor::file("artifact", subject)], ctx);
    input.source = src;
    input.finished_on = Some(attest::Timestamp::from_unix(T0 as u64));
    attest::provenance(input).unwrap().to_bytes().unwrap()
}

fn sbom(subject: &Digest) -> Vec<u8> {
    statement(
        subject,
        PREDICATE_CYCLONEDX,
        serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}),
    )
}

fn indent(pem: &str, n: usize) -> String {
    pem.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn key_signer_yaml(name: &str, key: &PublicKey) -> String {
    format!(
        "      - name: {name}\n        key: |\n{}\n",
        indent(&key.to_pem(), 10)
    )
}

/// A one-scope policy over `repos` trusting `keys`, plus `rules` (YAML at scope indentation).
fn policy(repos: &str, keys: &[(&str, &PublicKey)], rules: &str) -> Policy {
    let signers: String = keys.iter().map(|(n, k)| key_signer_yaml(n, k)).collect();
    let text = format!(
        "version: 1\nscopes:\n  - name: test\n    repositories: [\"{repos}\"]\n    signers:\n{signers}{rules}"
    );
    Policy::parse(
        text.as_bytes(),
        Format::Yaml,
        Path::new("."),
        "test-policy.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn options() -> VerifyOptions {
    VerifyOptions {
        now: Some(T0 + 3600),
        ..VerifyOptions::default()
    }
}

fn run(store: &dyn Store, reference: &str, policy: &Policy) -> VerifyReport {
    verify::artifact(store, &reference.parse().unwrap(), policy, &options()).unwrap()
}

/// The failed checks of `kind`, anywhere in the report.
fn failed(report: &VerifyReport, kind: CheckKind) -> Vec<verify::Check> {
    report
        .failures()
        .into_iter()
        .filter(|c| c.kind == kind)
        .cloned()
        .collect()
}

fn assert_refused_for(report: &VerifyReport, kind: CheckKind) -> verify::Check {
    assert!(
        !report.verified,
        "{}",
        custody::decisions::verify::render::human(report)
    );
    let f = failed(report, kind);
    assert!(
        !f.is_empty(),
        "expected a failed {kind:?} check:\n{}",
        custody::decisions::verify::render::human(report)
    );
    f[0].clone()
}

const FULL_RULES: &str = "    provenance:\n      source_repositories: [\"https://github.com/octo/hello\"]\n      refs: [\"refs/tags/v*\", \"refs/heads/main\"]\n      max_age: 30d\n    sbom:\n      required: true\n";

/// Signature + provenance + SBOM from a CI context, attached to a fresh artifact.
fn honest(store: &dyn Store, key: &KeySigner, ctx: &ci::CiContext, tag: &str) -> Descriptor {
    let d = put_artifact(store, tag.as_bytes(), tag);
    let sig = statement(
        &d.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(store, &d, &sig, key, attest::PREDICATE_COSIGN_SIGN_V1);
    let src = source("https://github.com/octo/hello", "refs/tags/v1.2.0", false);
    let prov = provenance(&d.digest, ctx, Some(&src));
    attach_signed(store, &d, &prov, key, PREDICATE_SLSA_PROVENANCE_V1);
    attach_signed(store, &d, &sbom(&d.digest), key, PREDICATE_CYCLONEDX);
    d
}

fn github_ctx() -> ci::CiContext {
    let env: Vec<(&str, &str)> = vec![
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "octo/hello"),
        ("GITHUB_REF", "refs/tags/v1.2.0"),
        ("GITHUB_SHA", "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"),
        (
            "GITHUB_WORKFLOW_REF",
            "octo/hello/.github/workflows/release.yml@refs/tags/v1.2.0",
        ),
        ("GITHUB_RUN_ID", "999"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_EVENT_NAME", "push"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
    ];
    ci::detect(env.as_slice()).unwrap()
}

fn gitlab_ctx() -> ci::CiContext {
    let env: Vec<(&str, &str)> = vec![
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "https://github.com"),
        ("CI_PROJECT_URL", "https://github.com/octo/hello"),
        ("CI_COMMIT_SHA", "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"),
        ("CI_COMMIT_REF_NAME", "main"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_JOB_URL", "https://github.com/octo/hello/-/jobs/1"),
        ("CI_JOB_NAME", "build"),
        ("CI_RUNNER_ID", "7"),
    ];
    ci::detect(env.as_slice()).unwrap()
}

#[test]
fn honest_artifacts_from_each_ci_identity_verify_on_both_referrer_paths() {
    let tag_schema = support::shared_registry();
    let api = support::shared_referrers_registry();
    let key = signer();
    let pk = key.public_key();
    for host in [&tag_schema.base, &api.base] {
        let repo = format!("{host}/octo/hello");
        let store = open(&repo);
        let p = policy(&format!("{host}/octo/**"), &[("release", &pk)], FULL_RULES);
        for (ctx, tag) in [
            (ci::local(), "local"),
            (github_ctx(), "github"),
            (gitlab_ctx(), "gitlab"),
        ] {
            let d = honest(store.as_ref(), &key, &ctx, tag);
            let report = run(store.as_ref(), &format!("{repo}:{tag}"), &p);
            assert!(
                report.verified,
                "{tag} on {host}:\n{}",
                custody::decisions::verify::render::human(&report)
            );
            assert_eq!(report.digest, Some(d.digest));
            assert_eq!(report.artifact.referrers.len(), 3);
            assert!(report.artifact.referrers.iter().all(|r| r.trusted));
            // Key-signed: provenance exists, no hosted platform proven.
            assert_eq!(report.artifact.build_level, Some(1), "{tag}");
        }
    }
}

#[test]
fn tag_moved_to_another_digest_after_signing_is_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/moved", registry.base);
    let store = open(&repo);
    let key = signer();
    let signed = honest(store.as_ref(), &key, &ci::local(), "v1");
    // Someone with push access moves v1 to unsigned content.
    let other = put_artifact(store.as_ref(), b"evil", "evil");
    let fetched = store.get_manifest(&other.digest).unwrap();
    store.tag(&"v1".parse().unwrap(), &fetched).unwrap();
    let p = policy("**", &[("release", &key.public_key())], "");
    let report = run(store.as_ref(), &format!("{repo}:v1"), &p);
    assert_eq!(
        report.digest,
        Some(other.digest),
        "the tag is resolved once"
    );
    let c = assert_refused_for(&report, CheckKind::Threshold);
    assert!(c.found.unwrap().starts_with("0 distinct"));
    // Pinned to what was signed, it verifies.
    let pinned = run(store.as_ref(), &format!("{repo}@{}", signed.digest), &p);
    assert!(pinned.verified);
}

#[test]
fn a_signature_replayed_from_another_digest_is_refused_by_subject() {
    let registry = support::shared_referrers_registry();
    let repo = format!("{}/app/replay", registry.base);
    let store = open(&repo);
    let key = signer();
    let a = put_artifact(store.as_ref(), b"a", "a");
    let b = put_artifact(store.as_ref(), b"b", "b");
    let sig = statement(
        &a.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    let bundle = attach_signed(
        store.as_ref(),
        &a,
        &sig,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    attach_raw(
        store.as_ref(),
        &b,
        &bundle,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let p = policy("**", &[("release", &key.public_key())], "");
    let report = run(store.as_ref(), &format!("{repo}:b"), &p);
    let c = assert_refused_for(&report, CheckKind::Subject);
    assert_eq!(c.expected.as_deref(), Some(b.digest.to_string().as_str()));
    assert_eq!(c.found.as_deref(), Some(a.digest.to_string().as_str()));
    assert!(
        failed(&report, CheckKind::Signature).is_empty(),
        "the signature itself is valid"
    );
}

#[test]
fn an_attestation_about_another_artifact_is_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/other-subject", registry.base);
    let store = open(&repo);
    let key = signer();
    let d = put_artifact(store.as_ref(), b"x", "x");
    let sig = statement(
        &d.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &d,
        &sig,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let elsewhere = Digest::of(b"another artifact");
    let prov = provenance(&elsewhere, &ci::local(), None);
    attach_signed(
        store.as_ref(),
        &d,
        &prov,
        &key,
        PREDICATE_SLSA_PROVENANCE_V1,
    );
    let p = policy(
        "**",
        &[("release", &key.public_key())],
        "    provenance:\n      require_commit: false\n",
    );
    let report = run(store.as_ref(), &format!("{repo}:x"), &p);
    let c = assert_refused_for(&report, CheckKind::Subject);
    assert_eq!(c.found.unwrap(), elsewhere.to_string());
    assert_refused_for(&report, CheckKind::ProvenancePresent);
}

#[test]
fn provenance_from_another_repository_ref_or_builder_is_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/prov", registry.base);
    let store = open(&repo);
    let key = signer();
    let pk = key.public_key();
    let d = put_artifact(store.as_ref(), b"p", "p");
    let src = source("https://github.com/mallory/fork", "refs/heads/evil", false);
    let prov = provenance(&d.digest, &github_ctx(), Some(&src));
    attach_signed(
        store.as_ref(),
        &d,
        &prov,
        &key,
        PREDICATE_SLSA_PROVENANCE_V1,
    );
    let r = format!("{repo}:p");
    // GitHub provenance takes repository and ref from the workflow: make the CI a fork's.
    let report = run(
        store.as_ref(),
        &r,
        &policy(
            "**",
            &[("k", &pk)],
            "    provenance:\n      source_repositories: [\"https://github.com/octo/other\"]\n",
        ),
    );
    let c = assert_refused_for(&report, CheckKind::SourceRepository);
    assert_eq!(c.found.as_deref(), Some("github.com/octo/hello"));
    let report = run(
        store.as_ref(),
        &r,
        &policy(
            "**",
            &[("k", &pk)],
            "    provenance:\n      refs: [\"refs/heads/main\"]\n",
        ),
    );
    let c = assert_refused_for(&report, CheckKind::SourceRef);
    assert_eq!(c.found.as_deref(), Some("refs/tags/v1.2.0"));
    let report = run(
        store.as_ref(),
        &r,
        &policy(
            "**",
            &[("k", &pk)],
            "    provenance:\n      builders:\n        - id: https://github.com/octo/hello/.github/workflows/other.yml@*\n",
        ),
    );
    let c = assert_refused_for(&report, CheckKind::BuilderId);
    assert!(c.found.unwrap().ends_with("release.yml@refs/tags/v1.2.0"));
    // A level a key cannot prove, and a dirty local build.
    let report = run(
        store.as_ref(),
        &r,
        &policy(
            "**",
            &[("k", &pk)],
            "    provenance:\n      min_build_level: 2\n",
        ),
    );
    assert_refused_for(&report, CheckKind::BuildLevel);
    let dirty = put_artifact(store.as_ref(), b"dirty", "dirty");
    let prov = provenance(
        &dirty.digest,
        &ci::local(),
        Some(&source(
            "https://github.com/octo/hello",
            "refs/heads/main",
            true,
        )),
    );
    attach_signed(
        store.as_ref(),
        &dirty,
        &prov,
        &key,
        PREDICATE_SLSA_PROVENANCE_V1,
    );
    let report = run(
        store.as_ref(),
        &format!("{repo}:dirty"),
        &policy(
            "**",
            &[("k", &pk)],
            "    provenance:\n      required: true\n",
        ),
    );
    assert_refused_for(&report, CheckKind::CleanTree);
}

#[test]
fn untrusted_keys_and_injected_referrers_are_refused() {
    let registry = support::shared_referrers_registry();
    let repo = format!("{}/app/inject", registry.base);
    let store = open(&repo);
    let trusted = signer();
    let mallory = signer();
    let d = put_artifact(store.as_ref(), b"i", "i");
    let sig = statement(
        &d.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &d,
        &sig,
        &trusted,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    // Mallory can push: she attaches glowing provenance signed with her own key, and a note.
    let prov = provenance(&d.digest, &github_ctx(), None);
    attach_signed(
        store.as_ref(),
        &d,
        &prov,
        &mallory,
        PREDICATE_SLSA_PROVENANCE_V1,
    );
    crate::registry::attach_referrer(
        store.as_ref(),
        &d,
        b"trust me",
        "application/vnd.example.note",
    );
    let p = policy(
        "**",
        &[("release", &trusted.public_key())],
        "    provenance:\n      require_commit: false\n",
    );
    let report = run(store.as_ref(), &format!("{repo}:i"), &p);
    let c = assert_refused_for(&report, CheckKind::ProvenancePresent);
    assert!(
        c.found.unwrap().contains("none trusted"),
        "names the refused one"
    );
    let sig_fail = assert_refused_for(&report, CheckKind::Signature);
    assert!(sig_fail.found.unwrap().contains("release"));
    assert_eq!(
        report.artifact.ignored.len(),
        1,
        "the note is listed and ignored"
    );
    // A signature by an untrusted key alone: nothing trusted at all.
    let lone = put_artifact(store.as_ref(), b"lone", "lone");
    let sig = statement(
        &lone.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &lone,
        &sig,
        &mallory,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let report = run(store.as_ref(), &format!("{repo}:lone"), &p);
    assert_refused_for(&report, CheckKind::Signature);
    assert_refused_for(&report, CheckKind::Threshold);
}

fn tamper(bundle: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut v: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    let payload = b64
        .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    edit(&mut st);
    v["dsseEnvelope"]["payload"] = b64.encode(serde_json::to_vec(&st).unwrap()).into();
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn tampered_payloads_sboms_and_payload_types_are_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/tamper", registry.base);
    let store = open(&repo);
    let key = signer();
    let p = policy(
        "**",
        &[("k", &key.public_key())],
        "    sbom:\n      required: true\n",
    );

    // A tampered DSSE payload (the SBOM's component list rewritten).
    let d = put_artifact(store.as_ref(), b"t", "t");
    let sig = statement(
        &d.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &d,
        &sig,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let good = sign_statement(&sbom(&d.digest), &key).unwrap().to_json();
    let bad =
        tamper(
            &good,
            |st| {
                st["predicate"]["components"] =
                    serde_json::json!([{"name": "totally-safe", "type": "library"}])
            },
        );
    attach_raw(store.as_ref(), &d, &bad, PREDICATE_CYCLONEDX);
    let report = run(store.as_ref(), &format!("{repo}:t"), &p);
    let c = assert_refused_for(&report, CheckKind::Signature);
    assert!(c.found.unwrap().contains("signature does not verify"));
    let c = assert_refused_for(&report, CheckKind::SbomPresent);
    assert!(c.found.unwrap().contains("none trusted"));

    // A legitimate bundle whose payload type was changed.
    let d2 = put_artifact(store.as_ref(), b"t2", "t2");
    let good = sign_statement(
        &statement(
            &d2.digest,
            attest::PREDICATE_COSIGN_SIGN_V1,
            serde_json::json!({}),
        ),
        &key,
    )
    .unwrap()
    .to_json();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["dsseEnvelope"]["payloadType"] = "application/json".into();
    attach_raw(
        store.as_ref(),
        &d2,
        &serde_json::to_vec(&v).unwrap(),
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let report = run(
        store.as_ref(),
        &format!("{repo}:t2"),
        &policy("**", &[("k", &key.public_key())], ""),
    );
    let c = assert_refused_for(&report, CheckKind::PayloadType);
    assert_eq!(c.found.as_deref(), Some("application/json"));
    assert_eq!(c.expected.as_deref(), Some("application/vnd.in-toto+json"));
}

#[test]
fn one_key_counts_once_toward_a_threshold() {
    let registry = support::shared_referrers_registry();
    let repo = format!("{}/app/threshold", registry.base);
    let store = open(&repo);
    let a = signer();
    let b = signer();
    let d = put_artifact(store.as_ref(), b"th", "th");
    for n in 0..3 {
        let st = statement(
            &d.digest,
            attest::PREDICATE_COSIGN_SIGN_V1,
            serde_json::json!({"n": n}),
        );
        attach_signed(
            store.as_ref(),
            &d,
            &st,
            &a,
            attest::PREDICATE_COSIGN_SIGN_V1,
        );
    }
    // The same key listed twice under two names is still one signer.
    let pa = a.public_key();
    let p = policy(
        "**",
        &[("a", &pa), ("a-again", &pa), ("b", &b.public_key())],
        "    threshold: 2\n",
    );
    let report = run(store.as_ref(), &format!("{repo}:th"), &p);
    let c = assert_refused_for(&report, CheckKind::Threshold);
    assert!(
        c.found
            .unwrap()
            .starts_with("1 distinct (3 trusted signature(s))")
    );
    let st = statement(
        &d.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({"by": "b"}),
    );
    attach_signed(
        store.as_ref(),
        &d,
        &st,
        &b,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let report = run(store.as_ref(), &format!("{repo}:th"), &p);
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
}

#[test]
fn a_scope_that_does_not_match_the_repository_is_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/staging/app", registry.base);
    let store = open(&repo);
    let key = signer();
    honest(store.as_ref(), &key, &ci::local(), "s");
    let p = policy(
        &format!("{}/prod/**", registry.base),
        &[("k", &key.public_key())],
        "",
    );
    let report = run(store.as_ref(), &format!("{repo}:s"), &p);
    let c = assert_refused_for(&report, CheckKind::Scope);
    assert_eq!(c.found.as_deref(), Some("no scope matches"));
    assert!(report.scope.is_none());
}

#[test]
fn oversized_and_deeply_nested_bundles_and_statements_are_refused() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/big", registry.base);
    let store = open(&repo);
    let key = signer();
    let p = policy("**", &[("k", &key.public_key())], "");

    // A statement nested far deeper than any real one, validly signed.
    let d = put_artifact(store.as_ref(), b"deep", "deep");
    let deep = format!(
        "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"digest\":{{\"sha256\":\"{}\"}}}}],\"predicateType\":\"x\",\"predicate\":{}{}}}",
        d.digest.hex(),
        "[".repeat(100),
        "]".repeat(100)
    );
    attach_signed(store.as_ref(), &d, deep.as_bytes(), &key, "x");
    let report = run(store.as_ref(), &format!("{repo}:deep"), &p);
    let c = assert_refused_for(&report, CheckKind::Statement);
    assert!(c.found.unwrap().contains("levels deep"));

    // A bundle nested deeper than serde's limit: not a bundle.
    let d2 = put_artifact(store.as_ref(), b"deep2", "deep2");
    let nested = format!(
        "{{\"mediaType\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    attach_raw(store.as_ref(), &d2, nested.as_bytes(), "x");
    let report = run(store.as_ref(), &format!("{repo}:deep2"), &p);
    assert_refused_for(&report, CheckKind::BundleFormat);

    // A referrer whose bundle layer claims to be larger than custody reads.
    let d3 = put_artifact(store.as_ref(), b"big", "big");
    let mut layer = Descriptor::of(attach::BUNDLE_MEDIA_TYPE_V03, b"{}");
    store.put_blob(&layer, BlobSource::Bytes(b"{}")).unwrap();
    layer.size = attach::MAX_BUNDLE_SIZE + 1;
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some(attach::BUNDLE_MEDIA_TYPE_V03.into()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: Some(d3.clone()),
        annotations: BTreeMap::new(),
    };
    store
        .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap();
    let report = run(store.as_ref(), &format!("{repo}:big"), &p);
    let c = assert_refused_for(&report, CheckKind::Discover);
    assert!(c.found.unwrap().contains("limit"));
}

fn conformance(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/sigstore-conformance/cases")
        .join(case)
}

fn identity_policy(repos: &str, subject: &str, issuer: &str) -> Policy {
    let text = format!(
        "version: 1\nscopes:\n  - repositories: [\"{repos}\"]\n    signers:\n      - name: ci\n        issuer: {issuer}\n        subject: {subject}\n"
    );
    Policy::parse(text.as_bytes(), Format::Yaml, Path::new("."), "id.yaml").unwrap()
}

const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Real keyless bundles (Sigstore's public-good instance) attached to an artifact: the right
/// identity verifies the certificate (and then the subject binding refuses the foreign
/// statement), the wrong identity or issuer is refused as such, and a certificate that had
/// expired when the log saw the signature is refused.
#[test]
fn keyless_identity_issuer_and_certificate_validity_are_checked() {
    let dir = support::tempdir();
    let layout = dir.path().join("layout");
    let store = store::layout::LayoutStore::open_or_create(&layout).unwrap();
    let d = put_artifact(&store, b"keyless", "k");
    let happy = std::fs::read(conformance(
        "happy-path-intoto-in-dsse-v3/bundle.sigstore.json",
    ))
    .unwrap();
    attach_raw(&store, &d, &happy, "https://slsa.dev/provenance/v1");
    let root = custody::evidence::sign::TrustedRoot::from_json(
        &std::fs::read(conformance("../public-good-trusted_root.json")).unwrap(),
    )
    .unwrap();
    let opts = VerifyOptions {
        trusted_root: root,
        ..options()
    };
    let r = format!("oci:{}:k", layout.display());
    let verify = |p: &Policy| verify::artifact(&store, &r.parse().unwrap(), p, &opts).unwrap();

    let report = verify(&identity_policy("**", BEACON, GITHUB_ISSUER));
    let referrer = &report.artifact.referrers[0];
    let identity = referrer
        .checks
        .iter()
        .find(|c| c.kind == CheckKind::Identity)
        .unwrap();
    assert_eq!(identity.status, Status::Pass, "{identity:?}");
    assert!(
        referrer
            .checks
            .iter()
            .any(|c| c.kind == CheckKind::Signature && c.status == Status::Pass)
    );
    assert_refused_for(&report, CheckKind::Subject);

    let report = verify(&identity_policy(
        "**",
        "https://github.com/octo/hello/.github/workflows/release.yml@refs/heads/main",
        GITHUB_ISSUER,
    ));
    let c = assert_refused_for(&report, CheckKind::Identity);
    assert!(
        c.found.unwrap().contains("extremely-dangerous"),
        "names the identity found"
    );
    let report = verify(&identity_policy(
        "**",
        BEACON,
        "https://accounts.google.com",
    ));
    let c = assert_refused_for(&report, CheckKind::Identity);
    assert!(c.found.unwrap().contains("issuer"));

    // Signed while the certificate was not valid, and no timestamp says otherwise.
    let expired = put_artifact(&store, b"expired", "e");
    let case = conformance("intoto-set-outside-signing-cert-validity_fail");
    attach_raw(
        &store,
        &expired,
        &std::fs::read(case.join("bundle.sigstore.json")).unwrap(),
        "x",
    );
    let opts = VerifyOptions {
        trusted_root: custody::evidence::sign::TrustedRoot::from_json(
            &std::fs::read(case.join("trusted_root.json")).unwrap(),
        )
        .unwrap(),
        ..options()
    };
    let r = format!("oci:{}:e", layout.display());
    let report = verify::artifact(
        &store,
        &r.parse().unwrap(),
        &identity_policy("**", BEACON, GITHUB_ISSUER),
        &opts,
    )
    .unwrap();
    let c = assert_refused_for(&report, CheckKind::Signature);
    assert!(
        c.found.unwrap().to_lowercase().contains("cert"),
        "the certificate is the reason"
    );
}

#[test]
fn legacy_sig_and_att_layers_verify_and_a_certificate_is_never_a_key() {
    let registry = support::shared_registry();
    let repo = format!("{}/app/legacy", registry.base);
    let store = open(&repo);
    let key = signer();
    let d = put_artifact(store.as_ref(), b"legacy", "l");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = attach::simple_signing_payload(&repo, &d.digest);
    let sig = custody::evidence::sign::Signer::sign(&key, &payload).unwrap();
    attach::append_legacy(
        store.as_ref(),
        &d.digest,
        LegacyKind::Signature,
        LegacyLayer {
            bytes: payload.clone(),
            annotations: BTreeMap::from([(
                attach::ANNOTATION_COSIGN_SIGNATURE.into(),
                b64.encode(&sig),
            )]),
        },
    )
    .unwrap();
    let prov = provenance(
        &d.digest,
        &ci::local(),
        Some(&source(
            "https://github.com/octo/hello",
            "refs/heads/main",
            false,
        )),
    );
    let bundle = sign_statement(&prov, &key).unwrap();
    let custody::evidence::sign::Content::Dsse(env) = bundle.content() else {
        panic!("dsse")
    };
    attach::append_legacy(
        store.as_ref(),
        &d.digest,
        LegacyKind::Attestation,
        LegacyLayer {
            bytes: env.to_json(),
            annotations: BTreeMap::from([
                (attach::ANNOTATION_COSIGN_SIGNATURE.into(), String::new()),
                (
                    attach::ANNOTATION_PREDICATE_TYPE.into(),
                    PREDICATE_SLSA_PROVENANCE_V1.into(),
                ),
            ]),
        },
    )
    .unwrap();
    let p = policy(
        "**",
        &[("k", &key.public_key())],
        "    provenance:\n      refs: [\"refs/heads/main\"]\n",
    );
    let report = run(store.as_ref(), &format!("{repo}:l"), &p);
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
    assert_eq!(report.artifact.referrers.len(), 2);

    // A .sig layer with a certificate annotation, signed by the trusted key: never a bare key.
    let d2 = put_artifact(store.as_ref(), b"legacy2", "l2");
    let payload = attach::simple_signing_payload(&repo, &d2.digest);
    let sig = custody::evidence::sign::Signer::sign(&key, &payload).unwrap();
    attach::append_legacy(
        store.as_ref(),
        &d2.digest,
        LegacyKind::Signature,
        LegacyLayer {
            bytes: payload,
            annotations: BTreeMap::from([
                (attach::ANNOTATION_COSIGN_SIGNATURE.into(), b64.encode(&sig)),
                (
                    attach::ANNOTATION_COSIGN_CERTIFICATE.into(),
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                ),
            ]),
        },
    )
    .unwrap();
    let report = run(
        store.as_ref(),
        &format!("{repo}:l2"),
        &policy("**", &[("k", &key.public_key())], ""),
    );
    let c = assert_refused_for(&report, CheckKind::BundleFormat);
    assert!(c.found.unwrap().contains("not one pem certificate"));
    assert_refused_for(&report, CheckKind::Threshold);
    // A .sig for another digest, replayed.
    let d3 = put_artifact(store.as_ref(), b"legacy3", "l3");
    let payload = attach::simple_signing_payload(&repo, &d.digest);
    let sig = custody::evidence::sign::Signer::sign(&key, &payload).unwrap();
    attach::append_legacy(
        store.as_ref(),
        &d3.digest,
        LegacyKind::Signature,
        LegacyLayer {
            bytes: payload,
            annotations: BTreeMap::from([(
                attach::ANNOTATION_COSIGN_SIGNATURE.into(),
                b64.encode(&sig),
            )]),
        },
    )
    .unwrap();
    let report = run(
        store.as_ref(),
        &format!("{repo}:l3"),
        &policy("**", &[("k", &key.public_key())], ""),
    );
    let c = assert_refused_for(&report, CheckKind::Subject);
    assert_eq!(c.found.unwrap(), d.digest.to_string());
}

pub fn put_index(
    store: &dyn Store,
    children: &[(&Descriptor, &str, &str)],
    tag: &str,
) -> Descriptor {
    let index = ImageIndex {
        manifests: children
            .iter()
            .map(|(d, os, arch)| {
                let mut c = (*d).clone();
                c.platform = Some(Platform {
                    architecture: (*arch).into(),
                    os: (*os).into(),
                    variant: None,
                    os_version: None,
                });
                c
            })
            .collect(),
        ..ImageIndex::empty()
    };
    let bytes = oci::to_bytes(&index);
    let d = store
        .put_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_INDEX)
        .unwrap();
    let fetched = FetchedManifest::check(
        "index",
        bytes,
        Some(oci::MEDIA_TYPE_IMAGE_INDEX),
        Some(&d.digest),
    )
    .unwrap();
    assert!(matches!(fetched.manifest, Manifest::Index(_)));
    store.tag(&tag.parse().unwrap(), &fetched).unwrap();
    d
}

#[test]
fn an_index_is_verified_with_each_platform_or_the_one_asked_for() {
    let registry = support::shared_referrers_registry();
    let repo = format!("{}/app/multi", registry.base);
    let store = open(&repo);
    let key = signer();
    let amd = put_artifact(store.as_ref(), b"amd64", "amd64");
    let arm = put_artifact(store.as_ref(), b"arm64", "arm64");
    let idx = put_index(
        store.as_ref(),
        &[(&amd, "linux", "amd64"), (&arm, "linux", "arm64")],
        "multi",
    );
    let st = statement(
        &idx.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &idx,
        &st,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let p = policy("**", &[("k", &key.public_key())], "");
    let report = run(store.as_ref(), &format!("{repo}:multi"), &p);
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
    let platforms: Vec<_> = report
        .artifact
        .platforms
        .iter()
        .map(|p| p.platform.clone().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert!(report.artifact.platforms.iter().all(|p| {
        p.checks
            .iter()
            .any(|c| c.kind == CheckKind::Platform && c.status == Status::Pass)
    }));

    let one = verify::artifact(
        store.as_ref(),
        &format!("{repo}:multi").parse().unwrap(),
        &p,
        &VerifyOptions {
            platform: Some("linux/arm64".into()),
            ..options()
        },
    )
    .unwrap();
    assert!(one.verified);
    assert_eq!(one.artifact.platforms.len(), 1);
    assert_eq!(one.artifact.platforms[0].digest, Some(arm.digest));
    let none = verify::artifact(
        store.as_ref(),
        &format!("{repo}:multi").parse().unwrap(),
        &p,
        &VerifyOptions {
            platform: Some("windows/amd64".into()),
            ..options()
        },
    )
    .unwrap();
    let c = assert_refused_for(&none, CheckKind::Platform);
    assert!(c.found.unwrap().contains("linux/amd64"));
    // An unsigned index with a signed child: the index itself is refused.
    let idx2 = put_index(
        store.as_ref(),
        &[(&amd, "linux", "amd64")],
        "unsigned-index",
    );
    let st = statement(
        &amd.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &amd,
        &st,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let report = run(store.as_ref(), &format!("{repo}:unsigned-index"), &p);
    assert_eq!(report.digest, Some(idx2.digest));
    assert!(!report.verified);
    assert!(
        report.artifact.platforms[0].verified,
        "the child's own signature verifies"
    );
}

#[test]
fn an_index_without_its_own_sbom_is_accepted_when_every_platform_has_one() {
    let registry = support::shared_referrers_registry();
    let repo = format!("{}/app/sbom-multi", registry.base);
    let store = open(&repo);
    let key = signer();
    let amd = put_artifact(store.as_ref(), b"amd64 sbom", "amd64");
    let arm = put_artifact(store.as_ref(), b"arm64 sbom", "arm64");
    let idx = put_index(
        store.as_ref(),
        &[(&amd, "linux", "amd64"), (&arm, "linux", "arm64")],
        "multi",
    );
    let st = statement(
        &idx.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &idx,
        &st,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    // Only amd64 has an SBOM so far.
    attach_signed(
        store.as_ref(),
        &amd,
        &sbom(&amd.digest),
        &key,
        PREDICATE_CYCLONEDX,
    );
    let p = policy(
        "**",
        &[("k", &key.public_key())],
        "    sbom:\n      required: true\n",
    );
    let every = |r: &VerifyReport| {
        r.artifact
            .checks
            .iter()
            .find(|c| c.name == "sbom of every platform")
            .cloned()
            .unwrap_or_else(|| panic!("{}", custody::decisions::verify::render::human(r)))
    };
    let report = run(store.as_ref(), &format!("{repo}:multi"), &p);
    assert!(!report.verified);
    let c = every(&report);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.found.as_deref().unwrap().ends_with("linux/arm64"),
        "{c:?}"
    );
    assert!(!report.artifact.platforms[1].verified);

    // The one platform asked for has its SBOM: accepted.
    let one = verify::artifact(
        store.as_ref(),
        &format!("{repo}:multi").parse().unwrap(),
        &p,
        &VerifyOptions {
            platform: Some("linux/amd64".into()),
            ..options()
        },
    )
    .unwrap();
    assert!(
        one.verified,
        "{}",
        custody::decisions::verify::render::human(&one)
    );
    assert_eq!(every(&one).status, Status::Pass);

    // Every platform has its SBOM: the index is accepted, and the report says why.
    attach_signed(
        store.as_ref(),
        &arm,
        &sbom(&arm.digest),
        &key,
        PREDICATE_CYCLONEDX,
    );
    let report = run(store.as_ref(), &format!("{repo}:multi"), &p);
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
    let c = every(&report);
    assert_eq!(c.status, Status::Pass);
    let found = c.found.unwrap();
    assert!(
        found.contains("linux/amd64: https://cyclonedx.org/bom signed by k")
            && found.contains("linux/arm64: https://cyclonedx.org/bom signed by k"),
        "{found}"
    );
    let own = report
        .artifact
        .checks
        .iter()
        .find(|c| c.kind == CheckKind::SbomPresent && c.name == "sbom")
        .unwrap();
    assert_eq!(own.status, Status::Skip);
    assert!(
        own.found
            .as_deref()
            .unwrap()
            .ends_with("deferred to the platforms")
    );

    // A signed index without an SBOM over one platform without one: that platform's missing
    // SBOM still refuses, even though the index's signature covers the platform.
    let bare = put_artifact(store.as_ref(), b"riscv", "riscv");
    let mixed = put_index(
        store.as_ref(),
        &[(&amd, "linux", "amd64"), (&bare, "linux", "riscv64")],
        "mixed",
    );
    let st = statement(
        &mixed.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &mixed,
        &st,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let report = run(store.as_ref(), &format!("{repo}:mixed"), &p);
    assert!(!report.verified);
    let c = every(&report);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.found.as_deref().unwrap().ends_with("linux/riscv64"),
        "{c:?}"
    );
    let riscv = &report.artifact.platforms[1];
    assert!(
        riscv
            .checks
            .iter()
            .any(|c| c.kind == CheckKind::SbomPresent && c.status == Status::Fail),
        "the platform's missing SBOM is not waived by the index signature"
    );

    // custody tree shows each platform and its referrers under it.
    let dir = tempfile::tempdir().unwrap();
    let pubkey = dir.path().join("k.pub");
    std::fs::write(&pubkey, key.public_key().to_pem()).unwrap();
    let tagged = format!("{repo}:multi");
    let t = support::ok_json(&["tree", &tagged]);
    let platforms = t["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[0]["platform"], "linux/amd64");
    assert_eq!(platforms[0]["digest"], amd.digest.to_string());
    assert_eq!(platforms[1]["platform"], "linux/arm64");
    for p in platforms {
        let nodes = p["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1, "{p}");
        assert_eq!(nodes[0]["predicateType"], PREDICATE_CYCLONEDX);
        assert!(p["verification"].is_null());
    }
    assert_eq!(
        t["nodes"].as_array().unwrap().len(),
        1,
        "the index's own signature"
    );
    let t = support::ok_json(&["tree", &tagged, "--key", pubkey.to_str().unwrap()]);
    support::validate_against_schema("tree-report.schema.json", &t);
    for p in t["platforms"].as_array().unwrap() {
        assert_eq!(p["verification"]["verified"], true, "{p}");
        assert_eq!(p["nodes"][0]["verdict"]["trusted"], true, "{p}");
    }
    let human = support::ok(&["tree", &tagged, "--key", pubkey.to_str().unwrap()]);
    assert!(
        human.contains(&format!("├── platform linux/amd64 {}", amd.digest)),
        "{human}"
    );
    assert!(
        human.contains(&format!("└── platform linux/arm64 {}", arm.digest)),
        "{human}"
    );
    assert!(
        human.contains("      └── bundle ") && human.contains(PREDICATE_CYCLONEDX),
        "{human}"
    );
}

// ---- cosign interop --------------------------------------------------------------------

const PASSWORD: &str = "verify-interop";

fn cosign() -> PathBuf {
    let path = support::tools_bin().join("cosign");
    assert!(
        path.is_file(),
        "cosign is missing at {}: run scripts/install-tools",
        path.display()
    );
    path
}

fn run_cosign(dir: &Path, args: &[&str]) {
    let out = Command::new(cosign())
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("TUF_ROOT", dir.join("tuf"))
        .env("HOME", dir)
        .output()
        .expect("cosign runs");
    assert!(
        out.status.success(),
        "cosign {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cosign_keypair(dir: &Path) -> (PathBuf, PublicKey) {
    let pair = keys::keygen(&Password::new(PASSWORD)).unwrap();
    let (private, public) = keys::write_key_pair(&dir.join("cosign"), &pair).unwrap();
    let pk = PublicKey::from_pem(&std::fs::read_to_string(public).unwrap()).unwrap();
    (private, pk)
}

#[test]
fn custody_verifies_cosign_signatures_and_attestations_in_both_formats() {
    let registry = support::shared_referrers_registry();
    let dir = support::tempdir();
    let (private, pk) = cosign_keypair(dir.path());
    let key = private.to_str().unwrap();
    let predicate = dir.path().join("prov.json");
    let store = open(&format!("{}/interop/cosign", registry.base));
    for (tag, new_format) in [("bundle", "true"), ("legacy", "false")] {
        let repo = format!("{}/interop/cosign", registry.base);
        let d = put_artifact(store.as_ref(), tag.as_bytes(), tag);
        let pinned = format!("{repo}@{}", d.digest);
        let prov = provenance(
            &d.digest,
            &ci::local(),
            Some(&source(
                "https://github.com/octo/hello",
                "refs/heads/main",
                false,
            )),
        );
        let v: serde_json::Value = serde_json::from_slice(&prov).unwrap();
        std::fs::write(&predicate, serde_json::to_vec(&v["predicate"]).unwrap()).unwrap();
        let common = [
            "--key",
            key,
            "--tlog-upload=false",
            "--use-signing-config=false",
            "--allow-http-registry",
            "--yes",
        ];
        let fmt = format!("--new-bundle-format={new_format}");
        let mut sign: Vec<&str> = vec!["sign", &fmt];
        sign.extend(common);
        sign.push(&pinned);
        run_cosign(dir.path(), &sign);
        let mut att: Vec<&str> = vec![
            "attest",
            &fmt,
            "--type",
            "slsaprovenance1",
            "--predicate",
            predicate.to_str().unwrap(),
        ];
        att.extend(common);
        att.push(&pinned);
        run_cosign(dir.path(), &att);

        let p = policy(
            "**",
            &[("cosign", &pk)],
            "    provenance:\n      refs: [\"refs/heads/main\"]\n      source_repositories: [\"github.com/octo/hello\"]\n",
        );
        let report = run(store.as_ref(), &format!("{repo}:{tag}"), &p);
        assert!(
            report.verified,
            "{tag}:\n{}",
            custody::decisions::verify::render::human(&report)
        );
        let kinds: Vec<_> = report
            .artifact
            .referrers
            .iter()
            .map(|r| r.kind.clone())
            .collect();
        if new_format == "true" {
            assert!(
                kinds.iter().all(|k| *k == verify::ReferrerKind::Bundle),
                "{kinds:?}"
            );
        } else {
            assert!(
                kinds.contains(&verify::ReferrerKind::LegacySignature),
                "{kinds:?}"
            );
            assert!(
                kinds.contains(&verify::ReferrerKind::LegacyAttestation),
                "{kinds:?}"
            );
        }
    }
}

// ---- the command line ------------------------------------------------------------------

fn write_pub(dir: &Path, key: &KeySigner) -> PathBuf {
    let path = dir.join("trusted.pub");
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    path
}

#[test]
fn cli_exit_codes_json_report_and_vsa() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = format!("{}/cli/app", registry.base);
    let store = open(&repo);
    let key = signer();
    let d = honest(store.as_ref(), &key, &ci::local(), "v1");
    let pub_path = write_pub(dir.path(), &key);
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_path,
        format!("version: 1\nscopes:\n  - name: cli\n    repositories: [\"{}/cli/**\"]\n    signers:\n      - name: release\n        key: trusted.pub\n    provenance:\n      refs: [\"refs/tags/v*\"]\n    sbom:\n      required: true\n", registry.base),
    )
    .unwrap();
    let r = format!("{repo}:v1");
    let policy_arg = policy_path.to_str().unwrap();

    let vsa = dir.path().join("vsa.json");
    let out = support::run(&[
        "--output",
        "json",
        "verify",
        &r,
        "--policy",
        policy_arg,
        "--vsa",
        vsa.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["digest"], d.digest.to_string());
    assert_eq!(json["scope"], "cli");
    validate_schema("verify-report.schema.json", &out.stdout);
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&vsa).unwrap()).unwrap();
    assert_eq!(statement["predicateType"], attest::PREDICATE_SLSA_VSA_V1);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], d.digest.hex());
    assert_eq!(statement["predicate"]["verificationResult"], "PASSED");
    assert_eq!(
        statement["predicate"]["verifiedLevels"][0],
        "SLSA_BUILD_LEVEL_1"
    );
    assert_eq!(
        statement["predicate"]["inputAttestations"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Human tree; flags override the policy for one run (a ref the build does not have).
    let out = support::run(&[
        "verify",
        &r,
        "--policy",
        policy_arg,
        "--source-ref",
        "refs/heads/release",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let human = support::stdout(&out);
    assert!(human.contains("✗ source ref"), "{human}");
    assert!(human.contains("expected: refs/heads/release"), "{human}");
    assert!(human.contains("found:    refs/tags/v1.2.0"), "{human}");
    assert!(human.contains("REFUSED"), "{human}");

    // Flags alone, with a signed VSA attached as a referrer.
    let keyfile = dir.path().join("vsa.key");
    std::fs::write(
        &keyfile,
        SigningKey::generate_p256()
            .unwrap()
            .to_pkcs8_pem()
            .unwrap()
            .expose(),
    )
    .unwrap();
    let out = support::run(&[
        "verify",
        &r,
        "--key",
        pub_path.to_str().unwrap(),
        "--require-sbom",
        "--vsa",
        vsa.to_str().unwrap(),
        "--vsa-key",
        keyfile.to_str().unwrap(),
        "--attach-vsa",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        support::stdout(&out),
        support::stderr(&out)
    );
    let found = attach::discover(store.as_ref(), &d.digest).unwrap();
    assert!(
        found
            .bundles
            .iter()
            .any(|b| b.claimed_predicate_type.as_deref() == Some(attest::PREDICATE_SLSA_VSA_V1))
    );

    // Could not verify: registry down, bad policy.
    let out = support::run(&[
        "verify",
        "127.0.0.1:9/none/app:v1",
        "--key",
        pub_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nscopes:\n  - repositories: [\"**\"]\n    signers: nope\n",
    )
    .unwrap();
    let out = support::run(&["verify", &r, "--policy", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("line 4"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn policy_init_writes_a_policy_that_policy_check_accepts_and_check_points_at_lines() {
    let dir = support::tempdir();
    let path = dir.path().join("policy.yaml");
    let out = support::run(&["policy", "init", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    for k in ["release", "dev"] {
        std::fs::write(
            dir.path().join(format!("keys/{k}.pub")),
            signer().public_key().to_pem(),
        )
        .unwrap();
    }
    let out = support::run(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert!(support::stdout(&out).contains("production, development"));
    // The starter policy, as JSON, is valid against the schema.
    let text = std::fs::read_to_string(&path).unwrap();
    let as_json = serde_json::to_vec(&yaml_to_json(&text)).unwrap();
    validate_schema("policy.schema.json", &as_json);

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace("min_build_level: 2", "min_build_level: 7"),
    )
    .unwrap();
    let out = support::run(&["policy", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let line = text
        .lines()
        .position(|l| l.contains("min_build_level: 2"))
        .unwrap()
        + 1;
    assert!(
        support::stderr(&out).contains(&format!("line {line}")),
        "{}",
        support::stderr(&out)
    );
}

/// YAML → JSON with the venv's PyYAML, an independent reader, so the schema is checked against
/// the starter policy as YAML tools see it.
pub fn yaml_to_json(text: &str) -> serde_json::Value {
    support::yaml_to_json(text)
}

/// Validates `instance` (JSON bytes) against `schemas/<schema>` with the shared independent
/// validator.
pub fn validate_schema(schema: &str, instance: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(instance)
        .unwrap_or_else(|e| panic!("{schema}: the instance is not JSON: {e}"));
    support::validate_against_schema(schema, &value);
}

#[test]
fn offline_verification_of_a_layout_copy_opens_no_socket() {
    let strace = Path::new("/usr/bin/strace");
    assert!(
        strace.is_file(),
        "strace is missing: run scripts/install-verify-tools"
    );
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = format!("{}/air/gap", registry.base);
    let store = open(&repo);
    let key = signer();
    let d = honest(store.as_ref(), &key, &ci::local(), "v1");
    let layout = dir.path().join("copy");
    support::ok(&[
        "copy",
        &format!("{repo}:v1"),
        &format!("oci:{}:v1", layout.display()),
    ]);
    let pub_path = write_pub(dir.path(), &key);
    let root = conformance("../public-good-trusted_root.json");
    let trace = dir.path().join("trace");
    let out = Command::new(strace)
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=socket,connect",
            "-o",
            trace.to_str().unwrap(),
        ])
        .arg(env!("CARGO_BIN_EXE_custody"))
        .args([
            "verify",
            &format!("oci:{}@{}", layout.display(), d.digest),
            "--offline",
            "--key",
            pub_path.to_str().unwrap(),
            "--require-sbom",
            "--require-provenance",
            "--trusted-root",
            root.to_str().unwrap(),
            "--scope-as",
            &repo,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(!calls.contains("socket("), "a socket was opened:\n{calls}");
    assert!(
        !calls.contains("connect("),
        "a connection was made:\n{calls}"
    );
    // The same run against the registry is refused with --offline.
    let out = support::run(&[
        "verify",
        &format!("{repo}:v1"),
        "--offline",
        "--key",
        pub_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(support::stderr(&out).contains("custody copy"));
}

/// Issue 10, finding 1: only signatures count toward signers and the threshold. An artifact
/// carrying nothing but trusted attestations (an SBOM, a FAILED VSA attached by `verify
/// --attach-failed-vsa`, a `scan --attest` vuln attestation), all signed by the trusted key, is
/// still unsigned; a FAILED VSA never satisfies `--require-attestation`, a PASSED one does.
#[test]
fn attestations_and_failed_vsas_never_make_an_artifact_signed() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = format!("{}/gate/app", registry.base);
    let store = open(&repo);
    let (private, public) = super::release::keypair(dir.path());
    let d = put_artifact(store.as_ref(), b"never signed", "v1");
    let r = format!("{repo}:v1");
    // A clean SBOM, attested with the trusted key (so that `scan --attest` has one to read).
    let out = support::custody()
        .args(["attest", &r, "--key", &private, "--type", "cyclonedx"])
        .arg("--predicate")
        .arg({
            let p = dir.path().join("bom.json");
            std::fs::write(
                &p,
                serde_json::to_vec(&super::gates::bom(&[("pkg:cargo/serde@1.0.200", None)]))
                    .unwrap(),
            )
            .unwrap();
            p
        })
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let vsa_types = |store: &dyn Store| -> usize {
        attach::discover(store, &d.digest)
            .unwrap()
            .bundles
            .iter()
            .filter(|b| b.claimed_predicate_type.as_deref() == Some(attest::PREDICATE_SLSA_VSA_V1))
            .count()
    };
    let verify = |extra: &[&str]| -> (i32, serde_json::Value) {
        let mut args = vec!["--output", "json", "verify", r.as_str(), "--key", &public];
        args.extend_from_slice(extra);
        let out = support::custody()
            .args(&args)
            .env("COSIGN_PASSWORD", "release-pw")
            .output()
            .unwrap();
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", support::stderr(&out)));
        (out.status.code().unwrap(), json)
    };
    let check = |json: &serde_json::Value, kind: &str| -> serde_json::Value {
        json["artifact"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} check: {json:#}"))
    };

    // Signed SBOM only: not a signature.
    let (code, json) = verify(&[]);
    assert_eq!(code, 1, "{json:#}");
    let threshold = check(&json, "threshold");
    assert_eq!(threshold["status"], "fail");
    assert!(
        threshold["found"]
            .as_str()
            .unwrap()
            .starts_with("0 distinct (0 trusted signature(s)); 1 trusted attestation(s)"),
        "{threshold}"
    );

    // --attach-vsa does not attach a FAILED VSA; --attach-failed-vsa does.
    let vsa = dir.path().join("vsa.json");
    let vsa_args = [
        "--vsa",
        vsa.to_str().unwrap(),
        "--vsa-key",
        private.as_str(),
        "--attach-vsa",
    ];
    let (code, _) = verify(&vsa_args);
    assert_eq!(code, 1);
    assert_eq!(vsa_types(store.as_ref()), 0, "a FAILED vsa was attached");
    let mut forced = vsa_args.to_vec();
    forced.push("--attach-failed-vsa");
    let (code, _) = verify(&forced);
    assert_eq!(code, 1);
    assert_eq!(vsa_types(store.as_ref()), 1);

    // The FAILED VSA, signed by the trusted key, neither signs nor satisfies a requirement.
    let (code, json) = verify(&[]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(check(&json, "threshold")["status"], "fail");
    let refused_vsa = json["artifact"]["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["predicateType"] == attest::PREDICATE_SLSA_VSA_V1)
        .unwrap();
    assert_eq!(refused_vsa["trusted"], false);
    let verdict = refused_vsa["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "verdict")
        .unwrap();
    assert_eq!(verdict["status"], "fail");
    assert_eq!(verdict["found"], "verificationResult \"FAILED\"");
    validate_schema(
        "verify-report.schema.json",
        &serde_json::to_vec(&json).unwrap(),
    );

    // scan --attest signs a vuln attestation with the trusted key: still not a signature.
    let db = super::gates::small_db(dir.path(), &["RUSTSEC-2019-0009"]);
    let out = support::custody()
        .args(["scan", &r, "--db", db.to_str().unwrap()])
        .args(["--attest", "--key", &private])
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let (code, json) = verify(&[]);
    assert_eq!(code, 1, "{json:#}");
    assert!(
        check(&json, "threshold")["found"]
            .as_str()
            .unwrap()
            .starts_with("0 distinct"),
        "{json:#}"
    );

    // Signed for real: verified, but a required VSA is not met by the FAILED one.
    let out = support::custody()
        .args(["sign", &r, "--key", &private])
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let (code, json) = verify(&[]);
    assert_eq!(code, 0, "{json:#}");
    let require_vsa = ["--require-attestation", attest::PREDICATE_SLSA_VSA_V1];
    let (code, json) = verify(&require_vsa);
    assert_eq!(code, 1, "{json:#}");
    let required = check(&json, "required-attestation");
    assert_eq!(required["status"], "fail");
    assert!(
        required["found"]
            .as_str()
            .unwrap()
            .contains("verdict failed"),
        "{required}"
    );
    // A PASSED VSA (verification succeeded) is attached by --attach-vsa and counts.
    let (code, _) = verify(&vsa_args);
    assert_eq!(code, 0);
    assert_eq!(vsa_types(store.as_ref()), 2);
    let (code, json) = verify(&require_vsa);
    assert_eq!(code, 0, "{json:#}");
}

/// Issue 10, finding 11: a tag whose manifest does not match the digest the registry claims is
/// refused, and the report names no digest (not the digest of nothing) in JSON and human form.
#[test]
fn a_refused_resolve_reports_no_digest() {
    let manifest = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/x".into()),
        config: Descriptor::empty_config(),
        layers: vec![],
        subject: None,
        annotations: BTreeMap::new(),
    });
    let lie = Digest::of(b"something else").to_string();
    let server = support::HostileServer::start(move |r| match r.path.as_str() {
        "/v2/" => support::Response::new(200),
        "/v2/x/y/manifests/v1" => support::Response::new(200)
            .header("Content-Type", MEDIA_TYPE_IMAGE_MANIFEST)
            .header("Docker-Content-Digest", &lie)
            .body(manifest.clone()),
        _ => support::Response::new(404),
    });
    let dir = support::tempdir();
    let pub_path = write_pub(dir.path(), &signer());
    let r = format!("{}/x/y:v1", server.host);
    let empty = Digest::of(b"").to_string();

    let out = support::run(&[
        "--output",
        "json",
        "verify",
        &r,
        "--key",
        pub_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["artifact"]["checks"][0]["kind"], "resolve");
    assert_eq!(json["artifact"]["checks"][0]["status"], "fail");
    assert!(json.get("digest").is_none(), "{json:#}");
    assert!(json["artifact"].get("digest").is_none(), "{json:#}");
    assert_eq!(json["pinned"], r);
    validate_schema("verify-report.schema.json", &out.stdout);

    let out = support::run(&["verify", &r, "--key", pub_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let human = support::stdout(&out);
    assert!(human.contains("REFUSED"), "{human}");
    assert!(!human.contains(&empty), "{human}");
}

/// Issue 10, finding 1: a scope may name other predicate types as signatures, explicitly; and a
/// required VSA must say PASSED and name the policy and resource the scope expects.
#[test]
fn signature_predicate_types_and_vsa_expectations_are_applied() {
    let registry = support::shared_registry();
    let repo = format!("{}/attested/app", registry.base);
    let store = open(&repo);
    let key = signer();
    let d = put_artifact(store.as_ref(), b"attested only", "v1");
    let prov = provenance(&d.digest, &ci::local(), None);
    attach_signed(
        store.as_ref(),
        &d,
        &prov,
        &key,
        PREDICATE_SLSA_PROVENANCE_V1,
    );
    let r = format!("{repo}:v1");
    let pk = key.public_key();
    let report = run(store.as_ref(), &r, &policy("**", &[("k", &pk)], ""));
    let c = assert_refused_for(&report, CheckKind::Threshold);
    assert!(
        c.found
            .as_deref()
            .unwrap()
            .ends_with("1 trusted attestation(s) are not signatures"),
        "{c:?}"
    );
    assert!(
        c.hint
            .as_deref()
            .unwrap()
            .contains("signature_predicate_types")
    );
    let provenance_signs = "    signature_predicate_types: [\"https://slsa.dev/provenance/v1\"]\n";
    let report = run(
        store.as_ref(),
        &r,
        &policy("**", &[("k", &pk)], provenance_signs),
    );
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );

    // A PASSED VSA naming this policy and resource.
    let resource = format!("{repo}@{}", d.digest);
    let vsa = statement(
        &d.digest,
        attest::PREDICATE_SLSA_VSA_V1,
        serde_json::json!({
            "verifier": {"id": "https://example.com/gate"},
            "timeVerified": "2026-01-01T00:00:00Z",
            "resourceUri": resource,
            "policy": {"uri": "https://example.com/prod-policy.yaml"},
            "verificationResult": "PASSED",
            "verifiedLevels": ["SLSA_BUILD_LEVEL_1"],
        }),
    );
    attach_signed(
        store.as_ref(),
        &d,
        &vsa,
        &key,
        attest::PREDICATE_SLSA_VSA_V1,
    );
    let expecting = |policy_uri: &str, resource_uri: &str| {
        policy(
            "**",
            &[("k", &pk)],
            &format!(
                "{provenance_signs}    attestations:\n      - predicate_type: {}\n        policy_uri: {policy_uri}\n        resource_uri: \"{resource_uri}\"\n",
                attest::PREDICATE_SLSA_VSA_V1
            ),
        )
    };
    let report = run(
        store.as_ref(),
        &r,
        &expecting(
            "https://example.com/prod-policy.yaml",
            &format!("{repo}@sha256:*"),
        ),
    );
    assert!(
        report.verified,
        "{}",
        custody::decisions::verify::render::human(&report)
    );
    let report = run(
        store.as_ref(),
        &r,
        &expecting("https://example.com/dev-policy.yaml", &format!("{repo}@*")),
    );
    let c = assert_refused_for(&report, CheckKind::RequiredAttestation);
    assert!(
        c.found
            .as_deref()
            .unwrap()
            .contains("policy \"https://example.com/prod-policy.yaml\", not \"https://example.com/dev-policy.yaml\""),
        "{c:?}"
    );
    let report = run(
        store.as_ref(),
        &r,
        &expecting(
            "https://example.com/prod-policy.yaml",
            "elsewhere.example/app@*",
        ),
    );
    let c = assert_refused_for(&report, CheckKind::RequiredAttestation);
    assert!(c.found.as_deref().unwrap().contains("resource"), "{c:?}");
}
