//! BuildKit's attestation manifests, read from a real registry as unsigned evidence.
//!
//! Two kinds of input. Real BuildKit output (tests/fixtures/buildkit, written by
//! scripts/gen-buildkit-fixtures with the BuildKit version in BUILDKIT_VERSION, and rebuilt live
//! when buildkitd is installed) in both attestation-manifest forms, as an `oci:` layout and
//! copied to registries with and without the referrers API. And fixtures this file writes from
//! BuildKit's documented storage layout (moby/buildkit `docs/attestations/attestation-storage.md`)
//! for what BuildKit does not produce: signed evidence beside it, SPDX layers, malformed or
//! misdirected statements and manifests.

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

// Real BuildKit output: tests/fixtures/buildkit/{oci-artifact,legacy}, written by
// scripts/gen-buildkit-fixtures (its version in BUILDKIT_VERSION), and rebuilt live when
// buildkitd is installed (`CUSTODY_BUILDKIT=1 scripts/install-buildkit`).

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// The two forms BuildKit writes its attestation manifests in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `oci-artifact=true`: `artifactType`, empty config, `subject` = the platform manifest.
    OciArtifact,
    /// `oci-artifact=false`: a "fake image" with a config and no subject.
    Legacy,
}

impl Variant {
    fn dir(self) -> &'static str {
        match self {
            Variant::OciArtifact => "oci-artifact",
            Variant::Legacy => "legacy",
        }
    }
}

fn committed_output() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildkit")
}

/// What one OCI layout written by BuildKit holds, read straight from its files.
#[derive(Debug)]
struct RealBuild {
    /// A copy of the layout (custody never writes to the committed one).
    _dir: tempfile::TempDir,
    layout: std::path::PathBuf,
    index: Digest,
    /// `os/arch` and digest of each runnable manifest, in index order.
    platforms: Vec<(String, Digest)>,
    /// Each attestation manifest and the platform manifest its index entry names.
    attestations: Vec<(Digest, Digest)>,
}

impl RealBuild {
    fn oci(&self) -> String {
        format!("oci:{}:v1", self.layout.display())
    }
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn json_blob(layout: &Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

/// Reads BuildKit's layout in `built` (copied first) and checks, without custody, the storage
/// layout BuildKit documents: two runnable platforms, then one `unknown/unknown` attestation
/// manifest per platform whose SLSA v1 statements have that platform manifest as subject.
fn read_real(built: &Path, variant: Variant) -> RealBuild {
    let dir = support::tempdir();
    let layout = dir.path().join("layout");
    let copied = std::process::Command::new("cp")
        .arg("-R")
        .arg(built.join(variant.dir()))
        .arg(&layout)
        .status()
        .unwrap();
    assert!(copied.success());

    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = top["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{top}");
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"], "v1",
        "{top}"
    );
    assert_eq!(entries[0]["mediaType"], oci::MEDIA_TYPE_IMAGE_INDEX);
    let index_digest = entries[0]["digest"].as_str().unwrap();
    let index = json_blob(&layout, index_digest);

    let mut platforms = Vec::new();
    let mut attestations = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let digest: Digest = m["digest"].as_str().unwrap().parse().unwrap();
        let platform =
            format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]).replace('"', "");
        match m["annotations"][buildkit::REFERENCE_TYPE].as_str() {
            None => {
                // Every attestation manifest comes after the runnable ones.
                assert!(attestations.is_empty(), "{index}");
                platforms.push((platform, digest));
            }
            Some(ty) => {
                assert_eq!(ty, buildkit::ATTESTATION_MANIFEST);
                assert_eq!(platform, "unknown/unknown");
                let describes: Digest = m["annotations"][buildkit::REFERENCE_DIGEST]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                attestations.push((digest, describes));
            }
        }
    }
    let names: Vec<&str> = platforms.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"], "{index}");
    let described: Vec<&Digest> = attestations.iter().map(|(_, d)| d).collect();
    let runnable: Vec<&Digest> = platforms.iter().map(|(_, d)| d).collect();
    assert_eq!(described, runnable, "one attestation manifest per platform");

    for (att, describes) in &attestations {
        let m = json_blob(&layout, &att.to_string());
        match variant {
            Variant::OciArtifact => {
                assert_eq!(
                    m["artifactType"],
                    buildkit::ATTESTATION_ARTIFACT_TYPE,
                    "{m}"
                );
                assert_eq!(m["config"]["mediaType"], oci::MEDIA_TYPE_EMPTY, "{m}");
                assert_eq!(m["subject"]["digest"], describes.to_string(), "{m}");
            }
            Variant::Legacy => {
                assert!(m.get("artifactType").is_none(), "{m}");
                assert!(m.get("subject").is_none(), "{m}");
                assert_eq!(
                    m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
                    "{m}"
                );
            }
        }
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "provenance only (no SBOM asked for): {m}");
        let layer = &layers[0];
        assert_eq!(layer["mediaType"], buildkit::IN_TOTO_MEDIA_TYPE);
        assert_eq!(
            layer["annotations"][buildkit::PREDICATE_TYPE_ANNOTATION],
            SLSA_V1
        );
        let statement = json_blob(&layout, layer["digest"].as_str().unwrap());
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(statement["predicateType"], SLSA_V1);
        assert_eq!(
            statement["subject"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["digest"]["sha256"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [describes.hex()],
            "the statement's subject is the platform manifest: {statement}"
        );
        // mode=max: the build request is recorded.
        assert_eq!(
            statement["predicate"]["buildDefinition"]["externalParameters"]["request"]["frontend"],
            "dockerfile.v0",
            "{statement}"
        );
    }
    RealBuild {
        _dir: dir,
        layout,
        index: index_digest.parse().unwrap(),
        platforms,
        attestations,
    }
}

