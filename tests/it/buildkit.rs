//! BuildKit's attestation manifests, read from a real registry as unsigned evidence.
//!
//! The fixture follows BuildKit's documented storage layout (moby/buildkit
//! `docs/attestations/attestation-storage.md`): an index listing one platform image and, after
//! it, an `unknown/unknown` attestation manifest annotated `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest`, whose layers are an SLSA provenance
//! and an SPDX in-toto statement. It is written by this test, not by BuildKit (no `buildkitd`
//! here).

use std::collections::BTreeMap;
use std::path::Path;

use custody::decisions::policy::{Format, Policy};
use custody::decisions::verify::{self, CheckKind, VerifyOptions, VerifyReport};
use custody::evidence::attach::{self, BundleContent};
use custody::evidence::attest::{self, PREDICATE_CYCLONEDX};
use custody::evidence::buildkit;
use custody::evidence::sign::keys::{PublicKey, SigningKey};
use custody::evidence::sign::{KeySigner, sign_statement};
use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST, Manifest, Platform,
};
use custody::foundation::reference::Reference;
use custody::storage::store::{self, BlobSource, FetchedManifest, Store};
use custody::workflows::tree;

use crate::support::{self, Registry};
use crate::verify::put_artifact;

const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
const SPDX: &str = "https://spdx.dev/Document";

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

/// An in-toto statement as BuildKit writes it (subject name `_`, Statement v0.1).
pub fn buildkit_statement(
    subject: &Digest,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": "_", "digest": {"sha256": subject.hex()}}],
        "predicate": predicate,
    }))
    .unwrap()
}

/// The legacy ("fake image") attestation manifest for `platform`, its statements as layers.
pub fn put_attestation_manifest(store: &dyn Store, platform: &Digest) -> Descriptor {
    let config_bytes = br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config = Descriptor::of("application/vnd.oci.image.config.v1+json", config_bytes);
    store
        .put_blob(&config, BlobSource::Bytes(config_bytes))
        .unwrap();
    let mut layers = Vec::new();
    for (ty, predicate) in [
        (
            SLSA_V02,
            serde_json::json!({"builder": {"id": ""}, "buildType": "https://mobyproject.org/buildkit@v1"}),
        ),
        (
            SPDX,
            serde_json::json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": []}),
        ),
    ] {
        let bytes = buildkit_statement(platform, ty, predicate);
        let mut layer = Descriptor::of(buildkit::IN_TOTO_MEDIA_TYPE, &bytes);
        layer
            .annotations
            .insert(buildkit::PREDICATE_TYPE_ANNOTATION.into(), ty.into());
        store.put_blob(&layer, BlobSource::Bytes(&bytes)).unwrap();
        layers.push(layer);
    }
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    store
        .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap()
}