/// The BuildKit attestations custody shows for one platform: (manifest, found in, readable
/// SLSA v1 statements whose subject is the platform).
fn shown(
    unsigned: &[buildkit::UnsignedAttestations],
    platform: &Digest,
) -> Vec<(Digest, Vec<buildkit::FoundIn>)> {
    unsigned
        .iter()
        .map(|a| {
            assert!(!a.signed);
            assert_eq!(&a.describes, platform);
            assert_eq!(a.note, None, "{a:?}");
            let statements: Vec<_> = a
                .statements
                .iter()
                .map(|s| {
                    (
                        s.predicate_type.as_deref(),
                        s.subject_matches,
                        s.note.as_deref(),
                    )
                })
                .collect();
            assert_eq!(statements, [(Some(SLSA_V1), true, None)], "{a:?}");
            (a.manifest.clone(), a.found_in.clone())
        })
        .collect()
}

fn write_key(dir: &Path) -> (KeySigner, String) {
    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let path = dir.join("trusted.pub");
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    (key, path.to_string_lossy().into_owned())
}

/// `custody tree` and `custody verify --platform` on `reference` (the index of `real`): the
/// provenance under each platform, unsigned, found as `found_in` says; nothing signed; no
/// `unknown/unknown` platform.
fn check_custody_reads(
    store: &dyn Store,
    real: &RealBuild,
    reference: &str,
    found_in: &[buildkit::FoundIn],
) {
    let t = tree::read(store, &reference.parse().unwrap(), 0).unwrap();
    assert_eq!(t.digest, real.index);
    assert!(t.unsigned.is_empty());
    let platforms: Vec<(Option<&str>, &Digest)> = t
        .platforms
        .iter()
        .map(|p| (p.platform.as_deref(), &p.digest))
        .collect();
    assert_eq!(
        platforms,
        real.platforms
            .iter()
            .map(|(n, d)| (Some(n.as_str()), d))
            .collect::<Vec<_>>()
    );
    for (p, (att, describes)) in t.platforms.iter().zip(&real.attestations) {
        // Shown once, however it was reached, and never also as an "other" referrer node.
        assert_eq!(
            shown(&p.unsigned, &p.digest),
            [(att.clone(), found_in.to_vec())]
        );
        assert_eq!(describes, &p.digest);
        assert!(p.nodes.is_empty(), "{:?}", p.nodes);
    }

    let human = support::ok(&["tree", reference]);
    for (att, _) in &real.attestations {
        assert!(
            human.contains(&format!(
                "buildkit attestation manifest {att} (unsigned, not trusted)"
            )),
            "{human}"
        );
    }
    assert!(!human.contains("unknown/unknown"), "{human}");
    let json = support::ok_json(&["tree", reference]);
    support::validate_against_schema("tree-report.schema.json", &json);

    let dir = support::tempdir();
    let (_, key) = write_key(dir.path());
    for (name, digest) in &real.platforms {
        let o = support::run(&[
            "--output",
            "json",
            "verify",
            reference,
            "--key",
            &key,
            "--platform",
            name,
        ]);
        // Nothing is signed: refused, and the unsigned provenance does not change that.
        assert_eq!(o.status.code(), Some(1), "{}", support::stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        support::validate_against_schema("verify-report.schema.json", &json);
        let artifact = &json["artifact"];
        assert_eq!(artifact["verified"], false);
        assert_eq!(artifact["referrers"], serde_json::json!([]));
        let listed = artifact["platforms"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{json}");
        let platform = &listed[0];
        assert_eq!(platform["platform"], name.as_str());
        assert_eq!(platform["digest"], digest.to_string());
        assert_eq!(platform["referrers"], serde_json::json!([]));
        assert_eq!(platform["ignored"], serde_json::json!([]));
        let unsigned = platform["unsigned"].as_array().unwrap();
        assert_eq!(unsigned.len(), 1, "{json}");
        assert_eq!(unsigned[0]["signed"], false);
        assert_eq!(unsigned[0]["describes"], digest.to_string());
        assert_eq!(
            unsigned[0]["foundIn"],
            serde_json::to_value(found_in).unwrap()
        );
        assert_eq!(unsigned[0]["statements"][0]["predicateType"], SLSA_V1);
        assert_eq!(unsigned[0]["statements"][0]["subjectMatches"], true);
    }
    // The attestation manifests are no platform.
    let o = support::run(&[
        "--output",
        "json",
        "verify",
        reference,
        "--key",
        &key,
        "--platform",
        "unknown/unknown",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", support::stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = json["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "platform")
        .unwrap_or_else(|| panic!("a platform check: {json}"));
    assert_eq!(check["found"], "the index lists linux/amd64, linux/arm64");
    assert!(json["artifact"].get("platforms").is_none(), "{json}");
}

/// Copies `real`'s layout into `repository` as `:v1` with oras (which, like a registry push,
/// also makes a manifest with a `subject` a referrer: through the referrers API, or the tag
/// schema where the registry has none).
fn oras_copy(real: &RealBuild, repository: &str) -> String {
    let dir = support::tempdir();
    let target = format!("{repository}:v1");
    let o = std::process::Command::new(support::tool("oras"))
        .args(["cp", "--from-oci-layout", "--to-plain-http"])
        .arg(format!("{}:v1", real.layout.display()))
        .arg(&target)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oras cp: {}{}",
        support::stdout(&o),
        support::stderr(&o)
    );
    target
}

/// Everything the tests check on real BuildKit output in `built`, for both variants: as an
/// `oci:` layout, and copied to a registry without (distribution) and with (ocireg) the
/// referrers API.
fn check_real_build(built: &Path) {
    for variant in [Variant::OciArtifact, Variant::Legacy] {
        let real = read_real(built, variant);
        let layout = open(&real.oci());
        check_custody_reads(
            layout.as_ref(),
            &real,
            &real.oci(),
            &[buildkit::FoundIn::Index],
        );

        for (registry, label) in [
            (support::shared_registry(), "distribution"),
            (support::shared_referrers_registry(), "ocireg"),
        ] {
            let repository = format!("{}/{}", registry.base, variant.dir());
            let reference = oras_copy(&real, &repository);
            let store = open(&repository);
            // Only the OCI-artifact form is also a referrer of its platform; reached both
            // ways, it is still shown once.
            let found_in = match variant {
                Variant::OciArtifact => {
                    vec![buildkit::FoundIn::Index, buildkit::FoundIn::Referrers]
                }
                Variant::Legacy => vec![buildkit::FoundIn::Index],
            };
            check_custody_reads(store.as_ref(), &real, &reference, &found_in);

            // A platform manifest named by digest, without its index: only the referrers
            // lead to its provenance.
            for ((_, platform), (att, _)) in real.platforms.iter().zip(&real.attestations) {
                let pinned = format!("{repository}@{platform}");
                let t = tree::read(store.as_ref(), &pinned.parse().unwrap(), 0).unwrap();
                assert!(t.nodes.is_empty(), "{label}: {:?}", t.nodes);
                let options = VerifyOptions {
                    now: Some(1_767_225_600 + 3600),
                    ..VerifyOptions::default()
                };
                let key = KeySigner::new(SigningKey::generate_p256().unwrap());
                let report = verify::artifact(
                    store.as_ref(),
                    &pinned.parse().unwrap(),
                    &policy(&key.public_key(), ""),
                    &options,
                )
                .unwrap();
                assert!(!report.verified);
                assert!(report.artifact.ignored.is_empty(), "{label}");
                match variant {
                    Variant::OciArtifact => {
                        let want = [(att.clone(), vec![buildkit::FoundIn::Referrers])];
                        assert_eq!(shown(&t.unsigned, platform), want, "{label}");
                        assert_eq!(shown(&report.artifact.unsigned, platform), want, "{label}");
                        let human = support::ok(&["tree", &pinned]);
                        assert!(
                            human.contains(&format!(
                                "buildkit attestation manifest {att} (unsigned, not trusted)"
                            )),
                            "{label}: {human}"
                        );
                    }
                    Variant::Legacy => {
                        assert!(t.unsigned.is_empty(), "{label}");
                        assert!(report.artifact.unsigned.is_empty(), "{label}");
                    }
                }
            }
        }
    }
}

#[test]
fn real_buildkit_output_is_shown_per_platform_as_unsigned() {
    let version = std::fs::read_to_string(committed_output().join("BUILDKIT_VERSION")).unwrap();
    assert!(
        version.starts_with("buildctl github.com/moby/buildkit v"),
        "{version}"
    );
    check_real_build(&committed_output());
}

/// With buildkitd installed (root, runc), the fixtures are rebuilt now and hold the same.
#[test]
#[allow(
    clippy::print_stderr,
    reason = "a skipped live build is worth a line in the test log"
)]
fn real_buildkit_rebuilt_live_is_shown_the_same_way() {
    let installed = ["buildkitd", "buildctl"]
        .iter()
        .all(|t| support::tools_bin().join(t).is_file());
    if !installed {
        eprintln!(
            "skipped: buildkitd is not installed (CUSTODY_BUILDKIT=1 scripts/install-buildkit)"
        );
        return;
    }
    let out = support::tempdir();
    let o = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-buildkit-fixtures"),
    )
    .arg(out.path())
    .env("CUSTODY_TOOLS_BIN", support::tools_bin())
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "gen-buildkit-fixtures: {}{}",
        support::stdout(&o),
        support::stderr(&o)
    );
    check_real_build(out.path());
}

/// A tag-schema listing (distribution has no referrers API) that names, as a referrer of one
/// image, a BuildKit attestation manifest whose subject is another image: noted, its
/// statements not read, and still never counted.
#[test]
fn a_buildkit_referrer_about_another_manifest_is_noted_not_read() {
    let registry = support::shared_registry();
    let repo = format!("{}/app", registry.base);
    let store = open(&repo);
    let image = put_artifact(store.as_ref(), b"amd64 image", "amd64");
    let other = put_artifact(store.as_ref(), b"another image", "other");
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    let statement = buildkit_statement(&other.digest, SLSA_V1, serde_json::json!({}));
    let layer = Descriptor::of(buildkit::IN_TOTO_MEDIA_TYPE, &statement);
    store
        .put_blob(&layer, BlobSource::Bytes(&statement))
        .unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some(buildkit::ATTESTATION_ARTIFACT_TYPE.into()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: Some(other.clone()),
        annotations: BTreeMap::new(),
    };
    let mut att = store
        .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap();
    att.artifact_type = Some(buildkit::ATTESTATION_ARTIFACT_TYPE.into());
    // The referrers tag schema's index for `image`, listing the misdirected manifest.
    let listing = ImageIndex {
        manifests: vec![att.clone()],
        ..ImageIndex::empty()
    };
    let bytes = oci::to_bytes(&listing);
    let d = store
        .put_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_INDEX)
        .unwrap();
    let fetched = FetchedManifest::check(
        "listing",
        bytes,
        Some(oci::MEDIA_TYPE_IMAGE_INDEX),
        Some(&d.digest),
    )
    .unwrap();
    let tag = format!("sha256-{}", image.digest.hex());
    store.tag(&tag.parse().unwrap(), &fetched).unwrap();

    let pinned = format!("{repo}@{}", image.digest);
    let t = tree::read(store.as_ref(), &pinned.parse().unwrap(), 0).unwrap();
    assert!(t.nodes.is_empty(), "{:?}", t.nodes);
    assert_eq!(t.unsigned.len(), 1);
    let shown = &t.unsigned[0];
    assert_eq!(shown.manifest, att.digest);
    assert_eq!(shown.found_in, [buildkit::FoundIn::Referrers]);
    assert_eq!(
        shown.note.as_deref(),
        Some(
            format!(
                "attestation manifest's subject is {}, not {}",
                other.digest, image.digest
            )
            .as_str()
        )
    );
    assert!(shown.statements.is_empty());

    let key = KeySigner::new(SigningKey::generate_p256().unwrap());
    let report = run(store.as_ref(), &pinned, &policy(&key.public_key(), ""));
    assert!(!report.verified);
    assert_eq!(report.artifact.unsigned, t.unsigned);
    assert!(report.artifact.referrers.is_empty());
}