/// An index of `image` (linux/amd64) followed by its attestation manifest, tagged `tag`.
fn put_buildkit_index(
    store: &dyn Store,
    image: &Descriptor,
    att: &Descriptor,
    tag: &str,
) -> Descriptor {
    let platform = |os: &str, arch: &str| Platform {
        architecture: arch.into(),
        os: os.into(),
        variant: None,
        os_version: None,
    };
    let mut img = image.clone();
    img.platform = Some(platform("linux", "amd64"));
    let mut a = att.clone();
    a.platform = Some(platform("unknown", "unknown"));
    a.annotations.insert(
        buildkit::REFERENCE_TYPE.into(),
        buildkit::ATTESTATION_MANIFEST.into(),
    );
    a.annotations
        .insert(buildkit::REFERENCE_DIGEST.into(), image.digest.to_string());
    let index = ImageIndex {
        manifests: vec![img, a],
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

fn signed_statement(
    subject: &Digest,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
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
    key: &KeySigner,
    ty: &str,
) {
    let bundle = sign_statement(statement, key).unwrap().to_json();
    attach::attach_bundle(
        store,
        subject,
        &bundle,
        BundleContent::DsseEnvelope,
        Some(ty),
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
}

fn policy(key: &PublicKey, rules: &str) -> Policy {
    let pem: String = key
        .to_pem()
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect();
    let text = format!(
        "version: 1\nscopes:\n  - name: test\n    repositories: [\"**\"]\n    signers:\n      - name: k\n        key: |\n{pem}{rules}"
    );
    Policy::parse(
        text.as_bytes(),
        Format::Yaml,
        Path::new("."),
        "test-policy.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn run(store: &dyn Store, reference: &str, policy: &Policy) -> VerifyReport {
    let options = VerifyOptions {
        now: Some(1_767_225_600 + 3600),
        ..VerifyOptions::default()
    };
    verify::artifact(store, &reference.parse().unwrap(), policy, &options).unwrap()
}

#[test]
fn buildkit_attestations_are_shown_per_platform_as_unsigned_and_never_count() {
    let registry = Registry::start();
    let repo = format!("{}/app/buildkit", registry.host);
    let store = open(&repo);
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let image = put_artifact(store.as_ref(), b"amd64 image", "amd64");
    let att = put_attestation_manifest(store.as_ref(), &image.digest);
    let idx = put_buildkit_index(store.as_ref(), &image, &att, "multi");

    // The index is signed; the platform has a signed SBOM; the index has none of its own, so
    // the SBOM requirement moves to the platforms. The attestation manifest is no platform.
    let sign = signed_statement(
        &idx.digest,
        attest::PREDICATE_COSIGN_SIGN_V1,
        serde_json::json!({}),
    );
    attach_signed(
        store.as_ref(),
        &idx,
        &sign,
        &key,
        attest::PREDICATE_COSIGN_SIGN_V1,
    );
    let sbom = signed_statement(
        &image.digest,
        PREDICATE_CYCLONEDX,
        serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}),
    );
    attach_signed(store.as_ref(), &image, &sbom, &key, PREDICATE_CYCLONEDX);

    let reference = format!("{repo}:multi");
    let p = policy(&key.public_key(), "    sbom:\n      required: true\n");
    let report = run(store.as_ref(), &reference, &p);
    let text = verify::render::human(&report);
    assert!(report.verified, "{text}");
    let platforms: Vec<_> = report
        .artifact
        .platforms
        .iter()
        .map(|p| p.platform.as_deref())
        .collect();
    assert_eq!(platforms, [Some("linux/amd64")], "{text}");
    let unsigned = &report.artifact.platforms[0].unsigned;
    assert_eq!(unsigned.len(), 1);
    assert_eq!(unsigned[0].manifest, att.digest);
    assert_eq!(unsigned[0].describes, image.digest);
    assert!(!unsigned[0].signed);
    let seen: Vec<(Option<&str>, bool)> = unsigned[0]
        .statements
        .iter()
        .map(|s| (s.predicate_type.as_deref(), s.subject_matches))
        .collect();
    assert_eq!(seen, [(Some(SLSA_V02), true), (Some(SPDX), true)]);
    assert!(text.contains("unsigned buildkit attestations"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    support::validate_against_schema("verify-report.schema.json", &json);
    assert_eq!(
        json["artifact"]["platforms"][0]["unsigned"][0]["signed"],
        serde_json::json!(false)
    );

    // BuildKit's provenance is there, unsigned: a provenance requirement is still refused.
    let p = policy(
        &key.public_key(),
        "    provenance:\n      source_repositories: [\"https://github.com/octo/hello\"]\n",
    );
    let report = run(store.as_ref(), &reference, &p);
    assert!(!report.verified);
    assert!(
        report
            .failures()
            .iter()
            .any(|c| c.kind == CheckKind::ProvenancePresent),
        "{}",
        verify::render::human(&report)
    );

    // `--platform unknown/unknown` names no platform: the attestation manifest is not one.
    let options = VerifyOptions {
        now: Some(1_767_225_600 + 3600),
        platform: Some("unknown/unknown".into()),
        ..VerifyOptions::default()
    };
    let report =
        verify::artifact(store.as_ref(), &reference.parse().unwrap(), &p, &options).unwrap();
    let platform_check = report
        .artifact
        .checks
        .iter()
        .find(|c| c.kind == CheckKind::Platform)
        .expect("a platform check");
    assert_eq!(
        platform_check.found.as_deref(),
        Some("the index lists linux/amd64")
    );

    // The tree shows the same, under the platform, marked unsigned.
    let t = tree::read(store.as_ref(), &reference.parse().unwrap(), 0).unwrap();
    assert_eq!(t.platforms.len(), 1);
    assert_eq!(t.platforms[0].digest, image.digest);
    assert_eq!(t.platforms[0].unsigned.len(), 1);
    assert_eq!(t.platforms[0].unsigned[0].statements.len(), 2);
    let human = support::ok(&["tree", &reference]);
    assert!(
        human.contains(&format!(
            "buildkit attestation manifest {} (unsigned, not trusted)",
            att.digest
        )),
        "{human}"
    );
    assert!(human.contains(SLSA_V02) && human.contains(SPDX), "{human}");
}

#[test]
fn malformed_buildkit_statements_are_noted_not_trusted() {
    let registry = Registry::start();
    let repo = format!("{}/app/buildkit-bad", registry.host);
    let store = open(&repo);
    let image = put_artifact(store.as_ref(), b"amd64 image", "amd64");
    let other = put_artifact(store.as_ref(), b"another image", "other");
    // Statements about another image, and one that is not JSON.
    let mut layers = Vec::new();
    for bytes in [
        buildkit_statement(&other.digest, SLSA_V02, serde_json::json!({})),
        b"{not json".to_vec(),
    ] {
        let mut layer = Descriptor::of(buildkit::IN_TOTO_MEDIA_TYPE, &bytes);
        layer
            .annotations
            .insert(buildkit::PREDICATE_TYPE_ANNOTATION.into(), SPDX.into());
        store.put_blob(&layer, BlobSource::Bytes(&bytes)).unwrap();
        layers.push(layer);
    }
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/vnd.docker.attestation.manifest.v1+json".into()),
        config: Descriptor::empty_config(),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let att = store
        .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap();
    put_buildkit_index(store.as_ref(), &image, &att, "bad");

    let t = tree::read(store.as_ref(), &format!("{repo}:bad").parse().unwrap(), 0).unwrap();
    let statements = &t.platforms[0].unsigned[0].statements;
    assert_eq!(statements.len(), 2);
    assert!(!statements[0].subject_matches);
    assert_eq!(
        statements[0].note.as_deref(),
        Some(format!("statement's subject does not name {}", image.digest).as_str())
    );
    assert!(!statements[1].subject_matches);
    // Unreadable: the layer annotation is all there is to show.
    assert_eq!(statements[1].predicate_type.as_deref(), Some(SPDX));
    assert!(
        statements[1]
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("statement is not an in-toto statement")),
        "{:?}",
        statements[1].note
    );
}
